//! The StatsD path: metrics-exporter-statsd's recorder over a shared UDP queue, with pool
//! histograms sent as sampled lines, flushed every second from a thread of its own (no tokio:
//! a service without it gets StatsD too).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Error;
use crate::config::StatsdConfig;
use crate::sync::lock;
use cadence::{BufferedUdpMetricSink, MetricSink, QueuingMetricSink};
use metrics::{
    Counter, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// How often a partly filled StatsD datagram is sent: cadence's buffered sink sends only when
/// the buffer is full, which would hold a tick's last lines until the next tick.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The installed StatsD exporter: the queue every line goes through, and its flusher thread.
pub(crate) struct StatsdExporter {
    sink: Arc<QueuingMetricSink>,
    /// The `heapscape-statsd` thread; taken by the first shutdown. Sending on the channel (or
    /// dropping it with the exporter) ends the thread.
    flusher: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

impl StatsdExporter {
    /// Resolves the daemon's address, starts the periodic flush and installs the recorder
    /// with `tags` on every metric.
    pub(crate) fn install(
        config: &StatsdConfig,
        tags: BTreeMap<String, String>,
    ) -> Result<Self, Error> {
        let statsd_error = |error| Error::Statsd {
            host: config.host.clone(),
            port: config.port,
            error,
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
        // The thread before the recorder: if it cannot start, nothing is installed. If the
        // recorder cannot be installed, the dropped sender ends the thread.
        let (stop, stopped) = mpsc::channel::<()>();
        let flushed = Arc::clone(&sink);
        let thread = std::thread::Builder::new()
            .name("heapscape-statsd".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(FLUSH_INTERVAL)
                {
                    // Non-blocking socket; an unreachable daemon only loses the datagram.
                    let _ = flushed.flush();
                }
            })
            .map_err(Error::Runtime)?;
        metrics::set_global_recorder(recorder).map_err(|_| Error::RecorderAlreadyInstalled)?;
        Ok(Self {
            sink,
            flusher: Mutex::new(Some((stop, thread))),
        })
    }

    /// Waits (up to `timeout`) for the queue to drain, then sends the partly filled datagram.
    pub(crate) fn flush(&self, timeout: Duration) {
        drain(&self.sink, timeout);
    }

    /// Stops the periodic flush, then flushes what is queued. Later calls only flush.
    pub(crate) fn shutdown(&self, timeout: Duration) {
        if let Some((stop, thread)) = lock(&self.flusher).take() {
            // The thread only ends after this send; an error means it already panicked.
            let _ = stop.send(());
            let _ = thread.join();
        }
        self.flush(timeout);
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
/// line instead of one line per observation, and gauges whose negative values arrive as values.
///
/// The crate sends histograms as `|h`, which statsd_exporter turns into an observer (a real
/// histogram with `observer_type: histogram`) without the `/1000` it applies to `|ms` timers.
/// But it leaves `record_many(value, n)` at the `metrics` default, `n` calls to `record`: a
/// pool publishing thousands of returns per tick would flood (and overflow) the queue. One line
/// `name:value|h|@rate` with `1/rate` = n (see [`sample_rate`]) means n observations to
/// statsd_exporter (it repeats the observation `int(1/rate)` times) and to Etsy statsd (which
/// scales by `1/rate`).
///
/// A gauge line with a sign (`name:-1|g`) is a relative change to StatsD daemons, Etsy statsd
/// and statsd_exporter alike: jemalloc's decay of -1 (never purge), sent as is, would fall by
/// one at every tick. [`SignedGauge`] sends a negative value after a line setting 0, in the
/// same datagram, so that the daemon ends at the value.
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
        Gauge::from_arc(Arc::new(SignedGauge {
            single: self.inner.register_gauge(key, metadata),
            name: key.name().to_owned(),
            tags: self.tags(key),
            sink: Arc::clone(&self.sink),
        }))
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(SampledHistogram {
            single: self.inner.register_histogram(key, metadata),
            name: key.name().to_owned(),
            tags: self.tags(key),
            sink: Arc::clone(&self.sink),
        }))
    }
}

impl StatsdRecorder {
    /// `|#k:v,...` (empty without tags) for the lines this recorder writes itself, in the
    /// same order as the crate's own lines (cadence writes the client's default tags first,
    /// then the metric's labels): Etsy statsd keys a series by its tags in order, so another
    /// order would split one metric's lines into two series.
    fn tags(&self, key: &Key) -> String {
        let mut tags = String::new();
        let defaults = self
            .default_tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()));
        for (name, value) in defaults.chain(key.labels().map(|l| (l.key(), l.value()))) {
            let separator = if tags.is_empty() { "|#" } else { "," };
            let _ = write!(tags, "{separator}{name}:{value}");
        }
        tags
    }
}

