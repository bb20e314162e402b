//! The running agent: exporter, heartbeat, pool registry and live re-tuning.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use heapscape_heartbeat::{HeapStats, Heartbeat, HeartbeatHandle};
use heapscape_pool::{Pool, PoolStats};

use crate::config::file::{self, ReadError};
use crate::config::limits;
use crate::exporter::Exporter;
#[cfg(feature = "tokio")]
use crate::exporter::prometheus;
use crate::reload_metrics::{LAST_RELOAD_SUCCESS, RELOAD_FAILURES, RELOADS};
use crate::sync::{lock, read, write};
use crate::{AgentBuilder, Config, ConfigError, Error, ExporterConfig};

/// How often the config file is checked for a change.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often the watcher looks at the SIGHUP flag and the stop channel.
const WATCH_STEP: Duration = Duration::from_millis(100);
/// How long shutdown waits for the StatsD queue to drain.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long shutdown waits for a reload under way to finish before it leaves the watcher
/// thread behind: reading the file never blocks, but a hung file system or a stuck override
/// must not hold up the service's exit.
const WATCHER_STOP_WAIT: Duration = Duration::from_secs(5);
/// How many pool names a log line lists; the rest are counted.
const NAMES_IN_A_LINE: usize = 10;

/// The running agent: one exporter, the heap heartbeat and the named pools.
///
/// Create it with [`Agent::builder`]; end it with [`Agent::shutdown`]. Dropping it shuts it
/// down too: the heartbeat stops (the pools' series are no longer published), the config file
/// is no longer watched and the agent's Prometheus listener closes (or its StatsD queue is
/// flushed), so keep it for as long as the service runs.
#[must_use = "dropping the Agent shuts it down: keep it for as long as the service runs"]
pub struct Agent {
    shared: Arc<Shared>,
    watcher: Option<Watcher>,
    stopped: bool,
}

/// A snapshot of what the agent manages.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub struct AgentStats {
    /// Each pool's counters and gauges, by name.
    pub pools: BTreeMap<String, PoolStats>,
    /// The heartbeat's last successful heap sample, if one ran.
    pub heap: Option<HeapStats>,
    /// Heartbeat ticks completed.
    pub heartbeat_ticks: u64,
    /// Config reloads attempted (SIGHUP or file change).
    pub config_reloads: u64,
    /// Config reloads rejected.
    pub config_reload_failures: u64,
    /// Times the watcher compared the file with what it last read (about once a second while
    /// [`AgentBuilder::config_file`] watches it), whether or not that led to a reload.
    pub config_checks: u64,
}

/// What [`AgentBuilder::overrides`] applies to every config read from the file.
pub(crate) type Overrides = dyn Fn(&mut Config) + Send + Sync;

/// State shared with the reload watcher.
struct Shared {
    /// The config in force (the exporter, service and labels as started).
    config: Mutex<Config>,
    pools: RwLock<BTreeMap<String, Pool>>,
    heartbeat: HeartbeatHandle,
    /// `None` when the service installed its own recorder.
    exporter: Option<Exporter>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    /// File checks made by the watcher; see [`AgentStats::config_checks`].
    checks: AtomicU64,
    /// Set by [`Agent::shutdown`]: a reload that finishes reading the file afterwards (its
    /// watcher left behind) applies nothing.
    stopping: AtomicBool,
}

struct Watcher {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
    sighup: signal_hook::SigId,
}

