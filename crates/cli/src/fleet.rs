//! What the CLI gathers about one service's pool before recommending: the same inputs a pool
//! reads from its own window, summed (or taken at their peak) across the service's instances.

use std::time::Duration;

use heapscape_pool::stats::FineSizeHistogram;

/// The settings the recommendation is about, as a pool's gauges publish them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Settings {
    /// `max_buffer_size`, bytes.
    pub max_buffer_size: u64,
    /// `initial_capacity`, bytes.
    pub initial_capacity: u64,
    /// `max_idle_buffers`.
    pub max_idle_buffers: u64,
    /// `max_idle_bytes`, bytes.
    pub max_idle_bytes: u64,
}

/// What names one service's pool in Prometheus: the labels every fleet query groups by
/// ([`crate::prometheus::BY_POOL`]).
///
/// A service is its `job` and its `service` label together: on the StatsD path every service
/// is scraped as statsd_exporter's job and only `service` (from its tag) tells two apart; on
/// the Prometheus path the job names the service, and `service` is the agent's `service`
/// setting when the config has one, empty otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PoolKey {
    /// The `job` label.
    pub(crate) job: String,
    /// The `service` label; empty when the series have none.
    pub(crate) service: String,
    /// The `pool` label.
    pub(crate) pool: String,
}

/// One service's pool over the window, across its instances.
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolData {
    /// The service and pool.
    pub(crate) key: PoolKey,
    /// Lengths returned within the window, every instance's buckets summed.
    pub(crate) lengths: FineSizeHistogram,
    /// Whether `lengths` came from the kit's recording rule rather than the instances' series.
    pub(crate) lengths_recorded: bool,
    /// The settings in force: the largest across instances.
    pub(crate) current: Settings,
    /// Whether instances run different settings (then `current` is the largest).
    pub(crate) settings_differ: bool,
    /// Instances that returned buffers within the window.
    pub(crate) instances: u64,
    /// The instance with the most returns and its share of them.
    pub(crate) top_instance: Option<(String, f64)>,
    /// The most buffers one instance held at once within the window.
    pub(crate) peak_held: u64,
    /// The most idle bytes one instance held at once within the window.
    pub(crate) peak_idle_bytes: u64,
    /// Returns the idle caps discarded within the window, all instances.
    pub(crate) idle_cap_discards: u64,
    /// Returns shrunk to the max in force per second, whole fleet (shrink policy).
    pub(crate) shrinks_per_second: f64,
    /// The minimum of returns the pools themselves use, when they publish it.
    pub(crate) min_returns: Option<u64>,
    /// How much of the window the data covers.
    pub(crate) span: Duration,
    /// The window asked for.
    pub(crate) window: Duration,
    /// The last change of the max buffer size within the window, when there was one.
    pub(crate) max_change: Option<MaxChange>,
}

/// The last change of a pool's max buffer size within the window, and the returns on either
/// side of it: what the rule's prediction rests on, and what followed.
#[derive(Debug, Clone, Default)]
pub(crate) struct MaxChange {
    /// The max in force before the change: the largest across instances.
    pub(crate) previous_max: u64,
    /// The max in force since: the largest across instances.
    pub(crate) max: u64,
    /// The part of the window before the change: up to the last step that saw the previous
    /// max.
    pub(crate) before: Duration,
    /// The time since the change: from the first step that saw the new max. The change lies
    /// between the two parts, in neither.
    pub(crate) since: Duration,
    /// Lengths returned before the change within the window, every instance's summed.
    pub(crate) lengths_before: FineSizeHistogram,
    /// Lengths returned since the change, every instance's summed.
    pub(crate) lengths_since: FineSizeHistogram,
    /// The most buffers one instance held at once before the change.
    pub(crate) peak_held_before: u64,
    /// The most idle bytes one instance was scraped holding since the change.
    pub(crate) peak_idle_bytes_since: u64,
}
