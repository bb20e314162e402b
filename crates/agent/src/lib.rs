//! Memory metrics for Rust services: buffer pools, a jemalloc heartbeat and an exporter,
//! set up from one YAML file.
//!
//! A service links heapscape, points it at a config file, and gets:
//!
//! - the exporter its metrics pipeline uses: a Prometheus scrape listener (loopback by
//!   default, optional allowlist, real histogram buckets) or StatsD with DogStatsD tags, with
//!   the same metric names and labels on both;
//! - a heartbeat that samples jemalloc heap statistics every 10 s off the async workers and
//!   publishes them, together with every pool's counters, gauges and size histograms
//!   (see [`heapscape_heartbeat`] and [`heapscape_pool`]);
//! - named [`Pool`]s of reusable byte buffers, whose caps ops re-tune from the dashboards by
//!   editing the file: on SIGHUP or a change of the file the agent applies new caps, a new
//!   heartbeat interval and new pools without a restart.
//!
//! Every config error names the file, line, column and key, and says what to change
//! ([`ConfigError`]); the crate README lists every key.
//!
//! A service that already owns its metrics stack keeps it:
//! [`AgentBuilder::service_recorder`] runs the heartbeat, pools and reload through the
//! recorder the service installed (the config then needs no `exporter:`), and
//! [`prometheus::Recorder`] keeps heapscape's histograms bucketed in a service's own
//! metrics-exporter-prometheus. With OpenTelemetry (feature `otel`), `otel::set_histogram_bounds`
//! gives metrics-exporter-otel's recorder heapscape's bucket bounds, or `otel::BucketCounters`
//! counts heapscape's histograms per bucket itself, at a cost that does not grow with traffic. No tokio runtime is needed: outside one the agent uses threads
//! of its own; without the default feature `tokio` neither tokio nor hyper is built, and the
//! agent runs StatsD or the service's own recorder on threads (the Prometheus listener,
//! [`prometheus`] and [`connection`] need the feature). The crate README's "Add heapscape to your service" compares the modes.
//!
//! A service that serves its own HTTP can bound what slow clients hold in its memory as the
//! agent's listener does, with the stream guards of [`connection`].
//!
//! # Example
//!
//! ```no_run
//! # fn run() -> Result<(), heapscape::Error> {
//! // heapscape.yaml:
//! //   service: tts-demo
//! //   exporter: { prometheus: { listen: 127.0.0.1:9000 } }
//! //   pools:
//! //     pcm: { initial_capacity: 256KiB, max_buffer_size: 4MiB }
//! let agent = heapscape::Agent::builder().config_file("heapscape.yaml").start()?;
//! let pcm = agent.pool("pcm").expect("the config names this pool");
//! {
//!     let mut buf = pcm.get();
//!     buf.extend_from_slice(b"RIFF");
//! } // back to the pool
//! println!("scrape http://{}/metrics", agent.metrics_addr().unwrap());
//! agent.shutdown(); // final sample and publication, StatsD queue flushed
//! # Ok(())
//! # }
//! ```
//!
//! Parsing alone needs no runtime and no network:
//!
//! ```
//! let config = heapscape::Config::from_yaml_str(
//!     "exporter: { statsd: { host: 127.0.0.1, port: 8125 } }\n\
//!      pools: { pcm: { max_buffer_size: 4MiB } }\n",
//!     "inline.yaml",
//! )?;
//! assert_eq!(config.pools["pcm"].max_buffer_size, 4 << 20);
//!
//! let error = heapscape::Config::from_yaml_str(
//!     "exporter: { prometheus: {} }\npools: { pcm: { max_buffer_size: 4Mb } }\n",
//!     "inline.yaml",
//! )
//! .unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "inline.yaml:2:34: `4Mb` is not a size: write a whole number of bytes or a number \
//!      with a unit, e.g. 4096, 256KiB or 4MiB (units: B, KB, MB, GB, KiB, MiB, GiB)"
//! );
//! # Ok::<(), heapscape::ConfigError>(())
//! ```
//!
//! # Metrics
//!
//! Besides the pool and heartbeat metrics, the agent publishes
//! `heapscape_config_reloads_total`, `heapscape_config_reload_failures_total` and
//! `heapscape_config_last_reload_success_timestamp_seconds`.

