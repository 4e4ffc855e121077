//! A pickle reader that builds plain values and never runs code.
//!
//! Python's `pickle` format is a small stack machine. Most of its opcodes
//! build plain values (numbers, strings, lists, dicts); a handful name a
//! Python callable and ask the reader to import or call it. [`decode`] runs
//! the first kind and rejects a pickle that holds any of the second kind
//! (see [`PickleError::Forbidden`]), so untrusted bytes can be read safely.
//!
//! Every opcode of protocols 0 to 5 that builds a plain value is supported.
//! Values are built in an arena first, because the format shares objects:
//! a list is memoised while still empty and filled afterwards, and a later
//! `GET` must see it filled. The arena is then turned into a
//! [`PickleValue`] tree without recursion, and with the limits of
//! [`Limits`] checked at each step, so a small pickle that references one
//! large value many times cannot make the tree large.
//!
//! Strings and bytes in the result borrow from the input where they can
//! (a [`PickleValue`] lives as long as the bytes it was read from). A
//! [`Decoder`] keeps the arena and the other working memory from one
//! pickle to the next, and reads the shape nearly every `LogRecord` pickle
//! has (one dict of scalars) in a single pass without the arena; for any
//! other input, and for any input that pass would have to refuse, the
//! arena decides, so both give the same result.
//!
//! What follows from rejecting every callable: Python's protocols 0 to 2
//! store `bytes` and `bytearray` by calling a function (`_codecs.encode`,
//! `builtins.bytearray`), and protocols 0 to 3 store sets the same way, so
//! such values are only readable from the protocols that have opcodes for
//! them (3 for `bytes`, 4 for sets, 5 for `bytearray`).
//!
//! ```
//! use logbraid_collector::intake::pickle::{decode, Limits, PickleValue};
//!
//! // pickle.dumps({"a": [1, 2.5]}, protocol=2)
//! let bytes = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00es.";
//! let value = decode(bytes, &Limits::default()).unwrap();
//! assert_eq!(
//!     value,
//!     PickleValue::Dict(vec![(
//!         PickleValue::Str("a".into()),
//!         PickleValue::List(vec![PickleValue::Int(1), PickleValue::Float(2.5)]),
//!     )])
//! );
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// Nesting deeper than this is refused whatever [`Limits::max_depth`] says:
/// dropping, comparing and printing a [`PickleValue`] recurse once per
/// level, and Python itself cannot pickle values nested much deeper.
pub const MAX_DEPTH_CAP: usize = 1_000;

/// Decimal integers longer than this are refused (Python's own default
/// limit for converting between `int` and `str`), so that converting one
/// to binary stays cheap.
const MAX_DECIMAL_DIGITS: usize = 4_300;

/// Bounds on what one pickle may make the reader build.
///
/// | field | default | what it bounds |
/// |---|---|---|
/// | `max_input` | 16 MiB | length of the pickle |
/// | `max_depth` | 100 | nesting of containers in the result (never above [`MAX_DEPTH_CAP`]) |
/// | `max_elements` | 1,000,000 | values created while decoding, and values in the result |
/// | `max_memo` | 100,000 | entries in the memo |
/// | `max_total_bytes` | 64 MiB | bytes of text, bytes and big integers in the result |
///
/// Every limit is checked before the memory it guards is allocated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest pickle accepted, in bytes.
    pub max_input: usize,
    /// Deepest nesting of containers in the result; the top-level value is
    /// at depth 1. Values above [`MAX_DEPTH_CAP`] act as the cap.
    pub max_depth: usize,
    /// Most values the decoder may create, and most values the result may
    /// hold (containers, items, keys and values all count). Both are
    /// checked, because one memoised value can appear many times in the
    /// result while being created once.
    pub max_elements: usize,
    /// Most entries the memo may hold.
    pub max_memo: usize,
    /// Most bytes the result may hold in its strings, byte strings and big
    /// integers, counting each appearance of a shared value.
    pub max_total_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input: 16 << 20,
            max_depth: 100,
            max_elements: 1_000_000,
            max_memo: 100_000,
            max_total_bytes: 64 << 20,
        }
    }
}

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
    fn scalar_size(&self) -> usize {
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
    /// about `budget` bytes and ending with `...` when it stopped early
    /// ([`logbraid_pyfmt::write_repr_lossy`]).
    pub fn write_repr(&self, out: &mut String, budget: usize) {
        logbraid_pyfmt::write_repr_lossy(out, self, budget);
    }
}

