//! The agent's own metrics, written once and used to describe and to emit.

use metrics::Unit;

/// One agent metric.
pub(crate) struct AgentMetric {
    pub(crate) name: &'static str,
    pub(crate) unit: Unit,
    pub(crate) help: &'static str,
    pub(crate) counter: bool,
}

/// Config reloads attempted (SIGHUP or file change), successful or not.
pub(crate) const RELOADS: AgentMetric = AgentMetric {
    name: "heapscape_config_reloads_total",
    unit: Unit::Count,
    help: "Config reloads attempted (SIGHUP or a change of the file), successful or not.",
    counter: true,
};

/// Config reloads rejected; the previous config stayed in force.
pub(crate) const RELOAD_FAILURES: AgentMetric = AgentMetric {
    name: "heapscape_config_reload_failures_total",
    unit: Unit::Count,
    help: "Config reloads rejected (unreadable or invalid file); the previous config stayed in force.",
    counter: true,
};

/// When the config in force was last loaded successfully (start or reload).
pub(crate) const LAST_RELOAD_SUCCESS: AgentMetric = AgentMetric {
    name: "heapscape_config_last_reload_success_timestamp_seconds",
    unit: Unit::Seconds,
    help: "Unix time at which the config in force was loaded (at start or by the last successful reload).",
    counter: false,
};

pub(crate) const METRICS: &[AgentMetric] = &[RELOADS, RELOAD_FAILURES, LAST_RELOAD_SUCCESS];

impl AgentMetric {
    fn describe(&self) {
        if self.counter {
            metrics::describe_counter!(self.name, self.unit, self.help);
        } else {
            metrics::describe_gauge!(self.name, self.unit, self.help);
        }
    }

    /// Adds `by` to this counter.
    pub(crate) fn increment(&self, by: u64) {
        metrics::counter!(self.name).increment(by);
    }

    /// Sets this gauge to the current Unix time.
    pub(crate) fn set_now(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        metrics::gauge!(self.name).set(now);
    }
}

/// Describes the agent's metrics and publishes their starting values, so that dashboards see
/// the counters at 0 before the first reload.
pub(crate) fn describe_and_initialize() {
    for metric in METRICS {
        metric.describe();
    }
    RELOADS.increment(0);
    RELOAD_FAILURES.increment(0);
    LAST_RELOAD_SUCCESS.set_now();
}
