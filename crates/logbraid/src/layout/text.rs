//! The default human-readable line.

use super::time::Rfc3339Cache;
use super::{
    level_color, push_i64, push_lossy, push_u64, trailers, Layout, DIM, RESET, TRAILER_FIELDS,
};
use crate::level::Level;
use crate::record::{Fields, Record, Value};

/// The default layout: one line per record, fields as `key=value`.
///
/// ```text
/// 2026-11-22T10:04:05.123456Z INFO  [4242/main] app::db: connected user=ada note="two words"
/// ```
///
/// In order: the UTC timestamp with microseconds (RFC 3339), the level
/// padded to five columns, `[pid/thread]` (the thread's name, or its id
/// when it has none), the target, `: ` and the message as it was logged
/// (invalid UTF-8 becomes U+FFFD). The thread's name and the target follow
/// the message's rules below. A newline in the message starts an
/// indented continuation line, so a message can span lines (a traceback
/// stays readable) but can never make a line that looks like a record of
/// its own; a tab is kept; every other control character (carriage
/// return, the escape that starts terminal sequences, the C1 controls) is
/// written as `\r` or `\u{..}`, so a message cannot rewrite what a
/// terminal shows either. Then each field
/// as ` key=value`, in order. A text value is written bare unless it is
/// empty or holds whitespace, `=`, `"`, `\` or a control character; then it
/// is quoted, with `\"`, `\\`, `\n`, `\r`, `\t` and `\u{..}` escapes. Keys
/// follow the same rule.
///
/// The fields `exc_text` and `stack_info` (Python tracebacks) are not
/// written as `key=value`: as in Python's `Formatter`, each follows the line
/// on lines of its own, so the traceback stays readable and part of its
/// record; those lines are continuation lines too (indented by two spaces,
/// escaped like the message), so only a record's first line starts at the
/// margin, whatever its fields hold.
///
/// | option | default | effect |
/// |---|---|---|
/// | [`with_color`](TextLayout::with_color) | `false` | level in colour, timestamp dimmed (ANSI) |
#[derive(Clone, Debug, Default)]
pub struct TextLayout {
    color: bool,
    timestamp: Rfc3339Cache,
    heads: [HeadMemo; HEADS],
    fields: FieldsMemo,
}

/// What a line holds between its timestamp and its message
/// (`INFO  [4242/main] app::db: `) as written for the last record, and
/// what it was written from: the records after it of the same level,
/// process, thread and target (a loop's, a busy thread's) copy it rather
/// than writing the level, the pid and the thread again and scanning the
/// thread's name and the target. The memo is compared by value, not by
/// address: a name's memory may hold another name later.
///
/// A layout keeps [`HEADS`] of them, one for each thread id and pid modulo
/// that count: the writer merges the records of several threads into one
/// stream, and a collector those of several senders, where they take
/// turns. Each rests as [`Reuse`] says, so records that take turns more
/// than the slots can hold (many senders into a collector) pay next to
/// nothing for it.
#[derive(Clone, Debug, Default)]
struct HeadMemo {
    level: Option<Level>,
    pid: u32,
    thread_id: u64,
    thread_name: Vec<u8>,
    target: Vec<u8>,
    written: Vec<u8>,
    reuse: Reuse,
}

/// How many [`HeadMemo`]s a text layout keeps.
const HEADS: usize = 8;

impl HeadMemo {
    /// Targets and thread names longer than this are written, not kept.
    const MAX: usize = 256;

    fn push(&mut self, out: &mut Vec<u8>, record: &Record<'_>, color: bool) {
        let name = match record.thread_name {
            Some(name) if !name.is_empty() => name.as_bytes(),
            _ => b"",
        };
        let target = record.target.as_bytes();
        if self.level == Some(record.level)
            && self.pid == record.source.pid
            && self.thread_id == record.thread_id
            && same(&self.thread_name, name)
            && same(&self.target, target)
        {
            self.reuse.used();
            return out.extend_from_slice(&self.written);
        }
        let start = out.len();
        let level = record.level.as_str();
        if color {
            out.extend_from_slice(level_color(record.level));
            out.extend_from_slice(level.as_bytes());
            out.extend_from_slice(RESET);
        } else {
            out.extend_from_slice(level.as_bytes());
        }
        for _ in level.len()..5 {
            out.push(b' ');
        }
        out.extend_from_slice(b" [");
        push_u64(out, u64::from(record.source.pid));
        out.push(b'/');
        match record.thread_name {
            Some(name) if !name.is_empty() => push_message_str(out, name),
            _ => push_u64(out, record.thread_id),
        }
        out.extend_from_slice(b"] ");
        push_message_str(out, record.target);
        out.extend_from_slice(b": ");
        match self.reuse.missed(self.level.is_some()) {
            Miss::Wait => {}
            Miss::Keep if name.len() <= HeadMemo::MAX && target.len() <= HeadMemo::MAX => {
                self.reuse.kept();
                self.level = Some(record.level);
                self.pid = record.source.pid;
                self.thread_id = record.thread_id;
                self.thread_name.clear();
                self.thread_name.extend_from_slice(name);
                self.target.clear();
                self.target.extend_from_slice(target);
                self.written.clear();
                self.written.extend_from_slice(&out[start..]);
            }
            Miss::Keep | Miss::Forget => self.level = None,
        }
    }
}

