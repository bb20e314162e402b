//! The speech service: `POST /v1/speech` answers `audio/wav`, `GET /healthz` answers `ok`.
//!
//! The handler does what the story's service does: it buffers the whole PCM stream of the
//! speech engine to learn its length, writes the WAV header, and sends header + PCM back. The
//! buffer is either taken from a [`Pool`] ([`Buffers::Pooled`]) or a fresh `Vec` per request
//! ([`Buffers::Fresh`]), which is the difference the heap metrics show. The engine synthesizes
//! straight into that buffer (after room for the header, written last), so it is the only
//! per-request buffer. A pooled buffer is handed to the HTTP body without copying ([`heapscape_pool::PooledBuf::into_bytes`]) and goes back to
//! the pool when the body is dropped: after it was sent, when the client went away, or when the
//! request failed or timed out.
//!
//! Every error is a JSON body `{"error": "<reason>"}` with a fitting status.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use heapscape_pool::{Pool, PoolConfig};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

use crate::Error;

use crate::engine::{self, Engine, Voice};
use crate::telemetry;
use crate::wav::{self, PcmFormat, WavError};

/// Where the handler buffers the PCM stream.
#[derive(Debug, Clone)]
pub enum Buffers {
    /// A buffer from the pool, returned after the response body is dropped.
    Pooled(Pool),
    /// A fresh `Vec::new()` per request, grown by doubling and freed after the response.
    Fresh,
}

impl Buffers {
    /// `"on"` for pooled buffers, `"off"` for fresh ones (the `pooling` metric label).
    pub fn pooling_label(&self) -> &'static str {
        match self {
            Buffers::Pooled(_) => "on",
            Buffers::Fresh => "off",
        }
    }
}

/// Limits and switches of the service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Longest accepted text, in characters (longer: 413).
    pub max_text_chars: usize,
    /// Largest accepted request body, in bytes (larger: 413).
    pub body_limit: usize,
    /// Time allowed from the request to the response head (longer: 503).
    pub request_timeout: Duration,
    /// Syntheses buffered at once; more requests wait (within the timeout). Bounds memory.
    pub max_in_flight: usize,
    /// Texts containing [`engine::FAULT_MARKER`] make the engine fail mid-stream (502).
    pub fault_injection: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            max_text_chars: 3000,
            body_limit: 64 << 10,
            request_timeout: Duration::from_secs(30),
            max_in_flight: 64,
            fault_injection: false,
        }
    }
}

/// The sample rate used when a request names none.
pub const DEFAULT_SAMPLE_RATE: u32 = 16_000;

/// The voice used when a request names none.
pub const DEFAULT_VOICE: &str = "alto";

/// The body of `POST /v1/speech`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechRequest {
    /// What to say; 1 to `max_text_chars` characters.
    pub text: String,
    /// One of the engine's [`engine::VOICES`]; default [`DEFAULT_VOICE`].
    #[serde(default = "default_voice")]
    pub voice: String,
    /// One of [`engine::SAMPLE_RATES`] in Hz; default [`DEFAULT_SAMPLE_RATE`].
    #[serde(default = "default_sample_rate")]
    pub sample_rate: u32,
}

fn default_voice() -> String {
    DEFAULT_VOICE.to_owned()
}

fn default_sample_rate() -> u32 {
    DEFAULT_SAMPLE_RATE
}

/// What the handler reads from the body: a [`SpeechRequest`] written as a JSON object only.
///
/// serde reads a struct from a JSON array too (fields in order, `["hi"]`); the README documents
/// an object, so an array, a string or a number is refused with "the body must be a JSON
/// object".
struct SpeechBody(SpeechRequest);

/// The reason a body that is not a JSON object is refused with.
pub const NOT_AN_OBJECT: &str = "the body must be a JSON object";

