//! `fmt % args`: CPython's `PyUnicode_Format`, step for step, so that
//! every error is the one CPython raises, in the order it raises them.

use crate::number::{push_u64, write_float, Int};
use crate::parse::{char_index, Count, Key, Piece, Pieces};
use crate::repr::{lossy, write_ascii, write_repr, write_str};
use crate::{FormatError, Object, View};

/// The flags of a conversion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// `-`: pad on the right.
    pub left: bool,
    /// `+`: a sign for positive numbers too.
    pub plus: bool,
    /// ` `: a space where a positive number's sign would be.
    pub space: bool,
    /// `#`: the alternate form (`0x`, a point that stays).
    pub alt: bool,
    /// `0`: pad numbers with zeros after the sign.
    pub zero: bool,
}

/// One conversion, ready to apply to a value: flags, width, precision and
/// the conversion character (`s r a d i u o x X e E f F g G c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    /// The flags.
    pub flags: Flags,
    /// The minimum width in characters.
    pub width: Option<usize>,
    /// The precision.
    pub precision: Option<usize>,
    /// The conversion character.
    pub conv: char,
}

impl Spec {
    /// `%s`, `%d`…: a conversion with no flags, width or precision.
    pub fn plain(conv: char) -> Spec {
        Spec {
            flags: Flags::default(),
            width: None,
            precision: None,
            conv,
        }
    }

    /// Nothing to pad, cut or sign: the value's text is the output.
    fn is_bare(&self) -> bool {
        self.width.is_none() && self.precision.is_none() && !self.flags.plus && !self.flags.space
    }
}

/// A conversion character (`s r a d i u o x X e E f F g G c`).
fn is_conversion(c: u8) -> bool {
    matches!(
        c,
        b's' | b'r'
            | b'a'
            | b'd'
            | b'i'
            | b'u'
            | b'o'
            | b'x'
            | b'X'
            | b'e'
            | b'E'
            | b'f'
            | b'F'
            | b'g'
            | b'G'
            | b'c'
    )
}

/// The index of the first `%` in `b` at or after `from`, eight bytes at a
/// time: the text between directives of a log message is short, where
/// `str::find` costs more to set up than it saves, and a byte loop spends
/// four instructions a byte.
fn next_percent(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const PERCENTS: u64 = u64::from_ne_bytes([b'%'; 8]);
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        // A zero byte of `x` is a `%` of `word`; the lowest byte flagged
        // is always a real one (a borrow only spreads upwards).
        let x = word ^ PERCENTS;
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?.iter().position(|&c| c == b'%').map(|p| i + p)
}

/// The kind of a scalar argument, all [`certain`] needs to know of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool,
    /// An `int` within 128 bits.
    Int,
    /// A `float`.
    Float,
    /// A `str`.
    Str,
}

impl Kind {
    /// The kind of `v`; `None` for containers, big ints and `bytes`.
    pub fn of(v: &crate::Value<'_>) -> Option<Kind> {
        use crate::Value;
        Some(match v {
            Value::None => Kind::None,
            Value::Bool(_) => Kind::Bool,
            Value::Int(_) => Kind::Int,
            Value::Float(_) => Kind::Float,
            Value::Str(_) | Value::Text(_) => Kind::Str,
            _ => return None,
        })
    }
}

/// Whether `fmt % tuple(args)` certainly succeeds for arguments of these
/// kinds, decided without formatting: `fmt` has only `%%` and bare `%s`,
/// `%r`, `%a`, `%d`, `%i` and `%u` directives (no key, flag, width or
/// precision), exactly one per argument, and each argument is of a kind
/// its directive takes (any for `s r a`; `bool` and `int` for `d i u`).
/// A caller may then leave the formatting to later, and to another
/// thread, knowing that no error will need reporting; `false` says
/// nothing either way.
pub fn certain(fmt: &str, args: &[Kind]) -> bool {
    Plain::of(fmt).is_some_and(|p| p.takes(args))
}

/// The directives of a format [`certain`] can vouch for, read once: a
/// caller that sees the same format again (a constant of its code) keeps
/// this and asks [`Plain::takes`] each time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plain {
    /// Directives, `%%` aside.
    count: usize,
    /// Bit `i` set: directive `i` is `d`, `i` or `u`.
    numeric: u64,
}

