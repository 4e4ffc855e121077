//! Values of classes, read from the shape Python's pickler gives them and
//! never by importing or calling anything.
//!
//! A pickle stores an instance as "call this global with these arguments"
//! (`REDUCE`, `NEWOBJ`) and "then set this state" (`BUILD`). In
//! [`Decoder::modelling_objects`](super::Decoder::modelling_objects) mode
//! the reader keeps those as data and, when the whole value is read,
//! recognises the exact `(module, name)` pairs CPython writes for a few
//! standard classes (see [`call`]); it renders them as `str()` and `repr()`
//! would. Anything else becomes a placeholder `<module.Name object>` that
//! remembers the opcode which named the code, so that a caller can still
//! refuse it where a placeholder makes no sense.

use std::fmt::Write as _;

use super::value::PickleValue;

/// Longest `repr()` kept for a set built from a pickle; longer ones end
/// with `...`.
pub const OBJECT_TEXT_MAX: usize = 4096;

/// A value of a class, as the pickle describes it: its `str()` and
/// `repr()` text, or a placeholder for a class the reader does not know.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    type_name: &'static str,
    text: String,
    repr: String,
    /// For a placeholder or a bare reference to a global: the opcode that
    /// named it and its offset.
    unmodelled: Option<(&'static str, usize)>,
    kind: Kind,
}

/// What a later call needs to know of a value.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// A bare global: a class or function, not called.
    Global {
        module: String,
        name: String,
    },
    /// `datetime.timedelta`, normalised as Python keeps it.
    TimeDelta {
        days: i64,
        seconds: i64,
        micros: i64,
    },
    /// `datetime.timezone`: its offset in microseconds and its name.
    TimeZone {
        micros: i64,
        name: Option<String>,
    },
    Other,
}

impl Object {
    fn new(type_name: &'static str, text: String, repr: String) -> Self {
        Object {
            type_name,
            text,
            repr,
            unmodelled: None,
            kind: Kind::Other,
        }
    }

    /// A global named by `GLOBAL`, `STACK_GLOBAL` or `INST`.
    pub(super) fn global(module: &str, name: &str, op: &'static str, at: usize) -> Self {
        let repr = format!("<class '{module}.{name}'>");
        Object {
            type_name: "type",
            text: repr.clone(),
            repr,
            unmodelled: Some((op, at)),
            kind: Kind::Global {
                module: module.to_string(),
                name: name.to_string(),
            },
        }
    }

    fn placeholder(class: &str, unmodelled: (&'static str, usize)) -> Self {
        let repr = format!("<{class} object>");
        Object {
            type_name: "object",
            text: repr.clone(),
            repr,
            unmodelled: Some(unmodelled),
            kind: Kind::Other,
        }
    }

    /// The Python type name (`datetime`, `UUID`, `set`, `object`, …).
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// Python's `str()` of the value.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Python's `repr()` of the value (for a placeholder, the same text as
    /// [`Object::text`]).
    pub fn repr(&self) -> &str {
        &self.repr
    }

    /// For a value the reader could not model (an instance of a class it
    /// does not know, a function, a bare class): the name of the opcode
    /// that named the code and its offset. `None` for the known classes.
    pub fn unmodelled(&self) -> Option<(&'static str, usize)> {
        self.unmodelled
    }

    /// Bytes of text the object adds to the result.
    pub(super) fn size(&self) -> usize {
        self.text.len() + self.repr.len()
    }
}

/// The class behind a value naming a global.
fn global_of<'v>(v: &'v PickleValue<'_>) -> Option<(&'v str, &'v str, (&'static str, usize))> {
    match v {
        PickleValue::Object(o) => match &o.kind {
            Kind::Global { module, name } => Some((module, name, o.unmodelled?)),
            _ => None,
        },
        _ => None,
    }
}

/// How the pickle asked for the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CallKind {
    /// `REDUCE`: the global called with the arguments.
    Reduce,
    /// `NEWOBJ`, `NEWOBJ_EX`, `OBJ`, `INST`: an instance of the class.
    New,
}

