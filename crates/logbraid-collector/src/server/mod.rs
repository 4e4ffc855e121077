//! The listeners: native protocol over Unix sockets and TCP, Python
//! `SocketHandler`/`DatagramHandler`, syslog over UDP and TCP,
//! OpenTelemetry logs over HTTP and gRPC. Every
//! connection decodes in its own task and hands records to the
//! [`output`](crate::output) stage, whose byte budget is the backpressure:
//! a connection waiting for room stops reading its socket, and the others
//! go on.
//!
//! The caller binds ([`bind`]) and owns the shutdown future ([`run`]), so
//! tests bind port 0 and stop the server when they choose.
//!
//! | module | listeners | unit | acknowledged |
//! |---|---|---|---|
//! | `native` | `unix:`, `tcp://`, `tls://` | `BATCH` frame, delivered whole | yes, once written |
//! | `stream` | `python-tcp://`, `syslog-tcp://`, `syslog-tls://` | the records decoded from one read | no (the protocols have none) |
//! | `datagram` | `python-udp://`, `syslog-udp://` | the datagrams queued at once, up to 256 | no |
//! | `tls` | `tls://`, `syslog-tls://` | the handshake, then `native` or `stream` | as inside |
//! | `otlp` | `otlp-http://`, `otlp-grpc://` (TLS with a certificate) | one request | yes: answered once written |
//!
//! Every stream connection takes a slot of [`ServerConfig::max_connections`]
//! (one semaphore for all stream listeners); one over the cap is counted
//! and closed, a plaintext native one after an `ERROR OVERLOADED` so its
//! client backs off (over TLS the connection is closed before its
//! handshake, which a slot was refused for: the client backs off as after
//! any failed connection). Bad input is counted by kind in [`Stats::diagnostics`] and closes
//! its connection only; a bad datagram is counted and dropped. No input
//! can make the server panic: decoding is the intake's and the wire
//! module's, which return errors for everything, and nothing here indexes
//! or unwraps what a peer sent.

mod budget;
mod datagram;
mod native;
pub mod otlp;
pub mod slots;
mod stream;
mod tls;

use std::future::Future;
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use logbraid::endpoint::{Addr, Endpoint, Protocol};
use logbraid::tls::rustls;
use logbraid::wire::{self, Dedup, ErrorCode, Holders};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::sync::{watch, Semaphore};

use crate::diag::{Action, Diagnostics, Kind};
use crate::output::{Body, Delivery, OutputHandle, RecordBatch};
use logbraid::Source;
use slots::{Full, Limits, Slot, Slots};

/// A bound listener, ready for [`run`].
#[derive(Debug)]
pub enum Listener {
    /// Native protocol on a Unix socket; the file is removed at the end.
    Unix(UnixListener, SocketFile),
    /// Python `SocketHandler` pickles on a Unix socket (`python-unix:`),
    /// served as `python-tcp://` is; the file is removed at the end.
    PythonUnix(UnixListener, SocketFile),
    /// A TCP listener.
    Tcp(TcpListener, Protocol),
    /// A UDP socket.
    Udp(UdpSocket, Protocol),
}

/// The file of a bound Unix socket: removed at the end only while it is
/// still this listener's (a successor may have bound the path since).
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// The socket's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Removes the file, if the path still names this socket.
    pub fn remove(&self) {
        use std::os::unix::fs::MetadataExt as _;
        if std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| (m.dev(), m.ino()) == (self.dev, self.ino))
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The permissions of a collector's Unix socket when none are given:
/// its owner only.
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;

