//! The collector's side of one connection, without I/O: the handshake,
//! which frames are allowed when, the deduplication of resent batches and
//! the acknowledgements. The threaded embedded collector and the tokio
//! collector drive the same [`ServerSession`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::dedup::Dedup;
use super::frame::{encode_ack, encode_error, encode_pong, encode_welcome, Frame};
use super::record::Batch;
use super::{ErrorCode, FrameType, WireError, DEFAULT_MAX_FRAME};
use crate::record::Source;

/// Longest host and program a session keeps from a `HELLO`, in bytes:
/// longer ones are cut (at a character boundary). They are written with
/// every record of the connection, so the collector must not let a client
/// make each line 128 KiB longer.
pub const MAX_SOURCE_TEXT: usize = 255;

/// `s` cut to at most [`MAX_SOURCE_TEXT`] bytes, at a character boundary.
fn capped(s: &str) -> &str {
    let mut end = s.len().min(MAX_SOURCE_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Who is on the other end of an accepted connection, from its `HELLO`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The client's stable name, as its `HELLO` gave it.
    pub client_id: Box<str>,
    /// What the collector deduplicates by: the client id, scoped by the
    /// identity of the connection's credential when it has one
    /// (`IDENTITY/CLIENT_ID`), so a client id cannot reach the records'
    /// numbering of a client that proved another credential.
    pub key: Box<str>,
    /// The identity of the credential the connection proved (see
    /// [`ServerSession::identity`]), if any.
    pub identity: Option<Arc<str>>,
    /// The numbering the client uses.
    pub epoch: u64,
    /// The negotiated protocol version.
    pub version: u8,
    /// Host, pid and program of the client: every record of the
    /// connection is logged under it.
    pub source: Arc<Source>,
}

/// What the caller does after handing a frame to [`ServerSession::on_frame`].
/// In every case, bytes the session appended to `out` are sent first.
#[derive(Debug)]
pub enum Step<'a> {
    /// Nothing to write; read on.
    Continue,
    /// Write the records of `batch` after the first `skip` (already
    /// written or in flight), in order, under the peer's source; once they
    /// are written, call [`ServerSession::commit`] with `last`.
    Write {
        /// The validated batch.
        batch: Batch<'a>,
        /// Leading records to leave out.
        skip: u32,
        /// Sequence number of the batch's last record.
        last: u64,
    },
    /// Send what is in `out`, then close the connection.
    Close(Closed),
}

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Closed {
    /// This side found a fault; an `ERROR` frame with its code is in `out`.
    #[error("{0}")]
    Local(WireError),
    /// The peer sent an `ERROR` frame.
    #[error("peer sent error {code}: {message}")]
    Remote {
        /// The peer's code.
        code: ErrorCode,
        /// The peer's message.
        message: String,
    },
}

/// The state of one connection on the collector's side.
///
/// | frame | before `HELLO` | after `HELLO` |
/// |---|---|---|
/// | `HELLO` | token checked, version negotiated, client id claimed, `WELCOME` with the highest written | `UNEXPECTED_FRAME` |
/// | `BATCH` | `UNEXPECTED_FRAME` | deduplicated: [`Step::Write`], or `SEQUENCE_GAP` |
/// | `PING` | `PONG` | `PONG` |
/// | `PONG` | ignored | ignored |
/// | `ERROR` | close | close |
/// | `WELCOME`, `ACK` | `UNEXPECTED_FRAME` | `UNEXPECTED_FRAME` |
#[derive(Debug)]
pub struct ServerSession {
    max_frame: u32,
    token: Option<Arc<[u8]>>,
    peer: Option<Peer>,
    /// Highest sequence number acknowledged on this connection: `ACK`s never
    /// go backwards and are not repeated.
    acked: u64,
    identity: Option<Arc<str>>,
    holders: Option<Arc<Holders>>,
}

/// Which identity holds each client id on the collector's live
/// connections, shared by all of them: a `HELLO` for a client id that a
/// live connection of another identity holds is refused with
/// `CLIENT_ID_TAKEN`, so a credential cannot silence another's client by
/// taking its id. Connections of one identity (a client reconnecting
/// before its old connection is seen closed) share the id freely.
#[derive(Debug, Default)]
pub struct Holders {
    ids: Mutex<HeldIds>,
}

/// Each held client id: the identity holding it, and on how many
/// connections.
type HeldIds = HashMap<Box<str>, (Option<Arc<str>>, usize)>;

impl Holders {
    /// Nobody holds anything.
    pub fn new() -> Self {
        Holders::default()
    }