impl Plain {
    /// `fmt`'s directives, when all are of the kinds [`certain`] takes and
    /// there are at most 64; `None` otherwise.
    pub fn of(fmt: &str) -> Option<Plain> {
        let b = fmt.as_bytes();
        let mut plain = Plain {
            count: 0,
            numeric: 0,
        };
        let mut i = 0;
        while let Some(at) = next_percent(b, i) {
            i = at + 2;
            let numeric = match b.get(at + 1) {
                Some(b'%') => continue,
                Some(b's' | b'r' | b'a') => false,
                Some(b'd' | b'i' | b'u') => true,
                _ => return None,
            };
            if plain.count == 64 {
                return None;
            }
            plain.numeric |= u64::from(numeric) << plain.count;
            plain.count += 1;
        }
        Some(plain)
    }

    /// Whether the format certainly succeeds with arguments of these kinds
    /// (see [`certain`]).
    pub fn takes(&self, args: &[Kind]) -> bool {
        args.len() == self.count
            && args
                .iter()
                .enumerate()
                .all(|(i, k)| self.numeric & (1 << i) == 0 || matches!(k, Kind::Bool | Kind::Int))
    }
}

/// Where the next argument comes from: CPython's `args`, `arglen` and
/// `argidx`. A `%(key)` directive replaces the arguments by the key's
/// value for the rest of that directive.
struct Args<'a, T> {
    current: &'a T,
    items: &'a [T],
    len: isize,
    index: isize,
}

impl<'a, T> Args<'a, T> {
    fn next(&mut self) -> Result<&'a T, FormatError> {
        if self.index < self.len {
            self.index += 1;
            if self.len < 0 {
                return Ok(self.current);
            }
            return Ok(&self.items[(self.index - 1) as usize]);
        }
        Err(FormatError::type_error(
            "not enough arguments for format string",
        ))
    }
}

/// `dict[key]` as `%(key)` looks it up.
fn lookup<'a, T: Object>(map: &'a T, key: &str) -> Result<&'a T, FormatError> {
    match map.view() {
        View::Dict(pairs) => pairs
            .iter()
            .rev()
            .find(|(k, _)| match k.view() {
                View::Str(s) => s == key.as_bytes(),
                View::Text(t) => t == key,
                _ => false,
            })
            .map(|(_, v)| v)
            .ok_or_else(|| {
                let mut shown = String::new();
                crate::repr::write_str_repr(&mut shown, key, false);
                FormatError::new(crate::ErrorKind::KeyError, shown)
            }),
        View::Bytes(_) => Err(FormatError::type_error(
            "byte indices must be integers or slices, not str",
        )),
        other => Err(FormatError::type_error(format!(
            "{} indices must be integers or slices, not str",
            other.type_name()
        ))),
    }
}

/// A `*` width or precision: an `int` (or `bool`) within C's bounds.
fn star<T: Object>(v: &T, max: i128, c_type: &str) -> Result<i128, FormatError> {
    let n = match v.view() {
        View::Int(i) => i,
        View::Bool(b) => i128::from(b),
        View::BigInt(_) => max + 1,
        _ => return Err(FormatError::type_error("* wants int")),
    };
    if n > max || n < -max - 1 {
        return Err(FormatError::overflow(format!(
            "Python int too large to convert to C {c_type}"
        )));
    }
    Ok(n)
}

