//! Syslog messages (RFC 5424 and RFC 3164) and their TCP framing (RFC 6587).
//!
//! [`parse`] accepts anything that starts with a valid `<PRI>`:
//!
//! - `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]` is read as
//!   RFC 5424: `-` is the nil value, structured data becomes fields named
//!   `SD-ID.PARAM-NAME` (an element without parameters becomes one field
//!   named by its SD-ID, with a null value), and a UTF-8 byte order mark
//!   at the start of MSG is dropped.
//! - Everything else is read as RFC 3164, `<PRI>Mmm dd hh:mm:ss HOSTNAME
//!   TAG[PID]: MSG`, tolerating what senders do in practice: no hostname
//!   (what `logger` and the C library send to a local socket), an RFC 3339
//!   timestamp instead of the BSD one (rsyslog's forwarding format), a year
//!   after the day, fractional seconds, no tag. The BSD timestamp has no
//!   year and no zone: the year is the receive time's (the previous one if
//!   that would put the message more than a day in the future), and the
//!   time is taken as UTC.
//! - A message whose header matches neither, as Python's
//!   `logging.handlers.SysLogHandler` sends it (`<PRI>` then the formatted
//!   message and a NUL), is RFC 3164 without a header, which RFC 3164
//!   (section 4.3.3) tells a receiver to accept: all of it is the message,
//!   stamped with the receive time and the peer's host. So is a message that
//!   announces version 1 but breaks RFC 5424's grammar: nothing is lost.
//!
//! Trailing `\n`, `\r` and NUL bytes are trimmed. The message is kept as
//! bytes, valid UTF-8 or not.
//!
//! | record | from |
//! |---|---|
//! | level | severity: 0–2 Critical, 3 Error, 4 Warn, 5–6 Info, 7 Debug |
//! | target | APP-NAME or TAG, else `syslog` |
//! | timestamp | the message's, else the receive time |
//! | source | HOSTNAME (else the peer's host), PROCID when numeric (else 0), APP-NAME |
//! | fields | `facility` and `severity` (names), then `hostname`, `appname`, `procid`, `msgid` when present, then structured data |

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use logbraid::time::{parse_rfc3339, utc_year};
use logbraid::{FieldsBuf, Level, OwnedRecord, Record, Source, Value};

use crate::intake::SourceCache;

/// Facility names by number, as `logger -p` and syslog.conf spell them.
const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Severity names by number.
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

const NS_PER_SEC: i64 = 1_000_000_000;
const NS_PER_DAY: i64 = 86_400 * NS_PER_SEC;

/// Why bytes are not a syslog message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyslogError {
    /// Nothing but line ends or NULs.
    #[error("empty syslog message")]
    Empty,
    /// The message does not start with `<`, digits and `>`.
    #[error("no <PRI> at the start of the message: not syslog")]
    NoPri,
    /// The PRI is over 191 (facility 23, severity 7).
    #[error("PRI {value} is out of range (0 to 191)")]
    PriOutOfRange {
        /// The number found.
        value: u32,
    },
}

/// Parses one syslog message received at `received_ns` (nanoseconds since
/// the epoch) from `peer_host`. See the module documentation for what is
/// accepted and how it maps onto a record.
pub fn parse(bytes: &[u8], received_ns: i64, peer_host: &str) -> Result<OwnedRecord, SyslogError> {
    parse_with(bytes, received_ns, peer_host, &mut SourceCache::new())
}

/// [`parse`], sharing sources through `sources` so that the messages of one
/// process share one [`logbraid::Source`].
pub fn parse_with(
    bytes: &[u8],
    received_ns: i64,
    peer_host: &str,
    sources: &mut SourceCache,
) -> Result<OwnedRecord, SyslogError> {
    let mut fields = FieldsBuf::new();
    parse_then(
        bytes,
        received_ns,
        peer_host,
        sources,
        &mut fields,
        OwnedRecord::from_record_with_source,
    )
}

