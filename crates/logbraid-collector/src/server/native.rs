//! The native protocol (`PROTOCOL.md`) over Unix sockets and TCP: a
//! [`ServerSession`] per connection, whose batches go to the output stage
//! whole and whose acknowledgements come back on a channel of the
//! connection.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use logbraid::tls::{identity, Credential};
use logbraid::wire::{self, ServerSession, Step};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::budget::grown;
use super::{Conn, Read, READ_CHUNK};
use crate::diag::Kind;
use crate::intake::python::append_exact;
use crate::output::{AckTo, Body, Delivery};

/// Why a connection ends after the frames of one read.
enum Close {
    /// Its fault, already answered with an `ERROR` frame in `out`: counted
    /// and said.
    Fault(Kind, String),
    /// The client sent `ERROR`: it closes too, nothing to count.
    Peer,
}

impl Conn<'_> {
    /// Serves one native connection until it closes, fails, stays quiet,
    /// or the server stops. Frames are cut from the connection's own
    /// buffer with [`wire::frame_len`], which checks a frame's length from
    /// its four length bytes before waiting for the rest; each accepted
    /// `BATCH` frame is copied whole into its [`Delivery`], and awaiting
    /// the hand-over is the backpressure: the connection reads nothing
    /// more until the output stage has room.
    ///
    /// `cert` is the identity of the client's TLS certificate; without
    /// one, a token (when the collector requires one) is the credential.
    /// The session's client id is scoped by it.
    pub(super) async fn native<S: AsyncRead + AsyncWrite + Unpin>(
        mut self,
        s: &mut S,
        cert: Option<Arc<str>>,
    ) {
        let cfg = &self.server.config;
        let hello_by = Instant::now() + cfg.hello_timeout;
        let identity = cert.or_else(|| {
            cfg.token
                .as_ref()
                .map(|t| Arc::from(identity(Credential::Token(t))))
        });
        let mut session = ServerSession::new(cfg.max_frame, cfg.token.clone())
            .identity(identity, Arc::clone(&self.server.holders));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut out = Vec::new();
        let mut res = self.server.reservation();
        loop {
            let mut start = 0;
            let mut close = None;
            while close.is_none() {
                let total = match wire::frame_len(&buf[start..], cfg.max_frame) {
                    Ok(Some(n)) if buf.len() - start >= n => n,
                    Ok(_) => break,
                    Err(e) => {
                        close = Some(Close::Fault(Kind::of_wire(&e), e.to_string()));
                        session.fail(e, &mut out);
                        break;
                    }
                };
                let bytes = &buf[start..start + total];
                start += total;
                let frame = match wire::decode(bytes) {
                    Ok(f) => f,
                    Err(e) => {
                        close = Some(Close::Fault(Kind::of_wire(&e), e.to_string()));
                        session.fail(e, &mut out);
                        break;
                    }
                };
                match session.on_frame(frame, &self.server.dedup, &mut out) {
                    Step::Continue => {}
                    Step::Write { batch, skip, last } => {
                        // A session writes only after its HELLO.
                        let Some(peer) = session.peer() else { break };
                        let d = Delivery {
                            source: Arc::clone(&peer.source),
                            body: Body::Native {
                                frame: bytes.to_vec(),
                                skip,
                            },
                            ack: Some(AckTo {
                                client_id: peer.key.clone(),
                                epoch: peer.epoch,
                                last,
                                tx: tx.clone(),
                            }),
                        };
                        let stats = &self.server.stats;
                        self.received.inc_by(u64::from(batch.len()));
                        stats
                            .duplicates
                            .fetch_add(u64::from(skip), Ordering::Relaxed);
                        stats
                            .records
                            .fetch_add(u64::from(batch.len() - skip), Ordering::Relaxed);
                        if !self.server.output.send(d).await {
                            return;
                        }
                    }
                    Step::Close(wire::Closed::Local(e)) => {
                        close = Some(Close::Fault(Kind::of_wire(&e), e.to_string()));
                    }
                    Step::Close(wire::Closed::Remote { .. }) => close = Some(Close::Peer),
                }
            }
            buf.drain(..start);
            if buf.is_empty() && buf.capacity() > READ_CHUNK {
                // After a large frame, an idle connection gives the memory
                // back instead of pinning up to max_frame bytes.
                buf = Vec::new();
            }
            if !out.is_empty() {
                if s.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
            match close {
                Some(Close::Fault(kind, why)) => return self.reject(kind, &why),
                Some(Close::Peer) => return,
                None => {}
            }
            // What the buffer may come to after the next read (each batch
            // went to the output stage as a copy, counted there).
            let end = match wire::frame_len(&buf, cfg.max_frame) {
                Ok(Some(n)) => n,
                _ => 0,
            };
            let need = grown(buf.capacity(), buf.len(), end, READ_CHUNK);
            res.shrink_to(need);
            if !self.reserve(&mut res, need).await {
                return;
            }
            let greeted = session.peer().is_some();
            if greeted {
                // Said who it is: no longer evicted to make room.
                self.slot.spoke();
            }
            let wait = if greeted {
                cfg.idle_timeout
            } else {
                hello_by
                    .saturating_duration_since(Instant::now())
                    .min(cfg.idle_timeout)
            };
            match self.next(s, &mut chunk, Some(&mut rx), wait).await {
                Read::Bytes(n) => {
                    append_exact(&mut buf, &chunk[..n]);
                    if let Ok(Some(end)) = wire::frame_len(&buf, cfg.max_frame) {
                        // Room for the rest of the frame at once.
                        buf.reserve_exact(end.saturating_sub(buf.len()));
                    }
                }
                Read::Ack(w) => {
                    session.ack(w, &mut out);
                    while let Ok(w) = rx.try_recv() {
                        session.ack(w, &mut out);
                    }
                }
                Read::Stopping => {}
                Read::Evicted => {
                    self.reject(
                        Kind::Evicted,
                        &"no HELLO yet, evicted to make room for a new connection",
                    );
                    return;
                }
                Read::Timeout if !greeted && Instant::now() >= hello_by => {
                    self.reject(
                        Kind::HelloTimeout,
                        &format_args!("no complete HELLO within {:?}", cfg.hello_timeout),
                    );
                    return;
                }
                Read::Timeout => {
                    self.reject(Kind::Idle, &format_args!("nothing received for {wait:?}"));
                    return;
                }
                Read::End => {
                    if !buf.is_empty() {
                        self.reject(
                            Kind::Truncated,
                            &format_args!(
                                "stream ended inside a frame, {} bytes unread",
                                buf.len()
                            ),
                        );
                    }
                    return;
                }
            }
        }
    }
}
