//! What a running collector says about itself: `/metrics` in the
//! Prometheus (OpenMetrics) text format, `/health` and `/ready`, served over
//! HTTP/1 on the address of `--metrics`.
//!
//! The counters live where the events happen (the listeners'
//! [`Stats`](crate::server::Stats), the output stage's
//! [`OutputStats`](crate::output::OutputStats), [`Diagnostics`], a
//! publisher's [`PublishStats`], a writer's [`ConsumeStats`]) and are read
//! when `/metrics` is asked for, so every count is exact and counting
//! costs the hot path nothing more than it did. A process registers the
//! parts it runs: [`Metrics::listeners`], and where records go,
//! [`Metrics::output`] (files) or [`Metrics::publisher`] (JetStream);
//! `logbraid write` registers [`Metrics::output`] and
//! [`Metrics::consumer`]. A part of the collector that comes later adds
//! its own with one call: [`Metrics::counter`], [`Metrics::gauge`],
//! [`Metrics::histogram`] (latency buckets) or [`Metrics::collect`]
//! register a metric and hand back its handle.
//!
//! [`Diagnostics`]: crate::diag::Diagnostics
//!
//! # The metrics
//!
//! Of the listeners ([`Metrics::listeners`]):
//!
//! | name | type | what |
//! |---|---|---|
//! | `logbraid_records_received_total{listener,input}` | counter | records received on each listener (`input`: `native`, `python`, `syslog`, `otlp`), native duplicates included |
//! | `logbraid_records_duplicate_total` | counter | native records received again after a reconnect and skipped, already written |
//! | `logbraid_inputs_rejected_total{reason}` | counter | rejected inputs by [`Kind::label`] (`malformed`, `bad_pickle`, `bad_syslog`, `frame_too_large`, `overloaded`…) |
//! | `logbraid_connections_accepted_total` | counter | stream connections given a slot |
//! | `logbraid_connections_open` | gauge | stream connections open now |
//! | `logbraid_connections_refused_total` | counter | connections turned away at a connection limit, or closed after waiting their idle timeout for memory ([`Kind::Overloaded`]) |
//! | `logbraid_connections_evicted_total` | counter | silent connections closed to make room for a new one |
//! | `logbraid_connection_memory_bytes` | gauge | bytes connections hold to read and decode |
//! | `logbraid_connection_memory_limit_bytes` | gauge | the most they may hold |
//! | `logbraid_connection_memory_wait_seconds_total` | counter | time connections spent waiting for memory to read and decode |
//!
//! Of what records are handed to, the output stage or JetStream (its
//! [`Pending`] budget):
//!
//! | name | type | what |
//! |---|---|---|
//! | `logbraid_pending_bytes` | gauge | bytes of records handed over and not yet written (or published) and acknowledged |
//! | `logbraid_pending_limit_bytes` | gauge | the most that may be pending (past it, listeners wait) |
//! | `logbraid_pending_wait_seconds_total` | counter | time listeners spent waiting for room in it |
//!
//! Of the output stage ([`Metrics::output`]):
//!
//! | name | type | what |
//! |---|---|---|
//! | `logbraid_records_written_total` | counter | records written to the files |
//! | `logbraid_bytes_written_total` | counter | bytes of those records in the files |
//! | `logbraid_acks_total` | counter | native batches acknowledged (by `logbraid write`: messages written) |
//! | `logbraid_records_held` | gauge | records waiting for a file that cannot be opened or written |
//! | `logbraid_records_diverted_total` | counter | records written to the fallback file |
//! | `logbraid_files_open` | gauge | output files open |
//! | `logbraid_rotations_total` | counter | rotations of the output files |
//! | `logbraid_compress_backlog` | gauge | rotated files queued for compression or being compressed |
//! | `logbraid_syncs_total` | counter | fdatasyncs of log files (`--sync data`) |
//! | `logbraid_failed_rounds_total` | counter | rounds whose flush or checkpoint failed (retried) |
//! | `logbraid_checkpoints_total` | counter | checkpoints saved |
//! | `logbraid_write_seconds` | histogram | time of each write of a file's buffer |
//! | `logbraid_sync_seconds` | histogram | time of each fdatasync |
//! | `logbraid_output_stuck_seconds` | gauge | how long records have waited with no write completing (0 while progressing or idle) |
//!
//! Gauges the output stage keeps (files open, compression backlog) are as
//! of the end of its last round.
//!
//! Of a publishing collector ([`Metrics::publisher`], `serve --publish`):
//!
//! | name | type | what |
//! |---|---|---|
//! | `logbraid_publish_batches_total` | counter | batches JetStream acknowledged |
//! | `logbraid_publish_duplicates_total` | counter | of those, batches it already held (a resend within its duplicate window) |
//! | `logbraid_publish_retries_total` | counter | publishes tried again after a failure or no answer |
//! | `logbraid_publish_pending` | gauge | batches waiting for JetStream's acknowledgement (pending acks) |
//! | `logbraid_publish_latency_seconds` | histogram | from a batch's arrival to JetStream's acknowledgement, one observation per batch published |
//! | `logbraid_publish_stuck_seconds` | gauge | how long batches have waited with no acknowledgement from JetStream (0 while progressing or idle) |
//!
//! Of a writer ([`Metrics::consumer`], `logbraid write`):
//!
//! | name | type | what |
//! |---|---|---|
//! | `logbraid_consume_messages_total` | counter | messages taken from the stream, redeliveries included |
//! | `logbraid_consume_acked_total` | counter | messages written and acknowledged to JetStream |
//! | `logbraid_consume_pending` | gauge | messages taken and not yet written (pending acks) |
//! | `logbraid_consume_lag` | gauge | messages left in the stream for the consumer after the last one taken |
//! | `logbraid_consume_position` | gauge | stream sequence below which every message is written (saved beside the checkpoint) |
//! | `logbraid_consume_consumers_created_total` | counter | times the consumer was created (1 at start, then after a stall, a reconnect or a lost delivery) |
//! | `logbraid_consume_malformed_total` | counter | messages that were not a logbraid batch, acknowledged and skipped |
//! | `logbraid_consume_gaps_total` | counter | batches that began past their client's last record (records lost before the stream) |
//!
//! # Health
//!
//! `/health` answers 200 while records make progress or nothing waits,
//! and 503 once records have waited longer than the stall timeout
//! (`--stall-timeout`) with none done: for the output stage, no write
//! completing (a write that hangs, a disk that fails every flush, a file
//! that cannot be opened); for a publisher, no acknowledgement from
//! JetStream (no server reachable, no stream leader). `/ready` answers
//! 503 while the process drains after SIGTERM or SIGINT, and while the
//! records pending fill their budget (the listeners, or the writer, have
//! stopped reading); 200 otherwise.
//!
//! # The server
//!
//! It must not be a way in: at most [`MAX_CONNECTIONS`] connections at
//! once (others are closed at once), a request's head must arrive within
//! [`HEADER_TIMEOUT`] and fit in 16 KiB, a connection lasts at most
//! [`CONNECTION_LIFETIME`], only `GET` is answered (405 otherwise) and
//! every other path is 404. Parsing is hyper's.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::consume::ConsumeStats;
use crate::diag::Kind;
use crate::output::{OutputWatch, Pending};
use crate::publish::{PublishHandle, PublishStats};
use crate::server::Server;

