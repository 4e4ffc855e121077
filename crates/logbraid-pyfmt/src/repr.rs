//! `str()`, `repr()` and `ascii()` of values.

use crate::number::{write_float_repr, Int};
use crate::unprintable::UNPRINTABLE;
use crate::{FormatError, Object, View};

/// Where text goes: a string that takes bytes up to a limit, then only
/// notes that it is full, so a huge value is never rendered whole.
struct Sink<'a> {
    out: &'a mut String,
    limit: usize,
    full: bool,
    /// Write an `int` past the digit limit in hexadecimal instead of
    /// failing.
    lenient: bool,
}

impl Sink<'_> {
    fn push_str(&mut self, s: &str) {
        if self.full {
            return;
        }
        let room = self.limit.saturating_sub(self.out.len());
        if s.len() > room {
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.out.push_str(&s[..end]);
            self.full = true;
        } else {
            self.out.push_str(s);
        }
    }

    fn push(&mut self, c: char) {
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }
}

/// Whether `repr()` shows `c` as it is (`str.isprintable()`).
fn printable(c: char) -> bool {
    let n = u32::from(c);
    if n < 0x7f {
        return n >= 0x20;
    }
    UNPRINTABLE
        .binary_search_by(|&(lo, hi)| {
            if hi < n {
                std::cmp::Ordering::Less
            } else if lo > n {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_err()
}

fn push_hex_escape(w: &mut Sink<'_>, n: u32) {
    let mut buf = String::with_capacity(10);
    let (prefix, width) = if n < 0x100 {
        ("\\x", 2)
    } else if n < 0x10000 {
        ("\\u", 4)
    } else {
        ("\\U", 8)
    };
    buf.push_str(prefix);
    for k in (0..width).rev() {
        buf.push(char::from_digit((n >> (4 * k)) & 0xf, 16).unwrap_or('0'));
    }
    w.push_str(&buf);
}

/// Python's `repr()` of a `str` (`ascii()` when `ascii`): single quotes
/// unless the text holds a single quote and no double quote; `\\`, the
/// quote, `\t \n \r` escaped; what is not printable as `\xhh`, `\uhhhh` or
/// `\Uhhhhhhhh`.
fn str_repr(w: &mut Sink<'_>, s: &str, ascii: bool) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    w.push(quote);
    let mut run = 0;
    for (i, c) in s.char_indices() {
        let plain = (c.is_ascii() || !ascii) && printable(c) && c != '\\' && c != quote;
        if plain {
            continue;
        }
        w.push_str(&s[run..i]);
        run = i + c.len_utf8();
        match c {
            '\\' => w.push_str("\\\\"),
            '\n' => w.push_str("\\n"),
            '\r' => w.push_str("\\r"),
            '\t' => w.push_str("\\t"),
            c if c == quote => {
                w.push('\\');
                w.push(c);
            }
            c => push_hex_escape(w, u32::from(c)),
        }
    }
    w.push_str(&s[run..]);
    w.push(quote);
}

fn bytes_repr(w: &mut Sink<'_>, b: &[u8]) {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    w.push('b');
    w.push(char::from(quote));
    for &c in b {
        match c {
            b'\\' => w.push_str("\\\\"),
            b'\n' => w.push_str("\\n"),
            b'\r' => w.push_str("\\r"),
            b'\t' => w.push_str("\\t"),
            c if c == quote => {
                w.push('\\');
                w.push(char::from(c));
            }
            0x20..=0x7e => w.push(char::from(c)),
            c => push_hex_escape(w, u32::from(c)),
        }
    }
    w.push(char::from(quote));
}

/// The text of a `str` whose bytes may not be UTF-8.
pub(crate) fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

fn int_text(w: &mut Sink<'_>, n: &Int) -> Result<(), FormatError> {
    let mut s = String::new();
    if n.is_negative() {
        s.push('-');
    }
    match n.write_magnitude(10, &mut s) {
        Ok(()) => {}
        Err(_) if w.lenient => {
            s.truncate(usize::from(n.is_negative()));
            s.push_str("0x");
            let _ = n.write_magnitude(16, &mut s);
        }
        Err(e) => return Err(e),
    }
    w.push_str(&s);
    Ok(())
}

/// `repr()` (`ascii()` when `ascii`), or `str()` when `as_str` (which
/// differs only for a `str` at the top).
fn write_value<T: Object>(w: &mut Sink<'_>, v: &T, ascii: bool) -> Result<(), FormatError> {
    if w.full {
        return Ok(());
    }
    match v.view() {
        View::None => w.push_str("None"),
        View::Bool(true) => w.push_str("True"),
        View::Bool(false) => w.push_str("False"),
        View::Int(i) => {
            let mut s = String::new();
            if i < 0 {
                s.push('-');
            }
            let _ = Int::Small(i).write_magnitude(10, &mut s);
            w.push_str(&s);
        }
        View::BigInt(b) => int_text(w, &Int::from_le(b))?,
        View::Float(f) => {
            let mut s = String::new();
            write_float_repr(&mut s, f);
            w.push_str(&s);
        }
        View::Str(s) => str_repr(w, &lossy(s), ascii),
        View::Text(t) => str_repr(w, t, ascii),
        View::Bytes(b) => bytes_repr(w, b),
        View::List(items) => {
            w.push('[');
            write_items(w, items, ascii)?;
            w.push(']');
        }
        View::Tuple(items) => {
            w.push('(');
            write_items(w, items, ascii)?;
            if items.len() == 1 {
                w.push(',');
            }
            w.push(')');
        }
        View::Dict(pairs) => {
            w.push('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    w.push_str(", ");
                }
                write_value(w, k, ascii)?;
                w.push_str(": ");
                write_value(w, v, ascii)?;
                if w.full {
                    break;
                }
            }
            w.push('}');
        }
        View::Object { repr, .. } => w.push_str(repr),
    }
    Ok(())
}

fn write_items<T: Object>(w: &mut Sink<'_>, items: &[T], ascii: bool) -> Result<(), FormatError> {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            w.push_str(", ");
        }
        write_value(w, item, ascii)?;
        if w.full {
            break;
        }
    }
    Ok(())
}

