//! Request heads that announce a body too large to represent: hyper refuses a `Content-Length`
//! of 2^64 - 2 or 2^64 - 1 with 431 ("header fields too large") and a larger number with 400,
//! as if the headers were at fault. A body over what a server takes is a 413, which is what the
//! demo's speech port answers; so that both ports of a service say the same, this stream reads
//! below hyper, keeps such a head from it, answers 413 with the reason and ends the
//! connection.
//!
//! Only a request's head is scanned, from the first byte after an answer to its empty line, so a
//! body is never read as headers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes of a header line kept to recognize `Content-Length`: its name, blanks and 20 digits
/// fit; a longer line is not that header with a number hyper could read.
const LINE_KEPT: usize = 64;

/// `inner` with its request heads checked for a `Content-Length` too large to represent.
pub(crate) struct BodyLength<S> {
    inner: S,
    /// The current header line's first bytes; `None` once the head being scanned ended.
    line: Option<Vec<u8>>,
    /// A line of the head was not empty (empty lines before a request line are allowed).
    head_begun: bool,
    /// The 413 being written, and how much of it was; hyper then reads the end of the stream.
    answer: Option<(Vec<u8>, usize)>,
}

impl<S> BodyLength<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            line: Some(Vec::with_capacity(LINE_KEPT)),
            head_begun: false,
            answer: None,
        }
    }

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

/// The 413 for a body of `announced` bytes, closing the connection.
fn payload_too_large(announced: &str) -> Vec<u8> {
    let body = format!(
        "length limit exceeded: the request announces a body of {announced} bytes, more than \
         any body can be; scrapes send no body\n"
    );
    format!(
        "HTTP/1.1 413 Payload Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for BodyLength<S> {
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
            this.answer = Some((payload_too_large(&announced), 0));
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
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BodyLength<S> {
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
    use super::unrepresentable;

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
        assert!(unrepresentable(b"x-content-length: 18446744073709551615").is_none());
    }
}
