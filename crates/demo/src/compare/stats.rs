//! Order statistics over a handful of slices, and the bootstrap interval the verdicts read.
//!
//! Why a bootstrap, not a rank test: a verdict's figure is computed per round from the modes
//! it involves (tuned / unpooled, tuned / pooled), a paired ratio that a two-sample rank test
//! (Mann-Whitney, Hodges-Lehmann) does not cover; resampling whole rounds keeps the pairing
//! the interleaving made (a busy moment of the machine weighs on
//! the same round of every mode); and a fixed seed gives the same interval for the same
//! numbers, run after run. With few rounds it is conservative rather than confident: for three
//! rounds the 95 % interval of the median is the range of the three, so a quick run decides
//! only when every round agrees.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Resamples per interval.
const RESAMPLES: usize = 2000;

/// Seed of the resampling: the same figures give the same interval.
const SEED: u64 = 0x6865_6170_7363_6170;

/// Two-sided confidence of [`median_interval`].
pub(super) const CONFIDENCE: f64 = 0.95;

/// The `q` quantile (0 to 1) of `values`, interpolated linearly between the closest ranks;
/// `None` without finite values.
pub(super) fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    Some(sorted_quantile(&sorted, q))
}

/// [`quantile`] of values already sorted, finite and not empty.
fn sorted_quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (below, above) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[below] + (sorted[above] - sorted[below]) * (rank - below as f64)
}

/// The median of `values`: the mean of the middle two for an even count.
pub(super) fn median(values: &[f64]) -> Option<f64> {
    quantile(values, 0.5)
}

/// A [`CONFIDENCE`] percentile-bootstrap interval of the median of `values`: the values are
/// resampled with replacement [`RESAMPLES`] times from a fixed seed, and the interval spans the
/// middle [`CONFIDENCE`] of the resampled medians. `None` without finite values.
pub(super) fn median_interval(values: &[f64]) -> Option<[f64; 2]> {
    let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut resample = vec![0.0; values.len()];
    let mut medians: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            for slot in &mut resample {
                *slot = values[rng.random_range(0..values.len())];
            }
            resample.sort_by(f64::total_cmp);
            sorted_quantile(&resample, 0.5)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    Some([
        sorted_quantile(&medians, tail),
        sorted_quantile(&medians, 1.0 - tail),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_ranks() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(quantile(&[0.0, 10.0], 0.95), Some(9.5));
        assert_eq!(quantile(&[7.0], 0.95), Some(7.0));
        assert_eq!(quantile(&[f64::NAN], 0.5), None);
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn the_interval_holds_the_median_and_repeats_for_the_same_values() {
        let values = [9.0, 11.0, 10.0, 12.0, 8.0, 10.5, 9.5, 30.0];
        let [low, high] = median_interval(&values).unwrap();
        let middle = median(&values).unwrap();
        assert!(low <= middle && middle <= high, "{low} {middle} {high}");
        assert!(
            high < 30.0,
            "one outlier does not carry the median's interval: {high}"
        );
        assert_eq!(median_interval(&values), Some([low, high]), "fixed seed");
    }

    #[test]
    fn three_rounds_give_their_range() {
        assert_eq!(median_interval(&[1.0, 3.0, 2.0]), Some([1.0, 3.0]));
        assert_eq!(median_interval(&[5.0]), Some([5.0, 5.0]));
        assert_eq!(median_interval(&[]), None);
    }
}
