//! The state shared by all handles and threads of a pool: the depot of idle buffers with
//! the idle budget and the caps, the config generation, and the counters' registry.

use std::mem;
use std::time::Instant;

use crossbeam_utils::CachePadded;

use crate::config::OverMaxPolicy;
use crate::discards::{DiscardReason, Discards};
use crate::shard::{Shard, Shards, bump};
use crate::stats::AutoTuneStats;
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering, lock};
use crate::tuner::{TuneMove, Tuner, in_force_after};
use crate::window::{Gauges, Recent, Totals, Window};
use crate::{PoolConfig, PoolError, PoolStats};

/// State shared by all handles and threads.
pub(crate) struct Shared {
    pub(crate) name: String,
    /// Bumped under the depot lock after each config change, read (on its own cache line,
    /// written only by reconfiguration) on every get and put: a thread's copy of the config
    /// is current while its generation equals this.
    pub(crate) generation: CachePadded<AtomicU64>,
    /// Copy of `config.max_buffer_size`, written under the depot lock, so that clamping a
    /// capacity hint takes no lock.
    max_buffer_size: AtomicUsize,
    /// Set by the first `reserve` of a guard that grew past the max: from then on, a buffer
    /// returned over the max may be kept whole as the depot's spare. Never cleared: a pool
    /// whose users grow buffers that way once will again.
    spare_wanted: AtomicBool,
    depot: Mutex<Depot>,
    /// Per-thread counters. Locked only on its own or after the depot lock, never before it.
    pub(crate) shards: Shards,
    /// Counters of the paths that run without a thread cache; written only under the depot
    /// lock.
    shared_shard: Shard,
    /// Totals last published through the metrics facade.
    pub(crate) published: Mutex<PoolStats>,
    /// The recent window of the recommendations. Locked before the depot lock, so that the
    /// totals are folded into it in the order they were summed.
    window: Mutex<Window>,
    /// The config as set and auto-tuning's state. Locked before the window: a tick reads the
    /// stats and reconfigures under it, so a reconfiguration cannot come in between.
    tuning: Mutex<Tuning>,
}

/// The config as set by the builder or [`Pool::reconfigure`](crate::Pool::reconfigure), and
/// the tuner that moves the config in force (the depot's) away from it.
struct Tuning {
    set: PoolConfig,
    tuner: Tuner,
}

/// The shared store of idle buffers and the idle budget.
///
/// Every field is changed only by the methods below, which keep the invariants stated on
/// the fields; a cap lowered by `reconfigure` is restored by [`Depot::enforce_caps`] and by
/// each thread's next get or put (which re-reserves under the new caps).
pub(crate) struct Depot {
    config: PoolConfig,
    /// Ordered by `since`, oldest first (pushes and pops happen at the end). With the
    /// reservations: `idle.len() + reserved_buffers <= config.max_idle_buffers` after every
    /// push or reservation.
    idle: Vec<Idle>,
    /// At most one idle buffer over the max buffer size, of at most
    /// [`Depot::spare_limit`], handed out only to a guard's `reserve` past the max. It is
    /// an idle buffer like the others for the caps: counted in `idle_bytes` and, with
    /// `idle`, against `max_idle_buffers`.
    spare: Option<Idle>,
    /// The sum of the capacities in `idle` and `spare`. With the reservations: `idle_bytes +
    /// reserved_bytes <= config.max_idle_bytes` after every push or reservation.
    idle_bytes: usize,
    /// The sum of the live [`Reservation`]s' bytes.
    reserved_bytes: usize,
    /// Spares released to make room for buffers within the max (`DiscardReason::Spare`):
    /// counted here, under the lock that released them, rather than on a caller's shard.
    spares_released: u64,
    /// The number of live non-empty [`Reservation`]s (each lets its thread keep one buffer).
    reserved_buffers: usize,
}

struct Idle {
    buf: Vec<u8>,
    since: Instant,
}

