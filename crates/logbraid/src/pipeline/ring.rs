//! A bounded single-producer ring of variable-length byte entries.
//!
//! Each logging thread owns one ring per pipeline; the writer thread is the
//! only reader. Positions are monotonic `usize` counters (`head` for the
//! reader, `tail` for the producer); the offset in the buffer is the
//! position modulo the capacity, a power of two.
//!
//! Entries are 8-byte aligned and start with a `u32` length (the whole entry,
//! header included, padded). An entry never wraps: when it does not fit
//! before the end of the buffer, the producer writes a wrap marker and starts
//! again at offset 0.
//!
//! # Who owns which bytes
//!
//! - `[tail, head + capacity)` is the producer's: it writes entries there,
//!   then publishes them with a release store of `tail`.
//! - `[head, tail)` holds published entries. Nobody writes them. The reader
//!   copies them out, then moves `head` past what it copied with a
//!   compare-and-swap, which hands the space back to the producer; the
//!   copies now own what the entries point to (see `entry`).
//! - Under `DropOldest` a producer that finds the ring full may take the
//!   oldest entry itself: it moves `head` past it with a compare-and-swap,
//!   releases what it owns and counts it as dropped. The reader may be
//!   copying that very entry, so the producer must not write its bytes
//!   until the reader is done. The reader says where it is reading: before
//!   it copies, it swaps the `head` it starts from into `reading` and
//!   checks that `head` has not moved since (a compare-and-swap to the same
//!   value); after it has moved `head`, it swaps in `IDLE`. A producer that
//!   moved `head` reads `reading` with a read-modify-write and waits while
//!   the reader started before the new `head`. The two checks are
//!   read-modify-writes, which read the latest value, so one side sees the
//!   other: either the reader sees the producer's `head` and starts again
//!   from it, or the producer sees the reader and waits. (Every write of
//!   `reading` being a read-modify-write also keeps the producer's polling
//!   from reading an older value than the reader's last.) No `SeqCst` is
//!   needed, and loom checks it.
//! - A reader whose compare-and-swap of `head` fails knows the producer took
//!   the entries between the `head` it started from and the one it finds.
//!   It forgets its copies of those (the producer released and counted
//!   them) and keeps the rest, still intact: the producer waited.
//! - The ring releases what the entries still queued own when it is
//!   dropped.
//!
//! # Why this design
//!
//! The alternative, copying with atomic word loads and stores and checking a
//! sequence afterwards, would let a dropping producer never wait, but every
//! producer would pay for it: each record's bytes stored a word at a time
//! instead of one `memcpy`. Here the fast path (`Block` and `DropNewest`, and
//! `DropOldest` while the ring has room) is unchanged: a plain copy into
//! bytes nobody else touches and one release store. The reader pays three
//! uncontended atomic operations per pass over a non-empty ring, not per
//! record. Only a `DropOldest` producer that drops may wait, and only while
//! the reader copies one batch (at most the claim limit, microseconds); the
//! reader never waits for the producer. The oldest records are still the
//! ones dropped, and each one is counted by the producer that dropped it.
//! Dropping on the writer's side instead (the producer asks, the writer
//! drops) would leave a producer with no room until the writer gets to it:
//! the wait of `Block`, for every record of a burst, not only while a copy
//! is under way.
//!
//! Under `--cfg loom` the atomics and the bytes are loom's (see `sync`), and
//! the tests at the end of this file check the protocol (`scripts/loom`).

use std::sync::Mutex;
use std::thread::Thread;

use crossbeam_utils::CachePadded;

use super::sync::{pause, AtomicBool, AtomicU64, AtomicUsize, Bytes, Ordering};

/// Length word of a wrap marker: the rest of the buffer is unused.
const WRAP: u32 = u32::MAX;
pub(crate) const ALIGN: usize = 8;
/// `reading` when the reader is not copying: no position is odd.
const IDLE: usize = 1;
/// The first bytes of an entry handed to [`Release`]: its whole header.
pub(crate) const HEAD_BYTES: usize = 64;