/// A gauge whose negative values are sent as `name:0|g` then `name:<value>|g`, one emission so
/// one datagram (cadence flushes a partly filled buffer rather than split an emission), in
/// that order: the daemon sets 0, then adds the value. Other values go out as the crate sends
/// them.
struct SignedGauge {
    single: Gauge,
    name: String,
    /// `|#k:v,...` or empty.
    tags: String,
    sink: Arc<QueuingMetricSink>,
}

impl GaugeFn for SignedGauge {
    // The crate sends nothing for these either: a StatsD gauge has no prior value to change.
    fn increment(&self, value: f64) {
        self.single.increment(value);
    }

    fn decrement(&self, value: f64) {
        self.single.decrement(value);
    }

    fn set(&self, value: f64) {
        // A StatsD line has no way to say "no value": NaN (a pool's recommendation before its
        // window holds enough returns, which Prometheus shows as a gap) or an infinity is a
        // bad line to the daemon (Etsy statsd counts it in `statsd.bad_lines_seen`). Nothing
        // is sent; the daemon keeps the series' last value, or has none yet.
        if !value.is_finite() {
            return;
        }
        // -0.0 too: it is written `-0`, a relative change of nothing.
        if value.is_sign_negative() {
            let (name, tags) = (&self.name, &self.tags);
            // A full queue drops the lines, as it would any metric.
            let _ = self
                .sink
                .emit(&format!("{name}:0|g{tags}\n{name}:{value}|g{tags}"));
        } else {
            self.single.set(value);
        }
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
        match count {
            0 => {}
            1 => self.single.record(value),
            _ => {
                let rate = sample_rate(count);
                let line = format!("{}:{value}|h|@{rate}{}", self.name, self.tags);
                // A full queue drops the line, as it would any metric.
                let _ = self.sink.emit(&line);
            }
        }
    }
}

