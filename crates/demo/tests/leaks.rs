//! 1,000 requests that end badly (client gone mid-request-body, client gone mid-response,
//! engine failure mid-stream) against the in-process service: every pooled buffer comes back,
//! the pool's counters agree, and neither tokio tasks nor jemalloc's allocated bytes grow.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{test_pool, wait_for};
use heapscape::HeapStats;
use heapscape_demo::server::{Buffers, Connections, ServiceConfig, router, serve_connections};
use heapscape_pool::Pool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// jemalloc, so `HeapStats::sample` reads this process's heap.
#[global_allocator]
static GLOBAL: heapscape::CountingJemalloc = heapscape::CountingJemalloc;

const REPETITIONS: u64 = 1000;

fn request(text: &str) -> String {
    let body = serde_json::json!({ "text": text, "sample_rate": 16000 }).to_string();
    format!(
        "POST /v1/speech HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One request that ends badly, by `index % 3`.
async fn one_bad_ending(addr: SocketAddr, index: u64) {
    match index % 3 {
        // The client goes away after half its body.
        0 => {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let full = request("gone mid request body");
            let half = full.len() - 10;
            stream.write_all(&full.as_bytes()[..half]).await.unwrap();
        }
        // The client reads the response head and a little audio, then goes away; its small
        // receive buffer keeps the server in the middle of the 300 KB body.
        1 => {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let mut stream = socket.connect(addr).await.unwrap();
            let text = "the client leaves in the middle of this. ".repeat(4);
            stream.write_all(request(&text).as_bytes()).await.unwrap();
            let mut head = [0u8; 1024];
            let n = stream.read(&mut head).await.unwrap();
            assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &head[..n]);
        }
        // The engine fails mid-stream: 502.
        _ => {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let text = format!("{} this one fails", heapscape_demo::engine::FAULT_MARKER);
            stream.write_all(request(&text).as_bytes()).await.unwrap();
            let mut head = [0u8; 1024];
            let n = stream.read(&mut head).await.unwrap();
            assert!(head[..n].starts_with(b"HTTP/1.1 502"), "{:?}", &head[..n]);
        }
    }
}

async fn round(addr: SocketAddr, from: u64, to: u64) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..4 {
        tasks.spawn(async move {
            let mut index = from + worker;
            while index < to {
                one_bad_ending(addr, index).await;
                index += 4;
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
}

fn consistent(pool: &Pool) -> bool {
    let stats = pool.stats();
    stats.returns == stats.gets()
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_bad_endings_leak_no_buffer_task_or_memory() {
    let pool: Pool = test_pool();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServiceConfig {
        fault_injection: true,
        ..ServiceConfig::default()
    };
    tokio::spawn(serve_connections(
        listener,
        router(Buffers::Pooled(pool.clone()), config),
        Connections {
            header_read_timeout: Duration::from_secs(2),
            ..Connections::default()
        },
        std::future::pending(),
    ));

    // Warm-up: the pool fills, the runtime and jemalloc reach their working sizes.
    round(addr, 0, 60).await;
    wait_for("the warm-up's buffers to come back", || consistent(&pool)).await;
    // The accept loop is the one task that stays; every connection task must end.
    wait_for("the warm-up's connection tasks to end", || {
        alive_tasks() <= 1
    })
    .await;
    let before = HeapStats::sample().unwrap().allocated;

    round(addr, 60, 60 + REPETITIONS).await;
    wait_for("every buffer to come back", || consistent(&pool)).await;
    wait_for("every connection task to end", || alive_tasks() <= 1).await;
    let stats = pool.stats();
    assert!(stats.gets() >= REPETITIONS * 2 / 3, "{stats:?}");
    assert_eq!(stats.returns, stats.gets(), "{stats:?}");
    assert!(
        stats.idle_buffers <= 16 && stats.idle_bytes <= 256 << 20,
        "{stats:?}"
    );

    let after = HeapStats::sample().unwrap().allocated;
    let growth = after.saturating_sub(before);
    // Bounded: the pool may keep a few more idle buffers of up to 512 KiB than after the
    // warm-up (at most 16 in all); a leak of one buffer per bad ending would be over 100 MiB.
    assert!(
        growth < 16 << 20,
        "allocated grew by {growth} bytes over {REPETITIONS} bad endings ({before} -> {after})"
    );
}
