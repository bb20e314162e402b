//! Without jemalloc as the global allocator (this binary runs on the system allocator), a
//! one-off sample fails with a hint instead of reading an empty heap, while the heartbeat keeps
//! publishing the process's values and every pool, and says which allocator it found.

use heapscape_heartbeat::{Allocator, HeapStats, Heartbeat, HeartbeatError};
use heapscape_pool::Pool;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[cfg(not(feature = "jemalloc"))]
#[test]
fn without_the_jemalloc_feature_sample_names_the_feature() {
    let error = HeapStats::sample().expect_err("the crate cannot read jemalloc");
    assert!(
        matches!(error, HeartbeatError::JemallocDisabled),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("without its `jemalloc` feature"),
        "{error}"
    );
}

#[test]
fn the_system_allocator_is_detected_as_other() {
    assert_eq!(Allocator::detect(), Allocator::Other);
    assert_eq!(Allocator::detect().as_str(), "other");
}

#[cfg(feature = "jemalloc")]
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
fn heartbeat_keeps_running_on_the_process_values() {
    let handle = Heartbeat::builder().build().spawn_thread().expect("thread");
    handle.stop();
    assert!(handle.ticks() >= 1);
    assert_eq!(handle.last_error(), None);
    let stats = handle.last_stats().expect("the process sample succeeded");
    assert_eq!(stats.allocator, Allocator::Other);
    assert_eq!(stats.allocated, 0, "no jemalloc value: {stats:?}");
    assert_eq!(stats.small_requests, 0, "no jemalloc value: {stats:?}");
    assert!(stats.minor_page_faults > 0, "{stats:?}");
    #[cfg(target_os = "linux")]
    assert!(stats.process_resident > 0, "{stats:?}");
}

#[test]
fn a_tick_publishes_the_process_the_pools_and_the_allocator_but_no_jemalloc_gauge() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let pool = Pool::builder("not-global").build().expect("valid pool");
    metrics::with_local_recorder(&recorder, || {
        // As a failed tick would leave it.
        metrics::gauge!("heapscape_heartbeat_up").set(0.0);
        heapscape_heartbeat::describe_metrics();
        Heartbeat::builder()
            .pool(pool)
            .build()
            .tick()
            .expect("the process values can be read");
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let published = |name: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| key.key().name() == name)
            .map(|(key, _, _, value)| (key.key(), value))
    };
    let value = |name: &str| published(name).map(|(_, value)| value);

    let (info, info_value) = published("heapscape_allocator_info").expect("allocator info");
    let labels: Vec<(&str, &str)> = info
        .labels()
        .map(|label| (label.key(), label.value()))
        .collect();
    assert_eq!(labels, [("allocator", "other")]);
    assert_eq!(info_value, &DebugValue::Gauge(1.0.into()));

    assert_eq!(
        value("heapscape_heartbeat_up"),
        Some(&DebugValue::Gauge(1.0.into()))
    );
    assert!(value("heapscape_heartbeat_last_success_timestamp_seconds").is_some());
    // Published, whatever its value: counters go out by their change since the last tick,
    // and the totals are the process's, so another test's tick may have published them.
    assert!(
        matches!(
            value("heapscape_process_minor_page_faults_total"),
            Some(DebugValue::Counter(_))
        ),
        "{snapshot:?}"
    );
    #[cfg(target_os = "linux")]
    assert!(
        matches!(
            value("heapscape_process_resident_bytes"),
            Some(DebugValue::Gauge(bytes)) if bytes.into_inner() > 0.0
        ),
        "{snapshot:?}"
    );
    assert!(
        snapshot.iter().any(|(key, ..)| {
            key.key().name().starts_with("heapscape_pool_")
                && key
                    .key()
                    .labels()
                    .any(|label| label.key() == "pool" && label.value() == "not-global")
        }),
        "the pool is published: {snapshot:?}"
    );
    let jemalloc: Vec<&str> = snapshot
        .iter()
        .map(|(key, ..)| key.key().name())
        .filter(|name| name.starts_with("heapscape_jemalloc_"))
        .collect();
    assert!(jemalloc.is_empty(), "absent, not zero: {jemalloc:?}");
}
