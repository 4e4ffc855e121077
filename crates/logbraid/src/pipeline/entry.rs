//! The byte encoding of a record inside a ring.
//!
//! ```text
//! 0   u32 entry length (header included, padded to 8)
//! 4   u8  kind: 0 inline, 1 boxed (the record lives in a heap buffer whose
//!         pointer follows the header: for records too large for the ring)
//! 5   u8  level   6 u8 flags   7 u8 unused
//! 8   i64 timestamp (ns since the epoch)
//! 16  u32 line    20 u32 message length   24 u32 fields length
//! 28  u16 target  30 u16 module  32 u16 file  34 u16 function
//! 36  u16 thread name                38 u16 unused
//! 40  u64 thread id (foreign records only), or the address of a
//!         `macros::FormatFn` (flag 128: the message holds values that
//!         function formats; never on foreign records)
//! 48  u64 pointer from Arc::<Source>::into_raw (foreign records only)
//! 56  target, module, file, function, thread name, message, fields
//! ```
//!
//! The second form of deferred formatting is for bindings whose call
//! sites are not static (a Python call's logger, frame and message):
//! the strings are copied as for any record, and the message's values
//! are formatted by the writer with the function the header names.
//!
//! A record of a logbraid macro (kind 2, "deferred") carries the values of
//! its placeholders instead of a message, formatted by the writer:
//!
//! ```text
//! 0   u32 entry length   4 u8 kind: 2   5 u8 level   6 u8 flags   7 unused
//! 8   i64 timestamp
//! 16  u64 address of the call site's `macros::Site` (a static)
//! 24  u64 address of the call site's `macros::FormatFn`
//! 32  u32 values length   36 u32 fields length
//! 40  values, fields
//! ```
//!
//! It owns nothing (the site and the function are static), and like any
//! record too large for the ring it travels boxed.
//!
//! "Foreign" records (those the collector received from other processes)
//! carry their own source and thread; records of this process take them
//! from the ring and from [`Source::current`].
//!
//! # Ownership
//!
//! An entry owns what its pointers point to: the boxed encoding of a record
//! too large for the ring, and one strong count of a foreign record's
//! `Arc<Source>`. It owns them from [`Parts::push`] until exactly one of
//! these takes it, once:
//!
//! - the writer, through a [`Batch`]: [`Batch::take_next`] hands the entry
//!   to a [`Claimed`], which frees what it owns when dropped; entries of a
//!   batch not taken yet (a sink panicked mid-pass) are freed with the
//!   batch;
//! - a `DropOldest` producer that drops the entry, and
//! - the ring itself when it is dropped with entries still queued,
//!
//! the last two through [`release`], the ring's release function.

use std::sync::Arc;

use super::ring::{align, ProducerPos, Ring, HEAD_BYTES};
use super::tsc::Converter;
use super::Callsite;
use crate::level::Level;
use crate::macros::{FormatFn, Out, Site};
use crate::record::{Fields, Record, Source};

pub(crate) const HEADER: usize = 56;
// `release` is given an entry's first `HEAD_BYTES`: the header must fit.
const _: () = assert!(HEADER <= HEAD_BYTES);

const KIND_INLINE: u8 = 0;
const KIND_BOXED: u8 = 1;
const KIND_DEFERRED: u8 = 2;
/// Header of a deferred entry.
const DEFERRED_HEADER: usize = 40;

const F_MODULE: u8 = 1;
const F_FILE: u8 = 2;
const F_LINE: u8 = 4;
const F_FUNCTION: u8 = 8;
const F_THREAD_NAME: u8 = 16;
const F_FOREIGN: u8 = 32;
/// The timestamp is raw TSC ticks, converted by the writer.
const F_TSC: u8 = 64;
/// The message holds values, formatted by the function at byte 40.
const F_FORMAT: u8 = 128;

/// What the caller hands to the queue, all borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts<'a> {
    pub(crate) timestamp_ns: i64,
    pub(crate) level: Level,
    pub(crate) target: &'a str,
    pub(crate) module: Option<&'a str>,
    pub(crate) file: Option<&'a str>,
    pub(crate) line: Option<u32>,
    pub(crate) function: Option<&'a str>,
    pub(crate) message: &'a [u8],
    pub(crate) fields: &'a [u8],
    /// Set for records of another process: their thread and source.
    pub(crate) foreign: Option<(u64, Option<&'a str>, &'a Arc<Source>)>,
    /// `timestamp_ns` holds TSC ticks (see `tsc`), not nanoseconds.
    pub(crate) tsc: bool,
    /// Set for a record whose `message` holds encoded values, which the
    /// writer formats with this: a macro's (see [`crate::macros`]), or a
    /// binding's (see [`crate::Logger::log_values`]).
    pub(crate) deferred: Option<Deferred>,
}

