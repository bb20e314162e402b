//! The accept loop: HTTP/1.1 connections, at most so many at once, with a header read timeout
//! and a send timeout, and their draining on shutdown within a grace period.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

use heapscape::connection::{BodyLength, StallLimit};

use super::unanswered::Unanswered;
use crate::service_metrics;

/// How [`serve_connections`] treats connections.
#[derive(Debug, Clone, Copy)]
pub struct Connections {
    /// Time a client has to send a request's headers, and the longest a keep-alive
    /// connection may sit idle; the connection is closed after it.
    pub header_read_timeout: Duration,
    /// After the shutdown signal: time in-flight requests have to finish.
    pub shutdown_grace: Duration,
    /// Longest a write to the client may make no progress (a client that stopped reading);
    /// the connection and the response it holds are dropped after it.
    pub send_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            max_connections: 512,
        }
    }
}

/// How a [`serve_connections`] run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished within the grace period.
    All,
    /// The grace period ran out; the remaining connections were closed.
    GraceExpired,
    /// A second shutdown request came during the grace period; the remaining connections were
    /// closed then.
    Interrupted,
}

/// Serves `app` over HTTP/1.1 on `listener` until `shutdown` resolves, then stops accepting,
/// lets in-flight requests finish for up to [`Connections::shutdown_grace`] and returns.
///
/// Every connection has a header read timeout ([`Connections::header_read_timeout`]), so a
/// client that opens connections and sends nothing (or sends headers a byte at a time) cannot
/// hold them; reading the body is bounded by the request timeout of the router, and a client
/// that stops reading its response by the send timeout ([`Connections::send_timeout`]). No more
/// than [`Connections::max_connections`] are served at once: the loop accepts the next one when
/// one has closed.
///
/// A failed connection is logged at debug level; a failed accept (e.g. out of file
/// descriptors) is logged and retried after a short pause.
pub async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    connections: Connections,
    shutdown: impl std::future::Future<Output = ()>,
) -> Drained {
    serve_connections_until(listener, app, connections, shutdown, std::future::pending()).await
}

/// [`serve_connections`], and when `hurry` resolves during the grace period (a second
/// SIGTERM or Ctrl-C: whoever sent the first one does not want to wait), the remaining
/// connections are closed at once.
pub(crate) async fn serve_connections_until(
    listener: tokio::net::TcpListener,
    app: Router,
    connections: Connections,
    shutdown: impl std::future::Future<Output = ()>,
    hurry: impl std::future::Future<Output = ()>,
) -> Drained {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(connections.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
    let slots = Arc::new(Semaphore::new(connections.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Reaps finished connection tasks so the set holds only live ones.
        while tasks.try_join_next().is_some() {}
        let slot = tokio::select! {
            () = &mut shutdown => break,
            Ok(slot) = slots.clone().acquire_owned() => slot,
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // EMFILE and friends: pause instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Ignored: a socket that refuses TCP_NODELAY still works.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let length_refused = Arc::new(AtomicBool::new(false));
        let refused = length_refused.clone();
        // Below hyper, so that the 413 goes out whatever hyper's state.
        let stream = BodyLength::new(stream, "application/json", move |announced: &str| {
            // Relaxed: read by this connection's own task once the connection has ended.
            refused.store(true, Ordering::Relaxed);
            unrepresentable_length(announced)
        });
        let (stream, unanswered) = Unanswered::new(stream);
        let stream = StallLimit::sends_only(stream, connections.send_timeout);
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tasks.spawn(async move {
            let ended = connection.await;
            // Relaxed: written by this task's own connection future, which has ended.
            let ended_with = Ended {
                length_refused: length_refused.load(Ordering::Relaxed),
                unanswered: unanswered.load(Ordering::Relaxed),
            };
            if let Some(status) = rejection_status(ended.as_ref().err(), ended_with) {
                service_metrics::count_response(status);
            }
            if let Err(error) = ended {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!(grace = ?connections.shutdown_grace, "draining in-flight requests");
    let drained = tokio::select! {
        drained = tokio::time::timeout(connections.shutdown_grace, graceful.shutdown()) => {
            match drained {
                Ok(()) => return Drained::All,
                Err(_) => Drained::GraceExpired,
            }
        }
        () = hurry => Drained::Interrupted,
    };
    // Connections that ended during the grace period are not open any more.
    while tasks.try_join_next().is_some() {}
    if drained == Drained::Interrupted {
        tracing::warn!(
            connections = tasks.len(),
            "shutdown requested again during the grace period; closing the connections of the \
             requests still running"
        );
    } else {
        tracing::warn!(
            grace = ?connections.shutdown_grace,
            connections = tasks.len(),
            "requests still running after the shutdown grace period; closing their connections"
        );
    }
    tasks.abort_all();
    drained
}

/// The reason of the 413 for a request head that announces a body of `announced` bytes, more
/// than hyper can represent: answered below hyper, like every other body over the limit.
fn unrepresentable_length(announced: &str) -> String {
    serde_json::json!({
        "error": format!(
            "length limit exceeded: the body announces {announced} bytes, more than any body \
             can be; send a shorter text"
        )
    })
    .to_string()
}

/// What the connection's guards saw by the time it ended.
#[derive(Debug, Clone, Copy)]
struct Ended {
    /// A head announced a body too large to represent and was answered with 413.
    length_refused: bool,
    /// Bytes of a request were read and not answered.
    unanswered: bool,
}

/// The status of a request refused before the router saw it (the router counts its own), from
/// how the connection ended: a `Content-Length` too large to represent was answered
/// 413 below hyper (which then saw the stream end); hyper answered 400, 414 or 431 itself; a
/// header read timeout while a request head was arriving is counted as 408, although hyper
/// closes the connection without an answer. An idle keep-alive connection that timed out or a
/// client that went away is no request.
fn rejection_status(error: Option<&hyper::Error>, ended: Ended) -> Option<StatusCode> {
    if ended.length_refused {
        return Some(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let error = error?;
    if error.is_parse_too_large() {
        // hyper's public API tells the two apart only by the message.
        if error.to_string().contains("URI too long") {
            Some(StatusCode::URI_TOO_LONG)
        } else {
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        }
    } else if error.is_parse() && !error.is_parse_version_h2() {
        Some(StatusCode::BAD_REQUEST)
    } else if error.is_timeout() && ended.unanswered {
        Some(StatusCode::REQUEST_TIMEOUT)
    } else {
        None
    }
}
