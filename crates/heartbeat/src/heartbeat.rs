//! [`Heartbeat`]: the timer that samples, publishes and drives the pools.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use heapscape_pool::Pool;

use crate::sync::{lock, wait_timeout};
use crate::{HeapStats, HeartbeatError, publish};

/// The default time between ticks.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// The shortest interval; shorter requests are raised to it.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// The longest interval; longer requests are lowered to it.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// Configures a [`Heartbeat`]; from [`Heartbeat::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct HeartbeatBuilder {
    interval: Duration,
    pools: Vec<Pool>,
}

impl HeartbeatBuilder {
    /// Time between ticks ([`DEFAULT_INTERVAL`] if not set), clamped to
    /// [`MIN_INTERVAL`]`..=`[`MAX_INTERVAL`].
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = clamp_interval(interval);
        self
    }

    /// Auto-tunes, publishes and trims `pool` on every tick. A pool with the same name as one already
    /// added replaces it: the name is the metric label, so two would mix their series.
    pub fn pool(mut self, pool: Pool) -> Self {
        insert_pool(&mut self.pools, pool);
        self
    }

    /// Creates the heartbeat; nothing runs until [`Heartbeat::spawn`] or
    /// [`Heartbeat::spawn_thread`].
    #[must_use]
    pub fn build(self) -> Heartbeat {
        Heartbeat {
            shared: Arc::new(Shared {
                control: Mutex::new(Control {
                    interval: self.interval,
                    pools: self.pools,
                    stopping: false,
                }),
                wake_thread: Condvar::new(),
                #[cfg(feature = "tokio")]
                wake_task: tokio::sync::Notify::new(),
                outcome: Mutex::new(Outcome::default()),
                ticks: AtomicU64::new(0),
                thread: Mutex::new(None),
            }),
        }
    }
}

/// Samples jemalloc and the process on a timer, publishes the [metrics](crate::metrics::CATALOG), and
/// auto-tunes, publishes and trims the registered pools (logging each auto-tuning move).
///
/// Build it with [`Heartbeat::builder`], then run it as a tokio task ([`Heartbeat::spawn`]) or
/// on its own thread ([`Heartbeat::spawn_thread`]). The first tick runs at once. Run one
/// heartbeat per process: jemalloc's statistics are process-wide.
#[derive(Debug)]
pub struct Heartbeat {
    shared: Arc<Shared>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl Heartbeat {
    /// A builder with the [`DEFAULT_INTERVAL`] and no pools.
    pub fn builder() -> HeartbeatBuilder {
        HeartbeatBuilder {
            interval: DEFAULT_INTERVAL,
            pools: Vec::new(),
        }
    }

    /// Runs one tick now, on the calling thread: advance jemalloc's epoch, read and publish
    /// the statistics, then auto-tune, publish and trim every pool.
    ///
    /// For services that schedule sampling themselves. It blocks on jemalloc's arena locks,
    /// so do not call it on an async worker thread.
    ///
    /// # Errors
    ///
    /// As [`HeapStats::sample`]; the pools are published and trimmed even then.
    pub fn tick(&self) -> Result<HeapStats, HeartbeatError> {
        self.shared.tick()
    }

    /// Runs the heartbeat as a task on the current tokio runtime.
    ///
    /// The timer is a tokio interval that skips missed ticks; each tick runs on the blocking
    /// pool (`spawn_blocking`), never on an async worker.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime, like `tokio::spawn`.
    #[cfg(feature = "tokio")]
    pub fn spawn(self) -> HeartbeatHandle {
        let task = tokio::spawn(run_task(Arc::clone(&self.shared)));
        *lock(&self.shared.thread) = Some(Runner::Task(task));
        HeartbeatHandle {
            shared: self.shared,
        }
    }

    /// Runs the heartbeat on a dedicated thread named `heapscape-heartbeat`; no async runtime
    /// needed.
    ///
    /// # Errors
    ///
    /// [`HeartbeatError::SpawnThread`] if the operating system refuses to create the thread.
    pub fn spawn_thread(self) -> Result<HeartbeatHandle, HeartbeatError> {
        let shared = Arc::clone(&self.shared);
        let thread = std::thread::Builder::new()
            .name("heapscape-heartbeat".into())
            .spawn(move || run_thread(&shared))
            .map_err(HeartbeatError::SpawnThread)?;
        *lock(&self.shared.thread) = Some(Runner::Thread(thread));
        Ok(HeartbeatHandle {
            shared: self.shared,
        })
    }
}

/// Controls a running [`Heartbeat`]; cheap to clone, usable from any thread.
///
/// Dropping every handle leaves the heartbeat running until the process exits (or, for a
/// task, until its runtime shuts down); call [`stop`](Self::stop) to end it.
#[derive(Debug, Clone)]
pub struct HeartbeatHandle {
    shared: Arc<Shared>,
}

impl HeartbeatHandle {
    /// Changes the time between ticks, clamped to [`MIN_INTERVAL`]`..=`[`MAX_INTERVAL`], and
    /// returns the interval applied. The next tick comes one new interval from now.
    pub fn set_interval(&self, interval: Duration) -> Duration {
        let interval = clamp_interval(interval);
        lock(&self.shared.control).interval = interval;
        self.shared.wake();
        interval
    }

