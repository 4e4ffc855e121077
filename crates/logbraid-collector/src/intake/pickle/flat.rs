//! The shape nearly every LogRecord pickle has, read in one pass without
//! the arena: a dict filled by one `SETITEMS` with scalar keys and values,
//! memo writes (which only matter to a later `GET`, which this shape has
//! none of) skipped.
//!
//! Both readings here decline (`None`) anything else, and anything the
//! general path would refuse (a limit, a bad opcode), so the general path
//! decides, with the same result as for every other pickle. Where they
//! accept a pickle, [`Decoder::decode`] gives a [`PickleValue::Dict`] of
//! exactly the pairs they read.

use super::codecs::utf8 as text;
use super::machine::{int_value, skip_memo, slot, Machine, Memo, MemoWrites, Node, SCALAR_OPS};
use super::{Decoder, PickleValue};

/// A plain value of a flat dict, borrowed from the pickle: what
/// [`Decoder::str_dict`] reads in place of a [`PickleValue`] (the one it
/// stands for is said for each).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Scalar<'a> {
    /// [`PickleValue::None`].
    None,
    /// [`PickleValue::Bool`].
    Bool(bool),
    /// [`PickleValue::Int`].
    Int(i64),
    /// [`PickleValue::Float`].
    Float(f64),
    /// [`PickleValue::Str`], borrowed.
    Str(&'a str),
}

impl<'a> From<Scalar<'a>> for PickleValue<'a> {
    fn from(v: Scalar<'a>) -> PickleValue<'a> {
        match v {
            Scalar::None => PickleValue::None,
            Scalar::Bool(b) => PickleValue::Bool(b),
            Scalar::Int(i) => PickleValue::Int(i),
            Scalar::Float(f) => PickleValue::Float(f),
            Scalar::Str(s) => PickleValue::Str(s.into()),
        }
    }
}

impl Decoder {
    /// Any flat dict of scalars, each read as the general path reads it.
    pub(super) fn flat_dict<'a>(
        &self,
        bytes: &'a [u8],
    ) -> Option<Vec<(PickleValue<'a>, PickleValue<'a>)>> {
        let mut memo = MemoWrites::default();
        let start = self.flat_start(bytes, &mut memo)?;
        let mut m = Machine {
            input: bytes,
            pos: start,
            op_at: 0,
            limits: &self.limits,
            arena: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Memo::default(),
            objects: false,
            work: 0,
        };
        let objects = self.objects;
        let mut pairs = Vec::with_capacity(32);
        let mut total = 0usize;
        let mut scalar = |m: &mut Machine<'a, '_>, op: u8| {
            // A bytearray is an object when modelling them: the arena
            // makes it.
            if !SCALAR_OPS[usize::from(op)] || (objects && op == 0x96) {
                return None;
            }
            m.op_at = m.pos - 1;
            let v = m.scalar(op).ok()?;
            total = total.saturating_add(v.scalar_size());
            Some(v)
        };
        let mut op = m.byte().ok()?;
        while op != b'u' {
            let k = scalar(&mut m, op)?;
            op = m.skip_memo(&mut memo)?;
            let v = scalar(&mut m, op)?;
            pairs.push((k, v));
            op = m.skip_memo(&mut memo)?;
        }
        let fits = self.flat_fits(bytes.get(m.pos), pairs.len(), total, &memo);
        fits.then_some(pairs)
    }

    /// A flat dict whose keys are all text and whose values are all
    /// `None`, a bool, an int of 64 bits, a float or text (and any text
    /// valid UTF-8), which is what `SocketHandler` pickles a LogRecord
    /// into, read without making any value: `pair` is handed each key and
    /// value in order. `None` when the pickle is anything else or `pair`
    /// says `None`; then what `pair` was handed means nothing. Where it
    /// gives `Some`, [`decode`](Self::decode) gives the
    /// [`PickleValue::Dict`] of these pairs.
    pub(crate) fn str_dict<'a>(
        &self,
        bytes: &'a [u8],
        mut pair: impl FnMut(&'a str, Scalar<'a>) -> Option<()>,
    ) -> Option<()> {
        if bytes.len() > self.limits.max_input {
            return None;
        }
        let mut memo = MemoWrites::default();
        let mut pos = self.flat_start(bytes, &mut memo)?;
        let (mut pairs, mut total) = (0usize, 0usize);
        let mut op = *bytes.get(pos)?;
        pos += 1;
        while op != b'u' {
            // Keys are text, nearly always BINUNICODE.
            let key = match op {
                b'X' => {
                    let n = u32::from_le_bytes(*bytes.get(pos..)?.first_chunk()?);
                    pos += 4;
                    take_text(bytes, &mut pos, n as usize)?
                }
                0x8c => {
                    let n = *bytes.get(pos)?;
                    pos += 1;
                    take_text(bytes, &mut pos, usize::from(n))?
                }
                _ => return None,
            };
            op = skip_memo(bytes, &mut pos, &mut memo)?;
            let value = plain(bytes, &mut pos, op)?;
            if let Scalar::Str(s) = value {
                total += s.len();
            }
            total += key.len();
            pair(key, value)?;
            pairs += 1;
            op = skip_memo(bytes, &mut pos, &mut memo)?;
        }
        self.flat_fits(bytes.get(pos), pairs, total, &memo)
            .then_some(())
    }

    /// Where the pairs of a flat dict start: after an optional `PROTO` (up
    /// to 5) and `FRAME` (no longer than what follows), then
    /// `EMPTY_DICT`, memo writes and `MARK`.
    fn flat_start(&self, bytes: &[u8], memo: &mut MemoWrites) -> Option<usize> {
        if self.limits.max_depth == 0 {
            return None;
        }
        let mut pos = 0;
        let mut next = || {
            let op = *bytes.get(pos)?;
            pos += 1;
            Some(op)
        };
        let mut op = next()?;
        if op == 0x80 {
            if next()? > 5 {
                return None;
            }
            op = next()?;
        }
        if op == 0x95 {
            let len = u64::from_le_bytes(*bytes.get(pos..)?.first_chunk()?);
            pos += 8;
            if len > (bytes.len() - pos) as u64 {
                return None;
            }
            op = *bytes.get(pos)?;
            pos += 1;
        }
        if op != b'}' || skip_memo(bytes, &mut pos, memo)? != b'(' {
            return None;
        }
        Some(pos)
    }

    /// Whether a flat dict of `pairs` pairs holding `total` bytes (by
    /// [`PickleValue::scalar_size`]), with `memo` writes, whose `SETITEMS`
    /// is followed by `stop`, is whole and within the limits the general
    /// path would hold it to.
    fn flat_fits(&self, stop: Option<&u8>, pairs: usize, total: usize, memo: &MemoWrites) -> bool {
        let limits = &self.limits;
        // At least what the general path charges for this shape: a node,
        // a stack slot and a container item for the dict and each scalar,
        // its text twice (read, then put in the result), the memo, the
        // builder's marks and values.
        let scalars = 2 * pairs;
        let work = (scalars + 1)
            * (slot::<Node<'_>>()
                + slot::<usize>()
                + 3 * std::mem::size_of::<usize>()
                + slot::<(usize, usize)>()
                + slot::<PickleValue<'_>>())
            + 2 * total
            + memo.dense_len * slot::<usize>()
            + memo.sparse * 2 * (std::mem::size_of::<(u64, usize)>() + 1)
            + slot::<usize>();
        stop == Some(&b'.')
            && memo.count <= limits.max_memo
            && total <= limits.max_total_bytes
            && work <= limits.max_work_bytes
            && scalars < limits.max_elements
    }
}

