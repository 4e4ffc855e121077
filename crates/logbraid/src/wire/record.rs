//! Records inside a `BATCH` frame.
//!
//! ```text
//! 0   u32 record length L (bytes after this field; 40 + the lengths below)
//! 4   i64 timestamp (ns since the epoch)
//! 12  u64 thread id
//! 20  u32 line (0 when absent)
//! 24  u32 message length      28  u32 fields length
//! 32  u8  level (Python number)  33  u8 flags
//! 34  u16 target  36 u16 module  38 u16 file  40 u16 function
//! 42  u16 thread name
//! 44  target, module, file, function, thread name, message, fields
//! ```
//!
//! As in the in-process queue, every length sits in a fixed header ahead of
//! the bytes, so a record is bounds-checked with one comparison and a
//! decoded record borrows all its text from the frame.

use std::fmt;

use super::frame::{begin, end};
use super::{cut_str, Cursor, FrameType, WireError, DEFAULT_MAX_FRAME, MIN_BATCH_FRAME};
use crate::level::Level;
use crate::record::{Fields, FieldsBuf, Record, Source, Value};

/// Bytes of a record before its text: the length field and the header.
pub(crate) const RECORD_HEADER: usize = 44;
/// The part of [`RECORD_HEADER`] counted by the record length.
const BODY_HEADER: usize = RECORD_HEADER - 4;
/// Bytes of a `BATCH` payload before its records: first sequence, count.
const BATCH_HEADER: usize = 12;
/// Bytes of a whole `BATCH` frame before its records.
const BATCH_PREFIX: usize = super::FRAME_HEADER_LEN + BATCH_HEADER;

const F_MODULE: u8 = 1;
const F_FILE: u8 = 2;
const F_LINE: u8 = 4;
const F_FUNCTION: u8 = 8;
const F_THREAD_NAME: u8 = 16;
const F_KNOWN: u8 = F_MODULE | F_FILE | F_LINE | F_FUNCTION | F_THREAD_NAME;

/// Flag of each optional name, in wire order after the target.
const NAME_FLAGS: [u8; 4] = [F_MODULE, F_FILE, F_FUNCTION, F_THREAD_NAME];

/// Field added to a record that had to be cut to fit a frame; its value is
/// the number of bytes left out.
pub(crate) const TRUNCATED_KEY: &str = "logbraid.truncated";

/// A decoded `BATCH`: a first sequence number and that many records,
/// all validated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Batch<'a> {
    first: u64,
    count: u32,
    /// The records' encoding, already checked by [`Batch::decode`].
    records: &'a [u8],
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("first", &self.first)
            .field("count", &self.count)
            .field("bytes", &self.records.len())
            .finish()
    }
}

impl<'a> Batch<'a> {
    /// Sequence number of the first record (at least 1).
    pub const fn first_seq(&self) -> u64 {
        self.first
    }

    /// Sequence number of the last record.
    pub const fn last_seq(&self) -> u64 {
        // decode checked that this neither overflows nor underflows.
        self.first
            .saturating_add((self.count as u64).saturating_sub(1))
    }

    /// Number of records (at least 1).
    pub const fn len(&self) -> u32 {
        self.count
    }

