//! Live re-tuning from the config file: good -> bad -> deleted -> good, and SIGHUP.

// The Prometheus listener (or mode b's recorder) needs the `tokio` feature.
#![cfg(feature = "tokio")]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use heapscape::Agent;
use heapscape_testkit::{ConfigFile, WAIT, free_port, http_get, wait_for, write_atomically};

fn config(max_buffer_size: &str, interval: &str, extra_pool: bool) -> String {
    let mut text = format!(
        "service: it-reload\n\
         exporter: {{ prometheus: {{ listen: 127.0.0.1:0 }} }}\n\
         heartbeat: {{ interval: {interval} }}\n\
         pools:\n  pcm: {{ initial_capacity: 4KiB, max_buffer_size: {max_buffer_size} }}\n"
    );
    if extra_pool {
        text.push_str("  json: { max_buffer_size: 64KiB }\n");
    }
    text
}

fn metric_value(addr: SocketAddr, name: &str) -> Option<f64> {
    let (_, body) = http_get(addr, "/metrics")?;
    body.lines()
        .find(|line| line.starts_with(name) && !line.starts_with('#'))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[test]
fn file_changes_retune_live_and_bad_files_are_rejected() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let file = ConfigFile::new("heapscape.yaml", &config("4MiB", "10s", false));
    let path = file.path().to_owned();
    let agent = Agent::builder().config_file(&path).start().expect("start");
    let pcm = agent.pool("pcm").expect("pool");
    assert_eq!(pcm.config().max_buffer_size, 4 << 20);
    assert!(agent.pool("json").is_none());

    // Good: new cap, new interval, new pool.
    write_atomically(&path, &config("1MiB", "2s", true));
    wait_for(WAIT, "the new cap", || {
        (pcm.config().max_buffer_size == 1 << 20).then_some(())
    });
    assert_eq!(agent.config().heartbeat.interval, Duration::from_secs(2));
    let json = agent.pool("json").expect("pool added by reload");
    assert_eq!(json.config().max_buffer_size, 64 << 10);
    assert_eq!(agent.stats().config_reload_failures, 0);

    // Bad YAML: rejected, counted, the old config stays.
    write_atomically(&path, "exporter: { prometheus: {} \npools: [\n");
    wait_for(WAIT, "the failure to be counted", || {
        (agent.stats().config_reload_failures == 1).then_some(())
    });
    assert_eq!(pcm.config().max_buffer_size, 1 << 20);

    // Invalid values: rejected as a whole (the valid interval is not applied either).
    write_atomically(&path, &config("1GiB", "3s", true));
    wait_for(WAIT, "the second failure", || {
        (agent.stats().config_reload_failures == 2).then_some(())
    });
    assert_eq!(pcm.config().max_buffer_size, 1 << 20);
    assert_eq!(agent.config().heartbeat.interval, Duration::from_secs(2));

    // Deleted: rejected once, not on every check of the file.
    std::fs::remove_file(&path).expect("remove");
    wait_for(WAIT, "the third failure", || {
        (agent.stats().config_reload_failures == 3).then_some(())
    });
    let checks = agent.stats().config_checks;
    wait_for(WAIT, "three more checks of the deleted file", || {
        (agent.stats().config_checks >= checks + 3).then_some(())
    });
    assert_eq!(agent.stats().config_reload_failures, 3);

    // Good again.
    write_atomically(&path, &config("2MiB", "2s", true));
    wait_for(WAIT, "the cap after recovery", || {
        (pcm.config().max_buffer_size == 2 << 20).then_some(())
    });
    let stats = agent.stats();
    assert_eq!(stats.config_reload_failures, 3);
    assert!(stats.config_reloads >= 5, "{stats:?}");

    // The exporter cannot change live: the listener it started with keeps serving the live
    // counts, and nothing listens on the new address.
    let addr = agent.metrics_addr().expect("a Prometheus listener");
    let moved = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    write_atomically(
        &path,
        &config("2MiB", "2s", true).replace("127.0.0.1:0", &moved.to_string()),
    );
    wait_for(WAIT, "the exporter change to be seen", || {
        (agent.stats().config_reloads >= 6).then_some(())
    });
    wait_for(
        WAIT,
        "the first listener to count the exporter change",
        || (metric_value(addr, "heapscape_config_reloads_total")? >= 6.0).then_some(()),
    );
    assert_eq!(http_get(moved, "/metrics"), None, "a listener on {moved}");

    // SIGHUP re-reads even an unchanged file.
    let reloads = agent.stats().config_reloads;
    signal_hook::low_level::raise(signal_hook::consts::SIGHUP).expect("raise SIGHUP");
    wait_for(WAIT, "the SIGHUP reload", || {
        (agent.stats().config_reloads > reloads).then_some(())
    });

    // The same counts on /metrics.
    wait_for(WAIT, "the reload metrics on /metrics", || {
        let failures = metric_value(addr, "heapscape_config_reload_failures_total")?;
        let reloads = metric_value(addr, "heapscape_config_reloads_total")?;
        let last = metric_value(
            addr,
            "heapscape_config_last_reload_success_timestamp_seconds",
        )?;
        (failures == 3.0 && reloads >= 7.0 && last > 1.6e9).then_some(())
    });

    agent.shutdown();
}
