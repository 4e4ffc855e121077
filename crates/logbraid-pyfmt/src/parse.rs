//! Cutting a `%`-format into literals and directives, as CPython reads it.
//!
//! The reader never fails: a directive that CPython would reject carries
//! what is wrong with it ([`Key::Unterminated`], [`Count::Digits`] without
//! a value, no conversion), so that the formatter raises CPython's error in
//! CPython's order (a missing key is reported before a bad conversion
//! character after it) and the layout can name the fault its own way.

use crate::format::Flags;

/// A width or a precision, as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count<'f> {
    /// Not written.
    None,
    /// `*`, taken from the arguments; `at` is its byte offset.
    Star {
        /// Byte offset of the `*`.
        at: usize,
    },
    /// Digits.
    Digits {
        /// The digits.
        text: &'f str,
        /// Byte offset of the first digit.
        at: usize,
        /// Their value; `None` past CPython's bound (`width too big`,
        /// `precision too big`).
        value: Option<usize>,
    },
}

/// The `(key)` of a directive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key<'f> {
    /// No key: the next positional argument.
    None,
    /// `%(name)`: the text between the parentheses (which may hold
    /// balanced parentheses of its own).
    Name(&'f str),
    /// `%(` never closed; the directive runs to the end of the format.
    Unterminated,
}

/// One `%` conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Directive<'f> {
    /// Byte offset of the `%`.
    pub at: usize,
    /// The mapping key.
    pub key: Key<'f>,
    /// `-`, `+`, space, `#`, `0`.
    pub flags: Flags,
    /// The width.
    pub width: Count<'f>,
    /// The precision, when a `.` was written (`.` alone is 0).
    pub precision: Option<Count<'f>>,
    /// The conversion character and its byte offset; `None` when the
    /// format ends first (`incomplete format`).
    pub conv: Option<(char, usize)>,
}

/// A piece of a format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'f> {
    /// Text copied as it is.
    Literal(&'f str),
    /// `%%`.
    Percent,
    /// A conversion.
    Directive(Directive<'f>),
}

/// The pieces of a format, in order.
#[derive(Clone, Debug)]
pub struct Pieces<'f> {
    fmt: &'f str,
    pos: usize,
}

impl<'f> Pieces<'f> {
    /// Reads `fmt`.
    pub fn new(fmt: &'f str) -> Self {
        Pieces { fmt, pos: 0 }
    }
}

impl<'f> Pieces<'f> {
    /// Reads `fmt` from byte offset `pos`, which must be at a character
    /// boundary.
    pub(crate) fn at(fmt: &'f str, pos: usize) -> Self {
        Pieces { fmt, pos }
    }

    /// The byte offset reading has reached.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }
}

/// The index in characters (code points) of byte offset `at` of `s`, as
/// CPython's messages count.
pub fn char_index(s: &str, at: usize) -> usize {
    s.get(..at).map_or(0, |p| p.chars().count())
}

/// CPython's bounds: a width is a `Py_ssize_t`, a precision an `int`.
const MAX_WIDTH: usize = i64::MAX as usize;
const MAX_PRECISION: usize = i32::MAX as usize;

fn count<'f>(fmt: &'f str, i: &mut usize, max: usize) -> Count<'f> {
    let b = fmt.as_bytes();
    if b.get(*i) == Some(&b'*') {
        *i += 1;
        return Count::Star { at: *i - 1 };
    }
    let at = *i;
    let mut value = Some(0usize);
    while let Some(&d @ b'0'..=b'9') = b.get(*i) {
        value = value.and_then(|v| {
            let d = usize::from(d - b'0');
            (v <= (max - d) / 10).then(|| v * 10 + d)
        });
        *i += 1;
    }
    if *i == at {
        Count::None
    } else {
        Count::Digits {
            text: &fmt[at..*i],
            at,
            value,
        }
    }
}

impl<'f> Iterator for Pieces<'f> {
    type Item = Piece<'f>;

    fn next(&mut self) -> Option<Piece<'f>> {
        let fmt = self.fmt;
        let b = fmt.as_bytes();
        let at = self.pos;
        if at >= b.len() {
            return None;
        }
        if b[at] != b'%' {
            let end = fmt[at..].find('%').map_or(b.len(), |n| at + n);
            self.pos = end;
            return Some(Piece::Literal(&fmt[at..end]));
        }
        let mut d = Directive {
            at,
            key: Key::None,
            flags: Flags::default(),
            width: Count::None,
            precision: None,
            conv: None,
        };
        if b.get(at + 1) == Some(&b'%') {
            self.pos = at + 2;
            return Some(Piece::Percent);
        }
        let mut i = at + 1;
        if b.get(i) == Some(&b'(') {
            let start = i + 1;
            let mut depth = 1;
            i = start;
            while i < b.len() {
                match b[i] {
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            if depth > 0 {
                d.key = Key::Unterminated;
                self.pos = b.len();
                return Some(Piece::Directive(d));
            }
            d.key = Key::Name(&fmt[start..i]);
            i += 1;
        }
        while let Some(&c) = b.get(i) {
            match c {
                b'-' => d.flags.left = true,
                b'+' => d.flags.plus = true,
                b' ' => d.flags.space = true,
                b'#' => d.flags.alt = true,
                b'0' => d.flags.zero = true,
                _ => break,
            }
            i += 1;
        }
        d.width = count(fmt, &mut i, MAX_WIDTH);
        let width_ok = !matches!(d.width, Count::Digits { value: None, .. });
        if width_ok && b.get(i) == Some(&b'.') {
            i += 1;
            d.precision = Some(match count(fmt, &mut i, MAX_PRECISION) {
                Count::None => Count::Digits {
                    text: "",
                    at: i,
                    value: Some(0),
                },
                c => c,
            });
        }
        // One C length modifier is skipped, as CPython does.
        if matches!(b.get(i), Some(b'h' | b'l' | b'L')) {
            i += 1;
        }
        if let Some(c) = fmt.get(i..).and_then(|r| r.chars().next()) {
            d.conv = Some((c, i));
            i += c.len_utf8();
        }
        self.pos = i.min(b.len());
        Some(Piece::Directive(d))
    }
}
