//! The listeners as a library: `server::bind` on port 0, `server::run` with
//! a shutdown the test owns, a real output stage writing a real file, and
//! peers on loopback sockets. What the process-level tests of `logbraid
//! serve` cannot see is checked here through the counters: each kind of bad
//! input is counted exactly once under its own kind, and the timeouts and
//! the connection cap close what they should and nothing else.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logbraid::layout::LayoutSpec;
use logbraid::wire::{self, BatchEncoder, Dedup, Frame, Hello, Push};
use logbraid::{Compression, Level, Record, Source};
use logbraid_collector::diag::Kind;
use logbraid_collector::output::{FileSpec, Output, OutputConfig};
use logbraid_collector::server::{self, Endpoint, Server, ServerConfig, Stats};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Safety net for anything awaited: generous, never reached when the
/// server works.
const PATIENCE: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: nothing after {PATIENCE:?}"),
    }
}

/// A server with its output stage, listening on the URLs given.
struct Running {
    server: Arc<Server>,
    urls: Vec<String>,
    stop: oneshot::Sender<()>,
    /// A second stop: at once.
    hurry: oneshot::Sender<()>,
    task: JoinHandle<()>,
    output: Output,
    file: PathBuf,
}

impl Running {
    async fn start(dir: &Path, listen: &[&str], config: ServerConfig) -> Running {
        Running::start_with(dir, listen, config, |_| {}).await
    }

    /// [`Running::start`], with `adjust` changing the output's settings.
    async fn start_with(
        dir: &Path,
        listen: &[&str],
        config: ServerConfig,
        adjust: impl FnOnce(&mut OutputConfig),
    ) -> Running {
        let file = dir.join("out.log");
        let dedup = Arc::new(Mutex::new(Dedup::new()));
        let mut output_config = OutputConfig {
            file: FileSpec {
                path: file.clone(),
                layout: LayoutSpec::parse("%(message)s", None).unwrap(),
                max_bytes: 0,
                backup_count: 0,
                every: None,
                compression: Compression::None,
                mode: logbraid_collector::output::DEFAULT_FILE_MODE,
                follow_links: false,
            },
            route: None,
            merge_window: None,
            max_pending_bytes: 32 << 20,
            state_path: None,
            fallback: None,
            sync: logbraid::SyncMode::None,
            client_files: None,
        };
        adjust(&mut output_config);
        let (output, handle) = Output::start(output_config, Arc::clone(&dedup)).unwrap();
        let mut listeners = Vec::new();
        let mut urls = Vec::new();
        for url in listen {
            let (l, shown) = server::bind(&Endpoint::parse(url).unwrap(), 0o600)
                .await
                .unwrap();
            listeners.push(l);
            urls.push(shown);
        }
        let server = Arc::new(Server::new(config, handle, dedup));
        let (stop, stopped) = oneshot::channel::<()>();
        let (hurry, hurried) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(
            Arc::clone(&server),
            listeners,
            async {
                let _ = stopped.await;
            },
            async {
                if hurried.await.is_err() {
                    std::future::pending::<()>().await;
                }
            },
        ));
        Running {
            server,
            urls,
            stop,
            hurry,
            task,
            output,
            file,
        }
    }

    fn stats(&self) -> Arc<Stats> {
        self.server.stats()
    }

    fn count(&self, kind: Kind) -> u64 {
        self.stats().diagnostics.count(kind)
    }

    /// `host:port` of the listener whose URL starts with `scheme`.
    fn addr(&self, scheme: &str) -> String {
        let url = self.urls.iter().find(|u| u.starts_with(scheme)).unwrap();
        url[scheme.len()..].to_string()
    }

    /// Stops the server (draining), shuts the output down, and returns the
    /// file's lines.
    async fn stop(self) -> Vec<String> {
        let _ = self.stop.send(());
        within("server::run after the stop", self.task)
            .await
            .unwrap();
        let output = self.output;
        tokio::task::spawn_blocking(move || output.shutdown())
            .await
            .unwrap();
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn hello(client_id: &str, token: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_hello(
        &Hello {
            versions: wire::SUPPORTED_VERSIONS,
            client_id,
            epoch: 7,
            host: "test-host",
            pid: 42,
            program: "server-test",
            token,
        },
        &mut out,
    )
    .unwrap();
    out
}

/// A `BATCH` frame numbered from `first`, one record per message.
fn batch(first: u64, messages: &[String]) -> Vec<u8> {
    let source = Source::current();
    let mut enc = BatchEncoder::default();
    for m in messages {
        let r = Record::new(Level::Info, "t", m.as_bytes(), &source)
            .with_timestamp(1_700_000_000_000_000_000)
            .with_thread_id(1);
        assert_eq!(enc.push(&r), Push::Added);
    }
    let mut out = Vec::new();
    enc.finish(first, &mut out).unwrap();
    out
}

fn tagged(tag: &str, range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|i| format!("{tag} {i}")).collect()
}

