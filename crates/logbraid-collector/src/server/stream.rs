//! Python `SocketHandler` pickles and syslog over TCP: byte streams of
//! records without acknowledgements. The two differ only in how the stream
//! is cut into messages and how a message becomes a record, so they share
//! one loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use logbraid::{FieldsBuf, Record, Source};
use tokio::io::{AsyncRead, AsyncWrite};

use super::budget::{grown, work_for};
use super::{Conn, Protocol, Read, MIN_RATE, RATE_WINDOW, READ_CHUNK};
use crate::diag::Kind;
use crate::intake::python::{self, PythonIntake, KEEP_BUFFER};
use crate::intake::syslog::{self, SyslogFrameError, SyslogTcpDecoder};
use crate::intake::SourceCache;
use crate::output::{RecordBatch, RECORD_OVERHEAD};

impl Conn<'_> {
    /// Python `SocketHandler` and syslog over TCP: records without acks.
    ///
    /// Memory: before each read, and before each frame is decoded, the
    /// connection's [`Reservation`](super::budget::Reservation) is made to
    /// cover what it may then hold (the buffer after the read, the frame's
    /// working memory, what the decoders keep, the records not yet handed
    /// over); records are handed over every [`HAND_OVER`] bytes of them.
    pub(super) async fn records<S: AsyncRead + AsyncWrite + Unpin>(
        mut self,
        s: &mut S,
        proto: Protocol,
    ) {
        let server = self.server;
        let max = server.config.max_frame;
        let work_cap = server.config.memory / WORK_SHARE;
        let mut py = (proto == Protocol::PythonTcp).then(|| python::FrameDecoder::new(max));
        let mut sl = (proto == Protocol::SyslogTcp).then(|| SyslogTcpDecoder::new(max));
        let mut intake = PythonIntake::default();
        let mut sources = SourceCache::new();
        // The fields of the syslog record being made.
        let mut fields = FieldsBuf::new();
        let source = Arc::new(Source {
            host: self.host.clone(),
            pid: 0,
            process_name: String::new(),
        });
        let mut res = server.reservation();
        let mut chunk = vec![0u8; READ_CHUNK];
        let idle = server.config.idle_timeout;
        let header = server.config.hello_timeout;
        let header_by = Instant::now() + header;
        let mut spoke = false;
        // While a record is in progress: the time spent waiting for it and
        // the bytes that came meanwhile, in the current window.
        let mut progress: Option<(Duration, usize)> = None;
        let mut batch = Batch::default();
        loop {
            // What the decoders keep between frames, and the room kept for
            // the next records.
            let kept =
                intake.retained_bytes() + sources.bytes() + fields.capacity() + batch.spare();
            // The buffer after the next read, and the working memory of the
            // frame it holds, reserved at once.
            let need = match (&py, &sl) {
                (Some(d), _) => {
                    let (len, cap) = d.buffer();
                    let end = d.frame_end().unwrap_or(0);
                    let unread = d.buffered();
                    let work = if end > 0 { work_for(end, work_cap) } else { 0 };
                    grown(cap, len, len - unread + end, READ_CHUNK) + work
                }
                (_, Some(d)) => {
                    let (len, cap) = d.buffer();
                    grown(cap, len, 0, READ_CHUNK)
                }
                _ => 0,
            };
            res.shrink_to(need + kept);
            if !self.reserve(&mut res, need + kept).await {
                return;
            }
            let mut wait = idle;
            if !spoke {
                wait = wait.min(header_by.saturating_duration_since(Instant::now()));
            }
            if let Some((spent, _)) = progress {
                wait = wait.min(RATE_WINDOW.saturating_sub(spent));
            }
            let began = Instant::now();
            let read = self.next(s, &mut chunk, None, wait).await;
            if let Some((spent, _)) = progress.as_mut() {
                *spent += began.elapsed();
            }
            let (n, ended) = match read {
                Read::Bytes(n) => (n, false),
                Read::Ack(_) | Read::Stopping => continue,
                Read::Timeout if !spoke && Instant::now() >= header_by => {
                    self.reject(
                        Kind::HelloTimeout,
                        &format_args!("no complete record within {header:?}"),
                    );
                    return;
                }
                Read::Timeout if progress.is_some() => (0, false),
                Read::Timeout => {
                    // Everything decoded so far was delivered after its read.
                    self.reject(Kind::Idle, &format_args!("nothing received for {idle:?}"));
                    return;
                }
                Read::Evicted => {
                    self.reject(
                        Kind::Evicted,
                        &"no complete record yet, evicted to make room for a new connection",
                    );
                    return;
                }
                Read::End => (0, true),
            };
            let now = logbraid::clock::now_ns();
            batch.count = 0;
            let mut close: Option<(Kind, String)> = None;
            if let Some(d) = py.as_mut() {
                d.push(&chunk[..n]);
                let cap = d.buffer().1;
                loop {
                    let held = cap + intake.retained_bytes() + sources.bytes() + batch.spare();
                    match d.next_frame() {
                        Ok(Some(p)) => {
                            let work = work_for(p.len(), work_cap);
                            if !self.reserve(&mut res, held + batch.weight() + work).await {
                                return;
                            }
                            intake.limit_work(work);
                            match intake.decode_then(p, &self.host, now, |r, s| batch.push(r, s)) {
                                Ok(()) => {}
                                Err(e) => {
                                    close = Some((Kind::BadPickle, e.to_string()));
                                    break;
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            close = Some((python_frame_kind(&e), e.to_string()));
                            break;
                        }
                    }
                    if batch.weight() >= HAND_OVER && !self.hand_over(&mut batch, &source).await {
                        return;
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
                let held = d.buffer().1 + kept;
                let mut last = false;
                while close.is_none() {
                    let frame = match d.next_frame() {
                        Ok(Some(f)) => f,
                        Ok(None) if ended && !last => {
                            last = true;
                            match d.finish() {
                                Ok(Some(f)) => f,
                                Ok(None) => break,
                                Err(e) => {
                                    close = Some((syslog_frame_kind(&e), e.to_string()));
                                    break;
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            close = Some((syslog_frame_kind(&e), e.to_string()));
                            break;
                        }
                    };
                    // The record made of the frame: its message, its name
                    // and its fields, each at most the frame's length, the
                    // fields again in the buffer they are made in, and a
                    // margin.
                    let need = held + batch.weight() + 4 * frame.len() + RECORD_OVERHEAD;
                    if !self.reserve(&mut res, need).await {
                        return;
                    }
                    let host = &self.host;
                    let push = |r: &Record<'_>, s: &Arc<Source>| batch.push(r, s);
                    match syslog::parse_then(frame, now, host, &mut sources, &mut fields, push) {
                        Ok(()) => {}
                        Err(e) => close = Some((Kind::BadSyslog, e.to_string())),
                    }
                    if batch.weight() >= HAND_OVER && !self.hand_over(&mut batch, &source).await {
                        return;
                    }
                }
            }
            if !spoke && batch.count > 0 {
                spoke = true;
                // A record came: no longer evicted to make room.
                self.slot.spoke();
            }
            if !self.hand_over(&mut batch, &source).await {
                return;
            }
            let in_progress = match (&py, &sl) {
                (Some(d), _) => d.buffered(),
                (_, Some(d)) => d.buffered(),
                _ => 0,
            };
            if close.is_none() && !ended {
                close = pace(&mut progress, in_progress > 0, n);
            }
            if let Some((kind, why)) = close {
                self.reject(kind, &why);
                return;
            }
            if ended {
                return;
            }
            // The frames are handed over: buffers shrink, and the next
            // round's reservation is what is still held.
            match (&mut py, &mut sl) {
                (Some(d), _) => d.shrink(),
                (_, Some(d)) => d.shrink(),
                _ => {}
            }
            if fields.capacity() > KEEP_BUFFER {
                fields = FieldsBuf::new();
            }
        }
    }

    /// Hands the records of `batch` to the output stage (nothing when it
    /// is empty); `false` when the output stage has stopped.
    async fn hand_over(&self, batch: &mut Batch, source: &Arc<Source>) -> bool {
        if batch.records.is_empty() {
            return true;
        }
        // The next batch is likely as long: room for it at once, rather
        // than growing (and moving every record) while it fills. The room
        // is counted in the connection's reservation (`Batch::spare`).
        let next = RecordBatch::with_room_of(&batch.records);
        let records = std::mem::replace(&mut batch.records, next);
        self.server.hand_over(records, source, &self.received).await
    }
}

/// Records decoded and not yet handed over, and how many were decoded in
/// this read.
#[derive(Default)]
struct Batch {
    records: RecordBatch,
    count: usize,
}

impl Batch {
    /// The bytes the records hold ([`RecordBatch::weight`]).
    fn weight(&self) -> usize {
        self.records.weight()
    }

    /// The bytes of the room for records not yet used.
    fn spare(&self) -> usize {
        self.records.spare()
    }

    fn push(&mut self, r: &Record<'_>, source: &Arc<Source>) {
        self.count += 1;
        self.records.push(r, source);
    }
}

/// Keeps the rate window of a record in progress after a read of `n`
/// bytes: none when no record is in progress (a new one starts its window
/// with its first bytes); the reason to close when a window of
/// [`RATE_WINDOW`] spent waiting brought less than [`MIN_RATE`] bytes a
/// second.
fn pace(
    progress: &mut Option<(Duration, usize)>,
    in_progress: bool,
    n: usize,
) -> Option<(Kind, String)> {
    if !in_progress {
        *progress = None;
        return None;
    }
    let Some((spent, bytes)) = progress.as_mut() else {
        *progress = Some((Duration::ZERO, 0));
        return None;
    };
    *bytes += n;
    if *spent < RATE_WINDOW {
        return None;
    }
    let least = MIN_RATE * RATE_WINDOW.as_secs() as usize;
    if *bytes < least {
        return Some((
            Kind::TooSlow,
            format!(
                "a record in progress got {bytes} bytes in {spent:?}, less than {MIN_RATE} bytes a second"
            ),
        ));
    }
    *progress = Some((Duration::ZERO, 0));
    None
}

/// Records are handed to the output stage once they weigh this much,
/// rather than once per read: what a connection holds of them stays small.
pub(super) const HAND_OVER: usize = 256 << 10;

/// The most working memory one frame may use is the pool's size divided by
/// this: several large frames can be decoded at once.
pub(super) const WORK_SHARE: usize = 4;

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
