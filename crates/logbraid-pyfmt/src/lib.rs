//! Python compatibility: `fmt % args`, `str()`, `repr()` and `ascii()` of
//! the values log records carry, byte for byte as CPython 3.11 gives them.
//!
//! logbraid meets Python in three places: the `%(name)s` layout, the
//! collector's mapping of pickled `LogRecord`s (whose `msg % args` a sender
//! may leave to the receiver), and the Python binding's fast path. All
//! three call this crate, so a message, a field and a line agree with each
//! other and with CPython. The crate has no dependencies, so each of them
//! can use it without pulling in the others.
//!
//! Values are seen through [`Object`]: a type says what Python value it
//! holds as a [`View`] (`None`, `bool`, `int` of any size, `float`, `str`,
//! `bytes`, `tuple`, `list`, `dict`). [`Value`] is a ready-made one.
//!
//! ```
//! use logbraid_pyfmt::{format, Value};
//!
//! let args = [Value::Str(b"ada"), Value::Int(7), Value::Float(0.5)];
//! let mut out = String::new();
//! format("%s has %03d (%.1f%%)", &Value::Tuple(&args), &mut out, 1 << 20).unwrap();
//! assert_eq!(out, "ada has 007 (0.5%)");
//!
//! let err = format("%d", &Value::Tuple(&[Value::Str(b"x")]), &mut out, 1 << 20).unwrap_err();
//! assert_eq!(err.to_string(), "TypeError: %d format: a real number is required, not str");
//! ```
//!
//! What CPython computes without limit is bounded here: an output longer
//! than the caller's `limit` is an error ([`ErrorKind::TooLong`]) instead of
//! an allocation of any size, and a `str()` of an `int` over 4,300 digits
//! fails as in CPython.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

use std::fmt;

mod format;
mod number;
mod parse;
pub mod record;
mod repr;
mod unprintable;

pub use format::{certain, format, render, Flags, Kind, Plain, Spec};
pub use number::write_float_repr;
pub use parse::{char_index, Count, Directive, Key, Piece, Pieces};
pub use repr::{write_ascii, write_repr, write_repr_lossy, write_str, write_str_repr};