/// Binds a listener; returns it with its URL, port 0 replaced by the port
/// the system chose. A Unix socket gets the permissions `socket_mode`
/// (see [`DEFAULT_SOCKET_MODE`]).
///
/// A Unix socket file left by a collector that is gone (a connection to it
/// is refused) is removed first, so a collector restarts after a crash
/// without help. One that a live collector answers on is an error, and so
/// is one whose state cannot be told (any other error: a busy collector's
/// full backlog is not a dead one), and a path that holds anything but a
/// socket: a typo in `--listen` must not delete a file.
pub async fn bind(url: &Endpoint, socket_mode: u32) -> io::Result<(Listener, String)> {
    match (&url.addr, url.protocol) {
        (Addr::Unix(p), proto) => {
            if let Ok(meta) = std::fs::symlink_metadata(p) {
                use std::os::unix::fs::FileTypeExt as _;
                if !meta.file_type().is_socket() {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} exists and is not a socket", p.display()),
                    ));
                }
                match tokio::net::UnixStream::connect(p).await {
                    Ok(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::AddrInUse,
                            format!("{} is in use by a running collector", p.display()),
                        ))
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                    Err(e) => {
                        return Err(io::Error::new(
                            e.kind(),
                            format!(
                                "{}: cannot tell whether a collector listens there ({e}); \
                                 not removing it",
                                p.display()
                            ),
                        ))
                    }
                }
                std::fs::remove_file(p)?;
            }
            let l = UnixListener::bind(p)?;
            use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(socket_mode))?;
            let meta = std::fs::symlink_metadata(p)?;
            let file = SocketFile {
                path: p.clone(),
                dev: meta.dev(),
                ino: meta.ino(),
            };
            let shown = url.to_string();
            if proto == Protocol::PythonTcp {
                return Ok((Listener::PythonUnix(l, file), shown));
            }
            Ok((Listener::Unix(l, file), shown))
        }
        (Addr::Inet(hp), proto) if proto.is_datagram() => {
            let s = UdpSocket::bind(hp.as_str()).await?;
            let a = s.local_addr()?;
            Ok((
                Listener::Udp(s, proto),
                format!("{}{a}", proto.inet_scheme()),
            ))
        }
        (Addr::Inet(hp), proto) => {
            let l = TcpListener::bind(hp.as_str()).await?;
            let a = l.local_addr()?;
            Ok((
                Listener::Tcp(l, proto),
                format!("{}{a}", proto.inet_scheme()),
            ))
        }
    }
}

impl Listener {
    /// The socket file of a Unix listener.
    pub fn socket_file(&self) -> Option<&SocketFile> {
        match self {
            Listener::Unix(_, f) | Listener::PythonUnix(_, f) => Some(f),
            _ => None,
        }
    }
}

/// Limits of a server.
///
/// | setting | default |
/// |---|---|
/// | token | none |
/// | TLS | none: a `tls://` or `syslog-tls://` listener turns every connection away, `otlp-http://` and `otlp-grpc://` speak plaintext |
/// | max frame | 1 MiB |
/// | max connections | 1024, fewer when `RLIMIT_NOFILE` leaves room for fewer ([`slots::fit_open_files`]) |
/// | max connections per listener | all of them less a share kept for each other stream listener ([`slots::Limits::new`]) |
/// | max connections per peer | 256 from one address |
/// | idle timeout | 60 s: a connection that sends nothing, not even `PING`, is closed |
/// | hello timeout | 10 s: a native connection must have sent its whole `HELLO` by then |
/// | drain | 5 s: how long a stopping server waits for open connections |
/// | memory | 64 MiB: what connections may hold for the frames they read and decode |
///
/// The hello timeout is shorter than the idle one because a connection
/// that has not said who it is holds a slot of `max_connections` for
/// nothing; a client that trickles its `HELLO` a byte at a time is closed
/// just the same. It is also the header deadline of Python and syslog
/// streams: their first complete record must arrive within it. Once a
/// record has begun on those streams, it must arrive at
/// [`MIN_RATE`] bytes a second or better (measured over
/// [`RATE_WINDOW`]). Until a connection's first complete frame, a new
/// connection that meets a full limit may evict it (see [`slots`]).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Native clients must present this token.
    pub token: Option<Arc<[u8]>>,
    /// The certificate (and, for mutual TLS, the client CA) of the TLS
    /// listeners, from [`logbraid::tls::server_config`].
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Longest frame accepted, on every stream protocol.
    pub max_frame: usize,
    /// Stream connections served at once.
    pub max_connections: usize,
    /// Stream connections served at once on one listener; `None`: see
    /// [`slots::Limits::new`].
    pub max_connections_per_listener: Option<usize>,
    /// Stream connections served at once from one peer address.
    pub max_connections_per_peer: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A native connection whose `HELLO` is not complete this long after
    /// it was accepted is closed.
    pub hello_timeout: Duration,
    /// How long a stopping server lets open connections finish.
    pub drain: Duration,
    /// Bytes all connections together may hold for what they read and
    /// decode: frame buffers, the working memory of decoding, what
    /// decoders keep between frames, records not yet handed over. A
    /// connection that finds no room waits (reading nothing) for up to the
    /// idle timeout, then is closed as overloaded. One frame may use at
    /// most a quarter of it as working memory.
    pub memory: usize,
}

