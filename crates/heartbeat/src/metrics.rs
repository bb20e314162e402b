//! The heartbeat's metric catalog: every metric a tick publishes, defined once.
//!
//! All values refresh once per heartbeat tick (default every 10 s); jemalloc values are read
//! right after the tick advances jemalloc's epoch. Counters are published by delta. They
//! describe the whole process, so only [`ALLOCATOR_INFO`] has a label. When jemalloc is not the
//! global allocator, the `heapscape_jemalloc_*` metrics are not published at all.

use heapscape_pool::catalog::{MetricDef, MetricKind};
use metrics::Unit;

/// Bytes in live allocations. From jemalloc `stats.allocated`.
pub const JEMALLOC_ALLOCATED: MetricDef = MetricDef::new(
    "heapscape_jemalloc_allocated_bytes",
    MetricKind::Gauge,
    Unit::Bytes,
    "Bytes in live allocations.",
);
/// Bytes in active pages. From jemalloc `stats.active`.
pub const JEMALLOC_ACTIVE: MetricDef = MetricDef::new(
    "heapscape_jemalloc_active_bytes",
    MetricKind::Gauge,
    Unit::Bytes,
    "Bytes in active pages (a page multiple; active - allocated is fragmentation).",
);
/// Bytes in resident pages, dirty ones included. From jemalloc `stats.resident`.
pub const JEMALLOC_RESIDENT: MetricDef = MetricDef::new(
    "heapscape_jemalloc_resident_bytes",
    MetricKind::Gauge,
    Unit::Bytes,
    "Bytes in resident pages mapped by jemalloc, dirty pages included (an upper bound).",
);
/// Bytes in active extents. From jemalloc `stats.mapped`.
pub const JEMALLOC_MAPPED: MetricDef = MetricDef::new(
    "heapscape_jemalloc_mapped_bytes",
    MetricKind::Gauge,
    Unit::Bytes,
    "Bytes in active extents mapped by jemalloc.",
);
/// jemalloc's own bookkeeping. From jemalloc `stats.metadata`.
pub const JEMALLOC_METADATA: MetricDef = MetricDef::new(
    "heapscape_jemalloc_metadata_bytes",
    MetricKind::Gauge,
    Unit::Bytes,
    "Bytes of jemalloc's own bookkeeping.",
);
/// Virtual memory kept mapped instead of unmapped. From jemalloc `stats.retained`.
pub const JEMALLOC_RETAINED: MetricDef = MetricDef::new(
    "heapscape_jemalloc_retained_bytes",
    MetricKind::Gauge,
    Unit::Bytes,
    "Bytes of virtual memory jemalloc keeps mapped instead of unmapping (not resident).",
);
/// Small allocation requests. From jemalloc `stats.arenas.4096.small.nrequests`.
pub const JEMALLOC_SMALL_REQUESTS: MetricDef = MetricDef::new(
    "heapscape_jemalloc_small_requests_total",
    MetricKind::Counter,
    Unit::Count,
    "Small allocation requests served by jemalloc, all arenas.",
);
/// Large allocation requests. From jemalloc `stats.arenas.4096.large.nrequests`.
pub const JEMALLOC_LARGE_REQUESTS: MetricDef = MetricDef::new(
    "heapscape_jemalloc_large_requests_total",
    MetricKind::Counter,
    Unit::Count,
    "Large allocation requests served by jemalloc, all arenas.",
);
/// Which allocator serves the heap, from [`Allocator::detect`](crate::Allocator::detect):
/// the `allocator` label is `jemalloc` or `other`.
pub const ALLOCATOR_INFO: MetricDef = MetricDef::new(
    "heapscape_allocator_info",
    MetricKind::Gauge,
    Unit::Count,
    "Always 1; the allocator label says whether jemalloc is the global allocator (jemalloc) or \
     not (other, and the heapscape_jemalloc_* metrics are absent).",
)
.with_labels(&["allocator"]);
/// The process's resident set size. From `/proc/self/statm` (resident pages x page size).
pub const PROCESS_RESIDENT: MetricDef = MetricDef::new(
    "heapscape_process_resident_bytes",
    MetricKind::Gauge,
    Unit::Bytes,
    "Resident set size of the whole process (0 where /proc is missing).",
);
/// Minor page faults. From `getrusage(RUSAGE_SELF).ru_minflt`.
pub const PROCESS_MINOR_FAULTS: MetricDef = MetricDef::new(
    "heapscape_process_minor_page_faults_total",
    MetricKind::Counter,
    Unit::Count,
    "Minor page faults of the process: the CPU cost of memory returned to the OS and touched again.",
);
/// Major page faults. From `getrusage(RUSAGE_SELF).ru_majflt`.
pub const PROCESS_MAJOR_FAULTS: MetricDef = MetricDef::new(
    "heapscape_process_major_page_faults_total",
    MetricKind::Counter,
    Unit::Count,
    "Major page faults of the process (faults that needed I/O).",
);
/// Bytes requested from the global allocator. From `CountingJemalloc`: published only with
/// the `counting` feature, and only when it is the global allocator.
pub const ALLOC_BYTES: MetricDef = MetricDef::new(
    "heapscape_alloc_bytes_total",
    MetricKind::Counter,
    Unit::Bytes,
    "Bytes requested from the global allocator (the allocation rate, like Go's go_memstats_alloc_bytes_total).",
);
/// Allocations served by the global allocator. From `CountingJemalloc`, as [`ALLOC_BYTES`].
pub const ALLOC_ALLOCATIONS: MetricDef = MetricDef::new(
    "heapscape_alloc_allocations_total",
    MetricKind::Counter,
    Unit::Count,
    "Allocations (alloc, alloc_zeroed, realloc) served by the global allocator.",
);
/// Time one tick took, measured with `Instant`; see [`SAMPLE_DURATION_BUCKETS`].
pub const SAMPLE_DURATION: MetricDef = MetricDef::new(
    "heapscape_heartbeat_sample_duration_seconds",
    MetricKind::Histogram,
    Unit::Seconds,
    "Time one heartbeat tick took: epoch advance, reads, publication, pool publication and trim.",
);
/// The system clock at the end of the last successful sample.
pub const LAST_SUCCESS: MetricDef = MetricDef::new(
    "heapscape_heartbeat_last_success_timestamp_seconds",
    MetricKind::Gauge,
    Unit::Seconds,
    "Unix time of the last tick whose sample succeeded.",
);
/// The outcome of the last sample.
pub const UP: MetricDef = MetricDef::new(
    "heapscape_heartbeat_up",
    MetricKind::Gauge,
    Unit::Count,
    "1 when the last sample succeeded, 0 when it failed (with jemalloc not the global allocator, the sample is the process's values alone).",
);
/// The heartbeat's configured interval.
pub const INTERVAL: MetricDef = MetricDef::new(
    "heapscape_heartbeat_interval_seconds",
    MetricKind::Gauge,
    Unit::Seconds,
    "Configured time between heartbeat ticks.",
);

