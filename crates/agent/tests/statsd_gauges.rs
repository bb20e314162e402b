//! Gauges on the StatsD path against a real Etsy statsd daemon: a negative value (jemalloc's
//! decay of -1, never purge) arrives as that value tick after tick, where a signed gauge line
//! alone would be a relative change that drifts by -1 at every tick; the service and
//! instance tags arrive with it, to become labels in statsd_exporter.

// Reads jemalloc's statistics, which need the `jemalloc` feature.
#![cfg(feature = "jemalloc")]

use std::time::{SystemTime, UNIX_EPOCH};

use heapscape::{Agent, Config};
use heapscape_testkit::{Statsd, WAIT, wait_for};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// jemalloc reads this when it starts, before any test code runs: pages freed in this test
// binary are never purged, so the heartbeat publishes both decay times as -1. (The agent's own
// `jemalloc:` keys set whole milliseconds up to a day, never -1.)
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8] = b"dirty_decay_ms:-1,muzzy_decay_ms:-1\0";

/// The value of the `gauges` dump entry for `name` (`'name;tag=value;...': -1,`) whose tags
/// include every one of `tags`; panics if there are several.
fn gauge(dump: &str, name: &str, tags: &[&str]) -> Option<f64> {
    let parts: Vec<&str> = dump.split('\'').collect();
    let values: Vec<f64> = parts
        .windows(2)
        .filter_map(|pair| {
            let key = pair[0].strip_prefix(&format!("{name};"))?;
            let key: Vec<&str> = key.split(';').collect();
            if !tags.iter().all(|tag| key.contains(tag)) {
                return None;
            }
            let value = pair[1].trim_start_matches(':').trim();
            value.trim_end_matches([',', '}']).trim().parse().ok()
        })
        .collect();
    assert!(values.len() <= 1, "{name} is split into series:\n{dump}");
    values.first().copied()
}

#[test]
fn negative_gauges_arrive_as_their_value_with_the_service_and_instance_tags() {
    let daemon = Statsd::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let config = Config::from_yaml_str(
        &format!(
            "service: it-gauges\n\
             exporter: {{ statsd: {{ host: 127.0.0.1, port: {}, tags: {{ instance: it-gauges-1 }} }} }}\n\
             heartbeat: {{ interval: 100ms }}\n",
            daemon.udp_port()
        ),
        "statsd_gauges.yaml",
    )
    .expect("config");
    let agent = Agent::builder().config(config).start().expect("start");
    let tags = ["service=it-gauges", "instance=it-gauges-1"];

    // Ticks published after `start` have arrived once the daemon holds a later sample time;
    // one tick's lines go through one queue and socket in order, so its decay lines (and those
    // of every tick before it) have arrived too: dozens of -1 lines by then.
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let dump = wait_for(
        WAIT,
        "ticks from 3 s after the start to reach statsd",
        || {
            let dump = daemon.gauges()?;
            let last = gauge(
                &dump,
                "heapscape_heartbeat_last_success_timestamp_seconds",
                &tags,
            )?;
            (last > start + 3.0).then_some(dump)
        },
    );
    assert!(
        agent.stats().heartbeat_ticks > 10,
        "the heartbeat ticked many times"
    );
    for name in [
        "heapscape_jemalloc_dirty_decay_seconds",
        "heapscape_jemalloc_muzzy_decay_seconds",
    ] {
        assert_eq!(
            gauge(&dump, name, &tags),
            Some(-1.0),
            "{name}: -1 (never) at every tick, not a running sum:\n{dump}"
        );
    }
    // Values without a sign still go out as the crate sends them.
    let background = gauge(&dump, "heapscape_jemalloc_background_thread", &tags);
    assert!(
        background == Some(0.0) || background == Some(1.0),
        "{background:?}:\n{dump}"
    );
    agent.shutdown();
}
