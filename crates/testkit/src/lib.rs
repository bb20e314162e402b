//! Scaffolding shared by heapscape's integration tests.
//!
//! Everything here follows the project's test rules: servers bind free ports on 127.0.0.1,
//! waits are bounded by generous timeouts (the test machine is a shared 2-core box), and every
//! child process is killed and reaped on drop. The exporters are real programs, never mocks:
//!
//! - [`Statsd`]: Etsy statsd (npm package `statsd`) with its admin queries;
//! - [`Prometheus`]: `/usr/bin/prometheus` with its HTTP API.
//!
//! ```no_run
//! use heapscape_testkit::{Prometheus, Statsd, WAIT, wait_until};
//!
//! let statsd = Statsd::start();
//! // ... point an exporter at 127.0.0.1:{statsd.udp_port()} ...
//! wait_until(WAIT, "a counter", || {
//!     statsd.counters().is_some_and(|dump| dump.contains("'hits;"))
//! });
//!
//! let prometheus = Prometheus::start("global: { scrape_interval: 1s }\n");
//! let series = prometheus.query("up").expect("a valid query");
//! # drop(series);
//! ```

#![forbid(unsafe_code)]

mod binary;
mod files;
mod fixture_server;
mod http;
mod logs;
mod process;
mod prometheus;
mod statsd;
mod wait;

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

pub use binary::workspace_binary;
pub use files::{ConfigFile, write_atomically};
pub use fixture_server::{FixtureServer, Render};
pub use http::{http_get, url_encode};
pub use logs::CapturedLogs;
pub use process::ChildGuard;
pub use prometheus::Prometheus;
pub use statsd::{Statsd, statsd_admin, statsd_bin};
pub use wait::{WAIT, wait_for, wait_until};

/// A free TCP port on 127.0.0.1 (bound, then released for a server to bind).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free TCP port")
        .port()
}

/// A free UDP port on 127.0.0.1 (bound, then released for a server to bind).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("free UDP port")
        .port()
}

/// The workspace root (the directory of the root `Cargo.toml`), as an absolute path.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}