/// HTTP connections served at once; more are closed as they come.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a request's head may take to arrive.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one HTTP connection may stay open, however busy.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// The stall timeout when none is given: `/health` fails once records
/// have waited this long with no write completing.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Bucket bounds of latency histograms, in seconds: 10 µs to about 10 s,
/// doubling.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(10e-6, 2.0, 21)
}

/// The metrics of a collector and its health.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Set at the first SIGTERM or SIGINT.
    draining: AtomicBool,
    /// Where records go, for `/health` and `/ready`.
    stage: OnceLock<Stage>,
    /// How long records may wait with none done before `/health` fails.
    stall: Duration,
}

/// What `/health` and `/ready` watch: where records go.
#[derive(Debug)]
enum Stage {
    /// The output stage, writing files.
    Output(OutputWatch),
    /// JetStream (`serve --publish`).
    Publish(Arc<Pending>),
}

impl Stage {
    fn pending(&self) -> &Pending {
        match self {
            Stage::Output(o) => o.pending(),
            Stage::Publish(p) => p,
        }
    }

    fn stuck_for(&self) -> Option<Duration> {
        match self {
            Stage::Output(o) => o.stuck_for(),
            Stage::Publish(p) => p.stuck_for(Duration::ZERO),
        }
    }
}

/// An answer of `/health` or `/ready`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Whether all is well (HTTP 200; 503 otherwise).
    pub ok: bool,
    /// Why, one line.
    pub reason: String,
}

impl Check {
    fn ok(reason: impl Into<String>) -> Check {
        Check {
            ok: true,
            reason: reason.into(),
        }
    }

