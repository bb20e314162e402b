//! What `compare` measured: per-mode summaries, the tuned settings and the size distribution
//! behind them, the settings auto-tuning reached, plain data written to the JSON summary and
//! read by the report.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::stats;

/// One number summarized over time: mean, max and population standard deviation.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct OverTime {
    /// Mean of the samples.
    pub mean: f64,
    /// Largest sample.
    pub max: f64,
    /// Population standard deviation.
    pub std_dev: f64,
}

impl OverTime {
    /// `None` without samples.
    pub(super) fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        Some(Self {
            mean,
            max: values.iter().copied().fold(f64::MIN, f64::max),
            std_dev: variance.sqrt(),
        })
    }
}

/// One number across the slices of a mode: how much a busy machine moved it.
#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    /// The value of each slice, by round (`None` where the slice measured none): the verdicts
    /// pair the modes' slices of a round.
    pub per_slice: Vec<Option<f64>>,
    /// Smallest slice value.
    pub min: f64,
    /// Median slice value (the mean of the middle two for an even count).
    pub median: f64,
    /// Largest slice value.
    pub max: f64,
}

impl Spread {
    /// `None` without a finite value.
    pub(super) fn of(per_slice: Vec<Option<f64>>) -> Option<Self> {
        let values: Vec<f64> = per_slice.iter().flatten().copied().collect();
        let median = stats::median(&values)?;
        Some(Self {
            min: stats::quantile(&values, 0.0)?,
            median,
            max: stats::quantile(&values, 1.0)?,
            per_slice,
        })
    }
}

/// A point of a mode's timeline.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    /// When the heartbeat published it, seconds since the interleaved slices started (all
    /// modes on one clock).
    pub t: f64,
    /// The slice (round) the point belongs to.
    pub slice: usize,
    /// `heapscape_jemalloc_allocated_bytes`.
    pub allocated: f64,
    /// `heapscape_jemalloc_active_bytes`.
    pub active: f64,
    /// `heapscape_jemalloc_resident_bytes`.
    pub resident: f64,
    /// Bytes allocated per second (counting allocator) since the slice's publication before
    /// this one.
    pub alloc_rate: f64,
}

/// What one mode measured, over all its slices.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModeSummary {
    /// `"unpooled"`, `"pooled"` (the default pool), `"pooled+decay"` (the default pool, tuned
    /// jemalloc decay), `"tuned"` (the recommended settings, tuned decay) or `"auto"` (the
    /// default pool, tuning itself).
    pub mode: &'static str,
    /// What the mode runs, in a few words (`"defaults"`, `"recommended"`, ...).
    pub label: &'static str,
    /// The mode the report sets it against (its relative changes), by name.
    pub baseline: Option<&'static str>,
    /// `"off"` or `"on"`: the service's `--pooling`.
    pub pooling: &'static str,
    /// Seconds of load, all slices.
    pub load_seconds: f64,
    /// Successful requests.
    pub requests: u64,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
    /// Successful requests per second.
    pub requests_per_second: f64,
    /// Latency quantiles of successful requests, milliseconds.
    pub latency_ms: BTreeMap<&'static str, f64>,
    /// Bytes allocated per second (`heapscape_alloc_bytes_total`) over the slices' own time
    /// (between publications of the same slice), if the counting allocator ran.
    pub alloc_bytes_per_second: Option<f64>,
    /// Allocations per second (`heapscape_alloc_allocations_total`).
    pub allocations_per_second: Option<f64>,
    /// Bytes allocated per successful request.
    pub alloc_bytes_per_request: Option<f64>,
    /// Allocations per successful request.
    pub allocations_per_request: Option<f64>,
    /// jemalloc `stats.allocated` over the slices' samples.
    pub allocated: Option<OverTime>,
    /// jemalloc `stats.active` over the slices' samples.
    pub active: Option<OverTime>,
    /// jemalloc `stats.resident` over the slices' samples.
    pub resident: Option<OverTime>,
    /// jemalloc `stats.resident` minus `stats.active` over the slices' samples: pages freed
    /// but not yet purged (dirty, muzzy) and allocator metadata.
    pub resident_minus_active: Option<OverTime>,
    /// Minor page faults per successful request.
    pub minor_faults_per_request: Option<f64>,
    /// Returned buffers shrunk to the max per successful request (pooled modes): each was
    /// grown past the max by its request and leaves a freed tail for jemalloc to purge.
    pub shrinks_per_request: Option<f64>,
    /// Returned buffers that grew while on loan per successful request (pooled modes): each
    /// reallocated and copied at least once. The allocation a pool is there to avoid, left
    /// where requests outgrow their buffer (the max, or a new buffer's initial capacity).
    pub regrows_per_request: Option<f64>,
    /// Share of the returns over the max buffer size, shrunk or dropped (pooled modes).
    pub over_max_ratio: Option<f64>,
    /// `heapscape_pool_idle_bytes` over the slices' samples (pooled modes).
    pub idle_bytes: Option<OverTime>,
    /// The max buffer size in force through every slice (pooled modes); `None` when it
    /// changed (auto-tuning) or was not published.
    pub max_buffer_size: Option<f64>,
    /// Pool hits / gets during the load (pooled modes).
    pub pool_hit_ratio: Option<f64>,
    /// Pool discards during the load, by reason.
    pub discards: BTreeMap<String, f64>,
    /// The pool's recommended max buffer size at the end (pooled modes; none while its window
    /// holds fewer returns than a recommendation rests on).
    pub recommended_max_buffer_size: Option<f64>,
    /// Per-slice values, summarized across the slices: metric name to spread.
    pub slices: BTreeMap<&'static str, Spread>,
    /// Heap and allocation rate at each heartbeat publication of its slices (the first of
    /// each slice left out).
    pub timeline: Vec<Point>,
}

