//! Whether bytes of a request arrived that were not answered yet, for when the connection
//! ends: hyper's header read timeout ends idle keep-alive connections and half-sent requests
//! alike, and only the second is a request that timed out (counted as a 408).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `io`, setting a flag when bytes are read and clearing it when an answer's are written.
#[derive(Debug)]
pub(super) struct Unanswered<T> {
    io: T,
    /// Relaxed: written and read by the connection's own task.
    unanswered: Arc<AtomicBool>,
}

impl<T> Unanswered<T> {
    /// Wraps `io`; the flag is read through the returned handle once the connection ended.
    pub(super) fn new(io: T) -> (Self, Arc<AtomicBool>) {
        let unanswered = Arc::new(AtomicBool::new(false));
        let watch = Self {
            io,
            unanswered: unanswered.clone(),
        };
        (watch, unanswered)
    }

    fn wrote(&self, written: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.unanswered.store(false, Ordering::Relaxed);
        }
        written
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Unanswered<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.unanswered.store(true, Ordering::Relaxed);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Unanswered<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        this.wrote(written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(written)
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

    use super::Unanswered;

    #[tokio::test]
    async fn reading_sets_the_flag_and_answering_clears_it() {
        let (server, mut client) = tokio::io::duplex(64);
        let (mut server, unanswered) = Unanswered::new(server);
        assert!(!unanswered.load(Ordering::Relaxed));
        client.write_all(b"GET").await.unwrap();
        let mut head = [0; 3];
        server.read_exact(&mut head).await.unwrap();
        assert!(unanswered.load(Ordering::Relaxed));
        server.write_all(b"HTTP/1.1 200").await.unwrap();
        assert!(!unanswered.load(Ordering::Relaxed));
    }
}
