//! Buffers grown by doubling, as a `Vec` grows when a request writes into it: a buffer the pool
//! allocates on a miss reaches the max buffer size exactly, so only requests longer than the max
//! are shrunk on return; every return that grew on loan is counted as a regrow; and a buffer
//! grown past the max through the guard's `reserve` is kept whole as the spare, which the next
//! such `reserve` takes instead of reallocating.

use heapscape_pool::stats::DiscardReason;
use heapscape_pool::{Pool, PoolConfig, PooledBuf};

/// A recommended max (a fine bucket bound, not a power of two) and the initial capacity the
/// speech service runs with.
const MAX: usize = 1_490_944;
const INITIAL: usize = 256 << 10;

/// Writes `len` bytes into a buffer from a fresh pool the way a streaming request does (64 KiB
/// chunks), returns it, and says how many returns were shrunk and the capacity it reached.
fn fill_and_return(len: usize) -> (u64, usize) {
    let pool = Pool::builder("growth")
        .initial_capacity(INITIAL)
        .max_buffer_size(MAX)
        .build()
        .unwrap();
    let mut buf = pool.get();
    let chunk = [0u8; 64 << 10];
    while buf.len() < len {
        let take = chunk.len().min(len - buf.len());
        buf.extend_from_slice(&chunk[..take]);
    }
    let reached = buf.capacity();
    drop(buf);
    (pool.stats().shrinks, reached)
}

#[test]
fn a_miss_starts_on_the_max_s_doubling_ladder() {
    let pool = Pool::builder("growth")
        .initial_capacity(INITIAL)
        .max_buffer_size(MAX)
        .build()
        .unwrap();
    let config = pool.config();
    assert_eq!(config.miss_capacity(), MAX / 8);
    assert!(config.miss_capacity() <= INITIAL, "never above the setting");
    assert_eq!(pool.get().capacity(), MAX / 8, "a miss allocates it");
}

#[test]
fn requests_within_the_max_never_grow_past_it() {
    // From 256 KiB, doubling passes 1 MiB to 2 MiB: every request between 1 MiB and the max
    // would be shrunk on return, leaving a freed tail, though it fit within the max.
    for len in [100_000, 300_000, 1_100_000, 1_400_000, MAX] {
        let (shrinks, reached) = fill_and_return(len);
        assert_eq!(shrinks, 0, "{len} B: shrunk, capacity {reached}");
        assert!(reached <= MAX, "{len} B reached {reached}");
    }
    let (shrinks, reached) = fill_and_return(MAX + 1);
    assert_eq!(
        (shrinks, reached),
        (1, 2 * MAX),
        "over the max: one doubling, shrunk"
    );
}

#[test]
fn the_miss_capacity_is_the_largest_step_at_or_below_the_initial_capacity() {
    let config = |initial, max| {
        let mut config = PoolConfig::default();
        (config.initial_capacity, config.max_buffer_size) = (initial, max);
        config.miss_capacity()
    };
    assert_eq!(
        config(256 << 10, 4 << 20),
        256 << 10,
        "already on the ladder"
    );
    assert_eq!(config(300_000, 1 << 20), 262_144);
    assert_eq!(config(4 << 20, 4 << 20), 4 << 20);
    assert_eq!(config(1, 5), 1);
    // An odd max: its halves round down, and doubling stops within a few bytes below it.
    assert_eq!(config(1000, 3001), 750);
}

/// A pool with the speech service's max and initial capacity, idle caps roomy enough for the
/// spare.
fn speech_pool() -> Pool {
    idle_bytes_pool(8 * MAX)
}

/// The same with `max_idle_bytes` idle bytes at most.
fn idle_bytes_pool(max_idle_bytes: usize) -> Pool {
    Pool::builder("growth")
        .initial_capacity(INITIAL)
        .max_buffer_size(MAX)
        .max_idle_buffers(4)
        .max_idle_bytes(max_idle_bytes)
        .build()
        .unwrap()
}

/// Streams one byte past the max into a buffer of `pool` and returns it.
fn return_one_past_the_max(pool: &Pool) {
    let mut buf = pool.get();
    stream_into(&mut buf, MAX + 1);
    drop(buf);
}

/// Streams `len` bytes into `buf` in 4 KiB chunks, each made room for with the guard's
/// `reserve`, as the speech service writes a PCM stream.
fn stream_into(buf: &mut PooledBuf<'_>, len: usize) {
    let chunk = [7u8; 4096];
    while buf.len() < len {
        let take = chunk.len().min(len - buf.len());
        buf.reserve(take);
        buf.extend_from_slice(&chunk[..take]);
    }
}

#[test]
fn returns_that_grew_on_loan_count_as_regrows() {
    let pool = speech_pool();
    // A miss (MAX / 8) grown to 300 kB: it doubled on loan.
    let mut buf = pool.get();
    buf.extend_from_slice(&[0; 300_000]);
    drop(buf);
    assert_eq!(pool.stats().regrows, 1);
    // The same buffer again, within what it holds: no regrow.
    let mut buf = pool.get();
    buf.extend_from_slice(&[0; 300_000]);
    drop(buf);
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.regrows), (1, 1));
    // A donation is not lent, so it never counts.
    pool.donate(Vec::with_capacity(1000));
    // Nor an empty return.
    drop(pool.get());
    let stats = pool.stats();
    assert_eq!((stats.returns, stats.regrows), (4, 1));
    // Through a `Bytes`, as the speech service hands its buffer to the response.
    #[cfg(feature = "bytes")]
    {
        let mut buf = pool.get_owned();
        buf.extend_from_slice(&[0; MAX + 1]);
        drop(buf.into_bytes());
        assert_eq!(pool.stats().regrows, 2);
    }
}

