//! The OTLP/HTTP exporter: a [`Sink`] that sends records as OpenTelemetry
//! logs (`POST /v1/logs`, protobuf) to any OTLP collector, `logbraid
//! serve --listen otlp-http://` among them. Cargo feature `otlp`.
//!
//! It keeps the native client's promises: [`Sink::flush`] seals the
//! current batch, [`Sink::confirm`] (every
//! [`Logger::flush`](crate::Logger::flush)) returns once the collector has
//! accepted (answered 2xx to) every batch sealed before it, and a full
//! buffer of unaccepted batches makes sealing wait, so the in-process
//! queue's overflow policy decides. Each batch is sent again until it is
//! accepted: after a connection error, 429, 502, 503 or 504 with
//! exponential back-off (a `Retry-After` in seconds is honoured up to the
//! longest pause), after any other refusal at the longest pause, as the
//! native client does after a refusal that is not transient (a wrong
//! token may be fixed on the collector's side; a record is never dropped
//! quietly). Records the collector refuses in a partial success are
//! counted in [`OtlpCounters::rejected`] and said on stderr.
//!
//! The client is `ureq`: blocking, like the core's threads (the core has
//! no async runtime), small, and used here without its TLS stack: the
//! exporter speaks plain HTTP (an `https` collector is reached through a
//! local collector or a sidecar).
//!
//! | record | OTLP |
//! |---|---|
//! | source program, host, pid | resource `service.name`, `host.name`, `process.pid` |
//! | target | scope name |
//! | timestamp | `time_unix_nano` and `observed_time_unix_nano` |
//! | level | `severity_number` 1, 5, 9, 13, 17, 21 and `severity_text` |
//! | message | `body` (a string) |
//! | file, line, function, module | `code.file.path`, `code.line.number`, `code.function.name`, `code.namespace` |
//! | thread id and name | `thread.id`, `thread.name` |
//! | fields | attributes of the same names and types (an unsigned integer past `i64` as text) |

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use super::{ForwardError, ForwardOptions};
use crate::endpoint::Addr;
use crate::level::Level;
use crate::record::{Record, Source, Value};
use crate::report::RateLimit;
use crate::sink::Sink;

/// A batch is sealed once its records' encoding reaches this size, well
/// under the 1 MiB request limit of `logbraid serve` and the 4 MiB of most
/// collectors.
const BATCH_BYTES: usize = 512 << 10;

/// Least time between two diagnostics on stderr.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Counters of an [`OtlpSink`], read through [`OtlpStats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpCounters {
    /// Records sealed into batches.
    pub records: u64,
    /// Records in batches the collector accepted (2xx), those it refused
    /// in a partial success included.
    pub accepted: u64,
    /// Records the collector refused in a partial success.
    pub rejected: u64,
    /// Requests sent, retries included.
    pub requests: u64,
    /// Requests that failed or were refused, each retried.
    pub failures: u64,
    /// Records still unaccepted when shutdown gave up waiting.
    pub lost: u64,
    /// The last problem, for people.
    pub last_error: Option<String>,
}

/// A handle on an [`OtlpSink`]'s counters that outlives the sink's move
/// into a pipeline.
#[derive(Clone, Debug)]
pub struct OtlpStats(Arc<Shared>);

impl OtlpStats {
    /// The counters now.
    pub fn get(&self) -> OtlpCounters {
        let c = &self.0.counters;
        OtlpCounters {
            records: c.records.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            last_error: self.0.lock().last_error.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    records: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    lost: AtomicU64,
}

/// A sealed batch: the encoded request and how many records it holds.
#[derive(Debug)]
struct Sealed {
    body: Arc<Vec<u8>>,
    records: u64,
}

#[derive(Debug, Default)]
struct State {
    outbox: VecDeque<Sealed>,
    bytes: usize,
    stop: bool,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        super::lock(&self.state)
    }

    fn wait<'a>(&self, g: MutexGuard<'a, State>, t: Duration) -> MutexGuard<'a, State> {
        super::wait_on(&self.cv, g, t)
    }
}

