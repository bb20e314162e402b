//! Installing the one exporter: Prometheus (the agent's own listener) or StatsD (UDP,
//! DogStatsD tags).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cadence::{BufferedUdpMetricSink, MetricSink, QueuingMetricSink};
use ipnet::IpNet;
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tokio::task::JoinHandle;

use crate::config::{PrometheusConfig, StatsdConfig};
use crate::prometheus::{Exposition, NativeHistograms, PrometheusWithNative, UPKEEP_INTERVAL};
use crate::{Config, Error, ExporterConfig};

/// The installed exporter, kept for shutdown.
pub(crate) enum Exporter {
    Prometheus {
        addr: SocketAddr,
        server: JoinHandle<()>,
        upkeep: JoinHandle<()>,
    },
    Statsd {
        sink: Arc<QueuingMetricSink>,
        flusher: JoinHandle<()>,
    },
}

/// How often a partly filled StatsD datagram is sent: cadence's buffered sink sends only when
/// the buffer is full, which would hold a tick's last lines until the next tick.
const STATSD_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

impl Exporter {
    /// Builds the exporter described by `config` and installs it as the global recorder.
    pub(crate) fn install(config: &Config) -> Result<Self, Error> {
        let global_labels = global_labels(config);
        match &config.exporter {
            ExporterConfig::Prometheus(prometheus) => {
                install_prometheus(prometheus, &global_labels)
            }
            ExporterConfig::Statsd(statsd) => install_statsd(statsd, global_labels),
        }
    }

    /// The bound Prometheus listener, if that is the exporter.
    pub(crate) fn metrics_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Prometheus { addr, .. } => Some(*addr),
            Self::Statsd { .. } => None,
        }
    }

    /// Sends what is queued: for StatsD, waits (up to `timeout`) for the queue to drain, then
    /// flushes the partly filled datagram. Prometheus keeps serving until `shutdown`.
    pub(crate) fn flush(&self, timeout: Duration) {
        if let Self::Statsd { sink, .. } = self {
            let deadline = Instant::now() + timeout;
            while sink.queued() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            // A send error means the daemon is unreachable: UDP metrics are best effort.
            let _ = sink.flush();
        }
    }

    /// Flushes, then stops the Prometheus listener (closing its open connections) and upkeep.
    pub(crate) fn shutdown(&self, timeout: Duration) {
        self.flush(timeout);
        match self {
            Self::Prometheus { server, upkeep, .. } => {
                server.abort();
                upkeep.abort();
            }
            Self::Statsd { flusher, .. } => flusher.abort(),
        }
    }
}

/// `service` and `labels`, plus StatsD's own `tags`: on every metric of both exporters.
fn global_labels(config: &Config) -> BTreeMap<String, String> {
    let mut labels = config.labels.clone();
    if let ExporterConfig::Statsd(statsd) = &config.exporter {
        labels.extend(statsd.tags.clone());
    }
    if let Some(service) = &config.service {
        labels.insert("service".to_owned(), service.clone());
    }
    labels
}

fn install_prometheus(
    config: &PrometheusConfig,
    labels: &BTreeMap<String, String>,
) -> Result<Exporter, Error> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
    let _entered = runtime.enter();
    // The socket bound here is the one served: a taken port fails the start before anything
    // is installed, and port 0 resolves to the port scrapes reach.
    let listen_error = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::AddrInUse => Error::PortInUse {
            addr: config.listen,
        },
        _ => Error::Listen {
            addr: config.listen,
            source,
        },
    };
    let listener = std::net::TcpListener::bind(config.listen)
        .and_then(|listener| {
            listener.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(listener)
        })
        .map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;

    let mut builder = PrometheusBuilder::new();
    for (name, value) in labels {
        builder = builder.add_global_label(name, value);
    }
    // Real buckets, never summaries: dashboards aggregate `_bucket` series across instances.
    // The pool's size histograms are counted natively (see `prometheus.rs`); the buckets are
    // set for them too, in case anything records them through the exporter.
    let size_buckets = heapscape_pool::histogram_buckets();
    for name in heapscape_pool::HISTOGRAM_METRICS {
        builder =
            builder.set_buckets_for_metric(Matcher::Full((*name).to_owned()), &size_buckets)?;
    }
    builder = builder.set_buckets_for_metric(
        Matcher::Full("heapscape_heartbeat_sample_duration_seconds".to_owned()),
        heapscape_heartbeat::SAMPLE_DURATION_BUCKETS,
    )?;
    let inner = builder.build_recorder();
    let handle = inner.handle();
    let native = Arc::new(NativeHistograms::new(
        heapscape_pool::HISTOGRAM_METRICS,
        &size_buckets,
        // The order the exporter renders its global labels in: as added.
        labels
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
    ));
    let exposition = Exposition {
        handle: handle.clone(),
        native: Arc::clone(&native),
    };
    metrics::set_global_recorder(PrometheusWithNative { inner, native })
        .map_err(|_| Error::RecorderAlreadyInstalled)?;

    let upkeep = runtime.spawn(async move {
        let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            interval.tick().await;
            handle.run_upkeep();
        }
    });
    let allow: Arc<[IpNet]> = config.allow.clone().into();
    let server = runtime.spawn(crate::prometheus::serve(listener, exposition, allow));
    Ok(Exporter::Prometheus {
        addr,
        server,
        upkeep,
    })
}

