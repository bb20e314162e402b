//! The Prometheus path against a real Prometheus: exposition passes `promtool check metrics`,
//! and PromQL returns the heap gauges, pool counters and histogram buckets with their labels.

// The Prometheus listener (or mode b's recorder) needs the `tokio` feature.
#![cfg(feature = "tokio")]

mod common;

use common::exposition::{promtool_check, repeated_lines};
use heapscape::{Agent, Config};
use heapscape_testkit::{ConfigFile, Prometheus, WAIT, http_get, wait_for};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CONFIG: &str = "\
service: it-prometheus
labels: { pooling: \"on\" }
exporter:
  prometheus: { listen: 127.0.0.1:0, allow: [127.0.0.1/32] }
heartbeat: { interval: 500ms }
pools:
  pcm: { initial_capacity: 4KiB, max_buffer_size: 1MiB, max_idle_buffers: 8, max_idle_bytes: 16MiB }
";

#[test]
fn prometheus_scrapes_heap_pool_and_histogram_series() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let config_file = ConfigFile::new("heapscape.yaml", CONFIG);
    let agent = Agent::builder()
        .config(Config::from_file(config_file.path()).expect("config"))
        .start()
        .expect("start");
    let metrics_addr = agent.metrics_addr().expect("prometheus listener");
    assert!(metrics_addr.ip().is_loopback());
    assert_ne!(metrics_addr.port(), 0);

    // Traffic: misses, then hits, returns of several sizes, one over the max.
    let pcm = agent.pool("pcm").expect("pool pcm");
    for round in 0..50usize {
        let mut buf = pcm.get();
        buf.resize(1000 * (round % 7 + 1), 0);
    }
    pcm.get().resize(2 << 20, 0);

    // The exposition has real buckets (not a summary) and passes promtool.
    let exposition = wait_for(WAIT, "pool histogram and heap gauges on /metrics", || {
        let (status, body) = http_get(metrics_addr, "/metrics")?;
        (status == 200
            && body.contains("heapscape_pool_returned_length_bytes_bucket{")
            && body.contains("heapscape_jemalloc_allocated_bytes{")
            && body.contains("heapscape_heartbeat_sample_duration_seconds_bucket{"))
        .then_some(body)
    });
    assert!(
        !exposition.contains("quantile="),
        "histograms must not render as summaries:\n{exposition}"
    );
    // Bounds as the Go client (and so the StatsD path) spells them.
    assert!(exposition.contains("le=\"1.048576e+06\""), "{exposition}");
    assert!(exposition.contains("le=\"1e-05\""), "{exposition}");
    assert!(
        exposition.contains("service=\"it-prometheus\""),
        "{exposition}"
    );
    assert!(
        exposition.contains("heapscape_config_reloads_total"),
        "{exposition}"
    );
    let repeated = repeated_lines(&exposition);
    assert!(repeated.is_empty(), "{repeated:?} in\n{exposition}");
    if let Err(problems) = promtool_check(&exposition) {
        panic!("promtool check metrics failed:\n{problems}\n---\n{exposition}");
    }

    // A real Prometheus scrapes the agent every second.
    let prometheus = Prometheus::start(&format!(
        "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
         scrape_configs:\n  - job_name: heapscape\n    static_configs:\n      - targets: ['{metrics_addr}']\n"
    ));
    // A failed query (no answer, not JSON, an error) is no series yet.
    let query = |promql: &str| prometheus.query(promql).unwrap_or_default();

    for (promql, label) in [
        ("heapscape_jemalloc_allocated_bytes", "service"),
        ("heapscape_jemalloc_resident_bytes", "pooling"),
        ("heapscape_pool_hits_total{pool=\"pcm\"}", "pool"),
        ("heapscape_pool_misses_total{pool=\"pcm\"}", "pool"),
        ("heapscape_pool_returns_total{pool=\"pcm\"}", "pool"),
        ("heapscape_pool_max_buffer_size_bytes{pool=\"pcm\"}", "pool"),
        (
            "heapscape_pool_returned_length_bytes_bucket{pool=\"pcm\"}",
            "le",
        ),
        ("heapscape_heartbeat_sample_duration_seconds_bucket", "le"),
        (
            "heapscape_config_last_reload_success_timestamp_seconds",
            "service",
        ),
    ] {
        let result = wait_for(WAIT, &format!("PromQL `{promql}` to return series"), || {
            let result = query(promql);
            (!result.is_empty()).then_some(result)
        });
        for series in &result {
            let labels = &series["metric"];
            assert_eq!(labels["service"], "it-prometheus", "{promql}: {series}");
            assert_eq!(labels["pooling"], "on", "{promql}: {series}");
            assert!(
                labels.get(label).is_some(),
                "{promql}: no `{label}` in {series}"
            );
        }
    }
    let hits = query("heapscape_pool_hits_total{pool=\"pcm\"}");
    let value: f64 = hits[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(value >= 1.0, "hits: {hits:?}");
    // The buckets aggregate: a fleet-wide quantile is one query.
    wait_for(WAIT, "histogram_quantile over the buckets", || {
        let result = query(
            "histogram_quantile(0.95, sum by (le) (heapscape_pool_returned_length_bytes_bucket))",
        );
        let value: f64 = result.first()?["value"][1].as_str()?.parse().ok()?;
        (value > 0.0).then_some(())
    });

    agent.shutdown();
}
