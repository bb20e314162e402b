//! The `/metrics` listener: the allowlist checked before a connection takes a slot, caps on
//! open connections (in all and per peer address), time limits on every connection, and
//! warnings about dropped connections aggregated into one line per interval.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::recorder::Exposition;
use crate::connection::{BodyLength, StallLimit};
use crate::plain_text::plain_text;

/// Scrape connections served at once; further connections are closed at once until one ends.
/// Concurrent scrapes share renders, so a connection costs little beyond its socket.
const MAX_CONNECTIONS: usize = 128;
/// Scrape connections one peer address may hold, so that one host cannot take every slot:
/// room for a scraper's bursts (the demo's soak fires 20 scrapes at once from one address)
/// while at least four addresses are needed to fill the listener.
const MAX_CONNECTIONS_PER_PEER: usize = 32;
/// Refused peers answered at once (403); beyond this they are closed without an answer.
const MAX_REFUSALS: usize = 16;
/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may go without reading or writing a byte: an idle keep-alive
/// connection, or a client that does not read its response, is closed after this.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a scrape connection stays open, however it trickles.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);
/// The whole life of a refused peer's connection: its request head and the 403.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);
/// At most one warning line about dropped connections per this interval.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// The exposition format's content type, as metrics-exporter-prometheus sends it.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Connections turned away since the last warning line.
#[derive(Default)]
struct Dropped {
    over_cap: u64,
    over_peer_cap: u64,
    refusals_over_cap: u64,
    refused: u64,
    accept_errors: u64,
    last_accept_error: Option<String>,
}

impl Dropped {
    /// One line for everything since the last one, then starts counting afresh. `listen`
    /// names the listener, for a process (or a test binary) that runs more than one.
    fn report(&mut self, listen: &str) {
        let dropped = std::mem::take(self);
        if dropped.over_cap + dropped.over_peer_cap + dropped.refusals_over_cap > 0 {
            tracing::warn!(
                listen = %listen,
                over_cap = dropped.over_cap,
                over_peer_cap = dropped.over_peer_cap,
                refused_over_cap = dropped.refusals_over_cap,
                "scrape connections closed without an answer in the last {WARNING_INTERVAL:?}: \
                 {} over the cap of {MAX_CONNECTIONS}, {} over the cap of \
                 {MAX_CONNECTIONS_PER_PEER} per address, {} refused peers over the cap of \
                 {MAX_REFUSALS}; if a scraper is among them, look for clients that hold \
                 connections open",
                dropped.over_cap,
                dropped.over_peer_cap,
                dropped.refusals_over_cap,
            );
        }
        if dropped.accept_errors > 0 {
            tracing::warn!(
                listen = %listen,
                count = dropped.accept_errors,
                last_error = dropped.last_accept_error.as_deref().unwrap_or(""),
                "cannot accept scrape connections (e.g. out of file descriptors)"
            );
        }
        if dropped.refused > 0 {
            tracing::debug!(
                listen = %listen,
                count = dropped.refused,
                "scrapes refused: the addresses are not in exporter.prometheus.allow"
            );
        }
    }
}

/// Serves `/metrics` on `listener` until the task is aborted; dropping the future closes the
/// listener and every open connection.
pub(crate) async fn serve(listener: TcpListener, exposition: Exposition, allow: Arc<[IpNet]>) {
    let mut scrapes = JoinSet::new();
    // Which peer each scrape task serves, and how many each peer holds.
    let mut peer_of = HashMap::new();
    let mut held: HashMap<IpAddr, usize> = HashMap::new();
    let mut refusals = JoinSet::new();
    let mut dropped = Dropped::default();
    let listen = listener
        .local_addr()
        .map_or_else(|error| error.to_string(), |addr| addr.to_string());
    let mut report = tokio::time::interval(WARNING_INTERVAL);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Before any slot is taken: a refused peer never holds a scrape slot.
                    if !is_allowed(&allow, peer.ip()) {
                        dropped.refused += 1;
                        if refusals.len() < MAX_REFUSALS {
                            refusals.spawn(refuse(stream));
                        } else {
                            dropped.refusals_over_cap += 1;
                        }
                        continue;
                    }
                    // Connections that ended but whose tasks `select!` has not reaped yet
                    // must not count against the caps: a busy scraper that opens its next
                    // round as the last one closes would otherwise find its slots taken.
                    while let Some(ended) = scrapes.try_join_next_with_id() {
                        release(ended, &mut peer_of, &mut held);
                    }
                    let address = peer.ip().to_canonical();
                    let count = held.entry(address).or_default();
                    if scrapes.len() >= MAX_CONNECTIONS {
                        dropped.over_cap += 1;
                    } else if *count >= MAX_CONNECTIONS_PER_PEER {
                        dropped.over_peer_cap += 1;
                    } else {
                        *count += 1;
                        let task = scrapes.spawn(scrape_connection(stream, exposition.clone()));
                        peer_of.insert(task.id(), address);
                        continue;
                    }
                    if *count == 0 {
                        held.remove(&address);
                    }
                }
                Err(error) => {
                    dropped.accept_errors += 1;
                    dropped.last_accept_error = Some(error.to_string());
                    // E.g. out of file descriptors: wait instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(ended) = scrapes.join_next_with_id() => release(ended, &mut peer_of, &mut held),
            Some(_) = refusals.join_next() => {}
            _ = report.tick() => dropped.report(&listen),
        }
    }
}

