//! One mode's slices of load, summarized from the heartbeat's publications made during each
//! slice's load.
//!
//! A scrape shows the last publication, made up to a heartbeat earlier; assigned by scrape
//! time, a slice's first sample would show the heap before its load, after the idle gap (the
//! other modes' slices) let it shrink. So samples belong to a slice by the heartbeat's
//! timestamp (`heapscape_heartbeat_last_success_timestamp_seconds`), each publication counts
//! once however many scrapes saw it, and the first publication of a slice (the first after its
//! idle gap, sampled when the load had barely resumed) is left out of the gauges. Rates are
//! counter increases between two publications of the same slice over the time between them:
//! load time only, never an idle gap.

use std::collections::BTreeMap;

use super::stats;
use super::summary::{ModeSummary, OverTime, Point, Spread};
use crate::load::{self, LoadReport};
use crate::scrape::{
    ACTIVE, ALLOC_BYTES, ALLOCATED, ALLOCATIONS, DISCARDS, HEARTBEAT_TIMESTAMP, HITS, IDLE_BYTES,
    MAX_BUFFER_SIZE, MINOR_FAULTS, MISSES, RECOMMENDED_MAX, REGROWS, RESIDENT, RETURNS, SHRINKS,
};
use crate::server::Pooling;

/// The per-slice metrics whose spread is reported and which the verdicts read, by name.
pub(super) mod metric {
    /// Successful requests per second (load generator).
    pub(crate) const REQUESTS: &str = "requests/s";
    /// Latency p99 in milliseconds (load generator).
    pub(crate) const LATENCY_P99: &str = "latency p99 (ms)";
    /// Bytes allocated per second between the slice's first and last publication.
    pub(crate) const ALLOC_RATE: &str = "allocated bytes/s";
    /// Mean of jemalloc allocated over the slice's samples.
    pub(crate) const ALLOCATED_MEAN: &str = "jemalloc allocated mean";
    /// Mean of jemalloc resident over the slice's samples.
    pub(crate) const RESIDENT_MEAN: &str = "jemalloc resident mean";
    /// 95th percentile of jemalloc resident over the slice's samples: the slice's peak, not
    /// one sample.
    pub(crate) const RESIDENT_P95: &str = "jemalloc resident p95";

    /// All of them, in the order the report lists them.
    pub(crate) const ALL: [&str; 6] = [
        REQUESTS,
        LATENCY_P99,
        ALLOC_RATE,
        ALLOCATED_MEAN,
        RESIDENT_MEAN,
        RESIDENT_P95,
    ];
}

/// One scrape of a timeline.
#[derive(Debug, Clone)]
pub(super) struct Scrape {
    /// When the heartbeat published what the scrape shows, in seconds since the comparison
    /// started; `None` without a heartbeat timestamp.
    pub(super) published: Option<f64>,
    /// Series without the `pooling` and `pool` labels ([`crate::scrape::fetch`]).
    pub(super) series: BTreeMap<String, f64>,
}

impl Scrape {
    /// A scrape's `series`, its publication time read against `unix_start`, the Unix time (in
    /// seconds) at which the comparison started.
    pub(super) fn new(series: BTreeMap<String, f64>, unix_start: f64) -> Self {
        Self {
            published: series
                .get(HEARTBEAT_TIMESTAMP)
                .map(|timestamp| timestamp - unix_start),
            series,
        }
    }
}

/// The publications a timeline saw, once each, in order: scrapes that saw the same
/// publication (the same heartbeat timestamp) count once.
fn publications(timeline: &[Scrape]) -> Vec<&Scrape> {
    let mut seen: Vec<&Scrape> = Vec::new();
    for scrape in timeline {
        let Some(at) = scrape.published else { continue };
        if seen.last().and_then(|last| last.published) < Some(at) {
            seen.push(scrape);
        }
    }
    seen
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

    /// The publications made during the slice's load, from `publications` (in order).
    fn published<'a>(&self, publications: &[&'a Scrape]) -> Published<'a> {
        let (from, to) = self.window;
        Published(
            publications
                .iter()
                .copied()
                .filter(|scrape| scrape.published.is_some_and(|at| from < at && at <= to))
                .collect(),
        )
    }
}