/// [`ServerConfig::max_connections_per_peer`] by default.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 256;

/// The least rate, in bytes a second, at which a Python or syslog record
/// that has begun must keep arriving.
pub const MIN_RATE: usize = 1024;

/// The window over which [`MIN_RATE`] is measured.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            token: None,
            tls: None,
            max_frame: wire::DEFAULT_MAX_FRAME,
            max_connections: 1024,
            max_connections_per_listener: None,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            idle_timeout: Duration::from_secs(60),
            hello_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(5),
            memory: 64 << 20,
        }
    }
}

/// Counters of a server, exact and updated as things happen (relaxed
/// atomics: read them after the event you wait for, such as the server
/// closing your connection).
///
/// Connections turned away at `max_connections` are
/// `diagnostics.count(Kind::Overloaded)`; every other rejected input has
/// its own [`Kind`].
#[derive(Debug, Default)]
pub struct Stats {
    /// Stream connections accepted (and given a slot).
    pub connections: AtomicU64,
    /// Records handed to the output stage (for native batches, the records
    /// after those skipped as already written).
    pub records: AtomicU64,
    /// Records received, by listener and what it speaks ([`InputLabels`]),
    /// native records already written included.
    pub received: Family<InputLabels, Counter>,
    /// Native records received again after a reconnect and skipped, being
    /// written already.
    pub duplicates: AtomicU64,
    /// Nanoseconds connections spent waiting for room in
    /// [`ServerConfig::memory`] (an instant when there was room).
    pub memory_wait_ns: AtomicU64,
    /// Rejected input, by kind.
    pub diagnostics: Diagnostics,
}

/// The labels of [`Stats::received`]: `listener`, the listener's URL as
/// `listening on` shows it, and `input`, what it speaks (`native`,
/// `python`, `syslog` or `otlp`).
pub type InputLabels = [(&'static str, String); 2];

/// What a listener speaking `proto` receives, as [`InputLabels`] name it.
pub fn input_kind(proto: Protocol) -> &'static str {
    match proto.inner() {
        Protocol::Native | Protocol::NativeTls => "native",
        Protocol::PythonTcp | Protocol::PythonUdp => "python",
        Protocol::SyslogTcp | Protocol::SyslogTls | Protocol::SyslogUdp => "syslog",
        Protocol::OtlpHttp | Protocol::OtlpGrpc => "otlp",
    }
}

impl Listener {
    /// Its URL, as [`bind`] returned it.
    pub fn url(&self) -> String {
        match self {
            Listener::Unix(_, file) => format!("unix:{}", file.path.display()),
            Listener::PythonUnix(_, file) => format!("python-unix:{}", file.path.display()),
            Listener::Tcp(l, proto) => match l.local_addr() {
                Ok(a) => format!("{}{a}", proto.inet_scheme()),
                Err(_) => proto.inet_scheme().to_string(),
            },
            Listener::Udp(s, proto) => match s.local_addr() {
                Ok(a) => format!("{}{a}", proto.inet_scheme()),
                Err(_) => proto.inet_scheme().to_string(),
            },
        }
    }

    fn protocol(&self) -> Protocol {
        match self {
            Listener::Unix(..) => Protocol::Native,
            Listener::PythonUnix(..) => Protocol::PythonTcp,
            Listener::Tcp(_, p) | Listener::Udp(_, p) => *p,
        }
    }
}

/// A collector's listeners with their shared state.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    output: Sink,
    dedup: Arc<Mutex<Dedup>>,
    /// Which credential holds each client id on a live native connection.
    holders: Arc<Holders>,
    /// Set by [`run`], which knows the listeners.
    slots: std::sync::OnceLock<Arc<Slots>>,
    /// Each listener's count in [`Stats::received`], by its index; set by
    /// [`run`].
    received: std::sync::OnceLock<Vec<Counter>>,
    /// [`ServerConfig::memory`], in bytes.
    memory: Arc<Semaphore>,
    stats: Arc<Stats>,
    /// Set when a stopping server's drain time is over: connections read
    /// nothing more, but hand over what they have read.
    cut: watch::Sender<bool>,
}

