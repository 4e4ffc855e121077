//! `logbraid serve`: the collector as a command.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use logbraid::SyncMode;
use logbraid_collector::config::{ServeConfig, Settings};
use logbraid_collector::metrics::{self, Metrics};
use logbraid_collector::output::{Output, OutputError};
use logbraid_collector::server::{self, Server};

/// The flags of `logbraid serve`: the settings, and a file of them. What
/// `--help` says after them (the subcommand's one-line summary is in
/// `main.rs`).
#[derive(clap::Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub struct Args {
    #[command(flatten)]
    settings: Settings,
    /// A TOML file with the same settings.
    #[arg(long, value_name = "logbraid.toml")]
    config: Option<PathBuf>,
}

const AFTER_HELP: &str = "\
Every flag has a key of the same name with `_` for `-` at the top level of the
TOML file given with --config (`max_bytes = \"100MiB\"`,
`listen = [\"tcp://0.0.0.0:9021\"]`, `merge_window = 50`); flags win over the
file. A bad value or an unknown key exits with code 2 and names it.

Prints `listening on URL` (with the port chosen for port 0) for each listener
once all are bound. SIGTERM or SIGINT: stops accepting, reads what open
connections still send (up to 5 s), writes and acknowledges everything read
(waiting as long as that takes), flushes, and exits 0. A second SIGTERM or
SIGINT stops at once: what was read and not yet handed to the files is not
written (native clients resend it), and stderr says so. SIGHUP closes and
reopens every file, so a `logrotate` that moves the files away and then sends
SIGHUP loses nothing: records received before the signal end up in the moved
file or in the new one, records received after it in the new one only.

TLS: tls://HOST:PORT (native protocol) and syslog-tls://HOST:PORT (RFC 5425)
need --tls-cert and --tls-key; --tls-client-ca makes every TLS client show a
certificate that CA issued. A plaintext peer on a TLS port is counted and
closed. The token native clients must present: --token-file PATH (its first
line), or $LOGBRAID_TOKEN, or --token, which every user can read with ps.

OpenTelemetry logs: otlp-http://HOST:PORT (POST /v1/logs, protobuf or JSON,
gzip allowed; 4318 is the usual port) and otlp-grpc://HOST:PORT
(LogsService/Export; usually 4317). A request is answered once its records are
written; 400 for a body that does not decode, 413 over --max-frame, 429 or 503
with Retry-After when the collector is busy. With --tls-cert they speak TLS;
with a token, requests need `Authorization: Bearer TOKEN`.

A record whose routed file cannot be opened is not acknowledged: it waits,
with the later records of its source, and is retried every second (stderr
says so); with --fallback-file it goes there instead, its intended path in
the field `destination`.

--client-files DIR: a Python record that names its own file
(logbraid.compat.logserv's SocketForwarder and UnixClient; PROTOCOL.md,
appendix A) is written to it below DIR, rotated and formatted as its handler
asks within --client-files-max-bytes (1GiB) and --client-files-max-backups
(100); relative names start at --client-files-base (DIR). A refused name
(outside DIR, '..', a control character, a symbolic link on the way) sends the
record to --file instead; the last line on stderr counts them.

Metrics: --metrics HOST:PORT serves /metrics (Prometheus text format),
/health (503 once records have waited longer than --stall-timeout, 30 s by
default, with no write completing) and /ready (503 while draining after
SIGTERM or SIGINT, or while the records waiting for the files fill their
share of memory); stdout says `metrics on http://HOST:PORT` after the
`listening on` lines. With --publish there are no files: /metrics has the
listeners' metrics and the publisher's (logbraid_publish_batches_total,
logbraid_publish_duplicates_total, logbraid_publish_retries_total,
logbraid_publish_pending: batches waiting for JetStream's acknowledgement,
logbraid_publish_latency_seconds: a histogram from a batch's arrival to
that acknowledgement, logbraid_publish_stuck_seconds, logbraid_pending_bytes),
/health is 503 once batches have waited longer than --stall-timeout with no
acknowledgement from JetStream, and /ready 503 while draining or while the
batches waiting for JetStream fill their share of memory.

