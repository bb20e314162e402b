//! Helpers shared by the integration tests: an in-process server on a free loopback port and a
//! small HTTP client.

#![allow(dead_code)] // each test binary uses a different subset

pub mod png;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use heapscape_demo::server::{Buffers, READY_PREFIX, ReadyLine, ServiceConfig, router};
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

/// A `heapscape-demo serve` child of the test's debug binary, killed on drop (by its guard); its standard
/// error is collected in the background.
pub struct ServeProcess {
    pub child: heapscape_testkit::ChildGuard,
    pub http: SocketAddr,
    /// `None` with the StatsD exporter.
    pub metrics: Option<SocketAddr>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ServeProcess {
    /// Starts `serve --listen 127.0.0.1:0 <args>` and waits (up to 60 s) for its ready line.
    pub fn start(args: &[&str]) -> Self {
        Self::spawn(args, true).0
    }

    /// As [`ServeProcess::start`], but hands back the read end of the child's standard error
    /// instead of collecting it ([`ServeProcess::stderr`] stays empty): dropping it leaves the
    /// child writing to a pipe nobody reads.
    pub fn start_with_stderr_pipe(args: &[&str]) -> (Self, std::process::ChildStderr) {
        let (process, pipe) = Self::spawn(args, false);
        (process, pipe.expect("the stderr pipe"))
    }

    fn spawn(args: &[&str], collect_stderr: bool) -> (Self, Option<std::process::ChildStderr>) {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = heapscape_testkit::ChildGuard::spawn(
            "heapscape-demo serve",
            Command::new(env!("CARGO_BIN_EXE_heapscape-demo"))
                .args(["serve", "--listen", "127.0.0.1:0"])
                .args(args)
                .env("NO_COLOR", "1")
                .env("RUST_LOG", "info")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut pipe = child.child_mut().stderr.take();
        if collect_stderr {
            let pipe = pipe.take().unwrap();
            let collected = stderr.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut all = collected.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        let stdout = child.child_mut().stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.starts_with(READY_PREFIX) {
                    let _ = tx.send(line);
                }
            }
        });
        let mut process = Self {
            child,
            http: "127.0.0.1:1".parse().unwrap(),
            metrics: None,
            stderr,
        };
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "serve was not ready within 60 s; stderr:\n{}",
                    process.stderr()
                )
            });
        let ready = ReadyLine::parse(&line).expect("a well-formed ready line");
        process.http = ready.http;
        process.metrics = ready.metrics;
        (process, pipe)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `signal` (e.g. `TERM`) with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `limit` for the child to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.child_mut().try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "serve did not exit within {limit:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Scrapes `/metrics` and parses it with the demo's own parser.
pub async fn scrape(metrics: SocketAddr) -> Vec<heapscape_cli::exposition::Sample> {
    let reply = send(metrics, "GET", "/metrics", None, "").await;
    assert_eq!(reply.status, 200);
    heapscape_cli::exposition::parse(std::str::from_utf8(&reply.body).unwrap()).unwrap()
}

/// The sum of the samples named `name`, or `None` if there are none.
pub fn metric(samples: &[heapscape_cli::exposition::Sample], name: &str) -> Option<f64> {
    let values: Vec<f64> = samples
        .iter()
        .filter(|sample| sample.name == name)
        .map(|sample| sample.value)
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Polls the async `condition` every 200 ms for up to `limit`; panics with `what` if it never
/// holds.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {limit:?} waiting for {what}");
}
