//! Publishing to NATS JetStream instead of writing files: what
//! `logbraid serve --publish` does with each native batch it accepts.
//!
//! Every `BATCH` frame becomes one message on the subject the template
//! names (`logs.{host}.{program}`), its payload the wire encoding itself:
//! a `HELLO` frame that says whose records these are (client id, epoch,
//! host, pid, program; the token field carries the identity of the
//! connection's credential, never a secret), then the `BATCH` frame as the
//! client sent it. Its `Nats-Msg-Id` is the client id (scoped by that
//! identity), epoch and first sequence number, so a batch resent to any
//! collector, after any reconnect or restart, is stored once as long as
//! it comes within the stream's duplicate window (the writer's own
//! checkpoint catches what comes later, see [`crate::consume`]).
//!
//! A client is acknowledged only after JetStream acknowledged the publish
//! (stored on a majority of the stream's replicas). Each client's batches
//! are published one after the other, each once the previous one is
//! acknowledged, so a client's batches reach the stream in its order even
//! when a publish must be tried again, and across collectors: a batch's
//! first copy in the stream always follows the first copy of the batch
//! before it. Clients are published side by side.
//!
//! Backpressure, never loss: deliveries wait for JetStream within a byte
//! budget; when it is used up, connections stop reading their sockets. A
//! publish that fails (no answer, no stream leader during an election, a
//! server lost) is tried again with back-off for as long as it takes.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logbraid::wire::{self, Dedup, Hello};
use prometheus_client::metrics::histogram::Histogram;

use crate::nats::jetstream::{self, StreamSpec, MSG_ID};
use crate::nats::{Client, NatsError};
use crate::output::{Body, Delivery, Pending};

/// The subject when none is given.
pub const DEFAULT_SUBJECT: &str = "logs.{host}.{program}";

/// The stream when none is given.
pub const DEFAULT_STREAM: &str = "LOGS";

/// How long JetStream remembers a message id, when not given: longer
/// than a client's longest back-off between two attempts to resend.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long one publish waits for its acknowledgement before it is sent
/// again.
const PUBLISH_WAIT: Duration = Duration::from_secs(2);

/// How a collector publishes.
#[derive(Clone, Debug)]
pub struct PublishConfig {
    /// `nats://host:port` of servers of the cluster.
    pub servers: Vec<String>,
    /// The stream, created when missing.
    pub stream: String,
    /// The subject template.
    pub subject: SubjectTemplate,
    /// The stream's duplicate window, when this collector creates it.
    pub duplicate_window: Duration,
    /// Bytes of batches waiting for JetStream before connections wait.
    pub max_pending_bytes: usize,
}

/// A subject with placeholders `{host}`, `{program}` and `{pid}`, each a
/// whole token (`logs.{host}.{program}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectTemplate {
    tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(String),
    Host,
    Program,
    Pid,
}

impl std::str::FromStr for SubjectTemplate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let tokens = s
            .split('.')
            .map(|t| match t {
                "{host}" => Ok(Token::Host),
                "{program}" => Ok(Token::Program),
                "{pid}" => Ok(Token::Pid),
                t if t.contains(['{', '}']) => Err(format!(
                    "{t:?}: a placeholder ({{host}}, {{program}}, {{pid}}) is a whole token"
                )),
                t if t.is_empty() || t.contains(['*', '>']) || !crate::nats::proto::is_token(t) => {
                    Err(format!("{t:?} is not a subject token"))
                }
                t => Ok(Token::Literal(t.to_string())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SubjectTemplate { tokens })
    }
}

impl std::fmt::Display for SubjectTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<&str> = self
            .tokens
            .iter()
            .map(|t| match t {
                Token::Literal(s) => s.as_str(),
                Token::Host => "{host}",
                Token::Program => "{program}",
                Token::Pid => "{pid}",
            })
            .collect();
        f.write_str(&parts.join("."))
    }
}

/// A subject token from a client's value: what may not stand in a token
/// (`.`, `*`, `>`, spaces, control and non-ASCII characters) becomes `_`,
/// and it is cut to 64 bytes.
fn token_of(value: &str) -> String {
    let mut t: String = value
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '.' | '*' | '>') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() {
        t.push('_');
    }
    t
}

