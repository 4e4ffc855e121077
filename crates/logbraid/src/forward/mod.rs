//! The forwarding client: a [`Sink`] that sends records to a collector over
//! the native protocol (`PROTOCOL.md`), keeps every batch until the
//! collector acknowledges it, reconnects with exponential back-off and
//! resends what was not acknowledged.
//!
//! The pipeline's writer thread drives the sink: [`Sink::write`] encodes
//! into the current batch, [`Sink::flush`] seals it and hands it to the
//! sink's I/O thread, [`Sink::confirm`] (run for every
//! [`Logger::flush`](crate::Logger::flush)) waits until the collector has
//! acknowledged everything sealed. When the unacknowledged batches reach
//! [`ForwardOptions::buffer_bytes`], sealing waits: the writer thread
//! stops draining the in-process queue, so the queue's overflow policy
//! ([`Overflow`](crate::Overflow): block, or drop and count) decides what
//! happens to new records. One bounded buffer, one policy, every drop
//! counted in [`Stats::dropped`](crate::Stats::dropped).
//!
//! ```no_run
//! use logbraid::forward::{Endpoint, ForwardOptions, ForwardSink};
//! let sink = ForwardSink::new(ForwardOptions::new(Endpoint::parse("tcp://logs.internal:9021")?))?;
//! let (logger, _guard) = logbraid::Builder::new().sink(sink).build()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Over TLS (cargo feature `tls`), verifying the collector against a CA and
//! showing it a client certificate; the token from `LOGBRAID_TOKEN`:
//!
//! ```no_run
//! # #[cfg(feature = "tls")] {
//! use logbraid::forward::{Endpoint, ForwardOptions, ForwardSink, TlsOptions};
//! let tls = TlsOptions {
//!     ca: Some("ca.pem".into()),
//!     cert: Some("web-1.pem".into()),
//!     key: Some("web-1.key".into()),
//!     ..TlsOptions::default()
//! };
//! let url = Endpoint::parse("tls://logs.internal:6514")?;
//! let sink = ForwardSink::new(ForwardOptions::new(url).tls(tls).or_env())?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod conn;
#[cfg(feature = "otlp")]
mod otlp;

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub(crate) use conn::check_client;
pub use conn::{ForwardError, TlsOptions, CA_ENV, CERT_ENV, KEY_ENV, SERVER_NAME_ENV, TOKEN_ENV};
use conn::{Stream, Target};

pub use crate::endpoint::Endpoint;
#[cfg(feature = "otlp")]
pub use otlp::{severity_number, OtlpCounters, OtlpSink, OtlpStats};

use crate::record::{Record, Source};
use crate::report::RateLimit;
use crate::sink::Sink;
use crate::wire::{self, BatchEncoder, Frame, FrameReader, Hello, Push};

/// The sink that forwards to `options`' endpoint: a [`ForwardSink`] for
/// the native protocol, an [`OtlpSink`](crate::forward) for
/// `otlp-http://` (with the `otlp` feature).
pub fn sink(options: ForwardOptions) -> Result<Box<dyn Sink + Send>, ForwardError> {
    #[cfg(feature = "otlp")]
    if options.endpoint.protocol == crate::endpoint::Protocol::OtlpHttp {
        return Ok(Box::new(OtlpSink::new(options)?));
    }
    Ok(Box::new(ForwardSink::new(options)?))
}

/// Settings of a [`ForwardSink`] (and of an `OtlpSink`, which uses the
/// token, buffer bytes, linger and back-off).
///
/// | option | default |
/// |---|---|
/// | token | none |
/// | TLS | none; a `tls://` endpoint needs at least [`TlsOptions::ca`] |
/// | client id | `host/program/pid` (`host/program/pid/N` for a process's second and later clients) |
/// | buffer bytes | 16 MiB of unacknowledged batches |
/// | linger | 10 s: how long shutdown waits for acknowledgements |
/// | back-off | 10 ms, doubling up to 5 s |
#[derive(Clone, Debug)]
pub struct ForwardOptions {
    endpoint: Endpoint,
    token: Vec<u8>,
    tls: TlsOptions,
    client_id: Option<String>,
    buffer_bytes: usize,
    linger: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
}

