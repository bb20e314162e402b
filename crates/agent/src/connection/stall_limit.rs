//! A stream that fails once it has made no progress for a while, so that a peer that never
//! reads its response (or, watching reads too, sends nothing) cannot hold a connection, and
//! the response's memory, for longer than that.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `inner`, failing with [`io::ErrorKind::TimedOut`] when an operation it watches has been
/// pending for `limit` with none completing in between; hyper then drops the connection and
/// the response bytes it was holding.
///
/// hyper has a header read timeout but no write timeout: without this, a client that stops
/// reading (a full receive window) keeps its response in memory for as long as it keeps the
/// connection open. Needs a tokio runtime with the time driver.
pub struct StallLimit<S> {
    inner: S,
    limit: Duration,
    /// Whether reads are watched as well as writes, flushes and the shutdown.
    reads: bool,
    /// Runs from the first pending operation after the last completed one; `None` while
    /// operations complete.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> StallLimit<S> {
    /// Watches reads and writes: a connection on which no data moves either way for `limit`
    /// fails, an idle keep-alive connection included.
    pub fn new(inner: S, limit: Duration) -> Self {
        Self::watching(inner, limit, true)
    }

    /// Watches writes only (with their flushes and the shutdown): a response that makes no
    /// progress for `limit` fails the connection, while how long a request may take to arrive
    /// stays up to hyper's header read timeout and the service's own request timeout.
    pub fn sends_only(inner: S, limit: Duration) -> Self {
        Self::watching(inner, limit, false)
    }

    fn watching(inner: S, limit: Duration, reads: bool) -> Self {
        Self {
            inner,
            limit,
            reads,
            stalled: None,
        }
    }

    /// Passes a completed operation through and restarts the clock; turns a pending one into
    /// an error once the clock has run out.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) if self.reads => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no data moved for {limit:?}"),
            ))),
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for StallLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StallLimit")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .field("reads", &self.reads)
            .field("stalled", &self.stalled.is_some())
            .finish()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallLimit<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.reads {
            this.watch(cx, poll)
        } else {
            poll
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallLimit<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, poll)
    }

    /// As the inner stream's: hyper queues a response's `Bytes` without copying them only on a
    /// vectored stream.
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_limit() {
        let (writer, _reader) = tokio::io::duplex(16);
        let mut writer = StallLimit::sends_only(writer, Duration::from_secs(5));
        writer.write_all(&[0; 16]).await.unwrap();
        // The pipe is full and its reader reads nothing: the next write stalls until the limit.
        let error = writer.write_all(&[0; 1]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_rearms_the_limit() {
        let (writer, mut reader) = tokio::io::duplex(16);
        let mut writer = StallLimit::sends_only(writer, Duration::from_secs(5));
        let drain = tokio::spawn(async move {
            let mut sink = [0; 16];
            for _ in 0..8 {
                // Slower than the limit in total, faster than it between two reads.
                tokio::time::sleep(Duration::from_secs(3)).await;
                reader.read_exact(&mut sink).await.unwrap();
            }
        });
        writer.write_all(&[0; 16 * 8]).await.unwrap();
        drain.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn reads_are_watched_unless_only_sends_are() {
        let (both, _peer) = tokio::io::duplex(16);
        let mut both = StallLimit::new(both, Duration::from_secs(5));
        let error = both.read(&mut [0; 1]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);

        let (sends, _peer) = tokio::io::duplex(16);
        let mut sends = StallLimit::sends_only(sends, Duration::from_secs(5));
        let read = tokio::time::timeout(Duration::from_secs(60), sends.read(&mut [0; 1])).await;
        assert!(read.is_err(), "the read still waits after 60 s: {read:?}");
    }
}
