//! One load phase of `compare`, summarized: counter deltas between the scrapes around it,
//! gauges over its timeline, and the allocation rate between heartbeat publications.

use std::collections::BTreeMap;

use super::summary::{ModeSummary, OverTime, Point};
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

/// One mode's load phase: the load report, the scrapes just before and after it.
pub(super) struct Phase {
    /// The mode loaded.
    pub(super) pooling: Pooling,
    /// What the load generator measured.
    pub(super) load: LoadReport,
    /// Series before the load.
    pub(super) before: BTreeMap<String, f64>,
    /// Series after the load and the settle time.
    pub(super) after: BTreeMap<String, f64>,
    /// Seconds since the start: load start and end of the settle time.
    pub(super) window: (f64, f64),
}

impl Phase {
    fn delta(&self, series: &str) -> Option<f64> {
        Some(self.after.get(series)? - self.before.get(series).copied().unwrap_or(0.0))
    }

    /// The mode's summary: the load's numbers, counter deltas over the phase, and the gauges
    /// of the `timeline` scrapes within its window.
    pub(super) fn summarize(&self, timeline: &[Scrape]) -> ModeSummary {
        let load_seconds = self.load.elapsed.as_secs_f64();
        let requests = self.load.ok;
        let per_request =
            |total: Option<f64>| total.filter(|_| requests > 0).map(|t| t / requests as f64);
        let per_second = |total: Option<f64>| total.map(|t| t / load_seconds.max(1e-9));

        let (from, to) = self.window;
        let in_window: Vec<&Scrape> = timeline
            .iter()
            .filter(|scrape| (from..=to).contains(&scrape.at))
            .collect();
        let gauge = |name: &str| {
            let values: Vec<f64> = in_window
                .iter()
                .filter_map(|s| s.series.get(name).copied())
                .collect();
            OverTime::of(&values)
        };
        let rates = alloc_rates(&in_window);
        let points = in_window
            .iter()
            .zip(rates)
            .map(|(scrape, alloc_rate)| {
                let value = |name: &str| scrape.series.get(name).copied().unwrap_or(0.0);
                Point {
                    t: scrape.at - from,
                    allocated: value(ALLOCATED),
                    active: value(ACTIVE),
                    resident: value(RESIDENT),
                    alloc_rate,
                }
            })
            .collect();

        let hits = self.delta(HITS).unwrap_or(0.0);
        let gets = hits + self.delta(MISSES).unwrap_or(0.0);
        let discards = self
            .after
            .keys()
            .filter_map(|key| {
                let reason = key
                    .strip_prefix(DISCARDS)?
                    .strip_prefix("{reason=\"")?
                    .strip_suffix("\"}")?;
                Some((reason.to_owned(), self.delta(key)?))
            })
            .collect();
        let pooled = self.pooling == Pooling::On;
        let latency_ms = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)]
            .into_iter()
            .map(|(name, q)| (name, load::ms(self.load.latency(q))))
            .chain([("max", load::ms(self.load.max_latency()))])
            .collect();
        ModeSummary {
            pooling: self.pooling.as_str(),
            load_seconds,
            requests,
            errors: self.load.errors.clone(),
            requests_per_second: self.load.requests_per_second(),
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
            recommended_max_buffer_size: self
                .after
                .get(RECOMMENDED_MAX)
                .copied()
                .filter(|_| pooled),
            timeline: points,
        }
    }
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
