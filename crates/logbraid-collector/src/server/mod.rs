//! The listeners: native protocol over Unix sockets and TCP, Python
//! `SocketHandler`/`DatagramHandler`, syslog over UDP and TCP. Every
//! connection decodes in its own task and hands records to the
//! [`output`](crate::output) stage, whose byte budget is the backpressure:
//! a connection waiting for room stops reading its socket, and the others
//! go on.
//!
//! The caller binds ([`bind`]) and owns the shutdown future ([`run`]), so
//! tests bind port 0 and stop the server when they choose.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logbraid::wire::{self, Dedup, ErrorCode, ServerSession, Step};
use logbraid::{OwnedRecord, Source};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::diag::{Diagnostics, Kind};
use crate::intake::python::{self, PythonIntake};
use crate::intake::syslog::{self, SyslogTcpDecoder};
use crate::intake::SourceCache;
use crate::output::{AckTo, Body, Delivery, OutputHandle};

/// What a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The native protocol (`PROTOCOL.md`).
    Native,
    /// Python's `SocketHandler` pickles over TCP.
    PythonTcp,
    /// Python's `DatagramHandler` pickles over UDP.
    PythonUdp,
    /// Syslog over TCP (octet counting or newline framing).
    SyslogTcp,
    /// Syslog over UDP.
    SyslogUdp,
}

/// Where a listener listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    /// A Unix socket path.
    Unix(PathBuf),
    /// `host:port`.
    Inet(String),
}

/// A parsed `--listen` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenUrl {
    /// What it speaks.
    pub protocol: Protocol,
    /// Where.
    pub addr: Addr,
}

impl ListenUrl {
    /// Parses `unix:PATH`, `tcp://`, `python-tcp://`, `python-udp://`,
    /// `syslog-tcp://` or `syslog-udp://` followed by `HOST:PORT`.
    pub fn parse(url: &str) -> Result<ListenUrl, String> {
        if let Some(p) = url.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(format!("{url:?}: the unix: URL has no path"));
            }
            return Ok(ListenUrl {
                protocol: Protocol::Native,
                addr: Addr::Unix(PathBuf::from(p)),
            });
        }
        let schemes = [
            ("tcp://", Protocol::Native),
            ("python-tcp://", Protocol::PythonTcp),
            ("python-udp://", Protocol::PythonUdp),
            ("syslog-tcp://", Protocol::SyslogTcp),
            ("syslog-udp://", Protocol::SyslogUdp),
        ];
        for (scheme, protocol) in schemes {
            if let Some(hp) = url.strip_prefix(scheme) {
                let Some((host, port)) = hp.rsplit_once(':') else {
                    return Err(format!("{url:?}: expected {scheme}HOST:PORT"));
                };
                if host.is_empty() {
                    return Err(format!("{url:?}: no host"));
                }
                if port.parse::<u16>().is_err() {
                    return Err(format!("{url:?}: the port is not a number from 0 to 65535"));
                }
                return Ok(ListenUrl {
                    protocol,
                    addr: Addr::Inet(hp.to_string()),
                });
            }
        }
        Err(format!(
            "{url:?}: unknown scheme; use unix:PATH, tcp://, python-tcp://, python-udp://, syslog-tcp:// or syslog-udp://"
        ))
    }

    fn scheme(&self) -> &'static str {
        match self.protocol {
            Protocol::Native => "tcp://",
            Protocol::PythonTcp => "python-tcp://",
            Protocol::PythonUdp => "python-udp://",
            Protocol::SyslogTcp => "syslog-tcp://",
            Protocol::SyslogUdp => "syslog-udp://",
        }
    }
}

/// A bound listener, ready for [`run`].
#[derive(Debug)]
pub enum Listener {
    /// Native protocol on a Unix socket; the file is removed at the end.
    Unix(UnixListener, PathBuf),
    /// A TCP listener.
    Tcp(TcpListener, Protocol),
    /// A UDP socket.
    Udp(UdpSocket, Protocol),
}

