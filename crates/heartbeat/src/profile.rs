//! Heap profiles (feature `profiling`): jemalloc's sampling profiler, switched on and off while
//! the process runs, and the heap it holds dumped as pprof or as a flame graph.
//!
//! jemalloc only builds the profiler's bookkeeping when it reads `prof:true` at startup, from
//! the `_rjem_malloc_conf` symbol of the binary (or the `_RJEM_MALLOC_CONF` environment
//! variable). [`MALLOC_CONF`] is the value to export; it leaves sampling inactive, so a binary
//! built with it samples nothing until [`set_sampling`] turns `prof.active` on.

use std::sync::Arc;
use std::time::Duration;

use tikv_jemalloc_ctl::raw;
use tokio::time::Instant;

use crate::HeartbeatError;

/// What the binary exports as `_rjem_malloc_conf`: the profiler built in (`prof:true`),
/// sampling off until [`set_sampling`] turns it on, one sample per 512 KiB on average.
///
/// ```ignore
/// #[unsafe(export_name = "_rjem_malloc_conf")]
/// static MALLOC_CONF: &[u8] = heapscape_heartbeat::profile::MALLOC_CONF;
/// ```
///
/// jemalloc reads the symbol as a `const char *`: the slice's first word, its pointer.
pub const MALLOC_CONF: &[u8] = b"prof:true,prof_active:false,lg_prof_sample:19\0";

/// The average number of bytes allocated between two samples when nothing else is set: 512 KiB,
/// jemalloc's own default (`lg_prof_sample:19`).
pub const DEFAULT_SAMPLE_RATE: usize = 1 << 19;

/// What a dump is rendered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProfileFormat {
    /// A gzipped pprof protobuf (`Profile` of `google/pprof/proto/profile.proto`) with one
    /// sample type, `inuse_space` in bytes, as `go tool pprof` reads it.
    Pprof,
    /// An interactive SVG flame graph of the same in-use bytes.
    FlameGraph,
}

/// Whether jemalloc was started with its profiler (`opt.prof`): the binary exported
/// [`MALLOC_CONF`] (or `_RJEM_MALLOC_CONF` set `prof:true`).
#[must_use]
pub fn profiler_enabled() -> bool {
    // SAFETY: `opt.prof` is a readable bool (jemalloc(3)); jemalloc built with the profiler
    // (this feature) always has the key.
    unsafe { raw::read::<bool>(b"opt.prof\0") }.unwrap_or(false)
}

/// Whether allocations are being sampled now (`prof.active`).
#[must_use]
pub fn sampling() -> bool {
    // SAFETY: `prof.active` is a readable bool (jemalloc(3)); it is absent (an error, read as
    // `false`) when the profiler was not enabled at startup.
    profiler_enabled() && unsafe { raw::read::<bool>(b"prof.active\0") }.unwrap_or(false)
}

/// Turns sampling on or off, with one sample per `sample_rate` bytes allocated on average.
///
/// A new rate resets the profile (`prof.reset`): what was sampled before is forgotten, and
/// only allocations made from then on appear in dumps. Allocations made while sampling is off
/// never appear.
///
/// # Errors
///
/// [`HeartbeatError::ProfilerNotEnabled`] when the binary did not start jemalloc with
/// `prof:true`; [`HeartbeatError::Mallctl`] if jemalloc refuses a write.
///
/// # Panics
///
/// If `sample_rate` is not a power of two (the config's validation rejects those).
pub fn set_sampling(active: bool, sample_rate: usize) -> Result<(), HeartbeatError> {
    assert!(
        sample_rate.is_power_of_two(),
        "the sample rate is a power of two"
    );
    if !profiler_enabled() {
        return Err(HeartbeatError::ProfilerNotEnabled);
    }
    let lg_sample = sample_rate.trailing_zeros() as usize;
    // SAFETY: `prof.lg_sample` is a readable size_t (jemalloc(3)), present since `opt.prof`
    // is true.
    let current = unsafe { raw::read::<usize>(b"prof.lg_sample\0") }
        .map_err(HeartbeatError::mallctl("prof.lg_sample"))?;
    if current != lg_sample {
        // SAFETY: `prof.reset` is a writable size_t, the new lg_sample (jemalloc(3)).
        unsafe { raw::write(b"prof.reset\0", lg_sample) }
            .map_err(HeartbeatError::mallctl("prof.reset"))?;
    }
    // SAFETY: `prof.active` is a writable bool (jemalloc(3)).
    unsafe { raw::write(b"prof.active\0", active) }.map_err(HeartbeatError::mallctl("prof.active"))
}

/// Dumps the sampled heap that is still allocated, symbolized in this process.
///
/// Dumps run one at a time: a call waits its turn, and gives up when `budget` has passed
/// before its own dump has finished. The dump runs on tokio's blocking pool; a dump that
/// outlives its caller's budget still finishes, and holds the turn until it does, so two never
/// run at once. Memory is one dump's worth: a record per distinct sampled stack, which the
/// sample rate bounds (on average one sampled allocation per `sample_rate` bytes in use).
///
/// # Errors
///
/// [`HeartbeatError::ProfilerNotEnabled`], [`HeartbeatError::SamplingOff`] when sampling is
/// off, [`HeartbeatError::ProfileBusy`] when `budget` ran out, and
/// [`HeartbeatError::ProfileDump`] when jemalloc cannot write its dump (e.g. the temporary
/// directory is not writable) or it cannot be converted.
pub async fn dump(format: ProfileFormat, budget: Duration) -> Result<Vec<u8>, HeartbeatError> {
    let deadline = Instant::now() + budget;
    let ctl = jemalloc_pprof::PROF_CTL
        .as_ref()
        .ok_or(HeartbeatError::ProfilerNotEnabled)?;
    if !sampling() {
        return Err(HeartbeatError::SamplingOff);
    }
    let busy = || HeartbeatError::ProfileBusy { budget };
    let turn = tokio::time::timeout_at(deadline, Arc::clone(ctl).lock_owned())
        .await
        .map_err(|_| busy())?;
    let dumping = tokio::task::spawn_blocking(move || {
        let mut ctl = turn;
        match format {
            ProfileFormat::Pprof => ctl.dump_pprof(),
            ProfileFormat::FlameGraph => ctl.dump_flamegraph(),
        }
    });
    match tokio::time::timeout_at(deadline, dumping).await {
        Err(_) => Err(busy()),
        Ok(Err(join)) => Err(HeartbeatError::ProfileDump(join.to_string())),
        Ok(Ok(dumped)) => dumped.map_err(|error| HeartbeatError::ProfileDump(format!("{error:#}"))),
    }
}
