//! Records from Python's `logging.handlers.SocketHandler` (TCP) and
//! `DatagramHandler` (UDP).
//!
//! Both handlers send `struct.pack(">L", len(pickle)) + pickle`, where the
//! pickle is `SocketHandler.makePickle(record)`: a copy of
//! `record.__dict__` with `msg` already formatted, `args` and `exc_info`
//! set to `None`, `message` removed, and the traceback (when there was an
//! exception) in `exc_text`, pickled with protocol 1. Over TCP the frames
//! follow one another ([`FrameDecoder`]); over UDP each datagram holds one
//! ([`datagram`]). [`record_from_pickle`] turns the pickle into an
//! [`OwnedRecord`], reading it with [`crate::intake::pickle::decode`], which
//! rejects any pickle that would import or call code.
//!
//! # How a LogRecord's attributes map onto a record
//!
//! | attribute | becomes |
//! |---|---|
//! | `msg` | message; when `args` is still set (a sender that did not format), the message is `msg % args` as far as it can be computed, else `msg` with `args` kept as a field of its `repr` |
//! | `levelno` | level, by [`Level::from_python`]; also a field `levelno` when it is not one of 5, 10, 20, 30, 40, 50 |
//! | `levelname` | a field `levelname` only when it is not the usual name of the level (`WARNING` for 30…) |
//! | `name` | target (`root` when missing) |
//! | `created` | timestamp, rounded to the microsecond (the precision of Python's clock as `created` carries it); the receive time when missing |
//! | `process`, `processName` | the source's pid and process name (`None` gives 0 and an empty name) |
//! | `thread`, `threadName` | thread id and thread name |
//! | `pathname` (`filename` when it is missing), `lineno`, `module`, `funcName` | file, line, module, function |
//! | `exc_text`, `stack_info`, `taskName` | fields of the same names, when they are text |
//! | `args`, `exc_info`, `msecs`, `relativeCreated`, `message`, `asctime` | nothing: formatted into the message, redundant, or meaningless away from the sending process |
//! | anything else (`extra=`) | a field per key, in the dict's order: `str`, `int`, `float`, `bool` and `None` keep their type; other values (lists, dicts, bytes, big integers) become the text of their Python `repr()`, cut after 1,024 bytes |
//!
//! The source's host is not in the pickle: the listener passes the peer's
//! host name or address.

use std::collections::HashMap;
use std::fmt::Write as _;

use logbraid::{FieldsBuf, Level, OwnedRecord, Value};

use crate::intake::pickle::{self, bigint_to_string, Limits, PickleError, PickleValue};
use crate::intake::SourceCache;

/// Longest `repr()` kept for an extra whose value is not a plain scalar.
pub const EXTRA_REPR_MAX: usize = 1024;

/// Why a frame could not be cut from the stream or datagram.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces a frame over the limit.
    #[error("frame of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A datagram too short to hold the 4-byte length prefix.
    #[error("datagram of {len} bytes has no room for the 4-byte length prefix")]
    TooShort {
        /// Length of the datagram.
        len: usize,
    },
    /// A datagram whose length prefix does not match its size.
    #[error("datagram announces {declared} bytes but carries {actual}")]
    LengthMismatch {
        /// The announced length.
        declared: u32,
        /// The bytes after the prefix.
        actual: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame, {buffered} bytes unread")]
    Truncated {
        /// Bytes received of the unfinished frame.
        buffered: usize,
    },
}

/// Cuts a `SocketHandler` byte stream into pickles.
///
/// Feed it what the socket gives with [`FrameDecoder::push`], then take
/// frames with [`FrameDecoder::next_frame`] until it returns `Ok(None)`.
/// Each length prefix is checked against `max_frame` as soon as its four
/// bytes arrive, before the frame's body is kept: after an oversize prefix
/// the decoder keeps nothing more, hands out the frames that came before
/// it, and then reports [`FrameError::TooLarge`] on every call.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame: usize,
    buf: Vec<u8>,
    /// Where the unread bytes start in `buf`.
    start: usize,
    /// Offset in `buf` of the first length prefix not yet checked.
    unchecked: usize,
    failed: Option<FrameError>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(FrameDecoder::DEFAULT_MAX_FRAME)
    }
}

impl FrameDecoder {
    /// The frame limit of [`FrameDecoder::default`]: 16 MiB, the default
    /// [`Limits::max_input`] of the pickle reader.
    pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

