//! The StatsD path: metrics-exporter-statsd's recorder over a shared UDP queue, with pool
//! histograms sent as sampled lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cadence::{BufferedUdpMetricSink, MetricSink, QueuingMetricSink};
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use tokio::task::JoinHandle;

use crate::Error;
use crate::config::StatsdConfig;

/// How often a partly filled StatsD datagram is sent: cadence's buffered sink sends only when
/// the buffer is full, which would hold a tick's last lines until the next tick.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The installed StatsD exporter: the queue every line goes through, and its flusher task.
pub(crate) struct StatsdExporter {
    sink: Arc<QueuingMetricSink>,
    flusher: JoinHandle<()>,
}

impl StatsdExporter {
    /// Resolves the daemon's address, installs the recorder with `tags` on every metric, and
    /// starts the periodic flush on the current tokio runtime.
    pub(crate) fn install(
        config: &StatsdConfig,
        tags: BTreeMap<String, String>,
    ) -> Result<Self, Error> {
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

        let recorder = StatsdRecorder::new(config, Arc::clone(&sink), tags)
            .map_err(|error| statsd_error(std::io::Error::other(error.to_string())))?;
        metrics::set_global_recorder(recorder).map_err(|_| Error::RecorderAlreadyInstalled)?;
        let flushed = Arc::clone(&sink);
        let flusher = runtime.spawn(async move {
            let mut interval = tokio::time::interval(FLUSH_INTERVAL);
            loop {
                interval.tick().await;
                // Non-blocking socket; an unreachable daemon only loses the datagram.
                let _ = flushed.flush();
            }
        });
        Ok(Self { sink, flusher })
    }

    /// Waits (up to `timeout`) for the queue to drain, then sends the partly filled datagram.
    pub(crate) fn flush(&self, timeout: Duration) {
        drain(&self.sink, timeout);
    }

    /// Flushes, then stops the periodic flush.
    pub(crate) fn shutdown(&self, timeout: Duration) {
        self.flush(timeout);
        self.flusher.abort();
    }
}

/// Waits (up to `timeout`) for `sink`'s queue to drain, then flushes the partly filled
/// datagram.
fn drain(sink: &QueuingMetricSink, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while sink.queued() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // A send error means the daemon is unreachable: UDP metrics are best effort.
    let _ = sink.flush();
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

impl StatsdRecorder {
    /// The crate's recorder sending through `sink`, with `tags` on every line.
    fn new(
        config: &StatsdConfig,
        sink: Arc<QueuingMetricSink>,
        tags: BTreeMap<String, String>,
    ) -> Result<Self, metrics_exporter_statsd::StatsdError> {
        let mut builder =
            metrics_exporter_statsd::StatsdBuilder::from(config.host.clone(), config.port)
                .with_sink(SharedSink(Arc::clone(&sink)));
        for (name, value) in &tags {
            builder = builder.with_default_tag(name, value);
        }
        Ok(Self {
            inner: builder.build(None)?,
            sink,
            default_tags: tags,
        })
    }
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
