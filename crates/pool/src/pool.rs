//! The pool handle: what users call to take, give and tune buffers.

use std::fmt;
use std::sync::Arc;

use crate::cache;
use crate::depot::Shared;
use crate::{PoolConfig, PoolError, PoolStats, PooledBuf};

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
    #[inline]
    pub fn get(&self) -> PooledBuf<'_> {
        let mut buf = cache::take_fast(&self.shared);
        if buf.capacity() == 0 {
            buf = cache::take_slow(&self.shared);
        }
        PooledBuf::new(buf, &self.shared)
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
        cache::give_back(&self.shared, &mut buf);
    }

    /// The settings in force.
    pub fn config(&self) -> PoolConfig {
        self.shared.lock_depot().config().clone()
    }

    /// Replaces the settings, live, from any thread.
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
        self.shared.trim()
    }

    /// A snapshot of the counters, gauges and size histograms.
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
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
