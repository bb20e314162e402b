//! The example service: a greeter with its own metrics-exporter-prometheus, its own `/metrics`
//! route and request counter, and heapscape added in four lines (marked `heapscape:`).
//!
//! Shared by `main.rs` and the crate's `tests/example_service.rs`, which runs it in-process.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusBuilder;

/// How often the exporter drains its histogram buffers (the service's job when it owns the
/// exporter; metrics-exporter-prometheus' default).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The running service.
pub struct Service {
    /// Where it serves `/hello` and `/metrics`.
    pub addr: SocketAddr,
    agent: heapscape::Agent,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Installs the service's metrics stack, starts heapscape with the config at `heapscape_yaml`
/// (re-read on SIGHUP and when it changes) and serves on `listen`, on the current tokio
/// runtime.
///
/// # Errors
///
/// When a recorder is already installed, the agent cannot start or `listen` cannot be bound.
pub async fn start(
    listen: SocketAddr,
    heapscape_yaml: &Path,
) -> Result<Service, Box<dyn std::error::Error>> {
    // heapscape: the service's recorder, built with heapscape's histograms counted by bucket
    // and the global labels on both the service's series and heapscape's.
    let recorder = heapscape::prometheus::Recorder::from_builder(
        PrometheusBuilder::new(),
        [("service", "greeter")],
    );
    let exposition = recorder.exposition();
    metrics::set_global_recorder(recorder)?;
    metrics::describe_counter!("greeter_requests_total", "Requests served, by route.");
    // heapscape: heartbeat, pools and reload, publishing through the recorder above.
    let agent = heapscape::Agent::builder()
        .config_file(heapscape_yaml)
        .service_recorder()
        .start()?;
    let bodies = agent
        .pool("bodies")
        .ok_or("the heapscape config has no pool `bodies`")?;

    let handle = exposition.handle().clone();
    let upkeep = tokio::spawn(async move {
        let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            interval.tick().await;
            handle.run_upkeep();
        }
    });
    let app = Router::new()
        .route("/hello", get(hello))
        // heapscape: one exposition, the service's metrics and heapscape's.
        .route("/metrics", get(move || async move { exposition.render() }))
        .with_state(bodies);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("the greeter stopped serving: {error}");
        }
    });
    Ok(Service {
        addr,
        agent,
        tasks: vec![upkeep, server],
    })
}

impl Service {
    /// Stops serving, then stops the agent (a final heap sample and publication).
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        let agent = self.agent;
        // The final sample blocks; keep it off the async workers.
        let _ = tokio::task::spawn_blocking(move || agent.shutdown()).await;
    }
}

/// Greets, building the body in a pooled buffer.
async fn hello(State(bodies): State<heapscape::Pool>) -> String {
    metrics::counter!("greeter_requests_total", "route" => "/hello").increment(1);
    let mut body = bodies.get();
    body.extend_from_slice(b"hello from the greeter\n");
    String::from_utf8_lossy(&body).into_owned()
}
