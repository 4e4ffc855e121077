//! The output stage: one thread that owns every sink of the collector and
//! writes what the listeners deliver, in arrival order (or, with a merge
//! window, in timestamp order across sources), then acknowledges.
//!
//! Listeners (tokio tasks) hand over [`Delivery`]s through an
//! [`OutputHandle`]; the handle bounds in bytes what is queued or held, so
//! a listener waits (and stops reading its socket) when the sinks fall
//! behind. After a delivery is written and flushed (and the checkpoint
//! saved), its [`AckTo`] receives the client's new highest written
//! sequence number.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logbraid::layout::LayoutSpec;
use logbraid::wire::Dedup;
use logbraid::{Compression, Every, OwnedRecord, Source};

/// One output file, or with [`OutputConfig::route`] the settings of every
/// routed file.
#[derive(Clone, Debug)]
pub struct FileSpec {
    /// The active file (without routing).
    pub path: PathBuf,
    /// Line layout.
    pub layout: LayoutSpec,
    /// Size trigger, 0 for none.
    pub max_bytes: u64,
    /// Backups kept, 0 for all.
    pub backup_count: usize,
    /// Time trigger.
    pub every: Option<Every>,
    /// Compression of rotated files.
    pub compression: Compression,
}

/// How the output stage is set up.
#[derive(Clone, Debug)]
pub struct OutputConfig {
    /// The file, or the settings of routed files.
    pub file: FileSpec,
    /// `logs/{host}/{program}.log`: one rotated file per source. Values sent
    /// by clients are neutralised so they never name a path outside the
    /// template's directory.
    pub route: Option<String>,
    /// Hold records up to this long and write them in timestamp order
    /// across sources; `None` writes in arrival order.
    pub merge_window: Option<Duration>,
    /// Bytes of deliveries queued or held before listeners wait.
    pub max_pending_bytes: usize,
    /// Where the deduplication state and file positions are saved before
    /// each acknowledgement, for exactly-once across collector restarts;
    /// `None` saves nothing.
    pub state_path: Option<PathBuf>,
}

/// Where to report that a native batch is written.
#[derive(Debug)]
pub struct AckTo {
    /// The client id of the connection.
    pub client_id: Box<str>,
    /// The connection's epoch.
    pub epoch: u64,
    /// Sequence number of the batch's last record.
    pub last: u64,
    /// Receives the client's highest written sequence number (from
    /// [`Dedup::commit`]) once the batch is written.
    pub tx: tokio::sync::mpsc::UnboundedSender<u64>,
}

/// What a listener hands over.
#[derive(Debug)]
pub enum Body {
    /// A whole native `BATCH` frame, already validated with
    /// [`logbraid::wire::decode`]; the first `skip` records are left out.
    Native {
        /// The frame, length prefix included.
        frame: Vec<u8>,
        /// Leading records already written.
        skip: u32,
    },
    /// Records decoded from another format (Python pickles, syslog).
    Records(Vec<OwnedRecord>),
}

/// One unit of work for the output stage.
#[derive(Debug)]
pub struct Delivery {
    /// Host, pid and program the records are written under (native
    /// batches; decoded records carry their own).
    pub source: Arc<Source>,
    /// The records.
    pub body: Body,
    /// For native batches: who to acknowledge.
    pub ack: Option<AckTo>,
}

impl Delivery {
    /// The bytes this delivery counts against
    /// [`OutputConfig::max_pending_bytes`].
    pub fn weight(&self) -> usize {
        match &self.body {
            Body::Native { frame, .. } => frame.len(),
            Body::Records(rs) => rs
                .iter()
                .map(|r| 128 + r.message.len() + r.target.len() + r.fields.as_bytes().len())
                .sum(),
        }
    }
}

/// Counters of the output stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutputStats {
    /// Records written to the sinks.
    pub written: u64,
    /// Deliveries received.
    pub deliveries: u64,
    /// Bytes the sinks produced.
    pub bytes: u64,
}

/// Why the output stage could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// A sink could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The saved state could not be read or the files not recovered.
    #[error("cannot recover from {path}: {reason}")]
    State {
        /// The state file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The route template is not valid.
    #[error("route: {0}")]
    Route(String),
    /// The output thread could not start.
    #[error("cannot start the output thread: {0}")]
    Thread(#[source] std::io::Error),
}

mod files;
mod state;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use logbraid::wire::Frame;
use logbraid::{FieldsBuf, Record};
use tokio::sync::Semaphore;

use files::Files;

/// Checks a `--route` template; the error says what is wrong with it.
pub fn check_route(template: &str) -> Result<(), String> {
    files::Route::parse(template)
        .map(|_| ())
        .map_err(|e| match e {
            OutputError::Route(r) => r,
            other => other.to_string(),
        })
}

/// Weight drained into one round before it is flushed and acknowledged.
const ROUND_BYTES: usize = 4 << 20;

enum Msg {
    Deliver(Delivery, u32),
    Stop,
}

/// Hands deliveries to the output thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct OutputHandle {
    tx: mpsc::Sender<Msg>,
    budget: Arc<Semaphore>,
    limit: u32,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Deliver(..) => "Deliver",
            Msg::Stop => "Stop",
        })
    }
}

