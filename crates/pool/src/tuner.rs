//! Auto-tuning's decision: which settings move toward the recommendations on a tick, and to
//! what. Pure state, driven with the stats and the time of each tick, so that every rule
//! (bounds, band, cooldown) is tested with exact times.

use std::time::Instant;

use crate::config::TunedSetting;
use crate::{PoolConfig, PoolStats};

/// One change auto-tuning made to a setting, from [`Pool::auto_tune`](crate::Pool::auto_tune).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TuneMove {
    /// The setting that moved.
    pub setting: TunedSetting,
    /// Its value before.
    pub from: u64,
    /// Its value now.
    pub to: u64,
}

/// A target waiting out the cooldown: outside the band, on one side of the value in force,
/// since `since`.
#[derive(Debug, Clone, Copy)]
struct Pending {
    up: bool,
    since: Instant,
    /// The target nearest the value in force seen since `since`: the value the
    /// recommendation held throughout, and the one applied when the cooldown ends.
    held: usize,
}

/// The tuner's memory between ticks.
#[derive(Debug, Default)]
pub(crate) struct Tuner {
    pending: [Option<Pending>; TunedSetting::ALL.len()],
    /// The last tick's targets; the values in force while auto-tuning is off or has no data.
    pub(crate) targets: [u64; TunedSetting::ALL.len()],
    /// Moves made, per setting, since the pool was built.
    pub(crate) moves: [u64; TunedSetting::ALL.len()],
}

impl Tuner {
    /// Forgets the targets waiting out their cooldown: after a reconfiguration, the band and
    /// the cooldown count from the new values.
    pub(crate) fn restart(&mut self, in_force: &PoolConfig) {
        self.pending = Default::default();
        self.targets = TunedSetting::ALL.map(|setting| setting.of(in_force) as u64);
    }

    /// One tick: given the config as set (`base`: bounds, ceilings, band, cooldown), the
    /// config in force and fresh stats, moves `in_force` toward the bounded recommendations
    /// and returns what moved.
    pub(crate) fn step(
        &mut self,
        base: &PoolConfig,
        in_force: &mut PoolConfig,
        stats: &PoolStats,
        now: Instant,
    ) -> Vec<TuneMove> {
        let tune = &base.auto_tune;
        let recommended = (
            stats.recommended_max_buffer_size(),
            // A lower max is judged on the percentile that leaves half the share over it
            // (p97.5 for p95): when the mix puts the p95 between two groups of sizes, its
            // noise would otherwise take the max up and down between them.
            stats
                .recent_lengths
                .quantile(1.0 - (1.0 - stats.recommend_percentile) / 2.0),
            stats.recommended_initial_capacity(),
            stats.recommended_max_idle_buffers(),
        );
        let (true, (Some(max), Some(lower_max), Some(initial), Some(idle_buffers))) =
            (tune.enabled, recommended)
        else {
            // Off, or no return in the window: nothing to follow, so nothing waits either.
            self.restart(in_force);
            return Vec::new();
        };
        let size = |bytes: u64| usize::try_from(bytes).unwrap_or(usize::MAX).max(1);
        let before = in_force.clone();
        // The max first: the other targets are bounded by the max in force after this tick.
        let (lowest, highest) = base.auto_tune_range();
        let bounded = |bytes| size(bytes).clamp(lowest, highest);
        let targets = Targets {
            up: bounded(max),
            down: bounded(lower_max),
        };
        self.follow(TunedSetting::MaxBufferSize, targets, in_force, base, now);
        let new_max = in_force.max_buffer_size;
        let target = size(initial).min(new_max);
        self.follow(
            TunedSetting::InitialCapacity,
            target.into(),
            in_force,
            base,
            now,
        );
        let buffers = size(idle_buffers).min(base.max_idle_buffers);
        self.follow(
            TunedSetting::MaxIdleBuffers,
            buffers.into(),
            in_force,
            base,
            now,
        );
        // Room for the spare too, as the recommendation leaves it (`recommends_spare`): up to
        // twice the max, so one max more than the buffer slot it takes.
        let target = (buffers + usize::from(stats.recommends_spare()))
            .saturating_mul(new_max)
            .clamp(new_max, base.max_idle_bytes);
        self.follow(
            TunedSetting::MaxIdleBytes,
            target.into(),
            in_force,
            base,
            now,
        );
        // A lower max drags the initial capacity down with it, and a higher one the idle
        // bytes up, at once: the pool refuses a config that breaks either order.
        in_force.initial_capacity = in_force.initial_capacity.min(new_max);
        in_force.max_idle_bytes = in_force.max_idle_bytes.max(new_max);
        let mut moves = Vec::new();
        for setting in TunedSetting::ALL {
            let (from, to) = (setting.of(&before) as u64, setting.of(in_force) as u64);
            if from != to {
                self.moves[setting.index()] += 1;
                moves.push(TuneMove { setting, from, to });
            }
        }
        moves
    }

