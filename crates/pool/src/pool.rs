//! The pool: handle, shared depot, guards and live reconfiguration.

use std::fmt;
use std::mem::{self, ManuallyDrop};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::local::{self, with_local};
use crate::shard::{Counts, Shard, bump};
use crate::stats::{DiscardReason, bucket_of};
use crate::{OverMaxPolicy, PoolConfig, PoolError, PoolStats};

/// A named pool of reusable byte buffers.
///
/// Cheap to clone (a shared handle); `Send + Sync`. See the [crate docs](crate) for the
/// design, the return policy and the metrics.
#[derive(Clone)]
pub struct Pool {
    pub(crate) shared: Arc<Shared>,
}

/// State shared by all handles and threads.
pub(crate) struct Shared {
    pub(crate) name: String,
    /// Bumped under the depot lock after each config change, read (on its own cache line,
    /// written only by reconfiguration) on every get and put.
    pub(crate) generation: CachePadded<AtomicU64>,
    /// Copy of `config.max_buffer_size`, written under the depot lock, so that clamping a
    /// capacity hint takes no lock.
    max_buffer_size: AtomicUsize,
    depot: Mutex<Depot>,
    shards: Mutex<Shards>,
    /// Counters of the paths that run without a thread cache; written only under the depot
    /// lock.
    shared_shard: Shard,
    /// Totals last published through the metrics facade.
    pub(crate) published: Mutex<PoolStats>,
}

/// Per-thread shards; shards of exited threads are folded into `retired`.
#[derive(Default)]
struct Shards {
    live: Vec<Arc<Shard>>,
    retired: Counts,
}

/// The shared store of idle buffers and the idle budget.
///
/// Invariants: `idle` is ordered by `since` (oldest first; pushes and pops happen at the
/// end); `idle_bytes` is the sum of their capacities; `idle.len() + reserved_buffers <=
/// config.max_idle_buffers` and `idle_bytes + reserved_bytes <= config.max_idle_bytes` after
/// every push or reservation (a lowered cap is restored by `reconfigure` and each thread's
/// next get or put).
pub(crate) struct Depot {
    config: PoolConfig,
    idle: Vec<Idle>,
    idle_bytes: usize,
    /// Bytes reserved by threads for their private slot.
    reserved_bytes: usize,
    /// Number of threads holding a reservation (each may keep one buffer).
    reserved_buffers: usize,
}

struct Idle {
    buf: Vec<u8>,
    since: Instant,
}

type Rejected = (DiscardReason, Vec<u8>);

impl Depot {
    pub(crate) fn config(&self) -> &PoolConfig {
        &self.config
    }

    pub(crate) fn pop(&mut self) -> Option<Vec<u8>> {
        let Idle { buf, .. } = self.idle.pop()?;
        self.idle_bytes -= buf.capacity();
        Some(buf)
    }

    /// Keeps an empty buffer if the caps allow, else hands it back with the reason.
    pub(crate) fn push(&mut self, buf: Vec<u8>) -> Result<(), Rejected> {
        if self.idle.len() + self.reserved_buffers >= self.config.max_idle_buffers {
            return Err((DiscardReason::IdleBuffersCap, buf));
        }
        if self.idle_bytes + self.reserved_bytes + buf.capacity() > self.config.max_idle_bytes {
            return Err((DiscardReason::IdleBytesCap, buf));
        }
        self.idle_bytes += buf.capacity();
        self.idle.push(Idle {
            buf,
            since: Instant::now(),
        });
        Ok(())
    }

    /// Changes a thread's reservation to `bytes` (and one buffer) if the caps allow. On
    /// failure the reservation is released and the reason returned.
    pub(crate) fn reserve(
        &mut self,
        reserved: &mut usize,
        bytes: usize,
    ) -> Result<(), DiscardReason> {
        let buffers = self.reserved_buffers + usize::from(*reserved == 0);
        let others = self.reserved_bytes - *reserved;
        let result = if self.idle.len() + buffers > self.config.max_idle_buffers {
            Err(DiscardReason::IdleBuffersCap)
        } else if self.idle_bytes + others + bytes > self.config.max_idle_bytes {
            Err(DiscardReason::IdleBytesCap)
        } else {
            self.reserved_buffers = buffers;
            self.reserved_bytes = others + bytes;
            *reserved = bytes;
            return Ok(());
        };
        self.release(reserved);
        result
    }

