//! Etsy statsd (npm package `statsd`) on loopback, with its admin queries.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{ChildGuard, WAIT, free_port, free_udp_port, wait_until, workspace_root};

/// The statsd daemon's entry point: `HEAPSCAPE_STATSD_BIN`, or
/// `<repo>/.cache/statsd/node_modules/statsd/bin/statsd` (where `.ci/run` installs it).
///
/// Panics, saying how to install it, if it is not there: the tests fail rather than skip.
pub fn statsd_bin() -> PathBuf {
    let path = std::env::var_os("HEAPSCAPE_STATSD_BIN").map_or_else(
        || workspace_root().join(".cache/statsd/node_modules/statsd/bin/statsd"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "the StatsD daemon is not installed at {}: run `npm install --prefix .cache/statsd \
         statsd@0.9.0` in the repository root, or set HEAPSCAPE_STATSD_BIN to its bin/statsd",
        path.display()
    );
    path
}

/// Sends one admin command to Etsy statsd's management port on 127.0.0.1 and returns the
/// reply (for `counters` and `gauges`, a JS object dump such as `{ 'name;tag=value': 1 }`), or
/// `None` if the daemon does not answer.
pub fn statsd_admin(mgmt_port: u16, command: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", mgmt_port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    writeln!(stream, "{command}").ok()?;
    let mut reader = BufReader::new(stream);
    let mut reply = String::new();
    // The reply to `counters`/`gauges` ends with a line `END`.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line.trim() == "END" {
            break;
        }
        reply.push_str(&line);
        if command == "health" {
            // A one-line reply (`health: up`) without `END`.
            break;
        }
    }
    Some(reply)
}

/// Etsy statsd listening for metrics on a free UDP port of 127.0.0.1, with a 500 ms flush
/// unless started with another, no backends and idle stats kept; its admin interface is on a
/// free TCP port. Killed on drop.
#[derive(Debug)]
pub struct Statsd {
    udp_port: u16,
    mgmt_port: u16,
    config: PathBuf,
    child: Option<ChildGuard>,
    _dir: tempfile::TempDir,
}

impl Statsd {
    /// Starts the daemon and waits until its admin port reports it healthy.
    pub fn start() -> Self {
        Self::start_with_flush_interval(Duration::from_millis(500))
    }

    /// [`Statsd::start`] with another flush interval. The daemon resets its counters at every
    /// flush, so a test that reads totals from the `counters` dump sets one longer than it
    /// runs.
    pub fn start_with_flush_interval(flush_interval: Duration) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (udp_port, mgmt_port) = (free_udp_port(), free_port());
        let config = dir.path().join("statsd.js");
        std::fs::write(
            &config,
            format!(
                "{{ port: {udp_port}, address: \"127.0.0.1\", mgmt_port: {mgmt_port}, \
                 mgmt_address: \"127.0.0.1\", flushInterval: {}, backends: [], \
                 deleteIdleStats: false }}\n",
                flush_interval.as_millis()
            ),
        )
        .expect("write statsd config");
        let mut statsd = Self {
            udp_port,
            mgmt_port,
            config,
            child: None,
            _dir: dir,
        };
        statsd.restart();
        statsd
    }

    /// The UDP port that receives metrics (on 127.0.0.1).
    pub fn udp_port(&self) -> u16 {
        self.udp_port
    }

    /// The TCP port of the admin interface (on 127.0.0.1), for [`statsd_admin`].
    pub fn mgmt_port(&self) -> u16 {
        self.mgmt_port
    }

    /// One admin command's reply (see [`statsd_admin`]); `None` if the daemon does not answer.
    pub fn admin(&self, command: &str) -> Option<String> {
        statsd_admin(self.mgmt_port, command)
    }

    /// The `counters` dump; `None` if the daemon does not answer.
    pub fn counters(&self) -> Option<String> {
        self.admin("counters")
    }

    /// The `gauges` dump; `None` if the daemon does not answer.
    pub fn gauges(&self) -> Option<String> {
        self.admin("gauges")
    }

    /// Stops the daemon (what it received is gone); [`Statsd::restart`] brings it back on the
    /// same ports.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// (Re)starts the daemon on the same ports, empty, and waits until it is healthy.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(ChildGuard::spawn(
            "statsd (node)",
            Command::new("node")
                .arg(statsd_bin())
                .arg(&self.config)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        ));
        wait_until(WAIT, "statsd's management port", || {
            self.admin("health")
                .is_some_and(|reply| reply.contains("up"))
        });
    }
}
