//! The loan of a buffer: guards that deref to `Vec<u8>` and give the buffer back on drop (one
//! borrowing the pool, one owning a handle to it), and the owner that does the same for a
//! zero-copy `Bytes`.

use std::fmt;
use std::mem::{self, ManuallyDrop};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::cache;
use crate::depot::Shared;

/// A buffer on loan from a [`Pool`](crate::Pool), from [`Pool::get`](crate::Pool::get): derefs
/// to `Vec<u8>` and goes back, cleared, on drop.
///
/// `std::io::Write`, `extend_from_slice` and `tokio::io::AsyncWriteExt` work through the
/// deref (on `&mut Vec<u8>`).
///
/// It borrows the `Pool` it came from, so it cannot outlive that handle: to move a buffer into
/// `std::thread::spawn` or a spawned task, take an [`OwnedPooledBuf`] with
/// [`Pool::get_owned`](crate::Pool::get_owned). This does not compile (E0597, `pool` does
/// not live long enough):
///
/// ```compile_fail,E0597
/// let pool = heapscape_pool::Pool::builder("pcm").build().unwrap();
/// let mut buf = pool.get();
/// std::thread::spawn(move || buf.extend_from_slice(b"RIFF"));
/// ```
pub struct PooledBuf<'a> {
    /// Never dropped as a field: `Drop` moves it back to the pool and leaves an empty `Vec`
    /// (nothing to free), so dropping a guard runs no second, redundant `Vec` drop.
    buf: ManuallyDrop<Vec<u8>>,
    /// The capacity the buffer was lent with: a larger one at return counts as a regrow.
    lent: usize,
    /// The pool's shared state, borrowed from the `Pool` handle the buffer came from: no
    /// reference count to touch on the fast path.
    shared: &'a Arc<Shared>,
}

/// A buffer on loan from a [`Pool`](crate::Pool) that owns a handle to the pool, from
/// [`Pool::get_owned`](crate::Pool::get_owned): `'static` and `Send`, so it can move into
/// `std::thread::spawn` or a spawned task and outlive the `Pool` it came from. Otherwise the
/// same as [`PooledBuf`]: derefs to `Vec<u8>` and goes back, cleared, on drop, on whatever
/// thread that happens.
///
/// ```
/// use std::io::Write;
/// use heapscape_pool::Pool;
///
/// let pool = Pool::builder("pcm").build()?;
/// let mut buf = pool.get_owned();
/// let writer = std::thread::spawn(move || {
///     buf.write_all(b"RIFF").unwrap();
///     buf.len()
/// });
/// assert_eq!(writer.join().unwrap(), 4);
/// // The buffer went back when the spawned thread dropped it.
/// assert_eq!(pool.stats().returns, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct OwnedPooledBuf {
    /// As in [`PooledBuf`]: moved back to the pool by `Drop`, never dropped as a field.
    buf: ManuallyDrop<Vec<u8>>,
    /// As in [`PooledBuf`]: the capacity the buffer was lent with.
    lent: usize,
    /// The pool's shared state, one reference count held for the loan; `None` only once
    /// `into_parts` has handed the buffer and the handle on.
    shared: Option<Arc<Shared>>,
}

