//! The tokio runner never samples on an async worker thread. A recorder notes the thread that
//! publishes `heapscape_heartbeat_up`, which a tick sets right after its sample, on the same
//! thread; on a current-thread runtime the one async worker is the thread in `block_on`.
#![cfg(feature = "tokio")]

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::Duration;

use heapscape_heartbeat::Heartbeat;
use heapscape_testkit::WAIT;
use metrics::{
    Counter, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

type Threads = Arc<Mutex<Vec<ThreadId>>>;

/// Records the thread of every update of `heapscape_heartbeat_up`; ignores everything else.
struct ThreadRecorder(Threads);

struct ThreadGauge(Threads);

impl ThreadGauge {
    fn note(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(std::thread::current().id());
    }
}

impl GaugeFn for ThreadGauge {
    fn increment(&self, _: f64) {
        self.note();
    }

    fn decrement(&self, _: f64) {
        self.note();
    }

    fn set(&self, _: f64) {
        self.note();
    }
}

impl Recorder for ThreadRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        if key.name() == "heapscape_heartbeat_up" {
            Gauge::from_arc(Arc::new(ThreadGauge(Arc::clone(&self.0))))
        } else {
            Gauge::noop()
        }
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn the_tokio_runner_samples_off_the_async_worker() {
    let threads = Threads::default();
    metrics::set_global_recorder(ThreadRecorder(Arc::clone(&threads)))
        .expect("the only recorder of this binary");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let worker = runtime.block_on(async {
        let handle = Heartbeat::builder()
            .interval(Duration::from_millis(10))
            .build()
            .spawn();
        // Waits without blocking the worker, which the heartbeat task needs too.
        let deadline = tokio::time::Instant::now() + WAIT;
        while handle.ticks() < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "3 ticks did not run in {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        handle.shutdown().await;
        std::thread::current().id()
    });
    let threads = threads.lock().unwrap_or_else(PoisonError::into_inner);
    assert!(
        threads.len() >= 4,
        "three ticks and the final one: {threads:?}"
    );
    assert!(
        !threads.contains(&worker),
        "a tick ran on the async worker {worker:?}: {threads:?}"
    );
}
