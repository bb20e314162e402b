//! One mode's slices of load, summarized: counter deltas summed over the slices, gauges over
//! the scrapes within them, the allocation rate between heartbeat publications, and the spread
//! of each slice's numbers.

use std::collections::BTreeMap;

use super::summary::{ModeSummary, OverTime, Point, Spread};
use crate::load::{self, LoadReport};
use crate::scrape::{
    ACTIVE, ALLOC_BYTES, ALLOCATED, ALLOCATIONS, DISCARDS, HEARTBEAT_TIMESTAMP, HITS, MINOR_FAULTS,
    MISSES, RECOMMENDED_MAX, RESIDENT,
};
use crate::server::Pooling;

/// One scrape of a timeline.
#[derive(Debug, Clone)]
pub(super) struct Scrape {
    /// Seconds since the comparison started.
    pub(super) at: f64,
    /// Series without the `pooling` and `pool` labels ([`crate::scrape::fetch`]).
    pub(super) series: BTreeMap<String, f64>,
}

/// One slice of a mode's load.
pub(super) struct Slice {
    /// What the load generator measured.
    pub(super) load: LoadReport,
    /// Series just before the slice.
    pub(super) before: BTreeMap<String, f64>,
    /// Series just before the mode's next slice (or after the last slice and a settle time):
    /// the other modes' slices in between give the heartbeat time to publish this one's
    /// counters.
    pub(super) after: BTreeMap<String, f64>,
    /// Seconds since the start: load start and end.
    pub(super) window: (f64, f64),
}

impl Slice {
    fn delta(&self, series: &str) -> Option<f64> {
        Some(self.after.get(series)? - self.before.get(series).copied().unwrap_or(0.0))
    }

    fn in_window<'a>(&self, timeline: &'a [Scrape]) -> Vec<&'a Scrape> {
        let (from, to) = self.window;
        timeline
            .iter()
            .filter(|scrape| (from..=to).contains(&scrape.at))
            .collect()
    }
}

/// A mode and its slices, in order.
pub(super) struct ModeRun {
    /// `"unpooled"`, `"pooled"`, `"tuned"` or `"auto"`.
    pub(super) mode: &'static str,
    /// The service's `--pooling`.
    pub(super) pooling: Pooling,
    /// The slices run so far.
    pub(super) slices: Vec<Slice>,
}

/// Per-slice numbers whose spread is reported, by name.
const SPREAD_METRICS: [&str; 6] = [
    "requests/s",
    "latency p99 (ms)",
    "allocated bytes/s",
    "jemalloc allocated mean",
    "jemalloc resident mean",
    "jemalloc resident max",
];

impl ModeRun {
    fn delta(&self, series: &str) -> Option<f64> {
        self.slices
            .iter()
            .map(|slice| slice.delta(series))
            .sum::<Option<f64>>()
    }

