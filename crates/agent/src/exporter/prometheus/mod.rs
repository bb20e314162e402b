//! The Prometheus path: the recorder of metrics-exporter-prometheus with heapscape's series
//! held natively (`native`, `recorder`), served by the agent's own `/metrics` listener
//! (`listener`, its connections guarded by [`crate::connection`]). A service that owns its
//! exporter installs the same recorder itself ([`Recorder`]); pool removals reach it either way
//! (`live`).

mod listener;
mod live;
mod native;
mod recorder;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::Error;
use crate::config::PrometheusConfig;
pub(crate) use live::{descriptions, pool_added, pool_removed};
pub use recorder::{Exposition, Recorder};

/// How often the exporter's upkeep (draining its histogram buffers) runs; the crate's default.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The installed Prometheus exporter: its listener and upkeep tasks.
pub(crate) struct PrometheusExporter {
    addr: SocketAddr,
    server: JoinHandle<()>,
    upkeep: JoinHandle<()>,
}

impl PrometheusExporter {
    /// Binds `config.listen`, installs the recorder with `labels` on every metric, and starts
    /// serving `/metrics` on `runtime`.
    pub(crate) fn install(
        config: &PrometheusConfig,
        labels: &BTreeMap<String, String>,
        runtime: &Handle,
    ) -> Result<Self, Error> {
        let _entered = runtime.enter();
        // The socket bound here is the one served: a taken port fails the start before anything
        // is installed, and port 0 resolves to the port scrapes reach.
        let listen_error = |error: std::io::Error| match error.kind() {
            std::io::ErrorKind::AddrInUse => Error::PortInUse {
                addr: config.listen,
            },
            _ => Error::Listen {
                addr: config.listen,
                error,
            },
        };
        let listener = std::net::TcpListener::bind(config.listen)
            .and_then(|listener| {
                listener.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(listener)
            })
            .map_err(listen_error)?;
        let addr = listener.local_addr().map_err(listen_error)?;
        if addr.ip().is_unspecified() && config.allow.is_empty() {
            tracing::warn!(
                %addr,
                "metrics are served on every network interface to anyone who can connect: set \
                 exporter.prometheus.allow to the scrapers' networks (e.g. [10.0.0.0/8]), or \
                 listen on 127.0.0.1 if only this machine scrapes"
            );
        }

        // Real buckets, never summaries: heapscape's histograms are counted by the wrapper
        // (see `native.rs`), whatever the builder says.
        let recorder = Recorder::from_builder(PrometheusBuilder::new(), labels);
        let exposition = recorder.exposition();
        let handle = exposition.handle().clone();
        metrics::set_global_recorder(recorder).map_err(|_| Error::RecorderAlreadyInstalled)?;

        let upkeep = runtime.spawn(async move {
            let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                interval.tick().await;
                handle.run_upkeep();
            }
        });
        let allow: Arc<[IpNet]> = config.allow.clone().into();
        let server = runtime.spawn(listener::serve(listener, exposition, allow));
        Ok(Self {
            addr,
            server,
            upkeep,
        })
    }

    /// The bound listener (the actual port when the config says port 0).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the listener (closing its open connections) and the upkeep.
    pub(crate) fn shutdown(&self) {
        self.server.abort();
        self.upkeep.abort();
    }
}
