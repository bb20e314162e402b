//! The no-pool baseline with the system allocator (glibc), which cannot share a binary with
//! the jemalloc benches. Run: `cargo bench -p heapscape-pool --bench system`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use workloads::{stream_sizes, w1, w2};

mod workloads;

fn no_pool_system(c: &mut Criterion) {
    let sizes = stream_sizes();
    let mut group = c.benchmark_group("W1");
    group.bench_function("no_pool_system/1thr", |b| b.iter(|| w1(&mut Vec::new())));
    group.finish();
    let mut group = c.benchmark_group("W2");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.bench_function("no_pool_system/1thr", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % sizes.len();
            w2(&mut Vec::new(), sizes[i]);
        })
    });
    group.finish();
}

criterion_group!(benches, no_pool_system);
criterion_main!(benches);
