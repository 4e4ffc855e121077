//! `msg % args` made on the writer's thread: the `Logger` call copies the
//! message's format and its arguments raw into the record, and the writer
//! formats them with logbraid-pyfmt, the code the call would have run.
//!
//! A call takes this way only when [`pyfmt::certain`] vouches that the
//! format cannot fail (plain `%s`/`%r`/`%d`… directives, one per argument,
//! each a scalar it takes): an error must be reported on the caller's
//! thread, as `logging` does, which the writer cannot do. Everything else
//! is formatted by the caller, as before.
//!
//! The values, after the format (a `u32` length and its UTF-8):
//!
//! ```text
//! 0  None        1  False      2  True
//! 3  int         i64, little-endian
//! 4  float       f64 bits, little-endian
//! 5  str         u32 length, UTF-8
//! 6  str         u32 length, bytes that may not be UTF-8 (Value::Str)
//! 7  int         i128, little-endian (outside the i64 range)
//! ```

use logbraid::macros::Buf;
use logbraid_pyfmt::{self as pyfmt, Kind, Plain, Value};

use crate::cpython::Values;

const NONE: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const TEXT: u8 = 5;
const BYTES: u8 = 6;
const WIDE: u8 = 7;

/// Most arguments a deferred call carries (more are formatted by the
/// caller).
const MAX_ARGS: usize = 16;

/// Whether `fmt % tuple(values)` may be left to the writer, `plain` being
/// `Plain::of(fmt)` (kept by the caller for formats it sees again).
pub(crate) fn deferrable(fmt: &str, plain: Option<Plain>, values: &[Value<'_>]) -> bool {
    let Some(plain) = plain else {
        return false;
    };
    if values.len() > MAX_ARGS || fmt.len() > u32::MAX as usize {
        return false;
    }
    let mut kinds = [Kind::None; MAX_ARGS];
    for (k, v) in kinds.iter_mut().zip(values) {
        let Some(kind) = Kind::of(v) else {
            return false;
        };
        *k = kind;
    }
    plain.takes(&kinds[..values.len()])
}

fn put_bytes(out: &mut impl Buf, tag: Option<u8>, b: &[u8]) {
    if let Some(tag) = tag {
        out.put(&[tag]);
    }
    out.put(&(b.len() as u32).to_le_bytes());
    out.put(b);
}

/// Appends the encoding of `fmt` and `values` (which [`deferrable`]
/// accepted) to `out`: a vector, or a record's room in its queue.
pub(crate) fn encode(fmt: &str, values: &[Value<'_>], out: &mut impl Buf) {
    put_bytes(out, None, fmt.as_bytes());
    for v in values {
        match *v {
            Value::None => out.put(&[NONE]),
            Value::Bool(b) => out.put(&[if b { TRUE } else { FALSE }]),
            Value::Int(i) => match i64::try_from(i) {
                Ok(i) => {
                    out.put(&[INT]);
                    out.put(&i.to_le_bytes());
                }
                Err(_) => {
                    out.put(&[WIDE]);
                    out.put(&i.to_le_bytes());
                }
            },
            Value::Float(f) => {
                out.put(&[FLOAT]);
                out.put(&f.to_bits().to_le_bytes());
            }
            Value::Text(t) => put_bytes(out, Some(TEXT), t.as_bytes()),
            Value::Str(s) => put_bytes(out, Some(BYTES), s),
            // `certain` takes no other kind.
            _ => out.put(&[NONE]),
        }
    }
}

/// The number of bytes [`encode`] writes: the encoding itself, counted.
pub(crate) fn encoded_len(fmt: &str, values: &[Value<'_>]) -> usize {
    struct Count(usize);
    impl Buf for Count {
        #[inline(always)]
        fn put(&mut self, bytes: &[u8]) {
            self.0 += bytes.len();
        }
    }
    let mut n = Count(0);
    encode(fmt, values, &mut n);
    n.0
}

/// The writer's half for a message formatted already: its text, as given
/// (not known to be plain: the layouts look).
pub(crate) fn verbatim(bytes: &[u8], out: &mut Vec<u8>) -> bool {
    out.extend_from_slice(bytes);
    false
}

/// Reads an encoding back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        self.take(n)
    }

    fn value(&mut self) -> Option<Value<'a>> {
        Some(match self.array::<1>()?[0] {
            NONE => Value::None,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            INT => Value::Int(i128::from(i64::from_le_bytes(self.array()?))),
            WIDE => Value::Int(i128::from_le_bytes(self.array()?)),
            FLOAT => Value::Float(f64::from_bits(u64::from_le_bytes(self.array()?))),
            TEXT => Value::Text(std::str::from_utf8(self.bytes()?).ok()?),
            BYTES => Value::Str(self.bytes()?),
            _ => return None,
        })
    }
}

