//! The pickle stack machine: runs the opcodes into an arena of nodes.

use std::borrow::Cow;
use std::collections::HashMap;

use super::codecs::{
    decimal_to_le, le_to_int, py2_str, quoted_escape_decode, raw_unicode_escape_decode,
    utf8_surrogatepass_lossy,
};
use super::limits::{LimitKind, Limits, PickleError, MAX_DECIMAL_DIGITS, R};
use super::objects::{self, CallKind};
use super::value::PickleValue;

/// A value in the arena; containers hold arena indices, so that sharing
/// and later mutation behave as in Python.
#[derive(Debug)]
pub(super) enum Node<'a> {
    /// Anything that is not a container.
    Scalar(PickleValue<'a>),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Set(Vec<usize>),
    FrozenSet(Vec<usize>),
    /// A global named by `GLOBAL`, `STACK_GLOBAL` or `INST` (only when
    /// modelling objects): its module, name, opcode and offset.
    Global(Cow<'a, str>, Cow<'a, str>, &'static str, usize),
    /// A call of `func` with `args` (a tuple), and the state a later
    /// `BUILD` gave the result; nothing is called.
    Call {
        kind: CallKind,
        func: usize,
        args: usize,
        state: Option<usize>,
        op: &'static str,
        at: usize,
    },
}

pub(super) struct Machine<'a, 'l> {
    pub(super) input: &'a [u8],
    pub(super) pos: usize,
    /// Offset of the opcode being run, for errors.
    pub(super) op_at: usize,
    pub(super) limits: &'l Limits,
    pub(super) arena: Vec<Node<'a>>,
    /// The object stack, as arena indices.
    pub(super) stack: Vec<usize>,
    /// Stack lengths at each open `MARK`; the stack below the last one is
    /// out of reach until the mark is popped.
    pub(super) marks: Vec<usize>,
    pub(super) memo: Memo,
    /// Whether globals and calls are kept as data (see
    /// [`super::Decoder::modelling_objects`]) rather than refused.
    pub(super) objects: bool,
    /// Working memory charged so far, against [`Limits::max_work_bytes`].
    pub(super) work: usize,
}

/// What one slot of a vector costs against [`Limits::max_work_bytes`]:
/// twice its size, as a vector that doubles holds at most twice what was
/// pushed onto it.
pub(super) const fn slot<T>() -> usize {
    2 * std::mem::size_of::<T>()
}

/// Memo indices below this are kept in a vector (pickles number their
/// memo entries 0, 1, 2, …); larger ones, which only a hand-made pickle
/// uses, in a map. The vector costs at most 512 KiB.
pub(super) const DENSE_MEMO: u64 = 1 << 16;

/// The opcodes that make a scalar, run by `Machine::scalar`.
pub(super) const SCALAR_OPS: [bool; 256] = {
    let mut t = [false; 256];
    let ops = b"NIJKMLFGSTUVXBC\x88\x89\x8a\x8b\x8c\x8d\x8e\x96";
    let mut i = 0;
    while i < ops.len() {
        t[ops[i] as usize] = true;
        i += 1;
    }
    t
};

/// The memo writes [`Machine::skip_memo`] skipped: how many, and what the
/// memo would have cost (its dense part's length, its sparse entries).
#[derive(Debug, Default)]
pub(super) struct MemoWrites {
    pub(super) count: usize,
    pub(super) dense_len: usize,
    pub(super) sparse: usize,
}

/// The pickle memo: index → arena node.
#[derive(Debug, Default)]
pub(super) struct Memo {
    pub(super) dense: Vec<usize>,
    pub(super) sparse: HashMap<u64, usize>,
    pub(super) len: usize,
}

pub(super) const ABSENT: usize = usize::MAX;

impl Memo {
    pub(super) fn clear(&mut self) {
        self.dense.clear();
        self.sparse.clear();
        self.len = 0;
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn get(&self, index: u64) -> Option<usize> {
        if index < DENSE_MEMO {
            self.dense
                .get(index as usize)
                .copied()
                .filter(|&v| v != ABSENT)
        } else {
            self.sparse.get(&index).copied()
        }
    }

    pub(super) fn contains_key(&self, index: u64) -> bool {
        self.get(index).is_some()
    }

    pub(super) fn insert(&mut self, index: u64, node: usize) {
        if index < DENSE_MEMO {
            let i = index as usize;
            if i >= self.dense.len() {
                self.dense.resize(i + 1, ABSENT);
            }
            if self.dense[i] == ABSENT {
                self.len += 1;
            }
            self.dense[i] = node;
        } else if self.sparse.insert(index, node).is_none() {
            self.len += 1;
        }
    }
}

impl<'a> Machine<'a, '_> {
    pub(super) fn malformed<T>(&self, reason: &'static str) -> R<T> {
        Err(PickleError::Malformed {
            offset: self.op_at,
            reason,
        })
    }

    #[inline]
    pub(super) fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let rest = &self.input[self.pos..];
        if rest.len() < n {
            return Err(PickleError::Truncated { offset: self.op_at });
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    #[inline]
    pub(super) fn byte(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    #[inline]
    pub(super) fn u16_le(&mut self) -> R<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    #[inline]
    pub(super) fn u32_le(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    #[inline]
    pub(super) fn i32_le(&mut self) -> R<i32> {
        Ok(self.u32_le()? as i32)
    }

    #[inline]
    pub(super) fn u64_le(&mut self) -> R<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Takes `len` bytes announced by a length prefix, refusing a length
    /// larger than what is left before anything is allocated.
    #[inline]
    pub(super) fn take_len(&mut self, len: u64) -> R<&'a [u8]> {
        let remaining = self.input.len() - self.pos;
        match usize::try_from(len) {
            Ok(n) if n <= remaining => self.take(n),
            _ => Err(PickleError::LengthOverrun {
                offset: self.op_at,
                len,
                remaining,
            }),
        }
    }

    /// A newline-terminated argument of the text opcodes, without the `\n`.
    pub(super) fn line(&mut self) -> R<&'a [u8]> {
        let rest = &self.input[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => {
                self.pos += n + 1;
                Ok(&rest[..n])
            }
            None => Err(PickleError::Truncated { offset: self.op_at }),
        }
    }

    /// Charges `bytes` of working memory, before it is allocated.
    pub(super) fn charge(&mut self, bytes: usize) -> R<()> {
        self.work = self.work.saturating_add(bytes);
        if self.work > self.limits.max_work_bytes {
            return Err(PickleError::Limit {
                kind: LimitKind::Work,
                max: self.limits.max_work_bytes,
                offset: self.op_at,
            });
        }
        Ok(())
    }

    /// Pushes an arena index onto the stack (`DUP`, `GET`, a new node).
    pub(super) fn push_index(&mut self, i: usize) -> R<()> {
        self.charge(slot::<usize>())?;
        self.stack.push(i);
        Ok(())
    }

    pub(super) fn alloc(&mut self, node: Node<'a>) -> R<usize> {
        self.charge(slot::<Node<'a>>())?;
        if self.arena.len() >= self.limits.max_elements {
            return Err(PickleError::Limit {
                kind: LimitKind::Elements,
                max: self.limits.max_elements,
                offset: self.op_at,
            });
        }
        self.arena.push(node);
        Ok(self.arena.len() - 1)
    }

    pub(super) fn push(&mut self, node: Node<'a>) -> R<()> {
        let i = self.alloc(node)?;
        self.push_index(i)
    }

    pub(super) fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    pub(super) fn pop(&mut self) -> R<usize> {
        if self.stack.len() <= self.fence() {
            return self.malformed("stack underflow");
        }
        Ok(self.stack.pop().unwrap_or_default())
    }

    pub(super) fn top(&self) -> R<usize> {
        if self.stack.len() <= self.fence() {
            return self.malformed("stack underflow");
        }
        Ok(self.stack[self.stack.len() - 1])
    }

    /// Pops the last mark, returning the stack length it recorded.
    pub(super) fn pop_mark(&mut self) -> R<usize> {
        match self.marks.pop() {
            Some(m) => Ok(m),
            None => self.malformed("no MARK on the stack"),
        }
    }

    /// Pops the last mark and every item above it.
    pub(super) fn pop_to_mark(&mut self) -> R<Vec<usize>> {
        let m = self.pop_mark()?;
        let at = m.min(self.stack.len());
        self.split_stack(at)
    }

    /// The stack from `at` on, in a vector of its own (charged: it is
    /// allocated to its exact length).
    pub(super) fn split_stack(&mut self, at: usize) -> R<Vec<usize>> {
        self.charge((self.stack.len() - at) * std::mem::size_of::<usize>())?;
        Ok(self.stack.split_off(at))
    }

    /// For the opcodes that add the items above a mark to the container
    /// just below it: pops the mark and returns the container's arena
    /// index and the items.
    pub(super) fn container_and_items(&mut self) -> R<(usize, Vec<usize>)> {
        let m = self.pop_mark()?;
        if m <= self.fence() || m > self.stack.len() {
            return self.malformed("stack underflow");
        }
        let items = self.split_stack(m)?;
        // The container's own vector grows by as many items.
        self.charge(items.len() * slot::<(usize, usize)>())?;
        Ok((self.stack[m - 1], items))
    }

    pub(super) fn memo_put(&mut self, index: u64) -> R<()> {
        let top = self.top()?;
        if !self.memo.contains_key(index) && self.memo.len() >= self.limits.max_memo {
            return Err(PickleError::Limit {
                kind: LimitKind::Memo,
                max: self.limits.max_memo,
                offset: self.op_at,
            });
        }
        let grows = if index < DENSE_MEMO {
            (index as usize + 1).saturating_sub(self.memo.dense.len()) * slot::<usize>()
        } else if self.memo.contains_key(index) {
            0
        } else {
            // A hash map entry: key, value and control byte, doubled.
            2 * (std::mem::size_of::<(u64, usize)>() + 1)
        };
        self.charge(grows)?;
        self.memo.insert(index, top);
        Ok(())
    }

    pub(super) fn memo_get(&mut self, index: u64) -> R<()> {
        match self.memo.get(index) {
            Some(i) => self.push_index(i),
            None => Err(PickleError::MemoMissing {
                index,
                offset: self.op_at,
            }),
        }
    }

    pub(super) fn decimal_index(&self, line: &[u8]) -> R<u64> {
        let t = line.trim_ascii();
        if t.is_empty() || t.len() > 19 || !t.iter().all(u8::is_ascii_digit) {
            return self.malformed("memo index is not a non-negative decimal");
        }
        Ok(t.iter().fold(0u64, |a, &d| a * 10 + u64::from(d - b'0')))
    }

    pub(super) fn int_node(&self, text: &[u8]) -> R<PickleValue<'static>> {
        int_value(text, self.op_at)
    }

    pub(super) fn float_node(&self, text: &[u8]) -> R<PickleValue<'static>> {
        let t = std::str::from_utf8(text.trim_ascii()).ok();
        match t.and_then(|t| t.parse::<f64>().ok()) {
            Some(f) => Ok(PickleValue::Float(f)),
            None => self.malformed("invalid float literal"),
        }
    }

    pub(super) fn long_node(bytes: &[u8]) -> PickleValue<'static> {
        le_to_int(bytes)
    }

    pub(super) fn forbidden<T>(&self, name: &'static str) -> R<T> {
        Err(PickleError::Forbidden {
            name,
            offset: self.op_at,
        })
    }

    /// Runs one opcode that makes a scalar (a number, a string, bytes,
    /// `None` or a bool): one of [`SCALAR_OPS`].
    #[inline(always)]
    pub(super) fn scalar(&mut self, op: u8) -> R<PickleValue<'a>> {
        Ok(match op {
            // --- numbers ---
            b'N' => PickleValue::None,
            0x88 => PickleValue::Bool(true),
            0x89 => PickleValue::Bool(false),
            b'I' => {
                let line = self.line()?; // INT
                match line {
                    b"01" => PickleValue::Bool(true),
                    b"00" => PickleValue::Bool(false),
                    _ => self.int_node(line)?,
                }
            }
            b'J' => {
                let v = self.i32_le()?; // BININT
                PickleValue::Int(i64::from(v))
            }
            b'K' => {
                let v = self.byte()?; // BININT1
                PickleValue::Int(i64::from(v))
            }
            b'M' => {
                let v = self.u16_le()?; // BININT2
                PickleValue::Int(i64::from(v))
            }
            b'L' => {
                let line = self.line()?; // LONG
                let digits = line.strip_suffix(b"L").unwrap_or(line);
                self.int_node(digits)?
            }
            0x8a => {
                let n = self.byte()?; // LONG1
                let b = self.take_len(u64::from(n))?;
                Self::long_node(b)
            }
            0x8b => {
                let n = self.i32_le()?; // LONG4
                if n < 0 {
                    return self.malformed("LONG4 with a negative byte count");
                }
                let b = self.take_len(n as u64)?;
                Self::long_node(b)
            }
            b'F' => {
                let line = self.line()?; // FLOAT
                self.float_node(line)?
            }
            b'G' => {
                let b = self.take(8)?; // BINFLOAT, big endian
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                PickleValue::Float(f64::from_be_bytes(a))
            }

            // --- strings ---
            b'S' => {
                let line = self.line()?; // STRING
                let bytes = match quoted_escape_decode(line) {
                    Some(b) => b,
                    None => return self.malformed("invalid STRING literal"),
                };
                py2_str(Cow::Owned(bytes))
            }
            b'T' => {
                let n = self.i32_le()?; // BINSTRING
                if n < 0 {
                    return self.malformed("BINSTRING with a negative byte count");
                }
                let b = self.take_len(n as u64)?;
                py2_str(Cow::Borrowed(b))
            }
            b'U' => {
                let n = self.byte()?; // SHORT_BINSTRING
                let b = self.take_len(u64::from(n))?;
                py2_str(Cow::Borrowed(b))
            }
            b'V' => {
                let line = self.line()?; // UNICODE (raw-unicode-escape)
                let s = match raw_unicode_escape_decode(line) {
                    Some(s) => s,
                    None => return self.malformed("invalid UNICODE literal"),
                };
                PickleValue::Str(Cow::Owned(s))
            }
            b'X' => {
                let n = self.u32_le()?; // BINUNICODE
                let b = self.take_len(u64::from(n))?;
                PickleValue::Str(utf8_surrogatepass_lossy(b))
            }
            0x8c => {
                let n = self.byte()?; // SHORT_BINUNICODE
                let b = self.take_len(u64::from(n))?;
                PickleValue::Str(utf8_surrogatepass_lossy(b))
            }
            0x8d => {
                let n = self.u64_le()?; // BINUNICODE8
                let b = self.take_len(n)?;
                PickleValue::Str(utf8_surrogatepass_lossy(b))
            }
            b'B' => {
                let n = self.u32_le()?; // BINBYTES
                let b = self.take_len(u64::from(n))?;
                PickleValue::Bytes(Cow::Borrowed(b))
            }
            b'C' => {
                let n = self.byte()?; // SHORT_BINBYTES
                let b = self.take_len(u64::from(n))?;
                PickleValue::Bytes(Cow::Borrowed(b))
            }
            0x8e | 0x96 => {
                let n = self.u64_le()?; // BINBYTES8, BYTEARRAY8
                let b = self.take_len(n)?;
                PickleValue::Bytes(Cow::Borrowed(b))
            }
            _ => return self.malformed("not a scalar opcode"),
        })
    }

    /// [`skip_memo`] at the machine's position.
    #[inline]
    pub(super) fn skip_memo(&mut self, w: &mut MemoWrites) -> Option<u8> {
        skip_memo(self.input, &mut self.pos, w)
    }

    /// Runs opcodes up to `STOP`, returning the arena index of the result.
    pub(super) fn run(&mut self) -> R<usize> {
        loop {
            self.op_at = self.pos;
            let Some(&op) = self.input.get(self.pos) else {
                return Err(PickleError::Truncated {
                    offset: self.input.len(),
                });
            };
            self.pos += 1;
            match op {
                // --- structure ---
                b'(' => {
                    self.charge(slot::<usize>())?; // MARK
                    self.marks.push(self.stack.len());
                }
                b'.' => return self.pop(), // STOP
                b'0' => {
                    // POP: an empty stack above a mark pops the mark, as
                    // CPython does.
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => {
                    self.pop_to_mark()?; // POP_MARK
                }
                b'2' => {
                    let t = self.top()?; // DUP
                    self.push_index(t)?;
                }
                0x80 => {
                    let v = self.byte()?; // PROTO
                    if v > 5 {
                        return Err(PickleError::UnsupportedProtocol {
                            version: v,
                            offset: self.op_at,
                        });
                    }
                }
                0x95 => {
                    // FRAME: only a hint for buffered readers; the length
                    // must still fit in what is left.
                    let len = self.u64_le()?;
                    let remaining = self.input.len() - self.pos;
                    if len > remaining as u64 {
                        return Err(PickleError::LengthOverrun {
                            offset: self.op_at,
                            len,
                            remaining,
                        });
                    }
                }

                op if SCALAR_OPS[usize::from(op)] => {
                    let v = self.scalar(op)?;
                    // Text decoded from escapes and big integers are
                    // allocated; borrowed text is charged too, to keep the
                    // rule simple (it is at most the input's length).
                    self.charge(v.scalar_size())?;
                    let v = match v {
                        // BYTEARRAY8: a bytearray, which prints apart
                        // from bytes.
                        PickleValue::Bytes(b) if op == 0x96 && self.objects => {
                            objects::bytearray(&b).into()
                        }
                        v => v,
                    };
                    self.push(Node::Scalar(v))?;
                }

                // --- tuples ---
                b')' => self.push(Node::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_to_mark()?; // TUPLE
                    self.push(Node::Tuple(items))?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84); // TUPLE1, TUPLE2, TUPLE3
                    if self.stack.len() < self.fence() + n {
                        return self.malformed("stack underflow");
                    }
                    let items = self.split_stack(self.stack.len() - n)?;
                    self.push(Node::Tuple(items))?;
                }

                // --- lists and sets ---
                b']' => self.push(Node::List(Vec::new()))?,
                b'l' => {
                    let items = self.pop_to_mark()?; // LIST
                    self.push(Node::List(items))?;
                }
                b'a' => {
                    let v = self.pop()?; // APPEND
                    let l = self.top()?;
                    self.charge(slot::<usize>())?;
                    match &mut self.arena[l] {
                        Node::List(items) => items.push(v),
                        _ => return self.malformed("APPEND to something that is not a list"),
                    }
                }
                b'e' => {
                    let (l, items) = self.container_and_items()?; // APPENDS
                    match &mut self.arena[l] {
                        Node::List(list) => list.extend(items),
                        _ => return self.malformed("APPENDS to something that is not a list"),
                    }
                }
                0x8f => self.push(Node::Set(Vec::new()))?, // EMPTY_SET
                0x90 => {
                    let (s, items) = self.container_and_items()?; // ADDITEMS
                    match &mut self.arena[s] {
                        Node::Set(set) => set.extend(items),
                        _ => return self.malformed("ADDITEMS to something that is not a set"),
                    }
                }
                0x91 => {
                    let items = self.pop_to_mark()?; // FROZENSET
                    self.push(Node::FrozenSet(items))?;
                }

                // --- dicts ---
                b'}' => self.push(Node::Dict(Vec::new()))?,
                b'd' => {
                    let items = self.pop_to_mark()?; // DICT
                    if items.len() % 2 != 0 {
                        return self.malformed("odd number of items for DICT");
                    }
                    self.charge(items.len() / 2 * std::mem::size_of::<(usize, usize)>())?;
                    let pairs = items.chunks_exact(2).map(|p| (p[0], p[1])).collect();
                    self.push(Node::Dict(pairs))?;
                }
                b's' => {
                    let v = self.pop()?; // SETITEM
                    let k = self.pop()?;
                    let d = self.top()?;
                    self.charge(slot::<(usize, usize)>())?;
                    match &mut self.arena[d] {
                        Node::Dict(pairs) => pairs.push((k, v)),
                        _ => return self.malformed("SETITEM on something that is not a dict"),
                    }
                }
                b'u' => {
                    let (d, items) = self.container_and_items()?; // SETITEMS
                    if items.len() % 2 != 0 {
                        return self.malformed("odd number of items for SETITEMS");
                    }
                    match &mut self.arena[d] {
                        Node::Dict(pairs) => {
                            pairs.extend(items.chunks_exact(2).map(|p| (p[0], p[1])))
                        }
                        _ => return self.malformed("SETITEMS on something that is not a dict"),
                    }
                }

                // --- memo ---
                b'p' => {
                    let line = self.line()?; // PUT
                    let i = self.decimal_index(line)?;
                    self.memo_put(i)?;
                }
                b'q' => {
                    let i = self.byte()?; // BINPUT
                    self.memo_put(u64::from(i))?;
                }
                b'r' => {
                    let i = self.u32_le()?; // LONG_BINPUT
                    self.memo_put(u64::from(i))?;
                }
                0x94 => {
                    let i = self.memo.len() as u64; // MEMOIZE
                    self.memo_put(i)?;
                }
                b'g' => {
                    let line = self.line()?; // GET
                    let i = self.decimal_index(line)?;
                    self.memo_get(i)?;
                }
                b'h' => {
                    let i = self.byte()?; // BINGET
                    self.memo_get(u64::from(i))?;
                }
                b'j' => {
                    let i = self.u32_le()?; // LONG_BINGET
                    self.memo_get(u64::from(i))?;
                }

                // --- everything that names, calls or fetches code ---
                b'c' | 0x93 | b'R' | b'b' | b'i' | b'o' | 0x81 | 0x92 if self.objects => {
                    self.object_op(op)?
                }
                b'c' => return self.forbidden("GLOBAL"),
                0x93 => return self.forbidden("STACK_GLOBAL"),
                b'R' => return self.forbidden("REDUCE"),
                b'b' => return self.forbidden("BUILD"),
                b'i' => return self.forbidden("INST"),
                b'o' => return self.forbidden("OBJ"),
                0x81 => return self.forbidden("NEWOBJ"),
                0x92 => return self.forbidden("NEWOBJ_EX"),
                0x82 => return self.forbidden("EXT1"),
                0x83 => return self.forbidden("EXT2"),
                0x84 => return self.forbidden("EXT4"),
                b'P' => return self.forbidden("PERSID"),
                b'Q' => return self.forbidden("BINPERSID"),
                0x97 => return self.forbidden("NEXT_BUFFER"),
                0x98 => return self.forbidden("READONLY_BUFFER"),

                other => {
                    return Err(PickleError::UnknownOpcode {
                        opcode: other,
                        offset: self.op_at,
                    })
                }
            }
        }
    }

    /// The opcodes that name or call code, kept as nodes: nothing is
    /// imported or called.
    fn object_op(&mut self, op: u8) -> R<()> {
        let at = self.op_at;
        match op {
            b'c' | b'i' => {
                let name = if op == b'c' { "GLOBAL" } else { "INST" };
                let module = self.text_line()?;
                let class = self.text_line()?;
                let g = self.alloc(Node::Global(module, class, name, at))?;
                if op == b'c' {
                    self.push_index(g)?;
                } else {
                    let items = self.pop_to_mark()?;
                    let args = self.alloc(Node::Tuple(items))?;
                    self.call(CallKind::New, g, args, name)?;
                }
            }
            0x93 => {
                let class = self.pop()?;
                let module = self.pop()?;
                match (&self.arena[module], &self.arena[class]) {
                    (Node::Scalar(PickleValue::Str(m)), Node::Scalar(PickleValue::Str(n))) => {
                        let node = Node::Global(m.clone(), n.clone(), "STACK_GLOBAL", at);
                        self.push(node)?;
                    }
                    _ => return self.malformed("STACK_GLOBAL of something that is not text"),
                }
            }
            b'R' | 0x81 => {
                let args = self.pop()?;
                let func = self.pop()?;
                let (kind, name) = if op == b'R' {
                    (CallKind::Reduce, "REDUCE")
                } else {
                    (CallKind::New, "NEWOBJ")
                };
                self.call(kind, func, args, name)?;
            }
            0x92 => {
                self.pop()?; // keyword arguments: the result is a placeholder
                let args = self.pop()?;
                let func = self.pop()?;
                self.call(CallKind::New, func, args, "NEWOBJ_EX")?;
            }
            b'o' => {
                let mut items = self.pop_to_mark()?;
                if items.is_empty() {
                    return self.malformed("OBJ without a class");
                }
                let func = items.remove(0);
                let args = self.alloc(Node::Tuple(items))?;
                self.call(CallKind::New, func, args, "OBJ")?;
            }
            _ => {
                let new_state = self.pop()?; // BUILD
                let obj = self.top()?;
                match &mut self.arena[obj] {
                    Node::Call { state, .. } => *state = Some(new_state),
                    _ => return self.forbidden("BUILD"),
                }
            }
        }
        Ok(())
    }

    fn call(&mut self, kind: CallKind, func: usize, args: usize, op: &'static str) -> R<()> {
        let at = self.op_at;
        self.push(Node::Call {
            kind,
            func,
            args,
            state: None,
            op,
            at,
        })
    }

    /// A line naming a module or a class.
    fn text_line(&mut self) -> R<Cow<'a, str>> {
        let line = self.line()?;
        match std::str::from_utf8(line) {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(_) => self.malformed("a global's name is not UTF-8"),
        }
    }
}