    /// A decoder that refuses frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            max_frame,
            buf: Vec::new(),
            start: 0,
            unchecked: 0,
            failed: None,
        }
    }

    /// The frame limit.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes received and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.unchecked -= self.start;
            self.start = 0;
        } else if self.start > 4096 && self.start * 2 > self.buf.len() {
            // Move the unread tail to the front once the read part
            // dominates, so the buffer does not grow with the stream.
            self.buf.drain(..self.start);
            self.unchecked -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        while let Some(prefix) = self.buf.get(self.unchecked..self.unchecked + 4) {
            let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
            if len as usize > self.max_frame {
                self.buf.truncate(self.unchecked);
                self.failed = Some(FrameError::TooLarge {
                    len: u64::from(len),
                    max: self.max_frame,
                });
                return;
            }
            self.unchecked += 4 + len as usize;
        }
    }

    /// The next whole frame (the pickle, without its prefix), `Ok(None)` if
    /// more bytes are needed, or the error that stopped the stream.
    ///
    /// The frame is borrowed from the decoder's buffer: it stays valid
    /// until the next call that changes the decoder.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let rest = &self.buf[self.start..];
        if rest.len() >= 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if rest.len() - 4 >= len {
                let at = self.start + 4;
                self.start = at + len;
                return Ok(Some(&self.buf[at..at + len]));
            }
        }
        match &self.failed {
            Some(e) if self.start == self.buf.len() => Err(e.clone()),
            _ => Ok(None),
        }
    }

    /// Call when the stream has ended: an error if it stopped inside a
    /// frame (or after an oversize prefix).
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.buffered() {
            0 => Ok(()),
            buffered => Err(FrameError::Truncated { buffered }),
        }
    }
}

/// The pickle inside one `DatagramHandler` datagram, whose 4-byte length
/// prefix must equal the length of the rest.
pub fn datagram(bytes: &[u8]) -> Result<&[u8], FrameError> {
    let Some((prefix, body)) = bytes.split_first_chunk::<4>() else {
        return Err(FrameError::TooShort { len: bytes.len() });
    };
    let declared = u32::from_be_bytes(*prefix);
    if declared as usize != body.len() {
        return Err(FrameError::LengthMismatch {
            declared,
            actual: body.len(),
        });
    }
    Ok(body)
}

/// Why a pickle did not give a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntakeError {
    /// The pickle itself was refused (it names code, is malformed, or is
    /// over a limit).
    #[error("pickle refused: {0}")]
    Pickle(#[from] PickleError),
    /// The pickle holds something other than a dict.
    #[error("expected a LogRecord's dict, found a {found}")]
    NotADict {
        /// Python type name of what was found.
        found: &'static str,
    },
    /// A LogRecord attribute of a type it cannot have.
    #[error("LogRecord attribute {key:?}: expected {expected}, found {found}")]
    BadField {
        /// The attribute.
        key: &'static str,
        /// What it should be.
        expected: &'static str,
        /// What it was.
        found: &'static str,
    },
}

/// Decodes the pickle of one `SocketHandler`/`DatagramHandler` frame into a
/// record.
///
/// `peer_host` becomes the source's host; `received_ns` is the timestamp
/// when the record has no `created`. `sources` shares one [`logbraid::Source`]
/// among records of the same (host, pid, process name).
pub fn record_from_pickle(
    payload: &[u8],
    peer_host: &str,
    received_ns: i64,
    limits: &Limits,
    sources: &mut SourceCache,
) -> Result<OwnedRecord, IntakeError> {
    let value = pickle::decode(payload, limits)?;
    record_from_dict(&value, peer_host, received_ns, sources)
}