/// A Python value, as [`Object::view`] shows it.
#[derive(Debug)]
pub enum View<'a, T> {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An `int` that fits in 128 bits.
    Int(i128),
    /// Any other `int`: little-endian two's complement (the layout of
    /// pickle's `LONG1`), in any number of bytes.
    BigInt(&'a [u8]),
    /// A `float`.
    Float(f64),
    /// A `str`, as UTF-8; sequences that are not UTF-8 read as U+FFFD.
    Str(&'a [u8]),
    /// A `str` already known to be UTF-8 (no check needed).
    Text(&'a str),
    /// A `bytes`.
    Bytes(&'a [u8]),
    /// A `tuple`.
    Tuple(&'a [T]),
    /// A `list`.
    List(&'a [T]),
    /// A `dict`, pairs in insertion order; a key given twice is found at
    /// its last place, as in the dict it was built from.
    Dict(&'a [(T, T)]),
    /// Any other object, known by the text of its `str()` and `repr()`
    /// (a `datetime` or a `set` read from a pickle, say).
    Object {
        /// Its type's name.
        type_name: &'static str,
        /// `str()` of it.
        text: &'a str,
        /// `repr()` of it.
        repr: &'a str,
    },
}

impl<T> Clone for View<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for View<'_, T> {}

impl<T> View<'_, T> {
    /// The Python type name (`"NoneType"`, `"int"`, …), as error messages
    /// give it.
    pub fn type_name(&self) -> &'static str {
        match self {
            View::None => "NoneType",
            View::Bool(_) => "bool",
            View::Int(_) | View::BigInt(_) => "int",
            View::Float(_) => "float",
            View::Str(_) | View::Text(_) => "str",
            View::Bytes(_) => "bytes",
            View::Tuple(_) => "tuple",
            View::List(_) => "list",
            View::Dict(_) => "dict",
            View::Object { type_name, .. } => type_name,
        }
    }
}

/// Something that holds a Python value.
pub trait Object: Sized {
    /// The value.
    fn view(&self) -> View<'_, Self>;
}

/// A Python value borrowed from elsewhere: the simplest [`Object`].
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An `int` that fits in 128 bits.
    Int(i128),
    /// Any other `int`, as [`View::BigInt`].
    BigInt(&'a [u8]),
    /// A `float`.
    Float(f64),
    /// A `str`, as [`View::Str`].
    Str(&'a [u8]),
    /// A `str` known to be UTF-8.
    Text(&'a str),
    /// A `bytes`.
    Bytes(&'a [u8]),
    /// A `tuple`.
    Tuple(&'a [Value<'a>]),
    /// A `list`.
    List(&'a [Value<'a>]),
    /// A `dict`.
    Dict(&'a [(Value<'a>, Value<'a>)]),
}

impl Object for Value<'_> {
    fn view(&self) -> View<'_, Self> {
        match *self {
            Value::None => View::None,
            Value::Bool(b) => View::Bool(b),
            Value::Int(i) => View::Int(i),
            Value::BigInt(b) => View::BigInt(b),
            Value::Float(f) => View::Float(f),
            Value::Str(s) => View::Str(s),
            Value::Text(s) => View::Text(s),
            Value::Bytes(b) => View::Bytes(b),
            Value::Tuple(t) => View::Tuple(t),
            Value::List(l) => View::List(l),
            Value::Dict(d) => View::Dict(d),
        }
    }
}

/// A Python value that owns its parts, for a caller that cannot lend them
/// (values read out of another runtime, or out of a file).
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedValue {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An `int` that fits in 128 bits.
    Int(i128),
    /// Any other `int`, as [`View::BigInt`].
    BigInt(Vec<u8>),
    /// A `float`.
    Float(f64),
    /// A `str`, as [`View::Str`].
    Str(Vec<u8>),
    /// A `str`.
    Text(String),
    /// A `bytes`.
    Bytes(Vec<u8>),
    /// A `tuple`.
    Tuple(Vec<OwnedValue>),
    /// A `list`.
    List(Vec<OwnedValue>),
    /// A `dict`.
    Dict(Vec<(OwnedValue, OwnedValue)>),
}

impl Object for OwnedValue {
    fn view(&self) -> View<'_, Self> {
        match self {
            OwnedValue::None => View::None,
            OwnedValue::Bool(b) => View::Bool(*b),
            OwnedValue::Int(i) => View::Int(*i),
            OwnedValue::BigInt(b) => View::BigInt(b),
            OwnedValue::Float(f) => View::Float(*f),
            OwnedValue::Str(s) => View::Str(s),
            OwnedValue::Text(s) => View::Text(s),
            OwnedValue::Bytes(b) => View::Bytes(b),
            OwnedValue::Tuple(t) => View::Tuple(t),
            OwnedValue::List(l) => View::List(l),
            OwnedValue::Dict(d) => View::Dict(d),
        }
    }
}

/// The Python exception a failed format raises, or [`ErrorKind::TooLong`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `TypeError`.
    TypeError,
    /// `ValueError`.
    ValueError,
    /// `OverflowError`.
    OverflowError,
    /// `KeyError`.
    KeyError,
    /// Not CPython's: the result would pass the caller's length limit.
    TooLong,
}

impl ErrorKind {
    /// The exception's name (`"TypeError"`); `"ValueError"` for
    /// [`ErrorKind::TooLong`], which CPython would raise as a `MemoryError`
    /// at worst.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::TypeError => "TypeError",
            ErrorKind::ValueError | ErrorKind::TooLong => "ValueError",
            ErrorKind::OverflowError => "OverflowError",
            ErrorKind::KeyError => "KeyError",
        }
    }
}

/// Why `fmt % args` failed: displayed as CPython shows the exception,
/// `TypeError: not enough arguments for format string`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    kind: ErrorKind,
    message: String,
}

impl FormatError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        FormatError {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn type_error(message: impl Into<String>) -> Self {
        FormatError::new(ErrorKind::TypeError, message)
    }

    pub(crate) fn value_error(message: impl Into<String>) -> Self {
        FormatError::new(ErrorKind::ValueError, message)
    }

    pub(crate) fn overflow(message: impl Into<String>) -> Self {
        FormatError::new(ErrorKind::OverflowError, message)
    }

    pub(crate) fn too_long(limit: usize) -> Self {
        FormatError::new(
            ErrorKind::TooLong,
            format!("the formatted text would be longer than {limit} bytes"),
        )
    }

