//! The one exporter the agent installs, as the config chooses: Prometheus (the agent's own
//! listener, `prometheus`, feature `tokio`, its tasks on the caller's tokio runtime or a private
//! one: `runtime`) or StatsD (UDP with DogStatsD tags, `statsd`, flushed from a thread).

#[cfg(feature = "tokio")]
pub(crate) mod prometheus;
#[cfg(feature = "tokio")]
mod runtime;
mod statsd;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::Error;
use crate::config::{Config, ExporterConfig, PrometheusConfig};
#[cfg(feature = "tokio")]
use prometheus::PrometheusExporter;
#[cfg(feature = "tokio")]
use runtime::TaskRuntime;
use statsd::StatsdExporter;

/// The installed exporter, kept for shutdown.
pub(crate) enum Exporter {
    #[cfg(feature = "tokio")]
    Prometheus {
        exporter: PrometheusExporter,
        /// Declared after `exporter`: its tasks run here.
        runtime: TaskRuntime,
    },
    Statsd(StatsdExporter),
}

impl Exporter {
    /// Builds the exporter described by `config` and installs it as the global recorder.
    pub(crate) fn install(config: &Config) -> Result<Self, Error> {
        let global_labels = global_labels(config);
        match &config.exporter {
            ExporterConfig::Prometheus(prometheus) => {
                Self::install_prometheus(prometheus, &global_labels)
            }
            ExporterConfig::Statsd(statsd) => {
                StatsdExporter::install(statsd, global_labels).map(Self::Statsd)
            }
            // `Agent::launch` refuses this config before it gets here.
            ExporterConfig::Unset => Err(Error::NoExporter),
        }
    }

    /// The Prometheus listener, its tasks on the current tokio runtime, or on a private one
    /// when there is none.
    #[cfg(feature = "tokio")]
    fn install_prometheus(
        config: &PrometheusConfig,
        labels: &BTreeMap<String, String>,
    ) -> Result<Self, Error> {
        let runtime = TaskRuntime::current_or_private()?;
        let exporter = PrometheusExporter::install(config, labels, runtime.handle())?;
        Ok(Self::Prometheus { exporter, runtime })
    }

    #[cfg(not(feature = "tokio"))]
    fn install_prometheus(
        _: &PrometheusConfig,
        _: &BTreeMap<String, String>,
    ) -> Result<Self, Error> {
        Err(Error::TokioFeatureOff {
            what: "exporter.prometheus (its /metrics listener runs on tokio)",
        })
    }

    /// The bound Prometheus listener, if that is the exporter.
    pub(crate) fn metrics_addr(&self) -> Option<SocketAddr> {
        match self {
            #[cfg(feature = "tokio")]
            Self::Prometheus { exporter, .. } => Some(exporter.addr()),
            Self::Statsd(_) => None,
        }
    }

    /// Flushes, then stops the Prometheus listener (closing its open connections) and upkeep,
    /// and the private runtime if the agent made one, or the StatsD flusher.
    pub(crate) fn shutdown(&self, timeout: Duration) {
        match self {
            #[cfg(feature = "tokio")]
            Self::Prometheus { exporter, runtime } => {
                exporter.shutdown();
                runtime.stop();
            }
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
