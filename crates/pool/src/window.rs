//! The recent window the recommendations read: a ring of per-interval histograms of
//! returned lengths, peaks of buffers held and of idle bytes, and idle-cap discards, rotated
//! by time when the stats are read.
//!
//! Nothing here runs on the get or return path. The per-thread counters hold lifetime
//! totals; each read of the stats (the heartbeat reads them every tick) adds what changed
//! since the previous read to the interval in force, so a return counts in the interval of
//! the first read after it.

use std::time::{Duration, Instant};

use crate::histogram::FineSizeHistogram;

/// Intervals per window: the window moves in steps of a twelfth of its length.
pub(crate) const INTERVALS: usize = 12;

/// The ring of intervals covering the recent window.
///
/// Invariants: `slots[n % INTERVALS]` holds interval `n` for the `INTERVALS` intervals up to
/// `newest`; older intervals have been cleared. `seen` is the lifetime histogram at the
/// last read, so every return is added to exactly one interval.
pub(crate) struct Window {
    /// The window length the intervals were cut for.
    length: Duration,
    /// Start of interval 0.
    origin: Instant,
    /// The newest interval, counted from `origin`.
    newest: u64,
    /// When the data the ring holds began: the ring's creation, or that of the ring it
    /// replaced, whose data it took over.
    since: Instant,
    slots: Box<[Interval; INTERVALS]>,
    /// The lifetime totals at the last read.
    seen: Totals,
}

/// A read's lifetime totals: what the window adds the change of.
#[derive(Clone, Copy, Default)]
pub(crate) struct Totals {
    /// Lengths returned (empty ones left out).
    pub(crate) lengths: FineSizeHistogram,
    /// Returns discarded by an idle cap.
    pub(crate) idle_cap_discards: u64,
}

/// A read's gauges: what the window keeps the peak of.
#[derive(Clone, Copy, Default)]
pub(crate) struct Gauges {
    /// Buffers held now, in use or idle.
    pub(crate) held: u64,
    /// Bytes of the idle buffers held now.
    pub(crate) idle_bytes: u64,
}

#[derive(Clone, Copy, Default)]
struct Interval {
    lengths: FineSizeHistogram,
    idle_cap_discards: u64,
    peak: Gauges,
}

/// The window's sums at a read.
pub(crate) struct Recent {
    /// Lengths returned within the window.
    pub(crate) lengths: FineSizeHistogram,
    /// Returns discarded by an idle cap within the window.
    pub(crate) idle_cap_discards: u64,
    /// The most buffers held, and the most idle bytes, at any read within the window.
    pub(crate) peak: Gauges,
    /// How much time the sums cover: the window, or less while the pool is younger.
    pub(crate) span: Duration,
}

impl Window {
    pub(crate) fn new(length: Duration, now: Instant) -> Self {
        Self {
            length,
            origin: now,
            newest: 0,
            since: now,
            slots: Box::new([Interval::default(); INTERVALS]),
            seen: Totals::default(),
        }
    }

    /// Adds what changed since the last read to the interval of `now` (moving past the
    /// intervals that ended first), given the lifetime totals and the gauges now, and returns
    /// the window's sums.
    ///
    /// A window `length` other than the ring's (a reconfiguration) starts a new ring whose
    /// first interval holds everything the old one did, so the old data leave within one new
    /// window rather than at once.
    pub(crate) fn read(
        &mut self,
        length: Duration,
        now: Instant,
        totals: &Totals,
        gauges: Gauges,
    ) -> Recent {
        if length != self.length {
            let old = self.sums(now);
            let (seen, since) = (self.seen, self.since);
            *self = Self::new(length, now);
            (self.seen, self.since) = (seen, since);
            self.slots[0] = Interval {
                lengths: old.lengths,
                idle_cap_discards: old.idle_cap_discards,
                peak: old.peak,
            };
        }
        self.advance_to(now);
        let slot = &mut self.slots[self.newest as usize % INTERVALS];
        slot.lengths.add(&totals.lengths.since(&self.seen.lengths));
        slot.idle_cap_discards += totals
            .idle_cap_discards
            .saturating_sub(self.seen.idle_cap_discards);
        slot.peak.held = slot.peak.held.max(gauges.held);
        slot.peak.idle_bytes = slot.peak.idle_bytes.max(gauges.idle_bytes);
        self.seen = *totals;
        self.sums(now)
    }

    /// Clears the intervals that ended before `now`'s. A `now` before the newest interval
    /// (a reader that took the time before another's read) counts in the newest.
    fn advance_to(&mut self, now: Instant) {
        let step = (self.length / INTERVALS as u32).max(Duration::from_nanos(1));
        let elapsed = now.saturating_duration_since(self.origin);
        let interval = u64::try_from(elapsed.as_nanos() / step.as_nanos()).unwrap_or(u64::MAX);
        let ended = interval.saturating_sub(self.newest).min(INTERVALS as u64);
        for n in 1..=ended {
            self.slots[(self.newest + n) as usize % INTERVALS] = Interval::default();
        }
        self.newest = self.newest.max(interval);
    }

