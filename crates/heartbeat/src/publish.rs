//! The metric table, and one tick: sample, publish, drive the pools.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use heapscape_pool::Pool;
use metrics::Unit;

use crate::{HeapStats, HeartbeatError};

/// What kind of instrument a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricKind {
    /// Monotonic; published by delta (StatsD ignores absolute counters).
    Counter,
    /// A value that goes up and down; published as an absolute value.
    Gauge,
    /// A distribution of observations.
    Histogram,
}

/// One row of the [metric table](METRICS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricDef {
    /// Full metric name (Prometheus naming; the StatsD path uses the same name).
    pub name: &'static str,
    /// Instrument kind.
    pub kind: MetricKind,
    /// Unit, given to `describe_*`.
    pub unit: Unit,
    /// Help text, given to `describe_*`.
    pub help: &'static str,
    /// Where the value comes from (jemalloc mallctl name, syscall or file).
    pub source: &'static str,
}

impl MetricDef {
    const fn new(
        name: &'static str,
        kind: MetricKind,
        unit: Unit,
        help: &'static str,
        source: &'static str,
    ) -> Self {
        Self {
            name,
            kind,
            unit,
            help,
            source,
        }
    }

    fn describe(&self) {
        match self.kind {
            MetricKind::Counter => metrics::describe_counter!(self.name, self.unit, self.help),
            MetricKind::Gauge => metrics::describe_gauge!(self.name, self.unit, self.help),
            MetricKind::Histogram => metrics::describe_histogram!(self.name, self.unit, self.help),
        }
    }

    fn set(&self, value: f64) {
        debug_assert_eq!(self.kind, MetricKind::Gauge, "{}", self.name);
        metrics::gauge!(self.name).set(value);
    }

    /// Publishes the growth of a cumulative value since the last publication.
    fn add_delta(&self, last_published: &mut u64, now: u64) {
        debug_assert_eq!(self.kind, MetricKind::Counter, "{}", self.name);
        metrics::counter!(self.name).increment(now.saturating_sub(*last_published));
        *last_published = now.max(*last_published);
    }

    fn record(&self, value: f64) {
        debug_assert_eq!(self.kind, MetricKind::Histogram, "{}", self.name);
        metrics::histogram!(self.name).record(value);
    }
}

const JEMALLOC_ALLOCATED: MetricDef = MetricDef::new(
    "heapscape_jemalloc_allocated_bytes",
    MetricKind::Gauge,
    Unit::Bytes,
    "Bytes in live allocations.",
    "jemalloc stats.allocated",
);
const JEMALLOC_ACTIVE: MetricDef = MetricDef::new(
    "heapscape_jemalloc_active_bytes",
    MetricKind::Gauge,
    Unit::Bytes,
    "Bytes in active pages (a page multiple; active - allocated is fragmentation).",
    "jemalloc stats.active",
);
const JEMALLOC_RESIDENT: MetricDef = MetricDef::new(
    "heapscape_jemalloc_resident_bytes",
    MetricKind::Gauge,
    Unit::Bytes,
    "Bytes in resident pages mapped by jemalloc, dirty pages included (an upper bound).",
    "jemalloc stats.resident",
);
const JEMALLOC_MAPPED: MetricDef = MetricDef::new(
    "heapscape_jemalloc_mapped_bytes",
    MetricKind::Gauge,
    Unit::Bytes,
    "Bytes in active extents mapped by jemalloc.",
    "jemalloc stats.mapped",
);
const JEMALLOC_METADATA: MetricDef = MetricDef::new(
    "heapscape_jemalloc_metadata_bytes",
    MetricKind::Gauge,
    Unit::Bytes,
    "Bytes of jemalloc's own bookkeeping.",
    "jemalloc stats.metadata",
);
const JEMALLOC_RETAINED: MetricDef = MetricDef::new(
    "heapscape_jemalloc_retained_bytes",
    MetricKind::Gauge,
    Unit::Bytes,
    "Bytes of virtual memory jemalloc keeps mapped instead of unmapping (not resident).",
    "jemalloc stats.retained",
);
const JEMALLOC_SMALL_REQUESTS: MetricDef = MetricDef::new(
    "heapscape_jemalloc_small_requests_total",
    MetricKind::Counter,
    Unit::Count,
    "Small allocation requests served by jemalloc, all arenas.",
    "jemalloc stats.arenas.4096.small.nrequests",
);
const JEMALLOC_LARGE_REQUESTS: MetricDef = MetricDef::new(
    "heapscape_jemalloc_large_requests_total",
    MetricKind::Counter,
    Unit::Count,
    "Large allocation requests served by jemalloc, all arenas.",
    "jemalloc stats.arenas.4096.large.nrequests",
);
const PROCESS_RESIDENT: MetricDef = MetricDef::new(
    "heapscape_process_resident_bytes",
    MetricKind::Gauge,
    Unit::Bytes,
    "Resident set size of the whole process (0 where /proc is missing).",
    "/proc/self/statm (resident pages x page size)",
);
const PROCESS_MINOR_FAULTS: MetricDef = MetricDef::new(
    "heapscape_process_minor_page_faults_total",
    MetricKind::Counter,
    Unit::Count,
    "Minor page faults of the process: the CPU cost of memory returned to the OS and touched again.",
    "getrusage(RUSAGE_SELF).ru_minflt",
);
const PROCESS_MAJOR_FAULTS: MetricDef = MetricDef::new(
    "heapscape_process_major_page_faults_total",
    MetricKind::Counter,
    Unit::Count,
    "Major page faults of the process (faults that needed I/O).",
    "getrusage(RUSAGE_SELF).ru_majflt",
);
#[cfg(feature = "counting")]
const ALLOC_BYTES: MetricDef = MetricDef::new(
    "heapscape_alloc_bytes_total",
    MetricKind::Counter,
    Unit::Bytes,
    "Bytes requested from the global allocator (the allocation rate, like Go's go_memstats_alloc_bytes_total).",
    "CountingJemalloc (feature `counting`), only when it is the global allocator",
);
#[cfg(feature = "counting")]
const ALLOC_ALLOCATIONS: MetricDef = MetricDef::new(
    "heapscape_alloc_allocations_total",
    MetricKind::Counter,
    Unit::Count,
    "Allocations (alloc, alloc_zeroed, realloc) served by the global allocator.",
    "CountingJemalloc (feature `counting`), only when it is the global allocator",
);
const SAMPLE_DURATION: MetricDef = MetricDef::new(
    "heapscape_heartbeat_sample_duration_seconds",
    MetricKind::Histogram,
    Unit::Seconds,
    "Time one heartbeat tick took: epoch advance, reads, publication, pool publication and trim.",
    "heartbeat tick, measured with Instant",
);
const LAST_SUCCESS: MetricDef = MetricDef::new(
    "heapscape_heartbeat_last_success_timestamp_seconds",
    MetricKind::Gauge,
    Unit::Seconds,
    "Unix time of the last tick whose sample succeeded.",
    "system clock at the end of a successful sample",
);
const UP: MetricDef = MetricDef::new(
    "heapscape_heartbeat_up",
    MetricKind::Gauge,
    Unit::Count,
    "1 when the last sample succeeded, 0 when it failed.",
    "outcome of the last sample",
);
const INTERVAL: MetricDef = MetricDef::new(
    "heapscape_heartbeat_interval_seconds",
    MetricKind::Gauge,
    Unit::Seconds,
    "Configured time between heartbeat ticks.",
    "heartbeat configuration",
);