Fixed limits: a connection that sends nothing (not even PING) for 60 s is
closed, a native one that has not sent its HELLO after 10 s too. Memory:
--max-memory (default 256 MiB) is the ceiling; an eighth of it is for records
waiting for the file, a quarter for what connections read and decode, and
past them listeners stop reading. The
checkpoint that keeps native clients' records exactly-once across a restart
is `.<file name>.state` next to the log file. Diagnostics go to stderr, never
into the log files.";

/// Exit code for a bad setting.
const USAGE: u8 = 2;

/// Runs the collector until SIGTERM or SIGINT (SIGHUP reopens the files);
/// the exit code: 0 after a
/// clean stop, 2 for a bad setting.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    // Only a build with the `failpoints` feature has any (tests/faults.rs).
    if let Err(e) = logbraid::fault::setup() {
        eprintln!("logbraid serve: {e}");
        return Ok(USAGE);
    }
    // Bad flags were refused by clap (also with exit code 2), each value
    // checked by its own type; the file's values are checked the same way.
    let file = match &args.config {
        Some(p) => match Settings::from_file(p) {
            Ok(settings) => settings,
            Err(e) => {
                eprintln!("logbraid serve: {e}");
                return Ok(USAGE);
            }
        },
        None => Settings::default(),
    };
    let mut config = match ServeConfig::new(args.settings.clone().or(file)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("logbraid serve: {e}");
            return Ok(USAGE);
        }
    };
    // Each connection is a descriptor: the limit on them decides how many
    // can be served.
    let (fitted, note) = server::slots::fit_open_files(config.server.max_connections);
    config.server.max_connections = fitted;
    if let Some(note) = note {
        eprintln!("logbraid serve: {note}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(config))
}

/// Runs a collector with `config` until SIGTERM or SIGINT.
async fn serve(config: ServeConfig) -> anyhow::Result<u8> {
    // Listen first: a port or socket in use is the likeliest failure, and
    // it must not leave a log file or a recovered checkpoint behind.
    let mut listeners = Vec::new();
    for url in &config.listen {
        match server::bind(url, config.socket_mode).await {
            Ok(bound) => listeners.push(bound),
            Err(e) => {
                remove_sockets(&listeners);
                anyhow::bail!("cannot listen on {url}: {e}");
            }
        }
    }
    let metrics_listener = match bind_metrics(config.metrics.as_deref()).await {
        Ok(l) => l,
        Err(e) => {
            remove_sockets(&listeners);
            return Err(e);
        }
    };
    let dedup = Arc::new(Mutex::new(config.dedup()));
    if let Some(publish) = config.publish.clone() {
        return serve_publishing(config, publish, listeners, metrics_listener, dedup).await;
    }
    let (output, handle) = match Output::start(config.output.clone(), Arc::clone(&dedup)) {
        Ok(started) => started,
        Err(e @ OutputError::Locked { .. }) => {
            remove_sockets(&listeners);
            eprintln!("logbraid serve: {e}");
            return Ok(USAGE);
        }
        Err(e) => {
            remove_sockets(&listeners);
            return Err(e.into());
        }
    };
    // The handlers are in place before anyone learns where to connect, so a
    // SIGTERM sent right after the `listening on` lines is a clean stop.
    let metrics = Arc::new(Metrics::new(config.stall_timeout));
    let (stop, hurry) = stop_signals(Arc::clone(&metrics))?;
    let mut hup = signal(SignalKind::hangup())?;
    // SIGHUP: every file is closed and opened again between two rounds
    // (`logrotate` moves the files, then signals).
    let reopen = handle.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if !reopen.reopen() {
                break;
            }
        }
    });
    let server = Arc::new(Server::new(config.server.clone(), handle, dedup));
    metrics.listeners(Arc::clone(&server));
    metrics.output(output.watch());
    say_listening(&listeners)?;
    serve_metrics(&metrics, metrics_listener)?;
    run_listeners(&server, listeners, stop, hurry).await;
    let stats = output.shutdown();
    let rejected = server.stats().diagnostics.total();
    let synced = match config.output.sync {
        SyncMode::Data => format!(" and synced to disk ({} file syncs)", stats.syncs),
        _ => String::new(),
    };
    let refused = match config.output.client_files {
        Some(_) => format!(
            ", {} client file requests refused",
            stats.client_files_refused
        ),
        None => String::new(),
    };
    eprintln!(
        "logbraid serve: stopped; {} records written{synced}, {rejected} inputs rejected{refused}",
        stats.written
    );
    Ok(0)
}

