//! Helpers shared by the integration tests: an in-process server on a free loopback port and a
//! small HTTP client.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use heapscape_demo::server::{Buffers, ServiceConfig, router};
use heapscape_pool::Pool;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::http::HeaderMap;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Serves the router on 127.0.0.1:0 in a background task; returns its address.
pub async fn spawn_server(buffers: Buffers, config: ServiceConfig) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(buffers, config))
            .await
            .unwrap();
    });
    addr
}

/// A pool that keeps buffers of any size the tests make.
pub fn test_pool() -> Pool {
    Pool::builder("pcm")
        .initial_capacity(4 << 10)
        .max_buffer_size(64 << 20)
        .max_idle_buffers(16)
        .max_idle_bytes(256 << 20)
        .build()
        .unwrap()
}

/// A response: status, headers, whole body.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The `error` field of a JSON error body; fails the test for any other body.
    pub fn error(&self) -> String {
        assert_eq!(
            self.headers
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("application/json"),
            "error responses are JSON"
        );
        let value: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
        value["error"].as_str().expect("an error field").to_owned()
    }
}

/// Sends `method path` with `body` and `content_type` (if any), reads the whole response.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Bytes>,
) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let request = request.body(Full::new(body.into())).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(120), async {
        let response = client.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        (parts, body.collect().await.unwrap().to_bytes())
    })
    .await
    .expect("the server answers within 2 minutes");
    Reply {
        status: response.0.status,
        headers: response.0.headers,
        body: response.1,
    }
}

/// `POST /v1/speech` with a JSON body.
pub async fn speak(addr: SocketAddr, json: serde_json::Value) -> Reply {
    send(
        addr,
        "POST",
        "/v1/speech",
        Some("application/json"),
        json.to_string(),
    )
    .await
}

/// Polls `condition` every 20 ms for up to 30 s; panics with `what` if it never holds.
pub async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}