impl SubjectTemplate {
    /// The subject of a source's records.
    pub fn subject(&self, source: &logbraid::Source) -> String {
        let parts: Vec<String> = self
            .tokens
            .iter()
            .map(|t| match t {
                Token::Literal(s) => s.clone(),
                Token::Host => token_of(&source.host),
                Token::Program => token_of(&source.process_name),
                Token::Pid => source.pid.to_string(),
            })
            .collect();
        parts.join(".")
    }

    /// The subjects a stream must hold for it: each placeholder a `*`.
    pub fn filter(&self) -> String {
        let parts: Vec<&str> = self
            .tokens
            .iter()
            .map(|t| match t {
                Token::Literal(s) => s.as_str(),
                _ => "*",
            })
            .collect();
        parts.join(".")
    }
}

/// A message id: the client's key, epoch and first sequence number, the
/// key's bytes outside `[A-Za-z0-9._/:-]` as `%XX` so the id is one
/// header value whatever the client id holds.
pub fn msg_id(key: &str, epoch: u64, first: u64) -> String {
    let mut id = String::with_capacity(key.len() + 48);
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b':' | b'-') {
            id.push(b as char);
        } else {
            let _ = write!(id, "%{b:02X}");
        }
    }
    let _ = write!(id, "#{epoch:x}#{first}");
    id
}

/// The payload of a batch's message: a `HELLO` naming the client, then
/// the `BATCH` frame.
pub fn payload(
    client_id: &str,
    identity: Option<&str>,
    epoch: u64,
    source: &logbraid::Source,
    frame: &[u8],
) -> Result<Vec<u8>, wire::WireError> {
    let mut out = Vec::with_capacity(frame.len() + 64 + source.host.len());
    wire::encode_hello(
        &Hello {
            versions: &[wire::VERSION],
            client_id,
            epoch,
            host: &source.host,
            pid: source.pid,
            program: &source.process_name,
            token: identity.unwrap_or("").as_bytes(),
        },
        &mut out,
    )?;
    out.extend_from_slice(frame);
    Ok(out)
}

/// Room left in a message for the `HELLO` and the headers.
const ENVELOPE: usize = 4096;

/// A batch as the frames it is published in: itself when it fits in
/// `max_payload` with its envelope, else its records cut into consecutive
/// batches that do (a server's `max_payload` smaller than a client's
/// frames: 1 MiB, NATS's default, is exactly the native protocol's frame
/// limit). The cut depends on the bytes and the limit only, so a resent
/// batch is cut the same way and each part keeps its message id.
pub fn pieces(
    frame: &[u8],
    source: &logbraid::Source,
    max_payload: usize,
) -> Result<Vec<(u64, Vec<u8>)>, wire::WireError> {
    let wire::Frame::Batch(b) = wire::decode(frame)? else {
        return Ok(Vec::new());
    };
    let room = max_payload.saturating_sub(ENVELOPE);
    if frame.len() <= room {
        return Ok(vec![(b.first_seq(), frame.to_vec())]);
    }
    let mut enc = wire::BatchEncoder::new(room.saturating_sub(4).max(wire::MIN_BATCH_FRAME));
    let mut out = Vec::new();
    let mut first = b.first_seq();
    for r in b.records(source) {
        if enc.push(&r) == wire::Push::Full {
            let mut piece = Vec::new();
            let n = enc.finish(first, &mut piece)?;
            out.push((first, piece));
            first += u64::from(n);
            // An empty encoder takes any record (cut when over a frame).
            let _ = enc.push(&r);
        }
    }
    if !enc.is_empty() {
        let mut piece = Vec::new();
        enc.finish(first, &mut piece)?;
        out.push((first, piece));
    }
    Ok(out)
}

/// Counters of a publishing collector, for its metrics: exact, relaxed
/// atomics.
#[derive(Debug)]
pub struct PublishStats {
    /// Batches JetStream acknowledged.
    pub published: AtomicU64,
    /// Of those, batches it already held (a resend within the window).
    pub duplicates: AtomicU64,
    /// Publishes tried again after a failure or no answer.
    pub retries: AtomicU64,
    /// Batches waiting for their acknowledgement now (being published, or
    /// queued behind their client's previous batch).
    pub pending: AtomicU64,
    /// Seconds from each published batch's arrival to JetStream's
    /// acknowledgement of it (of its last part, when it was cut): one
    /// observation per batch in `published`.
    pub latency: Histogram,
}

impl Default for PublishStats {
    fn default() -> PublishStats {
        PublishStats {
            published: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            latency: Histogram::new(crate::metrics::latency_buckets()),
        }
    }
}

