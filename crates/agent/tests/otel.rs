//! The OpenTelemetry path as the `otel` example sets it up: metrics-exporter-otel's recorder
//! with heapscape's bounds, the agent started on it. Read back through the SDK's in-memory
//! exporter, the pool's counters, the heap gauges and the histograms are right, the histograms
//! with heapscape's bucket bounds (not OpenTelemetry's defaults, where nearly every size is in
//! the overflow bucket); the example's OTLP exporter delivers the same to a collector on
//! loopback. With `heapscape::otel::BucketCounters`, a publication after a million returns
//! makes no more calls into metrics-exporter-otel's recorder than after a thousand, and the
//! exported bucket counters are exact.

#[path = "../examples/otel/telemetry.rs"]
mod telemetry;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use heapscape::otel::BucketCounters;
use heapscape::{Agent, Config, Pool};
use heapscape_testkit::{WAIT, wait_for};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use metrics_exporter_otel::OpenTelemetryRecorder;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use prost::Message as _;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const RETURNS: usize = 2_000;
const POOL_MAX: u64 = 64 << 10;
const LENGTH: &str = "heapscape_pool_returned_length_bytes";
const CAPACITY: &str = "heapscape_pool_returned_capacity_bytes";
const DURATION: &str = "heapscape_heartbeat_sample_duration_seconds";

/// The `n`th return's length: 100 B to 60 KB, spread over the fine buckets.
fn length(n: usize) -> usize {
    100 + (n * 7919) % 60_000
}

#[test]
fn heapscape_exports_through_opentelemetry_with_its_bucket_bounds() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (collector, requests) = collector();
    let in_memory = InMemoryMetricExporter::default();
    let otlp = telemetry::otlp_exporter(
        Some(&format!("http://{collector}/v1/metrics")),
        runtime.handle().clone(),
    )
    .expect("OTLP exporter");
    // Long intervals: the test exports when it reads (`force_flush`).
    let provider = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(in_memory.clone())
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .with_reader(
            PeriodicReader::builder(otlp)
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    telemetry::install(&provider).expect("the only recorder in this test");
    let config = Config::from_yaml_str(
        &format!(
            "heartbeat: {{ interval: 200ms }}\n\
             pools: {{ pcm: {{ initial_capacity: 1KiB, max_buffer_size: {POOL_MAX} }} }}\n"
        ),
        "otel.yaml",
    )
    .expect("config");
    let agent = Agent::builder()
        .config(config)
        .service_recorder()
        .start()
        .expect("start");

    let pcm = agent.pool("pcm").expect("pool pcm");
    for n in 0..RETURNS {
        pcm.get().resize(length(n), 0);
    }
    let exported = wait_for(WAIT, "every return in the exported histograms", || {
        provider.force_flush().expect("export");
        let exported = in_memory
            .get_finished_metrics()
            .expect("in-memory metrics")
            .pop()?;
        let returns = |name| histogram(&exported, name, "pcm").map_or(0, |h| h.count);
        (returns(LENGTH) == RETURNS as u64 && returns(CAPACITY) == RETURNS as u64)
            .then_some(exported)
    });

    let lengths = histogram(&exported, LENGTH, "pcm").expect("length histogram");
    assert_eq!(lengths.bounds, heapscape::pool::metrics::LENGTH_BUCKETS);
    assert_eq!(
        lengths.counts,
        expected_counts(&lengths.bounds, length, RETURNS)
    );
    assert_eq!(
        lengths.counts.last(),
        Some(&0),
        "nothing in the overflow bucket"
    );
    assert_eq!(lengths.unit, "By");
    let capacities = histogram(&exported, CAPACITY, "pcm").expect("capacity histogram");
    assert_eq!(
        capacities.bounds,
        heapscape::pool::metrics::CAPACITY_BUCKETS
    );
    assert_eq!(capacities.counts.iter().sum::<u64>(), RETURNS as u64);
    let ticks = histogram(&exported, DURATION, "").expect("tick duration histogram");
    let (_, tick_bounds) = heapscape::metrics::HISTOGRAMS
        .iter()
        .find(|(name, _)| *name == DURATION)
        .expect("the tick duration's bounds");
    assert_eq!(ticks.bounds, *tick_bounds);
    assert!(ticks.count > 0 && ticks.unit == "s", "{ticks:?}");

    assert_eq!(
        value(&exported, "heapscape_pool_returns_total", "pcm"),
        Some(("counter", RETURNS as f64))
    );
    assert_eq!(
        value(&exported, "heapscape_pool_max_buffer_size_bytes", "pcm"),
        Some(("gauge", POOL_MAX as f64))
    );
    let heap_gauge = if cfg!(feature = "jemalloc") {
        value(&exported, "heapscape_jemalloc_allocated_bytes", "")
    } else {
        value(&exported, "heapscape_allocator_info", "")
    };
    assert!(
        heap_gauge.is_some_and(|(kind, value)| kind == "gauge" && value > 0.0),
        "{exported:#?}"
    );

    // The same export, as the example sends it over OTLP/HTTP.
    let request = wait_for(WAIT, "an OTLP request with every return", || {
        provider.force_flush().expect("export");
        requests
            .try_iter()
            .filter_map(|request| otlp_histogram(&request, LENGTH))
            .find(|(count, _)| *count == RETURNS as u64)
    });
    assert_eq!(request.1, heapscape::pool::metrics::LENGTH_BUCKETS);

    agent.shutdown();
    provider.shutdown().expect("provider shutdown");
}

