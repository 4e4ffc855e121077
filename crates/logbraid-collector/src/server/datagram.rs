//! Python `DatagramHandler` pickles and syslog over UDP: one record per
//! datagram, no connection, no acknowledgement.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use logbraid::{FieldsBuf, Record, Source};
use prometheus_client::metrics::counter::Counter;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::budget::work_for;
use super::stream::{python_frame_kind, HAND_OVER, WORK_SHARE};
use super::{Protocol, Server};
use crate::diag::{Action, Kind};
use crate::intake::python::{self, PythonIntake};
use crate::intake::syslog;
use crate::intake::SourceCache;
use crate::output::RecordBatch;

/// Datagrams taken off the socket in one go, at most: they become one
/// delivery, so a burst costs one hand-over, not one per record.
const DATAGRAM_BATCH: usize = 256;

/// Decodes datagrams of one UDP listener.
struct Datagrams<'a> {
    server: &'a Server,
    proto: Protocol,
    buf: Vec<u8>,
    intake: PythonIntake,
    sources: SourceCache,
    /// The fields of the syslog record being made.
    fields: FieldsBuf,
}

impl Datagrams<'_> {
    /// Decodes the datagram in `buf[..n]` into `records`; a bad one is
    /// counted and dropped.
    fn decode(&mut self, n: usize, peer: SocketAddr, records: &mut RecordBatch) {
        let host = peer.ip().to_string();
        let now = logbraid::clock::now_ns();
        let bytes = &self.buf[..n];
        let got = match self.proto {
            Protocol::PythonUdp => python::datagram(bytes)
                .map_err(|e| (python_frame_kind(&e), e.to_string()))
                .and_then(|p| {
                    // One task per listener decodes: its working memory is
                    // that of one datagram at a time.
                    let cap = self.server.config.memory / WORK_SHARE;
                    self.intake.limit_work(work_for(p.len(), cap));
                    self.intake
                        .decode_then(p, &host, now, |r, s| records.push(r, s))
                        .map_err(|e| (Kind::BadPickle, e.to_string()))
                }),
            _ => {
                let push = |r: &Record<'_>, s: &Arc<Source>| records.push(r, s);
                syslog::parse_then(bytes, now, &host, &mut self.sources, &mut self.fields, push)
                    .map_err(|e| (Kind::BadSyslog, e.to_string()))
            }
        };
        match got {
            Ok(()) => {}
            Err((kind, why)) => {
                self.server
                    .stats
                    .diagnostics
                    .emit(kind, &host, Action::Dropped, &why)
            }
        }
    }

    /// Takes what is already queued, up to a batch, with `recv`; `true`
    /// when the queue is empty (or the socket failed).
    fn take_queued(
        &mut self,
        mut recv: impl FnMut(&mut [u8]) -> io::Result<(usize, SocketAddr)>,
        records: &mut RecordBatch,
    ) -> bool {
        for _ in 0..DATAGRAM_BATCH {
            // Records can be much larger than their datagrams: hand them
            // over before they weigh much.
            if records.weight() >= HAND_OVER {
                break;
            }
            match recv(&mut self.buf) {
                Ok((n, peer)) => self.decode(n, peer, records),
                Err(_) => return true,
            }
        }
        if self.fields.capacity() > crate::intake::python::KEEP_BUFFER {
            self.fields = FieldsBuf::new();
        }
        false
    }
}

/// Python `DatagramHandler` and syslog over UDP: one record a datagram;
/// a bad datagram is counted and dropped (there is no connection to
/// close). When the server stops, the datagrams already queued on the
/// socket are still written (until the drain time is over, so a sender
/// that keeps sending cannot hold the stop up).
pub(super) async fn udp(
    server: &Server,
    s: UdpSocket,
    proto: Protocol,
    mut stop: watch::Receiver<bool>,
    received: &Counter,
) {
    let mut d = Datagrams {
        server,
        proto,
        buf: vec![0u8; 65536],
        intake: PythonIntake::default(),
        sources: SourceCache::new(),
        fields: FieldsBuf::new(),
    };
    // Decoded records carry their own source; this one is not used for them.
    let placeholder = Arc::new(Source {
        host: String::new(),
        pid: 0,
        process_name: String::new(),
    });
    loop {
        let mut records = RecordBatch::new();
        tokio::select! {
            r = s.recv_from(&mut d.buf) => {
                if let Ok((n, peer)) = r {
                    d.decode(n, peer, &mut records);
                }
            }
            _ = stop.changed() => break,
        }
        // Whatever else is waiting goes into the same delivery.
        d.take_queued(|b| s.try_recv_from(b), &mut records);
        if !server.hand_over(records, &placeholder, received).await {
            return;
        }
    }
    // Stopping. tokio's `try_recv_from` trusts the readiness its reactor
    // last saw, which may predate the datagrams queued just before the
    // stop; the plain non-blocking socket asks the kernel itself.
    let Ok(s) = s.into_std() else { return };
    let cut = server.cut.subscribe();
    loop {
        let mut records = RecordBatch::new();
        let empty = d.take_queued(|b| s.recv_from(b), &mut records);
        if !server.hand_over(records, &placeholder, received).await || empty || *cut.borrow() {
            return;
        }
    }
}
