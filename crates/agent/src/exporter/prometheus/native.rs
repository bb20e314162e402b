//! The pool's series and the heartbeat's sample-duration histogram, held by heapscape rather
//! than by metrics-exporter-prometheus: so that a removed pool's series can be dropped, and so
//! that the histograms count whole buckets.
//!
//! The exporter never forgets a registered series: a pool removed by a reload (or renamed)
//! would be rendered forever, and every rename would grow each scrape. Here every series with
//! a `pool` label is kept per pool and dropped with it; a publication that was under way when
//! the pool was removed is ignored, so the series do not come back.
//!
//! The exporter also leaves `Histogram::record_many(value, n)` at the `metrics` default, `n`
//! single samples pushed into its buffer and drained into the histogram at the next render: a
//! pool that publishes millions of returns per tick would make each publish take seconds and
//! hold memory in proportion to the returns. The pool only ever records whole buckets
//! (`record_many(bucket_upper_bound, count)`), so its histograms are counted here, per bucket.
//! The heartbeat's histogram is counted here too, so that a service's own exporter (which knows
//! no buckets for it and would render a summary) needs no configuration for it. Everything is
//! rendered next to the exporter's output in the same format.
//!
//! Bucket bounds are written as the Go client writes them ([`go_float`]), so the series of this
//! path and of the StatsD path (statsd_exporter) carry the same `le` strings.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, HistogramFn, Key, SharedString};
use metrics_exporter_prometheus::formatting::{
    sanitize_label_key, sanitize_label_value, sanitize_metric_name, write_help_line,
    write_type_line,
};

use crate::metrics::go_float;
use crate::sync::lock;

/// How long a removed pool's late publications are ignored. A heartbeat tick takes the pool
/// list before it publishes, so one publication may still come after the removal; it comes
/// within the tick's own time (milliseconds), not minutes.
const LATE_PUBLICATION_WINDOW: Duration = Duration::from_secs(600);

/// The kind of a series, as the exposition's `# TYPE` line says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn type_name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// One series' storage. Counters and gauges are the `metrics` crate's own atomic
/// implementations (a gauge holds its `f64` bits).
enum Value {
    Counter(Arc<AtomicU64>),
    Gauge(Arc<AtomicU64>),
    Histogram(Arc<Series>),
}

/// A series and what its lines need.
struct Entry {
    /// The metric name, sanitized.
    name: String,
    /// `k="v",...` (may be empty): global labels first, then the metric's own.
    labels: String,
    /// The value of the `pool` label, if any: what removing a pool drops.
    pool: Option<String>,
    value: Value,
}

/// The series of heapscape's metrics held here: counters and gauges as plain atomics,
/// histograms whose `record_many(value, n)` adds `n` to one bucket (O(1) per call, a fixed size
/// per series).
pub(crate) struct NativeSeries {
    /// The metric names held here, each with the upper bounds of its histograms (ascending;
    /// values above the last count only in `+Inf`; not used by a counter or gauge).
    metrics: Vec<(&'static str, Arc<[f64]>)>,
    /// The global labels in the order the exporter renders them.
    global_labels: Vec<(String, String)>,
    /// Help texts, first description wins (as in the exporter).
    descriptions: Mutex<HashMap<String, SharedString>>,
    series: Mutex<HashMap<Key, Entry>>,
    /// Pools removed, and when: their late publications are ignored for
    /// [`LATE_PUBLICATION_WINDOW`], unless the pool is added again.
    removed: Mutex<HashMap<String, Instant>>,
    /// Heartbeat ticks that finished publishing: the heartbeat records its sample duration
    /// last in every tick, after the heap and every pool, so each record marks one.
    publications: Arc<AtomicU64>,
}

impl NativeSeries {
    /// Every metric a pool publishes (histograms with the pool's size buckets) and the
    /// heartbeat's sample duration, rendered with `global_labels` first.
    pub(crate) fn heapscape(global_labels: Vec<(String, String)>) -> Self {
        let none: Arc<[f64]> = Arc::new([]);
        let metrics = heapscape_pool::metrics::CATALOG
            .iter()
            .map(|metric| metric.name)
            .chain([heapscape_heartbeat::metrics::SAMPLE_DURATION.name])
            .map(|name| {
                let bounds = crate::metrics::HISTOGRAMS
                    .iter()
                    .find_map(|&(histogram, bounds)| (histogram == name).then(|| bounds.into()));
                (name, bounds.unwrap_or_else(|| Arc::clone(&none)))
            })
            .collect();
        Self::new(metrics, global_labels)
    }

