//! jemalloc's purging settings: how long freed pages stay resident before jemalloc returns
//! them to the operating system, and whether background threads do the purging.
//!
//! The pool's caps decide how many bytes are *allocated*; these settings decide how fast the
//! bytes freed meanwhile leave the *resident* set. jemalloc frees pages in two steps: a dirty
//! page (freed, still resident) becomes muzzy after `dirty_decay_ms` (`MADV_FREE`: the kernel
//! may take it back), and a muzzy page is released after `muzzy_decay_ms` (`MADV_DONTNEED`).
//! Without background threads the purging happens only when some thread calls into jemalloc;
//! with them, on jemalloc's own threads even while the program is idle.
//!
//! [`DecaySettings::apply`] changes them while the program runs: `arenas.dirty_decay_ms` and
//! `arenas.muzzy_decay_ms` only set the default of arenas created later, so it also writes
//! `arena.<i>.dirty_decay_ms` and `arena.<i>.muzzy_decay_ms` for every existing arena.
//! [`DecayState::read`] reads them back; each heartbeat tick publishes them as gauges.

use std::time::Duration;

#[cfg(feature = "jemalloc")]
use tikv_jemalloc_ctl::raw;

use crate::HeartbeatError;
use crate::metrics::{JEMALLOC_BACKGROUND_THREAD, JEMALLOC_DIRTY_DECAY, JEMALLOC_MUZZY_DECAY};

/// The longest decay time accepted: one day. jemalloc takes far longer ones, but a page kept
/// resident for over a day after it was freed is the same as never purging it.
pub const MAX_DECAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Settings to apply; `None` leaves jemalloc's current value (its default: dirty 10 s, muzzy
/// 0 s, no background threads, unless `MALLOC_CONF` says otherwise).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecaySettings {
    /// Time a freed page stays dirty (resident) before it is purged or made muzzy; zero
    /// purges at once. A whole number of milliseconds, at most [`MAX_DECAY`].
    pub dirty_decay: Option<Duration>,
    /// Time a muzzy page waits before it is released; same rules.
    pub muzzy_decay: Option<Duration>,
    /// Whether jemalloc's background threads purge (without waiting for the next allocation).
    pub background_thread: Option<bool>,
}

/// The settings in force, as jemalloc reports them.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecayState {
    /// `arenas.dirty_decay_ms`: milliseconds, -1 for never.
    pub dirty_decay_ms: i64,
    /// `arenas.muzzy_decay_ms`: milliseconds, -1 for never.
    pub muzzy_decay_ms: i64,
    /// `background_thread`.
    pub background_thread: bool,
}

/// What is wrong with a decay time, in words an operator can act on.
///
/// # Errors
///
/// A time that is not a whole number of milliseconds, or over [`MAX_DECAY`].
pub fn check_decay(decay: Duration) -> Result<(), String> {
    if decay > MAX_DECAY {
        return Err(format!(
            "{decay:?} is longer than jemalloc's useful range: write at most 24h (the default \
             is 10s for dirty pages, 0s for muzzy ones)"
        ));
    }
    if !decay.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(format!(
            "{decay:?} is not a whole number of milliseconds, which is jemalloc's resolution: \
             write e.g. 1s, 500ms or 0s"
        ));
    }
    Ok(())
}

#[cfg(feature = "jemalloc")]
fn milliseconds(decay: Duration) -> isize {
    // `check_decay` keeps it at most a day: 86.4e6 ms fits every isize of 32 bits or more.
    isize::try_from(decay.as_millis()).unwrap_or(isize::MAX)
}

impl DecaySettings {
    /// Applies the settings that are set, to the defaults of new arenas and to every existing
    /// arena, then starts or stops background threads.
    ///
    /// # Errors
    ///
    /// `HeartbeatError::Mallctl` when jemalloc refuses a value (one that fails
    /// [`check_decay`], or background threads on a jemalloc built without them) or is not the
    /// allocator linked in; the settings before the failing one stay applied. Built without the
    /// `jemalloc` feature, `HeartbeatError::JemallocDisabled` when any setting is set.
    pub fn apply(&self) -> Result<(), HeartbeatError> {
        // Nothing to apply is not an error: an agent applies its (default) settings at start.
        #[cfg(not(feature = "jemalloc"))]
        return if *self == Self::default() {
            Ok(())
        } else {
            Err(HeartbeatError::JemallocDisabled)
        };
        #[cfg(feature = "jemalloc")]
        self.apply_to_jemalloc()
    }

    #[cfg(feature = "jemalloc")]
    fn apply_to_jemalloc(&self) -> Result<(), HeartbeatError> {
        if let Some(decay) = self.dirty_decay {
            set_decay(
                b"arenas.dirty_decay_ms\0",
                "arenas.dirty_decay_ms",
                "arena.<i>.dirty_decay_ms",
                "dirty_decay_ms",
                decay,
            )?;
        }
        if let Some(decay) = self.muzzy_decay {
            set_decay(
                b"arenas.muzzy_decay_ms\0",
                "arenas.muzzy_decay_ms",
                "arena.<i>.muzzy_decay_ms",
                "muzzy_decay_ms",
                decay,
            )?;
        }
        if let Some(enabled) = self.background_thread {
            // SAFETY: `background_thread` is a bool in jemalloc's mallctl tree.
            unsafe { raw::write(b"background_thread\0", enabled) }
                .map_err(HeartbeatError::mallctl("background_thread"))?;
        }
        Ok(())
    }
}

