//! What a candidate max buffer size would cost: the plain data behind the pool-tuning table.

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
/// for _ in 0..3 { stats.recent_lengths.record(100_000); }
/// stats.recent_lengths.record(900_000);
/// let candidate = stats.candidate(1 << 20);
/// assert_eq!(candidate.max_buffer_size, 1 << 20);
/// assert_eq!(candidate.over_max_ratio, 0.0);
/// assert_eq!(candidate.idle_bytes, 8 << 20); // 8 buffers in use at the peak, 1 MiB each
/// assert_eq!(stats.candidate(200_000).over_max_ratio, 0.25);
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
    /// The idle memory the candidate implies, in bytes: `min(max_idle_buffers,
    /// peak_held) * max_buffer_size`, capped by `max_idle_bytes`. An upper bound: idle
    /// buffers are shrunk to the max only when they grew past it.
    pub idle_bytes: u64,
}

/// Which of the three candidates of
/// [`PoolStats::candidates`](crate::PoolStats::candidates) a [`Candidate`] is: the
/// `candidate` label of the `heapscape_pool_candidate_*` gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CandidateRole {
    /// One fine bucket below the recommendation.
    Lower,
    /// The recommended max buffer size.
    Recommended,
    /// One fine bucket above the recommendation.
    Higher,
}

impl CandidateRole {
    /// Every role, in the order of [`PoolStats::candidates`](crate::PoolStats::candidates).
    pub const ALL: [CandidateRole; 3] = [Self::Lower, Self::Recommended, Self::Higher];

    /// The `candidate` label value: `lower`, `recommended` or `higher`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lower => "lower",
            Self::Recommended => "recommended",
            Self::Higher => "higher",
        }
    }
}