    /// Series for `metrics` (each name with its histogram bounds), rendered with
    /// `global_labels` first.
    fn new(metrics: Vec<(&'static str, Arc<[f64]>)>, global_labels: Vec<(String, String)>) -> Self {
        Self {
            metrics,
            global_labels,
            descriptions: Mutex::new(HashMap::new()),
            series: Mutex::new(HashMap::new()),
            removed: Mutex::new(HashMap::new()),
            publications: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many heartbeat publications have finished: the page changes only when this does
    /// (and when the service's own metrics do).
    pub(crate) fn publications(&self) -> u64 {
        // Acquire, paired with the Release in `Series::record_many`: a render that begins after
        // reading a count sees the publication that count counts.
        self.publications.load(Ordering::Acquire)
    }

    /// Whether `name` is held here rather than by the exporter.
    pub(crate) fn handles(&self, name: &str) -> bool {
        self.bounds_of(name).is_some()
    }

    fn bounds_of(&self, name: &str) -> Option<&Arc<[f64]>> {
        self.metrics
            .iter()
            .find_map(|(known, bounds)| (*known == name).then_some(bounds))
    }

    /// Keeps the help text of `name`; the first description wins, as in the exporter.
    pub(crate) fn describe(&self, name: &str, description: SharedString) {
        lock(&self.descriptions)
            .entry(sanitize_metric_name(name))
            .or_insert(description);
    }

    /// The counter of `key`, created on first use.
    pub(crate) fn counter(&self, key: &Key) -> Counter {
        match self.register(key, Kind::Counter) {
            Some(Value::Counter(counter)) => Counter::from_arc(counter),
            _ => Counter::noop(),
        }
    }

    /// The gauge of `key`, created on first use.
    pub(crate) fn gauge(&self, key: &Key) -> Gauge {
        match self.register(key, Kind::Gauge) {
            Some(Value::Gauge(gauge)) => Gauge::from_arc(gauge),
            _ => Gauge::noop(),
        }
    }

    /// The histogram of `key`, created on first use.
    pub(crate) fn histogram(&self, key: &Key) -> Histogram {
        match self.register(key, Kind::Histogram) {
            Some(Value::Histogram(histogram)) => Histogram::from_arc(histogram),
            _ => Histogram::noop(),
        }
    }

    /// The pool called `pool` is managed again: its series may be created.
    pub(crate) fn pool_added(&self, pool: &str) {
        lock(&self.removed).remove(pool);
    }

    /// Drops every series of the pool called `pool` and ignores its late publications.
    pub(crate) fn pool_removed(&self, pool: &str) {
        // The series lock first, as in `register`: a registration that raced with this
        // removal either ran before it (and is dropped here) or sees the tombstone.
        let mut series = lock(&self.series);
        let mut removed = lock(&self.removed);
        let now = Instant::now();
        removed.retain(|_, at| now.duration_since(*at) < LATE_PUBLICATION_WINDOW);
        removed.insert(pool.to_owned(), now);
        series.retain(|_, entry| entry.pool.as_deref() != Some(pool));
    }

    /// The storage of `key`, created as `kind` on first use; `None` (a no-op handle) for a
    /// removed pool, a name not held here, or a key already used with another kind.
    fn register(&self, key: &Key, kind: Kind) -> Option<Value> {
        let bounds = self.bounds_of(key.name())?;
        let pool = key
            .labels()
            .find(|label| label.key() == "pool")
            .map(|label| label.value().to_owned());
        let mut series = lock(&self.series);
        if let Some(pool) = &pool
            && lock(&self.removed).contains_key(pool)
        {
            return None;
        }
        let entry = series.entry(key.clone()).or_insert_with(|| Entry {
            name: sanitize_metric_name(key.name()),
            labels: self.label_text(key),
            pool,
            value: match kind {
                Kind::Counter => Value::Counter(Arc::new(AtomicU64::new(0))),
                Kind::Gauge => Value::Gauge(Arc::new(AtomicU64::new(0))),
                Kind::Histogram => {
                    let marks = (key.name() == heapscape_heartbeat::metrics::SAMPLE_DURATION.name)
                        .then(|| Arc::clone(&self.publications));
                    Value::Histogram(Arc::new(Series::new(Arc::clone(bounds), marks)))
                }
            },
        });
        match (&entry.value, kind) {
            (Value::Counter(counter), Kind::Counter) => Some(Value::Counter(Arc::clone(counter))),
            (Value::Gauge(gauge), Kind::Gauge) => Some(Value::Gauge(Arc::clone(gauge))),
            (Value::Histogram(histogram), Kind::Histogram) => {
                Some(Value::Histogram(Arc::clone(histogram)))
            }
            _ => None,
        }
    }

    /// The labels as the exporter writes them: global labels first, in their order, then the
    /// metric's own; a metric label with a global label's name replaces its value in place.
    fn label_text(&self, key: &Key) -> String {
        let mut labels = self.global_labels.clone();
        for label in key.labels() {
            match labels.iter_mut().find(|(name, _)| name == label.key()) {
                Some((_, value)) => label.value().clone_into(value),
                None => labels.push((label.key().to_owned(), label.value().to_owned())),
            }
        }
        labels
            .iter()
            .map(|(name, value)| {
                format!(
                    "{}=\"{}\"",
                    sanitize_label_key(name),
                    sanitize_label_value(value)
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Appends the exposition of every series, by name then labels: `# HELP`, `# TYPE`, the
    /// lines of each series (cumulative `_bucket` lines, `+Inf`, `_sum` and `_count` for a
    /// histogram), a blank line after each metric (as the exporter).
    pub(crate) fn render_into(&self, out: &mut String) {
        // Copies of the values, taken under the lock; the text is written without it, so
        // publications never wait for a render.
        let mut lines: Vec<(String, String, Kind, Snapshot)> = lock(&self.series)
            .values()
            .map(|entry| {
                let (kind, snapshot) = match &entry.value {
                    Value::Counter(counter) => {
                        // Relaxed: a single value read for display.
                        (
                            Kind::Counter,
                            Snapshot::Counter(counter.load(Ordering::Relaxed)),
                        )
                    }
                    Value::Gauge(gauge) => (
                        Kind::Gauge,
                        Snapshot::Gauge(f64::from_bits(gauge.load(Ordering::Relaxed))),
                    ),
                    Value::Histogram(histogram) => {
                        let data = lock(&histogram.data);
                        (
                            Kind::Histogram,
                            Snapshot::Histogram(
                                Arc::clone(&histogram.bounds),
                                data.counts.clone(),
                                data.sum,
                            ),
                        )
                    }
                };
                (entry.name.clone(), entry.labels.clone(), kind, snapshot)
            })
            .collect();
        lines.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let descriptions = lock(&self.descriptions).clone();
        let mut current: Option<&str> = None;
        for (name, labels, kind, snapshot) in &lines {
            if current != Some(name.as_str()) {
                if current.is_some() {
                    out.push('\n');
                }
                current = Some(name.as_str());
                if let Some(help) = descriptions.get(name) {
                    write_help_line(out, name, None, None, help);
                }
                write_type_line(out, name, None, None, kind.type_name());
            }
            let braces = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{labels}}}")
            };
            match snapshot {
                Snapshot::Counter(value) => {
                    let _ = writeln!(out, "{name}{braces} {value}");
                }
                Snapshot::Gauge(value) => {
                    let _ = writeln!(out, "{name}{braces} {value}");
                }
                Snapshot::Histogram(bounds, counts, sum) => {
                    render_histogram(out, name, labels, bounds, counts, *sum);
                }
            }
        }
        if current.is_some() {
            out.push('\n');
        }
    }
}

/// A series' values at render time.
enum Snapshot {
    Counter(u64),
    Gauge(f64),
    /// The bounds, the per-bucket counts (not cumulative) and the sum.
    Histogram(Arc<[f64]>, Vec<u64>, f64),
}

fn render_histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[f64],
    counts: &[u64],
    sum: f64,
) {
    let separator = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0u64;
    for (bound, count) in bounds.iter().zip(counts) {
        cumulative = cumulative.saturating_add(*count);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"{}\"}} {cumulative}",
            go_float(*bound)
        );
    }
    let total = counts.iter().fold(0u64, |a, b| a.saturating_add(*b));
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {total}"
    );
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {sum}");
    let _ = writeln!(out, "{name}_count{braces} {total}");
}

/// One histogram series (one label set).
struct Series {
    bounds: Arc<[f64]>,
    /// Per-bucket counts (not cumulative), `bounds.len() + 1` of them (the last is above
    /// every bound), and the sum. One lock for both, so a scrape sees `_sum`, `_count` and
    /// the buckets of the same publications; a publication takes it once per bucket.
    data: Mutex<SeriesData>,
    /// Counted up after each record: set on the heartbeat's sample duration only, whose
    /// record ends a publication.
    marks: Option<Arc<AtomicU64>>,
}

struct SeriesData {
    counts: Vec<u64>,
    sum: f64,
}

impl Series {
    fn new(bounds: Arc<[f64]>, marks: Option<Arc<AtomicU64>>) -> Self {
        let counts = vec![0; bounds.len() + 1];
        Self {
            bounds,
            data: Mutex::new(SeriesData { counts, sum: 0.0 }),
            marks,
        }
    }
}

impl HistogramFn for Series {
    fn record(&self, value: f64) {
        self.record_many(value, 1);
    }