/// Records of the batch being built, grouped as OTLP nests them: by
/// source (resource), then by target (scope), consecutive records sharing
/// both.
#[derive(Debug, Default)]
struct Batch {
    resources: Vec<ResourceLogs>,
    last_source: Option<Source>,
    records: u64,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, r: &Record<'_>) -> usize {
        let lr = log_record(r);
        let len = lr.encoded_len();
        if self.last_source.as_ref() != Some(r.source) || self.resources.is_empty() {
            self.resources.push(ResourceLogs {
                resource: Some(resource(r.source)),
                ..Default::default()
            });
            self.last_source = Some(r.source.clone());
        }
        let Some(rl) = self.resources.last_mut() else {
            return 0;
        };
        match rl.scope_logs.last_mut() {
            Some(sl) if sl.scope.as_ref().is_some_and(|s| s.name == r.target) => {
                sl.log_records.push(lr)
            }
            _ => rl.scope_logs.push(ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: r.target.to_string(),
                    ..Default::default()
                }),
                log_records: vec![lr],
                ..Default::default()
            }),
        }
        self.records += 1;
        self.bytes += len;
        len
    }

    fn take(&mut self) -> Option<Sealed> {
        if self.records == 0 {
            return None;
        }
        let req = ExportLogsServiceRequest {
            resource_logs: std::mem::take(&mut self.resources),
        };
        let sealed = Sealed {
            body: Arc::new(req.encode_to_vec()),
            records: self.records,
        };
        *self = Batch::default();
        Some(sealed)
    }
}

fn kv(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn resource(s: &Source) -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", Any::StringValue(s.process_name.clone())),
            kv("host.name", Any::StringValue(s.host.clone())),
            kv("process.pid", Any::IntValue(i64::from(s.pid))),
        ],
        ..Default::default()
    }
}

/// The OTLP severity number of a level: the first of its range.
pub fn severity_number(level: Level) -> i32 {
    match level {
        Level::Trace => 1,
        Level::Debug => 5,
        Level::Info => 9,
        Level::Warn => 13,
        Level::Error => 17,
        Level::Critical => 21,
    }
}

fn log_record(r: &Record<'_>) -> LogRecord {
    let ns = u64::try_from(r.timestamp_ns).unwrap_or(0);
    let mut attributes = Vec::new();
    let text = |s: &str| Any::StringValue(s.to_string());
    if let Some(f) = r.file {
        attributes.push(kv("code.file.path", text(f)));
    }
    if let Some(n) = r.line {
        attributes.push(kv("code.line.number", Any::IntValue(i64::from(n))));
    }
    if let Some(f) = r.function {
        attributes.push(kv("code.function.name", text(f)));
    }
    if let Some(m) = r.module {
        attributes.push(kv("code.namespace", text(m)));
    }
    if r.thread_id != 0 {
        let id = i64::try_from(r.thread_id).unwrap_or(i64::MAX);
        attributes.push(kv("thread.id", Any::IntValue(id)));
    }
    if let Some(t) = r.thread_name {
        attributes.push(kv("thread.name", text(t)));
    }
    for (key, v) in r.fields.iter() {
        let value = match v {
            Value::Str(s) => Some(Any::StringValue(String::from_utf8_lossy(s).into_owned())),
            Value::I64(n) => Some(Any::IntValue(n)),
            Value::U64(n) => Some(match i64::try_from(n) {
                Ok(n) => Any::IntValue(n),
                Err(_) => Any::StringValue(n.to_string()),
            }),
            Value::F64(d) => Some(Any::DoubleValue(d)),
            Value::Bool(b) => Some(Any::BoolValue(b)),
            Value::Null => None,
        };
        attributes.push(KeyValue {
            key: key.to_string(),
            value: value.map(|v| AnyValue { value: Some(v) }),
            ..Default::default()
        });
    }
    LogRecord {
        time_unix_nano: ns,
        observed_time_unix_nano: ns,
        severity_number: severity_number(r.level),
        severity_text: r.level.as_str().to_string(),
        body: Some(AnyValue {
            value: Some(Any::StringValue(
                String::from_utf8_lossy(r.message).into_owned(),
            )),
        }),
        attributes,
        ..Default::default()
    }
}