/// Maps an already decoded LogRecord dict onto a record (see the module's
/// table); [`record_from_pickle`] is this after [`pickle::decode`].
pub fn record_from_dict(
    dict: &PickleValue<'_>,
    peer_host: &str,
    received_ns: i64,
    sources: &mut SourceCache,
) -> Result<OwnedRecord, IntakeError> {
    let PickleValue::Dict(pairs) = dict else {
        return Err(IntakeError::NotADict {
            found: dict.type_name(),
        });
    };
    let mut a = Attrs::default();
    for (k, v) in pairs {
        // A LogRecord's __dict__ only has text keys; others are skipped.
        let Some(key) = k.as_str() else { continue };
        match key {
            "msg" => a.msg = Some(v),
            "args" => a.args = Some(v),
            "levelno" => a.levelno = Some(v),
            "levelname" => a.levelname = Some(v),
            "name" => a.name = Some(v),
            "created" => a.created = Some(v),
            "process" => a.process = Some(v),
            "processName" => a.process_name = Some(v),
            "thread" => a.thread = Some(v),
            "threadName" => a.thread_name = Some(v),
            "pathname" => a.pathname = Some(v),
            "filename" => a.filename = Some(v),
            "module" => a.module = Some(v),
            "lineno" => a.lineno = Some(v),
            "funcName" => a.func_name = Some(v),
            "exc_text" => a.exc_text = Some(v),
            "stack_info" => a.stack_info = Some(v),
            "taskName" => a.task_name = Some(v),
            "exc_info" | "msecs" | "relativeCreated" | "message" | "asctime" => {}
            _ => a.extras.push((key, v)),
        }
    }
    let mut fields = FieldsBuf::new();

    let levelno = match a.levelno {
        None | Some(PickleValue::None) => None,
        Some(PickleValue::Int(n)) => Some(*n),
        Some(PickleValue::BigInt(b)) => Some(if b.last().is_some_and(|&x| x & 0x80 != 0) {
            i64::MIN
        } else {
            i64::MAX
        }),
        Some(other) => return Err(bad("levelno", "int", other)),
    };
    let levelname = opt_str("levelname", a.levelname)?;
    let level = match levelno {
        Some(n) => Level::from_python(n),
        None => levelname
            .and_then(|n| n.parse::<Level>().ok())
            .unwrap_or(Level::Info),
    };
    if let Some(n) = levelno {
        if i64::from(level.python_number()) != n {
            fields.push("levelno", Value::I64(n));
        }
    }
    if let Some(name) = levelname {
        if name != level.python_name() {
            fields.push_str("levelname", name);
        }
    }

    let timestamp_ns = match a.created {
        None | Some(PickleValue::None) => received_ns,
        Some(PickleValue::Float(f)) => seconds_to_ns(*f).ok_or_else(|| {
            bad(
                "created",
                "seconds since the epoch",
                a.created.unwrap_or(&PickleValue::None),
            )
        })?,
        Some(PickleValue::Int(s)) => s
            .checked_mul(1_000_000_000)
            .ok_or_else(|| bad("created", "seconds since the epoch", &PickleValue::Int(*s)))?,
        Some(other) => return Err(bad("created", "float", other)),
    };

    let pid = match a.process {
        None | Some(PickleValue::None) => 0,
        Some(PickleValue::Int(p)) => {
            u32::try_from(*p).map_err(|_| bad("process", "a process id", &PickleValue::Int(*p)))?
        }
        Some(other) => return Err(bad("process", "int", other)),
    };
    let process_name = opt_str("processName", a.process_name)?.unwrap_or("");
    let thread_id = match a.thread {
        None | Some(PickleValue::None) => 0,
        Some(v @ (PickleValue::Int(_) | PickleValue::BigInt(_))) => {
            v.as_u64().ok_or_else(|| bad("thread", "a thread id", v))?
        }
        Some(other) => return Err(bad("thread", "int", other)),
    };
    let line = match a.lineno {
        None | Some(PickleValue::None) => None,
        Some(PickleValue::Int(n)) => u32::try_from(*n).ok(),
        Some(other) => return Err(bad("lineno", "int", other)),
    };
    let file = match opt_str("pathname", a.pathname)? {
        Some(p) => Some(p),
        None => opt_str("filename", a.filename)?,
    };

    let message = message(a.msg, a.args, &mut fields);

    for (key, v) in [
        ("exc_text", a.exc_text),
        ("stack_info", a.stack_info),
        ("taskName", a.task_name),
    ] {
        if let Some(text) = opt_str(key, v)? {
            fields.push_str(key, text);
        }
    }
    for (key, v) in &a.extras {
        push_extra(&mut fields, key, v);
    }

    Ok(OwnedRecord {
        timestamp_ns,
        level,
        target: opt_str("name", a.name)?.unwrap_or("root").to_string(),
        message,
        module: opt_str("module", a.module)?.map(str::to_string),
        file: file.map(str::to_string),
        line,
        function: opt_str("funcName", a.func_name)?.map(str::to_string),
        thread_id,
        thread_name: opt_str("threadName", a.thread_name)?.map(str::to_string),
        source: sources.get(peer_host, pid, process_name),
        fields,
    })
}

/// Decodes Python records with fixed limits and one source cache: what a
/// listener keeps per socket. It also keeps the pickle decoder's working
/// memory from one record to the next.
#[derive(Debug, Default)]
pub struct PythonIntake {
    decoder: pickle::Decoder,
    sources: SourceCache,
}

