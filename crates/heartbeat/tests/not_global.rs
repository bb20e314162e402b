//! Without jemalloc as the global allocator, sampling fails with a hint instead of publishing
//! the statistics of an empty heap.

use heapscape_heartbeat::{HeapStats, Heartbeat, HeartbeatError};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

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

#[test]
fn a_failed_sample_sets_up_to_zero() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        // As a tick whose sample succeeded leaves it.
        metrics::gauge!("heapscape_heartbeat_up").set(1.0);
        Heartbeat::builder()
            .build()
            .tick()
            .expect_err("the system allocator is in use");
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let published = |name: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| key.key().name() == name)
            .map(|entry| &entry.3)
    };
    assert_eq!(
        published("heapscape_heartbeat_up"),
        Some(&DebugValue::Gauge(0.0.into()))
    );
    assert!(
        published("heapscape_heartbeat_last_success_timestamp_seconds").is_none(),
        "a failed sample is no success"
    );
}
