//! A fast, bounded, observable pool of reusable byte buffers, tunable at run time.
//!
//! A service that buffers data of unknown length (a PCM stream before its WAV header can be
//! written, a request body, a serialized response) allocates a fresh growable buffer per
//! request: with many requests in flight that churn shows up as a "city scape" of heap usage
//! and as page faults. A [`Pool`] hands out cleared buffers that come back on drop, keeps at
//! most a configured number and size of them, and reports what ops need to choose those caps:
//! hits, misses, discards by reason, and the distribution of returned sizes, from which it
//! recommends a max buffer size, an initial capacity and the idle caps over a recent window
//! (default 1 h), with what each candidate max would cost in regrown buffers and idle memory.
//!
//! ```
//! use std::io::Write;
//! use std::time::Duration;
//! use heapscape_pool::Pool;
//!
//! let pool = Pool::builder("pcm")
//!     .initial_capacity(256 << 10)
//!     .max_buffer_size(4 << 20)
//!     .max_idle_buffers(64)
//!     .max_idle_bytes(128 << 20)
//!     .idle_timeout(Duration::from_secs(60))
//!     .build()?;
//!
//! {
//!     let mut buf = pool.get();
//!     buf.extend_from_slice(b"RIFF");
//!     buf.write_all(&[0; 40])?;
//!     assert_eq!(buf.len(), 44);
//! } // the buffer goes back to the pool here, cleared
//!
//! let buf = pool.get();
//! assert!(buf.is_empty());
//! assert!(buf.capacity() >= 44);
//! drop(buf);
//!
//! let stats = pool.stats();
//! assert_eq!((stats.hits, stats.misses), (1, 1));
//! // One return is not enough to recommend from (a p95 rests on 400 by default).
//! assert_eq!(stats.recommended_max_buffer_size(), None);
//!
//! pool.set_max_buffer_size(1 << 20)?; // live, from any thread
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map
//!
//! - At the root, what a service holds: [`Pool`] (built by [`PoolBuilder`]), the guards it
//!   hands out ([`PooledBuf`] from [`Pool::get`], [`OwnedPooledBuf`] from [`Pool::get_owned`]
//!   for a buffer moved into another thread or task), [`PoolConfig`], [`PoolStats`] and the
//!   one error, [`PoolError`].
//! - [`config`]: the settings ([`PoolConfig`], [`config::OverMaxPolicy`]) and auto-tuning
//!   ([`config::AutoTuneConfig`], [`config::TunedSetting`], [`config::TuneMove`]).
//! - [`stats`]: the snapshot ([`PoolStats`]) with its recommendations and what-ifs, the
//!   discards by reason ([`stats::Discards`]), the candidates ([`stats::Candidate`]) and the
//!   size histograms.
//! - [`metrics`]: the metrics a pool publishes, each defined once, with the histogram bounds
//!   an exporter needs ([`metrics::HISTOGRAM_METRICS`]) and [`metrics::describe_metrics`].
//! - [`catalog`]: the shape of a metric definition ([`catalog::MetricDef`]), shared by every
//!   heapscape crate.
//!
//! # Design
//!
//! - **Per-thread caches.** Each thread keeps one idle buffer per pool in a private slot that
//!   only it touches. Taking a buffer and returning it on the same thread (the common case)
//!   takes no lock and no atomic read-modify-write; the counters live in the same per-thread
//!   shard and are summed when read. Other buffers go to a shared depot behind a mutex.
//!   Buffers in private slots count in the idle gauges and against both idle caps (each thread
//!   reserves its share under the depot lock when its buffer's capacity grows). A thread's
//!   private buffer is re-checked against changed caps at that thread's next `get` or return,
//!   and moves to the depot when the thread exits; everything in the depot obeys a change at
//!   once.
//! - **Return policy.** A returned buffer is cleared, its length is counted in fine buckets
//!   (four per octave) and its capacity in power-of-two ones, then: over the max buffer size it is shrunk to the max
//!   ([`OverMaxPolicy::Shrink`], the default) or dropped ([`OverMaxPolicy::Drop`],
//!   `over_max`); kept if the idle-buffer and idle-byte caps allow, else discarded
//!   (`idle_buffers_cap`, `idle_bytes_cap`). Idle buffers that a lowered cap no longer allows
//!   are released by [`Pool::reconfigure`] (`reconfigure`), and [`Pool::trim`] releases depot
//!   buffers idle longer than the idle timeout (`idle_timeout`): Rust has no garbage
//!   collector to empty a pool after a burst. A return that grew on loan is counted as a
//!   regrow (`regrows`).
//! - **The spare.** Once a guard's [`PooledBuf::reserve`] has grown a buffer past the max, one
//!   buffer returned over the max is kept whole (up to twice the max, shrunk to that if
//!   larger) instead of shrunk, within the idle caps, and the next `reserve` past the max
//!   takes it instead of reallocating; it gives way (`spare` discards) to any buffer within
//!   the max the caps would otherwise discard. Why: shrinking every long request's buffer to the max
//!   made each of the next long requests regrow one by doubling from the max, an allocation
//!   (and a copy) per request over it, the allocation the pool is there to save. `get` never
//!   hands the spare out, so short requests never hold it.
//! - **Safety.** No `unsafe` code (`#![forbid(unsafe_code)]`) and no lock-free data
//!   structure, but two protocols rest on atomics rather than on the locks alone. *Retire*:
//!   per-thread counters are written without a lock, and [`Pool::stats`] folds an exited
//!   thread's counters into retired totals once `Arc::strong_count` shows the thread dropped
//!   its handle, after an `Acquire` fence pairing with the `Release` of that drop.
//!   *Generation*: `reconfigure` bumps a counter under the depot lock; each thread compares
//!   it with its own copy on every get and return and re-reads the config, under the lock,
//!   when it changed. A loom model runs the retire protocol on this crate's code
//!   (`cargo test -p heapscape-pool --features loom --lib loom`); loom's
//!   `strong_count` synchronizes by itself, so the fence is argued in the code, not checked.
//!   The generation protocol lives in the thread-local cache, which holds a `Weak` handle
//!   (loom has none): it is exercised by the many-thread reconfiguration test and the
//!   property test of the return policy.
//! - **Confidentiality.** A buffer from [`Pool::get`] is always empty (`len() == 0`): the bytes
//!   of its previous user are never readable through safe code.
//!
//! # Recommendations
//!
//! [`PoolStats`] recommends the max buffer size (the p95 of returned lengths, configurable),
//! the initial capacity (the median), the max idle buffers (the peak of buffers held plus
//! an eighth, or twice the cap in force when an idle cap discarded returns) and the max idle
//! bytes (the two multiplied), and shows for the max in force, the recommended max and its two
//! neighbours what each costs ([`PoolStats::candidates`]): the share of returns over it, the
//! bytes per second their regrowth copies (by doubling, as a `Vec` grows), and the most idle
//! memory it allows, beside the idle memory observed.
//!
//! - **With confidence.** A recommendation rests on at least
//!   [`PoolConfig::min_returns`] returns in the window (by default
//!   [`default_min_returns`]: 400 for p95, so that 20 lie above the percentile); below it
//!   every recommendation is `None`, published as NaN, and auto-tuning holds still. Empty
//!   returns (a request that failed after `get`) count as returns but not as lengths.
//!
//! - **Over a recent window.** These read the last `recommendation_window` (default 1 h)
//!   rather than every return since start, so a change in traffic shows within one window.
//!   The window is a ring of twelve intervals filled when the stats are read ([`Pool::stats`],
//!   [`Pool::publish`]: every heartbeat tick) from the change in the lifetime counters: the
//!   get and return paths do no more than before. The peak of buffers held is sampled at
//!   those reads too.
//! - **On fine buckets, everywhere.** Returned lengths are counted in four buckets per octave
//!   ([`FineSizeHistogram`]), so the recommended max is at most 19.8 % above the real
//!   percentile (a power of two could be twice it). The exported length histogram has the
//!   same bounds ([`LENGTH_BUCKETS`]), so the fleet-wide recommendation (the quantile of the
//!   `_bucket` series summed across instances, rounded up to its bucket's bound) follows the
//!   same rule at the same resolution.
//!
//! # Metrics
//!
//! [`Pool::publish`] emits these through the [`metrics`] facade, each with label
//! `pool="<name>"` (the heartbeat calls it every tick); [`describe_metrics`] registers their
//! help and units. Counters and histograms are emitted by delta, so StatsD and Prometheus see
//! the same totals.
//!
//! | name | type | unit | meaning |
//! |---|---|---|---|
//! | `heapscape_pool_hits_total` | counter | count | buffers handed out from idle buffers |
//! | `heapscape_pool_misses_total` | counter | count | buffers newly allocated (no idle buffer) |
//! | `heapscape_pool_returns_total` | counter | count | buffers returned (guards, `Bytes`, donations) |
//! | `heapscape_pool_discards_total{reason}` | counter | count | buffers released: `over_max`, `idle_buffers_cap`, `idle_bytes_cap` (on return), `idle_timeout` (by `trim`), `reconfigure` (by a lowered cap), `spare` (the spare, to make room for a buffer within the max) |
//! | `heapscape_pool_shrinks_total` | counter | count | returned buffers shrunk to the max and kept |
//! | `heapscape_pool_regrows_total` | counter | count | returned buffers whose capacity grew while on loan (reallocated and copied at least once) |
//! | `heapscape_pool_detaches_total` | counter | count | buffers taken out for good |
//! | `heapscape_pool_idle_buffers` | gauge | count | idle buffers held |
//! | `heapscape_pool_idle_bytes` | gauge | bytes | capacity of idle buffers held |
//! | `heapscape_pool_initial_capacity_bytes` | gauge | bytes | initial capacity in force: the capacity of a buffer allocated on a miss |
//! | `heapscape_pool_max_buffer_size_bytes` | gauge | bytes | max buffer size in force |
//! | `heapscape_pool_max_idle_bytes` | gauge | bytes | idle-bytes cap in force |
//! | `heapscape_pool_max_idle_buffers` | gauge | count | idle-buffers cap in force |
//! | `heapscape_pool_in_use_buffers` | gauge | count | buffers in use: gets and donations minus returns and detaches |
//! | `heapscape_pool_peak_held_buffers` | gauge | count | most buffers held at once, in use or idle, over the recommendation window (sampled at each publish; rises to the peak of concurrent use) |
//! | `heapscape_pool_peak_idle_bytes` | gauge | bytes | most idle bytes held at once over the recommendation window (sampled at each publish): the idle memory observed |
//! | `heapscape_pool_recommendation_window_seconds` | gauge | seconds | the window the recommendations cover (`recommendation_window`, default 1 h) |
//! | `heapscape_pool_recommendation_returns` | gauge | count | returns within the window, empty ones left out: what the recommendations rest on |
//! | `heapscape_pool_recommendation_min_returns` | gauge | count | the fewest returns a recommendation rests on; below it the recommendations and candidates read NaN |
//! | `heapscape_pool_recommended_max_buffer_size_bytes` | gauge | bytes | p95 (configurable) of the lengths returned within the window, rounded up to a fine bucket (4 per octave: at most 19.8 % above) |
//! | `heapscape_pool_recommended_initial_capacity_bytes` | gauge | bytes | median length returned within the window, rounded up to a fine bucket |
//! | `heapscape_pool_recommended_max_idle_buffers` | gauge | count | peak held over the window plus an eighth (at least one) |
//! | `heapscape_pool_recommended_max_idle_bytes` | gauge | bytes | recommended max idle buffers times the recommended max buffer size |
//! | `heapscape_pool_candidate_max_buffer_size_bytes{candidate}` | gauge | bytes | the max in force (`current`), the recommended max (`recommended`) and its fine-bucket neighbours (`lower`, `higher`) |
//! | `heapscape_pool_candidate_over_max_ratio{candidate}` | gauge | count | share (0..1) of the window's returns longer than the candidate: each would regrow |
//! | `heapscape_pool_candidate_regrow_bytes_per_second{candidate}` | gauge | bytes | bytes per second those returns copy regrowing by doubling from the candidate (shrink) or the initial capacity (drop) |
//! | `heapscape_pool_candidate_idle_bound_bytes{candidate}` | gauge | bytes | the most idle memory the candidate allows: min(max idle buffers, peak held) times the candidate, capped by max idle bytes |
//! | `heapscape_pool_auto_tune_enabled` | gauge | count | 1 while the pool follows its own recommendations (`auto_tune.enabled`), else 0 |
//! | `heapscape_pool_auto_tune_moves_total{setting}` | counter | count | changes auto-tuning made, by setting: `max_buffer_size`, `initial_capacity`, `max_idle_buffers`, `max_idle_bytes` |
//! | `heapscape_pool_auto_tune_target_max_buffer_size_bytes` | gauge | bytes | where auto-tuning takes the max buffer size: the recommendation within the bounds (the value in force while off) |
//! | `heapscape_pool_auto_tune_target_initial_capacity_bytes` | gauge | bytes | where auto-tuning takes the initial capacity: the recommended median, at most the max buffer size |
//! | `heapscape_pool_auto_tune_target_max_idle_buffers` | gauge | count | where auto-tuning takes max idle buffers: the recommendation, at most the configured value |
//! | `heapscape_pool_auto_tune_target_max_idle_bytes` | gauge | bytes | where auto-tuning takes max idle bytes: target idle buffers times the max buffer size, at most the configured value |
//! | `heapscape_pool_auto_tune_lowest_max_buffer_size_bytes` | gauge | bytes | the lowest max buffer size auto-tuning may set |
//! | `heapscape_pool_auto_tune_highest_max_buffer_size_bytes` | gauge | bytes | the highest max buffer size auto-tuning may set (`auto_tune.highest_max_buffer_size`, or max idle bytes when lower) |
//! | `heapscape_pool_returned_length_bytes` | histogram | bytes | returned lengths since start, empty ones left out, in the fine buckets ([`LENGTH_BUCKETS`]) |
//! | `heapscape_pool_returned_capacity_bytes` | histogram | bytes | returned capacities, power-of-two buckets |
//!
//! Histograms need explicit buckets in a Prometheus exporter (for each name in
//! [`HISTOGRAM_METRICS`], its bounds), or they render as summaries. The fraction of returns a
//! candidate max would discard is then a PromQL query over the `_bucket` series, fleet-wide.
//!
//! # Features
//!
//! - `bytes` (default): [`PooledBuf::into_bytes`], a zero-copy hand-off as `bytes::Bytes`.
//!
//! [`OverMaxPolicy::Shrink`]: config::OverMaxPolicy::Shrink
//! [`OverMaxPolicy::Drop`]: config::OverMaxPolicy::Drop
//! [`default_min_returns`]: config::default_min_returns
//! [`FineSizeHistogram`]: stats::FineSizeHistogram
//! [`LENGTH_BUCKETS`]: metrics::LENGTH_BUCKETS
//! [`HISTOGRAM_METRICS`]: metrics::HISTOGRAM_METRICS
//! [`describe_metrics`]: metrics::describe_metrics

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod builder;
mod cache;
mod candidate;
pub mod catalog;
pub mod config;
mod depot;
mod discards;
mod error;
mod guard;
mod histogram;
pub mod metrics;
mod pool;
mod publish;
mod shard;
pub mod stats;
mod sync;
mod tuner;
mod window;

pub use builder::PoolBuilder;
// The two types every user of a pool writes (`Pool::config`, `Pool::stats`), also at the root;
// the rest of their modules is reached through them.
pub use config::PoolConfig;
pub use error::PoolError;
pub use guard::{OwnedPooledBuf, PooledBuf};
pub use pool::Pool;
pub use stats::PoolStats;
