//! The agent's one error type.

use std::net::SocketAddr;

use crate::ConfigError;

/// Why the agent could not start. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file is unreadable or wrong; the error names the file, line, column and key.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// Another process (or another agent) already listens on the Prometheus port.
    #[error(
        "cannot serve Prometheus metrics on {addr}: port {port} is already in use; stop the \
         process that listens there (`ss -ltnp 'sport = :{port}'` shows it) or set \
         exporter.prometheus.listen to a free port",
        port = addr.port()
    )]
    PortInUse {
        /// The address from `exporter.prometheus.listen`.
        addr: SocketAddr,
    },

    /// The Prometheus listen address cannot be bound for another reason.
    #[error(
        "cannot serve Prometheus metrics on {addr}: {source}; set exporter.prometheus.listen \
         to an address of this machine (e.g. 127.0.0.1:9000), and use a port above 1023 \
         unless the service may bind privileged ports"
    )]
    Listen {
        /// The address from `exporter.prometheus.listen`.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// metrics-exporter-prometheus refused its configuration.
    #[error("cannot set up the Prometheus exporter: {0}; check exporter.prometheus")]
    Prometheus(#[from] metrics_exporter_prometheus::BuildError),

    /// The StatsD client could not be set up (e.g. the host name does not resolve).
    /// A StatsD daemon that is down is not an error: UDP needs no connection.
    #[error(
        "cannot set up the StatsD client for {host}:{port}: {source}; check \
         exporter.statsd.host (a host name must resolve when the agent starts)"
    )]
    Statsd {
        /// `exporter.statsd.host`.
        host: String,
        /// `exporter.statsd.port`.
        port: u16,
        /// What failed.
        source: std::io::Error,
    },

    /// Something installed a `metrics` recorder before the agent.
    #[error(
        "a metrics recorder is already installed in this process: start the agent once, \
         before any other exporter or recorder is installed"
    )]
    RecorderAlreadyInstalled,

    /// [`Agent::start`](crate::Agent::start) was called outside a tokio runtime.
    #[error(
        "the agent needs a tokio runtime for its listener and heartbeat: call Agent::start \
         inside #[tokio::main] or within Runtime::enter"
    )]
    NoRuntime,

    /// A configured pool could not be built.
    #[error("cannot build pool `{name}`: {source}")]
    Pool {
        /// The pool's name in the config.
        name: String,
        /// What the pool says to change.
        source: heapscape_pool::PoolError,
    },

    /// The reload watcher (SIGHUP handler or file-polling thread) could not be started.
    #[error(
        "cannot watch the config file for changes: {0}; the agent needs one more thread and a SIGHUP handler"
    )]
    Watch(#[source] std::io::Error),
    /// `profiling.enabled` asks for heap profiles that this build or binary cannot make.
    #[error("cannot switch heap profiling as the config says: {reason}")]
    Profiling {
        /// What is missing and how to add it.
        reason: String,
    },
}