fn negate_le(bytes: &mut [u8]) {
    let mut carry = true;
    for b in bytes.iter_mut() {
        let (v, c) = (!*b).overflowing_add(u8::from(carry));
        *b = v;
        carry = c;
    }
}

/// Which limit of [`Limits`] was exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// [`Limits::max_depth`].
    Depth,
    /// [`Limits::max_elements`].
    Elements,
    /// [`Limits::max_memo`].
    Memo,
    /// [`Limits::max_total_bytes`].
    TotalBytes,
    /// The number of digits of a decimal integer (4,300, as in Python).
    Digits,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::Depth => "nesting depth",
            LimitKind::Elements => "element count",
            LimitKind::Memo => "memo size",
            LimitKind::TotalBytes => "total bytes",
            LimitKind::Digits => "decimal digits",
        })
    }
}

/// Why a pickle was not decoded. Every variant but `TooLarge` carries the
/// byte offset of the opcode where decoding stopped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PickleError {
    /// The pickle is longer than [`Limits::max_input`].
    #[error("pickle of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An opcode that imports or calls code, or hands out an external
    /// object: the whole pickle is rejected.
    #[error("opcode {name} at offset {offset} loads or calls code; pickles with it are rejected")]
    Forbidden {
        /// The opcode's name, as Python's `pickletools` spells it.
        name: &'static str,
        /// Offset of the opcode.
        offset: usize,
    },
    /// A byte that is no opcode of protocols 0 to 5.
    #[error("unknown opcode 0x{opcode:02x} at offset {offset}")]
    UnknownOpcode {
        /// The byte.
        opcode: u8,
        /// Its offset.
        offset: usize,
    },
    /// A `PROTO` opcode names a protocol above 5.
    #[error("unsupported pickle protocol {version} at offset {offset}")]
    UnsupportedProtocol {
        /// The protocol number.
        version: u8,
        /// Offset of the `PROTO` opcode.
        offset: usize,
    },
    /// The input ends inside an opcode, or before `STOP`.
    #[error("pickle ends inside the opcode at offset {offset}")]
    Truncated {
        /// Offset of the unfinished opcode (the input length when `STOP`
        /// is missing).
        offset: usize,
    },
    /// A length prefix asks for more bytes than the input has left.
    #[error("opcode at offset {offset} announces {len} bytes but only {remaining} remain")]
    LengthOverrun {
        /// Offset of the opcode.
        offset: usize,
        /// The announced length.
        len: u64,
        /// Bytes left after the prefix.
        remaining: usize,
    },
    /// A limit of [`Limits`] was reached.
    #[error("{kind} limit of {max} exceeded at offset {offset}")]
    Limit {
        /// Which limit.
        kind: LimitKind,
        /// Its value.
        max: usize,
        /// Offset of the opcode being run (for limits on the result, the
        /// `STOP` opcode).
        offset: usize,
    },
    /// A `GET` of a memo entry that was never `PUT`.
    #[error("memo entry {index} read at offset {offset} was never stored")]
    MemoMissing {
        /// The memo index.
        index: u64,
        /// Offset of the opcode.
        offset: usize,
    },
    /// A value refers to itself (a list that contains itself, say), which
    /// a tree cannot show.
    #[error("self-referencing value found when building the result (STOP at offset {offset})")]
    Cycle {
        /// Offset of the `STOP` opcode.
        offset: usize,
    },
    /// Anything else that a well-formed pickle cannot contain: stack
    /// underflow, a missing mark, an operation on the wrong type, a bad
    /// literal.
    #[error("malformed pickle at offset {offset}: {reason}")]
    Malformed {
        /// Offset of the opcode.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
}

/// Decodes one pickle into a [`PickleValue`], never running code, within
/// `limits`.
///
/// Bytes after the `STOP` opcode are ignored, as Python's `pickle.loads`
/// ignores them.
pub fn decode<'a>(bytes: &'a [u8], limits: &Limits) -> Result<PickleValue<'a>, PickleError> {
    Decoder::new(limits.clone()).decode(bytes)
}

/// [`decode`] for many pickles in a row: keeps its working memory from one
/// pickle to the next, so that decoding a stream of small pickles (one
/// per log record) does not allocate it again for each.
#[derive(Debug, Default)]
pub struct Decoder {
    limits: Limits,
    arena: Vec<Node<'static>>,
    stack: Vec<usize>,
    marks: Vec<usize>,
    memo: Memo,
    on_path: Vec<bool>,
    tasks: Vec<Task>,
    values: Vec<PickleValue<'static>>,
}