impl<'de> Deserialize<'de> for SpeechBody {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly;
        impl<'de> Visitor<'de> for ObjectOnly {
            type Value = SpeechBody;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object (the body must be a JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SpeechBody, A::Error> {
                SpeechRequest::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(SpeechBody)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<SpeechBody, A::Error> {
                Err(de::Error::custom(NOT_AN_OBJECT))
            }
        }
        // `any`, not `map`: serde_json hands an array to `visit_seq` (our reason) instead of
        // failing with its generic "invalid type".
        deserializer.deserialize_any(ObjectOnly)
    }
}

/// A request that failed: its status and the reason sent as `{"error": reason}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong and, where it helps, what to send instead.
    pub reason: String,
}

impl ApiError {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.reason });
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = match &rejection {
            // axum answers 422 for well-formed JSON of the wrong shape; it is still a bad request.
            JsonRejection::JsonDataError(_) => StatusCode::BAD_REQUEST,
            other => other.status(),
        };
        ApiError::new(status, rejection.body_text())
    }
}

impl From<WavError> for ApiError {
    fn from(error: WavError) -> Self {
        let status = match error {
            WavError::DataTooLong { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

struct Service {
    engine: Engine,
    buffers: Buffers,
    config: ServiceConfig,
    in_flight: Semaphore,
    /// Requests between the first middleware and their response head (`/healthz`).
    requests: AtomicUsize,
}

/// Counts a request in [`Service::requests`] while it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        // Relaxed: a gauge for /healthz; nothing is ordered by it.
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Builds the service's router: `POST /v1/speech`, `GET /healthz`, JSON errors for everything
/// else, the body limit and the request timeout.
pub fn router(buffers: Buffers, config: ServiceConfig) -> Router {
    let service = Arc::new(Service {
        engine: Engine::new(config.fault_injection),
        in_flight: Semaphore::new(config.max_in_flight.max(1)),
        requests: AtomicUsize::new(0),
        buffers,
        config,
    });
    Router::new()
        .route("/v1/speech", post(speech))
        .route("/healthz", get(healthz))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "no such path; try POST /v1/speech")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this path",
            )
        })
        .layer(middleware::from_fn_with_state(
            service.clone(),
            time_and_count,
        ))
        .layer(DefaultBodyLimit::max(service.config.body_limit))
        .with_state(service)
}

/// Refuses a body announced over the limit before reading any of it, bounds the time to the
/// response head (body read included) and counts every response by status.
async fn time_and_count(
    State(service): State<Arc<Service>>,
    request: Request,
    next: Next,
) -> Response {
    let _counted = InFlight::enter(&service.requests);
    let limit = service.config.body_limit;
    // hyper has already refused a Content-Length that is not a number (400).
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if let Some(length) = announced.filter(|&length| length > limit as u64) {
        let response = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "length limit exceeded: the body announces {length} bytes, the limit is {limit}; \
                 send a shorter text"
            ),
        )
        .into_response();
        telemetry::count_response(response.status());
        return response;
    }
    let timeout = service.config.request_timeout;
    let response = match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the request took longer than {timeout:?}; try a shorter text or retry later"),
        )
        .into_response(),
    };
    telemetry::count_response(response.status());
    response
}

/// `GET /healthz`: `status`, `pooling`, `requests` (requests being served, this one
/// included) and `tasks` (tokio tasks alive in the runtime, a leak check).
async fn healthz(State(service): State<Arc<Service>>) -> Json<serde_json::Value> {
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    Json(serde_json::json!({
        "status": "ok",
        "pooling": service.buffers.pooling_label(),
        "requests": service.requests.load(Ordering::Relaxed),
        "tasks": tasks,
    }))
}

async fn speech(
    State(service): State<Arc<Service>>,
    request: Result<Json<SpeechBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(SpeechBody(request)) = request?;
    let (voice, format) = service.validate(&request)?;

    let _permit = service.in_flight.acquire().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is shutting down",
        )
    })?;
    let mut stream = service
        .engine
        .speak(request.text, voice, format.sample_rate);
    let wav = match &service.buffers {
        Buffers::Pooled(pool) => {
            let mut buf = pool.get();
            buffer_wav(&mut stream, format, &mut buf).await?;
            buf.into_bytes()
        }
        Buffers::Fresh => {
            let mut buf = Vec::new();
            buffer_wav(&mut stream, format, &mut buf).await?;
            Bytes::from(buf)
        }
    };
    telemetry::count_audio_bytes(wav.len() - wav::HEADER_LEN);

    let mut response = Response::new(Body::from(wav));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    Ok(response)
}