/// A mode's median per slice of a verdict's metric.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ModeMedian {
    /// The mode's name.
    pub mode: &'static str,
    /// The median of its per-slice values; `None` where no slice measured the metric.
    pub median: Option<f64>,
}

/// Where a verdict's interval lies against its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The whole interval is on the target's side.
    Met,
    /// The whole interval is on the wrong side.
    NotMet,
    /// The interval straddles the target, or too few rounds measured the figure.
    Inconclusive,
}

impl State {
    /// `"met"`, `"NOT met"` or `"inconclusive"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::NotMet => "NOT met",
            Self::Inconclusive => "inconclusive",
        }
    }
}

/// Which side of its target a verdict's figure must be on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// At least the value.
    AtLeast(f64),
    /// At most the value.
    AtMost(f64),
}

/// A target of a default run, judged on per-slice figures.
///
/// Each round of slices gives the figure once (from that round's slice of each mode
/// involved); the verdict reads the median of those figures and a bootstrap interval of it
/// (see `compare::stats`).
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Short name: `"allocation rate"`, ...
    pub name: &'static str,
    /// The per-slice metric the figure is computed from (a key of [`ModeSummary::slices`]).
    pub metric: &'static str,
    /// The figure, in words: `"(unpooled - tuned) / (unpooled - pooled)"`, ...
    pub figure: &'static str,
    /// What the figure must reach.
    pub goal: Goal,
    /// Each mode involved, in the order of `figure`, with the median of its per-slice values
    /// of `metric`.
    pub medians: Vec<ModeMedian>,
    /// Rounds where every mode involved measured the metric.
    pub rounds: usize,
    /// Median of the per-round figures.
    pub median: Option<f64>,
    /// Confidence interval of that median, `[low, high]`.
    pub interval: Option<[f64; 2]>,
    /// Two-sided confidence of `interval`.
    pub confidence: f64,
    /// Met, not met or inconclusive.
    pub state: State,
}

/// The settings the tuned mode ran with, and where each came from.
#[derive(Debug, Clone, Serialize)]
pub struct Tuned {
    /// What the pooled service recommended after the warm-up (bytes or counts); the idle caps
    /// only when it publishes recommendations for them.
    pub recommendation: BTreeMap<&'static str, f64>,
    /// The pooled service's (default) pool settings.
    pub defaults: BTreeMap<&'static str, f64>,
    /// The pool settings written to the tuned service's config file.
    pub pool: BTreeMap<&'static str, f64>,
    /// jemalloc decay settings written with them: milliseconds, and background threads 0/1.
    pub jemalloc: BTreeMap<&'static str, f64>,
    /// `heapscape_pool_max_buffer_size_bytes` the tuned service published after the reload.
    pub applied_max_buffer_size: f64,
    /// The config file, as ops would edit it.
    pub config_file: PathBuf,
    /// How the file reached the service.
    pub applied_by: &'static str,
}

