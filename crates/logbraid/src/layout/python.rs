//! Python `logging.Formatter` formats (`%(asctime)s %(levelname)-8s ...`).

use std::fmt::{self, Write as _};

use jiff::tz::TimeZone;

use super::time::{self, split_ns, Strftime};
use super::{level_color, push_lossy, push_trailers, Layout, RESET};
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

/// One `%(key)...c` conversion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alt: bool,
    width: usize,
    precision: Option<usize>,
    conv: u8,
}

impl Spec {
    fn is_plain(&self) -> bool {
        self.width == 0 && self.precision.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Field { key: Key, spec: Spec },
}

fn parse(format: &str) -> Result<Vec<Segment>, LayoutError> {
    let chars: Vec<char> = format.chars().collect();
    let fail = |index: usize, kind: LayoutErrorKind| LayoutError {
        format: format.to_string(),
        index,
        kind,
    };
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut fields = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            literal.push(c);
            i += 1;
            continue;
        }
        let percent = i;
        i += 1;
        match chars.get(i) {
            None => return Err(fail(percent, LayoutErrorKind::Incomplete)),
            Some('%') => {
                literal.push('%');
                i += 1;
                continue;
            }
            Some('(') => i += 1,
            Some(_) => return Err(fail(percent, LayoutErrorKind::MissingKey)),
        }

        // The key runs to the matching parenthesis, as in Python.
        let key_start = i;
        let mut depth = 1;
        loop {
            match chars.get(i) {
                None => return Err(fail(percent, LayoutErrorKind::UnterminatedKey)),
                Some('(') => depth += 1,
                Some(')') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                Some(_) => {}
            }
            i += 1;
        }
        let name: String = chars[key_start..i].iter().collect();
        i += 1;
        if name.is_empty() {
            return Err(fail(percent, LayoutErrorKind::EmptyKey));
        }

        let mut spec = Spec::default();
        while let Some(&c) = chars.get(i) {
            match c {
                '-' => spec.left = true,
                '0' => spec.zero = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '#' => spec.alt = true,
                _ => break,
            }
            i += 1;
        }
        let number = |i: &mut usize| -> Result<usize, LayoutError> {
            if chars.get(*i) == Some(&'*') {
                return Err(fail(*i, LayoutErrorKind::StarWidth));
            }
            let start = *i;
            while chars.get(*i).is_some_and(char::is_ascii_digit) {
                *i += 1;
            }
            let digits: String = chars[start..*i].iter().collect();
            if digits.is_empty() {
                return Ok(0);
            }
            match digits.parse::<usize>() {
                Ok(n) if n <= MAX_WIDTH => Ok(n),
                _ => Err(fail(start, LayoutErrorKind::TooWide(digits))),
            }
        };
        spec.width = number(&mut i)?;
        if chars.get(i) == Some(&'.') {
            i += 1;
            spec.precision = Some(number(&mut i)?);
        }
        // C length modifiers, accepted and ignored as Python does.
        while matches!(chars.get(i), Some('h' | 'l' | 'L')) {
            i += 1;
        }
        let conv = match chars.get(i) {
            None => return Err(fail(percent, LayoutErrorKind::Incomplete)),
            Some(&c) => c,
        };
        match conv {
            's' | 'r' | 'a' | 'd' | 'i' | 'u' | 'o' | 'x' | 'X' | 'e' | 'E' | 'f' | 'F' | 'g'
            | 'G' | 'c' => {}
            other => return Err(fail(i, LayoutErrorKind::UnknownConversion(other))),
        }
        spec.conv = conv as u8;
        let key = Key::from_name(&name);
        if key.is_text() && !matches!(conv, 's' | 'r' | 'a' | 'c') {
            return Err(fail(
                percent,
                LayoutErrorKind::TextAsNumber { key: name, conv },
            ));
        }
        i += 1;
        if !literal.is_empty() {
            segments.push(Segment::Literal(std::mem::take(&mut literal)));
        }
        segments.push(Segment::Field { key, spec });
        fields += 1;
    }
    if fields == 0 {
        return Err(fail(0, LayoutErrorKind::NoField));
    }
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    Ok(segments)
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
    scratch: String,
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
            scratch: String::new(),
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
                    let color = (self.color && *key == Key::LevelName && spec.conv == b's')
                        .then(|| level_color(r.level));
                    render(out, spec, value, &mut self.scratch, color);
                }
            }
        }
        push_trailers(r.fields, out, start);
        out.push(b'\n');
    }
}

