//! Per-thread counters: written by one thread without read-modify-write instructions, summed
//! by whoever reads the stats.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::stats::{DiscardReason, SIZE_BUCKETS, SizeHistogram};

/// One thread's counters for one pool (or the shared counters of the slow path).
///
/// Invariant: a shard is written either by its owning thread only, through the `bump_*`
/// methods (a plain load and store, no lock prefix), or only under the pool's depot lock
/// (the shared shard) — never both. Readers may see a slightly stale value, never a torn
/// one, and never lose an increment.
///
/// Aligned (and so padded) to 128 bytes, the unit of the adjacent-line prefetcher, so that
/// two threads' shards never share a cache line whatever the allocator puts next to them.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Shard {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) detaches: AtomicU64,
    pub(crate) shrinks: AtomicU64,
    pub(crate) discards: [AtomicU64; 4],
    pub(crate) lengths: [AtomicU64; SIZE_BUCKETS],
    pub(crate) capacities: [AtomicU64; SIZE_BUCKETS],
    /// Capacity of the buffer in the owner's private slot (0 when empty).
    pub(crate) slot_bytes: AtomicU64,
}

/// Adds one to a counter that only the calling thread writes.
#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    // Relaxed: only this thread writes the counter, so load+store cannot lose an increment;
    // readers only need an eventually visible, untorn value.
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

impl Shard {
    pub(crate) fn new() -> Self {
        Self {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            detaches: AtomicU64::new(0),
            shrinks: AtomicU64::new(0),
            discards: Default::default(),
            lengths: std::array::from_fn(|_| AtomicU64::new(0)),
            capacities: std::array::from_fn(|_| AtomicU64::new(0)),
            slot_bytes: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn discard(&self, reason: DiscardReason) {
        bump(&self.discards[reason.index()]);
    }

    /// Adds this shard's counts to `totals`.
    pub(crate) fn add_to(&self, totals: &mut Counts) {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        totals.hits += load(&self.hits);
        totals.misses += load(&self.misses);
        totals.detaches += load(&self.detaches);
        totals.shrinks += load(&self.shrinks);
        for (total, c) in totals.discards.iter_mut().zip(&self.discards) {
            *total += load(c);
        }
        for (i, (len, cap)) in self.lengths.iter().zip(&self.capacities).enumerate() {
            totals.lengths.add_bucket(i, load(len));
            totals.capacities.add_bucket(i, load(cap));
        }
        let slot = load(&self.slot_bytes);
        totals.idle_bytes += slot;
        totals.idle_buffers += u64::from(slot > 0);
    }
}

/// Summed counters (and the idle buffers in private slots).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) detaches: u64,
    pub(crate) shrinks: u64,
    pub(crate) discards: [u64; 4],
    pub(crate) lengths: SizeHistogram,
    pub(crate) capacities: SizeHistogram,
    pub(crate) idle_buffers: u64,
    pub(crate) idle_bytes: u64,
}