/// How the writer makes a deferred record's message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deferred {
    /// A macro's static call site, which then stands for the record's
    /// target, module, file and line; `None` for a binding's record,
    /// whose strings are copied.
    pub(crate) site: Option<&'static Site>,
    pub(crate) format: FormatFn,
}

impl Deferred {
    /// The message: the values formatted with the call site's format.
    /// Returns whether it is plain ([`Record::plain_message`]).
    pub(crate) fn format(&self, values: &[u8], out: &mut Vec<u8>) -> bool {
        (self.format)(values, out)
    }
}

fn cut(s: &str) -> &str {
    if s.len() <= u16::MAX as usize {
        return s;
    }
    let mut end = u16::MAX as usize;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl<'a> Parts<'a> {
    /// A record of this process logged at `site`.
    pub(crate) fn at_site(
        site: &Callsite<'a>,
        (timestamp_ns, tsc): (i64, bool),
        message: &'a [u8],
        fields: &'a [u8],
    ) -> Self {
        Parts {
            timestamp_ns,
            level: site.level,
            target: site.target,
            module: site.module,
            file: site.file,
            line: site.line,
            function: site.function,
            message,
            fields,
            foreign: None,
            tsc,
            deferred: None,
        }
    }

    /// What is written, computed once per record: the strings cut to what
    /// their `u16` lengths hold, the message cut likewise, the padded size.
    fn layout(&self) -> Layout<'a> {
        let strs = [
            cut(self.target),
            cut(self.module.unwrap_or("")),
            cut(self.file.unwrap_or("")),
            cut(self.function.unwrap_or("")),
            cut(self.foreign.and_then(|f| f.1).unwrap_or("")),
        ];
        let message = &self.message[..self.message.len().min(u32::MAX as usize - 4096)];
        let text: usize = strs.iter().map(|s| s.len()).sum();
        Layout {
            strs,
            message,
            len: align(HEADER + text + message.len() + self.fields.len()),
        }
    }

    fn header(&self, l: &Layout<'_>, len: usize, kind: u8) -> [u8; HEADER] {
        let mut flags = 0;
        if self.module.is_some() {
            flags |= F_MODULE;
        }
        if self.file.is_some() {
            flags |= F_FILE;
        }
        if self.line.is_some() {
            flags |= F_LINE;
        }
        if self.function.is_some() {
            flags |= F_FUNCTION;
        }
        if self.tsc {
            flags |= F_TSC;
        }
        let mut h = [0u8; HEADER];
        if let Some(d) = self.deferred {
            debug_assert!(self.foreign.is_none() && d.site.is_none());
            flags |= F_FORMAT;
            h[40..48].copy_from_slice(&(d.format as usize as u64).to_le_bytes());
        }
        h[0..4].copy_from_slice(&(len as u32).to_le_bytes());
        h[4] = kind;
        h[5] = self.level as u8;
        h[8..16].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        h[16..20].copy_from_slice(&self.line.unwrap_or(0).to_le_bytes());
        h[20..24].copy_from_slice(&(l.message.len() as u32).to_le_bytes());
        h[24..28].copy_from_slice(&(self.fields.len() as u32).to_le_bytes());
        for (i, s) in l.strs.iter().enumerate() {
            h[28 + 2 * i..30 + 2 * i].copy_from_slice(&(s.len() as u16).to_le_bytes());
        }
        if let Some((tid, tname, source)) = self.foreign {
            flags |= F_FOREIGN;
            if tname.is_some() {
                flags |= F_THREAD_NAME;
            }
            h[40..48].copy_from_slice(&tid.to_le_bytes());
            let ptr = Arc::into_raw(Arc::clone(source)) as usize as u64;
            h[48..56].copy_from_slice(&ptr.to_le_bytes());
        }
        h[6] = flags;
        h
    }

    /// Writes the whole encoding (for the boxed form) into a vector.
    fn encode_into(&self, l: &Layout<'_>, out: &mut Vec<u8>) {
        out.reserve(l.len);
        out.extend_from_slice(&self.header(l, l.len, KIND_INLINE));
        for s in l.strs {
            out.extend_from_slice(s.as_bytes());
        }
        out.extend_from_slice(l.message);
        out.extend_from_slice(self.fields);
        out.resize(out.len().next_multiple_of(8).max(l.len), 0);
    }

    /// Pushes into the ring; false when the ring has no room (nothing was
    /// written, nothing needs releasing).
    pub(crate) fn push(&self, ring: &Ring, p: &mut ProducerPos) -> bool {
        if let Some(Deferred {
            site: Some(site),
            format,
        }) = self.deferred
        {
            return self.push_deferred(site, format, ring, p);
        }
        let l = self.layout();
        if l.len > ring.max_entry() {
            let Some(pos) = ring.try_reserve(p, HEADER) else {
                return false;
            };
            let mut boxed = Vec::new();
            self.encode_into(&l, &mut boxed);
            self.push_boxed(boxed, ring, p, pos);
            return true;
        }
        let Some(pos) = ring.try_reserve(p, l.len) else {
            return false;
        };
        // SAFETY: reserved just above, published below.
        let slot = unsafe { ring.slot(pos, l.len) };
        slot.put(0, &self.header(&l, l.len, KIND_INLINE));
        let mut at = HEADER;
        for s in l.strs {
            slot.put(at, s.as_bytes());
            at += s.len();
        }
        slot.put(at, l.message);
        at += l.message.len();
        slot.put(at, self.fields);
        ring.publish(p, pos, l.len);
        true
    }

    /// Publishes at `pos` (reserved for a header) an entry pointing to
    /// `boxed`, a whole encoding.
    fn push_boxed(&self, boxed: Vec<u8>, ring: &Ring, p: &mut ProducerPos, pos: usize) {
        let ptr = Box::into_raw(boxed.into_boxed_slice());
        let mut h = [0u8; HEADER];
        h[0..4].copy_from_slice(&(HEADER as u32).to_le_bytes());
        h[4] = KIND_BOXED;
        h[6] = if self.tsc { F_TSC } else { 0 };
        h[8..16].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        h[40..48].copy_from_slice(&(ptr as *mut u8 as usize as u64).to_le_bytes());
        h[48..56].copy_from_slice(&(ptr.len() as u64).to_le_bytes());
        // SAFETY: reserved by the caller, published below.
        unsafe { ring.slot(pos, HEADER) }.put(0, &h);
        ring.publish(p, pos, HEADER);
    }

    /// Pushes a macro's record (see the module documentation).
    fn push_deferred(
        &self,
        site: &'static Site,
        format: FormatFn,
        ring: &Ring,
        p: &mut ProducerPos,
    ) -> bool {
        let values = &self.message[..self.message.len().min(u32::MAX as usize - 4096)];
        let len = align(DEFERRED_HEADER + values.len() + self.fields.len());
        let h = deferred_header(
            len,
            self.level,
            (self.timestamp_ns, self.tsc),
            (site, format),
            values.len(),
            self.fields.len(),
        );
        if len > ring.max_entry() {
            let Some(pos) = ring.try_reserve(p, HEADER) else {
                return false;
            };
            let mut boxed = Vec::with_capacity(len);
            boxed.extend_from_slice(&h);
            boxed.extend_from_slice(values);
            boxed.extend_from_slice(self.fields);
            boxed.resize(len, 0);
            self.push_boxed(boxed, ring, p, pos);
            return true;
        }
        let Some(pos) = ring.try_reserve(p, len) else {
            return false;
        };
        // SAFETY: reserved just above, published below.
        let slot = unsafe { ring.slot(pos, len) };
        slot.put(0, &h);
        slot.put(DEFERRED_HEADER, values);
        slot.put(DEFERRED_HEADER + values.len(), self.fields);
        ring.publish(p, pos, len);
        true
    }
}

