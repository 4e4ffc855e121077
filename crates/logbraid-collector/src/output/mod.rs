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
//!
//! # One thread, in rounds
//!
//! A file has exactly one writer, so every sink lives on the
//! `logbraid-output` thread. It works in rounds: it takes what the
//! listeners have delivered (up to 4 MiB of it, so acknowledgements are
//! not delayed behind a flood), writes it, flushes every file once, saves
//! the checkpoint, and only then commits the batches to the [`Dedup`]
//! table and sends the acknowledgements. An acknowledgement therefore never
//! reaches a client before its records are in the file. When a flush or the
//! checkpoint fails, the round's acknowledgements (and the memory they hold)
//! wait, and the thread tries again a second later or with the next
//! delivery: listeners run out of budget and stop reading, clients keep
//! their batches, nothing is acknowledged that is not written.
//!
//! # A file that cannot be opened
//!
//! A record whose routed file cannot be opened (a directory in the way,
//! EACCES, EMFILE) is not written and not acknowledged. Its delivery waits,
//! from that record on, and so does every later delivery of the same
//! source (a native client's numbering, or the connection's source), so
//! each source's records keep their order; other sources go on. What the
//! delivery wrote before the fault is committed and acknowledged (a native
//! client resends only the rest). Waiting deliveries keep their share of
//! the byte budget, so a fault that lasts slows clients down rather than
//! growing memory; every second they are tried again, and once the file
//! opens, everything held is written once, in order, and acknowledged.
//! One rate-limited line on stderr says so; [`OutputStats::stalled`] and
//! [`OutputStats::held`] count it. In the merge window, the record that
//! cannot be written holds every later one (their order is the window's
//! point). With [`OutputConfig::fallback`], such a record goes to the
//! fallback file instead, its intended path in the field `destination`.
//! A collector stopped during a fault says what it did not write: native
//! batches stay unacknowledged and are resent; Python and syslog records
//! (their senders resend nothing) are counted in [`OutputStats::lost`].
//!
//! # Routing
//!
//! With [`OutputConfig::route`] each record goes to the file its template
//! names (`{host}`, `{program}`, `{pid}`, `{logger}`), opened on first use;
//! at most 256 are open at once, the least recently used is flushed and
//! closed. Values come from clients and are untrusted: separators, NUL and
//! control characters become `_`, leading dots become `_` (so no value is
//! `.` or `..`), and each value is cut to 200 bytes, so a record can only
//! land below the directory the template starts with.
//!
//! # Files chosen by clients
//!
//! With [`OutputConfig::client_files`], a Python record that names a file
//! (see [`client_files`]) goes to that file below the directory given,
//! opened on first use like a routed file (the least recently written
//! closed beyond [`ClientFiles::max_open`]), with the rotation and the
//! `logging.Formatter` format it asks for, within the caps set. A request
//! refused (a name outside the directory, a `..`, a symbolic link, a format
//! that does not compile, a file that does not open) is counted in
//! [`OutputStats::client_files_refused`], said on stderr (rate-limited), and
//! its record written where it would have gone without one. The keys of the
//! request are never written.
//!
//! # Exactly once across a crash of the collector
//!
//! With [`OutputConfig::state_path`], the checkpoint saved before each
//! round's acknowledgements holds each client id's epoch and highest
//! written sequence number, and each file's path, device, inode and
//! flushed length. If the collector dies (SIGKILL, OOM killer, a panic),
//! [`Output::start`] reads it back: it restores the table, so the
//! `WELCOME` tells each client where to resume, and cuts every file back to
//! its recorded length. The bytes cut off were written after the last
//! checkpoint, were never acknowledged, and their clients resend them; the
//! resent records are then written once. So every acknowledged record is in
//! the files exactly once, and every record a client flushed is written
//! exactly once in the end.
//!
//! A file that rotated after the checkpoint is found again among its
//! uncompressed backups by its inode and cut back there; the files rotated
//! after it and the new active file are emptied. Rotation is the one
//! limit: if the collector dies after a rotation and before the next
//! checkpoint, and in that moment the rotated file was already compressed
//! (or deleted by retention), it cannot be cut, and the records written to
//! it after the checkpoint may appear twice (once more for each such
//! death they outlive unacknowledged); start-up says so on stderr.
//! To keep that window to one delivery, a write that rotates a file ends
//! the round at once (flush, checkpoint, acknowledgements).
//!
//! Also out of reach by design: records of protocols without
//! acknowledgements (Python pickles, syslog) that were flushed in the
//! instant between a round's flush and its checkpoint, which are cut off
//! with the rest and not resent by their senders.
//!
//! # What an acknowledgement promises
//!
//! With [`SyncMode::None`] (the default) a round's records are written to
//! their files (the page cache) and the checkpoint saved before its
//! acknowledgements: they survive the collector dying, not a power loss or
//! a kernel crash. With [`SyncMode::Data`] every file written in the round
//! is fdatasynced once (not once per record), and so is the checkpoint (a
//! temporary file, synced, renamed over the old one, then the directory
//! synced), before the acknowledgements; a rotation syncs the file before
//! renaming it and the directory after, and a SIGHUP's reopen syncs the
//! file it lets go. An acknowledged record then survives a power loss too.
//! A compressed backup replaces its uncompressed original only once its
//! data and its name are synced (the file, then the directory).
//!
//! # Reopening (SIGHUP)
//!
//! [`OutputHandle::reopen`] ends the round in progress and closes and opens
//! again every file, so an external rotation (move, then signal) finds
//! every record received before the signal in the moved file or the new
//! one, and every record received after it in the new one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logbraid::layout::LayoutSpec;
use logbraid::wire::Dedup;
use logbraid::{Compression, Every, OwnedRecord, Source, SyncMode};

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
    /// Permissions of the files created ([`DEFAULT_FILE_MODE`]); routed
    /// directories are created 0750.
    pub mode: u32,
    /// Whether a symbolic link in a log file's place is followed. `false`
    /// for `logbraid serve`: files are opened with `O_NOFOLLOW`, so nobody
    /// who can write in the directory redirects the records (tests that
    /// stand a link to `/dev/full` in for a full disk say `true`).
    pub follow_links: bool,
}