/// Empties a vector and gives back its allocation for elements of another
/// type of the same size (here: the same type with another lifetime).
/// The standard library collects a mapped `into_iter` in place; the map
/// never runs, as the vector is empty.
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().map(|_| unreachable!("empty")).collect()
}

impl Decoder {
    /// A decoder applying `limits` to every pickle.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            ..Decoder::default()
        }
    }

    /// The limits applied to each pickle.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The shape nearly every LogRecord pickle has, read in one pass
    /// without the arena: a dict filled by one `SETITEMS` with scalar keys
    /// and values, memo writes (which only matter to a later `GET`, which
    /// this shape has none of) skipped. `None` for anything else, or for
    /// anything the general path would refuse (a limit, a bad opcode), so
    /// the general path decides, with the same result as for every other
    /// pickle.
    fn flat_dict<'a>(&self, bytes: &'a [u8]) -> Option<Vec<(PickleValue<'a>, PickleValue<'a>)>> {
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
        let mut memo = 0usize;
        if op != b'}' || m.skip_memo(&mut memo)? != b'(' {
            return None;
        }
        let mut pairs = Vec::with_capacity(32);
        let mut total = 0usize;
        let mut scalar = |m: &mut Machine<'a, '_>, op: u8| -> Option<PickleValue<'a>> {
            if !SCALAR_OPS[usize::from(op)] {
                return None;
            }
            m.op_at = m.pos - 1;
            let v = m.scalar(op).ok()?;
            total = total.saturating_add(v.scalar_size());
            Some(v)
        };
        op = m.byte().ok()?;
        while op != b'u' {
            let k = scalar(&mut m, op)?;
            op = m.skip_memo(&mut memo)?;
            let v = scalar(&mut m, op)?;
            pairs.push((k, v));
            op = m.skip_memo(&mut memo)?;
        }
        let fits = m.byte().ok()? == b'.'
            && memo <= limits.max_memo
            && total <= limits.max_total_bytes
            && 2 * pairs.len() < limits.max_elements;
        fits.then_some(pairs)
    }

    /// Decodes one pickle, as [`decode`] does.
    pub fn decode<'a>(&mut self, bytes: &'a [u8]) -> Result<PickleValue<'a>, PickleError> {
        if bytes.len() > self.limits.max_input {
            return Err(PickleError::TooLarge {
                len: bytes.len(),
                max: self.limits.max_input,
            });
        }
        match self.flat_dict(bytes) {
            Some(pairs) => Ok(PickleValue::Dict(pairs)),
            None => self.general(bytes),
        }
    }

    /// Any pickle, through the arena.
    fn general<'a>(&mut self, bytes: &'a [u8]) -> Result<PickleValue<'a>, PickleError> {
        self.stack.clear();
        self.marks.clear();
        self.memo.clear();
        let mut m = Machine {
            input: bytes,
            pos: 0,
            op_at: 0,
            limits: &self.limits,
            arena: recycle(std::mem::take(&mut self.arena)),
            stack: std::mem::take(&mut self.stack),
            marks: std::mem::take(&mut self.marks),
            memo: std::mem::take(&mut self.memo),
        };
        let result = m.run().and_then(|root| {
            let mut b = Builder {
                arena: &m.arena,
                limits: &self.limits,
                offset: m.op_at,
                on_path: std::mem::take(&mut self.on_path),
                tasks: std::mem::take(&mut self.tasks),
                values: recycle(std::mem::take(&mut self.values)),
            };
            let value = b.build(root);
            self.on_path = b.on_path;
            self.tasks = b.tasks;
            self.values = recycle(b.values);
            value
        });
        self.arena = recycle(m.arena);
        self.stack = m.stack;
        self.marks = m.marks;
        self.memo = m.memo;
        result
    }
}

/// A value in the arena; containers hold arena indices, so that sharing
/// and later mutation behave as in Python.
#[derive(Debug)]
enum Node<'a> {
    /// Anything that is not a container.
    Scalar(PickleValue<'a>),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Set(Vec<usize>),
    FrozenSet(Vec<usize>),
}

struct Machine<'a, 'l> {
    input: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run, for errors.
    op_at: usize,
    limits: &'l Limits,
    arena: Vec<Node<'a>>,
    /// The object stack, as arena indices.
    stack: Vec<usize>,
    /// Stack lengths at each open `MARK`; the stack below the last one is
    /// out of reach until the mark is popped.
    marks: Vec<usize>,
    memo: Memo,
}

/// Memo indices below this are kept in a vector (pickles number their
/// memo entries 0, 1, 2, …); larger ones, which only a hand-made pickle
/// uses, in a map. The vector costs at most 512 KiB.
const DENSE_MEMO: u64 = 1 << 16;