/// A thread's share of the idle budget, for the one buffer its private slot may hold.
///
/// Only the depot changes it (under its lock), so the depot's `reserved_*` sums stay exact.
/// Its owner must give it back with [`Depot::release`] before dropping it, and must empty
/// its slot (and zero its `Shard::slot_bytes`) before the reservation shrinks, so that a
/// slot never holds more than its reservation.
#[derive(Default)]
pub(crate) struct Reservation {
    bytes: usize,
}

impl Reservation {
    /// The reserved bytes; 0 when nothing is reserved.
    #[inline]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// A buffer the caps would not keep, with the reason.
pub(crate) type Rejected = (DiscardReason, Vec<u8>);

/// What the over-max policy did to a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    /// Within the max (or empty): keep as is.
    Fits,
    /// Shrunk to the max: keep.
    Shrunk,
    /// Over the max under [`OverMaxPolicy::Drop`]: discard.
    Drop,
}

/// Applies the over-max policy to `buf`: the one place that decides what happens to a buffer
/// over the max buffer size, on return and on reconfiguration alike.
#[inline]
pub(crate) fn fit(buf: &mut Vec<u8>, max_buffer_size: usize, policy: OverMaxPolicy) -> Fit {
    if buf.capacity() <= max_buffer_size {
        return Fit::Fits;
    }
    match policy {
        OverMaxPolicy::Drop => Fit::Drop,
        OverMaxPolicy::Shrink => {
            buf.shrink_to(max_buffer_size);
            Fit::Shrunk
        }
    }
}

impl Depot {
    pub(crate) fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Idle buffers held: `idle` and the spare.
    fn idle_count(&self) -> usize {
        self.idle.len() + usize::from(self.spare.is_some())
    }

    /// The largest spare the depot keeps: one doubling past the max buffer size, what a
    /// buffer grown from the max once holds. It serves the returns up to twice the max without
    /// an allocation, and costs at most one max more than an idle buffer of the max.
    fn spare_limit(&self) -> usize {
        self.config.max_buffer_size.saturating_mul(2)
    }

    /// Keeps an empty buffer over the max as the spare, shrunk to [`Depot::spare_limit`] if
    /// larger, when no spare is idle and the caps allow; else hands it back untouched.
    fn keep_spare(&mut self, mut buf: Vec<u8>) -> Result<Fit, Vec<u8>> {
        let bytes = buf.capacity().min(self.spare_limit());
        if self.spare.is_some()
            || self.idle_count() + self.reserved_buffers >= self.config.max_idle_buffers
            || self.idle_bytes + self.reserved_bytes + bytes > self.config.max_idle_bytes
        {
            return Err(buf);
        }
        let fit = if buf.capacity() > bytes {
            buf.shrink_to(bytes);
            Fit::Shrunk
        } else {
            Fit::Fits
        };
        self.idle_bytes += buf.capacity();
        self.spare = Some(Idle {
            buf,
            since: Instant::now(),
        });
        Ok(fit)
    }

    /// Releases the spare when, without it, `buffers` more idle buffers (0 or 1) and `bytes`
    /// more idle bytes would fit the caps and with it would not: the spare never costs the
    /// pool a buffer within the max. Freed here, under the lock: it happens at most once per
    /// spare kept, which is rare.
    fn make_room(&mut self, buffers: usize, bytes: usize) {
        let Some(spare) = self.spare.as_ref() else {
            return;
        };
        let spare_bytes = spare.buf.capacity();
        let buffers = self.idle_count() + self.reserved_buffers + buffers;
        let bytes = self.idle_bytes + self.reserved_bytes + bytes;
        let (max_buffers, max_bytes) = (self.config.max_idle_buffers, self.config.max_idle_bytes);
        let fits_with = buffers <= max_buffers && bytes <= max_bytes;
        let fits_without = buffers - 1 <= max_buffers && bytes - spare_bytes <= max_bytes;
        if !fits_with && fits_without {
            self.spare = None;
            self.idle_bytes -= spare_bytes;
            self.spares_released += 1;
        }
    }

