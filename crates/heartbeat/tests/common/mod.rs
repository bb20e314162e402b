//! Helpers shared by the runner tests.

use std::time::Duration;

use heapscape_heartbeat::HeartbeatHandle;
use heapscape_pool::Pool;

pub const FAST: Duration = Duration::from_millis(10);
pub const NEVER: Duration = Duration::from_secs(3600);
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `condition` until it holds; panics with `what` after [`DEADLINE`].
pub fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    heapscape_testkit::wait_until(DEADLINE, what, condition);
}

pub fn wait_for_ticks(handle: &HeartbeatHandle, ticks: u64) {
    wait_until(&format!("{ticks} ticks ran"), || handle.ticks() >= ticks);
}

/// A pool holding an idle buffer in its shared depot, which `trim` releases once it has been
/// idle for a millisecond. Each thread keeps one buffer in a private slot that `trim` does not
/// touch, so the second donation is the one that reaches the depot.
pub fn pool_with_idle_buffer(name: &str) -> Pool {
    let pool = Pool::builder(name)
        .idle_timeout(Duration::from_millis(1))
        .build()
        .expect("valid pool");
    pool.donate(Vec::with_capacity(4096));
    pool.donate(Vec::with_capacity(4096));
    pool
}

/// Whether `trim` released a buffer of `pool`.
pub fn trimmed(pool: &Pool) -> bool {
    pool.stats().discards.idle_timeout > 0
}