/// A value as Python would hold it.
#[derive(Clone, Copy, Debug)]
enum PyValue<'a> {
    /// `str`, possibly from bytes that are not UTF-8.
    Text(&'a [u8]),
    Int {
        negative: bool,
        magnitude: u64,
    },
    Float(f64),
    Bool(bool),
    None,
    /// A field the record does not have.
    Absent,
}

impl PyValue<'_> {
    fn unsigned(v: u64) -> Self {
        PyValue::Int {
            negative: false,
            magnitude: v,
        }
    }
}

fn basename(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Python's `os.path.splitext(name)[0]`: leading dots do not start an
/// extension.
fn strip_extension(name: &str) -> &str {
    let rest = name.trim_start_matches('.');
    let lead = name.len() - rest.len();
    match rest.rfind('.') {
        Some(dot) => &name[..lead + dot],
        None => name,
    }
}

fn module_of<'a>(r: &Record<'a>) -> Option<&'a str> {
    if let Some(module) = r.module.filter(|m| !m.is_empty()) {
        let last = module.rsplit("::").next().unwrap_or(module);
        return Some(last.rsplit('.').next().unwrap_or(last));
    }
    r.file.map(|f| strip_extension(basename(f)))
}

const DASH: PyValue<'static> = PyValue::Text(b"-");

fn text_or_dash(s: Option<&str>) -> PyValue<'_> {
    s.map_or(DASH, |s| PyValue::Text(s.as_bytes()))
}