/// Gives back the slot of the scrape task that `ended` (its peer's count).
fn release(
    ended: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
    peer_of: &mut HashMap<tokio::task::Id, IpAddr>,
    held: &mut HashMap<IpAddr, usize>,
) {
    let id = match ended {
        Ok((id, ())) => id,
        Err(error) => error.id(),
    };
    if let Some(address) = peer_of.remove(&id)
        && let Some(count) = held.get_mut(&address)
    {
        *count -= 1;
        if *count == 0 {
            held.remove(&address);
        }
    }
}

/// An empty allowlist admits everyone; an IPv4 client seen as `::ffff:a.b.c.d` on an IPv6
/// listener is checked as `a.b.c.d` too.
fn is_allowed(allow: &[IpNet], peer: IpAddr) -> bool {
    allow.is_empty()
        || allow
            .iter()
            .any(|network| network.contains(&peer) || network.contains(&peer.to_canonical()))
}

/// Answers a peer outside the allowlist with 403, within [`REFUSAL_TIMEOUT`] in all.
async fn refuse(stream: TcpStream) {
    let service = hyper::service::service_fn(|_: Request<Incoming>| async {
        Ok::<_, Infallible>(plain_text(
            StatusCode::FORBIDDEN,
            "forbidden: this address may not scrape metrics here\n",
        ))
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSAL_TIMEOUT)
        .keep_alive(false)
        .serve_connection(
            TokioIo::new(StallLimit::new(stream, REFUSAL_TIMEOUT)),
            service,
        );
    // Ended either way; a refused peer's errors are not worth a line.
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, served).await;
}

async fn scrape_connection(stream: TcpStream, exposition: Exposition) {
    let peer = stream.peer_addr().ok();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let arrived = Instant::now();
        let exposition = exposition.clone();
        async move {
            // Routes beyond /metrics answer in their own modules. Only peers the allowlist
            // admitted reach this connection, so they share its allowlist and limits.
            if let Some(response) = crate::profile::route(&request).await {
                return Ok::<_, Infallible>(response);
            }
            Ok(respond(&request, &exposition, arrived).await)
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(
            TokioIo::new(BodyLength::new(
                StallLimit::new(stream, STALL_TIMEOUT),
                "text/plain; charset=utf-8",
                payload_too_large,
            )),
            service,
        );
    match tokio::time::timeout(MAX_CONNECTION_AGE, served).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::debug!(?peer, %error, "scrape connection ended with an error");
        }
        Err(_) => tracing::debug!(?peer, "scrape connection closed at its age limit"),
    }
}

/// The 413's reason for a request that announces a body of `announced` bytes.
fn payload_too_large(announced: &str) -> String {
    format!(
        "length limit exceeded: the request announces a body of {announced} bytes, more than \
         any body can be; scrapes send no body\n"
    )
}