/// The value a call node stands for; `op`/`at` name the calling opcode.
///
/// Recognised (module names as protocols 0–1 spell them too: `__builtin__`,
/// `copy_reg`):
///
/// | global | arguments, state | value |
/// |---|---|---|
/// | `_codecs.encode` | `(str, 'latin1')` | `bytes` |
/// | `builtins.bytes` | `()` | `b''` |
/// | `builtins.bytearray` | `()`, `(bytes,)`, `(str, 'latin-1')` | `bytearray` |
/// | `builtins.set`, `builtins.frozenset` | `()`, `(list,)` | `set`, `frozenset` |
/// | `datetime.datetime`, `.date`, `.time` | `(bytes,)`, `(bytes, timezone)` | the date or time |
/// | `datetime.timedelta` | `(days, seconds, microseconds)` | `timedelta` |
/// | `datetime.timezone` | `(timedelta,)`, `(timedelta, name)` | `timezone` |
/// | `decimal.Decimal` | `(str,)` | `Decimal` |
/// | `pathlib.PosixPath`, `PurePosixPath`, `WindowsPath`, `PureWindowsPath` | parts | the path |
/// | `copyreg._reconstructor` | `(cls, base, base_state)`, state | an instance of `cls` |
/// | `NEWOBJ` of `cls` | state | an instance of `cls` |
/// | an instance of `uuid.UUID` | state `{'int': n}` | `UUID` |
///
/// Any other instance or call is a placeholder `<module.Name object>`.
pub(super) fn call<'a>(
    kind: CallKind,
    func: &PickleValue<'a>,
    args: &PickleValue<'a>,
    state: Option<&PickleValue<'a>>,
    op: (&'static str, usize),
) -> PickleValue<'a> {
    let Some((module, name, named)) = global_of(func) else {
        return PickleValue::Object(Box::new(Object::placeholder("unknown", op)));
    };
    // Python calls only with a tuple of arguments; anything else is no
    // call it would make.
    let PickleValue::Tuple(args) = args else {
        return Object::placeholder(&format!("{module}.{name}"), named).into();
    };
    let module = match module {
        "__builtin__" => "builtins",
        "copy_reg" => "copyreg",
        m => m,
    };
    // copyreg._reconstructor(cls, base, state): an instance of cls (base
    // is `object` for a plain class, the builtin it derives from otherwise).
    let reconstructed = kind == CallKind::Reduce
        && (module, name) == ("copyreg", "_reconstructor")
        && args.first().is_some_and(|c| global_of(c).is_some());
    if reconstructed || kind == CallKind::New {
        let class = if reconstructed { &args[0] } else { func };
        return match global_of(class) {
            // The placeholder names the first global of the pickle's call
            // (`copyreg._reconstructor` or the class), as the strict
            // reader's refusal would.
            Some((m, n, _)) => instance(m, n, state)
                .unwrap_or_else(|| Object::placeholder(&format!("{m}.{n}"), named))
                .into(),
            None => Object::placeholder("unknown", named).into(),
        };
    }
    if state.is_some() {
        return Object::placeholder(&format!("{module}.{name}"), named).into();
    }
    known(module, name, args)
        .unwrap_or_else(|| Object::placeholder(&format!("{module}.{name}"), named).into())
}

impl From<Object> for PickleValue<'_> {
    fn from(o: Object) -> Self {
        PickleValue::Object(Box::new(o))
    }
}

