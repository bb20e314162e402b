//! Faults around a running `serve` child (the debug binary): a metrics port already taken, the
//! config file broken during hot reload, SIGTERM under load, and the StatsD daemon killed and
//! restarted mid-load.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{ServeProcess, eventually, metric, scrape, send, speak};
use heapscape_testkit::{ConfigFile, Statsd, statsd_admin, write_atomically};
use serde_json::json;

/// Generous: the test machine is a shared 2-core box.
const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_taken_metrics_port_fails_the_start_naming_the_port() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_heapscape-demo"))
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains(&port.to_string()), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("ready"),
        "it must not report ready"
    );
}

#[test]
fn the_metrics_port_as_the_speech_port_names_the_metrics_listener() {
    let port = heapscape_testkit::free_port();
    let address = format!("127.0.0.1:{port}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_heapscape-demo"))
        .args(["serve", "--listen", &address, "--metrics-listen", &address])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the agent's metrics listener took that port"),
        "{stderr}"
    );
}

/// A taken speech port: the error names the address and the flag that changes it, and says
/// the cause once.
#[test]
fn a_taken_speech_port_names_the_address_and_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_heapscape-demo"))
        .args(["serve", "--listen", &address])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    assert!(stderr.contains("another address with --listen"), "{stderr}");
    assert_eq!(
        stderr.matches("Address already in use").count(),
        1,
        "the cause must be said once: {stderr}"
    );
}

/// An invalid config file at start: its error (file, line, column, key) is printed once.
#[test]
fn an_invalid_config_is_reported_once() {
    let config = heapscape_testkit::ConfigFile::new(
        "heapscape.yaml",
        "exporter: { prometheus: { listen: 127.0.0.1:0 } }\npools: { pcm: { max_buffer_size: 4Mb } }\n",
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_heapscape-demo"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("`4Mb` is not a size").count(),
        1,
        "the config error must be printed once: {stderr}"
    );
}

/// The shutdown warning counts the connections still open, not those that ended since the
/// last accept: 19 connections answered and closed, one request whose body never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_warning_counts_only_open_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut serve =
        ServeProcess::start(&["--metrics-listen", "127.0.0.1:0", "--shutdown-grace", "1s"]);
    let mut stuck = tokio::net::TcpStream::connect(serve.http).await.unwrap();
    stuck
        .write_all(
            b"POST /v1/speech HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{\"text\":",
        )
        .await
        .unwrap();
    let mut finished = Vec::new();
    for _ in 0..19 {
        finished.push(tokio::net::TcpStream::connect(serve.http).await.unwrap());
    }
    for stream in &mut finished {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        assert!(response.starts_with(b"HTTP/1.1 200"));
    }
    eventually("the stuck request in the service", WAIT, || async {
        let reply = send(serve.http, "GET", "/healthz", None, "").await;
        let health: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        // /healthz counts itself.
        health["requests"].as_u64() == Some(2)
    })
    .await;
    serve.signal("TERM");
    assert_eq!(serve.wait_exit(WAIT).code(), Some(0));
    let stderr = serve.stderr();
    let warning = stderr
        .lines()
        .find(|line| line.contains("still running after the shutdown grace period"))
        .unwrap_or_else(|| panic!("no shutdown warning:\n{stderr}"));
    assert!(
        warning
            .split_whitespace()
            .any(|field| field == "connections=1"),
        "{warning}"
    );
    drop(stuck);
}

fn config_with_max(max: &str) -> String {
    format!(
        "service: reload-test\nexporter:\n  prometheus: {{ listen: 127.0.0.1:0 }}\n\
         heartbeat: {{ interval: 200ms }}\n\
         pools:\n  pcm: {{ initial_capacity: 64KiB, max_buffer_size: {max}, max_idle_bytes: 64MiB }}\n"
    )
}

async fn max_buffer_size(metrics: std::net::SocketAddr) -> Option<f64> {
    metric(
        &scrape(metrics).await,
        "heapscape_pool_max_buffer_size_bytes",
    )
}

async fn reload_failures(metrics: std::net::SocketAddr) -> f64 {
    metric(
        &scrape(metrics).await,
        "heapscape_config_reload_failures_total",
    )
    .unwrap_or(0.0)
}