/// Appends `fmt % args`, as CPython computes it, to `out`.
///
/// `args` is the right operand: a tuple gives the positional arguments,
/// a `dict` (or, as in CPython, a `list` or `bytes`) may serve `%(key)`
/// directives, anything else is the single argument. At most `limit` bytes
/// are added; a longer result is [`ErrorKind::TooLong`](crate::ErrorKind).
/// On error, `out` may hold part of the result.
///
/// # Errors
///
/// The exception CPython raises, with its message.
pub fn format<T: Object>(
    fmt: &str,
    args: &T,
    out: &mut String,
    limit: usize,
) -> Result<(), FormatError> {
    let view = args.view();
    let mut a = match view {
        View::Tuple(items) => Args {
            current: args,
            items,
            len: items.len() as isize,
            index: 0,
        },
        _ => Args {
            current: args,
            items: &[],
            len: -1,
            index: -2,
        },
    };
    let dict = matches!(view, View::Dict(_) | View::List(_) | View::Bytes(_)).then_some(args);
    let start = out.len();
    let mut scratch = String::new();
    let b = fmt.as_bytes();
    // The text since the last directive, copied when the next one starts.
    let mut literal = 0;
    let mut i = 0;
    while let Some(at) = next_percent(b, i) {
        i = at;
        out.push_str(&fmt[literal..i]);
        // The usual `%s`, `%d` and `%%` without the general reader.
        match b.get(i + 1) {
            Some(b'%') => {
                out.push('%');
                i += 2;
                literal = i;
                continue;
            }
            Some(&c) if is_conversion(c) => {
                let v = a.next()?;
                if !render_bare(out, c, v) {
                    render(out, &Spec::plain(char::from(c)), v, &mut scratch)?;
                }
                if out.len() - start > limit {
                    return Err(FormatError::too_long(limit));
                }
                i += 2;
                literal = i;
                continue;
            }
            _ => {}
        }
        let mut pieces = Pieces::at(fmt, i);
        // Every `%` but `%%` starts a directive.
        let Some(Piece::Directive(d)) = pieces.next() else {
            return Err(FormatError::value_error("incomplete format"));
        };
        i = pieces.position();
        literal = i;
        match d.key {
            Key::None => {}
            Key::Unterminated | Key::Name(_) if dict.is_none() => {
                return Err(FormatError::type_error("format requires a mapping"));
            }
            Key::Unterminated => return Err(FormatError::value_error("incomplete format key")),
            Key::Name(name) => {
                a = Args {
                    current: lookup(dict.unwrap_or(args), name)?,
                    items: &[],
                    len: -1,
                    index: -2,
                };
            }
        }
        let mut flags = d.flags;
        let width = match d.width {
            Count::None => None,
            Count::Star { .. } => {
                let n = star(a.next()?, i128::from(i64::MAX), "ssize_t")?;
                if n < 0 {
                    flags.left = true;
                }
                Some(n.unsigned_abs() as usize)
            }
            Count::Digits { value: None, .. } => {
                return Err(FormatError::value_error("width too big"))
            }
            Count::Digits { value, .. } => value,
        };
        let precision = match d.precision {
            None | Some(Count::None) => None,
            Some(Count::Star { .. }) => {
                let n = star(a.next()?, i128::from(i32::MAX), "int")?;
                Some(n.max(0) as usize)
            }
            Some(Count::Digits { value: None, .. }) => {
                return Err(FormatError::value_error("precision too big"))
            }
            Some(Count::Digits { value, .. }) => value,
        };
        let Some((conv, conv_at)) = d.conv else {
            return Err(FormatError::value_error("incomplete format"));
        };
        let v = a.next()?;
        if !conv.is_ascii() || !is_conversion(conv as u8) {
            let shown = if (' '..='~').contains(&conv) || conv == '\u{1f}' {
                conv
            } else {
                '?'
            };
            return Err(FormatError::value_error(format!(
                "unsupported format character '{shown}' (0x{:x}) at index {}",
                u32::from(conv),
                char_index(fmt, conv_at)
            )));
        }
        let room = limit.saturating_sub(out.len() - start);
        if width.unwrap_or(0) > room
            || (precision.unwrap_or(0) > room && !matches!(conv, 's' | 'r' | 'a'))
        {
            return Err(FormatError::too_long(limit));
        }
        let spec = Spec {
            flags,
            width,
            precision,
            conv,
        };
        render(out, &spec, v, &mut scratch)?;
        if out.len() - start > limit {
            return Err(FormatError::too_long(limit));
        }
    }
    out.push_str(&fmt[literal..]);
    if a.index < a.len && dict.is_none() {
        return Err(FormatError::type_error(
            "not all arguments converted during string formatting",
        ));
    }
    Ok(())
}

/// The integer a `%d`-family conversion formats: CPython's
/// `mainformatlong`.
fn integer<T: Object>(v: &T, conv: char) -> Result<Int, FormatError> {
    match v.view() {
        View::Int(i) => Ok(Int::Small(i)),
        View::Bool(b) => Ok(Int::Small(i128::from(b))),
        View::BigInt(b) => Ok(Int::from_le(b)),
        View::Float(f) if matches!(conv, 'd' | 'i' | 'u') => Int::from_float(f),
        other => Err(FormatError::type_error(format!(
            "%{conv} format: {} is required, not {}",
            if matches!(conv, 'o' | 'x' | 'X') {
                "an integer"
            } else {
                "a real number"
            },
            other.type_name()
        ))),
    }
}

