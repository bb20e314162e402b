//! Many threads doing get/return at once: counts add up, caps hold, no buffer is handed out
//! twice, and nobody reads a previous user's bytes.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use heapscape_pool::Pool;

const THREADS: usize = 8;

/// Once every thread has returned its buffers: each `get` was a hit or a miss, each buffer
/// came back, and each returned buffer is idle now, was handed out again, or was discarded.
fn assert_every_buffer_accounted_for(stats: &heapscape_pool::PoolStats, gets: u64) {
    assert_eq!(stats.gets(), gets);
    assert_eq!(stats.returns, stats.gets());
    let discarded: u64 = stats.discards.iter().sum();
    assert_eq!(
        stats.idle_buffers + stats.hits + discarded,
        stats.returns,
        "{stats:?}"
    );
}
const ROUNDS: usize = if cfg!(debug_assertions) {
    3_000
} else {
    30_000
};

#[test]
fn hits_plus_misses_equal_gets_and_no_buffer_is_shared() {
    let max_idle_bytes = 96 << 10;
    let pool = Pool::builder("stress")
        .initial_capacity(512)
        .max_buffer_size(16 << 10)
        .max_idle_buffers(6)
        .max_idle_bytes(max_idle_bytes)
        .build()
        .unwrap();
    let in_use = Mutex::new(HashSet::new());
    let gets = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let worst_idle_bytes = AtomicU64::new(0);

    std::thread::scope(|s| {
        // A monitor checks the idle-bytes cap while the workers run.
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let stats = pool.stats();
                worst_idle_bytes.fetch_max(stats.idle_bytes, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (pool, in_use, gets) = (&pool, &in_use, &gets);
                s.spawn(move || {
                    let mut held = Vec::new();
                    for round in 0..ROUNDS {
                        let mut buf = pool.get_with_capacity((round * 131 + t * 977) % (24 << 10));
                        gets.fetch_add(1, Ordering::Relaxed);
                        assert!(buf.is_empty(), "a buffer from get() must be empty");
                        // The address identifies the allocation while it is lent out.
                        let ptr = buf.as_ptr() as usize;
                        assert!(
                            in_use.lock().unwrap().insert(ptr),
                            "buffer handed out twice"
                        );
                        let fill = (round % 251) as u8;
                        buf.resize(round % (20 << 10) + 1, fill);
                        assert!(buf.iter().all(|&b| b == fill));
                        // Growing may move the allocation: track it at its new address.
                        let moved = buf.as_ptr() as usize;
                        if moved != ptr {
                            let mut in_use = in_use.lock().unwrap();
                            in_use.remove(&ptr);
                            assert!(in_use.insert(moved), "buffer handed out twice");
                        }
                        held.push((moved, buf));
                        // Hold up to three buffers, returning them out of order.
                        if held.len() > round % 4 {
                            let (ptr, buf) = held.swap_remove(round % held.len());
                            in_use.lock().unwrap().remove(&ptr);
                            drop(buf);
                        }
                    }
                    for (ptr, buf) in held.drain(..) {
                        in_use.lock().unwrap().remove(&ptr);
                        drop(buf);
                    }
                })
            })
            .collect();
        let results: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        done.store(true, Ordering::Relaxed);
        for result in results {
            if let Err(panic) = result {
                std::panic::resume_unwind(panic);
            }
        }
    });

    let stats = pool.stats();
    assert_every_buffer_accounted_for(&stats, gets.load(Ordering::Relaxed));
    assert!(stats.idle_buffers <= 6, "{stats:?}");
    assert!(stats.idle_bytes <= max_idle_bytes as u64, "{stats:?}");
    assert!(
        worst_idle_bytes.load(Ordering::Relaxed) <= max_idle_bytes as u64,
        "idle bytes went over the cap: {}",
        worst_idle_bytes.load(Ordering::Relaxed)
    );
}

#[test]
fn reconfiguring_under_load_keeps_counts_consistent() {
    let pool = Pool::builder("retune")
        .initial_capacity(256)
        .max_buffer_size(64 << 10)
        .build()
        .unwrap();
    let gets = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (pool, gets) = (&pool, &gets);
            s.spawn(move || {
                for round in 0..ROUNDS / 2 {
                    let mut buf = pool.get();
                    gets.fetch_add(1, Ordering::Relaxed);
                    assert!(buf.is_empty());
                    buf.resize((round * 37 + t) % (60 << 10), 1);
                }
            });
        }
        s.spawn(|| {
            for i in 0..200 {
                let mut config = pool.config();
                config.max_buffer_size = if i % 2 == 0 { 4 << 10 } else { 64 << 10 };
                config.max_idle_buffers = 1 + i % 5;
                pool.reconfigure(config).unwrap();
                std::thread::yield_now();
            }
        });
    });
    // Every thread has exited: private buffers are in the depot, which obeys the last caps.
    let stats = pool.stats();
    assert_every_buffer_accounted_for(&stats, gets.load(Ordering::Relaxed));
    let config = pool.config();
    assert!(
        stats.idle_buffers <= config.max_idle_buffers as u64,
        "{stats:?}"
    );
}

#[test]
fn a_request_never_sees_the_previous_requests_bytes() {
    let pool = Pool::builder("privacy").build().unwrap();
    let mut a = pool.get();
    a.extend_from_slice(&[0xAA; 10_000]);
    drop(a);
    let mut b = pool.get();
    assert!(b.is_empty());
    b.extend_from_slice(b"request B");
    assert_eq!(&b[..], b"request B");
    // Growing without writing cannot expose old bytes either: `resize` fills.
    b.resize(5_000, 0);
    assert!(b[9..].iter().all(|&x| x == 0));
}
