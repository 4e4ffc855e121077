//! Numbers as CPython writes them: `int` in any base and of any size,
//! `float` in `repr()` and in C's `%e`, `%f` and `%g`.

use std::fmt::Write as _;

use crate::FormatError;

/// CPython's default `sys.get_int_max_str_digits()`.
const MAX_STR_DIGITS: usize = 4300;

/// An integer of any size.
#[derive(Clone, Debug)]
pub(crate) enum Int {
    Small(i128),
    /// Sign and magnitude in 32-bit limbs, least significant first.
    Big {
        negative: bool,
        limbs: Vec<u32>,
    },
}

impl Int {
    /// From little-endian two's complement bytes.
    pub(crate) fn from_le(le: &[u8]) -> Int {
        if le.len() <= 16 {
            let fill = if le.last().is_some_and(|&b| b & 0x80 != 0) {
                0xff
            } else {
                0
            };
            let mut b = [fill; 16];
            b[..le.len()].copy_from_slice(le);
            return Int::Small(i128::from_le_bytes(b));
        }
        let negative = le.last().is_some_and(|&b| b & 0x80 != 0);
        let mut mag = le.to_vec();
        if negative {
            let mut carry = true;
            for b in &mut mag {
                let (v, c) = (!*b).overflowing_add(u8::from(carry));
                *b = v;
                carry = c;
            }
        }
        let limbs = mag
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(w)
            })
            .collect();
        Int::big(negative, limbs)
    }

    fn big(negative: bool, mut limbs: Vec<u32>) -> Int {
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
        if limbs.len() <= 3 {
            let mut m = 0u128;
            for (i, l) in limbs.iter().enumerate() {
                m |= u128::from(*l) << (32 * i);
            }
            let m = m as i128;
            return Int::Small(if negative { -m } else { m });
        }
        Int::Big { negative, limbs }
    }

    /// `int(x)` of a float: truncated toward zero. CPython's errors for
    /// infinities and NaN.
    pub(crate) fn from_float(x: f64) -> Result<Int, FormatError> {
        if x.is_nan() {
            return Err(FormatError::value_error(
                "cannot convert float NaN to integer",
            ));
        }
        if x.is_infinite() {
            return Err(FormatError::overflow(
                "cannot convert float infinity to integer",
            ));
        }
        let t = x.trunc();
        if t.abs() < 1.7e38 {
            return Ok(Int::Small(t as i128));
        }
        // |t| = mantissa * 2^shift with shift > 0.
        let bits = t.abs().to_bits();
        let exp = ((bits >> 52) & 0x7ff) as usize;
        let mantissa = (bits & ((1 << 52) - 1)) | (1 << 52);
        let shift = exp - 1075;
        let mut limbs = vec![0u32; shift / 32 + 3];
        let wide = u128::from(mantissa) << (shift % 32);
        for k in 0..3 {
            limbs[shift / 32 + k] = (wide >> (32 * k)) as u32;
        }
        Ok(Int::big(t < 0.0, limbs))
    }

    pub(crate) fn is_negative(&self) -> bool {
        match self {
            Int::Small(i) => *i < 0,
            Int::Big { negative, .. } => *negative,
        }
    }

    /// `float(n)`, correctly rounded; CPython's error past the largest
    /// float.
    pub(crate) fn to_f64(&self) -> Result<f64, FormatError> {
        let f = match self {
            Int::Small(i) => *i as f64,
            Int::Big { negative, limbs } => {
                let bits =
                    limbs.len() * 32 - limbs.last().map_or(32, |l| l.leading_zeros() as usize);
                let shift = bits - 64;
                let mut top = 0u64;
                for k in 0..64 {
                    let b = shift + k;
                    if limbs[b / 32] >> (b % 32) & 1 == 1 {
                        top |= 1 << k;
                    }
                }
                let below = (0..shift).any(|b| limbs[b / 32] >> (b % 32) & 1 == 1);
                // A sticky bit below the 64 kept ones: u64 -> f64 then
                // rounds as the whole number would.
                let f = (top | u64::from(below)) as f64;
                let f = if shift > 1023 {
                    f64::INFINITY
                } else {
                    f * f64::from_bits(((1023 + shift) as u64) << 52)
                };
                if *negative {
                    -f
                } else {
                    f
                }
            }
        };
        if f.is_infinite() {
            return Err(FormatError::overflow("int too large to convert to float"));
        }
        Ok(f)
    }

    /// The magnitude's digits in `base` (8, 10 or 16), lower case; base 10
    /// past 4,300 digits is CPython's `ValueError`.
    pub(crate) fn write_magnitude(&self, base: u32, out: &mut String) -> Result<(), FormatError> {
        match self {
            Int::Small(i) => {
                let m = i.unsigned_abs();
                let _ = match base {
                    8 => write!(out, "{m:o}"),
                    16 => write!(out, "{m:x}"),
                    _ => match u64::try_from(m) {
                        Ok(m) => {
                            push_u64(out, m);
                            Ok(())
                        }
                        Err(_) => write!(out, "{m}"),
                    },
                };
                Ok(())
            }
            Int::Big { limbs, .. } if base == 10 => write_decimal(limbs, out),
            Int::Big { limbs, .. } => {
                let step = if base == 8 { 3 } else { 4 };
                let bits =
                    limbs.len() * 32 - limbs.last().map_or(32, |l| l.leading_zeros() as usize);
                let digits = bits.div_ceil(step);
                for d in (0..digits).rev() {
                    let mut v = 0u32;
                    for k in (0..step).rev() {
                        let b = d * step + k;
                        let bit = limbs.get(b / 32).map_or(0, |l| l >> (b % 32) & 1);
                        v = v << 1 | bit;
                    }
                    out.push(char::from_digit(v, 16).unwrap_or('0'));
                }
                Ok(())
            }
        }
    }
}

