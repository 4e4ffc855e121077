//! Collector throughput: 4 client processes into one file through
//! `logbraid serve`, every line verified, side by side with the logging
//! cookbook's socket receiver on the same replayed Python frames.
//!
//! ```sh
//! cargo build --release -p logbraid-cli
//! cargo run --release -p logbraid-bench --bin collector -- --write bench/COLLECTOR.md
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../section.rs"]
mod section;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
struct Cli {
    /// Records per client process.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Client processes.
    #[arg(long, default_value_t = 4)]
    clients: u64,
    /// Runs per scenario; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Write the markdown report here (default: stdout).
    #[arg(long, conflicts_with = "only")]
    write: Option<PathBuf>,
    /// Run one kind of intake only (native, pickle or syslog), the report
    /// on stdout: for profiling a change before the full run.
    #[arg(long, value_parser = ["native", "pickle", "syslog"])]
    only: Option<String>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// A native client: logs `records` and flushes (waits for the acks).
    #[command(hide = true)]
    Native { url: String, id: u64, records: u64 },
    /// Replays a file of captured SocketHandler frames to a TCP port.
    #[command(hide = true)]
    Replay { port: u16, frames: PathBuf },
}

fn serve_bin() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me.with_file_name("logbraid");
    if !bin.exists() {
        bail!(
            "{} not found: run `cargo build --release -p logbraid-cli` first",
            bin.display()
        );
    }
    Ok(bin)
}

struct Serve {
    child: Child,
    urls: Vec<String>,
}

impl Serve {
    fn start(dir: &Path, args: &[&str]) -> anyhow::Result<Serve> {
        let mut child = Command::new(serve_bin()?)
            .arg("serve")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut out = BufReader::new(child.stdout.take().context("stdout")?);
        let mut urls = Vec::new();
        for _ in 0..args.iter().filter(|a| **a == "--listen").count() {
            let mut line = String::new();
            out.read_line(&mut line)?;
            urls.push(
                line.trim_end()
                    .trim_start_matches("listening on ")
                    .to_string(),
            );
        }
        Ok(Serve { child, urls })
    }

    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(0)
    }

    fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let st = self.child.wait()?;
        anyhow::ensure!(st.success(), "serve exited with {st}");
        Ok(())
    }
}

fn native_client(url: &str, id: u64, records: u64) -> anyhow::Result<()> {
    use logbraid::forward::{Endpoint, ForwardOptions};
    let (logger, guard) = logbraid::Builder::new()
        .level("info")
        .inherit_collector(false)
        .forward(ForwardOptions::new(Endpoint::parse(url)?))?
        .build()?;
    let site = logbraid::Callsite::new(logbraid::Level::Info, "bench");
    for i in 0..records {
        logger.log_with(
            &site,
            format_args!("c{id} {i} request served in 3 ms"),
            &mut |_| {},
        );
    }
    logger.flush();
    drop(guard);
    Ok(())
}

fn replay(port: u16, frames: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(frames)?;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(&bytes)?;
    s.shutdown(std::net::Shutdown::Write)?;
    // Wait for the receiver to close, so the connection is fully read.
    let mut sink = [0u8; 64];
    let _ = std::io::Read::read(&mut s, &mut sink);
    Ok(())
}