/// When a memo of what a record wrote is kept for the records after it:
/// one that the next record did not use is not kept again for the next
/// [`Reuse::REST`] records, so records that differ each time pay next to
/// nothing for the memo.
#[derive(Clone, Copy, Debug, Default)]
struct Reuse {
    /// Whether a record used the memo since it was kept.
    used: bool,
    /// Records to go before a memo is kept again.
    rest: u8,
}

/// What to do after a record the memo did not serve.
enum Miss {
    /// Keep this record's writing (if it is small enough).
    Keep,
    /// Drop the memo held: nobody used it.
    Forget,
    /// Resting: keep nothing.
    Wait,
}

impl Reuse {
    /// How many records go without a memo after one went unused.
    const REST: u8 = 32;

    /// A record was served from the memo.
    fn used(&mut self) {
        self.used = true;
    }

    /// After a record the memo did not serve; `held`: whether one is held.
    fn missed(&mut self, held: bool) -> Miss {
        if self.rest > 0 {
            self.rest -= 1;
            Miss::Wait
        } else if !self.used && held {
            self.rest = Reuse::REST;
            Miss::Forget
        } else {
            Miss::Keep
        }
    }

    /// A new memo is kept.
    fn kept(&mut self) {
        self.used = false;
    }
}

/// The fields of a record as encoded and as written, so that the records
/// after it with the same fields (a syslog sender's facility, host and
/// program; a service's constant context) copy them rather than writing
/// them again. It rests as [`Reuse`] says, so records whose fields differ
/// each time pay next to nothing for it.
#[derive(Clone, Debug, Default)]
struct FieldsMemo {
    encoded: Vec<u8>,
    written: Vec<u8>,
    /// What [`push_fields`] said of them.
    trailer: bool,
    reuse: Reuse,
}

impl FieldsMemo {
    /// Encoded fields longer than this are not kept.
    const MAX: usize = 512;

    /// [`push_fields`], or a copy of what it wrote for the same fields.
    fn push(&mut self, out: &mut Vec<u8>, fields: Fields<'_>) -> bool {
        let encoded = fields.encoded();
        if encoded.is_empty() {
            return false;
        }
        if encoded == self.encoded.as_slice() {
            self.reuse.used();
            out.extend_from_slice(&self.written);
            return self.trailer;
        }
        let start = out.len();
        let trailer = push_fields(out, fields);
        match self.reuse.missed(!self.encoded.is_empty()) {
            Miss::Forget => self.encoded.clear(),
            Miss::Keep if encoded.len() <= FieldsMemo::MAX => {
                self.reuse.kept();
                self.encoded.clear();
                self.encoded.extend_from_slice(encoded);
                self.written.clear();
                self.written.extend_from_slice(&out[start..]);
                self.trailer = trailer;
            }
            Miss::Keep | Miss::Wait => {}
        }
        trailer
    }
}

impl TextLayout {
    /// A layout without colour.
    pub fn new() -> Self {
        TextLayout::default()
    }

    /// Colours the level (TRACE magenta, DEBUG blue, INFO green, WARN
    /// yellow, ERROR red, CRITICAL bold white on red) and dims the
    /// timestamp. Without it the output holds no escape bytes at all.
    #[must_use]
    pub fn with_color(mut self, color: bool) -> Self {
        self.color = color;
        self
    }
}