fn real<T: Object>(v: &T) -> Result<f64, FormatError> {
    match v.view() {
        View::Float(f) => Ok(f),
        View::Int(i) => Ok(i as f64),
        View::Bool(b) => Ok(f64::from(u8::from(b))),
        View::BigInt(b) => Int::from_le(b).to_f64(),
        other => Err(FormatError::type_error(format!(
            "must be real number, not {}",
            other.type_name()
        ))),
    }
}

fn character<T: Object>(v: &T) -> Result<char, FormatError> {
    let wrong = || FormatError::type_error("%c requires int or char");
    let out_of_range = || FormatError::overflow("%c arg not in range(0x110000)");
    match v.view() {
        View::Str(_) | View::Text(_) => {
            let text = match v.view() {
                View::Text(t) => std::borrow::Cow::Borrowed(t),
                View::Str(s) => lossy(s),
                _ => std::borrow::Cow::Borrowed(""),
            };
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(c),
                _ => Err(wrong()),
            }
        }
        View::Int(i) => u32::try_from(i)
            .ok()
            .filter(|&n| n < 0x110000)
            .map(|n| char::from_u32(n).unwrap_or('\u{fffd}'))
            .ok_or_else(out_of_range),
        View::Bool(b) => Ok(if b { '\u{1}' } else { '\u{0}' }),
        View::BigInt(_) => Err(out_of_range()),
        _ => Err(wrong()),
    }
}

/// Writes the body of a number conversion: `-`, the `0x`/`0o` prefix
/// under `#`, the digits zero-extended to the precision.
fn integer_body(out: &mut String, n: &Int, spec: &Spec) -> Result<(), FormatError> {
    if let (Int::Small(i), 'd' | 'i' | 'u', None) = (n, spec.conv, spec.precision) {
        if let Ok(m) = u64::try_from(i.unsigned_abs()) {
            if *i < 0 {
                out.push('-');
            }
            push_u64(out, m);
            return Ok(());
        }
    }
    let (base, prefix) = match spec.conv {
        'o' => (8, "0o"),
        'x' => (16, "0x"),
        'X' => (16, "0X"),
        _ => (10, ""),
    };
    if n.is_negative() {
        out.push('-');
    }
    if spec.flags.alt {
        out.push_str(prefix);
    }
    let mark = out.len();
    n.write_magnitude(base, out)?;
    if let Some(p) = spec.precision {
        let digits = out.len() - mark;
        if p > digits {
            out.insert_str(mark, &"0".repeat(p - digits));
        }
    }
    if spec.conv == 'X' {
        out[mark..].make_ascii_uppercase();
    }
    Ok(())
}

/// The most common conversions with nothing to pad: `%s` of a `str` and
/// `%s` or `%d` of an `int`. `false` when `conv` and `v` are not one of
/// those, and nothing was written.
fn render_bare<T: Object>(out: &mut String, conv: u8, v: &T) -> bool {
    match (conv, v.view()) {
        (b's', View::Text(t)) => out.push_str(t),
        (b's', View::Str(s)) => match std::str::from_utf8(s) {
            Ok(text) => out.push_str(text),
            Err(_) => out.push_str(&lossy(s)),
        },
        (b's' | b'd' | b'i' | b'u', View::Int(i)) if i64::try_from(i).is_ok() => {
            if i < 0 {
                out.push('-');
            }
            push_u64(out, i.unsigned_abs() as u64);
        }
        _ => return false,
    }
    true
}

