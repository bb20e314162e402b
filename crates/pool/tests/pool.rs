//! The pool as a user drives it: get/return, caps, policy, live changes, trimming, stats.

use std::io::Write;
use std::time::Duration;

use heapscape_pool::config::{AutoTuneConfig, OverMaxPolicy};
use heapscape_pool::stats::DiscardReason;
use heapscape_pool::{Pool, PoolConfig, PoolError};

fn small() -> heapscape_pool::PoolBuilder {
    Pool::builder("test")
        .initial_capacity(1024)
        .max_buffer_size(64 << 10)
        .max_idle_buffers(8)
        .max_idle_bytes(1 << 20)
}

#[test]
fn buffers_come_back_cleared_and_are_reused() {
    let pool = small().build().unwrap();
    let first_ptr;
    {
        let mut buf = pool.get();
        assert!(buf.capacity() >= 1024);
        write!(buf, "secret payload").unwrap();
        first_ptr = buf.as_ptr();
    }
    let buf = pool.get();
    assert!(buf.is_empty(), "a reused buffer must be empty");
    assert_eq!(buf.as_ptr(), first_ptr, "the idle buffer is reused");
    drop(buf);
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.misses, stats.returns), (1, 1, 2));
    assert_eq!(stats.idle_buffers, 1);
    assert!(stats.idle_bytes >= 1024);
}

#[test]
fn capacity_hint_is_clamped_to_the_max() {
    let pool = small().build().unwrap();
    let buf = pool.get_with_capacity(usize::MAX / 2);
    assert!(buf.capacity() >= 64 << 10);
    assert!(
        buf.capacity() < 128 << 10,
        "hint must be clamped, got {}",
        buf.capacity()
    );
    let small = pool.get_with_capacity(10_000);
    assert!(small.capacity() >= 10_000);
    drop((buf, small));

    pool.set_max_buffer_size(16 << 10).unwrap();
    let (a, b, c) = (pool.get(), pool.get(), pool.get());
    drop((a, b));
    let clamped = pool.get_with_capacity(usize::MAX / 2);
    assert!(
        clamped.capacity() < 32 << 10,
        "a lowered max clamps hints, got {}",
        clamped.capacity()
    );
    drop(c);
}

/// Auto-tuning on, with the given cooldown and band and the default bounds.
fn auto_tune(cooldown: Duration, hysteresis: f64) -> AutoTuneConfig {
    let mut tune = AutoTuneConfig::default();
    tune.enabled = true;
    tune.cooldown = cooldown;
    tune.hysteresis = hysteresis;
    tune
}

#[test]
fn invalid_configs_say_what_to_fix() {
    let cases: Vec<(PoolError, &str)> = vec![
        (Pool::builder("").build().unwrap_err(), "pool name is empty"),
        (
            small().max_buffer_size(0).build().unwrap_err(),
            "`max_buffer_size` is zero",
        ),
        (
            small().idle_timeout(Duration::ZERO).build().unwrap_err(),
            "`idle_timeout` is zero",
        ),
        (
            small()
                .recommendation_window(Duration::ZERO)
                .build()
                .unwrap_err(),
            "`recommendation_window` is zero",
        ),
        (
            small()
                .initial_capacity(1 << 20)
                .max_buffer_size(1024)
                .build()
                .unwrap_err(),
            "lower initial_capacity or raise max_buffer_size",
        ),
        (
            small()
                .max_buffer_size(1 << 20)
                .max_idle_bytes(1024)
                .build()
                .unwrap_err(),
            "raise max_idle_bytes or lower max_buffer_size",
        ),
        (
            small().recommend_percentile(1.5).build().unwrap_err(),
            "use a fraction in (0, 1]",
        ),
        // A 1 ms window, no cooldown and no band moved the max about 7 times a second.
        (
            small()
                .recommendation_window(Duration::from_millis(1))
                .build()
                .unwrap_err(),
            "recommendation_window is 1ms, below the minimum of 1s",
        ),
        (
            small()
                .auto_tune(auto_tune(Duration::ZERO, 0.25))
                .build()
                .unwrap_err(),
            "auto_tune.cooldown is 0ns, below the minimum of 1s",
        ),
        (
            small()
                .auto_tune(auto_tune(Duration::from_secs(1), 0.0))
                .build()
                .unwrap_err(),
            "use a fraction in [0.2, 1)",
        ),
    ];
    for (err, expected) in cases {
        assert!(
            err.to_string().contains(expected),
            "{err} should contain {expected:?}"
        );
    }
}

