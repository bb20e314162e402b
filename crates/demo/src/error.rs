//! The one error type of the demo's commands.

use std::path::PathBuf;

/// Why a command of `heapscape-demo` could not run. Failed requests under load are not errors
/// of this kind: they are counted in the load report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The target URL is not a plain `http://host:port` URL.
    #[error("cannot load {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The target is not on this machine.
    #[error(
        "refusing to load {host}: it is not a loopback address; pass --allow-remote if it is a \
         server you run"
    )]
    RemoteTarget {
        /// The host given.
        host: String,
    },
    /// Options that cannot work together or name something unknown.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    // The messages below include their cause, so none of these variants reports it again as
    // a `source` (the binary prints the chain, which would repeat it).
    /// The metrics agent would not start or its configuration is wrong.
    #[error("metrics agent: {0}")]
    Agent(Box<dyn std::error::Error + Send + Sync>),
    /// An I/O operation failed.
    #[error("{context}: {error}")]
    Io {
        /// What was being done, e.g. "binding 127.0.0.1:8080".
        context: String,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A child `serve` process failed or did not become ready.
    #[error("the {mode} server: {reason}")]
    Child {
        /// `pooling off` or `pooling on`.
        mode: String,
        /// What happened.
        reason: String,
    },
    /// Ctrl-C stopped the command.
    #[error("interrupted")]
    Interrupted,
    /// Requests failed during a comparison run.
    #[error("{count} requests failed (see the table); the comparison is not trustworthy")]
    RequestsFailed {
        /// Number of failed requests.
        count: u64,
    },
}

impl Error {
    /// An [`Error::Io`] with what was being done.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |error| Error::Io { context, error }
    }
}
