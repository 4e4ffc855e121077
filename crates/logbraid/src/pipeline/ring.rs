//! A bounded single-producer ring of variable-length byte entries.
//!
//! Each logging thread owns one ring per pipeline; the writer thread is the
//! only reader. Positions are monotonic `usize` counters (`head` for the
//! reader, `tail` for the writer of entries); the physical offset is the
//! position modulo the capacity, a power of two.
//!
//! Entries are 8-byte aligned and start with a `u32` length (the whole entry,
//! header included, padded). An entry never wraps: when it does not fit
//! before the end of the buffer, the producer writes a wrap marker and starts
//! again at offset 0.
//!
//! The reader copies the entries it claims out of the ring before it
//! publishes the new `head`, and publishes with a compare-and-swap. That lets
//! the producer, under the `DropOldest` policy, discard the oldest entries
//! itself by moving `head` forward with the same compare-and-swap: whichever
//! side wins owns the bytes, and a reader that loses discards its copy of the
//! entries the producer dropped (they are counted as dropped).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::Thread;

use crossbeam_utils::CachePadded;

/// Length word of a wrap marker: the rest of the buffer is unused.
const WRAP: u32 = u32::MAX;
pub(crate) const ALIGN: usize = 8;

pub(crate) const fn align(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

pub(crate) struct Ring {
    buf: Box<[UnsafeCell<u8>]>,
    mask: usize,
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    /// Written by the producer, read by the writer once per pass: on a line
    /// of their own so the writer's per-record reads of the fields below do
    /// not bounce the producer's cache line.
    pub(crate) counters: CachePadded<Counters>,
    /// A dropping producer may rewrite entries the reader is copying, so
    /// the reader copies with volatile reads (`DropOldest` only).
    racy: bool,
    /// Set by the producer's thread-local destructor: once empty, the ring
    /// can be forgotten.
    pub(crate) closed: AtomicBool,
    /// Set by a producer waiting for room under `Block`.
    pub(crate) waiting: AtomicBool,
    pub(crate) producer_thread: Mutex<Option<Thread>>,
    pub(crate) thread_id: u64,
    pub(crate) thread_name: Option<String>,
}

// SAFETY: the bytes in `buf` are written only by the single producer, in
// the region between `tail` and `head + capacity` that the reader does not
// read; they are published with a release store of `tail` and claimed with
// a compare-and-swap of `head`. See the module documentation.
unsafe impl Sync for Ring {}
unsafe impl Send for Ring {}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity())
            .field("head", &self.head.load(Ordering::Relaxed))
            .field("tail", &self.tail.load(Ordering::Relaxed))
            .field("thread_id", &self.thread_id)
            .finish()
    }
}

