//! [`HeapStats`]: one typed snapshot of jemalloc's and the process's memory statistics.

#[cfg(feature = "jemalloc")]
use std::sync::OnceLock;

#[cfg(feature = "jemalloc")]
use tikv_jemalloc_ctl::{epoch, epoch_mib, raw, stats};

use crate::{Allocator, HeartbeatError};

/// `MALLCTL_ARENAS_ALL`: the pseudo arena index whose statistics are merged over all arenas.
#[cfg(feature = "jemalloc")]
const ARENAS_ALL: usize = 4096;

/// A snapshot of jemalloc's heap statistics and the process's memory counters.
///
/// Every jemalloc value is read right after advancing jemalloc's `epoch`, which refreshes
/// jemalloc's cached statistics; [`HeapStats::sample`] does both. A running heartbeat takes one
/// snapshot per tick and publishes it (see the [metric table](crate::metrics::CATALOG)).
///
/// Byte values obey `allocated <= active <= resident` (resident is an upper bound that also
/// counts dirty pages) and `active <= mapped`.
///
/// A heartbeat in a program whose global allocator is not jemalloc keeps ticking: its
/// snapshots have `allocator` [`Allocator::Other`], the process fields filled in and every
/// jemalloc field 0 (and left unpublished).
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
/// use heapscape_heartbeat::HeapStats;
///
/// let stats = HeapStats::sample()?;
/// assert!(stats.allocated <= stats.active);
/// println!("{} bytes lost to fragmentation", stats.fragmentation_bytes());
/// # Ok::<(), heapscape_heartbeat::HeartbeatError>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// The global allocator ([`Allocator::detect`]). With [`Allocator::Other`] only the
    /// `process_*` and `*_page_faults` fields hold values; the jemalloc ones are 0.
    pub allocator: Allocator,
    /// Bytes in live allocations (jemalloc `stats.allocated`).
    pub allocated: u64,
    /// Bytes in active pages, a multiple of the page size (jemalloc `stats.active`).
    pub active: u64,
    /// Bytes in physically resident pages mapped by jemalloc, including dirty pages not yet
    /// returned to the OS; an upper bound (jemalloc `stats.resident`).
    pub resident: u64,
    /// Bytes in active extents mapped by jemalloc (jemalloc `stats.mapped`).
    pub mapped: u64,
    /// Bytes of jemalloc's own bookkeeping (jemalloc `stats.metadata`).
    pub metadata: u64,
    /// Bytes of virtual memory jemalloc keeps mapped instead of unmapping it
    /// (jemalloc `stats.retained`); not resident.
    pub retained: u64,
    /// Small allocation requests served since start, all arenas
    /// (jemalloc `stats.arenas.4096.small.nrequests`). Requests served from a thread cache are
    /// merged in when that cache flushes, so the count can lag by a few hundred per thread.
    pub small_requests: u64,
    /// Large allocation requests served since start, all arenas
    /// (jemalloc `stats.arenas.4096.large.nrequests`); same thread-cache lag as `small_requests`.
    pub large_requests: u64,
    /// Resident set size of the whole process in bytes (`/proc/self/statm`, Linux only; 0
    /// elsewhere). Unlike `resident`, it includes memory not allocated through jemalloc.
    pub process_resident: u64,
    /// Minor page faults of the process since start (`getrusage`): pages the kernel had to map
    /// without I/O, the CPU cost of the heap growing back after it was returned to the OS.
    pub minor_page_faults: u64,
    /// Major page faults of the process since start (`getrusage`): faults that needed I/O.
    pub major_page_faults: u64,
}