impl ForwardOptions {
    /// The defaults of the table above, for this collector.
    pub fn new(endpoint: Endpoint) -> Self {
        ForwardOptions {
            endpoint,
            token: Vec::new(),
            tls: TlsOptions::default(),
            client_id: None,
            buffer_bytes: 16 << 20,
            linger: Duration::from_secs(10),
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_secs(5),
        }
    }

    /// The shared secret the collector expects.
    pub fn token(mut self, token: impl Into<Vec<u8>>) -> Self {
        self.token = token.into();
        self
    }

    /// How to verify a `tls://` collector, and the certificate to show it
    /// (with the `tls` cargo feature; without it a `tls://` endpoint is
    /// refused). The files are read when the sink is built.
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// The stable name the collector deduplicates by. Two live processes
    /// must not share one.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// Bytes of sealed batches kept until acknowledged; at the limit,
    /// logging meets the in-process queue's overflow policy.
    pub fn buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes.max(1);
        self
    }

    /// How long shutdown waits for the collector to acknowledge what is
    /// left; what is still unacknowledged then is reported as lost.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// First and longest pause between connection attempts.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min.max(Duration::from_millis(1));
        self.backoff_max = max.max(self.backoff_min);
        self
    }

    /// Fills what is not set from the environment: the token from
    /// [`TOKEN_ENV`] (for a `tcp://` or `tls://` collector: a Unix socket
    /// is guarded by its permissions), and for a `tls://` collector the
    /// TLS files from theirs (see [`TlsOptions::or_env`]). A child process
    /// finds there what its parent forwards with.
    pub fn or_env(mut self) -> Self {
        if self.endpoint.port().is_none() {
            return self;
        }
        if self.token.is_empty() {
            if let Some(t) = std::env::var_os(TOKEN_ENV) {
                use std::os::unix::ffi::OsStringExt as _;
                self.token = t.into_vec();
            }
        }
        if self.endpoint.protocol.is_tls() {
            self.tls = self.tls.or_env();
        }
        self
    }

    /// The collector's address.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

/// Counters of a forwarding client, read through [`ForwardStats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardCounters {
    /// Records sealed into batches.
    pub records: u64,
    /// Records the collector acknowledged.
    pub acked: u64,
    /// Batch frames sent, resends included.
    pub batches_sent: u64,
    /// Batch frames sent again after a reconnect.
    pub batches_resent: u64,
    /// Connections established.
    pub connects: u64,
    /// Connection attempts or connections that failed.
    pub failures: u64,
    /// Records still unacknowledged when shutdown gave up waiting.
    pub lost: u64,
    /// The last problem, for people.
    pub last_error: Option<String>,
}

/// A handle on a [`ForwardSink`]'s counters that outlives the sink's move
/// into a pipeline.
#[derive(Clone, Debug)]
pub struct ForwardStats(Arc<Shared>);

impl ForwardStats {
    /// The counters now.
    pub fn get(&self) -> ForwardCounters {
        let s = &self.0;
        ForwardCounters {
            records: s.records.load(Ordering::Relaxed),
            acked: s.acked.load(Ordering::Relaxed),
            batches_sent: s.batches_sent.load(Ordering::Relaxed),
            batches_resent: s.batches_resent.load(Ordering::Relaxed),
            connects: s.connects.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            lost: s.lost.load(Ordering::Relaxed),
            last_error: lock(&s.state).last_error.clone(),
        }
    }
}

/// A sealed batch, kept until acknowledged.
#[derive(Debug)]
struct Sealed {
    frame: Arc<Vec<u8>>,
    last: u64,
    records: u32,
}

#[derive(Debug)]
struct State {
    outbox: VecDeque<Sealed>,
    bytes: usize,
    /// Entries at the front of `outbox` already sent on this connection.
    sent: usize,
    next_seq: u64,
    epoch: u64,
    /// Nonces of `PING`s to answer.
    pongs: Vec<u64>,
    /// Bumped when the reader sees the connection end.
    dead_gen: u64,
    stop: bool,
    last_error: Option<String>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    records: AtomicU64,
    acked: AtomicU64,
    batches_sent: AtomicU64,
    batches_resent: AtomicU64,
    connects: AtomicU64,
    failures: AtomicU64,
    lost: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update of a client's state is a few assignments; a panic
    // between them is not possible, so a poisoned lock still holds a valid
    // state.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits on `cv` for at most `t`.
fn wait_on<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>, t: Duration) -> MutexGuard<'a, T> {
    cv.wait_timeout(g, t)
        .map(|(g, _)| g)
        .unwrap_or_else(|e| e.into_inner().0)
}

