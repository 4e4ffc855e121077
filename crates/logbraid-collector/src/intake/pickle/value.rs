//! The values a pickle holds, and their Python `repr`.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// A value read from a pickle.
#[derive(Clone, Debug, PartialEq)]
#[repr(u64)]
pub enum PickleValue<'a> {
    /// Python's `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An `int` that fits in 64 bits.
    Int(i64),
    /// An `int` that does not fit in 64 bits: little-endian two's
    /// complement, in the fewest bytes that hold it (the layout of the
    /// `LONG1` opcode).
    BigInt(Vec<u8>),
    /// A `float`.
    Float(f64),
    /// A `str`. Lone surrogates, which Python can store but Rust strings
    /// cannot hold, are replaced by U+FFFD. A Python 2 `str` (opcodes
    /// `STRING`, `BINSTRING`, `SHORT_BINSTRING`) is a `Str` when it is valid
    /// UTF-8 and [`PickleValue::Bytes`] otherwise.
    Str(Cow<'a, str>),
    /// A `bytes` or `bytearray`.
    Bytes(Cow<'a, [u8]>),
    /// A `list`, or a `set` or `frozenset` (in the order the pickle lists
    /// their items).
    List(Vec<PickleValue<'a>>),
    /// A `tuple`.
    Tuple(Vec<PickleValue<'a>>),
    /// A `dict`, pairs in the order the pickle set them. A key set twice
    /// appears twice; [`PickleValue::get`] finds the later one, as Python
    /// would.
    Dict(Vec<(PickleValue<'a>, PickleValue<'a>)>),
}

impl<'a> PickleValue<'a> {
    /// The Python type name (`"str"`, `"int"`, …), for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            PickleValue::None => "None",
            PickleValue::Bool(_) => "bool",
            PickleValue::Int(_) | PickleValue::BigInt(_) => "int",
            PickleValue::Float(_) => "float",
            PickleValue::Str(_) => "str",
            PickleValue::Bytes(_) => "bytes",
            PickleValue::List(_) => "list",
            PickleValue::Tuple(_) => "tuple",
            PickleValue::Dict(_) => "dict",
        }
    }

    /// Bytes a scalar adds to the result, for [`Limits::max_total_bytes`].
    pub(super) fn scalar_size(&self) -> usize {
        match self {
            PickleValue::Str(s) => s.len(),
            PickleValue::Bytes(b) => b.len(),
            PickleValue::BigInt(b) => b.len(),
            _ => 0,
        }
    }

    /// The text of a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PickleValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// In a `Dict`, the value of the last pair whose key is the string `key`.
    pub fn get(&self, key: &str) -> Option<&PickleValue<'a>> {
        match self {
            PickleValue::Dict(pairs) => pairs
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value as an unsigned 64-bit integer, when it is an `int` in range.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            PickleValue::Int(v) => u64::try_from(*v).ok(),
            PickleValue::BigInt(b) => {
                // Minimal two's complement: a u64 above i64::MAX needs nine
                // bytes, the ninth being the zero sign byte.
                if b.len() == 9 && b[8] == 0 {
                    let mut le = [0u8; 8];
                    le.copy_from_slice(&b[..8]);
                    Some(u64::from_le_bytes(le))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Writes Python's `repr()` of the value into `out`, stopping after
    /// about `budget` bytes and ending with `...` when it stopped early.
    pub fn write_repr(&self, out: &mut String, budget: usize) {
        let start = out.len();
        let mut w = Budget {
            out,
            limit: start.saturating_add(budget),
            full: false,
        };
        repr_into(self, &mut w);
        if w.full {
            w.out.push_str("...");
        }
    }
}

/// Writes into a string until a byte limit is passed; then only records
/// that it is full, so a huge value is never rendered whole.
pub(super) struct Budget<'a> {
    pub(super) out: &'a mut String,
    pub(super) limit: usize,
    pub(super) full: bool,
}

impl fmt::Write for Budget<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.full {
            return Err(fmt::Error);
        }
        let room = self.limit.saturating_sub(self.out.len());
        if s.len() > room {
            self.out.push_str(&s[..floor_boundary(s, room)]);
            self.full = true;
            return Err(fmt::Error);
        }
        self.out.push_str(s);
        Ok(())
    }
}

pub(super) fn floor_boundary(s: &str, at: usize) -> usize {
    let mut end = at.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

// Recursion here is bounded: a decoded value is never deeper than
// MAX_DEPTH_CAP, and a full budget stops the walk early.
pub(super) fn repr_into(v: &PickleValue<'_>, w: &mut Budget<'_>) {
    if w.full {
        return;
    }
    let _ = match v {
        PickleValue::None => w.write_str("None"),
        PickleValue::Bool(true) => w.write_str("True"),
        PickleValue::Bool(false) => w.write_str("False"),
        PickleValue::Int(i) => write!(w, "{i}"),
        PickleValue::BigInt(b) => w.write_str(&bigint_to_string(b)),
        PickleValue::Float(f) => w.write_str(&python_float_repr(*f)),
        PickleValue::Str(s) => write_str_repr(s, w),
        PickleValue::Bytes(b) => write_bytes_repr(b, w),
        PickleValue::List(items) => {
            let _ = w.write_char('[');
            write_items(items, w);
            w.write_char(']')
        }
        PickleValue::Tuple(items) => {
            let _ = w.write_char('(');
            write_items(items, w);
            if items.len() == 1 {
                let _ = w.write_char(',');
            }
            w.write_char(')')
        }
        PickleValue::Dict(pairs) => {
            let _ = w.write_char('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    let _ = w.write_str(", ");
                }
                repr_into(k, w);
                let _ = w.write_str(": ");
                repr_into(v, w);
                if w.full {
                    break;
                }
            }
            w.write_char('}')
        }
    };
}

pub(super) fn write_items(items: &[PickleValue<'_>], w: &mut Budget<'_>) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            let _ = w.write_str(", ");
        }
        repr_into(item, w);
        if w.full {
            break;
        }
    }
}

