//! Size histograms: counts of sizes in power-of-two buckets ([`SizeHistogram`]) and in fine
//! buckets, four per octave ([`FineSizeHistogram`]: the resolution the recommendations are read
//! at), both read by one quantile and share-above rule (`Counts`).
//!
//! Each power-of-two octave `(2^(k-1), 2^k]` is split in four at about `2^(1/4)` steps, so a
//! bucket's upper bound is at most 19.8 % above any size it holds (for sizes above 64 bytes;
//! below that, rounding to whole bytes may leave a bucket empty or make it wider). The four
//! buckets of an octave add up to its power-of-two bucket exactly.
//!
//! The first octave holds the sizes 0 and 1 in buckets of their own: bucket 0 counts the
//! empty returns (a request that failed after `get` writes nothing), which the recommendations
//! leave out, and bucket 1 the returns of one byte.

/// Counts in `N` buckets, smallest bound first: what both histograms hold, and the one
/// quantile and share-above rule they are read by. A bucket's bound comes from the histogram
/// (`bound_of(i)`, the inclusive upper bound of bucket `i`, rising with `i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts<const N: usize>([u64; N]);

impl<const N: usize> Default for Counts<N> {
    fn default() -> Self {
        Self([0; N])
    }
}

impl<const N: usize> Counts<N> {
    fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Adds every count of `other`.
    fn add(&mut self, other: &Self) {
        for (count, more) in self.0.iter_mut().zip(&other.0) {
            *count += more;
        }
    }

    /// Bucket-wise difference `self - earlier`, for counts published by delta.
    fn since(&self, earlier: &Self) -> Self {
        let mut delta = *self;
        for (d, before) in delta.0.iter_mut().zip(&earlier.0) {
            *d = d.saturating_sub(*before);
        }
        delta
    }

    fn buckets(&self, bound_of: fn(usize) -> u64) -> impl Iterator<Item = (u64, u64)> + Clone + '_ {
        self.0
            .iter()
            .enumerate()
            .map(move |(i, &count)| (bound_of(i), count))
    }

    /// The smallest bucket bound with at least a fraction `q` (0..=1) of the observations at or
    /// below it; `None` without observations.
    fn quantile(&self, bound_of: fn(usize) -> u64, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bound, count) in self.buckets(bound_of) {
            seen += count;
            if seen >= rank {
                return Some(bound);
            }
        }
        Some(u64::MAX)
    }

    /// The fraction (0..=1) of observations in buckets whose bound is above `size`; 0 without
    /// observations. Exact when `size` is a bucket bound; otherwise the bucket that straddles
    /// `size` counts as larger (an upper estimate).
    fn fraction_above(&self, bound_of: fn(usize) -> u64, size: u64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let above: u64 = self
            .buckets(bound_of)
            .filter(|&(bound, _)| bound > size)
            .map(|(_, count)| count)
            .sum();
        above as f64 / total as f64
    }
}

/// Number of power-of-two buckets of a [`SizeHistogram`]: bucket `i` counts sizes in
/// `(2^(i-1), 2^i]`, bucket 0 counts 0 and 1.
pub const SIZE_BUCKETS: usize = 65;

/// Index of the power-of-two bucket holding `size`: the smallest `i` with `size <= 2^i`.
#[inline]
pub(crate) fn bucket_of(size: usize) -> usize {
    // Branch-free: sizes 0 and 1 both saturate to 0, whose leading zeros are all the bits.
    (usize::BITS - size.saturating_sub(1).leading_zeros()) as usize
}

/// Upper bound (inclusive) of bucket `i`, saturating at `u64::MAX`.
#[inline]
pub(crate) fn bucket_bound(i: usize) -> u64 {
    1u64.checked_shl(i as u32).unwrap_or(u64::MAX)
}

/// Counts of sizes (in bytes) in power-of-two buckets.
///
/// Bucket `i` holds the sizes `s` with `2^(i-1) < s <= 2^i` (bucket 0 holds 0 and 1), so a
/// quantile read from it is the power of two at or above the true quantile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SizeHistogram {
    counts: Counts<SIZE_BUCKETS>,
}

impl SizeHistogram {
    /// Adds one observation of `size` bytes.
    pub fn record(&mut self, size: usize) {
        self.counts.0[bucket_of(size)] += 1;
    }

    pub(crate) fn add_bucket(&mut self, bucket: usize, count: u64) {
        self.counts.0[bucket] += count;
    }