/// Waits until `done` holds of the state, or until `deadline`; whether it
/// does.
fn wait_until<T>(
    m: &Mutex<T>,
    cv: &Condvar,
    deadline: Option<Instant>,
    done: impl Fn(&T) -> bool,
) -> bool {
    let mut st = lock(m);
    loop {
        if done(&st) {
            return true;
        }
        let mut step = Duration::from_millis(50);
        if let Some(d) = deadline {
            let now = Instant::now();
            if now >= d {
                return false;
            }
            step = step.min(d - now);
        }
        st = wait_on(cv, st, step);
    }
}

/// Says on stderr that `lost` records (if any) were given up on by
/// shutdown, not `what` (acknowledged, accepted) by `by` within `linger`.
fn report_lost(lost: u64, what: &str, by: &dyn fmt::Display, linger: Duration) {
    if lost > 0 {
        let _ = writeln!(
            io::stderr(),
            "logbraid: {lost} records not {what} by {by} after {linger:?}: lost"
        );
    }
}

impl Shared {
    fn wait<'a>(&self, g: MutexGuard<'a, State>, t: Duration) -> MutexGuard<'a, State> {
        wait_on(&self.cv, g, t)
    }

    /// Drops the batches covered by `highest`.
    fn covered(&self, st: &mut State, highest: u64) {
        while st.outbox.front().is_some_and(|b| b.last <= highest) {
            let b = st.outbox.pop_front().expect("front exists");
            st.bytes -= b.frame.len();
            st.sent = st.sent.saturating_sub(1);
            self.acked
                .fetch_add(u64::from(b.records), Ordering::Relaxed);
        }
        self.cv.notify_all();
    }

    fn error(&self, message: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut st = lock(&self.state);
        st.last_error = Some(message);
    }
}

fn new_epoch() -> u64 {
    static SALT: AtomicU64 = AtomicU64::new(0);
    let x = (crate::clock::now_ns() as u64)
        ^ (u64::from(std::process::id()) << 32)
        ^ SALT.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    // splitmix64: spreads nearby inputs over the whole range.
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)).max(1)
}

/// Sends records to a collector; see the [module documentation](self).
pub struct ForwardSink {
    shared: Arc<Shared>,
    encoder: BatchEncoder,
    buffer_bytes: usize,
    linger: Duration,
    endpoint: Endpoint,
    io: Option<JoinHandle<()>>,
    /// What a new I/O thread is started from when records arrive after
    /// [`Sink::finish`] stopped the previous one.
    respawn: Io,
}

impl fmt::Debug for ForwardSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardSink")
            .field("endpoint", &self.endpoint.to_string())
            .finish_non_exhaustive()
    }
}