/// An instance made without arguments and given `state`.
fn instance(module: &str, name: &str, state: Option<&PickleValue<'_>>) -> Option<Object> {
    if (module, name) != ("uuid", "UUID") {
        return None;
    }
    let n = state?.get("int")?;
    let v: u128 = match n {
        PickleValue::Int(i) => u128::try_from(*i).ok()?,
        PickleValue::BigInt(b) => {
            if b.len() > 17 || b.last().is_some_and(|&x| x & 0x80 != 0) {
                return None;
            }
            let mut le = [0u8; 16];
            let used = b.len().min(16);
            if b[used..].iter().any(|&x| x != 0) {
                return None;
            }
            le[..used].copy_from_slice(&b[..used]);
            u128::from_le_bytes(le)
        }
        _ => return None,
    };
    let h = format!("{v:032x}");
    let text = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    );
    let repr = format!("UUID('{text}')");
    Some(Object::new("UUID", text, repr))
}

/// The value of a recognised call, `None` when the call is not one the
/// reader knows (or its arguments are not what Python writes).
fn known<'a>(module: &str, name: &str, args: &[PickleValue<'a>]) -> Option<PickleValue<'a>> {
    Some(match (module, name, args) {
        ("_codecs", "encode", [PickleValue::Str(s), PickleValue::Str(enc)])
            if matches!(&**enc, "latin1" | "latin-1") =>
        {
            PickleValue::Bytes(latin1(s)?.into())
        }
        ("builtins", "bytes", []) => PickleValue::Bytes(Vec::new().into()),
        ("builtins", "bytearray", args) => {
            let bytes: Vec<u8> = match args {
                [] => Vec::new(),
                [PickleValue::Bytes(b)] => b.to_vec(),
                [PickleValue::Str(s), PickleValue::Str(enc)]
                    if matches!(&**enc, "latin1" | "latin-1") =>
                {
                    latin1(s)?
                }
                _ => return None,
            };
            bytearray(&bytes).into()
        }
        ("builtins", "set" | "frozenset", args) => {
            let items: &[PickleValue<'a>] = match args {
                [] => &[],
                [PickleValue::List(items)] | [PickleValue::Tuple(items)] => items,
                _ => return None,
            };
            set(items, name == "frozenset").into()
        }
        ("datetime", "timedelta", [d, s, us]) => {
            let (days, seconds, micros) = (int(d)?, int(s)?, int(us)?);
            if !(0..86_400).contains(&seconds)
                || !(0..1_000_000).contains(&micros)
                || days.unsigned_abs() > 999_999_999
            {
                return None;
            }
            Object {
                kind: Kind::TimeDelta {
                    days,
                    seconds,
                    micros,
                },
                ..Object::new(
                    "timedelta",
                    timedelta_str(days, seconds, micros),
                    timedelta_repr(days, seconds, micros),
                )
            }
            .into()
        }
        ("datetime", "timezone", [offset, rest @ ..]) if rest.len() <= 1 => {
            let PickleValue::Object(o) = offset else {
                return None;
            };
            let Kind::TimeDelta {
                days,
                seconds,
                micros,
            } = o.kind
            else {
                return None;
            };
            // Python allows offsets strictly within a day either way.
            if !(-1..=0).contains(&days) {
                return None;
            }
            let total = (days * 86_400 + seconds) * 1_000_000 + micros;
            if total.abs() >= 86_400_000_000 {
                return None;
            }
            let name = match rest {
                [] => None,
                [PickleValue::Str(n)] => Some(n.to_string()),
                _ => return None,
            };
            let text = match &name {
                Some(n) => n.clone(),
                None if total == 0 => "UTC".to_string(),
                None => format!("UTC{}", offset_text(total)),
            };
            let repr = match &name {
                None if total == 0 => "datetime.timezone.utc".to_string(),
                None => format!("datetime.timezone({})", o.repr),
                Some(n) => {
                    let mut r = format!("datetime.timezone({}, ", o.repr);
                    logbraid_pyfmt::write_str_repr(&mut r, n, false);
                    r.push(')');
                    r
                }
            };
            Object {
                kind: Kind::TimeZone {
                    micros: total,
                    name,
                },
                ..Object::new("timezone", text, repr)
            }
            .into()
        }
        ("datetime", "datetime" | "date" | "time", [PickleValue::Bytes(b), tz @ ..]) => {
            let tz = match tz {
                [] | [PickleValue::None] => None,
                [PickleValue::Object(o)] => match &o.kind {
                    Kind::TimeZone { micros, .. } => Some((*micros, o.repr.as_str())),
                    _ => return None,
                },
                _ => return None,
            };
            date_time(name, b, tz)?.into()
        }
        ("decimal", "Decimal", [PickleValue::Str(s)]) => {
            let mut repr = String::from("Decimal(");
            logbraid_pyfmt::write_str_repr(&mut repr, s, false);
            repr.push(')');
            Object::new("Decimal", s.to_string(), repr).into()
        }
        (
            "pathlib",
            class @ ("Path" | "PosixPath" | "PurePosixPath" | "WindowsPath" | "PureWindowsPath"),
            parts,
        ) => {
            let windows = class.contains("Windows");
            let sep = if windows { '\\' } else { '/' };
            let mut text = String::new();
            for part in parts {
                let PickleValue::Str(p) = part else {
                    return None;
                };
                if p.starts_with(sep) || (windows && p.contains(':')) {
                    text.clear();
                } else if !text.is_empty() && !text.ends_with(sep) {
                    text.push(sep);
                }
                text.push_str(p);
            }
            if !windows {
                // Python 3.13 pickles the paths as given ('/tmp//x/.');
                // str() shows them normalised, as the parts of 3.11 are.
                text = posix_normal(&text);
            }
            if text.is_empty() {
                text.push('.');
            }
            let class: &'static str = match class {
                "Path" | "PosixPath" => "PosixPath",
                "PurePosixPath" => "PurePosixPath",
                "WindowsPath" => "WindowsPath",
                _ => "PureWindowsPath",
            };
            let mut repr = format!("{class}(");
            logbraid_pyfmt::write_str_repr(&mut repr, &text.replace('\\', "/"), false);
            repr.push(')');
            Object::new(class, text, repr).into()
        }
        _ => return None,
    })
}