/// The header of a deferred entry of `len` bytes (see the module
/// documentation).
#[inline(always)]
fn deferred_header(
    len: usize,
    level: Level,
    (timestamp, tsc): (i64, bool),
    (site, format): (&'static Site, FormatFn),
    values: usize,
    fields: usize,
) -> [u8; DEFERRED_HEADER] {
    let mut h = [0u8; DEFERRED_HEADER];
    h[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    h[4] = KIND_DEFERRED;
    h[5] = level as u8;
    h[6] = if tsc { F_TSC } else { 0 };
    h[8..16].copy_from_slice(&timestamp.to_le_bytes());
    h[16..24].copy_from_slice(&(site as *const Site as usize as u64).to_le_bytes());
    h[24..32].copy_from_slice(&(format as usize as u64).to_le_bytes());
    h[32..36].copy_from_slice(&(values as u32).to_le_bytes());
    h[36..40].copy_from_slice(&(fields as u32).to_le_bytes());
    h
}

/// Reserves and writes a deferred entry of `values` bytes without fields,
/// `write` writing the values, stamped with `stamp()` once reserved.
/// False when it does not fit inline in the ring or the ring is full:
/// nothing was written then.
#[inline(always)]
pub(crate) fn push_deferred_raw(
    ring: &Ring,
    p: &mut ProducerPos,
    level: Level,
    d: (&'static Site, FormatFn),
    values: usize,
    stamp: impl FnOnce() -> (i64, bool),
    write: &mut impl FnMut(&mut Out<'_>),
) -> bool {
    let len = align(DEFERRED_HEADER + values);
    if len > ring.max_entry() {
        return false;
    }
    let Some(pos) = ring.try_reserve(p, len) else {
        return false;
    };
    // SAFETY: reserved just above, published below.
    let slot = unsafe { ring.slot(pos, len) };
    slot.put(0, &deferred_header(len, level, stamp(), d, values, 0));
    write(&mut Out::new(slot, DEFERRED_HEADER));
    ring.publish(p, pos, len);
    true
}

/// A record's parts as they are written (see [`Parts::layout`]).
struct Layout<'a> {
    strs: [&'a str; 5],
    message: &'a [u8],
    /// The encoded size, padded.
    len: usize,
}

/// An entry claimed out of a ring, owning whatever the entry points to.
pub(crate) struct Claimed<'a> {
    bytes: &'a [u8],
    boxed: Option<Box<[u8]>>,
    source: Option<Arc<Source>>,
}

/// The `N` bytes at `at`: one bounds check and one load.
#[inline(always)]
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    match b[at..].first_chunk::<N>() {
        Some(a) => *a,
        None => panic!("ring entry cut short at {at} (+{N} of {})", b.len()),
    }
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes(bytes_at(b, at)) as usize
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes_at(b, at))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes_at(b, at))
}

