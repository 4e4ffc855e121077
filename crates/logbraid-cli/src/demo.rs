//! `logbraid demo`: one collector, several worker processes, one file.
//!
//! Starts a collector in this process (the library behind `logbraid
//! serve`), spawns Rust workers that find it through `LOGBRAID_COLLECTOR`
//! with nothing configured (each asks for a file of its own, and forwards
//! instead), plus Python workers using the standard library's
//! `SocketHandler` when `python3` is there; then reads every file back and
//! says where every record went.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context};
use logbraid::config::parse_size;
use logbraid::layout::LayoutSpec;
use logbraid::read::log_set;
use logbraid::sink::RollingFile;
use logbraid::wire::Dedup;
use logbraid::{Builder, Compression};
use logbraid_collector::output::{FileSpec, Output, OutputConfig};
use logbraid_collector::server::{self, Endpoint, Server, ServerConfig};

use crate::tally::Tally;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Directory of the log files (created if missing).
    #[arg(long, default_value = "logs")]
    dir: PathBuf,
    /// Rust worker processes.
    #[arg(long, default_value_t = 4)]
    workers: u64,
    /// Records per Rust worker.
    #[arg(long, default_value_t = 250_000)]
    records: u64,
    /// Python SocketHandler workers (skipped when python3 is missing).
    #[arg(long, default_value_t = 2)]
    python_workers: u64,
    /// Records per Python worker.
    #[arg(long, default_value_t = 20_000)]
    python_records: u64,
    /// Rotate the file when it would exceed this size.
    #[arg(long, default_value = "16MiB")]
    max_bytes: String,
    /// Compression of rotated files: none, gzip or zstd.
    #[arg(long, default_value = "zstd")]
    compress: String,
}

/// `logbraid demo-worker`: what each Rust worker process runs.
#[derive(clap::Args, Debug)]
pub(crate) struct WorkerArgs {
    #[arg(long)]
    id: u64,
    #[arg(long)]
    records: u64,
    #[arg(long)]
    run: String,
}

const PY_WORKER: &str = r#"
import logging, logging.handlers, sys
port, wid, n, run = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
h = logging.handlers.SocketHandler("127.0.0.1", port)
log = logging.getLogger("demo.python")
log.setLevel(logging.INFO)
log.addHandler(h)
for i in range(n):
    log.info("run %s py%s %d", run, wid, i)
h.close()
"#;

