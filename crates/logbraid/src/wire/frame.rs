//! Frames: the envelope, the small frames, and reading frames off a stream.

use std::fmt;

use super::record::Batch;
use super::{
    cut_str, negotiate, Cursor, ErrorCode, FrameType, WireError, DEFAULT_MAX_FRAME,
    FRAME_HEADER_LEN, MAX_CLIENT_ID, MAX_ERROR_MESSAGE, VERSION,
};
use crate::record::Source;

/// Bytes of the length field.
const LEN_PREFIX: usize = 4;

/// One decoded frame, borrowing the bytes it was decoded from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Frame<'a> {
    /// Client → collector, first frame of a connection.
    Hello(Hello<'a>),
    /// Collector → client, the answer to an accepted `HELLO`.
    Welcome {
        /// The version used from now on, one the client offered.
        version: u8,
        /// The highest sequence number of this client id and epoch already
        /// written (0: none). The client drops its batches up to it and
        /// resends the rest.
        highest: u64,
        /// The longest frame the collector accepts (the length field), at
        /// least [`DEFAULT_MAX_FRAME`](super::DEFAULT_MAX_FRAME).
        max_frame: u32,
    },
    /// Client → collector: records.
    Batch(Batch<'a>),
    /// Collector → client: every record up to `highest` is written.
    Ack {
        /// Cumulative: never lower than an earlier `ACK` on the connection.
        highest: u64,
    },
    /// Either way; the sender closes after it.
    Error {
        /// What went wrong, machine-readable.
        code: ErrorCode,
        /// What went wrong, for people.
        message: &'a str,
    },
    /// Either way: the receiver answers with a `PONG` carrying `nonce`.
    Ping {
        /// Opaque; echoed back.
        nonce: u64,
    },
    /// The answer to a `PING`.
    Pong {
        /// The `PING`'s nonce.
        nonce: u64,
    },
}

impl Frame<'_> {
    /// The frame's type.
    pub const fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello(_) => FrameType::Hello,
            Frame::Welcome { .. } => FrameType::Welcome,
            Frame::Batch(_) => FrameType::Batch,
            Frame::Ack { .. } => FrameType::Ack,
            Frame::Error { .. } => FrameType::Error,
            Frame::Ping { .. } => FrameType::Ping,
            Frame::Pong { .. } => FrameType::Pong,
        }
    }

    /// Appends the frame's encoding to `out`. A decoded frame re-encodes to
    /// the same bytes, except for what receivers ignore (bytes after the
    /// known fields of `HELLO`, `WELCOME` and `ERROR`). Fails only for a
    /// `HELLO` outside the limits (see [`encode_hello`]); `out` is then
    /// left as it was.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        match *self {
            Frame::Hello(ref h) => return encode_hello(h, out),
            Frame::Welcome {
                version,
                highest,
                max_frame,
            } => encode_welcome(version, highest, max_frame, out),
            Frame::Batch(ref b) => b.encode(out),
            Frame::Ack { highest } => encode_ack(highest, out),
            Frame::Error { code, message } => encode_error(code, message, out),
            Frame::Ping { nonce } => encode_ping(nonce, out),
            Frame::Pong { nonce } => encode_pong(nonce, out),
        }
        Ok(())
    }
}

/// The first frame of a connection: who the client is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hello<'a> {
    /// Protocol versions the client speaks, any order, at least one.
    pub versions: &'a [u8],
    /// Names the client for deduplication: stable across reconnects, and
    /// across restarts when the client keeps its unacknowledged batches on
    /// disk. 1 to 255 bytes of UTF-8. Two live processes must not share one.
    pub client_id: &'a str,
    /// Names one numbering of the client's sequence: a client that starts
    /// again from sequence 1 (a restart without saved state) picks an epoch
    /// it has not used, so the collector does not mistake its new records
    /// for resent ones. A random `u64` or the start time in nanoseconds.
    pub epoch: u64,
    /// Host name of the client.
    pub host: &'a str,
    /// Process id of the client.
    pub pid: u32,
    /// Program name of the client.
    pub program: &'a str,
    /// Shared secret; empty when the client has none.
    pub token: &'a [u8],
}