impl HeapStats {
    /// Advances jemalloc's epoch and reads a fresh snapshot.
    ///
    /// The first call checks that jemalloc is the global allocator ([`Allocator::detect`])
    /// and looks up the MIB handles (kept for the life of the process). The epoch advance takes
    /// every arena's lock, so call this from a blocking context, never from an async worker
    /// thread.
    ///
    /// # Errors
    ///
    /// [`HeartbeatError::NotGlobalAllocator`] if allocations do not go through jemalloc (a
    /// [`Heartbeat`](crate::Heartbeat) then publishes the process's values only),
    /// `HeartbeatError::Mallctl` if jemalloc refuses a statistic (usually a build without the
    /// `stats` feature), [`HeartbeatError::Process`] if the process counters cannot be read;
    /// built without the `jemalloc` feature, always `HeartbeatError::JemallocDisabled`.
    pub fn sample() -> Result<Self, HeartbeatError> {
        #[cfg(not(feature = "jemalloc"))]
        return Err(HeartbeatError::JemallocDisabled);
        #[cfg(feature = "jemalloc")]
        Self::sample_jemalloc()
    }

    #[cfg(feature = "jemalloc")]
    fn sample_jemalloc() -> Result<Self, HeartbeatError> {
        if Allocator::detect() != Allocator::Jemalloc {
            return Err(HeartbeatError::NotGlobalAllocator);
        }
        let mibs = Mibs::get()?;
        mibs.epoch
            .advance()
            .map_err(HeartbeatError::mallctl("epoch"))?;
        let faults = process::page_faults()?;
        Ok(Self {
            allocator: Allocator::Jemalloc,
            allocated: widen(mibs.allocated.read(), "stats.allocated")?,
            active: widen(mibs.active.read(), "stats.active")?,
            resident: widen(mibs.resident.read(), "stats.resident")?,
            mapped: widen(mibs.mapped.read(), "stats.mapped")?,
            metadata: widen(mibs.metadata.read(), "stats.metadata")?,
            retained: widen(mibs.retained.read(), "stats.retained")?,
            small_requests: read_u64(&mibs.small_requests, "stats.arenas.4096.small.nrequests")?,
            large_requests: read_u64(&mibs.large_requests, "stats.arenas.4096.large.nrequests")?,
            process_resident: process::resident_bytes()?,
            minor_page_faults: faults.minor,
            major_page_faults: faults.major,
        })
    }

    /// The process's values alone, for a program whose global allocator is not jemalloc.
    pub(crate) fn sample_process() -> Result<Self, HeartbeatError> {
        let faults = process::page_faults()?;
        Ok(Self {
            allocator: Allocator::Other,
            process_resident: process::resident_bytes()?,
            minor_page_faults: faults.minor,
            major_page_faults: faults.major,
            ..Self::default()
        })
    }

    /// Bytes of active pages not used by live allocations.
    ///
    /// # Definition
    ///
    /// `active - allocated` (saturating at 0).
    ///
    /// # Interpretation
    ///
    /// The price of size-class rounding and partly used pages. A value that grows while
    /// `allocated` stays flat means many half-empty pages: allocations of mixed lifetimes are
    /// pinning pages, which a buffer pool with a sensible maximum size usually cures.
    ///
    /// ```
    /// use heapscape_heartbeat::HeapStats;
    ///
    /// let mut stats = HeapStats::default();
    /// stats.allocated = 900;
    /// stats.active = 4096;
    /// assert_eq!(stats.fragmentation_bytes(), 3196);
    /// ```
    #[must_use]
    pub fn fragmentation_bytes(&self) -> u64 {
        self.active.saturating_sub(self.allocated)
    }

