//! Native bucket histograms for every heapscape histogram: the pool's size histograms and the
//! heartbeat's sample duration.
//!
//! metrics-exporter-prometheus leaves `Histogram::record_many(value, n)` at the `metrics`
//! default, `n` single samples pushed into its buffer and drained into the histogram at the
//! next render: a pool that publishes millions of returns per tick would make each publish
//! take seconds and hold memory in proportion to the returns. The pool only ever records
//! whole buckets (`record_many(bucket_upper_bound, count)`), so its histograms are counted
//! here, per bucket, and rendered next to the exporter's output in the same format. The
//! heartbeat's histogram is counted here too, so that a service's own exporter (which knows no
//! buckets for it and would render a summary) needs no configuration for it.
//!
//! Bucket bounds are written as the Go client writes them ([`go_float`]), so the series of this
//! path and of the StatsD path (statsd_exporter) carry the same `le` strings.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use metrics::{Histogram, HistogramFn, Key, SharedString};
use metrics_exporter_prometheus::formatting::{
    sanitize_label_key, sanitize_label_value, sanitize_metric_name, write_help_line,
    write_type_line,
};

use crate::sync::lock;

/// Bucket histograms whose `record_many(value, n)` adds `n` to one bucket: O(1) per call,
/// whatever `n` is, and a fixed size per series.
pub(crate) struct NativeHistograms {
    /// The metric names counted here, each with its upper bounds (ascending; values above the
    /// last count only in `+Inf`).
    histograms: Vec<(&'static str, Arc<[f64]>)>,
    /// The global labels in the order the exporter renders them.
    global_labels: Vec<(String, String)>,
    /// Help texts, first description wins (as in the exporter).
    descriptions: Mutex<HashMap<String, SharedString>>,
    series: Mutex<HashMap<Key, Arc<Series>>>,
}

impl NativeHistograms {
    /// Every heapscape histogram with its buckets, rendered with `global_labels` first.
    pub(crate) fn heapscape(global_labels: Vec<(String, String)>) -> Self {
        let mut native = Self::new(
            heapscape_pool::HISTOGRAM_METRICS,
            &heapscape_pool::histogram_buckets(),
            global_labels,
        );
        native.histograms.push((
            heapscape_heartbeat::metrics::SAMPLE_DURATION.name,
            heapscape_heartbeat::SAMPLE_DURATION_BUCKETS.into(),
        ));
        native
    }