/// The next frame from the collector, `None` once it has closed.
async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let n = u32::from_le_bytes(len) as usize;
    assert!(n <= 64 << 10, "a collector frame of {n} bytes");
    let mut frame = len.to_vec();
    frame.resize(4 + n, 0);
    s.read_exact(&mut frame[4..]).await.ok()?;
    Some(frame)
}

/// What the next frame is, in short: `welcome 0`, `ack 10`, `error 4`,
/// `pong 9`, or `closed`.
async fn next_event<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let Some(frame) = within("a frame or the close", read_frame(s)).await else {
        return "closed".to_string();
    };
    match wire::decode(&frame).unwrap() {
        Frame::Welcome { highest, .. } => format!("welcome {highest}"),
        Frame::Ack { highest } => format!("ack {highest}"),
        Frame::Error { code, .. } => format!("error {}", code.0),
        Frame::Pong { nonce } => format!("pong {nonce}"),
        other => panic!("unexpected frame from the collector: {other:?}"),
    }
}

/// Sends `bytes` on a new connection, half-closes it when `eof`, and
/// returns everything the collector sent until it closed.
async fn exchange(addr: &str, bytes: &[u8], eof: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    if eof {
        s.shutdown().await.unwrap();
    }
    let mut back = Vec::new();
    // A reset instead of a clean close also ends the exchange.
    let _ = within("the collector closing", s.read_to_end(&mut back)).await;
    back
}

/// The code of the `ERROR` frame the collector answered with.
async fn refused_with(addr: &str, bytes: &[u8]) -> u16 {
    let back = exchange(addr, bytes, false).await;
    match wire::decode(&back) {
        Ok(Frame::Error { code, .. }) => code.0,
        other => panic!("expected one ERROR frame, got {other:?} from {back:x?}"),
    }
}

/// A `SocketHandler` frame (big-endian length, then a protocol-2 pickle of
/// a dict) with `name` and `msg` given as raw UTF-8 bytes.
fn pickle_frame(name: &str, msg: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'('];
    for (k, v) in [(&b"name"[..], name.as_bytes()), (&b"msg"[..], msg)] {
        for s in [k, v] {
            p.push(b'X');
            p.extend_from_slice(&(s.len() as u32).to_le_bytes());
            p.extend_from_slice(s);
        }
    }
    p.extend_from_slice(b"u.");
    let mut frame = (p.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&p);
    frame
}

/// Asserts that `got` and `want` hold the same lines, any order; on a
/// difference, says which lines are missing or extra rather than printing
/// thousands.
fn assert_same_lines<S: AsRef<str>, T: AsRef<str>>(got: &[S], want: &[T]) {
    let mut got: Vec<&str> = got.iter().map(AsRef::as_ref).collect();
    let mut want: Vec<&str> = want.iter().map(AsRef::as_ref).collect();
    got.sort_unstable();
    want.sort_unstable();
    if got == want {
        return;
    }
    let missing: Vec<&&str> = want.iter().filter(|w| !got.contains(w)).take(10).collect();
    let mut extra = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for g in &got {
        if !seen.insert(*g) || !want.contains(g) {
            extra.push(*g);
        }
    }
    extra.truncate(10);
    panic!(
        "{} lines, {} expected; missing (first 10): {missing:?}; extra or repeated (first 10): {extra:?}",
        got.len(),
        want.len()
    );
}

