//! A connection's send timeout: a write that makes no progress for the limit fails with
//! `TimedOut`, so hyper drops the connection and the response bytes it was holding.
//!
//! hyper has a header read timeout but no write timeout: a client that stops reading (a full
//! receive window) would keep its response, up to a whole WAV file, in memory for as long as it
//! keeps the connection open.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `io` whose writes and flushes fail once they have been stalled for `limit`.
#[derive(Debug)]
pub(super) struct SendTimeout<T> {
    io: T,
    limit: Duration,
    /// Armed while a write or flush is pending; cleared by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> SendTimeout<T> {
    pub(super) fn new(io: T, limit: Duration) -> Self {
        Self {
            io,
            limit,
            stalled: None,
        }
    }

    /// Ends a stalled write: passes `progress` on (disarming the timer) unless it is pending
    /// and the limit has run out.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        progress: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if progress.is_ready() {
            self.stalled = None;
            return progress;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(stalled.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {limit:?}"),
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.io).poll_write(cx, buf);
        this.watch(cx, progress)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.watch(cx, progress)
    }

    /// Forwarded: hyper queues a response's bytes without copying them only over vectored
    /// writes.
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.io).poll_flush(cx);
        this.watch(cx, progress)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let progress = Pin::new(&mut this.io).poll_shutdown(cx);
        this.watch(cx, progress)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_limit() {
        let (writer, _reader) = tokio::io::duplex(16);
        let mut writer = SendTimeout::new(writer, Duration::from_secs(5));
        writer.write_all(&[0; 16]).await.unwrap();
        // The pipe is full and its reader reads nothing: the next write stalls until the limit.
        let error = writer.write_all(&[0; 1]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_rearms_the_limit() {
        let (writer, mut reader) = tokio::io::duplex(16);
        let mut writer = SendTimeout::new(writer, Duration::from_secs(5));
        let drain = tokio::spawn(async move {
            let mut sink = [0; 16];
            for _ in 0..8 {
                // Slower than the limit in total, faster than it between two reads.
                tokio::time::sleep(Duration::from_secs(3)).await;
                tokio::io::AsyncReadExt::read_exact(&mut reader, &mut sink)
                    .await
                    .unwrap();
            }
        });
        writer.write_all(&[0; 16 * 8]).await.unwrap();
        drain.await.unwrap();
    }
}