/// Takes `n` bytes of text at `*pos`: `None` when there are fewer, or when
/// they are not UTF-8 (the general path makes such text lossy).
#[inline]
fn take_text<'a>(bytes: &'a [u8], pos: &mut usize, n: usize) -> Option<&'a str> {
    let b = bytes.get(*pos..)?.get(..n)?;
    *pos += n;
    text(b)
}

/// Reads the scalar of opcode `op` at `*pos` as [`Decoder::str_dict`]
/// takes it; `None` for any other opcode, for text that is not UTF-8,
/// and for a `LONG` past 64 bits.
#[inline]
fn plain<'a>(bytes: &'a [u8], pos: &mut usize, op: u8) -> Option<Scalar<'a>> {
    let at = *pos;
    let rest = bytes.get(at..)?;
    let (v, used) = match op {
        b'X' => {
            let n = u32::from_le_bytes(*rest.first_chunk()?) as usize;
            *pos += 4;
            return take_text(bytes, pos, n).map(Scalar::Str);
        }
        b'N' => (Scalar::None, 0),
        b'K' => (Scalar::Int(i64::from(*rest.first()?)), 1),
        b'M' => (
            Scalar::Int(i64::from(u16::from_le_bytes(*rest.first_chunk()?))),
            2,
        ),
        b'J' => (
            Scalar::Int(i64::from(i32::from_le_bytes(*rest.first_chunk()?))),
            4,
        ),
        b'G' => (Scalar::Float(f64::from_be_bytes(*rest.first_chunk()?)), 8),
        0x88 => (Scalar::Bool(true), 0),
        0x89 => (Scalar::Bool(false), 0),
        0x8c => {
            let n = *rest.first()?;
            *pos += 1;
            return take_text(bytes, pos, usize::from(n)).map(Scalar::Str);
        }
        b'L' => {
            // The offset only names the opcode in an error, which is
            // not kept.
            let n = rest.iter().position(|&b| b == b'\n')?;
            let line = &rest[..n];
            match int_value(line.strip_suffix(b"L").unwrap_or(line), at).ok()? {
                PickleValue::Int(i) => (Scalar::Int(i), n + 1),
                _ => return None,
            }
        }
        _ => return None,
    };
    *pos += used;
    Some(v)
}