#[test]
fn over_max_buffers_are_shrunk_by_default_and_dropped_on_request() {
    let pool = small().build().unwrap();
    let mut buf = pool.get();
    buf.resize(200 << 10, 7);
    drop(buf);
    let stats = pool.stats();
    assert_eq!(stats.shrinks, 1);
    assert_eq!(stats.idle_buffers, 1);
    assert!(stats.idle_bytes <= 64 << 10);

    let dropping = small().over_max(OverMaxPolicy::Drop).build().unwrap();
    let mut buf = dropping.get();
    buf.resize(200 << 10, 7);
    drop(buf);
    let stats = dropping.stats();
    assert_eq!(stats.discards.over_max, 1);
    assert_eq!(stats.idle_buffers, 0);
}

#[test]
fn idle_count_and_byte_caps_discard_with_reasons() {
    let pool = small().max_idle_buffers(2).build().unwrap();
    let bufs: Vec<_> = (0..4).map(|_| pool.get()).collect();
    drop(bufs);
    let stats = pool.stats();
    assert_eq!(stats.idle_buffers, 2);
    assert_eq!(stats.discards.idle_buffers_cap, 2);

    let pool = small()
        .max_buffer_size(4096)
        .max_idle_bytes(3 * 4096)
        .build()
        .unwrap();
    let bufs: Vec<_> = (0..5)
        .map(|_| {
            let mut b = pool.get();
            b.reserve_exact(4096);
            b
        })
        .collect();
    drop(bufs);
    let stats = pool.stats();
    assert!(stats.idle_bytes <= 3 * 4096, "{stats:?}");
    assert!(stats.discards.idle_bytes_cap >= 2, "{stats:?}");
}

#[test]
fn lowering_caps_releases_idle_buffers_at_once() {
    let pool = small().build().unwrap();
    let bufs: Vec<_> = (0..6)
        .map(|_| {
            let mut b = pool.get();
            b.reserve(32 << 10);
            b
        })
        .collect();
    drop(bufs);
    assert_eq!(pool.stats().idle_buffers, 6);

    let mut config = pool.config();
    config.max_idle_buffers = 2;
    pool.reconfigure(config).unwrap();
    let stats = pool.stats();
    assert!(stats.idle_buffers <= 2, "{stats:?}");
    assert_eq!(stats.discards.reconfigure, 4);

    pool.set_max_buffer_size(4096).unwrap();
    let stats = pool.stats();
    assert_eq!(stats.max_buffer_size, 4096);
    // The depot's buffers are shrunk at once; this thread's private one at its next use.
    drop(pool.get());
    let stats = pool.stats();
    assert!(stats.idle_bytes <= 2 * 4096, "{stats:?}");
}

#[test]
fn a_rejected_reconfiguration_keeps_the_old_settings() {
    let pool = small().build().unwrap();
    let before = pool.config();
    let err = pool.set_max_buffer_size(10).unwrap_err();
    assert!(matches!(err, PoolError::InitialAboveMax { .. }), "{err}");
    assert!(
        err.to_string().contains("Pool::set_initial_capacity"),
        "{err}"
    );
    assert_eq!(pool.config(), before);
}

