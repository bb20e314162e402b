//! The StatsD path against a real Etsy statsd daemon: heap gauges and pool counters arrive
//! with their DogStatsD tags; killing the daemon does not disturb the service, and a restarted
//! daemon receives metrics again.

// Reads jemalloc's statistics, which need the `jemalloc` feature.
#![cfg(feature = "jemalloc")]

use std::collections::BTreeSet;

use heapscape::{Agent, Config};
use heapscape_testkit::{Statsd, WAIT, wait_for};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Keys of a statsd admin dump (`{ 'name;tag=value': 1, ... }`) that start with `name;`,
/// each as its set of `tag=value` parts.
fn keys_of(dump: &str, name: &str) -> Vec<BTreeSet<String>> {
    dump.split('\'')
        .filter_map(|quoted| quoted.strip_prefix(&format!("{name};")))
        .map(|tags| tags.split(';').map(str::to_owned).collect())
        .collect()
}

fn expected_tags(extra: &[&str]) -> Vec<String> {
    ["service=it-statsd", "pooling=on", "env=test"]
        .iter()
        .chain(extra)
        .map(|tag| (*tag).to_owned())
        .collect()
}

/// Waits until `command` (`gauges` or `counters`) lists `name` with all `tags`.
fn wait_for_metric(daemon: &Statsd, command: &str, name: &str, tags: &[String]) {
    wait_for(
        WAIT,
        &format!("statsd `{command}` to list {name} with {tags:?}"),
        || {
            let dump = daemon.admin(command)?;
            keys_of(&dump, name)
                .iter()
                .any(|key| tags.iter().all(|tag| key.contains(tag)))
                .then_some(())
        },
    );
}

#[test]
fn statsd_receives_tagged_metrics_and_survives_a_daemon_restart() {
    let mut daemon = Statsd::start();
    let udp_port = daemon.udp_port();

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let config = Config::from_yaml_str(
        &format!(
            "service: it-statsd\n\
             labels: {{ pooling: \"on\" }}\n\
             exporter: {{ statsd: {{ host: 127.0.0.1, port: {udp_port}, tags: {{ env: test }} }} }}\n\
             heartbeat: {{ interval: 500ms }}\n\
             pools: {{ pcm: {{ max_buffer_size: 1MiB }} }}\n"
        ),
        "statsd.yaml",
    )
    .expect("config");
    let agent = Agent::builder().config(config).start().expect("start");
    let pcm = agent.pool("pcm").expect("pool");
    // Enough returns that one publication has buckets with large counts (sampled lines).
    for round in 0..2000usize {
        pcm.get().resize(100 * (round % 5 + 1), 0);
    }

    let pool_tags = expected_tags(&["pool=pcm"]);
    wait_for_metric(
        &daemon,
        "gauges",
        "heapscape_jemalloc_allocated_bytes",
        &expected_tags(&[]),
    );
    wait_for_metric(&daemon, "gauges", "heapscape_pool_idle_buffers", &pool_tags);
    wait_for_metric(&daemon, "counters", "heapscape_pool_hits_total", &pool_tags);
    wait_for_metric(
        &daemon,
        "counters",
        "heapscape_pool_returns_total",
        &pool_tags,
    );
    // Etsy statsd files `|h` lines under counters; statsd_exporter makes them histograms.
    wait_for_metric(
        &daemon,
        "counters",
        "heapscape_pool_returned_length_bytes",
        &pool_tags,
    );
    wait_for_metric(
        &daemon,
        "counters",
        "heapscape_config_reloads_total",
        &expected_tags(&[]),
    );
    let counters = daemon.counters().expect("counters");
    assert!(
        counters.contains("'statsd.bad_lines_seen': 0"),
        "every line must parse:\n{counters}"
    );

    // The daemon goes away: the service keeps running and its pool keeps working.
    daemon.kill();
    let ticks = agent.stats().heartbeat_ticks;
    wait_for(WAIT, "heartbeat ticks while statsd is down", || {
        pcm.get().resize(300, 0);
        (agent.stats().heartbeat_ticks >= ticks + 3).then_some(())
    });

    // A new daemon on the same ports gets metrics again.
    daemon.restart();
    wait_for_metric(
        &daemon,
        "gauges",
        "heapscape_jemalloc_resident_bytes",
        &expected_tags(&[]),
    );
    wait_for_metric(
        &daemon,
        "counters",
        "heapscape_pool_returns_total",
        &pool_tags,
    );

    agent.shutdown();
}