pub(crate) const fn align(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

/// Releases what an entry owns (heap buffers, reference counts), given its
/// first bytes (up to [`HEAD_BYTES`]). The ring calls it exactly once for
/// each entry that is never claimed: dropped by a `DropOldest` producer, or
/// still queued when the ring itself is dropped.
pub(crate) type Release = Box<dyn Fn(&[u8]) + Send + Sync>;

pub(crate) struct Ring {
    bytes: Bytes,
    mask: usize,
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    /// The `head` the reader is copying from, or [`IDLE`]: a producer that
    /// moved `head` does not write where the reader may still be reading.
    reading: CachePadded<AtomicUsize>,
    release: Release,
    /// Written by the producer, read by the writer once per pass: on lines
    /// of their own so the writer's per-record reads of the fields below do
    /// not bounce the producer's cache line.
    pub(crate) counters: Counters,
    /// Set by the producer's thread-local destructor: once empty, the ring
    /// can be forgotten.
    pub(crate) closed: AtomicBool,
    /// Set by a producer waiting for room under `Block`.
    pub(crate) waiting: AtomicBool,
    pub(crate) producer_thread: Mutex<Option<Thread>>,
    pub(crate) thread_id: u64,
    pub(crate) thread_name: Option<String>,
}

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
        release: Release,
    ) -> Ring {
        let capacity = capacity.max(256).next_power_of_two();
        Ring {
            bytes: Bytes::zeroed(capacity),
            mask: capacity - 1,
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            reading: CachePadded::new(AtomicUsize::new(IDLE)),
            release,
            counters: Counters::default(),
            closed: AtomicBool::new(false),
            waiting: AtomicBool::new(false),
            producer_thread: Mutex::new(None),
            thread_id,
            thread_name,
        }
    }

    /// Maps the ring's memory in before its first use (see
    /// [`crate::preallocate`]).
    pub(crate) fn prefault(&mut self) {
        self.bytes.prefault();
    }

    /// Maps the ring's memory in while it may be in use.
    pub(crate) fn populate(&self) {
        self.bytes.populate();
    }

    pub(crate) fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Largest entry that goes through the ring; larger ones travel boxed.
    pub(crate) fn max_entry(&self) -> usize {
        self.capacity() / 4
    }

    /// The length word of the entry at `pos`.
    ///
    /// # Safety
    /// `pos` is 8-aligned and no thread writes its word meanwhile: it is in
    /// `[head, tail)` and either this is the producer, or the reader while
    /// it says it is reading (see the module documentation).
    unsafe fn read_u32(&self, pos: usize) -> u32 {
        let mut b = [0u8; 4];
        // SAFETY: 8-aligned, so the 4 bytes end before the buffer does;
        // not written meanwhile (the caller's promise).
        unsafe { self.bytes.read(pos & self.mask, &mut b) };
        u32::from_le_bytes(b)
    }

    /// The position after the entry or wrap marker at `pos`, and the
    /// entry's length (0 for a wrap marker).
    ///
    /// # Safety
    /// As for [`Ring::read_u32`].
    unsafe fn step(&self, pos: usize) -> (usize, usize) {
        // SAFETY: the caller's promise, passed on.
        let len = unsafe { self.read_u32(pos) };
        if len == WRAP {
            return (pos.wrapping_add(self.capacity() - (pos & self.mask)), 0);
        }
        let len = len as usize;
        // Only `slot` and `publish` make entries; a length that does not
        // fit would be a bug here, and must not become an access out of
        // bounds.
        assert!(
            len >= ALIGN && (pos & self.mask) + len <= self.capacity(),
            "ring entry length {len} at offset {}",
            pos & self.mask
        );
        (pos.wrapping_add(len), len)
    }

    /// Reserves `len` contiguous bytes (`len` 8-aligned, `len <= max_entry`)
    /// for the producer, returning the position to write at, or `None`
    /// when the ring is full. Producer side only.
    #[inline]
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
            // SAFETY: [tail, tail + to_end) is the producer's (checked above),
            // 8-aligned with at least 8 bytes, so the marker fits.
            unsafe { self.bytes.write(offset, &WRAP.to_le_bytes()) };
            p.tail = tail.wrapping_add(to_end);
        }
        Some(p.tail)
    }

    /// The `len` bytes at `pos`, for the producer to write before it
    /// publishes them.
    ///
    /// # Safety
    /// Producer side only: `try_reserve` returned `pos` for these `len`
    /// bytes, and they are not published yet (nobody else touches them).
    #[inline]
    pub(crate) unsafe fn slot(&self, pos: usize, len: usize) -> Slot<'_> {
        let start = pos & self.mask;
        assert!(len <= self.capacity() - start);
        Slot {
            bytes: &self.bytes,
            start,
            len,
        }
    }

    /// Makes the entry at `pos` of `len` bytes visible to the reader.
    #[inline]
    pub(crate) fn publish(&self, p: &mut ProducerPos, pos: usize, len: usize) {
        p.tail = pos.wrapping_add(len);
        self.tail.store(p.tail, Ordering::Release);
    }

    /// `DropOldest`, after a push found no room: takes the oldest entry
    /// away from the reader, releases what it owns and counts it as
    /// dropped, then waits until the reader no longer reads its bytes.
    /// Drops nothing if the reader made room since the push looked (or took
    /// everything). Returns whether an entry was dropped. Producer side
    /// only.
    pub(crate) fn drop_oldest(&self, p: &mut ProducerPos) -> bool {
        let mut h = self.head.load(Ordering::Acquire);
        let mut moved = false;
        let dropped = loop {
            if h != p.cached_head || h == p.tail {
                // The reader moved `head`: try the push again.
                p.cached_head = h;
                break false;
            }
            // SAFETY: [h, tail) is published and only this producer writes.
            let (next, len) = unsafe { self.step(h) };
            if let Err(now) =
                self.head
                    .compare_exchange(h, next, Ordering::AcqRel, Ordering::Acquire)
            {
                h = now;
                continue;
            }
            moved = true;
            p.cached_head = next;
            if len == 0 {
                // A wrap marker: the entry after it is the oldest.
                h = next;
                continue;
            }
            let mut head = [0u8; HEAD_BYTES];
            let head = &mut head[..len.min(HEAD_BYTES)];
            // SAFETY: as above; the reader may read these bytes too, but
            // nobody writes them.
            unsafe { self.bytes.read(h & self.mask, head) };
            // The compare-and-swap made this entry the producer's alone: the
            // reader forgets its copy when its own compare-and-swap fails.
            (self.release)(head);
            self.counters.bump_dropped();
            break true;
        };
        if moved {
            self.wait_for_reader(p.cached_head);
        }
        dropped
    }

    /// Returns once the reader reads nothing before `head`: it is idle, or
    /// it started from `head` or later.
    fn wait_for_reader(&self, head: usize) {
        // A read-modify-write reads the reader's latest announcement: the
        // pair of the reader's compare-and-swap of `head`.
        let mut turns = 0;
        loop {
            let r = self.reading.fetch_add(0, Ordering::AcqRel);
            if r == IDLE || (r.wrapping_sub(head) as isize) >= 0 {
                return;
            }
            pause(&mut turns);
        }
    }

    /// Reader: copies every complete entry available, up to about `limit`
    /// bytes, into `out` (entries back to back, wrap markers removed), then
    /// releases the space. The entries appended are the reader's: each one
    /// owns what it points to. Returns the number of bytes queued when
    /// claimed.
    pub(crate) fn claim(&self, out: &mut Vec<u8>, limit: usize) -> usize {
        let start = out.len();
        // Whether `reading` holds a position: cleared before returning.
        let mut announced = false;
        'again: loop {
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Acquire);
            if h == t || limit == 0 {
                if announced {
                    self.reading.swap(IDLE, Ordering::AcqRel);
                }
                return t.wrapping_sub(h);
            }
            let queued = t.wrapping_sub(h);
            // Room first, so no allocation happens while a dropping
            // producer may be waiting for the copy.
            out.reserve(queued.min(limit.saturating_add(self.max_entry())));
            self.reading.swap(h, Ordering::AcqRel);
            announced = true;
            if self
                .head
                .compare_exchange(h, h, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // A dropping producer moved `head` before it could see us.
                continue;
            }
            let mut pos = h;
            // Entries side by side in the buffer are copied together: a
            // run ends where the next entry is not right after it (a wrap).
            let (mut run_at, mut run_len) = (h & self.mask, 0);
            while pos != t && out.len() - start + run_len < limit {
                // SAFETY: [h, t) is published; a producer that takes some of
                // it waits for `reading` before it writes there.
                let (next, len) = unsafe { self.step(pos) };
                if len > 0 {
                    let at = pos & self.mask;
                    if at != run_at + run_len {
                        // SAFETY: as above; `step` checked the bounds of
                        // each entry of the run, and they are contiguous.
                        unsafe { self.bytes.append(run_at, run_len, out) };
                        (run_at, run_len) = (at, 0);
                    }
                    run_len += len;
                }
                pos = next;
            }
            // SAFETY: as for the runs above.
            unsafe { self.bytes.append(run_at, run_len, out) };
            let mut from = h;
            loop {
                match self
                    .head
                    .compare_exchange(from, pos, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => break,
                    Err(now) if (pos.wrapping_sub(now) as isize) < 0 => {
                        // The producer took every entry copied, and more.
                        out.truncate(start);
                        continue 'again;
                    }
                    Err(now) => {
                        // The producer took [from, now): released and counted
                        // on its side, so the copies are forgotten.
                        // SAFETY: as above: still announced in `reading`.
                        let gone = unsafe { self.entry_bytes(from, now) };
                        out.drain(start..start + gone);
                        from = now;
                    }
                }
            }
            self.reading.swap(IDLE, Ordering::AcqRel);
            return queued;
        }
    }

    /// Bytes of the entries in `[from, to)`, wrap markers left out.
    ///
    /// # Safety
    /// As for [`Ring::read_u32`], for every entry in the range.
    unsafe fn entry_bytes(&self, from: usize, to: usize) -> usize {
        let mut pos = from;
        let mut n = 0;
        while (to.wrapping_sub(pos) as isize) > 0 {
            // SAFETY: the caller's promise, passed on.
            let (next, len) = unsafe { self.step(pos) };
            n += len;
            pos = next;
        }
        n
    }

    /// The reader's position.
    #[inline]
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

