//! Layouts turn a [`Record`] into the bytes of one line.
//!
//! Three layouts cover what people ask of a log file, and a fourth what
//! they ask of a terminal:
//!
//! | layout | for | shape |
//! |---|---|---|
//! | [`TextLayout`] | people reading a terminal or a file | `2026-11-22T10:04:05.123456Z INFO  [4242/main] app::db: connected user=ada` |
//! | [`JsonLayout`] | machines: one JSON object per line | `{"ts":"…","level":"INFO","target":"app::db","msg":"connected",…}` |
//! | [`PythonLayout`] | programs moving from Python's `logging` | any `%(asctime)s %(levelname)-8s %(message)s` format |
//! | [`PrettyLayout`] | people at a terminal (the console's text layout in colour) | `10:04:05.123 INFO     app::db connected user=ada      src/db.rs:42` |
//!
//! [`LayoutSpec`] names one of them as configuration does (`"text"`,
//! `"json"` or a `%`-style format) and builds it.
//!
//! ```
//! use logbraid::layout::{Layout, LayoutSpec};
//! use logbraid::{Fields, Level, Record, Source};
//!
//! let spec = LayoutSpec::parse("%(levelname)s:%(name)s:%(message)s", None)?;
//! let mut layout = spec.build(false);
//! let source = Source { host: "h".into(), pid: 1, process_name: "app".into() };
//! let record = Record::new(Level::Warn, "app.db", b"disk almost full", &source);
//! let mut out = Vec::new();
//! layout.format(&record, &mut out);
//! assert_eq!(out, b"WARNING:app.db:disk almost full\n");
//! # Ok::<(), logbraid::layout::LayoutError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::level::Level;
use crate::record::{Fields, Record, Value};

mod json;
mod pretty;
mod python;
mod text;
use crate::time;

pub(crate) use json::push_string;
pub use json::JsonLayout;
pub use pretty::PrettyLayout;
pub use python::{LayoutError, LayoutErrorKind, PythonLayout};
pub use text::TextLayout;

/// Formats records. A layout is owned by one sink and used from one thread
/// at a time, so it may keep caches (the formatted date of the current
/// second, say) in `&mut self`.
pub trait Layout: Send + fmt::Debug {
    /// Appends one complete line for `record` to `out`, ending in `\n`.
    fn format(&mut self, record: &Record<'_>, out: &mut Vec<u8>);

    /// Whether the layout lines its output up with the width of the
    /// terminal, and so wants [`Layout::set_columns`] called. A sink asks
    /// only then, which keeps the terminal out of every other layout's
    /// path. Default: no.
    fn wants_columns(&self) -> bool {
        false
    }

    /// The width of the terminal in columns, `None` when it is not known;
    /// the console calls this before the first record of each batch, so a
    /// resized window is followed. Default: ignored.
    fn set_columns(&mut self, columns: Option<usize>) {
        let _ = columns;
    }
}

impl<L: Layout + ?Sized> Layout for Box<L> {
    fn format(&mut self, record: &Record<'_>, out: &mut Vec<u8>) {
        (**self).format(record, out)
    }
    fn wants_columns(&self) -> bool {
        (**self).wants_columns()
    }
    fn set_columns(&mut self, columns: Option<usize>) {
        (**self).set_columns(columns)
    }
}

/// Which layout to use, as configuration names it.
///
/// Parsed from one string: `"text"` and `"json"` (in any case, surrounding
/// blanks ignored) name [`TextLayout`] and [`JsonLayout`]; anything else is a
/// Python `%`-style format for [`PythonLayout`], checked when parsed. The
/// default is `Text`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LayoutSpec {
    /// [`TextLayout`].
    #[default]
    Text,
    /// [`JsonLayout`].
    Json,
    /// [`PythonLayout`] with this format and optional `datefmt`.
    Python {
        /// The `%`-style format, e.g. `%(asctime)s %(levelname)s %(message)s`.
        format: String,
        /// A `strftime` pattern for `%(asctime)s`; `None` for Python's
        /// default `2026-11-22 10:04:05,123`.
        datefmt: Option<String>,
    },
}

impl LayoutSpec {
    /// Reads a layout name or a `%`-style format. `datefmt` only applies to
    /// a `%`-style format; with `"text"` or `"json"` it is ignored, so that a
    /// configuration can keep one `datefmt` while switching layouts.
    ///
    /// # Errors
    ///
    /// A malformed `%`-style format (see [`PythonLayout::new`]).
    pub fn parse(format: &str, datefmt: Option<&str>) -> Result<LayoutSpec, LayoutError> {
        let word = format.trim();
        if word.eq_ignore_ascii_case("text") {
            return Ok(LayoutSpec::Text);
        }
        if word.eq_ignore_ascii_case("json") {
            return Ok(LayoutSpec::Json);
        }
        PythonLayout::new(format, datefmt)?;
        Ok(LayoutSpec::Python {
            format: format.to_string(),
            datefmt: datefmt.map(str::to_string),
        })
    }