/// The permissions of the collector's files when none are given: its user
/// reads and writes, its group reads.
pub const DEFAULT_FILE_MODE: u32 = 0o640;

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
    /// With a route: where a record goes when its own file cannot be
    /// opened, with the path it was meant for in its `destination` field.
    /// `None`: such records wait (unacknowledged) until their file opens.
    pub fallback: Option<PathBuf>,
    /// [`SyncMode::Data`]: every file written in a round, and the
    /// checkpoint, are fdatasynced before the round's acknowledgements,
    /// and rotations sync the file before its rename and the directory
    /// after, so an acknowledged record survives a power loss.
    /// [`SyncMode::None`]: it survives the collector dying, not the
    /// machine.
    pub sync: SyncMode,
    /// Where records that name their own file go (`None`: the request
    /// keys are fields like any other, and records go where they would).
    pub client_files: Option<ClientFiles>,
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

impl AckTo {
    /// Where to report that a delivery of records without numbering (an
    /// OTLP request) is written: `tx` receives 0 once the round that wrote
    /// them is flushed and checkpointed, as a native batch's
    /// acknowledgement would be. Nothing is committed to the [`Dedup`]
    /// table for it.
    pub fn unnumbered(tx: tokio::sync::mpsc::UnboundedSender<u64>) -> AckTo {
        AckTo {
            client_id: Box::from(""),
            epoch: 0,
            last: 0,
            tx,
        }
    }

