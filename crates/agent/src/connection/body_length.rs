//! Request heads that announce a body too large to represent: hyper refuses a `Content-Length`
//! of 2^64 - 2 or 2^64 - 1 with 431 ("header fields too large") and a larger number with 400,
//! as if the headers were at fault. A body over what a server takes is a 413; so that such a
//! head gets one too, this stream reads below hyper, keeps the head from it, answers 413 with
//! the server's reason and ends the connection.
//!
//! Only a request's head is scanned, from the first byte after an answer to its empty line, so a
//! body is never read as headers.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes of a header line kept to recognize `Content-Length`: its name, blanks and 20 digits
/// fit; a longer line is not that header with a number hyper could read.
const LINE_KEPT: usize = 64;

/// `inner` with its request heads checked for a `Content-Length` too large to represent,
/// which is answered 413 with the body `reason` writes for the announced length (as written in
/// the head), in `content_type`; hyper then reads the end of the stream.
///
/// ```
/// use heapscape::connection::BodyLength;
///
/// # async fn accept(listener: tokio::net::TcpListener) -> std::io::Result<()> {
/// let (stream, _) = listener.accept().await?;
/// let stream = BodyLength::new(stream, "text/plain; charset=utf-8", |announced: &str| {
///     format!("a body of {announced} bytes is more than any body can be\n")
/// });
/// // hyper::server::conn::http1::Builder::new()
/// //     .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
/// # drop(stream);
/// # Ok(())
/// # }
/// ```
pub struct BodyLength<S, R> {
    inner: S,
    content_type: &'static str,
    reason: R,
    /// The current header line's first bytes; `None` once the head being scanned ended.
    line: Option<Vec<u8>>,
    /// A line of the head was not empty (empty lines before a request line are allowed).
    head_begun: bool,
    /// The 413 being written, and how much of it was.
    answer: Option<(Vec<u8>, usize)>,
}

impl<S, R: FnMut(&str) -> String> BodyLength<S, R> {
    /// Checks the request heads read from `inner`; `reason` is called once, for the head
    /// refused (a service that counts its refusals counts them there).
    pub fn new(inner: S, content_type: &'static str, reason: R) -> Self {
        Self {
            inner,
            content_type,
            reason,
            line: Some(Vec::with_capacity(LINE_KEPT)),
            head_begun: false,
            answer: None,
        }
    }
}

impl<S, R> BodyLength<S, R> {
    /// After an answer, the next bytes start the next request's head.
    fn wrote(&mut self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            let mut line = self.line.take().unwrap_or_default();
            line.clear();
            self.line = Some(line);
            self.head_begun = false;
        }
    }

    /// Scans `bytes` of the head; the `Content-Length` value of a line that announces a body
    /// too large to represent.
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
            let oversized = unrepresentable(text);
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
fn unrepresentable(line: &[u8]) -> Option<String> {
    const NAME: &[u8] = b"content-length:";
    let name = line.get(..NAME.len())?;
    if !name.eq_ignore_ascii_case(NAME) {
        return None;
    }
    let value = std::str::from_utf8(&line[NAME.len()..]).ok()?.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match value.parse::<u64>() {
        Ok(length) if length <= u64::MAX - 2 => None,
        // Over u64, or one of its last two values.
        _ => Some(value.to_owned()),
    }
}

/// The 413 with `body`, in `content_type`, closing the connection.
fn payload_too_large(content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 413 Payload Too Large\r\ncontent-type: {content_type}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl<S: fmt::Debug, R> fmt::Debug for BodyLength<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyLength")
            .field("inner", &self.inner)
            .field("head_begun", &self.head_begun)
            .field("answering", &self.answer.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin, R: FnMut(&str) -> String + Unpin> AsyncRead
    for BodyLength<S, R>
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.answer.is_none() {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let Some(announced) = this.scan(&buf.filled()[before..]) else {
                return Poll::Ready(Ok(()));
            };
            // hyper never sees this head: it reads the end of the stream after the answer.
            buf.set_filled(before);
            let body = (this.reason)(&announced);
            this.answer = Some((payload_too_large(this.content_type, &body), 0));
        }
        if let Some((answer, sent)) = this.answer.as_mut() {
            while *sent < answer.len() {
                match ready!(Pin::new(&mut this.inner).poll_write(cx, &answer[*sent..])) {
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

impl<S: AsyncWrite + Unpin, R: Unpin> AsyncWrite for BodyLength<S, R> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(&written);
        written
    }

    /// As the inner stream's: hyper queues a response's `Bytes` without copying them only on a
    /// vectored stream.
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn only_lengths_over_the_largest_body_are_unrepresentable() {
        assert_eq!(
            unrepresentable(b"Content-Length: 18446744073709551615").as_deref(),
            Some("18446744073709551615")
        );
        assert!(unrepresentable(b"content-length:18446744073709551614").is_some());
        assert!(unrepresentable(b"content-length: 99999999999999999999999").is_some());
        assert!(unrepresentable(b"content-length: 18446744073709551613").is_none());
        assert!(unrepresentable(b"content-length: 100").is_none());
        assert!(unrepresentable(b"content-length: -1").is_none());
        assert!(unrepresentable(b"x-content-length: 18446744073709551615").is_none());
    }

    #[tokio::test]
    async fn a_body_is_not_read_as_headers() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut refused = 0;
        let mut server = BodyLength::new(server, "text/plain", |_: &str| {
            refused += 1;
            String::new()
        });
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
        drop(server);
        assert_eq!(refused, 0);
    }

    #[tokio::test]
    async fn an_unrepresentable_length_is_answered_and_kept_from_the_reader() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut server = BodyLength::new(server, "application/json", |announced: &str| {
            format!("{{\"error\": \"{announced}\"}}")
        });
        client
            .write_all(b"POST / HTTP/1.1\r\ncontent-length: 18446744073709551615\r\n\r\n")
            .await
            .unwrap();
        // One read takes the whole head, as hyper's buffer does.
        let read = server.read(&mut [0; 1024]).await.unwrap();
        assert_eq!(read, 0, "the head reached the reader");
        drop(server);
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
        assert!(
            answer.contains("content-type: application/json\r\n"),
            "{answer}"
        );
        assert!(
            answer.ends_with("{\"error\": \"18446744073709551615\"}"),
            "{answer}"
        );
    }
}
