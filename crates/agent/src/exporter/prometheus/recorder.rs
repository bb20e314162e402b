//! The Prometheus recorder: metrics-exporter-prometheus's, with heapscape's histograms handed
//! to [`NativeHistograms`], and the exposition that renders both. The agent installs it when it
//! owns the exporter; a service that owns its exporter installs it itself.

use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusHandle, PrometheusRecorder};

use super::native::NativeHistograms;

/// A service's metrics-exporter-prometheus recorder with heapscape's histograms counted by
/// heapscape: install it as the global recorder instead of the exporter's own, and serve
/// [`Exposition::render`] where the service served `PrometheusHandle::render`.
///
/// Everything else (the service's metrics, heapscape's counters and gauges) goes to the
/// exporter's recorder unchanged. heapscape's histograms (the pool's size histograms and the
/// heartbeat's sample duration) get real buckets, whatever the exporter's builder says, and
/// the pool's `record_many(bound, count)` costs one addition instead of `count` samples.
///
/// ```
/// use metrics_exporter_prometheus::PrometheusBuilder;
///
/// let recorder = heapscape::prometheus::Recorder::wrap_with_global_labels(
///     PrometheusBuilder::new()
///         .add_global_label("service", "shop")
///         .build_recorder(),
///     [("service", "shop")],
/// );
/// let exposition = recorder.exposition();
/// metrics::with_local_recorder(&recorder, || {
///     metrics::counter!("shop_orders_total").increment(1);
///     heapscape::metrics::describe();
///     heapscape_pool::metrics::RETURNED_LENGTH
///         .histogram(["pcm".into()])
///         .record_many(4096.0, 1_000_000);
/// });
/// let text = exposition.render();
/// assert!(text.contains("shop_orders_total{service=\"shop\"} 1"));
/// assert!(text.contains(
///     "heapscape_pool_returned_length_bytes_bucket{service=\"shop\",pool=\"pcm\",le=\"4096\"} 1000000"
/// ));
/// ```
pub struct Recorder {
    inner: PrometheusRecorder,
    native: Arc<NativeHistograms>,
}

impl Recorder {
    /// Wraps `inner`, built by the service without global labels.
    #[must_use]
    pub fn wrap(inner: PrometheusRecorder) -> Self {
        Self::wrap_with_global_labels(inner, std::iter::empty::<(String, String)>())
    }

    /// Wraps `inner`; `global_labels` are the labels given to its builder's
    /// `add_global_label`, in the same order, so heapscape's histograms carry them too.
    #[must_use]
    pub fn wrap_with_global_labels(
        inner: PrometheusRecorder,
        global_labels: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Self {
        let global_labels = global_labels
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        Self {
            inner,
            native: Arc::new(NativeHistograms::heapscape(global_labels)),
        }
    }

    /// What renders the whole exposition; cheap to clone, keep it for the `/metrics` route.
    #[must_use]
    pub fn exposition(&self) -> Exposition {
        Exposition {
            handle: self.inner.handle(),
            native: Arc::clone(&self.native),
        }
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if self.native.handles(key.as_str()) {
            // The exporter adds no unit suffix by default; neither do the native histograms.
            self.native.describe(key.as_str(), description);
        } else {
            self.inner.describe_histogram(key, unit, description);
        }
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.inner.register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.inner.register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.native
            .register(key)
            .unwrap_or_else(|| self.inner.register_histogram(key, metadata))
    }
}

/// Renders the whole exposition: the exporter's metrics, then heapscape's histograms, one
/// `# HELP` and `# TYPE` per metric (the exporter never sees heapscape's histograms, so
/// nothing is written twice).
#[derive(Clone)]
pub struct Exposition {
    pub(crate) handle: PrometheusHandle,
    pub(crate) native: Arc<NativeHistograms>,
}

impl Exposition {
    /// The text exposition format, as `PrometheusHandle::render` writes it, with heapscape's
    /// histograms appended.
    #[must_use]
    pub fn render(&self) -> String {
        let mut text = self.handle.render();
        self.native.render_into(&mut text);
        text
    }

    /// The exporter's handle, e.g. for its `run_upkeep`.
    #[must_use]
    pub fn handle(&self) -> &PrometheusHandle {
        &self.handle
    }
}

impl std::fmt::Debug for Exposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exposition").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use metrics::{Key, Label, Level, Metadata};
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

