//! Watches the request heads arriving on a connection, below hyper:
//!
//! - whether bytes of a request arrived that were not answered yet: hyper's header read timeout
//!   ends idle keep-alive connections and half-sent requests alike, and only the second is a
//!   request that timed out (counted as a 408);
//! - a `Content-Length` too large for hyper to represent (2^64 - 2 and above; hyper refuses
//!   2^64 - 2 and 2^64 - 1 with 431 "header fields too large" and larger numbers with 400): the
//!   head is kept from hyper and answered with 413 and a JSON reason, like every other body over
//!   the limit, and the connection is closed.
//!
//! Only the head of the first request after each answer is scanned (up to its empty line), so a
//! body is never read as headers.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes of a header line kept to recognize `Content-Length`: its name, blanks and 20 digits
/// fit; longer lines are not that header with a number hyper could read.
const LINE_KEPT: usize = 64;

/// What the connection's task reads once the connection has ended.
#[derive(Debug, Default)]
pub(super) struct HeadState {
    /// Bytes were read since the last write.
    pub(super) unanswered: AtomicBool,
    /// A head announced a body too large to represent and was answered with 413.
    pub(super) length_refused: AtomicBool,
}

/// `io` with its request heads watched (see the module docs).
#[derive(Debug)]
pub(super) struct HeadWatch<T> {
    io: T,
    /// Relaxed: written and read by the connection's own task.
    state: Arc<HeadState>,
    /// The current header line's first bytes; `None` once the head being scanned ended.
    line: Option<Vec<u8>>,
    /// A line of the head was not empty (empty lines before a request line are allowed).
    head_begun: bool,
    /// The 413 being written, and how much of it was.
    answer: Option<(Vec<u8>, usize)>,
}

impl<T> HeadWatch<T> {
    /// Wraps `io`; the state is read through the returned handle.
    pub(super) fn new(io: T) -> (Self, Arc<HeadState>) {
        let state = Arc::new(HeadState::default());
        let watch = Self {
            io,
            state: state.clone(),
            line: Some(Vec::with_capacity(LINE_KEPT)),
            head_begun: false,
            answer: None,
        };
        (watch, state)
    }

    fn wrote(&mut self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.state.unanswered.store(false, Ordering::Relaxed);
            // The next bytes start the next request's head.
            let mut line = self.line.take().unwrap_or_default();
            line.clear();
            self.line = Some(line);
            self.head_begun = false;
        }
    }

    /// Scans `bytes` of the head; returns the `Content-Length` value (as written) of a line
    /// that announces a body too large to represent.
    fn scan(&mut self, bytes: &[u8]) -> Option<String> {
        for &byte in bytes {
            let line = self.line.as_mut()?;
            if byte != b'\n' {
                if line.len() < LINE_KEPT {
                    line.push(byte);
                }
                continue;
            }
            let text = line.strip_suffix(b"\r").unwrap_or(line);
            if text.is_empty() {
                if self.head_begun {
                    self.line = None;
                }
                continue;
            }
            self.head_begun = true;
            let oversized = unrepresentable_length(text);
            line.clear();
            if oversized.is_some() {
                return oversized;
            }
        }
        None
    }
}

/// The value of a `Content-Length: <digits>` line whose number is over hyper's largest body
/// length, 2^64 - 3.
fn unrepresentable_length(line: &[u8]) -> Option<String> {
    const NAME: &[u8] = b"content-length:";
    if line.len() < NAME.len() || !line[..NAME.len()].eq_ignore_ascii_case(NAME) {
        return None;
    }
    let value = std::str::from_utf8(&line[NAME.len()..]).ok()?.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match value.parse::<u64>() {
        Ok(length) if length <= u64::MAX - 2 => None,
        // Over u64 or in its last two values.
        _ => Some(value.to_owned()),
    }
}

/// The 413 for a body of `announced` bytes, closing the connection.
fn payload_too_large(announced: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "error": format!(
            "length limit exceeded: the body announces {announced} bytes, more than any body \
             can be; send a shorter text"
        )
    })
    .to_string();
    format!(
        "HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadWatch<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.answer.is_none() {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
            let new = buf.filled().len() - before;
            if new == 0 {
                return Poll::Ready(Ok(()));
            }
            this.state.unanswered.store(true, Ordering::Relaxed);
            let Some(announced) = this.scan(&buf.filled()[before..]) else {
                return Poll::Ready(Ok(()));
            };
            // hyper never sees this head: it gets the end of the stream after the answer.
            buf.set_filled(before);
            this.state.length_refused.store(true, Ordering::Relaxed);
            this.answer = Some((payload_too_large(&announced), 0));
        }
        if let Some((answer, sent)) = this.answer.as_mut() {
            while *sent < answer.len() {
                match ready!(Pin::new(&mut this.io).poll_write(cx, &answer[*sent..])) {
                    // A client that went away gets no answer; the stream ends all the same.
                    Ok(0) | Err(_) => *sent = answer.len(),
                    Ok(n) => *sent += n,
                }
            }
        }
        // The end of the stream, for hyper, once the answer is out.
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadWatch<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        this.wrote(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(&written);
        written
    }

    /// Forwarded: hyper queues a response's bytes without copying them only over vectored
    /// writes.
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::{HeadWatch, unrepresentable_length};

    #[tokio::test]
    async fn reading_sets_the_flag_and_answering_clears_it() {
        let (server, mut client) = tokio::io::duplex(64);
        let (mut server, state) = HeadWatch::new(server);
        assert!(!state.unanswered.load(Ordering::Relaxed));
        client.write_all(b"GET").await.unwrap();
        let mut head = [0; 3];
        server.read_exact(&mut head).await.unwrap();
        assert!(state.unanswered.load(Ordering::Relaxed));
        server.write_all(b"HTTP/1.1 200").await.unwrap();
        assert!(!state.unanswered.load(Ordering::Relaxed));
    }

    #[test]
    fn only_lengths_over_the_largest_body_are_unrepresentable() {
        assert_eq!(
            unrepresentable_length(b"Content-Length: 18446744073709551615").as_deref(),
            Some("18446744073709551615")
        );
        assert!(unrepresentable_length(b"content-length:18446744073709551614").is_some());
        assert!(unrepresentable_length(b"content-length: 99999999999999999999999").is_some());
        assert!(unrepresentable_length(b"content-length: 18446744073709551613").is_none());
        assert!(unrepresentable_length(b"content-length: 100").is_none());
        assert!(unrepresentable_length(b"content-length: -1").is_none());
        assert!(unrepresentable_length(b"x-content-length: 18446744073709551615").is_none());
    }

    #[tokio::test]
    async fn a_body_is_not_read_as_headers() {
        let (server, mut client) = tokio::io::duplex(1024);
        let (mut server, state) = HeadWatch::new(server);
        client
            .write_all(
                b"POST / HTTP/1.1\r\ncontent-length: 40\r\n\r\ncontent-length: 18446744073709551615\r\n",
            )
            .await
            .unwrap();
        drop(client);
        let mut received = Vec::new();
        server.read_to_end(&mut received).await.unwrap();
        assert!(
            received.ends_with(b"18446744073709551615\r\n"),
            "passed on whole"
        );
        assert!(!state.length_refused.load(Ordering::Relaxed));
    }
}