    /// Always false: an empty batch is malformed.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The records, in order, each logged under `source` (usually the
    /// connection's [`Hello::source`](super::Hello::source)).
    pub fn records<'s>(&self, source: &'s Source) -> Records<'s>
    where
        'a: 's,
    {
        Records {
            rest: self.records,
            left: self.count,
            source,
        }
    }

    pub(crate) fn decode(payload: &'a [u8]) -> Result<Self, &'static str> {
        let mut c = Cursor::new(payload);
        let first = c.u64("truncated batch header")?;
        let count = c.u32("truncated batch header")?;
        if first == 0 {
            return Err("sequence numbers start at 1");
        }
        if count == 0 {
            return Err("empty batch");
        }
        if first.checked_add(u64::from(count) - 1).is_none() {
            return Err("sequence numbers overflow");
        }
        let records = c.rest;
        if u64::from(count) * RECORD_HEADER as u64 > records.len() as u64 {
            return Err("more records than the frame can hold");
        }
        for _ in 0..count {
            let r = parse(&mut c.rest)?;
            if r.fields.validate().is_none() {
                return Err("malformed fields");
            }
        }
        if !c.rest.is_empty() {
            return Err("bytes after the last record");
        }
        Ok(Batch {
            first,
            count,
            records,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let start = begin(out, FrameType::Batch);
        out.extend_from_slice(&self.first.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(self.records);
        end(out, start);
    }
}

/// Iterator over the records of a [`Batch`].
#[derive(Clone, Debug)]
pub struct Records<'s> {
    rest: &'s [u8],
    left: u32,
    source: &'s Source,
}

impl<'s> Iterator for Records<'s> {
    type Item = Record<'s>;

    fn next(&mut self) -> Option<Record<'s>> {
        if self.left == 0 {
            return None;
        }
        // The batch was validated when decoded, so this cannot fail; if it
        // did, ending early is still better than panicking.
        let Ok(r) = parse(&mut self.rest) else {
            self.left = 0;
            return None;
        };
        self.left -= 1;
        Some(Record {
            timestamp_ns: r.timestamp_ns,
            level: r.level,
            target: r.names[0],
            message: r.message,
            plain_message: false,
            module: r.optional(0),
            file: r.optional(1),
            line: r.line,
            function: r.optional(2),
            thread_id: r.thread_id,
            thread_name: r.optional(3),
            source: self.source,
            fields: r.fields,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Records<'_> {}

/// A record as parsed, before a source is attached.
struct Parsed<'a> {
    timestamp_ns: i64,
    level: Level,
    thread_id: u64,
    line: Option<u32>,
    flags: u8,
    /// Target, module, file, function, thread name.
    names: [&'a str; 5],
    message: &'a [u8],
    fields: Fields<'a>,
}

impl<'a> Parsed<'a> {
    /// Optional name `i` (0 module … 3 thread name).
    fn optional(&self, i: usize) -> Option<&'a str> {
        (self.flags & NAME_FLAGS[i] != 0).then_some(self.names[i + 1])
    }
}

/// Parses one record off the front of `rest` and advances past it. Checks
/// lengths, flags and UTF-8; not the fields (see [`Fields::validate`]).
fn parse<'a>(rest: &mut &'a [u8]) -> Result<Parsed<'a>, &'static str> {
    let mut c = Cursor::new(rest);
    let len = c.u32("truncated record")? as usize;
    if len < BODY_HEADER {
        return Err("record shorter than its header");
    }
    let body = c.bytes(len, "record longer than the frame")?;
    *rest = c.rest;

    let mut h = Cursor::new(body);
    let timestamp_ns = h.u64("")? as i64;
    let thread_id = h.u64("")?;
    let line = h.u32("")?;
    let msg_len = h.u32("")? as usize;
    let fields_len = h.u32("")? as usize;
    let level = Level::from_python(i64::from(h.u8("")?));
    let flags = h.u8("")?;
    let mut lens = [0usize; 5];
    for l in &mut lens {
        *l = h.u16("")? as usize;
    }
    if flags & !F_KNOWN != 0 {
        return Err("unknown record flags");
    }
    if flags & F_LINE == 0 && line != 0 {
        return Err("line given but flagged absent");
    }
    for (i, f) in NAME_FLAGS.iter().enumerate() {
        if flags & f == 0 && lens[i + 1] != 0 {
            return Err("name given but flagged absent");
        }
    }
    // At most 5 * 64 KiB + 2 * 4 GiB: no overflow in u64.
    let sum = lens.iter().sum::<usize>() as u64 + msg_len as u64 + fields_len as u64;
    if sum != h.rest.len() as u64 {
        return Err("record lengths do not add up");
    }
    // The five names lie back to back: one UTF-8 check covers them all,
    // provided each also starts on a character boundary.
    let block = h.bytes(lens.iter().sum(), "")?;
    let names = split_names(block, &lens).ok_or_else(|| bad_name(block, &lens))?;
    let message = h.bytes(msg_len, "")?;
    let fields = Fields::from_encoded(h.rest);
    Ok(Parsed {
        timestamp_ns,
        level,
        thread_id,
        line: (flags & F_LINE != 0).then_some(line),
        flags,
        names,
        message,
        fields,
    })
}

/// The five names of a record out of their concatenation, or `None` if one
/// of them is not UTF-8.
fn split_names<'a>(block: &'a [u8], lens: &[usize; 5]) -> Option<[&'a str; 5]> {
    let all = std::str::from_utf8(block).ok()?;
    let mut names = [""; 5];
    let mut at = 0;
    for (name, len) in names.iter_mut().zip(lens) {
        // `get` is None when a cut falls inside a character.
        *name = all.get(at..at + len)?;
        at += len;
    }
    Some(names)
}

/// Which name is not UTF-8, for the error message.
fn bad_name(block: &[u8], lens: &[usize; 5]) -> &'static str {
    const WHAT: [&str; 5] = [
        "target is not UTF-8",
        "module is not UTF-8",
        "file is not UTF-8",
        "function is not UTF-8",
        "thread name is not UTF-8",
    ];
    let mut at = 0;
    for (what, len) in WHAT.iter().zip(lens) {
        let name = block.get(at..at + len).unwrap_or_default();
        if std::str::from_utf8(name).is_err() {
            return what;
        }
        at += len;
    }
    "names are not UTF-8"
}

/// What [`BatchEncoder::push`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Push {
    /// The record is in the batch.
    Added,
    /// The record alone was larger than a frame: it is in the batch with
    /// its message and fields cut, and a `logbraid.truncated` field giving
    /// the number of bytes left out.
    Truncated,
    /// The record does not fit in what is left of the frame and was not
    /// added: finish the batch, then push it again.
    Full,
}

