//! The embedded collector: what a parent process runs so that its children
//! log into its own sinks, with nothing configured.
//!
//! A [`Builder`](crate::Builder) that writes files starts one (unless told
//! not to): it listens on a Unix socket in a fresh private directory (mode
//! 0700) and exports the address in [`COLLECTOR_ENV`]. A descendant that
//! builds a logger and finds the variable forwards to it instead of opening
//! files, so each file keeps exactly one writer. Records arrive over the
//! native protocol (`PROTOCOL.md`), are logged into the parent's pipeline
//! under the child's host, pid and program, and are acknowledged once the
//! parent's writer has written them.
//!
//! Threads, not an async runtime: one accepts, one serves each child.

use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::pipeline::Inlet;
use crate::report::RateLimit;
use crate::wire::{self, Dedup, ErrorCode, FrameReader, ServerSession, Step};

/// The environment variable that carries the collector's address
/// (`unix:/path/collector.sock`) to child processes.
pub const COLLECTOR_ENV: &str = "LOGBRAID_COLLECTOR";

/// Settings of an [`Embedded`] collector.
///
/// | option | default |
/// |---|---|
/// | token | none (the directory's mode keeps other users out) |
/// | max frame | 1 MiB |
/// | max connections | 256 |
/// | idle timeout | none: a child may stay quiet as long as it lives |
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    token: Option<Arc<[u8]>>,
    max_frame: usize,
    max_connections: usize,
    idle_timeout: Option<Duration>,
    dedup: Arc<Mutex<Dedup>>,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            token: None,
            max_frame: wire::DEFAULT_MAX_FRAME,
            max_connections: 256,
            idle_timeout: None,
            dedup: Arc::new(Mutex::new(Dedup::new())),
        }
    }
}

impl EmbeddedOptions {
    /// Requires this token in every `HELLO`.
    pub fn token(mut self, token: impl Into<Vec<u8>>) -> Self {
        self.token = Some(Arc::from(token.into()));
        self
    }

    /// Longest frame accepted (at least 1 MiB).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes.max(wire::DEFAULT_MAX_FRAME);
        self
    }

    /// Connections served at once; more are refused with `OVERLOADED`.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Closes a connection that sends nothing for this long.
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.idle_timeout = Some(t);
        self
    }

    /// The deduplication table, shared with an earlier collector of this
    /// process at the same address so that a client reconnecting to the
    /// new one is not written twice.
    pub fn dedup(mut self, dedup: Arc<Mutex<Dedup>>) -> Self {
        self.dedup = dedup;
        self
    }
}

/// Counters of an [`Embedded`] collector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmbeddedStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections open now.
    pub active: u64,
    /// Connections turned away (`OVERLOADED`).
    pub refused: u64,
    /// Records logged into the pipeline.
    pub records: u64,
    /// Connections closed for a protocol fault (bad frame, token, order).
    pub rejected: u64,
}

#[derive(Debug)]
struct Counters {
    accepted: AtomicU64,
    active: AtomicUsize,
    refused: AtomicU64,
    records: AtomicU64,
    rejected: AtomicU64,
    reports: RateLimit,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            accepted: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            records: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            reports: RateLimit::new(Duration::from_secs(1)),
        }
    }
}

impl Counters {
    /// A protocol fault: counted, and said on stderr at most once a second.
    fn reject(&self, what: &str) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let Some(more) = self.reports.allow() else {
            return;
        };
        let more = if more > 0 {
            format!(" ({more} more since the last report)")
        } else {
            String::new()
        };
        let _ = writeln!(
            io::stderr(),
            "logbraid: embedded collector closed a connection: {what}{more}"
        );
    }
}

struct Inner {
    inlet: Inlet,
    options: EmbeddedOptions,
    stopping: AtomicBool,
    /// When shutdown began: open connections get a grace period after it.
    stop_at: Mutex<Option<(Instant, Duration)>>,
    counters: Counters,
    conns: Mutex<Vec<JoinHandle<()>>>,
}

