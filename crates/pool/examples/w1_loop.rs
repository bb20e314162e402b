//! W1 in a loop, for instruction-level profiling (`valgrind --tool=callgrind`).
//!
//! `w1_loop [ROUNDS] [floor]`: with `floor`, the same loop reuses one plain `Vec` (the
//! benchmarks' floor), so the difference of the two instruction counts is the pool's cost.
fn main() {
    let pool = heapscape_pool::Pool::builder("w1")
        .build()
        .expect("valid pool");
    let mut args = std::env::args().skip(1);
    let rounds: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    if args.next().as_deref() == Some("floor") {
        let mut buf = Vec::new();
        for _ in 0..rounds {
            buf.extend_from_slice(std::hint::black_box(&[7u8; 16]));
            std::hint::black_box(buf.len());
            buf.clear();
        }
        return;
    }
    for _ in 0..rounds {
        let mut buf = pool.get();
        buf.extend_from_slice(std::hint::black_box(&[7u8; 16]));
        std::hint::black_box(buf.len());
    }
}
