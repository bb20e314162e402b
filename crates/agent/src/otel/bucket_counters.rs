//! [`BucketCounters`]: heapscape's histograms as OpenTelemetry counters per bucket, so that a
//! pool's publication costs the same after a million returns as after one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use opentelemetry::metrics::{AsyncInstrument, Meter};
use opentelemetry::{KeyValue, StringValue};

use crate::metrics::{CATALOGS, HISTOGRAMS, go_float};
use crate::sync::lock;

/// A recorder that counts heapscape's histograms ([`HISTOGRAMS`]) per bucket itself and
/// exports them as OpenTelemetry counters, sending every other metric to `inner` unchanged.
///
/// OpenTelemetry's histograms take one measurement per call, so through metrics-exporter-otel's
/// recorder a pool's `record_many(bound, n)` is `n` measurements: a publication's cost grows
/// with the returns since the last one. Here it is one atomic addition to the bucket's count
/// and one to the sum, whatever `n`; the meter reads the counts when it exports, at a cost set
/// by the number of buckets and series, not by traffic. The counts are exact.
///
/// For each histogram `<name>` (and each label set, e.g. each pool), the meter exports three
/// monotonic counters, as a Prometheus histogram's series:
///
/// - `<name>_bucket` with the attribute `le`: the observations at most `le`, **cumulative**
///   (each bucket includes the ones below it; the last is `le="+Inf"`, every observation),
///   `le` spelled as the Go client spells it ([`go_float`]), so that these series match the
///   agent's Prometheus path and the StatsD path's. Every bucket is exported, empty or not.
/// - `<name>_count`: the observations.
/// - `<name>_sum`: the sum of the observed values (a pool records each return at its bucket's
///   upper bound), with the histogram's unit.
///
/// The backend receives counters, not an OpenTelemetry histogram: a query over the buckets
/// uses the `le` attribute as PromQL's `histogram_quantile` does (a receiver that adds `_total`
/// to counters' names, as Prometheus's OTLP receiver does by default, names them
/// `<name>_bucket_total`). For the histogram form, at one measurement per observation, use
/// [`set_histogram_bounds`](super::set_histogram_bounds) on the bare recorder instead.
///
/// ```
/// use heapscape::otel::BucketCounters;
/// use metrics_exporter_otel::OpenTelemetryRecorder;
/// use opentelemetry::metrics::MeterProvider as _;
/// use opentelemetry_sdk::metrics::SdkMeterProvider;
///
/// let provider = SdkMeterProvider::builder().build(); // with the service's reader and exporter
/// let meter = provider.meter("greeter");
/// let recorder = BucketCounters::new(OpenTelemetryRecorder::new(meter.clone()), &meter);
/// metrics::set_global_recorder(recorder).expect("the first recorder");
/// // then: heapscape::Agent::builder().config_file(path).service_recorder().start()?
/// ```
#[derive(Debug)]
pub struct BucketCounters<R> {
    inner: R,
    /// One per entry of [`HISTOGRAMS`], shared with the meter's callbacks.
    histograms: Vec<Arc<Buckets>>,
}

impl<R: Recorder> BucketCounters<R> {
    /// Wraps `inner` and registers, on `meter`, the counters of every heapscape histogram.
    ///
    /// `meter` is the one the service exports through (for metrics-exporter-otel, the meter
    /// its recorder was built on). Wrap before the agent starts: its pools and heartbeat
    /// register their histograms with the recorder installed then.
    pub fn new(inner: R, meter: &Meter) -> Self {
        let histograms = HISTOGRAMS
            .iter()
            .map(|&(name, bounds)| {
                let buckets = Arc::new(Buckets::new(name, bounds));
                buckets.register_counters(meter);
                buckets
            })
            .collect();
        // Relaxed: a hint for one log line (the agent does not warn that this recorder is not
        // heapscape's), guarding no other data.
        super::BOUNDS_SET.store(true, Ordering::Relaxed);
        Self { inner, histograms }
    }

    /// The wrapped recorder, e.g. to set the bounds of the service's own histograms.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    fn counted(&self, name: &str) -> Option<&Arc<Buckets>> {
        self.histograms.iter().find(|buckets| buckets.name == name)
    }
}

impl<R: Recorder> Recorder for BucketCounters<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        // The counters of heapscape's histograms were described from the catalog when they were
        // registered on the meter; the inner recorder never sees these names.
        if self.counted(key.as_str()).is_none() {
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
        match self.counted(key.name()) {
            Some(buckets) => Histogram::from_arc(buckets.series(key)),
            None => self.inner.register_histogram(key, metadata),
        }
    }
}

/// One heapscape histogram: its bounds and the counts of each of its label sets.
#[derive(Debug)]
struct Buckets {
    name: &'static str,
    bounds: &'static [f64],
    /// The `le` of each bucket: the bounds in the Go spelling, then `+Inf`.
    le: Vec<StringValue>,
    series: Mutex<HashMap<Key, Arc<Series>>>,
}