    /// Histograms for `names`, all with `bounds` (ascending), rendered with `global_labels`
    /// first.
    pub(crate) fn new(
        names: &'static [&'static str],
        bounds: &[f64],
        global_labels: Vec<(String, String)>,
    ) -> Self {
        let bounds: Arc<[f64]> = bounds.into();
        Self {
            histograms: names
                .iter()
                .map(|name| (*name, Arc::clone(&bounds)))
                .collect(),
            global_labels,
            descriptions: Mutex::new(HashMap::new()),
            series: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `name` is counted here rather than by the exporter.
    pub(crate) fn handles(&self, name: &str) -> bool {
        self.bounds_of(name).is_some()
    }

    fn bounds_of(&self, name: &str) -> Option<&Arc<[f64]>> {
        self.histograms
            .iter()
            .find_map(|(known, bounds)| (*known == name).then_some(bounds))
    }

    /// Keeps the help text of `name`; the first description wins, as in the exporter.
    pub(crate) fn describe(&self, name: &str, description: SharedString) {
        lock(&self.descriptions)
            .entry(sanitize_metric_name(name))
            .or_insert(description);
    }

    /// The series of `key`, created on first use; `None` if its name is not counted here.
    pub(crate) fn register(&self, key: &Key) -> Option<Histogram> {
        let bounds = self.bounds_of(key.name())?;
        let mut series = lock(&self.series);
        let found = series.entry(key.clone()).or_insert_with(|| {
            Arc::new(Series::new(
                sanitize_metric_name(key.name()),
                self.label_text(key),
                Arc::clone(bounds),
            ))
        });
        Some(Histogram::from_arc(Arc::clone(found)))
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

    /// Appends the exposition of every series: `# HELP`, `# TYPE`, cumulative `_bucket`
    /// lines, `+Inf`, `_sum` and `_count`, a blank line after each metric (as the exporter).
    pub(crate) fn render_into(&self, out: &mut String) {
        let mut series: Vec<Arc<Series>> = lock(&self.series).values().cloned().collect();
        series.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        let descriptions = lock(&self.descriptions).clone();
        let mut current: Option<&str> = None;
        for one in &series {
            if current != Some(one.name.as_str()) {
                if current.is_some() {
                    out.push('\n');
                }
                current = Some(one.name.as_str());
                if let Some(help) = descriptions.get(&one.name) {
                    write_help_line(out, &one.name, None, None, help);
                }
                write_type_line(out, &one.name, None, None, "histogram");
            }
            one.render_into(out);
        }
        if current.is_some() {
            out.push('\n');
        }
    }
}

/// One histogram series (one label set).
struct Series {
    name: String,
    /// `k="v",...` (may be empty), without `le`.
    labels: String,
    bounds: Arc<[f64]>,
    /// Per-bucket counts (not cumulative), `bounds.len() + 1` of them (the last is above
    /// every bound), and the sum. One lock for both, so a scrape sees `_sum`, `_count` and
    /// the buckets of the same publications; a publication takes it once per bucket.
    data: Mutex<SeriesData>,
}

struct SeriesData {
    counts: Vec<u64>,
    sum: f64,
}

impl Series {
    fn new(name: String, labels: String, bounds: Arc<[f64]>) -> Self {
        let counts = vec![0; bounds.len() + 1];
        Self {
            name,
            labels,
            bounds,
            data: Mutex::new(SeriesData { counts, sum: 0.0 }),
        }
    }

    fn render_into(&self, out: &mut String) {
        let (counts, sum) = {
            let data = lock(&self.data);
            (data.counts.clone(), data.sum)
        };
        let separator = if self.labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (bound, count) in self.bounds.iter().zip(&counts) {
            cumulative = cumulative.saturating_add(*count);
            let _ = writeln!(
                out,
                "{}_bucket{{{}{separator}le=\"{}\"}} {cumulative}",
                self.name,
                self.labels,
                go_float(*bound)
            );
        }
        let total = counts.iter().fold(0u64, |a, b| a.saturating_add(*b));
        let _ = writeln!(
            out,
            "{}_bucket{{{}{separator}le=\"+Inf\"}} {total}",
            self.name, self.labels
        );
        let braces = if self.labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", self.labels)
        };
        let _ = writeln!(out, "{}_sum{braces} {sum}", self.name);
        let _ = writeln!(out, "{}_count{braces} {total}", self.name);
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
        let mut data = lock(&self.data);
        data.counts[bucket] = data.counts[bucket].saturating_add(count);
        data.sum += value * count as f64;
    }
}

/// `value` as Go's `strconv.FormatFloat(value, 'g', -1, 64)` writes it, which is how the Go
/// client (and so statsd_exporter) spells `le`: the shortest digits that round-trip, in
/// exponent form when the decimal exponent is below -4 or at least 6, the exponent with its
/// sign and at least two digits (`524288`, `1.048576e+06`, `0.0001`, `1e-05`); `+Inf`.
///
/// An `le` value is a label string, so `1048576` here and `1.048576e+06` there would be two
/// series for one bound wherever both paths meet in a query.
pub(super) fn go_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if value == 0.0 {
        return "0".to_owned();
    }
    // Rust's `{:e}` writes the same shortest round-trip digits, as `1.048576e6`.
    let scientific = format!("{value:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let exponent: i32 = exponent.parse().unwrap_or_default();
    if (-4..6).contains(&exponent) {
        // Rust's `{}` never uses an exponent and keeps the shortest digits.
        format!("{value}")
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use metrics::Label;

    use super::*;

    const NAME: &str = "heapscape_pool_returned_length_bytes";

    #[test]
    fn millions_of_returns_cost_one_addition() {
        let native = NativeHistograms::heapscape(Vec::new());
        let histogram = native
            .register(&Key::from_parts(NAME, vec![Label::new("pool", "p")]))
            .expect("a pool histogram");
        histogram.record_many(100.0, usize::MAX);
        histogram.record_many(100.0, 7);
        let mut text = String::new();
        native.render_into(&mut text);
        assert!(
            text.contains(&format!("{NAME}_count{{pool=\"p\"}} {}\n", u64::MAX)),
            "{text}"
        );
        assert!(text.contains(&format!("{NAME}_bucket{{pool=\"p\",le=\"64\"}} 0\n")));
    }

    #[test]
    fn bounds_are_spelled_as_go_spells_them() {
        // What Go's strconv.FormatFloat(f, 'g', -1, 64) returns for these values.
        for (value, go) in [
            (0.0, "0"),
            (64.0, "64"),
            (524_288.0, "524288"),
            (999_999.0, "999999"),
            (1e6, "1e+06"),
            (1_048_576.0, "1.048576e+06"),
            (1_073_741_824.0, "1.073741824e+09"),
            (1.0, "1"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.000_25, "0.00025"),
            (0.000_01, "1e-05"),
            (0.000_025, "2.5e-05"),
            (1e100, "1e+100"),
            (1e-100, "1e-100"),
            (-1_048_576.0, "-1.048576e+06"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(go_float(value), go, "{value}");
        }
    }

    #[test]
    fn rendered_bounds_use_the_go_spelling() {
        let native = NativeHistograms::heapscape(Vec::new());
        let lengths = native
            .register(&Key::from_parts(NAME, vec![Label::new("pool", "p")]))
            .expect("a pool histogram");
        lengths.record_many(2_000_000.0, 3);
        let durations = native
            .register(&Key::from_name(
                heapscape_heartbeat::metrics::SAMPLE_DURATION.name,
            ))
            .expect("the heartbeat's histogram");
        assert!(native.register(&Key::from_name("other_seconds")).is_none());
        durations.record(0.000_003);
        let mut text = String::new();
        native.render_into(&mut text);
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
