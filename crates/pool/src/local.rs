//! The per-thread front cache: one private slot per (thread, pool), touched only by its thread.
//!
//! This is what makes `get` + drop cost a few nanoseconds: the common case (a thread returns
//! the buffer it took, then takes it again) runs without a lock and without any atomic
//! read-modify-write. Everything else goes through the pool's shared depot under its lock.

use std::cell::RefCell;
use std::mem;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use crate::OverMaxPolicy;
use crate::pool::{Fit, Shared};
use crate::shard::{Shard, bump};
use crate::stats::{DiscardReason, bucket_of};

thread_local! {
    static CACHES: RefCell<Vec<LocalCache>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's cache for `shared`, registering one on first use.
///
/// Returns `None` when the thread's caches are unavailable (the thread is being torn down,
/// or re-entered from inside a cache operation): callers then take the shared slow path.
#[inline]
pub(crate) fn with_local<R>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&mut LocalCache) -> R,
) -> Option<R> {
    CACHES
        .try_with(|caches| {
            let mut caches = caches.try_borrow_mut().ok()?;
            let index = match caches.iter().position(|c| c.pool_id == shared.id) {
                Some(index) => index,
                None => register(&mut caches, shared),
            };
            Some(f(&mut caches[index]))
        })
        .ok()
        .flatten()
}

#[cold]
fn register(caches: &mut Vec<LocalCache>, shared: &Arc<Shared>) -> usize {
    // Caches of dropped pools are released here rather than on every access.
    caches.retain(|c| c.pool.strong_count() > 0);
    let shard = Arc::new(Shard::new());
    shared.register_shard(Arc::clone(&shard));
    caches.push(LocalCache {
        pool_id: shared.id,
        pool: Arc::downgrade(shared),
        shard,
        slot: Vec::new(),
        reserved: 0,
        generation: u64::MAX,
        max_buffer_size: 0,
        initial_capacity: 0,
        over_max: OverMaxPolicy::Shrink,
    });
    caches.len() - 1
}

/// One thread's cache for one pool.
///
/// Invariants: `slot` has capacity 0 (empty) or holds an idle buffer of capacity
/// `<= reserved`; `reserved > 0` means this thread holds `reserved` bytes and one buffer of
/// the pool's idle budget (see `Depot::reserve`); `shard.slot_bytes == slot.capacity()`.
#[derive(Debug)]
pub(crate) struct LocalCache {
    pool_id: u64,
    pool: Weak<Shared>,
    pub(crate) shard: Arc<Shard>,
    slot: Vec<u8>,
    reserved: usize,
    /// The config generation the copies below were read at (`u64::MAX`: never).
    generation: u64,
    max_buffer_size: usize,
    pub(crate) initial_capacity: usize,
    over_max: OverMaxPolicy,
}

impl LocalCache {
    /// Takes an idle buffer, or `None` on a miss (counted).
    #[inline]
    pub(crate) fn take(&mut self, shared: &Shared) -> Option<Vec<u8>> {
        self.refresh_if_stale(shared);
        if self.slot.capacity() != 0 {
            bump(&self.shard.hits);
            self.shard.slot_bytes.store(0, Ordering::Relaxed);
            return Some(mem::take(&mut self.slot));
        }
        self.take_from_depot(shared)
    }

    #[cold]
    fn take_from_depot(&mut self, shared: &Shared) -> Option<Vec<u8>> {
        let mut depot = shared.lock_depot();
        // The buffer this thread last took went elsewhere: hand its reservation back so
        // other threads can keep buffers under the caps.
        depot.release(&mut self.reserved);
        let buf = depot.pop();
        drop(depot);
        bump(if buf.is_some() {
            &self.shard.hits
        } else {
            &self.shard.misses
        });
        buf
    }

    /// Takes back a buffer (any length; it is cleared here).
    #[inline]
    pub(crate) fn put(&mut self, shared: &Shared, mut buf: Vec<u8>) {
        bump(&self.shard.lengths[bucket_of(buf.len())]);
        bump(&self.shard.capacities[bucket_of(buf.capacity())]);
        buf.clear();
        self.refresh_if_stale(shared);
        self.keep(shared, buf);
    }

    /// Applies the return policy to an empty buffer.
    #[inline]
    fn keep(&mut self, shared: &Shared, mut buf: Vec<u8>) {
        match self.over_max.apply(&mut buf, self.max_buffer_size) {
            Fit::Fits => {}
            Fit::Shrunk => bump(&self.shard.shrinks),
            Fit::Drop => return self.shard.discard(DiscardReason::OverMax),
        }
        let capacity = buf.capacity();
        if capacity == 0 {
            return;
        }
        if self.slot.capacity() == 0 && capacity <= self.reserved {
            self.shard
                .slot_bytes
                .store(capacity as u64, Ordering::Relaxed);
            self.slot = buf;
            return;
        }
        self.keep_slow(shared, buf);
    }

    #[cold]
    fn keep_slow(&mut self, shared: &Shared, buf: Vec<u8>) {
        let capacity = buf.capacity();
        let mut depot = shared.lock_depot();
        let kept = if self.slot.capacity() == 0 {
            match depot.reserve(&mut self.reserved, capacity) {
                Ok(()) => {
                    self.shard
                        .slot_bytes
                        .store(capacity as u64, Ordering::Relaxed);
                    self.slot = buf;
                    Ok(())
                }
                Err(reason) => Err((reason, buf)),
            }
        } else {
            depot.push(buf)
        };
        drop(depot);
        if let Err((reason, buf)) = kept {
            self.shard.discard(reason);
            drop(buf);
        }
    }

    #[inline]
    fn refresh_if_stale(&mut self, shared: &Shared) {
        // Acquire pairs with the Release bump in `Pool::reconfigure`; the config itself is
        // then read under the depot lock.
        if self.generation != shared.generation.load(Ordering::Acquire) {
            self.refresh(shared);
        }
    }

    /// Re-reads the config and re-applies the return policy to the slot's buffer, so lowered
    /// caps reach this thread's idle buffer at its next get or put.
    #[cold]
    fn refresh(&mut self, shared: &Shared) {
        let mut depot = shared.lock_depot();
        self.generation = shared.generation.load(Ordering::Relaxed);
        let config = depot.config();
        self.max_buffer_size = config.max_buffer_size;
        self.initial_capacity = config.initial_capacity;
        self.over_max = config.over_max;
        depot.release(&mut self.reserved);
        drop(depot);
        let idle = mem::take(&mut self.slot);
        self.shard.slot_bytes.store(0, Ordering::Relaxed);
        if idle.capacity() != 0 {
            self.keep(shared, idle);
        }
    }
}

impl Drop for LocalCache {
    /// On thread exit the private buffer moves to the shared depot (if the caps allow).
    fn drop(&mut self) {
        let idle = mem::take(&mut self.slot);
        self.shard.slot_bytes.store(0, Ordering::Relaxed);
        let Some(shared) = self.pool.upgrade() else {
            return;
        };
        let mut depot = shared.lock_depot();
        depot.release(&mut self.reserved);
        if idle.capacity() != 0
            && let Err((reason, idle)) = depot.push(idle)
        {
            self.shard.discard(reason);
            drop(depot);
            drop(idle);
        }
    }
}
