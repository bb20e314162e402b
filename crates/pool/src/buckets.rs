//! Reading a size histogram given as `(upper bound, count)` buckets, smallest first: the one
//! quantile and share-above rule of both the power-of-two and the fine histograms.

/// The smallest bucket bound with at least a fraction `q` (0..=1) of the observations at or
/// below it; `None` without observations.
pub(crate) fn quantile(buckets: impl Iterator<Item = (u64, u64)> + Clone, q: f64) -> Option<u64> {
    let total: u64 = buckets.clone().map(|(_, count)| count).sum();
    if total == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (bound, count) in buckets {
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
pub(crate) fn fraction_above(buckets: impl Iterator<Item = (u64, u64)> + Clone, size: u64) -> f64 {
    let total: u64 = buckets.clone().map(|(_, count)| count).sum();
    if total == 0 {
        return 0.0;
    }
    let above: u64 = buckets
        .filter(|&(bound, _)| bound > size)
        .map(|(_, count)| count)
        .sum();
    above as f64 / total as f64
}