#[test]
fn a_buffer_grown_past_the_max_by_reserve_becomes_the_spare() {
    let pool = speech_pool();
    let mut first = pool.get();
    stream_into(&mut first, MAX + 100_000);
    assert_eq!(first.capacity(), 2 * MAX, "one doubling from the max");
    drop(first);
    let stats = pool.stats();
    assert_eq!(
        (
            stats.shrinks,
            stats.regrows,
            stats.idle_buffers,
            stats.idle_bytes
        ),
        (0, 1, 1, 2 * MAX as u64),
        "kept whole, an idle buffer like the others"
    );

    // The next long stream takes the spare as it passes the max: its own buffer goes back
    // idle, nothing is reallocated, and the contents come along.
    let mut second = pool.get();
    stream_into(&mut second, MAX);
    let own = second.as_ptr();
    stream_into(&mut second, MAX + 200_000);
    assert_ne!(second.as_ptr(), own, "traded for the spare");
    assert_eq!(second.capacity(), 2 * MAX);
    assert!(second.iter().all(|&b| b == 7), "the contents came along");
    let stats = pool.stats();
    assert_eq!(
        (stats.idle_buffers, stats.idle_bytes),
        (1, MAX as u64),
        "its own buffer is idle, the spare on loan"
    );
    drop(second);
    let stats = pool.stats();
    // Two misses (a `get` never hands out the spare); the second buffer grew to the max
    // before the trade, which set what it counts as lent with to the spare's capacity.
    assert_eq!(
        (
            stats.shrinks,
            stats.regrows,
            stats.misses,
            stats.idle_buffers
        ),
        (0, 1, 2, 2),
        "the spare did not grow on loan: no regrow, no shrink"
    );
    assert_eq!(stats.idle_bytes, 3 * MAX as u64);
}

#[test]
fn the_spare_is_one_buffer_of_at_most_twice_the_max() {
    let pool = speech_pool();
    // Two long streams at once; the longer grows past twice the max.
    let mut long = pool.get();
    let mut longer = pool.get();
    stream_into(&mut long, MAX + 1);
    stream_into(&mut longer, 2 * MAX + 1);
    assert_eq!(longer.capacity(), 4 * MAX);
    drop(longer);
    // Kept as the spare, shrunk to twice the max.
    let stats = pool.stats();
    assert_eq!((stats.shrinks, stats.idle_bytes), (1, 2 * MAX as u64));
    drop(long);
    // The spare is taken: shrunk to the max like any return over it.
    let stats = pool.stats();
    assert_eq!(
        (stats.shrinks, stats.idle_buffers, stats.idle_bytes),
        (2, 2, 3 * MAX as u64)
    );
}

#[test]
fn without_reserve_past_the_max_returns_over_it_are_shrunk_as_before() {
    let pool = speech_pool();
    for _ in 0..2 {
        let mut buf = pool.get();
        buf.extend_from_slice(&vec![0; MAX + 1]);
        drop(buf);
    }
    let stats = pool.stats();
    assert_eq!((stats.shrinks, stats.idle_bytes), (2, MAX as u64));
}

#[test]
fn the_spare_counts_against_the_idle_caps_and_leaves_with_them() {
    let pool = idle_bytes_pool(2 * MAX);
    return_one_past_the_max(&pool);
    let stats = pool.stats();
    assert_eq!((stats.idle_buffers, stats.idle_bytes), (1, 2 * MAX as u64));
    // A lowered max releases a spare over twice the new max.
    pool.set_initial_capacity(MAX / 8).unwrap();
    pool.set_max_buffer_size(MAX / 2).unwrap();
    let stats = pool.stats();
    assert_eq!(stats.idle_buffers, 0);
    assert_eq!(stats.discards[DiscardReason::Reconfigure], 1);
}

#[test]
fn a_spare_the_caps_have_no_room_for_is_shrunk_instead() {
    let pool = idle_bytes_pool(MAX + MAX / 2);
    return_one_past_the_max(&pool);
    let stats = pool.stats();
    assert_eq!(
        (stats.shrinks, stats.idle_buffers, stats.idle_bytes),
        (1, 1, MAX as u64)
    );
}

#[test]
fn the_spare_makes_room_for_buffers_within_the_max() {
    let pool = idle_bytes_pool(3 * MAX);
    let (mut a, mut b, mut c) = (pool.get(), pool.get(), pool.get());
    stream_into(&mut c, MAX + 1);
    drop(c);
    stream_into(&mut a, MAX);
    drop(a);
    let stats = pool.stats();
    assert_eq!((stats.idle_buffers, stats.idle_bytes), (2, 3 * MAX as u64));
    // The caps hold the spare and one buffer of the max, not two: the spare goes.
    stream_into(&mut b, MAX);
    drop(b);
    let stats = pool.stats();
    assert_eq!(
        (stats.idle_buffers, stats.idle_bytes),
        (2, 2 * MAX as u64),
        "both buffers of the max kept"
    );
    assert_eq!(stats.discards[DiscardReason::Spare], 1);
    assert_eq!(stats.discards.idle_bytes_cap, 0);
}