    /// Takes the spare if it is larger than `capacity`.
    fn take_spare(&mut self, capacity: usize) -> Option<Vec<u8>> {
        if self.spare.as_ref()?.buf.capacity() <= capacity {
            return None;
        }
        let Idle { buf, .. } = self.spare.take()?;
        self.idle_bytes -= buf.capacity();
        Some(buf)
    }

    pub(crate) fn pop(&mut self) -> Option<Vec<u8>> {
        let Idle { buf, .. } = self.idle.pop()?;
        self.idle_bytes -= buf.capacity();
        Some(buf)
    }

    /// Keeps an empty buffer if the caps allow, else hands it back with the reason.
    pub(crate) fn push(&mut self, buf: Vec<u8>) -> Result<(), Rejected> {
        self.make_room(1, buf.capacity());
        if self.idle_count() + self.reserved_buffers >= self.config.max_idle_buffers {
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

    /// Changes a reservation to `bytes` (and one buffer) if the caps allow. On failure the
    /// reservation is released and the reason returned.
    pub(crate) fn reserve(
        &mut self,
        reservation: &mut Reservation,
        bytes: usize,
    ) -> Result<(), DiscardReason> {
        self.make_room(
            usize::from(reservation.bytes == 0),
            bytes.saturating_sub(reservation.bytes),
        );
        let buffers = self.reserved_buffers + usize::from(reservation.bytes == 0);
        let others = self.reserved_bytes - reservation.bytes;
        let result = if self.idle_count() + buffers > self.config.max_idle_buffers {
            Err(DiscardReason::IdleBuffersCap)
        } else if self.idle_bytes + others + bytes > self.config.max_idle_bytes {
            Err(DiscardReason::IdleBytesCap)
        } else {
            self.reserved_buffers = buffers;
            self.reserved_bytes = others + bytes;
            reservation.bytes = bytes;
            return Ok(());
        };
        self.release(reservation);
        result
    }

    /// Gives a reservation back.
    pub(crate) fn release(&mut self, reservation: &mut Reservation) {
        if reservation.bytes > 0 {
            self.reserved_bytes -= reservation.bytes;
            self.reserved_buffers -= 1;
            reservation.bytes = 0;
        }
    }

    /// Removes idle buffers until the caps in force hold again (oldest first), shrinking
    /// or removing those over the max buffer size; returns what was removed.
    fn enforce_caps(&mut self) -> Vec<Vec<u8>> {
        let PoolConfig {
            max_buffer_size,
            max_idle_buffers,
            max_idle_bytes,
            over_max,
            ..
        } = self.config;
        let mut released = Vec::new();
        // The spare goes first: it is over the max by design, and the least likely to be
        // taken.
        let spare_limit = self.spare_limit();
        if let Some(spare) = self.spare.take() {
            self.idle_bytes -= spare.buf.capacity();
            let fits = spare.buf.capacity() <= spare_limit
                && self.idle_count() + 1 + self.reserved_buffers <= max_idle_buffers
                && self.idle_bytes + spare.buf.capacity() + self.reserved_bytes <= max_idle_bytes;
            if fits {
                self.idle_bytes += spare.buf.capacity();
                self.spare = Some(spare);
            } else {
                released.push(spare.buf);
            }
        }
        let mut idle_bytes = self.idle_bytes;
        self.idle.retain_mut(|idle| {
            idle_bytes -= idle.buf.capacity();
            match fit(&mut idle.buf, max_buffer_size, over_max) {
                Fit::Fits | Fit::Shrunk => {
                    idle_bytes += idle.buf.capacity();
                    true
                }
                Fit::Drop => {
                    released.push(mem::take(&mut idle.buf));
                    false
                }
            }
        });
        let mut oldest = 0;
        let spare = usize::from(self.spare.is_some());
        while oldest < self.idle.len()
            && (self.idle.len() - oldest + spare + self.reserved_buffers > max_idle_buffers
                || idle_bytes + self.reserved_bytes > max_idle_bytes)
        {
            idle_bytes -= self.idle[oldest].buf.capacity();
            oldest += 1;
        }
        released.extend(self.idle.drain(..oldest).map(|idle| idle.buf));
        self.idle_bytes = idle_bytes;
        released
    }

    /// Removes buffers idle since before `cutoff`.
    fn expire(&mut self, cutoff: Instant) -> Vec<Vec<u8>> {
        let expired = self.idle.partition_point(|idle| idle.since <= cutoff);
        let mut expired: Vec<Vec<u8>> = self.idle.drain(..expired).map(|idle| idle.buf).collect();
        if let Some(spare) = self.spare.take_if(|spare| spare.since <= cutoff) {
            expired.push(spare.buf);
        }
        self.idle_bytes -= expired.iter().map(Vec::capacity).sum::<usize>();
        expired
    }
}

impl Shared {
    pub(crate) fn new(name: String, config: PoolConfig) -> Self {
        let window = Window::new(config.recommendation_window, Instant::now());
        let mut tuner = Tuner::default();
        tuner.restart(&config);
        let tuning = Mutex::new(Tuning {
            set: config.clone(),
            tuner,
        });
        Self {
            name,
            generation: CachePadded::new(AtomicU64::new(0)),
            max_buffer_size: AtomicUsize::new(config.max_buffer_size),
            spare_wanted: AtomicBool::new(false),
            depot: Mutex::new(Depot {
                config,
                idle: Vec::new(),
                spare: None,
                idle_bytes: 0,
                reserved_bytes: 0,
                reserved_buffers: 0,
                spares_released: 0,
            }),
            shards: Shards::default(),
            shared_shard: Shard::new(),
            published: Mutex::new(PoolStats::default()),
            window: Mutex::new(window),
            tuning,
        }
    }

    /// The config as set (auto-tuning's starting point, bounds and ceilings).
    pub(crate) fn config_set(&self) -> PoolConfig {
        lock(&self.tuning).set.clone()
    }

    pub(crate) fn lock_depot(&self) -> MutexGuard<'_, Depot> {
        lock(&self.depot)
    }

    /// The max buffer size, without the lock.
    pub(crate) fn max_buffer_size(&self) -> usize {
        // Relaxed: a hint clamped by a max changed a moment ago is as good as by the new one;
        // the return policy applies the max in force when the buffer comes back.
        self.max_buffer_size.load(Ordering::Relaxed)
    }

    /// Whether a buffer returned over the max may become the spare (see `spare_wanted`).
    #[inline]
    pub(crate) fn wants_spare(&self) -> bool {
        // Relaxed: a return that misses a `reserve` of a moment ago shrinks its buffer as
        // before; the next one keeps it.
        self.spare_wanted.load(Ordering::Relaxed)
    }

    /// Keeps an empty buffer over the max as the spare if none is idle and the caps allow
    /// (shrunk to twice the max if larger: `Fit::Shrunk`); else hands it back untouched.
    pub(crate) fn keep_spare(&self, buf: Vec<u8>) -> Result<Fit, Vec<u8>> {
        self.lock_depot().keep_spare(buf)
    }

    /// Trades `buf`, which is to grow past the max, for the idle spare if that is larger:
    /// copies the contents over and keeps the old buffer idle (or releases it, counted, if
    /// the caps or the max no longer allow it). Returns whether it traded.
    pub(crate) fn trade_for_spare(&self, buf: &mut Vec<u8>) -> bool {
        // Relaxed: only a hint for the return path (see `wants_spare`).
        self.spare_wanted.store(true, Ordering::Relaxed);
        let Some(mut spare) = self.lock_depot().take_spare(buf.capacity()) else {
            return false;
        };
        // Copied outside the lock: up to a max buffer size of bytes.
        spare.extend_from_slice(buf);
        let mut old = mem::replace(buf, spare);
        old.clear();
        let depot = self.lock_depot();
        self.shelve(depot, old);
        true
    }

    /// Counts released buffers on the shared shard, then frees them outside the lock.
    fn discard_all(
        &self,
        depot: MutexGuard<'_, Depot>,
        reason: DiscardReason,
        released: Vec<Vec<u8>>,
    ) {
        for _ in &released {
            self.shared_shard.discard(reason);
        }
        drop(depot);
        drop(released);
    }

    /// Takes an idle buffer from the depot, or allocates one (for threads without a usable
    /// cache).
    #[cold]
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut depot = self.lock_depot();
        match depot.pop() {
            Some(buf) => {
                bump(&self.shared_shard.hits);
                buf
            }
            None => {
                bump(&self.shared_shard.misses);
                Vec::with_capacity(depot.config.miss_capacity())
            }
        }
    }

