//! The settings of a pool, validated as a whole, and auto-tuning: which settings move toward
//! the recommendations, within what bounds, and the moves it made.

use std::time::Duration;

use crate::PoolError;
pub use crate::tuner::TuneMove;

/// What to do with a returned buffer whose capacity exceeds the max buffer size.
///
/// Measured on the stream-buffering workload (W2, max at the p90 of stream sizes; see the
/// README's performance section): shrinking keeps the allocation (jemalloc shrinks large
/// allocations in place) and the next large stream regrows from the max rather than from
/// the initial capacity, which is why [`OverMaxPolicy::Shrink`] is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverMaxPolicy {
    /// Shrink the buffer's capacity to the max buffer size and keep it (counted in
    /// `heapscape_pool_shrinks_total`).
    #[default]
    Shrink,
    /// Drop the buffer (counted as a discard with reason `over_max`).
    Drop,
}

/// The settings of a [`Pool`](crate::Pool), all changeable at run time with
/// [`Pool::reconfigure`](crate::Pool::reconfigure).
///
/// Construct with [`PoolConfig::default`] (or [`Pool::builder`](crate::Pool::builder)) and
/// assign the fields you want to change; [`PoolConfig::validate`] says what is wrong with a
/// combination.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// Capacity of a newly allocated buffer (on a miss), in bytes, lowered onto the max buffer
    /// size's doubling ladder ([`PoolConfig::miss_capacity`]). Default 4 KiB.
    pub initial_capacity: usize,
    /// The largest capacity a returned buffer may have to be kept, in bytes; also the clamp
    /// for capacity hints. Default 4 MiB.
    pub max_buffer_size: usize,
    /// The most idle buffers the pool keeps. Default 1024.
    pub max_idle_buffers: usize,
    /// The most bytes (summed capacities) idle buffers may hold. Default 256 MiB.
    pub max_idle_bytes: usize,
    /// Idle buffers older than this are released by [`Pool::trim`](crate::Pool::trim).
    /// Default 60 s.
    pub idle_timeout: Duration,
    /// What happens to a returned buffer over the max buffer size. Default: shrink.
    pub over_max: OverMaxPolicy,
    /// The percentile of returned lengths (0 < p <= 1) that
    /// [`PoolStats::recommended_max_buffer_size`](crate::PoolStats::recommended_max_buffer_size)
    /// reports. Default 0.95.
    pub recommend_percentile: f64,
    /// How far back the recommendations, the what-if and the candidates of
    /// [`PoolStats`](crate::PoolStats) look: returns and the peak of buffers held older than
    /// this leave them (in steps of a twelfth of the window). Default 1 h, at least 1 s.
    pub recommendation_window: Duration,
    /// The fewest returns within the window a recommendation may rest on; `None` (the
    /// default) for [`default_min_returns`] of the percentile. See [`PoolConfig::min_returns`].
    pub recommendation_min_returns: Option<u64>,
    /// Whether and how the pool follows its own recommendations. Off by default.
    pub auto_tune: AutoTuneConfig,
}

/// The fewest returns a recommendation at percentile `p` rests on by default:
/// `max(200, ceil(20 / (1 - p)))`, so that at least 20 returns lie above the percentile
/// (400 for the default p95, 2,000 for p99); 200 for `p = 1`.
///
/// Below about `1 / (1 - p)` returns the p-th percentile is simply the largest return, so a
/// single outlier would set the max; 20 returns above it make it a statement about traffic.
///
/// ```
/// use heapscape_pool::config::default_min_returns;
/// assert_eq!(default_min_returns(0.95), 400);
/// assert_eq!(default_min_returns(0.5), 200);
/// assert_eq!(default_min_returns(1.0), 200);
/// ```
pub fn default_min_returns(percentile: f64) -> u64 {
    let above = (20.0 / (1.0 - percentile)).ceil();
    if above.is_finite() && above > 200.0 {
        above.min(u64::MAX as f64) as u64
    } else {
        200
    }
}