impl Layout for TextLayout {
    fn format(&mut self, record: &Record<'_>, out: &mut Vec<u8>) {
        if self.color {
            out.extend_from_slice(DIM);
            self.timestamp.write(record.timestamp_ns, out);
            out.extend_from_slice(RESET);
        } else {
            self.timestamp.write(record.timestamp_ns, out);
        }
        out.push(b' ');
        let slot = (record.thread_id ^ u64::from(record.source.pid)) % HEADS as u64;
        self.heads[slot as usize].push(out, record, self.color);
        if record.plain_message {
            // Nothing in it to escape: no need to look.
            out.extend_from_slice(record.message);
        } else {
            push_message(out, record.message);
        }

        if self.fields.push(out, record.fields) {
            // On continuation lines, escaped like the message: a traceback
            // cannot forge a record's line either.
            for text in trailers(record.fields) {
                out.extend_from_slice(CONTINUATION);
                push_message(out, text);
            }
        }
        out.push(b'\n');
    }
}

/// Writes each field but the tracebacks as ` key=value`, in order (see
/// [`TextLayout`] for the quoting). Returns whether a traceback field was
/// seen, for the caller to write after the line.
pub(super) fn push_fields(out: &mut Vec<u8>, fields: Fields<'_>) -> bool {
    let mut has_trailer = false;
    for (key, value) in fields {
        if TRAILER_FIELDS.contains(&key) {
            has_trailer = true;
            continue;
        }
        out.push(b' ');
        push_text(out, key.as_bytes());
        out.push(b'=');
        push_value(out, value);
    }
    has_trailer
}

fn push_value(out: &mut Vec<u8>, value: Value<'_>) {
    match value {
        Value::Str(s) => push_text(out, s),
        Value::I64(v) => push_i64(out, v),
        Value::U64(v) => push_u64(out, v),
        Value::F64(v) => {
            use std::io::Write;
            // Debug keeps the point (`1.0`, not `1`) and switches to an
            // exponent for very large or small values.
            let _ = write!(out, "{v:?}");
        }
        Value::Bool(v) => out.extend_from_slice(if v { b"true" } else { b"false" }),
        Value::Null => out.extend_from_slice(b"None"),
    }
}

/// What [`scan`] found in a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scan {
    /// Printable ASCII only: written as it is.
    Plain,
    /// No control byte, and bytes past ASCII: valid UTF-8 or not, to be
    /// checked.
    Wide,
    /// A byte below the space, DEL, or 0xC2, which leads the UTF-8 of the
    /// C1 controls (U+0080..U+009F) and of ordinary characters too (those
    /// take the careful path harmlessly).
    Control,
}

/// Classifies `bytes` (see [`Scan`]). This runs for every record (its
/// message, target and thread name), and for plain text it is the only
/// pass before the copy: sixteen bytes at a time on x86_64 (SSE2, which
/// every x86_64 CPU has), eight elsewhere.
#[inline]
fn scan(bytes: &[u8]) -> Scan {
    #[cfg(target_arch = "x86_64")]
    {
        scan_sse2(bytes)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        scan_words(bytes)
    }
}

/// Whether `a` and `b` hold the same bytes: for the short names of a
/// line's head, word by word in registers (the bytes past the last whole
/// word as the last word) rather than a call to `memcmp`.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return short_word(a) == short_word(b);
    }
    let mut at = 0;
    while at + 8 <= n {
        if word_at(a, at) != word_at(b, at) {
            return false;
        }
        at += 8;
    }
    word_at(a, n - 8) == word_at(b, n - 8)
}

/// Eight spaces: plain, so they fill out a word of text shorter than one
/// without changing what a scan finds.
const SPACES: u64 = 0x2020_2020_2020_2020;

