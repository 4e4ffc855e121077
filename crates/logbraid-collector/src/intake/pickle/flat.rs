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
use super::machine::{slot, Machine, Memo, MemoWrites, Node, SCALAR_OPS};
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
        let objects = self.objects;
        let mut pairs = Vec::with_capacity(32);
        let scalar = |m: &mut Machine<'a, '_>, op: u8| {
            // A bytearray is an object when modelling them: the arena
            // makes it.
            if !SCALAR_OPS[usize::from(op)] || (objects && op == 0x96) {
                return None;
            }
            m.op_at = m.pos - 1;
            let v = m.scalar(op).ok()?;
            let size = v.scalar_size();
            Some((v, size))
        };
        self.flat(bytes, scalar, |k, v| {
            pairs.push((k, v));
            Some(())
        })?;
        Some(pairs)
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
        self.flat(bytes, plain, |k, v| match k {
            Scalar::Str(k) => pair(k, v),
            _ => None,
        })
    }

    /// Walks a flat dict: `scalar` reads each key and value (and says the
    /// bytes it adds to the result, for [`super::Limits::max_total_bytes`]),
    /// `pair` takes them. `None` as soon as either does, or the shape or a
    /// limit is not met.
    fn flat<'a, T>(
        &self,
        bytes: &'a [u8],
        mut scalar: impl FnMut(&mut Machine<'a, '_>, u8) -> Option<(T, usize)>,
        mut pair: impl FnMut(T, T) -> Option<()>,
    ) -> Option<()> {
        let limits = &self.limits;
        if limits.max_depth == 0 {
            return None;
        }
        let mut m = Machine {
            input: bytes,
            pos: 0,
            op_at: 0,
            limits,
            arena: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Memo::default(),
            objects: false,
            work: 0,
        };
        let mut op = m.byte().ok()?;
        if op == 0x80 {
            if m.byte().ok()? > 5 {
                return None;
            }
            op = m.byte().ok()?;
        }
        if op == 0x95 {
            let len = m.u64_le().ok()?;
            if len > (bytes.len() - m.pos) as u64 {
                return None;
            }
            op = m.byte().ok()?;
        }
        let mut memo = MemoWrites::default();
        if op != b'}' || m.skip_memo(&mut memo)? != b'(' {
            return None;
        }
        let mut pairs = 0usize;
        let mut total = 0usize;
        op = m.byte().ok()?;
        while op != b'u' {
            let (k, size) = scalar(&mut m, op)?;
            total = total.saturating_add(size);
            op = m.skip_memo(&mut memo)?;
            let (v, size) = scalar(&mut m, op)?;
            total = total.saturating_add(size);
            pair(k, v)?;
            pairs += 1;
            op = m.skip_memo(&mut memo)?;
        }
        // At least what the general path charges for this shape: a node,
        // a stack slot and a container item for the dict and each scalar,
        // its text twice (read, then put in the result), the memo, the
        // builder's marks and values.
        let scalars = 2 * pairs;
        let work = (scalars + 1)
            * (slot::<Node<'a>>()
                + slot::<usize>()
                + 3 * std::mem::size_of::<usize>()
                + slot::<(usize, usize)>()
                + slot::<PickleValue<'a>>())
            + 2 * total
            + memo.dense_len * slot::<usize>()
            + memo.sparse * 2 * (std::mem::size_of::<(u64, usize)>() + 1)
            + slot::<usize>();
        let fits = m.byte().ok()? == b'.'
            && memo.count <= limits.max_memo
            && total <= limits.max_total_bytes
            && work <= limits.max_work_bytes
            && scalars < limits.max_elements;
        fits.then_some(())
    }
}

/// Reads the scalar of opcode `op` as [`Decoder::str_dict`] takes it, and
/// its size as [`PickleValue::scalar_size`] counts it; `None` for any
/// other opcode, for text that is not UTF-8 (the general path makes it
/// lossy), and for a `LONG` past 64 bits.
#[inline]
fn plain<'a>(m: &mut Machine<'a, '_>, op: u8) -> Option<(Scalar<'a>, usize)> {
    let v = match op {
        b'N' => Scalar::None,
        0x88 => Scalar::Bool(true),
        0x89 => Scalar::Bool(false),
        b'K' => Scalar::Int(i64::from(m.byte().ok()?)),
        b'M' => Scalar::Int(i64::from(m.u16_le().ok()?)),
        b'J' => Scalar::Int(i64::from(m.i32_le().ok()?)),
        b'G' => Scalar::Float(f64::from_bits(m.u64_le().ok()?.swap_bytes())),
        b'X' => {
            let n = m.u32_le().ok()?;
            let s = text(m.take_len(u64::from(n)).ok()?)?;
            return Some((Scalar::Str(s), s.len()));
        }
        0x8c => {
            let n = m.byte().ok()?;
            let s = text(m.take_len(u64::from(n)).ok()?)?;
            return Some((Scalar::Str(s), s.len()));
        }
        b'L' => {
            let line = m.line().ok()?;
            match m.int_node(line.strip_suffix(b"L").unwrap_or(line)).ok()? {
                PickleValue::Int(n) => Scalar::Int(n),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some((v, 0))
}