impl Hello<'_> {
    /// The source to log this client's records under.
    pub fn source(&self) -> Source {
        Source {
            host: self.host.to_string(),
            pid: self.pid,
            process_name: self.program.to_string(),
        }
    }

    /// The version to answer with, or the error to close with.
    pub fn negotiate(&self) -> Result<u8, WireError> {
        negotiate(self.versions).ok_or(WireError::NoCommonVersion {
            offered: self.versions.iter().copied().max().unwrap_or(0),
        })
    }

    /// Whether the token equals `expected`, compared in time that depends on
    /// the lengths only, so the comparison does not reveal a correct prefix.
    pub fn token_matches(&self, expected: &[u8]) -> bool {
        token_matches(self.token, expected)
    }
}

/// Whether a token given by a client is the `expected` one, compared in
/// time that does not depend on where they differ (the native `HELLO`, the
/// `Authorization` header of OTLP).
pub fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    let diff = given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(diff) == 0
}

impl fmt::Debug for Hello<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hello")
            .field("versions", &self.versions)
            .field("client_id", &self.client_id)
            .field("epoch", &self.epoch)
            .field("host", &self.host)
            .field("pid", &self.pid)
            .field("program", &self.program)
            .field(
                "token",
                &if self.token.is_empty() {
                    "<none>"
                } else {
                    "<redacted>"
                },
            )
            .finish()
    }
}

/// Starts a frame: placeholder length, version, type. Returns where the
/// frame starts, for [`end`].
pub(crate) fn begin(out: &mut Vec<u8>, ty: FrameType) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, VERSION, ty.as_u8()]);
    start
}

/// Fills in the length of the frame started at `start`.
pub(crate) fn end(out: &mut [u8], start: usize) {
    // Every frame this module builds is far below 4 GiB: batches are capped
    // by their encoder and the other frames by their fields' limits.
    let len = (out.len() - start - LEN_PREFIX) as u32;
    out[start..start + LEN_PREFIX].copy_from_slice(&len.to_le_bytes());
}

/// Appends a `HELLO` frame.
///
/// Fails, leaving `out` as it was, when the hello cannot be encoded: no
/// version, a client id that is empty or longer than
/// [`MAX_CLIENT_ID`](super::MAX_CLIENT_ID) bytes, more than 255 versions,
/// or a host, program or token longer than 65535 bytes.
pub fn encode_hello(h: &Hello<'_>, out: &mut Vec<u8>) -> Result<(), WireError> {
    if h.versions.is_empty() || h.versions.len() > u8::MAX as usize {
        return Err(WireError::Unencodable("a hello offers 1 to 255 versions"));
    }
    if h.client_id.is_empty() || h.client_id.len() > MAX_CLIENT_ID {
        return Err(WireError::Unencodable("a client id is 1 to 255 bytes"));
    }
    if [h.host.len(), h.program.len(), h.token.len()]
        .iter()
        .any(|&l| l > u16::MAX as usize)
    {
        return Err(WireError::Unencodable(
            "host, program and token are at most 65535 bytes",
        ));
    }
    let start = begin(out, FrameType::Hello);
    out.push(h.versions.len() as u8);
    out.extend_from_slice(h.versions);
    out.extend_from_slice(&h.epoch.to_le_bytes());
    out.extend_from_slice(&h.pid.to_le_bytes());
    out.push(h.client_id.len() as u8);
    out.extend_from_slice(h.client_id.as_bytes());
    for s in [h.host.as_bytes(), h.program.as_bytes(), h.token] {
        out.extend_from_slice(&(s.len() as u16).to_le_bytes());
        out.extend_from_slice(s);
    }
    end(out, start);
    Ok(())
}