    /// Gives a thread's reservation back.
    pub(crate) fn release(&mut self, reserved: &mut usize) {
        if *reserved > 0 {
            self.reserved_bytes -= *reserved;
            self.reserved_buffers -= 1;
            *reserved = 0;
        }
    }

    /// Removes idle buffers until the caps in force hold again (oldest first), shrinking
    /// or removing those over the max buffer size; returns what was removed, with reasons.
    fn enforce_caps(&mut self) -> Vec<Rejected> {
        let mut rejected = Vec::new();
        let PoolConfig {
            max_buffer_size,
            max_idle_buffers,
            max_idle_bytes,
            over_max,
            ..
        } = self.config;
        let mut idle_bytes = self.idle_bytes;
        self.idle.retain_mut(|idle| {
            if idle.buf.capacity() <= max_buffer_size {
                return true;
            }
            idle_bytes -= idle.buf.capacity();
            match over_max {
                OverMaxPolicy::Drop => {
                    rejected.push((DiscardReason::OverMax, mem::take(&mut idle.buf)));
                    false
                }
                OverMaxPolicy::Shrink => {
                    idle.buf.shrink_to(max_buffer_size);
                    idle_bytes += idle.buf.capacity();
                    true
                }
            }
        });
        let mut oldest = 0;
        let mut reasons = Vec::new();
        while oldest < self.idle.len() {
            let reason = if self.idle.len() - oldest + self.reserved_buffers > max_idle_buffers {
                DiscardReason::IdleBuffersCap
            } else if idle_bytes + self.reserved_bytes > max_idle_bytes {
                DiscardReason::IdleBytesCap
            } else {
                break;
            };
            idle_bytes -= self.idle[oldest].buf.capacity();
            reasons.push(reason);
            oldest += 1;
        }
        rejected.extend(
            reasons
                .into_iter()
                .zip(self.idle.drain(..oldest))
                .map(|(r, idle)| (r, idle.buf)),
        );
        self.idle_bytes = idle_bytes;
        rejected
    }

    /// Removes buffers idle since before `cutoff`.
    fn expire(&mut self, cutoff: Instant) -> Vec<Vec<u8>> {
        let expired = self.idle.partition_point(|idle| idle.since <= cutoff);
        let expired: Vec<Vec<u8>> = self.idle.drain(..expired).map(|idle| idle.buf).collect();
        self.idle_bytes -= expired.iter().map(Vec::capacity).sum::<usize>();
        expired
    }
}

impl Shared {
    pub(crate) fn lock_depot(&self) -> MutexGuard<'_, Depot> {
        // A panic while holding the lock cannot leave the depot torn: every mutation keeps
        // its invariants between statements that cannot panic.
        self.depot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_shards(&self) -> MutexGuard<'_, Shards> {
        self.shards.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn register_shard(&self, shard: Arc<Shard>) {
        self.lock_shards().live.push(shard);
    }

    /// Counts rejected buffers on the shared shard, then frees them outside the lock.
    fn discard_all(&self, depot: MutexGuard<'_, Depot>, rejected: Vec<Rejected>) {
        for (reason, _) in &rejected {
            self.shared_shard.discard(*reason);
        }
        drop(depot);
        drop(rejected);
    }
}

/// Builds a [`Pool`]; every setting defaults to [`PoolConfig::default`].
#[derive(Debug, Clone)]
#[must_use]
pub struct PoolBuilder {
    name: String,
    config: PoolConfig,
}

impl PoolBuilder {
    /// Capacity of newly allocated buffers, in bytes.
    pub fn initial_capacity(mut self, bytes: usize) -> Self {
        self.config.initial_capacity = bytes;
        self
    }

    /// The largest capacity kept on return (and the clamp for capacity hints), in bytes.
    pub fn max_buffer_size(mut self, bytes: usize) -> Self {
        self.config.max_buffer_size = bytes;
        self
    }

    /// The most idle buffers kept.
    pub fn max_idle_buffers(mut self, count: usize) -> Self {
        self.config.max_idle_buffers = count;
        self
    }

    /// The most bytes idle buffers may hold.
    pub fn max_idle_bytes(mut self, bytes: usize) -> Self {
        self.config.max_idle_bytes = bytes;
        self
    }