#[test]
fn the_initial_capacity_is_lowered_live_so_the_max_can_follow() {
    let pool = small().initial_capacity(8 << 10).build().unwrap();
    assert!(pool.set_max_buffer_size(4 << 10).is_err());
    pool.set_initial_capacity(2 << 10).unwrap();
    pool.set_max_buffer_size(4 << 10).unwrap();
    let config = pool.config();
    assert_eq!(
        (config.initial_capacity, config.max_buffer_size),
        (2 << 10, 4 << 10)
    );
    assert_eq!(pool.stats().initial_capacity, 2 << 10);
    assert_eq!(
        pool.get().capacity(),
        2 << 10,
        "new buffers take the new capacity"
    );
    let err = pool.set_initial_capacity(8 << 10).unwrap_err();
    assert!(matches!(err, PoolError::InitialAboveMax { .. }), "{err}");
    assert!(matches!(
        pool.set_initial_capacity(0).unwrap_err(),
        PoolError::Zero {
            field: "initial_capacity"
        }
    ));
}

#[test]
fn trim_releases_buffers_idle_past_the_timeout() {
    // An hour: no descheduling of this thread makes a buffer that old before the first trim.
    let pool = small()
        .idle_timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    // Two buffers out at once: one lands in this thread's slot, one in the shared depot.
    let (a, b) = (pool.get(), pool.get());
    drop((a, b));
    assert_eq!(pool.trim(), 0, "nothing is old yet");

    let mut config = pool.config();
    config.idle_timeout = Duration::from_millis(1);
    pool.reconfigure(config).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut trimmed = 0;
    while trimmed == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        trimmed = pool.trim();
    }
    assert_eq!(trimmed, 1, "only the depot's buffer is trimmed");
    let stats = pool.stats();
    assert_eq!(stats.discards.idle_timeout, 1);
    assert_eq!(stats.idle_buffers, 1);
}

#[test]
fn releases_by_a_reconfiguration_are_told_apart_from_return_time_discards() {
    let pool = small()
        .max_idle_buffers(2)
        .over_max(OverMaxPolicy::Drop)
        .build()
        .unwrap();
    // Return time: a buffer grown over the max, then three buffers back at once where the
    // cap allows two (one in this thread's slot, one in the depot).
    let mut big = pool.get_with_capacity(64 << 10);
    big.resize(100 << 10, 1);
    drop(big);
    let bufs: Vec<_> = (0..3)
        .map(|_| {
            let mut b = pool.get();
            b.reserve_exact(8 << 10);
            b
        })
        .collect();
    drop(bufs);
    let stats = pool.stats();
    assert_eq!(stats.discards.idle_buffers_cap, 1, "{stats:?}");
    assert_eq!(stats.discards.over_max, 1, "{stats:?}");
    assert_eq!(stats.discards.reconfigure, 0, "{stats:?}");
    assert_eq!(stats.idle_buffers, 2, "{stats:?}");

    // A lowered max releases both idle buffers: the depot's at once, the private one at this
    // thread's next get. Neither counts as a return-time discard.
    pool.set_max_buffer_size(4096).unwrap();
    let stats = pool.stats();
    assert_eq!(stats.discards.reconfigure, 1, "{stats:?}");
    drop(pool.get());
    let stats = pool.stats();
    assert_eq!(stats.discards.reconfigure, 2, "{stats:?}");
    assert_eq!(stats.discards.over_max, 1, "{stats:?}");
    assert_eq!(stats.discards.idle_buffers_cap, 1, "{stats:?}");
    assert_eq!(stats.discards.idle_bytes_cap, 0, "{stats:?}");
    let discarded = stats.discards.total();
    assert_eq!(discarded, 4, "every reason is in `discards`: {stats:?}");
    assert!(DiscardReason::ALL.contains(&DiscardReason::Reconfigure));
    assert_eq!(DiscardReason::Reconfigure.as_str(), "reconfigure");
}

#[test]
fn detach_and_donate() {
    let pool = small().build().unwrap();
    let mut buf = pool.get();
    buf.extend_from_slice(b"keep me");
    let owned: Vec<u8> = buf.detach();
    assert_eq!(owned, b"keep me");
    assert_eq!(pool.stats().idle_buffers, 0);
    assert_eq!(pool.stats().detaches, 1);

    pool.donate(owned);
    let stats = pool.stats();
    assert_eq!(stats.idle_buffers, 1);
    let buf = pool.get();
    assert!(buf.is_empty());
}