/// Appends a `WELCOME` frame.
pub fn encode_welcome(version: u8, highest: u64, max_frame: u32, out: &mut Vec<u8>) {
    let start = begin(out, FrameType::Welcome);
    out.push(version);
    out.extend_from_slice(&highest.to_le_bytes());
    out.extend_from_slice(&max_frame.to_le_bytes());
    end(out, start);
}

/// Appends an `ACK` frame.
pub fn encode_ack(highest: u64, out: &mut Vec<u8>) {
    let start = begin(out, FrameType::Ack);
    out.extend_from_slice(&highest.to_le_bytes());
    end(out, start);
}

/// Appends an `ERROR` frame. The message is cut to
/// [`MAX_ERROR_MESSAGE`](super::MAX_ERROR_MESSAGE) bytes at a character
/// boundary.
pub fn encode_error(code: ErrorCode, message: &str, out: &mut Vec<u8>) {
    let message = cut_str(message, MAX_ERROR_MESSAGE);
    let start = begin(out, FrameType::Error);
    out.extend_from_slice(&code.0.to_le_bytes());
    out.extend_from_slice(&(message.len() as u16).to_le_bytes());
    out.extend_from_slice(message.as_bytes());
    end(out, start);
}

/// Appends a `PING` frame.
pub fn encode_ping(nonce: u64, out: &mut Vec<u8>) {
    let start = begin(out, FrameType::Ping);
    out.extend_from_slice(&nonce.to_le_bytes());
    end(out, start);
}

/// Appends a `PONG` frame.
pub fn encode_pong(nonce: u64, out: &mut Vec<u8>) {
    let start = begin(out, FrameType::Pong);
    out.extend_from_slice(&nonce.to_le_bytes());
    end(out, start);
}

/// The total size (length field included) of the frame at the start of
/// `buf`, once its length field has arrived; `Ok(None)` while fewer than 4
/// bytes are there. `buf` may hold less than the frame (wait for more) or
/// more (the next frames).
///
/// Checks, from the bytes present, that the length is within `max_frame`
/// and at least 2, and that the version and type bytes are known, so a
/// caller never waits for (or reserves room for) a frame it will reject.
pub fn frame_len(buf: &[u8], max_frame: usize) -> Result<Option<usize>, WireError> {
    let Some(prefix) = buf.first_chunk::<LEN_PREFIX>() else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(*prefix);
    if len < 2 {
        return Err(WireError::FrameTooShort(len));
    }
    if u64::from(len) > max_frame as u64 {
        return Err(WireError::FrameTooLarge {
            len,
            max: max_frame,
        });
    }
    if let Some(&v) = buf.get(LEN_PREFIX) {
        if v != VERSION {
            return Err(WireError::UnsupportedVersion(v));
        }
    }
    if let Some(&t) = buf.get(LEN_PREFIX + 1) {
        if FrameType::from_u8(t).is_none() {
            return Err(WireError::UnknownFrameType(t));
        }
    }
    (len as usize)
        .checked_add(LEN_PREFIX)
        .map(Some)
        .ok_or(WireError::FrameTooLarge {
            len,
            max: max_frame,
        })
}

