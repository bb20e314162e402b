//! The HTTP API: `POST /v1/speech` and `GET /healthz`, request validation and JSON errors.
//!
//! The handler buffers the whole PCM stream of the speech engine to learn its length, writes
//! the WAV header, and sends header + PCM back. The buffer is either taken from a [`Pool`]
//! ([`Buffers::Pooled`]) or a fresh `Vec` per request ([`Buffers::Fresh`]), which is the
//! difference the heap metrics show. The engine synthesizes straight into that buffer (after
//! room for the header, written last), so it is the only per-request buffer. A pooled buffer is
//! handed to the HTTP body without copying ([`heapscape_pool::PooledBuf::into_bytes`]) and goes
//! back to the pool when the body is dropped: after it was sent, when the client went away, or
//! when the request failed or timed out.
//!
//! Memory is bounded by bytes, not only by handlers: before synthesizing, a request takes an
//! in-flight slot and its WAV file's size from the byte budget
//! ([`ServiceConfig::max_buffered_bytes`]), and both are held by the response's bytes
//! themselves, so they are given back when the last byte was written to the socket or the
//! connection is gone (stalled sends are cut off by the connection's send timeout), not when
//! the handler returns.

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
use heapscape_pool::{Pool, PooledBuf};
use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::visible;
use crate::engine::{self, Engine, Voice};
use crate::service_metrics;
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
    /// Responses being synthesized or sent at once; more requests wait (within the timeout).
    /// A response holds its slot until its last byte is sent or its client is gone.
    pub max_in_flight: usize,
    /// Bytes of WAV files being synthesized or sent at once (the byte budget); a request that
    /// finds no room waits up to [`BUDGET_WAIT`] and is then refused (503), a single file
    /// larger than the budget is refused (413). A response holds its bytes until its last byte
    /// is sent or its client is gone.
    pub max_buffered_bytes: usize,
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
            max_buffered_bytes: 256 << 20,
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
    in_flight: Arc<Semaphore>,
    /// The byte budget, one permit per started KiB ([`BUDGET_UNIT`]).
    buffered: Arc<Semaphore>,
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
        in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
        buffered: Arc::new(Semaphore::new(
            budget_units(config.max_buffered_bytes as u64).clamp(1, Semaphore::MAX_PERMITS),
        )),
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
        service_metrics::count_response(response.status());
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
    service_metrics::count_response(response.status());
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
    let (voice, format, wav_len) = service.validate(&request)?;

    let slot = acquire(service.in_flight.clone(), 1).await?;
    let mut stream = service
        .engine
        .speak(request.text, voice, format.sample_rate);
    let (wav, bytes) = match &service.buffers {
        Buffers::Pooled(pool) => {
            let mut buf = pool.get();
            // A pooled buffer larger than this file is resident memory all the same.
            let bytes = service.hold(wav_len.max(buf.capacity() as u64)).await?;
            buffer_wav(&mut stream, format, &mut buf).await?;
            (buf.into_bytes(), bytes)
        }
        Buffers::Fresh => {
            let bytes = service.hold(wav_len).await?;
            let mut buf = Vec::new();
            buffer_wav(&mut stream, format, &mut buf).await?;
            (Bytes::from(buf), bytes)
        }
    };
    service_metrics::count_audio_bytes(wav.len() - wav::HEADER_LEN);

    let held = Bytes::from_owner(Held {
        wav,
        _slot: slot,
        _bytes: bytes,
    });
    let mut response = Response::new(Body::from(held));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    Ok(response)
}

/// A response's WAV file with the in-flight slot and the budget bytes it holds: hyper keeps
/// these bytes until the last of them is written or the connection is dropped, and the permits
/// go back only then.
struct Held {
    wav: Bytes,
    _slot: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.wav
    }
}

/// How long a request waits for room in a full byte budget before it is refused with 503:
/// long enough for responses being sent to finish, short enough that a client learns at once
/// that the service is saturated instead of waiting out its request timeout (clients that
/// never read hold the budget for up to the send timeout, 30 s by default).
pub const BUDGET_WAIT: Duration = Duration::from_secs(2);

/// Bytes per permit of the byte budget: tokio takes at most `u32::MAX` permits at once, and a
/// WAV file can be 4 GiB.
const BUDGET_UNIT: u64 = 1 << 10;

/// Permits of the byte budget for `bytes` bytes.
fn budget_units(bytes: u64) -> usize {
    usize::try_from(bytes.div_ceil(BUDGET_UNIT)).unwrap_or(usize::MAX)
}

