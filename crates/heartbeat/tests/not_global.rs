//! Without jemalloc as the global allocator, sampling fails with a hint instead of publishing
//! the statistics of an empty heap.

use heapscape_heartbeat::{HeapStats, Heartbeat, HeartbeatError};

#[test]
fn sample_says_jemalloc_is_not_the_global_allocator() {
    let error = HeapStats::sample().expect_err("the system allocator is in use");
    assert!(
        matches!(error, HeartbeatError::NotGlobalAllocator),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("is jemalloc the global allocator?"),
        "{error}"
    );
}

#[test]
fn heartbeat_keeps_running_and_reports_the_error() {
    let handle = Heartbeat::builder().build().spawn_thread().expect("thread");
    handle.stop();
    assert!(handle.ticks() >= 1);
    assert_eq!(handle.last_stats(), None);
    let message = handle.last_error().expect("the samples failed");
    assert!(message.contains("global allocator"), "{message}");
}
