//! Plain-data snapshots of a pool: counters, gauges, discards by reason and the size
//! histograms, with the recommendations ops tune the pool from and what each candidate max
//! would cost.

use std::time::Duration;

use crate::candidate::regrowth;
use crate::config::{OverMaxPolicy, TunedSetting};
use crate::histogram::neighbour_bounds;

pub use crate::candidate::{Candidate, CandidateRole};
pub use crate::discards::{DiscardReason, Discards};
pub use crate::histogram::{
    FINE_BUCKETS, FINE_BUCKETS_PER_OCTAVE, FineSizeHistogram, SIZE_BUCKETS, SizeHistogram,
};

/// A snapshot of a pool's counters, gauges and size histograms, from
/// [`Pool::stats`](crate::Pool::stats).
///
/// Counters and the histograms `lengths` and `capacities` are totals since the pool was
/// built. The recommendations, the what-if and the candidates read the recent window instead
/// (`recent_lengths`, `peak_held`: the last `recommendation_window`, default 1 h), so a
/// change in traffic shows in them within one window. The snapshot sums per-thread counters
/// that keep changing while it is taken, so under load it is consistent per counter, not across
/// counters. The idle gauges are read with the depot locked, so they never exceed the idle
/// caps in force (once every thread has seen a lowered cap), even while buffers move between
/// threads' private slots and the depot.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStats {
    /// `get` calls served by an idle buffer.
    pub hits: u64,
    /// `get` calls that allocated a new buffer.
    pub misses: u64,
    /// Buffers returned to the pool (dropped guards and donations).
    pub returns: u64,
    /// Buffers taken out for good with `detach`.
    pub detaches: u64,
    /// Buffers given to the pool with `donate` (counted in `returns` too).
    pub donations: u64,
    /// Returned buffers shrunk to the max buffer size and kept.
    pub shrinks: u64,
    /// Returned buffers whose capacity grew while on loan: each grew by reallocating (and
    /// copying what it held) at least once. A buffer that took the pool's spare counts only
    /// if it grew past the spare ([`PooledBuf::reserve`](crate::PooledBuf::reserve)).
    pub regrows: u64,
    /// Buffers returned empty (length 0: typically a request that failed after `get`),
    /// counted in `returns` but left out of the lengths and the recommendations.
    pub empty_returns: u64,
    /// Buffers released, by reason: `discards.over_max`, or `discards[reason]` for a
    /// [`DiscardReason`].
    pub discards: Discards,
    /// Idle buffers held now.
    pub idle_buffers: u64,
    /// Bytes (capacities) of the idle buffers held now.
    pub idle_bytes: u64,
    /// The initial capacity in force.
    pub initial_capacity: u64,
    /// The max buffer size in force.
    pub max_buffer_size: u64,
    /// The idle-bytes cap in force.
    pub max_idle_bytes: u64,
    /// The idle-buffers cap in force.
    pub max_idle_buffers: u64,
    /// Buffers in use now: gets and donations minus returns and detaches.
    pub in_use: u64,
    /// The most buffers the pool held at once over the recommendation window, in use or idle,
    /// as sampled at each read of the stats ([`Pool::stats`](crate::Pool::stats),
    /// [`Pool::publish`](crate::Pool::publish): every heartbeat tick).
    ///
    /// Why held, not in use: a sample of buffers in use sees only the requests of that instant
    /// and misses a burst between two reads. The pool creates a buffer only when none is idle,
    /// so the buffers it holds rise to the peak of concurrent use and stay there (as idle
    /// ones) until caps, trims or a reconfigure release them: any read after the burst sees it.
    pub peak_held: u64,
    /// The most idle bytes held at once over the recommendation window, as sampled at each
    /// read of the stats: the idle memory observed, where [`Candidate::idle_bytes_bound`] is
    /// the most the caps allow.
    pub peak_idle_bytes: u64,
    /// Returns discarded by an idle cap (`idle_buffers_cap`, `idle_bytes_cap`) within the
    /// recommendation window: a burst the caps could not keep, which the recommended idle caps
    /// make room for.
    pub recent_idle_cap_discards: u64,
    /// The time the window's figures cover: the recommendation window, or the pool's age
    /// while it is younger. Rates over the window divide by it.
    pub recent_span: Duration,
    /// The window the recommendations cover.
    pub recommendation_window: Duration,
    /// The fewest returns in the window a recommendation rests on
    /// ([`PoolConfig::min_returns`](crate::PoolConfig::min_returns)); below it, every
    /// recommendation and candidate is `None`.
    pub recommendation_min_returns: u64,
    /// The over-max policy in force.
    pub over_max: OverMaxPolicy,
    /// The percentile used by [`PoolStats::recommended_max_buffer_size`].
    pub recommend_percentile: f64,
    /// Lengths of returned buffers (what users actually wrote), empty ones left out, in the
    /// fine buckets the recommendations read.
    pub lengths: FineSizeHistogram,
    /// Capacities of returned buffers (what they cost), before any shrink.
    pub capacities: SizeHistogram,
    /// Lengths of the buffers returned within the recommendation window, empty ones left out,
    /// in fine buckets: what the recommendations, the what-if and the candidates are read
    /// from. A return counts in the window from the first read of the stats after it.
    pub recent_lengths: FineSizeHistogram,
    /// What auto-tuning is doing.
    pub auto_tune: AutoTuneStats,
}