    /// The mode's summary over all its slices; `origin` (seconds since the start) is `t = 0`
    /// of the timeline. `None` without slices.
    pub(super) fn summarize(&self, timeline: &[Scrape], origin: f64) -> Option<ModeSummary> {
        let (first, rest) = self.slices.split_first()?;
        let mut load = first.load.clone();
        for slice in rest {
            merge(&mut load, &slice.load);
        }
        let load_seconds = load.elapsed.as_secs_f64();
        let requests = load.ok;
        let per_request =
            |total: Option<f64>| total.filter(|_| requests > 0).map(|t| t / requests as f64);
        let per_second = |total: Option<f64>| total.map(|t| t / load_seconds.max(1e-9));

        let mut points = Vec::new();
        for (index, slice) in self.slices.iter().enumerate() {
            let in_window = slice.in_window(timeline);
            let rates = alloc_rates(&in_window);
            points.extend(in_window.iter().zip(rates).map(|(scrape, alloc_rate)| {
                let value = |name: &str| scrape.series.get(name).copied().unwrap_or(0.0);
                Point {
                    t: scrape.at - origin,
                    slice: index,
                    allocated: value(ALLOCATED),
                    active: value(ACTIVE),
                    resident: value(RESIDENT),
                    alloc_rate,
                }
            }));
        }
        let all_scrapes: Vec<&Scrape> = self
            .slices
            .iter()
            .flat_map(|slice| slice.in_window(timeline))
            .collect();
        let gauge = |name: &str| gauge_over(&all_scrapes, name);

        let hits = self.delta(HITS).unwrap_or(0.0);
        let gets = hits + self.delta(MISSES).unwrap_or(0.0);
        let pooled = self.pooling == Pooling::On;
        let last_after = self.slices.last().map(|slice| &slice.after);
        let discards = last_after
            .into_iter()
            .flat_map(BTreeMap::keys)
            .filter_map(|key| {
                let reason = key
                    .strip_prefix(DISCARDS)?
                    .strip_prefix("{reason=\"")?
                    .strip_suffix("\"}")?;
                Some((reason.to_owned(), self.delta(key)?))
            })
            .collect();
        let latency_ms = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)]
            .into_iter()
            .map(|(name, q)| (name, load::ms(load.latency(q))))
            .chain([("max", load::ms(load.max_latency()))])
            .collect();
        Some(ModeSummary {
            mode: self.mode,
            pooling: self.pooling.as_str(),
            load_seconds,
            requests,
            errors: load.errors.clone(),
            requests_per_second: load.requests_per_second(),
            latency_ms,
            alloc_bytes_per_second: per_second(self.delta(ALLOC_BYTES)),
            allocations_per_second: per_second(self.delta(ALLOCATIONS)),
            alloc_bytes_per_request: per_request(self.delta(ALLOC_BYTES)),
            allocations_per_request: per_request(self.delta(ALLOCATIONS)),
            allocated: gauge(ALLOCATED),
            active: gauge(ACTIVE),
            resident: gauge(RESIDENT),
            minor_faults_per_request: per_request(self.delta(MINOR_FAULTS)),
            pool_hit_ratio: (pooled && gets > 0.0).then(|| hits / gets),
            discards: if pooled { discards } else { BTreeMap::new() },
            // NaN while the window holds too few returns: no recommendation.
            recommended_max_buffer_size: last_after
                .and_then(|after| after.get(RECOMMENDED_MAX).copied())
                .filter(|max| pooled && max.is_finite()),
            slices: self.spread(timeline),
            timeline: points,
        })
    }

    /// Each of [`SPREAD_METRICS`] per slice, summarized across the slices.
    fn spread(&self, timeline: &[Scrape]) -> BTreeMap<&'static str, Spread> {
        let per_slice = |metric: &str, slice: &Slice| -> Option<f64> {
            let in_window = slice.in_window(timeline);
            match metric {
                "requests/s" => Some(slice.load.requests_per_second()),
                "latency p99 (ms)" => Some(load::ms(slice.load.latency(0.99))),
                "allocated bytes/s" => slice
                    .delta(ALLOC_BYTES)
                    .map(|bytes| bytes / slice.load.elapsed.as_secs_f64().max(1e-9)),
                "jemalloc allocated mean" => gauge_over(&in_window, ALLOCATED).map(|g| g.mean),
                "jemalloc resident mean" => gauge_over(&in_window, RESIDENT).map(|g| g.mean),
                "jemalloc resident max" => gauge_over(&in_window, RESIDENT).map(|g| g.max),
                _ => None,
            }
        };
        SPREAD_METRICS
            .into_iter()
            .filter_map(|metric| {
                let values: Vec<f64> = self
                    .slices
                    .iter()
                    .filter_map(|slice| per_slice(metric, slice))
                    .collect();
                Some((metric, Spread::of(&values)?))
            })
            .collect()
    }
}

fn gauge_over(scrapes: &[&Scrape], name: &str) -> Option<OverTime> {
    let values: Vec<f64> = scrapes
        .iter()
        .filter_map(|s| s.series.get(name).copied())
        .collect();
    OverTime::of(&values)
}

