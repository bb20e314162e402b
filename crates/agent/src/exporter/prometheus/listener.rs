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
        let response = respond(&request, allowed, &exposition);
        async move { Ok::<_, Infallible>(response) }
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
