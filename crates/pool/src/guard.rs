//! The loan of a buffer: a guard that derefs to `Vec<u8>` and gives the buffer back on drop,
//! and the owner that does the same for a zero-copy `Bytes`.

use std::fmt;
use std::mem::{self, ManuallyDrop};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::cache;
use crate::depot::Shared;

/// A buffer on loan from a [`Pool`](crate::Pool): derefs to `Vec<u8>` and goes back,
/// cleared, on drop.
///
/// `std::io::Write`, `extend_from_slice` and `tokio::io::AsyncWriteExt` work through the
/// deref (on `&mut Vec<u8>`).
pub struct PooledBuf<'a> {
    /// Never dropped as a field: `Drop` moves it back to the pool and leaves an empty `Vec`
    /// (nothing to free), so dropping a guard runs no second, redundant `Vec` drop.
    buf: ManuallyDrop<Vec<u8>>,
    /// The pool's shared state, borrowed from the `Pool` handle the buffer came from.
    shared: &'a Arc<Shared>,
}

impl<'a> PooledBuf<'a> {
    #[inline]
    pub(crate) fn new(buf: Vec<u8>, shared: &'a Arc<Shared>) -> Self {
        Self {
            buf: ManuallyDrop::new(buf),
            shared,
        }
    }

    /// Takes the buffer out of the pool for good (counted in `PoolStats::detaches`).
    pub fn detach(self) -> Vec<u8> {
        cache::count(self.shared, |shard| &shard.detaches);
        self.into_parts().0
    }

    fn into_parts(self) -> (Vec<u8>, Arc<Shared>) {
        let mut this = ManuallyDrop::new(self);
        (mem::take(&mut *this.buf), Arc::clone(this.shared))
    }

    /// Turns the buffer into [`bytes::Bytes`] without copying; the buffer goes back to the
    /// pool when the last clone of the `Bytes` is dropped (e.g. after an HTTP server has
    /// sent it), on whatever thread that happens.
    #[cfg(feature = "bytes")]
    pub fn into_bytes(self) -> bytes::Bytes {
        let (buf, shared) = self.into_parts();
        bytes::Bytes::from_owner(Returning { buf, shared })
    }
}

impl Deref for PooledBuf<'_> {
    type Target = Vec<u8>;

    #[inline]
    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl DerefMut for PooledBuf<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

impl AsRef<[u8]> for PooledBuf<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl AsMut<[u8]> for PooledBuf<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl fmt::Debug for PooledBuf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBuf")
            .field("pool", &self.shared.name)
            .field("len", &self.buf.len())
            .field("capacity", &self.buf.capacity())
            .finish()
    }
}

impl Drop for PooledBuf<'_> {
    #[inline]
    fn drop(&mut self) {
        cache::give_back(self.shared, &mut self.buf);
    }
}

/// The owner behind a `Bytes` made by [`PooledBuf::into_bytes`].
#[cfg(feature = "bytes")]
struct Returning {
    buf: Vec<u8>,
    shared: Arc<Shared>,
}

#[cfg(feature = "bytes")]
impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(feature = "bytes")]
impl Drop for Returning {
    fn drop(&mut self) {
        cache::give_back(&self.shared, &mut self.buf);
    }
}