impl Agent {
    /// How to start an agent: from a [`Config`] or a watched config file, with overrides,
    /// installing the config's exporter or publishing through the service's own recorder.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), heapscape::Error> {
    /// let agent = heapscape::Agent::builder().config_file("heapscape.yaml").start()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder() -> AgentBuilder {
        AgentBuilder::new()
    }

    pub(crate) fn launch(config: Config, install_exporter: bool) -> Result<Self, Error> {
        if install_exporter && config.exporter == ExporterConfig::Unset {
            return Err(Error::NoExporter);
        }
        check_limits(&config)?;
        let pools = config
            .pools
            .iter()
            .map(|(name, pool_config)| Ok((name.clone(), build_pool(name, pool_config)?)))
            .collect::<Result<BTreeMap<_, _>, Error>>()?;
        crate::profile::apply(&config.profiling)?;

        let exporter = if install_exporter {
            Some(Exporter::install(&config)?)
        } else {
            None
        };
        #[cfg(feature = "tokio")]
        let described_before = prometheus::descriptions();
        heapscape_pool::metrics::describe_metrics();
        heapscape_heartbeat::describe_metrics();
        crate::reload_metrics::describe_and_initialize();
        // Without the `tokio` feature there is no heapscape recorder to advise.
        #[cfg(feature = "tokio")]
        if exporter.is_none()
            && prometheus::descriptions() == described_before
            && !otel_bounds_set()
        {
            warn_not_heapscape_recorder();
        }

        apply_jemalloc(&config.jemalloc);
        let heartbeat = pools
            .values()
            .fold(
                Heartbeat::builder().interval(config.heartbeat.interval),
                |builder, pool| builder.pool(pool.clone()),
            )
            .build();
        let heartbeat = spawn_heartbeat(heartbeat)?;
        match &exporter {
            Some(exporter) => tracing::info!(
                exporter = ?config.exporter,
                metrics_addr = ?exporter.metrics_addr(),
                pools = ?pools.keys().collect::<Vec<_>>(),
                interval = ?config.heartbeat.interval,
                "heapscape agent started"
            ),
            None => tracing::info!(
                pools = ?pools.keys().collect::<Vec<_>>(),
                interval = ?config.heartbeat.interval,
                "heapscape agent started, publishing through the service's recorder \
                 (the config's exporter, service and labels are not used)"
            ),
        }
        Ok(Self {
            shared: Arc::new(Shared {
                config: Mutex::new(config),
                pools: RwLock::new(pools),
                heartbeat,
                exporter,
                reloads: AtomicU64::new(0),
                reload_failures: AtomicU64::new(0),
                checks: AtomicU64::new(0),
                stopping: AtomicBool::new(false),
            }),
            watcher: None,
            stopped: false,
        })
    }

    pub(crate) fn launch_watching(
        path: PathBuf,
        overrides: Arc<Overrides>,
        install_exporter: bool,
    ) -> Result<Self, Error> {
        let seen = Fingerprint::of(&path);
        let mut config = Config::from_file(&path)?;
        overrides(&mut config);
        if install_exporter && config.exporter == ExporterConfig::Unset {
            return Err(ConfigError::missing_exporter(&path.display().to_string()).into());
        }
        let mut agent = Self::launch(config, install_exporter)?;
        agent.watcher = Some(Watcher::spawn(
            Arc::clone(&agent.shared),
            path,
            seen,
            overrides,
        )?);
        Ok(agent)
    }

    /// A handle to the pool called `name` (cheap to clone), if the config has it.
    #[must_use]
    pub fn pool(&self, name: &str) -> Option<Pool> {
        read(&self.shared.pools).get(name).cloned()
    }

    /// The config in force: as started, with reloaded pools and heartbeat interval.
    #[must_use]
    pub fn config(&self) -> Config {
        lock(&self.shared.config).clone()
    }

    /// The address the Prometheus listener is bound to (the actual port when the config says
    /// port 0); `None` for StatsD and for an agent started without an exporter.
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.shared.exporter.as_ref()?.metrics_addr()
    }

    /// Pool statistics, the last heap sample and reload counts.
    #[must_use]
    pub fn stats(&self) -> AgentStats {
        // Acquire, first: pairs with the Release in `watch`, so the reload counts read below
        // include every reload those checks started.
        let config_checks = self.shared.checks.load(Ordering::Acquire);
        let pools = read(&self.shared.pools)
            .iter()
            .map(|(name, pool)| (name.clone(), pool.stats()))
            .collect();
        AgentStats {
            pools,
            heap: self.shared.heartbeat.last_stats(),
            heartbeat_ticks: self.shared.heartbeat.ticks(),
            // Relaxed: plain event counts, read for display.
            config_reloads: self.shared.reloads.load(Ordering::Relaxed),
            config_reload_failures: self.shared.reload_failures.load(Ordering::Relaxed),
            config_checks,
        }
    }

    /// Applies a new config as a reload would (pool caps, heartbeat interval, new and removed
    /// pools, `max_pools`; exporter, service and labels stay as started). For services that
    /// manage their config themselves; [`AgentBuilder::config_file`] does this on its own.
    ///
    /// A pool the new config no longer names is removed: [`Agent::pool`] no longer finds it,
    /// the heartbeat stops publishing and trimming it and the Prometheus exposition (the
    /// agent's, or a service's [`prometheus::Recorder`](crate::prometheus::Recorder)) drops
    /// its series. Handles and buffers still out keep working; a buffer returns to the removed
    /// pool, which nobody publishes, and is freed with the last handle.
    ///
    /// # Errors
    ///
    /// [`Error::Limit`] for a value out of bounds (nothing is applied then), [`Error::Pool`] if
    /// a new pool cannot be built or a pool refuses its new caps (the other changes are
    /// applied).
    pub fn apply_config(&self, config: Config) -> Result<(), Error> {
        self.shared.apply(config)
    }

    /// Stops watching the file, stops the heartbeat after a final sample and publication,
    /// flushes the StatsD queue (up to 2 s) and stops the Prometheus listener.
    ///
    /// Blocks for the final heap sample; from async code call it in `spawn_blocking` if that
    /// matters. The global recorder stays installed (the `metrics` crate cannot remove it).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        // Release: pairs with the Acquire in `Shared::reload`.
        self.shared.stopping.store(true, Ordering::Release);
        if let Some(watcher) = self.watcher.take() {
            watcher.stop();
        }
        self.shared.heartbeat.stop();
        if let Some(exporter) = &self.shared.exporter {
            exporter.shutdown(FLUSH_TIMEOUT);
        }
        tracing::info!("heapscape agent stopped");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("config", &*lock(&self.shared.config))
            .field("metrics_addr", &self.metrics_addr())
            .field("watching", &self.watcher.is_some())
            .finish_non_exhaustive()
    }
}