/// Sends records to an OTLP/HTTP collector; see the [module
/// documentation](self).
pub struct OtlpSink {
    shared: Arc<Shared>,
    batch: Batch,
    buffer_bytes: usize,
    linger: Duration,
    url: String,
    io: Option<JoinHandle<()>>,
    /// What a new I/O thread is started from when records arrive after
    /// [`Sink::finish`] stopped the previous one.
    respawn: Io,
}

impl fmt::Debug for OtlpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpSink")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl OtlpSink {
    /// Starts the I/O thread for `options`, whose endpoint is an
    /// `otlp-http://HOST:PORT` (checked by [`ForwardOptions`]' users
    /// before). The collector need not be up.
    pub fn new(options: ForwardOptions) -> Result<OtlpSink, ForwardError> {
        super::check_client(&options.endpoint)?;
        let Addr::Inet(host_port) = &options.endpoint.addr else {
            return Err(ForwardError::Address {
                address: options.endpoint.to_string(),
                reason: "an OTLP collector is reached over TCP",
            });
        };
        let url = format!("http://{host_port}/v1/logs");
        let shared = Arc::new(Shared::default());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .timeout_connect(Some(Duration::from_secs(2)))
            .build()
            .into();
        let token = (!options.token.is_empty())
            .then(|| format!("Bearer {}", String::from_utf8_lossy(&options.token)));
        let io = Io {
            shared: Arc::clone(&shared),
            agent,
            url: url.clone(),
            token,
            backoff_min: options.backoff_min,
            backoff_max: options.backoff_max,
        };
        let handle = io
            .clone()
            .spawn()
            .map_err(|e| ForwardError::Thread(e.to_string()))?;
        Ok(OtlpSink {
            shared,
            batch: Batch::default(),
            buffer_bytes: options.buffer_bytes,
            linger: options.linger,
            url,
            io: Some(handle),
            respawn: io,
        })
    }

    /// A handle on the counters.
    pub fn stats(&self) -> OtlpStats {
        OtlpStats(Arc::clone(&self.shared))
    }

    /// Seals the current batch and queues it, waiting while the buffer is
    /// full; after [`Sink::finish`], starts a new I/O thread (as the native
    /// client does, for records written after a shutdown).
    fn seal(&mut self) -> io::Result<()> {
        let Some(sealed) = self.batch.take() else {
            return Ok(());
        };
        if self.io.is_none() {
            self.shared.lock().stop = false;
            self.io = Some(self.respawn.clone().spawn()?);
        }
        let mut st = self.shared.lock();
        while st.bytes >= self.buffer_bytes && !st.stop {
            st = self.shared.wait(st, Duration::from_millis(100));
        }
        st.bytes += sealed.body.len();
        self.shared
            .counters
            .records
            .fetch_add(sealed.records, Ordering::Relaxed);
        st.outbox.push_back(sealed);
        self.shared.cv.notify_all();
        Ok(())
    }

    /// Waits until the outbox is empty, or until `deadline`.
    fn wait_accepted(&self, deadline: Option<Instant>) -> bool {
        super::wait_until(&self.shared.state, &self.shared.cv, deadline, |st| {
            st.outbox.is_empty()
        })
    }

    fn stop_io(&mut self) {
        self.shared.lock().stop = true;
        self.shared.cv.notify_all();
        if let Some(h) = self.io.take() {
            let _ = h.join();
        }
    }
}

impl Sink for OtlpSink {
    fn write(&mut self, record: &Record<'_>) -> io::Result<usize> {
        let len = self.batch.push(record);
        if self.batch.bytes >= BATCH_BYTES {
            self.seal()?;
        }
        Ok(len)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.seal()
    }

    fn confirm(&mut self) -> io::Result<()> {
        self.seal()?;
        self.wait_accepted(None);
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        let sealed = self.seal();
        let done = self.wait_accepted(Some(Instant::now() + self.linger));
        self.stop_io();
        if !done {
            let mut st = self.shared.lock();
            let lost: u64 = st.outbox.iter().map(|b| b.records).sum();
            // Given up on: a later confirm must not wait for it forever.
            st.outbox.clear();
            st.bytes = 0;
            drop(st);
            self.shared.cv.notify_all();
            self.shared.counters.lost.fetch_add(lost, Ordering::Relaxed);
            super::report_lost(lost, "accepted", &self.url, self.linger);
        }
        sealed
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        if self.io.is_some() {
            let _ = self.finish();
        }
    }
}

