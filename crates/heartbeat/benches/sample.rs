//! Cost of one heartbeat tick (epoch advance, reads, publication into a recorder), on an idle
//! process and while another thread allocates.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use heapscape_heartbeat::Heartbeat;
use metrics_util::debugging::{DebuggingRecorder, Snapshotter};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn ticks(c: &mut Criterion, name: &str, heartbeat: &Heartbeat, snapshotter: &Snapshotter) {
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                black_box(heartbeat.tick().expect("sample"));
            }
            let elapsed = started.elapsed();
            // Drain the recorder outside the timed loop so stored histogram values don't pile up.
            drop(snapshotter.snapshot());
            elapsed
        });
    });
}

fn sample(c: &mut Criterion) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("first recorder");
    heapscape_heartbeat::describe_metrics();
    let heartbeat = Heartbeat::builder().build();

    ticks(c, "tick/idle", &heartbeat, &snapshotter);

    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            // Relaxed: a stop flag; nothing else is published through it.
            while !stop.load(Ordering::Relaxed) {
                let buffers: Vec<Vec<u8>> = (0..256)
                    .map(|i| Vec::with_capacity(16 << (i % 14)))
                    .collect();
                black_box(buffers);
            }
        })
    };
    ticks(c, "tick/allocating_thread", &heartbeat, &snapshotter);
    stop.store(true, Ordering::Relaxed);
    churn.join().expect("churn thread");
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = sample
}
criterion_main!(benches);