/// Where accepted records go: the output stage (files), or JetStream.
#[derive(Debug)]
enum Sink {
    Output(OutputHandle),
    Publish(crate::publish::PublishHandle),
}

impl Sink {
    async fn send(&self, delivery: Delivery) -> bool {
        match self {
            Sink::Output(o) => o.send(delivery).await,
            Sink::Publish(p) => p.send(delivery).await,
        }
    }
}

/// After a stop, a connection quiet for this long is done.
const QUIET_AFTER_STOP: Duration = Duration::from_millis(200);

/// Bytes read from a socket at a time: each connection has a buffer of
/// this size besides what [`ServerConfig::memory`] counts.
const READ_CHUNK: usize = 32 << 10;

/// What one connection may hold of its own, outside
/// [`ServerConfig::memory`]: its read buffer, and the first bytes of its
/// frames (so that small frames never wait for the pool, and a connection
/// waiting for it holds none of it).
pub const CONNECTION_BYTES: usize = READ_CHUNK + budget::FREE;

impl Server {
    /// A server handing records to `output`; `dedup` is the table the
    /// output stage commits to.
    pub fn new(config: ServerConfig, output: OutputHandle, dedup: Arc<Mutex<Dedup>>) -> Server {
        Server::with_sink(config, Sink::Output(output), dedup)
    }

    /// A server whose native batches are published to JetStream
    /// ([`crate::publish`]) instead of written; `dedup` is the table the
    /// publisher commits to. Records of other protocols are refused (their
    /// connections closed): they carry no numbering to deduplicate by.
    pub fn publishing(
        config: ServerConfig,
        publisher: crate::publish::PublishHandle,
        dedup: Arc<Mutex<Dedup>>,
    ) -> Server {
        Server::with_sink(config, Sink::Publish(publisher), dedup)
    }