/// Applies one conversion to one value, appending the result to `out`
/// (`scratch` is working space, kept by the caller between calls).
///
/// # Errors
///
/// What CPython raises for this conversion and value (`%d` of a `str`, `%c`
/// of a long text, …).
pub fn render<T: Object>(
    out: &mut String,
    spec: &Spec,
    v: &T,
    scratch: &mut String,
) -> Result<(), FormatError> {
    let bare = spec.is_bare();
    if bare && spec.conv.is_ascii() && render_bare(out, spec.conv as u8, v) {
        return Ok(());
    }
    let numeric = !matches!(spec.conv, 's' | 'r' | 'a' | 'c');
    // The text before padding goes straight to `out` when there is no
    // padding to do, else to `scratch`.
    let body: &mut String = if bare { &mut *out } else { &mut *scratch };
    if !bare {
        body.clear();
    }
    match spec.conv {
        // A bare `%s` of a `str` was written above.
        's' => match v.view() {
            View::Text(t) => {
                output(out, spec, t, false);
                return Ok(());
            }
            View::Str(s) => {
                output(out, spec, &lossy(s), false);
                return Ok(());
            }
            View::Int(i) => {
                if i < 0 {
                    body.push('-');
                }
                match u64::try_from(i.unsigned_abs()) {
                    Ok(m) => push_u64(body, m),
                    Err(_) => Int::Small(i.abs()).write_magnitude(10, body)?,
                }
            }
            _ => write_str(body, v)?,
        },
        'r' => write_repr(body, v)?,
        'a' => write_ascii(body, v)?,
        'd' | 'i' | 'u' | 'o' | 'x' | 'X' => integer_body(body, &integer(v, spec.conv)?, spec)?,
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            let x = real(v)?;
            write_float(
                body,
                x,
                spec.conv,
                spec.precision.unwrap_or(6),
                spec.flags.alt,
            );
        }
        'c' => body.push(character(v)?),
        other => {
            return Err(FormatError::value_error(format!(
                "unsupported format character '{other}'"
            )))
        }
    }
    if !bare {
        output(out, spec, scratch, numeric);
    }
    Ok(())
}

fn fill(out: &mut String, c: char, n: usize) {
    out.extend(std::iter::repeat_n(c, n));
}

/// CPython's `unicode_format_arg_output`: cuts text to the precision,
/// places the sign and the `0x` prefix, pads to the width.
fn output(out: &mut String, spec: &Spec, body: &str, numeric: bool) {
    let flags = spec.flags;
    let mut len = body.chars().count();
    let width = spec.width;
    let precision = spec.precision;
    if width.is_none_or(|w| w <= len)
        && precision.is_none_or(|p| p >= len)
        && !flags.plus
        && !flags.space
    {
        out.push_str(body);
        return;
    }
    let mut body = body;
    if matches!(spec.conv, 's' | 'r' | 'a') {
        if let Some(p) = precision.filter(|&p| len > p) {
            let end = body.char_indices().nth(p).map_or(body.len(), |(i, _)| i);
            body = &body[..end];
            len = p;
        }
    }
    let pad = if numeric && flags.zero { '0' } else { ' ' };
    let mut sign = None;
    if numeric {
        match body.as_bytes().first() {
            Some(&c @ (b'-' | b'+')) => {
                sign = Some(char::from(c));
                body = &body[1..];
                len -= 1;
            }
            _ if flags.plus => sign = Some('+'),
            _ if flags.space => sign = Some(' '),
            _ => {}
        }
    }
    let mut width = width.unwrap_or(0).max(len);
    if let Some(s) = sign {
        if pad != ' ' {
            out.push(s);
        }
        if width > len {
            width -= 1;
        }
    }
    let prefixed = flags.alt && matches!(spec.conv, 'x' | 'X' | 'o');
    if prefixed {
        if pad != ' ' {
            out.push_str(&body[..2]);
            body = &body[2..];
        }
        width = width.saturating_sub(2);
        len -= 2;
    }
    if width > len && !flags.left {
        fill(out, pad, width - len);
        width = len;
    }
    if pad == ' ' {
        if let Some(s) = sign {
            out.push(s);
        }
        if prefixed {
            out.push_str(&body[..2]);
            body = &body[2..];
        }
    }
    out.push_str(body);
    if width > len {
        fill(out, ' ', width - len);
    }
}

#[cfg(test)]
mod tests {
    use super::next_percent;

    /// Every position of one or two `%` in texts of 0 to 40 bytes, from
    /// every starting point, against a plain search: the word-at-a-time
    /// scan finds the first one, across word boundaries and in the tail.
    #[test]
    fn next_percent_finds_the_first_from_anywhere() {
        for len in 0..40 {
            for p in 0..=len {
                for q in p..=len {
                    let mut b = vec![b'a'; len];
                    // Bytes next to `%` (0x25) in value: 0x24 and 0x26, and
                    // a byte with the high bit set, around the matches.
                    for (i, c) in b.iter_mut().enumerate() {
                        *c = [b'$', b'&', 0xc3, b'a'][i % 4];
                    }
                    if p < len {
                        b[p] = b'%';
                    }
                    if q < len {
                        b[q] = b'%';
                    }
                    for from in 0..=len {
                        let want = b[from..].iter().position(|&c| c == b'%').map(|i| from + i);
                        assert_eq!(next_percent(&b, from), want, "{b:?} from {from}");
                    }
                }
            }
        }
    }
}