/// A POSIX path as `pathlib` shows it: no empty or `.` components, one
/// leading slash (two when it starts with exactly two), no trailing one.
fn posix_normal(path: &str) -> String {
    let root = if path.starts_with("//") && !path.starts_with("///") {
        "//"
    } else if path.starts_with('/') {
        "/"
    } else {
        ""
    };
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("{root}{}", parts.join("/"))
}

fn int(v: &PickleValue<'_>) -> Option<i64> {
    match v {
        PickleValue::Int(i) => Some(*i),
        _ => None,
    }
}

/// A `bytearray`, shown as `bytearray(b'...')`.
pub(super) fn bytearray(bytes: &[u8]) -> Object {
    let mut repr = String::from("bytearray(");
    logbraid_pyfmt::write_repr_lossy(
        &mut repr,
        &PickleValue::Bytes(bytes.into()),
        OBJECT_TEXT_MAX,
    );
    repr.push(')');
    Object::new("bytearray", repr.clone(), repr)
}

/// Text whose every character is below 256, as the bytes it stands for.
fn latin1(s: &str) -> Option<Vec<u8>> {
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

/// A `set` or `frozenset` of `items`, in the order the pickle gives them
/// (the order Python iterated, and so printed, the set).
pub(super) fn set(items: &[PickleValue<'_>], frozen: bool) -> Object {
    let (type_name, open, close, empty) = if frozen {
        ("frozenset", "frozenset({", "})", "frozenset()")
    } else {
        ("set", "{", "}", "set()")
    };
    let mut repr = String::new();
    if items.is_empty() {
        repr.push_str(empty);
    } else {
        repr.push_str(open);
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                repr.push_str(", ");
            }
            if repr.len() >= OBJECT_TEXT_MAX {
                repr.push_str("...");
                break;
            }
            let room = OBJECT_TEXT_MAX - repr.len();
            logbraid_pyfmt::write_repr_lossy(&mut repr, item, room);
        }
        repr.push_str(close);
    }
    Object::new(type_name, repr.clone(), repr)
}

