//! What the tests of `logbraid serve` share: the collector as a child
//! process, a forwarding client in the test's process, and the checks of
//! what the files hold.
#![allow(dead_code)]

pub mod cluster;
pub mod http;
pub mod pki;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use logbraid::forward::{Endpoint, ForwardOptions};
use logbraid::{Builder, Callsite, Level};

/// A running `logbraid serve`.
pub struct Serve {
    pub child: Child,
    pub urls: Vec<String>,
    pub stderr: PathBuf,
    /// With `--metrics`: `HOST:PORT` of `/metrics`, `/health`, `/ready`.
    pub metrics: Option<String>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_logbraid")
}

impl Serve {
    /// Starts the collector with `args` in `dir` and waits for its
    /// `listening on` lines.
    pub fn start(dir: &Path, args: &[&str]) -> Serve {
        let listeners = args.iter().filter(|a| **a == "--listen").count();
        Serve::start_with(dir, args, listeners)
    }

    /// [`Serve::start`] for `listeners` listeners that are not all given
    /// as `--listen` flags (a TOML file names them).
    pub fn start_with(dir: &Path, args: &[&str], listeners: usize) -> Serve {
        Serve::start_env(dir, args, listeners, &[])
    }

    /// [`Serve::start_with`] with variables `env` in its environment.
    pub fn start_env(dir: &Path, args: &[&str], listeners: usize, env: &[(&str, &str)]) -> Serve {
        let n = std::fs::read_dir(dir).unwrap().count();
        let stderr = dir.join(format!("serve-{n}.err"));
        let mut child = Command::new(bin())
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut urls = Vec::new();
        for _ in 0..listeners {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            let url = line
                .strip_prefix("listening on ")
                .unwrap_or_else(|| {
                    panic!(
                        "unexpected output {line:?}: {}",
                        std::fs::read_to_string(&stderr).unwrap_or_default()
                    )
                })
                .trim_end()
                .to_string();
            urls.push(url);
        }
        let metrics = args.contains(&"--metrics").then(|| {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            line.strip_prefix("metrics on http://")
                .unwrap_or_else(|| panic!("unexpected output {line:?}"))
                .trim_end()
                .to_string()
        });
        Serve {
            child,
            urls,
            stderr,
            metrics,
        }
    }

    pub fn url(&self, scheme: &str) -> &str {
        self.urls.iter().find(|u| u.starts_with(scheme)).unwrap()
    }

    pub fn port(&self, scheme: &str) -> u16 {
        self.url(scheme)
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// SIGTERM, then the exit status and what it said on stderr.
    pub fn stop(mut self) -> (ExitStatus, String) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        (status, std::fs::read_to_string(&self.stderr).unwrap())
    }

    pub fn kill(mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        self.child.wait().unwrap();
    }
}

pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The records of a JSON-lines file.
pub fn json(path: &Path) -> Vec<serde_json::Value> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Waits until the file at `path` has `n` lines, for 30 s at most (the
/// caller's assertions then say what is missing).
pub fn wait_for_lines(path: &Path, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while lines(path).len() < n && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `logbraid serve args` in `dir` to its end (a bad setting):
/// the exit code and stderr, without its last newline.
pub fn serve_once(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(bin())
        .arg("serve")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
    )
}

/// A logger of this process that writes only to `sink`.
pub fn logger_with(
    sink: impl logbraid::sink::Sink + 'static,
) -> (logbraid::Logger, logbraid::Guard) {
    Builder::new()
        .level("trace")
        .inherit_collector(false)
        .sink(sink)
        .build()
        .unwrap()
}

/// A forwarding client in this process.
pub fn client(url: &str) -> (logbraid::Logger, logbraid::Guard) {
    let options = ForwardOptions::new(Endpoint::parse(url).unwrap())
        .backoff(Duration::from_millis(5), Duration::from_millis(100));
    Builder::new()
        .level("trace")
        .inherit_collector(false)
        .forward(options)
        .unwrap()
        .build()
        .unwrap()
}

pub fn log_range(logger: &logbraid::Logger, tag: &str, range: std::ops::Range<u64>) {
    let site = Callsite::new(Level::Info, "t");
    for i in range {
        logger.log_with(&site, format_args!("{tag} {i}"), &mut |_| {});
    }
}

/// Checks that `lines` hold `tag 0` … `tag n-1` once each, in order, as the
/// message part after the last `: `.
pub fn assert_sequence(lines: &[String], tag: &str, n: u64) {
    let prefix = format!("{tag} ");
    let got: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.rsplit(": ").next())
        .filter_map(|m| m.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(got.len() as u64, n, "{tag}: count");
    for (i, v) in got.iter().enumerate() {
        assert_eq!(
            *v, i as u64,
            "{tag}: missing, repeated or out of order at {i}"
        );
    }
}

/// A `HELLO` frame from `client_id` with `token`.
pub fn hello(client_id: &str, token: &[u8]) -> Vec<u8> {
    hello_from(client_id, "p", token)
}

/// A `HELLO` frame from `client_id` of `program` with `token`.
pub fn hello_from(client_id: &str, program: &str, token: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    logbraid::wire::encode_hello(
        &logbraid::wire::Hello {
            versions: logbraid::wire::SUPPORTED_VERSIONS,
            client_id,
            epoch: 1,
            host: "h",
            pid: 1,
            program,
            token,
        },
        &mut out,
    )
    .unwrap();
    out
}

/// Reads one frame the collector sent, `None` once it has closed.
pub fn read_frame(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut frame = len.to_vec();
    frame.resize(4 + u32::from_le_bytes(len) as usize, 0);
    s.read_exact(&mut frame[4..]).ok()?;
    Some(frame)
}

/// A `BATCH` of `messages` numbered from `first`.
pub fn batch_frame(first: u64, messages: &[String]) -> Vec<u8> {
    let source = logbraid::Source::current();
    let mut enc = logbraid::wire::BatchEncoder::default();
    for m in messages {
        let r = logbraid::Record::new(Level::Info, "raw", m.as_bytes(), &source)
            .with_timestamp(logbraid::clock::now_ns())
            .with_thread_id(1);
        assert_eq!(enc.push(&r), logbraid::wire::Push::Added);
    }
    let mut out = Vec::new();
    enc.finish(first, &mut out).unwrap();
    out
}

/// A child process of a test, killed (SIGKILL) if the test ends without
/// stopping it.
pub struct Proc {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Proc {
    /// What it said on stderr so far.
    pub fn said(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for it to die of SIGKILL (sent by a failpoint, or by
    /// [`Proc::kill`]); returns what it said.
    pub fn killed(&mut self) -> String {
        use std::os::unix::process::ExitStatusExt as _;
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{}", self.said());
        self.said()
    }

    /// SIGKILL, mid-stream.
    pub fn kill(&mut self) -> String {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        self.killed()
    }

    /// SIGTERM; it must exit 0. Returns what it said.
    pub fn stop(&mut self) -> String {
        // SAFETY: as above.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}: {}", self.said());
        self.said()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A forwarding client in the test's process whose records are
/// `<prefix> 0`, `<prefix> 1`, …
pub struct Numbered {
    pub logger: logbraid::Logger,
    pub stats: logbraid::forward::ForwardStats,
    /// The number of the next record.
    pub next: u64,
    pub prefix: String,
    guard: Option<logbraid::Guard>,
}

impl Drop for Numbered {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failed assertion may leave records no collector will
            // acknowledge; the guard's shutdown would wait for them.
            std::mem::forget(self.guard.take());
        }
    }
}

impl Numbered {
    /// Forwards to `url` as `client_id`, reconnecting after 5 ms up to
    /// `max_backoff`.
    pub fn connect(url: &str, client_id: &str, prefix: &str, max_backoff: Duration) -> Numbered {
        let options = ForwardOptions::new(Endpoint::parse(url).unwrap())
            .client_id(client_id)
            .backoff(Duration::from_millis(5), max_backoff);
        let sink = logbraid::forward::ForwardSink::new(options).unwrap();
        let stats = sink.stats();
        let (logger, guard) = Builder::new()
            .level("trace")
            .signals(false)
            .inherit_collector(false)
            .sink(sink)
            .build()
            .unwrap();
        Numbered {
            logger,
            stats,
            next: 0,
            prefix: prefix.to_string(),
            guard: Some(guard),
        }
    }

    /// Logs the next `n` records, without waiting for anything.
    pub fn send(&mut self, n: u64) {
        let site = Callsite::new(Level::Info, "t");
        for i in self.next..self.next + n {
            self.logger
                .log_with(&site, format_args!("{} {i}", self.prefix), &mut |_| {});
        }
        self.next += n;
    }

    /// Records the collector has acknowledged (cumulative: records
    /// `0..acked`).
    pub fn acked(&self) -> u64 {
        self.stats.get().acked
    }
}

/// A `SocketHandler` frame of a LogRecord dict (protocol 2) holding
/// `msg`, level 20, name "x", `pid` and `process_name`.
pub fn pickled_record(msg: &str, pid: u32, process_name: &str) -> Vec<u8> {
    let text = |p: &mut Vec<u8>, s: &str| {
        p.push(b'X');
        p.extend((s.len() as u32).to_le_bytes());
        p.extend(s.as_bytes());
    };
    let mut p = b"\x80\x02}(".to_vec();
    for (k, v) in [("msg", msg), ("name", "x"), ("processName", process_name)] {
        text(&mut p, k);
        text(&mut p, v);
    }
    text(&mut p, "levelno");
    p.extend(b"K\x14");
    text(&mut p, "process");
    p.push(b'J');
    p.extend(pid.to_le_bytes());
    p.extend(b"u.");
    let mut frame = (p.len() as u32).to_be_bytes().to_vec();
    frame.extend(p);
    frame
}
