//! The pool's metric catalog: every metric a pool publishes, defined once.
//!
//! [`Pool::publish`](crate::Pool::publish) emits them through these definitions and
//! [`describe_metrics`] describes them, so a name, unit or label written here is the one the
//! recorder sees.

use metrics::Unit;

use crate::catalog::{MetricDef, MetricKind};
use crate::histogram::{FINE_BUCKETS_PER_OCTAVE, fine_bucket_bound};

/// The label every pool metric carries: the pool's name.
const POOL: &str = "pool";
/// The label of the candidate gauges: a [`CandidateRole`](crate::stats::CandidateRole).
const CANDIDATE: &str = "candidate";
/// The label of the auto-tuning moves: a [`TunedSetting`](crate::config::TunedSetting).
const SETTING: &str = "setting";

macro_rules! catalog {
    ($($ident:ident = $name:literal, $kind:ident, $unit:ident, [$($label:expr),+], $help:literal;)*) => {
        $(
            #[doc = concat!("`", $name, "`: ", $help)]
            pub const $ident: MetricDef =
                MetricDef::new($name, MetricKind::$kind, Unit::$unit, $help)
                    .with_labels(&[$($label),+]);
        )*
        /// Every metric a pool publishes, each with label `pool="<name>"`.
        pub const CATALOG: &[MetricDef] = &[$($ident),*];
    };
}