fn timedelta_str(days: i64, seconds: i64, micros: i64) -> String {
    let mut s = String::new();
    if days != 0 {
        let plural = if days.abs() != 1 { "s" } else { "" };
        let _ = write!(s, "{days} day{plural}, ");
    }
    let _ = write!(
        s,
        "{}:{:02}:{:02}",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    );
    if micros != 0 {
        let _ = write!(s, ".{micros:06}");
    }
    s
}

fn timedelta_repr(days: i64, seconds: i64, micros: i64) -> String {
    let mut parts = Vec::new();
    if days != 0 {
        parts.push(format!("days={days}"));
    }
    if seconds != 0 {
        parts.push(format!("seconds={seconds}"));
    }
    if micros != 0 {
        parts.push(format!("microseconds={micros}"));
    }
    if parts.is_empty() {
        parts.push("0".to_string());
    }
    format!("datetime.timedelta({})", parts.join(", "))
}

/// `+HH:MM`, with `:SS` and `.ffffff` when they are not zero, as
/// `datetime` prints a UTC offset.
fn offset_text(micros: i64) -> String {
    let sign = if micros < 0 { '-' } else { '+' };
    let m = micros.abs();
    let (secs, us) = (m / 1_000_000, m % 1_000_000);
    let mut s = format!("{sign}{:02}:{:02}", secs / 3600, secs % 3600 / 60);
    if secs % 60 != 0 || us != 0 {
        let _ = write!(s, ":{:02}", secs % 60);
    }
    if us != 0 {
        let _ = write!(s, ".{us:06}");
    }
    s
}

/// `datetime`, `date` or `time` from the packed state CPython pickles
/// (`_getstate`), with an optional `timezone` (offset and repr).
fn date_time(class: &str, b: &[u8], tz: Option<(i64, &str)>) -> Option<Object> {
    let mut text = String::new();
    let mut fields: Vec<i64> = Vec::new();
    let time_at = match (class, b.len()) {
        ("datetime", 10) => Some(4),
        ("date", 4) if tz.is_none() => None,
        ("time", 6) => Some(0),
        _ => return None,
    };
    let mut fold = false;
    if time_at != Some(0) {
        let year = u16::from_be_bytes([b[0], b[1]]);
        let month = b[2] & 0x7f;
        fold = b[2] & 0x80 != 0;
        let day = b[3];
        if !(1..=9999).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        let _ = write!(text, "{year:04}-{month:02}-{day:02}");
        fields.extend([i64::from(year), i64::from(month), i64::from(day)]);
    }
    if let Some(t) = time_at {
        let b = &b[t..];
        let hour = b[0] & 0x7f;
        fold |= b[0] & 0x80 != 0 && t == 0;
        let (minute, second) = (b[1], b[2]);
        let us = u32::from_be_bytes([0, b[3], b[4], b[5]]);
        if hour > 23 || minute > 59 || second > 59 || us > 999_999 {
            return None;
        }
        if t > 0 {
            text.push(' ');
        }
        let _ = write!(text, "{hour:02}:{minute:02}:{second:02}");
        if us != 0 {
            let _ = write!(text, ".{us:06}");
        }
        fields.extend([i64::from(hour), i64::from(minute)]);
        if second != 0 || us != 0 {
            fields.push(i64::from(second));
        }
        if us != 0 {
            fields.push(i64::from(us));
        }
        if let Some((micros, _)) = tz {
            text.push_str(&offset_text(micros));
        }
    }
    let list: Vec<String> = fields.iter().map(i64::to_string).collect();
    let mut repr = format!("datetime.{class}({}", list.join(", "));
    if fold {
        repr.push_str(", fold=1");
    }
    if let Some((_, tz_repr)) = tz {
        let _ = write!(repr, ", tzinfo={tz_repr}");
    }
    repr.push(')');
    let type_name = match class {
        "datetime" => "datetime",
        "date" => "date",
        _ => "time",
    };
    Some(Object::new(type_name, text, repr))
}
