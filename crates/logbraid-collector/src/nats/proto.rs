//! The NATS client protocol, sans I/O: what a server sends, cut from a
//! buffer ([`parse`]), and what a client sends, appended to one.
//!
//! Text control lines ending in CRLF, some followed by a payload of the
//! length they announce:
//!
//! | from the server | meaning |
//! |---|---|
//! | `INFO {json}` | the server, its limits and the cluster's client URLs |
//! | `MSG subject sid [reply] len` + payload | a message of a subscription |
//! | `HMSG subject sid [reply] hlen len` + headers and payload | the same with headers (`NATS/1.0 [status]`, then `Key: Value` lines) |
//! | `PING`, `PONG`, `+OK`, `-ERR 'text'` | keep-alive, confirmations, errors |
//!
//! Nothing here panics on what a server sends: a line that is not one of
//! these, or a length that is not a number, is a [`ProtoError`].

use std::fmt::Write as _;

/// A message a subscription receives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// The subject it was published to.
    pub subject: String,
    /// The subscription it is for.
    pub sid: u64,
    /// Where an answer goes (a JetStream message: its acknowledgement
    /// subject).
    pub reply: Option<String>,
    /// The status of a status message (`503` no responders, `100` idle
    /// heartbeat, `404`/`408`/`409` at the end of a pull request).
    pub status: Option<u16>,
    /// The text after the status.
    pub description: String,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Message {
    /// The first value of a header, by name (case-insensitive, as NATS
    /// compares them).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One thing a server sent.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerOp {
    /// `INFO`: its JSON.
    Info(String),
    /// `MSG` or `HMSG`.
    Msg(Message),
    /// `PING`: answer `PONG`.
    Ping,
    /// `PONG`.
    Pong,
    /// `+OK` (only in verbose mode, which this client does not ask for).
    Ok,
    /// `-ERR`: the server closes the connection after most of them.
    Err(String),
}

/// What a server sent that is not the protocol.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("NATS protocol: {0}")]
pub struct ProtoError(pub String);

fn err(what: impl Into<String>) -> ProtoError {
    ProtoError(what.into())
}

/// The longest control line accepted (subjects are short; `INFO` carries
/// the cluster's URLs).
const MAX_LINE: usize = 64 << 10;

/// Cuts the first complete operation from `buf`: `Ok(None)` until one is
/// there, else the operation and the bytes it took. A payload longer than
/// `max_payload` is an error before it is buffered.
pub fn parse(buf: &[u8], max_payload: usize) -> Result<Option<(ServerOp, usize)>, ProtoError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() > MAX_LINE {
            return Err(err("a control line longer than 64 KiB"));
        }
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| err("a control line not UTF-8"))?;
    let after = end + 2;
    let (op, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
    let rest = rest.trim();
    match op.to_ascii_uppercase().as_str() {
        "PING" => Ok(Some((ServerOp::Ping, after))),
        "PONG" => Ok(Some((ServerOp::Pong, after))),
        "+OK" => Ok(Some((ServerOp::Ok, after))),
        "-ERR" => Ok(Some((
            ServerOp::Err(rest.trim_matches('\'').to_string()),
            after,
        ))),
        "INFO" => Ok(Some((ServerOp::Info(rest.to_string()), after))),
        "MSG" | "HMSG" => {
            let headed = op.eq_ignore_ascii_case("HMSG");
            let f: Vec<&str> = rest.split_ascii_whitespace().collect();
            let num = |s: &str| {
                s.parse::<usize>()
                    .map_err(|_| err(format!("bad length {s:?}")))
            };
            let (subject, sid, reply, hlen, total) = match (headed, f.as_slice()) {
                (false, [s, sid, n]) => (*s, *sid, None, 0, num(n)?),
                (false, [s, sid, r, n]) => (*s, *sid, Some(*r), 0, num(n)?),
                (true, [s, sid, h, n]) => (*s, *sid, None, num(h)?, num(n)?),
                (true, [s, sid, r, h, n]) => (*s, *sid, Some(*r), num(h)?, num(n)?),
                _ => return Err(err(format!("bad {op} line {line:?}"))),
            };
            if total > max_payload.saturating_add(MAX_LINE) || hlen > total {
                return Err(err(format!(
                    "a message of {total} bytes ({hlen} of headers)"
                )));
            }
            let sid = sid
                .parse::<u64>()
                .map_err(|_| err(format!("bad subscription id {sid:?}")))?;
            if buf.len() < after + total + 2 {
                return Ok(None);
            }
            if &buf[after + total..after + total + 2] != b"\r\n" {
                return Err(err("a payload not followed by CRLF"));
            }
            let mut m = Message {
                subject: subject.to_string(),
                sid,
                reply: reply.map(str::to_string),
                payload: buf[after + hlen..after + total].to_vec(),
                ..Message::default()
            };
            if headed {
                headers(&buf[after..after + hlen], &mut m)?;
            }
            Ok(Some((ServerOp::Msg(m), after + total + 2)))
        }
        _ => Err(err(format!("unknown operation {op:?}"))),
    }
}