impl Buckets {
    fn new(name: &'static str, bounds: &'static [f64]) -> Self {
        let le = bounds
            .iter()
            .chain([&f64::INFINITY])
            .map(|&bound| StringValue::from(go_float(bound)))
            .collect();
        Self {
            name,
            bounds,
            le,
            series: Mutex::default(),
        }
    }

    /// The series of `key`'s labels, created empty the first time.
    fn series(&self, key: &Key) -> Arc<Series> {
        let mut series = lock(&self.series);
        if let Some(existing) = series.get(key) {
            return Arc::clone(existing);
        }
        let created = Arc::new(Series {
            attributes: key
                .labels()
                .map(|label| KeyValue::new(label.key().to_owned(), label.value().to_owned()))
                .collect(),
            bounds: self.bounds,
            counts: (0..=self.bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0.0_f64.to_bits()),
        });
        series.insert(key.clone(), Arc::clone(&created));
        created
    }

    /// Every series, copied out so that the meter's callbacks do not hold the lock while the
    /// SDK aggregates.
    fn all_series(&self) -> Vec<Arc<Series>> {
        lock(&self.series).values().cloned().collect()
    }

    /// Registers `<name>_bucket`, `<name>_count` and `<name>_sum` on `meter`, read from the
    /// counts when the meter collects.
    fn register_counters(self: &Arc<Self>, meter: &Meter) {
        let def = CATALOGS
            .iter()
            .flat_map(|catalog| catalog.iter())
            .find(|def| def.name == self.name);
        let help = def.map_or("", |def| def.help);
        let buckets = Arc::clone(self);
        meter
            .u64_observable_counter(format!("{}_bucket", self.name))
            .with_description(format!("{help} Observations at most `le` (cumulative)."))
            .with_callback(move |observer| buckets.observe_buckets(observer))
            .build();
        let buckets = Arc::clone(self);
        meter
            .u64_observable_counter(format!("{}_count", self.name))
            .with_description(format!("{help} Observations."))
            .with_callback(move |observer| buckets.observe_counts(observer))
            .build();
        let buckets = Arc::clone(self);
        let sum = meter
            .f64_observable_counter(format!("{}_sum", self.name))
            .with_description(format!("{help} Sum of the observed values."))
            .with_callback(move |observer| buckets.observe_sums(observer));
        match def.and_then(|def| ucum(def.unit)) {
            Some(unit) => sum.with_unit(unit).build(),
            None => sum.build(),
        };
    }

    fn observe_buckets(&self, observer: &dyn AsyncInstrument<u64>) {
        for series in self.all_series() {
            let mut cumulative = 0;
            for (count, le) in series.counts.iter().zip(&self.le) {
                cumulative += count.load(Ordering::Relaxed);
                let mut attributes = series.attributes.clone();
                attributes.push(KeyValue::new("le", le.clone()));
                observer.observe(cumulative, &attributes);
            }
        }
    }

    fn observe_counts(&self, observer: &dyn AsyncInstrument<u64>) {
        for series in self.all_series() {
            let count = series
                .counts
                .iter()
                .map(|count| count.load(Ordering::Relaxed))
                .sum();
            observer.observe(count, &series.attributes);
        }
    }

    fn observe_sums(&self, observer: &dyn AsyncInstrument<f64>) {
        for series in self.all_series() {
            let sum = f64::from_bits(series.sum_bits.load(Ordering::Relaxed));
            observer.observe(sum, &series.attributes);
        }
    }
}

/// The UCUM unit OpenTelemetry names `unit` with, for the units of heapscape's histograms
/// (the same labels metrics-exporter-otel gives them).
fn ucum(unit: Unit) -> Option<&'static str> {
    match unit {
        Unit::Bytes => Some("By"),
        Unit::Seconds => Some("s"),
        _ => None,
    }
}

/// The counts of one label set of a histogram.
#[derive(Debug)]
struct Series {
    /// The key's labels, as the attributes of every counter of the series.
    attributes: Vec<KeyValue>,
    bounds: &'static [f64],
    /// Observations per bucket, not cumulative: `counts[i]` those at most `bounds[i]` and above
    /// the bound before; the last, those above every bound. One longer than `bounds`.
    counts: Box<[AtomicU64]>,
    /// The sum of the observed values, as `f64` bits.
    sum_bits: AtomicU64,
}

impl HistogramFn for Series {
    fn record(&self, value: f64) {
        self.record_many(value, 1);
    }

    fn record_many(&self, value: f64, count: usize) {
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        // Relaxed: each count stands alone. An export racing a publication may see part of it
        // (a bucket's count before `_count`'s); the next export sees all of it.
        self.counts[bucket].fetch_add(count as u64, Ordering::Relaxed);
        let added = value * count as f64;
        // Relaxed, as the counts; the closure never returns None, so the update always lands.
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + added).to_bits())
            });
    }
}
