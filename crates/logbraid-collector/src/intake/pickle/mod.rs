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
//! [`decode`] only reads such values from the protocols that have opcodes
//! for them (3 for `bytes`, 4 for sets, 5 for `bytearray`).
//! [`Decoder::modelling_objects`] reads them from every protocol, and
//! with them the standard classes a log record's `extra` often holds
//! (`datetime`, `Decimal`, `UUID`, paths …): it keeps the globals and
//! calls as data, still importing and calling nothing, and recognises
//! the exact shapes CPython writes for those classes (the table is at
//! `objects::call`); an instance of any other class becomes a
//! placeholder [`Object`].
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

mod build;
mod codecs;
mod flat;
mod limits;
mod machine;
mod objects;
#[cfg(test)]
mod tests;
mod value;

pub(crate) use flat::Scalar;
pub use limits::{LimitKind, Limits, PickleError, MAX_DEPTH_CAP};
pub use objects::{Object, OBJECT_TEXT_MAX};
pub(crate) use value::bigint_u64;
pub use value::PickleValue;

use build::Builder;
use build::Task;
use machine::{Machine, Memo, Node};

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
    objects: bool,
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

    /// A decoder that reads globals and calls as data instead of refusing
    /// them: values of the standard classes Python's pickler writes by
    /// naming a global (`datetime`, `Decimal`, `UUID`, `set`, `bytes` in
    /// protocols 0 to 2, `pathlib` paths …) become
    /// [`PickleValue::Object`]s showing their `str()` and `repr()`, and
    /// anything else a placeholder `<module.Name object>` (see
    /// [`Object::unmodelled`]). Nothing is imported or called: the opcodes
    /// `GLOBAL`, `STACK_GLOBAL`, `INST`, `OBJ`, `REDUCE`, `NEWOBJ`,
    /// `NEWOBJ_EX` and `BUILD` only build nodes, and the known classes are
    /// recognised by their exact `(module, name)` and the shape of their
    /// arguments. `BUILD` on anything but a call, the extension registry
    /// (`EXT1`, `EXT2`, `EXT4`), persistent ids and out-of-band buffers
    /// are still refused. Sets (from any protocol) are objects too, shown
    /// as `{1, 2}`. Every [`Limits`] bound applies, the rendered text
    /// counting towards [`Limits::max_total_bytes`].
    pub fn modelling_objects(limits: Limits) -> Self {
        Decoder {
            objects: true,
            ..Decoder::new(limits)
        }
    }

    /// The limits applied to each pickle.
    pub fn limits(&self) -> &Limits {
        &self.limits
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
            objects: self.objects,
            work: 0,
        };
        let result = m.run().and_then(|root| {
            let mut b = Builder {
                arena: &m.arena,
                limits: &self.limits,
                offset: m.op_at,
                on_path: std::mem::take(&mut self.on_path),
                tasks: std::mem::take(&mut self.tasks),
                values: recycle(std::mem::take(&mut self.values)),
                objects: self.objects,
                work: m.work,
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
        if self.retained_bytes() > Decoder::KEEP_BYTES {
            // After a large pickle, give the memory back rather than hold
            // it for the rest of the stream.
            *self = Decoder {
                limits: std::mem::take(&mut self.limits),
                objects: self.objects,
                ..Decoder::default()
            };
        }
        result
    }

    /// Working memory kept from one pickle to the next, at most: more is
    /// given back after the pickle that needed it.
    pub const KEEP_BYTES: usize = 64 << 10;

    /// Bytes of working memory the decoder keeps between pickles (the
    /// capacity of its vectors and maps), at most [`Decoder::KEEP_BYTES`]
    /// after each pickle.
    pub fn retained_bytes(&self) -> usize {
        use std::mem::size_of;
        self.arena.capacity() * size_of::<Node<'static>>()
            + (self.stack.capacity() + self.marks.capacity() + self.memo.dense.capacity())
                * size_of::<usize>()
            + self.memo.sparse.capacity() * (size_of::<(u64, usize)>() + 1)
            + self.on_path.capacity()
            + self.tasks.capacity() * size_of::<Task>()
            + self.values.capacity() * size_of::<PickleValue<'static>>()
    }

    /// Sets the limits applied to the next pickles.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }
}