struct Job {
    delivery: Delivery,
    permits: u32,
    since: Instant,
}

/// One client's batches, published in order by one task at a time.
#[derive(Default)]
struct Lane {
    queue: VecDeque<Job>,
}

struct Shared {
    client: Client,
    config: PublishConfig,
    dedup: Arc<Mutex<Dedup>>,
    /// Bytes of batches waiting for JetStream, within
    /// [`PublishConfig::max_pending_bytes`].
    pending: Arc<Pending>,
    lanes: Mutex<HashMap<Box<str>, Lane>>,
    stats: Arc<PublishStats>,
}

/// Hands accepted batches to the publisher; cheap to clone.
#[derive(Clone)]
pub struct PublishHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PublishHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishHandle")
            .field("stream", &self.shared.config.stream)
            .finish()
    }
}

/// Why publishing could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// NATS could not be reached or refused.
    #[error(transparent)]
    Nats(#[from] NatsError),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PublishHandle {
    /// Connects to the cluster (waiting up to `wait` for a first server)
    /// and makes sure the stream exists (file storage, replicas min(3, the
    /// servers of the cluster), the duplicate window).
    pub async fn start(
        config: PublishConfig,
        dedup: Arc<Mutex<Dedup>>,
        wait: Duration,
    ) -> Result<PublishHandle, PublishError> {
        let client = Client::start(&config.servers, "logbraid-serve")?;
        client.connected(wait).await?;
        let info = client.info();
        // Three replicas in a cluster, one on a lone server. While a
        // cluster is forming, a server may not know all its peers yet and
        // refuse three for lack of servers: that is tried again for a while
        // before the stream settles for the servers the cluster lists.
        let mut spec = StreamSpec {
            name: config.stream.clone(),
            subjects: vec![config.subject.filter()],
            replicas: if info.cluster.is_some() { 3 } else { 1 },
            duplicate_window: config.duplicate_window,
        };
        let started = Instant::now();
        let deadline = started + wait;
        let settle = started + wait.min(Duration::from_secs(10));
        loop {
            // Right after a cluster starts, JetStream has no meta leader for
            // a moment: try again until `wait` is over.
            match jetstream::ensure_stream(&client, &spec).await {
                Ok(stream) => {
                    eprintln!(
                        "logbraid serve: publishing to stream {} ({} replicas, duplicate \
                         window {} s)",
                        spec.name,
                        stream["num_replicas"].as_u64().unwrap_or(1),
                        stream["duplicate_window"].as_u64().unwrap_or(0) / 1_000_000_000
                    );
                    break;
                }
                Err(NatsError::Api { err_code, .. })
                    if err_code == jetstream::NOT_CLUSTERED && spec.replicas > 1 =>
                {
                    spec.replicas = 1;
                }
                Err(NatsError::Api { err_code, .. })
                    if err_code == jetstream::INSUFFICIENT_RESOURCES
                        && spec.replicas > 1
                        && Instant::now() >= settle =>
                {
                    let servers = client.info().connect_urls.len();
                    spec.replicas = servers.clamp(1, spec.replicas - 1);
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(PublishHandle {
            shared: Arc::new(Shared {
                client,
                dedup,
                pending: Arc::new(Pending::new(config.max_pending_bytes)),
                lanes: Mutex::new(HashMap::new()),
                stats: Arc::new(PublishStats::default()),
                config,
            }),
        })
    }

    /// The counters.
    pub fn stats(&self) -> Arc<PublishStats> {
        Arc::clone(&self.shared.stats)
    }

    /// The bytes of batches waiting for JetStream: whether listeners wait
    /// for room, and when JetStream last acknowledged one.
    pub fn pending(&self) -> Arc<Pending> {
        Arc::clone(&self.shared.pending)
    }

    /// Queues a native batch behind its client's earlier ones, waiting
    /// while the budget is used up. `false` when publishing has stopped,
    /// or for records of another protocol (they carry no client numbering
    /// to deduplicate by; `logbraid serve --publish` takes native
    /// listeners only).
    pub async fn send(&self, delivery: Delivery) -> bool {
        let Some(ack) = &delivery.ack else {
            return false;
        };
        if !matches!(delivery.body, Body::Native { .. }) {
            return false;
        }
        let key = ack.client_id.clone();
        let Some(n) = self.shared.pending.take(delivery.weight()).await else {
            return false;
        };
        self.shared.stats.pending.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            delivery,
            permits: n,
            since: Instant::now(),
        };
        let start = {
            let mut lanes = lock(&self.shared.lanes);
            match lanes.get_mut(&key) {
                Some(lane) => {
                    lane.queue.push_back(job);
                    false
                }
                None => {
                    let mut lane = Lane::default();
                    lane.queue.push_back(job);
                    lanes.insert(key.clone(), lane);
                    true
                }
            }
        };
        if start {
            tokio::spawn(drain(Arc::clone(&self.shared), key));
        }
        true
    }

    /// Stops taking batches and waits up to `wait` for those queued to be
    /// published; what is left is not acknowledged (clients resend it).
    pub async fn shutdown(&self, wait: Duration) -> u64 {
        self.shared.pending.close();
        let deadline = Instant::now() + wait;
        loop {
            let left = self.shared.stats.pending.load(Ordering::Relaxed);
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Publishes a client's queued batches one after the other, until its
/// lane is empty.
async fn drain(shared: Arc<Shared>, key: Box<str>) {
    loop {
        let job = {
            let mut lanes = lock(&shared.lanes);
            let Some(lane) = lanes.get_mut(&key) else {
                return;
            };
            match lane.queue.pop_front() {
                Some(job) => job,
                None => {
                    lanes.remove(&key);
                    return;
                }
            }
        };
        publish_one(&shared, job).await;
    }
}

/// Publishes one message until JetStream acknowledges it; `false` when
/// the connection has ended.
async fn publish_until_stored(shared: &Shared, subject: &str, id: &str, body: &[u8]) -> bool {
    let stats = &shared.stats;
    let mut backoff = Duration::from_millis(20);
    let mut said = Instant::now() - Duration::from_secs(60);
    loop {
        match jetstream::publish(&shared.client, subject, &[(MSG_ID, id)], body, PUBLISH_WAIT).await
        {
            Ok(done) => {
                // JetStream is making progress (`/health`).
                shared.pending.stamp();
                if done.duplicate {
                    stats.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                return true;
            }
            Err(NatsError::Closed) => return false,
            Err(e) => {
                stats.retries.fetch_add(1, Ordering::Relaxed);
                if said.elapsed() >= Duration::from_secs(10) {
                    said = Instant::now();
                    eprintln!(
                        "logbraid serve: publishing to {subject} failed ({e}); trying again, \
                         clients wait meanwhile"
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Publishes one batch until JetStream acknowledges it, then acknowledges
/// the client.
async fn publish_one(shared: &Shared, job: Job) {
    let Job {
        delivery,
        permits,
        since,
    } = job;
    let (Body::Native { frame, .. }, Some(ack)) = (&delivery.body, &delivery.ack) else {
        return;
    };
    let stats = &shared.stats;
    // The key is `IDENTITY/CLIENT_ID` when the connection proved a
    // credential (identities hold no `/`).
    let (identity, client_id) = match ack.client_id.split_once('/') {
        Some((i, c)) if i.starts_with("cert:") || i.starts_with("token:") => (Some(i), c),
        _ => (None, &*ack.client_id),
    };
    let max_payload = shared.client.info().max_payload;
    let messages = pieces(frame, &delivery.source, max_payload).and_then(|ps| {
        ps.into_iter()
            .map(|(first, piece)| {
                let body = payload(client_id, identity, ack.epoch, &delivery.source, &piece)?;
                Ok((msg_id(&ack.client_id, ack.epoch, first), body))
            })
            .collect::<Result<Vec<_>, _>>()
    });
    let Ok(messages) = messages else {
        // Validated by the listener: cannot happen.
        shared.pending.give_back(permits as usize);
        stats.pending.fetch_sub(1, Ordering::Relaxed);
        return;
    };
    let subject = shared.config.subject.subject(&delivery.source);
    for (id, body) in &messages {
        if !publish_until_stored(shared, &subject, id, body).await {
            shared.pending.give_back(permits as usize);
            stats.pending.fetch_sub(1, Ordering::Relaxed);
            return;
        }
    }
    stats.latency.observe(since.elapsed().as_secs_f64());
    stats.published.fetch_add(1, Ordering::Relaxed);
    // Counted as done before the client hears of it, so a client that has
    // its acknowledgement finds its batch counted (`/metrics`).
    shared.pending.give_back(permits as usize);
    stats.pending.fetch_sub(1, Ordering::Relaxed);
    let written = lock(&shared.dedup).commit(&ack.client_id, ack.epoch, ack.last);
    if let Some(w) = written {
        let _ = ack.tx.send(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_from_a_template() {
        let t: SubjectTemplate = DEFAULT_SUBJECT.parse().unwrap();
        let source = logbraid::Source {
            host: "web-1.example.com".into(),
            pid: 42,
            process_name: "my app>*".into(),
        };
        assert_eq!(t.subject(&source), "logs.web-1_example_com.my_app__");
        assert_eq!(t.filter(), "logs.*.*");
        assert_eq!(t.to_string(), DEFAULT_SUBJECT);
        let t: SubjectTemplate = "app.{pid}.x".parse().unwrap();
        assert_eq!(t.subject(&source), "app.42.x");
        let empty = logbraid::Source {
            host: String::new(),
            pid: 1,
            process_name: "é".into(),
        };
        assert_eq!(
            DEFAULT_SUBJECT
                .parse::<SubjectTemplate>()
                .unwrap()
                .subject(&empty),
            "logs._._"
        );
        for bad in ["logs.{hst}", "logs..x", "logs.>", "logs.a{host}", "", "a b"] {
            assert!(bad.parse::<SubjectTemplate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_batch_larger_than_a_message_is_cut_into_consecutive_batches() {
        let source = logbraid::Source {
            host: "h".into(),
            pid: 9,
            process_name: "p".into(),
        };
        let mut enc = wire::BatchEncoder::default();
        let text: Vec<String> = (0..3000)
            .map(|i| format!("record {i} {}", "x".repeat(i % 50)))
            .collect();
        for t in &text {
            let r = logbraid::Record::new(logbraid::Level::Info, "t", t.as_bytes(), &source);
            assert_eq!(enc.push(&r), wire::Push::Added);
        }
        let mut frame = Vec::new();
        enc.finish(101, &mut frame).unwrap();
        assert!(frame.len() > 100_000);
        // Fits: the frame itself.
        assert_eq!(
            pieces(&frame, &source, 1 << 20).unwrap(),
            vec![(101, frame.clone())]
        );
        let cut = pieces(&frame, &source, 16 << 10).unwrap();
        assert!(cut.len() > 6, "{}", cut.len());
        let mut next = 101;
        let mut got = Vec::new();
        for (first, piece) in &cut {
            assert!(piece.len() <= (16 << 10) - ENVELOPE, "{}", piece.len());
            let wire::Frame::Batch(b) = wire::decode(piece).unwrap() else {
                panic!()
            };
            assert_eq!((b.first_seq(), *first), (next, next));
            next += u64::from(b.len());
            got.extend(
                b.records(&source)
                    .map(|r| String::from_utf8(r.message.to_vec()).unwrap()),
            );
        }
        assert_eq!(next, 101 + 3000);
        assert_eq!(got, text);
        // The same bytes are cut the same way: a resend keeps its ids.
        assert_eq!(pieces(&frame, &source, 16 << 10).unwrap(), cut);
    }

    #[test]
    fn message_ids_are_one_header_value() {
        assert_eq!(msg_id("web-1/api", 255, 7), "web-1/api#ff#7");
        assert_eq!(
            msg_id("token:ab/c d\r\n%", 1, 1),
            "token:ab/c%20d%0D%0A%25#1#1"
        );
    }

    #[test]
    fn a_payload_is_a_hello_and_the_batch() {
        let source = logbraid::Source {
            host: "h".into(),
            pid: 9,
            process_name: "p".into(),
        };
        let mut enc = wire::BatchEncoder::default();
        let r = logbraid::Record::new(logbraid::Level::Info, "t", b"m", &source);
        assert_eq!(enc.push(&r), wire::Push::Added);
        let mut frame = Vec::new();
        enc.finish(5, &mut frame).unwrap();
        let p = payload("c", Some("token:00"), 3, &source, &frame).unwrap();
        let n = wire::frame_len(&p, 1 << 20).unwrap().unwrap();
        let wire::Frame::Hello(h) = wire::decode(&p[..n]).unwrap() else {
            panic!()
        };
        assert_eq!(
            (h.client_id, h.epoch, h.host, h.pid, h.program, h.token),
            ("c", 3, "h", 9, "p", &b"token:00"[..])
        );
        assert_eq!(&p[n..], &frame[..]);
    }
}