/// Auto-tuning: on each [`Pool::auto_tune`](crate::Pool::auto_tune) (every heartbeat tick),
/// the pool moves its settings toward the windowed recommendations of
/// [`PoolStats`](crate::PoolStats), within bounds ops set.
///
/// What moves, and what the [`PoolConfig`] values mean then:
/// - `max_buffer_size` starts at the configured value and follows the recommendation within
///   [`AutoTuneConfig::lowest_max_buffer_size`]`..=`[`AutoTuneConfig::highest_max_buffer_size`]
///   (and never above `max_idle_bytes`);
/// - `initial_capacity` starts at the configured value and follows the recommended median,
///   never above the max buffer size in force;
/// - `max_idle_buffers` and `max_idle_bytes` are ceilings: the pool keeps fewer idle buffers
///   when the window's peak needs fewer, never more than configured. They are the memory
///   budget ops grant; auto-tuning only spends less of it.
///
/// A setting moves only when its target (the recommendation, bounded) lies further than
/// [`AutoTuneConfig::hysteresis`] from the value in force, on the same side, for a whole
/// [`AutoTuneConfig::cooldown`]; it then moves to the target nearest the value in force seen
/// over the cooldown (the value the recommendation held throughout). A lower max buffer size
/// is judged on a stricter percentile, the one that leaves half the share over it (p97.5 for
/// the default p95): when the mix puts the p95 between two groups of sizes, its noise cannot
/// then take the max up and down between them.
///
/// A reconfiguration ([`Pool::reconfigure`](crate::Pool::reconfigure), an agent reload) that
/// keeps auto-tuning on and the four settings above as they were set keeps the tuned values
/// (brought within new bounds); any other applies the new values as written, and tuning starts
/// again from them.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct AutoTuneConfig {
    /// Whether the pool tunes itself. Default false.
    pub enabled: bool,
    /// The lowest max buffer size auto-tuning may set. Default 4 KiB.
    pub lowest_max_buffer_size: usize,
    /// The highest max buffer size auto-tuning may set (and never above `max_idle_bytes`).
    /// Default 64 MiB.
    pub highest_max_buffer_size: usize,
    /// How long a target must stay outside the hysteresis band, on one side, before it is
    /// applied. Default 10 min, at least 1 s: each setting moves at most once per cooldown.
    pub cooldown: Duration,
    /// The smallest move made, as a fraction of the value in force (0.2 <= h < 1): targets
    /// closer than this are ignored. Default 0.25. At least 0.2, wider than one fine bucket
    /// (at most 19.8 %), so a recommendation flickering between neighbours never moves the
    /// pool.
    pub hysteresis: f64,
}

/// The shortest `recommendation_window`. With a window of 1 ms (accepted until bounded) each
/// reading held only the returns since the last one, so the recommendation jumped with every
/// few requests; with no cooldown and no band, auto-tuning then moved the max about 7 times a
/// second.
const MIN_RECOMMENDATION_WINDOW: Duration = Duration::from_secs(1);
/// The shortest `auto_tune.cooldown`: a setting moves at most once per cooldown, so this bounds
/// how often auto-tuning can change the pool whatever the caller's tick.
const MIN_COOLDOWN: Duration = Duration::from_secs(1);
/// The narrowest `auto_tune.hysteresis`: recommendations are rounded up to fine buckets (four
/// per octave, each at most 19.8 % wide), so a narrower band lets a recommendation flickering
/// between two neighbouring buckets move the pool back and forth.
const MIN_HYSTERESIS: f64 = 0.2;

impl Default for AutoTuneConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            lowest_max_buffer_size: 4 << 10,
            highest_max_buffer_size: 64 << 20,
            cooldown: Duration::from_secs(600),
            hysteresis: 0.25,
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            initial_capacity: 4 << 10,
            max_buffer_size: 4 << 20,
            max_idle_buffers: 1024,
            max_idle_bytes: 256 << 20,
            idle_timeout: Duration::from_secs(60),
            over_max: OverMaxPolicy::Shrink,
            recommend_percentile: 0.95,
            recommendation_window: Duration::from_secs(3600),
            recommendation_min_returns: None,
            auto_tune: AutoTuneConfig::default(),
        }
    }
}

impl PoolConfig {
    /// The capacity a buffer allocated on a miss gets: the initial capacity, lowered to the
    /// largest `max_buffer_size / 2^k` (halves rounded down) not above it.
    ///
    /// A `Vec` grows by doubling, so a buffer that starts at `c` holds `c * 2^j` bytes. Unless
    /// the max buffer size is one of those steps, the step that passes it lands up to twice
    /// over it: a request that fit within the max leaves a buffer over it, which the return
    /// shrinks to the max (or drops), and jemalloc keeps the freed tail resident until it
    /// purges it; the next long request doubles past the max again. Started on the max's own
    /// ladder, a buffer reaches the max exactly, and only requests longer than the max grow
    /// past it. A max that is the initial capacity times a power of two (the defaults) is
    /// unaffected.
    ///
    /// ```
    /// let mut config = heapscape_pool::PoolConfig::default();
    /// (config.initial_capacity, config.max_buffer_size) = (256 << 10, 1_490_944);
    /// assert_eq!(config.miss_capacity(), 1_490_944 / 8); // 182 KiB, doubling to the max
    /// config.max_buffer_size = 4 << 20;
    /// assert_eq!(config.miss_capacity(), 256 << 10); // already on the ladder
    /// ```
    pub fn miss_capacity(&self) -> usize {
        let initial = self.initial_capacity.min(self.max_buffer_size);
        let mut capacity = self.max_buffer_size;
        while capacity > initial {
            capacity /= 2;
        }
        capacity
    }