    fn with_sink(config: ServerConfig, output: Sink, dedup: Arc<Mutex<Dedup>>) -> Server {
        let memory = Arc::new(Semaphore::new(config.memory.min(Semaphore::MAX_PERMITS)));
        Server {
            config,
            output,
            dedup,
            holders: Arc::new(Holders::new()),
            slots: std::sync::OnceLock::new(),
            received: std::sync::OnceLock::new(),
            memory,
            stats: Arc::new(Stats::default()),
            cut: watch::Sender::new(false),
        }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Stream connections open now.
    pub fn open_connections(&self) -> usize {
        self.slots.get().map_or(0, |s| s.open())
    }

    /// Bytes connections hold now of [`ServerConfig::memory`], and its
    /// size.
    pub fn memory_held(&self) -> (usize, usize) {
        let total = self.config.memory.min(Semaphore::MAX_PERMITS);
        (total.saturating_sub(self.memory.available_permits()), total)
    }

    /// The count in [`Stats::received`] of listener `index`.
    fn received(&self, index: usize) -> Counter {
        self.received
            .get()
            .and_then(|r| r.get(index))
            .cloned()
            .unwrap_or_default()
    }

    /// The connection slots, for `stream_listeners` stream listeners,
    /// `unix` of them Unix sockets (the first call decides).
    fn slots(&self, stream_listeners: usize, unix: usize) -> &Arc<Slots> {
        self.slots.get_or_init(|| {
            let c = &self.config;
            let mut limits = Limits::new(
                c.max_connections,
                stream_listeners,
                unix,
                c.max_connections_per_peer,
            );
            if let Some(n) = c.max_connections_per_listener {
                limits.per_listener = n.max(1);
            }
            Arc::new(Slots::new(limits))
        })
    }

    /// Hands decoded `records` to the output stage, counted, under
    /// `source` (nothing when there are none); `false` when the output
    /// stage has stopped.
    async fn hand_over(
        &self,
        records: RecordBatch,
        source: &Arc<Source>,
        received: &Counter,
    ) -> bool {
        if records.is_empty() {
            return true;
        }
        self.count_received(records.len() as u64, received);
        let delivery = Delivery {
            source: Arc::clone(source),
            body: Body::Batch(records),
            ack: None,
        };
        self.output.send(delivery).await
    }

    /// Counts `n` records handed to the output stage: in [`Stats::records`]
    /// and in their listener's [`Stats::received`] count.
    fn count_received(&self, n: u64, received: &Counter) {
        received.inc_by(n);
        self.stats.records.fetch_add(n, Ordering::Relaxed);
    }

    /// A connection's share of [`ServerConfig::memory`], empty for now.
    fn reservation(&self) -> budget::Reservation {
        let total = self.config.memory.min(Semaphore::MAX_PERMITS);
        budget::Reservation::new(Arc::clone(&self.memory), total)
    }
}

/// Serves until `shutdown` completes, then stops accepting and removes
/// Unix socket files. Open connections go on reading for the drain time;
/// then they read nothing more, but each still hands over what it has
/// read, however long the output stage takes to make room for it (a file
/// that cannot be written holds it up; nothing read is dropped). When
/// `hurry` completes first (a second SIGTERM), it stops at once: what
/// connections had read and not handed over is not written (native
/// clients resend it), and stderr says how many connections that was. The
/// caller then shuts the output stage down, which writes everything handed
/// over.
pub async fn run(
    server: Arc<Server>,
    listeners: Vec<Listener>,
    shutdown: impl Future,
    hurry: impl Future,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sockets = Vec::new();
    let mut loops = Vec::new();
    let streams = listeners
        .iter()
        .filter(|l| !matches!(l, Listener::Udp(..)))
        .count();
    let unix = listeners
        .iter()
        .filter(|l| l.socket_file().is_some())
        .count();
    let slots = Arc::clone(server.slots(streams, unix));
    let received = listeners
        .iter()
        .map(|l| {
            let labels = [
                ("listener", l.url()),
                ("input", input_kind(l.protocol()).to_string()),
            ];
            server.stats.received.get_or_create_owned(&labels)
        })
        .collect();
    let _ = server.received.set(received);
    for (index, l) in listeners.into_iter().enumerate() {
        if let Some(file) = l.socket_file() {
            sockets.push((file.path.clone(), file.dev, file.ino));
        }
        loops.push(tokio::spawn(listen(
            Arc::clone(&server),
            l,
            index,
            stop_rx.clone(),
        )));
    }
    let mut hurry = std::pin::pin!(hurry);
    let mut hurried = false;
    tokio::select! {
        _ = shutdown => {}
        // A hurried stop before any stop is a stop, at once.
        _ = &mut hurry => hurried = true,
    }
    let _ = stop_tx.send(true);
    let drained = async {
        for l in loops {
            let _ = l.await;
        }
        while slots.open() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let mut drained = std::pin::pin!(drained);
    if !hurried {
        tokio::select! {
            _ = &mut drained => {}
            _ = tokio::time::sleep(server.config.drain) => {
                server.cut.send_replace(true);
                tokio::select! {
                    _ = &mut drained => {}
                    _ = &mut hurry => hurried = true,
                }
            }
            _ = &mut hurry => hurried = true,
        }
    }
    if hurried {
        let busy = slots.open();
        let _ = writeln!(
            std::io::stderr(),
            "logbraid serve: stopping at once: {busy} connection(s) still had records \
             not handed over; they are not written (native clients resend theirs)"
        );
    }
    for (path, dev, ino) in sockets {
        SocketFile { path, dev, ino }.remove();
    }
    server.stats.diagnostics.finish();
}

async fn listen(server: Arc<Server>, l: Listener, index: usize, mut stop: watch::Receiver<bool>) {
    match l {
        Listener::Udp(s, proto) => {
            let received = server.received(index);
            datagram::udp(&server, s, proto, stop, &received).await
        }
        Listener::Unix(l, _) => unix(&server, l, index, Protocol::Native, stop).await,
        Listener::PythonUnix(l, _) => unix(&server, l, index, Protocol::PythonTcp, stop).await,
        Listener::Tcp(l, proto) => loop {
            tokio::select! {
                r = l.accept() => {
                    let Ok((s, peer)) = r else {
                        accept_failed().await;
                        continue;
                    };
                    let _ = s.set_nodelay(true);
                    start(&server, s, (index, Some(peer.ip().to_string())), proto, &stop);
                }
                _ = stop.changed() => return,
            }
        },
    }
}

/// Accepts on a Unix socket until the stop, each connection speaking
/// `proto`.
async fn unix(
    server: &Arc<Server>,
    l: UnixListener,
    index: usize,
    proto: Protocol,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = l.accept() => {
                let Ok((s, _)) = r else {
                    accept_failed().await;
                    continue;
                };
                start(server, s, (index, None), proto, &stop);
            }
            _ = stop.changed() => return,
        }
    }
}

