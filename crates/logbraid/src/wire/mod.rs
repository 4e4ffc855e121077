//! The native wire protocol, as a codec that does no I/O.
//!
//! Clients that forward records, the embedded threaded collector and the
//! tokio collector all share this module: it turns frames into bytes and
//! bytes into frames, and holds the collector's deduplication rule. Sockets,
//! timers and threads belong to the callers. `PROTOCOL.md` at the root of the
//! repository is the specification; this module is its reference
//! implementation.
//!
//! | piece | role |
//! |---|---|
//! | [`encode_hello`], [`encode_welcome`], [`encode_ack`], [`encode_error`], [`encode_ping`], [`encode_pong`] | build one frame into a `Vec<u8>` |
//! | [`BatchEncoder`] | appends [`Record`](crate::Record)s into a reusable buffer, then finishes a `BATCH` frame |
//! | [`FrameReader`] | buffers bytes from a stream and hands out complete, validated [`Frame`]s |
//! | [`frame_len`] + [`decode`] | the same in two steps, for callers that own their buffer (`BytesMut`) |
//! | [`Dedup`] | the collector's rule for resent batches: which records to write, which to skip |
//! | [`ServerSession`] | the collector's side of one connection: handshake, frame order, dedup, acks |
//!
//! Decoding never panics, never allocates, and checks a frame's declared
//! length against the limit before waiting for its bytes. A decoded batch
//! is validated as a whole before any record is handed out, so a collector
//! writes all of a batch or none of it.
//!
//! # Example
//!
//! ```
//! use logbraid::wire::{self, BatchEncoder, Frame, FrameReader, Hello, Push};
//! use logbraid::{Fields, Level, Record, Source};
//!
//! // Client: a hello, then one batch of one record.
//! let mut out = Vec::new();
//! let hello = Hello {
//!     versions: wire::SUPPORTED_VERSIONS,
//!     client_id: "web-1/api",
//!     epoch: 7,
//!     host: "web-1",
//!     pid: 4242,
//!     program: "api",
//!     token: b"",
//! };
//! wire::encode_hello(&hello, &mut out).unwrap();
//! let me = Source::current();
//! let record = Record::new(Level::Info, "api::http", b"GET / 200", &me)
//!     .with_timestamp(1_700_000_000_000_000_000)
//!     .with_thread_id(1)
//!     .with_thread_name("main");
//! let mut batch = BatchEncoder::default();
//! assert_eq!(batch.push(&record), Push::Added);
//! batch.finish(1, &mut out).unwrap();
//!
//! // Collector: frames come out as the bytes arrive, in any pieces.
//! let mut reader = FrameReader::default();
//! let (a, b) = out.split_at(10);
//! reader.push(a);
//! assert!(reader.next_frame().unwrap().is_none());
//! reader.push(b);
//! let Some(Frame::Hello(h)) = reader.next_frame().unwrap() else { panic!() };
//! let source = h.source();
//! assert_eq!(h.negotiate(), Ok(1));
//! let Some(Frame::Batch(batch)) = reader.next_frame().unwrap() else { panic!() };
//! assert_eq!((batch.first_seq(), batch.len()), (1, 1));
//! for r in batch.records(&source) {
//!     assert_eq!(r.message, b"GET / 200");
//! }
//! ```

use std::fmt;

mod dedup;
mod frame;
mod record;
mod session;

pub use dedup::{Admit, Dedup};
pub use frame::{
    decode, encode_ack, encode_error, encode_hello, encode_ping, encode_pong, encode_welcome,
    frame_len, token_matches, Frame, FrameReader, Hello,
};
pub use record::{Batch, BatchEncoder, Push, Records};
pub use session::{encode_refusal, Closed, Holders, Peer, ServerSession, Step, MAX_SOURCE_TEXT};

/// The protocol version this module speaks.
pub const VERSION: u8 = 1;

/// Every version this module speaks, for [`Hello::versions`].
pub const SUPPORTED_VERSIONS: &[u8] = &[VERSION];

/// The default limit on a frame's length field (1 MiB). Collectors accept
/// at least this much; clients send no more unless the collector's
/// `WELCOME` allows it.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// Bytes before a frame's payload: the `u32` length, version and type.
pub const FRAME_HEADER_LEN: usize = 6;

/// The smallest limit a [`BatchEncoder`] accepts: room for one record whose
/// every name is cut to 255 bytes, so any record can be sent.
pub const MIN_BATCH_FRAME: usize = 4096;

/// Longest client id, in bytes.
pub const MAX_CLIENT_ID: usize = 255;

/// Longest message an [`encode_error`] frame carries; longer ones are cut.
pub const MAX_ERROR_MESSAGE: usize = 1024;

/// The version both sides speak: the highest of `offered` that this module
/// supports, or `None` when there is none.
pub fn negotiate(offered: &[u8]) -> Option<u8> {
    offered
        .iter()
        .copied()
        .filter(|v| SUPPORTED_VERSIONS.contains(v))
        .max()
}