#[test]
fn an_owned_buffer_outlives_its_pool_handle_and_comes_back() {
    let pool = small().build().unwrap();
    let observer = pool.clone();
    let mut buf = pool.get_owned();
    drop(pool);
    buf.extend_from_slice(b"pcm");
    let written = std::thread::spawn(move || {
        buf.extend_from_slice(b" frames");
        buf.len()
    });
    assert_eq!(written.join().unwrap(), 10);
    let stats = observer.stats();
    assert_eq!((stats.misses, stats.returns, stats.in_use), (1, 1, 0));
    assert_eq!(stats.idle_buffers, 1, "kept for the next get");

    let owned = observer.get_owned();
    assert!(owned.is_empty(), "a reused buffer must be empty");
    assert_eq!(owned.detach().capacity(), 1024);
    assert_eq!(observer.stats().detaches, 1);
}

#[cfg(feature = "bytes")]
#[test]
fn bytes_hand_off_returns_the_buffer_when_the_last_clone_drops() {
    let pool = small().build().unwrap();
    let mut buf = pool.get();
    buf.extend_from_slice(b"header+pcm");
    let ptr = buf.as_ptr();
    let bytes = buf.into_bytes();
    assert_eq!(bytes.as_ptr(), ptr, "no copy");
    let clone = bytes.slice(7..);
    drop(bytes);
    assert_eq!(pool.stats().idle_buffers, 0, "a clone is still alive");
    let sent = std::thread::spawn(move || assert_eq!(&clone[..], b"pcm"));
    sent.join().unwrap();
    let stats = pool.stats();
    assert_eq!(stats.idle_buffers, 1);
    assert_eq!(stats.returns, 1);
    assert!(pool.get().is_empty());
}

#[test]
fn stats_recommend_from_returned_lengths() {
    let pool = small().max_buffer_size(1 << 20).build().unwrap();
    let returns = |n: usize| {
        for i in 0..n {
            let mut buf = pool.get();
            buf.resize(if i % 10 < 9 { 3000 } else { 300_000 }, 0);
        }
    };
    // A p95 rests on 400 returns by default: at 100, there is none.
    returns(100);
    let stats = pool.stats();
    assert_eq!(stats.recommendation_min_returns, 400);
    assert_eq!(stats.recommended_max_buffer_size(), None);
    returns(300);
    let stats = pool.stats();
    assert_eq!(stats.returns, 400);
    // Fine buckets: (2912, 3456] and (262_144, 311_296], where powers of two would say
    // 4096 and 512 KiB.
    assert_eq!(stats.recommended_initial_capacity(), Some(3456));
    assert_eq!(stats.recommended_max_buffer_size(), Some(311_296));
    assert_eq!(
        stats.lengths.quantile(0.95),
        Some(311_296),
        "lifetime, the same buckets"
    );
    assert_eq!(stats.over_max_ratio(4096), 0.10);
    assert_eq!(stats.over_max_ratio(1 << 20), 0.0);
    assert!((stats.hit_ratio() - 0.9975).abs() < 1e-9);

    let mut config = PoolConfig::default();
    config.recommend_percentile = 0.5;
    config.max_buffer_size = 1 << 20;
    pool.reconfigure(config).unwrap();
    assert_eq!(pool.stats().recommended_max_buffer_size(), Some(3456));
}

#[test]
fn counts_survive_thread_exit() {
    let pool = small().build().unwrap();
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..10 {
                        drop(pool.get());
                    }
                })
            })
            .collect();
        // Joined explicitly: the end of a scope does not wait for thread-local destructors,
        // which hand the private buffers to the depot.
        for thread in threads {
            thread.join().unwrap();
        }
    });
    let stats = pool.stats();
    assert_eq!(stats.gets(), 40);
    assert_eq!(stats.returns, 40);
    assert!(
        stats.idle_buffers >= 1,
        "exited threads hand their buffer to the depot"
    );
}