    /// The `format` and `datefmt` that [`LayoutSpec::parse`] reads back
    /// into this spec, as a configuration holds them.
    pub fn words(&self) -> (String, Option<String>) {
        match self {
            LayoutSpec::Text => ("text".to_string(), None),
            LayoutSpec::Json => ("json".to_string(), None),
            LayoutSpec::Python { format, datefmt } => (format.clone(), datefmt.clone()),
        }
    }

    /// Builds the layout. `color` asks for ANSI colours (JSON is never
    /// coloured); decide it from the terminal and `NO_COLOR` before
    /// calling. `Text` in colour is the console's [`PrettyLayout`]
    /// (aligned columns, the caller's `file:line`, highlighted
    /// tracebacks): colour is only ever asked for a terminal, or where the
    /// user forced it. Without colour it is the plain [`TextLayout`]. A
    /// `%`-style format in colour colours its `%(levelname)s`.
    ///
    /// A `Python` spec built by hand rather than by [`LayoutSpec::parse`]
    /// may hold a malformed format; it then falls back to [`TextLayout`], so
    /// records are still written. Parse first to see the error.
    pub fn build(&self, color: bool) -> Box<dyn Layout> {
        match self {
            LayoutSpec::Text if color => Box::new(PrettyLayout::new()),
            LayoutSpec::Text => Box::new(TextLayout::new()),
            LayoutSpec::Json => Box::new(JsonLayout::new()),
            LayoutSpec::Python { format, datefmt } => {
                match PythonLayout::new(format, datefmt.as_deref()) {
                    Ok(layout) => Box::new(layout.with_color(color)),
                    Err(_) => Box::new(TextLayout::new().with_color(color)),
                }
            }
        }
    }
}

impl FromStr for LayoutSpec {
    type Err = LayoutError;

    /// [`LayoutSpec::parse`] without a `datefmt`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LayoutSpec::parse(s, None)
    }
}

/// ANSI escape that starts the colour of a level.
pub(crate) const fn level_color(level: Level) -> &'static [u8] {
    match level {
        Level::Trace => b"\x1b[35m",
        Level::Debug => b"\x1b[34m",
        Level::Info => b"\x1b[32m",
        Level::Warn => b"\x1b[33m",
        Level::Error => b"\x1b[31m",
        Level::Critical => b"\x1b[1;37;41m",
    }
}

/// ANSI escape that dims text (the timestamp).
pub(crate) const DIM: &[u8] = b"\x1b[2m";
/// ANSI escape that ends any colour.
pub(crate) const RESET: &[u8] = b"\x1b[0m";
/// ANSI escape for bold text (a traceback's header).
pub(crate) const BOLD: &[u8] = b"\x1b[1m";
/// ANSI escape for bold red (the exception that ends a traceback).
pub(crate) const BOLD_RED: &[u8] = b"\x1b[1;31m";
/// ANSI escape for cyan (a traceback frame's line number).
pub(crate) const CYAN: &[u8] = b"\x1b[36m";
/// ANSI escape for dim cyan (the time in Rich's colours).
pub(crate) const DIM_CYAN: &[u8] = b"\x1b[2;36m";
/// ANSI escape for bold red, reversed (CRITICAL in Rich's colours).
pub(crate) const BOLD_REVERSE_RED: &[u8] = b"\x1b[1;7;31m";

/// The escapes written besides the levels' colours.
const OWN_ESCAPES: [&[u8]; 7] = [DIM, RESET, BOLD, BOLD_RED, CYAN, DIM_CYAN, BOLD_REVERSE_RED];

/// Whether `seq` is one of the escape sequences these layouts write (the
/// colours above): the console lets those through and strips every other.
pub(crate) fn is_own_escape(seq: &[u8]) -> bool {
    OWN_ESCAPES.contains(&seq) || Level::ALL.iter().any(|&l| seq == level_color(l))
}

