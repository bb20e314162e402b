//! Locks that ignore poisoning, used for every lock of the heartbeat.
//!
//! Every value guarded in this crate stays consistent if a holder panics (a panicking pool
//! `publish`, say): each update is a single assignment. The heartbeat must keep ticking after
//! such a panic, so a poisoned lock is used as it is.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Locks `mutex`, ignoring poisoning.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `condvar` for at most `timeout`, ignoring poisoning; returns the guard.
pub(crate) fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    condvar
        .wait_timeout(guard, timeout)
        .unwrap_or_else(PoisonError::into_inner)
        .0
}
