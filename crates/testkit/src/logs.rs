//! Log output captured in memory, for tests that check what a service tells its operators.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// A writer that keeps everything written to it; clones share the buffer, so one clone goes to
/// the log subscriber (`.with_writer(move || writer.clone())`) and the test reads another.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Installs the process's global log subscriber (events at `level` and above, no colours)
    /// writing here, and returns the logs to read.
    ///
    /// Global, not a thread's default: tracing caches per call site whether anyone listens,
    /// and a thread-local subscriber can go unasked when another thread reaches the call site
    /// first. So one test per binary installs it, and lines are told apart by their fields.
    ///
    /// # Panics
    ///
    /// If a global subscriber is already installed.
    pub fn install(level: tracing::Level) -> Self {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(level)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        logs
    }

    /// The lines written so far that contain `text`.
    pub fn lines_with(&self, text: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.bytes())
            .lines()
            .filter(|line| line.contains(text))
            .map(str::to_owned)
            .collect()
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    fn bytes(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A test that panicked while writing leaves what it wrote; the next reader wants it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