/// The settings the auto mode reached: a pooled service started from the pooled defaults with
/// `auto_tune` on, tuning itself on its heartbeat ticks during the warm-up. Keys are the tuned
/// settings' config keys (`max_buffer_size`, `initial_capacity`, `max_idle_buffers`,
/// `max_idle_bytes`); values bytes or counts.
#[derive(Debug, Clone, Serialize)]
pub struct Auto {
    /// The auto service's config file.
    pub config_file: PathBuf,
    /// The `auto_tune` settings written there: `cooldown_seconds`, `hysteresis` (the smallest
    /// move, as a fraction of the value in force) and the pool's
    /// `recommendation_window_seconds`.
    pub tuning: BTreeMap<&'static str, f64>,
    /// Per setting, `[lowest, highest]` auto-tuning may set: the max buffer size within the
    /// `auto_tune` bounds (and never above `max_idle_bytes`), the initial capacity never above
    /// that max, the idle caps never above the configured values.
    pub bounds: BTreeMap<&'static str, [f64; 2]>,
    /// The settings it started with: the pooled defaults.
    pub start: BTreeMap<&'static str, f64>,
    /// The settings in force after the warm-up (`heapscape_pool_*` gauges), once no target
    /// waited out a cooldown any more or the wait for that ran out.
    pub after_warmup: BTreeMap<&'static str, f64>,
    /// Moves per setting by then (`heapscape_pool_auto_tune_moves_total`).
    pub moves_after_warmup: BTreeMap<&'static str, f64>,
    /// Whether any setting had moved off its start by then.
    pub moved: bool,
    /// Whether every target then lay within the band of the value in force: false when a
    /// move was still waiting out its cooldown as the wait ran out.
    pub settled: bool,
    /// Auto's setting after the warm-up divided by tuned's: auto takes the target that held
    /// through its cooldown and ignores moves within the band, so 1 is not expected exactly.
    pub vs_tuned: BTreeMap<&'static str, f64>,
    /// The settings in force after the last slice (it kept tuning during the slices).
    pub at_end: BTreeMap<&'static str, f64>,
    /// Moves per setting after the last slice.
    pub moves_at_end: BTreeMap<&'static str, f64>,
}

/// One of the pool's own candidate max buffer sizes: the pooled service's
/// `heapscape_pool_candidate_*` gauges after the warm-up, costed by the pool over its window
/// (its regrowth model: doubling from the max), with what the modes that ran it measured.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// The gauges' `candidate` label: `current` (the default in force), `lower`,
    /// `recommended` or `higher` (one fine bucket either side of the recommendation).
    pub role: &'static str,
    /// The candidate max, bytes.
    pub max_buffer_size: f64,
    /// Share of the window's returns longer than it: each one regrows its buffer.
    pub over_max_ratio: f64,
    /// Bytes per second those regrows copy, by the pool's model.
    pub regrow_bytes_per_second: f64,
    /// The most idle memory it allows: `min(max_idle_buffers, peak_held) * max`, capped by
    /// `max_idle_bytes`.
    pub idle_bytes_bound: f64,
    /// Whether it is the max the tuned service ran.
    pub applied: bool,
    /// The modes whose max in force through every slice it was, and what they measured.
    pub ran: Vec<CandidateRun>,
}

/// What a mode running a candidate max measured over its slices.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CandidateRun {
    /// The mode's name.
    pub mode: &'static str,
    /// Share of its returns over the max ([`ModeSummary::over_max_ratio`]): the pool's
    /// estimate, measured.
    pub over_max_ratio: Option<f64>,
    /// Most idle bytes it held in a sample: the measured side of the idle bound.
    pub idle_bytes_max: Option<f64>,
}

/// The distribution of returned lengths behind the recommendation.
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    /// `(upper bound, returns in the bucket)`, bounds ascending.
    pub buckets: Vec<(f64, f64)>,
    /// Estimated percentiles of the returned lengths (`p50`, `p95`, `p99`), bytes: the bound of
    /// the (fine) bucket where the share is reached.
    pub percentiles: BTreeMap<&'static str, f64>,
}

/// The result of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Requests in flight during each load.
    pub concurrency: u32,
    /// Seed of the requests.
    pub seed: u64,
    /// Seconds of warm-up load per mode before the slices (not measured).
    pub warmup_seconds: f64,
    /// Slices (rounds) per mode.
    pub slices: usize,
    /// Seconds of load per slice.
    pub slice_seconds: f64,
    /// The modes in the order of their children: unpooled, pooled with the defaults,
    /// pooled+decay, tuned, auto.
    pub modes: Vec<ModeSummary>,
    /// The targets of a default run, judged on the slices.
    pub verdicts: Vec<Verdict>,
    /// The tuned mode's settings.
    pub tuned: Tuned,
    /// The settings the auto mode reached.
    pub auto: Auto,
    /// Returned lengths of the pooled service at the end of the warm-up.
    pub sizes: Option<Sizes>,
    /// The pooled service's candidate max buffer sizes after the warm-up, in the pool's order
    /// (current, lower, recommended, higher); empty when it published none.
    pub candidates: Vec<Candidate>,
    /// The HTML report.
    pub report: PathBuf,
    /// The JSON summary.
    pub json: PathBuf,
    /// With the `profiling` feature: each mode's heap flame graph (in the order of `modes`),
    /// an SVG beside the report; empty without it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub heap_profiles: Vec<PathBuf>,
}

impl Comparison {
    /// The mode named `name`.
    pub fn mode(&self, name: &str) -> Option<&ModeSummary> {
        self.modes.iter().find(|mode| mode.mode == name)
    }

    /// Failed requests over all modes.
    pub fn failed_requests(&self) -> u64 {
        self.modes
            .iter()
            .flat_map(|mode| mode.errors.values())
            .sum()
    }
}