/// The kind of a frame: its type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameType {
    /// Client → collector: who the client is.
    Hello = 1,
    /// Collector → client: accepted, and where to resume.
    Welcome = 2,
    /// Client → collector: records with their first sequence number.
    Batch = 3,
    /// Collector → client: everything up to a sequence number is written.
    Ack = 4,
    /// Either way, last frame before closing: why.
    Error = 5,
    /// Either way: are you there?
    Ping = 6,
    /// Either way: the answer to a `PING`.
    Pong = 7,
}

impl FrameType {
    /// The type of a type byte, or `None` for an unknown one.
    pub const fn from_u8(v: u8) -> Option<FrameType> {
        Some(match v {
            1 => FrameType::Hello,
            2 => FrameType::Welcome,
            3 => FrameType::Batch,
            4 => FrameType::Ack,
            5 => FrameType::Error,
            6 => FrameType::Ping,
            7 => FrameType::Pong,
            _ => return None,
        })
    }

    /// The type byte.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Upper-case name, as `PROTOCOL.md` writes it.
    pub const fn as_str(self) -> &'static str {
        match self {
            FrameType::Hello => "HELLO",
            FrameType::Welcome => "WELCOME",
            FrameType::Batch => "BATCH",
            FrameType::Ack => "ACK",
            FrameType::Error => "ERROR",
            FrameType::Ping => "PING",
            FrameType::Pong => "PONG",
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The code of an `ERROR` frame.
///
/// A number rather than an enum so that codes from newer peers survive
/// decoding; the known ones are the associated constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// The token in `HELLO` is missing or wrong.
    pub const BAD_TOKEN: ErrorCode = ErrorCode(1);
    /// No version in common, or a frame carries a version not negotiated.
    pub const UNSUPPORTED_VERSION: ErrorCode = ErrorCode(2);
    /// A frame's payload does not follow the specification.
    pub const MALFORMED: ErrorCode = ErrorCode(3);
    /// A frame's length is above the receiver's limit.
    pub const FRAME_TOO_LARGE: ErrorCode = ErrorCode(4);
    /// A batch starts after the next expected sequence number.
    pub const SEQUENCE_GAP: ErrorCode = ErrorCode(5);
    /// The collector is stopping; reconnect later.
    pub const SHUTTING_DOWN: ErrorCode = ErrorCode(6);
    /// The collector refuses the connection for lack of capacity; reconnect
    /// later.
    pub const OVERLOADED: ErrorCode = ErrorCode(7);
    /// The frame type byte is not one of the version's types.
    pub const UNKNOWN_FRAME_TYPE: ErrorCode = ErrorCode(8);
    /// A valid frame at the wrong moment (a `BATCH` before `HELLO`, a second
    /// `HELLO`, a frame only the other side sends).
    pub const UNEXPECTED_FRAME: ErrorCode = ErrorCode(9);
    /// The client id is in use on a live connection that proved another
    /// credential (token or certificate); reconnect later.
    pub const CLIENT_ID_TAKEN: ErrorCode = ErrorCode(10);

    /// A short lower-case name (`"bad token"`), or `"unknown"`.
    pub const fn name(self) -> &'static str {
        match self.0 {
            1 => "bad token",
            2 => "unsupported version",
            3 => "malformed frame",
            4 => "frame too large",
            5 => "sequence gap",
            6 => "shutting down",
            7 => "overloaded",
            8 => "unknown frame type",
            9 => "unexpected frame",
            10 => "client id taken",
            _ => "unknown",
        }
    }

