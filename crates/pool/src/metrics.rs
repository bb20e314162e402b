//! The pool's metrics: one table, used both to describe and to emit them.

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

use crate::Pool;
use crate::stats::DiscardReason;

/// The kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A monotonically increasing total (published by delta).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution with power-of-two buckets.
    Histogram,
}

/// A metric's name, kind, unit and help text.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// Prometheus-style name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Unit as understood by the `metrics` facade.
    pub unit: Unit,
    /// Help text.
    pub help: &'static str,
}

macro_rules! metric_table {
    ($($ident:ident = $name:literal, $kind:ident, $unit:ident, $help:literal;)*) => {
        $(
            #[doc = concat!("`", $name, "`: ", $help)]
            pub const $ident: MetricDef = MetricDef {
                name: $name,
                kind: MetricKind::$kind,
                unit: Unit::$unit,
                help: $help,
            };
        )*
        /// Every metric a pool publishes, each with label `pool="<name>"`.
        pub const METRICS: &[MetricDef] = &[$($ident),*];
    };
}

metric_table! {
    HITS = "heapscape_pool_hits_total", Counter, Count,
        "Buffers handed out from the pool's idle buffers.";
    MISSES = "heapscape_pool_misses_total", Counter, Count,
        "Buffers newly allocated because no idle buffer was available.";
    RETURNS = "heapscape_pool_returns_total", Counter, Count,
        "Buffers returned to the pool (dropped guards, released Bytes, donations).";
    DISCARDS = "heapscape_pool_discards_total", Counter, Count,
        "Buffers released instead of kept, by reason: over_max, idle_buffers_cap, idle_bytes_cap, idle_timeout.";
    SHRINKS = "heapscape_pool_shrinks_total", Counter, Count,
        "Returned buffers over the max buffer size that were shrunk to it and kept.";
    DETACHES = "heapscape_pool_detaches_total", Counter, Count,
        "Buffers taken out of the pool for good.";
    IDLE_BUFFERS = "heapscape_pool_idle_buffers", Gauge, Count,
        "Idle buffers held by the pool.";
    IDLE_BYTES = "heapscape_pool_idle_bytes", Gauge, Bytes,
        "Capacity of the idle buffers held by the pool.";
    MAX_BUFFER_SIZE = "heapscape_pool_max_buffer_size_bytes", Gauge, Bytes,
        "The max buffer size in force: larger returned buffers are shrunk or dropped.";
    MAX_IDLE_BYTES = "heapscape_pool_max_idle_bytes", Gauge, Bytes,
        "The cap on the capacity of idle buffers.";
    RECOMMENDED_MAX = "heapscape_pool_recommended_max_buffer_size_bytes", Gauge, Bytes,
        "Recommended max buffer size: the configured percentile (default p95) of returned lengths, as a power of two.";
    RECOMMENDED_INITIAL = "heapscape_pool_recommended_initial_capacity_bytes", Gauge, Bytes,
        "Recommended initial capacity: the median returned length, as a power of two.";
    RETURNED_LENGTH = "heapscape_pool_returned_length_bytes", Histogram, Bytes,
        "Lengths of returned buffers, in power-of-two buckets.";
    RETURNED_CAPACITY = "heapscape_pool_returned_capacity_bytes", Histogram, Bytes,
        "Capacities of returned buffers (before any shrink), in power-of-two buckets.";
}

/// Names of the pool's histogram metrics (exporters need explicit buckets for them).
pub const HISTOGRAM_METRICS: &[&str] = &[RETURNED_LENGTH.name, RETURNED_CAPACITY.name];

/// Bucket bounds for the pool's histograms: powers of two from 64 B to 1 GiB.
///
/// The pool publishes each of its own power-of-two buckets as its upper bound, so with these
/// bounds an exporter's buckets match the pool's exactly (sizes below 64 B count in the first).
pub fn histogram_buckets() -> Vec<f64> {
    (6..=30).map(|exp| f64::from(1u32 << exp)).collect()
}

/// Describes every pool metric (help text and unit) to the installed recorder. Call once
/// after installing a recorder.
pub fn describe_metrics() {
    for metric in METRICS {
        match metric.kind {
            MetricKind::Counter => describe_counter!(metric.name, metric.unit, metric.help),
            MetricKind::Gauge => describe_gauge!(metric.name, metric.unit, metric.help),
            MetricKind::Histogram => describe_histogram!(metric.name, metric.unit, metric.help),
        }
    }
}

impl Pool {
    /// Publishes the pool's metrics through the `metrics` facade (label `pool="<name>"`):
    /// counters and histograms by their change since the last publish, gauges as they are.
    /// Called by the heartbeat each tick; cheap enough to call every second.
    pub fn publish(&self) {
        let stats = self.stats();
        let mut last = self
            .shared
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pool = self.shared.name.clone();
        let delta = |now: u64, before: u64| now.saturating_sub(before);
        counter!(HITS.name, "pool" => pool.clone()).increment(delta(stats.hits, last.hits));
        counter!(MISSES.name, "pool" => pool.clone()).increment(delta(stats.misses, last.misses));
        counter!(RETURNS.name, "pool" => pool.clone())
            .increment(delta(stats.returns, last.returns));
        counter!(SHRINKS.name, "pool" => pool.clone())
            .increment(delta(stats.shrinks, last.shrinks));
        counter!(DETACHES.name, "pool" => pool.clone())
            .increment(delta(stats.detaches, last.detaches));
        for reason in DiscardReason::ALL {
            let i = reason.index();
            counter!(DISCARDS.name, "pool" => pool.clone(), "reason" => reason.as_str())
                .increment(delta(stats.discards[i], last.discards[i]));
        }
        gauge!(IDLE_BUFFERS.name, "pool" => pool.clone()).set(stats.idle_buffers as f64);
        gauge!(IDLE_BYTES.name, "pool" => pool.clone()).set(stats.idle_bytes as f64);
        gauge!(MAX_BUFFER_SIZE.name, "pool" => pool.clone()).set(stats.max_buffer_size as f64);
        gauge!(MAX_IDLE_BYTES.name, "pool" => pool.clone()).set(stats.max_idle_bytes as f64);
        if let Some(max) = stats.recommended_max_buffer_size() {
            gauge!(RECOMMENDED_MAX.name, "pool" => pool.clone()).set(max as f64);
        }
        if let Some(initial) = stats.recommended_initial_capacity() {
            gauge!(RECOMMENDED_INITIAL.name, "pool" => pool.clone()).set(initial as f64);
        }
        for (def, now, before) in [
            (RETURNED_LENGTH, &stats.lengths, &last.lengths),
            (RETURNED_CAPACITY, &stats.capacities, &last.capacities),
        ] {
            let histogram = histogram!(def.name, "pool" => pool.clone());
            for (bound, count) in now.since(before).buckets() {
                if count > 0 {
                    histogram.record_many(bound as f64, count as usize);
                }
            }
        }
        *last = stats;
    }
}
