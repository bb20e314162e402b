//! The lock-free fast path (a thread's private slot) keeps the same counts and policy as the
//! full path: several pools used alternately on one thread, growth past the reservation,
//! and a lowered max reaching the private buffer.

use heapscape_pool::Pool;

fn pool(name: &str) -> Pool {
    Pool::builder(name)
        .initial_capacity(64)
        .max_buffer_size(4096)
        .max_idle_buffers(4)
        .max_idle_bytes(1 << 20)
        .build()
        .expect("valid pool")
}

#[test]
fn pools_used_alternately_keep_their_own_buffers_and_counts() {
    let (a, b) = (pool("a"), pool("b"));
    for round in 0..100u64 {
        let mut x = a.get();
        x.extend_from_slice(&[1; 100]);
        let mut y = b.get();
        y.extend_from_slice(&[2; 10]);
        drop(x);
        drop(y);
        // Every get after the first finds the buffer its pool's slot holds.
        assert_eq!(a.stats().hits, round);
        assert_eq!(b.stats().hits, round);
    }
    for (p, len) in [(&a, 100u64), (&b, 10)] {
        let stats = p.stats();
        assert_eq!((stats.hits, stats.misses, stats.returns), (99, 1, 100));
        assert_eq!(stats.idle_buffers, 1);
        let mut alone = heapscape_pool::stats::FineSizeHistogram::default();
        alone.record(len as usize);
        // Every return in the bucket of `len`.
        assert_eq!(stats.lengths.count(), 100);
        assert_eq!(stats.lengths.quantile(0.0), alone.quantile(1.0));
        assert_eq!(stats.lengths.quantile(1.0), alone.quantile(1.0));
        let buf = p.get();
        assert!(buf.is_empty());
        assert!(buf.capacity() >= len as usize);
    }
}

#[test]
fn growth_past_the_reservation_and_lowered_max_are_applied() {
    let p = pool("grow");
    for size in [10usize, 1000, 3000, 10] {
        let mut buf = p.get();
        buf.resize(size, 7);
    }
    let stats = p.stats();
    assert_eq!((stats.hits, stats.misses, stats.returns), (3, 1, 4));
    assert_eq!(stats.idle_buffers, 1);
    assert!(stats.idle_bytes >= 3000);

    p.set_max_buffer_size(1024).expect("valid max");
    drop(p.get());
    let stats = p.stats();
    assert!(stats.idle_bytes <= 1024, "{stats:?}");
    assert_eq!(stats.discards.over_max, 0);
    assert_eq!(stats.shrinks, 1);

    let mut buf = p.get();
    buf.resize(2000, 1);
    drop(buf);
    let stats = p.stats();
    assert_eq!(stats.shrinks, 2);
    assert!(stats.idle_bytes <= 1024, "{stats:?}");
}
