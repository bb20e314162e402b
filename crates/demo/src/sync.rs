//! Locks that ignore poisoning.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex` even if a thread panicked while holding it.
///
/// Every mutex of this crate guards data that stays valid whatever a panicking holder left
/// half done (samples, scrape timelines, a first failure reason): a panic elsewhere must not
/// turn each later lock into a second panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
