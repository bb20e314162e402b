//! [`Allocator`]: whether jemalloc serves the program's heap, found out once per process.

use std::sync::OnceLock;

/// The global allocator the heartbeat found, exported as the `allocator` label of
/// `heapscape_allocator_info`.
///
/// jemalloc's statistics describe only the memory that goes through jemalloc. When another
/// allocator serves the heap (the system allocator, mimalloc), the heartbeat still publishes
/// the process's resident memory, its page faults and every pool, and leaves the
/// `heapscape_jemalloc_*` metrics out instead of publishing the statistics of an empty heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Allocator {
    /// jemalloc is the global allocator (directly, or wrapped like `CountingJemalloc`).
    /// The default: a [`HeapStats::default`](crate::HeapStats::default) describes a jemalloc
    /// heap whose statistics are all 0.
    #[default]
    Jemalloc,
    /// Allocations do not go through jemalloc, or its statistics cannot be read.
    Other,
}

impl Allocator {
    /// The allocator serving this process's heap, detected on the first call and logged once
    /// (`tracing`, target `heapscape_heartbeat`); later calls return the same answer, since a
    /// program's global allocator cannot change.
    ///
    /// The check allocates one 4 KiB buffer on the calling thread. Built without the
    /// `jemalloc` feature, the answer is always [`Allocator::Other`]: nothing can read
    /// jemalloc's statistics then.
    pub fn detect() -> Self {
        static DETECTED: OnceLock<Allocator> = OnceLock::new();
        *DETECTED.get_or_init(find)
    }

    /// The value of the `allocator` label: `jemalloc` or `other`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Jemalloc => "jemalloc",
            Self::Other => "other",
        }
    }
}

/// Probes the allocator and logs the answer.
#[cfg(feature = "jemalloc")]
fn find() -> Allocator {
    let found = probe();
    match found {
        Ok(Allocator::Jemalloc) => tracing::info!(
            allocator = "jemalloc",
            "jemalloc is the global allocator: the heartbeat publishes its heap statistics"
        ),
        Ok(Allocator::Other) => tracing::warn!(
            allocator = "other",
            "jemalloc is not the global allocator: the heartbeat publishes the process's \
                     resident memory, page faults and pools, but no heapscape_jemalloc_* \
                     metrics; for those, make jemalloc the global allocator \
                     (`#[global_allocator] static GLOBAL: tikv_jemallocator::Jemalloc = \
                     tikv_jemallocator::Jemalloc;`)"
        ),
        Err(ref error) => tracing::warn!(
            allocator = "other",
            %error,
            "jemalloc's per-thread allocation counter cannot be read, so its \
             statistics cannot be trusted either: the heartbeat publishes the \
             process's resident memory, page faults and pools only; build \
             tikv-jemalloc-ctl with its `stats` feature"
        ),
    }
    found.unwrap_or(Allocator::Other)
}

/// Without the `jemalloc` feature nothing can read jemalloc's statistics, whatever the global
/// allocator: the heartbeat works as under another allocator, and says why.
#[cfg(not(feature = "jemalloc"))]
fn find() -> Allocator {
    tracing::info!(
        allocator = "other",
        "heapscape-heartbeat was built without its `jemalloc` feature: the heartbeat publishes \
         the process's resident memory, page faults and pools, but no heapscape_jemalloc_* \
         metrics; for those, enable the feature (on by default) and make jemalloc the global \
         allocator"
    );
    Allocator::Other
}

/// Allocates through the global allocator and watches jemalloc's per-thread byte counter.
///
/// Asking jemalloc alone cannot tell: `tikv-jemalloc-sys` links jemalloc with prefixed
/// symbols, so every mallctl read succeeds even when it is not the global allocator, and the
/// statistics then describe a near-empty heap that looks valid. Comparing `stats.allocated`
/// before and after an allocation would be fooled by other threads freeing meanwhile;
/// `thread.allocatedp` counts only this thread's allocations, so it moves by the buffer's size
/// if and only if the buffer came from jemalloc. `black_box` keeps the compiler from eliding
/// the allocation.
#[cfg(feature = "jemalloc")]
fn probe() -> Result<Allocator, tikv_jemalloc_ctl::Error> {
    let counter = tikv_jemalloc_ctl::thread::allocatedp::read()?;
    let before = counter.get();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(4096)));
    Ok(if counter.get() == before {
        Allocator::Other
    } else {
        Allocator::Jemalloc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "jemalloc")]
    #[test]
    fn unit_tests_run_on_jemalloc() {
        assert_eq!(Allocator::detect(), Allocator::Jemalloc);
        assert_eq!(probe().expect("stats are built in"), Allocator::Jemalloc);
    }

    #[cfg(not(feature = "jemalloc"))]
    #[test]
    fn without_the_feature_the_allocator_is_other() {
        assert_eq!(Allocator::detect(), Allocator::Other);
    }
}