/// Builds `BATCH` frames: push records, then [`finish`](Self::finish) with
/// the batch's first sequence number. The buffer is kept between batches.
///
/// A batch never exceeds the encoder's frame limit, and every record pushed
/// decodes on the other side: names longer than 65535 bytes are cut at a
/// character boundary, malformed fields are cut at the first defect, and a
/// record larger than a whole frame is shortened (see [`Push::Truncated`]).
#[derive(Clone, Debug)]
pub struct BatchEncoder {
    /// The frame being built, with room for its header at the front.
    buf: Vec<u8>,
    count: u32,
    /// The limit on the frame's length field.
    max_frame: usize,
    /// Re-encoded fields, for records whose fields must be cut.
    scratch: FieldsBuf,
}

impl Default for BatchEncoder {
    /// An encoder for frames up to [`DEFAULT_MAX_FRAME`].
    fn default() -> Self {
        BatchEncoder::new(DEFAULT_MAX_FRAME)
    }
}

/// One record's parts as they go on the wire.
struct Parts<'a> {
    names: [&'a str; 5],
    flags: u8,
    message: &'a [u8],
}

impl<'a> Parts<'a> {
    fn of(r: &Record<'a>, max_name: usize) -> Self {
        let mut flags = 0;
        let mut names = [cut_str(r.target, max_name), "", "", "", ""];
        let optional = [r.module, r.file, r.function, r.thread_name];
        for (i, name) in optional.iter().enumerate() {
            if let Some(s) = name {
                flags |= NAME_FLAGS[i];
                names[i + 1] = cut_str(s, max_name);
            }
        }
        if r.line.is_some() {
            flags |= F_LINE;
        }
        Parts {
            names,
            flags,
            message: r.message,
        }
    }

    fn names_len(&self) -> usize {
        self.names.iter().map(|s| s.len()).sum()
    }
}

