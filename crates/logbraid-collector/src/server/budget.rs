//! What connections hold while they read and decode, counted in one pool of
//! bytes ([`ServerConfig::memory`](super::ServerConfig::memory)).
//!
//! Each connection keeps a [`Reservation`] that covers, before it reads or
//! decodes, the most it may hold afterwards: its frame buffer after one
//! more read (a vector that grows doubles, so twice what it would hold),
//! the decoder's working memory for the frame at hand, what its decoders
//! keep between frames (source caches, recycled vectors) and the records
//! decoded and not yet handed to the output stage. When the pool is empty
//! the connection waits, reading nothing, which is the backpressure: the
//! bytes stay in the kernel's socket buffer, not in the collector. After
//! each read's frames are handed over, buffers shrink and the reservation
//! goes back down to what is still held.
//!
//! A request larger than the whole pool takes all of it (and so waits for
//! every other connection to give theirs back), so it cannot wait forever.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Working memory one frame of `len` bytes may use while it is decoded:
/// [`WORK_BASE`] plus [`WORK_PER_BYTE`] for each byte, at most `cap`.
pub(super) fn work_for(len: usize, cap: usize) -> usize {
    WORK_BASE
        .saturating_add(len.saturating_mul(WORK_PER_BYTE))
        .min(cap)
}

/// Working memory any frame may use, however small: room for the dict of
/// a LogRecord with many extras.
pub(super) const WORK_BASE: usize = 256 << 10;

/// Working memory a frame may use per byte of its length: a pickle whose
/// every opcode builds a value (a list of small integers, two bytes an
/// item) needs about this much; one that needs more is refused with a
/// working-memory limit.
pub(super) const WORK_PER_BYTE: usize = 16;

/// What each connection may hold outside the pool: so that a connection
/// waiting for room holds none of it (it could not be waiting on others
/// that wait on it), and small frames never wait.
pub(super) const FREE: usize = 64 << 10;

/// What a buffer of `capacity` bytes, `len` of them in use, may come to
/// after a read of `more` bytes, when the frame at its front is known to
/// end at `frame_end`: buffers grow exactly (see
/// [`append_exact`](crate::intake::python::append_exact)), to the frame's
/// end at once.
pub(super) fn grown(capacity: usize, len: usize, frame_end: usize, more: usize) -> usize {
    capacity.max(len.max(frame_end).saturating_add(more))
}

/// Bytes of the pool held by one connection, given back when it is
/// dropped.
#[derive(Debug)]
pub(super) struct Reservation {
    pool: Arc<Semaphore>,
    /// The pool's size: the most one reservation takes.
    total: usize,
    held: usize,
}

impl Reservation {
    pub(super) fn new(pool: Arc<Semaphore>, total: usize) -> Reservation {
        Reservation {
            pool,
            total,
            held: 0,
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.held
    }

    /// What covering `bytes` means: the bytes beyond [`FREE`], at most the
    /// whole pool.
    fn want(&self, bytes: usize) -> usize {
        bytes.saturating_sub(FREE).min(self.total)
    }

    /// Covers `bytes` without waiting, if it can: already held, or taken
    /// from the pool at once. A connection calls this before each frame,
    /// so this path must not touch a timer or a waker.
    pub(super) fn try_cover(&mut self, bytes: usize) -> bool {
        let want = self.want(bytes);
        if self.held >= want {
            return true;
        }
        let Ok(step) = u32::try_from(want - self.held) else {
            return false;
        };
        match self.pool.try_acquire_many(step) {
            Ok(p) => {
                p.forget();
                self.held += step as usize;
                true
            }
            Err(_) => false,
        }
    }

    /// Waits until the reservation covers `bytes` beyond the connection's
    /// own [`FREE`] (or the whole pool, if that is less). `false` when the
    /// pool is closed.
    pub(super) async fn cover(&mut self, bytes: usize) -> bool {
        let want = self.want(bytes);
        while self.held < want {
            // Semaphores count in u32 at a time.
            let step = (want - self.held).min(u32::MAX as usize) as u32;
            match self.pool.acquire_many(step).await {
                Ok(p) => p.forget(),
                Err(_) => return false,
            }
            self.held += step as usize;
        }
        true
    }

    /// Gives back what is above `bytes` (beyond [`FREE`]).
    pub(super) fn shrink_to(&mut self, bytes: usize) {
        let bytes = bytes.saturating_sub(FREE);
        if self.held > bytes {
            self.pool.add_permits(self.held - bytes);
            self.held = bytes;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shrink_to(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_each_other_and_give_back() {
        let pool = Arc::new(Semaphore::new(100));
        let mut a = Reservation::new(Arc::clone(&pool), 100);
        assert!(a.cover(FREE).await);
        assert_eq!(a.held(), 0);
        assert!(a.cover(FREE + 60).await);
        assert!(a.cover(FREE + 40).await);
        assert_eq!((a.held(), pool.available_permits()), (60, 40));
        // Without waiting: what is held, then what the pool has.
        assert!(a.try_cover(FREE + 60));
        assert!(a.try_cover(FREE + 90));
        assert_eq!((a.held(), pool.available_permits()), (90, 10));
        // More than the pool has left: nothing taken.
        let mut c = Reservation::new(Arc::clone(&pool), 100);
        assert!(!c.try_cover(FREE + 11));
        assert_eq!((c.held(), pool.available_permits()), (0, 10));
        drop(c);
        a.shrink_to(FREE + 60);
        let mut b = Reservation::new(Arc::clone(&pool), 100);
        // More than the pool: all of it, once `a` gives its share back.
        let waiting = tokio::spawn(async move {
            assert!(b.cover(FREE + 500).await);
            b.held()
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        a.shrink_to(FREE + 10);
        assert_eq!(a.held(), 10);
        tokio::task::yield_now().await;
        // What `a` gave back went to the waiter, which needs more.
        assert!(!waiting.is_finished());
        drop(a);
        assert_eq!(waiting.await.unwrap(), 100);
        // `b` was dropped inside the task: everything is back.
        assert_eq!(pool.available_permits(), 100);
    }

    #[test]
    fn a_buffer_grows_to_the_frame_end_and_one_read() {
        assert_eq!(grown(100, 50, 0, 50), 100);
        assert_eq!(grown(100, 90, 0, 20), 110);
        assert_eq!(grown(100, 90, 1000, 20), 1020);
        assert_eq!(work_for(0, usize::MAX), WORK_BASE);
        assert_eq!(work_for(10, usize::MAX), WORK_BASE + 160);
        assert_eq!(work_for(1 << 30, 1 << 20), 1 << 20);
    }
}
