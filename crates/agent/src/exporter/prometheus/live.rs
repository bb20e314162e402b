//! Every heapscape Prometheus recorder alive in the process, so that the agent's pool additions
//! and removals reach the recorder it publishes through: the one it installed, or the one a
//! service installed around its own exporter (the agent then holds no handle to it).
//!
//! Pool names are one namespace per process (every pool publishes through the one global
//! recorder), so telling every live recorder is telling the right one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::native::NativeSeries;
use crate::sync::lock;

/// The recorders' series; a dropped recorder's entry is pruned on the next visit.
static LIVE: Mutex<Vec<Weak<NativeSeries>>> = Mutex::new(Vec::new());

/// Descriptions of heapscape's own metrics that reached a heapscape recorder: whether the
/// agent's describe calls arrive at one says whether it publishes through one.
static DESCRIBED: AtomicU64 = AtomicU64::new(0);

/// Adds a new recorder's series.
pub(super) fn register(native: &Arc<NativeSeries>) {
    let mut live = lock(&LIVE);
    live.retain(|native| native.strong_count() > 0);
    live.push(Arc::downgrade(native));
}

/// A pool called `name` is (again) managed by the agent: its series may appear.
pub(crate) fn pool_added(name: &str) {
    for native in alive() {
        native.pool_added(name);
    }
}

/// The pool called `name` was removed: its series leave every exposition, and a publication
/// racing the removal does not bring them back. StatsD needs nothing: a pool that is not
/// published sends nothing.
pub(crate) fn pool_removed(name: &str) {
    for native in alive() {
        native.pool_removed(name);
    }
}

/// A heapscape recorder received a description of one of heapscape's metrics.
pub(super) fn described() {
    // Relaxed: a count compared before and after the caller's own describe calls, which
    // happen on the caller's thread (the recorder runs on it).
    DESCRIBED.fetch_add(1, Ordering::Relaxed);
}

/// How many descriptions of heapscape's metrics have reached a heapscape recorder so far.
pub(crate) fn descriptions() -> u64 {
    DESCRIBED.load(Ordering::Relaxed)
}

/// The live recorders' series, taken out so their own locks are not taken under this one.
fn alive() -> Vec<Arc<NativeSeries>> {
    let mut live = lock(&LIVE);
    live.retain(|native| native.strong_count() > 0);
    live.iter().filter_map(Weak::upgrade).collect()
}
