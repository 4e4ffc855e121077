//! The text codecs of protocols 0 to 2 (escapes, Python 2 strings) and the
//! integer encodings.

use std::borrow::Cow;

use super::value::{negate_le, PickleValue};

/// A Python 2 `str`: text when it is UTF-8, bytes otherwise.
pub(super) fn py2_str(bytes: Cow<'_, [u8]>) -> PickleValue<'_> {
    match bytes {
        Cow::Borrowed(b) => match std::str::from_utf8(b) {
            Ok(s) => PickleValue::Str(Cow::Borrowed(s)),
            Err(_) => PickleValue::Bytes(Cow::Borrowed(b)),
        },
        Cow::Owned(v) => match String::from_utf8(v) {
            Ok(s) => PickleValue::Str(Cow::Owned(s)),
            Err(e) => PickleValue::Bytes(Cow::Owned(e.into_bytes())),
        },
    }
}

/// Little-endian two's complement (the `LONG1`/`LONG4` payload) to a node:
/// `Int` when it fits in 64 bits, otherwise `BigInt` in minimal form.
pub(super) fn le_to_int(bytes: &[u8]) -> PickleValue<'static> {
    let mut b = bytes;
    let negative = b.last().is_some_and(|&x| x & 0x80 != 0);
    let sign_byte = if negative { 0xff } else { 0x00 };
    // Drop redundant sign bytes: a high byte equal to the sign byte whose
    // neighbour below carries the same sign bit.
    while b.len() > 1 && b[b.len() - 1] == sign_byte && (b[b.len() - 2] & 0x80 != 0) == negative {
        b = &b[..b.len() - 1];
    }
    if b.len() <= 8 {
        let mut a = [sign_byte; 8];
        a[..b.len()].copy_from_slice(b);
        return PickleValue::Int(i64::from_le_bytes(a));
    }
    PickleValue::BigInt(b.to_vec())
}

/// Decimal digits (already checked) to minimal little-endian two's
/// complement.
pub(super) fn decimal_to_le(negative: bool, digits: &[u8]) -> Vec<u8> {
    // Magnitude in 32-bit limbs, least significant first.
    // Nine digits at a time: multiply by 10^k and add the chunk.
    let mut limbs: Vec<u32> = vec![0];
    for chunk in digits.chunks(9) {
        let scale = 10u64.pow(chunk.len() as u32);
        let mut carry = chunk
            .iter()
            .fold(0u64, |a, &d| a * 10 + u64::from(d - b'0'));
        for l in limbs.iter_mut() {
            let v = u64::from(*l) * scale + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            limbs.push(carry as u32);
        }
    }
    let mut bytes: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    // One zero byte on top keeps the sign bit clear before negating.
    bytes.push(0);
    if negative {
        negate_le(&mut bytes);
    }
    match le_to_int(&bytes) {
        PickleValue::BigInt(b) => b,
        // Callers only get here when the value overflowed i64.
        _ => bytes,
    }
}

/// The bytes as text, when they are UTF-8. Most strings in a LogRecord
/// are short ASCII (keys, names, levels), which one pass over the bytes
/// settles in a fraction of the general validator's fixed cost.
#[inline]
pub(super) fn utf8(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: every byte is below 0x80, so the bytes are ASCII and
        // therefore valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(b) });
    }
    std::str::from_utf8(b).ok()
}

/// Decodes UTF-8 as Python writes it with `surrogatepass`: a lone surrogate
/// (three bytes `ED A0..BF xx`) becomes one U+FFFD, as does any other
/// invalid sequence.
pub(super) fn utf8_surrogatepass_lossy(b: &[u8]) -> Cow<'_, str> {
    match utf8(b) {
        Some(s) => Cow::Borrowed(s),
        None => {
            let mut out = String::with_capacity(b.len());
            let mut rest = b;
            while !rest.is_empty() {
                match std::str::from_utf8(rest) {
                    Ok(s) => {
                        out.push_str(s);
                        break;
                    }
                    Err(e) => {
                        let good = e.valid_up_to();
                        out.push_str(std::str::from_utf8(&rest[..good]).unwrap_or_default());
                        out.push('\u{fffd}');
                        let bad = &rest[good..];
                        let skip = if bad.len() >= 3
                            && bad[0] == 0xed
                            && (0xa0..=0xbf).contains(&bad[1])
                            && (0x80..=0xbf).contains(&bad[2])
                        {
                            3
                        } else {
                            e.error_len().unwrap_or(bad.len())
                        };
                        rest = &bad[skip..];
                    }
                }
            }
            Cow::Owned(out)
        }
    }
}

/// The argument of `STRING`: a quoted Python 2 literal, decoded like
/// `codecs.escape_decode`.
pub(super) fn quoted_escape_decode(line: &[u8]) -> Option<Vec<u8>> {
    let line = line.trim_ascii_end();
    if line.len() < 2 {
        return None;
    }
    let q = line[0];
    if (q != b'\'' && q != b'"') || line[line.len() - 1] != q {
        return None;
    }
    let body = &line[1..line.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *body.get(i)?;
        i += 1;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match body.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let h = body.get(i..i + 2)?;
                let v = hex_value(h)?;
                out.push(v as u8);
                i += 2;
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

pub(super) fn hex_value(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = (d as char).to_digit(16)?;
        Some(acc.checked_mul(16)? + v)
    })
}

/// The argument of `UNICODE`: Python's `raw-unicode-escape`, where every
/// byte is the code point of the same number except `\uXXXX` and
/// `\UXXXXXXXX` after an odd number of backslashes.
pub(super) fn raw_unicode_escape_decode(line: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        if c != b'\\' {
            out.push(char::from(c));
            i += 1;
            continue;
        }
        let run_start = i;
        while i < line.len() && line[i] == b'\\' {
            i += 1;
        }
        let run = i - run_start;
        let escape = run % 2 == 1 && matches!(line.get(i), Some(b'u') | Some(b'U'));
        let literal = if escape { run - 1 } else { run };
        for _ in 0..literal {
            out.push('\\');
        }
        if !escape {
            continue;
        }
        let width = if line[i] == b'u' { 4 } else { 8 };
        i += 1;
        let digits = line.get(i..i + width)?;
        let v = hex_value(digits)?;
        if v > 0x10ffff {
            return None;
        }
        out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
        i += width;
    }
    Some(out)
}
