//! [`AgentBuilder`]: the one way to start an [`Agent`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::agent::Overrides;
use crate::{Agent, Config, Error};

/// How an [`Agent`] starts: where its config comes from, what the service layers over it, and
/// whether the agent installs the config's exporter or publishes through the service's own
/// recorder. Made by [`Agent::builder`]; nothing happens until [`AgentBuilder::start`].
///
/// ```no_run
/// # fn run() -> Result<(), heapscape::Error> {
/// // The config file, watched for changes, with the exporter it names (Prometheus or StatsD).
/// let agent = heapscape::Agent::builder().config_file("heapscape.yaml").start()?;
/// # Ok(())
/// # }
/// ```
#[must_use = "an AgentBuilder starts nothing until `.start()` is called"]
pub struct AgentBuilder {
    source: Source,
    overrides: Option<Arc<Overrides>>,
    service_recorder: bool,
}

/// Where the config comes from.
enum Source {
    /// Boxed: a `Config` is several times the size of a path.
    Config(Box<Config>),
    /// Read at start and re-read on SIGHUP and when the file changes.
    File(PathBuf),
}

impl AgentBuilder {
    pub(crate) fn new() -> Self {
        Self {
            source: Source::Config(Box::default()),
            overrides: None,
            service_recorder: false,
        }
    }

    /// Starts from `config`, built or read by the service; without it (and without
    /// [`AgentBuilder::config_file`]) the agent starts from [`Config::default`]. Nothing is
    /// reloaded: [`Agent::apply_config`] applies a new config. Replaces a `config_file` given
    /// before.
    pub fn config(mut self, config: Config) -> Self {
        self.source = Source::Config(Box::new(config));
        self
    }

    /// Reads the config from the YAML file at `path` at start, and again on SIGHUP and
    /// whenever the file changes (checked every second): live reload.
    ///
    /// A reload applies pool caps, the heartbeat interval, new pools and removed pools at once
    /// (see [`Agent::apply_config`]). The exporter, `service` and `labels` cannot change while
    /// the service runs: a change is logged and the old values stay. An unreadable or invalid
    /// file is logged with its error and counted in `heapscape_config_reload_failures_total`;
    /// the previous config stays in force. Replaces a `config` given before.
    pub fn config_file(mut self, path: impl AsRef<Path>) -> Self {
        self.source = Source::File(path.as_ref().to_path_buf());
        self
    }

    /// Applies `overrides` to the config before it takes effect: at start, and with
    /// [`AgentBuilder::config_file`] after every reload too.
    ///
    /// This is how a service layers its command-line flags over the file and still gets live
    /// reload: a flag keeps winning over the file after every edit.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), heapscape::Error> {
    /// use std::time::Duration;
    /// let agent = heapscape::Agent::builder()
    ///     .config_file("heapscape.yaml")
    ///     .overrides(|config| {
    ///         config.labels.insert("pooling".to_owned(), "on".to_owned());
    ///         config.heartbeat.interval = Duration::from_secs(1); // e.g. --heartbeat-interval
    ///     })
    ///     .start()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// The overrides run on the caller's thread at start and on the watcher thread after a
    /// reload; they should be quick and must not panic. What they produce is checked like a
    /// file: a pool the pool crate refuses fails the start ([`Error::Pool`]) or the reload
    /// (logged and counted, the previous config stays). As with the file, the exporter,
    /// `service` and `labels` only take effect at start.
    pub fn overrides(mut self, overrides: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        self.overrides = Some(Arc::new(overrides));
        self
    }

    /// Publishes through the `metrics` recorder the service installed before
    /// [`AgentBuilder::start`] instead of installing the config's exporter; the config needs no
    /// `exporter:` key then, and its `exporter`, `service` and `labels` are not used (the
    /// service's recorder sets the labels).
    ///
    /// For a service that owns its metrics stack. With metrics-exporter-prometheus, install
    /// [`prometheus::Recorder`](crate::prometheus::Recorder) so heapscape's histograms keep
    /// real buckets at a constant cost and its series carry the service's global labels; with
    /// any other recorder, see the crate README ("Add heapscape to your service") for what the
    /// histograms cost. When the descriptions of heapscape's metrics reach no
    /// `prometheus::Recorder` at start (another recorder, or none installed yet), the agent
    /// logs a warning that says so.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use metrics_exporter_prometheus::PrometheusBuilder;
    ///
    /// let recorder = heapscape::prometheus::Recorder::from_builder(
    ///     PrometheusBuilder::new(),
    ///     [("service", "shop")],
    /// );
    /// let exposition = recorder.exposition(); // serve exposition.render() on /metrics
    /// metrics::set_global_recorder(recorder)?;
    /// let agent = heapscape::Agent::builder()
    ///     .config_file("heapscape.yaml")
    ///     .service_recorder()
    ///     .start()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn service_recorder(mut self) -> Self {
        self.service_recorder = true;
        self
    }

    /// Builds the pools, starts the heartbeat and, unless
    /// [`AgentBuilder::service_recorder`] was chosen, installs the config's exporter as the
    /// global `metrics` recorder; with [`AgentBuilder::config_file`], starts watching the file.
    ///
    /// Inside a tokio runtime the heartbeat and the Prometheus exporter's tasks run on it (each
    /// heap sample on its blocking pool). Outside one (or without the `tokio` feature), the
    /// heartbeat runs on a thread of its own (`heapscape-heartbeat`) and the Prometheus
    /// exporter's tasks on a private single-threaded runtime on another (`heapscape-metrics`);
    /// StatsD flushes from a thread of its own (`heapscape-statsd`). [`Agent::shutdown`] ends
    /// them all.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unreadable or invalid file, or a file without an `exporter:`
    /// key when the agent is to install the exporter; [`Error::NoExporter`] for the same
    /// missing exporter in a [`Config`] given in code; [`Error::Limit`] for a value out of
    /// the README's bounds (too many pools, a size or interval out of range); [`Error::Pool`]
    /// for a pool the pool crate refuses; [`Error::PortInUse`] / [`Error::Listen`] when the
    /// Prometheus address cannot be bound; [`Error::Statsd`] when the StatsD host does not
    /// resolve; [`Error::TokioFeatureOff`] for a Prometheus exporter in a build without the
    /// `tokio` feature; [`Error::RecorderAlreadyInstalled`] when something installed a recorder
    /// first; [`Error::Runtime`] / [`Error::Heartbeat`] when a thread cannot be started;
    /// [`Error::Watch`] if the SIGHUP handler or the file watcher cannot be set up.
    /// A StatsD daemon that is down is not an error.
    pub fn start(self) -> Result<Agent, Error> {
        let install_exporter = !self.service_recorder;
        let overrides = self
            .overrides
            .unwrap_or_else(|| Arc::new(|_: &mut Config| {}));
        match self.source {
            Source::Config(mut config) => {
                overrides(&mut config);
                Agent::launch(*config, install_exporter)
            }
            Source::File(path) => Agent::launch_watching(path, overrides, install_exporter),
        }
    }
}

impl std::fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("AgentBuilder");
        match &self.source {
            Source::Config(config) => debug.field("config", config),
            Source::File(path) => debug.field("config_file", path),
        };
        debug
            .field("overrides", &self.overrides.is_some())
            .field("service_recorder", &self.service_recorder)
            .finish()
    }
}
