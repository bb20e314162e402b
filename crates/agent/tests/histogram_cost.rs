//! A busy pool's publication costs what its buckets cost, not what its returns cost: after five
//! million returns one publish renders exact bucket counts, `_sum` and `_count` on `/metrics`.

// The Prometheus listener (or mode b's recorder) needs the `tokio` feature.
#![cfg(feature = "tokio")]

use heapscape::{Agent, Config};
use heapscape_testkit::{WAIT, http_get, wait_for};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The heartbeat's own publications (every hour) stay out of the way; the test publishes.
const CONFIG: &str = "\
service: it-cost
labels: { pooling: \"on\" }
exporter:
  prometheus: { listen: 127.0.0.1:0 }
heartbeat: { interval: 1h }
pools:
  pcm: { initial_capacity: 4KiB, max_buffer_size: 1MiB, max_idle_buffers: 8, max_idle_bytes: 16MiB }
";

const RETURNS: u64 = 5_000_000;
/// Every this many returns, one buffer goes back holding 1000 bytes (bucket `le="1024"`);
/// the others hold 40 bytes (the pool's bucket 64, `le="64"`).
const EVERY: u64 = 1000;

/// The value of the series line that starts with `series ` (name and labels as written).
fn value_of(exposition: &str, series: &str) -> Option<String> {
    exposition.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .map(str::to_owned)
    })
}

fn returns(pool: &heapscape::Pool, count: u64) {
    for i in 0..count {
        let mut buf = pool.get();
        if i % EVERY == 0 {
            buf.resize(1000, 0);
        } else {
            buf.extend_from_slice(&[7; 40]);
        }
    }
}

#[test]
fn five_million_returns_render_exact_counts() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let agent = Agent::builder()
        .config(Config::from_yaml_str(CONFIG, "cost.yaml").expect("config"))
        .start()
        .expect("start");
    let addr = agent.metrics_addr().expect("prometheus listener");
    let pcm = agent.pool("pcm").expect("pool pcm");

    // Whatever the heartbeat published at start is already counted; these are all new.
    pcm.publish();
    returns(&pcm, RETURNS);
    pcm.publish();

    // Global labels first (sorted by name, as the agent adds them to the exporter), then the
    // pool: the order metrics-exporter-prometheus renders.
    let labels = "pooling=\"on\",service=\"it-cost\",pool=\"pcm\"";
    let length = "heapscape_pool_returned_length_bytes";
    let scrape = || {
        let (status, body) = http_get(addr, "/metrics")?;
        (status == 200).then_some(body)
    };
    let exposition = wait_for(WAIT, "/metrics", scrape);
    let small = RETURNS - RETURNS / EVERY;
    for (series, expected) in [
        (format!("{length}_bucket{{{labels},le=\"32\"}}"), None),
        (
            format!("{length}_bucket{{{labels},le=\"64\"}}"),
            Some(small.to_string()),
        ),
        (
            format!("{length}_bucket{{{labels},le=\"512\"}}"),
            Some(small.to_string()),
        ),
        (
            format!("{length}_bucket{{{labels},le=\"1024\"}}"),
            Some(RETURNS.to_string()),
        ),
        (
            // Spelled as the Go client (and so the StatsD path) spells it.
            format!("{length}_bucket{{{labels},le=\"1.073741824e+09\"}}"),
            Some(RETURNS.to_string()),
        ),
        (
            format!("{length}_bucket{{{labels},le=\"+Inf\"}}"),
            Some(RETURNS.to_string()),
        ),
        (
            format!("{length}_count{{{labels}}}"),
            Some(RETURNS.to_string()),
        ),
        // Each return counts at its fine bucket's upper bound: 40 B in (38, 46], 1000 B in
        // (864, 1024].
        (
            format!("{length}_sum{{{labels}}}"),
            Some((small * 46 + RETURNS / EVERY * 1024).to_string()),
        ),
        (
            format!("heapscape_pool_returned_capacity_bytes_count{{{labels}}}"),
            Some(RETURNS.to_string()),
        ),
        (
            format!("heapscape_pool_returns_total{{{labels}}}"),
            Some(RETURNS.to_string()),
        ),
    ] {
        assert_eq!(
            value_of(&exposition, &series),
            expected,
            "{series} in\n{exposition}"
        );
    }
    assert!(
        exposition.contains(&format!("# TYPE {length} histogram\n")),
        "{exposition}"
    );
    assert!(
        exposition.contains(&format!("# HELP {length} ")),
        "{exposition}"
    );

    // Later publications add their delta.
    returns(&pcm, 1000);
    pcm.publish();
    let exposition = wait_for(WAIT, "/metrics", scrape);
    assert_eq!(
        value_of(&exposition, &format!("{length}_count{{{labels}}}")),
        Some((RETURNS + 1000).to_string()),
        "{exposition}"
    );

    // The listener serves `/metrics` and `/health`, nothing else.
    assert_eq!(http_get(addr, "/health"), Some((200, "OK".to_owned())));
    assert_eq!(
        http_get(addr, "/other").map(|(status, _)| status),
        Some(404)
    );
    agent.shutdown();
}