/// Appends `bytes` as UTF-8, each invalid sequence replaced by U+FFFD
/// (the same replacements as `String::from_utf8_lossy`).
#[inline]
pub(crate) fn push_lossy(out: &mut Vec<u8>, bytes: &[u8]) {
    // `from_utf8` checks whole words at a time; walking the chunks is only
    // needed when there is something to replace.
    if let Ok(s) = std::str::from_utf8(bytes) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    for chunk in bytes.utf8_chunks() {
        out.extend_from_slice(chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
}

/// The decimal digits of 0 to 99, two by two.
pub(crate) const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `v` in decimal (this runs for several numbers of every line).
///
/// Below 10⁸ (pids, thread ids, most values), the eight digits are made
/// at once from two halves, four pairs that do not wait on each other, and
/// the leading zeros are counted in the word they make and shifted out;
/// then the word is stored whole and only the digits kept. A
/// copy of constant length, no `memcpy` call, no count of the digits
/// beforehand, no chain of divisions each waiting on the last.
#[inline(always)]
pub(crate) fn push_u64(out: &mut Vec<u8>, v: u64) {
    if v >= 100_000_000 {
        return push_u64_long(out, v);
    }
    let v = v as u32;
    let (high, low) = ((v / 10_000) as usize, (v % 10_000) as usize);
    let pair = |p: usize| u64::from(u16::from_le_bytes([PAIRS[2 * p], PAIRS[2 * p + 1]]));
    // Little-endian: the first digit is the lowest byte. Made in a
    // register, not in memory: eight bytes read back over four two-byte
    // stores would wait for the stores (no store forwarding), which cost
    // more than the divisions saved.
    let digits =
        pair(high / 100) | pair(high % 100) << 16 | pair(low / 100) << 32 | pair(low % 100) << 48;
    // Leading zeros are the low bytes that are b'0'; the last digit stays.
    let zeros = ((digits ^ 0x3030_3030_3030_3030).trailing_zeros() / 8).min(7) as usize;
    put_digits(out, &(digits >> (8 * zeros)).to_le_bytes(), 8 - zeros);
}

/// [`push_u64`] from 10⁸ on: two digits at a time, from the last, at the
/// end of the first 20 bytes of a buffer.
#[cold]
fn push_u64_long(out: &mut Vec<u8>, mut v: u64) {
    /// The most digits of a `u64`.
    const MAX: usize = 20;
    let mut buf = [0u8; 2 * MAX];
    let mut i = MAX;
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    put_digits(out, &buf[i..i + MAX], MAX - i);
}

/// Appends the first `n` bytes of `window`: the whole window is copied
/// (its length is a constant where this is inlined), the rest left past
/// the end of `out`.
#[inline(always)]
fn put_digits(out: &mut Vec<u8>, window: &[u8], n: usize) {
    out.reserve(window.len());
    let len = out.len();
    let spare = &mut out.spare_capacity_mut()[..window.len()];
    for (dst, src) in spare.iter_mut().zip(window) {
        dst.write(*src);
    }
    assert!(n <= window.len());
    // SAFETY: the first `n` bytes past the length, reserved, were written
    // just above (all of the window was).
    unsafe { out.set_len(len + n) };
}

/// Appends `v` in decimal.
#[inline]
pub(crate) fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// The fields Python's `Formatter` appends after the line, each on lines
/// of its own, rather than writing them as `key=value`.
pub(crate) const TRAILER_FIELDS: [&str; 2] = ["exc_text", "stack_info"];

/// The traceback fields of a record (`exc_text`, then `stack_info`; the
/// last of each when repeated), empty and non-text values skipped and one
/// trailing newline of each dropped, so the record still ends in exactly
/// one whatever layout writes them.
pub(crate) fn trailers<'a>(fields: Fields<'a>) -> impl Iterator<Item = &'a [u8]> {
    let mut found: [Option<&'a [u8]>; 2] = [None, None];
    for (key, value) in fields {
        if let Some(slot) = TRAILER_FIELDS.iter().position(|t| *t == key) {
            found[slot] = match value {
                Value::Str(text) => Some(text),
                _ => None,
            };
        }
    }
    found
        .into_iter()
        .flatten()
        .map(|text| text.strip_suffix(b"\n").unwrap_or(text))
        .filter(|text| !text.is_empty())
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::level::Level;
    use crate::record::{FieldsBuf, Record, Source};

    /// 2023-11-14T22:13:20.123456789Z.
    pub(crate) const TS: i64 = 1_700_000_000_123_456_789;

    pub(crate) fn source() -> Source {
        Source {
            host: "web-1".to_string(),
            pid: 4242,
            process_name: "app".to_string(),
        }
    }

    /// A record with every optional part set, at [`TS`].
    pub(crate) fn record<'a>(source: &'a Source, fields: &'a FieldsBuf) -> Record<'a> {
        bare(source, fields)
            .with_module("app::db")
            .with_file("src/db/pool.rs")
            .with_line(42)
            .with_function("connect")
            .with_thread_name("main")
    }

    /// Pseudo-random byte strings, weighted towards the bytes that need
    /// care: quotes, backslashes, control characters, the parts of U+2028,
    /// and bytes that cannot start or continue UTF-8. Deterministic, so a
    /// failure can be replayed.
    pub(crate) fn hostile_strings(count: usize) -> Vec<Vec<u8>> {
        const PICKS: &[u8] =
            b"a =\"\\\n\r\t\x00\x1f\x7f\xe2\x80\xa8\xa9\xc3\xff\xf0\x9f\x98\x80\xed\xa0";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count)
            .map(|_| {
                let len = (next() % 24) as usize;
                (0..len)
                    .map(|_| {
                        let r = next();
                        if r % 3 == 0 {
                            (r >> 8) as u8
                        } else {
                            PICKS[(r >> 8) as usize % PICKS.len()]
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// The same record with every optional part absent.
    pub(crate) fn bare<'a>(source: &'a Source, fields: &'a FieldsBuf) -> Record<'a> {
        Record::new(Level::Info, "app::db", b"connected", source)
            .with_timestamp(TS)
            .with_thread_id(7)
            .with_fields(fields.as_fields())
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::record::FieldsBuf;

    /// Every digit count and the numbers either side of each power of
    /// ten, appended after text already in the buffer and at the edge of
    /// its capacity.
    #[test]
    fn decimals_are_appended_exactly() {
        let mut numbers = vec![0, 1, 9, u64::MAX, u64::MAX - 1];
        for p in 1..20 {
            let ten = 10u64.pow(p);
            numbers.extend([ten - 1, ten, ten + 1]);
        }
        for n in numbers {
            let mut out = b"x=".to_vec();
            out.shrink_to_fit();
            push_u64(&mut out, n);
            assert_eq!(out, format!("x={n}").into_bytes());
            let mut out = Vec::new();
            push_i64(&mut out, -(n as i64));
            assert_eq!(out, (-(n as i64)).to_string().into_bytes());
        }
    }

    #[test]
    fn spec_parses_names_and_formats() {
        assert_eq!(LayoutSpec::parse("text", None), Ok(LayoutSpec::Text));
        assert_eq!(
            LayoutSpec::parse(" JSON ", Some("%H")),
            Ok(LayoutSpec::Json)
        );
        assert_eq!(
            LayoutSpec::parse("%(message)s", Some("%H:%M")),
            Ok(LayoutSpec::Python {
                format: "%(message)s".into(),
                datefmt: Some("%H:%M".into())
            })
        );
        assert_eq!("Text".parse::<LayoutSpec>(), Ok(LayoutSpec::Text));
        let err = LayoutSpec::parse("%(message)q", None).unwrap_err();
        assert_eq!(err.index(), 10);
        assert_eq!(LayoutSpec::default(), LayoutSpec::Text);
    }

    #[test]
    fn spec_builds_each_layout() {
        let src = source();
        let fields = FieldsBuf::new();
        let rec = record(&src, &fields);
        let line = |spec: LayoutSpec, color: bool| {
            let mut out = Vec::new();
            spec.build(color).format(&rec, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            line(LayoutSpec::Text, false),
            "2023-11-14T22:13:20.123456Z INFO  [4242/main] app::db: connected\n"
        );
        // In colour, the console's columns.
        let pretty = line(LayoutSpec::Text, true);
        assert!(pretty.starts_with("\x1b[2m"), "{pretty:?}");
        assert!(
            pretty.ends_with(
                ".123\x1b[0m \x1b[32mINFO\x1b[0m     \x1b[2mapp::db\x1b[0m connected  \
                 \x1b[2msrc/db/pool.rs:42\x1b[0m\n"
            ),
            "{pretty:?}"
        );
        assert!(line(LayoutSpec::Json, true).starts_with("{\"ts\":"));
        let py = LayoutSpec::parse("%(levelname)s %(message)s", None).unwrap();
        assert_eq!(line(py.clone(), false), "INFO connected\n");
        assert_eq!(line(py, true), "\x1b[32mINFO\x1b[0m connected\n");
        // A malformed format that skipped parse still writes records.
        let bad = LayoutSpec::Python {
            format: "%(oops".into(),
            datefmt: None,
        };
        assert!(line(bad, false).ends_with("app::db: connected\n"));
    }

    #[test]
    fn integers_and_lossy_text() {
        let mut out = Vec::new();
        push_u64(&mut out, 0);
        out.push(b' ');
        push_u64(&mut out, u64::MAX);
        out.push(b' ');
        push_i64(&mut out, i64::MIN);
        out.push(b' ');
        push_lossy(&mut out, b"a\xffb\xc3\x28c\xe2\x82");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0 18446744073709551615 -9223372036854775808 a\u{FFFD}b\u{FFFD}(c\u{FFFD}"
        );
    }
}
