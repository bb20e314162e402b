//! The `jemalloc:` section applied at start, changed by a reload of the file, and published on
//! `/metrics`.

// The Prometheus listener (or mode b's recorder) needs the `tokio` feature.
#![cfg(feature = "tokio")]
#![cfg(feature = "jemalloc")]

use std::net::SocketAddr;

use heapscape::Agent;
use heapscape_heartbeat::decay::DecayState;
use heapscape_testkit::{ConfigFile, WAIT, http_get, wait_for, write_atomically};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn config(jemalloc: &str) -> String {
    format!(
        "exporter: {{ prometheus: {{ listen: 127.0.0.1:0 }} }}\n\
         heartbeat: {{ interval: 100ms }}\n\
         jemalloc: {jemalloc}\n"
    )
}

fn metric_value(addr: SocketAddr, name: &str) -> Option<f64> {
    let (_, body) = http_get(addr, "/metrics")?;
    body.lines()
        .find(|line| line.starts_with(name) && !line.starts_with('#'))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

fn state() -> (i64, i64, bool) {
    let state = DecayState::read().expect("jemalloc is the global allocator");
    (
        state.dirty_decay_ms,
        state.muzzy_decay_ms,
        state.background_thread,
    )
}

#[test]
fn decay_settings_apply_at_start_and_on_reload() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let file = ConfigFile::new(
        "heapscape.yaml",
        &config("{ dirty_decay: 1s, muzzy_decay: 0s, background_thread: true }"),
    );
    let agent = Agent::builder()
        .config_file(file.path())
        .start()
        .expect("start");
    assert_eq!(state(), (1000, 0, true));
    let addr = agent.metrics_addr().expect("prometheus");
    wait_for(WAIT, "the decay gauges", || {
        (metric_value(addr, "heapscape_jemalloc_dirty_decay_seconds")? == 1.0
            && metric_value(addr, "heapscape_jemalloc_background_thread")? == 1.0)
            .then_some(())
    });

    write_atomically(
        file.path(),
        &config("{ dirty_decay: 250ms, muzzy_decay: 2s, background_thread: false }"),
    );
    wait_for(WAIT, "the reloaded settings", || {
        (state() == (250, 2000, false)).then_some(())
    });
    assert_eq!(
        agent.config().jemalloc.dirty_decay,
        Some(std::time::Duration::from_millis(250))
    );
    wait_for(WAIT, "the reloaded gauges", || {
        (metric_value(addr, "heapscape_jemalloc_muzzy_decay_seconds")? == 2.0
            && metric_value(addr, "heapscape_jemalloc_background_thread")? == 0.0)
            .then_some(())
    });
    agent.shutdown();
}