/// The heartbeat as a task of the caller's tokio runtime, or on a thread of its own outside
/// one (always, without the `tokio` feature).
fn spawn_heartbeat(heartbeat: Heartbeat) -> Result<HeartbeatHandle, Error> {
    #[cfg(feature = "tokio")]
    if tokio::runtime::Handle::try_current().is_ok() {
        return Ok(heartbeat.spawn());
    }
    heartbeat.spawn_thread().map_err(Error::Heartbeat)
}

/// The descriptions of heapscape's metrics reached no `heapscape::prometheus::Recorder`: the
/// service's recorder is another one, or none is installed yet. `metrics` hands out the global
/// recorder only as a `dyn Recorder`, so which other recorder it is cannot be told, and with
/// one that is not metrics-exporter-prometheus's (mode c) this may be as intended.
#[cfg(feature = "tokio")]
fn warn_not_heapscape_recorder() {
    tracing::warn!(
        "heapscape publishes through a recorder that is not heapscape::prometheus::Recorder, \
         or through none (install the service's recorder before starting the agent). With \
         metrics-exporter-prometheus's own recorder, heapscape's histograms come out as \
         summaries whose quantiles say nothing (e.g. 4095.7 for every size), each \
         publication costing one sample per return: build the recorder with \
         heapscape::prometheus::Recorder::from_builder(builder, labels) instead. With \
         another recorder, see \"Add heapscape to your service\" in the crate README for \
         what heapscape's histograms cost there"
    );
}

/// Whether the service gave an OpenTelemetry recorder heapscape's bounds: then it publishes
/// through a recorder set up for heapscape, and there is nothing to warn about.
#[cfg(feature = "tokio")]
fn otel_bounds_set() -> bool {
    #[cfg(feature = "otel")]
    return crate::otel::bounds_set();
    #[cfg(not(feature = "otel"))]
    false
}

/// Applies jemalloc's decay settings. A failure (jemalloc not the global allocator, or built
/// without background threads) costs resident memory, not service: it is logged, not fatal.
fn apply_jemalloc(settings: &crate::JemallocConfig) {
    match settings.apply() {
        Ok(()) if *settings == crate::JemallocConfig::default() => {}
        Ok(()) => tracing::info!(?settings, "jemalloc decay settings applied"),
        Err(error) => tracing::warn!(%error, "jemalloc decay settings not applied"),
    }
}

fn build_pool(name: &str, config: &heapscape_pool::PoolConfig) -> Result<Pool, Error> {
    Pool::builder(name)
        .config(config.clone())
        .build()
        .map_err(|error| Error::Pool {
            name: name.to_owned(),
            error,
        })
}

fn check_limits(config: &Config) -> Result<(), Error> {
    limits::check(config).map_err(|violation| Error::Limit {
        key: violation.key,
        message: violation.message,
    })
}