/// A slice's publications, in order.
struct Published<'a>(Vec<&'a Scrape>);

impl<'a> Published<'a> {
    /// The gauge samples: every publication but the first after the idle gap.
    fn samples(&self) -> &[&'a Scrape] {
        self.0.get(1..).unwrap_or_default()
    }

    /// `series`' increase between the first and the last publication, and the seconds
    /// between them; `None` without two publications that both hold it.
    fn increase(&self, series: &str) -> Option<(f64, f64)> {
        increase(self.0.first()?, self.0.last()?, series)
    }

    /// `series`' rate (per second) over the slice's publications.
    fn rate(&self, series: &str) -> Option<f64> {
        self.increase(series)
            .map(|(increase, seconds)| increase / seconds)
    }

    /// `series`' gauge over the samples.
    fn gauge(&self, series: &str) -> Option<OverTime> {
        gauge_over(self.samples(), series)
    }

    /// The timeline points of the samples: the heap at each, and the allocation rate since the
    /// publication before it (of this slice).
    fn points(&self, slice: usize, origin: f64) -> Vec<Point> {
        self.0
            .windows(2)
            .filter_map(|pair| {
                let [previous, scrape] = pair else {
                    return None;
                };
                let value = |name: &str| scrape.series.get(name).copied().unwrap_or(0.0);
                Some(Point {
                    t: scrape.published? - origin,
                    slice,
                    allocated: value(ALLOCATED),
                    active: value(ACTIVE),
                    resident: value(RESIDENT),
                    alloc_rate: increase(previous, scrape, ALLOC_BYTES)
                        .map_or(0.0, |(bytes, seconds)| bytes / seconds),
                })
            })
            .collect()
    }
}

/// `series`' increase from publication `first` to `last`, and the seconds between them; `None`
/// unless both hold it and `last` came later.
fn increase(first: &Scrape, last: &Scrape, series: &str) -> Option<(f64, f64)> {
    let seconds = last.published? - first.published?;
    let increase = last.series.get(series)? - first.series.get(series)?;
    (seconds > 0.0).then_some((increase.max(0.0), seconds))
}

/// A mode and its slices, in order.
pub(super) struct ModeRun {
    /// The mode's name (`"unpooled"`, `"pooled"`, ...).
    pub(super) mode: &'static str,
    /// What the mode runs, in a few words.
    pub(super) label: &'static str,
    /// The mode the report sets it against, by name.
    pub(super) baseline: Option<&'static str>,
    /// The service's `--pooling`.
    pub(super) pooling: Pooling,
    /// The slices run so far, one per round.
    pub(super) slices: Vec<Slice>,
}

impl ModeRun {
    fn delta(&self, series: &str) -> Option<f64> {
        self.slices
            .iter()
            .map(|slice| slice.delta(series))
            .sum::<Option<f64>>()
    }

    /// The max buffer size in force before and after every slice; `None` when it changed or
    /// a scrape lacks it.
    fn steady_max(&self) -> Option<f64> {
        let mut values = self.slices.iter().flat_map(|slice| {
            [
                slice.before.get(MAX_BUFFER_SIZE),
                slice.after.get(MAX_BUFFER_SIZE),
            ]
        });
        let first = *values.next()??;
        values.all(|value| value == Some(&first)).then_some(first)
    }