/// [`parse_with`], handing the record to `then` as a [`Record`] that
/// borrows its text from `bytes` and its fields from `fields` (a buffer
/// kept from one message to the next, emptied first), with its source:
/// nothing is copied or allocated for it here.
pub fn parse_then<T>(
    bytes: &[u8],
    received_ns: i64,
    peer_host: &str,
    sources: &mut SourceCache,
    fields: &mut FieldsBuf,
    then: impl FnOnce(&Record<'_>, &Arc<Source>) -> T,
) -> Result<T, SyslogError> {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r' | 0))
        .map_or(0, |i| i + 1);
    let bytes = &bytes[..end];
    if bytes.is_empty() {
        return Err(SyslogError::Empty);
    }
    let (pri, rest) = parse_pri(bytes)?;
    let m = rest
        .strip_prefix(b"1 ")
        .and_then(|body| rfc5424(body, received_ns))
        .unwrap_or_else(|| rfc3164(rest, received_ns));

    let facility = (pri >> 3) as usize;
    let severity = (pri & 7) as usize;
    let level = match severity {
        0..=2 => Level::Critical,
        3 => Level::Error,
        4 => Level::Warn,
        5 | 6 => Level::Info,
        _ => Level::Debug,
    };
    fields.clear();
    fields.push_str("facility", FACILITIES[facility]);
    fields.push_str("severity", SEVERITIES[severity]);
    for (key, v) in [
        ("hostname", m.hostname),
        ("appname", m.appname),
        ("procid", m.procid),
        ("msgid", m.msgid),
    ] {
        if let Some(v) = v {
            fields.push_str(key, v);
        }
    }
    fields.extend_encoded(m.sd.as_bytes());

    let pid = m.procid.and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
    let source = sources.get(
        m.hostname.unwrap_or(peer_host),
        pid,
        m.appname.unwrap_or(""),
    );
    let r = Record::new(level, m.appname.unwrap_or("syslog"), m.msg, &source)
        .with_timestamp(m.timestamp_ns)
        .with_fields(fields.as_fields());
    Ok(then(&r, &source))
}

/// The parts of a message, borrowed from it.
struct Message<'a> {
    timestamp_ns: i64,
    hostname: Option<&'a str>,
    appname: Option<&'a str>,
    procid: Option<&'a str>,
    msgid: Option<&'a str>,
    /// Structured data, already encoded as fields.
    sd: FieldsBuf,
    msg: &'a [u8],
}

fn parse_pri(bytes: &[u8]) -> Result<(u32, &[u8]), SyslogError> {
    let rest = bytes.strip_prefix(b"<").ok_or(SyslogError::NoPri)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 3 || rest.get(digits) != Some(&b'>') {
        return Err(SyslogError::NoPri);
    }
    let value = rest[..digits]
        .iter()
        .fold(0u32, |a, &d| a * 10 + u32::from(d - b'0'));
    if value > 191 {
        return Err(SyslogError::PriOutOfRange { value });
    }
    Ok((value, &rest[digits + 1..]))
}

/// Splits off one space-terminated header field of printable US-ASCII;
/// `-` gives `None`.
fn header_field<'a>(rest: &mut &'a [u8]) -> Option<Option<&'a str>> {
    // One pass: the first byte that is not printable must be the space
    // that ends a field of at least one byte.
    let n = rest.iter().position(|b| !(33..=126).contains(b))?;
    if n == 0 || rest[n] != b' ' {
        return None;
    }
    let token = &rest[..n];
    *rest = &rest[n + 1..];
    // SAFETY: every byte of `token` is printable US-ASCII (33 to 126),
    // and therefore UTF-8.
    let token = unsafe { std::str::from_utf8_unchecked(token) };
    Some((token != "-").then_some(token))
}

/// RFC 5424 after `<PRI>1 `; `None` if the grammar is broken anywhere.
fn rfc5424(body: &[u8], received_ns: i64) -> Option<Message<'_>> {
    let mut rest = body;
    let timestamp = header_field(&mut rest)?;
    let timestamp_ns = match timestamp {
        None => received_ns,
        Some(t) => parse_rfc3339(t.as_bytes())?,
    };
    let hostname = header_field(&mut rest)?;
    let appname = header_field(&mut rest)?;
    let procid = header_field(&mut rest)?;
    let msgid = header_field(&mut rest)?;
    let mut sd = FieldsBuf::new();
    match rest.first() {
        Some(b'-') => rest = &rest[1..],
        Some(b'[') => structured_data(&mut rest, &mut sd)?,
        _ => return None,
    }
    let msg = match rest {
        [] => rest,
        [b' ', msg @ ..] => msg.strip_prefix(b"\xef\xbb\xbf").unwrap_or(msg),
        _ => return None,
    };
    Some(Message {
        timestamp_ns,
        hostname,
        appname,
        procid,
        msgid,
        sd,
        msg,
    })
}

