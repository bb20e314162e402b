//! The Prometheus recorder: metrics-exporter-prometheus's, with heapscape's series handed to
//! [`NativeSeries`], and the exposition that renders both. The agent installs it when it owns
//! the exporter; a service that owns its exporter installs it itself.

use std::sync::Arc;
use std::time::Instant;

use hyper::body::Bytes;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusHandle, PrometheusRecorder};

use super::live;
use super::native::NativeSeries;

/// A service's metrics-exporter-prometheus recorder with heapscape's series held by
/// heapscape: install it as the global recorder instead of the exporter's own, and serve
/// [`Exposition::render`] where the service served `PrometheusHandle::render`.
///
/// Everything else (the service's metrics, the heartbeat's counters and gauges) goes to the
/// exporter's recorder unchanged. The pool's series and the heartbeat's sample duration are
/// held here: their histograms get real buckets, whatever the exporter's builder says, the
/// pool's `record_many(bound, count)` costs one addition instead of `count` samples, and the
/// series of a pool the agent removes (a reload that no longer names it) leave the exposition.
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
    native: Arc<NativeSeries>,
    /// Handed out by [`Recorder::exposition`]; its clones share renders.
    exposition: Exposition,
}

impl Recorder {
    /// Wraps `inner`, built by the service without global labels.
    #[must_use]
    pub fn wrap(inner: PrometheusRecorder) -> Self {
        Self::wrap_with_global_labels(inner, std::iter::empty::<(String, String)>())
    }

