//! Mode c: the service installed its own `metrics` recorder (the example's `Totals`) and
//! starts the agent on it, from a config without an `exporter:`. heapscape's heartbeat
//! gauges, pool counters and pool histograms arrive through that recorder, every return
//! counted.

#[path = "../examples/own_recorder/totals.rs"]
mod totals;

use heapscape::{Agent, Config};
use heapscape_testkit::{WAIT, wait_for};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[test]
fn heapscape_publishes_through_the_services_recorder() {
    let totals = totals::Totals::default();
    metrics::set_global_recorder(totals.clone()).expect("the only recorder in this test");
    let config = Config::from_yaml_str(
        "heartbeat: { interval: 200ms }\n\
         pools: { pcm: { initial_capacity: 4KiB } }\n",
        "own_recorder.yaml",
    )
    .expect("config");
    let agent = Agent::builder()
        .config(config)
        .service_recorder()
        .start()
        .expect("start");
    assert_eq!(
        agent.metrics_addr(),
        None,
        "no listener: the agent installs no exporter"
    );

    let pcm = agent.pool("pcm").expect("pool pcm");
    for round in 0..100_000usize {
        pcm.get().resize(10 + round % 3000, 0);
    }
    let lines = wait_for(
        WAIT,
        "100000 returns through the service's recorder",
        || {
            // The returns counter moves with each return, the histograms with the next
            // heartbeat's publication: wait for all three.
            let lines = totals.lines();
            let has = |prefix: &str| lines.iter().any(|line| line.starts_with(prefix));
            (has("heapscape_pool_returns_total{pool=\"pcm\"} 100000")
                && has("heapscape_pool_returned_length_bytes{pool=\"pcm\"} count=100000 ")
                && has("heapscape_pool_returned_capacity_bytes{pool=\"pcm\"} count=100000 "))
            .then_some(lines)
        },
    );
    for expected in [
        "heapscape_pool_returned_length_bytes{pool=\"pcm\"} count=100000 ",
        "heapscape_pool_returned_capacity_bytes{pool=\"pcm\"} count=100000 ",
        "heapscape_heartbeat_up{} 1",
        "heapscape_config_reloads_total{} 0",
    ] {
        assert!(
            lines.iter().any(|line| line.starts_with(expected)),
            "{expected:?} in {lines:#?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with(if cfg!(feature = "jemalloc") {
                "heapscape_jemalloc_allocated_bytes{} "
            } else {
                "heapscape_allocator_info{allocator=\"other\"} 1"
            })),
        "{lines:#?}"
    );
    agent.shutdown();
}
