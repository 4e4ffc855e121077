//! The values a pickle holds, and their Python `repr`.

use std::borrow::Cow;

use super::objects::Object;

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
    /// A value of a class (a `datetime`, a `Decimal`, a `set` …) or a
    /// placeholder for one the reader does not know, read without running
    /// code; only [`super::Decoder::modelling_objects`] makes them.
    Object(Box<Object>),
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
            PickleValue::Object(o) => o.type_name(),
        }
    }

    /// Bytes a scalar adds to the result, for [`Limits::max_total_bytes`].
    pub(super) fn scalar_size(&self) -> usize {
        match self {
            PickleValue::Str(s) => s.len(),
            PickleValue::Bytes(b) => b.len(),
            PickleValue::BigInt(b) => b.len(),
            PickleValue::Object(o) => o.size(),
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
            PickleValue::BigInt(b) => bigint_u64(b),
            _ => None,
        }
    }

    /// Writes Python's `repr()` of the value into `out`, stopping after
    /// about `budget` bytes and ending with `...` when it stopped early
    /// ([`logbraid_pyfmt::write_repr_lossy`]).
    pub fn write_repr(&self, out: &mut String, budget: usize) {
        logbraid_pyfmt::write_repr_lossy(out, self, budget);
    }
}

/// A [`PickleValue::BigInt`]'s bytes as an unsigned 64-bit integer, when
/// it is one.
pub(crate) fn bigint_u64(b: &[u8]) -> Option<u64> {
    // Minimal two's complement: a u64 above i64::MAX needs nine bytes,
    // the ninth being the zero sign byte.
    if b.len() == 9 && b[8] == 0 {
        let mut le = [0u8; 8];
        le.copy_from_slice(&b[..8]);
        Some(u64::from_le_bytes(le))
    } else {
        None
    }
}

pub(super) fn negate_le(bytes: &mut [u8]) {
    let mut carry = true;
    for b in bytes.iter_mut() {
        let (v, c) = (!*b).overflowing_add(u8::from(carry));
        *b = v;
        carry = c;
    }
}