/// Waits until `f` holds (UDP has no reply to wait for).
async fn eventually(what: &str, f: impl Fn() -> bool) {
    within(what, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// A native client that has said `HELLO` and got its `WELCOME`.
async fn greeted(addr: &str, id: &str, token: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&hello(id, token)).await.unwrap();
    assert_eq!(next_event(&mut s).await, "welcome 0");
    s
}

async fn send_batch<S: AsyncWrite + AsyncRead + Unpin>(s: &mut S, first: u64, msgs: &[String]) {
    s.write_all(&batch(first, msgs)).await.unwrap();
    let last = first + msgs.len() as u64 - 1;
    assert_eq!(next_event(s).await, format!("ack {last}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_counted_under_its_kind_and_closes_only_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        token: Some(Arc::from(&b"s3cret"[..])),
        ..ServerConfig::default()
    };
    let run = Running::start(
        dir.path(),
        &[
            "tcp://127.0.0.1:0",
            "python-tcp://127.0.0.1:0",
            "syslog-tcp://127.0.0.1:0",
            "python-udp://127.0.0.1:0",
            "syslog-udp://127.0.0.1:0",
        ],
        config,
    )
    .await;
    let native = run.addr("tcp://");
    let py = run.addr("python-tcp://");
    let sys = run.addr("syslog-tcp://");

    // A good client, connected throughout.
    let mut good = greeted(&native, "good", b"s3cret").await;
    send_batch(&mut good, 1, &tagged("good", 0..10)).await;

    // Native protocol. Each answer is the ERROR code PROTOCOL.md gives.
    assert_eq!(
        refused_with(&native, &[0xff, 0xff, 0xff, 0x7f, 1, 1]).await,
        4
    );
    let mut v9 = hello("v9", b"s3cret");
    v9[4] = 9;
    assert_eq!(refused_with(&native, &v9).await, 2);
    assert_eq!(refused_with(&native, &[2, 0, 0, 0, 1, 0x63]).await, 8);
    // An HTTP request is garbage; its first four bytes read as a length
    // of half a gigabyte, refused before anything is buffered.
    assert_eq!(refused_with(&native, b"GET / HTTP/1.1\r\n\r\n").await, 4);
    assert_eq!(refused_with(&native, &hello("intruder", b"guess")).await, 1);
    // Invalid UTF-8 where the protocol requires text (the client id).
    let mut bad_id = hello("abc", b"s3cret");
    let at = bad_id.windows(3).position(|w| w == b"abc").unwrap();
    bad_id[at] = 0xff;
    assert_eq!(refused_with(&native, &bad_id).await, 3);
    assert_eq!(
        refused_with(&native, &batch(1, &tagged("x", 0..1))).await,
        9
    );
    // A truncated frame, then the end of the stream: nothing to answer.
    let h = hello("cut", b"s3cret");
    assert!(exchange(&native, &h[..h.len() - 3], true).await.is_empty());

    // Python SocketHandler: closed without an answer (the protocol has none).
    let evil = b"cos\nsystem\n(S'touch pwned'\ntR.";
    let mut frame = (evil.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(evil);
    assert!(exchange(&py, &frame, false).await.is_empty());
    assert!(exchange(&py, &[0x7f, 0xff, 0xff, 0xff], false)
        .await
        .is_empty());
    let mut cut = pickle_frame("py", b"cut short");
    cut.truncate(cut.len() - 5);
    assert!(exchange(&py, &cut, true).await.is_empty());
    // Invalid UTF-8 inside a pickle's text is not an attack: the intake
    // reads it as Python's own `surrogatepass` writes it, each bad sequence
    // one U+FFFD, and the connection goes on.
    let mut both = pickle_frame("py", b"bad \xff\xfe utf-8");
    both.extend_from_slice(&pickle_frame("py", b"after the bad utf-8"));
    assert!(exchange(&py, &both, true).await.is_empty());

    // Syslog over TCP: a line that starts no syslog frame.
    assert!(exchange(&sys, b"hello there\n", false).await.is_empty());

    // UDP: every bad datagram is counted; there is no connection to close.
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(b"\x00\x00\x00\x09short", run.addr("python-udp://"))
        .await
        .unwrap();
    udp.send_to(&frame, run.addr("python-udp://"))
        .await
        .unwrap();
    udp.send_to(b"no priority here", run.addr("syslog-udp://"))
        .await
        .unwrap();
    let stats = run.stats();
    eventually("the bad datagrams counted", || {
        stats.diagnostics.count(Kind::BadSyslog) == 1
            && stats.diagnostics.count(Kind::BadPickle) == 2
    })
    .await;

    let counts = [
        (Kind::FrameTooLarge, 3),
        (Kind::UnsupportedVersion, 1),
        (Kind::Malformed, 5),
        (Kind::BadToken, 1),
        (Kind::Truncated, 2),
        (Kind::BadPickle, 2),
        (Kind::BadSyslog, 1),
        (Kind::Overloaded, 0),
        (Kind::Idle, 0),
        (Kind::HelloTimeout, 0),
    ];
    for (kind, n) in counts {
        assert_eq!(run.count(kind), n, "{kind:?}");
    }
    assert_eq!(stats.diagnostics.total(), 15);

    // The good client was never disturbed, and new ones are welcome.
    send_batch(&mut good, 11, &tagged("good", 10..20)).await;
    let mut late = greeted(&native, "late", b"s3cret").await;
    send_batch(&mut late, 1, &tagged("late", 0..5)).await;
    drop((good, late));

    let lines = run.stop().await;
    let mut want = tagged("good", 0..20);
    want.extend(tagged("late", 0..5));
    want.push("bad \u{fffd}\u{fffd} utf-8".to_string());
    want.push("after the bad utf-8".to_string());
    assert_same_lines(&lines, &want);
    assert!(!dir.path().join("pwned").exists());
    assert_eq!(stats.records.load(Ordering::Relaxed), 27);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused_while_the_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    };
    let run = Running::start(
        dir.path(),
        &["tcp://127.0.0.1:0", "python-tcp://127.0.0.1:0"],
        config,
    )
    .await;
    let native = run.addr("tcp://");
    let py = run.addr("python-tcp://");

    // The cap is shared by the stream listeners, each keeping a slot for
    // the other: one native, one Python.
    let mut good = greeted(&native, "good", b"").await;
    let mut python = TcpStream::connect(&py).await.unwrap();
    python
        .write_all(&pickle_frame("py", b"python before"))
        .await
        .unwrap();
    // Native connections over the cap hear why; others are just closed.
    for _ in 0..5 {
        assert_eq!(refused_with(&native, &hello("extra", b"")).await, 7);
        assert!(exchange(&py, &pickle_frame("py", b"refused"), false)
            .await
            .is_empty());
    }
    assert_eq!(run.count(Kind::Overloaded), 10);
    assert_eq!(run.stats().connections.load(Ordering::Relaxed), 2);

    // The connections within the cap are served as before.
    send_batch(&mut good, 1, &tagged("good", 0..10)).await;
    python
        .write_all(&pickle_frame("py", b"python after"))
        .await
        .unwrap();

    // A closed connection gives its slot back (to its listener).
    drop(good);
    within("a slot freed by a closed connection", async {
        loop {
            let mut s = TcpStream::connect(&native).await.unwrap();
            s.write_all(&hello("next", b"")).await.unwrap();
            if next_event(&mut s).await == "welcome 0" {
                send_batch(&mut s, 1, &tagged("next", 0..3)).await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    drop(python);

    let got = run.stop().await;
    let mut want = tagged("good", 0..10);
    want.extend(tagged("next", 0..3));
    want.extend(["python after".to_string(), "python before".to_string()]);
    assert_same_lines(&got, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_connections_are_closed_after_the_hello_and_idle_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        hello_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(1500),
        ..ServerConfig::default()
    };
    let run = Running::start(
        dir.path(),
        &["tcp://127.0.0.1:0", "python-tcp://127.0.0.1:0"],
        config,
    )
    .await;
    let native = run.addr("tcp://");

    // Silent from the start, and a HELLO that trickles and stops: both
    // closed for the missing HELLO, not for being idle.
    let mut silent = TcpStream::connect(&native).await.unwrap();
    assert_eq!(next_event(&mut silent).await, "closed");
    let mut trickle = TcpStream::connect(&native).await.unwrap();
    trickle.write_all(&hello("slow", b"")[..5]).await.unwrap();
    assert_eq!(next_event(&mut trickle).await, "closed");
    assert_eq!(run.count(Kind::HelloTimeout), 2);
    assert_eq!(run.count(Kind::Idle), 0);

    // A greeted client that pings is alive for many idle timeouts; once it
    // stops, it is closed as idle.
    let mut pinger = greeted(&native, "pinger", b"").await;
    for nonce in 0..20 {
        let mut ping = Vec::new();
        wire::encode_ping(nonce, &mut ping);
        pinger.write_all(&ping).await.unwrap();
        assert_eq!(next_event(&mut pinger).await, format!("pong {nonce}"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    send_batch(&mut pinger, 1, &tagged("pinger", 0..3)).await;
    assert_eq!(next_event(&mut pinger).await, "closed");
    assert_eq!(run.count(Kind::Idle), 1);

    // Python connections have no HELLO; they too are closed when idle.
    let mut py = TcpStream::connect(run.addr("python-tcp://")).await.unwrap();
    py.write_all(&pickle_frame("py", b"then silence"))
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = within(
        "the idle Python connection closed",
        py.read_to_end(&mut rest),
    )
    .await;
    assert_eq!(run.count(Kind::Idle), 2);
    assert_eq!(run.count(Kind::HelloTimeout), 2);

    let got = run.stop().await;
    let mut want = tagged("pinger", 0..3);
    want.push("then silence".to_string());
    assert_same_lines(&got, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_writes_what_open_connections_and_queued_datagrams_already_sent() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("c.sock");
    let unix = format!("unix:{}", sock.display());
    let run = Running::start(
        dir.path(),
        &[
            &unix,
            "python-tcp://127.0.0.1:0",
            "python-udp://127.0.0.1:0",
        ],
        ServerConfig::default(),
    )
    .await;

    // A native client with many batches in flight, none acknowledged yet.
    let mut native = UnixStream::connect(&sock).await.unwrap();
    native.write_all(&hello("busy", b"")).await.unwrap();
    assert_eq!(next_event(&mut native).await, "welcome 0");
    let mut bytes = Vec::new();
    for b in 0..50u64 {
        bytes.extend(batch(
            1 + b * 100,
            &tagged("native", b * 100..(b + 1) * 100),
        ));
    }
    native.write_all(&bytes).await.unwrap();
    // A Python client that stays connected.
    let mut py = TcpStream::connect(run.addr("python-tcp://")).await.unwrap();
    let mut frames = Vec::new();
    for i in 0..1000 {
        frames.extend(pickle_frame("py", format!("python {i}").as_bytes()));
    }
    py.write_all(&frames).await.unwrap();
    // Datagrams queued on the socket.
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..100 {
        let f = pickle_frame("udp", format!("udp {i}").as_bytes());
        udp.send_to(&f, run.addr("python-udp://")).await.unwrap();
    }

    // Stop at once: nothing was waited for.
    let stats = run.stats();
    let _ = run.stop.send(());
    // The native client gets acknowledgements, then the collector closes.
    let mut highest = 0;
    loop {
        match next_event(&mut native).await.as_str() {
            "closed" => break,
            ack => {
                let n: u64 = ack.strip_prefix("ack ").unwrap().parse().unwrap();
                assert!(n > highest && n <= 5000, "{ack} after {highest}");
                highest = n;
            }
        }
    }
    let mut rest = Vec::new();
    let _ = within("the Python connection closed", py.read_to_end(&mut rest)).await;
    within("server::run after the stop", run.task)
        .await
        .unwrap();
    assert!(!sock.exists(), "the socket file is removed at the end");
    let output = run.output;
    tokio::task::spawn_blocking(move || output.shutdown())
        .await
        .unwrap();
    let text = std::fs::read_to_string(&run.file).unwrap();
    let got: Vec<&str> = text.lines().collect();
    let mut want = tagged("native", 0..5000);
    want.extend(tagged("python", 0..1000));
    want.extend(tagged("udp", 0..100));
    assert_same_lines(&got, &want);
    assert_eq!(stats.records.load(Ordering::Relaxed), 6100);
    assert_eq!(stats.diagnostics.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_path_is_taken_over_only_from_a_collector_that_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let url = Endpoint::parse(&format!("unix:{}", path.display())).unwrap();

    // A socket file nobody listens on: what a crashed collector leaves.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let (live, shown) = server::bind(&url, 0o600).await.unwrap();
    assert_eq!(shown, format!("unix:{}", path.display()));
    // Its permissions: its owner's only.
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&path), 0o600);

    // While it is listening, a second collector may not take it.
    let e = server::bind(&url, 0o600).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
    assert!(path.exists());
    drop(live);

    // Anything but a socket is never removed.
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "keep me").unwrap();
    let e = server::bind(
        &Endpoint::parse(&format!("unix:{}", file.display())).unwrap(),
        0o600,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("is not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

    // The mode asked for; and at the end the file is removed only while
    // it is still this listener's socket, not a successor's.
    let other = dir.path().join("t.sock");
    let url = Endpoint::parse(&format!("unix:{}", other.display())).unwrap();
    let (mine, _) = server::bind(&url, 0o660).await.unwrap();
    assert_eq!(mode(&other), 0o660);
    let server::Listener::Unix(_, file) = &mine else {
        panic!("not a unix listener")
    };
    std::fs::remove_file(&other).unwrap();
    let successor = std::os::unix::net::UnixListener::bind(&other).unwrap();
    file.remove();
    assert!(other.exists(), "a successor's socket was removed");
    drop(successor);
    std::fs::remove_file(&other).unwrap();
    let (mine, _) = server::bind(&url, 0o600).await.unwrap();
    let server::Listener::Unix(_, file) = &mine else {
        panic!("not a unix listener")
    };
    file.remove();
    assert!(!other.exists(), "its own socket stayed");
}

/// A collector whose output is held up by a file that cannot be opened,
/// with a sender that has more to say than the output has room for; it
/// returns once records are held.
async fn held_up() -> (tempfile::TempDir, PathBuf, Running, JoinHandle<()>) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(logs.join("app.log")).unwrap();
    let config = ServerConfig {
        drain: Duration::from_millis(50),
        ..ServerConfig::default()
    };
    let run = Running::start_with(dir.path(), &["syslog-tcp://127.0.0.1:0"], config, |o| {
        o.route = Some(format!("{}/{{program}}.log", logs.display()));
        // Room for a few records only.
        o.max_pending_bytes = 8 << 10;
    })
    .await;
    let pad = "x".repeat(1000);
    let mut text = String::new();
    for i in 0..3000 {
        text.push_str(&format!("<13>Dec  6 07:00:00 host app: r{i} {pad}\n"));
    }
    let mut s = TcpStream::connect(run.addr("syslog-tcp://")).await.unwrap();
    // More than the collector reads while its output is held up: the
    // sender blocks, and what it has not got through is never read.
    let sender = tokio::spawn(async move {
        let _ = s.write_all(text.as_bytes()).await;
    });
    let output = &run.output;
    within("records held for the blocked file", async {
        while output.stats().held == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    (dir, logs, run, sender)
}

#[tokio::test]
async fn a_stop_writes_every_record_read_even_past_the_drain_time() {
    // Records read from a connection wait for room in the output stage,
    // which a file that cannot be opened holds up: the stop waits for
    // them, past the drain time, and writes them once the file opens.
    let (_dir, logs, run, sender) = held_up().await;
    let stats = run.stats();
    let _ = run.stop.send(());
    std::fs::remove_dir(logs.join("app.log")).unwrap();
    within("server::run after the stop", run.task)
        .await
        .unwrap();
    sender.abort();
    let read = stats.records.load(Ordering::Relaxed);
    let output = run.output;
    let out = tokio::task::spawn_blocking(move || output.shutdown())
        .await
        .unwrap();
    let lines: Vec<String> = std::fs::read_to_string(logs.join("app.log"))
        .unwrap()
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    // Every record read is written, once, in order.
    let want: Vec<String> = (0..read).map(|i| format!("r{i}")).collect();
    assert!(
        lines == want,
        "{} read, {} written, {} lost",
        read,
        lines.len(),
        out.lost
    );
    assert!(read > 8, "the test must read more than the budget holds");
}

#[tokio::test]
async fn a_second_stop_does_not_wait_for_a_file_that_cannot_be_opened() {
    let (_dir, logs, run, sender) = held_up().await;
    let _ = run.stop.send(());
    let _ = run.hurry.send(());
    within("server::run after a hurried stop", run.task)
        .await
        .unwrap();
    sender.abort();
    let output = run.output;
    let out = tokio::task::spawn_blocking(move || output.shutdown())
        .await
        .unwrap();
    // What the output held is counted lost; nothing reached the file.
    assert!(out.lost > 0, "{out:?}");
    assert!(logs.join("app.log").is_dir());
}

/// PEM files in `dir`: `ca.pem`, and `NAME.pem` with `NAME.key` for each
/// leaf `ca` signs: `server` (for 127.0.0.1), `good` and `other` (client
/// certificates), plus `stranger.pem` and `.key`, a self-signed client.
fn tls_files(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let write = |name: &str, cert: &rcgen::Certificate, key: &KeyPair| {
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "test ca");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca.self_signed(&ca_key).unwrap();
    write("ca", &ca, &ca_key);
    for (name, sans) in [
        ("server", vec!["127.0.0.1".to_string()]),
        ("good", vec![]),
        ("other", vec![]),
    ] {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(sans)
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        write(name, &cert, &key);
    }
    let stranger = rcgen::generate_simple_self_signed(vec!["stranger".to_string()]).unwrap();
    write("stranger", &stranger.cert, &stranger.key_pair);
}

/// A TLS connection to `addr` that trusts `ca.pem` in `dir` and shows the
/// certificate `cert`, if any.
async fn tls_client(
    dir: &Path,
    addr: &str,
    cert: Option<&str>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let pem = |n: &str, ext: &str| dir.join(format!("{n}.{ext}"));
    let cert_key = cert.map(|c| (pem(c, "pem"), pem(c, "key")));
    let config = logbraid::tls::client_config(
        &pem("ca", "pem"),
        cert_key.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
    )
    .unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = logbraid::tls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    within(
        "the client's side of the handshake",
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_peers_are_counted_by_kind_and_a_client_id_stays_with_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    tls_files(dir.path());
    let pem = |n: &str| dir.path().join(n);
    let config = ServerConfig {
        tls: Some(
            logbraid::tls::server_config(
                &pem("server.pem"),
                &pem("server.key"),
                Some(&pem("ca.pem")),
            )
            .unwrap(),
        ),
        hello_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let run = Running::start(
        dir.path(),
        &["tls://127.0.0.1:0", "syslog-tls://127.0.0.1:0"],
        config,
    )
    .await;
    let addr = run.addr("tls://");

    let mut good = tls_client(dir.path(), &addr, Some("good")).await;
    good.write_all(&hello("app", b"")).await.unwrap();
    assert_eq!(next_event(&mut good).await, "welcome 0");
    send_batch(&mut good, 1, &tagged("good", 0..10)).await;

    // No certificate, and one no CA of the collector issued: closed
    // during the handshake, each counted once.
    for (cert, n) in [(None, 1), (Some("stranger"), 2)] {
        let mut s = tls_client(dir.path(), &addr, cert).await;
        let _ = s.write_all(&hello("x", b"")).await;
        assert_eq!(next_event(&mut s).await, "closed");
        eventually("the refused handshake counted", || {
            run.count(Kind::TlsHandshake) == n
        })
        .await;
    }
    // Plaintext: not TLS.
    let back = exchange(&addr, &hello("x", b""), false).await;
    assert!(back.is_empty() || back[0] == 0x15, "{back:x?}");
    eventually("plaintext counted", || run.count(Kind::NotTls) == 1).await;
    // A connection that never starts its handshake: closed at the HELLO
    // timeout, as a failed handshake.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(next_event(&mut silent).await, "closed");
    eventually("the silent one counted", || {
        run.count(Kind::TlsHandshake) == 3
    })
    .await;
    // Another certificate of the same CA asks for the good client's id.
    let mut other = tls_client(dir.path(), &addr, Some("other")).await;
    other.write_all(&hello("app", b"")).await.unwrap();
    assert_eq!(next_event(&mut other).await, "error 10");
    assert_eq!(run.count(Kind::ClientIdTaken), 1);
    // Once the good client is gone, the id is free for the other
    // certificate, under a numbering of its own: nothing of the good
    // client's is known to it.
    send_batch(&mut good, 11, &tagged("good", 10..20)).await;
    drop(good);
    // The collector may not have seen the close yet: a HELLO refused
    // meanwhile is counted too.
    let mut refused = 0;
    let mut other = within("the id freed", async {
        loop {
            let mut other = tls_client(dir.path(), &addr, Some("other")).await;
            other.write_all(&hello("app", b"")).await.unwrap();
            match next_event(&mut other).await.as_str() {
                "welcome 0" => break other,
                "error 10" => refused += 1,
                e => panic!("unexpected answer {e}"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    send_batch(&mut other, 1, &tagged("other", 0..5)).await;
    assert_eq!(run.count(Kind::ClientIdTaken), 1 + refused);

    let got = run.stop().await;
    let mut want = tagged("good", 0..20);
    want.extend(tagged("other", 0..5));
    assert_same_lines(&got, &want);
}
