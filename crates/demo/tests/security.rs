//! Security properties of the speech service, against the real router on a loopback port:
//!
//! - a pooled buffer never leaks an earlier request's audio into a later response: every pooled
//!   response is byte for byte what an unpooled service answers for the same request;
//! - hostile or absurd input gets a JSON reason with a 4xx status, never a panic, a hang or a
//!   stack overflow;
//! - no HTTP method on any path other than `POST /v1/speech` and `GET /healthz` does anything:
//!   404/405, and the pool's settings stay as they were.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Reply, send, spawn_server, speak, test_pool, wait_for};
use heapscape_demo::server::{Buffers, ServiceConfig};
use heapscape_demo::wav::{HEADER_LEN, parse_header};
use heapscape_pool::Pool;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generous: the test machine is a shared 2-core box.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// (a) No data from one request in another's response.

/// Requests A (long, distinctive) then B (short, different), on one pooled service.
fn pairs() -> Vec<(Value, Value)> {
    vec![
        (
            // A is 19.2 MB of PCM, B about 1 KiB: B's buffer is A's, far larger than B needs.
            json!({ "text": "Zyxw vuts rqpo nmlk! ".repeat(142), "voice": "soprano", "sample_rate": 48000 }),
            json!({ "text": "hi", "voice": "baritone", "sample_rate": 8000 }),
        ),
        (
            json!({ "text": "The quick brown fox jumps over the lazy dog. ".repeat(20), "voice": "tenor", "sample_rate": 44100 }),
            json!({ "text": "ok", "sample_rate": 16000 }),
        ),
        (
            // Same rate and similar length: B overwrites exactly A's prefix region.
            json!({ "text": "aeiou aeiou aeiou aeiou", "voice": "alto", "sample_rate": 22050 }),
            json!({ "text": "zzzzz zzzzz zzzzz zz", "voice": "alto", "sample_rate": 22050 }),
        ),
        (
            json!({ "text": "0123456789".repeat(50), "voice": "baritone", "sample_rate": 24000 }),
            json!({ "text": ".", "voice": "soprano", "sample_rate": 48000 }),
        ),
        (
            // B only slightly shorter than A: the leftover tail would be a few bytes.
            json!({ "text": "abcdefghij", "voice": "tenor", "sample_rate": 8000 }),
            json!({ "text": "abcdefghi", "voice": "tenor", "sample_rate": 8000 }),
        ),
    ]
}

/// The pool and the server share one thread (current-thread runtime), so B is always served
/// from the buffer A returned, whatever per-thread caching the pool does.
#[tokio::test(flavor = "current_thread")]
async fn pooled_responses_never_contain_an_earlier_requests_audio() {
    let pool = test_pool();
    let pooled = spawn_server(Buffers::Pooled(pool.clone()), ServiceConfig::default()).await;
    let fresh = spawn_server(Buffers::Fresh, ServiceConfig::default()).await;

    for (index, (a, b)) in pairs().into_iter().enumerate() {
        let expected_a = ok_wav(speak(fresh, a.clone()).await, "fresh A");
        let expected_b = ok_wav(speak(fresh, b.clone()).await, "fresh B");
        assert_ne!(expected_a, expected_b, "pair {index}: A and B must differ");

        let got_a = ok_wav(speak(pooled, a.clone()).await, "pooled A");
        assert!(got_a == expected_a, "pair {index}: pooled A differs from unpooled A");
        wait_for("A's buffer to come back", || returned_all(&pool)).await;
        let hits_before = pool.stats().hits;

        let got_b = ok_wav(speak(pooled, b.clone()).await, "pooled B");
        wait_for("B's buffer to come back", || returned_all(&pool)).await;
        assert!(
            pool.stats().hits > hits_before,
            "pair {index}: B must reuse A's buffer for this test to mean anything: {:?}",
            pool.stats()
        );

        assert_eq!(got_b.len(), expected_b.len(), "pair {index}: B's length");
        if let Some(at) = first_difference(&got_b, &expected_b) {
            panic!(
                "pair {index}: pooled B differs from unpooled B at byte {at} of {} \
                 (A's byte there: {:?})",
                got_b.len(),
                got_a.get(at)
            );
        }
        // B's declared length covers exactly what was sent: nothing after B's PCM.
        let (_, data_len) = parse_header(&got_b).expect("B is a WAV file");
        assert_eq!(got_b.len(), HEADER_LEN + data_len as usize, "pair {index}");
        // B contains no 64-byte window of A's PCM that B's own audio does not also contain
        // (checked on a sample of A's windows: B is byte-for-byte the unpooled answer anyway).
        assert!(
            !contains_foreign_window(&got_b, &expected_b, &got_a[HEADER_LEN..]),
            "pair {index}: B carries a piece of A's audio"
        );
    }
}

/// With the pool's buffers shrunk or dropped over the max, and with concurrent requests, every
/// pooled answer still equals the unpooled one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pooled_responses_equal_unpooled_ones() {
    let pool = Pool::builder("pcm")
        .initial_capacity(1 << 10)
        .max_buffer_size(256 << 10)
        .max_idle_buffers(4)
        .max_idle_bytes(1 << 20)
        .build()
        .unwrap();
    let pooled = spawn_server(Buffers::Pooled(pool.clone()), ServiceConfig::default()).await;
    let fresh = spawn_server(Buffers::Fresh, ServiceConfig::default()).await;
    let requests: Vec<Value> = pairs().into_iter().flat_map(|(a, b)| [a, b]).collect();
    let mut expected = Vec::new();
    for request in &requests {
        expected.push(ok_wav(speak(fresh, request.clone()).await, "fresh"));
    }
    for _round in 0..2 {
        let mut tasks = tokio::task::JoinSet::new();
        for (index, request) in requests.iter().cloned().enumerate() {
            tasks.spawn(async move { (index, speak(pooled, request).await) });
        }
        while let Some(joined) = tasks.join_next().await {
            let (index, reply) = joined.unwrap();
            let got = ok_wav(reply, "pooled");
            assert!(
                got == expected[index],
                "request {index}: pooled answer differs from the unpooled one"
            );
        }
    }
    wait_for("every buffer to come back", || returned_all(&pool)).await;
}

fn ok_wav(reply: Reply, what: &str) -> Vec<u8> {
    assert_eq!(reply.status, 200, "{what}: {:?}", reply.body);
    assert_eq!(
        reply.headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some("audio/wav"),
        "{what}"
    );
    let content_length: usize = reply.headers["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(content_length, reply.body.len(), "{what}");
    reply.body.to_vec()
}

fn returned_all(pool: &Pool) -> bool {
    let stats = pool.stats();
    stats.returns == stats.gets()
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// Whether `got` contains a 64-byte window of `foreign` that `own` does not contain.
fn contains_foreign_window(got: &[u8], own: &[u8], foreign: &[u8]) -> bool {
    const WINDOW: usize = 64;
    if foreign.len() < WINDOW || got.len() < WINDOW {
        return false;
    }
    // At most 64 windows of A, spread over it (the comparison is quadratic).
    let step = (foreign.len() / 64).max(WINDOW);
    foreign
        .windows(WINDOW)
        .step_by(step)
        .filter(|window| window.iter().any(|&b| b != 0)) // silence is in every voice
        .any(|window| contains(got, window) && !contains(own, window))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