/// Binds a listener; returns it with its URL, port 0 replaced by the port
/// the system chose. A Unix socket file left by a collector that is gone
/// is replaced; one that a live collector answers on is an error.
pub async fn bind(url: &ListenUrl) -> io::Result<(Listener, String)> {
    match (&url.addr, url.protocol) {
        (Addr::Unix(p), _) => {
            if p.exists() {
                if tokio::net::UnixStream::connect(p).await.is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{} is in use by a running collector", p.display()),
                    ));
                }
                let _ = std::fs::remove_file(p);
            }
            let l = UnixListener::bind(p)?;
            Ok((
                Listener::Unix(l, p.clone()),
                format!("unix:{}", p.display()),
            ))
        }
        (Addr::Inet(hp), proto @ (Protocol::PythonUdp | Protocol::SyslogUdp)) => {
            let s = UdpSocket::bind(hp.as_str()).await?;
            let a = s.local_addr()?;
            Ok((Listener::Udp(s, proto), format!("{}{a}", url.scheme())))
        }
        (Addr::Inet(hp), proto) => {
            let l = TcpListener::bind(hp.as_str()).await?;
            let a = l.local_addr()?;
            Ok((Listener::Tcp(l, proto), format!("{}{a}", url.scheme())))
        }
    }
}

/// Limits of a server.
///
/// | setting | default |
/// |---|---|
/// | token | none |
/// | max frame | 1 MiB |
/// | max connections | 1024 |
/// | idle timeout | 60 s |
/// | drain | 5 s: how long a stopping server waits for open connections |
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Native clients must present this token.
    pub token: Option<Arc<[u8]>>,
    /// Longest frame accepted, on every stream protocol.
    pub max_frame: usize,
    /// Stream connections served at once.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// How long a stopping server lets open connections finish.
    pub drain: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            token: None,
            max_frame: wire::DEFAULT_MAX_FRAME,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            drain: Duration::from_secs(5),
        }
    }
}

/// Counters of a server.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Records handed to the output stage.
    pub records: AtomicU64,
    /// Rejected input, by kind.
    pub diagnostics: Diagnostics,
}

/// A collector's listeners with their shared state.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    output: OutputHandle,
    dedup: Arc<Mutex<Dedup>>,
    slots: Arc<Semaphore>,
    stats: Arc<Stats>,
}

/// After a stop, a connection quiet for this long is done.
const QUIET_AFTER_STOP: Duration = Duration::from_millis(200);

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 256 << 10;

impl Server {
    /// A server handing records to `output`; `dedup` is the table the
    /// output stage commits to.
    pub fn new(config: ServerConfig, output: OutputHandle, dedup: Arc<Mutex<Dedup>>) -> Server {
        let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
        Server {
            config,
            output,
            dedup,
            slots,
            stats: Arc::new(Stats::default()),
        }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }
}