/// One or more SD-ELEMENTs, each `[SD-ID *(SP PARAM-NAME="VALUE")]`.
fn structured_data(rest: &mut &[u8], sd: &mut FieldsBuf) -> Option<()> {
    let mut value = Vec::new();
    while let Some(b'[') = rest.first() {
        *rest = &rest[1..];
        let id = sd_name(rest)?;
        let mut params = 0;
        loop {
            match rest.first()? {
                b']' => {
                    *rest = &rest[1..];
                    break;
                }
                b' ' => *rest = &rest[1..],
                _ => return None,
            }
            let name = sd_name(rest)?;
            if rest.first() != Some(&b'=') || rest.get(1) != Some(&b'"') {
                return None;
            }
            *rest = &rest[2..];
            value.clear();
            loop {
                let (&b, tail) = rest.split_first()?;
                *rest = tail;
                match b {
                    b'"' => break,
                    b'\\' => match rest.first() {
                        Some(&e @ (b'"' | b'\\' | b']')) => {
                            value.push(e);
                            *rest = &rest[1..];
                        }
                        // Any other escape is a literal backslash (RFC
                        // 5424, section 6.3.3).
                        _ => value.push(b'\\'),
                    },
                    b => value.push(b),
                }
            }
            let key = format!("{id}.{name}");
            sd.push_bytes(&key, &value);
            params += 1;
        }
        if params == 0 {
            sd.push(id, Value::Null);
        }
    }
    Some(())
}

/// An SD-NAME: 1 to 32 printable US-ASCII characters except `=`, space,
/// `]` and `"`. Longer names are accepted: the limit protects nothing here.
fn sd_name<'a>(rest: &mut &'a [u8]) -> Option<&'a str> {
    let n = rest
        .iter()
        .position(|&b| !(33..=126).contains(&b) || matches!(b, b'=' | b']' | b'"'))
        .unwrap_or(rest.len());
    if n == 0 {
        return None;
    }
    let name = std::str::from_utf8(&rest[..n]).ok()?;
    *rest = &rest[n..];
    Some(name)
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |a, &d| a * 10 + u32::from(d - b'0')))
}

/// Nanoseconds since the epoch of a valid date and time of day, in UTC.
fn to_ns(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32, frac_ns: u32) -> Option<i64> {
    logbraid::time::utc_ns(y, mo, d, h, mi, s, frac_ns)
}

/// Fractional seconds after the `.`: up to nine digits are kept.
fn fraction(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut ns = 0u32;
    for i in 0..9 {
        ns = ns * 10 + b.get(i).map_or(0, |&d| u32::from(d - b'0'));
    }
    Some(ns)
}

/// A BSD timestamp's parts.
struct BsdTime {
    month: u32,
    day: u32,
    year: Option<i64>,
    hour: u32,
    minute: u32,
    second: u32,
    frac_ns: u32,
}

impl BsdTime {
    fn in_year(&self, y: i64) -> Option<i64> {
        to_ns(
            y,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.frac_ns,
        )
    }
}

/// `Mmm dd hh:mm:ss[.frac]`, optionally with a year after the day, and the
/// bytes after it.
fn bsd_timestamp(b: &[u8]) -> Option<(BsdTime, &[u8])> {
    let month = MONTHS.iter().position(|m| b.get(..3) == Some(&m[..]))? as u32 + 1;
    let mut rest = b.get(3..)?.strip_prefix(b" ")?;
    if let Some(r) = rest.strip_prefix(b" ") {
        rest = r; // space-padded day: "Feb  5"
    }
    let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=2).contains(&n) {
        return None;
    }
    let day = digits(&rest[..n])?;
    rest = rest[n..].strip_prefix(b" ")?;
    let mut year = None;
    if rest.len() > 4 && rest[4] == b' ' && rest[..4].iter().all(u8::is_ascii_digit) {
        year = Some(i64::from(digits(&rest[..4])?));
        rest = &rest[5..];
    }
    if rest.len() < 8 || rest[2] != b':' || rest[5] != b':' {
        return None;
    }
    let (h, mi, s) = (
        digits(&rest[..2])?,
        digits(&rest[3..5])?,
        digits(&rest[6..8])?,
    );
    rest = &rest[8..];
    let mut frac_ns = 0;
    if let Some(f) = rest.strip_prefix(b".") {
        let n = f.iter().take_while(|c| c.is_ascii_digit()).count();
        frac_ns = fraction(&f[..n])?;
        rest = &f[n..];
    }
    if !(rest.is_empty() || rest[0] == b' ') {
        return None;
    }
    let t = BsdTime {
        month,
        day,
        year,
        hour: h,
        minute: mi,
        second: s,
        frac_ns,
    };
    Some((t, rest))
}