impl PythonIntake {
    /// An intake applying `limits`, with an empty source cache.
    pub fn new(limits: Limits) -> Self {
        PythonIntake {
            decoder: pickle::Decoder::new(limits),
            sources: SourceCache::new(),
        }
    }

    /// The limits applied to each pickle.
    pub fn limits(&self) -> &Limits {
        self.decoder.limits()
    }

    /// [`record_from_pickle`] with this intake's limits and cache.
    pub fn decode(
        &mut self,
        payload: &[u8],
        peer_host: &str,
        received_ns: i64,
    ) -> Result<OwnedRecord, IntakeError> {
        let value = self.decoder.decode(payload)?;
        record_from_dict(&value, peer_host, received_ns, &mut self.sources)
    }
}

/// The LogRecord attributes that have a place in the record.
#[derive(Default)]
struct Attrs<'a> {
    msg: Option<&'a PickleValue<'a>>,
    args: Option<&'a PickleValue<'a>>,
    levelno: Option<&'a PickleValue<'a>>,
    levelname: Option<&'a PickleValue<'a>>,
    name: Option<&'a PickleValue<'a>>,
    created: Option<&'a PickleValue<'a>>,
    process: Option<&'a PickleValue<'a>>,
    process_name: Option<&'a PickleValue<'a>>,
    thread: Option<&'a PickleValue<'a>>,
    thread_name: Option<&'a PickleValue<'a>>,
    pathname: Option<&'a PickleValue<'a>>,
    filename: Option<&'a PickleValue<'a>>,
    module: Option<&'a PickleValue<'a>>,
    lineno: Option<&'a PickleValue<'a>>,
    func_name: Option<&'a PickleValue<'a>>,
    exc_text: Option<&'a PickleValue<'a>>,
    stack_info: Option<&'a PickleValue<'a>>,
    task_name: Option<&'a PickleValue<'a>>,
    extras: Vec<(&'a str, &'a PickleValue<'a>)>,
}

fn bad(key: &'static str, expected: &'static str, found: &PickleValue<'_>) -> IntakeError {
    IntakeError::BadField {
        key,
        expected,
        found: found.type_name(),
    }
}

/// A text attribute: absent and `None` are both `None`.
fn opt_str<'a>(
    key: &'static str,
    v: Option<&'a PickleValue<'a>>,
) -> Result<Option<&'a str>, IntakeError> {
    match v {
        None | Some(PickleValue::None) => Ok(None),
        Some(PickleValue::Str(s)) => Ok(Some(s)),
        Some(other) => Err(bad(key, "str", other)),
    }
}

/// Seconds since the epoch as a float to nanoseconds, rounded to the
/// microsecond.
///
/// The whole seconds are split off first: subtracting its floor from a
/// float is exact, and the remaining fraction carries enough precision
/// that rounding it to microseconds gives back the microsecond the sender's
/// clock read, for any date a Python clock can give.
fn seconds_to_ns(created: f64) -> Option<i64> {
    if !created.is_finite() {
        return None;
    }
    let secs = created.floor();
    // i64 nanoseconds span about ±9.22e9 seconds.
    if !(-9.2e9..=9.2e9).contains(&secs) {
        return None;
    }
    let micros = ((created - secs) * 1e6).round() as i64;
    (secs as i64)
        .checked_mul(1_000_000_000)?
        .checked_add(micros * 1_000)
}

/// Python's `str()` of a value.
fn py_str(v: &PickleValue<'_>, out: &mut String) {
    match v {
        PickleValue::Str(s) => out.push_str(s),
        other => other.write_repr(out, FORMAT_MAX),
    }
}

/// Most bytes `msg % args` may produce; past it the message is left
/// unformatted. Python has no such limit, but widths and repeated
/// directives would otherwise let a small record allocate without bound.
const FORMAT_MAX: usize = 1 << 20;

/// The message: `msg`, or `msg % args` when a sender left `args` set.
fn message(
    msg: Option<&PickleValue<'_>>,
    args: Option<&PickleValue<'_>>,
    fields: &mut FieldsBuf,
) -> Vec<u8> {
    let mut text = String::new();
    match msg {
        None | Some(PickleValue::None) => {}
        Some(v) => py_str(v, &mut text),
    }
    let Some(args) = args.filter(|a| truthy(a)) else {
        return text.into_bytes();
    };
    let mut out = String::new();
    if percent_format(&text, args, &mut out).is_some() {
        return out.into_bytes();
    }
    let mut repr = String::new();
    args.write_repr(&mut repr, EXTRA_REPR_MAX);
    fields.push_str("args", &repr);
    text.into_bytes()
}