/// A running embedded collector; see the [module documentation](self).
pub struct Embedded {
    inner: Arc<Inner>,
    socket: PathBuf,
    /// The private directory we created, removed at shutdown.
    dir: Option<PathBuf>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("socket", &self.socket)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Longest Unix socket path (`sun_path` holds 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Creates `logbraid-XXXXXX` with mode 0700 under `$XDG_RUNTIME_DIR` when
/// it is a directory of this user that nobody else may enter, else under
/// the temporary directory (where the unpredictable name and the mode keep
/// others out).
fn private_dir() -> io::Result<PathBuf> {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| owned_and_private(p));
    let mut last = io::Error::other("no directory for the collector's socket");
    for base in runtime.into_iter().chain([std::env::temp_dir()]) {
        match tempfile::Builder::new()
            .prefix("logbraid-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&base)
        {
            Ok(dir) => return Ok(dir.keep()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Whether `dir` is a directory (not a link to one) owned by this user,
/// with no permission for group or others.
fn owned_and_private(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir).is_ok_and(|m| {
        m.is_dir() && m.uid() == rustix::process::getuid().as_raw() && m.mode() & 0o077 == 0
    })
}

/// A collector's socket, bound and listening but not served yet: a
/// process binds it, exports its address, and only then starts threads
/// (see [`Builder::build`](crate::Builder::build)). Connections that
/// arrive meanwhile wait in the listen backlog. Dropped unserved, it
/// removes its socket and directory.
#[derive(Debug)]
pub struct Bound {
    listener: Option<UnixListener>,
    socket: PathBuf,
    /// The private directory we created, removed with the socket.
    dir: Option<PathBuf>,
}

impl Bound {
    /// Binds a socket in a new private directory.
    pub fn new() -> io::Result<Bound> {
        let dir = private_dir()?;
        match Bound::at(&dir.join("collector.sock")) {
            Ok(mut b) => {
                b.dir = Some(dir);
                Ok(b)
            }
            Err(err) => {
                let _ = std::fs::remove_dir(&dir);
                Err(err)
            }
        }
    }

    /// Binds a socket at `path` again, after a collector of this process
    /// that used it has stopped, so an address already exported stays
    /// good: the directory is created anew (mode 0700) if it is gone, and
    /// refused if something else took its place.
    pub fn again(path: &Path) -> io::Result<Bound> {
        let dir = path
            .parent()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no directory"))?;
        let created = match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        };
        if !created && !owned_and_private(dir) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is no longer our private directory", dir.display()),
            ));
        }
        let mut b = Bound::at(path)?;
        b.dir = Some(dir.to_path_buf());
        Ok(b)
    }

    /// Binds a socket at `path` (which must not exist).
    pub fn at(path: &Path) -> io::Result<Bound> {
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "socket path {} is longer than the {MAX_SOCKET_PATH} bytes a Unix socket allows",
                    path.display()
                ),
            ));
        }
        let listener = UnixListener::bind(path)?;
        Ok(Bound {
            listener: Some(listener),
            socket: path.to_path_buf(),
            dir: None,
        })
    }

    /// The address for [`COLLECTOR_ENV`]: `unix:/…/collector.sock`.
    pub fn address(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// Starts the thread that accepts connections; what arrives is logged
    /// into `inlet` (a `Logger` or `&Logger` will do).
    pub fn serve(
        mut self,
        inlet: impl Into<Inlet>,
        options: EmbeddedOptions,
    ) -> io::Result<Embedded> {
        let Some(listener) = self.listener.take() else {
            return Err(io::Error::other("the collector's socket is already served"));
        };
        let inner = Arc::new(Inner {
            inlet: inlet.into(),
            options,
            stopping: AtomicBool::new(false),
            stop_at: Mutex::new(None),
            counters: Counters::default(),
            conns: Mutex::new(Vec::new()),
        });
        let i = Arc::clone(&inner);
        let accept = thread::Builder::new()
            .name("logbraid-collect".into())
            .spawn(move || accept_loop(listener, i))?;
        Ok(Embedded {
            inner,
            socket: std::mem::take(&mut self.socket),
            dir: self.dir.take(),
            accept: Mutex::new(Some(accept)),
        })
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        if self.listener.take().is_some() {
            let _ = std::fs::remove_file(&self.socket);
            if let Some(d) = &self.dir {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

impl Embedded {
    /// Starts a collector in a new private directory that logs what it
    /// receives into `inlet` (a `Logger` or `&Logger` will do).
    pub fn start(inlet: impl Into<Inlet>, options: EmbeddedOptions) -> io::Result<Embedded> {
        Bound::new()?.serve(inlet, options)
    }

    /// Starts a collector on a socket at `path` (which must not exist).
    pub fn start_at(
        path: &Path,
        inlet: impl Into<Inlet>,
        options: EmbeddedOptions,
    ) -> io::Result<Embedded> {
        Bound::at(path)?.serve(inlet, options)
    }

    /// The address for [`COLLECTOR_ENV`]: `unix:/…/collector.sock`.
    pub fn address(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// The socket's path.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The counters now.
    pub fn stats(&self) -> EmbeddedStats {
        let c = &self.inner.counters;
        EmbeddedStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            active: c.active.load(Ordering::Relaxed) as u64,
            refused: c.refused.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting, gives open connections up to `grace` to finish
    /// (a child that exits closes its own), then closes the rest and
    /// removes the socket. Idempotent.
    pub fn shutdown(&self, grace: Duration) {
        let Some(accept) = self.accept.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        *self.inner.stop_at.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), grace));
        self.inner.stopping.store(true, Ordering::Release);
        // Wakes the accept call.
        let _ = UnixStream::connect(&self.socket);
        let _ = accept.join();
        let conns =
            std::mem::take(&mut *self.inner.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for c in conns {
            let _ = c.join();
        }
        let _ = std::fs::remove_file(&self.socket);
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir(d);
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(1));
    }
}

/// Waits up to `timeout` for a connection to accept; false on timeout.
fn readable(listener: &UnixListener, timeout: Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(listener, PollFlags::IN)];
    let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    });
    poll(&mut fds, Some(&timeout)).is_ok_and(|n| n > 0)
}