    /// Whether a client should reconnect (with back-off) and resend after
    /// receiving this code. The others mean a configuration or
    /// implementation defect that reconnecting will not cure.
    pub const fn is_transient(self) -> bool {
        matches!(self.0, 5..=7 | 10)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// Why bytes could not be decoded, a frame could not be encoded, or a
/// session must end. [`WireError::code`] is the code to send in the
/// `ERROR` frame before closing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The length field is above the receiver's limit. Detected from the
    /// four length bytes alone.
    #[error("frame length {len} is above the limit of {max} bytes")]
    FrameTooLarge {
        /// The declared length.
        len: u32,
        /// The receiver's limit.
        max: usize,
    },
    /// The length field is below 2, too short for version and type.
    #[error("frame length {0} is below the minimum of 2")]
    FrameTooShort(u32),
    /// The slice handed to [`decode`] is not exactly one frame.
    #[error("frame declares {declared} bytes but {actual} were given")]
    LengthMismatch {
        /// Total size from the length field (prefix included).
        declared: usize,
        /// Size of the slice.
        actual: usize,
    },
    /// A frame carries a version this module does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The peer offered no version this module speaks.
    #[error("no protocol version in common (offered {offered:?})")]
    NoCommonVersion {
        /// The highest version the peer offered (0 when it offered none).
        offered: u8,
    },
    /// The type byte names no frame type.
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    /// The payload breaks the specification.
    #[error("malformed {frame} frame: {reason}")]
    Malformed {
        /// The frame's type.
        frame: FrameType,
        /// What is wrong, for diagnostics.
        reason: &'static str,
    },
    /// A valid frame at the wrong moment.
    #[error("unexpected {0} frame")]
    UnexpectedFrame(FrameType),
    /// The token does not match.
    #[error("bad token")]
    BadToken,
    /// A batch starts after the next sequence number expected.
    #[error("sequence gap: expected a batch starting at or before {expected}, got {first}")]
    SequenceGap {
        /// The next sequence number the collector needs.
        expected: u64,
        /// The batch's first sequence number.
        first: u64,
    },
    /// The client id is held by a live connection of another identity.
    #[error("client id {0:?} is in use by a connection with another credential")]
    ClientIdTaken(String),
    /// A value cannot be put on the wire (a client id of 300 bytes, a batch
    /// numbered from 0).
    #[error("cannot encode: {0}")]
    Unencodable(&'static str),
    /// The collector tracks as many client ids as it may, none of them
    /// idle: a new one must come back later.
    #[error("the collector tracks {max} client ids, none idle; retry later")]
    TooManyClients {
        /// The collector's capacity.
        max: usize,
    },
}

impl WireError {
    /// The code for the `ERROR` frame that reports this error.
    pub const fn code(&self) -> ErrorCode {
        match self {
            WireError::FrameTooLarge { .. } => ErrorCode::FRAME_TOO_LARGE,
            WireError::FrameTooShort(_)
            | WireError::LengthMismatch { .. }
            | WireError::Malformed { .. }
            | WireError::Unencodable(_) => ErrorCode::MALFORMED,
            WireError::UnsupportedVersion(_) | WireError::NoCommonVersion { .. } => {
                ErrorCode::UNSUPPORTED_VERSION
            }
            WireError::UnknownFrameType(_) => ErrorCode::UNKNOWN_FRAME_TYPE,
            WireError::UnexpectedFrame(_) => ErrorCode::UNEXPECTED_FRAME,
            WireError::BadToken => ErrorCode::BAD_TOKEN,
            WireError::SequenceGap { .. } => ErrorCode::SEQUENCE_GAP,
            WireError::TooManyClients { .. } => ErrorCode::OVERLOADED,
            WireError::ClientIdTaken(_) => ErrorCode::CLIENT_ID_TAKEN,
        }
    }
}

/// Reads fixed-size little-endian values off the front of a slice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor<'a> {
    pub(crate) rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) const fn new(rest: &'a [u8]) -> Self {
        Cursor { rest }
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], &'static str> {
        if self.rest.len() < n {
            return Err(what);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], &'static str> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N, what)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, &'static str> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, &'static str> {
        self.array(what).map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, &'static str> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, &'static str> {
        self.array(what).map(u64::from_le_bytes)
    }

    pub(crate) fn str(&mut self, n: usize, what: &'static str) -> Result<&'a str, &'static str> {
        std::str::from_utf8(self.bytes(n, what)?).map_err(|_| what)
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub(crate) fn cut_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        assert_eq!(negotiate(&[1]), Some(1));
        assert_eq!(negotiate(&[3, 1, 2]), Some(1));
        assert_eq!(negotiate(&[2, 3]), None);
        assert_eq!(negotiate(&[]), None);
    }

    #[test]
    fn frame_types_round_trip_through_their_byte() {
        for b in 0..=255u8 {
            if let Some(t) = FrameType::from_u8(b) {
                assert_eq!(t.as_u8(), b);
            }
        }
        assert_eq!(FrameType::from_u8(0), None);
        assert_eq!(FrameType::from_u8(8), None);
    }

    #[test]
    fn error_codes_are_stable() {
        let cases = [
            (WireError::BadToken, 1),
            (WireError::UnsupportedVersion(9), 2),
            (WireError::NoCommonVersion { offered: 9 }, 2),
            (
                WireError::Malformed {
                    frame: FrameType::Batch,
                    reason: "x",
                },
                3,
            ),
            (WireError::FrameTooShort(1), 3),
            (WireError::FrameTooLarge { len: 9, max: 1 }, 4),
            (
                WireError::SequenceGap {
                    expected: 1,
                    first: 3,
                },
                5,
            ),
            (WireError::UnknownFrameType(99), 8),
            (WireError::UnexpectedFrame(FrameType::Ack), 9),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), ErrorCode(code), "{e}");
        }
        assert!(ErrorCode::OVERLOADED.is_transient());
        assert!(!ErrorCode::BAD_TOKEN.is_transient());
        assert_eq!(ErrorCode(77).name(), "unknown");
    }

    #[test]
    fn cut_str_respects_char_boundaries() {
        assert_eq!(cut_str("héllo", 2), "h");
        assert_eq!(cut_str("héllo", 3), "hé");
        assert_eq!(cut_str("abc", 10), "abc");
    }
}
