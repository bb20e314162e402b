//! The agent in a program without a tokio runtime: no `#[tokio::test]`, no runtime entered.
//! The heartbeat runs on its own thread and the Prometheus listener on the agent's private
//! runtime; a scrape shows the pool's and the heartbeat's series; shutdown ends both threads.

// The Prometheus listener (or mode b's recorder) needs the `tokio` feature.
#![cfg(feature = "tokio")]

use heapscape::{Agent, Config};
use heapscape_testkit::{WAIT, http_get, wait_for};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The agent's threads that are running now, from this process's thread names (Linux:
/// /proc/self/task/*/comm, which the kernel cuts to 15 bytes).
fn agent_threads() -> Vec<&'static str> {
    let names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    ["heapscape-heartbeat", "heapscape-metrics"]
        .into_iter()
        .filter(|thread| names.iter().any(|name| thread.starts_with(name.as_str())))
        .collect()
}

#[test]
fn the_agent_runs_and_stops_without_a_tokio_runtime() {
    assert!(tokio::runtime::Handle::try_current().is_err());
    let config = Config::from_yaml_str(
        "service: plain\n\
         exporter: { prometheus: { listen: 127.0.0.1:0 } }\n\
         heartbeat: { interval: 200ms }\n\
         pools: { pcm: { initial_capacity: 4KiB } }\n",
        "no_tokio.yaml",
    )
    .expect("config");
    let agent = Agent::builder()
        .config(config)
        .start()
        .expect("the agent starts without a runtime");
    let addr = agent.metrics_addr().expect("the Prometheus listener");

    let pcm = agent.pool("pcm").expect("pool pcm");
    for _ in 0..3 {
        pcm.get().extend_from_slice(b"RIFF");
    }
    // One condition for all three: a scrape may land while a tick is publishing, after the
    // pool's counters and before its histograms.
    let exposition = wait_for(
        WAIT,
        "the pool's returns, their lengths and the heartbeat on /metrics",
        || {
            let (status, body) = http_get(addr, "/metrics")?;
            (status == 200
                && body
                    .contains("heapscape_pool_returns_total{service=\"plain\",pool=\"pcm\"} 3\n")
                && body.contains(
                    "heapscape_pool_returned_length_bytes_bucket{service=\"plain\",pool=\"pcm\",le=\"64\"} 3\n",
                )
                && body.contains("heapscape_heartbeat_up{service=\"plain\"} 1\n"))
            .then_some(body)
        },
    );
    let heap = if cfg!(feature = "jemalloc") {
        "heapscape_jemalloc_allocated_bytes{service=\"plain\"}"
    } else {
        "allocator=\"other\""
    };
    assert!(exposition.contains(heap), "{exposition}");

    // Both threads have run by now (a tick published, a scrape served), so both are named.
    assert_eq!(
        agent_threads(),
        ["heapscape-heartbeat", "heapscape-metrics"]
    );

    agent.shutdown();
    // Both threads were joined; the listener's socket went with the private runtime.
    assert_eq!(agent_threads(), Vec::<&str>::new());
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "{addr} still accepts scrapes after shutdown"
    );
}
