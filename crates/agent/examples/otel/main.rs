//! A service that exports its metrics to an OpenTelemetry collector over OTLP/HTTP, with
//! heapscape's heartbeat and pools among them (see `telemetry.rs`): its own request counter and
//! some pool traffic, exported every 10 s (`OTEL_METRIC_EXPORT_INTERVAL`, in milliseconds)
//! until SIGINT or SIGTERM.
//!
//! ```text
//! cargo run -p heapscape --example otel -- crates/agent/examples/service/heapscape.yaml \
//!     http://127.0.0.1:4318/v1/metrics
//! ```

mod telemetry;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "crates/agent/examples/service/heapscape.yaml".to_owned());
    let endpoint = args.next();
    tracing_subscriber::fmt().init();
    // The OTLP client's; the service itself needs no runtime for heapscape.
    let runtime = tokio::runtime::Runtime::new()?;

    let exporter = telemetry::otlp_exporter(endpoint.as_deref(), runtime.handle().clone())?;
    let provider = SdkMeterProvider::builder()
        .with_resource(Resource::builder().with_service_name("greeter").build())
        .with_reader(PeriodicReader::builder(exporter).build())
        .build();
    telemetry::install(&provider)?;
    let agent = heapscape::Agent::builder()
        .config_file(&path)
        .service_recorder()
        .start()?;

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let bodies = agent
        .pool("bodies")
        .ok_or("the config names no pool `bodies`")?;
    let mut request = 0usize;
    // Relaxed: the flag guards no other data.
    while !stop.load(Ordering::Relaxed) {
        metrics::counter!("greeter_requests_total").increment(1);
        bodies.get().resize(100 + (request * 7919) % 60_000, 0);
        request += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    // The agent's last publication first, then the provider's last export.
    agent.shutdown();
    provider.shutdown()?;
    Ok(())
}