async fn respond(
    request: &Request<Incoming>,
    exposition: &Exposition,
    arrived: Instant,
) -> Response<Full<Bytes>> {
    let readable = matches!(*request.method(), Method::GET | Method::HEAD);
    match request.uri().path() {
        "/metrics" if readable => {
            let mut response = Response::new(Full::new(exposition.render_shared(arrived).await));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
            response
        }
        "/health" if readable => plain_text(StatusCode::OK, "OK"),
        "/metrics" | "/health" => {
            let mut response = plain_text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: use GET\n",
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        _ => plain_text(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::atomic::{AtomicBool, Ordering};

    use metrics::{Key, Label, Level, Metadata, Recorder};
    use metrics_exporter_prometheus::PrometheusBuilder;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpSocket;

    use super::*;
    use heapscape_testkit::WAIT;

    const ONE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    const TWO: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    const THREE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

    /// A listener on a free loopback port admitting `allow` (everyone if empty), serving an
    /// exposition of `series` counters (about 60 bytes each).
    async fn listening(allow: &[&str], series: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let no_labels: [(&str, &str); 0] = [];
        let recorder =
            crate::prometheus::Recorder::from_builder(PrometheusBuilder::new(), no_labels);
        static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);
        for index in 0..series {
            let key = Key::from_parts(
                "heapscape_test_series_total",
                vec![Label::new("index", index.to_string())],
            );
            recorder.register_counter(&key, &METADATA).increment(1);
        }
        let exposition = recorder.exposition();
        let allow: Vec<IpNet> = allow
            .iter()
            .map(|net| net.parse().expect("network"))
            .collect();
        tokio::spawn(serve(listener, exposition, allow.into()));
        addr
    }

    async fn connect_from(source: IpAddr, addr: SocketAddr) -> Option<TcpStream> {
        let socket = TcpSocket::new_v4().ok()?;
        socket.bind(SocketAddr::new(source, 0)).ok()?;
        socket.connect(addr).await.ok()
    }

    /// `GET <path>` (HTTP/1.0) on `stream`; the status and body, or `None` if the connection
    /// was closed or reset without a status.
    async fn get(stream: &mut TcpStream, path: &str) -> Option<(u16, String)> {
        let exchange = async {
            let request = format!("GET {path} HTTP/1.0\r\n\r\n");
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

    async fn status(stream: &mut TcpStream) -> Option<u16> {
        get(stream, "/health").await.map(|(status, _)| status)
    }

    /// Whether a scrape from `source` succeeds within ten tries: retries pace the check, the
    /// listener either serves it or it does not.
    async fn scrape_succeeds(source: IpAddr, addr: SocketAddr) -> bool {
        for _ in 0..10 {
            if let Some(mut stream) = connect_from(source, addr).await
                && let Some((200, body)) = get(&mut stream, "/metrics").await
                && body.contains("heapscape_test_series_total")
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// `count` clients from `source` that each open a connection, run `hold` on it and open
    /// another when it ends, until the returned flag is set.
    fn attackers<F, Fut>(count: usize, source: IpAddr, addr: SocketAddr, hold: F) -> Arc<AtomicBool>
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + Copy + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let stop = Arc::new(AtomicBool::new(false));
        for _ in 0..count {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                // Relaxed: a flag, no data behind it.
                while !stop.load(Ordering::Relaxed) {
                    match connect_from(source, addr).await {
                        Some(stream) => hold(stream).await,
                        // Out of ports or refused: pace the retries.
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            });
        }
        stop
    }

    /// Holds the connection until the listener closes it, sending nothing.
    async fn idle(mut stream: TcpStream) {
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    }

    /// Asks for the exposition many times over one connection and never reads an answer;
    /// holds the connection until a write fails (the listener closed it).
    async fn never_reads(mut stream: TcpStream) {
        let requests = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(50);
        loop {
            if stream.write_all(requests.as_bytes()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A `Content-Length` too large to represent gets 413 with the reason, as on the demo's
    /// speech port (hyper alone answers 431 or 400); a later connection is served.
    #[tokio::test]
    async fn an_unrepresentable_body_length_is_refused_with_413() {
        let addr = listening(&[], 1).await;
        for length in ["18446744073709551615", "99999999999999999999999"] {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let request =
                format!("GET /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: {length}\r\n\r\n");
            stream.write_all(request.as_bytes()).await.expect("request");
            let mut response = Vec::new();
            tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
                .await
                .expect("answered and closed within a minute")
                .expect("read");
            let response = String::from_utf8_lossy(&response);
            assert!(
                response.starts_with("HTTP/1.1 413 "),
                "{length}: {response}"
            );
            assert!(
                response.contains(&format!("announces a body of {length} bytes")),
                "{response}"
            );
        }
        let mut next = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(status(&mut next).await, Some(200));
    }

    #[tokio::test]
    async fn a_connection_that_sends_no_request_head_is_closed() {
        let addr = listening(&[], 1).await;
        let mut idle = TcpStream::connect(addr).await.expect("connect");
        // Nothing is sent; without the head timeout the read below would wait forever.
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(WAIT, idle.read_to_end(&mut answer)).await;
        assert!(
            closed.is_ok(),
            "the idle connection is still open after {WAIT:?}"
        );
        assert!(
            !String::from_utf8_lossy(&answer).contains(" 200 "),
            "{answer:?}"
        );
        // The listener still serves others.
        let mut next = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(status(&mut next).await, Some(200));
    }

    #[tokio::test]
    async fn connections_beyond_the_per_peer_cap_are_closed_and_other_peers_served() {
        let addr = listening(&[], 1).await;
        // The held connections send nothing, so the time limits end them after 10 s. Only a
        // round in which they all still answer afterwards shows the cap: then they were open
        // when the extra connection came. A machine stalled that long gets another round.
        for _round in 0..3 {
            let mut held = Vec::new();
            for _ in 0..MAX_CONNECTIONS_PER_PEER {
                held.push(connect_from(ONE, addr).await.expect("connect"));
            }
            let mut extra = connect_from(ONE, addr).await.expect("connect");
            let extra_status = status(&mut extra).await;
            let mut other = connect_from(TWO, addr).await.expect("connect");
            let other_status = status(&mut other).await;
            let mut all_served = true;
            for stream in &mut held {
                all_served &= status(stream).await == Some(200);
            }
            if !all_served {
                continue;
            }
            assert_eq!(
                extra_status,
                None,
                "connection {} from one address was served",
                MAX_CONNECTIONS_PER_PEER + 1
            );
            assert_eq!(other_status, Some(200), "another address was not served");
            return;
        }
        panic!("in three rounds some held connection timed out before it was used");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_peers_reconnecting_cannot_keep_an_allowed_scrape_out() {
        let addr = listening(&["127.0.0.1/32"], 100).await;
        let stop = attackers(70, TWO, addr, idle);
        // Let them take whatever they can first. A refused peer gets its 403 while one of the
        // refusal slots is free, else is closed unanswered: either way it is never served.
        let mut probe = connect_from(TWO, addr).await.expect("connect");
        let refused = status(&mut probe).await;
        assert!(matches!(refused, Some(403) | None), "{refused:?}");
        let served = scrape_succeeds(ONE, addr).await;
        stop.store(true, Ordering::Relaxed);
        assert!(served, "no scrape from 127.0.0.1 was served in ten tries");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_and_never_reading_allowed_peers_cannot_keep_another_scraper_out() {
        // 2000 series: each answer is about 100 KB, so clients that never read fill the
        // socket buffers and the listener's writes stall.
        let addr = listening(&["127.0.0.1/32", "127.0.0.3/32"], 2000).await;
        let idle_clients = attackers(100, THREE, addr, idle);
        let slow_clients = attackers(100, THREE, addr, never_reads);
        // Some of them are connected and held.
        let held = connect_from(THREE, addr).await.expect("connect");
        drop(held);
        let served = scrape_succeeds(ONE, addr).await;
        idle_clients.store(true, Ordering::Relaxed);
        slow_clients.store(true, Ordering::Relaxed);
        assert!(served, "no scrape from 127.0.0.1 was served in ten tries");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_never_reads_is_closed() {
        let addr = listening(&[], 2000).await;
        let stream = connect_from(ONE, addr).await.expect("connect");
        // Ends only when a write fails: the listener closed the connection.
        tokio::time::timeout(WAIT, never_reads(stream))
            .await
            .expect("the listener closes a connection that never reads within a minute");
    }

    #[test]
    fn connections_over_the_caps_give_one_warning_line_with_a_count() {
        // The only subscriber of this binary (see `CapturedLogs::install` for why global);
        // other tests' listeners log here too, so lines are told apart by `listen`.
        let captured = heapscape_testkit::CapturedLogs::install(tracing::Level::WARN);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let addr = listening(&[], 1).await;
            let mut held = Vec::new();
            for _ in 0..MAX_CONNECTIONS_PER_PEER + 200 {
                held.push(connect_from(ONE, addr).await.expect("connect"));
            }
            let own = format!("listen={addr}");
            let log = || {
                captured
                    .lines_with(&own)
                    .iter()
                    .map(|line| format!("{line}\n"))
                    .collect::<String>()
            };
            let counted = |log: &str| -> u64 {
                log.lines()
                    .filter_map(|line| line.split("over_peer_cap=").nth(1)?.split(' ').next())
                    .filter_map(|count| count.parse::<u64>().ok())
                    .sum()
            };
            let deadline = tokio::time::Instant::now() + WAIT;
            while counted(&log()) < 200 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no warning counting the 200 connections over the cap:\n{}",
                    log()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let log = log();
            assert_eq!(counted(&log), 200, "{log}");
            // One line per 10 s interval: the 200 came within one or two of them, not 200.
            assert!(log.lines().count() <= 2, "{log}");
            drop(held);
        });
    }
}