impl Service {
    /// Checks a request before any audio is made; returns the voice and the PCM format.
    fn validate(&self, request: &SpeechRequest) -> Result<(Voice, PcmFormat), ApiError> {
        let chars = request.text.chars().count();
        if request.text.trim().is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "text is empty; send something to say",
            ));
        }
        let max = self.config.max_text_chars;
        if chars > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "text is {chars} characters, the limit is {max}; split it into several requests"
                ),
            ));
        }
        let Some(voice) = Voice::by_name(&request.voice) else {
            let known: Vec<_> = engine::VOICES.iter().map(|v| v.name).collect();
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown voice {:?}; use one of {}",
                    request.voice,
                    known.join(", ")
                ),
            ));
        };
        if !engine::SAMPLE_RATES.contains(&request.sample_rate) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "unsupported sample_rate {}; use one of {:?} (Hz)",
                    request.sample_rate,
                    engine::SAMPLE_RATES
                ),
            ));
        }
        let format = PcmFormat::mono16(request.sample_rate);
        // Refuse before synthesizing what could never be sent as one WAV file.
        wav::header(format, engine::pcm_len(chars as u64, format.sample_rate))?;
        Ok((voice, format))
    }
}

/// Buffers a whole WAV file in `buf`: room for the header, the whole PCM stream (its length is
/// known only at the end), then the header written into the room. One buffer, no copy.
async fn buffer_wav(
    stream: &mut engine::PcmStream,
    format: PcmFormat,
    buf: &mut Vec<u8>,
) -> Result<(), ApiError> {
    buf.extend_from_slice(&[0; wav::HEADER_LEN]);
    loop {
        match stream.read_into(buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "speech engine failed");
                return Err(ApiError::new(StatusCode::BAD_GATEWAY, error.to_string()));
            }
        }
    }
    let header = wav::header(format, (buf.len() - wav::HEADER_LEN) as u64)?;
    buf[..wav::HEADER_LEN].copy_from_slice(&header);
    Ok(())
}

/// `--pooling on|off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pooling {
    /// Buffer into pooled buffers (pool `pcm`).
    On,
    /// Buffer into a fresh `Vec::new()` per request, as in the story before the pool.
    Off,
}

impl Pooling {
    /// `"on"` or `"off"`, the value of the `pooling` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::On => "on",
            Pooling::Off => "off",
        }
    }
}

/// The name of the pool the service buffers PCM in.
pub const POOL_NAME: &str = "pcm";

/// What `heapscape-demo serve` does.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeOptions {
    /// The agent's YAML config (exporter, heartbeat, pools). Without it: Prometheus on
    /// 127.0.0.1:9000, a 10 s heartbeat and the default `pcm` pool.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address of the speech service (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Buffer PCM in pooled buffers or in a fresh Vec per request; also the `pooling` label.
    #[arg(long, value_enum, default_value_t = Pooling::On)]
    pub pooling: Pooling,
    /// Address of the Prometheus scrape listener, instead of the config's (port 0: a free port).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Heartbeat interval, instead of the config's (e.g. `1s`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Option<Duration>,
    /// Longest accepted text, in characters (longer: 413).
    #[arg(long, default_value_t = 3000)]
    pub max_text_chars: usize,
    /// Largest accepted request body, in bytes (larger: 413; a larger Content-Length is refused
    /// before the body is read).
    #[arg(long, default_value_t = 64 << 10)]
    pub body_limit: usize,
    /// Time allowed from a request to its response head, reading the body included (longer:
    /// 503).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Time a connection may take to send a request's headers; also how long an idle
    /// keep-alive connection is kept. The connection is closed after it.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// On SIGTERM, Ctrl-C or end of stdin: time in-flight requests have to finish before their
    /// connections are closed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Syntheses buffered at once (bounds memory); more requests wait.
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: usize,
    /// Let texts containing `#fault` make the engine fail mid-stream (for tests).
    #[arg(long)]
    pub fault_injection: bool,
    /// Shut down gracefully when standard input closes (how `compare` stops its children, and
    /// why they stop if `compare` dies).
    #[arg(long, hide = true)]
    pub exit_on_stdin_close: bool,
}

