//! Mode b: a service that owns its metrics-exporter-prometheus and its `/metrics` route adds
//! heapscape's heartbeat, pools and live reload (see `app.rs`).
//!
//! ```text
//! cargo run -p heapscape --example service -- crates/agent/examples/service/heapscape.yaml
//! curl -s http://127.0.0.1:8080/hello
//! curl -s http://127.0.0.1:8080/metrics | grep -E 'greeter|heapscape_pool_returns'
//! ```

mod app;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "crates/agent/examples/service/heapscape.yaml".to_owned());
    tracing_subscriber::fmt().init();
    let runtime = tokio::runtime::Runtime::new()?;
    let service = runtime.block_on(app::start(([127, 0, 0, 1], 8080).into(), Path::new(&path)))?;
    println!(
        "greeter on http://{}/hello, metrics on /metrics",
        service.addr
    );

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    // Relaxed: the flag guards no other data.
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    runtime.block_on(service.shutdown());
    Ok(())
}