    /// The number of observations.
    pub fn count(&self) -> u64 {
        self.counts.count()
    }

    /// `(upper bound in bytes, count)` for every bucket, smallest first.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + Clone + '_ {
        self.counts.buckets(bucket_bound)
    }

    /// The size at or below which a fraction `q` (0..=1) of observations fall, rounded up to
    /// the bucket's power of two; `None` without observations.
    ///
    /// ```
    /// use heapscape_pool::stats::SizeHistogram;
    /// let mut h = SizeHistogram::default();
    /// for size in [100, 200, 300, 5000] {
    ///     h.record(size);
    /// }
    /// assert_eq!(h.quantile(0.5), Some(256));
    /// assert_eq!(h.quantile(1.0), Some(8192));
    /// assert_eq!(SizeHistogram::default().quantile(0.5), None);
    /// ```
    pub fn quantile(&self, q: f64) -> Option<u64> {
        self.counts.quantile(bucket_bound, q)
    }

    /// The fraction (0..=1) of observations larger than `size`. For a `size` between two
    /// powers of two, the bucket that straddles it counts as larger (an upper estimate).
    pub fn fraction_above(&self, size: usize) -> f64 {
        self.counts.fraction_above(bucket_bound, size as u64)
    }

    /// Bucket-wise difference `self - earlier`, for counts published by delta.
    pub(crate) fn since(&self, earlier: &Self) -> Self {
        Self {
            counts: self.counts.since(&earlier.counts),
        }
    }
}

/// Buckets per power-of-two octave in a [`FineSizeHistogram`].
pub const FINE_BUCKETS_PER_OCTAVE: usize = 4;

/// Number of buckets of a [`FineSizeHistogram`]: four for each of the 65 power-of-two
/// buckets of a [`SizeHistogram`](crate::stats::SizeHistogram) (the first octave, sizes 0 and 1,
/// uses only its first).
pub const FINE_BUCKETS: usize = 65 * FINE_BUCKETS_PER_OCTAVE;

/// The bucket edges within an octave, in 64ths of the octave's lower edge above it:
/// `64 * (2^(j/4) - 1)` rounded so that each bucket is at most 19.8 % wide.
const EDGES: [u32; FINE_BUCKETS_PER_OCTAVE + 1] = [0, 12, 27, 44, 64];

/// The fine bucket (0..4) by a size's top seven bits: its leading one and the six bits after
/// it (64..128), or 0 for the sizes 0 and 1 (told apart by the caller). Indexing by seven bits rather than six saves
/// masking the leading one off on every return.
const BUCKET_OF_TOP_BITS: [u8; 128] = {
    let mut table = [0; 128];
    let mut mantissa = 0;
    while mantissa < 64 {
        let mut bucket = 0;
        while EDGES[bucket + 1] <= mantissa as u32 {
            bucket += 1;
        }
        table[64 + mantissa] = bucket as u8;
        mantissa += 1;
    }
    table
};

/// Index of the fine bucket holding `size`: its octave (as the power-of-two bucket, from the
/// leading zeros of `size - 1`) times four, plus a table lookup of its top seven bits; the
/// size 1 moves from bucket 0 to bucket 1, so that bucket 0 holds the empty returns only.
#[inline]
pub(crate) fn fine_bucket_of(size: usize) -> usize {
    let below = size.saturating_sub(1);
    let zeros = below.leading_zeros();
    let octave = (usize::BITS - zeros) as usize;
    // Shifted to the top, the leading one and the next six bits are the top seven; for 0
    // the shift by the full width wraps to 0, and so do they.
    let top_bits = below.wrapping_shl(zeros) >> (usize::BITS - 7);
    octave * FINE_BUCKETS_PER_OCTAVE
        + usize::from(BUCKET_OF_TOP_BITS[top_bits] & 3)
        + usize::from(size == 1)
}

/// Upper bound (inclusive) of fine bucket `i`, saturating at `u64::MAX`: 0 for the empty
/// returns, 1 for the rest of the first octave.
pub(crate) const fn fine_bucket_bound(i: usize) -> u64 {
    let (octave, bucket) = (i / FINE_BUCKETS_PER_OCTAVE, i % FINE_BUCKETS_PER_OCTAVE);
    if octave == 0 {
        return if i == 0 { 0 } else { 1 };
    }
    let lower = 1u128 << (octave - 1);
    let bound = lower + (lower * EDGES[bucket + 1] as u128).div_ceil(64);
    if bound > u64::MAX as u128 {
        u64::MAX
    } else {
        bound as u64
    }
}

