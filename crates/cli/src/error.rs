//! The CLI's one error type: each variant says what went wrong and what to do, and maps to a
//! documented exit code.

use std::path::PathBuf;

/// Exit codes, as the README's "Exit codes" table documents them.
pub mod exit {
    /// Recommendations printed (or written), at least one pool had enough data.
    pub const OK: u8 = 0;
    /// Anything else: a file that cannot be read or written, a config that cannot be edited.
    pub const OTHER: u8 = 1;
    /// A bad argument: a malformed URL, selector or window (also clap's usage errors).
    pub const USAGE: u8 = 2;
    /// The server could not be reached or answered with an error.
    pub const UNREACHABLE: u8 = 3;
    /// The server answered, but no series of heapscape pools matched.
    pub const NO_SERIES: u8 = 4;
    /// Pools matched, but none had enough returns in the window for a recommendation.
    pub const NOT_ENOUGH_DATA: u8 = 5;
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument that cannot be used as given.
    #[error("{0}")]
    Usage(String),
    /// The server did not answer, or answered with an error status.
    #[error("{url}: {reason}")]
    Unreachable {
        /// What was asked for.
        url: String,
        /// Why it failed, with what to check.
        reason: String,
    },
    /// Prometheus refused a query: most often a malformed `--selector`.
    #[error(
        "Prometheus refused the query ({reason}); check --selector, written as label matchers \
         such as job=\"tts\",cluster=~\"eu-.*\"\n  query: {query}"
    )]
    BadQuery {
        /// The query sent.
        query: String,
        /// Prometheus's error.
        reason: String,
    },
    /// No heapscape pool series matched.
    #[error(
        "no heapscape pool series match {what}: is the service exporting \
         heapscape_pool_returned_length_bytes, and do --selector and --window cover it?"
    )]
    NoSeries {
        /// The source and selector looked at.
        what: String,
    },
    /// Every pool matched had too few returns in the window.
    #[error("not enough data for any pool: {0}")]
    NotEnoughData(String),
    /// A config file that cannot be read, edited or written.
    #[error("{}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl Error {
    /// The process exit code for this error (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::BadQuery { .. } => exit::USAGE,
            Self::Unreachable { .. } => exit::UNREACHABLE,
            Self::NoSeries { .. } => exit::NO_SERIES,
            Self::NotEnoughData(_) => exit::NOT_ENOUGH_DATA,
            Self::Config { .. } => exit::OTHER,
        }
    }
}