/// Reads a header block (`NATS/1.0 [status [description]]`, then
/// `Key: Value` lines, then an empty line) into `m`.
fn headers(block: &[u8], m: &mut Message) -> Result<(), ProtoError> {
    let text = std::str::from_utf8(block).map_err(|_| err("headers not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("");
    let Some(status) = first.strip_prefix("NATS/1.0") else {
        return Err(err(format!("a header block starting {first:?}")));
    };
    let status = status.trim();
    if !status.is_empty() {
        let (code, description) = status.split_once(' ').unwrap_or((status, ""));
        m.status = Some(
            code.parse()
                .map_err(|_| err(format!("bad status {code:?}")))?,
        );
        m.description = description.trim().to_string();
    }
    for line in lines.filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| err(format!("a header line {line:?}")))?;
        m.headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(())
}

/// Whether `s` may be a subject or a header value: printable ASCII
/// without spaces (a subject) is the safe set both share.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Appends `PUB`, or `HPUB` when there are headers.
pub fn publish(
    out: &mut Vec<u8>,
    subject: &str,
    reply: Option<&str>,
    headers: &[(&str, &str)],
    payload: &[u8],
) {
    let mut line = String::with_capacity(64 + subject.len());
    let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
    if headers.is_empty() {
        let _ = write!(line, "PUB {subject}{reply} {}\r\n", payload.len());
        out.extend_from_slice(line.as_bytes());
    } else {
        let mut block = String::from("NATS/1.0\r\n");
        for (k, v) in headers {
            let _ = write!(block, "{k}: {v}\r\n");
        }
        block.push_str("\r\n");
        let _ = write!(
            line,
            "HPUB {subject}{reply} {} {}\r\n",
            block.len(),
            block.len() + payload.len()
        );
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(block.as_bytes());
    }
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// Appends `SUB subject sid`.
pub fn subscribe(out: &mut Vec<u8>, subject: &str, sid: u64) {
    out.extend_from_slice(format!("SUB {subject} {sid}\r\n").as_bytes());
}

/// Appends `UNSUB sid`.
pub fn unsubscribe(out: &mut Vec<u8>, sid: u64) {
    out.extend_from_slice(format!("UNSUB {sid}\r\n").as_bytes());
}

/// Appends the `CONNECT` of a client that speaks headers and wants a
/// `503` status for a request nobody answers, then a `PING` whose `PONG`
/// confirms it.
pub fn connect(out: &mut Vec<u8>, name: &str) {
    let options = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "lang": "rust",
        "version": env!("CARGO_PKG_VERSION"),
        "name": name,
        "protocol": 1,
        "headers": true,
        "no_responders": true,
    });
    out.extend_from_slice(format!("CONNECT {options}\r\nPING\r\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8]) -> (ServerOp, usize) {
        parse(bytes, 1 << 20).unwrap().unwrap()
    }

    #[test]
    fn control_lines() {
        assert_eq!(one(b"PING\r\n"), (ServerOp::Ping, 6));
        assert_eq!(one(b"pong\r\nPING\r\n"), (ServerOp::Pong, 6));
        assert_eq!(
            one(b"-ERR 'Authorization Violation'\r\n").0,
            ServerOp::Err("Authorization Violation".into())
        );
        assert_eq!(
            one(b"INFO {\"max_payload\":1048576}\r\n").0,
            ServerOp::Info("{\"max_payload\":1048576}".into())
        );
        assert_eq!(parse(b"PIN", 1 << 20), Ok(None));
        assert!(parse(b"HELLO\r\n", 1 << 20).is_err());
    }

    #[test]
    fn a_message_waits_for_its_payload_and_its_crlf() {
        let m = b"MSG a.b 7 _INBOX.x 5\r\nhello\r\nPING\r\n";
        for cut in 0..22 + 7 {
            assert_eq!(parse(&m[..cut], 1 << 20), Ok(None), "{cut}");
        }
        let (op, used) = one(m);
        assert_eq!(used, 29);
        let ServerOp::Msg(msg) = op else { panic!() };
        assert_eq!(
            (msg.subject.as_str(), msg.sid, msg.reply.as_deref()),
            ("a.b", 7, Some("_INBOX.x"))
        );
        assert_eq!(msg.payload, b"hello");
        assert!(parse(b"MSG a 1 5\r\nhelloXX", 1 << 20).is_err());
        assert!(parse(b"MSG a 1 x\r\n", 1 << 20).is_err());
        assert!(parse(b"MSG a 1 99999999\r\n", 1 << 20).is_err());
    }

    #[test]
    fn headers_and_statuses() {
        let block = "NATS/1.0\r\nNats-Msg-Id: c/1/5\r\nx: y z\r\n\r\n";
        let text = format!(
            "HMSG s 2 {} {}\r\n{block}abc\r\n",
            block.len(),
            block.len() + 3
        );
        let ServerOp::Msg(m) = one(text.as_bytes()).0 else {
            panic!()
        };
        assert_eq!(m.header("nats-msg-id"), Some("c/1/5"));
        assert_eq!(m.header("X"), Some("y z"));
        assert_eq!((m.status, m.payload.as_slice()), (None, &b"abc"[..]));
        let block = "NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\n\r\n";
        let text = format!("HMSG _INBOX.p 3 {0} {0}\r\n{block}\r\n", block.len());
        let ServerOp::Msg(m) = one(text.as_bytes()).0 else {
            panic!()
        };
        assert_eq!(
            (m.status, m.description.as_str()),
            (Some(408), "Request Timeout")
        );
        let block = "NATS/1.0 100\r\n\r\n";
        let text = format!("HMSG _INBOX.p 3 {0} {0}\r\n{block}\r\n", block.len());
        let ServerOp::Msg(m) = one(text.as_bytes()).0 else {
            panic!()
        };
        assert_eq!(m.status, Some(100));
        let bad = "HMSG s 1 4 4\r\nHTTP\r\n";
        assert!(parse(bad.as_bytes(), 1 << 20).is_err());
    }

    #[test]
    fn what_a_client_sends() {
        let mut out = Vec::new();
        publish(&mut out, "logs.a", None, &[], b"xy");
        publish(
            &mut out,
            "logs.b",
            Some("_INBOX.1"),
            &[("Nats-Msg-Id", "k")],
            b"z",
        );
        subscribe(&mut out, "_INBOX.*", 4);
        unsubscribe(&mut out, 4);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "PUB logs.a 2\r\nxy\r\n\
             HPUB logs.b _INBOX.1 28 29\r\nNATS/1.0\r\nNats-Msg-Id: k\r\n\r\nz\r\n\
             SUB _INBOX.* 4\r\nUNSUB 4\r\n"
        );
        // What it sends, a server parses back (the same framing both ways).
        let mut out = Vec::new();
        publish(&mut out, "s", Some("r"), &[("A", "1")], b"body");
        let text = String::from_utf8(out)
            .unwrap()
            .replacen("HPUB s r", "HMSG s 9 r", 1);
        let ServerOp::Msg(m) = one(text.as_bytes()).0 else {
            panic!()
        };
        assert_eq!(
            (m.header("a"), m.payload.as_slice()),
            (Some("1"), &b"body"[..])
        );
    }
}
