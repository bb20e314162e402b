//! The leak check: 1,000 requests against the in-process service, three in four ending badly
//! (client gone mid-request-body, client gone mid-response, engine failure mid-stream) and one
//! in four served to the end: every pooled buffer comes back, the pool's counters agree, tokio's
//! tasks return to the accept loop alone, and jemalloc's allocated bytes, beyond the pool's idle
//! buffers, end where they were after a warm-up (within 512 KiB: about half a KiB a request).

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

/// One request, by `index % 4`: three bad endings and, for the success path, a good one.
async fn one_ending(addr: SocketAddr, index: u64) {
    match index % 4 {
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
        2 => {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let text = format!("{} this one fails", heapscape_demo::engine::FAULT_MARKER);
            stream.write_all(request(&text).as_bytes()).await.unwrap();
            let mut head = [0u8; 1024];
            let n = stream.read(&mut head).await.unwrap();
            assert!(head[..n].starts_with(b"HTTP/1.1 502"), "{:?}", &head[..n]);
        }
        // A request served to the end: the whole WAV read, the connection closed by the server.
        _ => {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let text = "heard to the end.";
            let request = request(text).replace("host: x\r\n", "host: x\r\nconnection: close\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.unwrap();
            let head_end = response
                .windows(4)
                .position(|window| window == b"\r\n\r\n")
                .expect("a response head")
                + 4;
            assert!(
                response.starts_with(b"HTTP/1.1 200"),
                "{:?}",
                &response[..head_end]
            );
            let pcm = heapscape_demo::engine::pcm_len(text.chars().count() as u64, 16000);
            assert_eq!(
                (response.len() - head_end) as u64,
                44 + pcm,
                "the whole WAV"
            );
        }
    }
}

async fn round(addr: SocketAddr, from: u64, to: u64) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..4 {
        tasks.spawn(async move {
            let mut index = from + worker;
            while index < to {
                one_ending(addr, index).await;
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
async fn a_thousand_requests_good_and_bad_leak_no_buffer_task_or_memory() {
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
    let idle_before = pool.stats().idle_bytes;

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

    // The pool's idle buffers are the one thing that may rightly grow; the rest of the heap
    // must come back to where it was after the warm-up.
    let after = HeapStats::sample().unwrap().allocated;
    let idle_growth = stats.idle_bytes.saturating_sub(idle_before);
    let growth = after.saturating_sub(before).saturating_sub(idle_growth);
    // 512 KiB over 1,000 requests: a leak of 1 KiB per request that reaches the handler (a
    // header map, a connection's buffers, a task) fails it; a leaked PCM buffer is tens of KiB.
    eprintln!("allocated grew by {growth} bytes besides {idle_growth} bytes of idle buffers");
    assert!(
        growth < 512 << 10,
        "allocated grew by {growth} bytes over {REPETITIONS} requests, besides {idle_growth} \
         bytes of the pool's idle buffers ({before} -> {after})"
    );
}