    /// The return path for threads without a usable cache (e.g. during thread teardown),
    /// for a buffer lent with capacity `lent`.
    #[cold]
    pub(crate) fn put(&self, mut buf: Vec<u8>, lent: usize) {
        let mut depot = self.lock_depot();
        self.shared_shard
            .count_return(buf.len(), buf.capacity(), lent);
        buf.clear();
        if buf.capacity() > depot.config.max_buffer_size && self.wants_spare() {
            match depot.keep_spare(buf) {
                Ok(kept) => {
                    if kept == Fit::Shrunk {
                        bump(&self.shared_shard.shrinks);
                    }
                    return;
                }
                Err(back) => buf = back,
            }
        }
        self.shelve(depot, buf);
    }

    /// Applies the return policy to an empty buffer and keeps it idle in the depot, or
    /// releases it with the reason counted on the shared shard.
    fn shelve(&self, mut depot: MutexGuard<'_, Depot>, mut buf: Vec<u8>) {
        let kept = match fit(
            &mut buf,
            depot.config.max_buffer_size,
            depot.config.over_max,
        ) {
            Fit::Fits => depot.push(buf),
            Fit::Shrunk => {
                bump(&self.shared_shard.shrinks);
                depot.push(buf)
            }
            Fit::Drop => Err((DiscardReason::OverMax, buf)),
        };
        if let Err((reason, buf)) = kept {
            self.discard_all(depot, reason, vec![buf]);
        }
    }

