//! The W1 and W2 workloads of the README's performance section, shared by the benches and the
//! profiling examples (each includes only what it uses).
#![allow(dead_code)]

use std::hint::black_box;

/// What W1 appends.
pub const W1_PAYLOAD: [u8; 16] = [7; 16];
/// What W2 appends, 4 KiB at a time.
pub static CHUNK: [u8; 4096] = [1; 4096];

/// W2's stream sizes: 1,000 sizes, log-normal, median 256 KiB, within [8 KiB, 4 MiB].
pub fn stream_sizes() -> Vec<usize> {
    include_str!("../data/stream-sizes.txt")
        .lines()
        .map(|l| l.trim().parse().expect("a size per line"))
        .collect()
}

/// W1: append 16 bytes, read the length.
pub fn w1(buf: &mut Vec<u8>) {
    buf.extend_from_slice(black_box(&W1_PAYLOAD));
    black_box(buf.len());
}

/// W2: append `size` bytes in 4 KiB chunks, read the length.
pub fn w2(buf: &mut Vec<u8>, size: usize) {
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK.len());
        buf.extend_from_slice(black_box(&CHUNK[..n]));
        left -= n;
    }
    black_box(buf.len());
}
