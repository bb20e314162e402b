//! From what was gathered to what ops apply: the pool's own rule ([`PoolStats`]) run on the
//! fleet's data, with the cost of each candidate and how sure the answer is.

use std::time::Duration;

use heapscape_pool::PoolStats;
use heapscape_pool::config::{OverMaxPolicy, default_min_returns};
use heapscape_pool::stats::CandidateRole;
use serde::Serialize;

use crate::fleet::{PoolData, Settings};
use crate::since_change::{SinceChange, since_change};

/// Above this share of the returns, one instance decides the answer.
const ONE_INSTANCE_SHARE: f64 = 0.5;

/// A recommendation for one service's pool, as printed and written.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    /// The service: its `service` label, or its `job` where its series have none. On the
    /// StatsD path every service is scraped as statsd_exporter's job and the label is the
    /// only name it has; on the Prometheus path the label is the agent's `service` setting
    /// where the config has one.
    pub service: String,
    /// The Prometheus job its series were scraped as (what `--selector 'job="..."'` matches);
    /// `None` for `--metrics`, which reads a page, not a job.
    pub job: Option<String>,
    /// The pool.
    pub pool: String,
    /// The settings in force (the largest across instances).
    pub current: Settings,
    /// The recommended settings, per instance; `None` without enough data.
    pub recommended: Option<Settings>,
    /// The current max, the recommended one and its neighbours, each with its cost.
    pub candidates: Vec<CandidateCost>,
    /// Reallocations a new buffer of the recommended initial capacity takes on average before
    /// it fits its request.
    pub initial_capacity_regrows_per_request: Option<f64>,
    /// How sure the answer is, and on what it rests.
    pub confidence: Confidence,
    /// After the last change of the max within the window: what the rule predicted for the
    /// new max, against what followed; `None` when it did not change.
    pub since_change: Option<SinceChange>,
}

/// What one candidate max buffer size costs.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateCost {
    /// `current`, `lower`, `recommended` or `higher`.
    pub role: &'static str,
    /// The candidate, bytes.
    pub max_buffer_size: u64,
    /// Share (0..1) of the window's returns longer than it: each regrows its buffer.
    pub share_over_max: f64,
    /// Reallocations per second those regrowths take, whole fleet.
    pub regrows_per_second: f64,
    /// Bytes per second those regrowths copy (doubling from the max), whole fleet.
    pub regrow_bytes_per_second: f64,
    /// The most idle memory one instance may hold with it (a bound, not a measurement).
    pub idle_bytes_bound_per_instance: u64,
    /// That bound times the instances: the fleet's memory at most.
    pub idle_bytes_bound_fleet: u64,
}

/// How sure a recommendation is.
#[derive(Debug, Clone, Serialize)]
pub struct Confidence {
    /// `ok`, `low` (enough returns, but see `notes`) or `not enough data`.
    pub level: &'static str,
    /// Returns within the window (empty ones left out), whole fleet.
    pub returns: u64,
    /// The fewest returns a recommendation rests on.
    pub min_returns: u64,
    /// Instances that returned buffers within the window.
    pub instances: u64,
    /// How much of the window the data covers, seconds.
    pub history_seconds: f64,
    /// The window asked for, seconds.
    pub window_seconds: f64,
    /// The instance with the most returns and its share (0..1).
    pub top_instance: Option<(String, f64)>,
    /// The most idle bytes one instance was seen holding within the window (a measurement).
    pub observed_peak_idle_bytes_per_instance: u64,
    /// Returns shrunk to the max in force per second, whole fleet (a measurement: each regrows
    /// on its next long request; compare with the current candidate's regrowth).
    pub observed_shrinks_per_second: f64,
    /// What lowers the confidence or needs a look.
    pub notes: Vec<String>,
}

impl Recommendation {
    /// Whether there is a recommendation to apply.
    pub fn is_confident(&self) -> bool {
        self.recommended.is_some()
    }
}