    /// Resident bytes that hold neither live pages nor jemalloc metadata.
    ///
    /// # Definition
    ///
    /// `resident - active - metadata` (saturating at 0).
    ///
    /// # Interpretation
    ///
    /// Freed ("dirty") pages jemalloc still holds and will purge to the OS after its decay time
    /// (`dirty_decay_ms`, 10 s by default). A large value right after a burst is normal; a
    /// value that stays large means the decay time is too long for this workload. Because
    /// `resident` is an upper bound, so is this.
    ///
    /// ```
    /// use heapscape_heartbeat::HeapStats;
    ///
    /// let mut stats = HeapStats::default();
    /// stats.resident = 10_000;
    /// stats.active = 7_000;
    /// stats.metadata = 1_000;
    /// assert_eq!(stats.dirty_bytes(), 2_000);
    /// stats.metadata = 5_000;
    /// assert_eq!(stats.dirty_bytes(), 0);
    /// ```
    #[must_use]
    pub fn dirty_bytes(&self) -> u64 {
        self.resident
            .saturating_sub(self.active)
            .saturating_sub(self.metadata)
    }
}

#[cfg(feature = "jemalloc")]
/// MIB handles, looked up once per process: a MIB read skips jemalloc's string lookup.
struct Mibs {
    epoch: epoch_mib,
    allocated: stats::allocated_mib,
    active: stats::active_mib,
    resident: stats::resident_mib,
    mapped: stats::mapped_mib,
    metadata: stats::metadata_mib,
    retained: stats::retained_mib,
    small_requests: [usize; 5],
    large_requests: [usize; 5],
}

#[cfg(feature = "jemalloc")]
static MIBS: OnceLock<Mibs> = OnceLock::new();

#[cfg(feature = "jemalloc")]
impl Mibs {
    fn get() -> Result<&'static Self, HeartbeatError> {
        if let Some(mibs) = MIBS.get() {
            return Ok(mibs);
        }
        // A failed lookup is not cached, so the next tick tries again.
        let mibs = Self::lookup()?;
        Ok(MIBS.get_or_init(|| mibs))
    }

    fn lookup() -> Result<Self, HeartbeatError> {
        Ok(Self {
            epoch: epoch::mib().map_err(HeartbeatError::mallctl("epoch"))?,
            allocated: stats::allocated::mib()
                .map_err(HeartbeatError::mallctl("stats.allocated"))?,
            active: stats::active::mib().map_err(HeartbeatError::mallctl("stats.active"))?,
            resident: stats::resident::mib().map_err(HeartbeatError::mallctl("stats.resident"))?,
            mapped: stats::mapped::mib().map_err(HeartbeatError::mallctl("stats.mapped"))?,
            metadata: stats::metadata::mib().map_err(HeartbeatError::mallctl("stats.metadata"))?,
            retained: stats::retained::mib().map_err(HeartbeatError::mallctl("stats.retained"))?,
            small_requests: arenas_all_mib(
                b"stats.arenas.4096.small.nrequests\0",
                "stats.arenas.4096.small.nrequests",
            )?,
            large_requests: arenas_all_mib(
                b"stats.arenas.4096.large.nrequests\0",
                "stats.arenas.4096.large.nrequests",
            )?,
        })
    }
}

#[cfg(feature = "jemalloc")]
fn arenas_all_mib(key: &[u8], name: &'static str) -> Result<[usize; 5], HeartbeatError> {
    let mut mib = [0; 5];
    raw::name_to_mib(key, &mut mib).map_err(HeartbeatError::mallctl(name))?;
    debug_assert_eq!(
        mib[2], ARENAS_ALL,
        "integer name components map to themselves"
    );
    Ok(mib)
}

#[cfg(feature = "jemalloc")]
fn read_u64(mib: &[usize; 5], name: &'static str) -> Result<u64, HeartbeatError> {
    // SAFETY: `stats.arenas.<i>.{small,large}.nrequests` are `uint64_t` (jemalloc(3)); `raw`
    // checks the length jemalloc wrote, and every bit pattern is a valid `u64`.
    unsafe { raw::read_mib::<u64>(mib) }.map_err(HeartbeatError::mallctl(name))
}

#[cfg(feature = "jemalloc")]
fn widen(
    value: tikv_jemalloc_ctl::Result<usize>,
    name: &'static str,
) -> Result<u64, HeartbeatError> {
    // usize -> u64 is lossless on every platform jemalloc supports.
    value
        .map(|bytes| bytes as u64)
        .map_err(HeartbeatError::mallctl(name))
}