/// Returns of the busy pool: at one measurement per return, its publication into
/// metrics-exporter-otel's recorder takes about 0.2 s (release build).
const MANY_RETURNS: usize = 1_000_000;

/// The busy pool's `n`th return's length: 1 B to 4 KB (short, so that a million returns fill
/// their buffers quickly in a debug build), over the fine buckets up to 4,096.
fn short_length(n: usize) -> usize {
    1 + (n * 7919) % 4096
}

#[test]
fn bucket_counters_count_a_busy_pool_exactly_with_calls_that_do_not_grow_with_it() {
    let in_memory = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(in_memory.clone())
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    let meter = provider.meter("greeter");
    let recorder = BucketCounters::new(
        CallCounting::new(OpenTelemetryRecorder::new(meter.clone())),
        &meter,
    );
    let pcm = Pool::builder("pcm")
        .initial_capacity(1024)
        .max_buffer_size(POOL_MAX as usize)
        .build()
        .expect("pool");
    let zeros = vec![0; 4096];
    let mut returned = 0;
    let mut publish_after = |returns: usize| {
        for n in returned..returned + returns {
            pcm.get().extend_from_slice(&zeros[..short_length(n)]);
        }
        returned += returns;
        let before = recorder.inner().calls();
        metrics::with_local_recorder(&recorder, || pcm.publish());
        recorder.inner().calls() - before
    };
    let calls_after_a_thousand = publish_after(1_000);
    let calls_after_a_million = publish_after(MANY_RETURNS - 1_000);
    assert_eq!(calls_after_a_million, calls_after_a_thousand);
    assert_eq!(
        recorder.inner().histogram_calls(),
        0,
        "heapscape's histograms never reach the recorder's one-measurement-per-call path"
    );

    provider.force_flush().expect("export");
    let exported = in_memory
        .get_finished_metrics()
        .expect("in-memory metrics")
        .pop()
        .expect("an export");
    let bounds = heapscape::pool::metrics::LENGTH_BUCKETS;
    let le: Vec<String> = bounds
        .iter()
        .chain([&f64::INFINITY])
        .map(|&bound| heapscape::metrics::go_float(bound))
        .collect();
    let buckets = counter_points(&exported, &format!("{LENGTH}_bucket"), "pcm");
    assert_eq!(
        buckets.len(),
        bounds.len() + 1,
        "one counter per bucket, whatever the traffic: {buckets:?}"
    );
    let mut expected = 0;
    for (le, count) in le
        .iter()
        .zip(expected_counts(&bounds, short_length, MANY_RETURNS))
    {
        expected += count;
        assert_eq!(buckets.get(le), Some(&expected), "le={le}");
    }
    assert_eq!(
        counter_points(&exported, &format!("{LENGTH}_count"), "pcm").get(""),
        Some(&(MANY_RETURNS as u64))
    );
    assert_eq!(
        counter_points(&exported, &format!("{CAPACITY}_count"), "pcm").get(""),
        Some(&(MANY_RETURNS as u64))
    );
    // The pool records each return at its fine bucket's upper bound (finer than the exported
    // buckets below 64 B).
    let sum: f64 = pcm
        .stats()
        .lengths
        .buckets()
        .map(|(bound, count)| (bound * count) as f64)
        .sum();
    assert_eq!(
        sum_point(&exported, &format!("{LENGTH}_sum"), "pcm"),
        Some((sum, "By".to_owned()))
    );
    provider.shutdown().expect("provider shutdown");
}