    /// How long a buffer may stay idle before [`Pool::trim`] releases it.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// What to do with returned buffers over the max buffer size.
    pub fn over_max(mut self, policy: OverMaxPolicy) -> Self {
        self.config.over_max = policy;
        self
    }

    /// The percentile of returned lengths reported as the recommended max buffer size.
    pub fn recommend_percentile(mut self, percentile: f64) -> Self {
        self.config.recommend_percentile = percentile;
        self
    }

    /// Replaces every setting at once (e.g. from a config file).
    pub fn config(mut self, config: PoolConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds the pool.
    ///
    /// # Errors
    ///
    /// [`PoolError::EmptyName`] for an empty name, and whatever [`PoolConfig::validate`]
    /// reports for the settings.
    pub fn build(self) -> Result<Pool, PoolError> {
        if self.name.is_empty() {
            return Err(PoolError::EmptyName);
        }
        self.config.validate()?;
        Ok(Pool {
            shared: Arc::new(Shared {
                name: self.name,
                generation: CachePadded::new(AtomicU64::new(0)),
                max_buffer_size: AtomicUsize::new(self.config.max_buffer_size),
                depot: Mutex::new(Depot {
                    config: self.config,
                    idle: Vec::new(),
                    idle_bytes: 0,
                    reserved_bytes: 0,
                    reserved_buffers: 0,
                }),
                shards: Mutex::default(),
                shared_shard: Shard::new(),
                published: Mutex::default(),
            }),
        })
    }
}

impl Pool {
    /// Starts building a pool named `name` (the `pool` label of its metrics).
    pub fn builder(name: impl Into<String>) -> PoolBuilder {
        PoolBuilder {
            name: name.into(),
            config: PoolConfig::default(),
        }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Takes an empty buffer: an idle one if there is one (a hit), else a new one of the
    /// initial capacity (a miss). It comes back, cleared, when the guard drops.
    #[inline]
    pub fn get(&self) -> PooledBuf<'_> {
        let mut buf = local::take_fast(&self.shared);
        if buf.capacity() == 0 {
            buf = self.take_slow();
        }
        PooledBuf {
            buf: ManuallyDrop::new(buf),
            pool: self,
        }
    }

    /// The full `get` path: refreshes a stale config copy, registers this thread's cache,
    /// falls back to the depot.
    #[cold]
    #[inline(never)]
    fn take_slow(&self) -> Vec<u8> {
        with_local(&self.shared, |local| {
            local
                .take(&self.shared)
                .unwrap_or_else(|| Vec::with_capacity(local.initial_capacity))
        })
        .unwrap_or_else(|| self.take_shared())
    }

    /// Like [`Pool::get`], with room for at least `hint` bytes, clamped to the max buffer size
    /// (a hint may come from an untrusted client).
    pub fn get_with_capacity(&self, hint: usize) -> PooledBuf<'_> {
        let mut buf = self.get();
        // Relaxed: a hint clamped by a max changed a moment ago is as good as by the new one;
        // the return policy applies the max in force when the buffer comes back.
        let max = self.shared.max_buffer_size.load(Ordering::Relaxed);
        buf.reserve(hint.min(max));
        buf
    }

    /// Gives the pool a buffer allocated elsewhere; it is treated like a returned buffer.
    pub fn donate(&self, mut buf: Vec<u8>) {
        self.put_from(&mut buf);
    }

    /// Takes back a buffer, leaving an empty `Vec` in its place.
    #[inline]
    pub(crate) fn put_from(&self, buf: &mut Vec<u8>) {
        if !local::put_fast(&self.shared, buf) {
            self.put(mem::take(buf));
        }
    }

    /// The full return path.
    #[cold]
    #[inline(never)]
    pub(crate) fn put(&self, buf: Vec<u8>) {
        let mut pending = Some(buf);
        with_local(&self.shared, |local| {
            if let Some(buf) = pending.take() {
                local.put(&self.shared, buf);
            }
        });
        if let Some(buf) = pending {
            self.put_shared(buf);
        }
    }

