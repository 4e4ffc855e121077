//! Consuming a JetStream stream into files: what `logbraid write` does.
//!
//! A durable pull consumer with explicit acknowledgements reads the
//! stream in order; each message (a `HELLO` naming the client, then its
//! `BATCH` frame, see [`crate::publish`]) goes to the collector's own
//! output stage as the native batch it was, deduplicated by the client's
//! numbering in the stage's table, which the stage's checkpoint keeps
//! with the files. A message is acknowledged to JetStream only once the
//! output stage has written it (flushed, synced with `--sync data`, the
//! checkpoint saved).
//!
//! # Exactly once, in order
//!
//! - **Redelivered or duplicated messages.** A batch whose records the
//!   table counts as written (or in flight) is skipped record by record,
//!   as a collector skips a client's resend; this holds beyond JetStream's
//!   duplicate window and across restarts of the writer, since the table
//!   is restored from the checkpoint.
//! - **Where to resume.** Beside the checkpoint, `<state>.position` holds
//!   a stream sequence number below which every message is written: it is
//!   advanced only past messages written in stream order, and saved after
//!   their checkpoint. At start the consumer is created anew from the
//!   message after it, so nothing waits for an ack wait to expire after a
//!   crash; messages written after it and before a crash come again and
//!   are skipped by the table.
//! - **Per-client order.** Collectors publish a client's batches one at a
//!   time ([`crate::publish`]), so the stream holds them in order, and the
//!   writer takes messages in stream order: a jump in the consumer's
//!   delivery numbering (a delivery lost with a connection, a server
//!   restart) recreates the consumer from the last message taken, rather
//!   than write a later batch before an earlier one.
//! - **A stalled consumer.** The pull requests ask for idle heartbeats;
//!   when neither messages nor heartbeats arrive for three of their
//!   intervals, or the connection moved to another server, the consumer is
//!   recreated.
//! - **Slow writes.** A message still being written after a third of the
//!   ack wait is told to JetStream as in progress (`+WPI`), so it is not
//!   delivered again meanwhile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logbraid::wire::{self, Dedup, Frame, WireError};
use tokio::sync::mpsc;

use crate::nats::jetstream::{self, ConsumerSpec};
use crate::nats::proto::Message;
use crate::nats::{Client, NatsError};
use crate::output::{AckTo, Body, Delivery, OutputHandle};

/// The consumer's name when none is given.
pub const DEFAULT_CONSUMER: &str = "logbraid-writer";

/// The ack wait when none is given.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// Messages asked for by one pull request.
const PULL_BATCH: usize = 256;

/// How long a pull request waits for messages.
const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// Idle heartbeats of a waiting pull request.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Messages taken and not yet written, at most: the output stage's byte
/// budget slows the writer before that.
const MAX_IN_FLIGHT: usize = 4096;

/// How a writer consumes.
#[derive(Clone, Debug)]
pub struct ConsumeConfig {
    /// `nats://host:port` of servers of the cluster.
    pub servers: Vec<String>,
    /// The stream.
    pub stream: String,
    /// The durable consumer's name.
    pub consumer: String,
    /// Only these subjects (several writers split a stream this way).
    pub filter: Option<String>,
    /// How long JetStream waits for an acknowledgement before delivering
    /// again.
    pub ack_wait: Duration,
    /// Where the position is kept (beside the checkpoint).
    pub position_path: PathBuf,
    /// fsync the position file (with `--sync data`).
    pub sync: bool,
}