impl Ring {
    pub(crate) fn new(
        capacity: usize,
        thread_id: u64,
        thread_name: Option<String>,
        racy: bool,
    ) -> Ring {
        let capacity = capacity.max(256).next_power_of_two();
        // Zeroed by the allocator (calloc: fresh pages, touched only as
        // the ring fills), not byte by byte.
        let bytes = vec![0u8; capacity].into_boxed_slice();
        // SAFETY: `UnsafeCell<u8>` is `repr(transparent)` over `u8`: same
        // size, alignment and valid values, so the allocation is reused.
        let buf = unsafe { Box::from_raw(Box::into_raw(bytes) as *mut [UnsafeCell<u8>]) };
        Ring {
            buf,
            mask: capacity - 1,
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            counters: CachePadded::new(Counters::default()),
            racy,
            closed: AtomicBool::new(false),
            waiting: AtomicBool::new(false),
            producer_thread: Mutex::new(None),
            thread_id,
            thread_name,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Largest entry that goes through the ring; larger ones travel boxed.
    pub(crate) fn max_entry(&self) -> usize {
        self.capacity() / 4
    }

    fn ptr(&self, pos: usize) -> *mut u8 {
        self.buf[pos & self.mask].get()
    }

    fn read_u32(&self, pos: usize) -> u32 {
        let mut b = [0u8; 4];
        // SAFETY: pos is 8-aligned so the 4 bytes do not cross the end of the
        // buffer; volatile because a dropping producer may be rewriting them
        // (the copy is then discarded, see `claim`).
        unsafe {
            for (i, slot) in b.iter_mut().enumerate() {
                *slot = std::ptr::read_volatile(self.ptr(pos + i));
            }
        }
        u32::from_le_bytes(b)
    }

    /// Reserves `len` contiguous bytes (`len` 8-aligned, `len <= max_entry`)
    /// for the producer, returning the position to write at, or `None`
    /// when the ring is full. Producer side only.
    pub(crate) fn try_reserve(&self, p: &mut ProducerPos, len: usize) -> Option<usize> {
        let cap = self.capacity();
        let tail = p.tail;
        let offset = tail & self.mask;
        let to_end = cap - offset;
        let need = if len <= to_end { len } else { to_end + len };
        if tail.wrapping_sub(p.cached_head) + need > cap {
            p.cached_head = self.head.load(Ordering::Acquire);
            if tail.wrapping_sub(p.cached_head) + need > cap {
                return None;
            }
        }
        if need != len {
            // SAFETY: the region [tail, tail + to_end) is free (checked above)
            // and 8-aligned with at least 8 bytes, so the marker fits.
            unsafe {
                std::ptr::copy_nonoverlapping(WRAP.to_le_bytes().as_ptr(), self.ptr(tail), 4)
            };
            p.tail = tail + to_end;
        }
        Some(p.tail)
    }

    /// Copies `bytes` into the ring at `pos + offset`. The caller reserved
    /// the region with `try_reserve`. Producer side only.
    pub(crate) fn write_at(&self, pos: usize, offset: usize, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let start = (pos & self.mask) + offset;
        debug_assert!(start + bytes.len() <= self.capacity());
        // SAFETY: the reserved entry is contiguous and lies in the free region
        // owned by the producer until `publish`.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.buf[start].get(), bytes.len())
        };
    }

    /// Makes the entry at `pos` of `len` bytes visible to the reader.
    pub(crate) fn publish(&self, p: &mut ProducerPos, pos: usize, len: usize) {
        p.tail = pos + len;
        self.tail.store(p.tail, Ordering::Release);
    }

    /// `DropOldest`: discards the oldest entry, handing its first bytes
    /// (up to 64, the whole header) to `release` once it owns them. Returns
    /// false when the ring is empty (the reader took everything meanwhile).
    pub(crate) fn drop_oldest(&self, p: &mut ProducerPos, release: &mut dyn FnMut(&[u8])) -> bool {
        loop {
            let h = self.head.load(Ordering::Acquire);
            if h == p.tail {
                p.cached_head = h;
                return false;
            }
            let len = self.read_u32(h);
            let (next, is_record) = if len == WRAP {
                (h + (self.capacity() - (h & self.mask)), false)
            } else {
                (h + len as usize, true)
            };
            if self
                .head
                .compare_exchange(h, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                p.cached_head = next;
                if is_record {
                    let n = (len as usize).min(64);
                    let mut head = [0u8; 64];
                    for (i, slot) in head[..n].iter_mut().enumerate() {
                        // SAFETY: the compare-and-swap gave this producer the
                        // entry; only it writes these bytes.
                        *slot = unsafe { *self.ptr(h + i) };
                    }
                    release(&head[..n]);
                    self.counters.bump_dropped();
                    return true;
                }
            }
        }
    }

    /// Reader: copies every complete entry available, up to about `limit`
    /// bytes, into `out` (entries back to back, wrap markers removed), then
    /// releases the space. Returns the number of bytes queued when claimed.
    pub(crate) fn claim(&self, out: &mut Vec<u8>, limit: usize) -> usize {
        let start_len = out.len();
        loop {
            out.truncate(start_len);
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Acquire);
            let queued = t.wrapping_sub(h);
            let mut pos = h;
            while pos != t && out.len() - start_len < limit {
                let len = self.read_u32(pos);
                if len == WRAP {
                    pos += self.capacity() - (pos & self.mask);
                    continue;
                }
                let len = len as usize;
                if len < ALIGN || len > self.capacity() || (pos & self.mask) + len > self.capacity()
                {
                    // Torn read of an entry a dropping producer rewrote: the
                    // compare-and-swap below fails and we retry.
                    break;
                }
                let from = out.len();
                out.resize(from + len, 0);
                // SAFETY: [pos, pos + len) lies within the buffer (checked).
                // Only with `racy` may the bytes be concurrently rewritten (by
                // a dropping producer); the CAS below then fails and the copy
                // is discarded, and volatile reads keep the compiler from
                // assuming they are stable.
                unsafe {
                    let src = self.ptr(pos);
                    let dst = out.as_mut_ptr().add(from);
                    if self.racy {
                        for i in 0..len {
                            *dst.add(i) = std::ptr::read_volatile(src.add(i));
                        }
                    } else {
                        std::ptr::copy_nonoverlapping(src, dst, len);
                    }
                }
                pos += len;
            }
            if pos == h {
                return queued;
            }
            if self
                .head
                .compare_exchange(h, pos, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                if self.waiting.load(Ordering::Acquire) {
                    if let Ok(t) = self.producer_thread.lock() {
                        if let Some(t) = t.as_ref() {
                            t.unpark();
                        }
                    }
                }
                return queued;
            }
        }
    }

