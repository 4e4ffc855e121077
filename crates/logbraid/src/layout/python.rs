//! Python `logging.Formatter` formats (`%(asctime)s %(levelname)-8s ...`).

use std::fmt;

use logbraid_pyfmt::{
    self as pyfmt, Count, Key as PieceKey, Piece, Pieces, Spec, Value as PyValue,
};

use jiff::tz::TimeZone;

use super::time::{self, split_ns, Strftime};
use super::{level_color, push_lossy, trailers, Layout, RESET};
use crate::clock;
use crate::record::{Record, Value};

/// The largest width or precision a format may ask for: enough for any
/// column, small enough that a typo cannot make every record megabytes long.
const MAX_WIDTH: usize = 4096;

/// Why a `%`-style format was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutErrorKind {
    /// `%(` with no matching `)`.
    #[error("`%(` is never closed by `)`")]
    UnterminatedKey,
    /// The format ends inside a conversion (`%` or `%(name)` at the end).
    #[error("the format ends inside a conversion; a conversion needs a type such as `s` or `d`")]
    Incomplete,
    /// `%` followed by neither `(` nor `%`, as in `%s` or `100% sure`.
    #[error("`%` must be followed by `(name)`, as in `%(message)s`, or by `%` for a percent sign")]
    MissingKey,
    /// `%()`.
    #[error("`%()` names no attribute")]
    EmptyKey,
    /// A conversion character that is not one of `s r a d i u o x X e E f F g G c`.
    #[error("unknown conversion character {0:?}; expected one of s r a d i u o x X e E f F g G c")]
    UnknownConversion(char),
    /// `*` for a width or precision: a log format has no argument to take it from.
    #[error("`*` cannot give a width or precision in a log format; write the number")]
    StarWidth,
    /// A width or precision over the limit.
    #[error("width or precision {0} is larger than {MAX_WIDTH}")]
    TooWide(String),
    /// A number conversion applied to an attribute that is always text.
    #[error("`%({key}){conv}` formats text as a number; use `%({key})s`")]
    TextAsNumber {
        /// The attribute.
        key: String,
        /// The conversion character.
        conv: char,
    },
    /// No `%(name)` conversion at all (Python rejects such a format too).
    #[error("the format has no `%(name)s` field, so every line would be the same; did you mean `text` or `json`?")]
    NoField,
}

/// A `%`-style format that cannot be used: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid log format at index {index}: {kind} (in {format:?})")]
pub struct LayoutError {
    format: String,
    index: usize,
    kind: LayoutErrorKind,
}

impl LayoutError {
    /// The position of the fault, in characters from the start of the
    /// format (0 is the first), as Python reports it.
    pub fn index(&self) -> usize {
        self.index
    }

    /// What is wrong.
    pub fn kind(&self) -> &LayoutErrorKind {
        &self.kind
    }

    /// The format that was rejected.
    pub fn format(&self) -> &str {
        &self.format
    }
}

/// An attribute of Python's `LogRecord`, or a field of ours.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Key {
    Name,
    LevelName,
    LevelNo,
    Message,
    AscTime,
    Created,
    Msecs,
    RelativeCreated,
    Process,
    ProcessName,
    Thread,
    ThreadName,
    FileName,
    PathName,
    LineNo,
    FuncName,
    Module,
    HostName,
    Field(Box<str>),
}

impl Key {
    fn from_name(name: &str) -> Key {
        match name {
            "name" => Key::Name,
            "levelname" => Key::LevelName,
            "levelno" => Key::LevelNo,
            // `msg` is the unformatted message in Python; the record only
            // has the formatted one.
            "message" | "msg" => Key::Message,
            "asctime" => Key::AscTime,
            "created" => Key::Created,
            "msecs" => Key::Msecs,
            "relativeCreated" => Key::RelativeCreated,
            "process" => Key::Process,
            "processName" => Key::ProcessName,
            "thread" => Key::Thread,
            "threadName" => Key::ThreadName,
            "filename" => Key::FileName,
            "pathname" => Key::PathName,
            "lineno" => Key::LineNo,
            "funcName" => Key::FuncName,
            "module" => Key::Module,
            "hostname" => Key::HostName,
            other => Key::Field(other.into()),
        }
    }

    /// Attributes that Python always holds as `str`.
    fn is_text(&self) -> bool {
        matches!(
            self,
            Key::Name
                | Key::LevelName
                | Key::Message
                | Key::AscTime
                | Key::ProcessName
                | Key::ThreadName
                | Key::FileName
                | Key::PathName
                | Key::FuncName
                | Key::Module
                | Key::HostName
        )
    }
}