fn write_record(r: &Record<'_>, p: &Parts<'_>, fields: &[u8], out: &mut Vec<u8>) {
    let names = p.names_len();
    let body = BODY_HEADER + names + p.message.len() + fields.len();
    let mut h = [0u8; RECORD_HEADER];
    h[0..4].copy_from_slice(&(body as u32).to_le_bytes());
    h[4..12].copy_from_slice(&r.timestamp_ns.to_le_bytes());
    h[12..20].copy_from_slice(&r.thread_id.to_le_bytes());
    h[20..24].copy_from_slice(&r.line.unwrap_or(0).to_le_bytes());
    h[24..28].copy_from_slice(&(p.message.len() as u32).to_le_bytes());
    h[28..32].copy_from_slice(&(fields.len() as u32).to_le_bytes());
    h[32] = r.level.python_number();
    h[33] = p.flags;
    for (i, s) in p.names.iter().enumerate() {
        h[34 + 2 * i..36 + 2 * i].copy_from_slice(&(s.len() as u16).to_le_bytes());
    }
    out.reserve(4 + body);
    out.extend_from_slice(&h);
    for s in p.names {
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(p.message);
    out.extend_from_slice(fields);
}

/// The longest prefix of `message` of at most `max` bytes, backing off to a
/// character boundary when the cut falls inside a UTF-8 sequence.
fn cut_message(message: &[u8], max: usize) -> &[u8] {
    if message.len() <= max {
        return message;
    }
    let mut end = max;
    // A UTF-8 sequence is at most 4 bytes: back off at most 3.
    for _ in 0..3 {
        if end == 0 || message[end] & 0xC0 != 0x80 {
            break;
        }
        end -= 1;
    }
    if message[end] & 0xC0 == 0x80 {
        end = max;
    }
    &message[..end]
}

impl BatchEncoder {
    /// An encoder whose frames' length field stays within `max_frame`
    /// (raised to [`MIN_BATCH_FRAME`], lowered to `u32::MAX`).
    pub fn new(max_frame: usize) -> Self {
        let max_frame = max_frame.clamp(MIN_BATCH_FRAME, u32::MAX as usize);
        BatchEncoder {
            buf: vec![0; BATCH_PREFIX],
            count: 0,
            max_frame,
            scratch: FieldsBuf::new(),
        }
    }

    /// The limit on a frame's length field.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Records pushed since the last [`finish`](Self::finish).
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether no record was pushed since the last finish.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size in bytes of the frame [`finish`](Self::finish) would produce.
    pub fn frame_len(&self) -> usize {
        self.buf.len()
    }

    /// Drops the records pushed since the last finish.
    pub fn clear(&mut self) {
        self.buf.truncate(BATCH_PREFIX);
        self.count = 0;
    }

    /// Room for records left in the frame.
    fn room(&self) -> usize {
        (4 + self.max_frame).saturating_sub(self.buf.len())
    }

    /// Adds a record. Its source is not encoded: the collector knows it
    /// from the connection's `HELLO`.
    pub fn push(&mut self, r: &Record<'_>) -> Push {
        if self.count == u32::MAX {
            return Push::Full;
        }
        let parts = Parts::of(r, u16::MAX as usize);
        let fields: &[u8] = if r.fields.validate().is_some() {
            r.fields.encoded()
        } else {
            self.scratch.clear();
            for (k, v) in r.fields {
                self.scratch.push(k, v);
            }
            self.scratch.as_bytes()
        };
        let len = RECORD_HEADER + parts.names_len() + parts.message.len() + fields.len();
        if len <= self.room() {
            write_record(r, &parts, fields, &mut self.buf);
            self.count += 1;
            return Push::Added;
        }
        if self.count > 0 {
            return Push::Full;
        }
        self.push_cut(r);
        Push::Truncated
    }

    /// Adds a record too large for an empty frame, shortened to fit.
    fn push_cut(&mut self, r: &Record<'_>) {
        let original = RECORD_HEADER as u64
            + [r.target, r.module.unwrap_or(""), r.file.unwrap_or("")]
                .iter()
                .chain(&[r.function.unwrap_or(""), r.thread_name.unwrap_or("")])
                .map(|s| s.len() as u64)
                .sum::<u64>()
            + r.message.len() as u64
            + r.fields.encoded().len() as u64;
        // Room for the marker field: key length, key, tag, u64.
        let marker = 2 + TRUNCATED_KEY.len() + 1 + 8;
        let mut parts = Parts::of(r, u16::MAX as usize);
        if RECORD_HEADER + parts.names_len() + marker > self.room() {
            // Only with a small frame limit: MIN_BATCH_FRAME leaves room
            // for every name at 255 bytes.
            parts = Parts::of(r, 255);
        }
        let room = self
            .room()
            .saturating_sub(RECORD_HEADER + parts.names_len() + marker);

        // Whole fields, in order, within half the room; the message gets
        // the rest.
        let mut kept = FieldsBuf::new();
        for (k, v) in r.fields {
            let before = kept.as_bytes().len();
            kept.push(k, v);
            if kept.as_bytes().len() > room / 2 {
                let mut prefix = FieldsBuf::new();
                prefix.extend_encoded(&kept.as_bytes()[..before]);
                kept = prefix;
                break;
            }
        }
        parts.message = cut_message(r.message, room.saturating_sub(kept.as_bytes().len()));
        let kept_len = RECORD_HEADER as u64
            + parts.names_len() as u64
            + parts.message.len() as u64
            + kept.as_bytes().len() as u64;
        kept.push(TRUNCATED_KEY, Value::U64(original.saturating_sub(kept_len)));
        write_record(r, &parts, kept.as_bytes(), &mut self.buf);
        self.count += 1;
    }

    /// Appends the finished `BATCH` frame to `out`, numbering its records
    /// from `first_seq`, and empties the encoder for the next batch.
    /// Returns the number of records in the frame.
    ///
    /// Fails, changing nothing, when the batch is empty, `first_seq` is 0,
    /// or the last sequence number would pass `u64::MAX`.
    pub fn finish(&mut self, first_seq: u64, out: &mut Vec<u8>) -> Result<u32, WireError> {
        if self.count == 0 {
            return Err(WireError::Unencodable("an empty batch"));
        }
        if first_seq == 0 {
            return Err(WireError::Unencodable("sequence numbers start at 1"));
        }
        if first_seq.checked_add(u64::from(self.count) - 1).is_none() {
            return Err(WireError::Unencodable("sequence numbers overflow"));
        }
        let len = (self.buf.len() - 4) as u32;
        self.buf[0..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4] = super::VERSION;
        self.buf[5] = FrameType::Batch.as_u8();
        self.buf[6..14].copy_from_slice(&first_seq.to_le_bytes());
        self.buf[14..18].copy_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.buf);
        let n = self.count;
        self.clear();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, Frame};

    fn source() -> Source {
        Source {
            host: "h".into(),
            pid: 1,
            process_name: "p".into(),
        }
    }

    fn record<'a>(s: &'a Source, message: &'a [u8], fields: &'a [u8]) -> Record<'a> {
        Record::new(Level::Warn, "t", message, s)
            .with_timestamp(-5)
            .with_module("m")
            .with_line(0)
            .with_function("")
            .with_thread_id(3)
            .with_fields(Fields::from_encoded(fields))
    }

    fn one(frame: &[u8]) -> Vec<crate::OwnedRecord> {
        let s = source();
        let Frame::Batch(b) = decode(frame).unwrap() else {
            panic!()
        };
        b.records(&s)
            .map(|r| crate::OwnedRecord::from_record(&r))
            .collect()
    }

    #[test]
    fn cut_message_keeps_utf8_whole() {
        let m = "aé€😀".as_bytes();
        for max in 0..m.len() {
            let c = cut_message(m, max);
            assert!(c.len() <= max);
            assert!(std::str::from_utf8(c).is_ok(), "{max}");
            assert!(max - c.len() < 4);
        }
        assert_eq!(cut_message(b"\x80\x80\x80\x80\x80", 4), b"\x80\x80\x80\x80");
    }

    #[test]
    fn malformed_fields_are_cut_at_the_first_defect() {
        let s = source();
        let mut f = FieldsBuf::new();
        f.push_str("k", "v");
        let mut bytes = f.as_bytes().to_vec();
        bytes.extend_from_slice(&[9, 0, b'x']);
        let mut e = BatchEncoder::default();
        assert_eq!(e.push(&record(&s, b"m", &bytes)), Push::Added);
        let mut out = Vec::new();
        e.finish(1, &mut out).unwrap();
        let got = one(&out);
        assert_eq!(got[0].fields.as_bytes(), f.as_bytes());
    }

    #[test]
    fn oversize_record_is_cut_to_fit_and_marked() {
        let s = source();
        let mut f = FieldsBuf::new();
        f.push_str("small", "v");
        f.push_bytes("huge", &vec![b'x'; 10_000]);
        let message = "é".repeat(5000);
        let mut e = BatchEncoder::new(MIN_BATCH_FRAME);
        assert_eq!(e.push(&record(&s, b"ok", &[])), Push::Added);
        assert_eq!(
            e.push(&record(&s, message.as_bytes(), f.as_bytes())),
            Push::Full
        );
        let mut out = Vec::new();
        e.finish(1, &mut out).unwrap();
        assert_eq!(
            e.push(&record(&s, message.as_bytes(), f.as_bytes())),
            Push::Truncated
        );
        assert!(e.frame_len() <= 4 + MIN_BATCH_FRAME);
        out.clear();
        e.finish(2, &mut out).unwrap();
        // Filled up to the limit, less at most 3 bytes of a split character.
        assert!((4 + MIN_BATCH_FRAME - 3..=4 + MIN_BATCH_FRAME).contains(&out.len()));
        let got = one(&out);
        let r = got[0].as_record();
        assert!(std::str::from_utf8(r.message).is_ok());
        let fields: Vec<_> = r.fields.iter().collect();
        assert_eq!(fields[0], ("small", Value::Str(b"v")));
        let Some((TRUNCATED_KEY, Value::U64(cut))) = fields.last().copied() else {
            panic!("{fields:?}")
        };
        // Names: target "t" and module "m"; the function is present but empty.
        let original = RECORD_HEADER + 2 + message.len() + f.as_bytes().len();
        let kept = out.len() - BATCH_PREFIX - (2 + TRUNCATED_KEY.len() + 1 + 8);
        assert_eq!(cut as usize, original - kept);
    }

    #[test]
    fn finish_checks_sequence_numbers() {
        let s = source();
        let mut e = BatchEncoder::default();
        let mut out = Vec::new();
        assert!(e.finish(1, &mut out).is_err());
        let _ = e.push(&record(&s, b"a", &[]));
        let _ = e.push(&record(&s, b"b", &[]));
        assert!(e.finish(0, &mut out).is_err());
        assert!(e.finish(u64::MAX, &mut out).is_err());
        assert!(out.is_empty());
        assert_eq!(e.finish(u64::MAX - 1, &mut out), Ok(2));
        assert_eq!(one(&out).len(), 2);
        assert!(e.is_empty());
    }
}
