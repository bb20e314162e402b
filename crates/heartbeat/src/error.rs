//! The crate's one error type.

use std::io;

/// Everything that can go wrong while sampling or running the heartbeat.
///
/// Every message says what to do about it. A failed sample never stops a running heartbeat: the
/// tick sets `heapscape_heartbeat_up` to 0, keeps the error for
/// [`HeartbeatHandle::last_error`](crate::HeartbeatHandle::last_error) and tries again on the
/// next tick.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeartbeatError {
    /// A jemalloc `mallctl` call (name lookup, epoch advance or read) failed.
    #[cfg(feature = "jemalloc")]
    #[error(
        "jemalloc mallctl `{name}` failed: {source}; is tikv-jemalloc-ctl built with its `stats` \
         feature and on the same version as tikv-jemallocator?"
    )]
    Mallctl {
        /// The mallctl name, e.g. `stats.allocated`.
        name: &'static str,
        /// The error jemalloc returned.
        #[source]
        source: tikv_jemalloc_ctl::Error,
    },

    /// jemalloc is linked into the program but allocations do not go through it, so its
    /// statistics would describe an empty heap. Only [`HeapStats::sample`](crate::HeapStats::sample)
    /// returns it: a heartbeat publishes the process's values instead.
    #[error(
        "jemalloc is not the global allocator, so its statistics miss this program's heap; is \
         jemalloc the global allocator? Add `#[global_allocator] static GLOBAL: \
         tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;` to the binary (or use \
         heapscape_heartbeat::CountingJemalloc with the `counting` feature)"
    )]
    NotGlobalAllocator,

    /// The crate was built without its `jemalloc` feature, so jemalloc's statistics and
    /// settings cannot be read or written. A heartbeat publishes the process's values and the
    /// pools instead; only [`HeapStats::sample`](crate::HeapStats::sample) and the
    /// [`decay`](crate::decay) calls return it.
    #[cfg(not(feature = "jemalloc"))]
    #[error(
        "heapscape-heartbeat was built without its `jemalloc` feature, so jemalloc's statistics \
         and settings are out of reach; for them, keep the default features of \
         heapscape-heartbeat (or heapscape) or enable `jemalloc`, and make jemalloc the global \
         allocator"
    )]
    JemallocDisabled,

    /// Reading process statistics (`getrusage`, `/proc/self/statm`) failed.
    #[error("reading process statistics from {what} failed: {source}; is /proc mounted?")]
    Process {
        /// Where the value was read from.
        what: &'static str,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },

    /// The operating system refused to start the heartbeat's thread.
    #[error(
        "could not start the heartbeat thread: {0}; check the process's thread limit (ulimit -u)"
    )]
    SpawnThread(#[source] io::Error),

    /// jemalloc was not started with its profiler (`opt.prof` is false).
    #[cfg(feature = "profiling")]
    #[error(
        "jemalloc's heap profiler was not enabled at startup: export \
         `#[unsafe(export_name = \"_rjem_malloc_conf\")] static MALLOC_CONF: &[u8] = \
         heapscape_heartbeat::profile::MALLOC_CONF;` from the binary (or start it with \
         _RJEM_MALLOC_CONF=prof:true,prof_active:false)"
    )]
    ProfilerNotEnabled,

    /// A heap profile was asked for while sampling is off.
    #[cfg(feature = "profiling")]
    #[error(
        "heap profiling is off: turn sampling on (config `profiling: {{ enabled: true }}`) and let the heap build up first"
    )]
    SamplingOff,

    /// Another heap dump held the turn, or this one took longer than its budget.
    #[cfg(feature = "profiling")]
    #[error(
        "no heap dump could be made within {budget:?}: another dump was running; try again later"
    )]
    ProfileBusy {
        /// How long the caller was willing to wait for its dump.
        budget: std::time::Duration,
    },

    /// jemalloc's dump could not be written, read or converted.
    #[cfg(feature = "profiling")]
    #[error(
        "the heap dump failed: {0}; jemalloc writes it to the temporary directory (TMPDIR), which must be writable"
    )]
    ProfileDump(String),
}

#[cfg(feature = "jemalloc")]
impl HeartbeatError {
    pub(crate) fn mallctl(name: &'static str) -> impl FnOnce(tikv_jemalloc_ctl::Error) -> Self {
        move |source| Self::Mallctl { name, source }
    }
}