#[cfg(feature = "jemalloc")]
fn set_decay(
    default_name: &'static [u8],
    default_label: &'static str,
    arena_label: &'static str,
    key: &str,
    decay: Duration,
) -> Result<(), HeartbeatError> {
    let value = milliseconds(decay);
    // SAFETY: `arenas.*_decay_ms` is an ssize_t in jemalloc's mallctl tree.
    unsafe { raw::write(default_name, value) }.map_err(HeartbeatError::mallctl(default_label))?;
    // SAFETY: `arenas.narenas` is an unsigned int.
    let arenas: u32 = unsafe { raw::read(b"arenas.narenas\0") }
        .map_err(HeartbeatError::mallctl("arenas.narenas"))?;
    for index in 0..arenas {
        // Indexes jemalloc reserved but has not created yet take the new default when created
        // (writing to them fails).
        let initialized = format!("arena.{index}.initialized\0");
        // SAFETY: `arena.<i>.initialized` is a bool.
        if !unsafe { raw::read::<bool>(initialized.as_bytes()) }
            .map_err(HeartbeatError::mallctl("arena.<i>.initialized"))?
        {
            continue;
        }
        let name = format!("arena.{index}.{key}\0");
        // SAFETY: `arena.<i>.*_decay_ms` is an ssize_t, like the default above.
        unsafe { raw::write(name.as_bytes(), value) }
            .map_err(HeartbeatError::mallctl(arena_label))?;
    }
    Ok(())
}

impl DecayState {
    /// Reads the settings in force from jemalloc.
    ///
    /// # Errors
    ///
    /// `HeartbeatError::Mallctl` when jemalloc is not the allocator linked in;
    /// `HeartbeatError::JemallocDisabled` built without the `jemalloc` feature.
    pub fn read() -> Result<Self, HeartbeatError> {
        #[cfg(not(feature = "jemalloc"))]
        return Err(HeartbeatError::JemallocDisabled);
        #[cfg(feature = "jemalloc")]
        Self::read_from_jemalloc()
    }

    #[cfg(feature = "jemalloc")]
    fn read_from_jemalloc() -> Result<Self, HeartbeatError> {
        // SAFETY: the types are jemalloc's: ssize_t, ssize_t, bool.
        unsafe {
            Ok(Self {
                dirty_decay_ms: raw::read::<isize>(b"arenas.dirty_decay_ms\0")
                    .map_err(HeartbeatError::mallctl("arenas.dirty_decay_ms"))?
                    as i64,
                muzzy_decay_ms: raw::read::<isize>(b"arenas.muzzy_decay_ms\0")
                    .map_err(HeartbeatError::mallctl("arenas.muzzy_decay_ms"))?
                    as i64,
                background_thread: raw::read::<bool>(b"background_thread\0")
                    .map_err(HeartbeatError::mallctl("background_thread"))?,
            })
        }
    }

    /// Publishes the settings as gauges (seconds, -1 for never; 1 or 0).
    // Milliseconds below 2^53 convert exactly.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn publish(&self) {
        let seconds = |ms: i64| if ms < 0 { -1.0 } else { ms as f64 / 1000.0 };
        JEMALLOC_DIRTY_DECAY.set(seconds(self.dirty_decay_ms));
        JEMALLOC_MUZZY_DECAY.set(seconds(self.muzzy_decay_ms));
        JEMALLOC_BACKGROUND_THREAD.set(if self.background_thread { 1.0 } else { 0.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "jemalloc"))]
    #[test]
    fn without_the_feature_only_setting_something_fails() {
        assert!(DecaySettings::default().apply().is_ok());
        let settings = DecaySettings {
            dirty_decay: Some(Duration::from_secs(1)),
            ..DecaySettings::default()
        };
        let error = settings
            .apply()
            .expect_err("nothing can write jemalloc's settings");
        assert!(
            matches!(error, HeartbeatError::JemallocDisabled),
            "{error:?}"
        );
        assert!(matches!(
            DecayState::read(),
            Err(HeartbeatError::JemallocDisabled)
        ));
    }

    #[test]
    fn decay_times_must_be_whole_milliseconds_within_a_day() {
        assert!(check_decay(Duration::ZERO).is_ok());
        assert!(check_decay(Duration::from_millis(1500)).is_ok());
        assert!(check_decay(MAX_DECAY).is_ok());
        let error = check_decay(Duration::from_micros(1500)).unwrap_err();
        assert!(error.contains("whole number of milliseconds"), "{error}");
        let error = check_decay(MAX_DECAY + Duration::from_millis(1)).unwrap_err();
        assert!(error.contains("at most 24h"), "{error}");
    }
}
