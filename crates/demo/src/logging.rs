//! The log writer: standard error, where a line that cannot be written is lost and counted
//! (`heapscape_demo_log_lines_dropped_total`) instead of failing whoever logged it.
//!
//! With `std::io::stderr` as its writer, tracing-subscriber reports a failed write with
//! `eprintln!`, which panics when standard error is a pipe whose reader went away: the task,
//! thread or destructor that logged a warning died with it (the metrics accept loop, the
//! config watcher, a shutdown in progress). Losing the line is the only safe answer there.
//! SIGPIPE needs nothing: the Rust runtime ignores it, so a write to such a pipe fails with
//! `EPIPE` instead of killing the process.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;

use crate::service_metrics;

/// Lines lost since the start, the whole process's (also those lost before the metrics
/// recorder was installed, which the counter catches up on at the next loss).
static LINES_DROPPED: AtomicU64 = AtomicU64::new(0);

/// A tracing-subscriber writer to standard error that never fails: see the module docs.
///
/// Use it with `log_internal_errors(false)` too, so tracing-subscriber never prints on its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossyStderr;

impl<'a> MakeWriter<'a> for LossyStderr {
    type Writer = LossyLine;

    fn make_writer(&'a self) -> Self::Writer {
        LossyLine { lost: false }
    }
}

/// One log line on its way to standard error (tracing-subscriber makes one per event).
#[derive(Debug)]
pub struct LossyLine {
    /// A write of this line failed: the rest of it is discarded, and it counted once.
    lost: bool,
}

impl LossyLine {
    fn lose(&mut self) {
        if !self.lost {
            self.lost = true;
            // Relaxed: a count; the counter keeps the largest total it was given.
            let total = LINES_DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
            service_metrics::set_log_lines_dropped(total);
        }
    }
}

impl Write for LossyLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.lost {
            match io::stderr().write(buf) {
                Ok(0) if !buf.is_empty() => self.lose(),
                Ok(written) => return Ok(written),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => return Err(error),
                Err(_) => self.lose(),
            }
        }
        Ok(buf.len())
    }

    /// The whole line under one lock of standard error, so lines of two threads never
    /// interleave.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if !self.lost && io::stderr().lock().write_all(buf).is_err() {
            self.lose();
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.lost && io::stderr().flush().is_err() {
            self.lose();
        }
        Ok(())
    }
}

/// What is logged: `RUST_LOG` as tracing-subscriber's `Targets` (`debug`, or
/// `info,heapscape_demo=debug,hyper=warn`), else `info`.
///
/// `Targets` rather than `EnvFilter`: the same level and target directives, without span and
/// field filters, which the demo has no use for, and without the regex engine `EnvFilter`
/// compiles in (some 20 s of compile units in a cold release build, 5 % of them).
/// A `RUST_LOG` that does not parse is reported on standard error and `info` used.
pub fn filter_from_env() -> Targets {
    let info = Targets::new().with_default(LevelFilter::INFO);
    let Some(text) = std::env::var_os("RUST_LOG").filter(|text| !text.is_empty()) else {
        return info;
    };
    match text.to_str().map(str::parse::<Targets>) {
        Some(Ok(targets)) => targets,
        failed => {
            let reason = match failed {
                Some(Err(error)) => error.to_string(),
                _ => "not UTF-8".to_owned(),
            };
            // Not `eprintln!`: it panics when standard error is closed.
            let _ = writeln!(
                io::stderr(),
                "heapscape-demo: RUST_LOG={text:?} is not a log filter ({reason}); logging at \
                 info. It takes a level (debug) or directives (info,heapscape_demo=debug)."
            );
            info
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_never_fails_its_writer() {
        let mut line = LossyStderr.make_writer();
        assert!(line.write_all(b"").is_ok());
        line.lose();
        let before = LINES_DROPPED.load(Ordering::Relaxed);
        // A line already lost counts once and swallows the rest.
        line.lose();
        assert_eq!(line.write(b"rest").unwrap(), 4);
        assert!(line.write_all(b"rest").is_ok());
        assert!(line.flush().is_ok());
        assert_eq!(LINES_DROPPED.load(Ordering::Relaxed), before);
    }
}