fn unlimited(out: &mut String) -> Sink<'_> {
    Sink {
        out,
        limit: usize::MAX,
        full: false,
        lenient: false,
    }
}

/// Appends Python's `repr(v)`.
///
/// # Errors
///
/// CPython's `ValueError` for an `int` of more than 4,300 digits.
pub fn write_repr<T: Object>(out: &mut String, v: &T) -> Result<(), FormatError> {
    write_value(&mut unlimited(out), v, false)
}

/// Appends Python's `ascii(v)`: `repr()` with every non-ASCII character
/// escaped.
///
/// # Errors
///
/// As [`write_repr`].
pub fn write_ascii<T: Object>(out: &mut String, v: &T) -> Result<(), FormatError> {
    write_value(&mut unlimited(out), v, true)
}

/// Appends Python's `str(v)`: a `str` as it is, anything else as `repr()`.
///
/// # Errors
///
/// As [`write_repr`].
pub fn write_str<T: Object>(out: &mut String, v: &T) -> Result<(), FormatError> {
    match v.view() {
        View::Str(s) => {
            out.push_str(&lossy(s));
            Ok(())
        }
        View::Text(t) | View::Object { text: t, .. } => {
            out.push_str(t);
            Ok(())
        }
        _ => write_repr(out, v),
    }
}

/// Appends Python's `repr()` of the text `s`.
pub fn write_str_repr(out: &mut String, s: &str, ascii: bool) {
    str_repr(&mut unlimited(out), s, ascii);
}

/// Appends `repr(v)` for showing, never failing: it stops after about
/// `budget` bytes and ends with `...` when it stopped early, and shows an
/// `int` too long for `str()` in hexadecimal (`0x…`).
pub fn write_repr_lossy<T: Object>(out: &mut String, v: &T, budget: usize) {
    let limit = out.len().saturating_add(budget);
    let mut w = Sink {
        out,
        limit,
        full: false,
        lenient: true,
    };
    let _ = write_value(&mut w, v, false);
    if w.full {
        w.out.push_str("...");
    }
}