impl<'a> PooledBuf<'a> {
    #[inline]
    pub(crate) fn new(buf: Vec<u8>, shared: &'a Arc<Shared>) -> Self {
        Self {
            lent: buf.capacity(),
            buf: ManuallyDrop::new(buf),
            shared,
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        self.shared
    }

    fn into_parts(self) -> (Vec<u8>, usize, Arc<Shared>) {
        let mut this = ManuallyDrop::new(self);
        (
            mem::take(&mut *this.buf),
            this.lent,
            Arc::clone(this.shared),
        )
    }
}

impl OwnedPooledBuf {
    pub(crate) fn new(buf: Vec<u8>, shared: Arc<Shared>) -> Self {
        Self {
            lent: buf.capacity(),
            buf: ManuallyDrop::new(buf),
            shared: Some(shared),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        self.shared
            .as_ref()
            .expect("only into_parts takes the handle, and it consumes the guard")
    }

    fn into_parts(mut self) -> (Vec<u8>, usize, Arc<Shared>) {
        // Taking the handle leaves `Drop` nothing to give the buffer back to, so the guard
        // can drop normally and release nothing twice.
        let shared = self
            .shared
            .take()
            .expect("only into_parts takes the handle, and it consumes the guard");
        (mem::take(&mut *self.buf), self.lent, shared)
    }
}

/// What both guards do the same way, written once over their buffer and shared state.
macro_rules! loan {
    ($guard:ty, $name:literal) => {
        impl $guard {
            /// Takes the buffer out of the pool for good (counted in `PoolStats::detaches`).
            pub fn detach(self) -> Vec<u8> {
                cache::count(self.shared(), |shard| &shard.detaches);
                self.into_parts().0
            }

            /// Turns the buffer into [`bytes::Bytes`] without copying; the buffer goes back to
            /// the pool when the last clone of the `Bytes` is dropped (e.g. after an HTTP
            /// server has sent it), on whatever thread that happens.
            #[cfg(feature = "bytes")]
            pub fn into_bytes(self) -> bytes::Bytes {
                let (buf, lent, shared) = self.into_parts();
                bytes::Bytes::from_owner(Returning { buf, lent, shared })
            }

            /// Reserves room for at least `additional` more bytes, as [`Vec::reserve`] does,
            /// except past the max buffer size: there it first trades the buffer for the
            /// pool's spare (a buffer over the max that an earlier `reserve` grew, kept whole
            /// on its return), copying the contents over, when the spare is larger. The
            /// buffer it leaves goes back to the pool's idle buffers.
            ///
            /// Why: a pool with a max below its largest requests shrinks each of their buffers
            /// to the max on return, and the next large request regrows one by doubling from
            /// the max, an allocation and a copy each time. The spare lets one large request
            /// at a time grow into memory already held instead. Growth through the deref
            /// (`extend_from_slice`, `Write`) never takes the spare, and a pool keeps a spare
            /// only once a `reserve` has grown past its max, so a user who never calls this
            /// sees the plain return policy.
            ///
            /// ```
            /// let pool = heapscape_pool::Pool::builder("pcm")
            ///     .initial_capacity(1024)
            ///     .max_buffer_size(4096)
            ///     .build()?;
            /// let mut large = pool.get();
            /// large.reserve(6000); // past the max: no spare yet, so it grows as a Vec does
            /// drop(large); // over the max: kept whole as the spare
            /// let mut next = pool.get();
            /// next.extend_from_slice(&[1; 4000]);
            /// next.reserve(1000); // takes the spare instead of reallocating
            /// assert_eq!(&next[..], &[1; 4000][..]);
            /// assert!(next.capacity() >= 5000);
            /// assert_eq!(pool.stats().idle_buffers, 1); // the buffer it had before
            /// # Ok::<(), heapscape_pool::PoolError>(())
            /// ```
            pub fn reserve(&mut self, additional: usize) {
                let needed = self.buf.len().saturating_add(additional);
                if needed > self.buf.capacity() && needed > self.shared().max_buffer_size() {
                    // A handle of its own, so the buffer can be borrowed beside it; off the
                    // common path, which stays within the max.
                    let shared = Arc::clone(self.shared());
                    if shared.trade_for_spare(&mut self.buf) {
                        self.lent = self.buf.capacity();
                    }
                }
                self.buf.reserve(additional);
            }
        }

        impl Deref for $guard {
            type Target = Vec<u8>;

            #[inline]
            fn deref(&self) -> &Vec<u8> {
                &self.buf
            }
        }

        impl DerefMut for $guard {
            #[inline]
            fn deref_mut(&mut self) -> &mut Vec<u8> {
                &mut self.buf
            }
        }

        impl AsRef<[u8]> for $guard {
            fn as_ref(&self) -> &[u8] {
                &self.buf
            }
        }

        impl AsMut<[u8]> for $guard {
            fn as_mut(&mut self) -> &mut [u8] {
                &mut self.buf
            }
        }

        impl fmt::Debug for $guard {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct($name)
                    .field("pool", &self.shared().name)
                    .field("len", &self.buf.len())
                    .field("capacity", &self.buf.capacity())
                    .finish()
            }
        }
    };
}

loan!(PooledBuf<'_>, "PooledBuf");
loan!(OwnedPooledBuf, "OwnedPooledBuf");

impl Drop for PooledBuf<'_> {
    #[inline]
    fn drop(&mut self) {
        cache::give_back(self.shared, &mut self.buf, self.lent);
    }
}

impl Drop for OwnedPooledBuf {
    fn drop(&mut self) {
        // `None` once `into_parts` handed the buffer on: nothing left to give back.
        if let Some(shared) = &self.shared {
            cache::give_back(shared, &mut self.buf, self.lent);
        }
    }
}

/// The owner behind a `Bytes` made by [`PooledBuf::into_bytes`] or
/// [`OwnedPooledBuf::into_bytes`].
#[cfg(feature = "bytes")]
struct Returning {
    buf: Vec<u8>,
    /// The capacity the buffer was lent with.
    lent: usize,
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
        cache::give_back(&self.shared, &mut self.buf, self.lent);
    }
}