    use super::*;

    static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);
    const NAME: &str = "heapscape_pool_returned_length_bytes";

    fn lines_of(exposition: &str) -> Vec<String> {
        exposition
            .lines()
            .filter(|line| line.contains(NAME))
            .map(str::to_owned)
            .collect()
    }

    /// The exporter's line with its `le` value in the Go spelling the native histograms use
    /// (the exporter writes Rust's `1048576`, they write `1.048576e+06`).
    fn go_spelled(line: &str) -> String {
        let Some((before, rest)) = line.split_once("le=\"") else {
            return line.to_owned();
        };
        let (bound, after) = rest.split_once('"').expect("a closed le value");
        let spelled = match bound.parse::<f64>() {
            Ok(value) if value.is_finite() => super::super::native::go_float(value),
            _ => bound.to_owned(),
        };
        format!("{before}le=\"{spelled}\"{after}")
    }

    /// The same observations give the same lines as the exporter's own histogram: names,
    /// label order and escaping, `_sum`, `_count`, HELP and TYPE; `le` in the Go spelling.
    #[test]
    fn native_rendering_matches_the_exporter() {
        let bounds = heapscape_pool::histogram_buckets();
        let globals = [
            ("service", "svc \"q\"\\x"),
            ("a_label", "1"),
            ("pooling", "on"),
        ];
        let mut builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(NAME.to_owned()), &bounds)
            .unwrap();
        for (name, value) in globals {
            builder = builder.add_global_label(name, value);
        }
        let exporter = builder.build_recorder();
        let native =
            Recorder::wrap_with_global_labels(PrometheusBuilder::new().build_recorder(), globals);
        let key = Key::from_parts(NAME, vec![Label::new("pool", "pc\nm")]);
        for recorder in [&exporter as &dyn metrics::Recorder, &native] {
            recorder.describe_histogram(
                NAME.into(),
                Some(Unit::Bytes),
                "Lengths of \"returned\" buffers.".into(),
            );
            let histogram = recorder.register_histogram(&key, &METADATA);
            for (value, count) in [(0.0, 2), (64.0, 3), (4096.0, 5), (1_073_741_824.0, 1)] {
                histogram.record_many(value, count);
            }
            // Above the last bound: only +Inf.
            histogram.record((1u64 << 40) as f64);
        }
        let expected = exporter.handle().render();
        let ours = native.exposition().render();
        assert!(expected.contains("le=\"4096\""), "{expected}");
        assert!(expected.contains("le=\"1048576\""), "{expected}");
        // HELP, TYPE, 25 bounds, +Inf, _sum, _count.
        assert_eq!(lines_of(&expected).len(), 30, "{expected}");
        let expected: Vec<String> = lines_of(&expected).iter().map(|l| go_spelled(l)).collect();
        assert_eq!(lines_of(&ours), expected, "\n{ours}");
        assert!(ours.contains("le=\"1.048576e+06\""), "{ours}");
    }

    /// A service's own metrics and heapscape's, described twice (the agent and the service
    /// both call describe), render one HELP and one TYPE line per metric.
    #[test]
    fn describing_twice_writes_each_help_and_type_once() {
        let recorder = Recorder::wrap(PrometheusBuilder::new().build_recorder());
        metrics::with_local_recorder(&recorder, || {
            for _ in 0..2 {
                crate::metrics::describe();
                metrics::describe_counter!("shop_orders_total", "Orders.");
            }
            metrics::counter!("shop_orders_total").increment(1);
            heapscape_pool::metrics::HITS
                .counter(["p".into()])
                .increment(1);
            heapscape_pool::metrics::RETURNED_LENGTH
                .histogram(["p".into()])
                .record_many(100.0, 3);
        });
        let text = recorder.exposition().render();
        for metric in [
            "shop_orders_total",
            "heapscape_pool_hits_total",
            "heapscape_pool_returned_length_bytes",
        ] {
            for kind in ["# HELP", "# TYPE"] {
                let prefix = format!("{kind} {metric} ");
                let count = text.lines().filter(|l| l.starts_with(&prefix)).count();
                assert_eq!(count, 1, "{prefix:?} in\n{text}");
            }
        }
    }
}
