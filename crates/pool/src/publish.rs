//! A pool's publication through the `metrics` facade, by the definitions of its
//! [catalog](crate::metrics::CATALOG).

use std::sync::Arc;

use metrics::SharedString;

use crate::Pool;
use crate::catalog::MetricDef;
use crate::config::TunedSetting;
use crate::metrics::{
    AUTO_TUNE_ENABLED, AUTO_TUNE_HIGHEST_MAX, AUTO_TUNE_LOWEST_MAX, AUTO_TUNE_MOVES,
    AUTO_TUNE_TARGET_INITIAL, AUTO_TUNE_TARGET_MAX, AUTO_TUNE_TARGET_MAX_IDLE_BUFFERS,
    AUTO_TUNE_TARGET_MAX_IDLE_BYTES, CANDIDATE_IDLE_BOUND, CANDIDATE_MAX, CANDIDATE_OVER_MAX,
    CANDIDATE_REGROW_BYTES, DETACHES, DISCARDS, HITS, IDLE_BUFFERS, IDLE_BYTES, IN_USE,
    INITIAL_CAPACITY, MAX_BUFFER_SIZE, MAX_IDLE_BUFFERS, MAX_IDLE_BYTES, MISSES, PEAK_HELD,
    PEAK_IDLE_BYTES, RECOMMENDATION_MIN_RETURNS, RECOMMENDATION_RETURNS, RECOMMENDATION_WINDOW,
    RECOMMENDED_INITIAL, RECOMMENDED_MAX, RECOMMENDED_MAX_IDLE_BUFFERS, RECOMMENDED_MAX_IDLE_BYTES,
    REGROWS, RETURNED_CAPACITY, RETURNED_LENGTH, RETURNS, SHRINKS,
};
use crate::stats::{Candidate, CandidateRole};
use crate::sync::lock;

impl Pool {
    /// Publishes the pool's metrics through the `metrics` facade (label `pool="<name>"`):
    /// counters and histograms by their change since the last publish, gauges as they are.
    /// Called by the heartbeat each tick; cheap enough to call every second.
    pub fn publish(&self) {
        let stats = self.stats();
        let mut last = lock(&self.shared.published);
        // Shared, so each series' label is a reference count, not a copy of the name.
        let pool = SharedString::from(Arc::<str>::from(self.shared.name.as_str()));
        let delta = |now: u64, before: u64| now.saturating_sub(before);
        for (def, now, before) in [
            (HITS, stats.hits, last.hits),
            (MISSES, stats.misses, last.misses),
            (RETURNS, stats.returns, last.returns),
            (SHRINKS, stats.shrinks, last.shrinks),
            (REGROWS, stats.regrows, last.regrows),
            (DETACHES, stats.detaches, last.detaches),
        ] {
            def.counter([pool.clone()]).increment(delta(now, before));
        }
        for (reason, now) in stats.discards.iter() {
            DISCARDS
                .counter([pool.clone(), reason.as_str().into()])
                .increment(delta(now, last.discards[reason]));
        }
        for setting in TunedSetting::ALL {
            let i = setting.index();
            AUTO_TUNE_MOVES
                .counter([pool.clone(), setting.as_str().into()])
                .increment(delta(stats.auto_tune.moves[i], last.auto_tune.moves[i]));
        }
        let [
            target_max,
            target_initial,
            target_idle_buffers,
            target_idle_bytes,
        ] = stats.auto_tune.targets;
        for (def, value) in [
            (IDLE_BUFFERS, stats.idle_buffers),
            (INITIAL_CAPACITY, stats.initial_capacity),
            (AUTO_TUNE_ENABLED, u64::from(stats.auto_tune.enabled)),
            (AUTO_TUNE_TARGET_MAX, target_max),
            (AUTO_TUNE_TARGET_INITIAL, target_initial),
            (AUTO_TUNE_TARGET_MAX_IDLE_BUFFERS, target_idle_buffers),
            (AUTO_TUNE_TARGET_MAX_IDLE_BYTES, target_idle_bytes),
            (AUTO_TUNE_LOWEST_MAX, stats.auto_tune.lowest_max_buffer_size),
            (
                AUTO_TUNE_HIGHEST_MAX,
                stats.auto_tune.highest_max_buffer_size,
            ),
            (IDLE_BYTES, stats.idle_bytes),
            (MAX_BUFFER_SIZE, stats.max_buffer_size),
            (MAX_IDLE_BYTES, stats.max_idle_bytes),
            (MAX_IDLE_BUFFERS, stats.max_idle_buffers),
            (IN_USE, stats.in_use),
            (PEAK_HELD, stats.peak_held),
            (PEAK_IDLE_BYTES, stats.peak_idle_bytes),
            (RECOMMENDATION_RETURNS, stats.recent_returns()),
            (RECOMMENDATION_MIN_RETURNS, stats.recommendation_min_returns),
        ] {
            def.gauge([pool.clone()]).set(value as f64);
        }
        // Without enough returns in the window there is no recommendation: NaN, not the last
        // one (which would read as current however old) nor a made-up 0. PromQL carries NaN
        // through arithmetic and no comparison holds for it, so no alert fires on it.
        let or_nan = |value: Option<u64>| value.map_or(f64::NAN, |value| value as f64);
        for (def, value) in [
            (RECOMMENDED_MAX, stats.recommended_max_buffer_size()),
            (RECOMMENDED_INITIAL, stats.recommended_initial_capacity()),
            (
                RECOMMENDED_MAX_IDLE_BUFFERS,
                stats.recommended_max_idle_buffers(),
            ),
            (
                RECOMMENDED_MAX_IDLE_BYTES,
                stats.recommended_max_idle_bytes(),
            ),
        ] {
            def.gauge([pool.clone()]).set(or_nan(value));
        }
        RECOMMENDATION_WINDOW
            .gauge([pool.clone()])
            .set(stats.recommendation_window.as_secs_f64());
        let candidates = stats.candidates();
        for (i, role) in CandidateRole::ALL.into_iter().enumerate() {
            let labels = || [pool.clone(), role.as_str().into()];
            let candidate = candidates.map(|all| all[i]);
            let field = |value: fn(&Candidate) -> f64| candidate.as_ref().map_or(f64::NAN, value);
            CANDIDATE_MAX
                .gauge(labels())
                .set(field(|c| c.max_buffer_size as f64));
            CANDIDATE_OVER_MAX
                .gauge(labels())
                .set(field(|c| c.over_max_ratio));
            CANDIDATE_REGROW_BYTES
                .gauge(labels())
                .set(field(|c| c.regrow_bytes_per_second));
            CANDIDATE_IDLE_BOUND
                .gauge(labels())
                .set(field(|c| c.idle_bytes_bound as f64));
        }
        let record = |def: MetricDef, buckets: &mut dyn Iterator<Item = (u64, u64)>| {
            let histogram = def.histogram([pool.clone()]);
            for (bound, count) in buckets.filter(|&(_, count)| count > 0) {
                histogram.record_many(bound as f64, count as usize);
            }
        };
        record(
            RETURNED_LENGTH,
            &mut stats.lengths.since(&last.lengths).buckets(),
        );
        record(
            RETURNED_CAPACITY,
            &mut stats.capacities.since(&last.capacities).buckets(),
        );
        *last = stats;
    }
}