/// Auto-tuning's state in a [`PoolStats`] snapshot.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AutoTuneStats {
    /// Whether the pool tunes itself.
    pub enabled: bool,
    /// The lowest max buffer size auto-tuning may set.
    pub lowest_max_buffer_size: u64,
    /// The highest max buffer size auto-tuning may set: the configured bound, or
    /// `max_idle_bytes` when that is lower.
    pub highest_max_buffer_size: u64,
    /// Where each setting is heading, in [`TunedSetting::ALL`]
    /// order: the recommendation within the bounds and ceilings, as of the last
    /// [`Pool::auto_tune`](crate::Pool::auto_tune). The value in force while auto-tuning is
    /// off or the window holds no return.
    pub targets: [u64; TunedSetting::ALL.len()],
    /// Moves made per setting since the pool was built, in
    /// [`TunedSetting::ALL`] order.
    pub moves: [u64; TunedSetting::ALL.len()],
}

impl AutoTuneStats {
    /// The moves made to `setting` since the pool was built.
    pub fn moves_of(&self, setting: TunedSetting) -> u64 {
        self.moves[setting.index()]
    }

    /// Where `setting` is heading (see [`AutoTuneStats::targets`]).
    pub fn target_of(&self, setting: TunedSetting) -> u64 {
        self.targets[setting.index()]
    }
}

impl PoolStats {
    /// All `get` calls: hits + misses.
    pub fn gets(&self) -> u64 {
        self.hits + self.misses
    }

    /// The share of `get` calls served from the pool.
    ///
    /// # Definition
    /// `hits / (hits + misses)`, or 0 before the first `get`.
    ///
    /// # Interpretation
    /// Close to 1 means the pool absorbs the allocation churn. A low ratio with discards by
    /// `idle_*_cap` means the caps are too small for the concurrency; with `over_max`
    /// discards, the max buffer size is below what requests need.
    ///
    /// ```
    /// let mut stats = heapscape_pool::PoolStats::default();
    /// stats.hits = 3;
    /// stats.misses = 1;
    /// assert_eq!(stats.hit_ratio(), 0.75);
    /// ```
    pub fn hit_ratio(&self) -> f64 {
        match self.gets() {
            0 => 0.0,
            gets => self.hits as f64 / gets as f64,
        }
    }

    /// The returns the recommendations rest on: those within the window, empty ones left out.
    pub fn recent_returns(&self) -> u64 {
        self.recent_lengths.count()
    }

    /// Whether the window holds enough returns for a recommendation:
    /// [`PoolStats::recent_returns`] is at least `recommendation_min_returns` (and at least
    /// one).
    ///
    /// # Interpretation
    /// Below it, a percentile is decided by a few returns (below about `1 / (1 - p)` returns,
    /// the p-th percentile is the largest one), so no recommendation is given: the gauges read
    /// NaN, auto-tuning holds still, `heapscape recommend` says "not enough data".
    pub fn has_enough_returns(&self) -> bool {
        self.recent_returns() >= self.recommendation_min_returns.max(1)
    }

