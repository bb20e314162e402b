//! The Prometheus recorder: metrics-exporter-prometheus's, with heapscape's series handed to
//! [`NativeSeries`], and the exposition that renders both. The agent installs it when it owns
//! the exporter; a service that owns its exporter installs it itself.

use std::sync::{Arc, Weak};
use std::time::Instant;

use hyper::body::Bytes;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::live;
use super::native::NativeSeries;

/// A service's metrics-exporter-prometheus recorder with heapscape's series held by
/// heapscape: build it from the service's `PrometheusBuilder` with
/// [`Recorder::from_builder`], install it as the global recorder instead of the exporter's
/// own, and serve [`Exposition::render`] where the service served `PrometheusHandle::render`.
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
/// let recorder = heapscape::prometheus::Recorder::from_builder(
///     PrometheusBuilder::new(),
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
    /// Builds the service's recorder from `builder` with `global_labels` on every series:
    /// the service's (given to the builder's `add_global_label` here, in order) and
    /// heapscape's (which the builder's recorder never sees).
    ///
    /// Give the global labels here rather than to the builder: a label added to the builder
    /// beforehand reaches only the service's own series, and heapscape's would lack it. The
    /// builder's other settings (buckets, idle timeout, upkeep) apply to the service's series
    /// as they would without heapscape.
    #[must_use]
    pub fn from_builder(
        builder: PrometheusBuilder,
        global_labels: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Self {
        let global_labels: Vec<(String, String)> = global_labels
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        let inner = global_labels
            .iter()
            .fold(builder, |builder, (name, value)| {
                builder.add_global_label(name, value)
            })
            .build_recorder();
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
            live::described();
            self.native.describe(key.as_str(), description);
        } else {
            self.inner.describe_counter(key, unit, description);
        }
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if self.native.handles(key.as_str()) {
            live::described();
            self.native.describe(key.as_str(), description);
        } else {
            self.inner.describe_gauge(key, unit, description);
        }
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if self.native.handles(key.as_str()) {
            live::described();
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
/// The agent's own listener shares renders between scrapes (`render_shared`), so
/// that the memory a large page holds does not grow with the number of readers: 128 slow
/// readers of a 16 MB page (1024 pools) holding a copy each would hold 2 GB.
#[derive(Clone)]
pub struct Exposition {
    handle: PrometheusHandle,
    native: Arc<NativeSeries>,
    /// The renders readers still hold; the lock is held while rendering.
    renders: Arc<tokio::sync::Mutex<Renders>>,
}

/// The most renders held by readers at once: the newest, and one that slow readers of an
/// older publication still hold. At this many, a scrape shares the newest instead of
/// rendering, so a page costs at most this many copies however many read it and however
/// often the heartbeat publishes.
pub(crate) const MAX_HELD_RENDERS: usize = 2;

/// The renders still held by readers, newest last. Holds no render itself: a render's memory
/// goes with its last reader.
#[derive(Default)]
struct Renders {
    held: Vec<Render>,
}

/// One render: its text, reachable only while some reader holds it.
struct Render {
    text: Weak<String>,
    /// When the render began.
    began: Instant,
    /// [`NativeSeries::publications`] when it began.
    publications: u64,
}

/// A render's text as a reader's `Bytes` owns it: every reader of one render shares the one
/// `String`, and its `Weak` in [`Render`] says whether any reader still does.
struct HeldText(Arc<String>);

impl AsRef<[u8]> for HeldText {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl Exposition {
    pub(crate) fn new(handle: PrometheusHandle, native: Arc<NativeSeries>) -> Self {
        Self {
            handle,
            native,
            renders: Arc::new(tokio::sync::Mutex::new(Renders::default())),
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

    /// The page for a scrape that arrived at `arrived`, shared with every other reader of the
    /// same render: one render at a time, and a new one only when it could differ and memory
    /// allows. The newest render still held by a reader is shared when
    ///
    /// - it began at or after `arrived` (concurrent scrapes: nobody gets data older than their
    ///   request);
    /// - no heartbeat publication has finished since it began (heapscape's series are the
    ///   same; the service's own metrics are then at most one heartbeat interval old);
    /// - [`MAX_HELD_RENDERS`] renders are held (slow readers): the newest, however old; it is
    ///   at most as old as the listener's longest connection.
    ///
    /// Otherwise, or when no reader holds a render (a lone scraper always gets a fresh page),
    /// it renders.
    pub(crate) async fn render_shared(&self, arrived: Instant) -> Bytes {
        let mut renders = self.renders.lock().await;
        renders.held.retain(|render| render.text.strong_count() > 0);
        let held = renders.held.len();
        let publications = self.native.publications();
        if let Some(newest) = renders.held.last()
            && (newest.began >= arrived
                || newest.publications == publications
                || held >= MAX_HELD_RENDERS)
            && let Some(text) = newest.text.upgrade()
        {
            return Bytes::from_owner(HeldText(text));
        }
        let began = Instant::now();
        let text = Arc::new(self.render());
        renders.held.push(Render {
            text: Arc::downgrade(&text),
            began,
            publications,
        });
        Bytes::from_owner(HeldText(text))
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
    const NO_LABELS: [(&str, &str); 0] = [];
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
            Ok(value) if value.is_finite() => crate::metrics::go_float(value),
            _ => bound.to_owned(),
        };
        format!("{before}le=\"{spelled}\"{after}")
    }

    /// The same observations give the same lines as the exporter's own series: names, label
    /// order and escaping, values, `_sum`, `_count`, HELP and TYPE; `le` in the Go spelling.
    #[test]
    fn native_rendering_matches_the_exporter() {
        let bounds = heapscape_pool::metrics::LENGTH_BUCKETS;
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
        let native = Recorder::from_builder(PrometheusBuilder::new(), globals);
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
        let recorder = Recorder::from_builder(PrometheusBuilder::new(), NO_LABELS);
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
        let recorder = Recorder::from_builder(PrometheusBuilder::new(), [("service", "shop")]);
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

    fn page(bytes: &Bytes) -> &str {
        std::str::from_utf8(bytes).expect("UTF-8")
    }

    /// Concurrent scrapes that arrive before a render share it: one copy of the text, not one
    /// per scrape. Later scrapes share it until a publication; then at most
    /// [`MAX_HELD_RENDERS`] renders are held, whatever the publications; a scrape that finds
    /// no render held gets a fresh one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scrapes_share_renders_until_a_publication_and_hold_at_most_two() {
        let recorder = Recorder::from_builder(PrometheusBuilder::new(), NO_LABELS);
        for index in 0..1000 {
            let key = Key::from_parts(
                "heapscape_test_total",
                vec![Label::new("i", index.to_string())],
            );
            recorder.register_counter(&key, &METADATA).increment(1);
        }
        // What ends every heartbeat tick.
        let publish = || {
            let key = Key::from_name(heapscape_heartbeat::metrics::SAMPLE_DURATION.name);
            recorder.register_histogram(&key, &METADATA).record(0.001);
        };
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
        let first = texts[0].as_ptr();
        assert!(texts[0].len() > 30_000, "{}", texts[0].len());
        assert!(
            texts.iter().all(|text| text.as_ptr() == first),
            "the 32 scrapes got more than one render"
        );

        // No publication since: a later scrape reads the same bytes.
        let later = exposition.render_shared(Instant::now()).await;
        assert_eq!(
            later.as_ptr(),
            first,
            "rendered again without a publication"
        );

        // After a publication: a fresh render, held next to the first.
        publish();
        let second = exposition.render_shared(Instant::now()).await;
        assert_ne!(second.as_ptr(), first, "the page of an older publication");
        assert!(
            second.len() > texts[0].len(),
            "the sample duration's series"
        );

        // Two renders held: after another publication the newest is shared, not a third.
        publish();
        let capped = exposition.render_shared(Instant::now()).await;
        assert_eq!(capped.as_ptr(), second.as_ptr(), "a third render was held");

        // Once the older readers are done, the next publication gets a render again.
        drop((texts, later));
        publish();
        let third = exposition.render_shared(Instant::now()).await;
        assert_ne!(
            third.as_ptr(),
            second.as_ptr(),
            "no render after readers left"
        );
        let count = "heapscape_heartbeat_sample_duration_seconds_count 3\n";
        assert!(page(&third).contains(count), "{count:?} missing");

        // No reader left: a fresh render, even without a publication.
        drop((second, capped, third));
        let key = Key::from_parts("heapscape_test_total", vec![Label::new("i", "0")]);
        recorder.register_counter(&key, &METADATA).increment(1);
        let text = exposition.render_shared(Instant::now()).await;
        let fresh = "heapscape_test_total{i=\"0\"} 2\n";
        assert!(page(&text).contains(fresh), "{fresh:?} missing");
    }
}
