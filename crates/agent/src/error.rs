//! The agent's one error type.

use std::net::SocketAddr;

use crate::ConfigError;

/// Why the agent could not start (or a config could not be applied). Each message says what to
/// do.
///
/// A message already includes its cause (the operating system's words, the pool's reason), so
/// [`source`](std::error::Error::source) is `None`: a binary that prints the whole chain
/// (`anyhow`'s `{:#}`) shows each cause once.
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
        "cannot serve Prometheus metrics on {addr}: {error}; set exporter.prometheus.listen \
         to an address of this machine (e.g. 127.0.0.1:9000), and use a port above 1023 \
         unless the service may bind privileged ports"
    )]
    Listen {
        /// The address from `exporter.prometheus.listen`.
        addr: SocketAddr,
        /// What the operating system said.
        error: std::io::Error,
    },

    /// The StatsD client could not be set up (e.g. the host name does not resolve).
    /// A StatsD daemon that is down is not an error: UDP needs no connection.
    #[error(
        "cannot set up the StatsD client for {host}:{port}: {error}; check \
         exporter.statsd.host (a host name must resolve when the agent starts)"
    )]
    Statsd {
        /// `exporter.statsd.host`.
        host: String,
        /// `exporter.statsd.port`.
        port: u16,
        /// What failed.
        error: std::io::Error,
    },

    /// The agent was to install the exporter, but the [`Config`](crate::Config) given in
    /// code has none ([`ExporterConfig::Unset`](crate::ExporterConfig::Unset)). A config file
    /// without an `exporter:` key gets [`Error::Config`] instead, with its position.
    #[error(
        "no exporter is configured: set the config's `exporter` (e.g. to \
         `ExporterConfig::Prometheus(PrometheusConfig::default())`), or call \
         `.service_recorder()` on the agent builder to publish through the service's own recorder"
    )]
    NoExporter,

    /// Something installed a `metrics` recorder before the agent.
    #[error(
        "a metrics recorder is already installed in this process: start the agent once, \
         before any other exporter or recorder is installed"
    )]
    RecorderAlreadyInstalled,

    /// The config asks for something that runs on tokio (`exporter: prometheus`, the
    /// `/metrics` listener) in a build without the `tokio` feature.
    #[error(
        "{what} needs heapscape's `tokio` feature, which this build leaves out: enable it \
         (`heapscape = {{ version = \"…\", features = [\"tokio\"] }}`; it is on unless \
         `default-features = false`), or use what runs without it: `exporter: {{ statsd: ... }}`, \
         or the service's own recorder with `.service_recorder()`"
    )]
    TokioFeatureOff {
        /// What needs the feature, e.g. `exporter.prometheus`.
        what: &'static str,
    },

    /// A thread of the exporter could not be started: StatsD's periodic flush, or, outside a
    /// tokio runtime, the one that serves the Prometheus listener.
    #[error("cannot start the exporter's thread: {0}; the agent needs one more thread")]
    Runtime(std::io::Error),

    /// The heartbeat's thread could not be started (outside a tokio runtime).
    #[error("cannot start the heartbeat: {0}; the agent needs one more thread")]
    Heartbeat(heapscape_heartbeat::HeartbeatError),

    /// A configured pool could not be built.
    #[error("cannot build pool `{name}`: {error}")]
    Pool {
        /// The pool's name in the config.
        name: String,
        /// What the pool says to change.
        error: heapscape_pool::PoolError,
    },

    /// A config given to [`AgentBuilder::config`](crate::AgentBuilder::config) or
    /// [`Agent::apply_config`](crate::Agent::apply_config) (or changed by overrides) has a value
    /// out of the bounds the crate README lists; a config file gets [`Error::Config`] instead.
    #[error("{key}: {message}")]
    Limit {
        /// The dotted key path, e.g. `pools.pcm.max_buffer_size`.
        key: String,
        /// What is wrong and what to write instead.
        message: String,
    },

    /// The reload watcher (SIGHUP handler or file-polling thread) could not be started.
    #[error(
        "cannot watch the config file for changes: {0}; the agent needs one more thread and a SIGHUP handler"
    )]
    Watch(std::io::Error),

    /// `profiling.enabled` asks for heap profiles that this build or binary cannot make. The
    /// reason is the whole cause (what is missing and how to add it), so there is no `source`.
    #[error("cannot switch heap profiling as the config says: {reason}")]
    Profiling {
        /// What is missing and how to add it.
        reason: String,
    },
}