    /// The return path for threads without a usable cache (e.g. during thread teardown).
    #[cold]
    fn put_shared(&self, mut buf: Vec<u8>) {
        let counters = &self.shared.shared_shard;
        let mut depot = self.shared.lock_depot();
        bump(&counters.lengths[bucket_of(buf.len())]);
        bump(&counters.capacities[bucket_of(buf.capacity())]);
        buf.clear();
        let rejected = match depot
            .config
            .over_max
            .apply(&mut buf, depot.config.max_buffer_size)
        {
            Fit::Shrunk => {
                bump(&counters.shrinks);
                depot.push(buf)
            }
            Fit::Fits => depot.push(buf),
            Fit::Drop => Err((DiscardReason::OverMax, buf)),
        };
        self.shared
            .discard_all(depot, rejected.err().into_iter().collect());
    }
    #[cold]
    fn take_shared(&self) -> Vec<u8> {
        let mut depot = self.shared.lock_depot();
        let counters = &self.shared.shared_shard;
        match depot.pop() {
            Some(buf) => {
                bump(&counters.hits);
                buf
            }
            None => {
                bump(&counters.misses);
                Vec::with_capacity(depot.config.initial_capacity)
            }
        }
    }
}

/// What the over-max policy did to a returned buffer.
pub(crate) enum Fit {
    /// Within the max (or empty): keep as is.
    Fits,
    /// Shrunk to the max: keep.
    Shrunk,
    /// Over the max under [`OverMaxPolicy::Drop`]: discard.
    Drop,
}

impl OverMaxPolicy {
    #[inline]
    pub(crate) fn apply(self, buf: &mut Vec<u8>, max_buffer_size: usize) -> Fit {
        if buf.capacity() <= max_buffer_size {
            return Fit::Fits;
        }
        match self {
            OverMaxPolicy::Drop => Fit::Drop,
            OverMaxPolicy::Shrink => {
                buf.shrink_to(max_buffer_size);
                Fit::Shrunk
            }
        }
    }
}

impl Pool {
    /// The settings in force.
    pub fn config(&self) -> PoolConfig {
        self.shared.lock_depot().config.clone()
    }

    /// Replaces the settings, live, from any thread.
    ///
    /// Idle buffers in the shared depot that break a lowered cap are released (or shrunk)
    /// before this returns; each thread's private buffer is re-checked at that thread's next
    /// `get` or return (see the crate docs, "Per-thread caches").
    ///
    /// # Errors
    ///
    /// Whatever [`PoolConfig::validate`] reports; the settings in force then stay unchanged.
    pub fn reconfigure(&self, config: PoolConfig) -> Result<(), PoolError> {
        config.validate()?;
        let mut depot = self.shared.lock_depot();
        self.shared
            .max_buffer_size
            .store(config.max_buffer_size, Ordering::Relaxed);
        depot.config = config;
        // Release: a thread that sees the new generation then takes the depot lock to read
        // the config, so ordering the bump after the write is enough.
        self.shared.generation.fetch_add(1, Ordering::Release);
        let rejected = depot.enforce_caps();
        self.shared.discard_all(depot, rejected);
        Ok(())
    }

    /// Changes the max buffer size, live (see [`Pool::reconfigure`]).
    ///
    /// # Errors
    ///
    /// As [`PoolConfig::validate`] for the resulting settings, e.g. a max below the initial
    /// capacity.
    pub fn set_max_buffer_size(&self, bytes: usize) -> Result<(), PoolError> {
        let mut config = self.config();
        config.max_buffer_size = bytes;
        self.reconfigure(config)
    }

    /// Releases the idle buffers of the shared depot that have been idle for at least the
    /// idle timeout, and returns how many. Rust has no garbage collector to empty a pool
    /// after a burst: call this periodically (the heartbeat does, every tick).
    pub fn trim(&self) -> usize {
        let mut depot = self.shared.lock_depot();
        let Some(cutoff) = Instant::now().checked_sub(depot.config.idle_timeout) else {
            return 0;
        };
        let expired = depot.expire(cutoff);
        let count = expired.len();
        let rejected = expired
            .into_iter()
            .map(|buf| (DiscardReason::IdleTimeout, buf))
            .collect();
        self.shared.discard_all(depot, rejected);
        count
    }