    /// The max buffer size the data recommends.
    ///
    /// # Definition
    /// The `recommend_percentile` (default p95) of the lengths returned within the window,
    /// rounded up to the bound of its fine bucket (at most 19.8 % above it for lengths over
    /// 64 bytes): the smallest bucket bound with at most `1 - recommend_percentile` of the
    /// window's returns above it. `None` without enough returns in the window
    /// ([`PoolStats::has_enough_returns`]).
    ///
    /// # Interpretation
    /// With it as the max, about `1 - recommend_percentile` of returns would need a buffer
    /// over the cap: a cap below it makes large requests regrow their buffer often; one far
    /// above it keeps memory idle for rare requests. [`PoolStats::candidates`] shows both
    /// costs for it and its neighbours.
    ///
    /// ```
    /// let mut stats = heapscape_pool::PoolStats::default();
    /// stats.recommend_percentile = 0.95;
    /// for _ in 0..95 { stats.recent_lengths.record(100_000); }
    /// for _ in 0..5 { stats.recent_lengths.record(3_000_000); }
    /// assert_eq!(stats.recommended_max_buffer_size(), Some(110_592)); // a power of two: 131_072
    /// stats.recommendation_min_returns = 400;
    /// assert_eq!(stats.recommended_max_buffer_size(), None); // 100 returns are not enough
    /// ```
    pub fn recommended_max_buffer_size(&self) -> Option<u64> {
        if !self.has_enough_returns() {
            return None;
        }
        self.recent_lengths.quantile(self.recommend_percentile)
    }

    /// The initial capacity the data recommends.
    ///
    /// # Definition
    /// The median of the lengths returned within the window, rounded up to the bound of its
    /// fine bucket, and never above [`PoolStats::recommended_max_buffer_size`]; `None`
    /// without enough returns in the window.
    ///
    /// # Interpretation
    /// New buffers of this capacity serve half of the requests without growing;
    /// [`PoolStats::regrowth_from`] tells how often the others grow.
    ///
    /// ```
    /// let mut stats = heapscape_pool::PoolStats::default();
    /// stats.recommend_percentile = 0.95;
    /// for len in [1000, 3000, 5000] { stats.recent_lengths.record(len); }
    /// assert_eq!(stats.recommended_initial_capacity(), Some(3456));
    /// ```
    pub fn recommended_initial_capacity(&self) -> Option<u64> {
        let median = self.recent_lengths.quantile(0.5)?;
        Some(median.min(self.recommended_max_buffer_size()?))
    }

    /// What-if: the share (0..=1) of the window's returns longer than a max buffer size of
    /// `max`, the same number as [`Candidate::over_max_ratio`] and the
    /// `heapscape_pool_candidate_over_max_ratio` gauge.
    ///
    /// # Definition
    /// The share of the lengths returned within the window above `max`: exact for a fine
    /// bucket bound (such as the candidates), otherwise an upper estimate.
    ///
    /// # Interpretation
    /// With `max` as the max, each such return is shrunk to it ([`OverMaxPolicy::Shrink`]) or
    /// dropped ([`OverMaxPolicy::Drop`]), and its buffer regrows on its next large use: pick
    /// the smallest `max` whose share you can afford ([`PoolStats::candidate`] puts a cost on
    /// it).
    ///
    /// ```
    /// let mut stats = heapscape_pool::PoolStats::default();
    /// for len in [1000, 2000, 900_000, 3_000_000] { stats.recent_lengths.record(len); }
    /// assert_eq!(stats.over_max_ratio(1 << 20), 0.25);
    /// assert_eq!(stats.candidate(1 << 20).over_max_ratio, 0.25);
    /// ```
    pub fn over_max_ratio(&self, max: u64) -> f64 {
        self.recent_lengths.fraction_above(max)
    }

    /// How a buffer of `capacity` bytes grows to serve the window's returns: reallocations
    /// and bytes copied per return, on average over every return in the window.
    ///
    /// # Definition
    /// A `Vec` grows by doubling, copying what it holds at each step: a return of length
    /// `L > capacity` took `k = ceil(log2(L / capacity))` reallocations and copied
    /// `capacity * (2^k - 1)` bytes. `L` is its fine bucket's bound (at most 19.8 % over), so
    /// the figures are upper estimates. `(0, 0)` without returns.
    ///
    /// # Interpretation
    /// For the initial capacity, what a new buffer (a miss) costs before it fits its request.
    ///
    /// ```
    /// let mut stats = heapscape_pool::PoolStats::default();
    /// for len in [1000, 4096, 16_384] { stats.recent_lengths.record(len); }
    /// let (reallocations, copied) = stats.regrowth_from(4096);
    /// assert_eq!(reallocations, 2.0 / 3.0); // 16 KiB: 4 -> 8 -> 16 KiB
    /// assert_eq!(copied, (4096.0 + 8192.0) / 3.0);
    /// ```
    pub fn regrowth_from(&self, capacity: u64) -> (f64, f64) {
        let returns = self.recent_returns();
        if returns == 0 {
            return (0.0, 0.0);
        }
        let (reallocations, copied) = regrowth(self.recent_lengths.buckets(), capacity);
        (reallocations / returns as f64, copied / returns as f64)
    }