catalog! {
    HITS = "heapscape_pool_hits_total", Counter, Count, [POOL],
        "Buffers handed out from the pool's idle buffers.";
    MISSES = "heapscape_pool_misses_total", Counter, Count, [POOL],
        "Buffers newly allocated because no idle buffer was available.";
    RETURNS = "heapscape_pool_returns_total", Counter, Count, [POOL],
        "Buffers returned to the pool (dropped guards, released Bytes, donations).";
    DISCARDS = "heapscape_pool_discards_total", Counter, Count, [POOL, "reason"],
        "Buffers released instead of kept, by reason (a DiscardReason, e.g. over_max, idle_bytes_cap, idle_timeout or spare).";
    SHRINKS = "heapscape_pool_shrinks_total", Counter, Count, [POOL],
        "Returned buffers over the max buffer size that were shrunk to it and kept.";
    REGROWS = "heapscape_pool_regrows_total", Counter, Count, [POOL],
        "Returned buffers whose capacity grew while on loan: each reallocated and copied its contents at least once.";
    DETACHES = "heapscape_pool_detaches_total", Counter, Count, [POOL],
        "Buffers taken out of the pool for good.";
    IDLE_BUFFERS = "heapscape_pool_idle_buffers", Gauge, Count, [POOL],
        "Idle buffers held by the pool.";
    IDLE_BYTES = "heapscape_pool_idle_bytes", Gauge, Bytes, [POOL],
        "Capacity of the idle buffers held by the pool.";
    INITIAL_CAPACITY = "heapscape_pool_initial_capacity_bytes", Gauge, Bytes, [POOL],
        "The initial capacity in force: the capacity of a buffer allocated on a miss.";
    MAX_BUFFER_SIZE = "heapscape_pool_max_buffer_size_bytes", Gauge, Bytes, [POOL],
        "The max buffer size in force: larger returned buffers are shrunk or dropped.";
    MAX_IDLE_BYTES = "heapscape_pool_max_idle_bytes", Gauge, Bytes, [POOL],
        "The cap on the capacity of idle buffers.";
    MAX_IDLE_BUFFERS = "heapscape_pool_max_idle_buffers", Gauge, Count, [POOL],
        "The cap on the number of idle buffers.";
    IN_USE = "heapscape_pool_in_use_buffers", Gauge, Count, [POOL],
        "Buffers in use: gets and donations minus returns and detaches.";
    PEAK_HELD = "heapscape_pool_peak_held_buffers", Gauge, Count, [POOL],
        "The most buffers held at once (in use or idle) over the recommendation window, sampled at each publish: it rises to the peak of concurrent use, since a buffer is created only when none is idle.";
    PEAK_IDLE_BYTES = "heapscape_pool_peak_idle_bytes", Gauge, Bytes, [POOL],
        "The most idle bytes held at once over the recommendation window, sampled at each publish: the idle memory observed.";
    RECOMMENDATION_WINDOW = "heapscape_pool_recommendation_window_seconds", Gauge, Seconds, [POOL],
        "The window of traffic the recommendations and candidates cover.";
    RECOMMENDATION_RETURNS = "heapscape_pool_recommendation_returns", Gauge, Count, [POOL],
        "Returns within the recommendation window, empty ones left out: what the recommendations rest on.";
    RECOMMENDATION_MIN_RETURNS = "heapscape_pool_recommendation_min_returns", Gauge, Count, [POOL],
        "The fewest returns within the window a recommendation rests on (recommendation_min_returns; default max(200, 20 / (1 - percentile))): below it the recommendation and candidate gauges read NaN.";
    RECOMMENDED_MAX = "heapscape_pool_recommended_max_buffer_size_bytes", Gauge, Bytes, [POOL],
        "Recommended max buffer size: the configured percentile (default p95) of the lengths returned within the recommendation window, rounded up to a fine bucket (4 per octave).";
    RECOMMENDED_INITIAL = "heapscape_pool_recommended_initial_capacity_bytes", Gauge, Bytes, [POOL],
        "Recommended initial capacity: the median length returned within the recommendation window, rounded up to a fine bucket.";
    RECOMMENDED_MAX_IDLE_BUFFERS = "heapscape_pool_recommended_max_idle_buffers", Gauge, Count, [POOL],
        "Recommended max idle buffers: the peak of buffers held over the recommendation window plus an eighth.";
    RECOMMENDED_MAX_IDLE_BYTES = "heapscape_pool_recommended_max_idle_bytes", Gauge, Bytes, [POOL],
        "Recommended max idle bytes: the recommended max idle buffers times the recommended max buffer size.";
    CANDIDATE_MAX = "heapscape_pool_candidate_max_buffer_size_bytes", Gauge, Bytes, [POOL, CANDIDATE],
        "A candidate max buffer size: the one in force (candidate=current), the recommended one (recommended) and its fine-bucket neighbours (lower, higher).";
    CANDIDATE_OVER_MAX = "heapscape_pool_candidate_over_max_ratio", Gauge, Count, [POOL, CANDIDATE],
        "The share (0..1) of returns within the recommendation window longer than the candidate max: each would regrow its buffer.";
    CANDIDATE_REGROW_BYTES = "heapscape_pool_candidate_regrow_bytes_per_second", Gauge, Bytes, [POOL, CANDIDATE],
        "Bytes per second the returns over the candidate max would copy regrowing by doubling from it (shrink policy) or from the initial capacity (drop policy), over the recommendation window.";
    CANDIDATE_IDLE_BOUND = "heapscape_pool_candidate_idle_bound_bytes", Gauge, Bytes, [POOL, CANDIDATE],
        "The most idle memory the candidate max allows: min(max idle buffers, peak held) times the candidate, capped by max idle bytes. A bound: the observed peak is heapscape_pool_peak_idle_bytes.";
    AUTO_TUNE_ENABLED = "heapscape_pool_auto_tune_enabled", Gauge, Count, [POOL],
        "1 while the pool follows its own recommendations (auto_tune.enabled), else 0.";
    AUTO_TUNE_MOVES = "heapscape_pool_auto_tune_moves_total", Counter, Count, [POOL, SETTING],
        "Changes auto-tuning made to a setting (max_buffer_size, initial_capacity, max_idle_buffers, max_idle_bytes).";
    AUTO_TUNE_TARGET_MAX = "heapscape_pool_auto_tune_target_max_buffer_size_bytes", Gauge, Bytes, [POOL],
        "Where auto-tuning takes the max buffer size: the recommendation within the bounds; applied once it held outside the hysteresis band for the cooldown. The value in force while off.";
    AUTO_TUNE_TARGET_INITIAL = "heapscape_pool_auto_tune_target_initial_capacity_bytes", Gauge, Bytes, [POOL],
        "Where auto-tuning takes the initial capacity: the recommended median, at most the max buffer size. The value in force while off.";
    AUTO_TUNE_TARGET_MAX_IDLE_BUFFERS = "heapscape_pool_auto_tune_target_max_idle_buffers", Gauge, Count, [POOL],
        "Where auto-tuning takes max idle buffers: the recommendation, at most the configured value. The value in force while off.";
    AUTO_TUNE_TARGET_MAX_IDLE_BYTES = "heapscape_pool_auto_tune_target_max_idle_bytes", Gauge, Bytes, [POOL],
        "Where auto-tuning takes max idle bytes: target idle buffers times the max buffer size, at most the configured value. The value in force while off.";
    AUTO_TUNE_LOWEST_MAX = "heapscape_pool_auto_tune_lowest_max_buffer_size_bytes", Gauge, Bytes, [POOL],
        "The lowest max buffer size auto-tuning may set (auto_tune.lowest_max_buffer_size).";
    AUTO_TUNE_HIGHEST_MAX = "heapscape_pool_auto_tune_highest_max_buffer_size_bytes", Gauge, Bytes, [POOL],
        "The highest max buffer size auto-tuning may set: auto_tune.highest_max_buffer_size, or max_idle_bytes when lower.";
    RETURNED_LENGTH = "heapscape_pool_returned_length_bytes", Histogram, Bytes, [POOL],
        "Lengths of returned buffers, empty ones left out, in the pool's fine buckets (4 per octave, 64 B to 1 GiB).";
    RETURNED_CAPACITY = "heapscape_pool_returned_capacity_bytes", Histogram, Bytes, [POOL],
        "Capacities of returned buffers (before any shrink), in power-of-two buckets.";
}

