//! Per-thread counters: written by one thread without read-modify-write instructions, summed
//! by whoever reads the stats, and folded into retired totals once their thread has exited.

use crate::discards::DiscardReason;
use crate::histogram::{
    FINE_BUCKETS, FineSizeHistogram, SIZE_BUCKETS, SizeHistogram, bucket_of, fine_bucket_of,
};
use crate::sync::{Arc, AtomicU64, Mutex, Ordering, fence, lock};

/// One thread's counters for one pool (or the shared counters of the slow path).
///
/// Invariant: a shard is written either by its owning thread only, through [`bump`] (a
/// plain load and store, no lock prefix), or only under the pool's depot lock (the shared
/// shard) — never both. Readers may see a slightly stale value, never a torn one, and never
/// lose an increment.
///
/// Aligned (and so padded) to 128 bytes, the unit of the adjacent-line prefetcher, so that
/// two threads' shards never share a cache line whatever the allocator puts next to them.
#[repr(align(128))]
pub(crate) struct Shard {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) detaches: AtomicU64,
    pub(crate) donations: AtomicU64,
    pub(crate) shrinks: AtomicU64,
    /// Returns whose buffer came back with more capacity than it was lent with.
    regrows: AtomicU64,
    discards: [AtomicU64; DiscardReason::ALL.len()],
    /// In fine buckets: the recommendations are read from the lengths.
    lengths: [AtomicU64; FINE_BUCKETS],
    capacities: [AtomicU64; SIZE_BUCKETS],
    /// Capacity of the buffer in the owner's private slot (0 when empty). Written before
    /// any change of the owner's reservation (see `depot::Reservation`), so that under the
    /// depot lock it never exceeds the reservation.
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
        let zero = |_| AtomicU64::new(0);
        Self {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            detaches: AtomicU64::new(0),
            donations: AtomicU64::new(0),
            shrinks: AtomicU64::new(0),
            regrows: AtomicU64::new(0),
            discards: std::array::from_fn(zero),
            lengths: std::array::from_fn(zero),
            capacities: std::array::from_fn(zero),
            slot_bytes: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn discard(&self, reason: DiscardReason) {
        bump(&self.discards[reason.index()]);
    }

    /// Counts a returned buffer's length and capacity, and whether it grew past the
    /// capacity it was `lent` with: the bookkeeping every return path does first, before the
    /// buffer is cleared.
    #[inline]
    pub(crate) fn count_return(&self, len: usize, capacity: usize, lent: usize) {
        bump(&self.lengths[fine_bucket_of(len)]);
        bump(&self.capacities[bucket_of(capacity)]);
        if capacity > lent {
            bump(&self.regrows);
        }
    }

    /// Adds this shard's counts to `totals`.
    fn add_to(&self, totals: &mut Counts) {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        totals.hits += load(&self.hits);
        totals.misses += load(&self.misses);
        totals.detaches += load(&self.detaches);
        totals.donations += load(&self.donations);
        totals.shrinks += load(&self.shrinks);
        totals.regrows += load(&self.regrows);
        for (total, c) in totals.discards.iter_mut().zip(&self.discards) {
            *total += load(c);
        }
        for (i, len) in self.lengths.iter().enumerate() {
            totals.lengths.add_bucket(i, load(len));
        }
        for (i, cap) in self.capacities.iter().enumerate() {
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
    pub(crate) donations: u64,
    pub(crate) shrinks: u64,
    pub(crate) regrows: u64,
    pub(crate) discards: [u64; DiscardReason::ALL.len()],
    pub(crate) lengths: FineSizeHistogram,
    pub(crate) capacities: SizeHistogram,
    pub(crate) idle_buffers: u64,
    pub(crate) idle_bytes: u64,
}

/// The shards of a pool's threads.
#[derive(Default)]
pub(crate) struct Shards {
    inner: Mutex<Registry>,
}

/// Invariant: every shard ever registered is counted exactly once, either in `live` or
/// (once its owner has dropped its handle and can write no more) in `retired`.
#[derive(Default)]
struct Registry {
    live: Vec<Arc<Shard>>,
    retired: Counts,
}

impl Shards {
    /// Registers a new shard and returns its owner's handle.
    pub(crate) fn register(&self) -> Arc<Shard> {
        let shard = Arc::new(Shard::new());
        lock(&self.inner).live.push(Arc::clone(&shard));
        shard
    }

    /// Sums every shard, plus `extra`, folding the shards of exited threads into the retired
    /// totals.
    pub(crate) fn sum(&self, extra: &Shard) -> Counts {
        let mut registry = lock(&self.inner);
        let Registry { live, retired } = &mut *registry;
        live.retain(|shard| {
            if Arc::strong_count(shard) > 1 {
                return true;
            }
            // The owner thread dropped its handle (Release, in Arc's drop); this fence makes
            // its last counter writes visible before they are folded for good.
            fence(Ordering::Acquire);
            shard.add_to(retired);
            false
        });
        let mut totals = *retired;
        for shard in live.iter() {
            shard.add_to(&mut totals);
        }
        extra.add_to(&mut totals);
        totals
    }
}

/// The retire protocol under loom, on the code above: run with
/// `cargo test -p heapscape-pool --features loom --lib loom`.
#[cfg(all(test, feature = "loom"))]
mod loom {
    use super::{Shard, Shards, bump};
    use ::loom::model::Builder;
    use ::loom::thread;

    /// Loom's defaults, except: summing a shard reads its 338 counters, each a step of the
    /// model, so a run takes more steps than loom allows by default; the preemptions are
    /// bounded (unless `LOOM_MAX_PREEMPTIONS` says otherwise) so that the model ends in
    /// seconds; and `f` runs on a model thread with a larger stack than loom's default, which
    /// a summed shard's totals (2.7 KiB, copied several frames deep in an unoptimized build)
    /// overflow.
    fn model(f: impl Fn() + Sync + Send + 'static) {
        let f = std::sync::Arc::new(f);
        let mut builder = Builder::new();
        builder.max_branches = 100_000;
        builder.preemption_bound.get_or_insert(3);
        builder.check(move || {
            let f = std::sync::Arc::clone(&f);
            thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(move || f())
                .expect("a model thread")
                .join()
                .expect("the model body");
        });
    }

    /// A thread counts and exits (drops its handle) while another sums: whatever the
    /// interleaving, the concurrent sum sees no more than was counted, and every count ends
    /// up in the totals exactly once, whether the shard was folded by that sum or a later one.
    #[test]
    fn counts_of_an_exiting_thread_are_folded_exactly_once() {
        model(|| {
            let shards = Shards::default();
            let shared = Shard::new();
            let owner = shards.register();
            let worker = thread::spawn(move || {
                bump(&owner.hits);
                bump(&owner.hits);
                drop(owner);
            });
            assert!(shards.sum(&shared).hits <= 2);
            worker.join().unwrap();
            assert_eq!(shards.sum(&shared).hits, 2);
            assert_eq!(shards.sum(&shared).hits, 2, "folded once, not again");
        });
    }

    /// Two threads register, count and exit while the stats are read: the totals are exact.
    #[test]
    fn concurrent_registrations_and_exits_lose_nothing() {
        model(|| {
            let shards = ::loom::sync::Arc::new(Shards::default());
            let shared = Shard::new();
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let shards = ::loom::sync::Arc::clone(&shards);
                    thread::spawn(move || {
                        let owner = shards.register();
                        bump(&owner.misses);
                    })
                })
                .collect();
            assert!(shards.sum(&shared).misses <= 2);
            for worker in workers {
                worker.join().unwrap();
            }
            assert_eq!(shards.sum(&shared).misses, 2);
        });
    }
}