    fn failed(reason: impl Into<String>) -> Check {
        Check {
            ok: false,
            reason: reason.into(),
        }
    }
}

impl Metrics {
    /// No metrics yet; `/health` fails once records wait longer than
    /// `stall` with no write completing.
    pub fn new(stall: Duration) -> Metrics {
        Metrics {
            registry: Mutex::new(Registry::default()),
            draining: AtomicBool::new(false),
            stage: OnceLock::new(),
            stall,
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // Registration and encoding leave the registry whole if they panic.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a counter `name` (`_total` is added to it) and returns it.
    pub fn counter(&self, name: &str, help: &str) -> Counter {
        let c = Counter::default();
        self.registry().register(name, help, c.clone());
        c
    }

    /// Registers a gauge `name` and returns it.
    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        let g = Gauge::default();
        self.registry().register(name, help, g.clone());
        g
    }

    /// Registers a histogram `name` of seconds, with
    /// [`latency_buckets`], and returns it.
    pub fn histogram(&self, name: &str, help: &str) -> Histogram {
        let h = Histogram::new(latency_buckets());
        self.registry().register(name, help, h.clone());
        h
    }

    /// Registers metrics read when they are asked for.
    pub fn collect(&self, collector: impl Collector) {
        self.registry().register_collector(Box::new(collector));
    }

    /// Registers the metrics of the listeners.
    pub fn listeners(&self, server: Arc<Server>) {
        self.collect(Listeners(server));
    }

    /// Registers the metrics of the output stage, and watches it for
    /// `/health` and `/ready`.
    pub fn output(&self, output: OutputWatch) {
        let _ = self.stage.set(Stage::Output(output.clone()));
        self.collect(Output(output));
    }

    /// Registers the metrics of a publisher (`serve --publish`), and
    /// watches it for `/health` and `/ready`.
    pub fn publisher(&self, publisher: &PublishHandle) {
        let pending = publisher.pending();
        let _ = self.stage.set(Stage::Publish(Arc::clone(&pending)));
        self.collect(Publisher {
            stats: publisher.stats(),
            pending,
        });
    }

    /// Registers the metrics of a writer's consumer (`logbraid write`).
    pub fn consumer(&self, stats: Arc<ConsumeStats>) {
        self.collect(Consumer(stats));
    }

    /// Notes that the process is draining: `/ready` fails from now on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// What `/health` answers.
    pub fn health(&self) -> Check {
        let Some(stage) = self.stage.get() else {
            return Check::ok("starting");
        };
        let bytes = stage.pending().bytes();
        match (stage, stage.stuck_for()) {
            (Stage::Output(_), Some(t)) if t > self.stall => Check::failed(format!(
                "output stuck: {bytes} bytes of records waiting and no write completed for \
                 {:.1} s",
                t.as_secs_f64()
            )),
            (Stage::Publish(_), Some(t)) if t > self.stall => Check::failed(format!(
                "publishing stuck: {bytes} bytes of batches waiting and no acknowledgement \
                 from JetStream for {:.1} s",
                t.as_secs_f64()
            )),
            (Stage::Output(_), Some(_)) => Check::ok("writing"),
            (Stage::Publish(_), Some(_)) => Check::ok("publishing"),
            (_, None) => Check::ok("idle"),
        }
    }

    /// What `/ready` answers.
    pub fn ready(&self) -> Check {
        if self.draining.load(Ordering::Relaxed) {
            return Check::failed("draining");
        }
        if let Some(stage) = self.stage.get() {
            let pending = stage.pending();
            if pending.full() {
                let to = match stage {
                    Stage::Output(_) => "the output",
                    Stage::Publish(_) => "JetStream",
                };
                return Check::failed(format!(
                    "over the memory budget: {} bytes pending for {to}",
                    pending.bytes()
                ));
            }
        }
        Check::ok("ready")
    }

    /// Every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String fails only if a metric's encoding does, which
        // would be a bug here: what was written is still served.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry());
        out
    }

    /// The answer to one request.
    fn respond<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
            r.headers_mut().insert(
                hyper::header::ALLOW,
                hyper::header::HeaderValue::from_static("GET"),
            );
            return r;
        }
        match req.uri().path() {
            "/metrics" => {
                let mut r = text(StatusCode::OK, self.encode());
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                r
            }
            "/health" => check(self.health()),
            "/ready" => check(self.ready()),
            _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn check(c: Check) -> Response<Full<Bytes>> {
    let status = if c.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    text(status, format!("{}\n", c.reason))
}

/// Serves `/metrics`, `/health` and `/ready` on `listener` until the
/// runtime ends.
pub async fn serve(metrics: Arc<Metrics>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or memory: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let r = metrics.respond(&req);
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(16 << 10)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            drop(slot);
        });
    }
}

