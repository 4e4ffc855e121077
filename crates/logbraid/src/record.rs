//! The record model: one log event with its metadata and structured fields.
//!
//! A [`Record`] borrows everything it shows, so the writer thread can build
//! one straight out of the queue's bytes and the collector straight out of a
//! decoded frame, without allocating. Structured fields travel as one encoded
//! byte string ([`Fields`]), written with [`FieldsBuf`] and read back with
//! [`Fields::iter`]; the encoding is also what the native wire protocol uses.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::level::Level;

/// Where a record comes from: the host and process that logged it.
///
/// Shared by every record of one process (in-process) or one connection
/// (collector), so records do not carry copies of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Host name, as the logging machine reports it.
    pub host: String,
    /// Operating-system process id.
    pub pid: u32,
    /// Program name: the file name of the executable, or what the client says.
    pub process_name: String,
}

/// The running process's [`Source`], kept per pid: a forked child is
/// another process with the same memory, and must not name itself after
/// its parent's pid (the pid is part of a forwarding client's id).
static CURRENT: Mutex<Option<Arc<Source>>> = Mutex::new(None);
/// The name given with [`set_process_name`]. Unlike [`CURRENT`], a forked
/// child keeps it, as it keeps the rest of its parent's memory.
static NAME: Mutex<Option<String>> = Mutex::new(None);

impl Source {
    /// The running process, computed once (and again after
    /// [`set_process_name`]).
    pub fn current() -> Arc<Source> {
        let pid = std::process::id();
        let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
        match current.as_ref() {
            Some(s) if s.pid == pid => s.clone(),
            _ => {
                let name = NAME.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let s = Arc::new(Source {
                    host: hostname(),
                    pid,
                    process_name: name.unwrap_or_else(process_name),
                });
                *current = Some(s.clone());
                s
            }
        }
    }
}

/// Names this process in the records it makes from now on, in place of
/// the executable's file name: their `processName`, and the program a
/// collector is told when a forwarding sink connects. For a language
/// binding whose processes have names of their own (Python's
/// `multiprocessing`). A forked child keeps the name until it sets its own.
///
/// Pipelines read the name once per batch of records, so records queued
/// just before the call may carry the new name too; a forwarding sink's
/// connection made before the call keeps the old one.
pub fn set_process_name(name: &str) {
    *NAME.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.to_string());
    let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = current.as_ref() {
        if s.pid == std::process::id() && s.process_name != name {
            let renamed = Source {
                process_name: name.to_string(),
                ..Source::clone(s)
            };
            *current = Some(Arc::new(renamed));
        }
    }
}

/// The locks of this module, held across a fork (see `crate::sys::fork`), in
/// the order [`Source::current`] takes them.
pub(crate) fn hold_for_fork(held: &mut crate::sys::fork::Held) {
    crate::sys::fork::hold(held, &CURRENT);
    crate::sys::fork::hold(held, &NAME);
}

fn hostname() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name.into_owned()
    }
}

fn process_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| std::env::args().next())
        .unwrap_or_else(|| "unknown".to_string())
}

/// One log event, borrowed from wherever it is stored.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// Nanoseconds since the Unix epoch, taken when the call was made.
    pub timestamp_ns: i64,
    /// Severity.
    pub level: Level,
    /// Target (Rust) or logger name (Python), e.g. `my_crate::db` or `app.db`.
    pub target: &'a str,
    /// The formatted message. Bytes, because records that arrive from other
    /// programs may hold invalid UTF-8; layouts escape or replace it.
    pub message: &'a [u8],
    /// Whether `message` is known to hold only printable ASCII other than
    /// `"` and `\` (bytes 0x20 to 0x7E less those two), which no layout
    /// escapes: layouts then copy it as it is. `false` says nothing, and
    /// is what every record starts with; the macros set it where the format
    /// string and the types of the values promise it.
    pub plain_message: bool,
    /// Rust module path or Python module name.
    pub module: Option<&'a str>,
    /// Source file path.
    pub file: Option<&'a str>,
    /// Line in `file`.
    pub line: Option<u32>,
    /// Function name where the source knows it (Python's `funcName`).
    pub function: Option<&'a str>,
    /// Operating-system thread id of the logging thread.
    pub thread_id: u64,
    /// Name of the logging thread, when it has one.
    pub thread_name: Option<&'a str>,
    /// Host and process of origin.
    pub source: &'a Source,
    /// Ordered key/value fields.
    pub fields: Fields<'a>,
}

