//! The OpenTelemetry path as the `otel` example sets it up: metrics-exporter-otel's recorder
//! with heapscape's bounds, the agent started on it. Read back through the SDK's in-memory
//! exporter, the pool's counters, the heap gauges and the histograms are right, the histograms
//! with heapscape's bucket bounds (not OpenTelemetry's defaults, where nearly every size is in
//! the overflow bucket); the example's OTLP exporter delivers the same to a collector on
//! loopback.

#[path = "../examples/otel/telemetry.rs"]
mod telemetry;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use heapscape::{Agent, Config};
use heapscape_testkit::{WAIT, wait_for};
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
    assert_eq!(lengths.counts, expected_counts(&lengths.bounds, length));
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

/// One histogram data point, copied out of the SDK's types.
#[derive(Debug)]
struct Exported {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    count: u64,
    unit: String,
}

/// Each bucket's count when every `length(n)` is counted in the first bucket whose bound is at
/// least the length: the pool's fine buckets, which these bounds are.
fn expected_counts(bounds: &[f64], length: fn(usize) -> usize) -> Vec<u64> {
    let mut counts = vec![0; bounds.len() + 1];
    for n in 0..RETURNS {
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