/// Writes one metric without labels.
fn one(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(enc.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// Writes counters without labels: name, help, value.
fn counters(
    enc: &mut DescriptorEncoder<'_>,
    all: &[(&str, &str, u64)],
) -> Result<(), std::fmt::Error> {
    for &(name, help, v) in all {
        one(enc, name, help, &ConstCounter::new(v))?;
    }
    Ok(())
}

/// Writes gauges without labels: name, help, value.
fn gauges(
    enc: &mut DescriptorEncoder<'_>,
    all: &[(&str, &str, u64)],
) -> Result<(), std::fmt::Error> {
    for &(name, help, v) in all {
        one(enc, name, help, &ConstGauge::new(v))?;
    }
    Ok(())
}

fn seconds(d: Duration) -> ConstCounter<f64> {
    ConstCounter::new(d.as_secs_f64())
}

/// Writes the metrics of the budget of records handed over and not yet
/// done with (the output stage's, or a publisher's).
fn pending(enc: &mut DescriptorEncoder<'_>, pending: &Pending) -> Result<(), std::fmt::Error> {
    gauges(
        enc,
        &[
            (
                "logbraid_pending_bytes",
                "Bytes of records handed over and not yet written (or published) and acknowledged",
                pending.bytes() as u64,
            ),
            (
                "logbraid_pending_limit_bytes",
                "The most bytes of records that may be pending",
                pending.limit() as u64,
            ),
        ],
    )?;
    one(
        enc,
        "logbraid_pending_wait_seconds",
        "Time listeners spent waiting for room in the pending budget",
        &seconds(pending.waited()),
    )
}

/// The metrics the listeners keep, read at each scrape.
#[derive(Debug)]
struct Listeners(Arc<Server>);

impl Collector for Listeners {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let server = &self.0;
        let stats = server.stats();
        let rejected = |k| stats.diagnostics.count(k);
        let e = &mut enc;
        one(
            e,
            "logbraid_records_received",
            "Records received, by listener and input",
            &stats.received,
        )?;
        counters(
            e,
            &[
                (
                    "logbraid_records_duplicate",
                    "Native records received again and skipped, already written",
                    stats.duplicates.load(Ordering::Relaxed),
                ),
                (
                    "logbraid_connections_accepted",
                    "Stream connections accepted",
                    stats.connections.load(Ordering::Relaxed),
                ),
                (
                    "logbraid_connections_refused",
                    "Connections turned away at a connection limit or for lack of memory",
                    rejected(Kind::Overloaded),
                ),
                (
                    "logbraid_connections_evicted",
                    "Silent connections closed to make room for new ones",
                    rejected(Kind::Evicted),
                ),
            ],
        )?;
        {
            let mut m = e.encode_descriptor(
                "logbraid_inputs_rejected",
                "Rejected inputs, by reason",
                None,
                MetricType::Counter,
            )?;
            for kind in Kind::ALL {
                let labels = [("reason", kind.label())];
                ConstCounter::new(rejected(kind)).encode(m.encode_family(&labels)?)?;
            }
        }
        let (held, limit) = server.memory_held();
        gauges(
            e,
            &[
                (
                    "logbraid_connections_open",
                    "Stream connections open",
                    server.open_connections() as u64,
                ),
                (
                    "logbraid_connection_memory_bytes",
                    "Bytes connections hold to read and decode",
                    held as u64,
                ),
                (
                    "logbraid_connection_memory_limit_bytes",
                    "The most connections may hold to read and decode",
                    limit as u64,
                ),
            ],
        )?;
        one(
            e,
            "logbraid_connection_memory_wait_seconds",
            "Time connections spent waiting for memory to read and decode",
            &seconds(Duration::from_nanos(
                stats.memory_wait_ns.load(Ordering::Relaxed),
            )),
        )
    }
}

/// The metrics the output stage keeps, read at each scrape.
#[derive(Debug)]
struct Output(OutputWatch);

impl Collector for Output {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let output = &self.0;
        let out = output.stats();
        let e = &mut enc;
        counters(
            e,
            &[
                (
                    "logbraid_records_written",
                    "Records written to the files",
                    out.written,
                ),
                (
                    "logbraid_bytes_written",
                    "Bytes of records written to the files",
                    out.bytes,
                ),
                ("logbraid_acks", "Native batches acknowledged", out.acks),
                (
                    "logbraid_records_diverted",
                    "Records written to the fallback file",
                    out.diverted,
                ),
                (
                    "logbraid_rotations",
                    "Rotations of the output files",
                    out.rotations,
                ),
                ("logbraid_syncs", "fdatasyncs of log files", out.syncs),
                (
                    "logbraid_failed_rounds",
                    "Rounds whose flush or checkpoint failed",
                    out.failed_rounds,
                ),
                ("logbraid_checkpoints", "Checkpoints saved", out.checkpoints),
            ],
        )?;
        pending(e, output.pending())?;
        gauges(
            e,
            &[
                (
                    "logbraid_records_held",
                    "Records waiting for a file that cannot be opened or written",
                    out.held,
                ),
                ("logbraid_files_open", "Output files open", out.files_open),
                (
                    "logbraid_compress_backlog",
                    "Rotated files queued for compression or being compressed",
                    out.compress_backlog,
                ),
            ],
        )?;
        one(
            e,
            "logbraid_write_seconds",
            "Time of each write of a file's buffer",
            output.write_latency(),
        )?;
        one(
            e,
            "logbraid_sync_seconds",
            "Time of each fdatasync of a log file",
            output.sync_latency(),
        )?;
        let stuck = output.stuck_for().unwrap_or_default();
        one(
            e,
            "logbraid_output_stuck_seconds",
            "How long records have waited with no write completing",
            &ConstGauge::new(stuck.as_secs_f64()),
        )
    }
}