    /// Counts an event for a thread without a usable cache.
    #[cold]
    pub(crate) fn count_shared(&self, counter: fn(&Shard) -> &AtomicU64) {
        let _depot = self.lock_depot();
        bump(counter(&self.shared_shard));
    }

    /// Replaces the config as set; the config in force follows the rule of
    /// [`in_force_after`].
    pub(crate) fn reconfigure(&self, config: PoolConfig) -> Result<(), PoolError> {
        config.validate()?;
        let mut tuning = lock(&self.tuning);
        let in_force = in_force_after(&tuning.set, &config, self.lock_depot().config());
        self.apply(in_force.clone())?;
        tuning.tuner.restart(&in_force);
        tuning.set = config;
        Ok(())
    }

    /// One auto-tuning tick at `now`: reads the stats, moves the config in force toward the
    /// recommendations and returns the moves.
    pub(crate) fn auto_tune_at(&self, now: Instant) -> Vec<TuneMove> {
        let mut tuning = lock(&self.tuning);
        let stats = self.stats_locked(&tuning, now);
        let mut in_force = self.lock_depot().config().clone();
        let Tuning { set, tuner } = &mut *tuning;
        let moves = tuner.step(set, &mut in_force, &stats, now);
        if !moves.is_empty() {
            // Cannot fail: the tuner keeps every value within what `validate` accepts.
            if let Err(error) = self.apply(in_force) {
                debug_assert!(false, "auto-tuning produced an invalid config: {error}");
                return Vec::new();
            }
        }
        moves
    }

    /// Replaces the config in force and releases (or shrinks) the idle buffers that break it.
    fn apply(&self, config: PoolConfig) -> Result<(), PoolError> {
        config.validate()?;
        let mut depot = self.lock_depot();
        self.max_buffer_size
            .store(config.max_buffer_size, Ordering::Relaxed);
        depot.config = config;
        // Release: a thread that sees the new generation then takes the depot lock to read
        // the config, so ordering the bump after the write is enough.
        self.generation.fetch_add(1, Ordering::Release);
        let released = depot.enforce_caps();
        self.discard_all(depot, DiscardReason::Reconfigure, released);
        Ok(())
    }