/// The sample rate that stands for `count` observations in one line: the largest rate whose
/// reciprocal is at least `count`.
///
/// Receivers compute `1/rate` in f64 from the rate as written (Rust writes the shortest text
/// that parses to the same f64): statsd_exporter repeats the observation `int(1/rate)` times,
/// Etsy statsd scales by `1/rate`. `1/count` itself can come back a hair below `count`, which
/// statsd_exporter would truncate to one observation short; one step down fixes that and
/// keeps `1/rate` within a rounding error of `count` for both.
fn sample_rate(count: usize) -> f64 {
    #[allow(clippy::cast_precision_loss)] // counts above 2^53 are rounded, as any f64 would be
    let target = count as f64;
    let mut rate = 1.0 / target;
    while 1.0 / rate < target {
        // The next f64 below `rate` (positive, so one less in its bit pattern).
        rate = f64::from_bits(rate.to_bits() - 1);
    }
    rate
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::UdpSocket;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use cadence::{BufferedUdpMetricSink, MetricSink, QueuingMetricSink};
    use heapscape_testkit::WAIT;
    use metrics::{Key, Label, Level, Metadata, Recorder};

    use super::StatsdRecorder;
    use crate::config::StatsdConfig;

    static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

    /// What the lines for one count add up to.
    #[derive(Debug, Default)]
    struct Received {
        lines: usize,
        /// As statsd_exporter reads them: each line repeats its observation `int(1/rate)` times.
        observations: u128,
        /// As Etsy statsd reads them: each line counts `1/rate`.
        scaled: f64,
    }

    /// `record_many` through the real recorder and queue, read off a UDP socket on loopback:
    /// every count arrives as one line that stands for exactly that many observations, as
    /// both receivers read it.
    /// The real recorder and queue (`queue` lines long, with `tags`), sending to a UDP socket
    /// on loopback that the test reads.
    fn recorder_to_socket(
        queue: usize,
        tags: BTreeMap<String, String>,
    ) -> (UdpSocket, Arc<QueuingMetricSink>, StatsdRecorder) {
        let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind the receiver");
        receiver
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        let udp = BufferedUdpMetricSink::with_capacity(
            receiver.local_addr().expect("receiver address"),
            UdpSocket::bind("127.0.0.1:0").expect("bind the sender"),
            1432,
        )
        .expect("sink");
        let sink = Arc::new(QueuingMetricSink::with_capacity(udp, queue));
        let recorder = StatsdRecorder::new(&StatsdConfig::default(), Arc::clone(&sink), tags)
            .expect("recorder");
        (receiver, sink, recorder)
    }

    #[test]
    fn record_many_sends_one_line_that_stands_for_the_count() {
        let tags = BTreeMap::from([("service".to_owned(), "unit".to_owned())]);
        let (receiver, sink, recorder) = recorder_to_socket(100_000, tags);

        let counts: Vec<usize> = (1..=300)
            .chain([
                1_000,
                4_097,
                65_535,
                999_983,
                1_000_000,
                123_456_789,
                4_294_967_311,
            ])
            .collect();
        for count in &counts {
            let key = Key::from_parts("h", vec![Label::new("count", count.to_string())]);
            recorder
                .register_histogram(&key, &METADATA)
                .record_many(4096.0, *count);
        }

        let mut received: BTreeMap<usize, Received> = BTreeMap::new();
        let complete = |received: &BTreeMap<usize, Received>| {
            counts.iter().all(|count| {
                received
                    .get(count)
                    .is_some_and(|got| got.observations >= *count as u128)
            })
        };
        let deadline = Instant::now() + WAIT;
        let mut datagram = vec![0; 65_536];
        while !complete(&received) {
            assert!(Instant::now() < deadline, "lines missing: {received:?}");
            let Ok(length) = receiver.recv(&mut datagram) else {
                // Nothing arrived: send the partly filled datagram the queue may hold.
                let _ = sink.flush();
                continue;
            };
            let text = std::str::from_utf8(&datagram[..length]).expect("UTF-8 lines");
            for line in text.lines() {
                let (count, rate) = parse(line);
                let got = received.entry(count).or_default();
                got.lines += 1;
                got.observations += (1.0 / rate) as u128;
                got.scaled += 1.0 / rate;
            }
        }
        for count in &counts {
            let got = &received[count];
            assert_eq!(got.observations, *count as u128, "{count}: {got:?}");
            assert_eq!(got.lines, 1, "{count}: {got:?}");
            let expected = *count as f64;
            assert!(
                (got.scaled - expected).abs() <= expected * 1e-9,
                "{count}: {got:?}"
            );
        }
    }

    /// A gauge set to NaN or an infinity sends nothing; the values around it go out as they
    /// are, negative ones as a reset and a change.
    #[test]
    fn a_gauge_without_a_value_sends_no_line() {
        let (receiver, sink, recorder) = recorder_to_socket(1_000, BTreeMap::new());
        let gauge = recorder.register_gauge(&Key::from_name("g"), &METADATA);
        for value in [
            f64::NAN,
            7.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -2.0,
            f64::NAN,
            3.0,
        ] {
            gauge.set(value);
        }

        let mut lines = Vec::new();
        let deadline = Instant::now() + WAIT;
        let mut datagram = vec![0; 65_536];
        while lines.last().is_none_or(|line: &String| line != "g:3|g") {
            assert!(Instant::now() < deadline, "lines missing: {lines:?}");
            let Ok(length) = receiver.recv(&mut datagram) else {
                let _ = sink.flush();
                continue;
            };
            let text = std::str::from_utf8(&datagram[..length]).expect("UTF-8 lines");
            lines.extend(text.lines().map(str::to_owned));
        }
        assert_eq!(lines, ["g:7|g", "g:0|g", "g:-2|g", "g:3|g"]);
    }

    /// Every count up to a million gets a rate that survives being written and read back, and
    /// that statsd_exporter turns back into exactly that count.
    #[test]
    fn sample_rates_stand_for_whole_counts() {
        for count in 2..1_000_000usize {
            let rate = super::sample_rate(count);
            let parsed: f64 = rate.to_string().parse().expect("a number");
            assert_eq!(parsed.to_bits(), rate.to_bits(), "{count}");
            assert_eq!((1.0 / parsed) as usize, count, "{count}: {rate}");
        }
    }

    /// The `count` tag and the sample rate (1 when absent) of a line
    /// `h:4096|h[|@rate]|#count:N,service:unit`.
    fn parse(line: &str) -> (usize, f64) {
        let mut parts = line.split('|');
        assert_eq!(parts.next(), Some("h:4096"), "{line}");
        assert_eq!(parts.next(), Some("h"), "{line}");
        let mut rate = 1.0;
        let mut count = None;
        for part in parts {
            if let Some(written) = part.strip_prefix('@') {
                rate = written.parse().expect("a sample rate");
            } else if let Some(tags) = part.strip_prefix('#') {
                let tags: Vec<&str> = tags.split(',').collect();
                assert!(tags.contains(&"service:unit"), "{line}");
                count = tags
                    .iter()
                    .find_map(|tag| tag.strip_prefix("count:")?.parse().ok());
            } else {
                panic!("unexpected part `{part}` in {line}");
            }
        }
        (count.expect("a count tag"), rate)
    }
}
