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
//! [`OwnedRecord`], reading it with
//! [`crate::intake::pickle::Decoder::modelling_objects`], which never
//! imports or calls code: it reads the standard classes Python pickles by
//! naming a global, and shows an instance of any other class as a
//! placeholder. Such a placeholder (or a bare global) is accepted inside an
//! `extra` value only: anywhere else in the record (the top-level value,
//! a key, `msg`, `args`, any standard attribute) the pickle is refused
//! with [`PickleError::Forbidden`] naming the opcode that named the code,
//! as a pickle with a global always was.
//!
//! [`PythonIntake`], what the listeners use, first tries the pickle as
//! `makePickle` writes it (a flat dict of text keys and plain values, no
//! `args` left to apply): read in one pass straight into the record's
//! attributes, without making a value of each; anything else, and anything
//! that pass would have to refuse, takes the way above, which makes the
//! same record.
//!
//! # How a LogRecord's attributes map onto a record
//!
//! | attribute | becomes |
//! |---|---|
//! | `msg` | message; when `args` is still set (a sender that did not format), the message is `msg % args` as CPython computes it ([`logbraid_pyfmt::format`]); where CPython raises, the message is `msg` and the record gets the fields `format_error` (`TypeError: not enough arguments for format string`, as the Python binding names it) and `args` (their `repr`) |
//! | `levelno` | level, by [`Level::from_python`]; also a field `levelno` when it is not one of 5, 10, 20, 30, 40, 50 |
//! | `levelname` | a field `levelname` only when it is not the usual name of the level (`WARNING` for 30…) |
//! | `name` | target (`root` when missing) |
//! | `created` | timestamp, rounded to the microsecond (the precision of Python's clock as `created` carries it), then, with `msecs`, moved by less than a microsecond into the millisecond (and second) Python prints for it, should the rounding have crossed a boundary; the receive time when missing |
//! | `process`, `processName` | the source's pid and process name (`None` gives 0 and an empty name) |
//! | `thread`, `threadName` | thread id and thread name |
//! | `pathname` (`filename` when it is missing), `lineno`, `module`, `funcName` | file, line, module, function |
//! | `exc_text`, `stack_info`, `taskName` | fields of the same names, when they are text |
//! | `args`, `exc_info`, `msecs` (beyond the above), `relativeCreated`, `message`, `asctime` | nothing: formatted into the message, redundant, or meaningless away from the sending process |
//! | anything else (`extra=`) | a field per key, in the dict's order: `str`, `int`, `float`, `bool` and `None` keep their type; other values (lists, dicts, bytes, big integers) become the text of their Python `repr()`, and values of the classes the reader models (`datetime`, `date`, `time`, `timedelta`, `timezone`, `Decimal`, `UUID`, `bytearray`, `set`, `frozenset`, `pathlib` paths) the text of their `str()` (`2026-12-06 07:00:00.123456+01:00`, `1.50`), each cut after 1,024 bytes; an instance of any other class, a function or a class is shown as `<module.Name object>` (or `<class 'module.Name'>`), and only that field is affected |
//!
//! The source's host is not in the pickle: the listener passes the peer's
//! host name or address.

use std::borrow::Cow;
use std::sync::Arc;

use logbraid::{FieldsBuf, Level, OwnedRecord, Record, Source, Value};

use logbraid_pyfmt as pyfmt;