    /// The current time between ticks.
    #[must_use]
    pub fn interval(&self) -> Duration {
        lock(&self.shared.control).interval
    }

    /// Auto-tunes, publishes and trims `pool` from the next tick on; replaces a pool of the same name.
    pub fn add_pool(&self, pool: Pool) {
        insert_pool(&mut lock(&self.shared.control).pools, pool);
    }

    /// Stops publishing and trimming the pool called `name` and returns it, if it was there.
    pub fn remove_pool(&self, name: &str) -> Option<Pool> {
        let pools = &mut lock(&self.shared.control).pools;
        let index = pools.iter().position(|pool| pool.name() == name)?;
        Some(pools.remove(index))
    }

    /// Names of the pools published on each tick.
    #[must_use]
    pub fn pool_names(&self) -> Vec<String> {
        lock(&self.shared.control)
            .pools
            .iter()
            .map(|pool| pool.name().to_owned())
            .collect()
    }

    /// Ticks completed so far, whether their sample succeeded or not.
    #[must_use]
    pub fn ticks(&self) -> u64 {
        // Acquire: pairs with the Release in `Shared::tick`, so a caller that sees tick `n`
        // also sees that tick's `last_stats`.
        self.shared.ticks.load(Ordering::Acquire)
    }

    /// The snapshot of the last successful sample, if any.
    #[must_use]
    pub fn last_stats(&self) -> Option<HeapStats> {
        lock(&self.shared.outcome).last_stats
    }

    /// The error message of the last tick, or `None` if it succeeded (or none ran yet).
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.outcome).last_error.clone()
    }

    /// Stops the heartbeat gracefully: waits for a tick in progress, then runs a final tick
    /// (sample and publish, pools included) on the calling thread and returns. Later calls
    /// return at once.
    ///
    /// The final tick advances jemalloc's epoch on this thread; from async code prefer
    /// [`shutdown`](Self::shutdown).
    pub fn stop(&self) {
        self.shared.request_stop();
        self.shared.finish();
    }

    /// [`stop`](Self::stop) for async code: the final tick runs on the blocking pool.
    #[cfg(feature = "tokio")]
    pub async fn shutdown(self) {
        self.shared.request_stop();
        let runner = lock(&self.shared.thread).take();
        if let Some(Runner::Task(task)) = runner {
            // A task that panicked has nothing left to clean up.
            let _ = task.await;
        } else {
            *lock(&self.shared.thread) = runner;
        }
        let shared = Arc::clone(&self.shared);
        // If the blocking pool is gone (runtime shutting down) there is no one to publish to.
        let _ = tokio::task::spawn_blocking(move || shared.finish()).await;
    }
}