    /// Moves one setting to its target if that lay outside the band, on the same side, for
    /// the whole cooldown.
    fn follow(
        &mut self,
        setting: TunedSetting,
        targets: Targets,
        in_force: &mut PoolConfig,
        base: &PoolConfig,
        now: Instant,
    ) {
        let i = setting.index();
        let current = setting.of(in_force);
        let target = if targets.up > current {
            targets.up
        } else if targets.down < current {
            targets.down
        } else {
            current
        };
        self.targets[i] = target as u64;
        let band = current as f64 * base.auto_tune.hysteresis;
        let pending = &mut self.pending[i];
        if target == current || target.abs_diff(current) as f64 <= band {
            *pending = None;
            return;
        }
        let up = target > current;
        let held = match pending {
            Some(waiting) if waiting.up == up => {
                waiting.held = if up {
                    waiting.held.min(target)
                } else {
                    waiting.held.max(target)
                };
                *waiting
            }
            _ => *pending.insert(Pending {
                up,
                since: now,
                held: target,
            }),
        };
        if now.saturating_duration_since(held.since) >= base.auto_tune.cooldown {
            setting.set(in_force, held.held);
            *pending = None;
        }
    }
}

/// What a setting moves to: `up` when that is above the value in force, else `down` when that
/// is below it; the same value for every setting but the max buffer size.
#[derive(Debug, Clone, Copy)]
struct Targets {
    up: usize,
    down: usize,
}

impl From<usize> for Targets {
    fn from(target: usize) -> Self {
        Self {
            up: target,
            down: target,
        }
    }
}