/// Each point of the `u64` counter `name` of `pool`, by its `le` ("" without one).
fn counter_points(
    exported: &ResourceMetrics,
    name: &str,
    pool: &str,
) -> std::collections::BTreeMap<String, u64> {
    find(exported, name)
        .flat_map(|metric| match metric.data() {
            AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
                .data_points()
                .filter(|point| pool_of(point.attributes()) == pool)
                .map(|point| {
                    let le = point
                        .attributes()
                        .find(|kv| kv.key.as_str() == "le")
                        .map_or_else(String::new, |kv| kv.value.as_str().into_owned());
                    (le, point.value())
                })
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// The value and unit of the `f64` counter `name` of `pool`.
fn sum_point(exported: &ResourceMetrics, name: &str, pool: &str) -> Option<(f64, String)> {
    find(exported, name).find_map(|metric| match metric.data() {
        AggregatedMetrics::F64(MetricData::Sum(sum)) => sum
            .data_points()
            .find(|point| pool_of(point.attributes()) == pool)
            .map(|point| (point.value(), metric.unit().to_owned())),
        _ => None,
    })
}

/// A recorder that counts the calls made into it (registrations and every call on the handles
/// it returns), passing each on to `inner`.
#[derive(Debug)]
struct CallCounting<R> {
    inner: R,
    calls: Arc<AtomicUsize>,
    histogram_calls: Arc<AtomicUsize>,
}

impl<R> CallCounting<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            calls: Arc::default(),
            histogram_calls: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn histogram_calls(&self) -> usize {
        self.histogram_calls.load(Ordering::SeqCst)
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

/// A handle of the inner recorder's, counting each call made on it.
struct Counted<H> {
    inner: H,
    calls: Arc<AtomicUsize>,
}

impl<H> Counted<H> {
    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

impl CounterFn for Counted<Counter> {
    fn increment(&self, value: u64) {
        self.count();
        self.inner.increment(value);
    }

    fn absolute(&self, value: u64) {
        self.count();
        self.inner.absolute(value);
    }
}

impl GaugeFn for Counted<Gauge> {
    fn increment(&self, value: f64) {
        self.count();
        self.inner.increment(value);
    }

    fn decrement(&self, value: f64) {
        self.count();
        self.inner.decrement(value);
    }

    fn set(&self, value: f64) {
        self.count();
        self.inner.set(value);
    }
}

impl HistogramFn for Counted<Histogram> {
    fn record(&self, value: f64) {
        self.count();
        self.inner.record(value);
    }

    fn record_many(&self, value: f64, count: usize) {
        self.count();
        self.inner.record_many(value, count);
    }
}

impl<R: Recorder> Recorder for CallCounting<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.count();
        Counter::from_arc(Arc::new(Counted {
            inner: self.inner.register_counter(key, metadata),
            calls: Arc::clone(&self.calls),
        }))
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.count();
        Gauge::from_arc(Arc::new(Counted {
            inner: self.inner.register_gauge(key, metadata),
            calls: Arc::clone(&self.calls),
        }))
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.count();
        self.histogram_calls.fetch_add(1, Ordering::SeqCst);
        Histogram::from_arc(Arc::new(Counted {
            inner: self.inner.register_histogram(key, metadata),
            calls: Arc::clone(&self.histogram_calls),
        }))
    }
}

/// One histogram data point, copied out of the SDK's types.
#[derive(Debug)]
struct Exported {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    count: u64,
    unit: String,
}

/// Each bucket's count when every `length(n)` of `0..returns` is counted in the first bucket
/// whose bound is at least the length: the pool's fine buckets, which these bounds are.
fn expected_counts(bounds: &[f64], length: fn(usize) -> usize, returns: usize) -> Vec<u64> {
    let mut counts = vec![0; bounds.len() + 1];
    for n in 0..returns {
        counts[bounds.partition_point(|&bound| bound < length(n) as f64)] += 1;
    }
    counts
}

/// The metric called `name` whose `pool` attribute is `pool` (no `pool` attribute for "").
fn find<'a>(
    exported: &'a ResourceMetrics,
    name: &str,
) -> impl Iterator<Item = &'a opentelemetry_sdk::metrics::data::Metric> {
    let name = name.to_owned();
    exported
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .filter(move |metric| metric.name() == name)
}

fn pool_of<'a>(mut attributes: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> String {
    attributes
        .find(|kv| kv.key.as_str() == "pool")
        .map_or_else(String::new, |kv| kv.value.as_str().into_owned())
}