/// A `MetricSink` over a shared queue, so the recorder and [`SampledHistogram`] send through
/// the same queue and the agent can drain it on shutdown.
struct SharedSink(Arc<QueuingMetricSink>);

impl MetricSink for SharedSink {
    fn emit(&self, metric: &str) -> std::io::Result<usize> {
        self.0.emit(metric)
    }

    fn flush(&self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn install_statsd(
    config: &StatsdConfig,
    tags: BTreeMap<String, String>,
) -> Result<Exporter, Error> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
    let statsd_error = |source| Error::Statsd {
        host: config.host.clone(),
        port: config.port,
        source,
    };
    // Bound to loopback when the daemon is local, so the datagrams never leave the machine.
    let local = if config.host == "localhost"
        || config
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    {
        "127.0.0.1:0"
    } else {
        "0.0.0.0:0"
    };
    let socket = UdpSocket::bind(local).map_err(statsd_error)?;
    socket.set_nonblocking(true).map_err(statsd_error)?;
    // Resolves the host once, now; a daemon that is down only loses datagrams.
    let udp = BufferedUdpMetricSink::with_capacity(
        (config.host.as_str(), config.port),
        socket,
        config.buffer_size,
    )
    .map_err(|error| statsd_error(std::io::Error::other(error.to_string())))?;
    // An explicit queue size: the crate's own default is 256, which a pool's publication
    // overflows.
    let sink = Arc::new(QueuingMetricSink::with_capacity(udp, config.queue_size));

    let recorder_sink = Arc::clone(&sink);
    let mut builder =
        metrics_exporter_statsd::StatsdBuilder::from(config.host.clone(), config.port)
            .with_sink(SharedSink(recorder_sink));
    for (name, value) in &tags {
        builder = builder.with_default_tag(name, value);
    }
    let inner = builder
        .build(None)
        .map_err(|error| statsd_error(std::io::Error::other(error.to_string())))?;
    let recorder = StatsdRecorder {
        inner,
        sink: Arc::clone(&sink),
        default_tags: tags,
    };
    metrics::set_global_recorder(recorder).map_err(|_| Error::RecorderAlreadyInstalled)?;
    let flushed = Arc::clone(&sink);
    let flusher = runtime.spawn(async move {
        let mut interval = tokio::time::interval(STATSD_FLUSH_INTERVAL);
        loop {
            interval.tick().await;
            // Non-blocking socket; an unreachable daemon only loses the datagram.
            let _ = flushed.flush();
        }
    });
    Ok(Exporter::Statsd { sink, flusher })
}

/// metrics-exporter-statsd's recorder, with histograms whose `record_many` sends one sampled
/// line instead of one line per observation.
///
/// The crate sends histograms as `|h`, which statsd_exporter turns into an observer (a real
/// histogram with `observer_type: histogram`) without the `/1000` it applies to `|ms` timers.
/// But it leaves `record_many(value, n)` at the `metrics` default, `n` calls to `record`: a
/// pool publishing thousands of returns per tick would flood (and overflow) the queue. A line
/// `name:value|h|@(1/n)` means the same to statsd_exporter (it repeats the observation
/// `int(1/rate)` times) and to Etsy statsd (which scales by `1/rate`).
struct StatsdRecorder {
    inner: metrics_exporter_statsd::StatsdRecorder,
    sink: Arc<QueuingMetricSink>,
    default_tags: BTreeMap<String, String>,
}

impl Recorder for StatsdRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.inner.register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.inner.register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        // The same tag order as the crate's own lines: the metric's labels, then the defaults.
        let mut tags = String::new();
        let defaults = self
            .default_tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()));
        for (name, value) in key.labels().map(|l| (l.key(), l.value())).chain(defaults) {
            let separator = if tags.is_empty() { "|#" } else { "," };
            let _ = write!(tags, "{separator}{name}:{value}");
        }
        Histogram::from_arc(Arc::new(SampledHistogram {
            single: self.inner.register_histogram(key, metadata),
            name: key.name().to_owned(),
            tags,
            sink: Arc::clone(&self.sink),
        }))
    }
}

struct SampledHistogram {
    single: Histogram,
    name: String,
    /// `|#k:v,...` or empty.
    tags: String,
    sink: Arc<QueuingMetricSink>,
}

impl HistogramFn for SampledHistogram {
    fn record(&self, value: f64) {
        self.single.record(value);
    }

    fn record_many(&self, value: f64, count: usize) {
        let mut left = count;
        while left > 1 {
            let rate = 1.0 / left as f64;
            // What a receiver computes back from the rate as written (Rust prints the shortest
            // text that parses to the same f64): statsd_exporter truncates `1/rate`, which can
            // land one below `left`; the rest goes out in the next line.
            let represented = ((1.0 / rate) as usize).clamp(1, left);
            let line = format!("{}:{value}|h|@{rate}{}", self.name, self.tags);
            // A full queue drops the line, as it would any metric.
            let _ = self.sink.emit(&line);
            left -= represented;
        }
        if left == 1 {
            self.single.record(value);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sample_rates_round_trip_to_whole_counts() {
        // Every count up to a million is represented by at most two lines.
        for count in 2..1_000_000usize {
            let rate = 1.0 / count as f64;
            let parsed: f64 = rate.to_string().parse().unwrap();
            let represented = (1.0 / parsed) as usize;
            assert!(
                represented == count || represented + 1 == count,
                "{count}: {represented}"
            );
        }
    }
}
