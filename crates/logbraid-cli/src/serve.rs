//! `logbraid serve`: the collector as a command.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use logbraid::wire::Dedup;
use logbraid_collector::config::{read_file, Raw, ServeConfig, Size};
use logbraid_collector::output::Output;
use logbraid_collector::server::{self, Server};

/// Collect records from other processes and hosts into one rotated file.
///
/// Every flag has a key of the same name (with `_`) in the TOML file given
/// with --config; flags win.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Where to listen: unix:PATH, tcp://HOST:PORT (native protocol),
    /// python-tcp://, python-udp://, syslog-udp://, syslog-tcp://. Repeat
    /// for several. Default: unix:./logbraid.sock and
    /// python-tcp://127.0.0.1:9020.
    #[arg(long = "listen", value_name = "URL")]
    listen: Vec<String>,
    /// The log file (default: logs/logbraid.log).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Rotate before the file would grow past this size (e.g. 100MiB).
    #[arg(long)]
    max_bytes: Option<String>,
    /// Rotated files to keep (default: all).
    #[arg(long)]
    backup_count: Option<u64>,
    /// Also rotate every minute, hour, day or week.
    #[arg(long, value_name = "minutely|hourly|daily|weekly")]
    rotate: Option<String>,
    /// Compress rotated files.
    #[arg(long, value_name = "gzip|zstd")]
    compress: Option<String>,
    /// Line format: text, json, or a Python %-style format.
    #[arg(long)]
    format: Option<String>,
    /// Hold records up to this many milliseconds and write them in
    /// timestamp order across sources.
    #[arg(long, value_name = "MS")]
    merge_window: Option<u64>,
    /// One file per source, e.g. 'logs/{host}/{program}.log'
    /// (placeholders: host, program, pid, logger).
    #[arg(long, value_name = "TEMPLATE")]
    route: Option<String>,
    /// Native clients must present this token.
    #[arg(long)]
    token: Option<String>,
    /// Longest frame accepted (default 1MiB, the least allowed).
    #[arg(long, value_name = "BYTES")]
    max_frame: Option<String>,
    /// Connections served at once (default 1024).
    #[arg(long, value_name = "N")]
    max_connections: Option<u64>,
    /// A TOML file with the same settings.
    #[arg(long, value_name = "logbraid.toml")]
    config: Option<PathBuf>,
}

impl Args {
    fn raw(&self) -> Raw {
        Raw {
            listen: self.listen.clone(),
            file: self.file.clone(),
            max_bytes: self.max_bytes.clone().map(Size::Text),
            backup_count: self.backup_count,
            rotate: self.rotate.clone(),
            compress: self.compress.clone(),
            format: self.format.clone(),
            merge_window: self.merge_window,
            route: self.route.clone(),
            token: self.token.clone(),
            max_frame: self.max_frame.clone().map(Size::Text),
            max_connections: self.max_connections,
        }
    }
}

/// Exit code for a bad setting.
const USAGE: u8 = 2;

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let file = match &args.config {
        Some(p) => match read_file(p) {
            Ok(raw) => raw,
            Err(e) => {
                eprintln!("logbraid serve: {e}");
                return Ok(ExitCode::from(USAGE));
            }
        },
        None => Raw::default(),
    };
    let config = match ServeConfig::resolve(args.raw(), file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("logbraid serve: {e}");
            return Ok(ExitCode::from(USAGE));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(config))
}

/// Runs a collector with `config` until SIGTERM or SIGINT.
pub(crate) async fn serve(config: ServeConfig) -> anyhow::Result<ExitCode> {
    let dedup = Arc::new(Mutex::new(Dedup::new()));
    let (output, handle) = Output::start(config.output.clone(), Arc::clone(&dedup))?;
    let mut listeners = Vec::new();
    for url in &config.listen {
        let (l, shown) = server::bind(url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {url:?}: {e}"))?;
        listeners.push((l, shown));
    }
    {
        let mut out = std::io::stdout().lock();
        for (_, shown) in &listeners {
            writeln!(out, "listening on {shown}")?;
        }
        out.flush()?;
    }
    let server = Arc::new(Server::new(config.server.clone(), handle, dedup));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    server::run(
        Arc::clone(&server),
        listeners.into_iter().map(|(l, _)| l).collect(),
        stop,
    )
    .await;
    let stats = output.shutdown();
    let rejected = server.stats().diagnostics.total();
    eprintln!(
        "logbraid serve: stopped; {} records written, {rejected} inputs rejected",
        stats.written
    );
    Ok(ExitCode::SUCCESS)
}