    fn ids(&self) -> MutexGuard<'_, HeldIds> {
        // Every update is one insert or one counter change.
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `client_id` for `identity`, unless another identity holds it.
    fn claim(&self, client_id: &str, identity: &Option<Arc<str>>) -> bool {
        let mut ids = self.ids();
        match ids.get_mut(client_id) {
            Some((held, n)) if held == identity => {
                *n += 1;
                true
            }
            Some(_) => false,
            None => {
                ids.insert(client_id.into(), (identity.clone(), 1));
                true
            }
        }
    }

    fn release(&self, client_id: &str) {
        let mut ids = self.ids();
        if let Some((_, n)) = ids.get_mut(client_id) {
            *n -= 1;
            if *n == 0 {
                ids.remove(client_id);
            }
        }
    }

    /// Client ids held now.
    pub fn len(&self) -> usize {
        self.ids().len()
    }

    /// Whether no client id is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for ServerSession {
    fn drop(&mut self) {
        if let (Some(h), Some(p)) = (&self.holders, &self.peer) {
            h.release(&p.client_id);
        }
    }
}

fn lock(d: &Mutex<Dedup>) -> MutexGuard<'_, Dedup> {
    // Dedup's state is a map of counters updated in single statements, so
    // a panic elsewhere while holding the lock leaves it consistent.
    d.lock().unwrap_or_else(|e| e.into_inner())
}

impl ServerSession {
    /// A session that announces `max_frame` (raised to the protocol's
    /// minimum of 1 MiB) and, when `token` is set, refuses a `HELLO` whose
    /// token differs.
    pub fn new(max_frame: usize, token: Option<Arc<[u8]>>) -> Self {
        ServerSession {
            max_frame: max_frame.clamp(DEFAULT_MAX_FRAME, u32::MAX as usize) as u32,
            token,
            peer: None,
            acked: 0,
            identity: None,
            holders: None,
        }
    }

    /// Binds the session to what the connection proved: `identity` names
    /// its credential (a client certificate's or a token's; see
    /// `logbraid::tls::identity`), and scopes its client id in the
    /// deduplication; `holders`, shared by the collector's connections,
    /// refuses a client id that a live connection of another identity
    /// holds.
    pub fn identity(mut self, identity: Option<Arc<str>>, holders: Arc<Holders>) -> Self {
        self.identity = identity;
        self.holders = Some(holders);
        self
    }

    /// The client, once its `HELLO` was accepted.
    pub fn peer(&self) -> Option<&Peer> {
        self.peer.as_ref()
    }

    /// Handles one decoded frame, appending any answer to `out`.
    pub fn on_frame<'a>(
        &mut self,
        frame: Frame<'a>,
        dedup: &Mutex<Dedup>,
        out: &mut Vec<u8>,
    ) -> Step<'a> {
        match frame {
            Frame::Hello(h) if self.peer.is_none() => {
                if let Some(expected) = &self.token {
                    if !h.token_matches(expected) {
                        return self.fail(WireError::BadToken, out);
                    }
                }
                let version = match h.negotiate() {
                    Ok(v) => v,
                    Err(e) => return self.fail(e, out),
                };
                if let Some(holders) = &self.holders {
                    if !holders.claim(h.client_id, &self.identity) {
                        return self.fail(WireError::ClientIdTaken(h.client_id.to_string()), out);
                    }
                }
                let key: Box<str> = match &self.identity {
                    Some(i) => format!("{i}/{}", h.client_id).into(),
                    None => h.client_id.into(),
                };
                let highest = lock(dedup).hello(&key, h.epoch);
                self.acked = highest;
                self.peer = Some(Peer {
                    key,
                    identity: self.identity.clone(),
                    client_id: h.client_id.into(),
                    epoch: h.epoch,
                    version,
                    source: Arc::new(Source {
                        host: capped(h.host).to_string(),
                        pid: h.pid,
                        process_name: capped(h.program).to_string(),
                    }),
                });
                encode_welcome(version, highest, self.max_frame, out);
                Step::Continue
            }
            Frame::Batch(batch) => {
                let Some(peer) = &self.peer else {
                    return self.fail(WireError::UnexpectedFrame(FrameType::Batch), out);
                };
                let admit =
                    lock(dedup).admit(&peer.key, peer.epoch, batch.first_seq(), batch.len());
                match admit {
                    Ok(a) => Step::Write {
                        batch,
                        skip: a.skip,
                        last: batch.last_seq(),
                    },
                    Err(e) => self.fail(e, out),
                }
            }
            Frame::Ping { nonce } => {
                encode_pong(nonce, out);
                Step::Continue
            }
            Frame::Pong { .. } => Step::Continue,
            Frame::Error { code, message } => Step::Close(Closed::Remote {
                code,
                message: message.to_string(),
            }),
            other => self.fail(WireError::UnexpectedFrame(other.frame_type()), out),
        }
    }

    /// Reports a decoding error (from [`FrameReader`](super::FrameReader)
    /// or [`decode`](super::decode)) to the peer; the caller then closes.
    pub fn fail(&mut self, error: WireError, out: &mut Vec<u8>) -> Step<'static> {
        encode_error(error.code(), &error.to_string(), out);
        Step::Close(Closed::Local(error))
    }

    /// Records that the batch ending at `last` is written, and appends an
    /// `ACK` when that moves the acknowledged sequence forward.
    pub fn commit(&mut self, last: u64, dedup: &Mutex<Dedup>, out: &mut Vec<u8>) {
        let Some(peer) = &self.peer else { return };
        let written = lock(dedup).commit(&peer.key, peer.epoch, last);
        if let Some(w) = written {
            self.ack(w, out);
        }
    }

    /// Appends an `ACK` for `written` (already committed to the
    /// [`Dedup`] by the caller) when it is above what was acknowledged.
    pub fn ack(&mut self, written: u64, out: &mut Vec<u8>) {
        if written > self.acked {
            self.acked = written;
            encode_ack(written, out);
        }
    }

    /// Highest sequence number acknowledged on this connection.
    pub fn acked(&self) -> u64 {
        self.acked
    }
}