    fn record_many(&self, value: f64, count: usize) {
        if count == 0 || value.is_nan() {
            return;
        }
        // The first bucket whose bound is >= value (`le` is inclusive); past the end: +Inf.
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        {
            let mut data = lock(&self.data);
            data.counts[bucket] = data.counts[bucket].saturating_add(count);
            data.sum += value * count as f64;
        }
        if let Some(marks) = &self.marks {
            // Release: everything the tick published before this record is visible to a
            // render that reads the new count (see `NativeSeries::publications`).
            marks.fetch_add(1, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use metrics::Label;

    use super::*;

    const NAME: &str = "heapscape_pool_returned_length_bytes";
    const HITS: &str = "heapscape_pool_hits_total";

    fn native() -> NativeSeries {
        NativeSeries::heapscape(Vec::new())
    }

    fn of_pool(name: &'static str, pool: &str) -> Key {
        Key::from_parts(name, vec![Label::new("pool", pool.to_owned())])
    }

    fn rendered(native: &NativeSeries) -> String {
        let mut text = String::new();
        native.render_into(&mut text);
        text
    }

    #[test]
    fn millions_of_returns_cost_one_addition() {
        let native = native();
        let histogram = native.histogram(&of_pool(NAME, "p"));
        histogram.record_many(100.0, usize::MAX);
        histogram.record_many(100.0, 7);
        let text = rendered(&native);
        assert!(
            text.contains(&format!("{NAME}_count{{pool=\"p\"}} {}\n", u64::MAX)),
            "{text}"
        );
        assert!(text.contains(&format!("{NAME}_bucket{{pool=\"p\",le=\"64\"}} 0\n")));
    }

    #[test]
    fn a_removed_pool_loses_its_series_and_late_publications_are_ignored() {
        let native = native();
        native.counter(&of_pool(HITS, "gone")).increment(3);
        native.counter(&of_pool(HITS, "kept")).increment(4);
        native.histogram(&of_pool(NAME, "gone")).record(100.0);
        native.pool_removed("gone");
        // A heartbeat tick that took the pool before its removal publishes once more.
        native.counter(&of_pool(HITS, "gone")).increment(5);
        native.histogram(&of_pool(NAME, "gone")).record(100.0);
        let text = rendered(&native);
        assert!(!text.contains("pool=\"gone\""), "{text}");
        assert!(
            text.contains(&format!("{HITS}{{pool=\"kept\"}} 4\n")),
            "{text}"
        );

        // Added again: its series start afresh.
        native.pool_added("gone");
        native.counter(&of_pool(HITS, "gone")).increment(1);
        let text = rendered(&native);
        assert!(
            text.contains(&format!("{HITS}{{pool=\"gone\"}} 1\n")),
            "{text}"
        );
    }

    #[test]
    fn rendered_bounds_use_the_go_spelling() {
        let native = native();
        native
            .histogram(&of_pool(NAME, "p"))
            .record_many(2_000_000.0, 3);
        let sample_duration = heapscape_heartbeat::metrics::SAMPLE_DURATION.name;
        assert!(native.handles(sample_duration));
        assert!(!native.handles("other_seconds"));
        native
            .histogram(&Key::from_name(sample_duration))
            .record(0.000_003);
        let text = rendered(&native);
        for line in [
            format!("{NAME}_bucket{{pool=\"p\",le=\"1.048576e+06\"}} 0\n"),
            format!("{NAME}_bucket{{pool=\"p\",le=\"2.097152e+06\"}} 3\n"),
            format!("{NAME}_bucket{{pool=\"p\",le=\"524288\"}} 0\n"),
            format!("{NAME}_bucket{{pool=\"p\",le=\"1.073741824e+09\"}} 3\n"),
            "heapscape_heartbeat_sample_duration_seconds_bucket{le=\"1e-05\"} 1\n".to_owned(),
            "heapscape_heartbeat_sample_duration_seconds_bucket{le=\"0.0001\"} 1\n".to_owned(),
            "heapscape_heartbeat_sample_duration_seconds_bucket{le=\"+Inf\"} 1\n".to_owned(),
        ] {
            assert!(text.contains(&line), "{line:?} missing from\n{text}");
        }
    }
}