/// The config in force after `new` replaces `old` as the config set, given the one in force.
///
/// The documented rule: while auto-tuning stays on and the file's values of the tuned settings
/// are unchanged, the tuned values stay (brought within the new bounds); otherwise the new
/// config applies as written, and tuning starts again from it.
pub(crate) fn in_force_after(
    old: &PoolConfig,
    new: &PoolConfig,
    in_force: &PoolConfig,
) -> PoolConfig {
    let keeps_tuning = old.auto_tune.enabled
        && new.auto_tune.enabled
        && TunedSetting::ALL
            .iter()
            .all(|setting| setting.of(old) == setting.of(new));
    let mut next = new.clone();
    if keeps_tuning {
        let (lowest, highest) = new.auto_tune_range();
        let max = in_force.max_buffer_size.clamp(lowest, highest);
        next.max_buffer_size = max;
        next.initial_capacity = in_force.initial_capacity.min(max);
        next.max_idle_buffers = in_force.max_idle_buffers.min(new.max_idle_buffers);
        next.max_idle_bytes = in_force.max_idle_bytes.clamp(max, new.max_idle_bytes);
    }
    next
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::Pool;
    use crate::config::AutoTuneConfig;

    const TICK: Duration = Duration::from_secs(10);
    const COOLDOWN: Duration = Duration::from_secs(180);
    /// Ticks in a cooldown, plus the tick that first sees the target and the one that applies.
    const COOLDOWN_TICKS: u64 = COOLDOWN.as_secs() / TICK.as_secs() + 2;
    const WINDOW: Duration = Duration::from_secs(720);
    const LOWEST: usize = 16 << 10;
    const HIGHEST: usize = 2 << 20;

    fn auto_tune() -> AutoTuneConfig {
        AutoTuneConfig {
            enabled: true,
            lowest_max_buffer_size: LOWEST,
            highest_max_buffer_size: HIGHEST,
            cooldown: COOLDOWN,
            ..AutoTuneConfig::default()
        }
    }

    /// A pool tuning itself, with the default minimum of returns (400 at p95).
    fn cautious_pool() -> crate::PoolBuilder {
        Pool::builder("tuned")
            .initial_capacity(4 << 10)
            .max_buffer_size(256 << 10)
            .max_idle_buffers(64)
            .max_idle_bytes(64 << 20)
            .recommendation_window(WINDOW)
            .auto_tune(auto_tune())
    }

    /// A pool tuning itself that recommends from a single return: the tests of the band,
    /// the cooldown and the bounds need few returns a tick.
    fn tuned_pool() -> Pool {
        cautious_pool()
            .recommendation_min_returns(1)
            .build()
            .unwrap()
    }

    /// A heartbeat with a clock of its own: each tick returns buffers of the given lengths,
    /// all out at once, then tunes the pool at the tick's time.
    struct Ticks<'a> {
        pool: &'a Pool,
        t0: Instant,
        n: u64,
    }

    impl<'a> Ticks<'a> {
        fn new(pool: &'a Pool) -> Self {
            Self {
                pool,
                t0: Instant::now(),
                n: 0,
            }
        }

        fn tick(&mut self, lengths: &[usize]) -> Vec<TuneMove> {
            let mut guards: Vec<_> = lengths.iter().map(|_| self.pool.get()).collect();
            for (guard, &len) in guards.iter_mut().zip(lengths) {
                guard.resize(len, 0);
            }
            drop(guards);
            self.n += 1;
            let moves = self
                .pool
                .shared
                .auto_tune_at(self.t0 + TICK * self.n as u32);
            check_invariants(
                &self.pool.config(),
                &self.pool.shared.lock_depot().config().clone(),
            );
            moves
        }

        /// Ticks until `done` holds for the max in force, at most `limit` ticks; returns the
        /// ticks taken and the max buffer size moves made on the way.
        fn until(
            &mut self,
            limit: u64,
            lengths: &[usize],
            done: impl Fn(usize) -> bool,
        ) -> (u64, usize) {
            self.until_stats(limit, lengths, |stats| done(stats.max_buffer_size as usize))
        }

        fn until_stats(
            &mut self,
            limit: u64,
            lengths: &[usize],
            done: impl Fn(&PoolStats) -> bool,
        ) -> (u64, usize) {
            let mut max_moves = 0;
            for n in 1..=limit {
                max_moves += self
                    .tick(lengths)
                    .iter()
                    .filter(|m| m.setting == TunedSetting::MaxBufferSize)
                    .count();
                if done(&self.pool.stats()) {
                    return (n, max_moves);
                }
            }
            panic!(
                "the max buffer size is still {} after {limit} ticks",
                self.pool.stats().max_buffer_size
            );
        }
    }

    /// What must hold after every tick, whatever the traffic: the bounds and ceilings, and a
    /// config the pool accepts.
    fn check_invariants(set: &PoolConfig, in_force: &PoolConfig) {
        let tune = &set.auto_tune;
        assert!(
            !tune.enabled
                || (tune.lowest_max_buffer_size..=tune.highest_max_buffer_size)
                    .contains(&in_force.max_buffer_size),
            "max {} outside the bounds {}..={}",
            in_force.max_buffer_size,
            tune.lowest_max_buffer_size,
            tune.highest_max_buffer_size
        );
        assert!(in_force.max_idle_buffers <= set.max_idle_buffers);
        assert!(in_force.max_idle_bytes <= set.max_idle_bytes);
        assert!(in_force.initial_capacity <= in_force.max_buffer_size);
        in_force.validate().unwrap();
    }

    /// `n` lengths spread evenly over `from..to`.
    fn spread(n: usize, from: usize, to: usize) -> Vec<usize> {
        (0..n).map(|i| from + (to - from) * i / n).collect()
    }

    #[test]
    fn the_max_follows_a_shift_from_small_to_large_and_back_within_bounded_ticks() {
        let pool = tuned_pool();
        let mut ticks = Ticks::new(&pool);
        let small = spread(8, 20_000, 40_000);
        let large = spread(8, 800_000, 1_200_000);

        // From the configured 256 KiB down to the small requests' p95: a cooldown's ticks.
        let (taken, moves) = ticks.until(COOLDOWN_TICKS, &small, |max| max <= 48 << 10);
        assert_eq!(moves, 1, "one move, after {taken} ticks");
        // Up as soon as the large ones are more than 5 % of the window, then a cooldown, to
        // within the band of the recommendation (which the large ones alone now make).
        let (taken, moves) = ticks.until_stats(COOLDOWN_TICKS + 6, &large, |stats| {
            let recommended = stats.recommended_max_buffer_size().unwrap();
            stats.max_buffer_size >= 800_000
                && recommended.abs_diff(stats.max_buffer_size) as f64
                    <= 0.25 * stats.max_buffer_size as f64
        });
        assert_eq!(moves, 1, "one move, after {taken} ticks");
        // Back down once the large ones fall below 2.5 % of the window (the stricter percentile
        // a lower max is judged on): a window, then a cooldown.
        let window_ticks = WINDOW.as_secs() / TICK.as_secs();
        let (taken, moves) =
            ticks.until(window_ticks + COOLDOWN_TICKS, &small, |max| max <= 48 << 10);
        assert_eq!(moves, 1, "one move, after {taken} ticks");
        assert_eq!(
            pool.stats().auto_tune.moves[TunedSetting::MaxBufferSize.index()],
            3
        );
        // A cooldown later the initial capacity has followed the median, and the idle caps the
        // peak of 8 buffers and the new max.
        for _ in 0..COOLDOWN_TICKS {
            ticks.tick(&small);
        }
        let stats = pool.stats();
        assert!(
            (20_000..=48 << 10).contains(&stats.initial_capacity),
            "{stats:?}"
        );
        assert_eq!(stats.max_idle_buffers, 9);
        assert_eq!(stats.max_idle_bytes, 9 * stats.max_buffer_size);
    }

    #[test]
    fn the_bounds_hold_against_traffic_beyond_them() {
        let pool = tuned_pool();
        let mut ticks = Ticks::new(&pool);
        let (_, moves) = ticks.until(COOLDOWN_TICKS, &[100; 4], |max| max == LOWEST);
        assert_eq!(moves, 1);
        let (_, moves) = ticks.until(COOLDOWN_TICKS + 6, &[3 << 20], |max| max == HIGHEST);
        assert_eq!(moves, 1);
        let stats = pool.stats();
        assert_eq!(stats.auto_tune.targets[0], HIGHEST as u64);
        assert_eq!(stats.auto_tune.highest_max_buffer_size, HIGHEST as u64);
        // The other settings settle once the small ones left the window; then nothing moves.
        for _ in 0..WINDOW.as_secs() / TICK.as_secs() + COOLDOWN_TICKS {
            ticks.tick(&[3 << 20]);
        }
        for _ in 0..2 * COOLDOWN_TICKS {
            assert_eq!(ticks.tick(&[3 << 20]), []);
        }
        assert_eq!(pool.stats().max_buffer_size, HIGHEST as u64);
    }

    /// A fixed mix with noise: 8 returns per tick drawn from the same distribution, whose p95
    /// lies near a fine-bucket bound, so the recommendation moves between neighbours.
    #[test]
    fn a_stable_mix_with_noise_never_oscillates() {
        let pool = tuned_pool();
        let mut ticks = Ticks::new(&pool);
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            // xorshift64: a fixed seed, so the run is the same every time.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut recommendations = std::collections::BTreeSet::new();
        let mut moves_after_first_hour = 0;
        // Four hours of 10 s ticks.
        for n in 0..1440 {
            let lengths: Vec<usize> = (0..8)
                .map(|_| match next() % 100 {
                    // 94 % around 50 KB, 6 % around 100 KB: the p95 sits at the edge of the
                    // large ones and their buckets.
                    0..94 => 40_000 + (next() % 20_000) as usize,
                    _ => 90_000 + (next() % 20_000) as usize,
                })
                .collect();
            let moves = ticks.tick(&lengths);
            if n > 360 {
                recommendations.insert(pool.stats().recommended_max_buffer_size());
                moves_after_first_hour += moves.len();
            }
        }
        assert!(
            recommendations.len() >= 2,
            "the noise must move the recommendation for this test to mean anything: {recommendations:?}"
        );
        assert_eq!(
            moves_after_first_hour, 0,
            "recommendations: {recommendations:?}"
        );
        // The first hour: one move of the max from where it was configured; the idle bytes
        // follow it once and the peak once.
        let moves = pool.stats().auto_tune.moves;
        assert_eq!(moves[TunedSetting::MaxBufferSize.index()], 1, "{moves:?}");
        assert!(moves.iter().all(|&m| m <= 2), "{moves:?}");
    }

    #[test]
    fn a_target_must_stay_out_of_the_band_on_one_side_for_the_whole_cooldown() {
        let pool = tuned_pool();
        let mut ticks = Ticks::new(&pool);
        // 128 KiB requests: 50 % below the 256 KiB in force, out of the 25 % band ...
        for _ in 0..COOLDOWN_TICKS - 3 {
            assert!(ticks.tick(&[128 << 10; 4]).is_empty());
        }
        // ... until one tick's traffic takes the p95 to the other side: the cooldown restarts.
        assert!(ticks.tick(&[600 << 10; 4]).is_empty());
        assert_eq!(pool.stats().max_buffer_size, 256 << 10);
        // Back below: without the restart it would move at the next tick.
        let (taken, _) = ticks.until(200, &[128 << 10; 4], |max| max < 256 << 10);
        let cooldown = COOLDOWN.as_secs() / TICK.as_secs();
        assert!(taken >= cooldown, "the cooldown restarted: {taken} ticks");
    }

    #[test]
    fn below_the_minimum_of_returns_nothing_moves() {
        let pool = cautious_pool().build().unwrap();
        let mut ticks = Ticks::new(&pool);
        // An outlier among the first returns: of a few returns, it is the p95.
        assert!(ticks.tick(&[2 << 20, 20_000, 20_000]).is_empty());
        // Three returns a tick: the window (72 ticks) never holds the 400 a p95 needs.
        for _ in 0..3 * COOLDOWN_TICKS {
            assert_eq!(ticks.tick(&[20_000; 3]), []);
        }
        let stats = pool.stats();
        assert!(
            !stats.has_enough_returns(),
            "{} returns",
            stats.recent_returns()
        );
        assert_eq!(stats.recommendation_min_returns, 400);
        assert_eq!(stats.recommended_max_buffer_size(), None);
        assert_eq!(stats.candidates(), None);
        assert_eq!(
            stats.auto_tune.target_of(TunedSetting::MaxBufferSize),
            256 << 10
        );
    }

    #[test]
    fn one_outlier_among_enough_returns_does_not_raise_the_max() {
        let pool = cautious_pool().build().unwrap();
        let mut ticks = Ticks::new(&pool);
        let mut first = vec![2 << 20];
        first.extend([20_000; 9]);
        ticks.tick(&first);
        // Ten returns a tick: 400 in the window after 40 ticks, then a cooldown to move.
        for _ in 0..40 + COOLDOWN_TICKS {
            let moves = ticks.tick(&[20_000; 10]);
            for moved in moves
                .iter()
                .filter(|m| m.setting == TunedSetting::MaxBufferSize)
            {
                assert!(
                    moved.to < moved.from,
                    "{moved:?}: the outlier raised the max"
                );
            }
        }
        let stats = pool.stats();
        assert!(stats.max_buffer_size <= 48 << 10, "{stats:?}");
        assert_eq!(stats.auto_tune.moves_of(TunedSetting::MaxBufferSize), 1);
    }

    #[test]
    fn idle_cap_discards_raise_the_idle_cap_beyond_the_band() {
        let pool = tuned_pool();
        let mut ticks = Ticks::new(&pool);
        // Two buffers at a time: the idle cap follows the peak held down to 3.
        ticks.until_stats(3 * COOLDOWN_TICKS, &[20_000; 2], |stats| {
            stats.max_idle_buffers <= 3
        });
        // Bursts of 16 come back all at once, between two reads of the stats: the cap keeps
        // 3, discards the rest, and the peak held never shows more than what it kept. An
        // eighth over that peak stays inside the 25 % band; twice the cap does not.
        let (taken, _) = ticks.until_stats(6 * COOLDOWN_TICKS, &[20_000; 16], |stats| {
            stats.max_idle_buffers >= 16
        });
        let stats = pool.stats();
        assert!(stats.discards.idle_buffers_cap > 0);
        assert!(
            stats.auto_tune.moves_of(TunedSetting::MaxIdleBuffers) >= 2,
            "{taken} ticks: {stats:?}"
        );
        // Once the cap holds a burst, the discards stop and the held peak shows it.
        let before = pool.stats().discards;
        for _ in 0..COOLDOWN_TICKS {
            ticks.tick(&[20_000; 16]);
        }
        let after = pool.stats();
        assert_eq!(after.discards, before, "{after:?}");
        assert!(after.peak_held >= 16, "{after:?}");
    }

    #[test]
    fn moves_inside_the_band_are_ignored() {
        let pool = tuned_pool();
        let mut ticks = Ticks::new(&pool);
        // 200 KiB rounds up to a fine bucket (216 KiB) less than 25 % below 256 KiB.
        for _ in 0..3 * COOLDOWN_TICKS {
            let moves = ticks.tick(&[200 << 10; 4]);
            assert!(
                moves
                    .iter()
                    .all(|m| m.setting != TunedSetting::MaxBufferSize),
                "{moves:?}"
            );
        }
        let stats = pool.stats();
        assert_ne!(stats.auto_tune.targets[0], stats.max_buffer_size);
        assert_eq!(stats.max_buffer_size, 256 << 10);
    }

    #[test]
    fn off_it_never_moves_and_its_targets_are_the_values_in_force() {
        let mut tune = auto_tune();
        tune.enabled = false;
        let pool = Pool::builder("off").auto_tune(tune).build().unwrap();
        let mut ticks = Ticks::new(&pool);
        for _ in 0..3 * COOLDOWN_TICKS {
            assert!(ticks.tick(&[100; 4]).is_empty());
        }
        let stats = pool.stats();
        assert_eq!(
            stats.auto_tune.targets,
            [
                stats.max_buffer_size,
                stats.initial_capacity,
                stats.max_idle_buffers,
                stats.max_idle_bytes
            ]
        );
    }

    #[test]
    fn a_reconfigure_keeps_the_tuned_values_only_when_the_tuned_keys_did_not_change() {
        let pool = tuned_pool();
        let mut ticks = Ticks::new(&pool);
        ticks.until(COOLDOWN_TICKS, &[30_000; 4], |max| max <= 48 << 10);
        let tuned = pool.stats().max_buffer_size;

        // Another cooldown and bounds that still contain the tuned max: the tuned values stay.
        let mut config = pool.config();
        config.auto_tune.cooldown = 2 * COOLDOWN;
        config.auto_tune.lowest_max_buffer_size = 8 << 10;
        pool.reconfigure(config.clone()).unwrap();
        assert_eq!(pool.stats().max_buffer_size, tuned);
        // A lowest bound above it: brought within the bounds at once.
        config.auto_tune.lowest_max_buffer_size = 64 << 10;
        pool.reconfigure(config.clone()).unwrap();
        assert_eq!(pool.stats().max_buffer_size, 64 << 10);
        assert_eq!(
            pool.config().max_buffer_size,
            256 << 10,
            "the config as set"
        );
        // A new starting value: applied as written, and tuning starts again from it.
        config.max_buffer_size = 512 << 10;
        pool.reconfigure(config.clone()).unwrap();
        assert_eq!(pool.stats().max_buffer_size, 512 << 10);
        // Off: the config as set is the config in force.
        ticks.until(2 * COOLDOWN_TICKS, &[30_000; 4], |max| max < 512 << 10);
        config.auto_tune.enabled = false;
        pool.reconfigure(config.clone()).unwrap();
        let stats = pool.stats();
        assert_eq!(
            (
                stats.max_buffer_size,
                stats.initial_capacity,
                stats.max_idle_buffers
            ),
            (512 << 10, 4 << 10, 64)
        );
    }

    #[test]
    fn invalid_combinations_are_refused_with_the_key_to_change() {
        let mut config = PoolConfig {
            auto_tune: auto_tune(),
            ..PoolConfig::default()
        };
        config.auto_tune.lowest_max_buffer_size = 4 << 20;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("the lower bound of the max buffer size must not exceed the upper bound")
        );
        config.auto_tune = auto_tune();
        config.max_buffer_size = 4 << 20; // above HIGHEST
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("is where auto-tuning starts"), "{error}");
        config.auto_tune.enabled = false;
        config.validate().unwrap();
        config.auto_tune.hysteresis = 1.0;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("[0.2, 1)")
        );
        config.auto_tune = auto_tune();
        config.max_buffer_size = 64 << 10;
        config.max_idle_bytes = 8 << 10;
        config.initial_capacity = 4 << 10;
        assert!(config.validate().is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 32,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Any bounds, band, cooldown and traffic: every tick ends within the bounds and
        /// ceilings, with a config the pool accepts (`Ticks::tick` checks).
        #[test]
        fn the_bounds_and_ceilings_hold_for_any_traffic(
            lowest in 1usize..(64 << 10),
            span in 1usize..16,
            hysteresis in 0.2f64..0.9,
            cooldown in 1u64..60,
            max_idle_buffers in 1usize..16,
            traffic in proptest::collection::vec(
                proptest::collection::vec(0usize..(256 << 10), 0..4),
                1..60,
            ),
        ) {
            let mut tune = auto_tune();
            tune.lowest_max_buffer_size = lowest;
            tune.highest_max_buffer_size = lowest * span;
            tune.hysteresis = hysteresis;
            tune.cooldown = Duration::from_secs(cooldown);
            let pool = Pool::builder("any")
                .initial_capacity(1)
                .max_buffer_size(lowest)
                .max_idle_buffers(max_idle_buffers)
                .max_idle_bytes(lowest * span * max_idle_buffers)
                .recommendation_window(Duration::from_secs(120))
                .recommendation_min_returns(1)
                .auto_tune(tune)
                .build()
                .unwrap();
            let mut ticks = Ticks::new(&pool);
            for lengths in &traffic {
                ticks.tick(lengths);
            }
        }
    }
}