/// Appends an `ERROR` that turns a connection away before its `HELLO` is
/// read: [`ErrorCode::OVERLOADED`] or [`ErrorCode::SHUTTING_DOWN`].
pub fn encode_refusal(code: ErrorCode, out: &mut Vec<u8>) {
    let message = match code {
        ErrorCode::OVERLOADED => "the collector takes no more connections; retry later",
        ErrorCode::SHUTTING_DOWN => "the collector is stopping; retry later",
        _ => code.name(),
    };
    encode_error(code, message, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, encode_hello, BatchEncoder, Hello, SUPPORTED_VERSIONS};
    use crate::{Level, Record};

    fn hello_frame(token: &[u8], epoch: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_hello(
            &Hello {
                versions: SUPPORTED_VERSIONS,
                client_id: "c1",
                epoch,
                host: "h",
                pid: 7,
                program: "p",
                token,
            },
            &mut out,
        )
        .unwrap();
        out
    }

    fn batch_frame(first: u64, n: usize) -> Vec<u8> {
        let src = Source::current();
        let mut enc = BatchEncoder::default();
        for i in 0..n {
            let msg = format!("m{i}");
            assert_eq!(
                enc.push(
                    &Record::new(Level::Info, "t", msg.as_bytes(), &src)
                        .with_timestamp(1)
                        .with_thread_id(1)
                ),
                crate::wire::Push::Added
            );
        }
        let mut out = Vec::new();
        enc.finish(first, &mut out).unwrap();
        out
    }

    fn frames(out: &[u8]) -> Vec<String> {
        let mut rest = out;
        let mut names = Vec::new();
        while !rest.is_empty() {
            let n = crate::wire::frame_len(rest, usize::MAX).unwrap().unwrap();
            names.push(format!("{:?}", decode(&rest[..n]).unwrap()));
            rest = &rest[n..];
        }
        names
    }

    #[test]
    fn a_session_welcomes_dedups_and_acks_once() {
        let dedup = Mutex::new(Dedup::new());
        let mut s = ServerSession::new(0, None);
        let mut out = Vec::new();
        let h = hello_frame(b"", 5);
        assert!(matches!(
            s.on_frame(decode(&h).unwrap(), &dedup, &mut out),
            Step::Continue
        ));
        assert_eq!(
            frames(&out),
            ["Welcome { version: 1, highest: 0, max_frame: 1048576 }"]
        );
        assert_eq!(s.peer().unwrap().source.pid, 7);
        out.clear();
        let b = batch_frame(1, 3);
        let Step::Write { skip, last, .. } = s.on_frame(decode(&b).unwrap(), &dedup, &mut out)
        else {
            panic!("expected a write")
        };
        assert_eq!((skip, last), (0, 3));
        s.commit(3, &dedup, &mut out);
        s.commit(3, &dedup, &mut out);
        assert_eq!(frames(&out), ["Ack { highest: 3 }"]);

        // The same client reconnects and resends 2..=4: two are skipped.
        let mut s2 = ServerSession::new(0, None);
        out.clear();
        s2.on_frame(decode(&h).unwrap(), &dedup, &mut out);
        assert_eq!(
            frames(&out),
            ["Welcome { version: 1, highest: 3, max_frame: 1048576 }"]
        );
        let b = batch_frame(2, 3);
        let Step::Write { skip, last, .. } = s2.on_frame(decode(&b).unwrap(), &dedup, &mut out)
        else {
            panic!("expected a write")
        };
        assert_eq!((skip, last), (2, 4));
    }

    #[test]
    fn long_hello_hosts_and_programs_are_cut_to_255_bytes() {
        let dedup = Mutex::new(Dedup::new());
        // 254 ASCII bytes then 'é' (2 bytes): cut before it, at 254.
        let host = format!("{}é{}", "h".repeat(254), "x".repeat(60_000));
        let program = "p".repeat(65_535);
        let mut frame = Vec::new();
        encode_hello(
            &Hello {
                versions: SUPPORTED_VERSIONS,
                client_id: "c1",
                epoch: 1,
                host: &host,
                pid: 7,
                program: &program,
                token: b"",
            },
            &mut frame,
        )
        .unwrap();
        let mut s = ServerSession::new(0, None);
        let mut out = Vec::new();
        s.on_frame(decode(&frame).unwrap(), &dedup, &mut out);
        let source = &s.peer().unwrap().source;
        assert_eq!(source.host, "h".repeat(254));
        assert_eq!(source.process_name, "p".repeat(MAX_SOURCE_TEXT));
        assert_eq!(source.pid, 7);
    }

    #[test]
    fn wrong_token_batch_before_hello_and_gaps_close_with_their_code() {
        let dedup = Mutex::new(Dedup::new());
        let token: Arc<[u8]> = Arc::from(&b"s3cret"[..]);
        let cases: [(Vec<Vec<u8>>, u16); 3] = [
            (vec![hello_frame(b"nope", 1)], 1),
            (vec![batch_frame(1, 1)], 9),
            (
                vec![
                    hello_frame(b"s3cret", 2),
                    batch_frame(1, 1),
                    batch_frame(5, 1),
                ],
                5,
            ),
        ];
        for (input, code) in cases {
            let mut s = ServerSession::new(0, Some(token.clone()));
            let mut out = Vec::new();
            let mut closed = None;
            for f in &input {
                if let Step::Close(c) = s.on_frame(decode(f).unwrap(), &dedup, &mut out) {
                    closed = Some(c);
                    break;
                }
            }
            let Some(Closed::Local(e)) = closed else {
                panic!("expected a close for code {code}")
            };
            assert_eq!(e.code(), ErrorCode(code));
            let last = frames(&out).pop().unwrap();
            assert!(
                last.starts_with(&format!("Error {{ code: ErrorCode({code})")),
                "{last}"
            );
        }
    }

    #[test]
    fn a_client_id_is_scoped_by_identity_and_held_by_one_identity_at_a_time() {
        let dedup = Mutex::new(Dedup::new());
        let holders = Arc::new(Holders::new());
        let session = |who: &str| {
            ServerSession::new(0, None).identity(Some(Arc::from(who)), Arc::clone(&holders))
        };
        let mut out = Vec::new();
        let h = hello_frame(b"", 5);

        // alice writes 1..=3 under c1.
        let mut alice = session("cert:aa");
        alice.on_frame(decode(&h).unwrap(), &dedup, &mut out);
        assert_eq!(&*alice.peer().unwrap().key, "cert:aa/c1");
        let b = batch_frame(1, 3);
        assert!(matches!(
            alice.on_frame(decode(&b).unwrap(), &dedup, &mut out),
            Step::Write { skip: 0, .. }
        ));
        alice.commit(3, &dedup, &mut out);

        // mallory asks for c1 while alice's connection lives: refused.
        out.clear();
        let mut mallory = session("cert:bb");
        let Step::Close(Closed::Local(e)) = mallory.on_frame(decode(&h).unwrap(), &dedup, &mut out)
        else {
            panic!("expected a refusal")
        };
        assert_eq!(e.code(), ErrorCode::CLIENT_ID_TAKEN);
        assert!(e.code().is_transient());
        assert_eq!(
            frames(&out),
            ["Error { code: ErrorCode(10), message: \"client id \\\"c1\\\" is in use by a connection with another credential\" }"]
        );
        drop(mallory);

        // alice's second connection (a reconnect) shares the id.
        out.clear();
        let mut again = session("cert:aa");
        again.on_frame(decode(&h).unwrap(), &dedup, &mut out);
        assert_eq!(
            frames(&out),
            ["Welcome { version: 1, highest: 3, max_frame: 1048576 }"]
        );
        drop(again);
        drop(alice);
        assert!(holders.is_empty());

        // Once alice is gone, mallory gets c1, but not alice's numbering.
        out.clear();
        let mut mallory = session("cert:bb");
        mallory.on_frame(decode(&h).unwrap(), &dedup, &mut out);
        assert_eq!(
            frames(&out),
            ["Welcome { version: 1, highest: 0, max_frame: 1048576 }"]
        );
        assert_eq!(holders.len(), 1);
    }
}
