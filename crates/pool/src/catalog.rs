//! The one shape of a metric definition, shared by every heapscape crate.
//!
//! Each crate lists what it publishes as a catalog, a `&[MetricDef]` (the pool's is
//! [`crate::metrics::CATALOG`]). A definition is written once and then used to describe the
//! metric to the recorder ([`MetricDef::describe`]), to emit it ([`MetricDef::counter`],
//! [`MetricDef::gauge`], [`MetricDef::histogram`]), and by the tests that check the names,
//! units, README tables and dashboards against it: a name typed in two places drifts, a
//! definition read by all of them cannot.
//!
//! The type lives in the pool crate because it is the lowest crate that publishes metrics;
//! the heartbeat, the agent and the demo build their catalogs from it.
//!
//! ```
//! use heapscape_pool::catalog::{MetricDef, MetricKind};
//! use metrics::Unit;
//!
//! const REQUESTS: MetricDef = MetricDef::new(
//!     "heapscape_example_requests_total",
//!     MetricKind::Counter,
//!     Unit::Count,
//!     "Requests served, by route.",
//! )
//! .with_labels(&["route"]);
//!
//! REQUESTS.describe(); // once, after installing a recorder
//! REQUESTS.counter(["speech".into()]).increment(1);
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, SharedString, Unit};

/// What kind of instrument a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A monotonically increasing total. heapscape publishes counters by delta, because StatsD
    /// ignores absolute counters.
    Counter,
    /// A value that goes up and down, published as it is.
    Gauge,
    /// A distribution of observations.
    Histogram,
}

impl MetricKind {
    /// The kind as Prometheus' `# TYPE` line and the README tables write it: `counter`,
    /// `gauge` or `histogram`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// A metric's name, kind, unit, help text and label keys: everything needed to describe it,
/// emit it and check it.
///
/// Built in `const` context with [`MetricDef::new`] and [`MetricDef::with_labels`], so a
/// catalog is a `const &[MetricDef]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricDef {
    /// Full name, following Prometheus naming; the StatsD path uses the same name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Unit, given to the recorder with the help text.
    pub unit: Unit,
    /// Help text, given to the recorder (Prometheus' `# HELP` line).
    pub help: &'static str,
    /// Keys of the labels every series of the metric carries, in the order the emitting
    /// methods take their values.
    pub labels: &'static [&'static str],
}

/// The metadata the `metrics` macros would pass: recorders in use ignore it, but the
/// registration API requires one.
static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

impl MetricDef {
    /// A metric without labels.
    pub const fn new(name: &'static str, kind: MetricKind, unit: Unit, help: &'static str) -> Self {
        Self {
            name,
            kind,
            unit,
            help,
            labels: &[],
        }
    }

