//! The thread runner, with no async runtime anywhere in this binary: it ticks, follows live
//! changes, publishes and trims pools, and stops gracefully. No timing assertions: conditions
//! are awaited with generous deadlines.

mod common;

use std::time::Duration;

use common::{FAST, NEVER, pool_with_idle_buffer, trimmed, wait_for_ticks, wait_until};
use heapscape_heartbeat::Heartbeat;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[test]
fn thread_runner_ticks_without_tokio() {
    let handle = Heartbeat::builder()
        .interval(FAST)
        .build()
        .spawn_thread()
        .expect("thread");
    wait_for_ticks(&handle, 5);
    handle.stop();
    let ticks = handle.ticks();
    std::thread::sleep(FAST * 5);
    assert_eq!(handle.ticks(), ticks, "no tick after stop");
    assert!(handle.last_stats().is_some());
}

#[test]
fn thread_runner_set_interval_takes_effect() {
    let handle = Heartbeat::builder()
        .interval(NEVER)
        .build()
        .spawn_thread()
        .expect("thread");
    wait_for_ticks(&handle, 1);
    handle.set_interval(FAST);
    wait_for_ticks(&handle, 4);
    handle.stop();
}

#[test]
fn thread_runner_stop_runs_a_final_tick() {
    let pool = pool_with_idle_buffer("thread-final");
    let handle = Heartbeat::builder()
        .interval(NEVER)
        .build()
        .spawn_thread()
        .expect("thread");
    wait_for_ticks(&handle, 1);
    handle.add_pool(pool.clone());
    std::thread::sleep(Duration::from_millis(5)); // Let the buffer outlive its idle timeout.
    handle.stop();
    assert_eq!(handle.ticks(), 2, "the first tick and the final one");
    assert!(trimmed(&pool), "the final tick trimmed the pool");
}

#[test]
fn thread_runner_publishes_and_trims_pools() {
    let handle = Heartbeat::builder()
        .interval(FAST)
        .pool(pool_with_idle_buffer("thread-runner"))
        .build()
        .spawn_thread()
        .expect("thread");
    let pool = handle.remove_pool("thread-runner").expect("registered");
    assert!(handle.pool_names().is_empty());
    handle.add_pool(pool.clone());
    wait_until("trim released the idle buffer", || trimmed(&pool));
    handle.stop();
}

#[test]
fn intervals_are_clamped() {
    let handle = Heartbeat::builder()
        .interval(Duration::ZERO)
        .build()
        .spawn_thread()
        .expect("thread");
    assert_eq!(handle.interval(), heapscape_heartbeat::MIN_INTERVAL);
    assert_eq!(
        handle.set_interval(Duration::MAX),
        heapscape_heartbeat::MAX_INTERVAL
    );
    handle.stop();
}