/// The index of the fine bucket whose upper bound is `bound`, for a `bound` that is one (as
/// the `le` of an exported bucket); any other size maps to the bucket that holds it.
pub(crate) fn fine_bucket_of_bound(bound: u64) -> usize {
    fine_bucket_of(usize::try_from(bound).unwrap_or(usize::MAX))
}

/// Counts of sizes (in bytes) in fine buckets, four per power-of-two octave.
///
/// A quantile read from it is the bound of the fine bucket at or above the true quantile:
/// at most 19.8 % above it for sizes over 64 bytes, where a power-of-two bucket may be up to
/// 100 % above.
///
/// ```
/// use heapscape_pool::stats::FineSizeHistogram;
/// let mut h = FineSizeHistogram::default();
/// for size in [100, 200, 300, 5000] {
///     h.record(size);
/// }
/// assert_eq!(h.quantile(0.5), Some(216)); // a power of two would say 256
/// assert_eq!(h.quantile(1.0), Some(5824)); // and 8192
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FineSizeHistogram {
    counts: Counts<FINE_BUCKETS>,
}

impl FineSizeHistogram {
    /// Adds one observation of `size` bytes.
    pub fn record(&mut self, size: usize) {
        self.counts.0[fine_bucket_of(size)] += 1;
    }

    pub(crate) fn add_bucket(&mut self, bucket: usize, count: u64) {
        self.counts.0[bucket] += count;
    }

    /// A histogram from `(upper bound, count)` buckets such as an exporter's `le` buckets (not
    /// cumulative): each count lands in the fine bucket holding its bound, so buckets read
    /// back from the exported bounds ([`LENGTH_BUCKETS`](crate::metrics::LENGTH_BUCKETS)) give
    /// the histogram the pool counted. `u64::MAX` stands for `+Inf`.
    ///
    /// ```
    /// use heapscape_pool::stats::FineSizeHistogram;
    /// let mut counted = FineSizeHistogram::default();
    /// for size in [100, 200, 300, 5000] {
    ///     counted.record(size);
    /// }
    /// let read_back = FineSizeHistogram::from_buckets(counted.buckets());
    /// assert_eq!(read_back, counted);
    /// ```
    pub fn from_buckets(buckets: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut histogram = Self::default();
        for (bound, count) in buckets {
            histogram.counts.0[fine_bucket_of_bound(bound)] += count;
        }
        histogram
    }

    /// The histogram without its empty returns (length 0): what the recommendations read.
    pub(crate) fn without_empty(&self) -> Self {
        let mut histogram = *self;
        histogram.counts.0[0] = 0;
        histogram
    }

    /// The number of empty returns (length 0).
    pub(crate) fn empty(&self) -> u64 {
        self.counts.0[0]
    }

    /// Adds every count of `other`.
    pub(crate) fn add(&mut self, other: &Self) {
        self.counts.add(&other.counts);
    }

    /// Bucket-wise difference `self - earlier`.
    pub(crate) fn since(&self, earlier: &Self) -> Self {
        Self {
            counts: self.counts.since(&earlier.counts),
        }
    }

    /// The number of observations.
    pub fn count(&self) -> u64 {
        self.counts.count()
    }

    /// `(upper bound in bytes, count)` for every bucket, smallest first. Some small buckets
    /// share a bound (rounding to whole bytes leaves them empty); the first (bound 0) counts
    /// empty returns.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + Clone + '_ {
        self.counts.buckets(fine_bucket_bound)
    }

    /// The size at or below which a fraction `q` (0..=1) of observations fall, rounded up to
    /// the bound of its fine bucket; `None` without observations.
    ///
    /// That is the smallest bucket bound `m` with at most a fraction `1 - q` of observations
    /// above `m`.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        self.counts.quantile(fine_bucket_bound, q)
    }

    /// The fraction (0..=1) of observations larger than `size`; 0 without observations.
    /// Exact when `size` is a bucket bound; otherwise the bucket that straddles `size`
    /// counts as larger (an upper estimate).
    pub fn fraction_above(&self, size: u64) -> f64 {
        self.counts.fraction_above(fine_bucket_bound, size)
    }
}

