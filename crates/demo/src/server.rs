//! The speech service: `POST /v1/speech` answers `audio/wav`, `GET /healthz` answers `ok`; and
//! the `serve` command that runs it.
//!
//! - `api`: the router, its handlers, request validation and JSON errors
//!   ([`router`], [`Buffers`], [`ServiceConfig`], [`ApiError`]), with `visible`, which text
//!   has something to say;
//! - `connections`: the accept loop, connection cap, header read timeout and draining on
//!   shutdown ([`serve_connections`]), each connection guarded by the agent's
//!   [`heapscape::connection`] (the send timeout; a `Content-Length` too large for hyper,
//!   answered 413), with `unanswered`, whether a request was arriving when the connection
//!   ended;
//! - `serve`: the command's options and wiring: the agent, the listener, the signals
//!   ([`serve`], [`ServeOptions`]);
//! - `ready`: the line `serve` prints once it accepts requests ([`ReadyLine`]).
//!
//! Every error is a JSON body `{"error": "<reason>"}` with a fitting status.

mod api;
mod connections;
mod ready;
mod serve;
mod unanswered;
mod visible;

pub use api::{
    ApiError, BUDGET_WAIT, Buffers, DEFAULT_SAMPLE_RATE, DEFAULT_VOICE, NOT_AN_OBJECT,
    ServiceConfig, SpeechRequest, router,
};
pub use connections::{Connections, Drained, serve_connections};
pub use ready::{READY_PREFIX, ReadyLine};
pub use serve::{POOL_NAME, Pooling, ServeOptions, agent_config, apply_overrides, serve};