    /// Whether it reports a native batch (client id and sequence number),
    /// rather than being [`unnumbered`](AckTo::unnumbered).
    pub fn is_numbered(&self) -> bool {
        !self.client_id.is_empty()
    }
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
    /// Records decoded from another format, one by one (OpenTelemetry).
    Records(Vec<OwnedRecord>),
    /// Records decoded from another format, packed (Python pickles and
    /// syslog, over streams and datagrams).
    Batch(RecordBatch),
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
    /// What holding this delivery's records in the merge window costs
    /// beyond [`weight`](Self::weight): the entry of each record in the
    /// window, and for a native frame the [`OwnedRecord`] each record is
    /// decoded into (its text is in the frame's length already). Counted
    /// only when the output stage has a merge window.
    pub fn held_weight(&self) -> usize {
        let held = std::mem::size_of::<merge::Held>();
        match &self.body {
            Body::Native { frame, skip } => {
                // The record count, at bytes 14 to 17 of a BATCH frame.
                let count = frame
                    .get(14..18)
                    .map_or(0, |c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                count.saturating_sub(*skip) as usize * (held + RECORD_OVERHEAD)
            }
            Body::Records(rs) => rs.len() * held,
            // Each is copied out of the batch into an [`OwnedRecord`].
            Body::Batch(b) => b.len() * (held + RECORD_OVERHEAD),
        }
    }

    /// The bytes this delivery counts against
    /// [`OutputConfig::max_pending_bytes`]: a native frame's length (its
    /// records are read from it), or for decoded records every byte each
    /// holds — message, target, module, file, function, thread name,
    /// fields, and its source's host and process name (counted with each
    /// record, shared or not) — plus [`RECORD_OVERHEAD`] for the record
    /// itself and its allocations; for a packed batch,
    /// [`RecordBatch::weight`] and [`RecordBatch::spare`].
    pub fn weight(&self) -> usize {
        match &self.body {
            Body::Native { frame, .. } => frame.len(),
            Body::Records(rs) => rs.iter().map(record_weight).sum(),
            // Its room not yet used is memory held all the same.
            Body::Batch(b) => b.weight() + b.spare(),
        }
    }
}

/// What a decoded record costs beyond its text: the record itself and the
/// bookkeeping of its allocations.
pub const RECORD_OVERHEAD: usize = std::mem::size_of::<OwnedRecord>() + 8 * 16;

/// The bytes one decoded record holds (see [`Delivery::weight`]).
pub fn record_weight(r: &OwnedRecord) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    RECORD_OVERHEAD
        + r.message.len()
        + r.target.len()
        + opt(&r.module)
        + opt(&r.file)
        + opt(&r.function)
        + opt(&r.thread_name)
        + r.fields.as_bytes().len()
        + crate::intake::SourceCache::cost(&r.source)
}

