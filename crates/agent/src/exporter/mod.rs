//! The one exporter the agent installs, as the config chooses: Prometheus (the agent's own
//! listener, `prometheus`) or StatsD (UDP with DogStatsD tags, `statsd`).

mod prometheus;
mod statsd;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::Error;
use crate::config::{Config, ExporterConfig};
use prometheus::PrometheusExporter;
use statsd::StatsdExporter;

/// The installed exporter, kept for shutdown.
pub(crate) enum Exporter {
    Prometheus(PrometheusExporter),
    Statsd(StatsdExporter),
}

impl Exporter {
    /// Builds the exporter described by `config` and installs it as the global recorder.
    pub(crate) fn install(config: &Config) -> Result<Self, Error> {
        let global_labels = global_labels(config);
        match &config.exporter {
            ExporterConfig::Prometheus(prometheus) => {
                PrometheusExporter::install(prometheus, &global_labels).map(Self::Prometheus)
            }
            ExporterConfig::Statsd(statsd) => {
                StatsdExporter::install(statsd, global_labels).map(Self::Statsd)
            }
        }
    }

    /// The bound Prometheus listener, if that is the exporter.
    pub(crate) fn metrics_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Prometheus(prometheus) => Some(prometheus.addr()),
            Self::Statsd(_) => None,
        }
    }

    /// A pool called `name` is (again) managed by the agent: its series may appear.
    pub(crate) fn pool_added(&self, name: &str) {
        if let Self::Prometheus(prometheus) = self {
            prometheus.pool_added(name);
        }
    }

    /// The pool called `name` was removed: its series stop. StatsD needs nothing: a pool that
    /// is not published sends nothing.
    pub(crate) fn pool_removed(&self, name: &str) {
        if let Self::Prometheus(prometheus) = self {
            prometheus.pool_removed(name);
        }
    }

    /// Flushes, then stops the Prometheus listener (closing its open connections) and upkeep,
    /// or the StatsD flusher.
    pub(crate) fn shutdown(&self, timeout: Duration) {
        match self {
            Self::Prometheus(prometheus) => prometheus.shutdown(),
            Self::Statsd(statsd) => statsd.shutdown(timeout),
        }
    }
}

/// `service` and `labels`, plus StatsD's own `tags`: on every metric of both exporters.
fn global_labels(config: &Config) -> BTreeMap<String, String> {
    let mut labels = config.labels.clone();
    if let ExporterConfig::Statsd(statsd) = &config.exporter {
        labels.extend(statsd.tags.clone());
    }
    if let Some(service) = &config.service {
        labels.insert("service".to_owned(), service.clone());
    }
    labels
}