    /// A snapshot of the counters, gauges and size histograms.
    pub fn stats(&self) -> PoolStats {
        let mut totals = self.shared.counts();
        let depot = self.shared.lock_depot();
        self.shared.shared_shard.add_to(&mut totals);
        totals.idle_buffers += depot.idle.len() as u64;
        totals.idle_bytes += depot.idle_bytes as u64;
        let config = &depot.config;
        PoolStats {
            hits: totals.hits,
            misses: totals.misses,
            returns: totals.lengths.count(),
            detaches: totals.detaches,
            shrinks: totals.shrinks,
            discards: totals.discards,
            idle_buffers: totals.idle_buffers,
            idle_bytes: totals.idle_bytes,
            max_buffer_size: config.max_buffer_size as u64,
            max_idle_bytes: config.max_idle_bytes as u64,
            over_max: config.over_max,
            recommend_percentile: config.recommend_percentile,
            lengths: totals.lengths,
            capacities: totals.capacities,
        }
    }

    pub(crate) fn count_detach(&self) {
        if with_local(&self.shared, |local| bump(&local.shard.detaches)).is_none() {
            let _depot = self.shared.lock_depot();
            bump(&self.shared.shared_shard.detaches);
        }
    }
}

impl Shared {
    /// Sums the per-thread shards, folding those of exited threads into the retired totals.
    fn counts(&self) -> Counts {
        let mut shards = self.lock_shards();
        let Shards { live, retired } = &mut *shards;
        live.retain(|shard| {
            if Arc::strong_count(shard) > 1 {
                return true;
            }
            // The owner thread dropped its handle (Release, in Arc's drop); this fence makes
            // its last counter writes visible before they are folded.
            fence(Ordering::Acquire);
            shard.add_to(retired);
            false
        });
        let mut totals = *retired;
        for shard in live.iter() {
            shard.add_to(&mut totals);
        }
        totals
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.shared.name)
            .field("config", &self.config())
            .finish_non_exhaustive()
    }
}

/// A buffer on loan from a [`Pool`]: derefs to `Vec<u8>` and goes back, cleared, on drop.
///
/// `std::io::Write`, `extend_from_slice` and `tokio::io::AsyncWriteExt` work through the
/// deref (on `&mut Vec<u8>`).
pub struct PooledBuf<'a> {
    /// Never dropped as a field: `Drop` moves it back to the pool and leaves an empty `Vec`
    /// (nothing to free), so dropping a guard runs no second, redundant `Vec` drop.
    buf: ManuallyDrop<Vec<u8>>,
    pool: &'a Pool,
}

impl PooledBuf<'_> {
    /// Takes the buffer out of the pool for good (counted in `PoolStats::detaches`).
    pub fn detach(self) -> Vec<u8> {
        self.pool.count_detach();
        self.into_parts().0
    }

    fn into_parts(self) -> (Vec<u8>, Pool) {
        let mut this = ManuallyDrop::new(self);
        (mem::take(&mut *this.buf), this.pool.clone())
    }

    /// Turns the buffer into [`bytes::Bytes`] without copying; the buffer goes back to the
    /// pool when the last clone of the `Bytes` is dropped (e.g. after an HTTP server has
    /// sent it), on whatever thread that happens.
    #[cfg(feature = "bytes")]
    pub fn into_bytes(self) -> bytes::Bytes {
        let (buf, pool) = self.into_parts();
        bytes::Bytes::from_owner(Returning { buf, pool })
    }
}

impl Deref for PooledBuf<'_> {
    type Target = Vec<u8>;

    #[inline]
    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl DerefMut for PooledBuf<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

impl AsRef<[u8]> for PooledBuf<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl AsMut<[u8]> for PooledBuf<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl fmt::Debug for PooledBuf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBuf")
            .field("pool", &self.pool.name())
            .field("len", &self.buf.len())
            .field("capacity", &self.buf.capacity())
            .finish()
    }
}

impl Drop for PooledBuf<'_> {
    #[inline]
    fn drop(&mut self) {
        self.pool.put_from(&mut self.buf);
    }
}

/// The owner behind a `Bytes` made by [`PooledBuf::into_bytes`].
#[cfg(feature = "bytes")]
struct Returning {
    buf: Vec<u8>,
    pool: Pool,
}

#[cfg(feature = "bytes")]
impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(feature = "bytes")]
impl Drop for Returning {
    fn drop(&mut self) {
        self.pool.put_from(&mut self.buf);
    }
}
