//! Mode c: the service owns some other `metrics` recorder (here `Totals`, in `totals.rs`);
//! heapscape publishes its heartbeat and pools through it. Prints heapscape's pool series
//! every 2 s until SIGINT or SIGTERM; no tokio runtime.
//!
//! ```text
//! cargo run -p heapscape --example own_recorder -- crates/agent/examples/service/heapscape.yaml
//! ```

mod totals;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "crates/agent/examples/service/heapscape.yaml".to_owned());
    let totals = totals::Totals::default();
    metrics::set_global_recorder(totals.clone())?;
    let agent = heapscape::Agent::builder()
        .config_file(&path)
        .service_recorder()
        .start()?;

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
    let mut printed = Instant::now();
    let mut round = 0usize;
    // Relaxed: the flag guards no other data.
    while !stop.load(Ordering::Relaxed) {
        for pool in &pools {
            pool.get().resize(100 + (round * 7919) % 60_000, 0);
        }
        round += 1;
        if printed.elapsed() >= Duration::from_secs(2) {
            printed = Instant::now();
            for line in totals.lines() {
                if line.starts_with("heapscape_pool_return") {
                    println!("{line}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    agent.shutdown();
    Ok(())
}
