//! What `compare` measured: per-mode summaries and the comparison, plain data written to the
//! JSON summary and read by the report.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

/// One number summarized over time: mean, max and population standard deviation.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct OverTime {
    /// Mean of the samples.
    pub mean: f64,
    /// Largest sample.
    pub max: f64,
    /// Population standard deviation.
    pub std_dev: f64,
}

impl OverTime {
    /// `None` without samples.
    pub(super) fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        Some(Self {
            mean,
            max: values.iter().copied().fold(f64::MIN, f64::max),
            std_dev: variance.sqrt(),
        })
    }
}

/// A point of a mode's timeline, seconds from the start of its load.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    /// Seconds since the mode's load started.
    pub t: f64,
    /// `heapscape_jemalloc_allocated_bytes`.
    pub allocated: f64,
    /// `heapscape_jemalloc_active_bytes`.
    pub active: f64,
    /// `heapscape_jemalloc_resident_bytes`.
    pub resident: f64,
    /// Bytes allocated per second (counting allocator) between the last two heartbeat
    /// publications seen at this point.
    pub alloc_rate: f64,
}

/// What one mode measured.
#[derive(Debug, Clone, Serialize)]
pub struct ModeSummary {
    /// `"off"` or `"on"`.
    pub pooling: &'static str,
    /// Seconds of load.
    pub load_seconds: f64,
    /// Successful requests.
    pub requests: u64,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
    /// Successful requests per second.
    pub requests_per_second: f64,
    /// Latency quantiles of successful requests, milliseconds.
    pub latency_ms: BTreeMap<&'static str, f64>,
    /// Bytes allocated per second (`heapscape_alloc_bytes_total`), if the counting allocator ran.
    pub alloc_bytes_per_second: Option<f64>,
    /// Allocations per second (`heapscape_alloc_allocations_total`).
    pub allocations_per_second: Option<f64>,
    /// Bytes allocated per successful request.
    pub alloc_bytes_per_request: Option<f64>,
    /// Allocations per successful request.
    pub allocations_per_request: Option<f64>,
    /// jemalloc `stats.allocated` over the load.
    pub allocated: Option<OverTime>,
    /// jemalloc `stats.active` over the load.
    pub active: Option<OverTime>,
    /// jemalloc `stats.resident` over the load.
    pub resident: Option<OverTime>,
    /// Minor page faults per successful request.
    pub minor_faults_per_request: Option<f64>,
    /// Pool hits / gets during the load (pooled mode).
    pub pool_hit_ratio: Option<f64>,
    /// Pool discards during the load, by reason.
    pub discards: BTreeMap<String, f64>,
    /// The pool's recommended max buffer size at the end (pooled mode).
    pub recommended_max_buffer_size: Option<f64>,
    /// Heap and allocation rate, every second.
    pub timeline: Vec<Point>,
}

/// The result of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Requests in flight during each load.
    pub concurrency: u32,
    /// Seed of the requests.
    pub seed: u64,
    /// Pooling off, then on.
    pub modes: [ModeSummary; 2],
    /// The HTML report.
    pub report: PathBuf,
    /// The JSON summary.
    pub json: PathBuf,
    /// With the `profiling` feature: each mode's heap flame graph (pooling off, then on), an
    /// SVG beside the report; empty without it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub heap_profiles: Vec<PathBuf>,
}

impl Comparison {
    /// Failed requests over both modes.
    pub fn failed_requests(&self) -> u64 {
        self.modes
            .iter()
            .flat_map(|mode| mode.errors.values())
            .sum()
    }
}