    /// The same metric, with these label keys on every series.
    #[must_use]
    pub const fn with_labels(self, labels: &'static [&'static str]) -> Self {
        Self { labels, ..self }
    }

    /// Registers the help text and unit with the installed recorder. Call it once after
    /// installing a recorder; recorders that ignore descriptions (StatsD) lose nothing else.
    pub fn describe(&self) {
        match self.kind {
            MetricKind::Counter => metrics::describe_counter!(self.name, self.unit, self.help),
            MetricKind::Gauge => metrics::describe_gauge!(self.name, self.unit, self.help),
            MetricKind::Histogram => metrics::describe_histogram!(self.name, self.unit, self.help),
        }
    }

    /// The counter series with these label values (one per key in [`MetricDef::labels`], in
    /// that order), from the installed recorder.
    ///
    /// Series without labels cost no allocation; for labels known at compile time, see
    /// [`MetricDef::counter_with`].
    ///
    /// # Panics
    ///
    /// In debug builds, when this is not a counter or the number of values is not the number
    /// of label keys: the series would not be the one the catalog describes.
    pub fn counter<const N: usize>(&self, label_values: [SharedString; N]) -> Counter {
        self.debug_check(MetricKind::Counter, N);
        let key = self.key(label_values);
        metrics::with_recorder(|recorder| recorder.register_counter(&key, &METADATA))
    }

    /// The counter series with these labels, built at compile time
    /// (`static LABELS: [Label; 1] = [Label::from_static_parts(KEY, "200")]`): registering it
    /// allocates nothing, for counters bumped on every request.
    ///
    /// # Panics
    ///
    /// In debug builds, when this is not a counter or the label keys are not
    /// [`MetricDef::labels`].
    pub fn counter_with(&self, labels: &'static [Label]) -> Counter {
        self.debug_check(MetricKind::Counter, labels.len());
        debug_assert!(
            labels
                .iter()
                .map(Label::key)
                .eq(self.labels.iter().copied()),
            "{}: labels {labels:?}, expected keys {:?}",
            self.name,
            self.labels
        );
        let key = Key::from_static_labels(self.name, labels);
        metrics::with_recorder(|recorder| recorder.register_counter(&key, &METADATA))
    }

    /// The gauge series with these label values, as [`MetricDef::counter`].
    ///
    /// # Panics
    ///
    /// In debug builds, when this is not a gauge or the number of values is not the number of
    /// label keys.
    pub fn gauge<const N: usize>(&self, label_values: [SharedString; N]) -> Gauge {
        self.debug_check(MetricKind::Gauge, N);
        let key = self.key(label_values);
        metrics::with_recorder(|recorder| recorder.register_gauge(&key, &METADATA))
    }

    /// The histogram series with these label values, as [`MetricDef::counter`].
    ///
    /// # Panics
    ///
    /// In debug builds, when this is not a histogram or the number of values is not the
    /// number of label keys.
    pub fn histogram<const N: usize>(&self, label_values: [SharedString; N]) -> Histogram {
        self.debug_check(MetricKind::Histogram, N);
        let key = self.key(label_values);
        metrics::with_recorder(|recorder| recorder.register_histogram(&key, &METADATA))
    }

    /// Adds `by` to this counter, which has no labels.
    ///
    /// # Panics
    ///
    /// As [`MetricDef::counter`].
    pub fn increment(&self, by: u64) {
        self.counter([]).increment(by);
    }

    /// Sets this gauge, which has no labels, to `value`.
    ///
    /// # Panics
    ///
    /// As [`MetricDef::gauge`].
    pub fn set(&self, value: f64) {
        self.gauge([]).set(value);
    }

    /// Sets this `_timestamp_seconds` gauge, which has no labels, to the current Unix time
    /// (0 if the clock is before 1970).
    ///
    /// # Panics
    ///
    /// As [`MetricDef::gauge`].
    pub fn set_now(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        self.set(now);
    }

    /// Records `value` in this histogram, which has no labels.
    ///
    /// # Panics
    ///
    /// As [`MetricDef::histogram`].
    pub fn record(&self, value: f64) {
        self.histogram([]).record(value);
    }

    fn debug_check(&self, kind: MetricKind, label_values: usize) {
        debug_assert_eq!(self.kind, kind, "{} is a {:?}", self.name, self.kind);
        debug_assert_eq!(
            label_values,
            self.labels.len(),
            "{}: one value per label key {:?}",
            self.name,
            self.labels
        );
    }

    fn key<const N: usize>(&self, label_values: [SharedString; N]) -> Key {
        if N == 0 {
            return Key::from_static_name(self.name);
        }
        let labels: Vec<Label> = self
            .labels
            .iter()
            .zip(label_values)
            .map(|(key, value)| Label::new(*key, value))
            .collect();
        Key::from_parts(self.name, labels)
    }
}

/// Describes every metric of `catalog` ([`MetricDef::describe`]).
pub fn describe(catalog: &[MetricDef]) {
    for def in catalog {
        def.describe();
    }
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    const LABELLED: MetricDef = MetricDef::new(
        "heapscape_test_events_total",
        MetricKind::Counter,
        Unit::Count,
        "Events, by source and outcome.",
    )
    .with_labels(&["source", "outcome"]);

    #[test]
    fn label_values_pair_with_the_keys_in_order() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        static STATIC: [Label; 2] = [
            Label::from_static_parts("source", "b"),
            Label::from_static_parts("outcome", "ok"),
        ];
        metrics::with_local_recorder(&recorder, || {
            LABELLED
                .counter(["a".into(), String::from("ok").into()])
                .increment(2);
            LABELLED.counter_with(&STATIC).increment(3);
        });
        let mut series: Vec<(Vec<(String, String)>, DebugValue)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let labels = key
                    .key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                (labels, value)
            })
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let pair = |source: &str| {
            vec![
                ("source".to_owned(), source.to_owned()),
                ("outcome".to_owned(), "ok".to_owned()),
            ]
        };
        assert_eq!(
            series,
            [
                (pair("a"), DebugValue::Counter(2)),
                (pair("b"), DebugValue::Counter(3))
            ]
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "one value per label key")]
    fn a_missing_label_value_panics_in_debug_builds() {
        LABELLED.counter(["a".into()]).increment(1);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "is a Counter")]
    fn emitting_as_another_kind_panics_in_debug_builds() {
        LABELLED.gauge(["a".into(), "ok".into()]).set(1.0);
    }
}