/// A decimal integer's text (`INT`, `LONG`) as a value, for the opcode at
/// `offset`.
pub(super) fn int_value(text: &[u8], offset: usize) -> R<PickleValue<'static>> {
    let t = text.trim_ascii();
    let (neg, digits) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(PickleError::Malformed {
            offset,
            reason: "invalid decimal integer",
        });
    }
    if digits.len() > MAX_DECIMAL_DIGITS {
        return Err(PickleError::Limit {
            kind: LimitKind::Digits,
            max: MAX_DECIMAL_DIGITS,
            offset,
        });
    }
    if digits.len() <= 18 {
        // Below 10^18: no overflow to watch for (a thread id in protocol 1
        // is such a number, in every record).
        let v = digits
            .iter()
            .fold(0i64, |a, &d| a * 10 + i64::from(d - b'0'));
        return Ok(PickleValue::Int(if neg { -v } else { v }));
    }
    // Accumulate negatively so that i64::MIN fits.
    let mut acc: i64 = 0;
    let mut fits = true;
    for &d in digits {
        match acc
            .checked_mul(10)
            .and_then(|a| a.checked_sub(i64::from(d - b'0')))
        {
            Some(a) => acc = a,
            None => {
                fits = false;
                break;
            }
        }
    }
    if fits {
        if neg {
            return Ok(PickleValue::Int(acc));
        }
        if let Some(v) = acc.checked_neg() {
            return Ok(PickleValue::Int(v));
        }
    }
    Ok(PickleValue::BigInt(decimal_to_le(neg, digits)))
}

/// Skips memo writes (`BINPUT`, `LONG_BINPUT`, `MEMOIZE`) from `*pos`,
/// counting them, and returns the next opcode (`*pos` then after it);
/// `None` at the end of the input.
#[inline]
pub(super) fn skip_memo(input: &[u8], pos: &mut usize, w: &mut MemoWrites) -> Option<u8> {
    loop {
        let op = *input.get(*pos)?;
        let index = match op {
            b'q' => u64::from(*input.get(*pos + 1)?),
            b'r' => {
                let b = input.get(*pos + 1..*pos + 5)?;
                u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            // At most the number of writes before it.
            0x94 => w.count as u64,
            _ => {
                *pos += 1;
                return Some(op);
            }
        };
        *pos += match op {
            b'q' => 2,
            b'r' => 5,
            _ => 1,
        };
        w.count += 1;
        if index < DENSE_MEMO {
            w.dense_len = w.dense_len.max(index as usize + 1);
        } else {
            w.sparse += 1;
        }
    }
}
