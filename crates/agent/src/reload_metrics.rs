//! The agent's own metric catalog, its config reloads: written once and used to describe
//! and to emit.

use heapscape_pool::catalog::{MetricDef, MetricKind};
use metrics::Unit;

/// Config reloads attempted (SIGHUP or file change), successful or not.
pub(crate) const RELOADS: MetricDef = MetricDef::new(
    "heapscape_config_reloads_total",
    MetricKind::Counter,
    Unit::Count,
    "Config reloads attempted (SIGHUP or a change of the file), successful or not.",
);

/// Config reloads rejected; the previous config stayed in force.
pub(crate) const RELOAD_FAILURES: MetricDef = MetricDef::new(
    "heapscape_config_reload_failures_total",
    MetricKind::Counter,
    Unit::Count,
    "Config reloads rejected (unreadable or invalid file); the previous config stayed in force.",
);

/// When the config in force was last loaded successfully (start or reload).
pub(crate) const LAST_RELOAD_SUCCESS: MetricDef = MetricDef::new(
    "heapscape_config_last_reload_success_timestamp_seconds",
    MetricKind::Gauge,
    Unit::Seconds,
    "Unix time at which the config in force was loaded (at start or by the last successful reload).",
);

/// Every metric the agent itself publishes (the pools and the heartbeat publish the rest).
pub const CATALOG: &[MetricDef] = &[RELOADS, RELOAD_FAILURES, LAST_RELOAD_SUCCESS];

/// Describes the agent's metrics and publishes their starting values, so that dashboards see
/// the counters at 0 before the first reload.
pub(crate) fn describe_and_initialize() {
    heapscape_pool::catalog::describe(CATALOG);
    RELOADS.increment(0);
    RELOAD_FAILURES.increment(0);
    LAST_RELOAD_SUCCESS.set_now();
}