/// Checks `c<id> <i>` / `py<id> <i>` lines: every record once, and in
/// each client's order when `ordered`.
fn verify(
    path: &Path,
    clients: u64,
    records: u64,
    prefix: &str,
    ordered: bool,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut seen: HashMap<u64, Vec<bool>> = HashMap::new();
    let mut next: HashMap<u64, u64> = HashMap::new();
    let mut n = 0u64;
    for line in text.lines() {
        let Some(at) = line.find(prefix) else {
            continue;
        };
        let mut it = line[at + prefix.len()..].split(' ');
        let (Some(Ok(id)), Some(Ok(i))) = (
            it.next().map(str::parse::<u64>),
            it.next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        let e = next.entry(id).or_insert(0);
        anyhow::ensure!(!ordered || *e == i, "client {id}: expected {e}, found {i}");
        *e += 1;
        let marks = seen
            .entry(id)
            .or_insert_with(|| vec![false; records as usize]);
        let slot = marks
            .get_mut(i as usize)
            .ok_or_else(|| anyhow::anyhow!("client {id}: record {i} out of range"))?;
        anyhow::ensure!(!*slot, "client {id}: record {i} twice");
        *slot = true;
        n += 1;
    }
    anyhow::ensure!(
        n == clients * records,
        "{n} lines, expected {}",
        clients * records
    );
    anyhow::ensure!(next.values().all(|&v| v == records), "a client is short");
    Ok(())
}

/// Counts the lines of a growing file, reading each byte once.
#[derive(Default)]
struct Lines {
    offset: u64,
    lines: u64,
}

impl Lines {
    fn count(&mut self, path: &Path) -> u64 {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(path) else {
            return self.lines;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return self.lines;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_ok() {
            self.offset += buf.len() as u64;
            self.lines += buf.iter().filter(|&&c| c == b'\n').count() as u64;
        }
        self.lines
    }
}

struct Result {
    name: String,
    secs: f64,
    records: u64,
    bytes: u64,
    rss_kib: u64,
}

fn native(cli: &Cli, listen: &str, sync: &str) -> anyhow::Result<Result> {
    let dir = tempfile::tempdir()?;
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            listen,
            "--file",
            "out.log",
            "--format",
            "%(message)s",
            "--sync",
            sync,
        ],
    )?;
    let url = if let Some(p) = listen.strip_prefix("unix:") {
        format!("unix:{}", dir.path().join(p).display())
    } else {
        serve.urls[0].clone()
    };
    let me = std::env::current_exe()?;
    let start = Instant::now();
    let kids: Vec<Child> = (0..cli.clients)
        .map(|id| {
            Command::new(&me)
                .args(["native", &url, &id.to_string(), &cli.records.to_string()])
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    for mut k in kids {
        anyhow::ensure!(k.wait()?.success(), "a client failed");
    }
    let secs = start.elapsed().as_secs_f64();
    let rss_kib = serve.peak_rss_kib();
    serve.stop()?;
    let path = dir.path().join("out.log");
    verify(&path, cli.clients, cli.records, "c", true)?;
    Ok(Result {
        name: String::new(),
        secs,
        records: cli.clients * cli.records,
        bytes: std::fs::metadata(&path)?.len(),
        rss_kib,
    })
}

const CAPTURE: &str = r#"
import logging, logging.handlers, sys
wid, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
h = logging.handlers.SocketHandler("127.0.0.1", 9)
with open(out, "wb") as f:
    for i in range(n):
        r = logging.LogRecord("bench", logging.INFO, "/srv/app.py", 42, "py%s %d request served in 3 ms", (wid, i), None, "serve")
        f.write(h.makePickle(r))
"#;

const COOKBOOK: &str = r#"
# The logging cookbook's socket receiver ("Sending and receiving logging
# events across a network"), writing each record to a file.
import logging, logging.handlers, pickle, socketserver, struct, sys
class LogRecordStreamHandler(socketserver.StreamRequestHandler):
    # As in the cookbook, except that the 4-byte length is read exactly:
    # the cookbook's recv(4) drops the connection whenever a length prefix
    # straddles two TCP segments, which a fast sender makes common.
    def handle(self):
        while True:
            chunk = self.rfile.read(4)
            if len(chunk) < 4:
                break
            slen = struct.unpack(">L", chunk)[0]
            chunk = self.rfile.read(slen)
            obj = pickle.loads(chunk)
            record = logging.makeLogRecord(obj)
            logging.getLogger(record.name).handle(record)
class Receiver(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
h = logging.FileHandler(sys.argv[1])
h.setFormatter(logging.Formatter("%(message)s"))
logging.getLogger().addHandler(h)
logging.getLogger().setLevel(logging.DEBUG)
srv = Receiver(("127.0.0.1", 0), LogRecordStreamHandler)
print("listening on python-tcp://127.0.0.1:%d" % srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// Who receives a replayed stream.
#[derive(Clone, Copy)]
enum Receiver {
    /// `logbraid serve` listening on this URL, writing `%(message)s`, or
    /// its default text line when the flag is false.
    Serve(&'static str, bool),
    /// The logging cookbook's socket receiver.
    Cookbook,
    /// rsyslogd: imtcp into omfile, both at their defaults.
    Rsyslogd,
}

impl Receiver {
    fn label(&self) -> &'static str {
        match self {
            Receiver::Serve(..) => "logbraid serve",
            Receiver::Cookbook => "cookbook receiver",
            Receiver::Rsyslogd => "rsyslogd",
        }
    }
}

/// User and system CPU seconds of process `pid` (all its threads) so far,
/// from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the
    // first, utime the 12th, stime the 13th.
    let mut f = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) as f64 / tick)
}

/// rsyslogd's configuration: its own work directory, one TCP input on a
/// port it chooses (written to a file), the senders' messages to one file
/// with omfile's default template (rsyslogd's own start and stop messages
/// stay out of it, as `logbraid serve`'s stay out of its file).
const RSYSLOG_CONF: &str = r#"
global(workDirectory="DIR")
module(load="imtcp")
input(type="imtcp" port="0" listenPortFileName="DIR/port")
if $programname == "app" then action(type="omfile" file="DIR/out.log")
"#;

/// Starts `receiver` in `dir`, writing `dir/out.log`: the process, its TCP
/// port, and whether it is stopped by a kill (not SIGTERM).
fn start_receiver(dir: &Path, receiver: Receiver) -> anyhow::Result<(Child, u16, bool)> {
    let path = dir.join("out.log");
    match receiver {
        Receiver::Cookbook => {
            let script = dir.join("cookbook.py");
            std::fs::write(&script, COOKBOOK)?;
            let mut child = Command::new("python3")
                .arg(&script)
                .arg(&path)
                .stdout(Stdio::piped())
                .spawn()?;
            let mut line = String::new();
            BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
            let port = line
                .trim_end()
                .rsplit(':')
                .next()
                .context("port")?
                .parse()?;
            Ok((child, port, true))
        }
        Receiver::Rsyslogd => {
            let conf = dir.join("rsyslog.conf");
            std::fs::write(
                &conf,
                RSYSLOG_CONF.replace("DIR", &dir.display().to_string()),
            )?;
            let child = Command::new("rsyslogd")
                .arg("-n")
                .arg("-f")
                .arg(&conf)
                .arg("-i")
                .arg(dir.join("rsyslogd.pid"))
                .stdout(Stdio::null())
                .spawn()
                .context("rsyslogd (Debian package rsyslog)")?;
            let port_file = dir.join("port");
            let start = Instant::now();
            let port = loop {
                if let Some(p) = std::fs::read_to_string(&port_file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    break p;
                }
                anyhow::ensure!(
                    start.elapsed() < Duration::from_secs(30),
                    "rsyslogd wrote no port"
                );
                std::thread::sleep(Duration::from_millis(10));
            };
            Ok((child, port, false))
        }
        Receiver::Serve(listen, message_only) => {
            let mut args = vec!["--listen", listen, "--file", "out.log"];
            if message_only {
                args.extend(["--format", "%(message)s"]);
            }
            let s = Serve::start(dir, &args)?;
            let port = s.urls[0].rsplit(':').next().context("port")?.parse()?;
            Ok((s.child, port, false))
        }
    }
}

/// Replays one file per client to `receiver` at once and times until
/// every line is in its file; then checks each client's `prefix<id> <i>`
/// lines.
fn replay_intake(
    cli: &Cli,
    frames: &[PathBuf],
    per_client: u64,
    prefix: &str,
    receiver: Receiver,
) -> anyhow::Result<Result> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("out.log");
    let (child, port, hard) = start_receiver(dir.path(), receiver)?;
    let me = std::env::current_exe()?;
    let total = cli.clients * per_client;
    let start = Instant::now();
    let kids: Vec<Child> = frames
        .iter()
        .map(|f| {
            Command::new(&me)
                .arg("replay")
                .arg(port.to_string())
                .arg(f)
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    // Done when every line is in the file; only new bytes are read, so
    // watching costs the receiver next to no CPU.
    let mut lines = Lines::default();
    while lines.count(&path) < total {
        std::thread::sleep(Duration::from_millis(5));
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(1800),
            "receiver stalled"
        );
    }
    let secs = start.elapsed().as_secs_f64();
    // The receiver's own CPU time: on a machine shared with the senders
    // (and others), what a change to the receiver moves most directly.
    if let Some(cpu) = cpu_seconds(child.id()) {
        eprintln!(
            "{}: {secs:.3} s, receiver CPU {cpu:.2} s ({:.0} ns a record)",
            receiver.label(),
            cpu * 1e9 / total as f64
        );
    }
    let rss_kib = Serve {
        child,
        urls: Vec::new(),
    }
    .peak_rss_kib_and_kill(hard)?;
    for mut k in kids {
        let _ = k.wait();
    }
    // rsyslogd's queue workers may reorder a sender's lines; every other
    // receiver keeps each client's order, and is held to it.
    verify(
        &path,
        cli.clients,
        per_client,
        prefix,
        !matches!(receiver, Receiver::Rsyslogd),
    )?;
    Ok(Result {
        name: String::new(),
        secs,
        records: total,
        bytes: std::fs::metadata(&path)?.len(),
        rss_kib,
    })
}

/// Writes one file per client of RFC 5424 syslog lines, newline-framed:
/// `sl<id> <i> request served in 3 ms`.
fn syslog_lines(dir: &Path, clients: u64, per_client: u64) -> anyhow::Result<Vec<PathBuf>> {
    (0..clients)
        .map(|id| {
            let f = dir.join(format!("syslog-{id}.txt"));
            let mut out = Vec::new();
            for i in 0..per_client {
                writeln!(
                    out,
                    "<14>1 2026-12-06T10:00:00.000000Z bench app 1000 - - sl{id} {i} request served in 3 ms"
                )?;
            }
            std::fs::write(&f, out)?;
            Ok(f)
        })
        .collect()
}

/// Runs two receivers alternately on the same replayed files: both rows
/// (medians) and the run-by-run ratios of the first's speed to the second's.
fn alternate(
    cli: &Cli,
    frames: &[PathBuf],
    per_client: u64,
    prefix: &str,
    (a, a_name): (Receiver, &str),
    (b, b_name): (Receiver, &str),
) -> anyhow::Result<(Result, Result, Vec<f64>)> {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut ratios = Vec::new();
    for _ in 0..cli.runs {
        let x = replay_intake(cli, frames, per_client, prefix, a)?;
        let y = replay_intake(cli, frames, per_client, prefix, b)?;
        ratios.push(y.secs / x.secs);
        ours.push(x);
        theirs.push(y);
    }
    eprintln!("{a_name} / {b_name}: done");
    Ok((median(ours, a_name), median(theirs, b_name), ratios))
}

/// `1.2x` for a ratio of medians and the ratios run by run.
fn ratio_line(what: &str, a: &Result, b: &Result, ratios: &[f64]) -> String {
    format!(
        "{what}: {:.2}x (medians); run by run: {}.",
        (a.records as f64 / a.secs) / (b.records as f64 / b.secs),
        ratios
            .iter()
            .map(|r| format!("{r:.2}x"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

impl Serve {
    fn peak_rss_kib_and_kill(mut self, hard: bool) -> anyhow::Result<u64> {
        let rss = self.peak_rss_kib();
        if hard {
            let _ = self.child.kill();
            let _ = self.child.wait();
        } else {
            self.stop()?;
        }
        Ok(rss)
    }
}

/// `8.2302.0`, from `rsyslogd -v`.
fn rsyslogd_version() -> String {
    Command::new("rsyslogd")
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let first = text.lines().next()?.to_string();
            first
                .split_whitespace()
                .nth(1)
                .map(|v| v.trim_end_matches(',').to_string())
        })
        .unwrap_or_else(|| "(version unknown)".to_string())
}

fn median(mut v: Vec<Result>, name: &str) -> Result {
    v.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    let rss = v.iter().map(|r| r.rss_kib).max().unwrap_or(0);
    let mut m = v.swap_remove(v.len() / 2);
    m.name = name.to_string();
    m.rss_kib = rss;
    m
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.cmd {
        Some(Cmd::Native { url, id, records }) => return native_client(url, *id, *records),
        Some(Cmd::Replay { port, frames }) => return replay(*port, frames),
        None => {}
    }
    let wants = |kind: &str| cli.only.as_deref().is_none_or(|o| o == kind);
    let mut rows = Vec::new();
    for (name, listen, sync) in [
        ("native, Unix socket", "unix:c.sock", "none"),
        ("native, Unix socket, `--sync data`", "unix:c.sock", "data"),
        ("native, TCP", "tcp://127.0.0.1:0", "none"),
    ]
    .into_iter()
    .filter(|_| wants("native"))
    {
        let runs = (0..cli.runs)
            .map(|_| native(&cli, listen, sync))
            .collect::<anyhow::Result<Vec<_>>>()?;
        eprintln!("{name}: done");
        rows.push(median(runs, name));
    }
    let cap = tempfile::tempdir()?;
    let mut pickles = String::new();
    if wants("pickle") {
        let script = cap.path().join("capture.py");
        std::fs::write(&script, CAPTURE)?;
        let frames: Vec<PathBuf> = (0..cli.clients)
            .map(|i| {
                let f = cap.path().join(format!("frames-{i}.bin"));
                let st = Command::new("python3")
                    .arg(&script)
                    .args([&i.to_string(), &(cli.records / 10).to_string()])
                    .arg(&f)
                    .status()?;
                anyhow::ensure!(st.success(), "capturing frames failed");
                Ok(f)
            })
            .collect::<anyhow::Result<_>>()?;
        // Interleaved, so that both receivers meet the same machine: a run of
        // one, then a run of the other.
        let (ours, theirs, pickle_ratios) = alternate(
            &cli,
            &frames,
            cli.records / 10,
            "py",
            (
                Receiver::Serve("python-tcp://127.0.0.1:0", true),
                "Python pickles, logbraid serve",
            ),
            (Receiver::Cookbook, "Python pickles, cookbook receiver"),
        )?;
        pickles = ratio_line(
            "Pickle intake: logbraid serve against the cookbook receiver",
            &ours,
            &theirs,
            &pickle_ratios,
        );
        rows.push(ours);
        rows.push(theirs);
    }
    let mut syslog = String::new();
    if wants("syslog") {
        let syslog_per_client = cli.records / 4;
        let lines = syslog_lines(cap.path(), cli.clients, syslog_per_client)?;
        let (ours, theirs, syslog_ratios) = alternate(
            &cli,
            &lines,
            syslog_per_client,
            "sl",
            (
                Receiver::Serve("syslog-tcp://127.0.0.1:0", false),
                "syslog over TCP, logbraid serve",
            ),
            (
                Receiver::Rsyslogd,
                "syslog over TCP, rsyslogd (imtcp → omfile)",
            ),
        )?;
        syslog = ratio_line(
            "Syslog intake: logbraid serve against rsyslogd",
            &ours,
            &theirs,
            &syslog_ratios,
        );
        rows.push(ours);
        rows.push(theirs);
    }

    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(out, "# Collector throughput\n");
    let _ = writeln!(out, "{} client processes into one file on this machine ({} cores); every line read back and checked (each record once, per-client order; rsyslogd, whose queue workers may reorder a sender's lines, is checked for each record once only). Native: {} records per client, flushed (acknowledged) before the clock stops; `--sync none` (the default: an acknowledgement means the records are in the file) unless the row says `--sync data` (the file and the checkpoint fdatasynced before each round's acknowledgements). Pickles: {} captured `SocketHandler` frames per client replayed as fast as the socket takes them; syslog: {} RFC 5424 lines per client, newline-framed, replayed the same way to `logbraid serve` (its default text line: timestamp, level, host, program, pid, message) and to rsyslogd {} (`imtcp` into `omfile`, both at their defaults, so each writes a full line); the clock stops when the last line is in the file. Median of {} runs; the runs of the two receivers of each kind alternate. RSS: the receiver's peak (VmHWM).\n", cli.clients, std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), cli.records, cli.records / 10, cli.records / 4, rsyslogd_version(), cli.runs);
    let _ = writeln!(out, "| scenario | records | seconds | records/s | MiB/s | receiver peak RSS |\n|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} | {:.2} M | {:.1} | {:.1} MiB |",
            r.name,
            r.records,
            r.secs,
            r.records as f64 / r.secs / 1e6,
            r.bytes as f64 / r.secs / 1048576.0,
            r.rss_kib as f64 / 1024.0
        );
    }
    let _ = writeln!(out, "\n{pickles}\n\n{syslog}");
    let _ = writeln!(out, "\nReproduce: `cargo build --release -p logbraid-cli && cargo run --release -p logbraid-bench --bin collector -- --write bench/COLLECTOR.md`");
    match &cli.write {
        Some(p) => {
            // The NATS bench keeps its own section of this file.
            let old = std::fs::read_to_string(p).unwrap_or_default();
            let doc = match section::body(&old, "nats") {
                Some(nats) => section::replace(&out, "nats", nats),
                None => out.clone(),
            };
            std::fs::write(p, doc)?;
            let results = p.with_file_name("RESULTS.md");
            if let Ok(doc) = std::fs::read_to_string(&results) {
                std::fs::write(
                    &results,
                    section::replace(&doc, "collector", &out.replacen("# ", "## ", 1)),
                )?;
            }
        }
        None => print!("{out}"),
    }
    Ok(())
}