impl OutputHandle {
    /// Queues a delivery, waiting while the pending bytes are at the limit.
    /// Returns `false` when the output stage has stopped.
    pub async fn send(&self, delivery: Delivery) -> bool {
        let n = (delivery.weight().min(self.limit as usize) as u32).max(1);
        match self.budget.acquire_many(n).await {
            Ok(p) => p.forget(),
            Err(_) => return false,
        }
        if self.tx.send(Msg::Deliver(delivery, n)).is_err() {
            self.budget.add_permits(n as usize);
            return false;
        }
        true
    }
}

#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    deliveries: AtomicU64,
    bytes: AtomicU64,
}

/// The running output stage.
#[derive(Debug)]
pub struct Output {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    budget: Arc<Semaphore>,
}

impl Output {
    /// Recovers the saved state (truncating files past their last
    /// checkpoint), opens the sinks and starts the thread. `dedup` is the
    /// table the listeners' sessions admit batches with; the output stage
    /// restores it from the state file and commits to it.
    pub fn start(
        config: OutputConfig,
        dedup: Arc<Mutex<Dedup>>,
    ) -> Result<(Output, OutputHandle), OutputError> {
        if let Some(path) = &config.state_path {
            state::recover(path, &dedup)?;
        }
        let files = Files::new(&config.file, config.route.as_deref())?;
        let limit = config
            .max_pending_bytes
            .clamp(1 << 16, u32::MAX as usize >> 4);
        let budget = Arc::new(Semaphore::new(limit));
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let mut stage = Stage {
            rx,
            files,
            dedup,
            budget: Arc::clone(&budget),
            state_path: config.state_path,
            window: config.merge_window,
            held: HashMap::new(),
            counters: Arc::clone(&counters),
            acks: Vec::new(),
            permits: 0,
        };
        let thread = std::thread::Builder::new()
            .name("logbraid-output".into())
            .spawn(move || stage.run())
            .map_err(OutputError::Thread)?;
        let handle = OutputHandle {
            tx: tx.clone(),
            budget: Arc::clone(&budget),
            limit: limit as u32,
        };
        Ok((
            Output {
                tx,
                thread: Some(thread),
                counters,
                budget,
            },
            handle,
        ))
    }

    /// Writes everything delivered so far (holding nothing back for the
    /// merge window), flushes, saves the state, sends the last acks, waits
    /// for compression and stops the thread.
    pub fn shutdown(mut self) -> OutputStats {
        self.stop();
        self.stats()
    }