/// The nearest bucket bounds strictly below and strictly above `size`'s bucket bound: the
/// neighbours of a candidate max (the lowest bound has no lower neighbour but itself).
pub(crate) fn neighbour_bounds(size: u64) -> (u64, u64) {
    let bound = fine_bucket_bound(fine_bucket_of(usize::try_from(size).unwrap_or(usize::MAX)));
    let bounds = || (0..FINE_BUCKETS).map(fine_bucket_bound);
    let lower = bounds().filter(|&b| b < bound).max().unwrap_or(bound);
    let higher = bounds().find(|&b| b > bound).unwrap_or(bound);
    (lower, higher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_size_lies_in_the_bucket_whose_bounds_enclose_it() {
        let mut sizes: Vec<usize> = (0..5000).collect();
        for shift in 10..63 {
            let p = 1usize << shift;
            sizes.extend([
                p - 1,
                p,
                p + 1,
                p + p / 5,
                p + p / 3,
                p + p / 2,
                p + p * 3 / 4,
            ]);
        }
        sizes.push(usize::MAX);
        for size in sizes {
            let i = fine_bucket_of(size);
            assert!(
                size as u64 <= fine_bucket_bound(i),
                "{size} above bucket {i}"
            );
            if i > 0 {
                let below = (0..i).map(fine_bucket_bound).max().unwrap();
                assert!(size as u64 > below, "{size} at or below bucket {}", i - 1);
            }
        }
        assert_eq!(fine_bucket_of(usize::MAX), FINE_BUCKETS - 1);
        assert_eq!(fine_bucket_bound(FINE_BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn bounds_rise_and_are_at_most_a_fifth_apart_above_64_bytes() {
        for i in 1..FINE_BUCKETS {
            let (before, bound) = (fine_bucket_bound(i - 1), fine_bucket_bound(i));
            assert!(bound >= before, "bucket {i}");
            // The widest bucket is (76, 91] in 64ths: 19.74 %.
            if before >= 64 && bound < u64::MAX {
                assert!(
                    u128::from(bound) * 76 <= u128::from(before + 1) * 91,
                    "bucket {i}: ({before}, {bound}] is too wide"
                );
            }
        }
        assert_eq!(
            (32..40).map(fine_bucket_bound).collect::<Vec<_>>(),
            [152, 182, 216, 256, 304, 364, 432, 512]
        );
    }

    #[test]
    fn empty_and_one_byte_returns_have_buckets_of_their_own() {
        assert_eq!((fine_bucket_of(0), fine_bucket_bound(0)), (0, 0));
        assert_eq!((fine_bucket_of(1), fine_bucket_bound(1)), (1, 1));
        let mut h = FineSizeHistogram::default();
        for size in [0, 0, 1, 100] {
            h.record(size);
        }
        assert_eq!((h.empty(), h.without_empty().count()), (2, 2));
        assert_eq!(FineSizeHistogram::from_buckets(h.buckets()), h);
    }

    #[test]
    fn neighbours_are_the_next_distinct_bounds() {
        assert_eq!(neighbour_bounds(256), (216, 304));
        assert_eq!(neighbour_bounds(250), (216, 304), "250 is in 256's bucket");
        assert_eq!(neighbour_bounds(1), (0, 2));
        assert_eq!(neighbour_bounds(u64::MAX).1, u64::MAX);
    }

    #[test]
    fn buckets_are_inclusive_powers_of_two() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 1);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(4), 2);
        assert_eq!(bucket_of(5), 3);
        assert_eq!(bucket_of(4096), 12);
        assert_eq!(bucket_of(4097), 13);
        assert_eq!(bucket_of(usize::MAX), 64);
        assert_eq!(bucket_bound(64), u64::MAX);
        for size in [1usize, 2, 3, 1000, 1 << 20, (1 << 20) + 1] {
            let i = bucket_of(size);
            assert!(size as u64 <= bucket_bound(i));
            if i > 0 {
                assert!(size as u64 > bucket_bound(i - 1));
            }
        }
    }

    #[test]
    fn since_subtracts_bucketwise() {
        let mut a = SizeHistogram::default();
        a.record(10);
        let mut b = a;
        b.record(10);
        b.record(1 << 20);
        let d = b.since(&a);
        assert_eq!(d.count(), 2);
        assert_eq!(d.quantile(1.0), Some(1 << 20));
    }
}