/// After a failed accept (EMFILE, ENFILE, ENOMEM: the process or system
/// is out of something a connection needs), waits before the next one
/// instead of spinning on the same error.
async fn accept_failed() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Takes a connection slot on listener `at.0` for peer address `at.1`
/// (`None`: a Unix socket) and spawns the connection's task, or turns the
/// connection away.
fn start<S>(
    server: &Arc<Server>,
    mut s: S,
    at: (usize, Option<String>),
    proto: Protocol,
    stop: &watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (listener, address) = at;
    let peer = address.clone().unwrap_or_else(|| "unix socket".to_string());
    let slots = server.slots(1, 1);
    let slot = match slots.acquire(listener, address.as_deref()) {
        Ok(slot) => slot,
        Err(full) => {
            let limits = slots.limits();
            let why = match full {
                Full::Total => format!("{} connections open", limits.total),
                Full::Listener => {
                    format!("{} connections open on this listener", limits.per_listener)
                }
                Full::Peer => format!("{} connections open from this address", limits.per_peer),
            };
            server
                .stats
                .diagnostics
                .emit(Kind::Overloaded, &peer, Action::Closed, &why);
            if proto == Protocol::Native {
                // Not over TLS: the refusal would have to wait for a
                // handshake that a slot was refused for.
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    wire::encode_refusal(ErrorCode::OVERLOADED, &mut out);
                    let _ = tokio::time::timeout(Duration::from_secs(1), s.write_all(&out)).await;
                });
            }
            return;
        }
    };
    server.stats.connections.fetch_add(1, Ordering::Relaxed);
    let server = Arc::clone(server);
    let stop = stop.clone();
    tokio::spawn(async move {
        let conn = Conn {
            server: &server,
            host: match &address {
                Some(a) => a.clone(),
                None => Source::current().host.clone(),
            },
            peer,
            stop,
            slot,
            received: server.received(listener),
        };
        // The connection (and its slot) ends before the socket closes, so a
        // peer that sees the close can connect again at once.
        match proto {
            Protocol::Native => conn.native(&mut s, None).await,
            Protocol::PythonTcp | Protocol::SyslogTcp => conn.records(&mut s, proto).await,
            Protocol::NativeTls | Protocol::SyslogTls => conn.tls(&mut s, proto).await,
            Protocol::OtlpHttp | Protocol::OtlpGrpc => {
                conn.otlp(&mut s, proto, Arc::clone(&server)).await
            }
            Protocol::PythonUdp | Protocol::SyslogUdp => {}
        }
        drop(s);
    });
}

