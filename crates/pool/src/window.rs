//! The recent window the recommendations read: a ring of per-interval histograms of
//! returned lengths and peaks of buffers in use, rotated by time when the stats are read.
//!
//! Nothing here runs on the get or return path. The per-thread counters hold lifetime
//! totals; each read of the stats (the heartbeat reads them every tick) adds what changed
//! since the previous read to the interval in force, so a return counts in the interval of
//! the first read after it.

use std::time::{Duration, Instant};

use crate::fine::FineSizeHistogram;

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
    slots: Box<[Interval; INTERVALS]>,
    seen: FineSizeHistogram,
}

#[derive(Clone, Copy, Default)]
struct Interval {
    lengths: FineSizeHistogram,
    peak_held: u64,
}

/// The window's sums at a read.
pub(crate) struct Recent {
    /// Lengths returned within the window.
    pub(crate) lengths: FineSizeHistogram,
    /// The most buffers in use at any read within the window.
    pub(crate) peak_held: u64,
}

impl Window {
    pub(crate) fn new(length: Duration, now: Instant) -> Self {
        Self {
            length,
            origin: now,
            newest: 0,
            slots: Box::new([Interval::default(); INTERVALS]),
            seen: FineSizeHistogram::default(),
        }
    }

    /// Adds what changed since the last read to the interval of `now` (moving past the
    /// intervals that ended first), given the lifetime histogram of returned lengths and the
    /// buffers held now (in use or idle), and returns the window's sums.
    ///
    /// A window `length` other than the ring's (a reconfiguration) starts a new ring whose
    /// first interval holds everything the old one did, so the old data leave within one new
    /// window rather than at once.
    pub(crate) fn read(
        &mut self,
        length: Duration,
        now: Instant,
        lengths: &FineSizeHistogram,
        held: u64,
    ) -> Recent {
        if length != self.length {
            let Recent {
                lengths: old,
                peak_held,
            } = self.sums();
            let seen = self.seen;
            *self = Self::new(length, now);
            self.seen = seen;
            self.slots[0] = Interval {
                lengths: old,
                peak_held,
            };
        }
        self.advance_to(now);
        let slot = &mut self.slots[self.newest as usize % INTERVALS];
        slot.lengths.add(&lengths.since(&self.seen));
        slot.peak_held = slot.peak_held.max(held);
        self.seen = *lengths;
        self.sums()
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

    fn sums(&self) -> Recent {
        let mut recent = Recent {
            lengths: FineSizeHistogram::default(),
            peak_held: 0,
        };
        for slot in self.slots.iter() {
            recent.lengths.add(&slot.lengths);
            recent.peak_held = recent.peak_held.max(slot.peak_held);
        }
        recent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const STEP: Duration = Duration::from_secs(300);

    /// A lifetime histogram that grows by `n` returns of `len` bytes at each call.
    struct Lifetime(FineSizeHistogram);

    impl Lifetime {
        fn add(&mut self, n: usize, len: usize) -> &FineSizeHistogram {
            for _ in 0..n {
                self.0.record(len);
            }
            &self.0
        }
    }

    #[test]
    fn returns_leave_the_window_one_window_after_their_interval() {
        let t0 = Instant::now();
        let mut window = Window::new(HOUR, t0);
        let mut lifetime = Lifetime(FineSizeHistogram::default());
        let recent = window.read(HOUR, t0 + STEP / 2, lifetime.add(10, 1000), 3);
        assert_eq!((recent.lengths.count(), recent.peak_held), (10, 3));
        // Still there in the last interval of the window...
        let recent = window.read(HOUR, t0 + HOUR - STEP / 2, lifetime.add(5, 2000), 1);
        assert_eq!((recent.lengths.count(), recent.peak_held), (15, 3));
        // ... and gone when the interval they were read in is a window old.
        let recent = window.read(HOUR, t0 + HOUR, lifetime.add(0, 0), 1);
        assert_eq!((recent.lengths.count(), recent.peak_held), (5, 1));
        assert_eq!(recent.lengths.quantile(0.0), Some(2048));
        // A long silence empties every interval, counted once however long.
        let recent = window.read(HOUR, t0 + 100 * HOUR, lifetime.add(0, 0), 0);
        assert_eq!((recent.lengths.count(), recent.peak_held), (0, 0));
    }

    #[test]
    fn a_late_reader_counts_in_the_newest_interval() {
        let t0 = Instant::now();
        let mut window = Window::new(HOUR, t0);
        let mut lifetime = Lifetime(FineSizeHistogram::default());
        window.read(HOUR, t0 + 3 * STEP, lifetime.add(1, 10), 0);
        let recent = window.read(HOUR, t0 + STEP, lifetime.add(1, 10), 0);
        assert_eq!(recent.lengths.count(), 2);
        // Intervals 0 and 1 end a window later; interval 3, where both were counted, not yet.
        let recent = window.read(HOUR, t0 + HOUR + STEP, lifetime.add(0, 0), 0);
        assert_eq!(recent.lengths.count(), 2, "both counted in interval 3");
        let recent = window.read(HOUR, t0 + HOUR + 3 * STEP, lifetime.add(0, 0), 0);
        assert_eq!(recent.lengths.count(), 0);
    }

    #[test]
    fn a_new_length_keeps_the_data_for_one_new_window() {
        let t0 = Instant::now();
        let mut window = Window::new(HOUR, t0);
        let mut lifetime = Lifetime(FineSizeHistogram::default());
        window.read(HOUR, t0, lifetime.add(4, 100), 2);
        let minute = Duration::from_secs(60);
        let recent = window.read(minute, t0 + STEP, lifetime.add(1, 100), 1);
        assert_eq!((recent.lengths.count(), recent.peak_held), (5, 2));
        let recent = window.read(minute, t0 + STEP + minute, lifetime.add(0, 0), 1);
        assert_eq!((recent.lengths.count(), recent.peak_held), (0, 1));
    }
}