/// Python's truth value, as `if self.args:` tests it.
fn truthy(v: &PickleValue<'_>) -> bool {
    match v {
        PickleValue::None => false,
        PickleValue::Bool(b) => *b,
        PickleValue::Int(i) => *i != 0,
        PickleValue::BigInt(_) => true,
        PickleValue::Float(f) => *f != 0.0,
        PickleValue::Str(s) => !s.is_empty(),
        PickleValue::Bytes(b) => !b.is_empty(),
        PickleValue::List(l) | PickleValue::Tuple(l) => !l.is_empty(),
        PickleValue::Dict(d) => !d.is_empty(),
    }
}

fn push_extra(fields: &mut FieldsBuf, key: &str, v: &PickleValue<'_>) {
    match v {
        PickleValue::None => fields.push(key, Value::Null),
        PickleValue::Bool(b) => fields.push(key, Value::Bool(*b)),
        PickleValue::Int(i) => fields.push(key, Value::I64(*i)),
        PickleValue::Float(f) => fields.push(key, Value::F64(*f)),
        PickleValue::Str(s) => fields.push_str(key, s),
        PickleValue::BigInt(_) => match v.as_u64() {
            Some(u) => fields.push(key, Value::U64(u)),
            None => {
                let mut s = String::new();
                v.write_repr(&mut s, EXTRA_REPR_MAX);
                fields.push_str(key, &s);
            }
        },
        other => {
            let mut s = String::new();
            other.write_repr(&mut s, EXTRA_REPR_MAX);
            fields.push_str(key, &s);
        }
    }
}

/// Python's `fmt % args`, for the conversions `%s %r %a %d %i %u %x %X %o
/// %e %E %f %F %g %G %c %%` with mapping keys, flags, width and precision
/// (`*` included). `None` wherever Python would raise.
fn percent_format(fmt: &str, args: &PickleValue<'_>, out: &mut String) -> Option<()> {
    let positional: &[PickleValue<'_>] = match args {
        PickleValue::Tuple(items) => items,
        single => std::slice::from_ref(single),
    };
    let mapping = match args {
        PickleValue::Dict(pairs) => Some(pairs),
        _ => None,
    };
    // Built on the first `%(key)`, so that many directives against a large
    // dict cost one pass over it; the last pair with a key wins, as in a
    // Python dict.
    let mut index: Option<HashMap<&str, &PickleValue<'_>>> = None;
    let mut next = 0usize;
    let mut used_mapping = false;
    let mut rest = fmt;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let spec = &rest[at + 1..];
        let mut chars = spec.char_indices().peekable();
        // Mapping key.
        let mut key = None;
        if let Some(&(_, '(')) = chars.peek() {
            chars.next();
            let mut depth = 1;
            let start = 1;
            let mut end = None;
            for (i, c) in chars.by_ref() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            key = Some(&spec[start..end?]);
        }
        let mut flags = Flags::default();
        while let Some(&(_, c)) = chars.peek() {
            match c {
                '-' => flags.left = true,
                '+' => flags.plus = true,
                ' ' => flags.space = true,
                '#' => flags.alt = true,
                '0' => flags.zero = true,
                _ => break,
            }
            chars.next();
        }
        let take_number = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
                           next: &mut usize|
         -> Option<Option<usize>> {
            if let Some(&(_, '*')) = chars.peek() {
                chars.next();
                if mapping.is_some() || key.is_some() {
                    return None;
                }
                let v = positional.get(*next)?;
                *next += 1;
                return match v {
                    PickleValue::Int(n) => Some(Some(usize::try_from(*n).ok()?.min(1 << 16))),
                    _ => None,
                };
            }
            let mut n: Option<usize> = None;
            while let Some(&(_, d @ '0'..='9')) = chars.peek() {
                n = Some(
                    n.unwrap_or(0)
                        .checked_mul(10)?
                        .checked_add(d as usize - '0' as usize)?,
                );
                chars.next();
            }
            // A width past this would only be a way to allocate without
            // limit; Python would build it, a log line need not.
            Some(n.map(|n| n.min(1 << 16)))
        };
        let width = take_number(&mut chars, &mut next)?;
        let mut precision = None;
        if let Some(&(_, '.')) = chars.peek() {
            chars.next();
            precision = Some(take_number(&mut chars, &mut next)?.unwrap_or(0));
        }
        while let Some(&(_, 'h' | 'l' | 'L')) = chars.peek() {
            chars.next();
        }
        let (ci, conv) = chars.next()?;
        rest = &spec[ci + conv.len_utf8()..];
        if conv == '%' {
            out.push('%');
            continue;
        }
        let value = match key {
            Some(k) => {
                used_mapping = true;
                let pairs = mapping?;
                let index = index.get_or_insert_with(|| {
                    pairs
                        .iter()
                        .filter_map(|(k, v)| Some((k.as_str()?, v)))
                        .collect()
                });
                *index.get(k)?
            }
            None => {
                let v = positional.get(next)?;
                next += 1;
                v
            }
        };
        let body = convert(conv, value, &flags, precision)?;
        pad(out, &body, width.unwrap_or(0), &flags, is_numeric(conv));
        if out.len() > FORMAT_MAX {
            return None;
        }
    }
    out.push_str(rest);
    // "not all arguments converted": only a tuple must be used up; a
    // single mapping argument may go unused.
    if matches!(args, PickleValue::Tuple(_)) && next != positional.len() {
        return None;
    }
    if mapping.is_none() && !matches!(args, PickleValue::Tuple(_)) && next == 0 && !used_mapping {
        return None;
    }
    Some(())
}