/// Waits for `permits` of `semaphore`; the semaphore is never closed, but a closed one means
/// shutting down.
async fn acquire(
    semaphore: Arc<Semaphore>,
    permits: u32,
) -> Result<OwnedSemaphorePermit, ApiError> {
    semaphore.acquire_many_owned(permits).await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is shutting down",
        )
    })
}

impl Service {
    /// Waits up to [`BUDGET_WAIT`] until `bytes` fit in the byte budget, and holds them.
    ///
    /// # Errors
    ///
    /// 503, counted in [`service_metrics::BUDGET_REFUSALS`], when they do not fit in that time.
    async fn hold(&self, bytes: u64) -> Result<OwnedSemaphorePermit, ApiError> {
        // Clamped to the whole budget: a pooled buffer over it still runs, alone.
        let units = budget_units(bytes).min(budget_units(self.config.max_buffered_bytes as u64));
        let permits = u32::try_from(units.max(1)).unwrap_or(u32::MAX);
        match tokio::time::timeout(BUDGET_WAIT, acquire(self.buffered.clone(), permits)).await {
            Ok(held) => held,
            Err(_) => {
                service_metrics::count_budget_refusal();
                let budget = self.config.max_buffered_bytes;
                let free = (self.buffered.available_permits() as u64).saturating_mul(BUDGET_UNIT);
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the service is busy: this audio needs {bytes} bytes of the byte budget \
                         (--max-buffered-bytes, {budget} bytes), and no more than {free} were \
                         free for {BUDGET_WAIT:?} because other responses are being made or \
                         sent; retry later"
                    ),
                ))
            }
        }
    }

    /// Checks a request before any audio is made; returns the voice, the PCM format and the
    /// length of the WAV file.
    fn validate(&self, request: &SpeechRequest) -> Result<(Voice, PcmFormat, u64), ApiError> {
        let chars = request.text.chars().count();
        if !visible::has_visible(&request.text) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "text is empty (or only whitespace, control and invisible characters such as \
                 zero-width spaces); send something to say",
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
        let pcm_len = engine::pcm_len(chars as u64, format.sample_rate);
        wav::header(format, pcm_len)?;
        let wav_len = wav::HEADER_LEN as u64 + pcm_len;
        let budget = self.config.max_buffered_bytes;
        if wav_len > budget as u64 {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the audio would be {wav_len} bytes, more than the {budget} bytes the service \
                     buffers at once; send a shorter text or a lower sample_rate"
                ),
            ));
        }
        Ok((voice, format, wav_len))
    }
}

/// What [`buffer_wav`] writes into: a fresh `Vec`, or a pooled buffer.
trait WavBuffer {
    fn vec(&mut self) -> &mut Vec<u8>;

    /// Room for `additional` more bytes.
    fn make_room(&mut self, additional: usize);
}

impl WavBuffer for Vec<u8> {
    fn vec(&mut self) -> &mut Vec<u8> {
        self
    }

    fn make_room(&mut self, additional: usize) {
        self.reserve(additional);
    }
}

impl WavBuffer for PooledBuf<'_> {
    fn vec(&mut self) -> &mut Vec<u8> {
        self
    }

    /// Through the guard rather than the `Vec`: growing past the pool's max, it takes the
    /// pool's spare (the buffer an earlier long stream grew) instead of reallocating, so the
    /// few streams over the max do not each regrow a buffer from the max.
    fn make_room(&mut self, additional: usize) {
        PooledBuf::reserve(self, additional);
    }
}

/// Buffers a whole WAV file in `buf`: room for the header, the whole PCM stream (its length is
/// known only at the end), then the header written into the room. One buffer, no copy.
async fn buffer_wav(
    stream: &mut engine::PcmStream,
    format: PcmFormat,
    buf: &mut impl WavBuffer,
) -> Result<(), ApiError> {
    buf.vec().extend_from_slice(&[0; wav::HEADER_LEN]);
    loop {
        // The room for each chunk is made here, where the pool can see the buffer grow.
        buf.make_room(stream.next_chunk_len());
        match stream.read_into(buf.vec()).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "speech engine failed");
                return Err(ApiError::new(StatusCode::BAD_GATEWAY, error.to_string()));
            }
        }
    }
    let buf = buf.vec();
    let header = wav::header(format, (buf.len() - wav::HEADER_LEN) as u64)?;
    buf[..wav::HEADER_LEN].copy_from_slice(&header);
    Ok(())
}
