//! `HeapStats::sample` against the real jemalloc of this test binary.

#![cfg(feature = "jemalloc")]

use std::hint::black_box;

use heapscape_heartbeat::HeapStats;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const MIB: u64 = 1 << 20;

fn sample() -> HeapStats {
    HeapStats::sample().expect("jemalloc is this binary's global allocator")
}

#[test]
fn values_are_consistent() {
    let stats = sample();
    assert!(stats.allocated > 0, "{stats:?}");
    assert!(stats.allocated <= stats.active, "{stats:?}");
    assert!(stats.active <= stats.resident, "{stats:?}");
    assert!(stats.active <= stats.mapped, "{stats:?}");
    assert!(stats.metadata > 0, "{stats:?}");
    assert_eq!(stats.fragmentation_bytes(), stats.active - stats.allocated);
    assert!(stats.dirty_bytes() <= stats.resident, "{stats:?}");
    if cfg!(target_os = "linux") {
        assert!(stats.process_resident > 0, "{stats:?}");
    }
}

#[test]
fn allocating_64_mib_raises_allocated_by_about_that_much() {
    let before = sample();
    let buffer = black_box(vec![1u8; 64 << 20]);
    let during = sample();
    let grown = during.allocated.saturating_sub(before.allocated);
    // Other tests of this binary allocate concurrently, but only kilobytes.
    assert!(
        (60 * MIB..=72 * MIB).contains(&grown),
        "allocated grew by {grown} bytes: {before:?} -> {during:?}"
    );
    assert!(during.resident >= during.allocated, "{during:?}");
    // Touching 64 MiB of fresh pages makes the kernel map them.
    assert!(
        during.minor_page_faults > before.minor_page_faults,
        "{during:?}"
    );
    drop(buffer);
    let after = sample();
    assert!(after.allocated < during.allocated, "{after:?}");
}

#[test]
fn request_counters_count_up() {
    let before = sample();
    for _ in 0..100 {
        // Above the thread cache's largest size class: counted by the arena at once.
        drop(black_box(Vec::<u8>::with_capacity(1 << 20)));
    }
    // Enough small allocations to overflow the thread cache, which merges its counts on flush.
    let boxes: Vec<Box<u64>> = (0..20_000).map(Box::new).collect();
    drop(black_box(boxes));
    let after = sample();
    assert!(
        after.large_requests >= before.large_requests + 100,
        "{before:?} -> {after:?}"
    );
    assert!(
        after.small_requests > before.small_requests,
        "{before:?} -> {after:?}"
    );
    assert!(after.minor_page_faults >= before.minor_page_faults);
    assert!(after.major_page_faults >= before.major_page_faults);
}
