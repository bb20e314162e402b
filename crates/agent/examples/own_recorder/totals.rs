//! A service's own `metrics` recorder, standing in for one that feeds an in-house metrics
//! system: a total per series, kept in memory and listed as text.
//!
//! Its histograms keep a count and a sum and implement `record_many` as one addition: the
//! `metrics` default would call `record` once per observation, and heapscape's pools publish
//! each heartbeat's returns as `record_many(bucket_bound, returns_in_bucket)`.
//!
//! Shared by `main.rs` and the crate's `tests/own_recorder.rs`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

/// The recorder; clones share the totals.
#[derive(Clone, Default)]
pub struct Totals {
    series: Arc<Mutex<BTreeMap<String, Series>>>,
}

#[derive(Clone)]
enum Series {
    /// A counter's total, or a gauge's `f64` bits (the `metrics` atomics' encoding).
    Value {
        gauge: bool,
        value: Arc<AtomicU64>,
    },
    Histogram(Arc<HistogramTotals>),
}

/// A histogram's count and sum, under one lock so they always agree.
#[derive(Default)]
struct HistogramTotals(Mutex<(u64, f64)>);

impl HistogramFn for HistogramTotals {
    fn record(&self, value: f64) {
        self.record_many(value, 1);
    }

    fn record_many(&self, value: f64, count: usize) {
        let mut totals = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        totals.0 += count as u64;
        totals.1 += value * count as f64;
    }
}

impl Totals {
    /// One line per series, sorted: `name{labels} value`, histograms as
    /// `name{labels} count=<n> sum=<s>`.
    pub fn lines(&self) -> Vec<String> {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        series
            .iter()
            .map(|(name, series)| match series {
                // Relaxed: a reading for display; each value is one atomic.
                Series::Value {
                    gauge: false,
                    value,
                } => {
                    format!("{name} {}", value.load(Ordering::Relaxed))
                }
                Series::Value { gauge: true, value } => {
                    format!("{name} {}", f64::from_bits(value.load(Ordering::Relaxed)))
                }
                Series::Histogram(histogram) => {
                    let (count, sum) = *histogram.0.lock().unwrap_or_else(PoisonError::into_inner);
                    format!("{name} count={count} sum={sum}")
                }
            })
            .collect()
    }

    fn series(&self, key: &Key, make: impl FnOnce() -> Series) -> Series {
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}=\"{}\"", label.key(), label.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        series.entry(name).or_insert_with(make).clone()
    }

    fn value(&self, key: &Key, gauge: bool) -> Arc<AtomicU64> {
        let make = || Series::Value {
            gauge,
            value: Arc::default(),
        };
        match self.series(key, make) {
            Series::Value { value, .. } => value,
            // A name used as two kinds: keep the first, count the other apart.
            Series::Histogram(_) => Arc::default(),
        }
    }
}

impl Recorder for Totals {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.value(key, false))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.value(key, true))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match self.series(key, || Series::Histogram(Arc::default())) {
            Series::Histogram(histogram) => Histogram::from_arc(histogram),
            Series::Value { .. } => Histogram::noop(),
        }
    }
}