/// The writer's half ([`logbraid::Logger::log_values`]'s `format`): the
/// message of an encoding [`encode`] wrote, appended to `out` (not known
/// to be plain: the layouts look).
pub(crate) fn format(bytes: &[u8], out: &mut Vec<u8>) -> bool {
    let mut r = Reader(bytes);
    let Some(fmt) = r.bytes().and_then(|f| std::str::from_utf8(f).ok()) else {
        // Only a record cut short (over 4 GiB) reads wrong.
        out.extend_from_slice(b"<message cut short>");
        return false;
    };
    let mut values = Values::new();
    while !r.0.is_empty() {
        let Some(v) = r.value() else {
            break;
        };
        values.push(v);
    }
    let values = values.as_slice();
    // Formatted straight into `out` when it holds text (it is empty: the
    // writer hands over a cleared buffer).
    let mut text = String::from_utf8(std::mem::take(out)).unwrap_or_else(|e| {
        *out = e.into_bytes();
        String::new()
    });
    if pyfmt::format(fmt, &Value::Tuple(values), &mut text, usize::MAX).is_err() {
        // `deferrable` vouched it would not fail; should it, the format
        // is the message, as `logging` writes it when `%` fails.
        text.clear();
        text.push_str(fmt);
    }
    if out.is_empty() {
        *out = text.into_bytes();
    } else {
        out.extend_from_slice(text.as_bytes());
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of value survives the encoding, and the writer's message
    /// is what formatting on the caller's thread gives.
    #[test]
    fn the_writer_formats_what_the_caller_would_have() {
        let long: Vec<Value<'_>> = (0..16).map(|i| Value::Int(i128::from(i))).collect();
        let long_fmt = "%d ".repeat(16);
        let cases: Vec<(&str, Vec<Value<'_>>)> = vec![
            (
                "w%d request %s served in %d ms",
                vec![Value::Int(0), Value::Int(12), Value::Int(-3)],
            ),
            (
                "%s|%r|%a|%s|%s|%d|%i",
                vec![
                    Value::Text("é'x"),
                    Value::Text("é'x"),
                    Value::Text("é"),
                    Value::None,
                    Value::Float(0.1),
                    Value::Bool(true),
                    Value::Int(i128::from(i64::MIN)),
                ],
            ),
            (
                "%s %s %%",
                vec![Value::Int(i128::MAX), Value::Str(b"\xff ok")],
            ),
            (&long_fmt, long),
        ];
        let too_many: Vec<Value<'_>> = vec![Value::Int(1); MAX_ARGS + 1];
        let many = "%d".repeat(MAX_ARGS + 1);
        assert!(!deferrable(&many, Plain::of(&many), &too_many));
        for (fmt, values) in cases {
            assert!(deferrable(fmt, Plain::of(fmt), &values), "{fmt}");
            let mut want = String::new();
            pyfmt::format(fmt, &Value::Tuple(&values), &mut want, usize::MAX).unwrap();
            let mut encoded = Vec::new();
            encode(fmt, &values, &mut encoded);
            assert_eq!(encoded.len(), encoded_len(fmt, &values), "{fmt}");
            let mut got = Vec::new();
            format(&encoded, &mut got);
            assert_eq!(String::from_utf8(got).unwrap(), want);
            // Appended after what `out` already holds.
            let mut got = b"> ".to_vec();
            format(&encoded, &mut got);
            assert_eq!(String::from_utf8(got).unwrap(), format!("> {want}"));
        }
    }
}