/// Heartbeat ticks so far: the count of the tick-duration histogram, recorded at the end of
/// each tick.
async fn heartbeat_ticks(metrics: std::net::SocketAddr) -> f64 {
    metric(
        &scrape(metrics).await,
        "heapscape_heartbeat_sample_duration_seconds_count",
    )
    .unwrap_or(0.0)
}

/// One broken state of the file: the failure counter goes up, a clear error is logged, the old
/// max stays in force and the service keeps serving; then a good file with `next` applies.
async fn break_and_fix(
    serve: &ServeProcess,
    path: &Path,
    what: &str,
    in_force: f64,
    breaks: impl FnOnce(),
    next: &str,
    next_bytes: f64,
) {
    let metrics = serve.metrics.unwrap();
    let failures = reload_failures(metrics).await;
    let logged = serve.stderr().matches("config reload rejected").count();
    breaks();
    eventually(&format!("{what}: the failure counter"), WAIT, || async {
        reload_failures(metrics).await > failures
    })
    .await;
    eventually(&format!("{what}: the log line"), WAIT, || async {
        serve.stderr().matches("config reload rejected").count() > logged
    })
    .await;
    let stderr = serve.stderr();
    let line = stderr
        .lines()
        .rev()
        .find(|line| line.contains("config reload rejected"))
        .unwrap();
    eprintln!("{what}: {line}");
    assert!(
        line.contains("previous config stays in force"),
        "{what}: {line}"
    );
    assert!(
        line.contains(path.file_name().unwrap().to_str().unwrap()),
        "{what}: the log line names the file: {line}"
    );
    // Two more heartbeat ticks (each publishes the pools before it counts itself): the old
    // max is still the one published.
    let ticks = heartbeat_ticks(metrics).await;
    eventually(
        &format!("{what}: two more heartbeat ticks"),
        WAIT,
        || async { heartbeat_ticks(metrics).await >= ticks + 2.0 },
    )
    .await;
    assert_eq!(max_buffer_size(metrics).await, Some(in_force), "{what}");
    assert_eq!(
        speak(serve.http, json!({ "text": "still here" }))
            .await
            .status,
        200
    );

    write_atomically(path, &config_with_max(next));
    eventually(
        &format!("{what}: the fixed file to apply"),
        WAIT,
        || async { max_buffer_size(metrics).await == Some(next_bytes) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_file_keeps_the_old_config_until_it_is_fixed() {
    let file = ConfigFile::new("heapscape.yaml", &config_with_max("1MiB"));
    let path = file.path().to_owned();
    let serve = ServeProcess::start(&["--config", path.to_str().unwrap()]);
    let metrics = serve.metrics.expect("a metrics address");
    eventually("the first publication", WAIT, || async {
        max_buffer_size(metrics).await == Some(f64::from(1 << 20))
    })
    .await;

    break_and_fix(
        &serve,
        &path,
        "invalid YAML",
        f64::from(1 << 20),
        || write_atomically(&path, "pools: [unclosed\n  pcm: {{\n"),
        "2MiB",
        f64::from(2 << 20),
    )
    .await;
    break_and_fix(
        &serve,
        &path,
        "a valid YAML file with an invalid value",
        f64::from(2 << 20),
        || write_atomically(&path, &config_with_max("0")),
        "3MiB",
        f64::from(3 << 20),
    )
    .await;
    break_and_fix(
        &serve,
        &path,
        "the file deleted",
        f64::from(3 << 20),
        || std::fs::remove_file(&path).unwrap(),
        "1MiB",
        f64::from(1 << 20),
    )
    .await;
    // chmod 000: under root (CI) the file stays readable, so the check would prove nothing;
    // there, the file is replaced by a directory, which no one can read as a file.
    let unreadable = || {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        if std::fs::read(&path).is_ok() {
            eprintln!("running as root: chmod 000 does not stop reads; using a directory");
            std::fs::remove_file(&path).unwrap();
            std::fs::create_dir(&path).unwrap();
        }
    };
    break_and_fix(
        &serve,
        &path,
        "the file unreadable",
        f64::from(1 << 20),
        unreadable,
        "2MiB",
        f64::from(2 << 20),
    )
    .await;
    drop(serve);
}

/// A text of `chars` characters (about 128 KB of PCM per 20 characters at 48 kHz).
fn text(chars: usize) -> String {
    "sigterm drains requests. ".repeat(chars / 25 + 1)[..chars].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_and_exits_zero() {
    // Two syntheses at a time, so most of the requests wait in the service when SIGTERM comes.
    let mut serve = ServeProcess::start(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--max-in-flight",
        "2",
        "--shutdown-grace",
        "120s",
    ]);
    let http = serve.http;
    const REQUESTS: usize = 10;
    let requests: Vec<_> = (0..REQUESTS)
        .map(|i| {
            tokio::spawn(async move {
                speak(http, json!({ "text": text(600 + i), "sample_rate": 48000 })).await
            })
        })
        .collect();
    // Every one of them reached the service before the signal, since a request still
    // connecting when the listener closes is refused. Answered ones are counted first: one
    // that leaves the service in between is then missed (and the next poll counts it), never
    // counted twice.
    let all_sent = &requests;
    eventually("every request to reach the service", WAIT, || async move {
        let answered = all_sent.iter().filter(|task| task.is_finished()).count();
        let reply = send(http, "GET", "/healthz", None, "").await;
        let health: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        // /healthz counts itself.
        let in_service = health["requests"].as_u64().unwrap() as usize - 1;
        answered + in_service >= REQUESTS
    })
    .await;
    serve.signal("TERM");
    for (i, request) in requests.into_iter().enumerate() {
        let reply = request.await.unwrap();
        assert_eq!(reply.status, 200, "request {i}: {:?}", reply.body);
        let chars = 600 + i as u64;
        let expected = 44 + heapscape_demo::engine::pcm_len(chars, 48000) as usize;
        assert_eq!(reply.body.len(), expected, "request {i} complete");
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = serve.wait_exit(Duration::from_secs(120));
        (status, serve.stderr())
    })
    .await
    .unwrap();
    let (status, stderr) = status;
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("SIGTERM: shutting down"), "{stderr}");
    assert!(stderr.contains("metrics flushed"), "{stderr}");
    assert!(!stderr.contains("grace period"), "{stderr}");
}

/// A second SIGTERM during the grace period closes the remaining connections at once: here a
/// client that never reads its answer would hold the shutdown for the whole 10-minute grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_ends_the_grace_period() {
    let mut serve = ServeProcess::start(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--shutdown-grace",
        "10m",
        "--send-timeout",
        "10m",
    ]);
    let metrics = serve.metrics.expect("a metrics address");
    // The longest file at 48 kHz (19.2 MB) to a client with a small receive buffer that never
    // reads: its response stays in the service.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4 << 10).unwrap();
    let mut silent = socket.connect(serve.http).await.unwrap();
    let body = json!({ "text": "a".repeat(3000), "sample_rate": 48000 }).to_string();
    let request = format!(
        "POST /v1/speech HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        serve.http,
        body.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut silent, request.as_bytes())
        .await
        .unwrap();
    eventually("the silent client's file to be made", WAIT, || async {
        metric(&scrape(metrics).await, "heapscape_demo_audio_bytes_total").unwrap_or(0.0)
            >= 19_200_000.0
    })
    .await;

    serve.signal("TERM");
    let draining = &serve;
    eventually("the drain to begin", WAIT, || async move {
        draining.stderr().contains("draining in-flight requests")
    })
    .await;
    serve.signal("TERM");
    // Bounded far below the grace period: only the second signal can end it this soon.
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        let status = serve.wait_exit(WAIT);
        (status, serve.stderr())
    })
    .await
    .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("SIGTERM again: not waiting for the grace period"),
        "{stderr}"
    );
    assert!(stderr.contains("metrics flushed"), "{stderr}");
    drop(silent);
}

