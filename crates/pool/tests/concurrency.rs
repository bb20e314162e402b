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
    let discarded = stats.discards.total();
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
    let max_buffer_size = 16 << 10;
    let pool = Pool::builder("stress")
        .initial_capacity(512)
        .max_buffer_size(max_buffer_size)
        .max_idle_buffers(6)
        .max_idle_bytes(max_idle_bytes)
        .build()
        .unwrap();
    let in_use = Mutex::new(HashSet::new());
    let gets = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let worst_idle_bytes = AtomicU64::new(0);

    std::thread::scope(|s| {
        // A monitor checks the idle-bytes cap while the workers run: `stats` reads the idle
        // gauges with the depot locked, so a buffer moving between a thread's slot and the
        // depot cannot be counted twice.
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
                        let hint = (round * 131 + t * 977) % (24 << 10);
                        let mut buf = pool.get_with_capacity(hint);
                        gets.fetch_add(1, Ordering::Relaxed);
                        assert!(buf.is_empty(), "a buffer from get() must be empty");
                        assert!(
                            buf.capacity() >= hint.min(max_buffer_size),
                            "room for the hint, clamped to the max"
                        );
                        // The address identifies the allocation while it is lent out.
                        let ptr = buf.as_ptr() as usize;
                        assert!(
                            in_use.lock().unwrap().insert(ptr),
                            "buffer handed out twice"
                        );
                        buf.resize(round % (20 << 10) + 1, (round % 251) as u8);
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
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let (pool, gets) = (&pool, &gets);
                s.spawn(move || {
                    for round in 0..ROUNDS / 2 {
                        let mut buf = pool.get();
                        gets.fetch_add(1, Ordering::Relaxed);
                        assert!(buf.is_empty());
                        buf.resize((round * 37 + t) % (60 << 10), 1);
                    }
                })
            })
            .collect();
        s.spawn(|| {
            for i in 0..200 {
                let mut config = pool.config();
                config.max_buffer_size = if i % 2 == 0 { 4 << 10 } else { 64 << 10 };
                config.max_idle_buffers = 1 + i % 5;
                pool.reconfigure(config).unwrap();
                std::thread::yield_now();
            }
        });
        // Joined explicitly: the end of a scope waits for the threads' closures, not for
        // their thread-local destructors, which move the private buffers to the depot.
        for worker in workers {
            worker.join().unwrap();
        }
    });
    // Every worker has exited: private buffers are in the depot, which obeys the last caps.
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
    let reused = a.as_ptr();
    drop(a);
    // The same allocation comes back, its old bytes out of reach of safe code.
    let mut b = pool.get();
    assert_eq!(b.as_ptr(), reused, "the idle buffer is handed out again");
    assert!(b.is_empty());
    assert!(b.capacity() >= 10_000);
    b.extend_from_slice(b"request B");

    // The same through the shared depot: returned on one thread, taken on another.
    let held = pool.get();
    drop(b);
    let across = std::thread::scope(|s| {
        s.spawn(|| {
            let mut c = pool.get();
            c.extend_from_slice(&[0xBB; 100]);
            let ptr = c.as_ptr() as usize;
            drop(c);
            ptr
        })
        .join()
        .unwrap()
    });
    drop(held);
    let stats = pool.stats();
    assert!(stats.idle_buffers >= 1, "{stats:?}");
    let mut seen = Vec::new();
    let bufs: Vec<_> = (0..stats.idle_buffers).map(|_| pool.get()).collect();
    for buf in &bufs {
        assert!(buf.is_empty(), "every idle buffer is handed out empty");
        seen.push(buf.as_ptr() as usize);
    }
    assert!(
        seen.contains(&across),
        "the other thread's buffer came back through the depot"
    );

    // And a donated buffer with contents.
    drop(bufs);
    pool.donate(vec![0xCC; 4096]);
    let stats = pool.stats();
    let bufs: Vec<_> = (0..stats.idle_buffers).map(|_| pool.get()).collect();
    assert!(bufs.iter().all(|buf| buf.is_empty()));
}