    /// Checks that the settings make sense together.
    ///
    /// # Errors
    ///
    /// [`PoolError::Zero`] for a zero size, cap or timeout, [`PoolError::InitialAboveMax`] when
    /// new buffers would be larger than the pool keeps, [`PoolError::MaxAboveIdleBytes`] when no
    /// buffer of the max size could ever be kept, [`PoolError::Percentile`] for a percentile
    /// outside (0, 1], [`PoolError::Window`] for a window under 1 s, and the auto-tuning errors
    /// ([`PoolError::Cooldown`] under 1 s, [`PoolError::Hysteresis`] outside [0.2, 1), bounds
    /// that do not fit).
    pub fn validate(&self) -> Result<(), PoolError> {
        for (field, value) in [
            ("initial_capacity", self.initial_capacity),
            ("max_buffer_size", self.max_buffer_size),
            ("max_idle_buffers", self.max_idle_buffers),
            ("max_idle_bytes", self.max_idle_bytes),
        ] {
            if value == 0 {
                return Err(PoolError::Zero { field });
            }
        }
        for (field, value) in [
            ("idle_timeout", self.idle_timeout),
            ("recommendation_window", self.recommendation_window),
        ] {
            if value.is_zero() {
                return Err(PoolError::Zero { field });
            }
        }
        if self.recommendation_window < MIN_RECOMMENDATION_WINDOW {
            return Err(PoolError::Window(self.recommendation_window));
        }
        if self.initial_capacity > self.max_buffer_size {
            return Err(PoolError::InitialAboveMax {
                initial_capacity: self.initial_capacity,
                max_buffer_size: self.max_buffer_size,
            });
        }
        if self.max_buffer_size > self.max_idle_bytes {
            return Err(PoolError::MaxAboveIdleBytes {
                max_buffer_size: self.max_buffer_size,
                max_idle_bytes: self.max_idle_bytes,
            });
        }
        if !(self.recommend_percentile > 0.0 && self.recommend_percentile <= 1.0) {
            return Err(PoolError::Percentile(self.recommend_percentile));
        }
        self.validate_auto_tune()
    }

    /// The fewest returns within the window a recommendation rests on: the configured
    /// `recommendation_min_returns`, or [`default_min_returns`] of the percentile.
    pub fn min_returns(&self) -> u64 {
        self.recommendation_min_returns
            .unwrap_or_else(|| default_min_returns(self.recommend_percentile))
    }

    /// The max buffer sizes auto-tuning may set: the bounds, the highest never above
    /// `max_idle_bytes` (a larger buffer could never be kept).
    pub fn auto_tune_range(&self) -> (usize, usize) {
        let tune = &self.auto_tune;
        let highest = tune.highest_max_buffer_size.min(self.max_idle_bytes);
        (tune.lowest_max_buffer_size, highest)
    }

    /// The auto-tuning settings are checked whether or not it is on, so that turning it on
    /// later (a one-line change) cannot meet an error written long before.
    fn validate_auto_tune(&self) -> Result<(), PoolError> {
        let tune = &self.auto_tune;
        if tune.lowest_max_buffer_size == 0 {
            return Err(PoolError::Zero {
                field: "auto_tune.lowest_max_buffer_size",
            });
        }
        if tune.lowest_max_buffer_size > tune.highest_max_buffer_size {
            return Err(PoolError::AutoTuneBounds {
                min: tune.lowest_max_buffer_size,
                max: tune.highest_max_buffer_size,
            });
        }
        if tune.lowest_max_buffer_size > self.max_idle_bytes {
            return Err(PoolError::AutoTuneMinAboveIdleBytes {
                min: tune.lowest_max_buffer_size,
                max_idle_bytes: self.max_idle_bytes,
            });
        }
        if tune.enabled
            && !(tune.lowest_max_buffer_size..=tune.highest_max_buffer_size)
                .contains(&self.max_buffer_size)
        {
            return Err(PoolError::AutoTuneStartOutside {
                max_buffer_size: self.max_buffer_size,
                min: tune.lowest_max_buffer_size,
                max: tune.highest_max_buffer_size,
            });
        }
        if tune.cooldown < MIN_COOLDOWN {
            return Err(PoolError::Cooldown(tune.cooldown));
        }
        if !(MIN_HYSTERESIS..1.0).contains(&tune.hysteresis) {
            return Err(PoolError::Hysteresis(tune.hysteresis));
        }
        Ok(())
    }
}

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
    /// Every setting, in the order of
    /// [`AutoTuneStats::moves`](crate::stats::AutoTuneStats::moves) and
    /// [`AutoTuneStats::targets`](crate::stats::AutoTuneStats::targets); the max buffer size
    /// first, since the others are bounded by it.
    pub const ALL: [TunedSetting; 4] = [
        Self::MaxBufferSize,
        Self::InitialCapacity,
        Self::MaxIdleBuffers,
        Self::MaxIdleBytes,
    ];

    /// The config key, also the `setting` label of `heapscape_pool_auto_tune_moves_total`.
    pub const fn as_str(self) -> &'static str {
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

    pub(crate) fn set(self, config: &mut PoolConfig, value: usize) {
        *match self {
            Self::MaxBufferSize => &mut config.max_buffer_size,
            Self::InitialCapacity => &mut config.initial_capacity,
            Self::MaxIdleBuffers => &mut config.max_idle_buffers,
            Self::MaxIdleBytes => &mut config.max_idle_bytes,
        } = value;
    }
}
