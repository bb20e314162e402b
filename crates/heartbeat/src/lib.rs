//! Samples jemalloc's heap statistics on a timer and publishes them through the `metrics` facade.
//!
//! # Overview
//!
//! A [`Heartbeat`] ticks every 10 s by default. Each tick, off the async worker threads:
//!
//! 1. advances jemalloc's epoch (through MIB handles looked up once) and reads `allocated`,
//!    `active`, `resident`, `mapped`, `metadata`, `retained` and the cumulative small and large
//!    request counts, plus the process's resident set size and page faults: a [`HeapStats`];
//! 2. publishes them as gauges, and the cumulative values as counters by delta (StatsD ignores
//!    absolute counters), see the [metric table](metrics::CATALOG);
//! 3. publishes every registered [`Pool`](heapscape_pool::Pool) (`pool.publish()`) and trims
//!    its idle buffers (`pool.trim()`);
//! 4. observes itself: tick duration histogram, last-success timestamp, `up` gauge.
//!
//! The minor page fault rate is the cost of churn a Rust service actually pays: memory jemalloc
//! returned to the OS and the program then touched again. With the `counting` feature,
//! `CountingJemalloc` adds the allocation *rate* (bytes and allocations per second) that Go
//! dashboards plot.
//!
//! The heartbeat runs as a tokio task ([`Heartbeat::spawn`], feature `tokio`, on by default)
//! or on a plain thread ([`Heartbeat::spawn_thread`]). Its interval and pools can be changed
//! while it runs, and [`HeartbeatHandle::stop`] ends it with a final sample. The library never
//! installs a recorder: call [`describe_metrics`] after installing yours.
//!
//! The jemalloc statistics need jemalloc as the global allocator. The heartbeat checks once
//! ([`Allocator::detect`]), logs what it found and exports it as `heapscape_allocator_info`;
//! under another allocator (the system allocator, mimalloc) it keeps publishing the process's
//! resident memory, page faults and every pool, and leaves the `heapscape_jemalloc_*` metrics
//! out. [`HeapStats::sample`] on its own fails with [`HeartbeatError::NotGlobalAllocator`]
//! there.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use heapscape_heartbeat::{HeapStats, Heartbeat};
//!
//! #[global_allocator]
//! static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
//!
//! # fn main() -> Result<(), heapscape_heartbeat::HeartbeatError> {
//! // Once, after installing a metrics recorder:
//! heapscape_heartbeat::describe_metrics();
//!
//! let pool = heapscape_pool::Pool::builder("pcm").build().expect("valid pool");
//! let heartbeat = Heartbeat::builder()
//!     .interval(Duration::from_secs(10))
//!     .pool(pool)
//!     .build();
//! let handle = heartbeat.spawn_thread()?; // or `heartbeat.spawn()` inside a tokio runtime
//!
//! handle.set_interval(Duration::from_secs(5)); // live, from the next tick
//!
//! // A one-off snapshot, independent of the heartbeat:
//! let stats = HeapStats::sample()?;
//! assert!(stats.allocated <= stats.active);
//!
//! handle.stop(); // final sample and publish, then returns
//! assert!(handle.ticks() >= 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `jemalloc` (default): jemalloc's statistics ([`HeapStats::sample`], the
//!   `heapscape_jemalloc_*` metrics) and settings ([`decay`]) through `tikv-jemalloc-ctl`,
//!   which compiles and links jemalloc. Without it, for a program on another allocator,
//!   nothing of jemalloc is built: the heartbeat publishes the process's memory, page faults
//!   and pools, [`Allocator::detect`] answers [`Allocator::Other`] and logs why, and
//!   [`HeapStats::sample`] and [`decay`] fail with a message naming the feature.
//! - `tokio` (default): [`Heartbeat::spawn`] and [`HeartbeatHandle::shutdown`]; without it
//!   the heartbeat runs on its own thread ([`Heartbeat::spawn_thread`]).
//! - `counting` (implies `jemalloc`): `CountingJemalloc` (a global allocator) and the
//!   `heapscape_alloc_*_total` metrics.
//! - `profiling` (implies `jemalloc` and `tokio`): jemalloc built with its sampling profiler, and the `profile` module:
//!   sampling on and off at run time, heap dumps as pprof or as a flame graph.
//!
//! # Cost
//!
//! One tick (epoch advance, reads, publication into a `DebuggingRecorder`, no pools) has a
//! median of 11 µs on an idle process and 36 µs while another thread allocates in a loop, on a
//! shared 2-core x86-64 machine (`cargo bench -p heapscape-heartbeat --bench sample`). The
//! epoch advance takes every arena's lock, hence the cost under load and the rule to keep it
//! off async workers.

#![deny(missing_docs)]

mod allocator;
#[cfg(feature = "counting")]
mod counting;
pub mod decay;
mod error;
mod heartbeat;
pub mod metrics;
#[cfg(feature = "profiling")]
pub mod profile;
mod publish;
mod stats;
mod sync;

pub use allocator::Allocator;
#[cfg(feature = "counting")]
pub use counting::{AllocationTotals, CountingJemalloc};
pub use error::HeartbeatError;
pub use heapscape_pool::catalog::{MetricDef, MetricKind};
pub use heartbeat::{
    DEFAULT_INTERVAL, Heartbeat, HeartbeatBuilder, HeartbeatHandle, MAX_INTERVAL, MIN_INTERVAL,
};
pub use metrics::{SAMPLE_DURATION_BUCKETS, describe_metrics};
pub use stats::HeapStats;

#[cfg(all(test, feature = "counting"))]
#[global_allocator]
static GLOBAL: CountingJemalloc = CountingJemalloc;

#[cfg(all(test, feature = "jemalloc", not(feature = "counting")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
