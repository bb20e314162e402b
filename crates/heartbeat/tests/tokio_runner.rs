//! The tokio runner: it ticks off the async workers, follows live changes, publishes and trims
//! pools, and shuts down gracefully. No timing assertions: conditions are awaited with generous
//! deadlines.
#![cfg(feature = "tokio")]

mod common;

use common::{FAST, NEVER, pool_with_idle_buffer, trimmed, wait_for_ticks, wait_until};
use heapscape_heartbeat::Heartbeat;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_runner_ticks_and_shuts_down_with_a_final_tick() {
    let handle = Heartbeat::builder().interval(FAST).build().spawn();
    let waiter = handle.clone();
    tokio::task::spawn_blocking(move || wait_for_ticks(&waiter, 5))
        .await
        .expect("waiter");
    assert!(handle.last_stats().is_some());
    assert_eq!(handle.last_error(), None);

    let probe = handle.clone();
    handle.shutdown().await;
    let ticks = probe.ticks();
    tokio::time::sleep(FAST * 5).await;
    assert_eq!(probe.ticks(), ticks, "no tick after shutdown");
}

#[tokio::test(flavor = "current_thread")]
async fn tokio_runner_set_interval_takes_effect() {
    let handle = Heartbeat::builder().interval(NEVER).build().spawn();
    let waiter = handle.clone();
    tokio::task::spawn_blocking(move || {
        wait_for_ticks(&waiter, 1); // The first tick runs at once.
        assert_eq!(waiter.set_interval(FAST), FAST);
        wait_for_ticks(&waiter, 4);
    })
    .await
    .expect("waiter");
    assert_eq!(handle.interval(), FAST);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_runner_publishes_and_trims_pools() {
    let pool = pool_with_idle_buffer("tokio-runner");
    let handle = Heartbeat::builder().interval(FAST).build().spawn();
    handle.add_pool(pool.clone());
    assert_eq!(handle.pool_names(), ["tokio-runner"]);
    let waiter = pool.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("trim released the idle buffer", || trimmed(&waiter));
    })
    .await
    .expect("waiter");
    assert!(handle.remove_pool("tokio-runner").is_some());
    assert!(handle.remove_pool("tokio-runner").is_none());
    handle.shutdown().await;
}

#[test]
fn sync_stop_works_for_a_tokio_runner() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let handle = runtime.block_on(async { Heartbeat::builder().interval(NEVER).build().spawn() });
    wait_for_ticks(&handle, 1);
    handle.stop();
    assert_eq!(handle.ticks(), 2, "the first tick and the final one");
    handle.stop();
    assert_eq!(handle.ticks(), 2, "stop is idempotent");
}

#[test]
#[should_panic(expected = "no reactor running")]
fn spawn_outside_a_runtime_panics() {
    let _ = Heartbeat::builder().build().spawn();
}