#![deny(missing_docs)]

mod agent;
mod builder;
mod config;
#[cfg(feature = "tokio")]
pub mod connection;
mod error;
mod exporter;
pub mod metrics;
#[cfg(feature = "otel")]
pub mod otel;
#[cfg(feature = "tokio")]
mod plain_text;
mod profile;
mod reload_metrics;
#[cfg(feature = "tokio")]
pub mod prometheus {
    //! For a service that owns its metrics-exporter-prometheus recorder (its own builder,
    //! listener or route): build that recorder with [`Recorder::from_builder`], which takes the
    //! global labels once for the service's series and heapscape's, install it, start the
    //! agent with [`AgentBuilder::service_recorder`](crate::AgentBuilder::service_recorder), and
    //! serve [`Exposition::render`]. heapscape's histograms then keep real buckets, spelled as
    //! the StatsD path spells them, at one addition per published bucket, and the series of a
    //! pool a reload removes leave the exposition.
    pub use crate::exporter::prometheus::{Exposition, Recorder};
}
mod sync;
mod units;

pub use agent::{Agent, AgentStats};
pub use builder::AgentBuilder;
pub use config::{
    Config, ConfigError, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_PROFILING_SAMPLE_RATE,
    DEFAULT_PROMETHEUS_LISTEN, DEFAULT_STATSD_BUFFER_SIZE, DEFAULT_STATSD_QUEUE_SIZE,
    ExporterConfig, HeartbeatConfig, JemallocConfig, ProfilingConfig, PrometheusConfig,
    StatsdConfig,
};
pub use error::Error;
/// The counting jemalloc global allocator (feature `counting`): jemalloc plus per-thread counts
/// of bytes and allocations, which the heartbeat publishes as `heapscape_alloc_bytes_total` and
/// `heapscape_alloc_allocations_total` (the allocation rate). Install it in the binary:
///
/// ```ignore
/// #[global_allocator]
/// static GLOBAL: heapscape::CountingJemalloc = heapscape::CountingJemalloc;
/// ```
#[cfg(feature = "counting")]
pub use heapscape_heartbeat::CountingJemalloc;
/// What the binary exports as `_rjem_malloc_conf` for heap profiles (feature `profiling`):
/// jemalloc's profiler built in, sampling off until `profiling.enabled` turns it on.
///
/// ```ignore
/// #[unsafe(export_name = "_rjem_malloc_conf")]
/// static MALLOC_CONF: &[u8] = heapscape::PROFILING_MALLOC_CONF;
/// ```
#[cfg(feature = "profiling")]
pub use heapscape_heartbeat::profile::MALLOC_CONF as PROFILING_MALLOC_CONF;
pub use heapscape_heartbeat::{Allocator, HeapStats};
/// The buffer pool crate, `heapscape-pool`, whole: a service that depends on `heapscape` alone
/// reaches every pool type through it, e.g. `heapscape::pool::config::AutoTuneConfig`,
/// `heapscape::pool::stats::DiscardReason`, `heapscape::pool::OwnedPooledBuf` and
/// `heapscape::pool::metrics::HISTOGRAM_METRICS` (the bounds an exporter of its own needs).
/// The types an agent hands out are also at this crate's root ([`Pool`], [`PoolConfig`],
/// [`PoolStats`], [`PooledBuf`]).
///
/// ```
/// use heapscape::pool::config::AutoTuneConfig;
///
/// let mut auto_tune = AutoTuneConfig::default();
/// auto_tune.enabled = true;
/// let pool = heapscape::Pool::builder("pcm").auto_tune(auto_tune).build()?;
/// pool.set_initial_capacity(1 << 10)?;
/// assert_eq!(pool.config().initial_capacity, 1 << 10);
/// # Ok::<(), heapscape::pool::PoolError>(())
/// ```
pub use heapscape_pool as pool;
pub use heapscape_pool::{Pool, PoolConfig, PoolStats, PooledBuf};
pub use units::parse_size;
