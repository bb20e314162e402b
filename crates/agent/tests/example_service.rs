//! The example service (examples/service, mode b) as a service runs it: its own
//! metrics-exporter-prometheus and `/metrics` route, heapscape added without an exporter. One
//! scrape carries the service's request counter and heapscape's heartbeat, pool counters and
//! bucketed pool histograms, passes `promtool check metrics` and writes no series, `# HELP` or
//! `# TYPE` line twice.

// The Prometheus listener (or mode b's recorder) needs the `tokio` feature.
#![cfg(feature = "tokio")]

#[path = "../examples/service/app.rs"]
mod app;
mod common;

use common::exposition::{promtool_check, repeated_lines};
use heapscape_testkit::{ConfigFile, WAIT, http_get, wait_for};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// What the heartbeat publishes about the heap: jemalloc's statistics, or without the
/// `jemalloc` feature the allocator it found instead (the label appears on no other metric).
const HEAP_SIGN: &str = if cfg!(feature = "jemalloc") {
    "heapscape_jemalloc_allocated_bytes{"
} else {
    "allocator=\"other\""
};

const CONFIG: &str = "\
heartbeat: { interval: 200ms }
pools:
  bodies: { initial_capacity: 1KiB, max_buffer_size: 64KiB }
";

#[test]
fn one_exposition_carries_the_services_metrics_and_heapscapes() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let config = ConfigFile::new("heapscape.yaml", CONFIG);
    let service = runtime
        .block_on(app::start(([127, 0, 0, 1], 0).into(), config.path()))
        .expect("the example service starts");

    for _ in 0..5 {
        let (status, body) = http_get(service.addr, "/hello").expect("GET /hello");
        assert_eq!((status, body.as_str()), (200, "hello from the greeter\n"));
    }
    // Five returns of the pool are published by a heartbeat tick after the requests.
    let exposition = wait_for(WAIT, "the pool's returns on the service's /metrics", || {
        let (status, body) = http_get(service.addr, "/metrics")?;
        (status == 200
            && body.contains(
                "heapscape_pool_returned_length_bytes_count{service=\"greeter\",pool=\"bodies\"} 5\n",
            )
            && body.contains("heapscape_heartbeat_up{")
            && body.contains(HEAP_SIGN))
        .then_some(body)
    });

    assert!(
        exposition.contains("greeter_requests_total{service=\"greeter\",route=\"/hello\"} 5\n"),
        "{exposition}"
    );
    assert!(
        exposition.contains(
            "heapscape_pool_returned_length_bytes_bucket{service=\"greeter\",pool=\"bodies\",le=\"64\"} 5\n"
        ),
        "{exposition}"
    );
    assert!(
        exposition.contains("# TYPE heapscape_heartbeat_sample_duration_seconds histogram\n"),
        "the heartbeat's histogram has buckets without the service configuring any:\n{exposition}"
    );
    assert!(
        !exposition.contains("quantile="),
        "no histogram renders as a summary:\n{exposition}"
    );
    assert!(
        exposition.contains("heapscape_config_last_reload_success_timestamp_seconds{"),
        "{exposition}"
    );
    let repeated = repeated_lines(&exposition);
    assert!(repeated.is_empty(), "{repeated:?} in\n{exposition}");
    if let Err(problems) = promtool_check(&exposition) {
        panic!("promtool check metrics failed:\n{problems}\n---\n{exposition}");
    }

    runtime.block_on(service.shutdown());
}