use tokio::signal::unix::{signal, SignalKind};

pub(crate) type Stop = tokio::sync::oneshot::Receiver<()>;

/// The first SIGTERM or SIGINT stops (draining, which `metrics`' /ready
/// tells from then on), a second one hurries.
pub(crate) fn stop_signals(metrics: Arc<Metrics>) -> std::io::Result<(Stop, Stop)> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (first, stop) = tokio::sync::oneshot::channel::<()>();
    let (second, hurry) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        for tx in [first, second] {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            metrics.drain();
            let _ = tx.send(());
        }
    });
    Ok((stop, hurry))
}

/// Serves `listeners` until the first SIGTERM or SIGINT (see
/// [`server::run`]).
async fn run_listeners(
    server: &Arc<Server>,
    listeners: Vec<(server::Listener, String)>,
    stop: Stop,
    hurry: Stop,
) {
    let listeners = listeners.into_iter().map(|(l, _)| l).collect();
    server::run(Arc::clone(server), listeners, stop, hurry).await;
}

/// Binds the address of `--metrics`, if given.
pub(crate) async fn bind_metrics(
    addr: Option<&str>,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = addr else { return Ok(None) };
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(e) => anyhow::bail!("cannot serve metrics on {addr}: {e}"),
    }
}

/// Prints `metrics on http://ADDR` and serves `metrics` on `listener`,
/// if there is one.
pub(crate) fn serve_metrics(
    metrics: &Arc<Metrics>,
    listener: Option<tokio::net::TcpListener>,
) -> std::io::Result<()> {
    let Some(l) = listener else { return Ok(()) };
    let mut out = std::io::stdout().lock();
    writeln!(out, "metrics on http://{}", l.local_addr()?)?;
    out.flush()?;
    tokio::spawn(metrics::serve(Arc::clone(metrics), l));
    Ok(())
}

/// Prints `listening on URL` for each listener.
fn say_listening(listeners: &[(server::Listener, String)]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for (_, shown) in listeners {
        writeln!(out, "listening on {shown}")?;
    }
    out.flush()
}

/// How long a collector waits for a NATS server at start.
const NATS_CONNECT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a stopping publisher waits for JetStream to acknowledge what
/// it holds; what is left is resent by its clients.
const NATS_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// `--publish`: runs the listeners with JetStream in place of the files.
async fn serve_publishing(
    config: ServeConfig,
    publish: logbraid_collector::publish::PublishConfig,
    listeners: Vec<(server::Listener, String)>,
    metrics_listener: Option<tokio::net::TcpListener>,
    dedup: Arc<Mutex<logbraid::wire::Dedup>>,
) -> anyhow::Result<u8> {
    use logbraid_collector::publish::PublishHandle;
    let stream = publish.stream.clone();
    let publisher = match PublishHandle::start(publish, Arc::clone(&dedup), NATS_CONNECT).await {
        Ok(p) => p,
        Err(e) => {
            remove_sockets(&listeners);
            anyhow::bail!("cannot publish to NATS: {e}");
        }
    };
    let metrics = Arc::new(Metrics::new(config.stall_timeout));
    let (stop, hurry) = stop_signals(Arc::clone(&metrics))?;
    let server = Arc::new(Server::publishing(
        config.server.clone(),
        publisher.clone(),
        dedup,
    ));
    metrics.listeners(Arc::clone(&server));
    metrics.publisher(&publisher);
    say_listening(&listeners)?;
    serve_metrics(&metrics, metrics_listener)?;
    run_listeners(&server, listeners, stop, hurry).await;
    let left = publisher.shutdown(NATS_DRAIN).await;
    let stats = publisher.stats();
    let rejected = server.stats().diagnostics.total();
    let published = stats.published.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "logbraid serve: stopped; {published} batches published to stream {stream}, \
         {left} not acknowledged (their clients resend them), {rejected} inputs rejected"
    );
    Ok(0)
}

/// Removes the socket files of listeners this collector bound and will not
/// serve on.
fn remove_sockets(listeners: &[(server::Listener, String)]) {
    for (l, _) in listeners {
        if let Some(file) = l.socket_file() {
            file.remove();
        }
    }
}