/// RFC 3164 after `<PRI>`; never fails: without a recognisable header the
/// whole of it is the message.
fn rfc3164(body: &[u8], received_ns: i64) -> Message<'_> {
    let headerless = Message {
        timestamp_ns: received_ns,
        hostname: None,
        appname: None,
        procid: None,
        msgid: None,
        sd: FieldsBuf::new(),
        msg: body,
    };
    let (timestamp_ns, rest) = match bsd_header_time(body, received_ns) {
        Some(found) => found,
        None => return headerless,
    };
    let mut rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let mut hostname = None;
    // A first word that is followed by more and does not look like a tag
    // is the hostname; senders writing to a local socket leave it out.
    if let Some(n) = rest.iter().position(|&b| b == b' ') {
        let word = &rest[..n];
        if !word.is_empty() && !word.ends_with(b":") && !word.contains(&b'[') {
            if let Ok(h) = std::str::from_utf8(word) {
                hostname = Some(h);
                rest = &rest[n + 1..];
            }
        }
    }
    let (appname, procid, msg) = tag(rest);
    Message {
        timestamp_ns,
        hostname,
        appname,
        procid,
        msgid: None,
        sd: FieldsBuf::new(),
        msg,
    }
}

/// The header's timestamp, BSD style or RFC 3339, and what follows it.
fn bsd_header_time(body: &[u8], received_ns: i64) -> Option<(i64, &[u8])> {
    if let Some((t, rest)) = bsd_timestamp(body) {
        let ns = match t.year {
            Some(y) => t.in_year(y)?,
            None => {
                let this_year = utc_year(received_ns);
                // A timestamp more than a day ahead of the receive time
                // belongs to last year (December's messages read in
                // January).
                [this_year, this_year - 1]
                    .into_iter()
                    .filter_map(|y| t.in_year(y))
                    .find(|&ns| ns <= received_ns.saturating_add(NS_PER_DAY))?
            }
        };
        return Some((ns, rest));
    }
    let n = body.iter().position(|&b| b == b' ').unwrap_or(body.len());
    parse_rfc3339(&body[..n]).map(|ns| (ns, &body[n..]))
}

/// `TAG[PID]: MSG` or `TAG: MSG`; without either shape there is no tag.
fn tag(rest: &[u8]) -> (Option<&str>, Option<&str>, &[u8]) {
    let none = (None, None, rest);
    let n = rest
        .iter()
        .position(|&b| matches!(b, b'[' | b':' | b' '))
        .unwrap_or(rest.len());
    if n == 0 || n > 128 {
        return none;
    }
    let Ok(name) = std::str::from_utf8(&rest[..n]) else {
        return none;
    };
    let mut after = &rest[n..];
    let mut pid = None;
    if let Some(p) = after.strip_prefix(b"[") {
        let Some(close) = p.iter().position(|&b| b == b']') else {
            return none;
        };
        match std::str::from_utf8(&p[..close]) {
            Ok(s) if !s.is_empty() && !s.contains(' ') => pid = Some(s),
            _ => return none,
        }
        after = &p[close + 1..];
    }
    match after.strip_prefix(b":") {
        Some(msg) => (Some(name), pid, msg.strip_prefix(b" ").unwrap_or(msg)),
        // `tag[pid] message`, without the colon, is common enough.
        None if pid.is_some() => (Some(name), pid, after.strip_prefix(b" ").unwrap_or(after)),
        None => none,
    }
}

/// Why a TCP syslog stream could not be cut into messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyslogFrameError {
    /// A message (announced by its octet count, or a line without its
    /// terminator yet) is over the limit.
    #[error("syslog frame of {len} bytes or more is over the limit of {max}")]
    TooLarge {
        /// Its announced length, or the bytes seen so far of the line.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A frame starts with neither digits (octet counting) nor `<`
    /// (newline framing), or its octet count is not `DIGITS SP`.
    #[error("byte 0x{byte:02x} at stream offset {offset} starts no syslog frame")]
    BadFrame {
        /// The offending byte.
        byte: u8,
        /// Its offset from the start of the stream.
        offset: u64,
    },
    /// The stream ended inside an octet-counted frame.
    #[error("stream ended inside a frame, {buffered} bytes unread")]
    Truncated {
        /// Bytes received of the unfinished frame.
        buffered: usize,
    },
}