struct Conn<'a> {
    server: &'a Server,
    /// The host records without one of their own are written under: the
    /// peer's address, or this host for a Unix socket.
    host: String,
    /// Who is connected, as diagnostics name it.
    peer: String,
    stop: watch::Receiver<bool>,
    slot: Slot,
    /// Its listener's count of records received.
    received: Counter,
}

enum Read {
    /// Bytes arrived.
    Bytes(usize),
    /// A batch of the connection was written: its client's highest written
    /// sequence number.
    Ack(u64),
    /// The server started stopping: from now on a quiet connection is done.
    Stopping,
    /// Nothing arrived within the time given, before any stop.
    Timeout,
    /// The connection, silent so far, was evicted to make room for a new
    /// one (see [`slots`]).
    Evicted,
    /// The peer closed, the socket failed, or the connection stayed quiet
    /// after a stop.
    End,
}

impl Conn<'_> {
    /// Makes `res` cover `bytes`, waiting for other connections to give
    /// memory back; after the idle timeout without room, or once a stopping
    /// server's drain time is over, the connection is done (`false`).
    async fn reserve(&self, res: &mut budget::Reservation, bytes: usize) -> bool {
        // The common case, once per frame: no timer, no subscription.
        if res.try_cover(bytes) {
            return true;
        }
        let start = std::time::Instant::now();
        let got = self.reserve_more(res, bytes).await;
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.server
            .stats
            .memory_wait_ns
            .fetch_add(ns, Ordering::Relaxed);
        got
    }

    /// The wait of [`reserve`](Self::reserve) when the pool has no room at
    /// once.
    async fn reserve_more(&self, res: &mut budget::Reservation, bytes: usize) -> bool {
        let idle = self.server.config.idle_timeout;
        let mut cut = self.server.cut.subscribe();
        if *cut.borrow_and_update() {
            return res.cover(bytes).await;
        }
        tokio::select! {
            got = res.cover(bytes) => got,
            _ = cut.changed() => false,
            _ = tokio::time::sleep(idle) => {
                self.reject(
                    Kind::Overloaded,
                    &format_args!("no memory for {bytes} bytes within {idle:?}"),
                );
                false
            }
        }
    }

    fn reject(&self, kind: Kind, detail: &dyn std::fmt::Display) {
        self.server
            .stats
            .diagnostics
            .emit(kind, &self.peer, Action::Closed, detail);
    }

    /// Reads more bytes, or an acknowledgement, or learns that nothing came
    /// for `wait` (for [`QUIET_AFTER_STOP`] once the server is stopping:
    /// a stopping server reads what clients still send, then closes).
    async fn next<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
        buf: &mut [u8],
        acks: Option<&mut tokio::sync::mpsc::UnboundedReceiver<u64>>,
        wait: Duration,
    ) -> Read {
        let stopping = *self.stop.borrow();
        let mut cut = self.server.cut.subscribe();
        if *cut.borrow_and_update() {
            // Past the drain time: what was read is handed over, nothing
            // more is read.
            return Read::End;
        }
        let wait = if stopping { QUIET_AFTER_STOP } else { wait };
        let ack = async {
            match acks {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        // Biased, timer last: a task that was not scheduled for a while
        // (a loaded machine) must read the bytes that are waiting, not give
        // up on a timer that expired meanwhile. Acks first: they are cheap,
        // and a client that never pauses must still hear them.
        tokio::select! {
            biased;
            // First: an evicted connection has no slot any more, whatever
            // it has sent since.
            _ = self.slot.evicted() => Read::Evicted,
            Some(w) = ack => Read::Ack(w),
            r = s.read(buf) => match r {
                Ok(0) | Err(_) => Read::End,
                Ok(n) => Read::Bytes(n),
            },
            r = self.stop.changed(), if !stopping => match r {
                Ok(()) => Read::Stopping,
                // The server is gone without a word: nothing to drain for.
                Err(_) => Read::End,
            },
            _ = cut.changed() => Read::End,
            _ = tokio::time::sleep(wait) => if stopping { Read::End } else { Read::Timeout },
        }
    }
}