fn parse(format: &str) -> Result<Vec<Segment>, LayoutError> {
    let fail = |at: usize, kind: LayoutErrorKind| LayoutError {
        format: format.to_string(),
        index: pyfmt::char_index(format, at),
        kind,
    };
    let mut segments = Vec::new();
    let mut literal = String::new();
    for piece in Pieces::new(format) {
        let d = match piece {
            Piece::Literal(text) => {
                literal.push_str(text);
                continue;
            }
            Piece::Percent => {
                literal.push('%');
                continue;
            }
            Piece::Directive(d) => d,
        };
        let name = match d.key {
            PieceKey::Unterminated => return Err(fail(d.at, LayoutErrorKind::UnterminatedKey)),
            PieceKey::None if d.at + 1 == format.len() => {
                return Err(fail(d.at, LayoutErrorKind::Incomplete))
            }
            PieceKey::None => return Err(fail(d.at, LayoutErrorKind::MissingKey)),
            PieceKey::Name("") => return Err(fail(d.at, LayoutErrorKind::EmptyKey)),
            PieceKey::Name(name) => name,
        };
        let count = |c: Option<Count<'_>>| match c {
            None | Some(Count::None) => Ok(None),
            Some(Count::Star { at }) => Err(fail(at, LayoutErrorKind::StarWidth)),
            Some(Count::Digits { value: Some(n), .. }) if n <= MAX_WIDTH => Ok(Some(n)),
            Some(Count::Digits { text, at, .. }) => {
                Err(fail(at, LayoutErrorKind::TooWide(text.to_string())))
            }
        };
        let width = count(Some(d.width))?;
        let precision = match d.precision {
            None => None,
            p => Some(count(p)?.unwrap_or(0)),
        };
        let Some((conv, conv_at)) = d.conv else {
            return Err(fail(d.at, LayoutErrorKind::Incomplete));
        };
        if !CONVERSIONS.contains(conv) {
            return Err(fail(conv_at, LayoutErrorKind::UnknownConversion(conv)));
        }
        let key = Key::from_name(name);
        if key.is_text() && !matches!(conv, 's' | 'r' | 'a' | 'c') {
            return Err(fail(
                d.at,
                LayoutErrorKind::TextAsNumber {
                    key: name.to_string(),
                    conv,
                },
            ));
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(std::mem::take(&mut literal)));
        }
        let spec = Spec {
            flags: d.flags,
            width,
            precision,
            conv,
        };
        segments.push(Segment::Field { key, spec });
    }
    if !segments.iter().any(|s| matches!(s, Segment::Field { .. })) {
        return Err(fail(0, LayoutErrorKind::NoField));
    }
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    Ok(segments)
}

/// The conversions a format may use.
const CONVERSIONS: &str = "sradiuoxXeEfFgGc";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Field { key: Key, spec: Spec },
}

/// Formats records like Python's `logging.Formatter` with `%`-style
/// formats, so that a program moving from `logging` keeps its log lines
/// byte for byte.
///
/// Every `LogRecord` attribute a record can fill is available:
///
/// | attribute | value |
/// |---|---|
/// | `name` | the target (logger name) |
/// | `levelname`, `levelno` | `DEBUG` `INFO` `WARNING` `ERROR` `CRITICAL` (and `TRACE`); 10 … 50 (and 5) |
/// | `message` (also `msg`) | the message |
/// | `asctime` | local time, `2026-11-22 10:04:05,123`, or `datefmt` when given |
/// | `created`, `msecs` | seconds since the epoch (float); milliseconds within the second |
/// | `relativeCreated` | milliseconds since the layout was created |
/// | `process`, `processName` | process id and name |
/// | `thread`, `threadName` | thread id; thread name (the id when unnamed) |
/// | `pathname`, `filename` | source file; its last path component |
/// | `module` | the module's last component, or the file name without extension |
/// | `lineno`, `funcName` | line (0 when unknown); function |
/// | `hostname` | the host (not in Python; ours) |
/// | anything else | the record field of that name (Python's `extra=`), `-` when absent |
///
/// `pathname`, `filename`, `module` and `funcName` print `-` when unknown.
/// Conversions follow Python's `%` operator: flags `-`, `0`, `+`, space and
/// `#`, a width, a `.precision`, and `s r a d i u o x X e E f F g G c`.
/// `%%` is a percent sign.
///
/// As in Python, the fields `exc_text` and `stack_info` follow the
/// formatted text on lines of their own, and `datefmt` replaces the whole
/// of `asctime` (there are no milliseconds unless the format adds
/// `%(msecs)03d`). The `datefmt` understands the `strftime` directives
/// `%Y %y %m %d %e %H %I %M %S %p %b %B %a %A %j %z %Z %F %T %%`; anything
/// else is copied as it is.
///
/// | option | default | effect |
/// |---|---|---|
/// | [`with_utc`](PythonLayout::with_utc) | `false` | `asctime` in UTC instead of local time |
/// | [`with_color`](PythonLayout::with_color) | `false` | `%(levelname)s` in the level's ANSI colour |
#[derive(Clone)]
pub struct PythonLayout {
    format: String,
    datefmt_text: Option<String>,
    segments: Vec<Segment>,
    /// `datefmt`, or Python's `default_time_format`.
    date_pattern: Strftime,
    uses_asctime: bool,
    color: bool,
    utc: bool,
    /// `relativeCreated` counts from here, as Python counts from the
    /// import of `logging`.
    start_ns: i64,
    /// The zone of `asctime` in local time, the system's.
    local: TimeZone,
    /// The second whose date text is in `second_text`.
    cached_second: Option<i64>,
    second_text: Vec<u8>,
    /// `asctime` of the record being formatted.
    asctime: Vec<u8>,
    /// Room to format numbers and `repr` text without allocating.
    scratch: Scratch,
}

