//! The no-pool baseline with the system allocator (glibc), which cannot share a binary with
//! the jemalloc benches. Run: `cargo bench -p heapscape-pool --bench system`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

static CHUNK: [u8; 4096] = [1; 4096];

fn no_pool_system(c: &mut Criterion) {
    let sizes: Vec<usize> = include_str!("data/stream-sizes.txt")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    let mut group = c.benchmark_group("W1");
    group.bench_function("no_pool_system/1thr", |b| {
        b.iter(|| {
            let mut buf = Vec::new();
            buf.extend_from_slice(black_box(&[7u8; 16]));
            black_box(buf.len());
        })
    });
    group.finish();
    let mut group = c.benchmark_group("W2");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.bench_function("no_pool_system/1thr", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % sizes.len();
            let mut buf = Vec::new();
            let mut left = sizes[i];
            while left > 0 {
                let n = left.min(CHUNK.len());
                buf.extend_from_slice(black_box(&CHUNK[..n]));
                left -= n;
            }
            black_box(buf.len());
        })
    });
    group.finish();
}

criterion_group!(benches, no_pool_system);
criterion_main!(benches);
