//! The story's workload: a text-to-speech service that buffers PCM of unknown length to write a
//! WAV header, with or without a buffer pool, plus its load generator and before/after report.
//!
//! The binary `heapscape-demo` has three commands: `serve` (the service), `load` (a bounded load
//! generator) and `compare` (runs the service without and with pooling under the same load and
//! writes a report). The modules are public so the integration tests can drive the router in
//! process.

#![deny(missing_docs)]

pub mod compare;
pub mod engine;
mod error;
pub mod load;
pub mod prom;
mod report;
pub mod server;
pub mod telemetry;
pub mod wav;

pub use error::Error;