/// Up to [`NAMES_IN_A_LINE`] names, then how many more: one log line for any number of pools.
fn some_names(names: &[&String]) -> String {
    let mut shown = names
        .iter()
        .take(NAMES_IN_A_LINE)
        .map(|name| name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > NAMES_IN_A_LINE {
        shown.push_str(&format!(" and {} more", names.len() - NAMES_IN_A_LINE));
    }
    shown
}

impl Shared {
    /// Re-reads the file; on success applies it, on failure keeps the config in force.
    fn reload(&self, path: &Path, overrides: &Overrides, trigger: &str) {
        // Relaxed: independent event counts.
        self.reloads.fetch_add(1, Ordering::Relaxed);
        RELOADS.increment(1);
        let read = Config::from_file(path);
        // Acquire: pairs with the Release in `Agent::stop`.
        if self.stopping.load(Ordering::Acquire) {
            tracing::info!(trigger, "config read after shutdown began: not applied");
            return;
        }
        let result = read.map_err(Error::from).and_then(|mut config| {
            overrides(&mut config);
            self.apply(config)
        });
        match result {
            Ok(()) => {
                LAST_RELOAD_SUCCESS.set_now();
                tracing::info!(file = %path.display(), trigger, "config reloaded");
            }
            Err(error) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                RELOAD_FAILURES.increment(1);
                tracing::error!(
                    trigger,
                    "config reload rejected, the previous config stays in force: {error}"
                );
            }
        }
    }

    fn apply(&self, new: Config) -> Result<(), Error> {
        // Bounds first, for the whole config: a reload with one absurd value changes nothing.
        check_limits(&new)?;
        let mut current = lock(&self.config);
        // Publishing through the service's recorder, the agent uses none of the three.
        if self.exporter.is_some()
            && (new.exporter != current.exporter
                || new.service != current.service
                || new.labels != current.labels)
        {
            tracing::warn!(
                "the exporter, service and labels cannot change while the service runs: \
                 keeping the ones it started with; restart the service to apply the new ones"
            );
        }
        if new.heartbeat.interval != current.heartbeat.interval {
            let applied = self.heartbeat.set_interval(new.heartbeat.interval);
            tracing::info!(interval = ?applied, "heartbeat interval changed");
            current.heartbeat.interval = applied;
        }
        current.max_pools = new.max_pools;

        if new.jemalloc != current.jemalloc {
            apply_jemalloc(&new.jemalloc);
            current.jemalloc = new.jemalloc;
        }

        let mut first_error = None;
        if new.profiling != current.profiling {
            match crate::profile::apply(&new.profiling) {
                Ok(()) => {
                    tracing::info!(profiling = ?new.profiling, "heap profiling changed");
                    current.profiling = new.profiling.clone();
                }
                Err(error) => first_error = Some(error),
            }
        }
        let (mut added, mut reconfigured) = (Vec::new(), Vec::new());
        let mut pools = write(&self.pools);
        for (name, pool_config) in &new.pools {
            let outcome = match pools.get(name) {
                Some(pool) if pool.config() == *pool_config => Ok(()),
                Some(pool) => pool
                    .reconfigure(pool_config.clone())
                    .map(|()| reconfigured.push(name))
                    .map_err(|error| Error::Pool {
                        name: name.clone(),
                        error,
                    }),
                None => build_pool(name, pool_config).map(|pool| {
                    #[cfg(feature = "tokio")]
                    prometheus::pool_added(name);
                    self.heartbeat.add_pool(pool.clone());
                    pools.insert(name.clone(), pool);
                    added.push(name);
                }),
            };
            match outcome {
                Ok(()) => {
                    current.pools.insert(name.clone(), pool_config.clone());
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        let removed: Vec<String> = pools
            .keys()
            .filter(|name| !new.pools.contains_key(*name))
            .cloned()
            .collect();
        for name in &removed {
            // The heartbeat first: a tick that already took the pool may still publish it, and
            // heapscape's Prometheus recorder (the agent's or the service's) ignores a removed
            // pool's late publications. The registry last: once `Agent::pool` misses a pool,
            // its series are gone.
            self.heartbeat.remove_pool(name);
            #[cfg(feature = "tokio")]
            prometheus::pool_removed(name);
            pools.remove(name);
            current.pools.remove(name);
        }
        drop(pools);
        // One line per kind of change, whatever the number of pools.
        if !added.is_empty() {
            tracing::info!(count = added.len(), "pools added: {}", some_names(&added));
        }
        if !reconfigured.is_empty() {
            tracing::info!(
                count = reconfigured.len(),
                "pools reconfigured: {}",
                some_names(&reconfigured)
            );
        }
        if !removed.is_empty() {
            tracing::info!(
                count = removed.len(),
                "pools removed (no longer in the config; their series stop): {}",
                some_names(&removed.iter().collect::<Vec<_>>())
            );
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// What the watcher last saw of the file: its content, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fingerprint {
    Content {
        modified: Option<SystemTime>,
        len: u64,
        hash: u64,
    },
    Unreadable(String),
}

impl Fingerprint {
    /// Read as [`Config::from_file`] reads: never blocking, never more than the size limit.
    fn of(path: &Path) -> Self {
        match file::read(path) {
            Ok((metadata, bytes)) => {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut hasher);
                Self::Content {
                    modified: metadata.modified().ok(),
                    len: metadata.len(),
                    hash: hasher.finish(),
                }
            }
            Err(ReadError::Io(error)) => Self::Unreadable(error.kind().to_string()),
            Err(ReadError::NotRegular(kind)) => Self::Unreadable(kind.to_owned()),
            // A file that keeps growing is a file that keeps changing: each size is reported.
            Err(ReadError::TooLarge(len)) => Self::Unreadable(format!("{len} bytes")),
        }
    }
}

impl Watcher {
    fn spawn(
        shared: Arc<Shared>,
        path: PathBuf,
        seen: Fingerprint,
        overrides: Arc<Overrides>,
    ) -> Result<Self, Error> {
        let hangup = Arc::new(AtomicBool::new(false));
        let sighup = signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hangup))
            .map_err(Error::Watch)?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("heapscape-config".into())
            .spawn(move || watch(&shared, &path, &*overrides, seen, &hangup, &stopped));
        match thread {
            Ok(thread) => Ok(Self {
                stop,
                thread,
                sighup,
            }),
            Err(error) => {
                signal_hook::low_level::unregister(sighup);
                Err(Error::Watch(error))
            }
        }
    }

    fn stop(self) {
        signal_hook::low_level::unregister(self.sighup);
        // The thread may have ended already (a panic in a reload); nothing is left to stop.
        let _ = self.stop.send(());
        if !join_within(self.thread, WATCHER_STOP_WAIT) {
            tracing::warn!(
                "the config watcher is still busy with a reload after {WATCHER_STOP_WAIT:?}; \
                 stopping without it (what it reads will not be applied)"
            );
        }
    }
}

/// Joins `thread` if it ends within `limit`; otherwise leaves it running and returns false.
fn join_within(thread: JoinHandle<()>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !thread.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // A panic in the thread was already logged by the panic hook; there is nothing to add.
    let _ = thread.join();
    true
}

/// The watcher thread: reload on SIGHUP, and when the file's fingerprint changes.
fn watch(
    shared: &Shared,
    path: &Path,
    overrides: &Overrides,
    mut seen: Fingerprint,
    hangup: &AtomicBool,
    stopped: &mpsc::Receiver<()>,
) {
    let steps_per_poll = (POLL_INTERVAL.as_millis() / WATCH_STEP.as_millis()).max(1);
    let mut step = 0;
    // Ends when the agent sends a stop (or is gone).
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(WATCH_STEP) {
        // Relaxed: the flag only says "a signal came"; it guards no other data.
        if hangup.swap(false, Ordering::Relaxed) {
            seen = Fingerprint::of(path);
            shared.reload(path, overrides, "SIGHUP");
            continue;
        }
        step += 1;
        if step % steps_per_poll != 0 {
            continue;
        }
        let now = Fingerprint::of(path);
        if now != seen {
            seen = now;
            shared.reload(path, overrides, "file change");
        }
        // Release: whoever sees this check (Acquire in `Agent::stats`) also sees the counts of
        // the reload it started.
        shared.checks.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopping_does_not_wait_for_a_stuck_watcher() {
        let (release, stuck) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let _ = stuck.recv();
        });
        assert!(!join_within(thread, Duration::from_millis(50)));
        release.send(()).expect("the thread left behind still runs");

        let thread = std::thread::spawn(|| {});
        assert!(join_within(thread, Duration::from_secs(60)));
    }
}