struct Shared {
    control: Mutex<Control>,
    /// Wakes the thread runner when `control` changes.
    wake_thread: Condvar,
    /// Wakes the task runner when `control` changes. `notify_one` keeps a permit, so a change
    /// made while the task is busy is not lost.
    #[cfg(feature = "tokio")]
    wake_task: tokio::sync::Notify,
    /// Serialises ticks (the final one included) and holds their result.
    outcome: Mutex<Outcome>,
    ticks: AtomicU64,
    thread: Mutex<Option<Runner>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let control = lock(&self.control);
        f.debug_struct("Heartbeat")
            .field("interval", &control.interval)
            .field("pools", &control.pools.len())
            .field("stopping", &control.stopping)
            .field("ticks", &self.ticks.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

struct Control {
    interval: Duration,
    pools: Vec<Pool>,
    stopping: bool,
}

#[derive(Default)]
struct Outcome {
    last_stats: Option<HeapStats>,
    last_error: Option<String>,
    /// Set by the final tick; no tick runs after it.
    finished: bool,
}

enum Runner {
    Thread(JoinHandle<()>),
    #[cfg(feature = "tokio")]
    Task(tokio::task::JoinHandle<()>),
}

impl Shared {
    fn tick(&self) -> Result<HeapStats, HeartbeatError> {
        let mut outcome = lock(&self.outcome);
        self.tick_locked(&mut outcome)
    }

    /// A tick unless the final one already ran.
    fn scheduled_tick(&self) {
        let mut outcome = lock(&self.outcome);
        if !outcome.finished {
            // The outcome is kept in `Outcome`; the runner has no one to report to.
            let _ = self.tick_locked(&mut outcome);
        }
    }

    fn tick_locked(&self, outcome: &mut Outcome) -> Result<HeapStats, HeartbeatError> {
        let (pools, interval) = {
            let control = lock(&self.control);
            (control.pools.clone(), control.interval)
        };
        let result = publish::tick(&pools, interval);
        match &result {
            Ok(stats) => {
                outcome.last_stats = Some(*stats);
                outcome.last_error = None;
            }
            Err(error) => outcome.last_error = Some(error.to_string()),
        }
        // Release: see `HeartbeatHandle::ticks`.
        self.ticks.fetch_add(1, Ordering::Release);
        result
    }

    fn request_stop(&self) {
        lock(&self.control).stopping = true;
        self.wake();
    }

    fn wake(&self) {
        self.wake_thread.notify_all();
        #[cfg(feature = "tokio")]
        self.wake_task.notify_one();
    }

    /// Joins the thread runner (if any), then runs the final tick once.
    fn finish(&self) {
        let thread = {
            let mut runner = lock(&self.thread);
            match runner.take() {
                Some(Runner::Thread(thread)) => Some(thread),
                // A task exits on its own once it sees `stopping`; a tick it is still running
                // holds `outcome`, which the final tick below waits for.
                other => {
                    *runner = other;
                    None
                }
            }
        };
        if let Some(thread) = thread {
            // A runner thread that panicked has nothing left to clean up.
            let _ = thread.join();
        }
        let mut outcome = lock(&self.outcome);
        if !outcome.finished {
            let _ = self.tick_locked(&mut outcome);
            outcome.finished = true;
        }
    }
}

fn run_thread(shared: &Shared) {
    let mut control = lock(&shared.control);
    let mut interval = control.interval;
    let mut next = Instant::now();
    loop {
        if control.stopping {
            return;
        }
        if control.interval != interval {
            interval = control.interval;
            next = Instant::now() + interval;
        }
        let now = Instant::now();
        if now < next {
            control = wait_timeout(&shared.wake_thread, control, next - now);
            continue;
        }
        drop(control);
        shared.scheduled_tick();
        // Skip missed ticks, like tokio's `MissedTickBehavior::Skip`.
        next += interval;
        let now = Instant::now();
        if next <= now {
            next = now + interval;
        }
        control = lock(&shared.control);
    }
}

#[cfg(feature = "tokio")]
async fn run_task(shared: Arc<Shared>) {
    use tokio::time::{MissedTickBehavior, interval_at};

    let new_ticker = |start: tokio::time::Instant, period| {
        let mut ticker = interval_at(start, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        ticker
    };
    let mut period = lock(&shared.control).interval;
    let mut ticker = new_ticker(tokio::time::Instant::now(), period);
    loop {
        {
            let control = lock(&shared.control);
            if control.stopping {
                return;
            }
            if control.interval != period {
                period = control.interval;
                ticker = new_ticker(tokio::time::Instant::now() + period, period);
            }
        }
        tokio::select! {
            _ = ticker.tick() => {
                let shared = Arc::clone(&shared);
                // A panicking tick (a bug) must not end the heartbeat; the next tick retries.
                let _ = tokio::task::spawn_blocking(move || shared.scheduled_tick()).await;
            }
            () = shared.wake_task.notified() => {}
        }
    }
}

fn clamp_interval(interval: Duration) -> Duration {
    interval.clamp(MIN_INTERVAL, MAX_INTERVAL)
}

fn insert_pool(pools: &mut Vec<Pool>, pool: Pool) {
    match pools.iter_mut().find(|known| known.name() == pool.name()) {
        Some(known) => *known = pool,
        None => pools.push(pool),
    }
}