    /// Which exception.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The exception's message (`str(e)`), without its name.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for FormatError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(f: &str, args: &Value<'_>, limit: usize) -> Result<String, FormatError> {
        let mut out = String::new();
        format(f, args, &mut out, limit).map(|()| out)
    }

    #[test]
    fn output_past_the_limit_is_refused_before_it_is_built() {
        let x = [Value::Str(b"x")];
        let args = Value::Tuple(&x);
        assert_eq!(fmt("%5s", &args, 5).as_deref(), Ok("    x"));
        let e = fmt("%6s", &args, 5).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLong);
        assert_eq!(
            e.to_string(),
            "ValueError: the formatted text would be longer than 5 bytes"
        );
        let one = [Value::Float(1.0)];
        let e = fmt("%.999999999f", &Value::Tuple(&one), 1 << 20).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLong);
        // Text past the limit, not only widths.
        let long = [Value::Str(&[b'a'; 100])];
        assert_eq!(
            fmt("%s%s", &Value::Tuple(&[long[0], long[0]]), 150)
                .unwrap_err()
                .kind(),
            ErrorKind::TooLong
        );
        // Literal text already past the limit, then a width.
        assert_eq!(
            fmt("0123456789%5s", &args, 5).unwrap_err().kind(),
            ErrorKind::TooLong
        );
        // A precision cuts text, so it is no reason to refuse.
        assert_eq!(
            fmt("%.99999999s", &Value::Tuple(&long), 150).map(|s| s.len()),
            Ok(100)
        );
    }

    #[test]
    fn lossy_repr_stops_at_the_budget_and_shows_huge_ints_in_hex() {
        let items = [Value::Str(&[b'x'; 100]); 3];
        let mut s = String::new();
        write_repr_lossy(&mut s, &Value::List(&items), 10);
        assert_eq!(s, "['xxxxxxxx...");
        let mut s = String::new();
        write_repr_lossy(&mut s, &Value::Tuple(&[Value::Int(1)]), 100);
        assert_eq!(s, "(1,)");
        // 2**20000 has 6,021 digits: str() refuses it, a lossy repr shows
        // its hexadecimal.
        let mut le = vec![0u8; 2500];
        le.push(1);
        let big = Value::BigInt(&le);
        let mut s = String::new();
        write_repr_lossy(&mut s, &big, 1 << 20);
        assert_eq!(s, format!("0x1{}", "0".repeat(5000)));
        assert_eq!(
            write_repr(&mut String::new(), &big).unwrap_err().kind(),
            ErrorKind::ValueError
        );
        // A budget never splits a character.
        let mut s = String::new();
        write_repr_lossy(&mut s, &Value::Str("ééé".as_bytes()), 4);
        assert_eq!(s, "'é...");
    }

    #[test]
    fn text_that_is_not_utf8_reads_as_replacement_characters() {
        let bad = [Value::Str(b"a\xffb")];
        assert_eq!(
            fmt("%s|%r|%4.2s|%a", &Value::Tuple(&[bad[0]; 4]), 1 << 20).as_deref(),
            Ok("a\u{fffd}b|'a\u{fffd}b'|  a\u{fffd}|'a\\ufffdb'")
        );
    }

    #[test]
    fn pieces_carry_what_the_layout_reports() {
        let pieces: Vec<_> = Pieces::new("a %(k)-08.3hd %% %(x").collect();
        assert_eq!(pieces[0], Piece::Literal("a "));
        let Piece::Directive(d) = pieces[1] else {
            panic!("{pieces:?}")
        };
        assert_eq!(d.at, 2);
        assert_eq!(d.key, Key::Name("k"));
        assert!(d.flags.left && d.flags.zero && !d.flags.plus);
        assert_eq!(
            d.width,
            Count::Digits {
                text: "8",
                at: 8,
                value: Some(8)
            }
        );
        assert_eq!(d.conv, Some(('d', 12)));
        assert_eq!(pieces[3], Piece::Percent);
        assert!(matches!(
            pieces[5],
            Piece::Directive(Directive {
                at: 17,
                key: Key::Unterminated,
                ..
            })
        ));
        assert_eq!(pieces.len(), 6);
        assert_eq!(char_index("é%(", 2), 1);
    }
}
