//! The per-thread front cache: one private slot per (thread, pool), touched only by its thread.
//!
//! This is what makes `get` + drop cost a few nanoseconds: the common case (a thread returns
//! the buffer it took, then takes it again) runs without a lock and without any atomic
//! read-modify-write. Everything else goes through the pool's shared depot under its lock.

use std::cell::RefCell;
use std::mem::{self, ManuallyDrop};
use std::sync::{Arc, Weak};

use crate::config::OverMaxPolicy;
use crate::depot::{Fit, Reservation, Shared, fit};
use crate::discards::DiscardReason;
use crate::shard::{Shard, bump};
use crate::sync::{self, AtomicU64, Ordering};

thread_local! {
    /// The caches, without drop glue (`ManuallyDrop`): accessing a thread-local that needs
    /// dropping checks, every time, whether its destructor is registered yet, which made the
    /// return path a non-leaf function. `RELEASE_AT_EXIT` empties the caches at thread exit.
    static CACHES: RefCell<ManuallyDrop<Caches>> = const {
        RefCell::new(ManuallyDrop::new(Caches {
            last: 0,
            list: Vec::new(),
        }))
    };
    /// Registered with the first cache of the thread (off the fast paths); its destructor
    /// drops the caches, which hands their buffers to the pools' depots.
    static RELEASE_AT_EXIT: ReleaseAtExit = const { ReleaseAtExit };
}

struct ReleaseAtExit;

impl Drop for ReleaseAtExit {
    fn drop(&mut self) {
        // Taken out first, so that a buffer returned while the caches drop finds none and
        // takes the shared path.
        let caches = CACHES.with(|caches| {
            caches
                .try_borrow_mut()
                .map(|mut caches| mem::take(&mut caches.list))
                .unwrap_or_default()
        });
        drop(caches);
    }
}

/// This thread's caches, one per pool it used, and the index of the one used last (so the
/// common case, one pool used over and over, finds its cache without a search).
struct Caches {
    last: usize,
    list: Vec<LocalCache>,
}

impl Caches {
    /// The cache for `shared` if it is the one used last and its config copy is current.
    #[inline]
    fn current(&mut self, shared: &Shared) -> Option<&mut LocalCache> {
        let local = self.list.get_mut(self.last)?;
        // Acquire pairs with the Release bump in `Shared::reconfigure` (see `refresh_if_stale`).
        (local.is_for(shared) && local.generation == shared.generation.load(Ordering::Acquire))
            .then_some(local)
    }
}

/// The fast path of `get`: takes the buffer in this thread's private slot (a hit, counted).
///
/// Returns an empty, unallocated `Vec` (capacity 0) and counts nothing when the fast path
/// does not apply (no idle buffer in the slot, another pool used last, a config change not
/// yet seen, caches unavailable); the caller then takes the full path.
#[inline]
pub(crate) fn take_fast(shared: &Shared) -> Vec<u8> {
    CACHES
        .try_with(|caches| {
            let Ok(mut caches) = caches.try_borrow_mut() else {
                return Vec::new();
            };
            match caches.current(shared) {
                Some(local) if local.slot.capacity() != 0 => {
                    let (buf, shard) = local.take_slot();
                    bump(&shard.hits);
                    buf
                }
                _ => Vec::new(),
            }
        })
        .unwrap_or_default()
}

/// The fast path of a return: moves `buf` (lent with capacity `lent`) into this thread's
/// empty private slot if it fits without any further decision (within the max buffer size and
/// this thread's reservation), counting it and leaving an empty `Vec` in `buf`.
///
/// Returns `false` without touching `buf` or any counter otherwise; the caller then takes
/// the full path.
#[inline]
fn put_fast(shared: &Shared, buf: &mut Vec<u8>, lent: usize) -> bool {
    CACHES
        .try_with(|caches| {
            let Ok(mut caches) = caches.try_borrow_mut() else {
                return false;
            };
            let Some(local) = caches.current(shared) else {
                return false;
            };
            let capacity = buf.capacity();
            // `capacity - 1 < fast_limit`: not empty, within the max and the reservation.
            if local.slot.capacity() != 0 || capacity.wrapping_sub(1) >= local.fast_limit {
                return false;
            }
            let len = buf.len();
            local.fill_slot(buf).count_return(len, capacity, lent);
            true
        })
        .unwrap_or(false)
}

/// The full `get` path: refreshes a stale config copy, registers this thread's cache,
/// falls back to the depot.
#[cold]
#[inline(never)]
pub(crate) fn take_slow(shared: &Arc<Shared>) -> Vec<u8> {
    with_local(shared, |local| {
        local
            .take(shared)
            .unwrap_or_else(|| Vec::with_capacity(local.miss_capacity))
    })
    .unwrap_or_else(|| shared.take())
}

/// Takes back a buffer lent with capacity `lent` (a donation: its own capacity), leaving an
/// empty `Vec` in its place.
#[inline]
pub(crate) fn give_back(shared: &Arc<Shared>, buf: &mut Vec<u8>, lent: usize) {
    if !put_fast(shared, buf, lent) {
        put_slow(shared, mem::take(buf), lent);
    }
}