/// The line `serve` prints on standard output once it accepts requests, followed by
/// `http=<addr> metrics=<addr|none> pooling=<on|off>`.
pub const READY_PREFIX: &str = "heapscape-demo serve: ready";

/// The agent configuration `serve` runs with: the `--config` file or the built-in default, with
/// the command-line overrides applied and a `pcm` pool added if the file has none.
///
/// # Errors
///
/// [`Error::Agent`] if the file cannot be read or is invalid, and [`Error::InvalidOptions`] for
/// `--metrics-listen` with a StatsD exporter.
pub fn agent_config(options: &ServeOptions) -> Result<heapscape::Config, Error> {
    let mut config = match &options.config {
        Some(path) => heapscape::Config::from_file(path).map_err(|e| Error::Agent(Box::new(e)))?,
        None => heapscape::Config::default(),
    };
    apply_overrides(options, &mut config)?;
    Ok(config)
}

/// Applies the command-line flags to a config (read from the file or the default): the
/// `pooling` label, `--metrics-listen`, `--heartbeat-interval`, and the `pcm` pool if missing.
/// `serve --config` runs this after every reload of the file as well.
///
/// # Errors
///
/// [`Error::InvalidOptions`] for `--metrics-listen` with a StatsD exporter (the other flags are
/// applied).
pub fn apply_overrides(
    options: &ServeOptions,
    config: &mut heapscape::Config,
) -> Result<(), Error> {
    config
        .labels
        .insert("pooling".to_owned(), options.pooling.as_str().to_owned());
    if let Some(interval) = options.heartbeat_interval {
        config.heartbeat.interval = interval;
    }
    config
        .pools
        .entry(POOL_NAME.to_owned())
        .or_insert_with(default_pool_config);
    if let Some(listen) = options.metrics_listen {
        match &mut config.exporter {
            heapscape::ExporterConfig::Prometheus(prometheus) => prometheus.listen = listen,
            _ => {
                return Err(Error::InvalidOptions(
                    "--metrics-listen needs the Prometheus exporter, but the config uses another"
                        .to_owned(),
                ));
            }
        }
    }
    Ok(())
}

/// Starts the agent: from `--config` with the flags layered over it and live reload (SIGHUP
/// and file change, the flags re-applied each time), or from the flags alone.
fn start_agent(options: &ServeOptions) -> Result<heapscape::Agent, Error> {
    // Checks the file and the flags together first, so a bad combination fails the start.
    let config = agent_config(options)?;
    let agent = match &options.config {
        Some(path) => {
            let flags = options.clone();
            heapscape::Agent::start_from_file_with(path, move |config| {
                if let Err(error) = apply_overrides(&flags, config) {
                    // Only a changed exporter, which a reload cannot apply anyway.
                    tracing::warn!(%error, "reloaded config: flag not applied");
                }
            })
        }
        None => heapscape::Agent::start(config),
    };
    agent.map_err(|e| Error::Agent(Box::new(e)))
}

/// The `pcm` pool when the config names none: sized for the story's clips (median 256 KiB,
/// p99 about 4 MiB).
fn default_pool_config() -> PoolConfig {
    let mut config = PoolConfig::default();
    config.initial_capacity = 256 << 10;
    config.max_buffer_size = 4 << 20;
    config.max_idle_buffers = 64;
    config.max_idle_bytes = 128 << 20;
    config.idle_timeout = Duration::from_secs(60);
    config
}

