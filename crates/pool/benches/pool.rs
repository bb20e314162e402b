//! W1 (get/put) and W2 (stream buffering) against the baselines named in the README's
//! performance section, all in one run. Run: `cargo bench -p heapscape-pool --bench pool`.
//!
//! After the timed runs, each W2 implementation runs once more with allocation counting on
//! and prints its allocations per operation.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use heapscape_pool::{OverMaxPolicy, Pool};

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

const W1_PAYLOAD: [u8; 16] = [7; 16];
static CHUNK: [u8; 4096] = [1; 4096];

fn stream_sizes() -> Vec<usize> {
    include_str!("data/stream-sizes.txt")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// A buffer source under test: `op` takes a buffer, lets `work` fill it, and gives it back.
trait Source: Sync {
    fn op(&self, work: &mut dyn FnMut(&mut Vec<u8>));
}

struct Heapscape(Pool);
impl Source for Heapscape {
    #[inline]
    fn op(&self, work: &mut dyn FnMut(&mut Vec<u8>)) {
        work(&mut self.0.get());
    }
}

struct NoPool;
impl Source for NoPool {
    #[inline]
    fn op(&self, work: &mut dyn FnMut(&mut Vec<u8>)) {
        work(&mut Vec::new());
    }
}

struct MutexPool(Mutex<Vec<Vec<u8>>>);
impl Source for MutexPool {
    #[inline]
    fn op(&self, work: &mut dyn FnMut(&mut Vec<u8>)) {
        let mut buf = self.0.lock().unwrap().pop().unwrap_or_default();
        work(&mut buf);
        buf.clear();
        self.0.lock().unwrap().push(buf);
    }
}

struct ObjectPool(object_pool::Pool<Vec<u8>>);
impl Source for ObjectPool {
    #[inline]
    fn op(&self, work: &mut dyn FnMut(&mut Vec<u8>)) {
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
    fn op(&self, work: &mut dyn FnMut(&mut Vec<u8>)) {
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

fn sources() -> Vec<(&'static str, Box<dyn Source>)> {
    vec![
        ("floor", Box::new(Floor)),
        (
            "heapscape",
            Box::new(heapscape(8 << 20, OverMaxPolicy::Shrink)),
        ),
        ("no_pool_jemalloc", Box::new(NoPool)),
        ("mutex_vec", Box::new(MutexPool(Mutex::default()))),
        (
            "object_pool",
            Box::new(ObjectPool(object_pool::Pool::new(0, Vec::new))),
        ),
    ]
}

fn w1(buf: &mut Vec<u8>) {
    buf.extend_from_slice(black_box(&W1_PAYLOAD));
    black_box(buf.len());
}

fn w2(buf: &mut Vec<u8>, size: usize) {
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK.len());
        buf.extend_from_slice(black_box(&CHUNK[..n]));
        left -= n;
    }
    black_box(buf.len());
}

/// Runs `ops` operations on each of `threads` threads at once; returns wall time divided by
/// the thread count (so the figure is wall time per operation of all threads together).
fn run_threads(source: &dyn Source, threads: usize, ops: u64, sizes: &[usize]) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let barrier = &barrier;
            s.spawn(move || {
                let mut i = t * sizes.len() / threads;
                barrier.wait();
                for _ in 0..ops {
                    if sizes.is_empty() {
                        source.op(&mut w1);
                    } else {
                        i = (i + 1) % sizes.len();
                        source.op(&mut |buf| w2(buf, sizes[i]));
                    }
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed() / threads as u32
    })
}

fn bench_source(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    source: &dyn Source,
    sizes: &[usize],
) {
    group.bench_function(format!("{name}/1thr"), |b| {
        let mut i = 0;
        b.iter(|| {
            if sizes.is_empty() {
                source.op(&mut w1);
            } else {
                i = (i + 1) % sizes.len();
                source.op(&mut |buf| w2(buf, sizes[i]));
            }
        })
    });
    group.bench_function(format!("{name}/2thr"), |b| {
        b.iter_custom(|iters| run_threads(source, 2, iters, sizes))
    });
}

fn w1_get_put(c: &mut Criterion) {
    let mut group = c.benchmark_group("W1");
    for (name, source) in sources() {
        bench_source(&mut group, name, &*source, &[]);
    }
    group.finish();
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
    let mut all = sources();
    all.push((
        "heapscape_capped_p90_shrink",
        Box::new(heapscape(p90, OverMaxPolicy::Shrink)),
    ));
    all.push((
        "heapscape_capped_p90_drop",
        Box::new(heapscape(p90, OverMaxPolicy::Drop)),
    ));
    for (name, source) in &all {
        bench_source(&mut group, name, &**source, &sizes);
    }
    group.finish();

    // Allocations per operation in steady state (after one warm-up pass over the sizes).
    for (name, source) in &all {
        for &size in &sizes {
            source.op(&mut |buf| w2(buf, size));
        }
        ALLOCATIONS.store(0, Ordering::Relaxed);
        COUNTING.store(true, Ordering::Relaxed);
        for &size in &sizes {
            source.op(&mut |buf| w2(buf, size));
        }
        COUNTING.store(false, Ordering::Relaxed);
        let per_op = ALLOCATIONS.load(Ordering::Relaxed) as f64 / sizes.len() as f64;
        println!("W2 allocations/op {name:<32} {per_op:.2}");
    }
}

/// W1 with a real Prometheus recorder installed and the pool published every 10 ms from
/// another thread (a heartbeat 1000x faster than the default): the hot path never touches
/// the recorder, so this measures the cost of publication running beside it.
fn w1_metrics_on(c: &mut Criterion) {
    let Heapscape(pool) = heapscape(8 << 20, OverMaxPolicy::Shrink);
    let mut group = c.benchmark_group("W1_metrics");
    group.bench_function("off/1thr", |b| b.iter(|| w1(&mut pool.get())));
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("no other recorder in the bench");
    heapscape_pool::describe_metrics();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                pool.publish();
                black_box(handle.render());
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        group.bench_function("on/1thr", |b| b.iter(|| w1(&mut pool.get())));
        stop.store(true, Ordering::Relaxed);
    });
    group.finish();
}

criterion_group!(benches, w1_get_put, w2_stream_buffering, w1_metrics_on);
criterion_main!(benches);