fn histogram(exported: &ResourceMetrics, name: &str, pool: &str) -> Option<Exported> {
    find(exported, name).find_map(|metric| match metric.data() {
        AggregatedMetrics::F64(MetricData::Histogram(histogram)) => histogram
            .data_points()
            .find(|point| pool_of(point.attributes()) == pool)
            .map(|point| Exported {
                bounds: point.bounds().collect(),
                counts: point.bucket_counts().collect(),
                count: point.count(),
                unit: metric.unit().to_owned(),
            }),
        _ => None,
    })
}

/// The counter (`Sum`) or gauge `name` of `pool`, with its kind.
fn value(exported: &ResourceMetrics, name: &str, pool: &str) -> Option<(&'static str, f64)> {
    find(exported, name).find_map(|metric| {
        let points: Vec<(&'static str, String, f64)> = match metric.data() {
            AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
                .data_points()
                .map(|point| ("counter", pool_of(point.attributes()), point.value() as f64))
                .collect(),
            AggregatedMetrics::F64(MetricData::Gauge(gauge)) => gauge
                .data_points()
                .map(|point| ("gauge", pool_of(point.attributes()), point.value()))
                .collect(),
            _ => Vec::new(),
        };
        points
            .into_iter()
            .find_map(|(kind, of, value)| (of == pool).then_some((kind, value)))
    })
}

/// The first data point of the histogram `name` in an OTLP request: its count and bounds.
fn otlp_histogram(request: &ExportMetricsServiceRequest, name: &str) -> Option<(u64, Vec<f64>)> {
    request
        .resource_metrics
        .iter()
        .flat_map(|resource| &resource.scope_metrics)
        .flat_map(|scope| &scope.metrics)
        .filter(|metric| metric.name == name)
        .find_map(|metric| match &metric.data {
            Some(Data::Histogram(histogram)) => histogram
                .data_points
                .first()
                .map(|point| (point.count, point.explicit_bounds.clone())),
            _ => None,
        })
}

/// A stand-in OTLP/HTTP collector on loopback: every `POST /v1/metrics` body, decoded, is sent
/// to the receiver; each is answered 200 and the connection closed. The thread ends with the
/// test process.
fn collector() -> (SocketAddr, mpsc::Receiver<ExportMetricsServiceRequest>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let addr = listener.local_addr().expect("the bound address");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Ok(Some(request)) = receive(stream)
                && sender.send(request).is_err()
            {
                break;
            }
        }
    });
    (addr, receiver)
}

fn receive(stream: TcpStream) -> std::io::Result<Option<ExportMetricsServiceRequest>> {
    stream.set_read_timeout(Some(WAIT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0;
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
        header.clear();
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    stream.flush()?;
    Ok(request_line
        .starts_with("POST /v1/metrics ")
        .then(|| ExportMetricsServiceRequest::decode(body.as_slice()).ok())
        .flatten())
}
