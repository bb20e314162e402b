//! The one exporter the agent installs, as the config chooses: Prometheus (the agent's own
//! listener, `prometheus`) or StatsD (UDP with DogStatsD tags, `statsd`), with its tasks on
//! the caller's tokio runtime or a private one (`runtime`).

pub(crate) mod prometheus;
mod runtime;
mod statsd;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::Error;
use crate::config::{Config, ExporterConfig};
use prometheus::PrometheusExporter;
use runtime::TaskRuntime;
use statsd::StatsdExporter;

/// The installed exporter, kept for shutdown.
pub(crate) struct Exporter {
    sink: Sink,
    /// Declared after `sink`: its tasks run here.
    runtime: TaskRuntime,
}

enum Sink {
    Prometheus(PrometheusExporter),
    Statsd(StatsdExporter),
}

impl Exporter {
    /// Builds the exporter described by `config` and installs it as the global recorder; its
    /// tasks run on the current tokio runtime, or on a private one when there is none.
    pub(crate) fn install(config: &Config) -> Result<Self, Error> {
        let global_labels = global_labels(config);
        let runtime = TaskRuntime::current_or_private()?;
        let sink = {
            // The StatsD exporter spawns its flush on the runtime it is entered in.
            let _entered = runtime.handle().enter();
            match &config.exporter {
                ExporterConfig::Prometheus(prometheus) => {
                    PrometheusExporter::install(prometheus, &global_labels, runtime.handle())
                        .map(Sink::Prometheus)
                }
                ExporterConfig::Statsd(statsd) => {
                    StatsdExporter::install(statsd, global_labels).map(Sink::Statsd)
                }
                // `Agent::launch` refuses this config before it gets here.
                ExporterConfig::Unset => Err(Error::NoExporter),
            }
        }?;
        Ok(Self { sink, runtime })
    }

    /// The bound Prometheus listener, if that is the exporter.
    pub(crate) fn metrics_addr(&self) -> Option<SocketAddr> {
        match &self.sink {
            Sink::Prometheus(prometheus) => Some(prometheus.addr()),
            Sink::Statsd(_) => None,
        }
    }

    /// Flushes, then stops the Prometheus listener (closing its open connections) and upkeep,
    /// or the StatsD flusher, and the private runtime if the agent made one.
    pub(crate) fn shutdown(&self, timeout: Duration) {
        match &self.sink {
            Sink::Prometheus(prometheus) => prometheus.shutdown(),
            Sink::Statsd(statsd) => statsd.shutdown(timeout),
        }
        self.runtime.stop();
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