/// Every metric the heartbeat publishes, written once and used both by [`describe_metrics`] and
/// by each tick.
///
/// All values refresh once per heartbeat tick (default every 10 s); jemalloc values are read
/// right after the tick advances jemalloc's epoch. Counters are published by delta.
pub const METRICS: &[MetricDef] = &[
    JEMALLOC_ALLOCATED,
    JEMALLOC_ACTIVE,
    JEMALLOC_RESIDENT,
    JEMALLOC_MAPPED,
    JEMALLOC_METADATA,
    JEMALLOC_RETAINED,
    JEMALLOC_SMALL_REQUESTS,
    JEMALLOC_LARGE_REQUESTS,
    PROCESS_RESIDENT,
    PROCESS_MINOR_FAULTS,
    PROCESS_MAJOR_FAULTS,
    #[cfg(feature = "counting")]
    ALLOC_BYTES,
    #[cfg(feature = "counting")]
    ALLOC_ALLOCATIONS,
    SAMPLE_DURATION,
    LAST_SUCCESS,
    UP,
    INTERVAL,
];

/// Bucket upper bounds (seconds) suited to `heapscape_heartbeat_sample_duration_seconds`, for
/// exporters that need explicit buckets (e.g. `set_buckets_for_metric` in
/// metrics-exporter-prometheus): 10 µs to 1 s.
pub const SAMPLE_DURATION_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.1, 1.0,
];

/// Describes (unit and help text) every heartbeat metric and every pool metric.
///
/// Call it once after installing a recorder; recorders that ignore descriptions (StatsD) lose
/// nothing else.
pub fn describe_metrics() {
    for metric in METRICS {
        metric.describe();
    }
    heapscape_pool::describe_metrics();
}

/// The last cumulative values published, process-wide: a restarted or second heartbeat
/// continues the deltas instead of re-adding everything since process start.
struct Published {
    small_requests: u64,
    large_requests: u64,
    minor_page_faults: u64,
    major_page_faults: u64,
    #[cfg(feature = "counting")]
    alloc_bytes: u64,
    #[cfg(feature = "counting")]
    allocations: u64,
}

static PUBLISHED: Mutex<Published> = Mutex::new(Published {
    small_requests: 0,
    large_requests: 0,
    minor_page_faults: 0,
    major_page_faults: 0,
    #[cfg(feature = "counting")]
    alloc_bytes: 0,
    #[cfg(feature = "counting")]
    allocations: 0,
});