/// jemalloc's dirty decay time. From `arenas.dirty_decay_ms`, see [`crate::decay`].
pub const JEMALLOC_DIRTY_DECAY: MetricDef = MetricDef::new(
    "heapscape_jemalloc_dirty_decay_seconds",
    MetricKind::Gauge,
    Unit::Seconds,
    "Time a freed page stays dirty (resident) before jemalloc purges it; -1 for never.",
);
/// jemalloc's muzzy decay time. From `arenas.muzzy_decay_ms`, see [`crate::decay`].
pub const JEMALLOC_MUZZY_DECAY: MetricDef = MetricDef::new(
    "heapscape_jemalloc_muzzy_decay_seconds",
    MetricKind::Gauge,
    Unit::Seconds,
    "Time a muzzy page waits before jemalloc releases it; -1 for never.",
);
/// Whether jemalloc's background threads purge. From `background_thread`.
pub const JEMALLOC_BACKGROUND_THREAD: MetricDef = MetricDef::new(
    "heapscape_jemalloc_background_thread",
    MetricKind::Gauge,
    Unit::Count,
    "1 when jemalloc's background threads purge freed pages, 0 when purging waits for allocations.",
);

/// Every metric the heartbeat publishes, written once and used both by [`describe_metrics`] and
/// by each tick.
///
/// The `heapscape_alloc_*_total` counters are listed whatever the features: they are part of
/// what the crate publishes (with `counting`), and a catalog that changed with features would
/// make dashboards and README checks depend on how the crate was built.
pub const CATALOG: &[MetricDef] = &[
    JEMALLOC_ALLOCATED,
    JEMALLOC_ACTIVE,
    JEMALLOC_RESIDENT,
    JEMALLOC_MAPPED,
    JEMALLOC_METADATA,
    JEMALLOC_RETAINED,
    JEMALLOC_SMALL_REQUESTS,
    JEMALLOC_LARGE_REQUESTS,
    ALLOCATOR_INFO,
    JEMALLOC_DIRTY_DECAY,
    JEMALLOC_MUZZY_DECAY,
    JEMALLOC_BACKGROUND_THREAD,
    PROCESS_RESIDENT,
    PROCESS_MINOR_FAULTS,
    PROCESS_MAJOR_FAULTS,
    ALLOC_BYTES,
    ALLOC_ALLOCATIONS,
    SAMPLE_DURATION,
    LAST_SUCCESS,
    UP,
    INTERVAL,
];

/// Bucket upper bounds (seconds) suited to [`SAMPLE_DURATION`], for exporters that need
/// explicit buckets (e.g. `set_buckets_for_metric` in metrics-exporter-prometheus): 10 µs to
/// 1 s.
pub const SAMPLE_DURATION_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.1, 1.0,
];

/// Describes (unit and help text) every heartbeat metric and every pool metric.
///
/// Call it once after installing a recorder; recorders that ignore descriptions (StatsD) lose
/// nothing else.
pub fn describe_metrics() {
    heapscape_pool::catalog::describe(CATALOG);
    heapscape_pool::metrics::describe_metrics();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_duration_buckets_are_sorted() {
        assert!(SAMPLE_DURATION_BUCKETS.is_sorted());
    }
}