impl Drop for Ring {
    /// Entries never claimed still own what they point to: released here.
    fn drop(&mut self) {
        let mut pos = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        while pos != tail {
            // SAFETY: `&mut self`: no other thread is left.
            let (next, len) = unsafe { self.step(pos) };
            if len > 0 {
                let mut head = [0u8; HEAD_BYTES];
                let head = &mut head[..len.min(HEAD_BYTES)];
                // SAFETY: as above.
                unsafe { self.bytes.read(pos & self.mask, head) };
                (self.release)(head);
            }
            pos = next;
        }
    }
}

/// An entry being written: bounds are checked against the entry, whose
/// place in the buffer was checked once.
pub(crate) struct Slot<'a> {
    bytes: &'a Bytes,
    start: usize,
    len: usize,
}

impl Slot<'_> {
    /// Copies `bytes` into the entry at `offset`.
    #[inline]
    pub(crate) fn put(&self, offset: usize, bytes: &[u8]) {
        if bytes.is_empty() {
            // Most records have a few empty parts: no call to copy nothing.
            return;
        }
        assert!(offset <= self.len && bytes.len() <= self.len - offset);
        // SAFETY: inside the entry (checked), which is inside the buffer
        // (checked by `Ring::slot`) and the producer's until published (the
        // promise made to `Ring::slot`).
        unsafe { self.bytes.write(self.start + offset, bytes) };
    }
}