    fn sums(&self, now: Instant) -> Recent {
        let mut recent = Recent {
            lengths: FineSizeHistogram::default(),
            idle_cap_discards: 0,
            peak: Gauges::default(),
            span: now.saturating_duration_since(self.since).min(self.length),
        };
        for slot in self.slots.iter() {
            recent.lengths.add(&slot.lengths);
            recent.idle_cap_discards += slot.idle_cap_discards;
            recent.peak.held = recent.peak.held.max(slot.peak.held);
            recent.peak.idle_bytes = recent.peak.idle_bytes.max(slot.peak.idle_bytes);
        }
        recent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const STEP: Duration = Duration::from_secs(300);

    /// Lifetime totals that grow by `n` returns of `len` bytes at each call.
    struct Lifetime(Totals);

    impl Lifetime {
        fn new() -> Self {
            Self(Totals::default())
        }

        fn add(&mut self, n: usize, len: usize) -> &Totals {
            for _ in 0..n {
                self.0.lengths.record(len);
            }
            &self.0
        }
    }

    fn held(held: u64) -> Gauges {
        Gauges {
            held,
            idle_bytes: 0,
        }
    }

    #[test]
    fn returns_leave_the_window_one_window_after_their_interval() {
        let t0 = Instant::now();
        let mut window = Window::new(HOUR, t0);
        let mut lifetime = Lifetime::new();
        let recent = window.read(HOUR, t0 + STEP / 2, lifetime.add(10, 1000), held(3));
        assert_eq!((recent.lengths.count(), recent.peak.held), (10, 3));
        // Still there in the last interval of the window...
        let recent = window.read(HOUR, t0 + HOUR - STEP / 2, lifetime.add(5, 2000), held(1));
        assert_eq!((recent.lengths.count(), recent.peak.held), (15, 3));
        // ... and gone when the interval they were read in is a window old.
        let recent = window.read(HOUR, t0 + HOUR, lifetime.add(0, 0), held(1));
        assert_eq!((recent.lengths.count(), recent.peak.held), (5, 1));
        assert_eq!(recent.lengths.quantile(0.0), Some(2048));
        // A long silence empties every interval, counted once however long.
        let recent = window.read(HOUR, t0 + 100 * HOUR, lifetime.add(0, 0), held(0));
        assert_eq!((recent.lengths.count(), recent.peak.held), (0, 0));
        assert_eq!(recent.span, HOUR, "the window, once the pool is older");
    }

    #[test]
    fn discards_and_idle_bytes_are_windowed_and_the_span_grows_to_the_window() {
        let t0 = Instant::now();
        let mut window = Window::new(HOUR, t0);
        let mut totals = Totals {
            idle_cap_discards: 3,
            ..Totals::default()
        };
        let gauges = Gauges {
            held: 2,
            idle_bytes: 5000,
        };
        let recent = window.read(HOUR, t0 + STEP, &totals, gauges);
        assert_eq!(
            (recent.idle_cap_discards, recent.peak.idle_bytes),
            (3, 5000)
        );
        assert_eq!(recent.span, STEP, "a young pool covers its own age");
        totals.idle_cap_discards = 4;
        let recent = window.read(HOUR, t0 + 2 * STEP, &totals, Gauges::default());
        assert_eq!(
            (recent.idle_cap_discards, recent.peak.idle_bytes),
            (4, 5000)
        );
        let recent = window.read(HOUR, t0 + HOUR + STEP, &totals, Gauges::default());
        assert_eq!((recent.idle_cap_discards, recent.peak.idle_bytes), (1, 0));
    }

    #[test]
    fn a_late_reader_counts_in_the_newest_interval() {
        let t0 = Instant::now();
        let mut window = Window::new(HOUR, t0);
        let mut lifetime = Lifetime::new();
        window.read(HOUR, t0 + 3 * STEP, lifetime.add(1, 10), held(0));
        let recent = window.read(HOUR, t0 + STEP, lifetime.add(1, 10), held(0));
        assert_eq!(recent.lengths.count(), 2);
        // Intervals 0 and 1 end a window later; interval 3, where both were counted, not yet.
        let recent = window.read(HOUR, t0 + HOUR + STEP, lifetime.add(0, 0), held(0));
        assert_eq!(recent.lengths.count(), 2, "both counted in interval 3");
        let recent = window.read(HOUR, t0 + HOUR + 3 * STEP, lifetime.add(0, 0), held(0));
        assert_eq!(recent.lengths.count(), 0);
    }

    #[test]
    fn a_new_length_keeps_the_data_for_one_new_window() {
        let t0 = Instant::now();
        let mut window = Window::new(HOUR, t0);
        let mut lifetime = Lifetime::new();
        window.read(HOUR, t0, lifetime.add(4, 100), held(2));
        let minute = Duration::from_secs(60);
        let recent = window.read(minute, t0 + STEP, lifetime.add(1, 100), held(1));
        assert_eq!((recent.lengths.count(), recent.peak.held), (5, 2));
        let recent = window.read(minute, t0 + STEP + minute, lifetime.add(0, 0), held(1));
        assert_eq!((recent.lengths.count(), recent.peak.held), (0, 1));
    }
}
