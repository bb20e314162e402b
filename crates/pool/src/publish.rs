//! A pool's publication through the `metrics` facade, by the definitions of its
//! [catalog](crate::metrics::CATALOG).

use std::sync::Arc;

use metrics::SharedString;

use crate::metrics::{
    AUTO_TUNE_ENABLED, AUTO_TUNE_HIGHEST_MAX, AUTO_TUNE_LOWEST_MAX, AUTO_TUNE_MOVES,
    AUTO_TUNE_TARGET_INITIAL, AUTO_TUNE_TARGET_MAX, AUTO_TUNE_TARGET_MAX_IDLE_BUFFERS,
    AUTO_TUNE_TARGET_MAX_IDLE_BYTES, CANDIDATE_IDLE_BYTES, CANDIDATE_MAX, CANDIDATE_OVER_MAX,
    DETACHES, DISCARDS, HITS, IDLE_BUFFERS, IDLE_BYTES, IN_USE, INITIAL_CAPACITY, MAX_BUFFER_SIZE,
    MAX_IDLE_BUFFERS, MAX_IDLE_BYTES, MISSES, PEAK_HELD, RECOMMENDATION_WINDOW,
    RECOMMENDED_INITIAL, RECOMMENDED_MAX, RECOMMENDED_MAX_IDLE_BUFFERS, RECOMMENDED_MAX_IDLE_BYTES,
    RETURNED_CAPACITY, RETURNED_LENGTH, RETURNS, SHRINKS,
};
use crate::stats::DiscardReason;
use crate::sync::lock;
use crate::{CandidateRole, Pool, TunedSetting};

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
            (DETACHES, stats.detaches, last.detaches),
        ] {
            def.counter([pool.clone()]).increment(delta(now, before));
        }
        for reason in DiscardReason::ALL {
            let i = reason.index();
            DISCARDS
                .counter([pool.clone(), reason.as_str().into()])
                .increment(delta(stats.discards[i], last.discards[i]));
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
            (IDLE_BUFFERS, Some(stats.idle_buffers)),
            (INITIAL_CAPACITY, Some(stats.initial_capacity)),
            (AUTO_TUNE_ENABLED, Some(u64::from(stats.auto_tune.enabled))),
            (AUTO_TUNE_TARGET_MAX, Some(target_max)),
            (AUTO_TUNE_TARGET_INITIAL, Some(target_initial)),
            (AUTO_TUNE_TARGET_MAX_IDLE_BUFFERS, Some(target_idle_buffers)),
            (AUTO_TUNE_TARGET_MAX_IDLE_BYTES, Some(target_idle_bytes)),
            (
                AUTO_TUNE_LOWEST_MAX,
                Some(stats.auto_tune.lowest_max_buffer_size),
            ),
            (
                AUTO_TUNE_HIGHEST_MAX,
                Some(stats.auto_tune.highest_max_buffer_size),
            ),
            (IDLE_BYTES, Some(stats.idle_bytes)),
            (MAX_BUFFER_SIZE, Some(stats.max_buffer_size)),
            (MAX_IDLE_BYTES, Some(stats.max_idle_bytes)),
            (MAX_IDLE_BUFFERS, Some(stats.max_idle_buffers)),
            (IN_USE, Some(stats.in_use)),
            (PEAK_HELD, Some(stats.peak_held)),
            // No recommendation without a return in the window: no series (or the last value)
            // rather than a made-up 0.
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
            if let Some(value) = value {
                def.gauge([pool.clone()]).set(value as f64);
            }
        }
        RECOMMENDATION_WINDOW
            .gauge([pool.clone()])
            .set(stats.recommendation_window.as_secs_f64());
        let candidates = stats.candidates().into_iter().flatten();
        for (role, candidate) in CandidateRole::ALL.into_iter().zip(candidates) {
            let labels = || [pool.clone(), role.as_str().into()];
            CANDIDATE_MAX
                .gauge(labels())
                .set(candidate.max_buffer_size as f64);
            CANDIDATE_OVER_MAX
                .gauge(labels())
                .set(candidate.over_max_ratio);
            CANDIDATE_IDLE_BYTES
                .gauge(labels())
                .set(candidate.idle_bytes as f64);
        }
        for (def, now, before) in [
            (RETURNED_LENGTH, &stats.lengths, &last.lengths),
            (RETURNED_CAPACITY, &stats.capacities, &last.capacities),
        ] {
            let histogram = def.histogram([pool.clone()]);
            for (bound, count) in now.since(before).buckets() {
                if count > 0 {
                    histogram.record_many(bound as f64, count as usize);
                }
            }
        }
        *last = stats;
    }
}
