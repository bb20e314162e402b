//! Mode b: the service installed `heapscape::prometheus::Recorder` around its own exporter and
//! started the agent without one. A pool that a new config no longer names leaves the
//! service's exposition, with no call from the service, while its other series stay.

// The Prometheus listener (or mode b's recorder) needs the `tokio` feature.
#![cfg(feature = "tokio")]

use heapscape::{Agent, Config};
use heapscape_testkit::{WAIT, wait_for};
use metrics_exporter_prometheus::PrometheusBuilder;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn config(pools: &str) -> Config {
    Config::from_yaml_str(
        &format!(
            "exporter: {{ prometheus: {{}} }}\n\
             heartbeat: {{ interval: 100ms }}\n\
             pools: {pools}\n"
        ),
        "service_pool_removal.yaml",
    )
    .expect("config")
}

#[test]
fn a_pool_the_agent_removes_leaves_the_service_exposition() {
    let recorder = heapscape::prometheus::Recorder::from_builder(
        PrometheusBuilder::new(),
        [("service", "shop")],
    );
    let exposition = recorder.exposition();
    metrics::set_global_recorder(recorder).expect("the service installs its recorder");
    metrics::counter!("shop_orders_total").increment(1);

    let agent = Agent::builder()
        .config(config(
            "{ kept: { initial_capacity: 4KiB }, gone: { initial_capacity: 4KiB } }",
        ))
        .service_recorder()
        .start()
        .expect("the agent starts");
    for name in ["kept", "gone"] {
        agent
            .pool(name)
            .expect(name)
            .get()
            .extend_from_slice(b"RIFF");
    }
    wait_for(WAIT, "both pools' returns in the exposition", || {
        let text = exposition.render();
        ["kept", "gone"]
            .iter()
            .all(|pool| {
                text.contains(&format!(
                    "heapscape_pool_returns_total{{service=\"shop\",pool=\"{pool}\"}} 1\n"
                ))
            })
            .then_some(())
    });

    agent
        .apply_config(config("{ kept: { initial_capacity: 4KiB } }"))
        .expect("the reload applies");
    let ticks = agent.stats().heartbeat_ticks;
    // Ticks after the removal have published `kept` again and `gone` no more.
    wait_for(WAIT, "two heartbeat ticks after the removal", || {
        (agent.stats().heartbeat_ticks >= ticks + 2).then_some(())
    });
    let text = exposition.render();
    assert!(!text.contains("pool=\"gone\""), "{text}");
    assert!(
        text.contains("heapscape_pool_returns_total{service=\"shop\",pool=\"kept\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "heapscape_pool_returned_length_bytes_bucket{service=\"shop\",pool=\"kept\",le=\"64\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("shop_orders_total{service=\"shop\"} 1\n"),
        "{text}"
    );
    agent.shutdown();
}
