//! The speech service bounds memory by bytes: 100 clients with small receive buffers ask for the
//! longest file at the highest rate (3000 characters at 48 kHz, a 19.2 MB WAV) and never read
//! it. Responses hold their bytes of `--max-buffered-bytes` until sent or dropped by the send
//! timeout, so the `serve` child's resident memory stays under the bound the README states, and
//! a new request is still answered. A request that finds the budget full is refused at once
//! (503 with the reason) instead of waiting out its request timeout.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{ServeProcess, eventually, metric, scrape, speak};
use heapscape_demo::service_metrics::BUDGET_REFUSALS;
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

/// A `serve` child with metrics, unpooled (the pool's idle bytes are not part of what these
/// tests bound), with the byte budget and the send timeout given.
fn unpooled_serve(budget: &str, send_timeout: &str) -> ServeProcess {
    ServeProcess::start(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--pooling",
        "off",
        "--max-buffered-bytes",
        budget,
        "--send-timeout",
        send_timeout,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_cannot_exceed_the_byte_budget() {
    let serve = unpooled_serve(&format!("{BUDGET_MIB}MiB"), "2s");
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

    // Silent clients arrive one after another until two files were synthesized: the budget
    // holds one, so the first stalled response was dropped by the send timeout and its bytes
    // given to a later request (those in between were refused, 503, after 2 s).
    let mut clients = Vec::with_capacity(CLIENTS);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let audio =
            metric(&scrape(metrics).await, "heapscape_demo_audio_bytes_total").unwrap_or(0.0);
        if audio >= 2.0 * PCM_LEN {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline && clients.len() < CLIENTS,
            "{} silent clients in {WAIT:?} and {audio} bytes of audio, not two files",
            clients.len()
        );
        clients.push(silent_client(serve.http).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Answered (200), or refused at once because a silent client holds the budget (503 with
    // the reason).
    let reply = speak(serve.http, json!({ "text": "still here" })).await;
    match reply.status.as_u16() {
        200 => {}
        503 => assert!(reply.error().contains("byte budget"), "{}", reply.error()),
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

/// Clients that never read fill the byte budget: a new small request is refused after the
/// short wait (503 saying why, counted) instead of waiting out its request timeout, and is
/// answered again once they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_byte_budget_refuses_new_requests_with_the_reason() {
    // One file of the longest text at 48 kHz (19,200,044 bytes) takes the whole budget to the
    // last KiB; the long send timeout keeps the silent client's response, and its bytes, for
    // the whole test.
    let serve = unpooled_serve("19200044B", "10m");
    let metrics = serve.metrics.expect("a metrics address");
    let silent = silent_client(serve.http).await;

    // Until the silent request has taken the budget a new one may still be served: asked
    // again, a bounded number of times, until refused.
    let mut refusal = None;
    for _ in 0..100 {
        let reply = speak(serve.http, json!({ "text": "still here" })).await;
        match reply.status.as_u16() {
            503 => {
                refusal = Some(reply.error());
                break;
            }
            200 => tokio::time::sleep(Duration::from_millis(200)).await,
            other => panic!("a new request got {other}: {:?}", reply.body),
        }
    }
    let error = refusal.expect("a new request was refused while the budget was full");
    for part in [
        "the service is busy",
        "--max-buffered-bytes, 19200044 bytes",
        "for 2s",
        "retry later",
    ] {
        assert!(error.contains(part), "{part:?} missing from {error:?}");
    }
    eventually("the refusal to be counted", WAIT, || async {
        metric(&scrape(metrics).await, BUDGET_REFUSALS.name).unwrap_or(0.0) >= 1.0
    })
    .await;

    // The budget comes back with the silent client's connection.
    drop(silent);
    eventually(
        "a request answered once the silent client left",
        WAIT,
        || async { speak(serve.http, json!({ "text": "back" })).await.status == 200 },
    )
    .await;
}