    /// Wraps `inner`; `global_labels` are the labels given to its builder's
    /// `add_global_label`, in the same order, so heapscape's series carry them too.
    #[must_use]
    pub fn wrap_with_global_labels(
        inner: PrometheusRecorder,
        global_labels: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Self {
        let global_labels = global_labels
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        let native = Arc::new(NativeSeries::heapscape(global_labels));
        live::register(&native);
        let exposition = Exposition::new(inner.handle(), Arc::clone(&native));
        Self {
            inner,
            native,
            exposition,
        }
    }

    /// What renders the whole exposition; cheap to clone, keep it for the `/metrics` route.
    #[must_use]
    pub fn exposition(&self) -> Exposition {
        self.exposition.clone()
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl metrics::Recorder for Recorder {
    // The exporter adds no unit suffix by default; neither does the native rendering.
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if self.native.handles(key.as_str()) {
            self.native.describe(key.as_str(), description);
        } else {
            self.inner.describe_counter(key, unit, description);
        }
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if self.native.handles(key.as_str()) {
            self.native.describe(key.as_str(), description);
        } else {
            self.inner.describe_gauge(key, unit, description);
        }
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if self.native.handles(key.as_str()) {
            self.native.describe(key.as_str(), description);
        } else {
            self.inner.describe_histogram(key, unit, description);
        }
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        if self.native.handles(key.name()) {
            self.native.counter(key)
        } else {
            self.inner.register_counter(key, metadata)
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        if self.native.handles(key.name()) {
            self.native.gauge(key)
        } else {
            self.inner.register_gauge(key, metadata)
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        if self.native.handles(key.name()) {
            self.native.histogram(key)
        } else {
            self.inner.register_histogram(key, metadata)
        }
    }
}

/// Renders the whole exposition: the exporter's metrics, then heapscape's series, one
/// `# HELP` and `# TYPE` per metric (the exporter never sees heapscape's series, so nothing is
/// written twice).
///
/// The agent's own listener shares renders between concurrent scrapes: one render at a time,
/// and a scrape that waited for another's render takes it if that render began after the
/// scrape arrived (so nobody gets data older than their request). 32 concurrent scrapes of a
/// large exposition then hold a couple of copies of it, not 32.
#[derive(Clone)]
pub struct Exposition {
    handle: PrometheusHandle,
    native: Arc<NativeSeries>,
    /// The last shared render and when it began; the lock is held while rendering.
    last: Arc<tokio::sync::Mutex<Option<(Instant, Bytes)>>>,
}

impl Exposition {
    pub(crate) fn new(handle: PrometheusHandle, native: Arc<NativeSeries>) -> Self {
        Self {
            handle,
            native,
            last: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    /// The text exposition format, as `PrometheusHandle::render` writes it, with heapscape's
    /// series appended. A fresh render on every call.
    #[must_use]
    pub fn render(&self) -> String {
        let mut text = self.handle.render();
        self.native.render_into(&mut text);
        text
    }

    /// A render that began at or after `arrived`, shared with the scrapes that wait for it.
    pub(crate) async fn render_shared(&self, arrived: Instant) -> Bytes {
        let mut last = self.last.lock().await;
        if let Some((began, text)) = &*last
            && *began >= arrived
        {
            return text.clone();
        }
        let began = Instant::now();
        let text = Bytes::from(self.render());
        *last = Some((began, text.clone()));
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
    use metrics::{Key, Label, Level, Metadata, Recorder as _};
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

    use super::*;

    static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);
    const NAME: &str = "heapscape_pool_returned_length_bytes";
    const COUNTER: &str = "heapscape_pool_hits_total";
    const GAUGE: &str = "heapscape_pool_idle_bytes";

    fn lines_of(exposition: &str, name: &str) -> Vec<String> {
        exposition
            .lines()
            .filter(|line| line.contains(name))
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

    /// The same observations give the same lines as the exporter's own series: names, label
    /// order and escaping, values, `_sum`, `_count`, HELP and TYPE; `le` in the Go spelling.
    #[test]
    fn native_rendering_matches_the_exporter() {
        let bounds = heapscape_pool::LENGTH_BUCKETS;
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
            recorder.describe_counter(COUNTER.into(), Some(Unit::Count), "Hits.".into());
            let counter_key = Key::from_parts(COUNTER, vec![Label::new("pool", "pc\nm")]);
            recorder
                .register_counter(&counter_key, &METADATA)
                .increment(u64::MAX - 1);
            recorder.describe_gauge(GAUGE.into(), Some(Unit::Bytes), "Idle.".into());
            let gauge_key = Key::from_parts(GAUGE, vec![Label::new("pool", "pc\nm")]);
            let gauge = recorder.register_gauge(&gauge_key, &METADATA);
            gauge.set(1_048_576.0);
            gauge.increment(0.5);
        }
        let expected = exporter.handle().render();
        let ours = native.exposition().render();
        assert!(expected.contains("le=\"4096\""), "{expected}");
        assert!(expected.contains("le=\"1048576\""), "{expected}");
        // HELP, TYPE, the bounds, +Inf, _sum, _count.
        assert_eq!(
            lines_of(&expected, NAME).len(),
            bounds.len() + 5,
            "{expected}"
        );
        // HELP, TYPE and the value.
        assert_eq!(lines_of(&expected, COUNTER).len(), 3, "{expected}");
        assert_eq!(lines_of(&expected, GAUGE).len(), 3, "{expected}");
        for name in [NAME, COUNTER, GAUGE] {
            let expected: Vec<String> = lines_of(&expected, name)
                .iter()
                .map(|line| go_spelled(line))
                .collect();
            assert_eq!(lines_of(&ours, name), expected, "\n{ours}");
        }
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

    /// A pool the agent removes leaves the exposition of a recorder the service installed,
    /// global labels and all, while the service's own series stay.
    #[test]
    fn a_removed_pool_leaves_a_service_recorder() {
        let recorder = Recorder::wrap_with_global_labels(
            PrometheusBuilder::new()
                .add_global_label("service", "shop")
                .build_recorder(),
            [("service", "shop")],
        );
        let publish = |pool: &str| {
            heapscape_pool::metrics::HITS
                .counter([pool.to_owned().into()])
                .increment(1);
            heapscape_pool::metrics::RETURNED_LENGTH
                .histogram([pool.to_owned().into()])
                .record_many(100.0, 3);
        };
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("shop_orders_total").increment(1);
            publish("recorder-test-kept");
            publish("recorder-test-removed");
        });
        live::pool_removed("recorder-test-removed");
        // A late publication of the removed pool does not bring it back.
        metrics::with_local_recorder(&recorder, || publish("recorder-test-removed"));
        let text = recorder.exposition().render();
        assert!(!text.contains("recorder-test-removed"), "{text}");
        assert!(
            text.contains(
                "heapscape_pool_hits_total{service=\"shop\",pool=\"recorder-test-kept\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("shop_orders_total{service=\"shop\"} 1\n"),
            "{text}"
        );
    }

    /// Concurrent scrapes that arrive before a render share it: one copy of the text, not one
    /// per scrape.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_scrapes_share_one_render() {
        let recorder = Recorder::wrap(PrometheusBuilder::new().build_recorder());
        for index in 0..1000 {
            let key = Key::from_parts(
                "heapscape_test_total",
                vec![Label::new("i", index.to_string())],
            );
            recorder.register_counter(&key, &METADATA).increment(1);
        }
        let exposition = recorder.exposition();
        let arrived = Instant::now();
        let scrapes: Vec<_> = (0..32)
            .map(|_| {
                let exposition = exposition.clone();
                tokio::spawn(async move { exposition.render_shared(arrived).await })
            })
            .collect();
        let mut texts = Vec::new();
        for scrape in scrapes {
            texts.push(scrape.await.expect("scrape"));
        }
        assert!(texts[0].len() > 30_000, "{}", texts[0].len());
        assert!(
            texts.iter().all(|text| text.as_ptr() == texts[0].as_ptr()),
            "the 32 scrapes got more than one render"
        );
        // A scrape that arrives after that render gets a fresh one.
        let later = exposition.render_shared(Instant::now()).await;
        assert_ne!(later.as_ptr(), texts[0].as_ptr());
    }
}