    /// What a max buffer size of `max` would cost over the window.
    ///
    /// # Definition
    /// - [`Candidate::over_max_ratio`] is [`PoolStats::over_max_ratio`]`(max)`.
    /// - [`Candidate::regrows_per_second`] and [`Candidate::regrow_bytes_per_second`]: each
    ///   return over `max` regrows, by doubling, from `max` (shrink policy) or from the
    ///   initial capacity (drop policy) to its length (see [`PoolStats::regrowth_from`]),
    ///   over [`PoolStats::recent_span`].
    /// - [`Candidate::idle_bytes_bound`]: `min(max_idle_buffers, peak_held) * max`, capped by
    ///   `max_idle_bytes`.
    ///
    /// # Interpretation
    /// The two sides of the trade: the churn of the returns that regrow their buffer, and
    /// the most idle memory the pool may hold once the peak's buffers come back (the
    /// observed peak is [`PoolStats::peak_idle_bytes`]).
    ///
    /// See [`Candidate`] for an example.
    pub fn candidate(&self, max: u64) -> Candidate {
        let buffers = self.max_idle_buffers.min(self.peak_held);
        let from = match self.over_max {
            OverMaxPolicy::Shrink => max,
            OverMaxPolicy::Drop => self.initial_capacity.min(max),
        };
        let above_max = self
            .recent_lengths
            .buckets()
            .filter(|&(bound, _)| bound > max);
        let (regrows, copied) = regrowth(above_max, from);
        let seconds = self.recent_span.as_secs_f64().max(1.0);
        Candidate {
            max_buffer_size: max,
            over_max_ratio: self.over_max_ratio(max),
            regrows_per_second: regrows / seconds,
            regrow_bytes_per_second: copied / seconds,
            idle_bytes_bound: buffers.saturating_mul(max).min(self.max_idle_bytes),
        }
    }

    /// The max buffer size in force, the recommended one and its neighbours, each with its
    /// cost, in [`CandidateRole::ALL`] order: the current max,
    /// one fine bucket lower than the recommendation, the recommendation, one fine bucket
    /// higher.
    ///
    /// # Definition
    /// [`PoolStats::candidate`] of each; `None` without enough returns in the window.
    ///
    /// # Interpretation
    /// Going one bucket lower saves about a fifth of the idle memory and shows how many more
    /// returns would regrow; one bucket higher shows what the extra memory would buy; the
    /// current max is what changing costs or saves against.
    ///
    /// ```
    /// use heapscape_pool::PoolStats;
    /// let mut stats = PoolStats::default();
    /// (stats.recommend_percentile, stats.max_idle_buffers) = (0.9, 64);
    /// (stats.max_idle_bytes, stats.peak_held) = (1 << 30, 4);
    /// stats.max_buffer_size = 4 << 20;
    /// for len in 1..=100 { stats.recent_lengths.record(len * 1000); }
    /// let [current, lower, recommended, higher] = stats.candidates().unwrap();
    /// assert_eq!(recommended.max_buffer_size, 93_184); // the exact p90 is 90_000
    /// assert_eq!(recommended.over_max_ratio, 0.07);
    /// assert_eq!(recommended.idle_bytes_bound, 4 * 93_184);
    /// assert_eq!((lower.max_buffer_size, lower.over_max_ratio), (77_824, 0.23));
    /// assert_eq!((higher.max_buffer_size, higher.over_max_ratio), (110_592, 0.0));
    /// assert_eq!((current.max_buffer_size, current.over_max_ratio), (4 << 20, 0.0));
    /// ```
    pub fn candidates(&self) -> Option<[Candidate; 4]> {
        let recommended = self.recommended_max_buffer_size()?;
        let (lower, higher) = neighbour_bounds(recommended);
        Some([self.max_buffer_size, lower, recommended, higher].map(|max| self.candidate(max)))
    }

