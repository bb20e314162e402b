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

/// Describes (help text and unit) every metric of [`CATALOGS`] to the installed recorder.
///
/// [`AgentBuilder::start`](crate::AgentBuilder::start) does this for the recorder the agent
/// publishes through; call it after installing a recorder of your own without an agent.
pub fn describe() {
    for catalog in CATALOGS {
        heapscape_pool::catalog::describe(catalog);
    }
}
