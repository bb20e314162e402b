//! What a tick publishes, observed through a `DebuggingRecorder` installed as the global
//! recorder. One test function: the recorder and the counters' delta state are process-wide.
//! Without the `jemalloc` feature, `not_global.rs` covers what a tick publishes.

#![cfg(feature = "jemalloc")]

use std::hint::black_box;

use heapscape_heartbeat::Heartbeat;
use heapscape_pool::Pool;
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

#[cfg(feature = "counting")]
#[global_allocator]
static GLOBAL: heapscape_heartbeat::CountingJemalloc = heapscape_heartbeat::CountingJemalloc;

#[cfg(not(feature = "counting"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

type Entry = (MetricKind, String, Vec<(String, String)>, DebugValue);

fn snapshot(snapshotter: &Snapshotter) -> Vec<Entry> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let labels = key
                .key()
                .labels()
                .map(|label| (label.key().to_owned(), label.value().to_owned()))
                .collect();
            (key.kind(), key.key().name().to_owned(), labels, value)
        })
        .collect()
}

fn value<'a>(entries: &'a [Entry], name: &str) -> &'a DebugValue {
    entries
        .iter()
        .find(|entry| entry.1 == name)
        .map(|entry| &entry.3)
        .unwrap_or_else(|| panic!("{name} not published: {entries:?}"))
}

fn counter(entries: &[Entry], name: &str) -> u64 {
    match value(entries, name) {
        DebugValue::Counter(value) => *value,
        other => panic!("{name} is not a counter: {other:?}"),
    }
}

fn gauge(entries: &[Entry], name: &str) -> f64 {
    match value(entries, name) {
        DebugValue::Gauge(value) => value.into_inner(),
        other => panic!("{name} is not a gauge: {other:?}"),
    }
}

#[test]
fn ticks_publish_gauges_counters_by_delta_and_pools() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this binary");
    heapscape_heartbeat::describe_metrics();

    let pool = Pool::builder("publish-test").build().expect("valid pool");
    let heartbeat = Heartbeat::builder().pool(pool).build();

    let first = heartbeat.tick().expect("sample");
    drop(snapshot(&snapshotter)); // The debugging recorder resets counters when read.

    for _ in 0..100 {
        drop(black_box(Vec::<u8>::with_capacity(1 << 20)));
    }
    let second = heartbeat.tick().expect("sample");
    let entries = snapshot(&snapshotter);

    // Counters carry the growth between the two ticks, not the absolute value.
    let large = counter(&entries, "heapscape_jemalloc_large_requests_total");
    assert_eq!(large, second.large_requests - first.large_requests);
    assert!(large >= 100, "{large}");
    assert_eq!(
        counter(&entries, "heapscape_jemalloc_small_requests_total"),
        second.small_requests - first.small_requests
    );
    assert_eq!(
        counter(&entries, "heapscape_process_minor_page_faults_total"),
        second.minor_page_faults - first.minor_page_faults
    );
    #[cfg(feature = "counting")]
    assert!(counter(&entries, "heapscape_alloc_bytes_total") >= 100 << 20);

    #[allow(clippy::cast_precision_loss)]
    let allocated = second.allocated as f64;
    assert_eq!(
        gauge(&entries, "heapscape_jemalloc_allocated_bytes"),
        allocated
    );
    assert_eq!(gauge(&entries, "heapscape_heartbeat_up"), 1.0);
    let allocator_info: Vec<&Entry> = entries
        .iter()
        .filter(|entry| entry.1 == "heapscape_allocator_info")
        .collect();
    assert_eq!(
        allocator_info,
        [&(
            MetricKind::Gauge,
            "heapscape_allocator_info".to_owned(),
            vec![("allocator".to_owned(), "jemalloc".to_owned())],
            DebugValue::Gauge(1.0.into())
        )]
    );
    assert!(
        gauge(
            &entries,
            "heapscape_heartbeat_last_success_timestamp_seconds"
        ) > 1.6e9
    );
    assert_eq!(
        gauge(&entries, "heapscape_heartbeat_interval_seconds"),
        10.0
    );
    match value(&entries, "heapscape_heartbeat_sample_duration_seconds") {
        DebugValue::Histogram(values) => assert_eq!(values.len(), 1),
        other => panic!("not a histogram: {other:?}"),
    }

    // The pool was published with its label.
    let pool_label = ("pool".to_owned(), "publish-test".to_owned());
    assert!(
        entries
            .iter()
            .any(|entry| entry.1.starts_with("heapscape_pool_") && entry.2.contains(&pool_label)),
        "{entries:?}"
    );
}