#[derive(Default)]
struct Flags {
    left: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
}

fn is_numeric(conv: char) -> bool {
    matches!(
        conv,
        'd' | 'i' | 'u' | 'x' | 'X' | 'o' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G'
    )
}

/// Pads a converted value to `width`; zeros go after the sign and the
/// `0x`/`0o` prefix, as in Python.
fn pad(out: &mut String, body: &str, width: usize, flags: &Flags, numeric: bool) {
    let len = body.chars().count();
    if len >= width {
        out.push_str(body);
        return;
    }
    let fill = width - len;
    if flags.left {
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if flags.zero && numeric && !body.ends_with("inf") && !body.ends_with("nan") {
        let mut split = 0;
        if body.starts_with(['-', '+', ' ']) {
            split = 1;
        }
        if body[split..].starts_with("0x")
            || body[split..].starts_with("0X")
            || body[split..].starts_with("0o")
        {
            split += 2;
        }
        out.push_str(&body[..split]);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(&body[split..]);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(body);
    }
}

fn sign(negative: bool, flags: &Flags) -> &'static str {
    if negative {
        "-"
    } else if flags.plus {
        "+"
    } else if flags.space {
        " "
    } else {
        ""
    }
}

fn convert(
    conv: char,
    v: &PickleValue<'_>,
    flags: &Flags,
    precision: Option<usize>,
) -> Option<String> {
    match conv {
        's' | 'r' | 'a' => {
            let mut s = String::new();
            match conv {
                's' => py_str(v, &mut s),
                'r' => v.write_repr(&mut s, FORMAT_MAX),
                _ => {
                    let mut r = String::new();
                    v.write_repr(&mut r, FORMAT_MAX);
                    for c in r.chars() {
                        match c as u32 {
                            0..=0x7f => s.push(c),
                            n @ 0x80..=0xff => {
                                let _ = write!(s, "\\x{n:02x}");
                            }
                            n @ 0x100..=0xffff => {
                                let _ = write!(s, "\\u{n:04x}");
                            }
                            n => {
                                let _ = write!(s, "\\U{n:08x}");
                            }
                        }
                    }
                }
            }
            if let Some(p) = precision {
                if let Some((i, _)) = s.char_indices().nth(p) {
                    s.truncate(i);
                }
            }
            Some(s)
        }
        'd' | 'i' | 'u' => {
            let (neg, digits) = match v {
                PickleValue::Int(i) => (*i < 0, i.unsigned_abs().to_string()),
                PickleValue::Bool(b) => (false, u8::from(*b).to_string()),
                PickleValue::BigInt(b) => {
                    let s = bigint_to_string(b);
                    match s.strip_prefix('-') {
                        Some(m) => (true, m.to_string()),
                        None => (false, s),
                    }
                }
                PickleValue::Float(f) if f.is_finite() => {
                    let t = f.trunc();
                    if t.abs() >= 1e19 {
                        return None;
                    }
                    (t < 0.0, (t.abs() as u64).to_string())
                }
                _ => return None,
            };
            Some(format!(
                "{}{}",
                sign(neg, flags),
                zero_extend(&digits, precision)
            ))
        }
        'x' | 'X' | 'o' => {
            let n = match v {
                PickleValue::Int(i) => *i,
                PickleValue::Bool(b) => i64::from(*b),
                _ => return None,
            };
            let m = n.unsigned_abs();
            let (digits, prefix) = match conv {
                'x' => (format!("{m:x}"), "0x"),
                'X' => (format!("{m:X}"), "0X"),
                _ => (format!("{m:o}"), "0o"),
            };
            let prefix = if flags.alt { prefix } else { "" };
            Some(format!(
                "{}{}{}",
                sign(n < 0, flags),
                prefix,
                zero_extend(&digits, precision)
            ))
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            let f = match v {
                PickleValue::Float(f) => *f,
                PickleValue::Int(i) => *i as f64,
                PickleValue::Bool(b) => f64::from(u8::from(*b)),
                _ => return None,
            };
            let body = format_float(
                f.abs(),
                conv,
                precision.unwrap_or(6).min(1 << 10),
                flags.alt,
            );
            let body = if conv.is_ascii_uppercase() {
                body.to_ascii_uppercase()
            } else {
                body
            };
            Some(format!(
                "{}{}",
                sign(f.is_sign_negative() && !f.is_nan(), flags),
                body
            ))
        }
        'c' => match v {
            PickleValue::Int(i) => Some(char::from_u32(u32::try_from(*i).ok()?)?.to_string()),
            PickleValue::Str(s) if s.chars().count() == 1 => Some(s.to_string()),
            _ => None,
        },
        _ => None,
    }
}

