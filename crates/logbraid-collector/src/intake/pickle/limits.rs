//! What one pickle may make the reader build, and the errors it reports.

use std::fmt;

/// Nesting deeper than this is refused whatever [`Limits::max_depth`] says:
/// dropping, comparing and printing a [`PickleValue`] recurse once per
/// level, and Python itself cannot pickle values nested much deeper.
pub const MAX_DEPTH_CAP: usize = 1_000;

/// Decimal integers longer than this are refused (Python's own default
/// limit for converting between `int` and `str`), so that converting one
/// to binary stays cheap.
pub(super) const MAX_DECIMAL_DIGITS: usize = 4_300;

/// Bounds on what one pickle may make the reader build.
///
/// | field | default | what it bounds |
/// |---|---|---|
/// | `max_input` | 16 MiB | length of the pickle |
/// | `max_depth` | 100 | nesting of containers in the result (never above [`MAX_DEPTH_CAP`]) |
/// | `max_elements` | 1,000,000 | values created while decoding, and values in the result |
/// | `max_memo` | 100,000 | entries in the memo |
/// | `max_total_bytes` | 64 MiB | bytes of text, bytes and big integers in the result |
/// | `max_work_bytes` | 64 MiB | working memory: the machine's stack, marks, memo and arena, the builder's work list and values |
///
/// Every limit is checked before the memory it guards is allocated.
///
/// `max_work_bytes` counts what the reader's vectors may come to hold, not
/// what they hold at one instant: every push onto the stack (`DUP` and
/// `GET` included), every `MARK`, every node, memo slot and container item,
/// every task and value of the builder is charged twice its size (a vector
/// that doubles holds at most twice what was pushed), and nothing popped is
/// given back. So a pickle whose charge stays under the limit never made
/// the reader hold more than the limit, whatever its opcodes.
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
    /// Most bytes of working memory one pickle may make the reader use
    /// (see the table above for what is counted).
    pub max_work_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input: 16 << 20,
            max_depth: 100,
            max_elements: 1_000_000,
            max_memo: 100_000,
            max_total_bytes: 64 << 20,
            max_work_bytes: 64 << 20,
        }
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
    /// [`Limits::max_work_bytes`].
    Work,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::Depth => "nesting depth",
            LimitKind::Elements => "element count",
            LimitKind::Memo => "memo size",
            LimitKind::TotalBytes => "total bytes",
            LimitKind::Digits => "decimal digits",
            LimitKind::Work => "working memory",
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

/// The result of a step that may fail on the pickle.
pub(super) type R<T> = Result<T, PickleError>;