/// Appends `n` in decimal without the formatting machinery, two digits
/// at a time.
pub(crate) fn push_u64(out: &mut String, mut n: u64) {
    if n < 10 {
        // The usual count, status or flag: one digit, no table.
        out.push(char::from(b'0' + n as u8));
        return;
    }
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while n >= 100 {
        let p = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[p..p + 2]);
    }
    if n >= 10 {
        let p = n as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[p..p + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    // One push a digit costs less than checking the digits are UTF-8
    // and copying them.
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

fn too_many_digits() -> FormatError {
    FormatError::value_error(format!(
        "Exceeds the limit ({MAX_STR_DIGITS} digits) for integer string conversion; \
         use sys.set_int_max_str_digits() to increase the limit"
    ))
}

/// Decimal digits of a magnitude, by repeated division by 10^9.
fn write_decimal(limbs: &[u32], out: &mut String) -> Result<(), FormatError> {
    // 2^14300 already has 4,305 digits; no need to divide to know.
    if limbs.len() * 32 > 14_300 + 32 {
        return Err(too_many_digits());
    }
    let mut work: Vec<u32> = limbs.iter().rev().copied().collect();
    let mut groups = Vec::new();
    while work.iter().any(|&l| l != 0) {
        let mut rem = 0u64;
        for l in work.iter_mut() {
            let cur = (rem << 32) | u64::from(*l);
            *l = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        groups.push(rem as u32);
        while work.first() == Some(&0) {
            work.remove(0);
        }
    }
    let Some((first, rest)) = groups.split_last() else {
        out.push('0');
        return Ok(());
    };
    let digits = first.checked_ilog10().unwrap_or(0) as usize + 1 + 9 * rest.len();
    if digits > MAX_STR_DIGITS {
        return Err(too_many_digits());
    }
    let _ = write!(out, "{first}");
    for g in rest.iter().rev() {
        let _ = write!(out, "{g:09}");
    }
    Ok(())
}

/// Python's `repr()` of a float: the shortest digits that read back as the
/// same number, positional for decimal exponents from -4 to 15 (always with
/// a point: `1.0`) and `1e+16`, `1e-05` beyond.
pub fn write_float_repr(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("nan");
        return;
    }
    if v.is_sign_negative() {
        out.push('-');
    }
    if v.is_infinite() {
        out.push_str("inf");
        return;
    }
    // `{:e}` gives the shortest round-trip digits: "1.2345e-7".
    let mut sci = Stack::default();
    let _ = write!(sci, "{:e}", v.abs());
    let (digits, exp) = sci.digits();
    let digits = &digits.buf[..digits.len];
    place(
        out,
        digits,
        exp,
        (-4..16).contains(&exp),
        ".0",
        false,
        false,
    );
}

/// Writes the significant `digits` (the first one before the point) times
/// ten to `exp`: positional when `positional`, else as `d.ddde±xx`. A whole
/// number gets `whole` after it; `point` keeps the point after a single
/// digit in exponent form (`%#.0e`).
fn place(
    out: &mut String,
    digits: &[u8],
    exp: i32,
    positional: bool,
    whole: &str,
    point: bool,
    upper: bool,
) {
    let push = |out: &mut String, d: &[u8]| d.iter().for_each(|&c| out.push(char::from(c)));
    if !positional {
        push(out, &digits[..1]);
        if digits.len() > 1 || point {
            out.push('.');
            push(out, &digits[1..]);
        }
        push_exponent(out, exp, upper);
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        push(out, digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            push(out, digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
            out.push_str(whole);
        } else {
            push(out, &digits[..int_len]);
            out.push('.');
            push(out, &digits[int_len..]);
        }
    }
}

fn push_exponent(out: &mut String, exp: i32, upper: bool) {
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        out.push('0');
    }
    push_u64(out, u64::from(e));
}

/// CPython's `PyOS_double_to_string(v, conv, precision, alt)`: C's `%e`,
/// `%f` and `%g` (upper case for `E F G`), with a `-` for a negative sign,
/// `inf` and `nan`.
pub(crate) fn write_float(out: &mut String, v: f64, conv: char, precision: usize, alt: bool) {
    let upper = conv.is_ascii_uppercase();
    if v.is_nan() {
        out.push_str(if upper { "NAN" } else { "nan" });
        return;
    }
    if v.is_sign_negative() {
        out.push('-');
    }
    if v.is_infinite() {
        out.push_str(if upper { "INF" } else { "inf" });
        return;
    }
    let a = v.abs();
    match conv.to_ascii_lowercase() {
        'f' => {
            let _ = write!(out, "{a:.precision$}");
            if alt && precision == 0 {
                out.push('.');
            }
        }
        'e' => {
            // Rust writes `1.5e9` and `1e-7`; C writes `1.5e+09`, `1e-07`.
            let mark = out.len();
            let _ = write!(out, "{a:.precision$e}");
            let e = out[mark..].rfind('e').map_or(out.len(), |i| mark + i);
            let exp = out[e + 1..].parse().unwrap_or(0);
            out.truncate(e);
            if alt && precision == 0 {
                out.push('.');
            }
            push_exponent(out, exp, upper);
        }
        _ => write_general(out, a, precision.max(1), alt, upper),
    }
}

/// `%g`: `p` significant digits, positional unless the exponent is below
/// -4 or not below `p`; trailing zeros dropped unless `alt`.
fn write_general(out: &mut String, a: f64, p: usize, alt: bool, upper: bool) {
    let mut sci = String::new();
    let _ = write!(sci, "{a:.*e}", p - 1);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if !alt {
        while digits.len() > 1 && digits.last() == Some(&b'0') {
            digits.pop();
        }
    }
    let positional = exp >= -4 && i64::from(exp) < p as i64;
    place(
        out,
        &digits,
        exp,
        positional,
        if alt { "." } else { "" },
        alt,
        upper,
    );
}

/// A small string on the stack, for the digits of one float.
struct Stack {
    buf: [u8; 48],
    len: usize,
}

impl Default for Stack {
    fn default() -> Self {
        Stack {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl Stack {
    /// The digits of `d.ddde±x` text, and the exponent.
    fn digits(&self) -> (Stack, i32) {
        let text = &self.buf[..self.len];
        let e = text.iter().position(|&c| c == b'e').unwrap_or(text.len());
        let mut d = Stack::default();
        for &c in text[..e].iter().filter(|c| c.is_ascii_digit()) {
            d.buf[d.len] = c;
            d.len += 1;
        }
        if d.len == 0 {
            d.buf[0] = b'0';
            d.len = 1;
        }
        let exp = std::str::from_utf8(&text[(e + 1).min(text.len())..])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (d, exp)
    }
}

impl std::fmt::Write for Stack {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