fn zero_extend(digits: &str, precision: Option<usize>) -> String {
    match precision {
        Some(p) if p > digits.len() => format!("{}{digits}", "0".repeat(p - digits.len())),
        _ => digits.to_string(),
    }
}

/// C's `%e`, `%f` and `%g` of a non-negative number, lower case.
fn format_float(f: f64, conv: char, precision: usize, alt: bool) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return "inf".into();
    }
    match conv.to_ascii_lowercase() {
        'f' => {
            let s = format!("{f:.precision$}");
            if alt && precision == 0 {
                s + "."
            } else {
                s
            }
        }
        'e' => exp_notation(f, precision, alt),
        _ => {
            let p = precision.max(1);
            let sci = format!("{f:.prec$e}", prec = p - 1);
            let exp: i64 = sci
                .split_once('e')
                .and_then(|(_, e)| e.parse().ok())
                .unwrap_or(0);
            let mut s = if exp < -4 || exp >= p as i64 {
                exp_notation(f, p - 1, alt)
            } else {
                let decimals = (p as i64 - 1 - exp) as usize;
                let s = format!("{f:.decimals$}");
                if alt && decimals == 0 {
                    s + "."
                } else {
                    s
                }
            };
            if !alt {
                // Without '#', %g drops trailing zeros of the fraction.
                let (mant, tail) = match s.find('e') {
                    Some(i) => (s[..i].to_string(), s[i..].to_string()),
                    None => (s.clone(), String::new()),
                };
                if mant.contains('.') {
                    let m = mant.trim_end_matches('0').trim_end_matches('.');
                    s = format!("{m}{tail}");
                }
            }
            s
        }
    }
}

