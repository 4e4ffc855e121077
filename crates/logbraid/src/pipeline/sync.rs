//! What the rings share between threads: atomics and the byte buffer.
//!
//! A normal build uses `std`'s atomics and one heap allocation reached
//! through a single raw pointer. Under `--cfg loom` (see `scripts/loom`)
//! the same ring code runs on loom's atomics, and the buffer is a row of
//! loom cells, one per 8-byte word, so the model checker sees every access
//! to the bytes and reports any two threads touching the same word without
//! an order between them. Entries are 8-byte aligned, so a word never
//! belongs to two entries: a conflict on a word is a conflict on an entry.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
pub(crate) use std::sync::atomic::Ordering;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

/// One turn of a loop that waits for another thread: a few spins, then
/// the CPU is given up. Under loom every turn lets the other threads run.
pub(crate) fn pause(turns: &mut u32) {
    #[cfg(loom)]
    {
        *turns += 1;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        *turns = turns.saturating_add(1);
        if *turns < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// A ring's bytes. Every pointer is derived from the base of the whole
/// allocation, obtained once, so a copy of any length stays inside the
/// provenance it was derived from.
#[cfg(not(loom))]
pub(crate) struct Bytes {
    base: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: `Bytes` owns its allocation like a `Box<[u8]>`; which thread may
// touch which bytes is the ring's protocol, stated at each `unsafe` call.
#[cfg(not(loom))]
unsafe impl Send for Bytes {}
#[cfg(not(loom))]
unsafe impl Sync for Bytes {}

#[cfg(not(loom))]
impl Bytes {
    /// `len` zero bytes, zeroed by the allocator (calloc: fresh pages,
    /// touched only as the ring fills), not byte by byte.
    pub(crate) fn zeroed(len: usize) -> Bytes {
        let all: Box<[u8]> = vec![0u8; len].into_boxed_slice();
        let base = std::ptr::NonNull::from(Box::leak(all)).cast::<u8>();
        Bytes { base, len }
    }

    /// Maps every page in now, content unchanged, so no write to the ring
    /// takes a page fault later (see [`crate::preallocate`]). Nothing
    /// where the kernel cannot do it without writing.
    pub(crate) fn populate(&self) {
        crate::sys::memory::populate_write(self.base.as_ptr(), self.len);
    }

    /// As [`Bytes::populate`], and where the kernel cannot, by writing a
    /// zero into each page: `&mut` says nobody else reads these bytes.
    pub(crate) fn prefault(&mut self) {
        if crate::sys::memory::populate_write(self.base.as_ptr(), self.len) {
            return;
        }
        for at in (0..self.len).step_by(4096) {
            // SAFETY: in bounds, and `&mut self` is the only access; the
            // byte was zero already (a volatile write, so it is not elided).
            unsafe { self.base.as_ptr().add(at).write_volatile(0) };
        }
    }

    /// Copies `src` to `[at, at + src.len())`.
    ///
    /// # Safety
    /// The range is inside the buffer, and no other thread reads or writes
    /// it until this thread publishes it (a release the reader acquires).
    #[inline]
    pub(crate) unsafe fn write(&self, at: usize, src: &[u8]) {
        debug_assert!(at + src.len() <= self.len);
        // SAFETY: in bounds and not shared meanwhile (the caller's promise);
        // `src` is a different allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.as_ptr().add(at), src.len())
        }
    }

    /// Copies `[at, at + dst.len())` into `dst`.
    ///
    /// # Safety
    /// The range is inside the buffer, and no thread writes it meanwhile
    /// (its last write happened before this read).
    #[inline]
    pub(crate) unsafe fn read(&self, at: usize, dst: &mut [u8]) {
        debug_assert!(at + dst.len() <= self.len);
        // SAFETY: as for `write`, with the roles of the threads swapped.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.as_ptr().add(at), dst.as_mut_ptr(), dst.len())
        }
    }

    /// Appends `[at, at + len)` to `out`.
    ///
    /// # Safety
    /// As for [`Bytes::read`].
    #[inline]
    pub(crate) unsafe fn append(&self, at: usize, len: usize, out: &mut Vec<u8>) {
        debug_assert!(at + len <= self.len);
        out.reserve(len);
        let from = out.len();
        // SAFETY: as for `read`; `out` has room for `len` more bytes, all
        // initialised by the copy before the length covers them.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.base.as_ptr().add(at),
                out.as_mut_ptr().add(from),
                len,
            );
            out.set_len(from + len);
        }
    }
}

#[cfg(not(loom))]
impl Drop for Bytes {
    fn drop(&mut self) {
        let all = std::ptr::slice_from_raw_parts_mut(self.base.as_ptr(), self.len);
        // SAFETY: `base` and `len` are the leaked box of `zeroed`, freed once.
        drop(unsafe { Box::from_raw(all) });
    }
}

#[cfg(loom)]
pub(crate) struct Bytes {
    words: Box<[loom::cell::UnsafeCell<[u8; 8]>]>,
}

// SAFETY: as for the `std` build; here loom checks every access.
#[cfg(loom)]
unsafe impl Send for Bytes {}
#[cfg(loom)]
unsafe impl Sync for Bytes {}

#[cfg(loom)]
impl Bytes {
    pub(crate) fn populate(&self) {}

    pub(crate) fn prefault(&mut self) {}

    pub(crate) fn zeroed(len: usize) -> Bytes {
        Bytes {
            words: (0..len.div_ceil(8))
                .map(|_| loom::cell::UnsafeCell::new([0u8; 8]))
                .collect(),
        }
    }

    /// The words `[at, at + len)` spans, each with the part of it in range
    /// (from, to) and where that part starts in the range.
    fn spans(at: usize, len: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
        let end = at + len;
        (at / 8..end.div_ceil(8)).map(move |w| {
            let from = (w * 8).max(at);
            let to = ((w + 1) * 8).min(end);
            (w, from - w * 8, to - w * 8, from - at)
        })
    }

    /// # Safety
    /// As for the `std` build; loom checks the promise.
    pub(crate) unsafe fn write(&self, at: usize, src: &[u8]) {
        for (w, from, to, i) in Self::spans(at, src.len()) {
            self.words[w].with_mut(|word| {
                // SAFETY: loom tracks this access to the whole word.
                unsafe { (&mut *word)[from..to].copy_from_slice(&src[i..i + to - from]) }
            });
        }
    }

    /// # Safety
    /// As for the `std` build; loom checks the promise.
    pub(crate) unsafe fn read(&self, at: usize, dst: &mut [u8]) {
        for (w, from, to, i) in Self::spans(at, dst.len()) {
            self.words[w].with(|word| {
                // SAFETY: loom tracks this access to the whole word.
                dst[i..i + to - from].copy_from_slice(unsafe { &(&*word)[from..to] })
            });
        }
    }

    /// # Safety
    /// As for the `std` build; loom checks the promise.
    pub(crate) unsafe fn append(&self, at: usize, len: usize, out: &mut Vec<u8>) {
        let from = out.len();
        out.resize(from + len, 0);
        // SAFETY: the caller's promise, passed on.
        unsafe { self.read(at, &mut out[from..]) }
    }
}