    /// Releases the depot's buffers idle for at least the idle timeout; returns how many.
    pub(crate) fn trim_at(&self, now: Instant) -> usize {
        let mut depot = self.lock_depot();
        let Some(cutoff) = now.checked_sub(depot.config.idle_timeout) else {
            return 0;
        };
        let expired = depot.expire(cutoff);
        let count = expired.len();
        self.discard_all(depot, DiscardReason::IdleTimeout, expired);
        count
    }

    /// A snapshot of the counters, gauges and size histograms, with the recent window
    /// moved on to `now`.
    pub(crate) fn stats_at(&self, now: Instant) -> PoolStats {
        self.stats_locked(&lock(&self.tuning), now)
    }

    fn stats_locked(&self, tuning: &Tuning, now: Instant) -> PoolStats {
        let (lowest, highest) = tuning.set.auto_tune_range();
        let mut window = lock(&self.window);
        let depot = self.lock_depot();
        // Summed with the depot locked: no buffer can enter the depot or a reservation grow
        // meanwhile, and every slot was emptied before its reservation last shrank, so the
        // private slots add up to at most the reservations and the idle gauges stay within
        // the caps however buffers move.
        let mut totals = self.shards.sum(&self.shared_shard);
        totals.idle_buffers += depot.idle_count() as u64;
        totals.idle_bytes += depot.idle_bytes as u64;
        totals.discards[DiscardReason::Spare.index()] += depot.spares_released;
        let config = depot.config.clone();
        drop(depot);
        let returns = totals.lengths.count();
        // Donations are returns without a get.
        let in_use = (totals.hits + totals.misses + totals.donations)
            .saturating_sub(returns + totals.detaches);
        let lengths = totals.lengths.without_empty();
        let idle_cap_discards = [DiscardReason::IdleBuffersCap, DiscardReason::IdleBytesCap]
            .map(|reason| totals.discards[reason.index()])
            .iter()
            .sum();
        let Recent {
            lengths: recent_lengths,
            idle_cap_discards: recent_idle_cap_discards,
            peak,
            span: recent_span,
        } = window.read(
            config.recommendation_window,
            now,
            &Totals {
                lengths,
                idle_cap_discards,
            },
            Gauges {
                held: in_use + totals.idle_buffers,
                idle_bytes: totals.idle_bytes,
            },
        );
        drop(window);
        PoolStats {
            hits: totals.hits,
            misses: totals.misses,
            returns,
            detaches: totals.detaches,
            donations: totals.donations,
            shrinks: totals.shrinks,
            regrows: totals.regrows,
            empty_returns: totals.lengths.empty(),
            discards: Discards::from_counts(totals.discards),
            idle_buffers: totals.idle_buffers,
            idle_bytes: totals.idle_bytes,
            initial_capacity: config.initial_capacity as u64,
            max_buffer_size: config.max_buffer_size as u64,
            max_idle_bytes: config.max_idle_bytes as u64,
            max_idle_buffers: config.max_idle_buffers as u64,
            in_use,
            peak_held: peak.held,
            peak_idle_bytes: peak.idle_bytes,
            recent_idle_cap_discards,
            recent_span,
            recommendation_window: config.recommendation_window,
            recommendation_min_returns: config.min_returns(),
            over_max: config.over_max,
            recommend_percentile: config.recommend_percentile,
            lengths,
            capacities: totals.capacities,
            recent_lengths,
            auto_tune: AutoTuneStats {
                enabled: tuning.set.auto_tune.enabled,
                lowest_max_buffer_size: lowest as u64,
                highest_max_buffer_size: highest as u64,
                targets: tuning.tuner.targets,
                moves: tuning.tuner.moves,
            },
        }
    }
}