impl Delivery {}

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
    /// Native deliveries skipped because their frame did not decode (it
    /// should have been validated before it was handed over).
    pub undecodable: u64,
    /// Deliveries that had to wait because a file of theirs could not be
    /// opened or written: each is held (with every later delivery of its
    /// source) and tried again every second until it is written.
    pub stalled: u64,
    /// Records waiting now for a file that could not be opened or written.
    pub held: u64,
    /// Records written to [`OutputConfig::fallback`] because their own
    /// file could not be opened.
    pub diverted: u64,
    /// fdatasyncs of log files (with [`SyncMode::Data`]): at most one per
    /// file written in a round, whatever the number of records.
    pub syncs: u64,
    /// Rounds whose flush (or sync) or checkpoint failed: their records
    /// stay buffered and their acknowledgements wait for a later round.
    pub failed_rounds: u64,
    /// Records that were still waiting for their file when the collector
    /// stopped: native clients resend theirs (they were never
    /// acknowledged); Python and syslog records are lost, and counted here.
    pub lost: u64,
    /// Checkpoints saved (with [`OutputConfig::state_path`]).
    pub checkpoints: u64,
    /// Records whose file request was refused (with
    /// [`OutputConfig::client_files`]): each was written where it would
    /// have gone without one.
    pub client_files_refused: u64,
    /// Native batches acknowledged (the acknowledgement handed to the
    /// batch's connection once the round holding it was written).
    pub acks: u64,
    /// Rotations of the output files.
    pub rotations: u64,
    /// Files open at the end of the last round.
    pub files_open: u64,
    /// Rotated files waiting for (or in) compression at the end of the
    /// last round.
    pub compress_backlog: u64,
    /// Nanoseconds listeners spent waiting for room in
    /// [`OutputConfig::max_pending_bytes`].
    pub budget_wait_ns: u64,
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
    /// A record could not be put into its file.
    #[error("cannot write {path}: {source}")]
    Write {
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
    /// Another collector holds the lock of this state file (and so writes
    /// these log files).
    #[error(
        "another collector{} is using {path} and its log files; stop it or choose another file",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked {
        /// The state file.
        path: PathBuf,
        /// The other collector's pid, as its lock file says.
        pid: Option<u32>,
    },
    /// The route template is not valid.
    #[error("route: {0}")]
    Route(String),
    /// The output thread could not start.
    #[error("cannot start the output thread: {0}")]
    Thread(#[source] std::io::Error),
}

mod batch;
pub mod client_files;
mod files;
mod merge;
mod pending;
mod stage;
mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use prometheus_client::metrics::histogram::Histogram;

pub use batch::RecordBatch;
pub use client_files::ClientFiles;
use files::{report, Files, Route};
pub use pending::Pending;
use stage::Stage;

/// Weight taken into one round before it is written, flushed and
/// acknowledged: large enough for one flush to carry many batches, small
/// enough that acknowledgements follow their records closely.
const ROUND_BYTES: usize = 4 << 20;

/// How soon a failed flush or checkpoint is tried again when nothing new
/// arrives.
const RETRY: Duration = Duration::from_secs(1);

enum Msg {
    /// A delivery and the permits it holds.
    Deliver(Delivery, u32),
    /// Close and open again every file, between two rounds.
    Reopen,
    Stop,
}

/// Checks a route template as [`Output::start`] does, so configuration can
/// be rejected before anything starts. The error is the reason, without
/// the `--route:` prefix of [`OutputError::Route`].
pub fn check_route(template: &str) -> Result<(), String> {
    match Route::parse(template) {
        Ok(_) => Ok(()),
        Err(OutputError::Route(reason)) => Err(reason),
        Err(other) => Err(other.to_string()),
    }
}

/// Hands deliveries to the output thread. Cheap to clone.
#[derive(Clone, Debug)]
pub struct OutputHandle {
    tx: mpsc::Sender<Msg>,
    /// [`OutputConfig::max_pending_bytes`]: what is queued, being written
    /// or held.
    pending: Arc<Pending>,
    /// With a merge window, records are held one by one, each in a
    /// [`merge::Held`] (a native frame's decoded into an [`OwnedRecord`]):
    /// what that costs is counted too.
    merging: bool,
}

impl OutputHandle {
    /// Queues a delivery, waiting while the pending bytes are at the limit.
    /// Returns `false` when the output stage has stopped.
    ///
    /// A delivery heavier than the whole limit takes all of it (and waits
    /// until everything else is written), so it cannot wait forever.
    pub async fn send(&self, delivery: Delivery) -> bool {
        let mut weight = delivery.weight();
        if self.merging {
            weight += delivery.held_weight();
        }
        let Some(n) = self.pending.take(weight).await else {
            return false;
        };
        if self.tx.send(Msg::Deliver(delivery, n)).is_err() {
            self.pending.give_back(n as usize);
            return false;
        }
        true
    }

    /// Asks the output thread to close and reopen every file once what it
    /// has taken so far is written, flushed and acknowledged: what
    /// `logrotate` expects after moving the files away (SIGHUP). Records
    /// sent after this call go to the files opened anew. Returns `false`
    /// when the output stage has stopped.
    pub fn reopen(&self) -> bool {
        self.tx.send(Msg::Reopen).is_ok()
    }
}

#[derive(Debug)]
struct Counters {
    written: AtomicU64,
    deliveries: AtomicU64,
    bytes: AtomicU64,
    undecodable: AtomicU64,
    stalled: AtomicU64,
    held: AtomicU64,
    diverted: AtomicU64,
    syncs: AtomicU64,
    failed_rounds: AtomicU64,
    lost: AtomicU64,
    checkpoints: AtomicU64,
    client_files_refused: AtomicU64,
    acks: AtomicU64,
    rotations: AtomicU64,
    files_open: AtomicU64,
    compress_backlog: AtomicU64,
    /// Seconds each write of a file's buffer took (the `write` calls of a
    /// flush).
    write_latency: Histogram,
    /// Seconds each fdatasync of a file took (with [`SyncMode::Data`]).
    sync_latency: Histogram,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            written: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            undecodable: AtomicU64::new(0),
            stalled: AtomicU64::new(0),
            held: AtomicU64::new(0),
            diverted: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            failed_rounds: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            client_files_refused: AtomicU64::new(0),
            acks: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
            files_open: AtomicU64::new(0),
            compress_backlog: AtomicU64::new(0),
            write_latency: Histogram::new(crate::metrics::latency_buckets()),
            sync_latency: Histogram::new(crate::metrics::latency_buckets()),
        }
    }
}

