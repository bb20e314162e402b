//! What a candidate max buffer size would cost: the plain data behind the pool-tuning table,
//! and the growth rule its churn is measured by.

/// The cost of one candidate max buffer size over the recommendation window, from
/// [`PoolStats::candidate`](crate::PoolStats::candidate) and
/// [`PoolStats::candidates`](crate::PoolStats::candidates).
///
/// A pool trades churn (returns over the max regrow their buffer on the next large request)
/// against memory held idle; a candidate puts a number on each side.
///
/// ```
/// use heapscape_pool::PoolStats;
/// let mut stats = PoolStats::default();
/// (stats.max_idle_buffers, stats.max_idle_bytes) = (64, 1 << 30);
/// stats.peak_held = 8;
/// stats.recent_span = std::time::Duration::from_secs(10);
/// for _ in 0..3 { stats.recent_lengths.record(100_000); }
/// stats.recent_lengths.record(900_000);
/// let candidate = stats.candidate(1 << 20);
/// assert_eq!(candidate.max_buffer_size, 1 << 20);
/// assert_eq!(candidate.over_max_ratio, 0.0);
/// assert_eq!(candidate.regrow_bytes_per_second, 0.0);
/// assert_eq!(candidate.idle_bytes_bound, 8 << 20); // 8 buffers in use at the peak, 1 MiB each
/// let lower = stats.candidate(200_000);
/// assert_eq!(lower.over_max_ratio, 0.25);
/// // 900 kB (in the bucket up to 1 MiB) regrows from 200 kB: to 400, 800, 1,600 kB.
/// assert_eq!(lower.regrows_per_second, 0.3);
/// assert_eq!(lower.regrow_bytes_per_second, (200_000.0 + 400_000.0 + 800_000.0) / 10.0);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Candidate {
    /// The candidate max buffer size, in bytes.
    pub max_buffer_size: u64,
    /// The share (0..=1) of the window's returns longer than the candidate: with it as the
    /// max, each of them would regrow its buffer (from the max with the shrink policy, from
    /// the initial capacity with the drop policy).
    pub over_max_ratio: f64,
    /// Reallocations per second the returns over the candidate took to regrow, by doubling,
    /// from the candidate (shrink policy) or the initial capacity (drop policy).
    pub regrows_per_second: f64,
    /// Bytes per second those reallocations copied: what the candidate costs in churn.
    pub regrow_bytes_per_second: f64,
    /// The most idle memory the candidate allows, in bytes: `min(max_idle_buffers,
    /// peak_held) * max_buffer_size`, capped by `max_idle_bytes`. A bound, not a measurement:
    /// idle buffers are shrunk to the max only when they grew past it (the observed peak is
    /// [`PoolStats::peak_idle_bytes`](crate::PoolStats::peak_idle_bytes)).
    pub idle_bytes_bound: u64,
}

/// Reallocations and bytes copied growing buffers of capacity `from` by doubling to every
/// length of `lengths` (`(bucket bound, count)`) above it, each taken as its bucket's bound.
///
/// A `Vec` that needs more room doubles its capacity (or takes what it needs, when more) and
/// copies what it holds; a buffer filled in chunks is full when it grows, so a step from `c`
/// to `2c` copies `c` bytes: `k = ceil(log2(L / from))` steps copy `from * (2^k - 1)`.
pub(crate) fn regrowth(lengths: impl Iterator<Item = (u64, u64)>, from: u64) -> (f64, f64) {
    let from = from.max(1);
    let (mut reallocations, mut copied) = (0.0, 0.0);
    for (length, count) in lengths.filter(|&(bound, count)| bound > from && count > 0) {
        let steps = (length as f64 / from as f64).log2().ceil();
        reallocations += count as f64 * steps;
        copied += count as f64 * from as f64 * (steps.exp2() - 1.0);
    }
    (reallocations, copied)
}

/// Which of the four candidates of
/// [`PoolStats::candidates`](crate::PoolStats::candidates) a [`Candidate`] is: the
/// `candidate` label of the `heapscape_pool_candidate_*` gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CandidateRole {
    /// The max buffer size in force.
    Current,
    /// One fine bucket below the recommendation.
    Lower,
    /// The recommended max buffer size.
    Recommended,
    /// One fine bucket above the recommendation.
    Higher,
}

impl CandidateRole {
    /// Every role, in the order of [`PoolStats::candidates`](crate::PoolStats::candidates).
    pub const ALL: [CandidateRole; 4] =
        [Self::Current, Self::Lower, Self::Recommended, Self::Higher];

    /// The `candidate` label value: `current`, `lower`, `recommended` or `higher`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Lower => "lower",
            Self::Recommended => "recommended",
            Self::Higher => "higher",
        }
    }
}
