//! Overhead of `CountingJemalloc` over plain `Jemalloc`: one alloc + dealloc pair, and a
//! growing `realloc` chain.

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use heapscape_heartbeat::CountingJemalloc;
use tikv_jemallocator::Jemalloc;

#[global_allocator]
static GLOBAL: CountingJemalloc = CountingJemalloc;

fn alloc_dealloc<A: GlobalAlloc>(allocator: &A, layout: Layout) {
    // SAFETY: the layouts used below have non-zero size; the pointer is freed with its layout.
    unsafe {
        let ptr = allocator.alloc(layout);
        assert!(!ptr.is_null());
        black_box(ptr);
        allocator.dealloc(ptr, layout);
    }
}

fn grow<A: GlobalAlloc>(allocator: &A) {
    let mut layout = Layout::from_size_align(64, 8).expect("valid layout");
    // SAFETY: every realloc gets the pointer and layout of the previous allocation and a
    // non-zero new size; the final pointer is freed with its layout.
    unsafe {
        let mut ptr = allocator.alloc(layout);
        for _ in 0..6 {
            let new_size = layout.size() * 2;
            ptr = allocator.realloc(ptr, layout, new_size);
            assert!(!ptr.is_null());
            layout = Layout::from_size_align(new_size, 8).expect("valid layout");
        }
        black_box(ptr);
        allocator.dealloc(ptr, layout);
    }
}

fn counting(c: &mut Criterion) {
    let mut group = c.benchmark_group("alloc_dealloc");
    for size in [64usize, 4096] {
        let layout = Layout::from_size_align(size, 8).expect("valid layout");
        group.bench_with_input(BenchmarkId::new("Jemalloc", size), &layout, |b, &layout| {
            b.iter(|| alloc_dealloc(&Jemalloc, layout));
        });
        group.bench_with_input(
            BenchmarkId::new("CountingJemalloc", size),
            &layout,
            |b, &layout| {
                b.iter(|| alloc_dealloc(&CountingJemalloc, layout));
            },
        );
    }
    group.finish();

    let mut group = c.benchmark_group("realloc_64B_to_4KiB");
    group.bench_function("Jemalloc", |b| b.iter(|| grow(&Jemalloc)));
    group.bench_function("CountingJemalloc", |b| b.iter(|| grow(&CountingJemalloc)));
    group.finish();
}

criterion_group!(benches, counting);
criterion_main!(benches);
