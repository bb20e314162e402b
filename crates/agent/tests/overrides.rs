//! `AgentBuilder::overrides` over a config file: the overrides win over the file at start and
//! after every reload.

// The Prometheus listener (or mode b's recorder) needs the `tokio` feature.
#![cfg(feature = "tokio")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use heapscape::{Agent, Config, PoolConfig};
use heapscape_testkit::{ConfigFile, WAIT, http_get, wait_for, write_atomically};

fn config(interval: &str, max_buffer_size: &str) -> String {
    format!(
        "service: it-overrides\n\
         exporter: {{ prometheus: {{ listen: 127.0.0.1:9 }} }}\n\
         heartbeat: {{ interval: {interval} }}\n\
         pools:\n  json: {{ initial_capacity: 4KiB, max_buffer_size: {max_buffer_size} }}\n"
    )
}

#[test]
fn overrides_apply_at_start_and_after_every_reload() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _entered = runtime.enter();
    let file = ConfigFile::new("heapscape.yaml", &config("10s", "1MiB"));
    let path = file.path().to_owned();

    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let agent = Agent::builder()
        .config_file(&path)
        .overrides(move |config: &mut Config| {
            counted.fetch_add(1, Ordering::SeqCst);
            config.labels.insert("pooling".to_owned(), "on".to_owned());
            if let heapscape::ExporterConfig::Prometheus(prometheus) = &mut config.exporter {
                prometheus.listen = "127.0.0.1:0".parse().expect("address");
            }
            config.heartbeat.interval = Duration::from_secs(1);
            config.pools.entry("pcm".to_owned()).or_insert_with(|| {
                let mut pool = PoolConfig::default();
                pool.max_buffer_size = 2 << 20;
                pool
            });
        })
        .start()
        .expect("start");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // At start: the overridden listener (port 0, not the file's 9), label, interval and pool.
    let addr = agent.metrics_addr().expect("prometheus listener");
    assert_ne!(addr.port(), 9);
    let started = agent.config();
    assert_eq!(started.labels["pooling"], "on");
    assert_eq!(started.heartbeat.interval, Duration::from_secs(1));
    let pcm = agent.pool("pcm").expect("pool added by the overrides");
    assert_eq!(pcm.config().max_buffer_size, 2 << 20);
    let json = agent.pool("json").expect("pool from the file");
    wait_for(WAIT, "the pooling label on /metrics", || {
        let (_, body) = http_get(addr, "/metrics")?;
        body.contains("pooling=\"on\"").then_some(())
    });

    // A file change: the file's new values apply, the overrides still win.
    write_atomically(&path, &config("5s", "512KiB"));
    wait_for(WAIT, "the file's new cap", || {
        (json.config().max_buffer_size == 512 << 10).then_some(())
    });
    assert!(calls.load(Ordering::SeqCst) >= 2);
    let reloaded = agent.config();
    assert_eq!(reloaded.heartbeat.interval, Duration::from_secs(1));
    assert!(reloaded.pools.contains_key("pcm"));
    assert_eq!(pcm.config().max_buffer_size, 2 << 20);
    assert_eq!(agent.metrics_addr(), Some(addr));
    assert_eq!(agent.stats().config_reload_failures, 0);

    // SIGHUP runs them too.
    let before = calls.load(Ordering::SeqCst);
    signal_hook::low_level::raise(signal_hook::consts::SIGHUP).expect("raise SIGHUP");
    wait_for(WAIT, "the SIGHUP reload", || {
        (calls.load(Ordering::SeqCst) > before).then_some(())
    });
    assert_eq!(agent.stats().config_reload_failures, 0);

    agent.shutdown();
}
