//! A `serve` child of this binary on free loopback ports, as `compare` and `soak` run it: started,
//! read from its ready line, and shut down gracefully by closing its standard input.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::Error;
use crate::server::{Pooling, READY_PREFIX, ReadyLine};

/// Time a child has to print its ready line, and to exit once asked to.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// A `serve` child process; killed if dropped without [`ServeChild::shutdown`].
pub(crate) struct ServeChild {
    /// The mode it serves.
    pub(crate) pooling: Pooling,
    /// The process, for its pid and exit status.
    pub(crate) process: Child,
    /// Closing it asks the child to shut down gracefully (`--exit-on-stdin-close`).
    stdin: Option<ChildStdin>,
    /// Address of its speech service.
    pub(crate) http: SocketAddr,
    /// Address of its Prometheus listener.
    pub(crate) metrics: SocketAddr,
}

/// What [`ServeChild::spawn`] adds, and `compare` adds to its tuned and auto children's
/// arguments: with the `profiling` feature, heap sampling from the start, for `compare`'s flame
/// graphs.
pub(crate) const PROFILING_ARGS: &[&str] = if cfg!(feature = "profiling") {
    &["--heap-profiling"]
} else {
    &[]
};

impl ServeChild {
    /// A `serve` child of `exe` (this binary) with pooling on or off, once it is ready; with
    /// the `profiling` feature it samples its heap from the start, for `compare`'s flame graphs.
    pub(crate) async fn spawn(exe: &Path, pooling: Pooling) -> Result<Self, Error> {
        Self::spawn_with(exe, pooling, PROFILING_ARGS).await
    }

    /// A `serve` child with `extra` arguments after the ones `compare` uses.
    pub(crate) async fn spawn_with(
        exe: &Path,
        pooling: Pooling,
        extra: &[&str],
    ) -> Result<Self, Error> {
        let failed = |reason: String| child_error(pooling, reason);
        let mut process = Command::new(exe)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--heartbeat-interval",
                "1s",
                "--exit-on-stdin-close",
                "--pooling",
                pooling.as_str(),
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot start {}: {e}", exe.display())))?;
        let stdin = process.stdin.take();
        let stdout = process
            .stdout
            .take()
            .ok_or_else(|| failed("no standard output".to_owned()))?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(CHILD_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with(READY_PREFIX) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        let ready = match ready {
            Ok(Some(ready)) => ReadyLine::parse(&ready).map_err(failed)?,
            Ok(None) => {
                let status = process
                    .wait()
                    .await
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                return Err(failed(format!("exited before it was ready ({status})")));
            }
            Err(_) => return Err(failed(format!("not ready within {CHILD_TIMEOUT:?}"))),
        };
        // Keep reading so the child never writes into a full or closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let metrics = ready
            .metrics
            .ok_or_else(|| failed("its ready line has no metrics address".to_owned()))?;
        Ok(Self {
            pooling,
            http: ready.http,
            metrics,
            process,
            stdin,
        })
    }

    /// The error for this child failing with `reason`.
    pub(crate) fn failed(&self, reason: String) -> Error {
        child_error(self.pooling, reason)
    }

    /// An error unless the child is still running.
    pub(crate) fn check_running(&mut self) -> Result<(), Error> {
        match self.process.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.failed(format!("exited during the run ({status})"))),
            Err(e) => Err(self.failed(format!("cannot be checked: {e}"))),
        }
    }

    /// Closes the child's standard input and waits for it to exit; kills it after the timeout.
    pub(crate) async fn shutdown(mut self) -> Result<(), Error> {
        drop(self.stdin.take());
        match tokio::time::timeout(CHILD_TIMEOUT, self.process.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(self.failed(format!("exited with {status}"))),
            Ok(Err(e)) => Err(self.failed(format!("cannot be waited for: {e}"))),
            Err(_) => {
                // Ignored: kill_on_drop kills it anyway when `self` goes.
                let _ = self.process.kill().await;
                Err(self.failed(format!("did not stop within {CHILD_TIMEOUT:?}; killed")))
            }
        }
    }
}

fn child_error(pooling: Pooling, reason: String) -> Error {
    Error::Child {
        mode: format!("pooling {}", pooling.as_str()),
        reason,
    }
}