fn exp_notation(f: f64, precision: usize, alt: bool) -> String {
    let s = format!("{f:.precision$e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let dot = if alt && precision == 0 { "." } else { "" };
    format!(
        "{mant}{dot}e{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.unsigned_abs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(f: &str, args: PickleValue<'_>) -> Option<String> {
        let mut out = String::new();
        percent_format(f, &args, &mut out).map(|()| out)
    }

    fn s(v: &str) -> PickleValue<'_> {
        PickleValue::Str(v.into())
    }

    fn t(v: Vec<PickleValue<'_>>) -> PickleValue<'_> {
        PickleValue::Tuple(v)
    }

    #[test]
    fn percent_format_matches_python() {
        use PickleValue::{Float, Int};
        let cases: Vec<(&str, PickleValue<'_>, &str)> = vec![
            ("%s and %r", t(vec![s("a"), s("b")]), "a and 'b'"),
            ("%d%%", t(vec![Int(50)]), "50%"),
            (
                "%5d|%-5d|%05d",
                t(vec![Int(-3), Int(4), Int(-5)]),
                "   -3|4    |-0005",
            ),
            (
                "%x %X %#o %#x",
                t(vec![Int(255), Int(255), Int(8), Int(-255)]),
                "ff FF 0o10 -0xff",
            ),
            (
                "%.2f %e %g",
                t(vec![Float(3.25159), Float(12345.678), Float(0.0001)]),
                "3.25 1.234568e+04 0.0001",
            ),
            (
                "%g %g %G",
                t(vec![Float(1e-5), Float(123456789.0), Float(1.5e20)]),
                "1e-05 1.23457e+08 1.5E+20",
            ),
            ("%+.3d % d", t(vec![Int(7), Int(7)]), "+007  7"),
            (
                "%(user)s has %(n)03d",
                PickleValue::Dict(vec![(s("user"), s("ada")), (s("n"), Int(7))]),
                "ada has 007",
            ),
            ("%s", PickleValue::Dict(vec![(s("k"), Int(1))]), "{'k': 1}"),
            (
                "%*d|%.*s",
                t(vec![Int(4), Int(2), Int(3), s("abcdef")]),
                "   2|abc",
            ),
            ("%c%c", t(vec![Int(65), s("é")]), "Aé"),
            ("%d", t(vec![Float(-3.9)]), "-3"),
            (
                "%s %s %s",
                t(vec![PickleValue::None, PickleValue::Bool(true), Float(1.0)]),
                "None True 1.0",
            ),
            ("%a", t(vec![s("é")]), "'\\xe9'"),
            ("%10.3s|", t(vec![s("abcdef")]), "       abc|"),
            ("%s", s("single"), "single"),
            (
                "%f %F",
                t(vec![Float(f64::INFINITY), Float(f64::NAN)]),
                "inf NAN",
            ),
            ("%#.0f %.0e", t(vec![Float(2.0), Float(2.0)]), "2. 2e+00"),
        ];
        for (f, args, want) in cases {
            assert_eq!(fmt(f, args).as_deref(), Some(want), "{f}");
        }
    }

    #[test]
    fn percent_format_gives_up_where_python_raises() {
        use PickleValue::Int;
        assert_eq!(fmt("%s %s", t(vec![Int(1)])), None);
        assert_eq!(fmt("%s", t(vec![Int(1), Int(2)])), None);
        assert_eq!(fmt("%d", t(vec![s("x")])), None);
        assert_eq!(fmt("%(k)s", t(vec![Int(1)])), None);
        assert_eq!(fmt("%(k)s", PickleValue::Dict(vec![])), None);
        assert_eq!(fmt("%y", t(vec![Int(1)])), None);
        assert_eq!(fmt("%", t(vec![Int(1)])), None);
        assert_eq!(fmt("no directive", s("x")), None);
        // Output past FORMAT_MAX is refused rather than built.
        assert_eq!(fmt(&"%65536s".repeat(20), t(vec![s("x"); 20])), None);
        assert_eq!(
            fmt(&"%65536s".repeat(2), t(vec![s("x"); 2])).map(|o| o.len()),
            Some(2 * 65536)
        );
    }

    #[test]
    fn created_rounds_to_the_microsecond() {
        assert_eq!(
            seconds_to_ns(1700000000.123456),
            Some(1_700_000_000_123_456_000)
        );
        assert_eq!(
            seconds_to_ns(1700000000.9999996),
            Some(1_700_000_001_000_000_000)
        );
        assert_eq!(seconds_to_ns(0.0), Some(0));
        assert_eq!(seconds_to_ns(-1.5), Some(-1_500_000_000));
        assert_eq!(
            seconds_to_ns(4102444800.000001),
            Some(4_102_444_800_000_001_000)
        );
        assert_eq!(seconds_to_ns(f64::NAN), None);
        assert_eq!(seconds_to_ns(1e300), None);
    }

    #[test]
    fn frames_are_cut_across_pushes_and_oversize_is_refused_early() {
        let mut d = FrameDecoder::new(8);
        d.push(&[0, 0, 0, 3, b'a']);
        assert_eq!(d.next_frame(), Ok(None));
        d.push(b"bc\0\0\0\0");
        assert_eq!(d.next_frame(), Ok(Some(&b"abc"[..])));
        assert_eq!(d.next_frame(), Ok(Some(&b""[..])));
        assert_eq!(d.next_frame(), Ok(None));
        d.push(&[0, 0]);
        assert_eq!(d.finish(), Err(FrameError::Truncated { buffered: 2 }));
        d.push(&[0, 9, 1, 2, 3]);
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge { len: 9, max: 8 }));
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge { len: 9, max: 8 }));
    }
}