/// Cuts a syslog TCP stream into messages (RFC 6587), telling each
/// message's framing by its first byte: a digit starts an octet-counted
/// frame (`LEN SP MSG`), `<` a frame ended by LF or by NUL (RFC 6587,
/// section 3.4.2, mentions senders that end frames with NUL; Python's
/// `SysLogHandler` over TCP is one). Empty lines and NULs between frames
/// are skipped.
///
/// Limits are checked in [`SyslogTcpDecoder::push`], as bytes arrive: an
/// octet count over `max_frame`, or a line longer than `max_frame` with no
/// terminator yet, stops the stream there. The frames before it are still handed
/// out; then [`SyslogTcpDecoder::next_frame`] reports the error.
#[derive(Debug)]
pub struct SyslogTcpDecoder {
    max_frame: usize,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`, for error messages.
    base: u64,
    /// Complete frames not yet handed out, as ranges of `buf`.
    ready: VecDeque<Range<usize>>,
    /// Where the first incomplete frame starts in `buf`.
    scan: usize,
    /// How far a newline-framed line was already searched for its LF.
    searched: usize,
    failed: Option<SyslogFrameError>,
}

impl Default for SyslogTcpDecoder {
    fn default() -> Self {
        SyslogTcpDecoder::new(SyslogTcpDecoder::DEFAULT_MAX_FRAME)
    }
}

impl SyslogTcpDecoder {
    /// The frame limit of [`SyslogTcpDecoder::default`]: 64 KiB (RFC 5425
    /// asks receivers to take at least 2 KiB and says 8 KiB should do).
    pub const DEFAULT_MAX_FRAME: usize = 64 << 10;

    /// A decoder that refuses messages over `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        SyslogTcpDecoder {
            max_frame,
            buf: Vec::new(),
            base: 0,
            ready: VecDeque::new(),
            scan: 0,
            searched: 0,
            failed: None,
        }
    }

    /// Bytes the buffer holds in use now, and its capacity: what a
    /// caller counting memory needs to bound the next
    /// [`push`](Self::push).
    pub fn buffer(&self) -> (usize, usize) {
        (self.buf.len(), self.buf.capacity())
    }

    /// Gives memory back after a large message: once every complete
    /// frame is handed out and no more than
    /// [`KEEP_BUFFER`](crate::intake::python::KEEP_BUFFER) bytes are
    /// waiting, a buffer larger than that is cut down to it.
    pub fn shrink(&mut self) {
        if !self.ready.is_empty() {
            return;
        }
        let moved = crate::intake::python::shrink_buffer(&mut self.buf, &mut self.scan);
        self.base += moved as u64;
        self.searched = self.searched.saturating_sub(moved);
    }

    /// Bytes received and not yet handed out as a frame (once every
    /// complete frame is: the message in progress).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.scan
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.ready.is_empty() && self.scan > 0 {
            self.buf.drain(..self.scan);
            self.base += self.scan as u64;
            self.searched -= self.scan;
            self.scan = 0;
        }
        crate::intake::python::append_exact(&mut self.buf, bytes);
        while let Some(err) = self.cut_one() {
            match err {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    self.buf.truncate(self.scan);
                    self.failed = Some(e);
                    break;
                }
            }
        }
    }

    /// Tries to cut the frame at `scan`: `Ok(true)` if it did, `Ok(false)`
    /// if more bytes are needed.
    fn cut_one(&mut self) -> Option<Result<bool, SyslogFrameError>> {
        while let Some(&b) = self.buf.get(self.scan) {
            if matches!(b, b'\n' | b'\r' | 0) {
                self.scan += 1;
            } else {
                break;
            }
        }
        self.searched = self.searched.max(self.scan);
        let first = *self.buf.get(self.scan)?;
        let bad = |at: usize, base: u64, buf: &[u8]| SyslogFrameError::BadFrame {
            byte: buf[at],
            offset: base + at as u64,
        };
        if first.is_ascii_digit() {
            let rest = &self.buf[self.scan..];
            let n = rest
                .iter()
                .take(11)
                .take_while(|b| b.is_ascii_digit())
                .count();
            if n > 10 {
                return Some(Err(bad(self.scan + 10, self.base, &self.buf)));
            }
            if n == rest.len() {
                return Some(Ok(false));
            }
            if rest[n] != b' ' {
                return Some(Err(bad(self.scan + n, self.base, &self.buf)));
            }
            let len = rest[..n]
                .iter()
                .fold(0u64, |a, &d| a * 10 + u64::from(d - b'0'));
            if len > self.max_frame as u64 {
                return Some(Err(SyslogFrameError::TooLarge {
                    len,
                    max: self.max_frame,
                }));
            }
            let start = self.scan + n + 1;
            let end = start + len as usize;
            if end > self.buf.len() {
                return Some(Ok(false));
            }
            self.ready.push_back(start..end);
            self.scan = end;
            self.searched = end;
            Some(Ok(true))
        } else if first == b'<' {
            match line_end(&self.buf[self.searched..]) {
                Some(i) => {
                    let end = self.searched + i;
                    if end - self.scan > self.max_frame {
                        return Some(Err(SyslogFrameError::TooLarge {
                            len: (end - self.scan) as u64,
                            max: self.max_frame,
                        }));
                    }
                    self.ready.push_back(self.scan..end);
                    self.scan = end + 1;
                    self.searched = self.scan;
                    Some(Ok(true))
                }
                None => {
                    self.searched = self.buf.len();
                    let seen = self.buf.len() - self.scan;
                    if seen > self.max_frame {
                        return Some(Err(SyslogFrameError::TooLarge {
                            len: seen as u64,
                            max: self.max_frame,
                        }));
                    }
                    Some(Ok(false))
                }
            }
        } else {
            Some(Err(bad(self.scan, self.base, &self.buf)))
        }
    }

    /// The next whole message, `Ok(None)` if more bytes are needed, or the
    /// error that stopped the stream. The message is borrowed from the
    /// decoder's buffer: no copy per message.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, SyslogFrameError> {
        if let Some(r) = self.ready.pop_front() {
            return Ok(Some(&self.buf[r]));
        }
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(None),
        }
    }

    /// Call when the stream has ended, after [`SyslogTcpDecoder::next_frame`]
    /// returned `Ok(None)`: a last line that had no terminator is a message; a
    /// partial octet-counted frame is an error.
    pub fn finish(&mut self) -> Result<Option<&[u8]>, SyslogFrameError> {
        if let Some(r) = self.ready.pop_front() {
            return Ok(Some(&self.buf[r]));
        }
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let start = self.scan.min(self.buf.len());
        self.scan = self.buf.len();
        self.searched = self.scan;
        let rest = &self.buf[start..];
        match rest.first() {
            None => Ok(None),
            Some(b'<') => Ok(Some(rest)),
            Some(_) => Err(SyslogFrameError::Truncated {
                buffered: rest.len(),
            }),
        }
    }
}

