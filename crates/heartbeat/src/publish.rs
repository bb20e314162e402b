//! One tick: sample, publish through the [catalog](crate::metrics::CATALOG), drive the pools.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use heapscape_pool::Pool;
use heapscape_pool::catalog::MetricDef;
use heapscape_pool::config::TuneMove;

#[cfg(feature = "counting")]
use crate::metrics::{ALLOC_ALLOCATIONS, ALLOC_BYTES};
use crate::metrics::{
    ALLOCATOR_INFO, INTERVAL, JEMALLOC_ACTIVE, JEMALLOC_ALLOCATED, JEMALLOC_LARGE_REQUESTS,
    JEMALLOC_MAPPED, JEMALLOC_METADATA, JEMALLOC_RESIDENT, JEMALLOC_RETAINED,
    JEMALLOC_SMALL_REQUESTS, LAST_SUCCESS, PROCESS_MAJOR_FAULTS, PROCESS_MINOR_FAULTS,
    PROCESS_RESIDENT, SAMPLE_DURATION, UP,
};
use crate::sync::lock;
use crate::{Allocator, HeapStats, HeartbeatError};

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

/// One heartbeat tick on the calling thread (a blocking context): sample, publish, then
/// auto-tune, publish and trim every pool. Without jemalloc as the global allocator, the sample and its
/// publication are the process's values alone.
pub(crate) fn tick(pools: &[Pool], interval: Duration) -> Result<HeapStats, HeartbeatError> {
    let started = Instant::now();
    let allocator = Allocator::detect();
    ALLOCATOR_INFO.gauge([allocator.as_str().into()]).set(1.0);
    let sample = match allocator {
        Allocator::Jemalloc => HeapStats::sample(),
        Allocator::Other => HeapStats::sample_process(),
    };
    {
        let mut published = lock(&PUBLISHED);
        if let Ok(stats) = &sample {
            publish_heap(stats, &mut published);
            // Re-read every tick: `MALLOC_CONF` or another caller may change them too. Only
            // when jemalloc serves the process: otherwise its settings govern no memory.
            if allocator == Allocator::Jemalloc
                && let Ok(decay) = crate::decay::DecayState::read()
            {
                decay.publish();
            }
        }
        #[cfg(feature = "counting")]
        publish_counting(&mut published);
    }
    match &sample {
        Ok(_) => {
            LAST_SUCCESS.set_now();
            UP.set(1.0);
        }
        Err(_) => UP.set(0.0),
    }
    for pool in pools {
        // Tuned first, so that this tick's publication shows the values now in force.
        log_moves(pool, &pool.auto_tune());
        pool.publish();
        pool.trim();
    }
    INTERVAL.set(interval.as_secs_f64());
    SAMPLE_DURATION.record(started.elapsed().as_secs_f64());
    sample
}

/// One line per pool and tick that moved something, whatever the number of settings moved:
/// the line ops find next to the dashboards' auto-tuning annotation.
fn log_moves(pool: &Pool, moves: &[TuneMove]) {
    if moves.is_empty() {
        return;
    }
    let changes = moves
        .iter()
        .map(|m| format!("{} {} -> {}", m.setting.as_str(), m.from, m.to))
        .collect::<Vec<_>>()
        .join(", ");
    tracing::info!(pool = pool.name(), "pool auto-tuned: {changes}");
}

// Gauges are f64 in the `metrics` facade; byte counts below 2^53 (8 PiB) convert exactly.
#[allow(clippy::cast_precision_loss)]
fn publish_heap(stats: &HeapStats, published: &mut Published) {
    // A gauge at 0 would read as an empty heap; an absent one says there is nothing to read.
    if stats.allocator == Allocator::Jemalloc {
        publish_jemalloc(stats, published);
    }
    PROCESS_RESIDENT.set(stats.process_resident as f64);
    add_delta(
        &PROCESS_MINOR_FAULTS,
        &mut published.minor_page_faults,
        stats.minor_page_faults,
    );
    add_delta(
        &PROCESS_MAJOR_FAULTS,
        &mut published.major_page_faults,
        stats.major_page_faults,
    );
}

#[allow(clippy::cast_precision_loss)] // as in `publish_heap`
fn publish_jemalloc(stats: &HeapStats, published: &mut Published) {
    JEMALLOC_ALLOCATED.set(stats.allocated as f64);
    JEMALLOC_ACTIVE.set(stats.active as f64);
    JEMALLOC_RESIDENT.set(stats.resident as f64);
    JEMALLOC_MAPPED.set(stats.mapped as f64);
    JEMALLOC_METADATA.set(stats.metadata as f64);
    JEMALLOC_RETAINED.set(stats.retained as f64);
    add_delta(
        &JEMALLOC_SMALL_REQUESTS,
        &mut published.small_requests,
        stats.small_requests,
    );
    add_delta(
        &JEMALLOC_LARGE_REQUESTS,
        &mut published.large_requests,
        stats.large_requests,
    );
}

#[cfg(feature = "counting")]
fn publish_counting(published: &mut Published) {
    let totals = crate::CountingJemalloc::totals();
    // Zero allocations means `CountingJemalloc` is not the global allocator: publishing zeros
    // would draw a flat, wrong allocation rate.
    if totals.allocations == 0 {
        return;
    }
    add_delta(&ALLOC_BYTES, &mut published.alloc_bytes, totals.bytes);
    add_delta(
        &ALLOC_ALLOCATIONS,
        &mut published.allocations,
        totals.allocations,
    );
}

/// Publishes the growth of a cumulative value since the last publication.
fn add_delta(counter: &MetricDef, last_published: &mut u64, now: u64) {
    counter.increment(now.saturating_sub(*last_published));
    *last_published = now.max(*last_published);
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    #[test]
    fn counters_publish_growth_only() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let mut last = 0;
        metrics::with_local_recorder(&recorder, || {
            add_delta(&JEMALLOC_SMALL_REQUESTS, &mut last, 100);
            add_delta(&JEMALLOC_SMALL_REQUESTS, &mut last, 130);
            // A value that went backwards publishes nothing and keeps the high-water mark.
            add_delta(&JEMALLOC_SMALL_REQUESTS, &mut last, 120);
            add_delta(&JEMALLOC_SMALL_REQUESTS, &mut last, 131);
        });
        assert_eq!(last, 131);
        let snapshot = snapshotter.snapshot().into_vec();
        assert_eq!(snapshot[0].3, DebugValue::Counter(131));
    }
}
