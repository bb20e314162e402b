//! The pool handle: what users call to take, give and tune buffers.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::cache;
use crate::config::TuneMove;
use crate::depot::Shared;
use crate::{OwnedPooledBuf, PoolConfig, PoolError, PoolStats, PooledBuf};

/// A named pool of reusable byte buffers.
///
/// Cheap to clone (a shared handle); `Send + Sync`. See the [crate docs](crate) for the
/// design, the return policy and the metrics.
#[derive(Clone)]
pub struct Pool {
    pub(crate) shared: Arc<Shared>,
}

impl Pool {
    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Takes an empty buffer: an idle one if there is one (a hit), else a new one of the
    /// initial capacity (a miss). It comes back, cleared, when the guard drops.
    ///
    /// The guard borrows this handle, which keeps the fast path free of reference counting;
    /// to move the buffer into `std::thread::spawn` or a spawned task, or to keep it past this
    /// handle, use [`Pool::get_owned`].
    #[inline]
    pub fn get(&self) -> PooledBuf<'_> {
        PooledBuf::new(self.take(), &self.shared)
    }

    /// Like [`Pool::get`], but the guard owns a handle to the pool (one reference count,
    /// taken here and released when the buffer comes back), so it is `'static`: it can move
    /// into `std::thread::spawn` or a spawned task and outlive this `Pool`. See
    /// [`OwnedPooledBuf`] for an example.
    pub fn get_owned(&self) -> OwnedPooledBuf {
        OwnedPooledBuf::new(self.take(), Arc::clone(&self.shared))
    }

    /// A buffer for a guard: this thread's private one, else one from the depot or new.
    #[inline]
    fn take(&self) -> Vec<u8> {
        let buf = cache::take_fast(&self.shared);
        if buf.capacity() == 0 {
            return cache::take_slow(&self.shared);
        }
        buf
    }

    /// Like [`Pool::get`], with room for at least `hint` bytes, clamped to the max buffer size
    /// (a hint may come from an untrusted client).
    pub fn get_with_capacity(&self, hint: usize) -> PooledBuf<'_> {
        let mut buf = self.get();
        buf.reserve(hint.min(self.shared.max_buffer_size()));
        buf
    }

    /// Gives the pool a buffer allocated elsewhere; it is treated like a returned buffer.
    pub fn donate(&self, mut buf: Vec<u8>) {
        cache::count(&self.shared, |shard| &shard.donations);
        // Not lent: its capacity is its own, so it never counts as a regrow.
        let lent = buf.capacity();
        cache::give_back(&self.shared, &mut buf, lent);
    }

    /// The settings as set by the builder or [`Pool::reconfigure`]. They are also the
    /// settings in force unless auto-tuning moved some ([`Pool::stats`] has the values in
    /// force).
    pub fn config(&self) -> PoolConfig {
        self.shared.config_set()
    }

    /// Replaces the settings, live, from any thread.
    ///
    /// With auto-tuning on before and after, and the same `initial_capacity`,
    /// `max_buffer_size`, `max_idle_buffers` and `max_idle_bytes` as the settings replaced,
    /// the tuned values stay in force (brought within the new bounds). Otherwise the new
    /// settings apply as given, and auto-tuning (if on) starts again from them.
    ///
    /// Idle buffers in the shared depot that break a lowered cap are released (or shrunk)
    /// before this returns; each thread's private buffer is re-checked at that thread's next
    /// `get` or return (see the crate docs, "Per-thread caches"). Buffers released this way
    /// are counted as discards with reason `reconfigure`.
    ///
    /// # Errors
    ///
    /// Whatever [`PoolConfig::validate`] reports; the settings in force then stay unchanged.
    pub fn reconfigure(&self, config: PoolConfig) -> Result<(), PoolError> {
        self.shared.reconfigure(config)
    }

    /// Changes the max buffer size, live (see [`Pool::reconfigure`]).
    ///
    /// # Errors
    ///
    /// As [`PoolConfig::validate`] for the resulting settings, e.g. a max below the initial
    /// capacity ([`Pool::set_initial_capacity`] lowers that first).
    pub fn set_max_buffer_size(&self, bytes: usize) -> Result<(), PoolError> {
        let mut config = self.config();
        config.max_buffer_size = bytes;
        self.reconfigure(config)
    }

    /// Changes the initial capacity (the capacity of a buffer allocated on a miss), live (see
    /// [`Pool::reconfigure`]). To lower the max buffer size below the initial capacity, lower
    /// this first.
    ///
    /// ```
    /// let pool = heapscape_pool::Pool::builder("pcm").initial_capacity(64 << 10).build()?;
    /// assert!(pool.set_max_buffer_size(16 << 10).is_err()); // below the initial capacity
    /// pool.set_initial_capacity(8 << 10)?;
    /// pool.set_max_buffer_size(16 << 10)?;
    /// assert_eq!(pool.get().capacity(), 8 << 10);
    /// # Ok::<(), heapscape_pool::PoolError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`PoolConfig::validate`] for the resulting settings, e.g. a zero capacity or one
    /// above the max buffer size.
    pub fn set_initial_capacity(&self, bytes: usize) -> Result<(), PoolError> {
        let mut config = self.config();
        config.initial_capacity = bytes;
        self.reconfigure(config)
    }

    /// Releases the idle buffers of the shared depot that have been idle for at least the
    /// idle timeout, and returns how many. Rust has no garbage collector to empty a pool
    /// after a burst: call this periodically (the heartbeat does, every tick).
    pub fn trim(&self) -> usize {
        self.shared.trim_at(Instant::now())
    }

    /// One auto-tuning step, which the heartbeat takes every tick: moves the settings in force
    /// toward the windowed recommendations as [`AutoTuneConfig`](crate::config::AutoTuneConfig)
    /// says, and returns the moves (none while auto-tuning is off). Reads the stats, so it
    /// also moves the window on, as [`Pool::stats`] does.
    pub fn auto_tune(&self) -> Vec<TuneMove> {
        self.shared.auto_tune_at(Instant::now())
    }

    /// A snapshot of the counters, gauges, size histograms and recommendations.
    ///
    /// Each call also moves the recommendation window on (see [`PoolStats`]): the returns
    /// since the previous call enter it, and the buffers held now (in use or idle) are a sample
    /// of its peak.
    /// Read it at least every few minutes (the heartbeat publishes, and so reads, every tick).
    pub fn stats(&self) -> PoolStats {
        self.shared.stats_at(Instant::now())
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Pool;

    /// Every minute from `from` to `to` (exclusive), takes `lengths.len()` buffers at once,
    /// fills each to its length, reads the stats while they are out (as a heartbeat tick in
    /// the middle of the traffic would) and returns them.
    fn minutes_of_traffic(pool: &Pool, t0: Instant, from: u64, to: u64, lengths: &[usize]) {
        for minute in from..to {
            let mut guards: Vec<_> = lengths.iter().map(|_| pool.get()).collect();
            for (guard, &len) in guards.iter_mut().zip(lengths) {
                guard.resize(len, 0);
            }
            pool.shared.stats_at(t0 + Duration::from_secs(60 * minute));
            drop(guards);
        }
    }

    /// Four streams at a time, each chunk reserved through the guard as a service does; one
    /// stream in twenty is longer than the rest. Returns the pool's stats after `rounds`.
    fn streams(pool: &Pool, rounds: usize) -> crate::PoolStats {
        for round in 0..rounds {
            let mut guards: Vec<_> = (0..4).map(|_| pool.get()).collect();
            for (i, guard) in guards.iter_mut().enumerate() {
                let long = (round * 4 + i) % 20 == 0;
                let length = if long {
                    200_000
                } else {
                    100_000 + 1_000 * (i + round % 7)
                };
                while guard.len() < length {
                    guard.reserve(4096);
                    guard.extend_from_slice(&[1; 4096]);
                }
            }
        }
        pool.stats()
    }

    #[test]
    fn the_recommended_idle_caps_leave_room_for_the_spare() {
        let pool = Pool::builder("spare")
            .recommendation_min_returns(1)
            .build()
            .unwrap();
        let stats = streams(&pool, 50);
        let max = stats.recommended_max_buffer_size().unwrap() as usize;
        // Below the long streams, which the spare (up to twice the max) holds.
        assert!(max < 200_000 && 200_000 <= 2 * max, "{stats:?}");
        assert!(stats.recommends_spare());
        assert_eq!(stats.peak_held, 4);
        let buffers = stats.recommended_max_idle_buffers().unwrap() as usize;
        let bytes = stats.recommended_max_idle_bytes().unwrap() as usize;
        assert_eq!(
            (buffers, bytes),
            (6, 7 * max),
            "4, one of headroom, the spare"
        );

        // Applied as ops (or auto-tuning) would: the long streams take the spare and give it
        // back, and no return pushes it out of the idle caps.
        let mut config = pool.config();
        (
            config.max_buffer_size,
            config.max_idle_buffers,
            config.max_idle_bytes,
        ) = (max, buffers, bytes);
        pool.reconfigure(config).unwrap();
        let before = pool.stats();
        let after = streams(&pool, 200);
        let regrows = after.regrows - before.regrows;
        assert_eq!(after.discards.spare - before.discards.spare, 0, "{after:?}");
        // The first long stream after the change regrows past the max; the spare serves the
        // 39 after it.
        assert!(regrows <= 2, "{regrows} regrows: {after:?}");

        // With the caps the rule gave before the spare (peak plus an eighth, times the max),
        // a full set of returned buffers pushes the spare out and the long streams regrow.
        let mut config = pool.config();
        (config.max_idle_buffers, config.max_idle_bytes) = (buffers - 1, (buffers - 1) * max);
        pool.reconfigure(config).unwrap();
        let before = pool.stats();
        let after = streams(&pool, 200);
        assert!(
            after.discards.spare - before.discards.spare >= 30,
            "{after:?}"
        );
        assert!(after.regrows - before.regrows >= 30, "{after:?}");
    }

    #[test]
    fn a_shift_in_sizes_and_concurrency_shows_within_one_window() {
        let pool = Pool::builder("shift")
            .recommendation_window(Duration::from_secs(3600))
            .recommendation_min_returns(1)
            .max_idle_bytes(1 << 30)
            .build()
            .unwrap();
        let t0 = Instant::now();
        let at = |minute: u64| pool.shared.stats_at(t0 + Duration::from_secs(60 * minute));
        let large = [900_000, 1_000_000, 1_100_000, 1_200_000];
        let small: Vec<usize> = (0..20).map(|i| 10_000 + 500 * i).collect();

        // Half an hour of large streams, eight at a time ...
        minutes_of_traffic(&pool, t0, 0, 30, &[large, large].concat());
        let stats = at(30);
        assert_eq!(stats.recommended_max_buffer_size(), Some(1_245_184));
        assert_eq!(stats.peak_held, 8);
        assert_eq!(stats.recommended_max_idle_buffers(), Some(9));
        // ... then only small requests, two at a time; the idle timeout (60 s) releases the
        // buffers the large streams left, as the heartbeat's trim would.
        minutes_of_traffic(&pool, t0, 30, 31, &small[..2]);
        // All but the one in this thread's private slot, which its next get takes.
        assert_eq!(pool.shared.trim_at(t0 + Duration::from_secs(60 * 32)), 7);
        minutes_of_traffic(&pool, t0, 31, 60, &small[..2]);
        let stats = at(60);
        assert_eq!(
            stats.recommended_max_buffer_size(),
            Some(1_245_184),
            "the large ones are still within the window"
        );
        minutes_of_traffic(&pool, t0, 60, 90, &small[..2]);
        for chunk in small.chunks(2) {
            minutes_of_traffic(&pool, t0, 90, 91, chunk);
        }
        let stats = at(91);
        let exact_p95 = 10_000 + 500 * 18; // the 19th of 20
        let recommended = stats.recommended_max_buffer_size().unwrap();
        assert!(
            recommended >= exact_p95 && recommended * 5 <= exact_p95 * 6,
            "one window after the shift: recommended {recommended}, exact p95 {exact_p95}"
        );
        assert_eq!(stats.peak_held, 2);
        // Two and one of headroom, and one for the spare: the longest returns are above the p95.
        assert!(stats.recommends_spare());
        assert_eq!(stats.recommended_max_idle_buffers(), Some(4));
        assert_eq!(stats.over_max_ratio(1 << 20), 0.0);
        // The lifetime histogram and counters still hold everything.
        assert_eq!(stats.returns, 30 * 8 + 60 * 2 + 20);
        assert_eq!(
            stats.lengths.quantile(1.0),
            Some(1_245_184),
            "1.2 MB, in fine buckets"
        );
        assert_eq!(stats.in_use, 0);
    }
}