/// The opcodes that make a scalar, run by `Machine::scalar`.
const SCALAR_OPS: [bool; 256] = {
    let mut t = [false; 256];
    let ops = b"NIJKMLFGSTUVXBC\x88\x89\x8a\x8b\x8c\x8d\x8e\x96";
    let mut i = 0;
    while i < ops.len() {
        t[ops[i] as usize] = true;
        i += 1;
    }
    t
};

/// The pickle memo: index → arena node.
#[derive(Debug, Default)]
struct Memo {
    dense: Vec<usize>,
    sparse: HashMap<u64, usize>,
    len: usize,
}

const ABSENT: usize = usize::MAX;

impl Memo {
    fn clear(&mut self) {
        self.dense.clear();
        self.sparse.clear();
        self.len = 0;
    }

    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, index: u64) -> Option<usize> {
        if index < DENSE_MEMO {
            self.dense
                .get(index as usize)
                .copied()
                .filter(|&v| v != ABSENT)
        } else {
            self.sparse.get(&index).copied()
        }
    }

    fn contains_key(&self, index: u64) -> bool {
        self.get(index).is_some()
    }

    fn insert(&mut self, index: u64, node: usize) {
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

type R<T> = Result<T, PickleError>;

impl<'a> Machine<'a, '_> {
    fn malformed<T>(&self, reason: &'static str) -> R<T> {
        Err(PickleError::Malformed {
            offset: self.op_at,
            reason,
        })
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let rest = &self.input[self.pos..];
        if rest.len() < n {
            return Err(PickleError::Truncated { offset: self.op_at });
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    fn byte(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16_le(&mut self) -> R<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32_le(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32_le(&mut self) -> R<i32> {
        Ok(self.u32_le()? as i32)
    }

    fn u64_le(&mut self) -> R<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Takes `len` bytes announced by a length prefix, refusing a length
    /// larger than what is left before anything is allocated.
    fn take_len(&mut self, len: u64) -> R<&'a [u8]> {
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
    fn line(&mut self) -> R<&'a [u8]> {
        let rest = &self.input[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => {
                self.pos += n + 1;
                Ok(&rest[..n])
            }
            None => Err(PickleError::Truncated { offset: self.op_at }),
        }
    }

    fn alloc(&mut self, node: Node<'a>) -> R<usize> {
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

    fn push(&mut self, node: Node<'a>) -> R<()> {
        let i = self.alloc(node)?;
        self.stack.push(i);
        Ok(())
    }

    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> R<usize> {
        if self.stack.len() <= self.fence() {
            return self.malformed("stack underflow");
        }
        Ok(self.stack.pop().unwrap_or_default())
    }

    fn top(&self) -> R<usize> {
        if self.stack.len() <= self.fence() {
            return self.malformed("stack underflow");
        }
        Ok(self.stack[self.stack.len() - 1])
    }

    /// Pops the last mark, returning the stack length it recorded.
    fn pop_mark(&mut self) -> R<usize> {
        match self.marks.pop() {
            Some(m) => Ok(m),
            None => self.malformed("no MARK on the stack"),
        }
    }

    /// Pops the last mark and every item above it.
    fn pop_to_mark(&mut self) -> R<Vec<usize>> {
        let m = self.pop_mark()?;
        Ok(self.stack.split_off(m.min(self.stack.len())))
    }

    /// For the opcodes that add the items above a mark to the container
    /// just below it: pops the mark and returns the container's arena
    /// index and the items.
    fn container_and_items(&mut self) -> R<(usize, Vec<usize>)> {
        let m = self.pop_mark()?;
        if m <= self.fence() || m > self.stack.len() {
            return self.malformed("stack underflow");
        }
        let items = self.stack.split_off(m);
        Ok((self.stack[m - 1], items))
    }

    fn memo_put(&mut self, index: u64) -> R<()> {
        let top = self.top()?;
        if !self.memo.contains_key(index) && self.memo.len() >= self.limits.max_memo {
            return Err(PickleError::Limit {
                kind: LimitKind::Memo,
                max: self.limits.max_memo,
                offset: self.op_at,
            });
        }
        self.memo.insert(index, top);
        Ok(())
    }

    fn memo_get(&mut self, index: u64) -> R<()> {
        match self.memo.get(index) {
            Some(i) => {
                self.stack.push(i);
                Ok(())
            }
            None => Err(PickleError::MemoMissing {
                index,
                offset: self.op_at,
            }),
        }
    }

    fn decimal_index(&self, line: &[u8]) -> R<u64> {
        let t = line.trim_ascii();
        if t.is_empty() || t.len() > 19 || !t.iter().all(u8::is_ascii_digit) {
            return self.malformed("memo index is not a non-negative decimal");
        }
        Ok(t.iter().fold(0u64, |a, &d| a * 10 + u64::from(d - b'0')))
    }

    fn int_node(&self, text: &[u8]) -> R<PickleValue<'static>> {
        let t = text.trim_ascii();
        let (neg, digits) = match t.first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return self.malformed("invalid decimal integer");
        }
        if digits.len() > MAX_DECIMAL_DIGITS {
            return Err(PickleError::Limit {
                kind: LimitKind::Digits,
                max: MAX_DECIMAL_DIGITS,
                offset: self.op_at,
            });
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

    fn float_node(&self, text: &[u8]) -> R<PickleValue<'static>> {
        let t = std::str::from_utf8(text.trim_ascii()).ok();
        match t.and_then(|t| t.parse::<f64>().ok()) {
            Some(f) => Ok(PickleValue::Float(f)),
            None => self.malformed("invalid float literal"),
        }
    }

    fn long_node(bytes: &[u8]) -> PickleValue<'static> {
        le_to_int(bytes)
    }

    fn forbidden<T>(&self, name: &'static str) -> R<T> {
        Err(PickleError::Forbidden {
            name,
            offset: self.op_at,
        })
    }

    /// Runs one opcode that makes a scalar (a number, a string, bytes,
    /// `None` or a bool): one of [`SCALAR_OPS`].
    #[inline(always)]
    fn scalar(&mut self, op: u8) -> R<PickleValue<'a>> {
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

    /// Skips memo writes (`BINPUT`, `LONG_BINPUT`, `MEMOIZE`), counting
    /// them, and returns the next opcode; `None` at the end of the input.
    fn skip_memo(&mut self, count: &mut usize) -> Option<u8> {
        loop {
            let op = *self.input.get(self.pos)?;
            self.pos += match op {
                b'q' => 2,
                b'r' => 5,
                0x94 => 1,
                _ => {
                    self.pos += 1;
                    return Some(op);
                }
            };
            *count += 1;
        }
    }

    /// Runs opcodes up to `STOP`, returning the arena index of the result.
    fn run(&mut self) -> R<usize> {
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
                b'(' => self.marks.push(self.stack.len()), // MARK
                b'.' => return self.pop(),                 // STOP
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
                    self.stack.push(t);
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
                    let items = self.stack.split_off(self.stack.len() - n);
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
                    let pairs = items.chunks_exact(2).map(|p| (p[0], p[1])).collect();
                    self.push(Node::Dict(pairs))?;
                }
                b's' => {
                    let v = self.pop()?; // SETITEM
                    let k = self.pop()?;
                    let d = self.top()?;
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
}

/// A Python 2 `str`: text when it is UTF-8, bytes otherwise.
fn py2_str(bytes: Cow<'_, [u8]>) -> PickleValue<'_> {
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
fn le_to_int(bytes: &[u8]) -> PickleValue<'static> {
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
fn decimal_to_le(negative: bool, digits: &[u8]) -> Vec<u8> {
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

/// Decodes UTF-8 as Python writes it with `surrogatepass`: a lone surrogate
/// (three bytes `ED A0..BF xx`) becomes one U+FFFD, as does any other
/// invalid sequence.
fn utf8_surrogatepass_lossy(b: &[u8]) -> Cow<'_, str> {
    // Most strings in a LogRecord are short ASCII (keys, names, levels),
    // which a plain byte loop checks in a fraction of the general
    // validator's fixed cost.
    if b.len() <= 64 && b.is_ascii() {
        // SAFETY: every byte is below 0x80, so the bytes are ASCII and
        // therefore valid UTF-8.
        return Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(b) });
    }
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
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
fn quoted_escape_decode(line: &[u8]) -> Option<Vec<u8>> {
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

fn hex_value(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = (d as char).to_digit(16)?;
        Some(acc.checked_mul(16)? + v)
    })
}

/// The argument of `UNICODE`: Python's `raw-unicode-escape`, where every
/// byte is the code point of the same number except `\uXXXX` and
/// `\UXXXXXXXX` after an odd number of backslashes.
fn raw_unicode_escape_decode(line: &[u8]) -> Option<String> {
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

/// Turns the arena into a tree, iteratively, checking the limits on the
/// result and refusing cycles.
struct Builder<'a, 'b> {
    arena: &'b [Node<'a>],
    limits: &'b Limits,
    offset: usize,
    on_path: Vec<bool>,
    tasks: Vec<Task>,
    values: Vec<PickleValue<'a>>,
}

#[derive(Debug)]
enum Task {
    Visit(usize, usize),
    Finish(usize),
}

impl<'a> Builder<'a, '_> {
    fn limit(&self, kind: LimitKind, max: usize) -> PickleError {
        PickleError::Limit {
            kind,
            max,
            offset: self.offset,
        }
    }

    fn build(&mut self, root: usize) -> R<PickleValue<'a>> {
        let max_depth = self.limits.max_depth.min(MAX_DEPTH_CAP);
        let on_path = &mut self.on_path;
        on_path.clear();
        on_path.resize(self.arena.len(), false);
        let tasks = &mut self.tasks;
        tasks.clear();
        tasks.push(Task::Visit(root, 1));
        let values = &mut self.values;
        values.clear();
        let mut elements = 0usize;
        let mut bytes = 0usize;
        while let Some(task) = tasks.pop() {
            match task {
                Task::Visit(i, depth) => {
                    elements += 1;
                    if elements > self.limits.max_elements {
                        return Err(self.limit(LimitKind::Elements, self.limits.max_elements));
                    }
                    let node = &self.arena[i];
                    let children: &[usize] = match node {
                        Node::List(c) | Node::Tuple(c) | Node::Set(c) | Node::FrozenSet(c) => c,
                        Node::Dict(_) => &[],
                        Node::Scalar(v) => {
                            bytes = bytes.saturating_add(v.scalar_size());
                            if bytes > self.limits.max_total_bytes {
                                return Err(
                                    self.limit(LimitKind::TotalBytes, self.limits.max_total_bytes)
                                );
                            }
                            values.push(v.clone());
                            continue;
                        }
                    };
                    if depth > max_depth {
                        return Err(self.limit(LimitKind::Depth, max_depth));
                    }
                    if on_path[i] {
                        return Err(PickleError::Cycle {
                            offset: self.offset,
                        });
                    }
                    match flat(self.arena, node, &mut elements, &mut bytes, self.limits) {
                        Ok(Some(v)) => {
                            values.push(v);
                            continue;
                        }
                        Ok(None) => {}
                        Err((kind, max)) => {
                            return Err(PickleError::Limit {
                                kind,
                                max,
                                offset: self.offset,
                            })
                        }
                    }
                    on_path[i] = true;
                    tasks.push(Task::Finish(i));
                    if let Node::Dict(pairs) = node {
                        for &(k, v) in pairs.iter().rev() {
                            tasks.push(Task::Visit(v, depth + 1));
                            tasks.push(Task::Visit(k, depth + 1));
                        }
                    } else {
                        for &c in children.iter().rev() {
                            tasks.push(Task::Visit(c, depth + 1));
                        }
                    }
                }
                Task::Finish(i) => {
                    on_path[i] = false;
                    let node = &self.arena[i];
                    let value = match node {
                        Node::Dict(pairs) => {
                            let items = values.split_off(values.len() - 2 * pairs.len());
                            let mut it = items.into_iter();
                            let mut out = Vec::with_capacity(pairs.len());
                            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                                out.push((k, v));
                            }
                            PickleValue::Dict(out)
                        }
                        Node::Tuple(c) => {
                            PickleValue::Tuple(values.split_off(values.len() - c.len()))
                        }
                        Node::List(c) | Node::Set(c) | Node::FrozenSet(c) => {
                            PickleValue::List(values.split_off(values.len() - c.len()))
                        }
                        _ => continue,
                    };
                    values.push(value);
                }
            }
        }
        Ok(values.pop().unwrap_or(PickleValue::None))
    }
}