/// Counters of a writer, for its metrics: exact, relaxed atomics.
#[derive(Debug, Default)]
pub struct ConsumeStats {
    /// Messages taken from the stream (deliveries, redeliveries included).
    pub received: AtomicU64,
    /// Messages written and acknowledged.
    pub acked: AtomicU64,
    /// Messages taken and not yet written (pending acks).
    pub pending: AtomicU64,
    /// Messages left in the stream for the consumer after the last one
    /// taken: the consumer's lag.
    pub lag: AtomicU64,
    /// Stream sequence number of the last message written in order.
    pub position: AtomicU64,
    /// Times the consumer was created (1 at start; each further one after
    /// a stall, a reconnect, or a lost delivery).
    pub consumers: AtomicU64,
    /// Messages that were not a logbraid batch, acknowledged and skipped.
    pub malformed: AtomicU64,
    /// Batches that began past the client's last record: records lost
    /// before the stream (older than its duplicate window, or deleted).
    pub gaps: AtomicU64,
}

/// Why the writer could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumeError {
    /// NATS could not be reached or refused.
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// The position file could not be read or written.
    #[error("{path}: {source}")]
    Position {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The position file's value: 0 when there is none.
pub fn read_position(path: &Path) -> Result<u64, ConsumeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map_err(|_| ConsumeError::Position {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a stream sequence number: {:?}", text.trim()),
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(ConsumeError::Position {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn write_position(path: &Path, seq: u64, sync: bool) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        writeln!(f, "{seq}")?;
        if sync {
            f.sync_data()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if sync {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

/// A batch taken from a message.
#[derive(Debug)]
struct Taken {
    key: Box<str>,
    epoch: u64,
    source: Arc<logbraid::Source>,
    frame: Vec<u8>,
    first: u64,
    count: u32,
}

/// Reads a message's payload: a `HELLO`, then one `BATCH` frame, each
/// checked whole.
fn take(payload: &[u8]) -> Result<Taken, String> {
    let max = payload.len().max(wire::DEFAULT_MAX_FRAME);
    let wire_err = |e: WireError| e.to_string();
    let n = wire::frame_len(payload, max)
        .map_err(wire_err)?
        .ok_or("a message cut short")?;
    let Some(hello_bytes) = payload.get(..n) else {
        return Err("a message cut short".into());
    };
    let Frame::Hello(h) = wire::decode(hello_bytes).map_err(wire_err)? else {
        return Err("a message that does not begin with HELLO".into());
    };
    let frame = &payload[n..];
    if wire::frame_len(frame, max).map_err(wire_err)? != Some(frame.len()) {
        return Err("a message whose BATCH is not one whole frame".into());
    }
    let Frame::Batch(b) = wire::decode(frame).map_err(wire_err)? else {
        return Err("a message whose second frame is not a BATCH".into());
    };
    let key: Box<str> = if h.token.is_empty() {
        h.client_id.into()
    } else {
        let identity = std::str::from_utf8(h.token)
            .map_err(|_| "an identity that is not UTF-8".to_string())?;
        format!("{identity}/{}", h.client_id).into()
    };
    Ok(Taken {
        key,
        epoch: h.epoch,
        source: Arc::new(h.source()),
        first: b.first_seq(),
        count: b.len(),
        frame: frame.to_vec(),
    })
}

/// A message taken and not yet written.
struct InFlight {
    reply: String,
    since: Instant,
    /// Told JetStream it is in progress last at.
    progress: Instant,
    written: bool,
}

/// The writer's loop state.
struct Writer {
    client: Client,
    spec: ConsumerSpec,
    config: ConsumeConfig,
    output: OutputHandle,
    dedup: Arc<Mutex<Dedup>>,
    stats: Arc<ConsumeStats>,
    /// Stream sequence of the last message handed to the output stage.
    handed: u64,
    /// Every message at or below it is written.
    floor: u64,
    saved_floor: u64,
    in_flight: BTreeMap<u64, InFlight>,
    done_tx: mpsc::UnboundedSender<u64>,
    done_rx: mpsc::UnboundedReceiver<u64>,
    said: Instant,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn say(what: &str) {
    eprintln!("logbraid write: {what}");
}

/// Runs a writer until `stop` completes: takes messages in order, hands
/// them to `output`, acknowledges them once written. `dedup` is the
/// output stage's table (restored from its checkpoint).
pub async fn run(
    config: ConsumeConfig,
    output: OutputHandle,
    dedup: Arc<Mutex<Dedup>>,
    stats: Arc<ConsumeStats>,
    connect_wait: Duration,
    stop: impl std::future::Future,
) -> Result<(), ConsumeError> {
    let position = read_position(&config.position_path)?;
    let client = Client::start(&config.servers, "logbraid-write")?;
    client.connected(connect_wait).await?;
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let spec = ConsumerSpec {
        stream: config.stream.clone(),
        name: config.consumer.clone(),
        filter: config.filter.clone(),
        start: None,
        ack_wait: config.ack_wait,
        max_ack_pending: MAX_IN_FLIGHT * 2,
    };
    stats.position.store(position, Ordering::Relaxed);
    let mut w = Writer {
        client,
        spec,
        config,
        output,
        dedup,
        stats,
        handed: position,
        floor: position,
        saved_floor: position,
        in_flight: BTreeMap::new(),
        done_tx,
        done_rx,
        said: Instant::now() - Duration::from_secs(60),
    };
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            again = w.incarnation() => if !again { break },
        }
    }
    Ok(())
}

impl Writer {
    /// Reports at most every 10 s.
    fn report(&mut self, what: &str) {
        if self.said.elapsed() >= Duration::from_secs(10) {
            self.said = Instant::now();
            say(what);
        }
    }

    /// Creates the consumer from the message after the last one taken and
    /// consumes until it must be created again (`true`) or the output
    /// stage has stopped (`false`).
    async fn incarnation(&mut self) -> bool {
        self.spec.start = (self.handed > 0).then_some(self.handed + 1);
        let mut backoff = Duration::from_millis(100);
        loop {
            match jetstream::recreate_consumer(&self.client, &self.spec).await {
                Ok(()) => break,
                Err(e) => {
                    self.report(&format!(
                        "cannot create consumer {} on stream {}: {e}; trying again",
                        self.spec.name, self.spec.stream
                    ));
                    self.settle_written();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        self.stats.consumers.fetch_add(1, Ordering::Relaxed);
        let inbox = self.client.new_inbox();
        let Ok((sid, mut rx)) = self.client.subscribe(&inbox) else {
            return false;
        };
        let again = self.consume(&inbox, &mut rx).await;
        self.client.unsubscribe(sid);
        again
    }

    async fn consume(&mut self, inbox: &str, rx: &mut mpsc::UnboundedReceiver<Message>) -> bool {
        let mut connections = self.client.connections();
        connections.borrow_and_update();
        let mut next_cseq = 1u64;
        // Messages asked for and not yet received.
        let mut asked = 0usize;
        let mut heard = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            if asked < PULL_BATCH / 2 && self.in_flight.len() < MAX_IN_FLIGHT {
                if jetstream::pull(
                    &self.client,
                    &self.spec,
                    inbox,
                    PULL_BATCH,
                    PULL_EXPIRES,
                    HEARTBEAT,
                )
                .is_err()
                {
                    return false;
                }
                asked += PULL_BATCH;
                heard = Instant::now();
            }
            tokio::select! {
                biased;
                Some(seq) = self.done_rx.recv() => {
                    self.written(seq);
                    while let Ok(seq) = self.done_rx.try_recv() {
                        self.written(seq);
                    }
                    self.advance();
                }
                m = rx.recv() => {
                    let Some(m) = m else { return true };
                    heard = Instant::now();
                    match m.status {
                        Some(100) => continue,
                        Some(404) | Some(408) => {
                            let left = m
                                .header("Nats-Pending-Messages")
                                .and_then(|v| v.parse::<usize>().ok());
                            asked = left.map_or(0, |n| asked.saturating_sub(n));
                            continue;
                        }
                        Some(409) => {
                            let why = m.description.to_ascii_lowercase();
                            if why.contains("deleted") || why.contains("leadership") {
                                return true;
                            }
                            asked = 0;
                            continue;
                        }
                        Some(_) => return true,
                        None => {}
                    }
                    asked = asked.saturating_sub(1);
                    let Some(d) = m.reply.as_deref().and_then(jetstream::delivered) else {
                        continue;
                    };
                    if d.consumer_seq != next_cseq {
                        // A delivery never arrived: take the stream again
                        // from the last message taken, in order.
                        self.report(&format!(
                            "delivery {} of consumer {} came after {}; recreating it from \
                             stream sequence {}",
                            d.consumer_seq,
                            self.spec.name,
                            next_cseq.saturating_sub(1),
                            self.handed + 1
                        ));
                        return true;
                    }
                    next_cseq += 1;
                    self.stats.received.fetch_add(1, Ordering::Relaxed);
                    self.stats.lag.store(d.pending, Ordering::Relaxed);
                    let reply = m.reply.clone().unwrap_or_default();
                    if d.stream_seq <= self.handed {
                        // Delivered again: acknowledged now if written,
                        // else when its first delivery is.
                        if d.stream_seq <= self.floor {
                            let _ = jetstream::ack(&self.client, &reply, false);
                        }
                        continue;
                    }
                    if !self.hand_over(d.stream_seq, reply, &m.payload).await {
                        return false;
                    }
                }
                _ = connections.changed() => {
                    // Pull requests live on the server they were sent to.
                    return true;
                }
                _ = tick.tick() => {
                    self.progress();
                    if heard.elapsed() > HEARTBEAT * 3 {
                        self.report(&format!(
                            "nothing from consumer {} for {:?}; recreating it",
                            self.spec.name,
                            heard.elapsed()
                        ));
                        return true;
                    }
                }
            }
        }
    }

    /// Takes what the output stage has written meanwhile, without
    /// consuming (while the consumer cannot be created).
    fn settle_written(&mut self) {
        while let Ok(seq) = self.done_rx.try_recv() {
            self.written(seq);
        }
        self.advance();
    }

    /// Hands one message's batch to the output stage; `false` once it has
    /// stopped.
    async fn hand_over(&mut self, seq: u64, reply: String, payload: &[u8]) -> bool {
        self.handed = seq;
        let t = match take(payload) {
            Ok(t) => t,
            Err(e) => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                self.report(&format!(
                    "stream sequence {seq} is not a logbraid batch ({e}); skipped"
                ));
                let _ = jetstream::ack(&self.client, &reply, false);
                self.track(seq, reply, true);
                self.advance();
                return true;
            }
        };
        let skip = {
            let mut table = lock(&self.dedup);
            match table.admit(&t.key, t.epoch, t.first, t.count) {
                Ok(a) => a.skip,
                Err(WireError::SequenceGap { expected, first }) => {
                    self.stats.gaps.fetch_add(1, Ordering::Relaxed);
                    say(&format!(
                        "client {:?}: stream sequence {seq} begins at record {first}, \
                         {expected} was expected: records {expected} to {} never reached \
                         the stream; writing on",
                        t.key,
                        first - 1
                    ));
                    table.forget(&t.key);
                    table
                        .admit(&t.key, t.epoch, t.first, t.count)
                        .map_or(0, |a| a.skip)
                }
                Err(_) => 0,
            }
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            // Sent once written; dropped unsent when the batch's client
            // moved to a newer epoch meanwhile (written all the same).
            let _ = rx.recv().await;
            let _ = done.send(seq);
        });
        let last = t.first + u64::from(t.count) - 1;
        let delivery = Delivery {
            source: t.source,
            body: Body::Native {
                frame: t.frame,
                skip,
            },
            ack: Some(AckTo {
                client_id: t.key,
                epoch: t.epoch,
                last,
                tx,
            }),
        };
        self.track(seq, reply, false);
        self.stats.pending.fetch_add(1, Ordering::Relaxed);
        self.output.send(delivery).await
    }

    /// Counts a message taken, in stream order.
    fn track(&mut self, seq: u64, reply: String, written: bool) {
        let now = Instant::now();
        let f = InFlight {
            reply,
            since: now,
            progress: now,
            written,
        };
        self.in_flight.insert(seq, f);
    }

    /// The output stage wrote stream sequence `seq`: acknowledge it.
    fn written(&mut self, seq: u64) {
        if let Some(f) = self.in_flight.get_mut(&seq) {
            if !f.written {
                f.written = true;
                self.stats.pending.fetch_sub(1, Ordering::Relaxed);
            }
            let _ = jetstream::ack(&self.client, &f.reply, false);
            self.stats.acked.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Moves the floor past the messages written in order, and saves it.
    fn advance(&mut self) {
        while let Some(entry) = self.in_flight.first_entry() {
            if !entry.get().written {
                break;
            }
            self.floor = *entry.key();
            entry.remove();
        }
        if self.in_flight.is_empty() {
            self.floor = self.handed;
        }
        if self.floor > self.saved_floor {
            match write_position(&self.config.position_path, self.floor, self.config.sync) {
                Ok(()) => {
                    self.saved_floor = self.floor;
                    self.stats.position.store(self.floor, Ordering::Relaxed);
                }
                Err(e) => {
                    let path = self.config.position_path.display().to_string();
                    self.report(&format!("cannot save {path}: {e}"));
                }
            }
        }
    }

    /// Tells JetStream which messages are still being written.
    fn progress(&mut self) {
        let every = self.config.ack_wait / 3;
        for f in self.in_flight.values_mut() {
            if !f.written && f.progress.elapsed() >= every && f.since.elapsed() >= every {
                f.progress = Instant::now();
                let _ = jetstream::ack(&self.client, &f.reply, true);
            }
        }
    }
}

/// The position file beside a state file.
pub fn position_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".position");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(client: &str, token: &[u8], epoch: u64, first: u64, n: usize) -> Vec<u8> {
        let source = logbraid::Source {
            host: "h".into(),
            pid: 7,
            process_name: "p".into(),
        };
        let mut enc = wire::BatchEncoder::default();
        for _ in 0..n {
            let r = logbraid::Record::new(logbraid::Level::Info, "t", b"m", &source);
            assert_eq!(enc.push(&r), wire::Push::Added);
        }
        let mut frame = Vec::new();
        enc.finish(first, &mut frame).unwrap();
        let identity = std::str::from_utf8(token).ok().filter(|t| !t.is_empty());
        crate::publish::payload(client, identity, epoch, &source, &frame).unwrap()
    }

    #[test]
    fn a_message_is_a_hello_and_one_batch() {
        let t = take(&message("c", b"", 5, 10, 3)).unwrap();
        assert_eq!((&*t.key, t.epoch, t.first, t.count), ("c", 5, 10, 3));
        assert_eq!((t.source.host.as_str(), t.source.pid), ("h", 7));
        let t = take(&message("c", b"token:ab", 5, 1, 1)).unwrap();
        assert_eq!(&*t.key, "token:ab/c");
        let m = message("c", b"", 5, 10, 3);
        for bad in [&m[..5], &m[..m.len() - 1], b"junk".as_slice(), &[]] {
            assert!(take(bad).is_err());
        }
        let mut two = m.clone();
        two.extend_from_slice(&m);
        assert!(take(&two).is_err());
    }

    #[test]
    fn the_position_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = position_path(&dir.path().join(".app.log.state"));
        assert_eq!(read_position(&p).unwrap(), 0);
        write_position(&p, 42, true).unwrap();
        assert_eq!(read_position(&p).unwrap(), 42);
        std::fs::write(&p, "x\n").unwrap();
        assert!(read_position(&p).is_err());
    }
}
