//! W1 in a loop, for instruction-level profiling (`valgrind --tool=callgrind`).
fn main() {
    let pool = heapscape_pool::Pool::builder("w1")
        .build()
        .expect("valid pool");
    let rounds: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    for _ in 0..rounds {
        let mut buf = pool.get();
        buf.extend_from_slice(std::hint::black_box(&[7u8; 16]));
        std::hint::black_box(buf.len());
    }
}