    /// The mode's summary over all its slices, from the scrapes of its `timeline`; `origin`
    /// (seconds since the start) is `t = 0` of the points. `None` without slices.
    pub(super) fn summarize(&self, timeline: &[Scrape], origin: f64) -> Option<ModeSummary> {
        let (first, rest) = self.slices.split_first()?;
        let mut load = first.load.clone();
        for slice in rest {
            merge(&mut load, &slice.load);
        }
        let publications = publications(timeline);
        let published: Vec<Published<'_>> = self
            .slices
            .iter()
            .map(|slice| slice.published(&publications))
            .collect();
        // Increases over the slices' own time, summed, over that time.
        let per_second = |series: &str| -> Option<f64> {
            let (increase, seconds) = published
                .iter()
                .filter_map(|slice| slice.increase(series))
                .fold((0.0, 0.0), |(i, s), (increase, seconds)| {
                    (i + increase, s + seconds)
                });
            (seconds > 0.0).then(|| increase / seconds)
        };
        let requests_per_second = load.requests_per_second();
        let per_request = |rate: Option<f64>| {
            rate.filter(|_| requests_per_second > 0.0)
                .map(|rate| rate / requests_per_second)
        };
        let points = published
            .iter()
            .enumerate()
            .flat_map(|(index, slice)| slice.points(index, origin))
            .collect();
        let samples: Vec<&Scrape> = published
            .iter()
            .flat_map(|slice| slice.samples().iter().copied())
            .collect();
        let gauge = |name: &str| gauge_over(&samples, name);

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
        let returns = self.delta(RETURNS).unwrap_or(0.0);
        let over_max = self.delta(SHRINKS).unwrap_or(0.0)
            + self
                .delta(&format!("{DISCARDS}{{reason=\"over_max\"}}"))
                .unwrap_or(0.0);
        let resident_minus_active: Vec<f64> = samples
            .iter()
            .filter_map(|s| Some(s.series.get(RESIDENT)? - s.series.get(ACTIVE)?))
            .collect();
        let alloc_bytes_per_second = per_second(ALLOC_BYTES);
        let allocations_per_second = per_second(ALLOCATIONS);
        Some(ModeSummary {
            mode: self.mode,
            label: self.label,
            baseline: self.baseline,
            pooling: self.pooling.as_str(),
            load_seconds: load.elapsed.as_secs_f64(),
            requests: load.ok,
            errors: load.errors.clone(),
            requests_per_second,
            latency_ms,
            alloc_bytes_per_second,
            allocations_per_second,
            alloc_bytes_per_request: per_request(alloc_bytes_per_second),
            allocations_per_request: per_request(allocations_per_second),
            allocated: gauge(ALLOCATED),
            active: gauge(ACTIVE),
            resident: gauge(RESIDENT),
            resident_minus_active: OverTime::of(&resident_minus_active),
            minor_faults_per_request: per_request(per_second(MINOR_FAULTS)),
            shrinks_per_request: per_request(per_second(SHRINKS)).filter(|_| pooled),
            regrows_per_request: per_request(per_second(REGROWS)).filter(|_| pooled),
            over_max_ratio: (pooled && returns > 0.0).then(|| over_max / returns),
            idle_bytes: gauge(IDLE_BYTES).filter(|_| pooled),
            max_buffer_size: self.steady_max().filter(|_| pooled),
            pool_hit_ratio: (pooled && gets > 0.0).then(|| hits / gets),
            discards: if pooled { discards } else { BTreeMap::new() },
            // NaN while the window holds too few returns: no recommendation.
            recommended_max_buffer_size: last_after
                .and_then(|after| after.get(RECOMMENDED_MAX).copied())
                .filter(|max| pooled && max.is_finite()),
            slices: self.spread(&published),
            timeline: points,
        })
    }

