//! The speech service bounds memory by bytes: 100 clients with small receive buffers ask for the
//! longest file at the highest rate (3000 characters at 48 kHz, a 19.2 MB WAV) and never read
//! it. Responses hold their bytes of `--max-buffered-bytes` until sent or dropped by the send
//! timeout, so the `serve` child's resident memory stays under the bound the README states, and
//! a new request is still answered.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{ServeProcess, eventually, metric, scrape, speak};
use serde_json::json;
use tokio::io::AsyncWriteExt;

/// Generous: the test machine is a shared 2-core box and the binary is a debug build.
const WAIT: Duration = Duration::from_secs(300);

const CLIENTS: usize = 100;

/// The byte budget of the test: one of the 19.2 MB files at a time.
const BUDGET_MIB: u64 = 20;

/// What the README's bound allows beyond twice the budget: the runtime's and the connections'
/// own buffers (hyper's read and write buffers, the metrics exporter's scrape).
const SLACK_MIB: u64 = 32;

/// The longest text (`--max-text-chars` default) at 48 kHz: 19.2 MB of PCM.
const TEXT_CHARS: usize = 3000;
const PCM_LEN: f64 = 19_200_000.0;

/// Resident memory of process `pid` in bytes (`VmRSS`).
fn resident(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib << 10)
}

/// A client that sends one request for the longest file and never reads a byte of the answer.
async fn silent_client(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // Small, so the answer stays in the service instead of in this socket's kernel buffer.
    socket.set_recv_buffer_size(4 << 10).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let body = json!({ "text": "a".repeat(TEXT_CHARS), "sample_rate": 48000 }).to_string();
    let request = format!(
        "POST /v1/speech HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_cannot_exceed_the_byte_budget() {
    let budget = format!("{BUDGET_MIB}MiB");
    let serve = ServeProcess::start(&[
        "--metrics-listen",
        "127.0.0.1:0",
        // Unpooled: the pool's idle bytes are not part of the bound checked here.
        "--pooling",
        "off",
        "--max-buffered-bytes",
        &budget,
        "--send-timeout",
        "2s",
    ]);
    let metrics = serve.metrics.expect("a metrics address");
    let pid = serve.child.id();
    let baseline = resident(pid).expect("the child's VmRSS");

    let peak = Arc::new(AtomicU64::new(baseline));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                if let Some(rss) = resident(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        clients.push(silent_client(serve.http).await);
    }
    // Two files synthesized: the budget holds one, so the first stalled response was dropped
    // by the send timeout and its bytes given to a waiting request.
    eventually("two files synthesized", WAIT, || async {
        metric(&scrape(metrics).await, "heapscape_demo_audio_bytes_total").unwrap_or(0.0)
            >= 2.0 * PCM_LEN
    })
    .await;

    // Queued behind the silent clients' requests: answered when its turn comes, after the
    // ones before it were sent or dropped (or timed out, 503, after the request timeout, 30 s),
    // or 503 itself if its own request timeout runs out first.
    let reply = speak(serve.http, json!({ "text": "still here" })).await;
    match reply.status.as_u16() {
        200 => {}
        503 => assert!(!reply.error().is_empty(), "a 503 says why"),
        other => panic!("a new request got {other}"),
    }

    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    drop(clients);
    let peak = peak.load(Ordering::Relaxed);
    // The README's bound (Limits): baseline + 2 x --max-buffered-bytes + 32 MiB.
    let bound = baseline + ((2 * BUDGET_MIB + SLACK_MIB) << 20);
    eprintln!(
        "resident baseline {:.1} MiB, peak {:.1} MiB, bound {:.1} MiB",
        baseline as f64 / f64::from(1 << 20),
        peak as f64 / f64::from(1 << 20),
        bound as f64 / f64::from(1 << 20)
    );
    assert!(
        peak <= bound,
        "resident memory peaked at {peak} bytes, over the bound {bound}"
    );
}
