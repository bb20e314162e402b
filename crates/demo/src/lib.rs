//! The story's workload: a text-to-speech service that buffers PCM of unknown length to write a
//! WAV header, with or without a buffer pool, plus its load generator and before/after report.
//!
//! The binary `heapscape-demo` has three commands: `serve` (the service), `load` (a bounded load
//! generator) and `compare` (runs the service without and with pooling under the same load and
//! writes a report). The modules are public so the integration tests can drive the router in
//! process.
//!
//! - [`engine`]: the synthetic speech engine, a chunked PCM stream of unknown length.
//! - [`wav`]: the RIFF/WAVE header, a pure function.
//! - [`server`]: the axum service (API, connections, the `serve` command and its ready line).
//! - [`load`]: the seeded load generator; `load`.
//! - [`compare`]: both modes under the same load, side by side (summary, phases, report);
//!   `compare`.
//! - [`soak`]: sustained load with resident-memory and scrape checks; `soak`.
//! - [`service_metrics`]: the service's own metrics.
//! - [`logging`]: the log writer, which loses (and counts) lines standard error refuses.
//!
//! `compare` and `soak` share the `serve` child they start (`child`) and their scrapes with the
//! names of the series they read (`scrape`).
//!
//! ```no_run
//! use heapscape_demo::server::{Buffers, ServiceConfig, router};
//!
//! # async fn example() -> std::io::Result<()> {
//! let pool = heapscape_pool::Pool::builder("pcm").build().expect("valid pool");
//! let app = router(Buffers::Pooled(pool), ServiceConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

#![deny(missing_docs)]

mod child;
pub mod compare;
pub mod engine;
mod error;
pub mod load;
pub mod logging;
mod scrape;
pub mod server;
pub mod service_metrics;
pub mod soak;
mod sync;
pub mod wav;

pub use error::Error;
