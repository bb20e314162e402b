//! The Prometheus path: the recorder of metrics-exporter-prometheus with the pool's size
//! histograms counted natively, and the agent's own `/metrics` listener.
//!
//! metrics-exporter-prometheus leaves `Histogram::record_many(value, n)` at the `metrics`
//! default, `n` single samples pushed into its buffer and drained into the histogram at the
//! next render: a pool that publishes millions of returns per tick would make each publish
//! take seconds and hold memory in proportion to the returns. The pool only ever records
//! whole buckets (`record_many(bucket_upper_bound, count)`), so its histograms are counted
//! here, per bucket, and rendered next to the exporter's output in the same format.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::formatting::{
    sanitize_label_key, sanitize_label_value, sanitize_metric_name, write_help_line,
    write_type_line,
};
use metrics_exporter_prometheus::{PrometheusHandle, PrometheusRecorder};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// How often the exporter's upkeep (draining its histogram buffers) runs; the crate's default.
pub(crate) const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Scrapes served at once; further connections are closed at once until one ends.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The exposition format's content type, as metrics-exporter-prometheus sends it.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update below leaves the data consistent, so a panic elsewhere does not spoil it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// Native bucket histograms.

/// Bucket histograms whose `record_many(value, n)` adds `n` to one bucket: O(1) per call,
/// whatever `n` is, and a fixed size per series.
pub(crate) struct NativeHistograms {
    /// The metric names counted here (the pool's size histograms).
    names: &'static [&'static str],
    /// Upper bounds, ascending; values above the last count only in `+Inf`.
    bounds: Arc<[f64]>,
    /// The global labels in the order the exporter renders them.
    global_labels: Vec<(String, String)>,
    /// Help texts, first description wins (as in the exporter).
    descriptions: Mutex<HashMap<String, SharedString>>,
    series: Mutex<HashMap<Key, Arc<Series>>>,
}

impl NativeHistograms {
    /// Histograms for `names` with `bounds` (ascending), rendered with `global_labels` first.
    pub(crate) fn new(
        names: &'static [&'static str],
        bounds: &[f64],
        global_labels: Vec<(String, String)>,
    ) -> Self {
        Self {
            names,
            bounds: bounds.into(),
            global_labels,
            descriptions: Mutex::new(HashMap::new()),
            series: Mutex::new(HashMap::new()),
        }
    }

    fn handles(&self, name: &str) -> bool {
        self.names.contains(&name)
    }

    fn describe(&self, name: &str, description: SharedString) {
        lock(&self.descriptions)
            .entry(sanitize_metric_name(name))
            .or_insert(description);
    }

    fn register(&self, key: &Key) -> Histogram {
        let mut series = lock(&self.series);
        let found = series.entry(key.clone()).or_insert_with(|| {
            Arc::new(Series::new(
                sanitize_metric_name(key.name()),
                self.label_text(key),
                Arc::clone(&self.bounds),
            ))
        });
        Histogram::from_arc(Arc::clone(found))
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
                "{}_bucket{{{}{separator}le=\"{bound}\"}} {cumulative}",
                self.name, self.labels
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

// ---------------------------------------------------------------------------------------------
// The recorder.

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

// ---------------------------------------------------------------------------------------------
// The listener.

/// Serves `/metrics` on `listener` until the task is aborted; dropping the future closes the
/// listener and every open connection.
pub(crate) async fn serve(listener: TcpListener, exposition: Exposition, allow: Arc<[IpNet]>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if connections.len() >= MAX_CONNECTIONS {
                        tracing::warn!(%peer, "too many open scrape connections; closing this one");
                        continue;
                    }
                    let allowed = is_allowed(&allow, peer.ip());
                    connections.spawn(connection(stream, peer, allowed, exposition.clone()));
                }
                Err(error) => {
                    // E.g. out of file descriptors: wait instead of spinning.
                    tracing::warn!(%error, "cannot accept a scrape connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// An empty allowlist admits everyone; an IPv4 client seen as `::ffff:a.b.c.d` on an IPv6
/// listener is checked as `a.b.c.d` too.
fn is_allowed(allow: &[IpNet], peer: IpAddr) -> bool {
    allow.is_empty()
        || allow
            .iter()
            .any(|network| network.contains(&peer) || network.contains(&peer.to_canonical()))
}

async fn connection(stream: TcpStream, peer: SocketAddr, allowed: bool, exposition: Exposition) {
    if !allowed {
        tracing::debug!(%peer, "scrape refused: the address is not in exporter.prometheus.allow");
    }
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let response = respond(&request, allowed, &exposition);
        async move { Ok::<_, Infallible>(response) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(error) = served {
        tracing::debug!(%peer, %error, "scrape connection ended with an error");
    }
}

fn respond(
    request: &Request<Incoming>,
    allowed: bool,
    exposition: &Exposition,
) -> Response<Full<Bytes>> {
    if !allowed {
        return text(
            StatusCode::FORBIDDEN,
            "forbidden: this address may not scrape metrics here\n".to_owned(),
        );
    }
    let readable = matches!(*request.method(), Method::GET | Method::HEAD);
    match request.uri().path() {
        "/metrics" if readable => {
            let mut response = text(StatusCode::OK, exposition.render());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
            response
        }
        "/health" if readable => text(StatusCode::OK, "OK".to_owned()),
        "/metrics" | "/health" => {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: use GET\n".to_owned(),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n".to_owned(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
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

    #[test]
    fn millions_of_returns_cost_one_addition() {
        let native = NativeHistograms::new(
            heapscape_pool::HISTOGRAM_METRICS,
            &heapscape_pool::histogram_buckets(),
            Vec::new(),
        );
        let histogram = native.register(&Key::from_parts(NAME, vec![Label::new("pool", "p")]));
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
}
