//! `logbraid write`: a JetStream stream into rotated files.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logbraid_collector::config::{NatsServers, ServeConfig, Settings};
use logbraid_collector::consume::{self, ConsumeConfig, ConsumeStats};
use logbraid_collector::metrics::Metrics;
use logbraid_collector::output::{Output, OutputError};

/// The flags of `logbraid write`: where to read, and the file settings
/// of `logbraid serve`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub struct Args {
    /// NATS servers of the cluster, nats://HOST:PORT, comma-separated.
    #[arg(long, value_name = "nats://HOST:PORT,...")]
    from: NatsServers,
    /// The durable consumer's name (default logbraid-writer); one writer
    /// per consumer.
    #[arg(long, value_name = "NAME")]
    consumer: Option<String>,
    /// Only these subjects (e.g. 'logs.web-*.>' is not a NATS wildcard;
    /// 'logs.*.api'): writers with different filters split a stream.
    #[arg(long, value_name = "SUBJECT")]
    filter: Option<String>,
    /// How long JetStream waits for a message's acknowledgement before
    /// delivering it again (default 30s); a message still being written
    /// is reported in progress every third of it.
    #[arg(long, value_name = "DURATION")]
    ack_wait: Option<logbraid::config::Seconds>,
    #[command(flatten)]
    settings: Settings,
    /// A TOML file with the same settings as logbraid serve's.
    #[arg(long, value_name = "logbraid.toml")]
    config: Option<PathBuf>,
}

const AFTER_HELP: &str = "\
Reads the stream that `logbraid serve --publish` fills (--stream, default
LOGS) through a durable pull consumer, and writes every record once, in each
client's order, with the file settings of `logbraid serve` (--file or
--route, --max-bytes, --backup-count, --rotate, --compress, --format,
--sync, --file-mode, --fallback-file). A message is acknowledged to
JetStream only after it is written (and synced with --sync data). The
checkpoint `.<file name>.state` keeps each client's numbering with the
files, and `.<file name>.state.position` the stream sequence below which
everything is written: a restarted writer resumes there and skips what it
had written since.

Metrics: --metrics HOST:PORT serves /metrics (Prometheus text format): the
output stage's metrics as `logbraid serve` has them
(logbraid_records_written_total, logbraid_write_seconds,
logbraid_sync_seconds, ...) and the consumer's
(logbraid_consume_messages_total, logbraid_consume_acked_total,
logbraid_consume_pending: messages taken and not yet written,
logbraid_consume_lag: messages left in the stream for the consumer,
logbraid_consume_position, logbraid_consume_consumers_created_total,
logbraid_consume_malformed_total, logbraid_consume_gaps_total); /health
(503 once records have waited longer than --stall-timeout, 30 s by
default, with no write completing) and /ready (503 from the first SIGTERM
or SIGINT, and while the records waiting for the files fill their share
of --max-memory). stdout says `metrics on http://HOST:PORT` after the
`consuming` line.

SIGTERM or SIGINT: stops taking messages, writes and acknowledges those
taken, exits 0. SIGHUP reopens the files.";

/// Exit code for a bad setting.
const USAGE: u8 = 2;

/// How long the writer waits for a NATS server at start.
const NATS_CONNECT: Duration = Duration::from_secs(30);

/// Runs the writer until SIGTERM or SIGINT.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    if let Err(e) = logbraid::fault::setup() {
        eprintln!("logbraid write: {e}");
        return Ok(USAGE);
    }
    let file = match &args.config {
        Some(p) => match Settings::from_file(p) {
            Ok(settings) => settings,
            Err(e) => {
                eprintln!("logbraid write: {e}");
                return Ok(USAGE);
            }
        },
        None => Settings::default(),
    };
    let settings = args.settings.clone().or(file);
    for (key, on) in [
        ("listen", !settings.listen.is_empty()),
        ("publish", settings.publish.is_some()),
        ("subject", settings.subject.is_some()),
        ("duplicate_window", settings.duplicate_window.is_some()),
        ("merge_window", settings.merge_window.is_some()),
        (
            "token",
            settings.token.is_some() || settings.token_file.is_some(),
        ),
        ("tls_cert", settings.tls_cert.is_some()),
    ] {
        if on {
            eprintln!("logbraid write: {key} is a setting of logbraid serve, not of write");
            return Ok(USAGE);
        }
    }
    let mut settings = settings;
    // The listeners' defaults are checked by ServeConfig, and unused here.
    settings.listen = vec!["unix:./unused.sock".parse()?];
    let config = match ServeConfig::new(settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("logbraid write: {e}");
            return Ok(USAGE);
        }
    };
    let Some(state) = config.output.state_path.clone() else {
        anyhow::bail!("no checkpoint path");
    };
    let consume = ConsumeConfig {
        servers: args.from.0.clone(),
        stream: config.stream.clone(),
        consumer: args
            .consumer
            .clone()
            .unwrap_or_else(|| consume::DEFAULT_CONSUMER.to_string()),
        filter: args.filter.clone(),
        ack_wait: args.ack_wait.map_or(consume::DEFAULT_ACK_WAIT, |s| s.0),
        position_path: consume::position_path(&state),
        sync: config.output.sync == logbraid::SyncMode::Data,
    };
    if !consume
        .consumer
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        || consume.consumer.is_empty()
    {
        eprintln!(
            "logbraid write: consumer: {:?} is not a consumer name (letters, digits, - and _)",
            consume.consumer
        );
        return Ok(USAGE);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(write(config, consume))
}

async fn write(config: ServeConfig, consume: ConsumeConfig) -> anyhow::Result<u8> {
    // The metrics' address first: one in use must not leave a log file or
    // a recovered checkpoint behind.
    let metrics_listener = crate::serve::bind_metrics(config.metrics.as_deref()).await?;
    let dedup = Arc::new(Mutex::new(config.dedup()));
    let (output, handle) = match Output::start(config.output.clone(), Arc::clone(&dedup)) {
        Ok(started) => started,
        Err(e @ OutputError::Locked { .. }) => {
            eprintln!("logbraid write: {e}");
            return Ok(USAGE);
        }
        Err(e) => return Err(e.into()),
    };
    let metrics = Arc::new(Metrics::new(config.stall_timeout));
    let (stop, _hurry) = crate::serve::stop_signals(Arc::clone(&metrics))?;
    let reopen = handle.clone();
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if !reopen.reopen() {
                break;
            }
        }
    });
    let stats = Arc::new(ConsumeStats::default());
    metrics.output(output.watch());
    metrics.consumer(Arc::clone(&stats));
    let (stream, name) = (consume.stream.clone(), consume.consumer.clone());
    println!("consuming {stream} as {name}");
    crate::serve::serve_metrics(&metrics, metrics_listener)?;
    let ran = consume::run(
        consume,
        handle,
        dedup,
        Arc::clone(&stats),
        NATS_CONNECT,
        stop,
    )
    .await;
    let written = output.shutdown();
    ran?;
    eprintln!(
        "logbraid write: stopped; {} records written, {} messages acknowledged, stream \
         position {}",
        written.written,
        stats.acked.load(Ordering::Relaxed),
        stats.position.load(Ordering::Relaxed)
    );
    Ok(0)
}