/// [`scan`] sixteen bytes at a time. The bytes past the last whole sixteen
/// are read as the last sixteen of the text (some twice, which changes
/// nothing), text of eight to sixteen bytes as two overlapping halves, and
/// shorter text as a word filled out with spaces: no loop byte by byte.
#[cfg(target_arch = "x86_64")]
fn scan_sse2(bytes: &[u8]) -> Scan {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadl_epi64, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8, _mm_set_epi64x, _mm_setzero_si128, _mm_unpacklo_epi64,
    };
    let n = bytes.len();
    let p = bytes.as_ptr();
    // SAFETY: SSE2 is part of the x86_64 baseline; every load reads 16 (or
    // 8) bytes that end at or before `p + n` and start at or after `p`
    // (`n` checked before each), unaligned loads all.
    unsafe {
        let (below, del, c2) = (
            _mm_set1_epi8(0x1f),
            _mm_set1_epi8(0x7f),
            _mm_set1_epi8(0xc2u8 as i8),
        );
        // The bytes of `x` that are controls (x <= 0x1f unsigned, DEL) or
        // 0xC2, as 0xFF.
        let control = |x: __m128i| {
            _mm_or_si128(
                _mm_cmpeq_epi8(_mm_min_epu8(x, below), x),
                _mm_or_si128(_mm_cmpeq_epi8(x, del), _mm_cmpeq_epi8(x, c2)),
            )
        };
        let (mut bad, mut high) = (_mm_setzero_si128(), _mm_setzero_si128());
        if n >= 16 {
            let mut at = 0;
            while at + 16 <= n {
                let x = _mm_loadu_si128(p.add(at).cast());
                bad = _mm_or_si128(bad, control(x));
                high = _mm_or_si128(high, x);
                at += 16;
            }
            if at < n {
                let x = _mm_loadu_si128(p.add(n - 16).cast());
                bad = _mm_or_si128(bad, control(x));
                high = _mm_or_si128(high, x);
            }
        } else {
            let x = if n >= 8 {
                _mm_unpacklo_epi64(
                    _mm_loadl_epi64(p.cast()),
                    _mm_loadl_epi64(p.add(n - 8).cast()),
                )
            } else {
                _mm_set_epi64x(SPACES as i64, short_word(bytes) as i64)
            };
            bad = control(x);
            high = x;
        }
        if _mm_movemask_epi8(bad) != 0 {
            Scan::Control
        } else if _mm_movemask_epi8(high) != 0 {
            Scan::Wide
        } else {
            Scan::Plain
        }
    }
}

/// The eight bytes of `bytes` from `at` as a little-endian word.
#[inline]
fn word_at(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Text under eight bytes as a word, filled out with spaces: two
/// overlapping halves from four bytes on.
#[inline]
fn short_word(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    debug_assert!(n < 8);
    let half = |at: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&bytes[at..at + 4]);
        u64::from(u32::from_le_bytes(w))
    };
    if n >= 4 {
        half(0) | half(n - 4) << 32
    } else {
        let mut w = SPACES.to_le_bytes();
        w[..n].copy_from_slice(bytes);
        u64::from_le_bytes(w)
    }
}

/// [`scan`] eight bytes at a time, for any target. The bytes past the last
/// whole eight are read as the last eight of the text (some twice, which
/// changes nothing), and shorter text as one word filled out with spaces.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn scan_words(bytes: &[u8]) -> Scan {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero: some high bit is set in the result (an answer
    // for the word, exact, though not for each byte: a borrow may mark the
    // byte above a zero one).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    // Below 0x20: x - 0x20 per byte borrows, for bytes without the high
    // bit (those with it are masked by `!x`).
    let control = |x: u64| {
        x.wrapping_sub(0x20 * ONES) & !x & HIGH | zero(x ^ (0x7f * ONES)) | zero(x ^ (0xc2 * ONES))
    };
    let n = bytes.len();
    let (mut bad, mut high) = (0u64, 0u64);
    if n >= 8 {
        let mut at = 0;
        while at + 8 <= n {
            let x = word_at(bytes, at);
            bad |= control(x);
            high |= x;
            at += 8;
        }
        if at < n {
            let x = word_at(bytes, n - 8);
            bad |= control(x);
            high |= x;
        }
    } else {
        let x = short_word(bytes);
        bad = control(x);
        high = x;
    }
    if bad != 0 {
        Scan::Control
    } else if high & HIGH == 0 {
        Scan::Plain
    } else {
        Scan::Wide
    }
}

/// How a continuation line of a message starts.
const CONTINUATION: &[u8] = b"\n  ";

/// Writes a message: as it is, unless it holds a control character (one
/// scan of its bytes decides); see [`TextLayout`] for the rules.
fn push_message(out: &mut Vec<u8>, bytes: &[u8]) {
    push_escaped(out, bytes, CONTINUATION)
}

/// [`push_message`] for text already known to be UTF-8 (a name): the
/// same bytes, without checking the UTF-8 again.
fn push_message_str(out: &mut Vec<u8>, text: &str) {
    match scan(text.as_bytes()) {
        Scan::Plain | Scan::Wide => out.extend_from_slice(text.as_bytes()),
        Scan::Control => push_escaped(out, text.as_bytes(), CONTINUATION),
    }
}

/// [`push_message`] with `newline` written for each newline of `bytes`:
/// the start of a continuation line, indented as the caller's layout
/// indents them.
pub(super) fn push_escaped(out: &mut Vec<u8>, bytes: &[u8], newline: &[u8]) {
    match scan(bytes) {
        Scan::Plain => return out.extend_from_slice(bytes),
        Scan::Wide => return push_lossy(out, bytes),
        Scan::Control => {}
    }
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        let mut run = 0;
        for (i, c) in valid.char_indices() {
            if !c.is_control() || c == '\t' {
                continue;
            }
            out.extend_from_slice(&valid.as_bytes()[run..i]);
            run = i + c.len_utf8();
            match c {
                '\n' => out.extend_from_slice(newline),
                '\r' => out.extend_from_slice(b"\\r"),
                c => {
                    use std::io::Write;
                    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
                }
            }
        }
        out.extend_from_slice(&valid.as_bytes()[run..]);
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
}

