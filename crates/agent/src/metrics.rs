//! Every heapscape metric, for tools that iterate them: the catalogs of the pool, the
//! heartbeat and the agent, in one place.
//!
//! Dashboards, alert rules, a StatsD mapping or a scraper can check the names they use
//! against [`CATALOGS`] instead of typing them again.
//!
//! ```
//! use heapscape::metrics::{CATALOGS, MetricKind};
//!
//! let histograms: Vec<&str> = CATALOGS
//!     .iter()
//!     .flat_map(|catalog| catalog.iter())
//!     .filter(|def| def.kind == MetricKind::Histogram)
//!     .map(|def| def.name)
//!     .collect();
//! assert!(histograms.contains(&"heapscape_pool_returned_length_bytes"));
//! ```

pub use heapscape_pool::catalog::{MetricDef, MetricKind};

pub use crate::reload_metrics::CATALOG;

/// The catalogs of every heapscape library crate: the pool's
/// ([`heapscape_pool::metrics::CATALOG`]), the heartbeat's
/// ([`heapscape_heartbeat::metrics::CATALOG`]) and the agent's own ([`CATALOG`]).
pub const CATALOGS: &[&[MetricDef]] = &[
    heapscape_pool::metrics::CATALOG,
    heapscape_heartbeat::metrics::CATALOG,
    CATALOG,
];

/// Every heapscape histogram with its bucket upper bounds: the pool's size histograms
/// ([`heapscape_pool::metrics::HISTOGRAM_METRICS`]: returned lengths in fine buckets, returned
/// capacities in powers of two, in bytes) and the heartbeat's tick duration
/// ([`heapscape_heartbeat::SAMPLE_DURATION_BUCKETS`], in seconds).
///
/// An exporter that picks its own default bounds needs these: the pool publishes each return
/// at its bucket's upper bound, so with these bounds the exported buckets are the pool's, and
/// with another exporter's defaults (OpenTelemetry's end at 10,000) nearly every size lands in
/// the overflow bucket. The agent's Prometheus recorder and `heapscape::otel::set_histogram_bounds`
/// (feature `otel`) read them from here.
///
/// ```
/// let (name, bounds) = heapscape::metrics::HISTOGRAMS[0];
/// assert_eq!(name, "heapscape_pool_returned_length_bytes");
/// assert_eq!((bounds[0], bounds[bounds.len() - 1]), (64.0, 1_073_741_824.0));
/// ```
pub const HISTOGRAMS: &[(&str, &[f64])] = &[
    heapscape_pool::metrics::HISTOGRAM_METRICS[0],
    heapscape_pool::metrics::HISTOGRAM_METRICS[1],
    (
        heapscape_heartbeat::metrics::SAMPLE_DURATION.name,
        heapscape_heartbeat::SAMPLE_DURATION_BUCKETS,
    ),
];

/// Describes (help text and unit) every metric of [`CATALOGS`] to the installed recorder.
///
/// [`AgentBuilder::start`](crate::AgentBuilder::start) does this for the recorder the agent
/// publishes through; call it after installing a recorder of your own without an agent.
pub fn describe() {
    for catalog in CATALOGS {
        heapscape_pool::catalog::describe(catalog);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A histogram added to a catalog without its bounds here would reach exporters with their
    /// default bounds.
    #[test]
    fn every_histogram_of_the_catalogs_has_its_bounds() {
        let histograms: Vec<&str> = CATALOGS
            .iter()
            .flat_map(|catalog| catalog.iter())
            .filter(|def| def.kind == MetricKind::Histogram)
            .map(|def| def.name)
            .collect();
        let bounded: Vec<&str> = HISTOGRAMS.iter().map(|(name, _)| *name).collect();
        assert_eq!(bounded, histograms);
        for (name, bounds) in HISTOGRAMS {
            assert!(
                !bounds.is_empty() && bounds.is_sorted(),
                "{name}: {bounds:?}"
            );
        }
        for pool_histogram in heapscape_pool::metrics::HISTOGRAM_METRICS {
            assert!(HISTOGRAMS.contains(pool_histogram), "{}", pool_histogram.0);
        }
    }
}