/// Runs the service until Ctrl-C, SIGTERM or (with `--exit-on-stdin-close`) the end of
/// standard input, then drains requests and stops the agent. SIGHUP and a change of the file
/// re-read `--config` (the flags still win).
///
/// # Errors
///
/// When the agent does not start, the address cannot be bound, or serving fails.
pub async fn serve(options: &ServeOptions) -> Result<(), Error> {
    let agent = start_agent(options)?;
    telemetry::describe_metrics();
    let buffers = match options.pooling {
        Pooling::On => Buffers::Pooled(agent.pool(POOL_NAME).ok_or_else(|| {
            Error::InvalidOptions(format!("the agent has no pool named {POOL_NAME:?}"))
        })?),
        Pooling::Off => Buffers::Fresh,
    };
    let config = ServiceConfig {
        max_text_chars: options.max_text_chars,
        body_limit: options.body_limit,
        request_timeout: options.request_timeout,
        max_in_flight: options.max_in_flight,
        fault_injection: options.fault_injection,
    };
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(Error::io(format!("binding {}", options.listen)))?;
    let http = listener
        .local_addr()
        .map_err(Error::io("reading the bound address"))?;
    let metrics = agent
        .metrics_addr()
        .map_or_else(|| "none".to_owned(), |addr| addr.to_string());
    tracing::info!(%http, %metrics, pooling = options.pooling.as_str(), "serving");
    println!(
        "{READY_PREFIX} http={http} metrics={metrics} pooling={}",
        options.pooling.as_str()
    );

    let connections = Connections {
        header_read_timeout: options.header_read_timeout,
        shutdown_grace: options.shutdown_grace,
    };
    serve_connections(
        listener,
        router(buffers, config),
        connections,
        shutdown_signal(options.exit_on_stdin_close),
    )
    .await;
    // The final heap sample and publish (and the StatsD flush) block; keep them off the async
    // workers.
    let _ = tokio::task::spawn_blocking(move || agent.shutdown()).await;
    tracing::info!("metrics flushed; stopped");
    Ok(())
}

/// How [`serve_connections`] treats connections.
#[derive(Debug, Clone, Copy)]
pub struct Connections {
    /// Time a client has to send a request's headers, and the longest a keep-alive
    /// connection may sit idle; the connection is closed after it.
    pub header_read_timeout: Duration,
    /// After the shutdown signal: time in-flight requests have to finish.
    pub shutdown_grace: Duration,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// How a [`serve_connections`] run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished within the grace period.
    All,
    /// The grace period ran out; the remaining connections were closed.
    GraceExpired,
}

/// Serves `app` over HTTP/1.1 on `listener` until `shutdown` resolves, then stops accepting,
/// lets in-flight requests finish for up to [`Connections::shutdown_grace`] and returns.
///
/// Every connection has a header read timeout ([`Connections::header_read_timeout`]), so a
/// client that opens connections and sends nothing (or sends headers a byte at a time) cannot
/// hold them; reading the body is bounded by the request timeout of the router.
///
/// A failed connection is logged at debug level; a failed accept (e.g. out of file
/// descriptors) is logged and retried after a short pause.
pub async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    connections: Connections,
    shutdown: impl std::future::Future<Output = ()>,
) -> Drained {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(connections.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Reaps finished connection tasks so the set holds only live ones.
        while tasks.try_join_next().is_some() {}
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // EMFILE and friends: pause instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Ignored: a socket that refuses TCP_NODELAY still works.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tasks.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(grace = ?connections.shutdown_grace, "draining in-flight requests");
    match tokio::time::timeout(connections.shutdown_grace, graceful.shutdown()).await {
        Ok(()) => Drained::All,
        Err(_) => {
            tracing::warn!(
                grace = ?connections.shutdown_grace,
                connections = tasks.len(),
                "requests still running after the shutdown grace period; closing their connections"
            );
            tasks.abort_all();
            Drained::GraceExpired
        }
    }
}

/// Resolves on Ctrl-C, SIGTERM, or the end of standard input if `stdin_close` is set.
async fn shutdown_signal(stdin_close: bool) {
    let ctrl_c = async {
        // If the handler cannot be installed, only the other signals stop the server.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let stdin_closed = async {
        if !stdin_close {
            return std::future::pending::<()>().await;
        }
        let mut stdin = tokio::io::stdin();
        let mut sink = [0u8; 64];
        // Reads until EOF or an error; either means the parent is gone.
        while let Ok(n) = stdin.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
        () = stdin_closed => tracing::info!("standard input closed: shutting down"),
    }
}