fn needs_quotes(c: char) -> bool {
    c.is_whitespace() || c.is_control() || matches!(c, '=' | '"' | '\\')
}

/// Whether text can be written without quotes; `ascii` is whether it is
/// all ASCII (known to the caller, which then copies it without a UTF-8
/// check).
fn is_bare(bytes: &[u8], ascii: bool) -> bool {
    if bytes.is_empty() {
        return false;
    }
    if ascii {
        // In ASCII, whitespace and control characters are the bytes up to
        // the space, and DEL.
        return bytes
            .iter()
            .all(|&b| b > b' ' && !matches!(b, 0x7f | b'=' | b'"' | b'\\'));
    }
    // A replacement character needs no quoting: it is one visible character
    // like any other.
    bytes
        .utf8_chunks()
        .all(|chunk| !chunk.valid().chars().any(needs_quotes))
}

/// The ASCII bytes a key or value is written bare with (see [`is_bare`]):
/// printable, and neither a space, `=`, `"` nor `\`.
const BARE_ASCII: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = b'!';
    while b < 0x7f {
        t[b as usize] = !matches!(b, b'=' | b'"' | b'\\');
        b += 1;
    }
    t
};

/// Writes a key or text value bare, or quoted and escaped when it would
/// otherwise be ambiguous (see [`TextLayout`]).
fn push_text(out: &mut Vec<u8>, bytes: &[u8]) {
    // Nearly every key and value is a short bare ASCII word: one pass
    // over a table decides, and the bytes are copied as they are.
    if !bytes.is_empty() && bytes.iter().all(|&b| BARE_ASCII[usize::from(b)]) {
        out.extend_from_slice(bytes);
        return;
    }
    let ascii = bytes.is_ascii();
    if is_bare(bytes, ascii) {
        if ascii {
            out.extend_from_slice(bytes);
        } else {
            push_lossy(out, bytes);
        }
        return;
    }
    out.push(b'"');
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        let mut run = 0;
        for (i, c) in valid.char_indices() {
            let escape: &[u8] = match c {
                '"' => b"\\\"",
                '\\' => b"\\\\",
                '\n' => b"\\n",
                '\r' => b"\\r",
                '\t' => b"\\t",
                c if c.is_control() => b"",
                _ => continue,
            };
            out.extend_from_slice(&valid.as_bytes()[run..i]);
            run = i + c.len_utf8();
            if escape.is_empty() {
                use std::io::Write;
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            } else {
                out.extend_from_slice(escape);
            }
        }
        out.extend_from_slice(&valid.as_bytes()[run..]);
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::level::Level;
    use crate::record::FieldsBuf;

    fn line(layout: &mut TextLayout, rec: &Record<'_>) -> String {
        let mut out = Vec::new();
        layout.format(rec, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn text(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        push_text(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    /// A layout that has written other records writes each record as a
    /// fresh one does: whichever part of what the head is made of changes,
    /// back and forth, in colour or not, with names to escape or too long
    /// to keep.
    #[test]
    fn a_record_after_others_is_written_as_alone() {
        let (src, f) = (source(), FieldsBuf::new());
        let other = crate::record::Source {
            pid: 99,
            ..source()
        };
        let long = "t".repeat(HeadMemo::MAX + 1);
        let base = bare(&src, &f);
        let records = [
            base,
            base,
            Record {
                level: Level::Warn,
                ..base
            },
            base,
            Record {
                source: &other,
                ..base
            },
            base.with_thread_id(8),
            base.with_thread_name("main"),
            base.with_thread_name("main").with_thread_id(8),
            base.with_thread_name(""),
            base.with_thread_name("ma\nin\u{1b}"),
            base.with_thread_name("main"),
            Record {
                target: "app::db\r",
                ..base
            },
            Record {
                target: "app::dc",
                ..base
            },
            Record {
                target: &long,
                ..base
            },
            Record {
                target: &long,
                ..base
            },
            base,
        ];
        // Then records taking turns, and one repeated.
        let turns = (0..96).map(|i| records[i % 3 + 4]).chain([base; 8]);
        let records: Vec<Record<'_>> = records.into_iter().chain(turns).collect();
        for color in [false, true] {
            let mut layout = TextLayout::new().with_color(color);
            for (i, rec) in records.iter().enumerate() {
                assert_eq!(
                    line(&mut layout, rec),
                    line(&mut TextLayout::new().with_color(color), rec),
                    "record {i}, colour {color}"
                );
            }
        }
    }

    #[test]
    fn exact_line_with_fields() {
        let src = source();
        let mut f = FieldsBuf::new();
        f.push_str("user", "ada");
        f.push("n", Value::I64(-3));
        f.push("big", Value::U64(u64::MAX));
        f.push("ratio", Value::F64(1.0));
        f.push("tiny", Value::F64(1e-9));
        f.push("ok", Value::Bool(true));
        f.push("gone", Value::Null);
        f.push_str("note", "two words");
        f.push_str("empty", "");
        let rec = record(&src, &f);
        assert_eq!(
            line(&mut TextLayout::new(), &rec),
            "2023-11-14T22:13:20.123456Z INFO  [4242/main] app::db: connected \
             user=ada n=-3 big=18446744073709551615 ratio=1.0 tiny=1e-9 ok=true gone=None \
             note=\"two words\" empty=\"\"\n"
        );
    }

    #[test]
    fn thread_id_when_unnamed_and_level_padding() {
        let src = source();
        let f = FieldsBuf::new();
        let mut layout = TextLayout::new();
        let mut rec = bare(&src, &f);
        rec.thread_name = Some("");
        let expected = [
            (Level::Trace, "TRACE"),
            (Level::Debug, "DEBUG"),
            (Level::Info, "INFO "),
            (Level::Warn, "WARN "),
            (Level::Error, "ERROR"),
            (Level::Critical, "CRITICAL"),
        ];
        for (level, shown) in expected {
            rec.level = level;
            assert_eq!(
                line(&mut layout, &rec),
                format!("2023-11-14T22:13:20.123456Z {shown} [4242/7] app::db: connected\n")
            );
        }
    }

    #[test]
    fn message_is_raw_but_valid_utf8() {
        let src = source();
        let f = FieldsBuf::new();
        let mut rec = bare(&src, &f);
        rec.message = b"two\nlines\tand \xff\xc3\x28 bad \"bytes\"";
        assert_eq!(
            line(&mut TextLayout::new(), &rec),
            "2023-11-14T22:13:20.123456Z INFO  [4242/7] app::db: two\n  lines\tand \u{FFFD}\u{FFFD}( bad \"bytes\"\n"
        );
    }

    #[test]
    fn same_compares_every_byte_of_every_length() {
        for len in 0usize..40 {
            let a: Vec<u8> = (0..len as u8).map(|i| b'a' + i % 26).collect();
            assert!(same(&a, &a.clone()), "{len}");
            if len > 0 {
                assert!(!same(&a, &a[..len - 1]), "{len}");
            }
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 0x01;
                assert!(!same(&a, &b), "{len} {at}");
            }
        }
    }

    #[test]
    fn control_and_wide_bytes_are_found_at_every_position() {
        #[cfg(target_arch = "x86_64")]
        assert_finds_every_byte(scan_sse2);
        assert_finds_every_byte(scan_words);
    }

    fn assert_finds_every_byte(scan: fn(&[u8]) -> Scan) {
        for len in 0..40 {
            let clean = vec![b'a'; len];
            assert_eq!(scan(&clean), Scan::Plain, "{len}");
            for at in 0..len {
                for (b, want) in [
                    (0u8, Scan::Control),
                    (b'\n', Scan::Control),
                    (0x1b, Scan::Control),
                    (0x1f, Scan::Control),
                    (0x7f, Scan::Control),
                    (0xc2, Scan::Control),
                    (b' ', Scan::Plain),
                    (b'\t', Scan::Control),
                    (b'~', Scan::Plain),
                    (0x80, Scan::Wide),
                    (0xc3, Scan::Wide),
                    (0xe2, Scan::Wide),
                    (0xff, Scan::Wide),
                ] {
                    let mut v = clean.clone();
                    v[at] = b;
                    assert_eq!(scan(&v), want, "{len} {at} {b:#x}");
                }
            }
        }
    }

    #[test]
    fn a_message_cannot_forge_a_line_nor_drive_a_terminal() {
        let src = source();
        let f = FieldsBuf::new();
        let mut rec = bare(&src, &f);
        let head = "2023-11-14T22:13:20.123456Z INFO  [4242/7] app::db: ";
        for (message, shown) in [
            (
                "ok\n2023-11-14T22:13:21.000000Z INFO  [1/x] auth: user admin logged in".as_bytes(),
                "ok\n  2023-11-14T22:13:21.000000Z INFO  [1/x] auth: user admin logged in",
            ),
            (
                b"\x1b[2J\x1b[31mred\x1b[0m",
                "\\u{1b}[2J\\u{1b}[31mred\\u{1b}[0m",
            ),
            ("csi\u{9b}31m".as_bytes(), "csi\\u{9b}31m"),
            (b"over\rwrite", "over\\rwrite"),
            (b"nul\0bel\x07del\x7f", "nul\\u{0}bel\\u{7}del\\u{7f}"),
            (
                "caf\u{e9} \u{a0}ok\ttab".as_bytes(),
                "caf\u{e9} \u{a0}ok\ttab",
            ),
        ] {
            rec.message = message;
            let got = line(&mut TextLayout::new(), &rec);
            assert_eq!(got, format!("{head}{shown}\n"), "{message:?}");
            // Every line after the first is a continuation.
            assert!(got.lines().skip(1).all(|l| l.starts_with("  ")), "{got:?}");
        }
    }

    #[test]
    fn fields_copied_from_the_memo_are_the_fields_written_anew() {
        let src = source();
        let field_sets: Vec<FieldsBuf> = [
            &[("user", &b"ada"[..])][..],
            &[("user", b"bob"), ("note", b"two words")],
            &[("exc_text", b"Traceback:\n  x"), ("user", b"ada")],
            &[],
        ]
        .iter()
        .map(|pairs| {
            let mut f = FieldsBuf::new();
            for (k, v) in *pairs {
                f.push_bytes(k, v);
            }
            f
        })
        .chain(hostile_strings(40).into_iter().map(|v| {
            let mut f = FieldsBuf::new();
            f.push_bytes("k", &v);
            f
        }))
        .collect();
        // Runs of the same fields, changes, returns to earlier ones, and
        // fields that differ every time (long enough to rest the memo).
        let mut order: Vec<usize> = vec![0, 0, 0, 1, 1, 0, 2, 2, 2, 3, 3, 0, 1, 0, 1];
        order.extend(4..field_sets.len());
        order.extend([0, 0, 2, 2, 1]);
        order.extend((4..field_sets.len()).rev());
        order.extend([1, 1, 1]);
        let mut memo = TextLayout::new();
        for &i in &order {
            let rec = record(&src, &field_sets[i]);
            assert_eq!(
                line(&mut memo, &rec),
                line(&mut TextLayout::new(), &rec),
                "{i}"
            );
        }
    }

    #[test]
    fn the_bare_table_agrees_with_the_rule() {
        for b in 0..=255u8 {
            let ascii = b.is_ascii();
            let rule = ascii && is_bare(&[b], true);
            assert_eq!(BARE_ASCII[usize::from(b)], rule, "{b:#x}");
        }
    }

    #[test]
    fn values_are_quoted_only_when_needed() {
        assert_eq!(text(b"plain-value_1.2/x:y"), "plain-value_1.2/x:y");
        assert_eq!(text("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(text(b""), "\"\"");
        assert_eq!(text(b"a b"), "\"a b\"");
        assert_eq!(text(b"a=b"), "\"a=b\"");
        assert_eq!(text(b"say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(text(b"C:\\dir"), "\"C:\\\\dir\"");
        assert_eq!(text(b"l1\nl2\r\tx"), "\"l1\\nl2\\r\\tx\"");
        assert_eq!(text(b"bell\x07del\x7f"), "\"bell\\u{7}del\\u{7f}\"");
        assert_eq!(text("nbsp\u{a0}".as_bytes()), "\"nbsp\u{a0}\"");
        assert_eq!(text("c1\u{85}".as_bytes()), "\"c1\\u{85}\"");
        assert_eq!(text(b"bad\xff"), "bad\u{FFFD}");
        assert_eq!(text(b"bad\xff here"), "\"bad\u{FFFD} here\"");
    }

    /// Reads back what `push_text` wrote.
    fn unquote(text: &str) -> String {
        let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
            return text.to_string();
        };
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                assert!(c != '"' && !c.is_control(), "unescaped {c:?} in {text:?}");
                out.push(c);
                continue;
            }
            match chars.next().unwrap() {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    assert_eq!(chars.next(), Some('{'));
                    let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                other => out.push(other),
            }
        }
        out
    }

    #[test]
    fn random_values_read_back() {
        for s in hostile_strings(5000) {
            let written = text(&s);
            assert!(!written.contains(['\n', '\r']), "{written:?}");
            let bare = !written.starts_with('"');
            assert!(!bare || !written.contains([' ', '=', '\\']), "{written:?}");
            assert_eq!(unquote(&written), String::from_utf8_lossy(&s), "{s:?}");
        }
    }

    #[test]
    fn keys_that_need_it_are_quoted() {
        let src = source();
        let mut f = FieldsBuf::new();
        f.push_str("odd key", "v");
        let rec = bare(&src, &f);
        assert!(line(&mut TextLayout::new(), &rec).ends_with(": connected \"odd key\"=v\n"));
    }

    #[test]
    fn tracebacks_follow_the_line() {
        let src = source();
        let mut f = FieldsBuf::new();
        f.push_str(
            "stack_info",
            "Stack (most recent call last):\n  File \"a.py\"\n",
        );
        f.push_str("user", "ada");
        f.push_str(
            "exc_text",
            "Traceback (most recent call last):\n  File \"a.py\", line 1\nValueError: x",
        );
        let rec = record(&src, &f);
        assert_eq!(
            line(&mut TextLayout::new(), &rec),
            "2023-11-14T22:13:20.123456Z INFO  [4242/main] app::db: connected user=ada\n  \
             Traceback (most recent call last):\n    File \"a.py\", line 1\n  ValueError: x\n  \
             Stack (most recent call last):\n    File \"a.py\"\n"
        );

        // Empty or non-text traceback fields add nothing.
        let mut f = FieldsBuf::new();
        f.push_str("exc_text", "");
        f.push("stack_info", Value::Null);
        let rec = record(&src, &f);
        assert_eq!(
            line(&mut TextLayout::new(), &rec),
            "2023-11-14T22:13:20.123456Z INFO  [4242/main] app::db: connected\n"
        );
    }

    #[test]
    fn no_field_of_a_record_can_start_a_line() {
        let src = source();
        let forged = "2023-11-14T22:13:20.123456Z ERROR [1/main] admin: forged\r\x1b[2K";
        let mut f = FieldsBuf::new();
        f.push_str("exc_text", &format!("Traceback:\n{forged}"));
        let mut rec = record(&src, &f);
        let target = format!("app\n{forged}");
        let thread = format!("main\n{forged}");
        rec.target = &target;
        rec.thread_name = Some(&thread);
        let written = line(&mut TextLayout::new(), &rec);
        // Only the record's own line starts at the margin; every other
        // line is a continuation, and no control byte is left.
        let margins: Vec<&str> = written.lines().filter(|l| !l.starts_with("  ")).collect();
        assert_eq!(margins.len(), 1, "{written}");
        assert!(margins[0].starts_with("2023-11-14T22:13:20.123456Z INFO  [4242/main"));
        assert!(!written.contains(['\r', '\x1b']), "{written:?}");
        assert_eq!(
            written.matches("forged\\r\\u{1b}[2K").count(),
            3,
            "{written}"
        );
    }

    #[test]
    fn color_wraps_level_and_dims_time() {
        let src = source();
        let f = FieldsBuf::new();
        let mut rec = record(&src, &f);
        let mut layout = TextLayout::new().with_color(true);
        assert_eq!(
            line(&mut layout, &rec),
            "\x1b[2m2023-11-14T22:13:20.123456Z\x1b[0m \x1b[32mINFO\x1b[0m  [4242/main] app::db: connected\n"
        );
        let codes = [
            (Level::Trace, "\x1b[35mTRACE"),
            (Level::Debug, "\x1b[34mDEBUG"),
            (Level::Warn, "\x1b[33mWARN"),
            (Level::Error, "\x1b[31mERROR"),
            (Level::Critical, "\x1b[1;37;41mCRITICAL"),
        ];
        for (level, start) in codes {
            rec.level = level;
            assert!(line(&mut layout, &rec).contains(&format!("{start}\x1b[0m")));
        }
        let plain = line(&mut TextLayout::new().with_color(false), &rec);
        assert!(!plain.as_bytes().contains(&0x1b));
    }

    #[test]
    fn malformed_fields_do_not_panic() {
        let src = source();
        let bytes = [3u8, 0, b'k', 0, 255, 255, 255, 255, b'x'];
        let empty = FieldsBuf::new();
        let mut rec = bare(&src, &empty);
        rec.fields = crate::record::Fields::from_encoded(&bytes);
        assert_eq!(
            line(&mut TextLayout::new(), &rec),
            "2023-11-14T22:13:20.123456Z INFO  [4242/7] app::db: connected\n"
        );
    }
}