/// Decodes exactly one whole frame (length field included), as delimited
/// by [`frame_len`]. Every byte is checked: a `BATCH` is returned only if
/// all its records are well formed.
pub fn decode(frame: &[u8]) -> Result<Frame<'_>, WireError> {
    let declared = frame_len(frame, usize::MAX)?.unwrap_or(usize::MAX);
    if declared != frame.len() || frame.len() < FRAME_HEADER_LEN {
        return Err(WireError::LengthMismatch {
            declared: if declared == usize::MAX { 0 } else { declared },
            actual: frame.len(),
        });
    }
    // frame_len accepted the type byte.
    let Some(ty) = FrameType::from_u8(frame[LEN_PREFIX + 1]) else {
        return Err(WireError::UnknownFrameType(frame[LEN_PREFIX + 1]));
    };
    let payload = &frame[FRAME_HEADER_LEN..];
    let malformed = |reason| WireError::Malformed { frame: ty, reason };
    let mut c = Cursor::new(payload);
    let frame = match ty {
        FrameType::Hello => Frame::Hello(decode_hello(&mut c).map_err(malformed)?),
        FrameType::Welcome => {
            let version = c.u8("truncated").map_err(malformed)?;
            let highest = c.u64("truncated").map_err(malformed)?;
            let max_frame = c.u32("truncated").map_err(malformed)?;
            if version == 0 {
                return Err(malformed("version 0"));
            }
            Frame::Welcome {
                version,
                highest,
                max_frame,
            }
        }
        FrameType::Batch => return Batch::decode(payload).map(Frame::Batch).map_err(malformed),
        FrameType::Ack => Frame::Ack {
            highest: c.u64("truncated").map_err(malformed)?,
        },
        FrameType::Error => {
            let code = ErrorCode(c.u16("truncated").map_err(malformed)?);
            let n = c.u16("truncated").map_err(malformed)?;
            let message = c
                .str(n as usize, "message truncated or not UTF-8")
                .map_err(malformed)?;
            Frame::Error { code, message }
        }
        FrameType::Ping => Frame::Ping {
            nonce: c.u64("truncated").map_err(malformed)?,
        },
        FrameType::Pong => Frame::Pong {
            nonce: c.u64("truncated").map_err(malformed)?,
        },
    };
    // The handshake frames may grow in later versions by appending fields,
    // which older receivers skip; every other frame must end exactly.
    let extensible = matches!(ty, FrameType::Hello | FrameType::Welcome | FrameType::Error);
    if !extensible && !c.rest.is_empty() {
        return Err(malformed("trailing bytes"));
    }
    Ok(frame)
}

fn decode_hello<'a>(c: &mut Cursor<'a>) -> Result<Hello<'a>, &'static str> {
    let n = c.u8("truncated versions")?;
    if n == 0 {
        return Err("no version offered");
    }
    let versions = c.bytes(n as usize, "truncated versions")?;
    let epoch = c.u64("truncated epoch")?;
    let pid = c.u32("truncated pid")?;
    let id_len = c.u8("truncated client id")?;
    if id_len == 0 {
        return Err("empty client id");
    }
    let client_id = c.str(id_len as usize, "client id truncated or not UTF-8")?;
    let host_len = c.u16("truncated host")?;
    let host = c.str(host_len as usize, "host truncated or not UTF-8")?;
    let program_len = c.u16("truncated program")?;
    let program = c.str(program_len as usize, "program truncated or not UTF-8")?;
    let token_len = c.u16("truncated token")?;
    let token = c.bytes(token_len as usize, "truncated token")?;
    Ok(Hello {
        versions,
        client_id,
        epoch,
        host,
        pid,
        program,
        token,
    })
}

/// Cuts a byte stream into frames: push bytes as they arrive, then take
/// frames until [`next_frame`](Self::next_frame) returns `Ok(None)`.
///
/// Memory stays bounded by about twice the frame limit plus the largest
/// piece pushed, provided frames are taken after each push. A frame whose
/// length field is above the limit is reported as soon as its four length
/// bytes are in, whatever follows. After any error the connection should be
/// closed (with an `ERROR` frame carrying [`WireError::code`]); the reader
/// itself stays usable and never panics.
#[derive(Debug, Clone)]
pub struct FrameReader {
    /// Frames longer than this (length field) are rejected.
    max_frame: usize,
    /// Bytes pushed and not yet handed out as frames, from `start` on.
    buf: Vec<u8>,
    /// Start of the first byte not yet handed out; bytes before it are
    /// discarded lazily so handing out a frame never moves memory.
    start: usize,
}

impl Default for FrameReader {
    /// A reader with the [`DEFAULT_MAX_FRAME`] limit.
    fn default() -> Self {
        FrameReader::new(DEFAULT_MAX_FRAME)
    }
}

