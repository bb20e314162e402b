//! W2 (stream buffering) on 1 and 2 threads with each thread's on-CPU and run-queue time
//! from `/proc/thread-self/schedstat` (Linux), to tell a pool's own cost from scheduling
//! noise on a shared machine: if a pool's on-CPU time per operation is the same on 1 and 2
//! threads, a wall-time gap between them is the machine, not the pool.
//!
//! `w2_threads [OPS_PER_THREAD] [w1]`: with `w1`, each operation appends 16 bytes (W1)
//! instead of a stream.
use std::sync::{Barrier, Mutex};
use std::time::Instant;

use heapscape_pool::Pool;
use workloads::{stream_sizes, w2};

#[path = "../benches/workloads/mod.rs"]
mod workloads;

/// (on-CPU ns, run-queue wait ns) of the calling thread.
fn schedstat() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut fields = text.split_whitespace().map(|f| f.parse().unwrap_or(0));
    (fields.next().unwrap_or(0), fields.next().unwrap_or(0))
}

thread_local! {
    static FLOOR: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn main() {
    let ops: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let sizes: Vec<usize> = if std::env::args().nth(2).as_deref() == Some("w1") {
        vec![16]
    } else {
        stream_sizes()
    };
    let pool = Pool::builder("w2")
        .initial_capacity(4096)
        .max_buffer_size(8 << 20)
        .max_idle_bytes(1 << 30)
        .build()
        .expect("valid pool");
    let mutex: Mutex<Vec<Vec<u8>>> = Mutex::default();
    type Op<'a> = &'a (dyn Fn(usize) + Sync);
    let floor = |size| {
        FLOOR.with_borrow_mut(|buf| {
            w2(buf, size);
            buf.clear();
        })
    };
    let heapscape = |size| w2(&mut pool.get(), size);
    let mutex_vec = |size| {
        let mut buf = mutex.lock().unwrap().pop().unwrap_or_default();
        w2(&mut buf, size);
        buf.clear();
        mutex.lock().unwrap().push(buf);
    };
    let impls: [(&str, Op<'_>); 3] = [
        ("floor", &floor),
        ("heapscape", &heapscape),
        ("mutex_vec", &mutex_vec),
    ];
    println!("impl        threads  wall ns/op  on-cpu ns/op (per thread op)  runqueue-wait ns/op");
    for threads in [1usize, 2] {
        for (name, op) in impls {
            let barrier = Barrier::new(threads + 1);
            let (wall, cpu, wait) = std::thread::scope(|s| {
                let workers: Vec<_> = (0..threads)
                    .map(|t| {
                        let (barrier, sizes) = (&barrier, &sizes);
                        s.spawn(move || {
                            let mut i = t * sizes.len() / threads;
                            // Warm-up: every size once, so buffers and caches are grown.
                            for _ in 0..sizes.len() {
                                i = (i + 1) % sizes.len();
                                op(sizes[i]);
                            }
                            barrier.wait();
                            let before = schedstat();
                            for _ in 0..ops {
                                i = (i + 1) % sizes.len();
                                op(sizes[i]);
                            }
                            let after = schedstat();
                            barrier.wait();
                            (after.0 - before.0, after.1 - before.1)
                        })
                    })
                    .collect();
                barrier.wait();
                let start = Instant::now();
                barrier.wait();
                let wall = start.elapsed();
                let (mut cpu, mut wait) = (0, 0);
                for w in workers {
                    let (c, q) = w.join().expect("worker");
                    cpu += c;
                    wait += q;
                }
                (wall, cpu, wait)
            });
            let total = (ops * threads) as f64;
            println!(
                "{name:<11} {threads:>7}  {:>10.0}  {:>28.0}  {:>19.0}",
                wall.as_nanos() as f64 / total,
                cpu as f64 / total,
                wait as f64 / total,
            );
        }
    }
}