/// Timestamp of an entry in nanoseconds.
fn timestamp(entry: &[u8], conv: &Converter) -> i64 {
    let raw = u64_at(entry, 8);
    if entry[6] & F_TSC != 0 {
        conv.to_ns(raw)
    } else {
        raw as i64
    }
}

/// Length of the entry at the start of `bytes`.
fn entry_len(bytes: &[u8]) -> usize {
    u32_at(bytes, 0) as usize
}

/// Frees what an entry owns, given its first bytes (at least the header).
/// A ring's release function: the ring calls it for each entry it drops or
/// still holds when dropped, once (see `ring::Release`).
pub(crate) fn release(head: &[u8]) {
    // SAFETY: the ring hands over each entry it never let the reader have,
    // once; entries come only from `Parts::push`.
    drop(unsafe { take(head) });
}

/// Takes ownership of what an entry claimed from a ring points to.
///
/// # Safety
/// `entry` must be an entry written by [`Parts::push`] (whole, or at least
/// its header when the result is only dropped), taken exactly once.
unsafe fn take(entry: &[u8]) -> Claimed<'_> {
    if entry[4] == KIND_BOXED {
        let ptr = u64_at(entry, 40) as usize as *mut u8;
        let len = u64_at(entry, 48) as usize;
        // SAFETY: pointer and length come from Box::into_raw in `push`, and
        // the caller guarantees this entry is taken once.
        let boxed = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) };
        // The boxed encoding is itself an inline entry; it may hold a source.
        let source = foreign_source(&boxed);
        return Claimed {
            bytes: &[],
            boxed: Some(boxed),
            source,
        };
    }
    let source = foreign_source(entry);
    Claimed {
        bytes: entry,
        boxed: None,
        source,
    }
}

fn foreign_source(entry: &[u8]) -> Option<Arc<Source>> {
    if entry[6] & F_FOREIGN == 0 {
        return None;
    }
    let ptr = u64_at(entry, 48) as usize as *const Source;
    // SAFETY: the pointer came from Arc::into_raw in `header`; ownership of
    // that count passes to whoever takes the entry, once.
    Some(unsafe { Arc::from_raw(ptr) })
}

/// Entries claimed from a ring, each owning what it points to until it is
/// taken: dropping the batch frees what the entries not yet taken own.
#[derive(Default)]
pub(crate) struct Batch {
    bytes: Vec<u8>,
    /// Where the next entry to take starts; the ones before are taken.
    at: usize,
    /// The next entry's timestamp in nanoseconds, once asked: the merge
    /// asks every ring's batch for each record it writes, and with several
    /// threads the conversion from ticks was most of the merge.
    next_ns: Option<i64>,
}

