//! The pool's one error type.

/// Why a pool could not be built or reconfigured. Each message says what to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The pool name is empty.
    #[error(
        "the pool name is empty: give the pool a short name, it becomes the `pool` metric label"
    )]
    EmptyName,
    /// A size, cap or timeout is zero.
    #[error("`{field}` is zero: set it to a positive value")]
    Zero {
        /// The offending setting.
        field: &'static str,
    },
    /// New buffers would be larger than the largest buffer the pool keeps.
    #[error(
        "initial_capacity ({initial_capacity} bytes) is larger than max_buffer_size \
         ({max_buffer_size} bytes): lower initial_capacity or raise max_buffer_size (on a live \
         pool, Pool::set_initial_capacity before Pool::set_max_buffer_size)"
    )]
    InitialAboveMax {
        /// The configured initial capacity.
        initial_capacity: usize,
        /// The configured max buffer size.
        max_buffer_size: usize,
    },
    /// Not even one buffer of the max size fits under the idle-bytes cap.
    #[error(
        "max_buffer_size ({max_buffer_size} bytes) is larger than max_idle_bytes \
         ({max_idle_bytes} bytes), so no buffer of the max size could be kept: \
         raise max_idle_bytes or lower max_buffer_size"
    )]
    MaxAboveIdleBytes {
        /// The configured max buffer size.
        max_buffer_size: usize,
        /// The configured idle-bytes cap.
        max_idle_bytes: usize,
    },
    /// The recommendation percentile is outside (0, 1].
    #[error(
        "recommend_percentile is {0}: use a fraction in (0, 1], e.g. 0.95 for the 95th percentile"
    )]
    Percentile(f64),
    /// The auto-tuning bounds of the max buffer size are the wrong way round.
    #[error(
        "auto_tune.lowest_max_buffer_size ({min} bytes) is above auto_tune.highest_max_buffer_size \
         ({max} bytes): the lower bound of the max buffer size must not exceed the upper bound"
    )]
    AutoTuneBounds {
        /// The lower bound.
        min: usize,
        /// The upper bound.
        max: usize,
    },
    /// Auto-tuning could never set a max buffer size that a buffer could be kept at.
    #[error(
        "auto_tune.lowest_max_buffer_size ({min} bytes) is above max_idle_bytes \
         ({max_idle_bytes} bytes): lower the bound or raise max_idle_bytes"
    )]
    AutoTuneMinAboveIdleBytes {
        /// The lower bound.
        min: usize,
        /// The idle-bytes cap.
        max_idle_bytes: usize,
    },
    /// Auto-tuning would start outside its own bounds.
    #[error(
        "max_buffer_size ({max_buffer_size} bytes) is outside the auto-tuning bounds \
         {min}..={max} bytes: it is where auto-tuning starts, so set it within \
         auto_tune.lowest_max_buffer_size and auto_tune.highest_max_buffer_size"
    )]
    AutoTuneStartOutside {
        /// The configured max buffer size.
        max_buffer_size: usize,
        /// The lower bound.
        min: usize,
        /// The upper bound.
        max: usize,
    },
    /// The recommendation window is shorter than 1 s.
    #[error(
        "recommendation_window is {0:?}, below the minimum of 1s: write at least 1s, e.g. 1h \
         (a shorter window holds only the last few returns, so recommendations and auto-tuning \
         jump with every few requests)"
    )]
    Window(std::time::Duration),
    /// The auto-tuning cooldown is shorter than 1 s.
    #[error(
        "auto_tune.cooldown is {0:?}, below the minimum of 1s: write at least 1s, e.g. 10m \
         (each setting moves at most once per cooldown; a shorter one lets auto-tuning move \
         the pool on every tick)"
    )]
    Cooldown(std::time::Duration),
    /// The hysteresis is outside [0.2, 1).
    #[error(
        "auto_tune.hysteresis is {0}: use a fraction in [0.2, 1), e.g. 0.25 to ignore moves \
         smaller than a quarter of the value in force (below 0.2, one fine bucket, a \
         recommendation flickering between neighbouring buckets moves the pool back and forth)"
    )]
    Hysteresis(f64),
}
