//! The synchronization primitives the pool's protocols are built on, and its one lock helper.
//!
//! With the `loom` feature the counters, the shard handles and the locks are loom's, so the model
//! in `shard.rs` checks the code that runs in production (as tokio's `bytes` does with its
//! `loom` shim). The pool handle's own `Arc` and `Weak` stay std's: loom has no `Weak`, and
//! the handle's reference count is not part of a protocol (each cache holds a `Weak` only to
//! hand its buffer back at thread exit).

#[cfg(feature = "loom")]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(feature = "loom")]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(feature = "loom"))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(feature = "loom"))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// Locks `mutex`, ignoring poison.
///
/// A panic while a pool lock is held cannot leave the state behind it torn: every mutation
/// keeps its invariants between statements that cannot panic, so the next user may go on.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
