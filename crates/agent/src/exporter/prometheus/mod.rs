//! The Prometheus path: the recorder of metrics-exporter-prometheus with the pool's series
//! held natively (`native`, `recorder`), served by the agent's own `/metrics` listener
//! (`listener`).

mod listener;
mod native;
mod recorder;
mod stall;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tokio::task::JoinHandle;

use crate::Error;
use crate::config::PrometheusConfig;
use native::NativeSeries;
use recorder::{Exposition, PrometheusWithNative};

/// How often the exporter's upkeep (draining its histogram buffers) runs; the crate's default.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The installed Prometheus exporter: its listener and upkeep tasks.
pub(crate) struct PrometheusExporter {
    addr: SocketAddr,
    native: Arc<NativeSeries>,
    server: JoinHandle<()>,
    upkeep: JoinHandle<()>,
}

impl PrometheusExporter {
    /// Binds `config.listen`, installs the recorder with `labels` on every metric, and starts
    /// serving `/metrics` on the current tokio runtime.
    pub(crate) fn install(
        config: &PrometheusConfig,
        labels: &BTreeMap<String, String>,
    ) -> Result<Self, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
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

        let mut builder = PrometheusBuilder::new();
        for (name, value) in labels {
            builder = builder.add_global_label(name, value);
        }
        // Real buckets, never summaries: dashboards aggregate `_bucket` series across instances.
        // The pool's series are held natively (see `native.rs`); the buckets are set for its
        // histograms too, in case anything records them through the exporter.
        let size_buckets = heapscape_pool::histogram_buckets();
        for name in heapscape_pool::HISTOGRAM_METRICS {
            builder =
                builder.set_buckets_for_metric(Matcher::Full((*name).to_owned()), &size_buckets)?;
        }
        builder = builder.set_buckets_for_metric(
            Matcher::Full("heapscape_heartbeat_sample_duration_seconds".to_owned()),
            heapscape_heartbeat::SAMPLE_DURATION_BUCKETS,
        )?;
        let inner = builder.build_recorder();
        let handle = inner.handle();
        let native = Arc::new(NativeSeries::new(
            heapscape_pool::metrics::CATALOG
                .iter()
                .map(|metric| metric.name)
                .collect(),
            &size_buckets,
            // The order the exporter renders its global labels in: as added.
            labels
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        ));
        let exposition = Exposition::new(handle.clone(), Arc::clone(&native));
        metrics::set_global_recorder(PrometheusWithNative {
            inner,
            native: Arc::clone(&native),
        })
        .map_err(|_| Error::RecorderAlreadyInstalled)?;

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
            native,
            server,
            upkeep,
        })
    }

    /// The bound listener (the actual port when the config says port 0).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A pool called `name` is (again) managed by the agent: its series may appear.
    pub(crate) fn pool_added(&self, name: &str) {
        self.native.pool_added(name);
    }

    /// The pool called `name` was removed: its series are no longer rendered.
    pub(crate) fn pool_removed(&self, name: &str) {
        self.native.pool_removed(name);
    }

    /// Stops the listener (closing its open connections) and the upkeep.
    pub(crate) fn shutdown(&self) {
        self.server.abort();
        self.upkeep.abort();
    }
}
