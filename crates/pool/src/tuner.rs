//! Auto-tuning's decision: which settings move toward the recommendations on a tick, and to
//! what. Pure state, driven with the stats and the time of each tick, so that every rule
//! (bounds, band, cooldown) is tested with exact times.

use std::time::Instant;

use crate::{PoolConfig, PoolStats};

/// A setting auto-tuning moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TunedSetting {
    /// `max_buffer_size`, within the auto-tuning bounds.
    MaxBufferSize,
    /// `initial_capacity`, never above the max buffer size in force.
    InitialCapacity,
    /// `max_idle_buffers`, never above the configured value.
    MaxIdleBuffers,
    /// `max_idle_bytes`, never above the configured value nor below the max buffer size.
    MaxIdleBytes,
}

impl TunedSetting {
    /// Every setting, in the order of [`PoolStats::auto_tune_moves`] and
    /// [`PoolStats::auto_tune_targets`]; the max buffer size first, since the others are
    /// bounded by it.
    pub const ALL: [TunedSetting; 4] = [
        Self::MaxBufferSize,
        Self::InitialCapacity,
        Self::MaxIdleBuffers,
        Self::MaxIdleBytes,
    ];

    /// The config key, also the `setting` label of `heapscape_pool_auto_tune_moves_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxBufferSize => "max_buffer_size",
            Self::InitialCapacity => "initial_capacity",
            Self::MaxIdleBuffers => "max_idle_buffers",
            Self::MaxIdleBytes => "max_idle_bytes",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn of(self, config: &PoolConfig) -> usize {
        match self {
            Self::MaxBufferSize => config.max_buffer_size,
            Self::InitialCapacity => config.initial_capacity,
            Self::MaxIdleBuffers => config.max_idle_buffers,
            Self::MaxIdleBytes => config.max_idle_bytes,
        }
    }

    fn set(self, config: &mut PoolConfig, value: usize) {
        *match self {
            Self::MaxBufferSize => &mut config.max_buffer_size,
            Self::InitialCapacity => &mut config.initial_capacity,
            Self::MaxIdleBuffers => &mut config.max_idle_buffers,
            Self::MaxIdleBytes => &mut config.max_idle_bytes,
        } = value;
    }
}

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
            stats.recommended_initial_capacity(),
            stats.recommended_max_idle_buffers(),
        );
        let (true, (Some(max), Some(initial), Some(idle_buffers))) = (tune.enabled, recommended)
        else {
            // Off, or no return in the window: nothing to follow, so nothing waits either.
            self.restart(in_force);
            return Vec::new();
        };
        let size = |bytes: u64| usize::try_from(bytes).unwrap_or(usize::MAX).max(1);
        let before = in_force.clone();
        let mut moves = Vec::new();
        // The max first: the other targets are bounded by the max in force after this tick.
        let highest = tune.highest_max_buffer_size.min(base.max_idle_bytes);
        let target = size(max).clamp(tune.lowest_max_buffer_size, highest);
        self.follow(TunedSetting::MaxBufferSize, target, in_force, base, now);
        let new_max = in_force.max_buffer_size;
        let target = size(initial).min(new_max);
        self.follow(TunedSetting::InitialCapacity, target, in_force, base, now);
        let buffers = size(idle_buffers).min(base.max_idle_buffers);
        self.follow(TunedSetting::MaxIdleBuffers, buffers, in_force, base, now);
        let target = buffers
            .saturating_mul(new_max)
            .clamp(new_max, base.max_idle_bytes);
        self.follow(TunedSetting::MaxIdleBytes, target, in_force, base, now);
        // A lower max drags the initial capacity down with it, and a higher one the idle
        // bytes up, at once: the pool refuses a config that breaks either order.
        in_force.initial_capacity = in_force.initial_capacity.min(new_max);
        in_force.max_idle_bytes = in_force.max_idle_bytes.max(new_max);
        for setting in TunedSetting::ALL {
            let (from, to) = (setting.of(&before) as u64, setting.of(in_force) as u64);
            if from != to {
                self.moves[setting.index()] += 1;
                moves.push(TuneMove { setting, from, to });
            }
        }
        moves
    }

    /// Moves one setting to `target` if it lay outside the band, on the same side, for the
    /// whole cooldown.
    fn follow(
        &mut self,
        setting: TunedSetting,
        target: usize,
        in_force: &mut PoolConfig,
        base: &PoolConfig,
        now: Instant,
    ) {
        let i = setting.index();
        self.targets[i] = target as u64;
        let current = setting.of(in_force);
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
        let highest = new
            .auto_tune
            .highest_max_buffer_size
            .min(new.max_idle_bytes);
        let max = in_force
            .max_buffer_size
            .clamp(new.auto_tune.lowest_max_buffer_size, highest);
        next.max_buffer_size = max;
        next.initial_capacity = in_force.initial_capacity.min(max);
        next.max_idle_buffers = in_force.max_idle_buffers.min(new.max_idle_buffers);
        next.max_idle_bytes = in_force.max_idle_bytes.clamp(max, new.max_idle_bytes);
    }
    next
}