impl fmt::Debug for PythonLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PythonLayout")
            .field("format", &self.format)
            .field("datefmt", &self.datefmt_text)
            .field("color", &self.color)
            .field("utc", &self.utc)
            .finish_non_exhaustive()
    }
}

impl PythonLayout {
    /// Compiles a `%`-style `format` and an optional `strftime` pattern for
    /// `%(asctime)s`.
    ///
    /// # Errors
    ///
    /// A format that Python would fail on at every record, with the index
    /// of the fault: an unclosed `%(`, a `%` without a key (write `%%` for
    /// a percent sign), an unknown conversion, a format that ends inside a
    /// conversion, a number conversion of a text attribute
    /// (`%(levelname)d`), and a format with no `%(name)` field at all.
    pub fn new(format: &str, datefmt: Option<&str>) -> Result<PythonLayout, LayoutError> {
        let segments = parse(format)?;
        // Python ignores an empty datefmt (`if datefmt:`).
        let datefmt = datefmt.filter(|d| !d.is_empty());
        let uses_asctime = segments.iter().any(|s| {
            matches!(
                s,
                Segment::Field {
                    key: Key::AscTime,
                    ..
                }
            )
        });
        Ok(PythonLayout {
            format: format.to_string(),
            datefmt_text: datefmt.map(str::to_string),
            segments,
            date_pattern: Strftime::parse(datefmt.unwrap_or("%Y-%m-%d %H:%M:%S")),
            uses_asctime,
            color: false,
            utc: false,
            start_ns: clock::now_ns(),
            local: time::system_zone(),
            cached_second: None,
            second_text: Vec::new(),
            asctime: Vec::new(),
            scratch: Scratch::default(),
        })
    }

    /// Shows `asctime` in UTC (`true`) or local time (`false`, the
    /// default, as Python's `Formatter.converter = time.localtime`).
    #[must_use]
    pub fn with_utc(mut self, utc: bool) -> Self {
        self.utc = utc;
        self.cached_second = None;
        self
    }

    /// Colours `%(levelname)s` as [`TextLayout`](super::TextLayout) colours
    /// its level. The padding a width adds stays outside the colour.
    #[must_use]
    pub fn with_color(mut self, color: bool) -> Self {
        self.color = color;
        self
    }

    #[cfg(test)]
    fn with_start_ns(mut self, start_ns: i64) -> Self {
        self.start_ns = start_ns;
        self
    }

    fn update_asctime(&mut self, ns: i64) {
        let (secs, nanos) = split_ns(ns);
        if self.cached_second != Some(secs) {
            // In UTC, what `time.strftime("%Z", time.gmtime())` prints: GMT.
            let zone = if self.utc { time::gmt() } else { &self.local };
            self.second_text.clear();
            self.date_pattern.write(secs, zone, &mut self.second_text);
            self.cached_second = Some(secs);
        }
        self.asctime.clear();
        self.asctime.extend_from_slice(&self.second_text);
        if self.datefmt_text.is_none() {
            // Python's default_msec_format, `%s,%03d`.
            let ms = nanos / 1_000_000;
            self.asctime.push(b',');
            self.asctime.push(b'0' + (ms / 100) as u8);
            time::push_2(&mut self.asctime, ms % 100);
        }
    }
}