    /// The reader's position.
    pub(crate) fn head_now(&self) -> usize {
        self.head.load(Ordering::Acquire)
    }

    /// Position of the producer's last published entry.
    pub(crate) fn tail_now(&self) -> usize {
        self.tail.load(Ordering::Acquire)
    }

    /// Whether the reader (or a dropping producer) has moved past `pos`.
    pub(crate) fn consumed(&self, pos: usize) -> bool {
        self.head.load(Ordering::Acquire).wrapping_sub(pos) as isize >= 0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::Acquire) == self.tail.load(Ordering::Acquire)
    }
}

/// Counters written by whoever produces into a ring: its thread, or the
/// holder of the shared ring's lock; so an increment needs no locked
/// instruction, only an atomic store others can read.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) logged: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

impl Counters {
    #[inline]
    pub(crate) fn bump_logged(&self) {
        let v = self.logged.load(Ordering::Relaxed);
        self.logged.store(v + 1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn unbump_logged(&self) {
        let v = self.logged.load(Ordering::Relaxed);
        self.logged.store(v.saturating_sub(1), Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn bump_dropped(&self) {
        let v = self.dropped.load(Ordering::Relaxed);
        self.dropped.store(v + 1, Ordering::Relaxed);
    }
}

/// Producer-side positions, kept in the producing thread's local storage so
/// the hot path touches no shared cache line but the ring's bytes and tail.
#[derive(Debug, Default)]
pub(crate) struct ProducerPos {
    pub(crate) tail: usize,
    pub(crate) cached_head: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(r: &Ring, p: &mut ProducerPos, payload: &[u8]) -> bool {
        let len = align(4 + payload.len());
        let Some(pos) = r.try_reserve(p, len) else {
            return false;
        };
        r.write_at(pos, 0, &(len as u32).to_le_bytes());
        r.write_at(pos, 4, payload);
        r.publish(p, pos, len);
        true
    }

    fn entries(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let len = u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
            out.push(bytes[i + 4..i + 4 + 1].to_vec());
            i += len;
        }
        out
    }

    #[test]
    fn wraps_and_keeps_order() {
        let r = Ring::new(256, 1, None, true);
        let mut p = ProducerPos::default();
        let mut got = Vec::new();
        let mut out = Vec::new();
        for i in 0..1000u32 {
            let payload = vec![(i % 251) as u8; 1 + (i as usize % 40)];
            while !push(&r, &mut p, &payload) {
                out.clear();
                r.claim(&mut out, usize::MAX);
                got.extend(entries(&out));
            }
        }
        out.clear();
        r.claim(&mut out, usize::MAX);
        got.extend(entries(&out));
        assert_eq!(got.len(), 1000);
        for (i, e) in got.iter().enumerate() {
            assert_eq!(e[0], (i % 251) as u8);
        }
        assert!(r.is_empty());
    }

    #[test]
    fn full_ring_refuses_and_drop_oldest_makes_room() {
        let r = Ring::new(256, 1, None, true);
        let mut p = ProducerPos::default();
        let mut n = 0;
        while push(&r, &mut p, &[n as u8; 28]) {
            n += 1;
        }
        assert_eq!(n, 256 / 32);
        assert!(r.drop_oldest(&mut p, &mut |_| {}));
        assert!(push(&r, &mut p, &[99; 28]));
        let mut out = Vec::new();
        r.claim(&mut out, usize::MAX);
        let got = entries(&out);
        assert_eq!(got.len(), n);
        assert_eq!(got[0][0], 1);
        assert_eq!(got[n - 1][0], 99);
        assert_eq!(r.counters.dropped.load(Ordering::Relaxed), 1);
    }
}
