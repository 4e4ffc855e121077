//! Python `SocketHandler` pickles and syslog over TCP: byte streams of
//! records without acknowledgements. The two differ only in how the stream
//! is cut into messages and how a message becomes a record, so they share
//! one loop.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use logbraid::{OwnedRecord, Source};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Conn, Protocol, Read, READ_CHUNK};
use crate::diag::Kind;
use crate::intake::python::{self, PythonIntake};
use crate::intake::syslog::{self, SyslogFrameError, SyslogTcpDecoder};
use crate::intake::SourceCache;
use crate::output::{Body, Delivery};

impl Conn<'_> {
    /// Python `SocketHandler` and syslog over TCP: records without acks.
    pub(super) async fn records<S: AsyncRead + AsyncWrite + Unpin>(
        mut self,
        s: &mut S,
        proto: Protocol,
    ) {
        let max = self.server.config.max_frame;
        let mut py = (proto == Protocol::PythonTcp).then(|| python::FrameDecoder::new(max));
        let mut sl = (proto == Protocol::SyslogTcp).then(|| SyslogTcpDecoder::new(max));
        let mut intake = PythonIntake::default();
        let mut sources = SourceCache::new();
        let source = Arc::new(Source {
            host: self.peer.clone(),
            pid: 0,
            process_name: String::new(),
        });
        let mut chunk = vec![0u8; READ_CHUNK];
        let idle = self.server.config.idle_timeout;
        loop {
            let (n, ended) = match self.next(s, &mut chunk, None, idle).await {
                Read::Bytes(n) => (n, false),
                Read::Ack(_) | Read::Stopping => continue,
                Read::Timeout => {
                    // Everything decoded so far was delivered after its read.
                    self.reject(Kind::Idle, &format_args!("nothing received for {idle:?}"));
                    return;
                }
                Read::End => (0, true),
            };
            let now = logbraid::clock::now_ns();
            let mut records: Vec<OwnedRecord> = Vec::new();
            let mut close: Option<(Kind, String)> = None;
            if let Some(d) = py.as_mut() {
                d.push(&chunk[..n]);
                loop {
                    match d.next_frame() {
                        Ok(Some(p)) => match intake.decode(p, &self.peer, now) {
                            Ok(r) => records.push(r),
                            Err(e) => {
                                close = Some((Kind::BadPickle, e.to_string()));
                                break;
                            }
                        },
                        Ok(None) => break,
                        Err(e) => {
                            close = Some((python_frame_kind(&e), e.to_string()));
                            break;
                        }
                    }
                }
                if ended && close.is_none() {
                    if let Err(e) = d.finish() {
                        close = Some((python_frame_kind(&e), e.to_string()));
                    }
                }
            }
            if let Some(d) = sl.as_mut() {
                d.push(&chunk[..n]);
                let mut frames = Vec::new();
                loop {
                    match d.next_frame() {
                        Ok(Some(f)) => frames.push(f),
                        Ok(None) => break,
                        Err(e) => {
                            close = Some((syslog_frame_kind(&e), e.to_string()));
                            break;
                        }
                    }
                }
                if ended && close.is_none() {
                    match d.finish() {
                        Ok(f) => frames.extend(f),
                        Err(e) => close = Some((syslog_frame_kind(&e), e.to_string())),
                    }
                }
                for f in frames {
                    match syslog::parse_with(&f, now, &self.peer, &mut sources) {
                        Ok(r) => records.push(r),
                        Err(e) => {
                            close = Some((Kind::BadSyslog, e.to_string()));
                            break;
                        }
                    }
                }
            }
            if !records.is_empty() {
                self.server
                    .stats
                    .records
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                let d = Delivery {
                    source: Arc::clone(&source),
                    body: Body::Records(records),
                    ack: None,
                };
                if !self.server.output.send(d).await {
                    return;
                }
            }
            if let Some((kind, why)) = close {
                self.reject(kind, &why);
                return;
            }
            if ended {
                return;
            }
        }
    }
}

pub(super) fn python_frame_kind(e: &python::FrameError) -> Kind {
    match e {
        python::FrameError::TooLarge { .. } => Kind::FrameTooLarge,
        python::FrameError::Truncated { .. } => Kind::Truncated,
        _ => Kind::Malformed,
    }
}

fn syslog_frame_kind(e: &SyslogFrameError) -> Kind {
    match e {
        SyslogFrameError::TooLarge { .. } => Kind::FrameTooLarge,
        SyslogFrameError::Truncated { .. } => Kind::Truncated,
        _ => Kind::Malformed,
    }
}
