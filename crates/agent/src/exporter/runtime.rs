//! Where the exporter's tasks (the `/metrics` listener, the exporter's upkeep, the StatsD
//! flush) run: the caller's tokio runtime, or, in a program without one, a small private
//! runtime on a thread of its own.
//!
//! A current-thread runtime on one thread is enough: the tasks only accept scrapes, render
//! and flush, and keep the program's own threads and runtime (if it has one elsewhere) out of
//! it.

use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::Error;
use crate::sync::lock;

/// The runtime the exporter's tasks were spawned on.
pub(crate) enum TaskRuntime {
    /// The tokio runtime the agent was started in; the caller keeps it running.
    Caller(Handle),
    /// The agent's own, driven by the `heapscape-metrics` thread until [`TaskRuntime::stop`].
    Private(PrivateRuntime),
}

pub(crate) struct PrivateRuntime {
    handle: Handle,
    /// Taken by the first stop; sending (or dropping) it ends the thread.
    stop: std::sync::Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl TaskRuntime {
    /// The current tokio runtime if there is one, else a private one.
    pub(crate) fn current_or_private() -> Result<Self, Error> {
        if let Ok(handle) = Handle::try_current() {
            return Ok(Self::Caller(handle));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(Error::Runtime)?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("heapscape-metrics".into())
            // A current-thread runtime runs its tasks only inside `block_on`; dropping it at
            // the end cancels them, which closes the listener and its connections.
            .spawn(move || {
                let _ = runtime.block_on(stopped);
            })
            .map_err(Error::Runtime)?;
        Ok(Self::Private(PrivateRuntime {
            handle,
            stop: std::sync::Mutex::new(Some((stop, thread))),
        }))
    }

    /// Where to spawn the tasks.
    pub(crate) fn handle(&self) -> &Handle {
        match self {
            Self::Caller(handle) => handle,
            Self::Private(private) => &private.handle,
        }
    }

    /// Ends the private runtime's thread (its tasks are cancelled); the caller's runtime is
    /// left alone. Later calls do nothing.
    pub(crate) fn stop(&self) {
        if let Self::Private(private) = self {
            private.stop();
        }
    }
}

impl PrivateRuntime {
    fn stop(&self) {
        if let Some((stop, thread)) = lock(&self.stop).take() {
            // The thread only ends after this send; an error means it already panicked.
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

impl Drop for PrivateRuntime {
    /// An exporter that failed to install (a port in use) leaves no thread behind.
    fn drop(&mut self) {
        self.stop();
    }
}