impl Batch {
    /// Claims from `ring` (see `Ring::claim`) into this batch, after
    /// freeing what the entries not taken from it own. Returns the bytes
    /// queued when claimed.
    pub(crate) fn claim(&mut self, ring: &Ring, limit: usize) -> usize {
        self.release_rest();
        self.bytes.clear();
        self.at = 0;
        self.next_ns = None;
        ring.claim(&mut self.bytes, limit)
    }

    /// Whether nothing was claimed.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Timestamp of the next entry, in nanoseconds (for merging).
    pub(crate) fn next_timestamp(&mut self, conv: &Converter) -> Option<i64> {
        if self.next_ns.is_none() && self.at < self.bytes.len() {
            self.next_ns = Some(timestamp(&self.bytes[self.at..], conv));
        }
        self.next_ns
    }

    /// The next entry, now the caller's.
    pub(crate) fn take_next(&mut self) -> Option<Claimed<'_>> {
        let at = self.at;
        if at >= self.bytes.len() {
            return None;
        }
        let len = entry_len(&self.bytes[at..]);
        self.at = at + len;
        self.next_ns = None;
        // SAFETY: the ring's claim gave this batch the entry, and `at` has
        // moved past it, so it is taken once.
        Some(unsafe { take(&self.bytes[at..at + len]) })
    }

    fn release_rest(&mut self) {
        while self.take_next().is_some() {}
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.release_rest();
    }
}

impl Claimed<'_> {
    /// The record, with this process's `source` and the ring's thread for
    /// records that are not foreign.
    ///
    /// A macro's record has its message formatted into `text`.
    pub(crate) fn record<'s>(
        &'s self,
        ring_thread: (u64, Option<&'s str>),
        source: &'s Source,
        conv: &Converter,
        text: &'s mut Vec<u8>,
    ) -> Record<'s> {
        let b: &[u8] = match &self.boxed {
            Some(b) => b,
            None => self.bytes,
        };
        if b[4] == KIND_DEFERRED {
            return deferred_record(b, ring_thread, source, conv, text);
        }
        let flags = b[6];
        let lens = [
            u16_at(b, 28),
            u16_at(b, 30),
            u16_at(b, 32),
            u16_at(b, 34),
            u16_at(b, 36),
        ];
        let mut at = HEADER;
        let mut strs = [""; 5];
        for (i, l) in lens.iter().enumerate() {
            let bytes = &b[at..at + l];
            debug_assert!(std::str::from_utf8(bytes).is_ok());
            // SAFETY: only `Parts::push` writes entries, and it copies these
            // from the `&str`s of `Parts::strs`, cut at char boundaries; the
            // ring is this process's own memory. (Checking them again cost
            // the writer a tenth of its time.)
            strs[i] = unsafe { std::str::from_utf8_unchecked(bytes) };
            at += l;
        }
        let msg_len = u32_at(b, 20) as usize;
        let fields_len = u32_at(b, 24) as usize;
        let mut message = &b[at..at + msg_len];
        let mut plain_message = false;
        if flags & F_FORMAT != 0 {
            text.clear();
            plain_message = format_fn(b)(message, text);
            message = text;
        }
        at += msg_len;
        let fields = Fields::from_encoded(&b[at..at + fields_len]);
        let (thread_id, thread_name, source) = match &self.source {
            Some(s) => (
                u64_at(b, 40),
                (flags & F_THREAD_NAME != 0).then_some(strs[4]),
                &**s,
            ),
            None => (ring_thread.0, ring_thread.1, source),
        };
        Record {
            timestamp_ns: timestamp(b, conv),
            level: Level::from_u8(b[5]).unwrap_or(Level::Info),
            target: strs[0],
            message,
            plain_message,
            module: (flags & F_MODULE != 0).then_some(strs[1]),
            file: (flags & F_FILE != 0).then_some(strs[2]),
            line: (flags & F_LINE != 0).then_some(u32_at(b, 16)),
            function: (flags & F_FUNCTION != 0).then_some(strs[3]),
            thread_id,
            thread_name,
            source,
            fields,
        }
    }
}

/// The function a deferred entry's header names at `at`.
fn format_fn_at(b: &[u8], at: usize) -> FormatFn {
    let format = u64_at(b, at) as usize;
    // SAFETY: only this module writes entries, and it writes there the
    // address of a `FormatFn` of this process, a function that lives as
    // long as the program.
    unsafe { std::mem::transmute::<usize, FormatFn>(format) }
}

