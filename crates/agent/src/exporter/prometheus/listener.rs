//! The `/metrics` listener: an allowlist, a cap on open connections and a time limit for the
//! request head.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::recorder::Exposition;

/// Scrapes served at once; further connections are closed at once until one ends.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The exposition format's content type, as metrics-exporter-prometheus sends it.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `/metrics` on `listener` until the task is aborted; dropping the future closes the
/// listener and every open connection.
pub(crate) async fn serve(listener: TcpListener, exposition: Exposition, allow: Arc<[IpNet]>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if connections.len() >= MAX_CONNECTIONS {
                        tracing::warn!(%peer, "too many open scrape connections; closing this one");
                        continue;
                    }
                    let allowed = is_allowed(&allow, peer.ip());
                    connections.spawn(connection(stream, peer, allowed, exposition.clone()));
                }
                Err(error) => {
                    // E.g. out of file descriptors: wait instead of spinning.
                    tracing::warn!(%error, "cannot accept a scrape connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next() => {}
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

async fn connection(stream: TcpStream, peer: SocketAddr, allowed: bool, exposition: Exposition) {
    if !allowed {
        tracing::debug!(%peer, "scrape refused: the address is not in exporter.prometheus.allow");
    }
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let exposition = exposition.clone();
        async move {
            // Routes beyond /metrics answer in their own modules, behind the same allowlist.
            if allowed && let Some(response) = crate::profile::route(&request).await {
                return Ok::<_, Infallible>(response);
            }
            Ok(respond(&request, allowed, &exposition))
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(error) = served {
        tracing::debug!(%peer, %error, "scrape connection ended with an error");
    }
}

fn respond(
    request: &Request<Incoming>,
    allowed: bool,
    exposition: &Exposition,
) -> Response<Full<Bytes>> {
    if !allowed {
        return text(
            StatusCode::FORBIDDEN,
            "forbidden: this address may not scrape metrics here\n".to_owned(),
        );
    }
    let readable = matches!(*request.method(), Method::GET | Method::HEAD);
    match request.uri().path() {
        "/metrics" if readable => {
            let mut response = text(StatusCode::OK, exposition.render());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
            response
        }
        "/health" if readable => text(StatusCode::OK, "OK".to_owned()),
        "/metrics" | "/health" => {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: use GET\n".to_owned(),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n".to_owned(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::exporter::prometheus::native::NativeHistograms;
    use heapscape_testkit::WAIT;

    /// A listener on a free loopback port serving an empty exposition to everyone.
    async fn listening() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let exposition = Exposition {
            handle: PrometheusBuilder::new().build_recorder().handle(),
            native: Arc::new(NativeHistograms::new(&[], &[], Vec::new())),
        };
        tokio::spawn(serve(listener, exposition, Arc::from(Vec::new())));
        addr
    }

    /// `GET /health` on `stream`; the status, or `None` if the connection was closed or reset
    /// without one.
    async fn status(stream: &mut TcpStream) -> Option<u16> {
        let exchange = async {
            stream
                .write_all(b"GET /health HTTP/1.0\r\n\r\n")
                .await
                .ok()?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.ok()?;
            String::from_utf8_lossy(&response)
                .split(' ')
                .nth(1)?
                .parse()
                .ok()
        };
        tokio::time::timeout(WAIT, exchange)
            .await
            .expect("the listener answers or closes within a minute")
    }

    #[tokio::test]
    async fn a_connection_that_sends_no_request_head_is_closed() {
        let addr = listening().await;
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
    async fn connections_beyond_the_cap_are_closed_at_once() {
        let addr = listening().await;
        // The held connections send nothing, so the head timeout ends them after 10 s. Only a
        // round in which they all still answer afterwards shows the cap: then they were open
        // when the extra connection came. A machine stalled that long gets another round.
        for _round in 0..3 {
            let mut held = Vec::new();
            for _ in 0..MAX_CONNECTIONS {
                held.push(TcpStream::connect(addr).await.expect("connect"));
            }
            let mut extra = TcpStream::connect(addr).await.expect("connect");
            let extra_status = status(&mut extra).await;
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
                "connection {} was served",
                MAX_CONNECTIONS + 1
            );
            // The held connections have ended (HTTP/1.0): the listener serves again.
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let mut next = TcpStream::connect(addr).await.expect("connect");
                if status(&mut next).await == Some(200) {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no connection served after the held ones ended"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("in three rounds some held connection timed out before it was used");
    }
}
