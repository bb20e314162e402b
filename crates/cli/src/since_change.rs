//! After a change of a pool's max buffer size: what the pool's rule predicted for the new max
//! from the returns before the change, next to what the returns since show.

use std::time::Duration;

use heapscape_pool::PoolStats;
use heapscape_pool::config::OverMaxPolicy;
use serde::Serialize;

use crate::fleet::PoolData;

/// The rule's prediction for a new max buffer size against what followed, after the last
/// change of the max within the window.
///
/// The change is one of the max in force across the matched instances (the largest of them):
/// to see one instance's change in a fleet, narrow `--selector` to it.
#[derive(Debug, Clone, Serialize)]
pub struct SinceChange {
    /// The max in force before the change, bytes.
    pub previous_max_buffer_size: u64,
    /// The max in force since, bytes: what the prediction and the observation are about.
    pub max_buffer_size: u64,
    /// How long ago the new max was first seen, seconds: the span the observation covers (the
    /// change itself lies at most one query step before it).
    pub seconds_since: f64,
    /// The part of the window before the change, seconds: where the prediction's returns
    /// come from (the data may cover less of it: see `confidence.history_seconds`).
    pub seconds_before: f64,
    /// Returns within the window before the change, whole fleet.
    pub returns_before: u64,
    /// Returns since the change, whole fleet.
    pub returns_since: u64,
    /// The fewest returns either side is read from (the pools' minimum for a
    /// recommendation).
    pub min_returns: u64,
    /// What the rule said about the new max from the returns before the change; `None` with
    /// fewer than `min_returns` of them.
    pub predicted: Option<Predicted>,
    /// What the returns since show; `None` with fewer than `min_returns` of them (too soon to
    /// say).
    pub observed: Option<Observed>,
}

/// What the pool's rule ([`heapscape_pool::PoolStats::candidate`]) said about the new max from
/// the returns before the change.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Predicted {
    /// Share (0..1) of the returns before the change longer than the new max: the share
    /// expected to regrow their buffer.
    pub share_over_max: f64,
    /// The most idle memory one instance may hold with the new max and the idle caps in force,
    /// from the peak of buffers held before the change (a bound, not a measurement).
    pub idle_bytes_bound_per_instance: u64,
}

/// What the returns since the change show.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Observed {
    /// Share (0..1) of the returns since the change longer than the new max.
    pub share_over_max: f64,
    /// The most idle bytes one instance was seen holding since the change (a measurement, at
    /// Prometheus's scrapes).
    pub peak_idle_bytes_per_instance: u64,
}

/// Predicted against observed for `data`'s last change of the max, each side read only from
/// `min_returns` returns or more; `None` when the max did not change within the window.
pub(crate) fn since_change(data: &PoolData, min_returns: u64) -> Option<SinceChange> {
    let change = data.max_change.as_ref()?;
    // The rule as the pools run it, on the returns before the change, for the settings in
    // force since.
    let mut before = PoolStats::default();
    before.recent_lengths = change.lengths_before;
    before.recommendation_min_returns = min_returns;
    before.max_buffer_size = change.max;
    before.initial_capacity = data.current.initial_capacity;
    before.max_idle_buffers = data.current.max_idle_buffers;
    before.max_idle_bytes = data.current.max_idle_bytes;
    before.peak_held = change.peak_held_before;
    before.recent_span = change.before.max(Duration::from_secs(1));
    before.over_max = OverMaxPolicy::Shrink;
    let predicted = before.has_enough_returns().then(|| {
        let candidate = before.candidate(change.max);
        Predicted {
            share_over_max: candidate.over_max_ratio,
            idle_bytes_bound_per_instance: candidate.idle_bytes_bound,
        }
    });
    let returns_since = change.lengths_since.count();
    let observed = (returns_since >= min_returns.max(1)).then(|| Observed {
        share_over_max: change.lengths_since.fraction_above(change.max),
        peak_idle_bytes_per_instance: change.peak_idle_bytes_since,
    });
    Some(SinceChange {
        previous_max_buffer_size: change.previous_max,
        max_buffer_size: change.max,
        seconds_since: change.since.as_secs_f64(),
        seconds_before: change.before.as_secs_f64(),
        returns_before: before.recent_returns(),
        returns_since,
        min_returns,
        predicted,
        observed,
    })
}

#[cfg(test)]
mod tests {
    use heapscape_pool::stats::FineSizeHistogram;

    use super::*;
    use crate::fleet::{MaxChange, Settings};

    /// `count` returns of each length.
    fn lengths(count: usize, of: &[usize]) -> FineSizeHistogram {
        let mut histogram = FineSizeHistogram::default();
        for _ in 0..count {
            for &length in of {
                histogram.record(length);
            }
        }
        histogram
    }

    fn pool(change: MaxChange) -> PoolData {
        PoolData {
            current: Settings {
                max_buffer_size: change.max,
                initial_capacity: 256 << 10,
                max_idle_buffers: 6,
                max_idle_bytes: 64 << 20,
            },
            max_change: Some(change),
            ..PoolData::default()
        }
    }

    #[test]
    fn predicted_and_observed_read_the_new_max_on_either_side_of_the_change() {
        // A bucket bound (as every recommended max), so the shares are exact.
        let max = 1 << 20;
        let data = pool(MaxChange {
            previous_max: 4 << 20,
            max,
            before: Duration::from_secs(1800),
            since: Duration::from_secs(600),
            // 1 in 20 before over the new max, 1 in 10 since.
            lengths_before: lengths(25, &[[100_000; 19].as_slice(), &[3 << 20]].concat()),
            lengths_since: lengths(50, &[[100_000; 9].as_slice(), &[3 << 20]].concat()),
            peak_held_before: 4,
            peak_idle_bytes_since: 3 << 20,
        });
        let since = since_change(&data, 400).expect("a change");
        assert_eq!(
            (since.previous_max_buffer_size, since.max_buffer_size),
            (4 << 20, max)
        );
        assert_eq!((since.seconds_before, since.seconds_since), (1800.0, 600.0));
        assert_eq!((since.returns_before, since.returns_since), (500, 500));
        let predicted = since.predicted.expect("enough returns before");
        assert_eq!(predicted.share_over_max, 0.05);
        // min(6 idle buffers, 4 held at the peak) * the new max, under the 64 MiB cap.
        assert_eq!(predicted.idle_bytes_bound_per_instance, 4 * max);
        let observed = since.observed.expect("enough returns since");
        assert_eq!(observed.share_over_max, 0.1);
        assert_eq!(observed.peak_idle_bytes_per_instance, 3 << 20);
    }

    #[test]
    fn a_side_with_too_few_returns_gives_no_numbers() {
        let data = pool(MaxChange {
            previous_max: 4 << 20,
            max: 1 << 20,
            lengths_before: lengths(500, &[1000]),
            lengths_since: lengths(399, &[1000]),
            ..MaxChange::default()
        });
        let since = since_change(&data, 400).expect("a change");
        assert!(since.predicted.is_some());
        assert!(since.observed.is_none(), "{since:?}");
        assert_eq!(since.returns_since, 399);
        let early = pool(MaxChange {
            lengths_before: lengths(10, &[1000]),
            lengths_since: lengths(400, &[1000]),
            ..MaxChange::default()
        });
        let since = since_change(&early, 400).expect("a change");
        assert!(since.predicted.is_none() && since.observed.is_some());
        assert!(since_change(&PoolData::default(), 400).is_none());
    }
}
