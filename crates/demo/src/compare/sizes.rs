//! The returned lengths a pooled service published, read back from its histogram buckets (the
//! pool's fine buckets): the distribution and its percentiles. The candidate max buffer sizes
//! and their costs are the pool's own (see `candidates`).

use std::collections::BTreeMap;

use super::summary::Sizes;
use crate::scrape::RETURNED_LENGTH_BUCKET;

/// Percentiles marked on the distribution.
const PERCENTILES: [(&str, f64); 3] = [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)];

/// The distribution in `series` (one scrape, `pool` label dropped), from the bucket below the
/// shortest return to the bucket above the longest; `None` when the scrape has no
/// returned-length buckets or no returns.
pub(super) fn read(series: &BTreeMap<String, f64>) -> Option<Sizes> {
    let prefix = format!("{RETURNED_LENGTH_BUCKET}{{le=\"");
    let mut cumulative: Vec<(f64, f64)> = series
        .iter()
        .filter_map(|(key, &count)| {
            let bound = key.strip_prefix(&prefix)?.strip_suffix("\"}")?;
            let bound = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().ok()?
            };
            Some((bound, count))
        })
        .collect();
    cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = cumulative.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let all_buckets: Vec<(f64, f64)> = cumulative
        .iter()
        .scan(0.0, |below, &(bound, count)| {
            let in_bucket = count - *below;
            *below = count;
            Some((bound, in_bucket))
        })
        .collect();
    // The exported buckets span 64 B to 1 GiB; the distribution keeps the stretch where
    // returns fell, and one empty bucket on each side.
    let first = all_buckets.iter().position(|(_, count)| *count > 0.0)?;
    let last = all_buckets.iter().rposition(|(_, count)| *count > 0.0)?;
    let span = first.saturating_sub(1)..=(last + 1).min(all_buckets.len() - 1);
    let buckets = all_buckets[span.clone()].to_vec();
    let cumulative = &cumulative[span];
    let percentiles = PERCENTILES
        .into_iter()
        .filter_map(|(name, q)| {
            let (bound, _) = cumulative.iter().find(|(_, count)| *count >= q * total)?;
            bound.is_finite().then_some((name, *bound))
        })
        .collect();
    Some(Sizes {
        buckets,
        percentiles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(buckets: &[(&str, f64)]) -> BTreeMap<String, f64> {
        buckets
            .iter()
            .map(|(le, count)| (format!("{RETURNED_LENGTH_BUCKET}{{le=\"{le}\"}}"), *count))
            .chain([("heapscape_pool_hits_total".to_owned(), 5.0)])
            .collect()
    }

    #[test]
    fn buckets_and_percentiles_come_from_the_cumulative_counts() {
        let series = scrape(&[
            ("1024", 50.0),
            ("4096", 90.0),
            ("16384", 99.0),
            ("65536", 100.0),
            ("+Inf", 100.0),
        ]);
        let sizes = read(&series).unwrap();
        assert_eq!(
            sizes.buckets,
            [
                (1024.0, 50.0),
                (4096.0, 40.0),
                (16384.0, 9.0),
                (65536.0, 1.0),
                (f64::INFINITY, 0.0)
            ]
        );
        assert_eq!(sizes.percentiles["p50"], 1024.0);
        assert_eq!(sizes.percentiles["p95"], 16384.0);
        assert_eq!(sizes.percentiles["p99"], 16384.0);
    }

    #[test]
    fn empty_buckets_are_trimmed_to_one_on_each_side() {
        let series = scrape(&[
            ("64", 0.0),
            ("128", 0.0),
            ("256", 0.0),
            ("512", 3.0),
            ("1024", 4.0),
            ("2048", 4.0),
            ("4096", 4.0),
            ("+Inf", 4.0),
        ]);
        let sizes = read(&series).unwrap();
        let bounds: Vec<f64> = sizes.buckets.iter().map(|(bound, _)| *bound).collect();
        assert_eq!(bounds, [256.0, 512.0, 1024.0, 2048.0]);
    }

    #[test]
    fn no_buckets_or_no_returns_is_none() {
        assert!(read(&BTreeMap::new()).is_none());
        assert!(read(&scrape(&[("1024", 0.0), ("+Inf", 0.0)])).is_none());
    }
}