/// Buffers above this capacity shrink back when they empty, so a burst of
/// large frames does not pin memory on an idle connection.
const SHRINK_ABOVE: usize = 256 * 1024;
const SHRINK_TO: usize = 64 * 1024;

impl FrameReader {
    /// A reader that rejects frames whose length field is above
    /// `max_frame`.
    pub fn new(max_frame: usize) -> Self {
        FrameReader {
            max_frame,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// The limit given to [`new`](Self::new).
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes pushed and not yet returned in a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Appends bytes received from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() > SHRINK_ABOVE && bytes.len() <= SHRINK_TO {
                self.buf.shrink_to(SHRINK_TO);
            }
        } else if self.start >= self.buf.len() - self.start {
            // Move the unread tail to the front only when it is no longer
            // than what was read, so each byte moves O(1) times on average.
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(self.buf.len() - self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    ///
    /// A frame with a bad header (too large, too short, unknown version or
    /// type) is not consumed, so the same error comes back on every call; a
    /// frame with a malformed payload is consumed.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, WireError> {
        let pending = &self.buf[self.start..];
        let Some(total) = frame_len(pending, self.max_frame)? else {
            return Ok(None);
        };
        if pending.len() < total {
            return Ok(None);
        }
        let at = self.start;
        self.start += total;
        decode(&self.buf[at..at + total]).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello<'static> {
        Hello {
            versions: &[1, 2],
            client_id: "c",
            epoch: 9,
            host: "h",
            pid: 1,
            program: "p",
            token: b"secret",
        }
    }

    #[test]
    fn hello_debug_hides_the_token() {
        let s = format!("{:?}", hello());
        assert!(!s.contains("secret"), "{s}");
        assert!(s.contains("<redacted>"));
    }

    #[test]
    fn token_comparison() {
        let h = hello();
        assert!(h.token_matches(b"secret"));
        assert!(!h.token_matches(b"secreT"));
        assert!(!h.token_matches(b"secret!"));
        assert!(!h.token_matches(b""));
    }

    #[test]
    fn hello_limits_are_enforced_when_encoding() {
        let mut out = vec![7];
        let long = "x".repeat(256);
        for bad in [
            Hello {
                versions: &[],
                ..hello()
            },
            Hello {
                client_id: "",
                ..hello()
            },
            Hello {
                client_id: &long,
                ..hello()
            },
        ] {
            assert!(matches!(
                encode_hello(&bad, &mut out),
                Err(WireError::Unencodable(_))
            ));
        }
        assert_eq!(out, [7]);
    }

    #[test]
    fn reader_compacts_without_losing_bytes() {
        let mut stream = Vec::new();
        for n in 0..1000u64 {
            encode_ping(n, &mut stream);
        }
        let mut r = FrameReader::new(64);
        let mut got = Vec::new();
        for chunk in stream.chunks(7) {
            r.push(chunk);
            while let Some(f) = r.next_frame().unwrap() {
                let Frame::Ping { nonce } = f else { panic!() };
                got.push(nonce);
            }
            assert!(r.buf.len() <= 2 * 14 + 7, "{}", r.buf.len());
        }
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn reader_shrinks_after_a_large_frame() {
        let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
        // A PING with 600 KiB of trailing bytes: malformed, but consumed.
        let mut big = Vec::new();
        encode_ping(1, &mut big);
        big.resize(600 * 1024, 0);
        let len = (big.len() - LEN_PREFIX) as u32;
        big[..LEN_PREFIX].copy_from_slice(&len.to_le_bytes());
        r.push(&big);
        assert!(matches!(r.next_frame(), Err(WireError::Malformed { .. })));
        assert!(r.buf.capacity() >= big.len());
        let mut f = Vec::new();
        encode_error(ErrorCode::MALFORMED, "x", &mut f);
        r.push(&f);
        assert!(r.buf.capacity() <= SHRINK_TO);
        assert!(matches!(r.next_frame(), Ok(Some(Frame::Error { .. }))));
    }
}