/// The full return path.
#[cold]
#[inline(never)]
fn put_slow(shared: &Arc<Shared>, buf: Vec<u8>, lent: usize) {
    let mut pending = Some(buf);
    with_local(shared, |local| {
        if let Some(buf) = pending.take() {
            local.put(shared, buf, lent);
        }
    });
    if let Some(buf) = pending {
        shared.put(buf, lent);
    }
}

/// Counts an event off the get and return paths (a detach, a donation) on this thread's
/// shard, or on the shared one when the thread has no usable cache.
pub(crate) fn count(shared: &Arc<Shared>, counter: fn(&Shard) -> &AtomicU64) {
    if with_local(shared, |local| bump(counter(&local.shard))).is_none() {
        shared.count_shared(counter);
    }
}

/// Runs `f` on this thread's cache for `shared`, registering one on first use.
///
/// Returns `None` when the thread's caches are unavailable (the thread is being torn down,
/// or re-entered from inside a cache operation): callers then take the shared slow path.
#[inline]
fn with_local<R>(shared: &Arc<Shared>, f: impl FnOnce(&mut LocalCache) -> R) -> Option<R> {
    CACHES
        .try_with(|caches| {
            let mut caches = caches.try_borrow_mut().ok()?;
            let Caches { last, list } = &mut **caches;
            if list.get(*last).is_none_or(|c| !c.is_for(shared)) {
                *last = match list.iter().position(|c| c.is_for(shared)) {
                    Some(index) => index,
                    None => register(list, shared)?,
                };
            }
            Some(f(&mut list[*last]))
        })
        .ok()
        .flatten()
}

/// Adds a cache for `shared`, or `None` once the thread is being torn down (a cache made
/// then would never hand its buffer back).
#[cold]
fn register(caches: &mut Vec<LocalCache>, shared: &Arc<Shared>) -> Option<usize> {
    RELEASE_AT_EXIT.try_with(|_| ()).ok()?;
    // Caches of dropped pools are released here rather than on every access.
    caches.retain(|c| c.pool.strong_count() > 0);
    caches.push(LocalCache {
        pool_addr: Arc::as_ptr(shared).addr(),
        pool: Arc::downgrade(shared),
        shard: shared.shards.register(),
        slot: Vec::new(),
        reservation: Reservation::default(),
        fast_limit: 0,
        generation: u64::MAX,
        max_buffer_size: 0,
        miss_capacity: 0,
        over_max: OverMaxPolicy::Shrink,
    });
    Some(caches.len() - 1)
}

/// One thread's cache for one pool.
///
/// Invariants: `slot` has capacity 0 (empty) or holds an idle buffer of capacity
/// `<= reservation.bytes()`; `shard.slot_bytes == slot.capacity()` (both changed only by
/// `fill_slot` and `take_slot`); the slot is emptied before the reservation shrinks.
///
/// Aligned to 128 bytes (a cache-line pair) so that its hot fields never share a line with
/// another thread's data.
#[repr(align(128))]
struct LocalCache {
    /// The address of the pool's shared state: its identity, since `pool` keeps that
    /// allocation from being reused for another pool while this cache exists.
    pool_addr: usize,
    pool: Weak<Shared>,
    shard: sync::Arc<Shard>,
    slot: Vec<u8>,
    /// This thread's share of the pool's idle budget (see `depot::Reservation`).
    reservation: Reservation,
    /// `min(reservation, max_buffer_size)`: a returned buffer of capacity `1..=fast_limit`
    /// goes into the empty slot without further checks. Updated wherever either changes.
    fast_limit: usize,
    /// The config generation the copies below were read at (`u64::MAX`: never).
    generation: u64,
    max_buffer_size: usize,
    /// [`PoolConfig::miss_capacity`](crate::PoolConfig::miss_capacity) of the config copied.
    miss_capacity: usize,
    over_max: OverMaxPolicy,
}

impl LocalCache {
    /// Whether this is the cache for `shared`.
    #[inline]
    fn is_for(&self, shared: &Shared) -> bool {
        self.pool_addr == std::ptr::from_ref(shared).addr()
    }

    /// Moves a buffer, cleared, into the empty slot (within the reservation), leaving the
    /// slot's empty `Vec` in `buf`: a swap, so nothing is dropped.
    ///
    /// Returns the shard for the caller's counting: a counter store could alias `self.shard`
    /// as far as the compiler knows, so reading the field again would reload it.
    #[inline]
    fn fill_slot(&mut self, buf: &mut Vec<u8>) -> &Shard {
        let shard: &Shard = &self.shard;
        shard
            .slot_bytes
            .store(buf.capacity() as u64, Ordering::Relaxed);
        buf.clear();
        mem::swap(&mut self.slot, buf);
        shard
    }

    /// Empties the slot, returning its buffer (capacity 0 if there was none) and, as
    /// `fill_slot` does, the shard.
    #[inline]
    fn take_slot(&mut self) -> (Vec<u8>, &Shard) {
        let shard: &Shard = &self.shard;
        shard.slot_bytes.store(0, Ordering::Relaxed);
        (mem::take(&mut self.slot), shard)
    }