    /// The max idle buffers the data recommends.
    ///
    /// # Definition
    /// [`PoolStats::peak_held`] over the window plus an eighth (rounded up, at least one) of
    /// headroom, plus one for the spare when some of the window's returns are longer than
    /// the recommended max ([`PoolStats::recommends_spare`]); when an idle cap discarded
    /// returns within the window ([`PoolStats::recent_idle_cap_discards`]), at least twice
    /// the max idle buffers in force. `None` without enough returns in the window.
    ///
    /// # Interpretation
    /// Enough idle buffers to serve the window's peak from the pool once its buffers have
    /// come back, and to keep the spare beside them; more only hold memory. A cap that
    /// discards a burst also hides it (the buffers it dropped are never seen held), so the
    /// recommendation then grows by more than auto-tuning's band, until the held peak shows
    /// the burst.
    ///
    /// ```
    /// let mut stats = heapscape_pool::PoolStats::default();
    /// stats.recent_lengths.record(1000);
    /// stats.peak_held = 20;
    /// assert_eq!(stats.recommended_max_idle_buffers(), Some(23));
    /// (stats.max_idle_buffers, stats.recent_idle_cap_discards) = (16, 5);
    /// assert_eq!(stats.recommended_max_idle_buffers(), Some(32));
    /// ```
    pub fn recommended_max_idle_buffers(&self) -> Option<u64> {
        if !self.has_enough_returns() {
            return None;
        }
        let spare = u64::from(self.recommends_spare());
        let from_peak = self.peak_held + self.peak_held.div_ceil(8).max(1) + spare;
        if self.recent_idle_cap_discards > 0 {
            return Some(from_peak.max(self.max_idle_buffers.saturating_mul(2)));
        }
        Some(from_peak)
    }

    /// The max idle bytes the data recommends.
    ///
    /// # Definition
    /// [`PoolStats::recommended_max_idle_buffers`] times
    /// [`PoolStats::recommended_max_buffer_size`], plus one max more when the recommendation
    /// keeps a spare ([`PoolStats::recommends_spare`]).
    ///
    /// # Interpretation
    /// Room for the recommended number of idle buffers of the recommended max size, the spare
    /// (up to twice the max) among them, so that neither idle cap discards what the other
    /// allows.
    ///
    /// ```
    /// let mut stats = heapscape_pool::PoolStats::default();
    /// stats.recommend_percentile = 1.0;
    /// stats.recent_lengths.record(4096);
    /// stats.peak_held = 7;
    /// assert_eq!(stats.recommended_max_idle_bytes(), Some(8 * 4096));
    /// ```
    pub fn recommended_max_idle_bytes(&self) -> Option<u64> {
        let buffers = self.recommended_max_idle_buffers()?;
        let spare = u64::from(self.recommends_spare());
        Some(
            buffers
                .saturating_add(spare)
                .saturating_mul(self.recommended_max_buffer_size()?),
        )
    }

    /// Whether the recommended settings leave room for the spare: some of the window's
    /// returns are longer than the recommended max.
    ///
    /// # Definition
    /// [`PoolStats::over_max_ratio`] of [`PoolStats::recommended_max_buffer_size`] above 0;
    /// `false` without a recommendation.
    ///
    /// # Interpretation
    /// A max below the longest returns (the p95 leaves about 5 % above it) has streams grow
    /// past it: the pool then keeps one buffer returned over the max whole, the spare (up to
    /// twice the max), for the next such stream to take instead of regrowing. Idle caps
    /// sized for the held peak alone have no room for it beside a full set of idle buffers,
    /// so the pool would let it go whenever its buffers came back, and the next stream past
    /// the max would regrow and allocate again.
    ///
    /// ```
    /// let mut stats = heapscape_pool::PoolStats::default();
    /// for len in 1..=100 { stats.recent_lengths.record(len * 1000); }
    /// stats.peak_held = 8;
    /// let max = stats.recommended_max_buffer_size().unwrap();
    /// assert!(stats.recommends_spare());
    /// assert_eq!(stats.recommended_max_idle_buffers(), Some(8 + 1 + 1));
    /// assert_eq!(stats.recommended_max_idle_bytes(), Some((10 + 1) * max));
    /// stats.recommend_percentile = 1.0;
    /// assert!(!stats.recommends_spare());
    /// assert_eq!(stats.recommended_max_idle_buffers(), Some(9));
    /// ```
    pub fn recommends_spare(&self) -> bool {
        self.recommended_max_buffer_size()
            .is_some_and(|max| self.over_max_ratio(max) > 0.0)
    }
}
