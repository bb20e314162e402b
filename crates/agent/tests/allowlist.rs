//! The Prometheus listener's allowlist, tested by source address: Linux routes all of 127/8 to
//! `lo`, so a client socket bound to 127.0.0.2 is a second "host" on this machine. Also: with
//! `listen` omitted the listener is on loopback only.
//!
//! A process can install only one global recorder, so each case runs in a child process of this
//! test binary (the ignored test `case_in_child`, selected by an environment variable).

// The Prometheus listener (or mode b's recorder) needs the `tokio` feature.
#![cfg(feature = "tokio")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use heapscape::{Agent, Config, Error, ExporterConfig};
use heapscape_testkit::{ChildGuard, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const CASE_ENV: &str = "HEAPSCAPE_ALLOWLIST_CASE";
const ONE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const TWO: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

#[test]
fn allow_127_0_0_1_admits_it_and_refuses_127_0_0_2() {
    run_in_child("allow-one");
}

#[test]
fn allow_127_0_0_2_admits_it_and_refuses_127_0_0_1() {
    run_in_child("allow-two");
}

#[test]
fn without_allow_every_local_source_may_scrape() {
    run_in_child("allow-all");
}

#[test]
fn omitted_listen_is_loopback() {
    let config = Config::from_yaml_str("exporter: { prometheus: {} }\n", "allowlist.yaml").unwrap();
    let ExporterConfig::Prometheus(prometheus) = &config.exporter else {
        panic!("a Prometheus exporter: {config:?}");
    };
    assert!(prometheus.listen.ip().is_loopback(), "{prometheus:?}");
    assert_eq!(prometheus.listen, heapscape::DEFAULT_PROMETHEUS_LISTEN);
    assert!(prometheus.allow.is_empty());
    run_in_child("default-listen");
}

/// Runs `case_in_child` for `case` in a fresh process; fails with its output if it fails.
fn run_in_child(case: &str) {
    // Bounded wait; the child is killed if it hangs.
    let output = ChildGuard::spawn(
        &format!("case {case}"),
        Command::new(std::env::current_exe().expect("test binary path"))
            .args([
                "case_in_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CASE_ENV, case)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .wait_with_output(Duration::from_secs(180));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "case {case} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[test]
#[ignore = "one case per process; run by the other tests of this file"]
fn case_in_child() {
    // Under `--ignored` without a case this would check nothing: fail and say what to set.
    let case = std::env::var(CASE_ENV).unwrap_or_else(|_| {
        panic!(
            "{CASE_ENV} is not set: this test runs one case in a child process of the other \
             tests of this file; to run one case by hand, set {CASE_ENV} to its name (e.g. \
             {CASE_ENV}=allow-one)"
        )
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        match case.as_str() {
            "allow-one" => allowlist_case("[127.0.0.1/32]", ONE, TWO).await,
            "allow-two" => allowlist_case("[\"127.0.0.2\"]", TWO, ONE).await,
            "allow-all" => {
                let agent =
                    start("exporter: { prometheus: { listen: \"127.0.0.1:0\", allow: [] } }\n");
                let addr = agent.metrics_addr().expect("a Prometheus listener");
                for source in [ONE, TWO] {
                    let (status, body) = scrape(source, addr).await.expect("an answer");
                    assert_eq!(status, 200, "from {source}: {body}");
                }
                agent.shutdown();
            }
            "default-listen" => default_listen_case().await,
            other => panic!("unknown case {other}"),
        }
    });
}

fn start(yaml: &str) -> Agent {
    let config = Config::from_yaml_str(yaml, "allowlist.yaml").expect("valid config");
    Agent::builder()
        .config(config)
        .start()
        .expect("agent starts")
}

async fn allowlist_case(allow: &str, admitted: IpAddr, refused: IpAddr) {
    let agent = start(&format!(
        "service: allowlist\n\
         exporter: {{ prometheus: {{ listen: \"127.0.0.1:0\", allow: {allow} }} }}\n\
         pools: {{ pcm: {{ max_buffer_size: 1MiB }} }}\n"
    ));
    let addr = agent.metrics_addr().expect("a Prometheus listener");
    assert!(addr.ip().is_loopback(), "{addr}");
    agent
        .pool("pcm")
        .expect("pool")
        .get()
        .extend_from_slice(b"x");

    // The listener runs: wait until the admitted source gets the exposition.
    let deadline = Instant::now() + WAIT;
    let body = loop {
        match scrape(admitted, addr).await {
            Some((200, body)) if body.contains("heapscape_") => break body,
            other => assert!(
                Instant::now() < deadline,
                "no scrape from {admitted} succeeded; last answer {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(body.contains("service=\"allowlist\""), "{body}");

    // The other source is refused, every time, without any metric in the answer.
    for _ in 0..3 {
        let (status, body) = scrape(refused, addr)
            .await
            .unwrap_or_else(|| panic!("{refused} got no answer; it must get a 403"));
        assert_eq!(status, 403, "from {refused}: {body}");
        assert!(
            !body.contains("heapscape_"),
            "metrics leaked to {refused}: {body}"
        );
    }
    // And the admitted source still gets through afterwards.
    let (status, _) = scrape(admitted, addr).await.expect("an answer");
    assert_eq!(status, 200);
    agent.shutdown();
}

async fn default_listen_case() {
    let config = Config::from_yaml_str("exporter: { prometheus: {} }\n", "allowlist.yaml").unwrap();
    let agent = match Agent::builder().config(config).start() {
        Ok(agent) => agent,
        Err(Error::PortInUse { addr }) => {
            // Something else holds port 9000; the agent still tried loopback, not 0.0.0.0.
            assert!(addr.ip().is_loopback(), "{addr}");
            assert_eq!(addr, heapscape::DEFAULT_PROMETHEUS_LISTEN);
            eprintln!("{addr} is in use here: checked the address the agent tried to bind");
            return;
        }
        Err(error) => panic!("agent start: {error}"),
    };
    let addr = agent.metrics_addr().expect("a Prometheus listener");
    assert_eq!(addr, heapscape::DEFAULT_PROMETHEUS_LISTEN);
    let (status, _) = scrape(ONE, addr).await.expect("an answer");
    assert_eq!(status, 200);
    // From the machine's own non-loopback address (if it has one) nothing listens on the port:
    // the listener is not on 0.0.0.0.
    if let Some(own) = own_non_loopback_address() {
        let outside = SocketAddr::new(own, addr.port());
        let socket = TcpSocket::new_v4().unwrap();
        let connected =
            tokio::time::timeout(Duration::from_secs(10), socket.connect(outside)).await;
        assert!(
            !matches!(connected, Ok(Ok(_))),
            "the metrics port answers on {outside}"
        );
    }
    agent.shutdown();
}

/// The address this machine would send from towards the internet (no packet is sent), if it is
/// not a loopback address.
fn own_non_loopback_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    // TEST-NET-1 (RFC 5737): connect() only picks a route and a source address.
    socket.connect("192.0.2.1:9").ok()?;
    let own = socket.local_addr().ok()?.ip();
    (!own.is_loopback() && !own.is_unspecified()).then_some(own)
}

/// `GET /metrics` from a socket bound to `source`; `None` if the connection was closed or reset
/// before a status line arrived.
async fn scrape(source: IpAddr, addr: SocketAddr) -> Option<(u16, String)> {
    let exchange = async {
        let socket = TcpSocket::new_v4().ok()?;
        socket.bind(SocketAddr::new(source, 0)).ok()?;
        let mut stream = socket.connect(addr).await.ok()?;
        let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let response = String::from_utf8_lossy(&response).into_owned();
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, body)| body.to_owned());
        Some((status, body))
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the listener answers or closes within a minute")
}