    /// Takes an idle buffer, or `None` on a miss (counted).
    #[inline]
    fn take(&mut self, shared: &Shared) -> Option<Vec<u8>> {
        self.refresh_if_stale(shared);
        if self.slot.capacity() != 0 {
            let (buf, shard) = self.take_slot();
            bump(&shard.hits);
            return Some(buf);
        }
        self.take_from_depot(shared)
    }

    #[cold]
    fn take_from_depot(&mut self, shared: &Shared) -> Option<Vec<u8>> {
        let mut depot = shared.lock_depot();
        // The buffer this thread last took went elsewhere: hand its reservation back so
        // other threads can keep buffers under the caps.
        depot.release(&mut self.reservation);
        let buf = depot.pop();
        drop(depot);
        self.sync_fast_limit();
        bump(if buf.is_some() {
            &self.shard.hits
        } else {
            &self.shard.misses
        });
        buf
    }

    /// Takes back a buffer lent with capacity `lent` (any length; it is cleared here).
    #[inline]
    fn put(&mut self, shared: &Shared, mut buf: Vec<u8>, lent: usize) {
        self.shard.count_return(buf.len(), buf.capacity(), lent);
        buf.clear();
        self.refresh_if_stale(shared);
        if let Err(reason) = self.keep(shared, buf) {
            self.shard.discard(reason);
        }
    }

    /// Applies the return policy to an empty buffer; a buffer it does not keep is freed and
    /// the reason returned.
    #[inline]
    fn keep(&mut self, shared: &Shared, mut buf: Vec<u8>) -> Result<(), DiscardReason> {
        if buf.capacity() > self.max_buffer_size && shared.wants_spare() {
            match shared.keep_spare(buf) {
                Ok(kept) => {
                    if kept == Fit::Shrunk {
                        bump(&self.shard.shrinks);
                    }
                    return Ok(());
                }
                Err(back) => buf = back,
            }
        }
        match fit(&mut buf, self.max_buffer_size, self.over_max) {
            Fit::Fits => {}
            Fit::Shrunk => bump(&self.shard.shrinks),
            Fit::Drop => return Err(DiscardReason::OverMax),
        }
        let capacity = buf.capacity();
        if capacity == 0 {
            return Ok(());
        }
        if self.slot.capacity() == 0 && capacity <= self.reservation.bytes() {
            self.fill_slot(&mut buf);
            return Ok(());
        }
        self.keep_slow(shared, buf)
    }

    #[cold]
    fn keep_slow(&mut self, shared: &Shared, mut buf: Vec<u8>) -> Result<(), DiscardReason> {
        let mut depot = shared.lock_depot();
        let kept = if self.slot.capacity() == 0 {
            match depot.reserve(&mut self.reservation, buf.capacity()) {
                Ok(()) => {
                    self.fill_slot(&mut buf);
                    Ok(())
                }
                Err(reason) => Err((reason, buf)),
            }
        } else {
            depot.push(buf)
        };
        drop(depot);
        self.sync_fast_limit();
        // A rejected buffer is freed here, outside the lock.
        kept.map_err(|(reason, _)| reason)
    }

    fn sync_fast_limit(&mut self) {
        self.fast_limit = self.reservation.bytes().min(self.max_buffer_size);
    }

    #[inline]
    fn refresh_if_stale(&mut self, shared: &Shared) {
        // Acquire pairs with the Release bump in `Shared::reconfigure`; the config itself is
        // then read under the depot lock.
        if self.generation != shared.generation.load(Ordering::Acquire) {
            self.refresh(shared);
        }
    }

    /// Re-reads the config and re-applies the return policy to the slot's buffer, so lowered
    /// caps reach this thread's idle buffer at its next get or put. A buffer the new caps do
    /// not keep is counted as released by the reconfiguration.
    #[cold]
    fn refresh(&mut self, shared: &Shared) {
        let (idle, _) = self.take_slot();
        let mut depot = shared.lock_depot();
        self.generation = shared.generation.load(Ordering::Relaxed);
        let config = depot.config();
        self.max_buffer_size = config.max_buffer_size;
        self.miss_capacity = config.miss_capacity();
        self.over_max = config.over_max;
        depot.release(&mut self.reservation);
        drop(depot);
        self.sync_fast_limit();
        if idle.capacity() != 0 && self.keep(shared, idle).is_err() {
            self.shard.discard(DiscardReason::Reconfigure);
        }
    }
}

impl Drop for LocalCache {
    /// On thread exit the private buffer moves to the shared depot (if the caps allow).
    fn drop(&mut self) {
        let (idle, _) = self.take_slot();
        let Some(shared) = self.pool.upgrade() else {
            return;
        };
        let mut depot = shared.lock_depot();
        depot.release(&mut self.reservation);
        if idle.capacity() != 0
            && let Err((reason, idle)) = depot.push(idle)
        {
            self.shard.discard(reason);
            drop(depot);
            drop(idle);
        }
    }
}
