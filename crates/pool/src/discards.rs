//! Why buffers leave the pool, and how many left for each reason.

use std::ops::Index;

#[cfg(doc)]
use crate::config::OverMaxPolicy;

/// Why a returned or idle buffer left the pool.
///
/// `OverMax`, `IdleBuffersCap` and `IdleBytesCap` are decided when a buffer comes back;
/// `IdleTimeout`, `Reconfigure` and `Spare` release buffers that were already idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DiscardReason {
    /// Its capacity was over the max buffer size (with [`OverMaxPolicy::Drop`]).
    OverMax,
    /// The pool already held `max_idle_buffers` idle buffers.
    IdleBuffersCap,
    /// Keeping it would have put idle bytes over `max_idle_bytes`.
    IdleBytesCap,
    /// It stayed idle longer than the idle timeout and [`Pool::trim`](crate::Pool::trim)
    /// released it.
    IdleTimeout,
    /// It was idle when [`Pool::reconfigure`](crate::Pool::reconfigure) (or
    /// [`Pool::set_max_buffer_size`](crate::Pool::set_max_buffer_size)) lowered a cap it
    /// no longer fitted under: the max buffer size with [`OverMaxPolicy::Drop`], the idle
    /// buffers or the idle bytes. Released from the shared depot at once, from a thread's
    /// private slot at that thread's next `get` or return.
    Reconfigure,
    /// It was the spare (an idle buffer over the max, see
    /// [`PooledBuf::reserve`](crate::PooledBuf::reserve)) and made room, within the idle
    /// caps, for a buffer within the max that they would otherwise have discarded.
    Spare,
}

impl DiscardReason {
    /// Every reason, in the order of [`Discards::iter`].
    pub const ALL: [DiscardReason; 6] = [
        Self::OverMax,
        Self::IdleBuffersCap,
        Self::IdleBytesCap,
        Self::IdleTimeout,
        Self::Reconfigure,
        Self::Spare,
    ];

    /// The `reason` label value of `heapscape_pool_discards_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OverMax => "over_max",
            Self::IdleBuffersCap => "idle_buffers_cap",
            Self::IdleBytesCap => "idle_bytes_cap",
            Self::IdleTimeout => "idle_timeout",
            Self::Reconfigure => "reconfigure",
            Self::Spare => "spare",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Buffers released, by reason: the `discards` of a [`PoolStats`](crate::PoolStats) snapshot,
/// published as `heapscape_pool_discards_total{reason}`.
///
/// Read a reason by name or by [`DiscardReason`]:
///
/// ```
/// use heapscape_pool::Pool;
/// use heapscape_pool::config::OverMaxPolicy;
/// use heapscape_pool::stats::DiscardReason;
///
/// let pool = Pool::builder("pcm")
///     .max_buffer_size(4096)
///     .over_max(OverMaxPolicy::Drop)
///     .build()?;
/// pool.get().resize(10_000, 0); // grows past the max: dropped on return
/// let discards = pool.stats().discards;
/// assert_eq!(discards.over_max, 1);
/// assert_eq!(discards[DiscardReason::OverMax], 1);
/// assert_eq!(discards.total(), 1);
/// # Ok::<(), heapscape_pool::PoolError>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Discards {
    /// Returned over the max buffer size with [`OverMaxPolicy::Drop`]
    /// ([`DiscardReason::OverMax`]).
    pub over_max: u64,
    /// Returned while `max_idle_buffers` buffers were idle ([`DiscardReason::IdleBuffersCap`]).
    pub idle_buffers_cap: u64,
    /// Returned when keeping them would have put idle bytes over `max_idle_bytes`
    /// ([`DiscardReason::IdleBytesCap`]).
    pub idle_bytes_cap: u64,
    /// Released by [`Pool::trim`](crate::Pool::trim) after the idle timeout
    /// ([`DiscardReason::IdleTimeout`]).
    pub idle_timeout: u64,
    /// Released because a lowered cap no longer allowed them ([`DiscardReason::Reconfigure`]).
    pub reconfigure: u64,
    /// The spare, released to make room for a buffer within the max
    /// ([`DiscardReason::Spare`]).
    pub spare: u64,
}

impl Discards {
    /// The counts of the pool's counters, kept in [`DiscardReason::ALL`] order.
    pub(crate) fn from_counts(counts: [u64; DiscardReason::ALL.len()]) -> Self {
        let [
            over_max,
            idle_buffers_cap,
            idle_bytes_cap,
            idle_timeout,
            reconfigure,
            spare,
        ] = counts;
        Self {
            over_max,
            idle_buffers_cap,
            idle_bytes_cap,
            idle_timeout,
            reconfigure,
            spare,
        }
    }

    /// Buffers released for any reason.
    pub fn total(&self) -> u64 {
        self.iter().map(|(_, count)| count).sum()
    }

    /// Each reason with its count, in [`DiscardReason::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (DiscardReason, u64)> + '_ {
        DiscardReason::ALL
            .into_iter()
            .map(|reason| (reason, self[reason]))
    }
}

impl Index<DiscardReason> for Discards {
    type Output = u64;

    fn index(&self, reason: DiscardReason) -> &u64 {
        match reason {
            DiscardReason::OverMax => &self.over_max,
            DiscardReason::IdleBuffersCap => &self.idle_buffers_cap,
            DiscardReason::IdleBytesCap => &self.idle_bytes_cap,
            DiscardReason::IdleTimeout => &self.idle_timeout,
            DiscardReason::Reconfigure => &self.reconfigure,
            DiscardReason::Spare => &self.spare,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counts_land_on_their_reasons() {
        let discards = Discards::from_counts([1, 2, 3, 4, 5, 6]);
        let by_reason: Vec<(&str, u64)> = discards
            .iter()
            .map(|(reason, count)| (reason.as_str(), count))
            .collect();
        assert_eq!(
            by_reason,
            [
                ("over_max", 1),
                ("idle_buffers_cap", 2),
                ("idle_bytes_cap", 3),
                ("idle_timeout", 4),
                ("reconfigure", 5),
                ("spare", 6),
            ]
        );
        assert_eq!(discards.total(), 21);
        for (i, reason) in DiscardReason::ALL.into_iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
    }
}