/// Where the first LF or NUL of `bytes` is: eight bytes at a time, as
/// this runs over every byte of a newline-framed stream.
fn line_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Whether a byte of `x` is zero (exact, as a whole).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for c in &mut chunks {
        let x = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        if zero(x) || zero(x ^ (u64::from(b'\n') * ONES)) {
            break;
        }
        at += 8;
    }
    let found = bytes[at..].iter().position(|&b| b == b'\n' || b == 0)?;
    Some(at + found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_are_found_at_every_position() {
        assert_eq!(line_end(b""), None);
        for len in 0..40 {
            let clean = vec![b'a'; len];
            assert_eq!(line_end(&clean), None, "{len}");
            for at in 0..len {
                for b in [b'\n', 0] {
                    let mut v = clean.clone();
                    v[at] = b;
                    // A later one does not hide the first.
                    v.push(b'\n');
                    assert_eq!(line_end(&v), Some(at), "{len} {at} {b}");
                }
                for b in [b'\r', 0x0b, 0x8a, 0x80, 0xff, 0x01] {
                    let mut v = clean.clone();
                    v[at] = b;
                    assert_eq!(line_end(&v), None, "{len} {at} {b}");
                }
            }
        }
    }

    #[test]
    fn tags_with_and_without_pids() {
        assert_eq!(tag(b"su: hi"), (Some("su"), None, &b"hi"[..]));
        assert_eq!(tag(b"cron[12]: hi"), (Some("cron"), Some("12"), &b"hi"[..]));
        assert_eq!(tag(b"cron[12] hi"), (Some("cron"), Some("12"), &b"hi"[..]));
        assert_eq!(tag(b"Use the BFG!"), (None, None, &b"Use the BFG!"[..]));
        assert_eq!(tag(b"a[1 2]: x"), (None, None, &b"a[1 2]: x"[..]));
    }
}