/// Python's `repr()` of a `str`: single quotes unless the text holds a
/// single quote and no double quote.
pub(crate) fn write_str_repr(s: &str, w: &mut impl fmt::Write) -> fmt::Result {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    w.write_char(quote)?;
    for c in s.chars() {
        match c {
            '\\' => w.write_str("\\\\")?,
            '\n' => w.write_str("\\n")?,
            '\r' => w.write_str("\\r")?,
            '\t' => w.write_str("\\t")?,
            c if c == quote => {
                w.write_char('\\')?;
                w.write_char(c)?;
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(w, "\\x{:02x}", c as u32)?,
            c if c.is_control() => {
                let n = c as u32;
                if n <= 0xff {
                    write!(w, "\\x{n:02x}")?
                } else if n <= 0xffff {
                    write!(w, "\\u{n:04x}")?
                } else {
                    write!(w, "\\U{n:08x}")?
                }
            }
            c => w.write_char(c)?,
        }
    }
    w.write_char(quote)
}

pub(super) fn write_bytes_repr(b: &[u8], w: &mut impl fmt::Write) -> fmt::Result {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    w.write_char('b')?;
    w.write_char(quote as char)?;
    for &c in b {
        match c {
            b'\\' => w.write_str("\\\\")?,
            b'\n' => w.write_str("\\n")?,
            b'\r' => w.write_str("\\r")?,
            b'\t' => w.write_str("\\t")?,
            c if c == quote => {
                w.write_char('\\')?;
                w.write_char(c as char)?;
            }
            0x20..=0x7e => w.write_char(c as char)?,
            c => write!(w, "\\x{c:02x}")?,
        }
    }
    w.write_char(quote as char)
}

/// Python's `repr()` of a `float`: the shortest digits that read back to
/// the same number, in positional notation for exponents from -4 to 15 and
/// in scientific notation (`1e+16`) otherwise.
pub(crate) fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

/// Decimal text of a little-endian two's complement integer. Integers over
/// 512 bytes are shown in hexadecimal, which costs linear time.
pub(crate) fn bigint_to_string(le: &[u8]) -> String {
    let negative = le.last().is_some_and(|&b| b & 0x80 != 0);
    let mut mag = le.to_vec();
    if negative {
        negate_le(&mut mag);
    }
    while mag.len() > 1 && mag.last() == Some(&0) {
        mag.pop();
    }
    let sign = if negative { "-" } else { "" };
    if mag.len() > 512 {
        let mut s = format!("{sign}0x");
        for b in mag.iter().rev() {
            let _ = write!(s, "{b:02x}");
        }
        return s;
    }
    // Repeated division by 10^9 on 32-bit limbs, most significant first.
    let mut limbs: Vec<u32> = mag
        .chunks(4)
        .rev()
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect();
    let mut groups = Vec::new();
    while limbs.iter().any(|&l| l != 0) {
        let mut rem = 0u64;
        for l in limbs.iter_mut() {
            let cur = (rem << 32) | u64::from(*l);
            *l = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        groups.push(rem as u32);
        while limbs.first() == Some(&0) {
            limbs.remove(0);
        }
    }
    let mut s = sign.to_string();
    match groups.split_last() {
        None => s.push('0'),
        Some((first, rest)) => {
            let _ = write!(s, "{first}");
            for g in rest.iter().rev() {
                let _ = write!(s, "{g:09}");
            }
        }
    }
    s
}

pub(super) fn negate_le(bytes: &mut [u8]) {
    let mut carry = true;
    for b in bytes.iter_mut() {
        let (v, c) = (!*b).overflowing_add(u8::from(carry));
        *b = v;
        carry = c;
    }
}
