//! The StatsD path against a real Etsy statsd daemon: heap gauges and pool counters arrive
//! with their DogStatsD tags; killing the daemon does not disturb the service, and a restarted
//! daemon receives metrics again.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use common::{ChildGuard, free_tcp_port, free_udp_port, statsd_admin, wait_for, workspace_root};
use heapscape::{Agent, Config};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The statsd daemon's entry point: `HEAPSCAPE_STATSD_BIN`, or the copy `.ci/run` installs.
fn statsd_bin() -> PathBuf {
    let path = std::env::var_os("HEAPSCAPE_STATSD_BIN").map_or_else(
        || workspace_root().join(".cache/statsd/node_modules/statsd/bin/statsd"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "the StatsD daemon is not installed at {}: run `npm install --prefix .cache/statsd \
         statsd@0.9.0` in the repository root, or set HEAPSCAPE_STATSD_BIN to its bin/statsd",
        path.display()
    );
    path
}

struct Daemon {
    mgmt_port: u16,
    _child: ChildGuard,
}

/// Starts statsd on loopback with a 500 ms flush and no backends.
fn start_statsd(dir: &std::path::Path, udp_port: u16, mgmt_port: u16) -> Daemon {
    let config = dir.join(format!("statsd-{mgmt_port}.js"));
    std::fs::write(
        &config,
        format!(
            "{{ port: {udp_port}, address: \"127.0.0.1\", mgmt_port: {mgmt_port}, \
             mgmt_address: \"127.0.0.1\", flushInterval: 500, backends: [], \
             deleteIdleStats: false }}\n"
        ),
    )
    .expect("write statsd config");
    let child = ChildGuard::spawn(
        "statsd",
        Command::new("node").arg(statsd_bin()).arg(&config),
    );
    wait_for("statsd's management port", || {
        statsd_admin(mgmt_port, "health").filter(|reply| reply.contains("up"))
    });
    Daemon {
        mgmt_port,
        _child: child,
    }
}

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
fn wait_for_metric(daemon: &Daemon, command: &str, name: &str, tags: &[String]) {
    wait_for(
        &format!("statsd `{command}` to list {name} with {tags:?}"),
        || {
            let dump = statsd_admin(daemon.mgmt_port, command)?;
            keys_of(&dump, name)
                .iter()
                .any(|key| tags.iter().all(|tag| key.contains(tag)))
                .then_some(())
        },
    );
}

#[test]
fn statsd_receives_tagged_metrics_and_survives_a_daemon_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (udp_port, mgmt_port) = (free_udp_port(), free_tcp_port());
    let daemon = start_statsd(dir.path(), udp_port, mgmt_port);

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
    let agent = Agent::start(config).expect("start");
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
    let counters = statsd_admin(mgmt_port, "counters").expect("counters");
    assert!(
        counters.contains("'statsd.bad_lines_seen': 0"),
        "every line must parse:\n{counters}"
    );

    // The daemon goes away: the service keeps running and its pool keeps working.
    drop(daemon);
    let ticks = agent.stats().heartbeat_ticks;
    wait_for("heartbeat ticks while statsd is down", || {
        pcm.get().resize(300, 0);
        (agent.stats().heartbeat_ticks >= ticks + 3).then_some(())
    });

    // A new daemon on the same ports gets metrics again.
    let daemon = start_statsd(dir.path(), udp_port, mgmt_port);
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