/// One heartbeat tick on the calling thread (a blocking context): sample, publish, then publish
/// and trim every pool.
pub(crate) fn tick(pools: &[Pool], interval: Duration) -> Result<HeapStats, HeartbeatError> {
    let started = Instant::now();
    let sample = HeapStats::sample();
    {
        // Poisoning cannot leave `Published` inconsistent: each field is updated on its own.
        let mut published = PUBLISHED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Ok(stats) = &sample {
            publish_heap(stats, &mut published);
        }
        #[cfg(feature = "counting")]
        publish_counting(&mut published);
    }
    match &sample {
        Ok(_) => {
            LAST_SUCCESS.set(unix_seconds());
            UP.set(1.0);
        }
        Err(_) => UP.set(0.0),
    }
    for pool in pools {
        pool.publish();
        pool.trim();
    }
    INTERVAL.set(interval.as_secs_f64());
    SAMPLE_DURATION.record(started.elapsed().as_secs_f64());
    sample
}

// Gauges are f64 in the `metrics` facade; byte counts below 2^53 (8 PiB) convert exactly.
#[allow(clippy::cast_precision_loss)]
fn publish_heap(stats: &HeapStats, published: &mut Published) {
    JEMALLOC_ALLOCATED.set(stats.allocated as f64);
    JEMALLOC_ACTIVE.set(stats.active as f64);
    JEMALLOC_RESIDENT.set(stats.resident as f64);
    JEMALLOC_MAPPED.set(stats.mapped as f64);
    JEMALLOC_METADATA.set(stats.metadata as f64);
    JEMALLOC_RETAINED.set(stats.retained as f64);
    JEMALLOC_SMALL_REQUESTS.add_delta(&mut published.small_requests, stats.small_requests);
    JEMALLOC_LARGE_REQUESTS.add_delta(&mut published.large_requests, stats.large_requests);
    PROCESS_RESIDENT.set(stats.process_resident as f64);
    PROCESS_MINOR_FAULTS.add_delta(&mut published.minor_page_faults, stats.minor_page_faults);
    PROCESS_MAJOR_FAULTS.add_delta(&mut published.major_page_faults, stats.major_page_faults);
}

#[cfg(feature = "counting")]
fn publish_counting(published: &mut Published) {
    let totals = crate::CountingJemalloc::totals();
    // Zero allocations means `CountingJemalloc` is not the global allocator: publishing zeros
    // would draw a flat, wrong allocation rate.
    if totals.allocations == 0 {
        return;
    }
    ALLOC_BYTES.add_delta(&mut published.alloc_bytes, totals.bytes);
    ALLOC_ALLOCATIONS.add_delta(&mut published.allocations, totals.allocations);
}

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use metrics_util::MetricKind as UtilKind;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    #[test]
    fn every_metric_is_published_with_its_unit() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            describe_metrics();
            tick(&[], Duration::from_secs(10)).expect("sample");
        });
        let snapshot = snapshotter.snapshot().into_vec();
        for metric in METRICS {
            let (key, unit, help, value) = snapshot
                .iter()
                .find(|(key, ..)| key.key().name() == metric.name)
                .unwrap_or_else(|| panic!("{} was not published", metric.name));
            assert_eq!(*unit, Some(metric.unit), "{}", metric.name);
            assert_eq!(help.as_deref(), Some(metric.help), "{}", metric.name);
            let expected = match metric.kind {
                MetricKind::Counter => UtilKind::Counter,
                MetricKind::Gauge => UtilKind::Gauge,
                MetricKind::Histogram => UtilKind::Histogram,
            };
            assert_eq!(key.kind(), expected, "{}", metric.name);
            if metric.name == UP.name {
                assert_eq!(*value, DebugValue::Gauge(1.0.into()));
            }
        }
    }

    #[test]
    fn table_is_well_formed() {
        let mut names = HashSet::new();
        for metric in METRICS {
            assert!(names.insert(metric.name), "{} listed twice", metric.name);
            assert!(metric.name.starts_with("heapscape_"), "{}", metric.name);
            assert_eq!(
                metric.name.ends_with("_total"),
                metric.kind == MetricKind::Counter,
                "{}: counters and only counters end in _total",
                metric.name
            );
            if metric.unit == Unit::Bytes && metric.kind != MetricKind::Counter {
                assert!(metric.name.ends_with("_bytes"), "{}", metric.name);
            }
            if metric.unit == Unit::Seconds {
                assert!(metric.name.ends_with("_seconds"), "{}", metric.name);
            }
        }
        assert!(SAMPLE_DURATION_BUCKETS.is_sorted());
    }

    #[test]
    fn counters_publish_growth_only() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let mut last = 0;
        metrics::with_local_recorder(&recorder, || {
            JEMALLOC_SMALL_REQUESTS.add_delta(&mut last, 100);
            JEMALLOC_SMALL_REQUESTS.add_delta(&mut last, 130);
            // A value that went backwards publishes nothing and keeps the high-water mark.
            JEMALLOC_SMALL_REQUESTS.add_delta(&mut last, 120);
            JEMALLOC_SMALL_REQUESTS.add_delta(&mut last, 131);
        });
        assert_eq!(last, 131);
        let snapshot = snapshotter.snapshot().into_vec();
        assert_eq!(snapshot[0].3, DebugValue::Counter(131));
    }
}
