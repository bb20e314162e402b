//! Buffers grown by doubling, as a `Vec` grows when a request writes into it: a buffer the pool
//! allocates on a miss reaches the max buffer size exactly, so only requests longer than the max
//! are shrunk on return.

use heapscape_pool::{Pool, PoolConfig};

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