/// The function an inline entry with [`F_FORMAT`] names.
fn format_fn(b: &[u8]) -> FormatFn {
    format_fn_at(b, 40)
}

/// The record of a deferred entry (see the module documentation).
fn deferred_record<'s>(
    b: &'s [u8],
    (thread_id, thread_name): (u64, Option<&'s str>),
    source: &'s Source,
    conv: &Converter,
    text: &'s mut Vec<u8>,
) -> Record<'s> {
    let site = u64_at(b, 16) as usize as *const Site;
    // SAFETY: `push_deferred` wrote the address of a `&'static Site`, in
    // this process.
    let site: &'static Site = unsafe { &*site };
    let format = format_fn_at(b, 24);
    let values_len = u32_at(b, 32) as usize;
    let fields_len = u32_at(b, 36) as usize;
    let values = &b[DEFERRED_HEADER..DEFERRED_HEADER + values_len];
    let fields = &b[DEFERRED_HEADER + values_len..DEFERRED_HEADER + values_len + fields_len];
    text.clear();
    let plain_message = format(values, text);
    Record {
        timestamp_ns: timestamp(b, conv),
        level: Level::from_u8(b[5]).unwrap_or(Level::Info),
        target: site.target,
        message: text,
        plain_message,
        module: Some(site.module),
        file: Some(site.file),
        line: Some(site.line),
        function: site.function,
        thread_id,
        thread_name,
        source,
        fields: Fields::from_encoded(fields),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn parts<'a>(message: &'a [u8], source: &'a Arc<Source>) -> Parts<'a> {
        Parts {
            timestamp_ns: 5,
            level: Level::Warn,
            target: "t",
            module: None,
            file: None,
            line: Some(3),
            function: None,
            message,
            fields: &[],
            foreign: Some((9, Some("worker"), source)),
            tsc: false,
            deferred: None,
        }
    }

    fn ring() -> Ring {
        Ring::new(4096, 1, None, Box::new(release))
    }

    /// Inline and boxed (over a quarter of the ring) records of a foreign
    /// source, through every way out of a ring: each holds one count of
    /// the source while queued, and gives it back exactly once.
    #[test]
    fn every_way_out_of_a_ring_gives_back_the_source_once() {
        let source = Arc::new(Source {
            host: "h".into(),
            pid: 1,
            process_name: "p".into(),
        });
        let small = vec![b's'; 100];
        let large = vec![b'l'; 2_000];
        let r = ring();
        let mut p = ProducerPos::default();
        for m in [&small, &large, &small, &large] {
            assert!(parts(m, &source).push(&r, &mut p));
        }
        assert_eq!(Arc::strong_count(&source), 5);

        // Claimed: one taken and written, the rest freed with the batch.
        let mut batch = Batch::default();
        batch.claim(&r, usize::MAX);
        let conv = Converter::identity();
        let here = Source::current();
        {
            let first = batch.take_next().unwrap();
            let mut text = Vec::new();
            let rec = first.record((0, None), &here, &conv, &mut text);
            assert_eq!((rec.message, rec.thread_id), (&small[..], 9));
            assert_eq!((rec.thread_name, rec.source), (Some("worker"), &*source));
            assert_eq!(Arc::strong_count(&source), 5);
        }
        assert_eq!(Arc::strong_count(&source), 4);
        {
            let second = batch.take_next().unwrap();
            let mut text = Vec::new();
            let rec = second.record((0, None), &here, &conv, &mut text);
            assert_eq!((rec.message, rec.line), (&large[..], Some(3)));
        }
        assert_eq!(Arc::strong_count(&source), 3);
        drop(batch);
        assert_eq!(Arc::strong_count(&source), 1);

        // Dropped by a producer that found the ring full, then left queued
        // when the ring goes.
        let mut queued = 0;
        for m in [&large, &small].into_iter().cycle() {
            if !parts(m, &source).push(&r, &mut p) {
                break;
            }
            queued += 1;
        }
        assert!(queued > 10);
        assert_eq!(Arc::strong_count(&source), 1 + queued);
        assert!(r.drop_oldest(&mut p));
        assert!(r.drop_oldest(&mut p));
        assert_eq!(Arc::strong_count(&source), 1 + queued - 2);
        assert_eq!(
            r.counters
                .dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
        drop(r);
        assert_eq!(Arc::strong_count(&source), 1);
    }
}