    /// Each of [`metric::ALL`] per slice, by round, summarized across the slices.
    fn spread(&self, published: &[Published<'_>]) -> BTreeMap<&'static str, Spread> {
        let per_slice = |metric: &str, slice: &Slice, published: &Published<'_>| -> Option<f64> {
            match metric {
                metric::REQUESTS => Some(slice.load.requests_per_second()),
                metric::LATENCY_P99 => Some(load::ms(slice.load.latency(0.99))),
                metric::ALLOC_RATE => published.rate(ALLOC_BYTES),
                metric::ALLOCATED_MEAN => published.gauge(ALLOCATED).map(|g| g.mean),
                metric::RESIDENT_MEAN => published.gauge(RESIDENT).map(|g| g.mean),
                metric::RESIDENT_P95 => {
                    stats::quantile(&values_of(published.samples(), RESIDENT), 0.95)
                }
                _ => None,
            }
        };
        metric::ALL
            .into_iter()
            .filter_map(|metric| {
                let values = self
                    .slices
                    .iter()
                    .zip(published)
                    .map(|(slice, published)| per_slice(metric, slice, published))
                    .collect();
                Some((metric, Spread::of(values)?))
            })
            .collect()
    }
}

fn values_of(scrapes: &[&Scrape], name: &str) -> Vec<f64> {
    scrapes
        .iter()
        .filter_map(|s| s.series.get(name).copied())
        .collect()
}

fn gauge_over(scrapes: &[&Scrape], name: &str) -> Option<OverTime> {
    OverTime::of(&values_of(scrapes, name))
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

#[cfg(test)]
mod tests {
    use super::*;

    // A power of two, so the fractions below survive the Unix clock exactly.
    const UNIX_START: f64 = 1_073_741_824.0;

    /// A scrape at a steady 1000 B/s and a heap of `1000 * published` bytes, showing the
    /// publication made `published` seconds after the start.
    fn scrape(published: f64) -> Scrape {
        let series = BTreeMap::from([
            (HEARTBEAT_TIMESTAMP.to_owned(), UNIX_START + published),
            (ALLOC_BYTES.to_owned(), 1000.0 * published),
            (RESIDENT.to_owned(), 1000.0 * published),
        ]);
        Scrape::new(series, UNIX_START)
    }

    /// Scrapes every second out of step with publications every second: a publication is
    /// seen twice (0.75 at 1.0 and 1.95), one is never seen (1.75), and the scrape at 6.0 s
    /// still shows the publication before the load's start.
    fn timeline() -> Vec<Scrape> {
        [0.75, 0.75, 2.75, 3.75, 3.75, 5.75, 6.75, 7.75, 8.75]
            .into_iter()
            .map(scrape)
            .collect()
    }

    fn slice(window: (f64, f64)) -> Slice {
        Slice {
            load: LoadReport {
                requests: 0,
                ok: 0,
                errors: BTreeMap::new(),
                bytes_received: 0,
                elapsed: std::time::Duration::ZERO,
                latency_us: hdrhistogram::Histogram::new(3).unwrap(),
            },
            before: BTreeMap::new(),
            after: BTreeMap::new(),
            window,
        }
    }

    #[test]
    fn publications_count_once_and_belong_by_publication_time() {
        let timeline = timeline();
        let publications = publications(&timeline);
        let times: Vec<f64> = publications.iter().filter_map(|p| p.published).collect();
        assert_eq!(times, [0.75, 2.75, 3.75, 5.75, 6.75, 7.75, 8.75]);
        // Load from 6.0 to 9.0 s: the scrape at 6.0 s showed 5.75, made before the load.
        let published = slice((6.0, 9.0)).published(&publications);
        let times: Vec<f64> = published.0.iter().filter_map(|p| p.published).collect();
        assert_eq!(times, [6.75, 7.75, 8.75]);
        let samples: Vec<f64> = published
            .samples()
            .iter()
            .filter_map(|p| p.published)
            .collect();
        assert_eq!(
            samples,
            [7.75, 8.75],
            "the first after the idle gap is left out"
        );
    }

    #[test]
    fn rates_use_the_slice_own_time() {
        let timeline = timeline();
        let publications = publications(&timeline);
        let published = slice((2.0, 9.0)).published(&publications);
        // 2.75 to 8.75 s, with 3.75 -> 5.75 spanning a publication no scrape saw.
        assert_eq!(published.increase(ALLOC_BYTES), Some((6000.0, 6.0)));
        assert_eq!(published.rate(ALLOC_BYTES), Some(1000.0));
        let points = published.points(4, 2.0);
        assert_eq!(points.len(), 5, "every publication but the first");
        for point in &points {
            assert!((point.alloc_rate - 1000.0).abs() < 1e-9, "{points:?}");
            assert_eq!(point.slice, 4);
        }
        assert!(
            (points[0].t - 1.75).abs() < 1e-9,
            "3.75 s from an origin at 2.0 s"
        );
        // One publication: no rate, no sample.
        let published = slice((0.5, 1.5)).published(&publications);
        assert_eq!(published.rate(ALLOC_BYTES), None);
        assert!(published.samples().is_empty() && published.points(0, 0.0).is_empty());
    }

    #[test]
    fn slices_report_their_peak_percentile_by_round() {
        let timeline = timeline();
        let run = ModeRun {
            mode: "pooled",
            label: "defaults",
            baseline: None,
            pooling: Pooling::On,
            slices: vec![slice((0.0, 1.0)), slice((2.0, 6.0)), slice((6.0, 9.0))],
        };
        let summary = run.summarize(&timeline, 0.0).unwrap();
        let p95 = &summary.slices[metric::RESIDENT_P95];
        // Round 1 has one publication (no sample); round 2 samples 3.75 and 5.75 s; round 3
        // 7.75 and 8.75 s.
        assert_eq!(p95.per_slice[0], None);
        assert!((p95.per_slice[1].unwrap() - 5650.0).abs() < 1e-6, "{p95:?}");
        assert!((p95.per_slice[2].unwrap() - 8700.0).abs() < 1e-6, "{p95:?}");
        assert_eq!(summary.alloc_bytes_per_second, Some(1000.0));
        assert_eq!(summary.resident.unwrap().max, 8750.0);
    }

    #[test]
    fn pool_figures_come_from_the_slices_counters_and_samples() {
        let mut timeline = timeline();
        for scrape in &mut timeline {
            // Active trails resident by 2000 B at every sample; 5 returns a second regrew.
            let resident = scrape.series[RESIDENT];
            scrape.series.insert(ACTIVE.to_owned(), resident - 2000.0);
            let published = scrape.series[HEARTBEAT_TIMESTAMP] - UNIX_START;
            scrape.series.insert(REGROWS.to_owned(), 5.0 * published);
        }
        let counters = |returns: f64, shrinks: f64, max: f64| {
            BTreeMap::from([
                (RETURNS.to_owned(), returns),
                (SHRINKS.to_owned(), shrinks),
                (format!("{DISCARDS}{{reason=\"over_max\"}}"), shrinks / 2.0),
                (MAX_BUFFER_SIZE.to_owned(), max),
            ])
        };
        let with = |window, before, after| Slice {
            before,
            after,
            ..slice(window)
        };
        let mut run = ModeRun {
            mode: "tuned",
            label: "recommended",
            baseline: None,
            pooling: Pooling::On,
            slices: vec![
                with(
                    (2.0, 6.0),
                    counters(0.0, 0.0, 4096.0),
                    counters(100.0, 10.0, 4096.0),
                ),
                with(
                    (6.0, 9.0),
                    counters(150.0, 12.0, 4096.0),
                    counters(250.0, 16.0, 4096.0),
                ),
            ],
        };
        // 50 requests a second.
        for slice in &mut run.slices {
            slice.load.ok = 100;
            slice.load.elapsed = std::time::Duration::from_secs(2);
        }
        let summary = run.summarize(&timeline, 0.0).unwrap();
        let regrows = summary.regrows_per_request.unwrap();
        assert!((regrows - 0.1).abs() < 1e-9, "{regrows}");
        // (10 + 4 shrinks) + (5 + 2 dropped) over 200 returns, the idle gap's left out.
        assert_eq!(summary.over_max_ratio, Some(21.0 / 200.0));
        assert_eq!(summary.max_buffer_size, Some(4096.0));
        let gap = summary.resident_minus_active.unwrap();
        assert_eq!((gap.mean, gap.max), (2000.0, 2000.0));

        run.slices[1].after = counters(250.0, 16.0, 8192.0);
        let summary = run.summarize(&timeline, 0.0).unwrap();
        assert_eq!(summary.max_buffer_size, None, "the max moved");
        run.pooling = Pooling::Off;
        let summary = run.summarize(&timeline, 0.0).unwrap();
        assert_eq!(
            (
                summary.over_max_ratio,
                summary.shrinks_per_request,
                summary.regrows_per_request
            ),
            (None, None, None)
        );
    }
}
