//! heapscape agent (work in progress).

mod config;
mod units;

pub use config::{
    Config, ConfigError, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_PROMETHEUS_LISTEN,
    DEFAULT_STATSD_BUFFER_SIZE, DEFAULT_STATSD_QUEUE_SIZE, ExporterConfig, HeartbeatConfig,
    PrometheusConfig, StatsdConfig,
};