impl ForwardSink {
    /// Starts the I/O thread. The collector need not be up: the thread
    /// connects when the first batch is sealed, and reconnects, on its own.
    pub fn new(options: ForwardOptions) -> Result<ForwardSink, ForwardError> {
        let target = Target::new(options.endpoint.clone(), &options.tls)?;
        let source = Source::current();
        let client_id = options.client_id.clone().unwrap_or_else(|| {
            // Two clients of one process must not share an id either: the
            // second and later get a number.
            static SINKS: AtomicU64 = AtomicU64::new(0);
            let n = SINKS.fetch_add(1, Ordering::Relaxed);
            let id = format!("{}/{}/{}", source.host, source.process_name, source.pid);
            let id = if n == 0 { id } else { format!("{id}/{n}") };
            // Cut from the front, so the distinguishing pid and number stay.
            let mut start = id.len().saturating_sub(wire::MAX_CLIENT_ID);
            while !id.is_char_boundary(start) {
                start += 1;
            }
            id[start..].to_string()
        });
        if client_id.is_empty() || client_id.len() > wire::MAX_CLIENT_ID {
            return Err(ForwardError::ClientId(client_id));
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                outbox: VecDeque::new(),
                bytes: 0,
                sent: 0,
                next_seq: 1,
                epoch: new_epoch(),
                pongs: Vec::new(),
                dead_gen: 0,
                stop: false,
                last_error: None,
            }),
            cv: Condvar::new(),
            records: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            batches_sent: AtomicU64::new(0),
            batches_resent: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        });
        let io = Io {
            shared: Arc::clone(&shared),
            target,
            options: options.clone(),
            client_id,
            source,
        };
        let handle = io
            .clone()
            .spawn()
            .map_err(|e| ForwardError::Thread(e.to_string()))?;
        Ok(ForwardSink {
            shared,
            encoder: BatchEncoder::new(wire::DEFAULT_MAX_FRAME),
            buffer_bytes: options.buffer_bytes,
            linger: options.linger,
            endpoint: options.endpoint,
            io: Some(handle),
            respawn: io,
        })
    }

    /// A handle on the counters.
    pub fn stats(&self) -> ForwardStats {
        ForwardStats(Arc::clone(&self.shared))
    }

    /// Seals the current batch and queues it, waiting while the buffer is
    /// full. After [`Sink::finish`] this starts a new I/O thread: the
    /// pipeline writes records logged after its shutdown directly, and they
    /// must still reach the collector rather than wait in an outbox that
    /// nobody sends.
    fn seal(&mut self) -> io::Result<()> {
        if self.encoder.is_empty() {
            return Ok(());
        }
        if self.io.is_none() {
            {
                let mut st = lock(&self.shared.state);
                st.stop = false;
                st.pongs.clear();
            }
            self.io = Some(self.respawn.clone().spawn()?);
        }
        let mut st = lock(&self.shared.state);
        while st.bytes >= self.buffer_bytes && !st.stop {
            st = self.shared.wait(st, Duration::from_millis(100));
        }
        let first = st.next_seq;
        let mut frame = Vec::with_capacity(self.encoder.frame_len());
        // The encoder is not empty and sequence numbers stay far below
        // u64::MAX, so finishing cannot fail.
        let Ok(n) = self.encoder.finish(first, &mut frame) else {
            self.encoder.clear();
            return Ok(());
        };
        st.next_seq += u64::from(n);
        st.bytes += frame.len();
        st.outbox.push_back(Sealed {
            frame: Arc::new(frame),
            last: first + u64::from(n) - 1,
            records: n,
        });
        self.shared
            .records
            .fetch_add(u64::from(n), Ordering::Relaxed);
        self.shared.cv.notify_all();
        Ok(())
    }

    /// Waits until the outbox is empty, or until `deadline`.
    fn wait_acked(&self, deadline: Option<Instant>) -> bool {
        wait_until(&self.shared.state, &self.shared.cv, deadline, |st| {
            st.outbox.is_empty()
        })
    }

    fn stop_io(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.cv.notify_all();
        if let Some(h) = self.io.take() {
            let _ = h.join();
        }
    }
}