/// Serves until `shutdown` completes, then stops accepting, lets open
/// connections finish (up to the drain time) and removes Unix socket files.
/// The caller then shuts the output stage down.
pub async fn run(server: Arc<Server>, listeners: Vec<Listener>, shutdown: impl Future) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sockets = Vec::new();
    let mut loops = Vec::new();
    for l in listeners {
        if let Listener::Unix(_, p) = &l {
            sockets.push(p.clone());
        }
        loops.push(tokio::spawn(listen(
            Arc::clone(&server),
            l,
            stop_rx.clone(),
        )));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    let max = server.config.max_connections.max(1);
    let drained = async {
        while server.slots.available_permits() < max {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let _ = tokio::time::timeout(server.config.drain, drained).await;
    for p in sockets {
        let _ = std::fs::remove_file(p);
    }
}

async fn listen(server: Arc<Server>, l: Listener, mut stop: watch::Receiver<bool>) {
    match l {
        Listener::Udp(s, proto) => {
            tokio::select! {
                _ = udp(&server, s, proto) => {}
                _ = stop.changed() => {}
            }
        }
        Listener::Unix(l, _) => loop {
            tokio::select! {
                r = l.accept() => {
                    let Ok((s, _)) = r else { continue };
                    start(&server, s, "unix socket".to_string(), Protocol::Native, &stop);
                }
                _ = stop.changed() => return,
            }
        },
        Listener::Tcp(l, proto) => loop {
            tokio::select! {
                r = l.accept() => {
                    let Ok((s, peer)) = r else { continue };
                    let _ = s.set_nodelay(true);
                    start(&server, s, peer.ip().to_string(), proto, &stop);
                }
                _ = stop.changed() => return,
            }
        },
    }
}

/// Takes a connection slot and spawns the connection's task, or turns the
/// connection away.
fn start<S>(
    server: &Arc<Server>,
    mut s: S,
    peer: String,
    proto: Protocol,
    stop: &watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Ok(permit) = Arc::clone(&server.slots).try_acquire_owned() else {
        server
            .stats
            .diagnostics
            .emit(Kind::Overloaded, &peer, &"over --max-connections");
        if proto == Protocol::Native {
            tokio::spawn(async move {
                let mut out = Vec::new();
                wire::encode_refusal(ErrorCode::OVERLOADED, &mut out);
                let _ = tokio::time::timeout(Duration::from_secs(1), s.write_all(&out)).await;
            });
        }
        return;
    };
    server.stats.connections.fetch_add(1, Ordering::Relaxed);
    let server = Arc::clone(server);
    let stop = stop.clone();
    tokio::spawn(async move {
        let conn = Conn {
            server: &server,
            peer,
            stop,
            _permit: permit,
        };
        match proto {
            Protocol::Native => conn.native(s).await,
            Protocol::PythonTcp | Protocol::SyslogTcp => conn.records(s, proto).await,
            Protocol::PythonUdp | Protocol::SyslogUdp => {}
        }
    });
}

struct Conn<'a> {
    server: &'a Server,
    peer: String,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

enum Read {
    Bytes(usize),
    Ack(u64),
    End,
}

impl Conn<'_> {
    fn reject(&self, kind: Kind, detail: &dyn std::fmt::Display) {
        self.server.stats.diagnostics.emit(kind, &self.peer, detail);
    }

    fn idle(&self) -> Duration {
        if *self.stop.borrow() {
            QUIET_AFTER_STOP
        } else {
            self.server.config.idle_timeout
        }
    }

    /// Reads more bytes, or an acknowledgement, or learns that the
    /// connection is over (closed, failed, idle, or quiet after a stop).
    async fn next<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
        buf: &mut [u8],
        acks: Option<&mut tokio::sync::mpsc::UnboundedReceiver<u64>>,
    ) -> Read {
        let idle = self.idle();
        let ack = async {
            match acks {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = s.read(buf) => match r {
                Ok(0) | Err(_) => Read::End,
                Ok(n) => Read::Bytes(n),
            },
            Some(w) = ack => Read::Ack(w),
            _ = tokio::time::sleep(idle) => {
                if !*self.stop.borrow() {
                    self.reject(Kind::Idle, &format_args!("nothing received for {idle:?}"));
                }
                Read::End
            }
            _ = self.stop.changed(), if !*self.stop.borrow() => Read::Bytes(0),
        }
    }

    async fn native<S: AsyncRead + AsyncWrite + Unpin>(mut self, mut s: S) {
        let cfg = &self.server.config;
        let mut session = ServerSession::new(cfg.max_frame, cfg.token.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut out = Vec::new();
        loop {
            let mut start = 0;
            let mut close = None;
            while close.is_none() {
                let total = match wire::frame_len(&buf[start..], cfg.max_frame) {
                    Ok(Some(n)) if buf.len() - start >= n => n,
                    Ok(_) => break,
                    Err(e) => {
                        close = Some((Kind::of_wire(&e), e.to_string()));
                        session.fail(e, &mut out);
                        break;
                    }
                };
                let bytes = &buf[start..start + total];
                start += total;
                let frame = match wire::decode(bytes) {
                    Ok(f) => f,
                    Err(e) => {
                        close = Some((Kind::of_wire(&e), e.to_string()));
                        session.fail(e, &mut out);
                        break;
                    }
                };
                match session.on_frame(frame, &self.server.dedup, &mut out) {
                    Step::Continue => {}
                    Step::Write { batch, skip, last } => {
                        let Some(peer) = session.peer() else { break };
                        let d = Delivery {
                            source: Arc::clone(&peer.source),
                            body: Body::Native {
                                frame: bytes.to_vec(),
                                skip,
                            },
                            ack: Some(AckTo {
                                client_id: peer.client_id.clone(),
                                epoch: peer.epoch,
                                last,
                                tx: tx.clone(),
                            }),
                        };
                        self.server
                            .stats
                            .records
                            .fetch_add(u64::from(batch.len() - skip), Ordering::Relaxed);
                        if !self.server.output.send(d).await {
                            return;
                        }
                    }
                    Step::Close(wire::Closed::Local(e)) => {
                        close = Some((Kind::of_wire(&e), e.to_string()));
                    }
                    Step::Close(wire::Closed::Remote { .. }) => {
                        close = Some((Kind::Idle, String::new()))
                    }
                }
            }
            buf.drain(..start);
            if !out.is_empty() {
                if s.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
            if let Some((kind, why)) = close {
                if !why.is_empty() {
                    self.reject(kind, &why);
                }
                return;
            }
            match self.next(&mut s, &mut chunk, Some(&mut rx)).await {
                Read::Bytes(n) => buf.extend_from_slice(&chunk[..n]),
                Read::Ack(w) => {
                    session.ack(w, &mut out);
                    while let Ok(w) = rx.try_recv() {
                        session.ack(w, &mut out);
                    }
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

    /// Python `SocketHandler` and syslog over TCP: records without acks.
    async fn records<S: AsyncRead + AsyncWrite + Unpin>(mut self, mut s: S, proto: Protocol) {
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
        loop {
            let (n, ended) = match self.next(&mut s, &mut chunk, None).await {
                Read::Bytes(n) => (n, false),
                Read::Ack(_) => continue,
                Read::End => (0, true),
            };
            let now = logbraid::clock::now_ns();
            let mut records: Vec<OwnedRecord> = Vec::new();
            let mut close: Option<(Kind, String)> = None;
            if let Some(d) = py.as_mut() {
                d.push(&chunk[..n]);
                loop {
                    match d.next_frame() {
                        Ok(Some(p)) => match intake.decode(&p, &self.peer, now) {
                            Ok(r) => records.push(r),
                            Err(e) => {
                                close = Some((Kind::BadPickle, e.to_string()));
                                break;
                            }
                        },
                        Ok(None) => break,
                        Err(e) => {
                            close = Some((frame_kind(&e.to_string()), e.to_string()));
                            break;
                        }
                    }
                }
                if ended && close.is_none() {
                    if let Err(e) = d.finish() {
                        close = Some((Kind::Truncated, e.to_string()));
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
                            close = Some((frame_kind(&e.to_string()), e.to_string()));
                            break;
                        }
                    }
                }
                if ended && close.is_none() {
                    match d.finish() {
                        Ok(f) => frames.extend(f),
                        Err(e) => close = Some((Kind::Truncated, e.to_string())),
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

fn frame_kind(message: &str) -> Kind {
    if message.contains("over the limit") {
        Kind::FrameTooLarge
    } else {
        Kind::Malformed
    }
}

/// Python `DatagramHandler` and syslog over UDP: one record a datagram;
/// a bad datagram is counted and dropped (there is no connection to
/// close).
async fn udp(server: &Server, s: UdpSocket, proto: Protocol) {
    let mut buf = vec![0u8; 65536];
    let mut intake = PythonIntake::default();
    let mut sources = SourceCache::new();
    let placeholder = Arc::new(Source {
        host: String::new(),
        pid: 0,
        process_name: String::new(),
    });
    loop {
        let Ok((n, peer)) = s.recv_from(&mut buf).await else {
            continue;
        };
        let mut records = Vec::new();
        let mut next: Option<(usize, SocketAddr)> = Some((n, peer));
        // Whatever else is already waiting goes into the same delivery.
        while let Some((n, peer)) = next.take() {
            let host = peer.ip().to_string();
            let now = logbraid::clock::now_ns();
            let got = match proto {
                Protocol::PythonUdp => python::datagram(&buf[..n])
                    .map_err(|e| (Kind::Malformed, e.to_string()))
                    .and_then(|p| {
                        intake
                            .decode(p, &host, now)
                            .map_err(|e| (Kind::BadPickle, e.to_string()))
                    }),
                _ => syslog::parse_with(&buf[..n], now, &host, &mut sources)
                    .map_err(|e| (Kind::BadSyslog, e.to_string())),
            };
            match got {
                Ok(r) => records.push(r),
                Err((kind, why)) => server.stats.diagnostics.emit(kind, &host, &why),
            }
            if records.len() < 256 {
                if let Ok(x) = s.try_recv_from(&mut buf) {
                    next = Some(x);
                }
            }
        }
        if records.is_empty() {
            continue;
        }
        server
            .stats
            .records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        let d = Delivery {
            source: Arc::clone(&placeholder),
            body: Body::Records(records),
            ack: None,
        };
        if !server.output.send(d).await {
            return;
        }
    }
}
