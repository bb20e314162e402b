//! The example service's OpenTelemetry setup: an SDK meter provider whose meter feeds
//! metrics-exporter-otel's recorder, given heapscape's bucket bounds (the line marked
//! `heapscape:`) and installed as the global `metrics` recorder; and an OTLP/HTTP exporter
//! whose requests hyper sends on the service's tokio runtime.
//!
//! Shared by `main.rs` and the crate's `tests/otel.rs`, which exports through the SDK's
//! in-memory exporter and this OTLP exporter to a loopback collector.

use std::time::Duration;

use async_trait::async_trait;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_otel::OpenTelemetryRecorder;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{MetricExporter, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;

/// How long one OTLP request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Installs the global `metrics` recorder over `provider`'s meter: the service's metrics and
/// heapscape's (once the agent starts with `.service_recorder()`) go out through the
/// provider's readers.
///
/// # Errors
///
/// When a recorder is already installed.
pub fn install(provider: &SdkMeterProvider) -> Result<(), Box<dyn std::error::Error>> {
    let recorder = OpenTelemetryRecorder::new(provider.meter("greeter"));
    // heapscape: the pool's byte buckets and the heartbeat's duration buckets, instead of
    // OpenTelemetry's default bounds (0 to 10,000) that would put nearly every size in the
    // overflow bucket. Before the agent starts: a histogram keeps the bounds it was created with.
    heapscape::otel::set_histogram_bounds(&recorder);
    metrics::set_global_recorder(recorder)
        .map_err(|_| "a metrics recorder is already installed")?;
    Ok(())
}

/// An OTLP exporter posting protobuf to `endpoint` (e.g. `http://127.0.0.1:4318/v1/metrics`;
/// `None`: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT` or the default
/// `http://localhost:4318`), its requests sent by hyper on `runtime`.
///
/// # Errors
///
/// When the endpoint is not a URL.
pub fn otlp_exporter(
    endpoint: Option<&str>,
    runtime: tokio::runtime::Handle,
) -> Result<MetricExporter, opentelemetry_otlp::ExporterBuildError> {
    let client = HyperOnRuntime {
        runtime,
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    let builder = MetricExporter::builder()
        .with_http()
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(client);
    match endpoint {
        Some(endpoint) => builder.with_endpoint(endpoint).build(),
        None => builder.build(),
    }
}

/// An HTTP/1.1 client for the exporter on hyper (which the agent's listener already builds),
/// run on a tokio runtime: the SDK's periodic reader exports from a thread of its own, outside
/// any runtime, where hyper cannot run. opentelemetry-http's own hyper client would do the
/// same but builds HTTP/2 too.
#[derive(Debug)]
struct HyperOnRuntime {
    runtime: tokio::runtime::Handle,
    client: Client<HttpConnector, Full<Bytes>>,
}

#[async_trait]
impl HttpClient for HyperOnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let exchange = async move {
            let response = client.request(request.map(Full::new)).await?;
            let (head, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(head, body))
        };
        self.runtime
            .spawn(async move { tokio::time::timeout(EXPORT_TIMEOUT, exchange).await? })
            .await?
    }
}