pub(crate) fn worker(args: &WorkerArgs) -> anyhow::Result<ExitCode> {
    // Configured as a standalone program would be; because the parent
    // exported LOGBRAID_COLLECTOR, this opens no file and forwards.
    let guard = Builder::new()
        .level("info")
        .file(RollingFile::builder(format!("worker-{}.log", args.id)))?
        .init()?;
    for i in 0..args.records {
        log::info!(target: "demo.rust", "run {} w{} {}", args.run, args.id, i);
    }
    drop(guard);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let max_bytes = parse_size(&args.max_bytes).map_err(|e| anyhow::anyhow!("--max-bytes: {e}"))?;
    let compression: Compression = args
        .compress
        .parse()
        .map_err(|e| anyhow::anyhow!("--compress: {e}"))?;
    if args.workers == 0 {
        bail!("--workers: must be at least 1");
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    let path = dir.join("demo.log");
    let socket = dir.join("demo.sock");
    let run = format!("{:x}", logbraid::clock::now_ns());
    let python =
        Command::new("python3").arg("--version").output().is_ok() && args.python_workers > 0;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dedup = Arc::new(Mutex::new(Dedup::new()));
    let (output, handle) = Output::start(
        OutputConfig {
            file: FileSpec {
                path: path.clone(),
                layout: LayoutSpec::parse(
                    "%(asctime)s %(levelname)s %(process)d %(processName)s %(name)s: %(message)s",
                    None,
                )?,
                max_bytes,
                backup_count: 0,
                every: None,
                compression,
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
        },
        Arc::clone(&dedup),
    )?;
    let urls = [
        format!("unix:{}", socket.display()),
        "python-tcp://127.0.0.1:0".to_string(),
    ];
    let mut listeners = Vec::new();
    let mut shown = Vec::new();
    for u in &urls {
        let url = Endpoint::parse(u)?;
        let (l, s) = runtime.block_on(server::bind(&url, server::DEFAULT_SOCKET_MODE))?;
        listeners.push(l);
        shown.push(s);
    }
    let py_port = shown[1].rsplit(':').next().unwrap_or("0").to_string();
    let srv = Arc::new(Server::new(ServerConfig::default(), handle, dedup));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(server::run(
        Arc::clone(&srv),
        listeners,
        async move {
            let _ = stop_rx.await;
        },
        std::future::pending::<()>(),
    ));

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "logbraid demo: a collector, {} Rust worker processes x {} records{}",
        args.workers,
        args.records,
        if python {
            format!(
                ", {} Python SocketHandler workers x {} records",
                args.python_workers, args.python_records
            )
        } else {
            ", no python3: Python workers skipped".to_string()
        }
    )?;
    for s in &shown {
        writeln!(out, "  listening   {s}")?;
    }
    out.flush()?;
    let start = Instant::now();
    let exe = std::env::current_exe()?;
    let mut children: Vec<(String, Child)> = Vec::new();
    for id in 0..args.workers {
        let child = Command::new(&exe)
            .args([
                "demo-worker",
                "--id",
                &id.to_string(),
                "--records",
                &args.records.to_string(),
                "--run",
                &run,
            ])
            .env("LOGBRAID_COLLECTOR", &urls[0])
            .current_dir(&dir)
            .spawn()
            .context("cannot start a worker")?;
        children.push((format!("rust worker w{id} (pid {})", child.id()), child));
    }
    if python {
        let script = dir.join("demo_worker.py");
        std::fs::write(&script, PY_WORKER)?;
        for id in 0..args.python_workers {
            let child = Command::new("python3")
                .arg(&script)
                .args([
                    &py_port,
                    &id.to_string(),
                    &args.python_records.to_string(),
                    &run,
                ])
                .env_remove("LOGBRAID_COLLECTOR")
                .spawn()
                .context("cannot start python3")?;
            children.push((format!("python worker py{id} (pid {})", child.id()), child));
        }
    }
    let mut failed = 0;
    for (name, mut c) in children {
        if !c.wait()?.success() {
            writeln!(out, "  {name} failed")?;
            failed += 1;
        }
    }
    let _ = stop_tx.send(());
    runtime.block_on(serving)?;
    let stats = output.shutdown();
    let elapsed = start.elapsed();
    let _ = std::fs::remove_file(dir.join("demo_worker.py"));

    let files = log_set(&path)?;
    let mut expected: BTreeMap<String, u64> = (0..args.workers)
        .map(|i| (format!("w{i}"), args.records))
        .collect();
    if python {
        expected.extend((0..args.python_workers).map(|i| (format!("py{i}"), args.python_records)));
    }
    let check = verify(&files, &run, &expected)?;
    let total: u64 = expected.values().sum();
    writeln!(
        out,
        "  arrived     {} records of this run in {:.2} s ({:.2} M records/s through the collector)",
        check.found,
        elapsed.as_secs_f64(),
        check.found as f64 / elapsed.as_secs_f64() / 1e6
    )?;
    for (src, n) in &expected {
        let got = check.per_source.get(src).copied().unwrap_or(0);
        writeln!(out, "    {src:<6} {got:>9} of {n:>9}")?;
    }
    writeln!(
        out,
        "  written     {} records into {} files ({} rotated, compression {compression}):",
        stats.written,
        files.len(),
        files.len().saturating_sub(1)
    )?;
    for f in &files {
        writeln!(out, "                {}", f.display())?;
    }
    let stray: Vec<_> = (0..args.workers)
        .map(|i| dir.join(format!("worker-{i}.log")))
        .filter(|p| p.exists())
        .collect();
    writeln!(
        out,
        "  workers' own files opened: {} (they forwarded instead)",
        stray.len()
    )?;
    writeln!(
        out,
        "  verified    {} of {total}: {} missing, {} duplicated, {} out of order",
        check.found,
        check.missing(),
        check.duplicated,
        check.out_of_order
    )?;
    let ok = failed == 0 && check.found == total && check.clean() && stray.is_empty();
    crate::tally::verdict(&mut out, ok)
}

/// Reads every file, oldest first, and checks that each worker's records
/// of this run are there once each, in the order the worker logged them.
fn verify(
    files: &[PathBuf],
    run: &str,
    expected: &BTreeMap<String, u64>,
) -> anyhow::Result<Tally<String>> {
    let marker = format!(": run {run} ");
    let mut tally = Tally::new(expected.iter().map(|(k, n)| (k.clone(), *n)));
    tally.read(files, |line| {
        let at = line.find(&marker)?;
        let mut it = line[at + marker.len()..].split(' ');
        let src = it.next()?.to_string();
        Some((src, it.next()?.parse().ok()?))
    })?;
    Ok(tally)
}