/// The fine bucket of 64 bytes, the first exported: smaller lengths say nothing about a max.
const FIRST_EXPORTED_FINE_BUCKET: usize = 6 * FINE_BUCKETS_PER_OCTAVE + FINE_BUCKETS_PER_OCTAVE - 1;

/// Bucket bounds of `heapscape_pool_returned_length_bytes`: the pool's own fine buckets
/// (four per octave, see [`FineSizeHistogram`](crate::stats::FineSizeHistogram)) from 64 B to 1 GiB.
///
/// The recommendation is read at this resolution wherever it is computed: by the pool from its
/// window, and fleet-wide from the `_bucket` series summed across instances (a recording rule,
/// `heapscape recommend`). With the same bounds, both see the same buckets, so they agree
/// wherever they see the same returns. Classic `le` buckets rather than native histograms,
/// because they work on every path the kit supports (statsd_exporter, any Prometheus-compatible
/// store, `promtool` backfills, exporters without native histograms); the cost is 97 bounds
/// (98 `_bucket` series with `+Inf`) per pool and instance, where powers of two took 25.
pub const LENGTH_BUCKETS: [f64; 97] = {
    let mut bounds = [0.0; 97];
    let mut i = 0;
    while i < bounds.len() {
        bounds[i] = fine_bucket_bound(FIRST_EXPORTED_FINE_BUCKET + i) as f64;
        i += 1;
    }
    bounds
};

/// Bucket bounds of `heapscape_pool_returned_capacity_bytes`: powers of two from 64 B to
/// 1 GiB, the steps a growing `Vec` takes.
pub const CAPACITY_BUCKETS: [f64; 25] = {
    let mut bounds = [0.0; 25];
    let mut i = 0;
    while i < bounds.len() {
        bounds[i] = (1u64 << (6 + i)) as f64;
        i += 1;
    }
    bounds
};

/// The pool's histogram metrics and their bucket bounds: an exporter needs them explicitly,
/// or the histograms render as summaries (`set_buckets_for_metric` in
/// metrics-exporter-prometheus, `histogram_options.buckets` in a statsd_exporter mapping).
///
/// The pool publishes each of its buckets as its upper bound, so with these bounds an
/// exporter's buckets match the pool's exactly.
pub const HISTOGRAM_METRICS: &[(&str, &[f64])] = &[
    (RETURNED_LENGTH.name, &LENGTH_BUCKETS),
    (RETURNED_CAPACITY.name, &CAPACITY_BUCKETS),
];

/// Describes every pool metric (help text and unit) to the installed recorder. Call once
/// after installing a recorder.
pub fn describe_metrics() {
    crate::catalog::describe(CATALOG);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate docs' metric table (`# Metrics` in lib.rs) lists every metric of [`CATALOG`]
    /// once, with its kind, unit and labels other than `pool`, and nothing else.
    #[test]
    fn the_crate_docs_list_every_metric_with_its_kind_unit_and_labels() {
        let rows: Vec<(&str, Vec<&str>, &str, &str)> = include_str!("lib.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//! | `"))
            .map(|row| {
                let cells: Vec<&str> = row.split(" | ").collect();
                let (series, _) = cells[0].split_once('`').expect("a name in backticks");
                let (name, labels) = match series.split_once('{') {
                    Some((name, labels)) => {
                        (name, labels.trim_end_matches('}').split(',').collect())
                    }
                    None => (series, Vec::new()),
                };
                (name, labels, cells[1], cells[2])
            })
            .collect();
        assert_eq!(
            rows.len(),
            CATALOG.len(),
            "one row per metric: {:?}",
            rows.iter().map(|row| row.0).collect::<Vec<_>>()
        );
        for def in CATALOG {
            let (_, labels, kind, unit) = rows
                .iter()
                .find(|row| row.0 == def.name)
                .unwrap_or_else(|| panic!("the crate docs' metric table has no {}", def.name));
            assert_eq!(*kind, def.kind.as_str(), "{}", def.name);
            assert_eq!(*unit, def.unit.as_str(), "{}", def.name);
            let own: Vec<&str> = def.labels.iter().copied().filter(|l| *l != POOL).collect();
            assert_eq!(*labels, own, "{}: labels besides pool", def.name);
        }
    }
}
