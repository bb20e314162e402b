//! Mode a: the agent owns the exporter. Runs it from a config file until SIGINT or SIGTERM,
//! with a little pool traffic, in a plain `fn main` without a tokio runtime (the heartbeat
//! and the `/metrics` listener get threads of their own).
//!
//! ```text
//! cargo run -p heapscape --example agent -- crates/agent/examples/heapscape.yaml
//! curl -s http://127.0.0.1:9000/metrics | grep heapscape_pool
//! kill -HUP <pid>   # re-read the file
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "crates/agent/examples/heapscape.yaml".to_owned());
    tracing_subscriber::fmt().init();
    let agent = heapscape::Agent::builder().config_file(&path).start()?;
    if let Some(addr) = agent.metrics_addr() {
        println!("metrics on http://{addr}/metrics");
    }

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let pools: Vec<_> = agent
        .config()
        .pools
        .keys()
        .filter_map(|name| agent.pool(name))
        .collect();
    let mut round = 0usize;
    // Relaxed: the flag guards no other data.
    while !stop.load(Ordering::Relaxed) {
        for pool in &pools {
            pool.get().resize(1000 + (round * 7919) % 300_000, 0);
        }
        round += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    agent.shutdown();
    Ok(())
}
