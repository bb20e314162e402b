//! OpenTelemetry (feature `otel`): heapscape's metrics through metrics-exporter-otel's
//! [`OpenTelemetryRecorder`], with heapscape's bucket bounds.
//!
//! The recorder creates each histogram with OpenTelemetry's default bounds (0 to 10,000)
//! unless bounds were set for its name first: the pool's byte sizes would land in the overflow
//! bucket (above 10,000 bytes) and its tick durations in the first (under 5 seconds).
//! [`set_histogram_bounds`] sets heapscape's bounds ([`HISTOGRAMS`]) on the recorder before it
//! is installed.
//!
//! ```
//! use metrics_exporter_otel::OpenTelemetryRecorder;
//! use opentelemetry::metrics::MeterProvider as _;
//! use opentelemetry_sdk::metrics::SdkMeterProvider;
//!
//! let provider = SdkMeterProvider::builder().build(); // with the service's reader and exporter
//! let recorder = OpenTelemetryRecorder::new(provider.meter("greeter"));
//! heapscape::otel::set_histogram_bounds(&recorder);
//! metrics::set_global_recorder(recorder).expect("the first recorder");
//! // then: heapscape::Agent::builder().config_file(path).service_recorder().start()?
//! ```
//!
//! metrics-exporter-otel 0.3 is built on opentelemetry 0.31: the service's `opentelemetry`,
//! `opentelemetry_sdk` and `opentelemetry-otlp` must be of the 0.31 line too, or its meter is
//! another crate's type ("multiple different versions of crate `opentelemetry`").
//!
//! OpenTelemetry's histograms take one measurement at a time: a pool's publication of `n`
//! returns in one bucket costs `n` measurements on the heartbeat thread (the crate README's
//! "OpenTelemetry" says how much). For a busy pool, [`BucketCounters`] wraps the recorder and
//! counts heapscape's histograms per bucket itself, exported as counters: a publication then
//! costs the same whatever the traffic.
//!
//! [`HISTOGRAMS`]: crate::metrics::HISTOGRAMS

mod bucket_counters;

use std::sync::atomic::{AtomicBool, Ordering};

use metrics::KeyName;
use metrics_exporter_otel::OpenTelemetryRecorder;

pub use bucket_counters::BucketCounters;

/// Set once heapscape's bounds reached an OpenTelemetry recorder, or a [`BucketCounters`] was
/// built: the agent then knows the recorder it publishes through was set up for heapscape, and
/// does not warn that it is not heapscape's Prometheus recorder.
static BOUNDS_SET: AtomicBool = AtomicBool::new(false);

/// Sets the bucket bounds of every heapscape histogram ([`HISTOGRAMS`]) on `recorder`.
///
/// Call it before the recorder is installed (or at least before the agent starts): the
/// recorder fixes a histogram's bounds when the histogram is first registered, which the
/// agent's pools and heartbeat do as they start. Bounds the service set for its own
/// histograms stay.
///
/// [`HISTOGRAMS`]: crate::metrics::HISTOGRAMS
pub fn set_histogram_bounds(recorder: &OpenTelemetryRecorder) {
    for (name, bounds) in crate::metrics::HISTOGRAMS {
        recorder.set_histogram_bounds(&KeyName::from_const_str(name), bounds.to_vec());
    }
    // Relaxed: a hint for one log line, guarding no other data.
    BOUNDS_SET.store(true, Ordering::Relaxed);
}

/// Whether [`set_histogram_bounds`] ran in this process.
#[cfg(feature = "tokio")]
pub(crate) fn bounds_set() -> bool {
    BOUNDS_SET.load(Ordering::Relaxed)
}