/// A container whose items are all scalars, built at once rather than
/// through the task stack (a LogRecord's dict is one); `None` for any
/// other node. Counts elements and bytes in the order the task stack
/// would, so the same limit trips at the same item.
fn flat<'a>(
    arena: &[Node<'a>],
    node: &Node<'a>,
    elements: &mut usize,
    bytes: &mut usize,
    limits: &Limits,
) -> Result<Option<PickleValue<'a>>, (LimitKind, usize)> {
    let is_scalar = |i: &usize| matches!(arena[*i], Node::Scalar(_));
    let mut take = |i: usize| -> Result<PickleValue<'a>, (LimitKind, usize)> {
        *elements += 1;
        if *elements > limits.max_elements {
            return Err((LimitKind::Elements, limits.max_elements));
        }
        let Node::Scalar(v) = &arena[i] else {
            unreachable!("checked by is_scalar")
        };
        *bytes = bytes.saturating_add(v.scalar_size());
        if *bytes > limits.max_total_bytes {
            return Err((LimitKind::TotalBytes, limits.max_total_bytes));
        }
        Ok(v.clone())
    };
    Ok(Some(match node {
        Node::Dict(pairs) if pairs.iter().all(|(k, v)| is_scalar(k) && is_scalar(v)) => {
            let mut out = Vec::with_capacity(pairs.len());
            for &(k, v) in pairs {
                let k = take(k)?;
                out.push((k, take(v)?));
            }
            PickleValue::Dict(out)
        }
        Node::List(c) | Node::Tuple(c) | Node::Set(c) | Node::FrozenSet(c)
            if c.iter().all(is_scalar) =>
        {
            let items = c.iter().map(|&i| take(i)).collect::<Result<Vec<_>, _>>()?;
            match node {
                Node::Tuple(_) => PickleValue::Tuple(items),
                _ => PickleValue::List(items),
            }
        }
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A LogRecord dict as `SocketHandler` pickles it (protocol 1), or in
    /// protocol 4 with `MEMOIZE`; `extra` adds one more pair.
    fn record_pickle(proto4: bool, extra: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        let memo = |p: &mut Vec<u8>, n: u8| {
            if proto4 {
                p.push(0x94);
            } else {
                p.extend([b'q', n]);
            }
        };
        if proto4 {
            p.extend([0x80, 4]);
        }
        p.push(b'}');
        memo(&mut p, 0);
        p.push(b'(');
        let s = |p: &mut Vec<u8>, t: &str| {
            p.push(b'X');
            p.extend((t.len() as u32).to_le_bytes());
            p.extend(t.as_bytes());
        };
        let mut n = 1;
        let mut pair = |p: &mut Vec<u8>, k: &str, v: &[u8]| {
            s(p, k);
            memo(p, n);
            p.extend(v);
            memo(p, n + 1);
            n += 2;
        };
        pair(&mut p, "name", b"X\x05\x00\x00\x00bench");
        pair(&mut p, "msg", b"X\x08\x00\x00\x00caf\xc3\xa9 %s");
        pair(&mut p, "args", b"N");
        pair(&mut p, "levelno", b"K\x14");
        pair(&mut p, "lineno", b"M\x01\x02");
        pair(&mut p, "process", b"J\x01\x02\x03\x04");
        pair(&mut p, "created", b"G\x41\xda\xc4\x1e\x2a\x06\x81\x06");
        pair(&mut p, "thread", b"L140675377642368L\n");
        pair(&mut p, "flag", b"\x88");
        pair(
            &mut p,
            "big",
            b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00",
        );
        pair(&mut p, "blob", b"C\x02\xff\x00");
        p.extend(extra);
        p.extend(b"u.");
        p
    }

    /// The one-pass reading of a flat LogRecord dict gives exactly what
    /// the arena gives, for every prefix of the pickle and at the edge of
    /// every limit; where it declines, the arena decides.
    #[test]
    fn the_flat_path_agrees_with_the_arena() {
        let mut shared = Vec::new();
        shared.extend(b"X\x01\x00\x00\x00k");
        shared.extend(b"h\x01"); // GET: not flat
        for (proto4, extra) in [(false, &b""[..]), (true, &b""[..]), (false, &shared[..])] {
            let full = record_pickle(proto4, extra);
            let mut flat_taken = 0;
            let base = Limits::default();
            let mut limit_sets = vec![base.clone()];
            for n in [21, 22, 23, 24] {
                limit_sets.push(Limits {
                    max_elements: n,
                    ..base.clone()
                });
            }
            for n in [0, 1, 20, 21, 22] {
                limit_sets.push(Limits {
                    max_memo: n,
                    ..base.clone()
                });
            }
            for n in [60, 70, 80] {
                limit_sets.push(Limits {
                    max_total_bytes: n,
                    ..base.clone()
                });
            }
            limit_sets.push(Limits {
                max_depth: 0,
                ..base.clone()
            });
            for limits in limit_sets {
                for end in 0..=full.len() {
                    let b = &full[..end];
                    let mut d = Decoder::new(limits.clone());
                    let general = d.general(b);
                    if let Some(pairs) = d.flat_dict(b) {
                        flat_taken += 1;
                        assert_eq!(Ok(PickleValue::Dict(pairs)), general, "{limits:?} {end}");
                    }
                    assert_eq!(d.decode(b), general, "{limits:?} {end}");
                }
            }
            // The whole pickle takes the flat path unless it has a GET.
            assert_eq!(flat_taken > 0, extra.is_empty());
        }
    }

    fn d(bytes: &[u8]) -> Result<PickleValue<'_>, PickleError> {
        decode(bytes, &Limits::default())
    }

    #[test]
    fn long_payloads_become_int_when_they_fit() {
        assert!(matches!(le_to_int(&[]), PickleValue::Int(0)));
        assert!(matches!(le_to_int(&[0xff]), PickleValue::Int(-1)));
        assert!(matches!(le_to_int(&[0x80, 0x00]), PickleValue::Int(128)));
        assert!(matches!(
            le_to_int(&[0xff, 0xff, 0xff]),
            PickleValue::Int(-1)
        ));
        let max = i64::MAX.to_le_bytes();
        assert!(matches!(le_to_int(&max), PickleValue::Int(i64::MAX)));
        match le_to_int(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0]) {
            PickleValue::BigInt(b) => assert_eq!(b, vec![0, 0, 0, 0, 0, 0, 0, 0x80, 0]),
            _ => panic!("2**63 is a big int"),
        }
    }

    #[test]
    fn decimal_big_ints_match_the_binary_form() {
        assert_eq!(
            decimal_to_le(false, b"9223372036854775808"),
            vec![0, 0, 0, 0, 0, 0, 0, 0x80, 0]
        );
        assert_eq!(
            decimal_to_le(true, b"9223372036854775809"),
            vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff]
        );
        let repr = |v: PickleValue<'_>| {
            let mut s = String::new();
            v.write_repr(&mut s, usize::MAX);
            s
        };
        let le = decimal_to_le(false, b"9223372036854775808");
        assert_eq!(repr(PickleValue::BigInt(le)), "9223372036854775808");
        let digits = "1".repeat(100);
        let le = decimal_to_le(true, digits.as_bytes());
        assert_eq!(repr(PickleValue::BigInt(le)), format!("-{digits}"));
    }

    #[test]
    fn int_text_handles_the_extremes() {
        assert_eq!(
            d(b"I-9223372036854775808\n."),
            Ok(PickleValue::Int(i64::MIN))
        );
        assert_eq!(
            d(b"I9223372036854775807\n."),
            Ok(PickleValue::Int(i64::MAX))
        );
        assert_eq!(
            d(b"L9223372036854775808L\n."),
            Ok(PickleValue::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0x80, 0]))
        );
        assert_eq!(d(b"I01\n."), Ok(PickleValue::Bool(true)));
        assert_eq!(d(b"I00\n."), Ok(PickleValue::Bool(false)));
        assert_eq!(d(b"I0\n."), Ok(PickleValue::Int(0)));
    }

    #[test]
    fn escapes_decode_like_python() {
        assert_eq!(
            quoted_escape_decode(br"'a\'b\\c\n\x41\101\7'"),
            Some(b"a'b\\c\nAA\x07".to_vec())
        );
        assert_eq!(quoted_escape_decode(br"'\q'"), Some(b"\\q".to_vec()));
        assert_eq!(quoted_escape_decode(br"'\x4'"), None);
        assert_eq!(quoted_escape_decode(br"'abc"), None);
        assert_eq!(
            raw_unicode_escape_decode(br"a\u00e9\\u0041\\\u0041\U0001f600").as_deref(),
            Some("a\u{e9}\\\\u0041\\\\A\u{1f600}")
        );
        assert_eq!(
            raw_unicode_escape_decode(b"\xe9").as_deref(),
            Some("\u{e9}")
        );
        assert_eq!(
            raw_unicode_escape_decode(br"\ud800").as_deref(),
            Some("\u{fffd}")
        );
        assert_eq!(raw_unicode_escape_decode(br"\u12"), None);
    }

    #[test]
    fn lone_surrogates_become_one_replacement_character() {
        assert_eq!(utf8_surrogatepass_lossy(b"a\xed\xb3\xbfb"), "a\u{fffd}b");
        assert_eq!(utf8_surrogatepass_lossy(b"\xff"), "\u{fffd}");
        assert_eq!(utf8_surrogatepass_lossy(b"ok\xe2\x82"), "ok\u{fffd}");
    }

    #[test]
    fn repr_is_cut_at_the_budget() {
        let v = PickleValue::List(vec![PickleValue::Str("x".repeat(100).into()); 3]);
        let mut s = String::new();
        v.write_repr(&mut s, 10);
        assert_eq!(s, "['xxxxxxxx...");
        let mut s = String::new();
        PickleValue::Tuple(vec![PickleValue::Int(1)]).write_repr(&mut s, 100);
        assert_eq!(s, "(1,)");
    }
}