impl Sink for ForwardSink {
    fn write(&mut self, record: &Record<'_>) -> io::Result<usize> {
        let before = self.encoder.frame_len();
        match self.encoder.push(record) {
            Push::Added | Push::Truncated => Ok(self.encoder.frame_len() - before),
            Push::Full => {
                self.seal()?;
                let empty = self.encoder.frame_len();
                // An empty encoder takes any record, shortening it if needed.
                let _ = self.encoder.push(record);
                Ok(self.encoder.frame_len() - empty)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.seal()
    }

    fn confirm(&mut self) -> io::Result<()> {
        self.seal()?;
        self.wait_acked(None);
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        let sealed = self.seal();
        let done = self.wait_acked(Some(Instant::now() + self.linger));
        self.stop_io();
        if !done {
            let mut st = lock(&self.shared.state);
            let lost: u64 = st.outbox.iter().map(|b| u64::from(b.records)).sum();
            // What was given up on leaves the outbox: a later `confirm`
            // (a flush after shutdown, the panic hook, `atexit`) must not
            // wait for it forever. The numbering would now have a gap the
            // collector refuses, so a new epoch starts from 1.
            st.outbox.clear();
            st.bytes = 0;
            st.sent = 0;
            st.epoch = new_epoch();
            st.next_seq = 1;
            drop(st);
            self.shared.cv.notify_all();
            self.shared.lost.fetch_add(lost, Ordering::Relaxed);
            report_lost(lost, "acknowledged", &self.endpoint, self.linger);
        }
        sealed
    }

    fn sink_stats(&self) -> crate::sink::SinkStats {
        let s = &self.shared;
        crate::sink::SinkStats {
            acked: s.acked.load(Ordering::Relaxed),
            resent: s.batches_resent.load(Ordering::Relaxed),
            ..Default::default()
        }
    }
}

impl Drop for ForwardSink {
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
    target: Target,
    options: ForwardOptions,
    client_id: String,
    source: Arc<Source>,
}

/// How long one batch write may block before the connection is taken for
/// dead and the batches are resent on a new one.
const BATCH_WRITE_TIMEOUT: Duration = Duration::from_secs(120);

/// Least time between two diagnostics about the connection on stderr.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Why a connection ended.
enum End {
    Stop,
    Retry { transient: bool },
}

impl Io {
    fn spawn(self) -> io::Result<JoinHandle<()>> {
        thread::Builder::new()
            .name("logbraid-forward".into())
            .spawn(move || self.run())
    }

    fn stopping(&self) -> bool {
        lock(&self.shared.state).stop
    }

    fn run(self) {
        let mut backoff = self.options.backoff_min;
        let reports = RateLimit::new(REPORT_EVERY);
        // The first connection waits for the first batch: the handshake
        // tells the collector the program's name, which a process may set
        // (set_process_name) after its sink is built and before it logs.
        {
            let mut st = lock(&self.shared.state);
            while !st.stop && st.outbox.is_empty() {
                st = self.shared.wait(st, Duration::from_millis(100));
            }
        }
        loop {
            if self.stopping() {
                return;
            }
            let end = match conn::connect(&self.target, Duration::from_secs(2)) {
                Ok(stream) => {
                    self.shared.connects.fetch_add(1, Ordering::Relaxed);
                    self.session(stream, &mut backoff)
                }
                Err(e) => {
                    self.shared
                        .error(format!("cannot connect to {}: {e}", self.options.endpoint));
                    End::Retry { transient: true }
                }
            };
            let transient = match end {
                End::Stop => return,
                End::Retry { transient } => transient,
            };
            if let Some(msg) = lock(&self.shared.state).last_error.clone() {
                if reports.allow().is_some() {
                    let _ = writeln!(io::stderr(), "logbraid: forwarding: {msg}; retrying");
                }
            }
            let pause = if transient {
                backoff
            } else {
                self.options.backoff_max
            };
            backoff = (backoff * 2).min(self.options.backoff_max);
            let until = Instant::now() + pause;
            // Until then, or until the sink stops.
            wait_until(&self.shared.state, &self.shared.cv, Some(until), |st| {
                st.stop
            });
        }
    }

    /// One connection: handshake, then send until it ends.
    fn session(&self, mut stream: Stream, backoff: &mut Duration) -> End {
        let retry = End::Retry { transient: true };
        let fail = |what: &str, e: &dyn fmt::Display| {
            self.shared
                .error(format!("{what} {}: {e}", self.options.endpoint));
            End::Retry { transient: true }
        };
        let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
        let epoch = lock(&self.shared.state).epoch;
        let mut out = Vec::new();
        let named = Source::current();
        let hello = Hello {
            versions: wire::SUPPORTED_VERSIONS,
            client_id: &self.client_id,
            epoch,
            host: &self.source.host,
            pid: self.source.pid,
            program: &named.process_name,
            token: &self.options.token,
        };
        if let Err(e) = wire::encode_hello(&hello, &mut out) {
            return fail("cannot build a hello for", &e);
        }
        if let Err(e) = stream.write_all(&out) {
            return fail("cannot send to", &e);
        }
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut reader = FrameReader::new(64 << 10);
        let mut buf = vec![0u8; 64 << 10];
        let highest = loop {
            match reader.next_frame() {
                Ok(Some(Frame::Welcome { highest, .. })) => break highest,
                Ok(Some(Frame::Error { code, message })) => {
                    self.shared.error(format!(
                        "{} refused: {code}: {message}",
                        self.options.endpoint
                    ));
                    return End::Retry {
                        transient: code.is_transient(),
                    };
                }
                Ok(Some(other)) => {
                    return fail("unexpected frame before WELCOME from", &other.frame_type())
                }
                Ok(None) => {}
                Err(e) => return fail("bad frame from", &e),
            }
            match stream.read(&mut buf) {
                Ok(0) => return fail("connection closed by", &"end of stream"),
                Ok(n) => reader.push(&buf[..n]),
                Err(e) => return fail("no WELCOME from", &e),
            }
        };
        {
            let mut st = lock(&self.shared.state);
            if highest >= st.next_seq {
                // The collector knows a longer numbering under this id and
                // epoch: renumber what is kept under a new epoch (§7.1.6).
                st.epoch = new_epoch();
                let mut seq: u64 = 1;
                for b in st.outbox.iter_mut() {
                    let frame = Arc::make_mut(&mut b.frame);
                    frame[6..14].copy_from_slice(&seq.to_le_bytes());
                    seq += u64::from(b.records);
                    b.last = seq - 1;
                }
                st.next_seq = seq;
                st.sent = 0;
                drop(st);
                self.shared.error(format!(
                    "{} reported sequence {highest} beyond this client's; renumbered under a new epoch",
                    self.options.endpoint
                ));
                return retry;
            }
            self.shared.covered(&mut st, highest);
            st.sent = 0;
        }
        *backoff = self.options.backoff_min;

        let Ok(mut read_half) = stream.try_clone() else {
            return fail("cannot clone the socket of", &"try_clone");
        };
        let _ = read_half.set_read_timeout(None);
        // A collector whose sinks fall behind stops reading (backpressure):
        // a slow collector is not a dead one, so batch writes get far longer
        // than the handshake did.
        let _ = stream.set_write_timeout(Some(BATCH_WRITE_TIMEOUT));
        let gen = lock(&self.shared.state).dead_gen;
        let shared = Arc::clone(&self.shared);
        let endpoint = self.options.endpoint.to_string();
        let reader_thread = thread::Builder::new()
            .name("logbraid-forward-acks".into())
            .spawn(move || read_acks(&mut read_half, reader, &shared, &endpoint));
        let Ok(reader_thread) = reader_thread else {
            return fail("cannot start the reader for", &"spawn");
        };

        let mut resending = lock(&self.shared.state).outbox.len();
        let end = loop {
            let mut st = lock(&self.shared.state);
            while st.dead_gen == gen
                && !st.stop
                && st.sent >= st.outbox.len()
                && st.pongs.is_empty()
            {
                st = self.shared.wait(st, Duration::from_millis(200));
            }
            if st.dead_gen != gen {
                break End::Retry { transient: true };
            }
            if st.stop {
                // The sink waited for the acknowledgements it could get
                // before stopping us.
                break End::Stop;
            }
            out.clear();
            for nonce in st.pongs.drain(..) {
                wire::encode_pong(nonce, &mut out);
            }
            let next = st.outbox.get(st.sent).map(|b| Arc::clone(&b.frame));
            if next.is_some() {
                st.sent += 1;
            }
            drop(st);
            if !out.is_empty() {
                if let Err(e) = stream.write_all(&out) {
                    break fail("cannot send to", &e);
                }
            }
            if let Some(frame) = next {
                if let Err(e) = stream.write_all(&frame) {
                    break fail("cannot send to", &e);
                }
                self.shared.batches_sent.fetch_add(1, Ordering::Relaxed);
                if resending > 0 {
                    resending -= 1;
                    self.shared.batches_resent.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        stream.shutdown();
        let _ = reader_thread.join();
        end
    }
}

/// Reads `ACK`, `PING` and `ERROR` until the connection ends.
fn read_acks(stream: &mut Stream, mut reader: FrameReader, shared: &Shared, endpoint: &str) {
    let mut buf = vec![0u8; 64 << 10];
    let why = 'outer: loop {
        loop {
            match reader.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Ack { highest })) => {
                    let mut st = lock(&shared.state);
                    shared.covered(&mut st, highest);
                }
                Ok(Some(Frame::Ping { nonce })) => {
                    lock(&shared.state).pongs.push(nonce);
                    shared.cv.notify_all();
                }
                Ok(Some(Frame::Pong { .. })) => {}
                Ok(Some(Frame::Error { code, message })) => {
                    break 'outer format!("{endpoint} closed the connection: {code}: {message}");
                }
                Ok(Some(other)) => {
                    break 'outer format!("unexpected {} frame from {endpoint}", other.frame_type())
                }
                Err(e) => break 'outer format!("bad frame from {endpoint}: {e}"),
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => break format!("{endpoint} closed the connection"),
            Ok(n) => reader.push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break format!("connection to {endpoint} failed: {e}"),
        }
    };
    let mut st = lock(&shared.state);
    if !st.stop {
        st.last_error = Some(why);
        shared.failures.fetch_add(1, Ordering::Relaxed);
    }
    st.dead_gen += 1;
    shared.cv.notify_all();
}