impl Layout for PythonLayout {
    fn format(&mut self, r: &Record<'_>, out: &mut Vec<u8>) {
        let start = out.len();
        if self.uses_asctime {
            self.update_asctime(r.timestamp_ns);
        }
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.extend_from_slice(text.as_bytes()),
                Segment::Field { key, spec } => {
                    let value = lookup(key, r, &self.asctime, self.start_ns);
                    let color = (self.color && *key == Key::LevelName && spec.conv == 's')
                        .then(|| level_color(r.level));
                    render(out, spec, value, &mut self.scratch, color);
                }
            }
        }
        // As Python's `Formatter.format`: a newline unless the text so far
        // ends in one, then the text, as it is.
        for text in trailers(r.fields) {
            if out.len() == start || out.last() != Some(&b'\n') {
                out.push(b'\n');
            }
            push_lossy(out, text);
        }
        out.push(b'\n');
    }
}

fn module_of<'a>(r: &Record<'a>) -> Option<&'a str> {
    if let Some(module) = r.module.filter(|m| !m.is_empty()) {
        let last = module.rsplit("::").next().unwrap_or(module);
        return Some(last.rsplit('.').next().unwrap_or(last));
    }
    r.file.map(pyfmt::record::module)
}

/// What Python's `logging` prints for an attribute it does not have.
const DASH: PyValue<'static> = PyValue::Str(b"-");

fn text_or_dash(s: Option<&str>) -> PyValue<'_> {
    s.map_or(DASH, |s| PyValue::Str(s.as_bytes()))
}

fn int(n: impl Into<i128>) -> PyValue<'static> {
    PyValue::Int(n.into())
}

/// The attribute as Python would hold it.
fn lookup<'a>(key: &'a Key, r: &Record<'a>, asctime: &'a [u8], start_ns: i64) -> PyValue<'a> {
    match key {
        Key::Name => PyValue::Str(r.target.as_bytes()),
        Key::LevelName => PyValue::Str(r.level.python_name().as_bytes()),
        Key::LevelNo => int(r.level.python_number()),
        Key::Message => PyValue::Str(r.message),
        Key::AscTime => PyValue::Str(asctime),
        // As Python 3.13: `time_ns() / 1e9`, the integer rounded to a float
        // first, so both print the same digits.
        Key::Created => PyValue::Float(r.timestamp_ns as f64 / 1e9),
        Key::Msecs => PyValue::Float(f64::from(split_ns(r.timestamp_ns).1 / 1_000_000)),
        Key::RelativeCreated => {
            PyValue::Float(r.timestamp_ns.saturating_sub(start_ns) as f64 / 1e6)
        }
        Key::Process => int(r.source.pid),
        Key::ProcessName => PyValue::Str(r.source.process_name.as_bytes()),
        Key::Thread => int(r.thread_id),
        Key::ThreadName => match r.thread_name {
            Some(name) if !name.is_empty() => PyValue::Str(name.as_bytes()),
            _ => int(r.thread_id),
        },
        Key::FileName => text_or_dash(r.file.map(pyfmt::record::filename)),
        Key::PathName => text_or_dash(r.file),
        Key::LineNo => int(r.line.unwrap_or(0)),
        Key::FuncName => text_or_dash(r.function),
        Key::Module => text_or_dash(module_of(r)),
        Key::HostName => PyValue::Str(r.source.host.as_bytes()),
        Key::Field(name) => {
            let mut found = DASH;
            for (k, v) in r.fields {
                if k == &**name {
                    found = match v {
                        Value::Str(s) => PyValue::Str(s),
                        Value::I64(v) => int(v),
                        Value::U64(v) => int(v),
                        Value::F64(v) => PyValue::Float(v),
                        Value::Bool(v) => PyValue::Bool(v),
                        Value::Null => PyValue::None,
                    };
                }
            }
            found
        }
    }
}

/// Working space of one layout, kept between records.
#[derive(Clone, Default)]
struct Scratch {
    text: String,
    work: String,
}

