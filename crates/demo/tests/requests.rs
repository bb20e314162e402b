//! Bad input, failures and disconnects against the real router on a loopback port: every error
//! is a JSON reason with the right status, and every pooled buffer comes back.

mod common;

use std::time::Duration;

use common::{send, spawn_server, speak, test_pool, wait_for};
use heapscape_demo::engine::FAULT_MARKER;
use heapscape_demo::server::{Buffers, ServiceConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_status_and_a_reason() {
    let addr = spawn_server(Buffers::Pooled(test_pool()), ServiceConfig::default()).await;
    let json = Some("application/json");
    let cases: Vec<(&str, common::Reply, u16, &str)> = vec![
        (
            "empty text",
            speak(addr, json!({ "text": "" })).await,
            400,
            "text is empty",
        ),
        (
            "blank text",
            speak(addr, json!({ "text": " \n\t" })).await,
            400,
            "text is empty",
        ),
        (
            "zero-width spaces only",
            speak(addr, json!({ "text": "\u{200B}\u{200B}\u{200B}" })).await,
            400,
            "text is empty",
        ),
        (
            "NULs only",
            speak(addr, json!({ "text": "\u{0}\u{0}" })).await,
            400,
            "text is empty",
        ),
        (
            "direction marks, a byte-order mark and blanks only",
            speak(
                addr,
                json!({ "text": "\u{200E} \u{200F}\u{202E}\u{FEFF}\t" }),
            )
            .await,
            400,
            "text is empty",
        ),
        (
            "text over the limit",
            speak(addr, json!({ "text": "a".repeat(3001) })).await,
            413,
            "text is 3001 characters, the limit is 3000",
        ),
        (
            "unknown voice",
            speak(addr, json!({ "text": "hi", "voice": "robot" })).await,
            400,
            "unknown voice \"robot\"; use one of baritone, tenor, alto, soprano",
        ),
        (
            "unsupported rate",
            speak(addr, json!({ "text": "hi", "sample_rate": 11025 })).await,
            400,
            "unsupported sample_rate 11025",
        ),
        (
            "negative rate",
            speak(addr, json!({ "text": "hi", "sample_rate": -1 })).await,
            400,
            "sample_rate",
        ),
        (
            "missing text",
            speak(addr, json!({ "voice": "alto" })).await,
            400,
            "missing field `text`",
        ),
        (
            "unknown field",
            speak(addr, json!({ "text": "hi", "pitch": 3 })).await,
            400,
            "unknown field `pitch`",
        ),
        (
            "malformed JSON",
            send(addr, "POST", "/v1/speech", json, "{\"text\": ").await,
            400,
            "Failed to parse the request body as JSON",
        ),
        (
            "wrong content type",
            send(
                addr,
                "POST",
                "/v1/speech",
                Some("text/plain"),
                "{\"text\": \"hi\"}",
            )
            .await,
            415,
            "Expected request with `Content-Type: application/json`",
        ),
        (
            "no content type",
            send(addr, "POST", "/v1/speech", None, "{\"text\": \"hi\"}").await,
            415,
            "Content-Type: application/json",
        ),
        (
            "body over the limit",
            send(
                addr,
                "POST",
                "/v1/speech",
                json,
                format!("{{\"text\": \"{}\"}}", "a".repeat(70_000)),
            )
            .await,
            413,
            "length limit exceeded",
        ),
        (
            "unknown path",
            send(addr, "GET", "/v2/speech", None, "").await,
            404,
            "no such path",
        ),
        (
            "wrong method",
            send(addr, "GET", "/v1/speech", None, "").await,
            405,
            "method not allowed",
        ),
    ];
    for (case, reply, status, reason) in cases {
        assert_eq!(reply.status, status, "{case}: {:?}", reply.body);
        let error = reply.error();
        assert!(
            error.contains(reason),
            "{case}: {error:?} does not say {reason:?}"
        );
    }
    let health = send(addr, "GET", "/healthz", None, "").await;
    assert_eq!(health.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_over_the_wav_limit_is_refused_before_synthesis() {
    let config = ServiceConfig {
        max_text_chars: 2_000_000,
        body_limit: 4 << 20,
        ..ServiceConfig::default()
    };
    let pool = test_pool();
    let addr = spawn_server(Buffers::Pooled(pool.clone()), config).await;
    // 48 kHz speech is 6,400 bytes a character: 700,000 characters are 4.48 GB of PCM.
    let reply = speak(
        addr,
        json!({ "text": "a".repeat(700_000), "sample_rate": 48000 }),
    )
    .await;
    assert_eq!(reply.status, 422);
    let error = reply.error();
    assert!(
        error.contains("4480000000 bytes") && error.contains("4 GiB"),
        "{error}"
    );
    assert_eq!(
        pool.stats().gets(),
        0,
        "no buffer was taken for a refused request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_failure_is_502_and_the_buffer_comes_back() {
    let pool = test_pool();
    let config = ServiceConfig {
        fault_injection: true,
        ..ServiceConfig::default()
    };
    let addr = spawn_server(Buffers::Pooled(pool.clone()), config).await;
    let text = format!("{} {FAULT_MARKER}", "word ".repeat(400));
    let reply = speak(addr, json!({ "text": text })).await;
    assert_eq!(reply.status, 502);
    assert!(
        reply.error().contains("speech engine stream broke off"),
        "{}",
        reply.error()
    );
    wait_for("the buffer to come back", || pool.stats().returns == 1).await;
    let stats = pool.stats();
    assert_eq!((stats.gets(), stats.returns, stats.idle_buffers), (1, 1, 1));

    // The next request works, and its buffer comes back too (from the pool if it ran on a
    // thread that can reach the idle buffer, else a new one).
    let reply = speak(addr, json!({ "text": "fine again" })).await;
    assert_eq!(reply.status, 200);
    wait_for("the second buffer to come back", || {
        pool.stats().returns == 2
    })
    .await;
    let stats = pool.stats();
    assert_eq!(stats.gets(), 2);
    assert!((1..=2).contains(&stats.idle_buffers), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_marker_is_plain_text_without_fault_injection() {
    let addr = spawn_server(Buffers::Fresh, ServiceConfig::default()).await;
    let reply = speak(addr, json!({ "text": format!("hello {FAULT_MARKER}") })).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_mid_body_returns_the_buffer() {
    let pool = test_pool();
    let addr = spawn_server(Buffers::Pooled(pool.clone()), ServiceConfig::default()).await;
    // 3,000 characters at 48 kHz: 19.2 MB, far more than the socket buffers hold.
    let body = json!({ "text": "a".repeat(3000), "sample_rate": 48000 }).to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /v1/speech HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = vec![0u8; 16 << 10];
    let mut read = 0;
    while read < head.len() {
        let n = tokio::time::timeout(Duration::from_secs(120), stream.read(&mut head[read..]))
            .await
            .expect("the response starts within 2 minutes")
            .unwrap();
        assert!(n > 0, "the server closed early");
        read += n;
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200 OK"),
        "{}",
        String::from_utf8_lossy(&head[..64])
    );
    assert_eq!(pool.stats().returns, 0, "the buffer is still being sent");
    drop(stream);

    wait_for("the buffer to come back after the disconnect", || {
        pool.stats().returns == 1
    })
    .await;
    let stats = pool.stats();
    assert_eq!((stats.gets(), stats.idle_buffers), (1, 1));
    assert!(
        stats.idle_bytes >= 19_200_000,
        "the whole buffer is kept: {}",
        stats.idle_bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_is_503_and_the_buffer_comes_back() {
    let pool = test_pool();
    // 30,000 characters at 48 kHz are 192 MB of PCM: about 50 s of synthesis in a debug build
    // and several seconds in a release one, so the timeout fires mid-synthesis, with the
    // buffer taken (reading a 30 KB body and validating it take well under a millisecond).
    let config = ServiceConfig {
        request_timeout: Duration::from_secs(1),
        max_text_chars: 30_000,
        ..ServiceConfig::default()
    };
    let addr = spawn_server(Buffers::Pooled(pool.clone()), config).await;
    let reply = speak(
        addr,
        json!({ "text": "a".repeat(30_000), "sample_rate": 48000 }),
    )
    .await;
    assert_eq!(reply.status, 503);
    assert!(
        reply.error().contains("took longer than"),
        "{}",
        reply.error()
    );
    // The handler was dropped when the timeout fired, before the 503 was sent.
    assert_eq!(pool.stats().gets(), 1, "the request took a buffer");
    wait_for("the buffer to come back", || pool.stats().returns == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_return_every_buffer() {
    let pool = test_pool();
    let addr = spawn_server(Buffers::Pooled(pool.clone()), ServiceConfig::default()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        tasks.spawn(async move {
            speak(addr, json!({ "text": "x".repeat(100 + i * 50) }))
                .await
                .status
        });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    wait_for("all buffers to come back", || {
        let stats = pool.stats();
        stats.gets() == 8 && stats.returns == 8
    })
    .await;
    let stats = pool.stats();
    assert!(
        stats.idle_buffers >= 1 && stats.idle_buffers <= 8,
        "{stats:?}"
    );
}

/// A file larger than the whole byte budget could never start: refused before synthesis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_larger_than_the_byte_budget_is_refused() {
    let config = ServiceConfig {
        max_buffered_bytes: 1 << 20,
        ..ServiceConfig::default()
    };
    let addr = spawn_server(Buffers::Fresh, config).await;
    let reply = speak(
        addr,
        json!({ "text": "a".repeat(3000), "sample_rate": 48000 }),
    )
    .await;
    assert_eq!(reply.status, 413);
    assert!(
        reply
            .error()
            .contains("more than the 1048576 bytes the service buffers at once"),
        "{}",
        reply.error()
    );
    assert_eq!(speak(addr, json!({ "text": "short" })).await.status, 200);
}