/// Process-wide counters the kernel keeps: what churn costs outside the allocator.
mod process {
    use std::io;
    use std::mem::MaybeUninit;

    use crate::HeartbeatError;

    pub(super) struct PageFaults {
        pub(super) minor: u64,
        pub(super) major: u64,
    }

    pub(super) fn page_faults() -> Result<PageFaults, HeartbeatError> {
        let mut usage = MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `usage` is valid for writes of one `rusage`, and RUSAGE_SELF is a valid `who`.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
        if rc != 0 {
            return Err(HeartbeatError::Process {
                what: "getrusage(RUSAGE_SELF)",
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: getrusage returned 0, so it filled the struct (and it started zeroed).
        let usage = unsafe { usage.assume_init() };
        Ok(PageFaults {
            minor: u64::try_from(usage.ru_minflt).unwrap_or(0),
            major: u64::try_from(usage.ru_majflt).unwrap_or(0),
        })
    }

    #[cfg(target_os = "linux")]
    pub(super) fn resident_bytes() -> Result<u64, HeartbeatError> {
        use std::io::Read;
        use std::sync::OnceLock;

        static PAGE_SIZE: OnceLock<u64> = OnceLock::new();
        let err = |source| HeartbeatError::Process {
            what: "/proc/self/statm",
            source,
        };
        // statm is "size resident shared text lib data dt" in pages: under 100 bytes, so a stack
        // buffer avoids allocating inside the sampler.
        let mut buf = [0u8; 256];
        let len = std::fs::File::open("/proc/self/statm")
            .and_then(|mut file| file.read(&mut buf))
            .map_err(err)?;
        let resident_pages = std::str::from_utf8(&buf[..len])
            .ok()
            .and_then(|text| text.split_ascii_whitespace().nth(1))
            .and_then(|field| field.parse::<u64>().ok())
            .ok_or_else(|| {
                err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "unexpected format",
                ))
            })?;
        let page_size = *PAGE_SIZE.get_or_init(|| {
            // SAFETY: sysconf has no preconditions.
            let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            u64::try_from(size).unwrap_or(4096)
        });
        Ok(resident_pages * page_size)
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn resident_bytes() -> Result<u64, HeartbeatError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "jemalloc")]
    #[test]
    fn sample_is_consistent() {
        let stats = HeapStats::sample().expect("jemalloc is the unit tests' global allocator");
        assert!(stats.allocated > 0);
        assert!(stats.allocated <= stats.active, "{stats:?}");
        assert!(stats.active <= stats.resident, "{stats:?}");
        assert!(stats.active <= stats.mapped, "{stats:?}");
        assert!(stats.metadata > 0, "{stats:?}");
        assert!(stats.small_requests > 0, "{stats:?}");
        #[cfg(target_os = "linux")]
        assert!(stats.process_resident > 0, "{stats:?}");
    }

    #[cfg(not(feature = "jemalloc"))]
    #[test]
    fn without_the_feature_a_sample_says_how_to_get_one() {
        let error = HeapStats::sample().expect_err("no jemalloc statistics without the feature");
        assert!(
            matches!(error, HeartbeatError::JemallocDisabled),
            "{error:?}"
        );
        assert!(error.to_string().contains("`jemalloc` feature"), "{error}");
        let process = HeapStats::sample_process().expect("the process's values need no jemalloc");
        assert_eq!(process.allocator, Allocator::Other);
    }

    #[test]
    fn derived_values_saturate() {
        let stats = HeapStats {
            allocated: 10,
            metadata: 10,
            ..HeapStats::default()
        };
        assert_eq!(stats.fragmentation_bytes(), 0);
        assert_eq!(stats.dirty_bytes(), 0);
    }
}
