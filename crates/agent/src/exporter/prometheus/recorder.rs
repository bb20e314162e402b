//! The Prometheus recorder: metrics-exporter-prometheus's, with the pool's size histograms
//! handed to [`NativeHistograms`], and the exposition that renders both.

use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusHandle, PrometheusRecorder};

use super::native::NativeHistograms;

/// metrics-exporter-prometheus's recorder, with the [`NativeHistograms`] names counted natively.
pub(crate) struct PrometheusWithNative {
    pub(crate) inner: PrometheusRecorder,
    pub(crate) native: Arc<NativeHistograms>,
}

impl Recorder for PrometheusWithNative {
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
        if self.native.handles(key.name()) {
            self.native.register(key)
        } else {
            self.inner.register_histogram(key, metadata)
        }
    }
}

/// Renders the whole exposition: the exporter's metrics, then the native histograms.
#[derive(Clone)]
pub(crate) struct Exposition {
    pub(crate) handle: PrometheusHandle,
    pub(crate) native: Arc<NativeHistograms>,
}

impl Exposition {
    pub(crate) fn render(&self) -> String {
        let mut text = self.handle.render();
        self.native.render_into(&mut text);
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

    fn lines_of(exposition: &str) -> Vec<&str> {
        exposition
            .lines()
            .filter(|line| line.contains(NAME))
            .collect()
    }

    /// The same observations give the same lines as the exporter's own histogram: names,
    /// label order and escaping, `le` formatting, `_sum`, `_count`, HELP and TYPE.
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
            native: Arc::new(NativeHistograms::new(
                heapscape_pool::HISTOGRAM_METRICS,
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
        }
        let expected = exporter.handle().render();
        let ours = Exposition {
            handle: native.inner.handle(),
            native: Arc::clone(&native.native),
        }
        .render();
        assert!(expected.contains("le=\"4096\""), "{expected}");
        // HELP, TYPE, 25 bounds, +Inf, _sum, _count.
        assert_eq!(lines_of(&expected).len(), 30, "{expected}");
        assert_eq!(
            lines_of(&ours),
            lines_of(&expected),
            "\n{ours}\n---\n{expected}"
        );
    }
}