/// Formats one value by its conversion, with the `%` operator's rules
/// ([`pyfmt::render`]). A value the conversion refuses (text for `%d`,
/// say), which makes Python drop the record with an error, is written as
/// `%s` writes it: a log line is never lost to its format.
fn render(
    out: &mut Vec<u8>,
    spec: &Spec,
    value: PyValue<'_>,
    s: &mut Scratch,
    color: Option<&[u8]>,
) {
    if let (PyValue::Str(bytes), 's', None) = (value, spec.conv, color) {
        if spec.width.is_none() && spec.precision.is_none() {
            push_lossy(out, bytes);
            return;
        }
    }
    // The colour goes around the text, inside the padding.
    let inner = match color {
        Some(_) => Spec {
            width: None,
            ..*spec
        },
        None => *spec,
    };
    s.text.clear();
    if pyfmt::render(&mut s.text, &inner, &value, &mut s.work).is_err() {
        s.text.clear();
        let as_str = Spec { conv: 's', ..inner };
        let _ = pyfmt::render(&mut s.text, &as_str, &value, &mut s.work);
    }
    let Some(color) = color else {
        out.extend_from_slice(s.text.as_bytes());
        return;
    };
    let pad = spec
        .width
        .unwrap_or(0)
        .saturating_sub(s.text.chars().count());
    if !spec.flags.left {
        out.resize(out.len() + pad, b' ');
    }
    out.extend_from_slice(color);
    out.extend_from_slice(s.text.as_bytes());
    out.extend_from_slice(RESET);
    if spec.flags.left {
        out.resize(out.len() + pad, b' ');
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::level::Level;
    use crate::record::FieldsBuf;

    /// The record of the reference lines, which were printed by CPython's
    /// `logging.Formatter` with `converter = time.gmtime`.
    fn python_record<'a>(src: &'a crate::record::Source, f: &'a FieldsBuf) -> Record<'a> {
        Record::new(Level::Warn, "app.db", b"connected x", src)
            .with_timestamp(TS)
            .with_file("/src/db/pool.py")
            .with_line(42)
            .with_function("connect")
            .with_thread_id(7)
            .with_thread_name("main")
            .with_fields(f.as_fields())
    }

    fn layout(format: &str, datefmt: Option<&str>) -> PythonLayout {
        PythonLayout::new(format, datefmt)
            .unwrap()
            .with_utc(true)
            .with_start_ns(TS - 1_500_250_000)
    }

    fn line(layout: &mut PythonLayout, rec: &Record<'_>) -> String {
        let mut out = Vec::new();
        layout.format(rec, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn one(format: &str, rec: &Record<'_>) -> String {
        let text = line(&mut layout(format, None), rec);
        text.strip_suffix('\n').unwrap().to_string()
    }

    fn err(format: &str) -> (usize, LayoutErrorKind) {
        let e = PythonLayout::new(format, None).unwrap_err();
        (e.index(), e.kind().clone())
    }

    #[test]
    fn matches_cpython_attribute_by_attribute() {
        let src = source();
        let mut f = FieldsBuf::new();
        f.push_str("user", "ada");
        let rec = python_record(&src, &f);
        let format = "%(created)f|%(created)s|%(msecs)d|%(msecs)03d|%(msecs)s|\
            %(relativeCreated)d|%(relativeCreated)s|%(levelno)s|%(levelname)-8s|\
            %(levelname)8s|%(levelname).3s|%(name)r|%(user)s|%(lineno)05d|%(lineno)-5d|\
            %(lineno)+d|%(lineno)x|%(lineno)#X|%(lineno)#o|%(created)e|%(created).3E|\
            %(created)g|%(created).12g|%(msecs)#.0f|%(lineno).4d|%(lineno)c|\
            %(created)+.2f|%(created)020.3f|%(module)s|%(filename)s|%(funcName)s";
        assert_eq!(
            one(format, &rec),
            "1700000000.123457|1700000000.1234567|123|123|123.0|1500|1500.25|30|WARNING | \
             WARNING|WAR|'app.db'|ada|00042|42   |+42|2a|0X2A|0o52|1.700000e+09|1.700E+09|\
             1.7e+09|1700000000.12|123.|0042|*|+1700000000.12|0000001700000000.123|pool|\
             pool.py|connect"
        );
    }

    #[test]
    fn asctime_default_and_datefmt() {
        let src = source();
        let f = FieldsBuf::new();
        let rec = python_record(&src, &f);
        assert_eq!(
            line(&mut layout("%(asctime)s %(message)s", None), &rec),
            "2023-11-14 22:13:20,123 connected x\n"
        );
        assert_eq!(
            line(
                &mut layout(
                    "%(asctime)s %(message)s",
                    Some("%a %d %b %Y %I:%M:%S %p %j %z %Z %q")
                ),
                &rec
            ),
            "Tue 14 Nov 2023 10:13:20 PM 318 +0000 GMT %q connected x\n"
        );
        // An empty datefmt is no datefmt, as in Python.
        assert_eq!(
            line(&mut layout("%(asctime)s", Some("")), &rec),
            "2023-11-14 22:13:20,123\n"
        );
        // Milliseconds are truncated, never carried into the next second.
        let mut late = rec;
        late.timestamp_ns = 1_700_000_000_999_999_999;
        assert_eq!(
            line(&mut layout("%(asctime)s", None), &late),
            "2023-11-14 22:13:20,999\n"
        );
    }

    #[test]
    fn asctime_cache_matches_a_fresh_layout() {
        let src = source();
        let f = FieldsBuf::new();
        let mut rec = python_record(&src, &f);
        for datefmt in [None, Some("%H:%M:%S")] {
            let mut cached = layout("%(asctime)s", datefmt);
            for ns in [
                TS,
                TS + 1,
                TS + 876_543_211,
                TS + 876_543_212,
                TS - 1_000_000_000,
                -1,
                0,
            ] {
                rec.timestamp_ns = ns;
                assert_eq!(
                    line(&mut cached, &rec),
                    line(&mut layout("%(asctime)s", datefmt), &rec)
                );
            }
        }
    }

    #[test]
    fn local_asctime_is_utc_shifted_by_the_system_zones_offset() {
        let src = source();
        let f = FieldsBuf::new();
        let rec = python_record(&src, &f);
        let offset = time::system_zone()
            .to_offset(jiff::Timestamp::from_second(1_700_000_000).unwrap())
            .seconds();
        let shifted = rec.with_timestamp(TS + i64::from(offset) * 1_000_000_000);
        let mut local = PythonLayout::new("%(asctime)s", Some("%F %T %z")).unwrap();
        let mut utc = layout("%(asctime)s", Some("%F %T"));
        let sign = if offset < 0 { '-' } else { '+' };
        let minutes = offset.unsigned_abs() / 60;
        assert_eq!(
            line(&mut local, &rec),
            format!(
                "{} {sign}{:02}{:02}\n",
                line(&mut utc, &shifted).trim_end(),
                minutes / 60,
                minutes % 60
            )
        );
    }

    #[test]
    fn absent_values() {
        let src = source();
        let f = FieldsBuf::new();
        let rec = bare(&src, &f);
        assert_eq!(
            one(
                "%(funcName)s|%(filename)s|%(pathname)s|%(module)s|%(lineno)d|%(threadName)s|\
                 %(thread)d|%(extra)s|%(extra)5s|%(extra)d|%(hostname)s|%(process)d|%(processName)s",
                &rec
            ),
            "-|-|-|-|0|7|7|-|    -|-|web-1|4242|app"
        );
    }

    #[test]
    fn module_follows_python() {
        let src = source();
        let f = FieldsBuf::new();
        let mut rec = bare(&src, &f);
        let cases = [
            (Some("app::db::pool"), None, "pool"),
            (Some("app.db"), Some("x/y.py"), "db"),
            (Some("main"), None, "main"),
            (None, Some("/a/b/handler.py"), "handler"),
            (Some(""), Some("src/lib.rs"), "lib"),
        ];
        for (module, file, want) in cases {
            rec.module = module;
            rec.file = file;
            assert_eq!(one("%(module)s", &rec), want, "{module:?} {file:?}");
        }
    }

    #[test]
    fn extra_fields_keep_python_types() {
        let src = source();
        let mut f = FieldsBuf::new();
        f.push_str("s", "text");
        f.push("i", Value::I64(-7));
        f.push("u", Value::U64(u64::MAX));
        f.push("f", Value::F64(0.1));
        f.push("b", Value::Bool(true));
        f.push("n", Value::Null);
        f.push("i", Value::I64(-8));
        let rec = bare(&src, &f);
        assert_eq!(
            one("%(s)s %(i)s %(i)05d %(u)d %(f)s %(f).2f %(b)s %(b)d %(n)s %(n)r %(s)r %(s)d %(s)-6d|", &rec),
            "text -8 -0008 18446744073709551615 0.1 0.10 True 1 None None 'text' text text  |"
        );
    }

    /// The conversions themselves are logbraid_pyfmt's, checked against
    /// CPython there; here, that each kind of field reaches them as the
    /// Python value it stands for.
    #[test]
    fn numbers_like_the_percent_operator() {
        let src = source();
        let mut f = FieldsBuf::new();
        for (k, v) in [
            ("big", 1e16),
            ("negzero", -0.0),
            ("huge", 1.5e300),
            ("pos_inf", f64::INFINITY),
            ("nan", f64::NAN),
            ("x", 1234.5678),
        ] {
            f.push(k, Value::F64(v));
        }
        f.push("neg", Value::I64(-42));
        f.push("n255", Value::I64(-255));
        f.push("umax", Value::U64(u64::MAX));
        let rec = bare(&src, &f);
        let check = |format: &str, want: &str| assert_eq!(one(format, &rec), want, "{format}");
        check(
            "%(big)s %(big)g %(big)#.0e %(negzero)s %(negzero)#g %(huge)g",
            "1e+16 1e+16 1.e+16 -0.0 -0.00000 1.5e+300",
        );
        check(
            "%(pos_inf)05f|%(pos_inf)+F|%(nan)e|%(x)10.3f|%(x)-10.1e|%(x)#.3g",
            "00inf|+INF|nan|  1234.568|1.2e+03   |1.23e+03",
        );
        check(
            "%(neg)05d|%(n255)#x|%(umax)d|%(umax)X|%(x)d",
            "-0042|-0xff|18446744073709551615|FFFFFFFFFFFFFFFF|1234",
        );
        check("%(huge).0f", &format!("{:.0}", 1.5e300));
    }

    /// CPython raises for these (`%d` of infinity, `%x` of a float, `%c` of
    /// a float) and its `logging` drops the record; the layout writes what
    /// `%s` would, so the line is not lost.
    #[test]
    fn a_value_the_conversion_refuses_is_written_as_s_writes_it() {
        let src = source();
        let mut f = FieldsBuf::new();
        f.push("pos_inf", Value::F64(f64::INFINITY));
        f.push("nan", Value::F64(f64::NAN));
        f.push("x", Value::F64(1234.5678));
        let rec = bare(&src, &f);
        assert_eq!(
            one("%(pos_inf)d %(nan)x %(x)c|%(x)-10c|%(x).2c", &rec),
            "inf nan 1234.5678|1234.5678 |12"
        );
        for (conv, v) in [('d', f64::INFINITY), ('x', f64::NAN), ('c', 1234.5678)] {
            let refused = pyfmt::render(
                &mut String::new(),
                &Spec::plain(conv),
                &PyValue::Float(v),
                &mut String::new(),
            );
            assert!(refused.is_err(), "{conv}");
        }
    }

    #[test]
    fn text_precision_width_and_repr() {
        let src = source();
        let mut f = FieldsBuf::new();
        f.push_str("abc", "abcdef");
        f.push_str("wide", "it's é😀\u{2028}");
        f.push_bytes("bad", b"a\xffb\xc3\x28");
        f.push_str("e_acute", "é");
        let rec = bare(&src, &f);
        let check = |format: &str, want: &str| assert_eq!(one(format, &rec), want, "{format}");
        check(
            "%(abc).3s|%(abc)5.2s|%(abc)-5.1s|%(abc)05s|%(abc).0s|",
            "abc|   ab|a    |abcdef||",
        );
        check(
            "%(wide)r %(wide)a %(wide)5.2r",
            "\"it's é😀\\u2028\" \"it's \\xe9\\U0001f600\\u2028\"    \"i",
        );
        check(
            "%(bad)s|%(bad)4.2s|%(bad)r",
            "a\u{FFFD}b\u{FFFD}(|  a\u{FFFD}|'a\u{FFFD}b\u{FFFD}('",
        );
        check("%(e_acute)c|%(e_acute)3c|%(abc)c", "é|  é|abcdef");
        check("%(message)8.4s|%(message)-12s|", "    conn|connected   |");
    }

    #[test]
    fn color_wraps_only_the_level_name() {
        let src = source();
        let f = FieldsBuf::new();
        let mut rec = python_record(&src, &f);
        let mut l = layout(
            "%(levelname)-8s|%(levelname)s|%(levelname)r|%(levelno)d",
            None,
        )
        .with_color(true);
        assert_eq!(
            line(&mut l, &rec),
            "\x1b[33mWARNING\x1b[0m |\x1b[33mWARNING\x1b[0m|'WARNING'|30\n"
        );
        rec.level = Level::Critical;
        assert_eq!(
            line(&mut layout("%(levelname)9.4s", None).with_color(true), &rec),
            "     \x1b[1;37;41mCRIT\x1b[0m\n"
        );
        let plain = line(&mut layout("%(levelname)s", None).with_color(false), &rec);
        assert_eq!(plain, "CRITICAL\n");
    }

    #[test]
    fn tracebacks_are_appended_like_python() {
        let src = source();
        let mut f = FieldsBuf::new();
        f.push_str(
            "stack_info",
            "Stack (most recent call last):\n  File \"a.py\"",
        );
        f.push_str(
            "exc_text",
            "Traceback (most recent call last):\nValueError: x\n",
        );
        let rec = python_record(&src, &f);
        assert_eq!(
            line(
                &mut layout("%(levelname)s:%(name)s:%(message)s", None),
                &rec
            ),
            "WARNING:app.db:connected x\nTraceback (most recent call last):\nValueError: x\n\
             Stack (most recent call last):\n  File \"a.py\"\n"
        );
        // A message that already ends in a newline gets no second one.
        let mut rec = rec;
        rec.message = b"ends\n";
        assert_eq!(
            line(&mut layout("%(message)s", None), &rec),
            "ends\nTraceback (most recent call last):\nValueError: x\n\
             Stack (most recent call last):\n  File \"a.py\"\n"
        );
    }

    #[test]
    fn literals_and_percent_signs() {
        let src = source();
        let f = FieldsBuf::new();
        let rec = python_record(&src, &f);
        assert_eq!(
            one("100%% [%(name)s] é 😀 %%", &rec),
            "100% [app.db] é 😀 %"
        );
        assert_eq!(one("%(a(b))s|%(name)hs|%(lineno)ld", &rec), "-|app.db|42");
    }

    #[test]
    fn every_parse_error() {
        use LayoutErrorKind as K;
        assert_eq!(err("%(name"), (0, K::UnterminatedKey));
        assert_eq!(err("ab %(na(me)s"), (3, K::UnterminatedKey));
        assert_eq!(err("%(name)s %"), (9, K::Incomplete));
        assert_eq!(err("%(name)"), (0, K::Incomplete));
        assert_eq!(err("é %(name)-5.2"), (2, K::Incomplete));
        assert_eq!(err("%(x)q"), (4, K::UnknownConversion('q')));
        assert_eq!(err("%(message)s %(x)%"), (16, K::UnknownConversion('%')));
        assert_eq!(err("%(x)5.2Y"), (7, K::UnknownConversion('Y')));
        assert_eq!(err("%(message)s %s"), (12, K::MissingKey));
        assert_eq!(err("100% sure %(message)s"), (3, K::MissingKey));
        assert_eq!(err("%()s"), (0, K::EmptyKey));
        assert_eq!(err("%(x)*s"), (4, K::StarWidth));
        assert_eq!(err("%(x).*s"), (5, K::StarWidth));
        assert_eq!(err("%(x)4097s"), (4, K::TooWide("4097".into())));
        assert_eq!(
            err("%(x).99999999999999999999999f"),
            (5, K::TooWide("99999999999999999999999".into()))
        );
        assert_eq!(
            err("%(levelname)d"),
            (
                0,
                K::TextAsNumber {
                    key: "levelname".into(),
                    conv: 'd'
                }
            )
        );
        assert_eq!(
            err("%(message).2f"),
            (
                0,
                K::TextAsNumber {
                    key: "message".into(),
                    conv: 'f'
                }
            )
        );
        assert_eq!(err("just text"), (0, K::NoField));
        assert_eq!(err(""), (0, K::NoField));
        assert_eq!(err("100%%"), (0, K::NoField));

        let e = PythonLayout::new("%(x)q", None).unwrap_err();
        assert_eq!(e.format(), "%(x)q");
        let shown = e.to_string();
        assert!(shown.contains("index 4"), "{shown}");
        assert!(shown.contains("'q'"), "{shown}");
        assert!(shown.contains("\"%(x)q\""), "{shown}");
    }

    #[test]
    fn accepted_formats() {
        for format in [
            "%(message)s",
            "%(asctime)s %(levelname)-8s %(name)s: %(message)s",
            "%(created)020.3f %(lineno)#x %(thread)o %(levelno)i %(process)u",
            "%(name)c %(message)a %(message)r",
            "%(x)4096s",
            "%(anything goes here)s",
        ] {
            assert!(PythonLayout::new(format, None).is_ok(), "{format}");
        }
    }

    #[test]
    fn debug_shows_the_format() {
        let l = PythonLayout::new("%(message)s", Some("%H")).unwrap();
        let shown = format!("{l:?}");
        assert!(
            shown.contains("%(message)s") && shown.contains("%H"),
            "{shown}"
        );
    }

    #[test]
    fn hostile_records_do_not_panic() {
        let src = source();
        let bytes = [5u8, 0, b'e', b'x', b'c', 0, 255, 255, 255, 255];
        let empty = FieldsBuf::new();
        let mut rec = bare(&src, &empty);
        rec.fields = crate::record::Fields::from_encoded(&bytes);
        rec.message = b"\xff\xfe\xc3";
        rec.timestamp_ns = i64::MIN;
        let mut l = PythonLayout::new(
            "%(asctime)s %(created)f %(relativeCreated)d %(msecs)03d %(message)-5.2s %(exc)d",
            Some("%Y %Z %z"),
        )
        .unwrap();
        let _ = line(&mut l, &rec);
        rec.timestamp_ns = i64::MAX;
        let _ = line(&mut l.with_utc(true), &rec);
    }
}
