//! Throughput through NATS JetStream: client processes forwarding to two
//! `logbraid serve --publish` collectors, a 3-node JetStream cluster on
//! loopback (started here), and one `logbraid write` into one file; every
//! line read back and checked (each record once, per-client order). The
//! section `nats` of `bench/COLLECTOR.md` holds the results.
//!
//! ```sh
//! cargo build --release -p logbraid-cli
//! cargo build --release -p logbraid-bench --bin collector --bin nats
//! target/release/nats --write bench/COLLECTOR.md
//! ```

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../section.rs"]
mod section;

#[path = "../../../crates/logbraid-cli/tests/harness/cluster.rs"]
mod cluster;

use anyhow::{bail, Context};
use clap::Parser;

#[derive(Parser, Debug)]
struct Cli {
    /// Records per client process.
    #[arg(long, default_value_t = 250_000)]
    records: u64,
    /// Client processes (half to each collector).
    #[arg(long, default_value_t = 4)]
    clients: u64,
    /// Runs; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Put the results in this file's `nats` section (default: stdout).
    #[arg(long)]
    write: Option<PathBuf>,
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let bin = std::env::current_exe()?.with_file_name(name);
    if !bin.exists() {
        bail!(
            "{} not found: build logbraid-cli and the collector bench first",
            bin.display()
        );
    }
    Ok(bin)
}

/// A child killed when dropped.
struct Proc(Child);

impl Proc {
    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let st = self.0.wait()?;
        anyhow::ensure!(st.success(), "exited with {st}");
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts a 3-node cluster in `dir`; returns the servers and their URLs.
fn cluster(dir: &Path) -> anyhow::Result<(Vec<Proc>, String)> {
    let (nodes, urls) =
        cluster::start(dir, "8MB").context("nats-server (2.9 or later) must be on PATH")?;
    Ok((
        nodes.into_iter().map(|(child, _)| Proc(child)).collect(),
        urls.join(","),
    ))
}

/// Runs `logbraid` with `args` in `dir`; waits for its first stdout line.
fn logbraid(dir: &Path, args: &[&str]) -> anyhow::Result<(Proc, String)> {
    let mut child = Command::new(sibling("logbraid")?)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    Ok((Proc(child), line.trim_end().to_string()))
}

struct Run {
    secs: f64,
    bytes: u64,
    collector_rss: u64,
    writer_rss: u64,
}

fn lines_in(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .unwrap_or(0)
}

/// Each client's records once and in order.
fn verify(path: &Path, clients: u64, records: u64) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut next = vec![0u64; clients as usize];
    for line in text.lines() {
        let mut it = line.trim_start_matches('c').split(' ');
        let (Some(Ok(id)), Some(Ok(i))) = (
            it.next().map(str::parse::<usize>),
            it.next().map(str::parse::<u64>),
        ) else {
            bail!("{line:?}");
        };
        let e = next.get_mut(id).context("client id")?;
        anyhow::ensure!(*e == i, "client {id}: expected {e}, found {i}");
        *e += 1;
    }
    anyhow::ensure!(
        next.iter().all(|&n| n == records),
        "clients short: {next:?}"
    );
    Ok(())
}

fn once(cli: &Cli) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let (nodes, servers) = cluster(dir.path())?;
    let mut collectors = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..2 {
        let (p, line) = logbraid(
            dir.path(),
            &[
                "serve",
                "--listen",
                "tcp://127.0.0.1:0",
                "--publish",
                &servers,
            ],
        )?;
        let url = line
            .strip_prefix("listening on ")
            .context("serve did not start")?;
        urls.push(url.to_string());
        collectors.push(p);
    }
    let log = dir.path().join("out.log");
    let (writer, _) = logbraid(
        dir.path(),
        &[
            "write",
            "--from",
            &servers,
            "--file",
            log.to_str().context("path")?,
            "--format",
            "%(message)s",
        ],
    )?;
    let total = cli.clients * cli.records;
    let start = Instant::now();
    let mut clients = Vec::new();
    for id in 0..cli.clients {
        let url = &urls[id as usize % 2];
        clients.push(Proc(
            Command::new(sibling("collector")?)
                .args(["native", url, &id.to_string(), &cli.records.to_string()])
                .spawn()?,
        ));
    }
    for mut c in clients {
        anyhow::ensure!(c.0.wait()?.success(), "a client failed");
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while lines_in(&log) < total {
        anyhow::ensure!(Instant::now() < deadline, "the writer never caught up");
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = start.elapsed().as_secs_f64();
    let collector_rss = collectors.iter().map(Proc::peak_rss_kib).max().unwrap_or(0);
    let writer_rss = writer.peak_rss_kib();
    writer.stop()?;
    for c in collectors {
        c.stop()?;
    }
    drop(nodes);
    verify(&log, cli.clients, cli.records)?;
    Ok(Run {
        secs,
        bytes: std::fs::metadata(&log)?.len(),
        collector_rss,
        writer_rss,
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut runs = Vec::new();
    for r in 0..cli.runs {
        let run = once(&cli)?;
        eprintln!("run {}: {:.3} s", r + 1, run.secs);
        runs.push(run);
    }
    runs.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    let runs_secs: Vec<String> = runs.iter().map(|r| format!("{:.3}", r.secs)).collect();
    let m = &runs[runs.len() / 2];
    let total = cli.clients * cli.records;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Through NATS JetStream\n\n{} client processes (half to each of 2 `logbraid serve \
         --publish` collectors, TCP) → a 3-node JetStream cluster on loopback (nats-server {}, \
         file storage, 3 replicas) → one `logbraid write` into one file (`%(message)s`), on \
         this machine ({} cores, all of it: clients, collectors, the three servers and the \
         writer). {} records per client, flushed (acknowledged by JetStream); the clock stops \
         when the last line is in the writer's file; every line read back and checked (each \
         record once, per-client order). Median of {} runs ({} s). RSS: peak (VmHWM). \
         Provisional: the machine is shared with other builds, so these figures move from \
         run to run more than the single-collector ones.\n",
        cli.clients,
        nats_version(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cli.records,
        cli.runs,
        runs_secs.join(", ")
    );
    let _ = writeln!(
        out,
        "| records | seconds | records/s | MiB/s | collector peak RSS (larger) | writer peak RSS |\n\
         |---:|---:|---:|---:|---:|---:|\n| {total} | {:.3} | {:.2} M | {:.1} | {:.1} MiB | {:.1} MiB |",
        m.secs,
        total as f64 / m.secs / 1e6,
        m.bytes as f64 / m.secs / (1 << 20) as f64,
        m.collector_rss as f64 / 1024.0,
        m.writer_rss as f64 / 1024.0
    );
    let _ = writeln!(
        out,
        "\nReproduce: `cargo build --release -p logbraid-cli && cargo build --release -p \
         logbraid-bench --bin collector --bin nats && target/release/nats --write \
         bench/COLLECTOR.md`"
    );
    match &cli.write {
        Some(p) => {
            let doc = std::fs::read_to_string(p).unwrap_or_default();
            std::fs::write(p, section::replace(&doc, "nats", &out))?;
        }
        None => print!("{out}"),
    }
    Ok(())
}

fn nats_version() -> String {
    Command::new(cluster::nats_server())
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().last().map(str::to_string))
        .map(|v| v.trim_start_matches('v').to_string())
        .unwrap_or_else(|| "?".to_string())
}