/// A view of a running output stage for metrics and health checks: its
/// counters, what it holds, and whether it is making progress. Cheap to
/// clone; it stays valid after the stage stops.
#[derive(Clone, Debug)]
pub struct OutputWatch {
    counters: Arc<Counters>,
    pending: Arc<Pending>,
    /// [`OutputConfig::merge_window`]: records wait this long by design.
    window: Duration,
}

impl OutputWatch {
    /// The counters so far.
    pub fn stats(&self) -> OutputStats {
        let c = &self.counters;
        OutputStats {
            written: c.written.load(Ordering::Relaxed),
            deliveries: c.deliveries.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            undecodable: c.undecodable.load(Ordering::Relaxed),
            stalled: c.stalled.load(Ordering::Relaxed),
            held: c.held.load(Ordering::Relaxed),
            diverted: c.diverted.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            failed_rounds: c.failed_rounds.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            client_files_refused: c.client_files_refused.load(Ordering::Relaxed),
            acks: c.acks.load(Ordering::Relaxed),
            rotations: c.rotations.load(Ordering::Relaxed),
            files_open: c.files_open.load(Ordering::Relaxed),
            compress_backlog: c.compress_backlog.load(Ordering::Relaxed),
            budget_wait_ns: u64::try_from(self.pending.waited().as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Bytes of deliveries queued, being written or held (waiting for a
    /// file, or in the merge window), out of
    /// [`OutputConfig::max_pending_bytes`].
    pub fn pending_bytes(&self) -> usize {
        self.pending.bytes()
    }

    /// [`OutputConfig::max_pending_bytes`].
    pub fn limit(&self) -> usize {
        self.pending.limit()
    }

    /// Whether the budget is full: everything of it is pending, or a
    /// listener waits for room (and reads nothing meanwhile).
    pub fn full(&self) -> bool {
        self.pending.full()
    }

    /// How long records have been waiting with no round written, beyond
    /// the merge window they wait in by design; `None` while nothing
    /// waits (an idle stage is not a stuck one).
    pub fn stuck_for(&self) -> Option<Duration> {
        self.pending.stuck_for(self.window)
    }

    /// The budget of what is queued, being written or held.
    pub fn pending(&self) -> &Arc<Pending> {
        &self.pending
    }

    /// Seconds each write of a file's buffer took.
    pub fn write_latency(&self) -> &Histogram {
        &self.counters.write_latency
    }

    /// Seconds each fdatasync of a file took.
    pub fn sync_latency(&self) -> &Histogram {
        &self.counters.sync_latency
    }
}

/// The running output stage.
#[derive(Debug)]
pub struct Output {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    watch: OutputWatch,
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
        // The template first: a typo must not cost a recovery.
        let route = config.route.as_deref().map(Route::parse).transpose()?;
        // One collector per state file: recovery cuts files back, which
        // must never happen under a live collector.
        let lock = config.state_path.as_deref().map(state::lock).transpose()?;
        let mut files = {
            let mut d = dedup.lock().unwrap_or_else(|e| e.into_inner());
            let state = match &config.state_path {
                Some(path) => Some((path.as_path(), state::recover(path, &mut d)?)),
                None => None,
            };
            Files::new(
                &config.file,
                route,
                config.fallback.as_deref(),
                state,
                config.sync,
                config.client_files.clone(),
                d.iter(),
            )?
        };
        let pending = Arc::new(Pending::new(config.max_pending_bytes));
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::new());
        files.latency = files::Latency {
            write: Some(counters.write_latency.clone()),
            sync: Some(counters.sync_latency.clone()),
        };
        counters
            .checkpoints
            .store(files.checkpoints(), Ordering::Relaxed);
        counters
            .files_open
            .store(files.open_count() as u64, Ordering::Relaxed);
        let mut stage = Stage::new(
            rx,
            files,
            dedup,
            Arc::clone(&pending),
            config.merge_window,
            Arc::clone(&counters),
        );
        let thread = std::thread::Builder::new()
            .name("logbraid-output".into())
            .spawn(move || {
                stage.run();
                // Released once the last checkpoint is saved and the files
                // are finished.
                drop(lock);
            })
            .map_err(OutputError::Thread)?;
        let handle = OutputHandle {
            tx: tx.clone(),
            pending: Arc::clone(&pending),
            merging: config.merge_window.is_some(),
        };
        let watch = OutputWatch {
            counters,
            pending,
            window: config.merge_window.unwrap_or_default(),
        };
        Ok((
            Output {
                tx,
                thread: Some(thread),
                watch,
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
        // Senders waiting for room, and any later send, get `false`; what
        // was sent before is written.
        self.watch.pending.close();
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                report("the output thread panicked");
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> OutputStats {
        self.watch.stats()
    }

    /// A view of the stage for metrics and health checks.
    pub fn watch(&self) -> OutputWatch {
        self.watch.clone()
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logbraid::{FieldsBuf, Level};

    #[test]
    fn a_decoded_record_weighs_every_string_it_holds() {
        let source = Arc::new(Source {
            host: "h".repeat(1000),
            pid: 1,
            process_name: "p".repeat(2000),
        });
        let mut fields = FieldsBuf::new();
        fields.push_str("k", "v");
        let mut r = OwnedRecord::new(Level::Info, "target", b"message", Arc::clone(&source))
            .with_fields(fields);
        let bare = record_weight(&r);
        assert_eq!(
            bare,
            RECORD_OVERHEAD
                + "message".len()
                + "target".len()
                + r.fields.as_bytes().len()
                + 3000
                + crate::intake::SourceCache::ENTRY_OVERHEAD
        );
        r.module = Some("m".repeat(10));
        r.file = Some("f".repeat(20));
        r.function = Some("g".repeat(30));
        r.thread_name = Some("t".repeat(40));
        assert_eq!(record_weight(&r), bare + 100);
        let d = Delivery {
            source,
            body: Body::Records(vec![r]),
            ack: None,
        };
        assert_eq!(d.weight(), bare + 100);
        let held = std::mem::size_of::<merge::Held>();
        assert_eq!(d.held_weight(), held);
    }

    #[test]
    fn a_packed_batch_weighs_its_records_and_the_room_it_holds() {
        let source = Arc::new(Source {
            host: "h".into(),
            pid: 1,
            process_name: "p".into(),
        });
        let mut first = RecordBatch::new();
        let r = logbraid::Record::new(Level::Info, "target", b"message", &source);
        for _ in 0..8 {
            first.push(&r, &source);
        }
        let mut b = RecordBatch::with_room_of(&first);
        b.push(&r, &source);
        assert!(b.spare() > 0);
        let d = Delivery {
            source,
            body: Body::Batch(b),
            ack: None,
        };
        let Body::Batch(b) = &d.body else {
            unreachable!()
        };
        assert_eq!(d.weight(), b.weight() + b.spare());
        let held = std::mem::size_of::<merge::Held>();
        assert_eq!(d.held_weight(), held + RECORD_OVERHEAD);
    }

    #[test]
    fn native_records_held_in_the_merge_window_weigh_what_they_become() {
        let source = Arc::new(Source {
            host: "h".into(),
            pid: 1,
            process_name: "p".into(),
        });
        let mut enc = logbraid::wire::BatchEncoder::default();
        for _ in 0..10 {
            let r = logbraid::Record::new(Level::Info, "t", b"m", &source).with_thread_id(1);
            assert_eq!(enc.push(&r), logbraid::wire::Push::Added);
        }
        let mut frame = Vec::new();
        enc.finish(1, &mut frame).unwrap();
        let d = Delivery {
            source,
            body: Body::Native { frame, skip: 3 },
            ack: None,
        };
        let held = std::mem::size_of::<merge::Held>();
        assert_eq!(d.held_weight(), 7 * (held + RECORD_OVERHEAD));
    }
}