/// The counter `name` (any tags) in statsd's admin dump, if listed with a value > 0.
fn statsd_counter(mgmt_port: u16, name: &str) -> Option<f64> {
    let dump = statsd_admin(mgmt_port, "counters")?;
    dump.lines()
        .filter(|line| line.trim_start().starts_with(&format!("'{name};")))
        .filter_map(|line| {
            line.rsplit(':')
                .next()?
                .trim()
                .trim_end_matches(',')
                .parse()
                .ok()
        })
        .reduce(f64::max)
        .filter(|value| *value > 0.0)
}

async fn wait_for_counter(mgmt_port: u16, name: &str) {
    eventually(&format!("statsd to count {name}"), WAIT, || async {
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || statsd_counter(mgmt_port, &name).is_some())
            .await
            .unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statsd_killed_and_restarted_mid_load_fails_no_request() {
    let mut daemon = tokio::task::block_in_place(Statsd::start);
    let (udp_port, mgmt_port) = (daemon.udp_port(), daemon.mgmt_port());
    let config = ConfigFile::new(
        "heapscape.yaml",
        &format!(
            "service: statsd-fault\nexporter:\n  statsd: {{ host: 127.0.0.1, port: {udp_port} }}\n\
             heartbeat: {{ interval: 500ms }}\n"
        ),
    );
    let serve = ServeProcess::start(&["--config", config.path().to_str().unwrap()]);
    assert_eq!(serve.metrics, None, "no Prometheus listener with StatsD");

    // The load runs in rounds until told to stop, so it spans the whole outage however long
    // the waits take; `rounds` counts the rounds finished.
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn({
        let (stop, rounds, http) = (stop.clone(), rounds.clone(), serve.http);
        async move {
            let mut reports = Vec::new();
            // Relaxed: a flag and a counter read on their own; nothing else is ordered by them.
            while !stop.load(Ordering::Relaxed) {
                let options = heapscape_demo::load::LoadOptions {
                    url: format!("http://{http}"),
                    concurrency: 4,
                    requests: Some(8),
                    seed: 9 + rounds.load(Ordering::Relaxed),
                    no_progress: true,
                    ..heapscape_demo::load::LoadOptions::default()
                };
                reports.push(heapscape_demo::load::run(&options).await.unwrap());
                rounds.fetch_add(1, Ordering::Relaxed);
            }
            reports
        }
    });
    wait_for_counter(mgmt_port, "heapscape_demo_requests_total").await;
    wait_for_counter(mgmt_port, "heapscape_pool_returns_total").await;

    // Down mid-load for a few heartbeats and at least one whole round of requests, then back
    // on the same ports.
    daemon.kill();
    let rounds_before_outage = rounds.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    eventually("a round of requests while statsd is down", WAIT, || async {
        rounds.load(Ordering::Relaxed) >= rounds_before_outage + 2
    })
    .await;
    tokio::task::block_in_place(|| daemon.restart());
    wait_for_counter(mgmt_port, "heapscape_demo_requests_total").await;
    wait_for_counter(mgmt_port, "heapscape_pool_returns_total").await;

    stop.store(true, Ordering::Relaxed);
    let reports = load.await.unwrap();
    for report in &reports {
        assert_eq!(report.error_count(), 0, "{report}");
        assert!(report.ok > 0, "{report}");
    }
    drop(serve);
}

/// In process: a request that never finishes (its body never arrives) does not hold the
/// shutdown past the grace period; its connection is closed. Without one, everything drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_bounds_the_shutdown() {
    use heapscape_demo::server::{
        Buffers, Connections, Drained, ServiceConfig, router, serve_connections,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    for stuck in [false, true] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = ServiceConfig {
            request_timeout: Duration::from_secs(600),
            ..ServiceConfig::default()
        };
        let server = tokio::spawn(serve_connections(
            listener,
            router(Buffers::Fresh, config),
            Connections {
                header_read_timeout: Duration::from_secs(600),
                shutdown_grace: Duration::from_secs(1),
                ..Connections::default()
            },
            async move {
                let _ = stopped.await;
            },
        ));
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        if stuck {
            // 100 bytes announced, 9 sent: the handler waits for the rest.
            client
                .write_all(
                    b"POST /v1/speech HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                      content-length: 100\r\n\r\n{\"text\":",
                )
                .await
                .unwrap();
        }
        assert_eq!(
            speak(addr, json!({ "text": "before the stop" }))
                .await
                .status,
            200
        );
        stop.send(()).unwrap();
        let drained = tokio::time::timeout(WAIT, server)
            .await
            .expect("the shutdown is bounded by the grace period")
            .unwrap();
        let expected = if stuck {
            Drained::GraceExpired
        } else {
            Drained::All
        };
        assert_eq!(drained, expected);
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(WAIT, client.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "stuck={stuck}: the connection is closed");
    }
}