fn accept_loop(listener: UnixListener, inner: Arc<Inner>) {
    loop {
        if inner.stopping.load(Ordering::Acquire) {
            return;
        }
        // Shutdown wakes the accept by connecting; the poll timeout makes it
        // end even when that cannot work (the socket file was deleted).
        if !readable(&listener, STOP_CHECK) {
            continue;
        }
        let conn = listener.accept().map(|(s, _)| s);
        if inner.stopping.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut stream) = conn else {
            // A lasting error (no file descriptors left) must not spin.
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let c = &inner.counters;
        if c.active.load(Ordering::Relaxed) >= inner.options.max_connections {
            c.refused.fetch_add(1, Ordering::Relaxed);
            let mut out = Vec::new();
            wire::encode_refusal(ErrorCode::OVERLOADED, &mut out);
            let _ = stream.write_all(&out);
            continue;
        }
        c.accepted.fetch_add(1, Ordering::Relaxed);
        c.active.fetch_add(1, Ordering::Relaxed);
        let i = Arc::clone(&inner);
        let spawned = thread::Builder::new()
            .name("logbraid-collect-conn".into())
            .spawn(move || {
                serve(stream, &i);
                i.counters.active.fetch_sub(1, Ordering::Relaxed);
            });
        let mut conns = inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|h| !h.is_finished());
        match spawned {
            Ok(h) => conns.push(h),
            Err(_) => {
                c.active.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// How often a quiet accept loop checks for shutdown.
const STOP_CHECK: Duration = Duration::from_millis(250);

/// How often a quiet connection checks for shutdown and idleness.
const POLL: Duration = Duration::from_millis(100);

/// Serves one connection until it closes, breaks the protocol, or the
/// collector stops and the grace period is over.
fn serve(mut stream: UnixStream, inner: &Inner) {
    let opts = &inner.options;
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let mut reader = FrameReader::new(opts.max_frame);
    let mut session = ServerSession::new(opts.max_frame, opts.token.clone());
    let mut buf = vec![0u8; 256 << 10];
    let mut out = Vec::new();
    let mut last_input = Instant::now();
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                if reader.buffered() > 0 {
                    inner.counters.reject(&format!(
                        "stream ended inside a frame ({} bytes)",
                        reader.buffered()
                    ));
                }
                return;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                let stop = *inner.stop_at.lock().unwrap_or_else(|e| e.into_inner());
                if stop.is_some_and(|(at, grace)| at.elapsed() >= grace) {
                    return;
                }
                if opts.idle_timeout.is_some_and(|t| last_input.elapsed() >= t) {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        last_input = Instant::now();
        reader.push(&buf[..n]);
        let mut written = None;
        let mut close = None;
        loop {
            let frame = match reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    let text = e.to_string();
                    session.fail(e, &mut out);
                    close = Some(text);
                    break;
                }
            };
            match session.on_frame(frame, &opts.dedup, &mut out) {
                Step::Continue => {}
                Step::Write { batch, skip, last } => {
                    if let Some(source) = session.peer().map(|p| Arc::clone(&p.source)) {
                        let mut n = 0;
                        for r in batch.records(&source).skip(skip as usize) {
                            inner.inlet.log_record(&r, &source);
                            n += 1;
                        }
                        inner.counters.records.fetch_add(n, Ordering::Relaxed);
                    }
                    written = Some(last);
                }
                Step::Close(why) => {
                    // A peer that says goodbye with an ERROR is not a fault
                    // of ours to report.
                    if matches!(why, wire::Closed::Local(_)) {
                        close = Some(why.to_string());
                    } else {
                        close = Some(String::new());
                    }
                    break;
                }
            }
        }
        if let Some(last) = written.filter(|_| close.is_none()) {
            // Acknowledged only once the parent's writer has written them;
            // never after an ERROR, which is a connection's last frame (the
            // client resends, and the records already logged are skipped).
            inner.inlet.flush();
            session.commit(last, &opts.dedup, &mut out);
        }
        if !out.is_empty() {
            if stream.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
        if let Some(why) = close {
            if !why.is_empty() {
                inner.counters.reject(&why);
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::owned_and_private;
    use std::fs::{self, Permissions};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_runtime_directory_is_trusted_only_when_private_and_ours() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("run");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o700)).unwrap();
        assert!(owned_and_private(&dir));
        // Others may enter or list it: not private.
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        assert!(!owned_and_private(&dir));
        fs::set_permissions(&dir, Permissions::from_mode(0o1777)).unwrap();
        assert!(!owned_and_private(&dir));
        // A link to a private directory is not the directory.
        fs::set_permissions(&dir, Permissions::from_mode(0o700)).unwrap();
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(!owned_and_private(&link));
        // A file, and nothing at all.
        let file = base.path().join("file");
        fs::write(&file, b"").unwrap();
        fs::set_permissions(&file, Permissions::from_mode(0o600)).unwrap();
        assert!(!owned_and_private(&file));
        assert!(!owned_and_private(&base.path().join("absent")));
    }

    #[test]
    fn the_private_directory_is_new_and_closed_to_others() {
        let a = super::private_dir().unwrap();
        let b = super::private_dir().unwrap();
        assert_ne!(a, b);
        for d in [&a, &b] {
            assert!(owned_and_private(d), "{}", d.display());
            assert!(d
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("logbraid-"));
            fs::remove_dir(d).unwrap();
        }
    }
}