    fn stop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Listeners still waiting for room learn that the stage is gone.
        self.budget.close();
    }

    /// The counters so far.
    pub fn stats(&self) -> OutputStats {
        OutputStats {
            written: self.counters.written.load(Ordering::Relaxed),
            deliveries: self.counters.deliveries.load(Ordering::Relaxed),
            bytes: self.counters.bytes.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A record held for the merge window.
struct Held {
    record: OwnedRecord,
    arrived: Instant,
    /// On the last record of a delivery: what to acknowledge and release
    /// once it is written.
    done: Option<(Option<AckTo>, u32)>,
}

type SourceKey = (String, u32, String);

struct Stage {
    rx: mpsc::Receiver<Msg>,
    files: Files,
    dedup: Arc<Mutex<Dedup>>,
    budget: Arc<Semaphore>,
    state_path: Option<PathBuf>,
    window: Option<Duration>,
    held: HashMap<SourceKey, VecDeque<Held>>,
    counters: Arc<Counters>,
    /// Acknowledgements owed once this round is flushed.
    acks: Vec<AckTo>,
    /// Budget to give back once this round is written.
    permits: usize,
}

fn owned(r: &Record<'_>, source: &Arc<Source>) -> OwnedRecord {
    let mut fields = FieldsBuf::new();
    fields.extend_encoded(r.fields.encoded());
    OwnedRecord {
        timestamp_ns: r.timestamp_ns,
        level: r.level,
        target: r.target.to_string(),
        message: r.message.to_vec(),
        module: r.module.map(str::to_string),
        file: r.file.map(str::to_string),
        line: r.line,
        function: r.function.map(str::to_string),
        thread_id: r.thread_id,
        thread_name: r.thread_name.map(str::to_string),
        source: Arc::clone(source),
        fields,
    }
}

impl Stage {
    fn run(&mut self) {
        loop {
            let first = match self.next_expiry() {
                Some(at) => {
                    let now = Instant::now();
                    match self.rx.recv_timeout(at.saturating_duration_since(now)) {
                        Ok(m) => Some(m),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => Some(Msg::Stop),
                    }
                }
                None => Some(self.rx.recv().unwrap_or(Msg::Stop)),
            };
            let mut stop = false;
            let mut weight = 0usize;
            let mut next = first;
            while let Some(m) = next.take() {
                match m {
                    Msg::Stop => {
                        stop = true;
                        break;
                    }
                    Msg::Deliver(d, permits) => {
                        weight += permits as usize;
                        self.take(d, permits);
                    }
                }
                if weight < ROUND_BYTES {
                    next = self.rx.try_recv().ok();
                }
            }
            self.emit_held(stop);
            self.end_round();
            if stop {
                self.files.finish();
                return;
            }
        }
    }

    /// Writes a delivery now, or holds its records for the merge window.
    fn take(&mut self, d: Delivery, permits: u32) {
        self.counters.deliveries.fetch_add(1, Ordering::Relaxed);
        if self.window.is_some() {
            self.hold(d, permits);
            return;
        }
        let mut n = 0u64;
        let mut bytes = 0u64;
        match &d.body {
            Body::Native { frame, skip } => match logbraid::wire::decode(frame) {
                Ok(Frame::Batch(b)) => {
                    for r in b.records(&d.source).skip(*skip as usize) {
                        bytes += self.files.write(&r) as u64;
                        n += 1;
                    }
                }
                _ => files::report("a native frame handed to the output does not decode"),
            },
            Body::Records(rs) => {
                for r in rs {
                    bytes += self.files.write(&r.as_record()) as u64;
                    n += 1;
                }
            }
        }
        self.counters.written.fetch_add(n, Ordering::Relaxed);
        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.permits += permits as usize;
        if let Some(a) = d.ack {
            self.acks.push(a);
        }
    }

    fn hold(&mut self, d: Delivery, permits: u32) {
        let now = Instant::now();
        let records: Vec<OwnedRecord> = match d.body {
            Body::Native { frame, skip } => match logbraid::wire::decode(&frame) {
                Ok(Frame::Batch(b)) => b
                    .records(&d.source)
                    .skip(skip as usize)
                    .map(|r| owned(&r, &d.source))
                    .collect(),
                _ => {
                    files::report("a native frame handed to the output does not decode");
                    Vec::new()
                }
            },
            Body::Records(rs) => rs,
        };
        if records.is_empty() {
            // Nothing to hold: the delivery is done at once.
            self.permits += permits as usize;
            self.acks.extend(d.ack);
            return;
        }
        let mut last_key = None;
        for record in records {
            let key = (
                record.source.host.clone(),
                record.source.pid,
                record.source.process_name.clone(),
            );
            self.held.entry(key.clone()).or_default().push_back(Held {
                record,
                arrived: now,
                done: None,
            });
            last_key = Some(key);
        }
        // The delivery's last record carries its completion. A delivery's
        // records share one source (a connection's), so it sits last in
        // that queue, which is emitted in order: every earlier record of
        // the delivery is written before it.
        if let Some(h) = last_key
            .and_then(|k| self.held.get_mut(&k))
            .and_then(|q| q.back_mut())
        {
            h.done = Some((d.ack, permits));
        }
    }

    /// When the oldest held record's window ends.
    fn next_expiry(&self) -> Option<Instant> {
        let w = self.window?;
        self.held
            .values()
            .filter_map(|q| q.front())
            .map(|h| h.arrived + w)
            .min()
    }

    /// Writes held records: while some source's oldest record has been
    /// held for the whole window (or at shutdown, all of them), the one
    /// with the earliest timestamp among the sources' oldest goes out.
    fn emit_held(&mut self, all: bool) {
        let Some(w) = self.window else { return };
        let now = Instant::now();
        loop {
            let expired = all
                || self
                    .held
                    .values()
                    .filter_map(|q| q.front())
                    .any(|h| h.arrived + w <= now);
            if !expired {
                break;
            }
            let Some(key) = self
                .held
                .iter()
                .filter_map(|(k, q)| q.front().map(|h| (k, h.record.timestamp_ns)))
                .min_by_key(|(_, ts)| *ts)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            let Some(q) = self.held.get_mut(&key) else {
                break;
            };
            let Some(h) = q.pop_front() else { break };
            if q.is_empty() {
                self.held.remove(&key);
            }
            let bytes = self.files.write(&h.record.as_record());
            self.counters.written.fetch_add(1, Ordering::Relaxed);
            self.counters
                .bytes
                .fetch_add(bytes as u64, Ordering::Relaxed);
            if let Some((ack, p)) = h.done {
                self.permits += p as usize;
                self.acks.extend(ack);
            }
        }
    }

    /// Flushes, saves the checkpoint, acknowledges, gives the budget back.
    fn end_round(&mut self) {
        self.files.flush();
        let mut owed = Vec::with_capacity(self.acks.len());
        {
            let mut d = self.dedup.lock().unwrap_or_else(|e| e.into_inner());
            for a in self.acks.drain(..) {
                if let Some(w) = d.commit(&a.client_id, a.epoch, a.last) {
                    owed.push((a.tx, w));
                }
            }
            if let Some(path) = &self.state_path {
                if let Err(e) = state::save(path, &d, &self.files.positions()) {
                    files::report(&format!("cannot save {}: {e}", path.display()));
                }
            }
        }
        for (tx, w) in owed {
            let _ = tx.send(w);
        }
        if self.permits > 0 {
            self.budget.add_permits(std::mem::take(&mut self.permits));
        }
    }
}