use crate::intake::pickle::{self, bigint_u64, Limits, PickleError, PickleValue, Scalar};
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

    /// Bytes the buffer holds in use now, and its capacity: what a
    /// caller counting memory needs to bound the next
    /// [`push`](Self::push).
    pub fn buffer(&self) -> (usize, usize) {
        (self.buf.len(), self.buf.capacity())
    }

    /// Gives memory back after a large frame: once no more than
    /// [`KEEP_BUFFER`] bytes are waiting, a buffer larger than that is
    /// cut down to it.
    pub fn shrink(&mut self) {
        let moved = shrink_buffer(&mut self.buf, &mut self.start);
        self.unchecked -= moved;
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
        append_exact(&mut self.buf, bytes);
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
        // Room for the rest of the frame at once, rather than a copy of
        // the buffer at every read of it.
        if self.unchecked > self.buf.len() {
            self.buf.reserve_exact(self.unchecked - self.buf.len());
        }
    }

    /// Where the frame at the front ends, in bytes from the first unread
    /// one, once its length prefix has arrived.
    pub fn frame_end(&self) -> Option<usize> {
        let rest = self.buf.get(self.start..self.start + 4)?;
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        Some(4 + len)
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

/// Capacity a stream decoder's buffer keeps between frames; a larger one
/// is cut down to it by `shrink` once the frames that needed it are read.
pub const KEEP_BUFFER: usize = 64 << 10;

/// Appends `bytes` to `buf`, growing it to exactly what it then holds
/// rather than doubling it, so that what a connection holds is what it
/// was sent (and what the collector counted).
pub fn append_exact(buf: &mut Vec<u8>, bytes: &[u8]) {
    if buf.len() + bytes.len() > buf.capacity() {
        buf.reserve_exact(bytes.len());
    }
    buf.extend_from_slice(bytes);
}

/// Moves the unread bytes of `buf` (from `*start`) to its front and cuts
/// its capacity to [`KEEP_BUFFER`], when it is larger and they fit.
pub(crate) fn shrink_buffer(buf: &mut Vec<u8>, start: &mut usize) -> usize {
    let unread = buf.len() - *start;
    if buf.capacity() <= KEEP_BUFFER || unread > KEEP_BUFFER {
        return 0;
    }
    let moved = *start;
    buf.drain(..moved);
    buf.shrink_to(KEEP_BUFFER);
    *start = 0;
    moved
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
    let value = pickle::Decoder::modelling_objects(limits.clone()).decode(payload)?;
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
    let parts = Parts {
        received_ns,
        peer_host,
        sources,
        fields: &mut FieldsBuf::new(),
    };
    dict_then(dict, parts, OwnedRecord::from_record_with_source)
}

/// [`record_from_dict`], handing the record to `then` as a [`Record`]
/// that borrows its text from `dict` and its fields from `parts` (kept
/// from one record to the next, emptied first), with its source.
fn dict_then<T>(
    dict: &PickleValue<'_>,
    parts: Parts<'_, '_>,
    then: impl FnOnce(&Record<'_>, &Arc<Source>) -> T,
) -> Result<T, IntakeError> {
    let PickleValue::Dict(pairs) = dict else {
        unmodelled(dict)?;
        return Err(IntakeError::NotADict {
            found: dict.type_name(),
        });
    };
    let mut a = Attrs::default();
    let (mut msg, mut args) = (None, None);
    let mut extras = Vec::new();
    for (k, v) in pairs {
        // A LogRecord's __dict__ only has text keys; others are skipped.
        let Some(key) = k.as_str() else {
            unmodelled(k)?;
            continue;
        };
        match a.place(key) {
            Place::Msg => msg = Some(v),
            Place::Args => args = Some(v),
            Place::Attr(slot) => *slot = Some(Attr::of(v)),
            Place::Ignored => {}
            Place::Extra => {
                extras.push((key, v));
                continue;
            }
        }
        unmodelled(v)?;
    }
    let message = |fields: &mut FieldsBuf| message(msg, args, fields);
    let extras = |fields: &mut FieldsBuf| {
        for (key, v) in &extras {
            push_extra(fields, key, v);
        }
    };
    parts.record(&a, message, extras, then)
}

/// What [`dict_then`] reads of the pickle `SocketHandler` sends of a
/// record without `args` to format and without `extra` values other than
/// plain ones (a flat dict of text keys and plain values,
/// [`pickle::Decoder::str_dict`]), read without making a [`PickleValue`]
/// of it. `None` for any other pickle: [`dict_then`] decides, and from
/// these it would make the same record.
struct Plain<'a> {
    attrs: Attrs<'a>,
    message: &'a [u8],
    extras: Vec<(&'a str, Scalar<'a>)>,
}

impl<'a> Plain<'a> {
    fn read(decoder: &pickle::Decoder, payload: &'a [u8]) -> Option<Plain<'a>> {
        let mut attrs = Attrs::default();
        let (mut msg, mut args) = (Scalar::None, Scalar::None);
        let mut extras = Vec::new();
        decoder.str_dict(payload, |key, v| {
            match attrs.place(key) {
                Place::Msg => msg = v,
                Place::Args => args = v,
                Place::Attr(slot) => *slot = Some(Attr::from(v)),
                Place::Ignored => {}
                Place::Extra => extras.push((key, v)),
            }
            Some(())
        })?;
        // `msg % args`, and the repr of a `msg` that is not text, are the
        // general path's.
        let message: &[u8] = match (msg, Attr::from(args).truthy()) {
            (Scalar::Str(m), false) => m.as_bytes(),
            (Scalar::None, false) => b"",
            _ => return None,
        };
        Some(Plain {
            attrs,
            message,
            extras,
        })
    }

    fn record<T>(
        &self,
        parts: Parts<'_, '_>,
        then: impl FnOnce(&Record<'_>, &Arc<Source>) -> T,
    ) -> Result<T, IntakeError> {
        let extras = |fields: &mut FieldsBuf| {
            for &(key, v) in &self.extras {
                push_plain(fields, key, v);
            }
        };
        parts.record(&self.attrs, |_| Cow::Borrowed(self.message), extras, then)
    }
}

/// Decodes Python records with fixed limits and one source cache: what a
/// listener keeps per socket. It also keeps the pickle decoder's working
/// memory from one record to the next.
#[derive(Debug)]
pub struct PythonIntake {
    decoder: pickle::Decoder,
    sources: SourceCache,
    /// The fields of the record being made, kept from one to the next.
    fields: FieldsBuf,
    /// The limits given at construction, which
    /// [`limit_work`](Self::limit_work) narrows.
    base: Limits,
}

impl Default for PythonIntake {
    fn default() -> Self {
        PythonIntake::new(Limits::default())
    }
}

impl PythonIntake {
    /// An intake applying `limits`, with an empty source cache.
    pub fn new(limits: Limits) -> Self {
        PythonIntake {
            decoder: pickle::Decoder::modelling_objects(limits.clone()),
            sources: SourceCache::new(),
            fields: FieldsBuf::new(),
            base: limits,
        }
    }

    /// The limits applied to each pickle.
    pub fn limits(&self) -> &Limits {
        self.decoder.limits()
    }

    /// Bounds the working memory of the next pickles, and the text their
    /// record may hold, to `bytes` (never above this intake's limits).
    pub fn limit_work(&mut self, bytes: usize) {
        let mut limits = self.base.clone();
        limits.max_work_bytes = limits.max_work_bytes.min(bytes);
        limits.max_total_bytes = limits.max_total_bytes.min(bytes);
        self.decoder.set_limits(limits);
    }

    /// Bytes this intake keeps between pickles: the decoder's recycled
    /// working memory, the source cache and the fields buffer.
    pub fn retained_bytes(&self) -> usize {
        self.decoder.retained_bytes() + self.sources.bytes() + self.fields.capacity()
    }

    /// [`record_from_pickle`] with this intake's limits and cache.
    pub fn decode(
        &mut self,
        payload: &[u8],
        peer_host: &str,
        received_ns: i64,
    ) -> Result<OwnedRecord, IntakeError> {
        self.decode_then(
            payload,
            peer_host,
            received_ns,
            OwnedRecord::from_record_with_source,
        )
    }

    /// [`decode`](Self::decode), handing the record to `then` as a
    /// [`Record`] borrowed from `payload` and this intake, with its
    /// source, rather than copied into an [`OwnedRecord`].
    pub fn decode_then<T>(
        &mut self,
        payload: &[u8],
        peer_host: &str,
        received_ns: i64,
        then: impl FnOnce(&Record<'_>, &Arc<Source>) -> T,
    ) -> Result<T, IntakeError> {
        if self.fields.capacity() > KEEP_FIELDS {
            // After a record with large fields, not kept for the rest of
            // the stream.
            self.fields = FieldsBuf::new();
        }
        let parts = Parts {
            received_ns,
            peer_host,
            sources: &mut self.sources,
            fields: &mut self.fields,
        };
        if let Some(plain) = Plain::read(&self.decoder, payload) {
            return plain.record(parts, then);
        }
        let value = self.decoder.decode(payload)?;
        dict_then(&value, parts, then)
    }
}

/// Capacity the fields buffer of a [`PythonIntake`] keeps from one record
/// to the next, at most.
const KEEP_FIELDS: usize = 4 << 10;

/// A LogRecord attribute as the mapping reads it: a plain value, or what
/// kind of other value it is.
#[derive(Clone, Copy, Debug)]
enum Attr<'a> {
    None,
    Bool(bool),
    Int(i64),
    /// An int past 64 bits, as [`PickleValue::BigInt`] holds it.
    BigInt(&'a [u8]),
    Float(f64),
    Str(&'a str),
    /// Anything else, by its Python type name.
    Other(&'static str),
}

impl<'a> Attr<'a> {
    fn of(v: &'a PickleValue<'_>) -> Attr<'a> {
        match v {
            PickleValue::None => Attr::None,
            PickleValue::Bool(b) => Attr::Bool(*b),
            PickleValue::Int(i) => Attr::Int(*i),
            PickleValue::BigInt(b) => Attr::BigInt(b),
            PickleValue::Float(f) => Attr::Float(*f),
            PickleValue::Str(s) => Attr::Str(s),
            other => Attr::Other(other.type_name()),
        }
    }

    /// The Python type name, for messages.
    fn type_name(self) -> &'static str {
        match self {
            Attr::None => "None",
            Attr::Bool(_) => "bool",
            Attr::Int(_) | Attr::BigInt(_) => "int",
            Attr::Float(_) => "float",
            Attr::Str(_) => "str",
            Attr::Other(name) => name,
        }
    }

    /// Python's truth value of a plain value; `true` for any other.
    fn truthy(self) -> bool {
        match self {
            Attr::None => false,
            Attr::Bool(b) => b,
            Attr::Int(i) => i != 0,
            Attr::Float(f) => f != 0.0,
            Attr::Str(s) => !s.is_empty(),
            Attr::BigInt(_) | Attr::Other(_) => true,
        }
    }
}

impl<'a> From<Scalar<'a>> for Attr<'a> {
    fn from(v: Scalar<'a>) -> Attr<'a> {
        match v {
            Scalar::None => Attr::None,
            Scalar::Bool(b) => Attr::Bool(b),
            Scalar::Int(i) => Attr::Int(i),
            Scalar::Float(f) => Attr::Float(f),
            Scalar::Str(s) => Attr::Str(s),
        }
    }
}

/// The LogRecord attributes that have a place in the record (`msg`,
/// `args` and `extra` values are kept apart, as they are: they may be
/// formatted or shown whole).
#[derive(Default)]
struct Attrs<'a> {
    levelno: Option<Attr<'a>>,
    levelname: Option<Attr<'a>>,
    name: Option<Attr<'a>>,
    created: Option<Attr<'a>>,
    process: Option<Attr<'a>>,
    process_name: Option<Attr<'a>>,
    thread: Option<Attr<'a>>,
    thread_name: Option<Attr<'a>>,
    pathname: Option<Attr<'a>>,
    filename: Option<Attr<'a>>,
    module: Option<Attr<'a>>,
    lineno: Option<Attr<'a>>,
    func_name: Option<Attr<'a>>,
    exc_text: Option<Attr<'a>>,
    stack_info: Option<Attr<'a>>,
    task_name: Option<Attr<'a>>,
    msecs: Option<Attr<'a>>,
}

/// Where a LogRecord attribute goes.
enum Place<'s, 'a> {
    Msg,
    Args,
    Attr(&'s mut Option<Attr<'a>>),
    /// Formatted into the message, redundant, or meaningless away from the
    /// sending process.
    Ignored,
    /// An `extra` value: a field of its own.
    Extra,
}

impl<'a> Attrs<'a> {
    fn place(&mut self, key: &str) -> Place<'_, 'a> {
        // By length first, then by the bytes: every key of every record
        // comes through here.
        let k = key.as_bytes();
        let slot = match k.len() {
            3 if k == b"msg" => return Place::Msg,
            4 if k == b"args" => return Place::Args,
            4 if k == b"name" => &mut self.name,
            5 if k == b"msecs" => &mut self.msecs,
            6 if k == b"module" => &mut self.module,
            6 if k == b"lineno" => &mut self.lineno,
            6 if k == b"thread" => &mut self.thread,
            7 if k == b"levelno" => &mut self.levelno,
            7 if k == b"created" => &mut self.created,
            7 if k == b"process" => &mut self.process,
            7 if k == b"message" || k == b"asctime" => return Place::Ignored,
            8 if k == b"pathname" => &mut self.pathname,
            8 if k == b"filename" => &mut self.filename,
            8 if k == b"funcName" => &mut self.func_name,
            8 if k == b"exc_text" => &mut self.exc_text,
            8 if k == b"taskName" => &mut self.task_name,
            8 if k == b"exc_info" => return Place::Ignored,
            9 if k == b"levelname" => &mut self.levelname,
            10 if k == b"threadName" => &mut self.thread_name,
            10 if k == b"stack_info" => &mut self.stack_info,
            11 if k == b"processName" => &mut self.process_name,
            15 if k == b"relativeCreated" => return Place::Ignored,
            _ => return Place::Extra,
        };
        Place::Attr(slot)
    }
}

/// What a record is made with besides the pickle's attributes.
struct Parts<'p, 's> {
    received_ns: i64,
    peer_host: &'p str,
    sources: &'s mut SourceCache,
    /// Emptied, then given the record's fields.
    fields: &'s mut FieldsBuf,
}

impl Parts<'_, '_> {
    /// Maps the attributes onto a record (see the module's table) and hands
    /// it to `then`: `message` makes the message (and may add fields),
    /// `extras` adds the `extra` values' fields.
    fn record<'m, T>(
        self,
        a: &Attrs<'_>,
        message: impl FnOnce(&mut FieldsBuf) -> Cow<'m, [u8]>,
        extras: impl FnOnce(&mut FieldsBuf),
        then: impl FnOnce(&Record<'_>, &Arc<Source>) -> T,
    ) -> Result<T, IntakeError> {
        let fields = self.fields;
        fields.clear();
        let levelno = match a.levelno {
            None | Some(Attr::None) => None,
            Some(Attr::Int(n)) => Some(n),
            Some(Attr::BigInt(b)) => Some(if b.last().is_some_and(|&x| x & 0x80 != 0) {
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
            None | Some(Attr::None) => self.received_ns,
            Some(created @ Attr::Float(f)) => {
                let ns = seconds_to_ns(f)
                    .ok_or_else(|| bad("created", "seconds since the epoch", created))?;
                match a.msecs {
                    Some(Attr::Float(m)) => agree_with_msecs(ns, m),
                    _ => ns,
                }
            }
            Some(created @ Attr::Int(s)) => s
                .checked_mul(1_000_000_000)
                .ok_or_else(|| bad("created", "seconds since the epoch", created))?,
            Some(other) => return Err(bad("created", "float", other)),
        };

        let pid = match a.process {
            None | Some(Attr::None) => 0,
            Some(process @ Attr::Int(p)) => {
                u32::try_from(p).map_err(|_| bad("process", "a process id", process))?
            }
            Some(other) => return Err(bad("process", "int", other)),
        };
        let process_name = opt_str("processName", a.process_name)?.unwrap_or("");
        let thread_id = match a.thread {
            None | Some(Attr::None) => 0,
            Some(thread @ Attr::Int(n)) => {
                u64::try_from(n).map_err(|_| bad("thread", "a thread id", thread))?
            }
            Some(thread @ Attr::BigInt(b)) => {
                bigint_u64(b).ok_or_else(|| bad("thread", "a thread id", thread))?
            }
            Some(other) => return Err(bad("thread", "int", other)),
        };
        let line = match a.lineno {
            None | Some(Attr::None) => None,
            Some(Attr::Int(n)) => u32::try_from(n).ok(),
            Some(other) => return Err(bad("lineno", "int", other)),
        };
        let file = match opt_str("pathname", a.pathname)? {
            Some(p) => Some(p),
            None => opt_str("filename", a.filename)?,
        };

        let message = message(fields);

        for (key, v) in [
            ("exc_text", a.exc_text),
            ("stack_info", a.stack_info),
            ("taskName", a.task_name),
        ] {
            if let Some(text) = opt_str(key, v)? {
                fields.push_str(key, text);
            }
        }
        extras(fields);

        let target = opt_str("name", a.name)?.unwrap_or("root");
        let module = opt_str("module", a.module)?;
        let function = opt_str("funcName", a.func_name)?;
        let thread_name = opt_str("threadName", a.thread_name)?;
        let source = self.sources.get(self.peer_host, pid, process_name);
        let r = Record {
            timestamp_ns,
            level,
            target,
            message: &message,
            plain_message: false,
            module,
            file,
            line,
            function,
            thread_id,
            thread_name,
            source: &source,
            fields: fields.as_fields(),
        };
        Ok(then(&r, &source))
    }
}

fn bad(key: &'static str, expected: &'static str, found: Attr<'_>) -> IntakeError {
    IntakeError::BadField {
        key,
        expected,
        found: found.type_name(),
    }
}

/// A text attribute: absent and `None` are both `None`.
fn opt_str<'a>(key: &'static str, v: Option<Attr<'a>>) -> Result<Option<&'a str>, IntakeError> {
    match v {
        None | Some(Attr::None) => Ok(None),
        Some(Attr::Str(s)) => Ok(Some(s)),
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

/// `ns` (from `created`, rounded to the microsecond) moved into the
/// millisecond `msecs` says, when it lies within a microsecond of it.
///
/// Python prints `asctime` from the whole seconds of `created` and its
/// milliseconds (and `%(msecs)d`) from `msecs`, which the sender computed
/// from the same clock reading without rounding: a `created` of
/// `….1229999996` is 122 ms to Python and 123,000 µs rounded. Only such a
/// rounding is undone (a record whose `msecs` says something else, edited
/// by hand, keeps its `created`), so the collector's lines show the time
/// the sender's own formatter would.
fn agree_with_msecs(ns: i64, msecs: f64) -> i64 {
    const SEC: i64 = 1_000_000_000;
    if !(0.0..1000.0).contains(&msecs) {
        return ns;
    }
    let ms = msecs as i64;
    let start = ns - ns.rem_euclid(SEC);
    for second in [start, start - SEC, start + SEC] {
        let lo = second + ms * 1_000_000;
        let hi = lo + 999_999;
        if (lo - 1_000..=hi + 1_000).contains(&ns) {
            return ns.clamp(lo, hi);
        }
    }
    ns
}

/// Most bytes `msg % args` may produce; past it the message is left
/// unformatted. Python has no such limit, but widths and repeated
/// directives would otherwise let a small record allocate without bound.
const FORMAT_MAX: usize = 1 << 20;

/// The message: `msg`, or `msg % args` when a sender left `args` set (as
/// `LogRecord.getMessage` computes it). When that fails, the message is
/// `msg` as it is, and the record carries the error as `format_error`
/// (`TypeError: not enough arguments for format string`) and the
/// arguments' `repr()` as `args`: the record is kept, where Python's
/// handler would have reported the error and dropped it.
fn message<'v>(
    msg: Option<&'v PickleValue<'_>>,
    args: Option<&PickleValue<'_>>,
    fields: &mut FieldsBuf,
) -> Cow<'v, [u8]> {
    let args = args.filter(|a| truthy(a));
    let mut text = String::new();
    match msg {
        None | Some(PickleValue::None) => {}
        // What senders send: the formatted message, as it is.
        Some(PickleValue::Str(s)) if args.is_none() => return Cow::Borrowed(s.as_bytes()),
        Some(PickleValue::Str(s)) => text.push_str(s),
        Some(v) => v.write_repr(&mut text, FORMAT_MAX),
    }
    let Some(args) = args else {
        return Cow::Owned(text.into_bytes());
    };
    // A lone non-empty mapping is the mapping, as LogRecord's constructor
    // makes it of `args=({...},)`.
    let args = match args {
        PickleValue::Tuple(items)
            if items.len() == 1 && matches!(&items[0], PickleValue::Dict(d) if !d.is_empty()) =>
        {
            &items[0]
        }
        other => other,
    };
    let mut out = String::new();
    match pyfmt::format(&text, args, &mut out, FORMAT_MAX) {
        Ok(()) => Cow::Owned(out.into_bytes()),
        Err(e) => {
            fields.push_str("format_error", &e.to_string());
            let mut repr = String::new();
            args.write_repr(&mut repr, EXTRA_REPR_MAX);
            fields.push_str("args", &repr);
            Cow::Owned(text.into_bytes())
        }
    }
}

impl pyfmt::Object for PickleValue<'_> {
    fn view(&self) -> pyfmt::View<'_, Self> {
        use pyfmt::View;
        match self {
            PickleValue::None => View::None,
            PickleValue::Bool(b) => View::Bool(*b),
            PickleValue::Int(i) => View::Int(i128::from(*i)),
            PickleValue::BigInt(b) => View::BigInt(b),
            PickleValue::Float(f) => View::Float(*f),
            PickleValue::Str(s) => View::Text(s),
            PickleValue::Bytes(b) => View::Bytes(b),
            PickleValue::List(l) => View::List(l),
            PickleValue::Tuple(t) => View::Tuple(t),
            PickleValue::Dict(d) => View::Dict(d),
            PickleValue::Object(o) => View::Object {
                type_name: o.type_name(),
                text: o.text(),
                repr: o.repr(),
            },
        }
    }
}

/// Python's truth value, as `if self.args:` tests it.
fn truthy(v: &PickleValue<'_>) -> bool {
    match v {
        PickleValue::Bytes(b) => !b.is_empty(),
        PickleValue::List(l) | PickleValue::Tuple(l) => !l.is_empty(),
        PickleValue::Dict(d) => !d.is_empty(),
        // An empty set, bytearray, zero Decimal or timedelta is false in
        // Python; any of them as a record's `args` formats the same way
        // whether or not it is applied, except for a literal `%`.
        PickleValue::Object(o) => !matches!(
            o.text(),
            "set()" | "frozenset()" | "bytearray(b'')" | "0" | "0:00:00"
        ),
        PickleValue::None
        | PickleValue::Bool(_)
        | PickleValue::Int(_)
        | PickleValue::BigInt(_)
        | PickleValue::Float(_)
        | PickleValue::Str(_) => Attr::of(v).truthy(),
    }
}

/// A plain `extra` value as a field of its type.
fn push_plain(fields: &mut FieldsBuf, key: &str, v: Scalar<'_>) {
    match v {
        Scalar::None => fields.push(key, Value::Null),
        Scalar::Bool(b) => fields.push(key, Value::Bool(b)),
        Scalar::Int(i) => fields.push(key, Value::I64(i)),
        Scalar::Float(f) => fields.push(key, Value::F64(f)),
        Scalar::Str(s) => fields.push_str(key, s),
    }
}

fn push_extra(fields: &mut FieldsBuf, key: &str, v: &PickleValue<'_>) {
    match v {
        PickleValue::None => push_plain(fields, key, Scalar::None),
        PickleValue::Bool(b) => push_plain(fields, key, Scalar::Bool(*b)),
        PickleValue::Int(i) => push_plain(fields, key, Scalar::Int(*i)),
        PickleValue::Float(f) => push_plain(fields, key, Scalar::Float(*f)),
        PickleValue::Str(s) => push_plain(fields, key, Scalar::Str(s)),
        PickleValue::BigInt(_) => match v.as_u64() {
            Some(u) => fields.push(key, Value::U64(u)),
            None => {
                let mut s = String::new();
                v.write_repr(&mut s, EXTRA_REPR_MAX);
                fields.push_str(key, &s);
            }
        },
        PickleValue::Object(o) => {
            // str(), cut as a repr is cut.
            let text = o.text();
            if text.len() <= EXTRA_REPR_MAX {
                fields.push_str(key, text);
            } else {
                let mut end = EXTRA_REPR_MAX;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                fields.push_str(key, &format!("{}...", &text[..end]));
            }
        }
        other => {
            let mut s = String::new();
            other.write_repr(&mut s, EXTRA_REPR_MAX);
            fields.push_str(key, &s);
        }
    }
}

/// The first value in `v` (`v` itself, or an item, key or value at any
/// depth) that the pickle reader could not model, as the error that
/// refuses the pickle: such a value is shown as a placeholder inside an
/// `extra`, and refused anywhere else.
fn unmodelled(v: &PickleValue<'_>) -> Result<(), IntakeError> {
    // Nearly every value of a record is a scalar: no walk, no allocation.
    if !matches!(
        v,
        PickleValue::Object(_)
            | PickleValue::List(_)
            | PickleValue::Tuple(_)
            | PickleValue::Dict(_)
    ) {
        return Ok(());
    }
    let mut todo = vec![v];
    while let Some(v) = todo.pop() {
        match v {
            PickleValue::Object(o) => {
                if let Some((name, offset)) = o.unmodelled() {
                    return Err(PickleError::Forbidden { name, offset }.into());
                }
            }
            PickleValue::List(items) | PickleValue::Tuple(items) => todo.extend(items.iter().rev()),
            PickleValue::Dict(pairs) => {
                for (k, v) in pairs.iter().rev() {
                    todo.push(v);
                    todo.push(k);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> PickleValue<'_> {
        PickleValue::Str(v.into())
    }

    /// What the plain reading makes of `pickle` (`None`: it declines) and
    /// what the general one does, as an owned record or the error.
    #[allow(clippy::type_complexity)]
    fn both_readings(
        pickle: &[u8],
        limits: &Limits,
    ) -> (
        Option<Result<OwnedRecord, IntakeError>>,
        Result<OwnedRecord, IntakeError>,
    ) {
        fn parts<'s>(sources: &'s mut SourceCache, fields: &'s mut FieldsBuf) -> Parts<'s, 's> {
            Parts {
                received_ns: 7,
                peer_host: "peer",
                sources,
                fields,
            }
        }
        let mut decoder = pickle::Decoder::modelling_objects(limits.clone());
        let (mut sources, mut fields) = (SourceCache::new(), FieldsBuf::new());
        let owned = OwnedRecord::from_record_with_source;
        let plain = Plain::read(&decoder, pickle)
            .map(|p| p.record(parts(&mut sources, &mut fields), owned));
        let general = decoder
            .decode(pickle)
            .map_err(IntakeError::from)
            .and_then(|v| dict_then(&v, parts(&mut sources, &mut fields), owned));
        (plain, general)
    }

    /// A dict as `SocketHandler` pickles it (protocol 1: `BINUNICODE`
    /// keys, a `BINPUT` after every key and value), of `(key, the value's
    /// opcodes)`.
    fn stock(pairs: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut p = b"}q\x00(".to_vec();
        for (i, (k, v)) in pairs.iter().enumerate() {
            p.push(b'X');
            p.extend((k.len() as u32).to_le_bytes());
            p.extend(k.as_bytes());
            p.extend([b'q', (2 * i + 1) as u8]);
            p.extend(v);
            p.extend([b'q', (2 * i + 2) as u8]);
        }
        p.extend(b"u.");
        p
    }

    fn text(t: &[u8]) -> Vec<u8> {
        let mut v = vec![b'X'];
        v.extend((t.len() as u32).to_le_bytes());
        v.extend(t);
        v
    }

    /// The attributes of a record as Python 3.11's `makePickle` writes
    /// them, in its order.
    fn stock_record() -> Vec<(&'static str, Vec<u8>)> {
        let float = |f: f64| [&[b'G'][..], &f.to_be_bytes()].concat();
        vec![
            ("name", text(b"bench")),
            ("msg", text(b"py0 0 request served in 3 ms")),
            ("args", b"N".to_vec()),
            ("levelname", text(b"INFO")),
            ("levelno", b"K\x14".to_vec()),
            ("pathname", text(b"/srv/app.py")),
            ("filename", text(b"app.py")),
            ("module", text(b"app")),
            ("exc_info", b"N".to_vec()),
            ("exc_text", b"N".to_vec()),
            ("stack_info", b"N".to_vec()),
            ("lineno", b"K\x2a".to_vec()),
            ("funcName", text(b"serve")),
            ("created", float(1796573063.9502337)),
            ("msecs", float(950.0)),
            ("relativeCreated", float(26.34286880493164)),
            ("thread", b"L140580380302208L\n".to_vec()),
            ("threadName", text(b"MainThread")),
            ("processName", text(b"MainProcess")),
            ("process", b"M\xd3\x28".to_vec()),
        ]
    }

    /// Values of every kind the plain reading reads, and some it leaves to
    /// the general one.
    fn values() -> Vec<Vec<u8>> {
        let float = |f: f64| [&[b'G'][..], &f.to_be_bytes()].concat();
        vec![
            b"N".to_vec(),
            b"\x88".to_vec(),
            b"\x89".to_vec(),
            b"K\x00".to_vec(),
            b"K\x1e".to_vec(),
            b"M\xff\xff".to_vec(),
            b"J\xff\xff\xff\xff".to_vec(),
            b"J\x00\x00\x00\x80".to_vec(),
            b"L-5L\n".to_vec(),
            b"L9223372036854775807L\n".to_vec(),
            b"L18446744073709551615L\n".to_vec(),
            b"L 12L\n".to_vec(),
            float(0.0),
            float(-1.5),
            float(1e300),
            float(f64::NAN),
            float(f64::INFINITY),
            float(1700000000.123456),
            float(999.9999),
            text(b""),
            text(b"WARNING"),
            text(b"Level 5"),
            text("caf\u{e9} \u{1f600}".as_bytes()),
            text(b"bad \xff utf-8"),
            text(b"lone \xed\xa0\x80 surrogate"),
            text(b"%s and %d"),
            [&[0x8c, 3][..], b"abc"].concat(),
            b"C\x01x".to_vec(),
            b"\x8a\x01\x05".to_vec(),
            b"]q\x50.".to_vec(),
        ]
    }

    #[test]
    fn the_plain_reading_makes_the_record_the_general_one_makes() {
        let limits = Limits::default();
        let mut plain_taken = 0;
        let mut check = |pickle: &[u8], limits: &Limits| {
            let (plain, general) = both_readings(pickle, limits);
            if let Some(plain) = plain {
                plain_taken += 1;
                assert_eq!(plain, general, "{pickle:x?}");
            }
        };
        let base = stock_record();
        check(&stock(&base), &limits);
        // Each attribute, and an extra, a duplicate and an unknown one,
        // with each value in turn.
        let mut keys: Vec<&str> = base.iter().map(|(k, _)| *k).collect();
        keys.extend(["taskName", "asctime", "message", "user", "n"]);
        for key in keys {
            for v in values() {
                let mut pairs = base.clone();
                match pairs.iter_mut().find(|(k, _)| *k == key) {
                    Some(pair) => pair.1 = v.clone(),
                    None => pairs.push((key, v.clone())),
                }
                check(&stock(&pairs), &limits);
                // Set twice: the later one counts.
                pairs.push((key, text(b"again")));
                check(&stock(&pairs), &limits);
            }
        }
        // Every prefix and every byte changed of the stock pickle, at the
        // edge of the limits too.
        let pickle = stock(&base);
        for limits in [
            Limits::default(),
            Limits {
                max_total_bytes: 180,
                ..Limits::default()
            },
            Limits {
                max_elements: 40,
                ..Limits::default()
            },
            Limits {
                max_memo: 40,
                ..Limits::default()
            },
            Limits {
                max_input: 400,
                ..Limits::default()
            },
        ] {
            for end in 0..=pickle.len() {
                check(&pickle[..end], &limits);
            }
        }
        for at in 0..pickle.len() {
            for b in [0u8, 1, 0x28, 0x2e, 0x4b, 0x58, 0x71, 0x75, 0x7f, 0x80, 0xff] {
                let mut p = pickle.clone();
                p[at] = b;
                check(&p, &limits);
            }
        }
        // The pickles the fuzzer kept.
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pickle");
        for entry in std::fs::read_dir(corpus).unwrap() {
            check(&std::fs::read(entry.unwrap().path()).unwrap(), &limits);
        }
        assert!(plain_taken > 1000, "{plain_taken}");
    }

    #[test]
    fn a_stock_pickle_is_read_plainly() {
        let (plain, general) = both_readings(&stock(&stock_record()), &Limits::default());
        let r = general.unwrap();
        assert_eq!(plain, Some(Ok(r.clone())));
        assert_eq!(
            (r.target.as_str(), r.message.as_slice(), r.line, r.thread_id),
            (
                "bench",
                &b"py0 0 request served in 3 ms"[..],
                Some(42),
                140580380302208
            )
        );
        assert_eq!(
            (r.source.pid, r.source.process_name.as_str()),
            (10451, "MainProcess")
        );
        assert!(r.fields.is_empty());
    }

    /// The message of a record whose `msg` and `args` are given, and the
    /// fields it got.
    fn formatted(msg: &str, args: PickleValue<'_>) -> (String, Vec<(String, String)>) {
        let mut fields = FieldsBuf::new();
        let msg = s(msg);
        let m = message(Some(&msg), Some(&args), &mut fields);
        let shown = fields
            .as_fields()
            .into_iter()
            .map(|(k, v)| match v {
                Value::Str(b) => (k.to_string(), String::from_utf8_lossy(b).into_owned()),
                other => (k.to_string(), format!("{other:?}")),
            })
            .collect();
        (String::from_utf8(m.into_owned()).unwrap(), shown)
    }

    #[test]
    fn args_left_by_the_sender_are_formatted_as_get_message_does() {
        use PickleValue::{Dict, Float, Int, Tuple};
        let (m, f) = formatted(
            "%s has %05.1f%% of %r",
            Tuple(vec![s("ada"), Float(12.25), s("it's")]),
        );
        assert_eq!(m, "ada has 012.2% of \"it's\"");
        assert!(f.is_empty(), "{f:?}");
        // A lone dict in the tuple is the mapping.
        let d = Dict(vec![(s("user"), s("ada")), (s("n"), Int(7))]);
        assert_eq!(
            formatted("%(user)s has %(n)03d", Tuple(vec![d.clone()])).0,
            "ada has 007"
        );
        assert_eq!(formatted("%(user)s", d).0, "ada");
        // Empty args are no args: the `%` stays.
        assert_eq!(formatted("100%", Tuple(vec![])).0, "100%");
    }

    #[test]
    fn a_format_python_refuses_keeps_msg_and_says_why() {
        use PickleValue::{Int, Tuple};
        let (m, f) = formatted("%d items", Tuple(vec![s("x")]));
        assert_eq!(m, "%d items");
        assert_eq!(
            f,
            [
                (
                    "format_error".to_string(),
                    "TypeError: %d format: a real number is required, not str".to_string()
                ),
                ("args".to_string(), "('x',)".to_string()),
            ]
        );
        let (m, f) = formatted("%s %s", Tuple(vec![Int(1)]));
        assert_eq!(m, "%s %s");
        assert!(
            f[0].1.contains("not enough arguments for format string"),
            "{f:?}"
        );
        // Output past FORMAT_MAX is refused rather than built.
        let (m, f) = formatted(&"%65536s".repeat(20), Tuple(vec![s("x"); 20]));
        assert_eq!(m.len(), 7 * 20);
        assert!(f[0].1.contains("longer than 1048576 bytes"), "{f:?}");
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
