//! W1 (get/put) and W2 (stream buffering) against the baselines named in the README's
//! performance section, all in one run, and what a heartbeat tick costs a pool (its stats,
//! and an auto-tuning step). Run: `cargo bench -p heapscape-pool --bench pool`.
//!
//! After its timed runs, each W2 implementation runs once more with allocation counting on
//! and prints its allocations per operation.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use heapscape_pool::Pool;
use heapscape_pool::config::{AutoTuneConfig, OverMaxPolicy};
use workloads::{stream_sizes, w1, w2};

mod workloads;

/// jemalloc, with allocation counting that costs one relaxed load while switched off.
struct CountingJemalloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to jemalloc, which upholds the GlobalAlloc contract.
unsafe impl std::alloc::GlobalAlloc for CountingJemalloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { tikv_jemallocator::Jemalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` was allocated by jemalloc through this allocator with `layout`.
        unsafe { tikv_jemallocator::Jemalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as for `dealloc`, plus the caller's guarantees on `new_size`.
        unsafe { tikv_jemallocator::Jemalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingJemalloc = CountingJemalloc;

/// A buffer source under test: `op` takes a buffer, lets `work` fill it, and gives it back.
///
/// Generic, not `dyn`: every call from the timed loop to the source and the workload is
/// static and inlined as in an application, so a row measures the source, not a harness.
trait Source: Sync {
    fn op(&self, work: impl FnMut(&mut Vec<u8>));
}

struct Heapscape(Pool);
impl Source for Heapscape {
    #[inline]
    fn op(&self, mut work: impl FnMut(&mut Vec<u8>)) {
        work(&mut self.0.get());
    }
}

struct NoPool;
impl Source for NoPool {
    #[inline]
    fn op(&self, mut work: impl FnMut(&mut Vec<u8>)) {
        work(&mut Vec::new());
    }
}

struct MutexPool(Mutex<Vec<Vec<u8>>>);
impl Source for MutexPool {
    #[inline]
    fn op(&self, mut work: impl FnMut(&mut Vec<u8>)) {
        let mut buf = self.0.lock().unwrap().pop().unwrap_or_default();
        work(&mut buf);
        buf.clear();
        self.0.lock().unwrap().push(buf);
    }
}

struct ObjectPool(object_pool::Pool<Vec<u8>>);
impl Source for ObjectPool {
    #[inline]
    fn op(&self, mut work: impl FnMut(&mut Vec<u8>)) {
        let mut buf = self.0.pull(Vec::new);
        work(&mut buf);
        buf.clear();
    }
}

thread_local! {
    static FLOOR: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The floor: each thread reuses one buffer.
struct Floor;
impl Source for Floor {
    #[inline]
    fn op(&self, mut work: impl FnMut(&mut Vec<u8>)) {
        FLOOR.with_borrow_mut(|buf| {
            work(buf);
            buf.clear();
        });
    }
}

fn heapscape(max_buffer_size: usize, over_max: OverMaxPolicy) -> Heapscape {
    Heapscape(
        Pool::builder("bench")
            .initial_capacity(4096)
            .max_buffer_size(max_buffer_size)
            .max_idle_bytes(1 << 30)
            .over_max(over_max)
            .build()
            .unwrap(),
    )
}

/// Runs `$body` once per implementation, with `$name` and `$source` bound to it (each its
/// own type, so that nothing in the timed loop goes through a vtable).
macro_rules! for_each_source {
    (|$name:ident, $source:ident| $body:block) => {{
        {
            let ($name, $source) = ("floor", &Floor);
            $body
        }
        {
            let ($name, $source) = ("heapscape", &heapscape(8 << 20, OverMaxPolicy::Shrink));
            $body
        }
        {
            let ($name, $source) = ("no_pool_jemalloc", &NoPool);
            $body
        }
        {
            let ($name, $source) = ("mutex_vec", &MutexPool(Mutex::default()));
            $body
        }
        {
            let ($name, $source) = (
                "object_pool",
                &ObjectPool(object_pool::Pool::new(0, Vec::new)),
            );
            $body
        }
    }};
}

/// One operation of W1 (`sizes` empty) or W2 (`i` steps through `sizes`).
#[inline]
fn one_op<S: Source>(source: &S, sizes: &[usize], i: &mut usize) {
    if sizes.is_empty() {
        source.op(w1);
    } else {
        *i = (*i + 1) % sizes.len();
        source.op(|buf| w2(buf, sizes[*i]));
    }
}

/// Stops the workers of `bench_threads` (also if a benchmark panics).
struct StopWorkers<'a> {
    ops: &'a AtomicU64,
    start: &'a Barrier,
}

impl Drop for StopWorkers<'_> {
    fn drop(&mut self) {
        self.ops.store(0, Ordering::Relaxed);
        self.start.wait();
    }
}

/// Benchmarks `threads` threads running the workload at once; the figure is wall time per
/// operation of all threads together (wall time / total ops).
///
/// The worker threads live for the whole benchmark, like a server's worker pool: each
/// sample hands them an operation count and times them from a common start to the last
/// one's end. Thread-local state (the floor's buffer, a pool's per-thread cache) thus
/// persists across samples for every implementation alike, as `/1thr` keeps it on the bench
/// thread, and no sample pays thread start-up or exit. (Spawning threads per sample handed
/// the floor a fresh buffer and the pools the buffers of exited threads, and timed the
/// thread-exit hand-off.)
fn bench_threads<S: Source>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    source: &S,
    sizes: &[usize],
    threads: usize,
) {
    let start = Barrier::new(threads + 1);
    let done = Barrier::new(threads + 1);
    // Operations per thread for the next sample; 0 stops the workers. The barriers order
    // the store before the workers' loads.
    let ops = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (start, done, ops) = (&start, &done, &ops);
            s.spawn(move || {
                // With 2 threads the second starts half-way through the sizes.
                let mut i = t * sizes.len() / threads;
                loop {
                    start.wait();
                    let n = ops.load(Ordering::Relaxed);
                    if n == 0 {
                        return;
                    }
                    for _ in 0..n {
                        one_op(source, sizes, &mut i);
                    }
                    done.wait();
                }
            });
        }
        let _stop = StopWorkers {
            ops: &ops,
            start: &start,
        };
        group.bench_function(format!("{name}/{threads}thr"), |b| {
            b.iter_custom(|iters| {
                ops.store(iters.max(1), Ordering::Relaxed);
                start.wait();
                let begin = Instant::now();
                done.wait();
                begin.elapsed() / threads as u32
            })
        });
    });
}

fn bench_source<S: Source>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    source: &S,
    sizes: &[usize],
) {
    group.bench_function(format!("{name}/1thr"), |b| {
        let mut i = 0;
        b.iter(|| one_op(source, sizes, &mut i))
    });
    bench_threads(group, name, source, sizes, 2);
}

fn w1_get_put(c: &mut Criterion) {
    let mut group = c.benchmark_group("W1");
    for_each_source!(|name, source| {
        bench_source(&mut group, name, source, &[]);
    });
    group.finish();
}

/// Prints the allocations per W2 operation in steady state (after one warm-up pass over the
/// sizes).
fn print_allocations<S: Source>(name: &str, source: &S, sizes: &[usize]) {
    for &size in sizes {
        source.op(|buf| w2(buf, size));
    }
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    for &size in sizes {
        source.op(|buf| w2(buf, size));
    }
    COUNTING.store(false, Ordering::Relaxed);
    let per_op = ALLOCATIONS.load(Ordering::Relaxed) as f64 / sizes.len() as f64;
    println!("W2 allocations/op {name:<32} {per_op:.2}");
}

fn w2_stream_buffering(c: &mut Criterion) {
    let sizes = stream_sizes();
    let mut sorted = sizes.clone();
    sorted.sort_unstable();
    let p90 = sorted[sorted.len() * 9 / 10];
    let mut group = c.benchmark_group("W2");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    let capped = [
        ("heapscape_capped_p90_shrink", OverMaxPolicy::Shrink),
        ("heapscape_capped_p90_drop", OverMaxPolicy::Drop),
    ];
    for_each_source!(|name, source| {
        bench_source(&mut group, name, source, &sizes);
        print_allocations(name, source, &sizes);
    });
    for (name, over_max) in capped {
        let source = heapscape(p90, over_max);
        bench_source(&mut group, name, &source, &sizes);
        print_allocations(name, &source, &sizes);
    }
    group.finish();
}

/// A pool's share of a heartbeat tick, off the get and return paths: reading its stats (which
/// also moves the recommendation window on) and an auto-tuning step (stats plus the decision),
/// with W2's sizes in the window.
fn tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("tick");
    let mut auto_tune = AutoTuneConfig::default();
    auto_tune.enabled = true;
    let pool = Pool::builder("tick")
        .max_idle_bytes(1 << 30)
        .auto_tune(auto_tune)
        .build()
        .expect("pool");
    let sizes = stream_sizes();
    // The window's cost does not depend on how large the returns were, only on the buckets:
    // smaller lengths fill as many of them without writing gigabytes.
    for &size in sizes.iter().cycle().take(20_000) {
        pool.get().resize(size >> 6, 0);
    }
    group.bench_function("stats", |b| b.iter(|| pool.stats()));
    group.bench_function("auto_tune", |b| b.iter(|| pool.auto_tune()));
    group.finish();
}

criterion_group!(benches, w1_get_put, w2_stream_buffering, tick);
criterion_main!(benches);
