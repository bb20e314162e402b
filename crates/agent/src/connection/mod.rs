//! Guards for the connections of a hyper HTTP/1 server, the ones the agent's `/metrics`
//! listener runs each connection through. A service that serves its own HTTP wraps each
//! accepted stream in them before handing it to hyper:
//!
//! - [`StallLimit`] bounds how long a connection may make no progress. hyper has no write
//!   timeout, so without it a client that stops reading keeps its response in the service's
//!   memory for as long as it keeps the connection open: slow readers of large responses are
//!   one way a service's heap grows without its traffic growing.
//! - [`BodyLength`] answers a `Content-Length` too large to represent with 413 and the
//!   service's reason, as the service answers any other body over its limit, where hyper
//!   would answer 431 or 400.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use heapscape::connection::{BodyLength, StallLimit};
//!
//! # async fn accept(listener: tokio::net::TcpListener) -> std::io::Result<()> {
//! let (stream, _) = listener.accept().await?;
//! let stream = StallLimit::sends_only(stream, Duration::from_secs(30));
//! let stream = BodyLength::new(stream, "text/plain; charset=utf-8", |announced: &str| {
//!     format!("length limit exceeded: {announced} bytes; send at most 64 KiB\n")
//! });
//! let io = hyper_util::rt::TokioIo::new(stream);
//! // hyper::server::conn::http1::Builder::new().serve_connection(io, service).await
//! # drop(io);
//! # Ok(())
//! # }
//! ```

mod body_length;
mod stall_limit;

pub use body_length::BodyLength;
pub use stall_limit::StallLimit;