/// The `with_…` setters of [`Record`]: each sets the part its argument
/// names (to `value`) and returns the record, in a `const fn` that inlines
/// to a store.
macro_rules! with {
    ($($(#[$doc:meta])* $name:ident($part:ident: $ty:ty) => $value:expr;)*) => {
        $(
            $(#[$doc])*
            #[inline]
            #[must_use]
            pub const fn $name(mut self, $part: $ty) -> Self {
                self.$part = $value;
                self
            }
        )*
    };
}

impl<'a> Record<'a> {
    /// A record of `level` for `target` saying `message`, from `source`:
    /// at time 0, on thread 0, with no call site, thread name or fields.
    /// The `with_…` methods fill in the rest:
    ///
    /// ```
    /// use logbraid::{Level, Record, Source};
    /// let source = Source::current();
    /// let r = Record::new(Level::Info, "app::db", b"connected", &source)
    ///     .with_timestamp(1_700_000_000_000_000_000)
    ///     .with_file("src/db.rs")
    ///     .with_line(42);
    /// assert_eq!(r.line, Some(42));
    /// assert_eq!(r.module, None);
    /// ```
    #[inline]
    pub const fn new(level: Level, target: &'a str, message: &'a [u8], source: &'a Source) -> Self {
        Record {
            timestamp_ns: 0,
            level,
            target,
            message,
            plain_message: false,
            module: None,
            file: None,
            line: None,
            function: None,
            thread_id: 0,
            thread_name: None,
            source,
            fields: Fields::EMPTY,
        }
    }

    with! {
        /// Sets [`Record::timestamp_ns`].
        with_timestamp(timestamp_ns: i64) => timestamp_ns;
        /// Sets [`Record::module`].
        with_module(module: &'a str) => Some(module);
        /// Sets [`Record::file`].
        with_file(file: &'a str) => Some(file);
        /// Sets [`Record::line`].
        with_line(line: u32) => Some(line);
        /// Sets [`Record::function`].
        with_function(function: &'a str) => Some(function);
        /// Sets [`Record::thread_id`].
        with_thread_id(thread_id: u64) => thread_id;
        /// Sets [`Record::thread_name`].
        with_thread_name(thread_name: &'a str) => Some(thread_name);
        /// Sets [`Record::fields`].
        with_fields(fields: Fields<'a>) => fields;
    }
}

/// A field value as stored in a record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// Text; may hold invalid UTF-8 when it came from another program.
    Str(&'a [u8]),
    /// Signed integer.
    I64(i64),
    /// Unsigned integer.
    U64(u64),
    /// Floating point number.
    F64(f64),
    /// Boolean.
    Bool(bool),
    /// No value (Python's `None`).
    Null,
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Value::Str(s) => fmt::Display::fmt(&String::from_utf8_lossy(s), f),
            Value::I64(v) => fmt::Display::fmt(&v, f),
            Value::U64(v) => fmt::Display::fmt(&v, f),
            Value::F64(v) => fmt::Display::fmt(&v, f),
            Value::Bool(v) => fmt::Display::fmt(&v, f),
            Value::Null => f.write_str("None"),
        }
    }
}

const TAG_STR: u8 = 0;
const TAG_I64: u8 = 1;
const TAG_U64: u8 = 2;
const TAG_F64: u8 = 3;
const TAG_BOOL: u8 = 4;
const TAG_NULL: u8 = 5;

/// Encoded key/value fields, in the order they were added.
///
/// Encoding, repeated per field: key length (`u16` little endian), key bytes
/// (UTF-8), a tag byte, then the value: `0` string (`u32` LE length + bytes),
/// `1` i64, `2` u64, `3` f64 (8 bytes LE each), `4` bool (1 byte), `5` null.
/// Reading never panics: iteration stops at the first malformed field, so
/// bytes from the network can be handed over as they are (see
/// [`Fields::validate`] to reject them instead).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    bytes: &'a [u8],
}

impl<'a> Fields<'a> {
    /// No fields.
    pub const EMPTY: Fields<'static> = Fields { bytes: &[] };

    /// Wraps encoded bytes (see the type's documentation for the encoding).
    pub const fn from_encoded(bytes: &'a [u8]) -> Self {
        Fields { bytes }
    }

    /// The encoded bytes.
    pub const fn encoded(&self) -> &'a [u8] {
        self.bytes
    }

    /// Whether there are no fields.
    pub const fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Iterates over `(key, value)` in order.
    pub fn iter(&self) -> FieldsIter<'a> {
        FieldsIter { rest: self.bytes }
    }

    /// Checks that the whole encoding is well formed, returning the number
    /// of fields, or `None` at the first defect.
    pub fn validate(&self) -> Option<usize> {
        let mut it = self.iter();
        let mut n = 0;
        while it.next().is_some() {
            n += 1;
        }
        it.rest.is_empty().then_some(n)
    }
}

impl fmt::Debug for Fields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for Fields<'a> {
    type Item = (&'a str, Value<'a>);
    type IntoIter = FieldsIter<'a>;
    fn into_iter(self) -> FieldsIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Fields`].
#[derive(Clone, Debug)]
pub struct FieldsIter<'a> {
    rest: &'a [u8],
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

/// `bytes` as text, if they are UTF-8. Keys are nearly always short
/// ASCII, which one pass over the bytes settles without the general
/// validator's fixed cost.
#[inline]
fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: every byte is below 0x80: ASCII, and therefore UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

fn take8(rest: &mut &[u8]) -> Option<[u8; 8]> {
    take(rest, 8).map(|b| b.try_into().expect("8 bytes"))
}

impl<'a> FieldsIter<'a> {
    fn parse(rest: &mut &'a [u8]) -> Option<(&'a str, Value<'a>)> {
        let klen = u16::from_le_bytes(take(rest, 2)?.try_into().ok()?) as usize;
        let key = utf8(take(rest, klen)?)?;
        let tag = take(rest, 1)?[0];
        let value = match tag {
            TAG_STR => {
                let len = u32::from_le_bytes(take(rest, 4)?.try_into().ok()?) as usize;
                Value::Str(take(rest, len)?)
            }
            TAG_I64 => Value::I64(i64::from_le_bytes(take8(rest)?)),
            TAG_U64 => Value::U64(u64::from_le_bytes(take8(rest)?)),
            TAG_F64 => Value::F64(f64::from_le_bytes(take8(rest)?)),
            TAG_BOOL => Value::Bool(take(rest, 1)?[0] != 0),
            TAG_NULL => Value::Null,
            _ => return None,
        };
        Some((key, value))
    }
}

impl<'a> Iterator for FieldsIter<'a> {
    type Item = (&'a str, Value<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        let mut probe = self.rest;
        let item = Self::parse(&mut probe)?;
        self.rest = probe;
        Some(item)
    }
}

/// Builds the encoding read by [`Fields`].
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct FieldsBuf {
    buf: Vec<u8>,
}

impl FieldsBuf {
    /// An empty buffer with room for `bytes` of encoded fields.
    pub fn with_capacity(bytes: usize) -> Self {
        FieldsBuf {
            buf: Vec::with_capacity(bytes),
        }
    }

    /// An empty buffer.
    pub const fn new() -> Self {
        FieldsBuf { buf: Vec::new() }
    }

    /// Removes every field, keeping the allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Whether no field was added.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The encoded length of the fields added so far, in bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Bytes the buffer holds room for, used or not.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The fields added so far.
    pub fn as_fields(&self) -> Fields<'_> {
        Fields::from_encoded(&self.buf)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    fn key(&mut self, key: &str, tag: u8) {
        // Keys longer than 64 KiB are cut at a character boundary: a key is a
        // name, and the length prefix is two bytes.
        let mut k = key;
        if k.len() > u16::MAX as usize {
            let mut end = u16::MAX as usize;
            while !k.is_char_boundary(end) {
                end -= 1;
            }
            k = &k[..end];
        }
        self.buf.extend_from_slice(&(k.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.push(tag);
    }

    /// Appends fields already encoded (see [`Fields`]).
    pub fn extend_encoded(&mut self, encoded: &[u8]) {
        self.buf.extend_from_slice(encoded);
    }

    /// Adds any value.
    pub fn push(&mut self, key: &str, value: Value<'_>) {
        match value {
            Value::Str(s) => self.push_bytes(key, s),
            Value::I64(v) => {
                self.key(key, TAG_I64);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::U64(v) => {
                self.key(key, TAG_U64);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::F64(v) => {
                self.key(key, TAG_F64);
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
            Value::Bool(v) => {
                self.key(key, TAG_BOOL);
                self.buf.push(v as u8);
            }
            Value::Null => self.key(key, TAG_NULL),
        }
    }

    /// Adds a text value.
    pub fn push_str(&mut self, key: &str, value: &str) {
        self.push_bytes(key, value.as_bytes());
    }

    /// Adds a text value given as bytes (possibly not UTF-8). Values longer
    /// than 4 GiB are cut.
    pub fn push_bytes(&mut self, key: &str, value: &[u8]) {
        let v = &value[..value.len().min(u32::MAX as usize)];
        self.key(key, TAG_STR);
        self.buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(v);
    }

    /// Adds a text value produced by `Display`/`Debug` formatting, written
    /// straight into the buffer.
    pub fn push_fmt(&mut self, key: &str, value: fmt::Arguments<'_>) {
        use std::io::Write;
        self.key(key, TAG_STR);
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        let start = self.buf.len();
        // Writing into a Vec cannot fail except through a Display impl that
        // reports an error; what was written until then is kept.
        let _ = self.buf.write_fmt(value);
        let len = (self.buf.len() - start) as u32;
        self.buf[len_at..start].copy_from_slice(&len.to_le_bytes());
    }
}

/// A record that owns its data, for code that must keep records around
/// (tests, the collector's merge window).
#[derive(Clone, Debug, PartialEq)]
pub struct OwnedRecord {
    /// See [`Record::timestamp_ns`].
    pub timestamp_ns: i64,
    /// See [`Record::level`].
    pub level: Level,
    /// See [`Record::target`].
    pub target: String,
    /// See [`Record::message`].
    pub message: Vec<u8>,
    /// See [`Record::module`].
    pub module: Option<String>,
    /// See [`Record::file`].
    pub file: Option<String>,
    /// See [`Record::line`].
    pub line: Option<u32>,
    /// See [`Record::function`].
    pub function: Option<String>,
    /// See [`Record::thread_id`].
    pub thread_id: u64,
    /// See [`Record::thread_name`].
    pub thread_name: Option<String>,
    /// See [`Record::source`].
    pub source: Arc<Source>,
    /// See [`Record::fields`].
    pub fields: FieldsBuf,
}

impl OwnedRecord {
    /// A record of `level` for `target` saying `message`, from `source`:
    /// at time 0, on thread 0, with no call site, thread name or fields.
    /// A record with more parts is best built as a [`Record`] and copied
    /// with [`OwnedRecord::from_record_with_source`].
    pub fn new(level: Level, target: &str, message: &[u8], source: Arc<Source>) -> Self {
        OwnedRecord::from_record_with_source(&Record::new(level, target, message, &source), &source)
    }

    /// Sets [`OwnedRecord::timestamp_ns`].
    #[must_use]
    pub fn with_timestamp(mut self, timestamp_ns: i64) -> Self {
        self.timestamp_ns = timestamp_ns;
        self
    }

    /// Sets [`OwnedRecord::thread_id`].
    #[must_use]
    pub fn with_thread_id(mut self, thread_id: u64) -> Self {
        self.thread_id = thread_id;
        self
    }

    /// Sets [`OwnedRecord::fields`].
    #[must_use]
    pub fn with_fields(mut self, fields: FieldsBuf) -> Self {
        self.fields = fields;
        self
    }

    /// Copies a borrowed record.
    pub fn from_record(r: &Record<'_>) -> Self {
        OwnedRecord::from_record_with_source(r, &Arc::new(r.source.clone()))
    }

    /// Copies a borrowed record, sharing `source` (the one `r` borrows, or
    /// its equal) rather than copying it once per record.
    pub fn from_record_with_source(r: &Record<'_>, source: &Arc<Source>) -> Self {
        let mut fields = FieldsBuf::new();
        fields.buf.extend_from_slice(r.fields.encoded());
        OwnedRecord {
            timestamp_ns: r.timestamp_ns,
            level: r.level,
            target: r.target.to_string(),
            message: r.message.to_vec(),
            module: r.module.map(str::to_string),
            file: r.file.map(str::to_string),
            line: r.line,
            function: r.function.map(str::to_string),
            thread_id: r.thread_id,
            thread_name: r.thread_name.map(str::to_string),
            source: Arc::clone(source),
            fields,
        }
    }

    /// Borrows it as a [`Record`].
    pub fn as_record(&self) -> Record<'_> {
        Record {
            timestamp_ns: self.timestamp_ns,
            level: self.level,
            target: &self.target,
            message: &self.message,
            plain_message: false,
            module: self.module.as_deref(),
            file: self.file.as_deref(),
            line: self.line,
            function: self.function.as_deref(),
            thread_id: self.thread_id,
            thread_name: self.thread_name.as_deref(),
            source: &self.source,
            fields: self.fields.as_fields(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_in_order() {
        let mut b = FieldsBuf::new();
        b.push_str("user", "ada");
        b.push("n", Value::I64(-3));
        b.push("u", Value::U64(u64::MAX));
        b.push("f", Value::F64(1.5));
        b.push("ok", Value::Bool(true));
        b.push("none", Value::Null);
        b.push_fmt("dbg", format_args!("{:?}", (1, "x")));
        b.push_bytes("raw", b"\xff\x00");
        let got: Vec<_> = b.as_fields().iter().collect();
        assert_eq!(
            got,
            vec![
                ("user", Value::Str(b"ada")),
                ("n", Value::I64(-3)),
                ("u", Value::U64(u64::MAX)),
                ("f", Value::F64(1.5)),
                ("ok", Value::Bool(true)),
                ("none", Value::Null),
                ("dbg", Value::Str(b"(1, \"x\")")),
                ("raw", Value::Str(b"\xff\x00")),
            ]
        );
        assert_eq!(b.as_fields().validate(), Some(8));
    }

    #[test]
    fn malformed_fields_stop_without_panicking() {
        let mut b = FieldsBuf::new();
        b.push_str("a", "1");
        let mut bytes = b.as_bytes().to_vec();
        bytes.extend_from_slice(&[200, 0, b'x']);
        let f = Fields::from_encoded(&bytes);
        assert_eq!(f.iter().count(), 1);
        assert_eq!(f.validate(), None);
        for cut in 0..bytes.len() {
            let _ = Fields::from_encoded(&bytes[..cut]).iter().count();
        }
        let bad_tag = [1, 0, b'k', 99];
        assert_eq!(Fields::from_encoded(&bad_tag).validate(), None);
    }
}
