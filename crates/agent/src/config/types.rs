//! The public configuration types and their defaults.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use heapscape_pool::PoolConfig;
use ipnet::IpNet;

use super::profiling::ProfilingConfig;
/// `jemalloc`: how long freed pages stay resident, and whether background threads purge them.
pub use heapscape_heartbeat::decay::DecaySettings as JemallocConfig;

/// The Prometheus listen address used when `exporter.prometheus.listen` is omitted: loopback,
/// so that metrics are not exposed to the network unless the file says so.
pub const DEFAULT_PROMETHEUS_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9000);
/// The StatsD queue size used when `exporter.statsd.queue_size` is omitted.
pub const DEFAULT_STATSD_QUEUE_SIZE: usize = 5000;
/// The StatsD datagram buffer used when `exporter.statsd.buffer_size` is omitted: the largest
/// UDP payload that fits an Ethernet frame (1500 - 20 IPv4 - 8 UDP bytes, rounded down).
pub const DEFAULT_STATSD_BUFFER_SIZE: usize = 1432;
/// The `limits.max_pools` used when the key is omitted.
pub(crate) const DEFAULT_MAX_POOLS: usize = 64;
/// The heartbeat interval used when `heartbeat.interval` is omitted.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// The agent's configuration, usually read from a YAML file with [`Config::from_file`].
///
/// Every key is optional; see the crate README for the reference. The `exporter` is needed
/// only when the agent installs it: a file without one is read as [`ExporterConfig::Unset`],
/// which suits an agent that publishes through the service's own recorder
/// ([`AgentBuilder::service_recorder`](crate::AgentBuilder::service_recorder)).
/// [`Config::default`] is a Prometheus exporter on [`DEFAULT_PROMETHEUS_LISTEN`], a 10 s
/// heartbeat, no pools and at most 64 of them.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The service name, sent as the label (tag) `service` on every metric when set.
    pub service: Option<String>,
    /// Global labels (Prometheus) or tags (StatsD) on every metric.
    pub labels: BTreeMap<String, String>,
    /// Where metrics go ([`ExporterConfig::Unset`] when the file has no `exporter:` key).
    /// Cannot change while the agent runs.
    pub exporter: ExporterConfig,
    /// The heap heartbeat.
    pub heartbeat: HeartbeatConfig,
    /// The named buffer pools; each name becomes the `pool` label of its metrics.
    pub pools: BTreeMap<String, PoolConfig>,
    /// `limits.max_pools`: the most pools the config may name (default 64, at most 1024). Each
    /// pool adds about 6 KB to every scrape and its work to every heartbeat tick.
    pub max_pools: usize,
    /// jemalloc's purging settings (`jemalloc:`); unset ones keep jemalloc's values.
    pub jemalloc: JemallocConfig,
    /// The heap profiler behind `/debug/pprof/heap`; off by default. Changeable at run time.
    pub profiling: ProfilingConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            service: None,
            labels: BTreeMap::new(),
            exporter: ExporterConfig::default(),
            heartbeat: HeartbeatConfig::default(),
            pools: BTreeMap::new(),
            max_pools: DEFAULT_MAX_POOLS,
            jemalloc: JemallocConfig::default(),
            profiling: ProfilingConfig::default(),
        }
    }
}

/// The one exporter the agent installs.
///
/// A variant rather than an `Option` for "none": [`Config::exporter`] keeps the type the
/// workspace's other crates match on.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum ExporterConfig {
    /// Serve `/metrics` for Prometheus to scrape.
    Prometheus(PrometheusConfig),
    /// Send UDP datagrams with DogStatsD tags to a StatsD daemon (or statsd_exporter).
    Statsd(StatsdConfig),
    /// No `exporter:` key: fine for an agent that publishes through the service's own
    /// recorder ([`AgentBuilder::service_recorder`](crate::AgentBuilder::service_recorder));
    /// an agent that is to install the exporter refuses to start, saying what to add.
    Unset,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        Self::Prometheus(PrometheusConfig::default())
    }
}

/// `exporter.prometheus`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusConfig {
    /// The address of the scrape listener; port 0 picks a free port
    /// (see [`Agent::metrics_addr`](crate::Agent::metrics_addr)).
    pub listen: SocketAddr,
    /// When not empty, only clients in these networks may scrape; others get 403.
    pub allow: Vec<IpNet>,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_PROMETHEUS_LISTEN,
            allow: Vec::new(),
        }
    }
}

/// `exporter.statsd`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct StatsdConfig {
    /// The StatsD host name or IP address.
    pub host: String,
    /// The StatsD UDP port.
    pub port: u16,
    /// How many metric lines may wait to be sent; more are dropped.
    pub queue_size: usize,
    /// How many bytes are packed into one UDP datagram.
    pub buffer_size: usize,
    /// Tags sent with every metric, in addition to `service` and `labels`.
    pub tags: BTreeMap<String, String>,
}

impl Default for StatsdConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8125,
            queue_size: DEFAULT_STATSD_QUEUE_SIZE,
            buffer_size: DEFAULT_STATSD_BUFFER_SIZE,
            tags: BTreeMap::new(),
        }
    }
}

/// `heartbeat`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatConfig {
    /// Time between two heap samples (and pool publications). Changeable at run time.
    pub interval: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_HEARTBEAT_INTERVAL,
        }
    }
}
