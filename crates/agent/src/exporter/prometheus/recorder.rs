//! The Prometheus recorder: metrics-exporter-prometheus's, with the pool's series handed to
//! [`NativeSeries`], and the exposition that renders both.

use std::sync::Arc;
use std::time::Instant;

use hyper::body::Bytes;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusHandle, PrometheusRecorder};

use super::native::NativeSeries;

/// metrics-exporter-prometheus's recorder, with the [`NativeSeries`] names held natively.
pub(crate) struct PrometheusWithNative {
    pub(crate) inner: PrometheusRecorder,
    pub(crate) native: Arc<NativeSeries>,
}

impl Recorder for PrometheusWithNative {
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

/// Renders the whole exposition: the exporter's metrics, then the native series.
///
/// Concurrent scrapes share renders: one render at a time, and a scrape that waited for
/// another's render takes it if that render began after the scrape arrived (so nobody gets
/// data older than their request). 32 concurrent scrapes of a large exposition then hold a
/// couple of copies of it, not 32.
#[derive(Clone)]
pub(crate) struct Exposition {
    handle: PrometheusHandle,
    native: Arc<NativeSeries>,
    /// The last render and when it began; the lock is held while rendering.
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

    /// A fresh render, not shared.
    pub(crate) fn render(&self) -> String {
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
}

#[cfg(test)]
mod tests {
    use metrics::{Key, Label, Level, Metadata, Recorder};
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

    use super::*;

    static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);
    const NAME: &str = "heapscape_pool_returned_length_bytes";
    const COUNTER: &str = "heapscape_pool_hits_total";
    const GAUGE: &str = "heapscape_pool_idle_bytes";

    fn lines_of<'a>(exposition: &'a str, name: &str) -> Vec<&'a str> {
        exposition
            .lines()
            .filter(|line| line.contains(name))
            .collect()
    }

    /// The same observations give the same lines as the exporter's own series: names, label
    /// order and escaping, values, `le` formatting, `_sum`, `_count`, HELP and TYPE.
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
        let native = PrometheusWithNative {
            inner: PrometheusBuilder::new().build_recorder(),
            native: Arc::new(NativeSeries::new(
                vec![NAME, COUNTER, GAUGE],
                &bounds,
                globals
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )),
        };
        let key = Key::from_parts(NAME, vec![Label::new("pool", "pc\nm")]);
        for recorder in [&exporter as &dyn Recorder, &native] {
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
        let ours = Exposition::new(native.inner.handle(), Arc::clone(&native.native)).render();
        assert!(expected.contains("le=\"4096\""), "{expected}");
        // HELP, TYPE, 25 bounds, +Inf, _sum, _count.
        assert_eq!(lines_of(&expected, NAME).len(), 30, "{expected}");
        // HELP, TYPE and the value.
        assert_eq!(lines_of(&expected, COUNTER).len(), 3, "{expected}");
        assert_eq!(lines_of(&expected, GAUGE).len(), 3, "{expected}");
        for name in [NAME, COUNTER, GAUGE] {
            assert_eq!(
                lines_of(&ours, name),
                lines_of(&expected, name),
                "\n{ours}\n---\n{expected}"
            );
        }
    }

    /// Concurrent scrapes that arrive before a render share it: one copy of the text, not one
    /// per scrape.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_scrapes_share_one_render() {
        let recorder = PrometheusBuilder::new().build_recorder();
        for index in 0..1000 {
            let key = Key::from_parts(
                "heapscape_test_total",
                vec![Label::new("i", index.to_string())],
            );
            recorder.register_counter(&key, &METADATA).increment(1);
        }
        let exposition = Exposition::new(
            recorder.handle(),
            Arc::new(NativeSeries::new(Vec::new(), &[], Vec::new())),
        );
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