fn lookup<'a>(key: &'a Key, r: &Record<'a>, asctime: &'a [u8], start_ns: i64) -> PyValue<'a> {
    match key {
        Key::Name => PyValue::Text(r.target.as_bytes()),
        Key::LevelName => PyValue::Text(r.level.python_name().as_bytes()),
        Key::LevelNo => PyValue::unsigned(u64::from(r.level.python_number())),
        Key::Message => PyValue::Text(r.message),
        Key::AscTime => PyValue::Text(asctime),
        // As Python 3.13: `time_ns() / 1e9`, the integer rounded to a float
        // first, so both print the same digits.
        Key::Created => PyValue::Float(r.timestamp_ns as f64 / 1e9),
        Key::Msecs => PyValue::Float(f64::from(split_ns(r.timestamp_ns).1 / 1_000_000)),
        Key::RelativeCreated => {
            PyValue::Float(r.timestamp_ns.saturating_sub(start_ns) as f64 / 1e6)
        }
        Key::Process => PyValue::unsigned(u64::from(r.source.pid)),
        Key::ProcessName => PyValue::Text(r.source.process_name.as_bytes()),
        Key::Thread => PyValue::unsigned(r.thread_id),
        Key::ThreadName => match r.thread_name {
            Some(name) if !name.is_empty() => PyValue::Text(name.as_bytes()),
            _ => PyValue::unsigned(r.thread_id),
        },
        Key::FileName => text_or_dash(r.file.map(basename)),
        Key::PathName => text_or_dash(r.file),
        Key::LineNo => PyValue::unsigned(u64::from(r.line.unwrap_or(0))),
        Key::FuncName => text_or_dash(r.function),
        Key::Module => text_or_dash(module_of(r)),
        Key::HostName => PyValue::Text(r.source.host.as_bytes()),
        Key::Field(name) => {
            let mut found = PyValue::Absent;
            for (k, v) in r.fields {
                if k == &**name {
                    found = match v {
                        Value::Str(s) => PyValue::Text(s),
                        Value::I64(v) => PyValue::Int {
                            negative: v < 0,
                            magnitude: v.unsigned_abs(),
                        },
                        Value::U64(v) => PyValue::unsigned(v),
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

/// Formats one value by its conversion. A value of the wrong type for the
/// conversion (text for `%d`, say), which makes Python drop the record, is
/// written as `%s` would write it.
fn render(
    out: &mut Vec<u8>,
    spec: &Spec,
    value: PyValue<'_>,
    scratch: &mut String,
    color: Option<&[u8]>,
) {
    let done = match spec.conv {
        b's' => {
            if let PyValue::Text(bytes) = value {
                pad_text(out, spec, bytes, color);
            } else {
                scratch.clear();
                write_str(scratch, value);
                pad_text(out, spec, scratch.as_bytes(), color);
            }
            true
        }
        b'r' | b'a' => {
            scratch.clear();
            write_repr(scratch, value, spec.conv == b'a');
            pad_text(out, spec, scratch.as_bytes(), None);
            true
        }
        b'd' | b'i' | b'u' => render_decimal(out, spec, value, scratch),
        b'x' | b'X' | b'o' => render_radix(out, spec, value, scratch),
        b'e' | b'E' | b'f' | b'F' | b'g' | b'G' => render_float(out, spec, value, scratch),
        b'c' => render_char(out, spec, value, scratch),
        _ => false,
    };
    if !done {
        scratch.clear();
        write_str(scratch, value);
        pad_text(out, spec, scratch.as_bytes(), None);
    }
}

fn push_spaces(out: &mut Vec<u8>, n: usize) {
    out.resize(out.len() + n, b' ');
}

/// The number of characters of the lossy UTF-8 of `bytes`, at most `limit`.
fn char_count(bytes: &[u8], limit: usize) -> usize {
    let mut n = 0;
    for chunk in bytes.utf8_chunks() {
        n += chunk.valid().chars().count() + usize::from(!chunk.invalid().is_empty());
        if n >= limit {
            return limit;
        }
    }
    n
}

/// Appends at most `limit` characters of the lossy UTF-8 of `bytes`.
fn push_lossy_limited(out: &mut Vec<u8>, bytes: &[u8], mut limit: usize) {
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        match valid.char_indices().nth(limit) {
            Some((end, _)) => {
                out.extend_from_slice(&valid.as_bytes()[..end]);
                return;
            }
            None => {
                out.extend_from_slice(valid.as_bytes());
                limit -= valid.chars().count();
            }
        }
        if !chunk.invalid().is_empty() {
            if limit == 0 {
                return;
            }
            out.extend_from_slice("\u{FFFD}".as_bytes());
            limit -= 1;
        }
    }
}

/// `%s`: text cut to the precision, padded to the width (the `0` flag
/// does not apply to text).
fn pad_text(out: &mut Vec<u8>, spec: &Spec, bytes: &[u8], color: Option<&[u8]>) {
    if spec.is_plain() && color.is_none() {
        push_lossy(out, bytes);
        return;
    }
    let limit = spec.precision.unwrap_or(usize::MAX);
    // Counting stops at the width: a longer text needs no padding.
    let pad = spec
        .width
        .saturating_sub(char_count(bytes, limit.min(spec.width)));
    if !spec.left {
        push_spaces(out, pad);
    }
    if let Some(c) = color {
        out.extend_from_slice(c);
    }
    if spec.precision.is_some() {
        push_lossy_limited(out, bytes, limit);
    } else {
        push_lossy(out, bytes);
    }
    if color.is_some() {
        out.extend_from_slice(RESET);
    }
    if spec.left {
        push_spaces(out, pad);
    }
}

/// Places a number's sign, prefix and digits in the width, as `%` does.
fn pad_number(out: &mut Vec<u8>, spec: &Spec, negative: bool, prefix: &str, body: &str) {
    let sign: &[u8] = if negative {
        b"-"
    } else if spec.plus {
        b"+"
    } else if spec.space {
        b" "
    } else {
        b""
    };
    let len = sign.len() + prefix.len() + body.len();
    let pad = spec.width.saturating_sub(len);
    if spec.left {
        out.extend_from_slice(sign);
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(body.as_bytes());
        push_spaces(out, pad);
    } else if spec.zero {
        out.extend_from_slice(sign);
        out.extend_from_slice(prefix.as_bytes());
        out.resize(out.len() + pad, b'0');
        out.extend_from_slice(body.as_bytes());
    } else {
        push_spaces(out, pad);
        out.extend_from_slice(sign);
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(body.as_bytes());
    }
}

/// Pads integer digits in `scratch` to the precision (minimum digits).
fn pad_digits(scratch: &mut String, precision: Option<usize>) {
    if let Some(p) = precision {
        let missing = p.saturating_sub(scratch.len());
        if missing > 0 {
            scratch.insert_str(0, &"0".repeat(missing));
        }
    }
}

fn render_decimal(
    out: &mut Vec<u8>,
    spec: &Spec,
    value: PyValue<'_>,
    scratch: &mut String,
) -> bool {
    scratch.clear();
    let negative = match value {
        PyValue::Int {
            negative,
            magnitude,
        } => {
            let _ = write!(scratch, "{magnitude}");
            negative && magnitude != 0
        }
        PyValue::Bool(b) => {
            scratch.push(if b { '1' } else { '0' });
            false
        }
        // Python truncates a float towards zero for `%d`.
        PyValue::Float(v) if v.is_finite() => {
            let t = v.trunc();
            let _ = write!(scratch, "{:.0}", t.abs());
            t < 0.0
        }
        _ => return false,
    };
    pad_digits(scratch, spec.precision);
    pad_number(out, spec, negative, "", scratch);
    true
}

fn render_radix(out: &mut Vec<u8>, spec: &Spec, value: PyValue<'_>, scratch: &mut String) -> bool {
    let (negative, magnitude) = match value {
        PyValue::Int {
            negative,
            magnitude,
        } => (negative && magnitude != 0, magnitude),
        PyValue::Bool(b) => (false, u64::from(b)),
        _ => return false,
    };
    scratch.clear();
    let prefix = match spec.conv {
        b'x' => {
            let _ = write!(scratch, "{magnitude:x}");
            "0x"
        }
        b'X' => {
            let _ = write!(scratch, "{magnitude:X}");
            "0X"
        }
        _ => {
            let _ = write!(scratch, "{magnitude:o}");
            "0o"
        }
    };
    pad_digits(scratch, spec.precision);
    pad_number(
        out,
        spec,
        negative,
        if spec.alt { prefix } else { "" },
        scratch,
    );
    true
}

fn render_float(out: &mut Vec<u8>, spec: &Spec, value: PyValue<'_>, scratch: &mut String) -> bool {
    let v = match value {
        PyValue::Float(v) => v,
        PyValue::Int {
            negative,
            magnitude,
        } => {
            let m = magnitude as f64;
            if negative {
                -m
            } else {
                m
            }
        }
        PyValue::Bool(b) => f64::from(u8::from(b)),
        _ => return false,
    };
    let upper = spec.conv.is_ascii_uppercase();
    scratch.clear();
    if !v.is_finite() {
        scratch.push_str(match (v.is_nan(), upper) {
            (true, false) => "nan",
            (true, true) => "NAN",
            (false, false) => "inf",
            (false, true) => "INF",
        });
        pad_number(out, spec, v.is_infinite() && v < 0.0, "", scratch);
        return true;
    }
    let precision = spec.precision.unwrap_or(6);
    let a = v.abs();
    match spec.conv.to_ascii_lowercase() {
        b'f' => {
            let _ = write!(scratch, "{a:.precision$}");
            if spec.alt && precision == 0 {
                scratch.push('.');
            }
        }
        b'e' => {
            let _ = write!(scratch, "{a:.precision$e}");
            python_exponent(scratch, spec.alt && precision == 0, upper);
        }
        _ => {
            // %g: `precision` significant digits, fixed notation unless
            // the exponent is below -4 or not below the precision.
            let p = precision.max(1);
            let _ = write!(scratch, "{a:.*e}", p - 1);
            let exp = exponent_of(scratch);
            if exp >= -4 && exp < p as i64 {
                let decimals = (p as i64 - 1 - exp).max(0) as usize;
                scratch.clear();
                let _ = write!(scratch, "{a:.decimals$}");
                if spec.alt {
                    if !scratch.contains('.') {
                        scratch.push('.');
                    }
                } else {
                    trim_fraction(scratch);
                }
            } else {
                if !spec.alt {
                    let e = scratch.find('e').unwrap_or(scratch.len());
                    let exp_part = scratch.split_off(e);
                    trim_fraction(scratch);
                    scratch.push_str(&exp_part);
                }
                python_exponent(scratch, spec.alt, upper);
            }
        }
    }
    pad_number(out, spec, v.is_sign_negative(), "", scratch);
    true
}

fn exponent_of(s: &str) -> i64 {
    s.rsplit_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0)
}

/// Drops trailing zeros of a fraction, and the point if nothing is left.
fn trim_fraction(s: &mut String) {
    if s.contains('.') {
        let keep = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(keep);
    }
}

/// Rewrites Rust's exponent (`1.5e9`, `1e-7`) as C's (`1.5e+09`, `1e-07`);
/// `point` keeps a decimal point after a single digit (`#` flag).
fn python_exponent(s: &mut String, point: bool, upper: bool) {
    let Some(e) = s.find('e') else { return };
    let exp = exponent_of(s);
    s.truncate(e);
    if point && !s.contains('.') {
        s.push('.');
    }
    s.push(if upper { 'E' } else { 'e' });
    s.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(s, "{:02}", exp.unsigned_abs());
}

fn render_char(out: &mut Vec<u8>, spec: &Spec, value: PyValue<'_>, scratch: &mut String) -> bool {
    scratch.clear();
    match value {
        PyValue::Int {
            negative: false,
            magnitude,
        } => match u32::try_from(magnitude).ok().and_then(char::from_u32) {
            Some(c) => scratch.push(c),
            None => return false,
        },
        PyValue::Text(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => scratch.push(c),
                _ => return false,
            }
        }
        _ => return false,
    }
    let plain = Spec {
        precision: None,
        ..*spec
    };
    pad_text(out, &plain, scratch.as_bytes(), None);
    true
}

/// Python's `str()` of the value.
fn write_str(s: &mut String, value: PyValue<'_>) {
    match value {
        PyValue::Text(bytes) => s.push_str(&String::from_utf8_lossy(bytes)),
        PyValue::Int {
            negative,
            magnitude,
        } => {
            if negative && magnitude != 0 {
                s.push('-');
            }
            let _ = write!(s, "{magnitude}");
        }
        PyValue::Float(v) => write_float_repr(s, v),
        PyValue::Bool(b) => s.push_str(if b { "True" } else { "False" }),
        PyValue::None => s.push_str("None"),
        PyValue::Absent => s.push('-'),
    }
}

/// Python's `repr()` of a float: the shortest digits that read back as the
/// same number, in fixed notation for exponents from -4 to 15 (always with
/// a point: `1.0`) and as `1e+16` beyond.
fn write_float_repr(s: &mut String, v: f64) {
    if v.is_nan() {
        s.push_str("nan");
        return;
    }
    if v.is_sign_negative() {
        s.push('-');
    }
    if v.is_infinite() {
        s.push_str("inf");
        return;
    }
    let mut sci = StackStr::default();
    let _ = write!(sci, "{:e}", v.abs());
    let text = sci.as_str();
    let (mantissa, exp) = text.split_once('e').unwrap_or((text, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let digits = StackStr::from_digits(mantissa);
    let digits = digits.as_str();
    if (-4..16).contains(&exp) {
        if exp < 0 {
            s.push_str("0.");
            for _ in 0..(-exp - 1) {
                s.push('0');
            }
            s.push_str(digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                s.push_str(digits);
                for _ in digits.len()..int_len {
                    s.push('0');
                }
                s.push_str(".0");
            } else {
                s.push_str(&digits[..int_len]);
                s.push('.');
                s.push_str(&digits[int_len..]);
            }
        }
    } else {
        s.push_str(&digits[..1]);
        if digits.len() > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push('e');
        s.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(s, "{:02}", exp.unsigned_abs());
    }
}

/// A small string on the stack, for the digits of one float.
struct StackStr {
    buf: [u8; 40],
    len: usize,
}

impl Default for StackStr {
    fn default() -> Self {
        StackStr {
            buf: [0; 40],
            len: 0,
        }
    }
}

impl StackStr {
    fn from_digits(mantissa: &str) -> StackStr {
        let mut d = StackStr::default();
        for b in mantissa.bytes().filter(u8::is_ascii_digit) {
            if d.len < d.buf.len() {
                d.buf[d.len] = b;
                d.len += 1;
            }
        }
        if d.len == 0 {
            d.buf[0] = b'0';
            d.len = 1;
        }
        d
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("0")
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Characters Python's `str.isprintable()` rejects besides control
/// characters: separators other than the space, format characters and
/// private use. Unassigned code points are not known here and print as
/// they are.
fn is_unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{a0}'
                | '\u{ad}'
                | '\u{600}'..='\u{605}'
                | '\u{61c}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{180e}'
                | '\u{1680}'
                | '\u{2000}'..='\u{200f}'
                | '\u{2028}'..='\u{202f}'
                | '\u{205f}'..='\u{206f}'
                | '\u{3000}'
                | '\u{e000}'..='\u{f8ff}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{f0000}'..
        )
}

/// Python's `repr()` (or `ascii()` when `ascii`) of the value.
fn write_repr(s: &mut String, value: PyValue<'_>, ascii: bool) {
    let PyValue::Text(bytes) = value else {
        write_str(s, value);
        return;
    };
    let text = String::from_utf8_lossy(bytes);
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    s.push(quote);
    for c in text.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if c == quote => {
                s.push('\\');
                s.push(c);
            }
            c if (ascii && !c.is_ascii()) || is_unprintable(c) => {
                let n = u32::from(c);
                let _ = if n < 0x100 {
                    write!(s, "\\x{n:02x}")
                } else if n < 0x10000 {
                    write!(s, "\\u{n:04x}")
                } else {
                    write!(s, "\\U{n:08x}")
                };
            }
            c => s.push(c),
        }
    }
    s.push(quote);
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
        Record {
            level: Level::Warn,
            target: "app.db",
            message: b"connected x",
            module: None,
            file: Some("/src/db/pool.py"),
            ..record(src, f)
        }
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
        let shifted = Record {
            timestamp_ns: TS + i64::from(offset) * 1_000_000_000,
            ..rec
        };
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
            (None, Some("C:\\proj\\tool.tar.gz"), "tool.tar"),
            (None, Some("/home/u/.bashrc"), ".bashrc"),
            (None, Some("noext"), "noext"),
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

    #[test]
    fn numbers_like_the_percent_operator() {
        let src = source();
        let mut f = FieldsBuf::new();
        for (k, v) in [
            ("big", 1e16),
            ("small", 1e-5),
            ("tenth_k", 0.0001),
            ("whole", 123.0),
            ("negzero", -0.0),
            ("huge", 1.5e300),
            ("third", 1.0 / 3.0),
            ("hundred", 100.0),
            ("half", 1e15 + 0.5),
            ("pos_inf", f64::INFINITY),
            ("neg_inf", f64::NEG_INFINITY),
            ("nan", f64::NAN),
            ("x", 1234.5678),
            ("tiny", 1e-10),
            ("million", 123_456_789.0),
            ("sig", 0.000_123_45),
            ("trunc", 3.7),
            ("ntrunc", -3.7),
        ] {
            f.push(k, Value::F64(v));
        }
        f.push("five", Value::I64(5));
        f.push("fortytwo", Value::I64(42));
        f.push("neg", Value::I64(-42));
        f.push("n255", Value::I64(-255));
        let rec = bare(&src, &f);
        let check = |format: &str, want: &str| assert_eq!(one(format, &rec), want, "{format}");
        check(
            "%(big)s %(big)g %(big)e %(big)#g %(big).0e %(big)#.0e",
            "1e+16 1e+16 1.000000e+16 1.00000e+16 1e+16 1.e+16",
        );
        check(
            "%(small)s %(small)g %(small)e %(small)#g",
            "1e-05 1e-05 1.000000e-05 1.00000e-05",
        );
        check(
            "%(tenth_k)s %(tenth_k)g %(tenth_k)#g %(tenth_k).0e",
            "0.0001 0.0001 0.000100000 1e-04",
        );
        check(
            "%(whole)s %(whole)g %(whole)#g %(whole)#.0f",
            "123.0 123 123.000 123.",
        );
        check(
            "%(negzero)s %(negzero)g %(negzero)e %(negzero)#g",
            "-0.0 -0 -0.000000e+00 -0.00000",
        );
        check("%(huge)s %(huge)g %(huge).0e", "1.5e+300 1.5e+300 2e+300");
        check(
            "%(third)s %(third)g %(third)e",
            "0.3333333333333333 0.333333 3.333333e-01",
        );
        check(
            "%(hundred)s %(hundred)g %(half)s %(half)g",
            "100.0 100 1000000000000000.5 1e+15",
        );
        check(
            "%(pos_inf)f|%(pos_inf)F|%(pos_inf)05f|%(neg_inf)-6f|%(pos_inf)+f|%(nan)e|%(nan)g|%(nan)s|%(neg_inf)s",
            "inf|INF|00inf|-inf  |+inf|nan|nan|nan|-inf",
        );
        check(
            "%(x)10.3f|%(x)-10.1e|%(x)g|%(x)#.3g|%(x).0g|%(x)G",
            "  1234.568|1.2e+03   |1234.57|1.23e+03|1e+03|1234.57",
        );
        check(
            "%(small)g|%(million)g|%(sig)g|%(tiny)G",
            "1e-05|1.23457e+08|0.00012345|1E-10",
        );
        check(
            "%(trunc)d %(ntrunc)d %(five).3d %(five)#.3x",
            "3 -3 005 0x005",
        );
        check(
            "%(fortytwo)-05d| %(fortytwo) d|%(fortytwo)+05d|%(neg)05d",
            "42   |  42|+0042|-0042",
        );
        check(
            "%(n255)x %(n255)#x %(five)c%(fortytwo)c",
            "-ff -0xff \u{5}*",
        );
        check("%(huge)d", "1500000000000000078757140382806630373056702871662238732373781173267703686983362293679557062620671796065556665749325817265413784853040645863467188277180060474272580801389863705606745350692182135089053429852456199917621678558451461320111979114170213741868888183230085264257173504208294580298189100810240");
        check("%(pos_inf)d %(nan)x %(x)c", "inf nan 1234.5678");
    }

    #[test]
    fn text_precision_width_and_repr() {
        let src = source();
        let mut f = FieldsBuf::new();
        f.push_str("abc", "abcdef");
        f.push_str("apos", "it's");
        f.push_str("quotes", "say \"hi\"");
        f.push_str("both", "both ' \"");
        f.push_str("odd", "a\u{0}\u{7f}\u{85}\u{a0}\u{2028}é😀\\");
        f.push_str("wide", "é😀\u{2028}");
        f.push_bytes("bad", b"a\xffb\xc3\x28");
        f.push_str("e_acute", "é");
        let rec = bare(&src, &f);
        let check = |format: &str, want: &str| assert_eq!(one(format, &rec), want, "{format}");
        check(
            "%(abc).3s|%(abc)5.2s|%(abc)-5.1s|%(abc)05s|%(abc).0s|",
            "abc|   ab|a    |abcdef||",
        );
        check(
            "%(apos)r %(quotes)r %(both)r",
            "\"it's\" 'say \"hi\"' 'both \\' \"'",
        );
        check("%(odd)r", "'a\\x00\\x7f\\x85\\xa0\\u2028é😀\\\\'");
        check("%(wide)a %(wide)5.2r", "'\\xe9\\U0001f600\\u2028'    'é");
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