/// The metrics a publisher keeps, read at each scrape.
#[derive(Debug)]
struct Publisher {
    stats: Arc<PublishStats>,
    pending: Arc<Pending>,
}

impl Collector for Publisher {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.stats;
        let e = &mut enc;
        counters(
            e,
            &[
                (
                    "logbraid_publish_batches",
                    "Batches JetStream acknowledged",
                    s.published.load(Ordering::Relaxed),
                ),
                (
                    "logbraid_publish_duplicates",
                    "Batches JetStream acknowledged that it already held",
                    s.duplicates.load(Ordering::Relaxed),
                ),
                (
                    "logbraid_publish_retries",
                    "Publishes tried again after a failure or no answer",
                    s.retries.load(Ordering::Relaxed),
                ),
            ],
        )?;
        gauges(
            e,
            &[(
                "logbraid_publish_pending",
                "Batches waiting for JetStream's acknowledgement",
                s.pending.load(Ordering::Relaxed),
            )],
        )?;
        pending(e, &self.pending)?;
        one(
            e,
            "logbraid_publish_latency_seconds",
            "Time from a batch's arrival to JetStream's acknowledgement",
            &s.latency,
        )?;
        let stuck = self.pending.stuck_for(Duration::ZERO).unwrap_or_default();
        one(
            e,
            "logbraid_publish_stuck_seconds",
            "How long batches have waited with no acknowledgement from JetStream",
            &ConstGauge::new(stuck.as_secs_f64()),
        )
    }
}

/// The metrics a writer's consumer keeps, read at each scrape.
#[derive(Debug)]
struct Consumer(Arc<ConsumeStats>);

impl Collector for Consumer {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let e = &mut enc;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        counters(
            e,
            &[
                (
                    "logbraid_consume_messages",
                    "Messages taken from the stream, redeliveries included",
                    get(&s.received),
                ),
                (
                    "logbraid_consume_acked",
                    "Messages written and acknowledged to JetStream",
                    get(&s.acked),
                ),
                (
                    "logbraid_consume_consumers_created",
                    "Times the consumer was created",
                    get(&s.consumers),
                ),
                (
                    "logbraid_consume_malformed",
                    "Messages that were not a logbraid batch, skipped",
                    get(&s.malformed),
                ),
                (
                    "logbraid_consume_gaps",
                    "Batches that began past their client's last record",
                    get(&s.gaps),
                ),
            ],
        )?;
        gauges(
            e,
            &[
                (
                    "logbraid_consume_pending",
                    "Messages taken and not yet written",
                    get(&s.pending),
                ),
                (
                    "logbraid_consume_lag",
                    "Messages left in the stream for the consumer after the last one taken",
                    get(&s.lag),
                ),
                (
                    "logbraid_consume_position",
                    "Stream sequence below which every message is written",
                    get(&s.position),
                ),
            ],
        )
    }
}