/// The recommendation for `data` at `percentile`, by the pool's rule.
pub(crate) fn recommend(data: &PoolData, percentile: f64) -> Recommendation {
    let mut stats = PoolStats::default();
    stats.recent_lengths = data.lengths;
    stats.recommend_percentile = percentile;
    stats.recommendation_min_returns = data
        .min_returns
        .unwrap_or_else(|| default_min_returns(percentile));
    stats.max_buffer_size = data.current.max_buffer_size;
    stats.initial_capacity = data.current.initial_capacity;
    stats.max_idle_buffers = data.current.max_idle_buffers;
    stats.max_idle_bytes = data.current.max_idle_bytes;
    stats.peak_held = data.peak_held;
    stats.peak_idle_bytes = data.peak_idle_bytes;
    stats.recent_idle_cap_discards = data.idle_cap_discards;
    // The span the counts cover: rates divide by it.
    stats.recent_span = data.span.max(Duration::from_secs(1));
    // The policy is not published; shrink is the default and the common case.
    stats.over_max = OverMaxPolicy::Shrink;

    let recommended = match (
        stats.recommended_max_buffer_size(),
        stats.recommended_initial_capacity(),
        stats.recommended_max_idle_buffers(),
        stats.recommended_max_idle_bytes(),
    ) {
        (Some(max), Some(initial), Some(buffers), Some(bytes)) => Some(Settings {
            max_buffer_size: max,
            initial_capacity: initial,
            max_idle_buffers: buffers,
            max_idle_bytes: bytes,
        }),
        _ => None,
    };
    let instances = data.instances.max(1);
    let candidates = stats
        .candidates()
        .map(|all| {
            CandidateRole::ALL
                .into_iter()
                .zip(all)
                .map(|(role, c)| CandidateCost {
                    role: role.as_str(),
                    max_buffer_size: c.max_buffer_size,
                    share_over_max: c.over_max_ratio,
                    regrows_per_second: c.regrows_per_second,
                    regrow_bytes_per_second: c.regrow_bytes_per_second,
                    idle_bytes_bound_per_instance: c.idle_bytes_bound,
                    idle_bytes_bound_fleet: c.idle_bytes_bound.saturating_mul(instances),
                })
                .collect()
        })
        .unwrap_or_default();

    let mut notes = Vec::new();
    let level = if recommended.is_none() {
        notes.push(format!(
            "not enough data (n={} returns in the window, {} needed)",
            stats.recent_returns(),
            stats.recommendation_min_returns
        ));
        "not enough data"
    } else {
        if data.span + Duration::from_secs(60) < data.window {
            notes.push(format!(
                "the history covers {} of the {} window",
                humantime::format_duration(Duration::from_secs(data.span.as_secs())),
                humantime::format_duration(data.window)
            ));
        }
        if let Some((instance, share)) = &data.top_instance
            && data.instances > 1
            && *share > ONE_INSTANCE_SHARE
        {
            notes.push(format!(
                "driven by one instance: {instance} made {:.0} % of the returns",
                share * 100.0
            ));
        }
        if data.instances == 1 {
            notes.push("one instance: no fleet to compare with".to_owned());
        }
        if notes.is_empty() { "ok" } else { "low" }
    };
    if data.lengths_recorded {
        notes.push(format!(
            "lengths read from the recording rule {}",
            crate::prometheus::RECORDED_BUCKETS
        ));
    }
    if data.settings_differ {
        notes.push("instances run different settings: `current` shows the largest".to_owned());
    }
    let key = &data.key;
    Recommendation {
        service: if key.service.is_empty() {
            key.job.clone()
        } else {
            key.service.clone()
        },
        job: Some(key.job.clone()),
        pool: key.pool.clone(),
        current: data.current,
        initial_capacity_regrows_per_request: recommended
            .map(|settings| stats.regrowth_from(settings.initial_capacity).0),
        recommended,
        candidates,
        confidence: Confidence {
            level,
            returns: stats.recent_returns(),
            min_returns: stats.recommendation_min_returns,
            instances: data.instances,
            history_seconds: data.span.as_secs_f64(),
            window_seconds: data.window.as_secs_f64(),
            top_instance: data.top_instance.clone(),
            observed_peak_idle_bytes_per_instance: data.peak_idle_bytes,
            observed_shrinks_per_second: data.shrinks_per_second,
            notes,
        },
        since_change: since_change(data, stats.recommendation_min_returns),
    }
}