/// Counters written by whoever produces into a ring: its thread, or the
/// holder of the shared ring's lock; so an increment needs no locked
/// instruction, only an atomic store others can read.
///
/// Each on a line of its own: the writer reads `dropped` after every pass
/// (to report drops), and that read must not take from the producer's core
/// the line `logged` is written on at every call, or the first call after
/// each pass waits for the line to come back.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) logged: CachePadded<AtomicU64>,
    pub(crate) dropped: CachePadded<AtomicU64>,
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
    use std::sync::{Arc, Mutex};

    /// Test entries: a length word, an id, and the id's low byte in every
    /// other byte, so a torn or misplaced copy shows.
    fn push(r: &Ring, p: &mut ProducerPos, id: u32, len: usize) -> bool {
        let Some(pos) = r.try_reserve(p, len) else {
            return false;
        };
        let mut e = vec![id as u8; len];
        e[..4].copy_from_slice(&(len as u32).to_le_bytes());
        e[4..8].copy_from_slice(&id.to_le_bytes());
        // SAFETY: reserved above, published below.
        unsafe { r.slot(pos, len) }.put(0, &e);
        r.publish(p, pos, len);
        true
    }

    /// What a `DropOldest` producer does (see `Shared::push`).
    fn push_dropping_oldest(r: &Ring, p: &mut ProducerPos, id: u32, len: usize) {
        while !push(r, p, id, len) {
            r.drop_oldest(p);
        }
    }

    fn id_of(e: &[u8]) -> u32 {
        u32::from_le_bytes(e[4..8].try_into().unwrap())
    }

    /// The ids of claimed entries, each checked byte for byte.
    fn ids(bytes: &[u8]) -> Vec<u32> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let len = u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
            let e = &bytes[i..i + len];
            let id = id_of(e);
            assert!(
                e[8..].iter().all(|&b| b == id as u8),
                "entry {id} arrived torn: {e:?}"
            );
            out.push(id);
            i += len;
        }
        assert_eq!(i, bytes.len(), "claimed bytes end on an entry boundary");
        out
    }

    /// A release that records the id of each entry it is given.
    fn recorder() -> (Release, Arc<Mutex<Vec<u32>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let release: Release = Box::new(move |head: &[u8]| s.lock().unwrap().push(id_of(head)));
        (release, seen)
    }

    type Released = Arc<Mutex<Vec<u32>>>;

    /// A 256-byte ring whose positions start at `pos` (so that a few entries
    /// reach the end of the buffer), holding entries of the lengths given
    /// (ids from 0), and the ids its release function is given.
    fn ring_at(pos: usize, queued: &[usize]) -> (Arc<Ring>, ProducerPos, Released) {
        let (release, released) = recorder();
        let r = Arc::new(Ring::new(256, 1, None, release));
        r.head.store(pos, Ordering::Relaxed);
        r.tail.store(pos, Ordering::Relaxed);
        let mut p = ProducerPos {
            tail: pos,
            cached_head: pos,
        };
        for (id, &len) in queued.iter().enumerate() {
            assert!(push(&r, &mut p, id as u32, len));
        }
        (r, p, released)
    }

    fn claim_ids(r: &Ring) -> Vec<u32> {
        let mut out = Vec::new();
        r.claim(&mut out, usize::MAX);
        ids(&out)
    }

    /// Every id below `n` is either read or dropped, never both; the ones
    /// read come in order; the ring released exactly the dropped ones and
    /// counted them.
    fn check_accounts(n: u32, read: &[u32], released: &[u32], r: &Ring) {
        assert!(
            read.windows(2).all(|w| w[0] < w[1]),
            "read in order: {read:?}"
        );
        let mut all: Vec<u32> = read.iter().chain(released).copied().collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..n).collect::<Vec<_>>(),
            "read {read:?} and dropped {released:?}"
        );
        assert_eq!(
            r.counters.dropped.load(Ordering::Relaxed),
            released.len() as u64
        );
    }

    #[cfg(not(loom))]
    mod std_threads {
        use super::*;

        #[test]
        fn wraps_and_keeps_order() {
            let (r, mut p, released) = ring_at(0, &[]);
            let mut got = Vec::new();
            for i in 0..1000u32 {
                let len = align(8 + (i as usize % 40));
                while !push(&r, &mut p, i, len) {
                    got.extend(claim_ids(&r));
                }
            }
            got.extend(claim_ids(&r));
            assert_eq!(got, (0..1000).collect::<Vec<_>>());
            assert!(r.is_empty());
            drop(r);
            assert!(released.lock().unwrap().is_empty());
        }

        #[test]
        fn full_ring_refuses_and_drop_oldest_makes_room() {
            let (r, mut p, released) = ring_at(0, &[]);
            let mut n = 0;
            while push(&r, &mut p, n, 32) {
                n += 1;
            }
            assert_eq!(n, 256 / 32);
            assert!(r.drop_oldest(&mut p));
            assert!(push(&r, &mut p, 99, 32));
            let got = claim_ids(&r);
            let mut want: Vec<u32> = (1..n).collect();
            want.push(99);
            assert_eq!(got, want);
            assert_eq!(*released.lock().unwrap(), vec![0]);
            assert_eq!(r.counters.dropped.load(Ordering::Relaxed), 1);
        }

        #[test]
        fn a_drop_skips_the_wrap_marker_and_takes_the_entry_after_it() {
            // 200..248, then a marker at 248 and the second entry at 256.
            let (r, mut p, released) = ring_at(200, &[48, 48]);
            assert!(r.drop_oldest(&mut p));
            assert_eq!(*released.lock().unwrap(), vec![0]);
            assert!(r.drop_oldest(&mut p));
            assert_eq!(*released.lock().unwrap(), vec![0, 1]);
            assert!(r.is_empty());
            assert!(!r.drop_oldest(&mut p));
            assert_eq!(r.counters.dropped.load(Ordering::Relaxed), 2);
            assert!(push(&r, &mut p, 2, 48));
            assert_eq!(claim_ids(&r), vec![2]);
        }

        #[test]
        fn dropping_a_ring_releases_each_queued_entry_once() {
            let (r, mut p, released) = ring_at(192, &[48; 4]);
            assert_eq!(claim_ids(&r).len(), 4);
            for id in 4..8 {
                assert!(push(&r, &mut p, id, 48));
            }
            drop(r);
            assert_eq!(*released.lock().unwrap(), vec![4, 5, 6, 7]);
        }

        /// A reader claiming while a producer drops the oldest entries as
        /// fast as it can: the accounts balance and nothing arrives torn.
        /// In a large ring the reader copies long batches, so the producer
        /// often drops entries it is copying (and waits for it).
        #[test]
        fn a_dropping_producer_and_a_reader_never_share_an_entry() {
            for (capacity, limit) in [(256, 100), (1 << 16, usize::MAX)] {
                const N: u32 = 200_000;
                let (release, released) = recorder();
                let r = Arc::new(Ring::new(capacity, 1, None, release));
                let producer = std::thread::spawn({
                    let r = Arc::clone(&r);
                    move || {
                        let mut p = ProducerPos::default();
                        for id in 0..N {
                            push_dropping_oldest(&r, &mut p, id, align(8 + id as usize % 57));
                        }
                    }
                });
                let mut read = Vec::new();
                let mut out = Vec::new();
                while !producer.is_finished() {
                    out.clear();
                    r.claim(&mut out, limit);
                    read.extend(ids(&out));
                }
                producer.join().unwrap();
                read.extend(claim_ids(&r));
                let released = released.lock().unwrap().clone();
                check_accounts(N, &read, &released, &r);
                assert_eq!(read.last(), Some(&(N - 1)), "the newest entry is kept");
            }
        }
    }

    /// The protocol under loom (`scripts/loom`): every interleaving of a
    /// producer and the reader, within the preemption bound.
    #[cfg(loom)]
    mod loom_models {
        use super::*;
        use loom::thread;

        /// Runs `produce` on a thread of its own while the reader claims
        /// `claims` times (at most `limit` bytes each). Returns the ids read
        /// and the producer's positions.
        fn race(
            r: &Arc<Ring>,
            mut p: ProducerPos,
            produce: fn(&Ring, &mut ProducerPos),
            claims: usize,
            limit: usize,
        ) -> (Vec<u32>, ProducerPos) {
            let producer = thread::spawn({
                let r = Arc::clone(r);
                move || {
                    produce(&r, &mut p);
                    p
                }
            });
            let mut read = Vec::new();
            for _ in 0..claims {
                let mut out = Vec::new();
                r.claim(&mut out, limit);
                read.extend(ids(&out));
            }
            (read, producer.join().unwrap())
        }

        /// A producer that finds the ring full waits for the reader, which
        /// frees room; entries cross the end of the buffer (a wrap marker at
        /// 224). Everything arrives once, in order, whole.
        #[test]
        fn producer_and_reader_wrap_around() {
            loom::model(|| {
                let (r, mut p, released) = ring_at(176, &[]);
                let producer = thread::spawn({
                    let r = Arc::clone(&r);
                    move || {
                        for id in 0..5 {
                            while !push(&r, &mut p, id, 48) {
                                thread::yield_now();
                            }
                        }
                    }
                });
                let mut read = Vec::new();
                while read.len() < 5 {
                    let got = claim_ids(&r);
                    if got.is_empty() {
                        thread::yield_now();
                    }
                    read.extend(got);
                }
                producer.join().unwrap();
                assert_eq!(read, vec![0, 1, 2, 3, 4]);
                assert!(r.is_empty());
                assert!(released.lock().unwrap().is_empty());
            });
        }

        /// A `DropOldest` producer pushing into a full ring (176..240, a
        /// wrap marker, 256..320, 320..384) while the reader claims: whatever
        /// the interleaving, each entry is read once or dropped once
        /// (released and counted), never both, never torn; the second drop
        /// goes past the wrap marker; the newest entry survives.
        #[test]
        fn drop_oldest_against_the_reader() {
            loom::model(|| {
                let (r, p, released) = ring_at(176, &[64, 64, 64]);
                let (mut read, _) = race(
                    &r,
                    p,
                    |r, p| {
                        push_dropping_oldest(r, p, 3, 64);
                        push_dropping_oldest(r, p, 4, 64);
                    },
                    1,
                    usize::MAX,
                );
                read.extend(claim_ids(&r));
                check_accounts(5, &read, &released.lock().unwrap(), &r);
                assert_eq!(read.last(), Some(&4));
                assert!(r.is_empty());
            });
        }

        /// Five entries of 48 bytes fill the ring (160..400); the producer
        /// takes the first for a sixth while the reader claims two at a time
        /// (96 bytes): a reader that copied the first forgets that copy and
        /// keeps the rest.
        #[test]
        fn a_reader_keeps_the_part_of_a_claim_the_producer_did_not_take() {
            loom::model(|| {
                let (r, p, released) = ring_at(160, &[48; 5]);
                let (mut read, mut p) =
                    race(&r, p, |r, p| push_dropping_oldest(r, p, 5, 64), 2, 96);
                read.extend(claim_ids(&r));
                check_accounts(6, &read, &released.lock().unwrap(), &r);
                assert_eq!(read.last(), Some(&5));
                // The producer's view of the ring agrees with the reader's.
                assert!(push(&r, &mut p, 6, 64));
                assert_eq!(claim_ids(&r), vec![6]);
            });
        }

        /// A ring dropped with entries queued releases each of them once.
        #[test]
        fn dropping_the_ring_releases_what_the_reader_left() {
            loom::model(|| {
                let (r, p, released) = ring_at(224, &[]);
                let (read, _) = race(
                    &r,
                    p,
                    |r, p| (0..3).for_each(|id| assert!(push(r, p, id, 48))),
                    1,
                    usize::MAX,
                );
                drop(r);
                let released = released.lock().unwrap().clone();
                let mut all: Vec<u32> = read.iter().chain(&released).copied().collect();
                all.sort_unstable();
                assert_eq!(all, vec![0, 1, 2], "read {read:?}, released {released:?}");
            });
        }
    }
}