/// Adds `slice` to `total`: counts and time summed, latencies merged.
fn merge(total: &mut LoadReport, slice: &LoadReport) {
    total.requests += slice.requests;
    total.ok += slice.ok;
    total.bytes_received += slice.bytes_received;
    total.elapsed += slice.elapsed;
    for (kind, count) in &slice.errors {
        *total.errors.entry(kind.clone()).or_default() += count;
    }
    // Both histograms come from the load generator with the same bounds, so adding cannot
    // fail; a failure would only lose latency samples.
    let _ = total.latency_us.add(&slice.latency_us);
}

/// The allocation rate (bytes/s) at each scrape, from the counter's deltas between heartbeat
/// publications rather than between scrapes.
///
/// The counter only moves when the heartbeat publishes (every second), and 1 s scrapes drift
/// against 1 s publications: a scrape interval holds 0, 1 or 2 publications, and per-scrape
/// deltas would plot as 0-then-double spikes. So a rate is computed only when a new
/// publication is seen (the heartbeat's `last_success_timestamp` moved, or, without it, the
/// counter moved), over the time between the two publications (the heartbeat's timestamps, or
/// the scrape times without them), and held until the next one.
fn alloc_rates(scrapes: &[&Scrape]) -> Vec<f64> {
    let heartbeat_clock = scrapes
        .iter()
        .all(|scrape| scrape.series.contains_key(HEARTBEAT_TIMESTAMP));
    // (publication time, counter) of the last publication seen.
    let mut last: Option<(f64, f64)> = None;
    let mut rate = 0.0;
    scrapes
        .iter()
        .map(|scrape| {
            let Some(&counter) = scrape.series.get(ALLOC_BYTES) else {
                return rate;
            };
            let at = if heartbeat_clock {
                scrape.series[HEARTBEAT_TIMESTAMP]
            } else {
                scrape.at
            };
            match last {
                Some((previous_at, _)) if heartbeat_clock && at <= previous_at => {}
                Some((_, previous)) if !heartbeat_clock && counter == previous => {}
                Some((previous_at, previous)) => {
                    rate = (counter - previous).max(0.0) / (at - previous_at).max(1e-3);
                    last = Some((at, counter));
                }
                None => last = Some((at, counter)),
            }
            rate
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(at: f64, published_at: Option<f64>, bytes: f64) -> Scrape {
        let mut series = BTreeMap::from([(ALLOC_BYTES.to_owned(), bytes)]);
        if let Some(published_at) = published_at {
            series.insert(HEARTBEAT_TIMESTAMP.to_owned(), published_at);
        }
        Scrape { at, series }
    }

    /// A steady 1000 B/s, published every second, scraped every second but out of step: a
    /// scrape interval sees 0, 1 or 2 publications.
    fn drifting(with_timestamps: bool) -> Vec<Scrape> {
        // (scrape time, last publication time before it)
        let seen = [
            (1.0, 0.9),
            (1.95, 0.9),
            (3.0, 2.9),
            (4.0, 3.9),
            (4.9, 3.9),
            (6.0, 5.9),
        ];
        seen.iter()
            .map(|&(at, published)| {
                scrape(at, with_timestamps.then_some(published), 1000.0 * published)
            })
            .collect()
    }

    #[test]
    fn rates_follow_publications_not_scrapes() {
        let scrapes = drifting(true);
        let rates = alloc_rates(&scrapes.iter().collect::<Vec<_>>());
        assert_eq!(rates[0], 0.0, "no rate before a second publication");
        for rate in &rates[2..] {
            assert!((rate - 1000.0).abs() < 1e-6, "{rates:?}");
        }
        assert_eq!(rates[1], 0.0, "held, not a dip");
    }

    #[test]
    fn without_heartbeat_timestamps_rates_use_the_scrapes_where_the_counter_moved() {
        let scrapes = drifting(false);
        let rates = alloc_rates(&scrapes.iter().collect::<Vec<_>>());
        // No zero after the first change, no doubled spike.
        for rate in &rates[2..] {
            assert!((700.0..1400.0).contains(rate), "{rates:?}");
        }
    }
}