/// The I/O thread's side.
#[derive(Clone)]
struct Io {
    shared: Arc<Shared>,
    agent: ureq::Agent,
    url: String,
    token: Option<String>,
    backoff_min: Duration,
    backoff_max: Duration,
}

/// What became of one request.
enum Sent {
    /// Accepted; the records refused in a partial success, and why.
    Accepted(u64, String),
    /// To be sent again after at least this pause (`None`: the back-off's).
    Retry(Option<Duration>, String),
    /// Refused for good by the OTLP rules; sent again at the longest pause.
    Refused(String),
}

impl Io {
    fn spawn(self) -> io::Result<JoinHandle<()>> {
        thread::Builder::new()
            .name("logbraid-otlp".into())
            .spawn(move || self.run())
    }

    fn run(self) {
        let mut backoff = self.backoff_min;
        let reports = RateLimit::new(REPORT_EVERY);
        loop {
            let body = {
                let mut st = self.shared.lock();
                loop {
                    if st.stop {
                        return;
                    }
                    if let Some(b) = st.outbox.front() {
                        break Arc::clone(&b.body);
                    }
                    st = self.shared.wait(st, Duration::from_millis(200));
                }
            };
            self.shared
                .counters
                .requests
                .fetch_add(1, Ordering::Relaxed);
            let pause = match self.send(&body) {
                Sent::Accepted(rejected, why) => {
                    let mut st = self.shared.lock();
                    if let Some(b) = st.outbox.pop_front() {
                        st.bytes -= b.body.len();
                        self.shared
                            .counters
                            .accepted
                            .fetch_add(b.records, Ordering::Relaxed);
                    }
                    drop(st);
                    self.shared.cv.notify_all();
                    if rejected > 0 {
                        self.shared
                            .counters
                            .rejected
                            .fetch_add(rejected, Ordering::Relaxed);
                        if reports.allow().is_some() {
                            let _ = writeln!(
                                io::stderr(),
                                "logbraid: {} refused {rejected} records: {why}",
                                self.url
                            );
                        }
                    }
                    backoff = self.backoff_min;
                    continue;
                }
                Sent::Retry(after, why) => {
                    self.failed(why, &reports);
                    let pause = after.map_or(backoff, |a| a.max(backoff).min(self.backoff_max));
                    backoff = (backoff * 2).min(self.backoff_max);
                    pause
                }
                Sent::Refused(why) => {
                    self.failed(why, &reports);
                    self.backoff_max
                }
            };
            let until = Instant::now() + pause;
            // Until then, or until the sink stops.
            super::wait_until(&self.shared.state, &self.shared.cv, Some(until), |st| {
                st.stop
            });
        }
    }

    fn failed(&self, why: String, reports: &RateLimit) {
        self.shared
            .counters
            .failures
            .fetch_add(1, Ordering::Relaxed);
        if reports.allow().is_some() {
            let _ = writeln!(io::stderr(), "logbraid: exporting: {why}; retrying");
        }
        self.shared.lock().last_error = Some(why);
    }

    fn send(&self, body: &[u8]) -> Sent {
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/x-protobuf");
        if let Some(t) = &self.token {
            req = req.header("Authorization", t);
        }
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => return Sent::Retry(None, format!("cannot send to {}: {e}", self.url)),
        };
        let status = resp.status().as_u16();
        let after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let answer = resp
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_vec()
            .unwrap_or_default();
        match status {
            200..=299 => {
                let partial = ExportLogsServiceResponse::decode(&answer[..])
                    .ok()
                    .and_then(|r| r.partial_success);
                match partial {
                    Some(p) if p.rejected_log_records > 0 => Sent::Accepted(
                        u64::try_from(p.rejected_log_records).unwrap_or(0),
                        p.error_message,
                    ),
                    _ => Sent::Accepted(0, String::new()),
                }
            }
            429 | 502 | 503 | 504 => {
                Sent::Retry(after, format!("{} answered {status} (busy)", self.url))
            }
            _ => Sent::Refused(format!(
                "{} refused the batch: {status} {}",
                self.url,
                String::from_utf8_lossy(&answer[..answer.len().min(200)])
            )),
        }
    }
}
