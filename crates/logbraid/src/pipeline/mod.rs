//! The pipeline: from the logging call to the sinks.
//!
//! In non-blocking mode each logging thread owns a [`ring::Ring`] per
//! pipeline. The caller encodes the record (its message already formatted,
//! or for logbraid's own macros the raw values the writer formats, see
//! [`crate::macros`]) into its ring and returns; the writer thread claims entries from every
//! ring, merges them by timestamp, hands each record to the sinks, and
//! flushes the sinks once per batch. In synchronous mode, or after the writer
//! stopped, the caller writes to the sinks itself under a lock.

mod caller_thread;
mod entry;
mod lifecycle;
mod produce;
mod ring;
mod sinks;
mod sync;
#[cfg(all(test, not(loom)))]
mod tests;
mod tsc;
mod writer;

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::clock::Clock;
use crate::level::Level;
use crate::options::Overflow;
use crate::record::{FieldsBuf, Record, Source};

pub use caller_thread::{name_thread, set_thread_id};
pub(crate) use lifecycle::flush_all;
pub(crate) use ring::Slot;
use ring::{ProducerPos, Ring};
pub use sinks::SinkSet;

pub use crate::options::Mode;

/// Where a call comes from: everything about a record but its time,
/// message and fields.
#[derive(Clone, Copy, Debug)]
pub struct Callsite<'a> {
    /// Severity.
    pub level: Level,
    /// Target or logger name.
    pub target: &'a str,
    /// Module path.
    pub module: Option<&'a str>,
    /// Source file.
    pub file: Option<&'a str>,
    /// Line in the file.
    pub line: Option<u32>,
    /// Function name.
    pub function: Option<&'a str>,
}

impl<'a> Callsite<'a> {
    /// A call site with only a level and a target.
    pub fn new(level: Level, target: &'a str) -> Self {
        Callsite {
            level,
            target,
            module: None,
            file: None,
            line: None,
            function: None,
        }
    }
}

/// Where records received from other processes enter a pipeline: what an
/// embedded collector needs of it, and nothing of the logger above it (no
/// filter, no collector of its own). Get one from a `Logger` with
/// `Logger::inlet` or `From`.
#[derive(Clone, Debug)]
pub struct Inlet {
    shared: Arc<Shared>,
}

impl Inlet {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Inlet { shared }
    }

    /// Logs a record received from another process, keeping its time,
    /// thread and `source`. No filter is consulted.
    pub fn log_record(&self, record: &Record<'_>, source: &Arc<Source>) {
        self.shared.log_foreign(record, source);
    }

    /// Returns once every record logged before the call has been written.
    pub fn flush(&self) {
        self.shared.flush();
    }
}

/// Counters of a pipeline, read with [`crate::Logger::stats`].
///
/// Once [`crate::Logger::flush`] has returned and nothing logs meanwhile,
/// `written + dropped == logged` exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Records that passed the filter and were handed to the pipeline.
    pub logged: u64,
    /// Records handed to the sinks.
    pub written: u64,
    /// Records discarded by a lossy overflow policy.
    pub dropped: u64,
    /// Bytes the sinks produced.
    pub bytes_written: u64,
    /// Most bytes seen queued in one thread's ring.
    pub queue_high_water: u64,
    /// Failed sink writes (each reported on stderr, rate limited).
    pub write_errors: u64,
    /// Times a caller found its queue full and waited (`Block`) or dropped.
    pub full_waits: u64,
    /// Rotations of the pipeline's files (as of the last flush).
    pub rotations: u64,
    /// Records a collector acknowledged to the forwarding sinks (as of
    /// the last flush).
    pub forward_acked: u64,
    /// Batches the forwarding sinks sent again after a reconnect (as of
    /// the last flush).
    pub forward_resent: u64,
    /// The writes of the sinks' buffers (one per sink a flush).
    pub write_latency: LatencySummary,
    /// The syncs of the sinks (with `sync`).
    pub sync_latency: LatencySummary,
}

/// How long an operation took, over every time it was done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LatencySummary {
    /// Times it was done.
    pub count: u64,
    /// Their durations added up.
    pub total: Duration,
    /// The longest.
    pub max: Duration,
}

pub(crate) struct Settings {
    pub(crate) mode: Mode,
    pub(crate) ring_bytes: usize,
    pub(crate) overflow: Overflow,
    pub(crate) flush_sync: bool,
    pub(crate) clock: Option<Arc<dyn Clock>>,
    pub(crate) wait_hook: Option<WaitHook>,
    /// Flush on SIGTERM, SIGINT and SIGHUP left at their default action,
    /// for at most this long; `None`: leave the signals alone.
    pub(crate) signals: Option<Duration>,
}

/// Runs a caller's wait for room in a full queue (see
/// `Builder::on_full_wait`).
pub type WaitHook = fn(&mut dyn FnMut());

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Every live pipeline, so the panic hook and `atexit` can flush them all.
static LIVE: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// The lock of this module, held across a fork (see `crate::sys::fork`).
pub(crate) fn hold_for_fork(held: &mut crate::sys::fork::Held) {
    crate::sys::fork::hold(held, &LIVE);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves the data consistent
    // (counters and handles), so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct Shared {
    id: u64,
    /// `crate::sys::fork::generation()` when the pipeline started.
    fork_gen: u64,
    mode: Mode,
    ring_bytes: usize,
    overflow: Overflow,
    flush_sync: bool,
    clock: Option<Arc<dyn Clock>>,
    /// Wraps a caller's wait under `Overflow::Block`: a binding releases
    /// its interpreter lock there so other threads run meanwhile.
    wait_hook: Option<WaitHook>,
    /// Callers stamp records with TSC ticks (no clock injected, TSC usable).
    use_tsc: bool,

    rings: Mutex<Vec<Arc<Ring>>>,
    rings_gen: AtomicU64,
    /// A ring any thread can use under a lock: for re-entrant calls and
    /// threads whose local storage is gone. Its records carry their thread.
    shared_ring: Mutex<Producer>,

    writer: Mutex<Option<JoinHandle<Option<SinkSet>>>>,
    writer_thread: OnceLock<Thread>,
    /// Sinks used by the caller directly: in synchronous mode, and after the
    /// writer thread has stopped (records logged after shutdown still land).
    direct: Mutex<Option<SinkSet>>,
    stopping: AtomicBool,
    stopped: AtomicBool,
    /// A sink panicked and the writer thread ended with it.
    writer_dead: AtomicBool,

    flush_requested: AtomicU64,

    retired_logged: AtomicU64,
    retired_dropped: AtomicU64,
    direct_logged: AtomicU64,
    full_waits: AtomicU64,
    /// What the writer updates as it runs, on cache lines of its own.
    progress: CachePadded<Progress>,
    /// The sinks' timings and counters.
    meter: Arc<sinks::Meter>,
}

/// What the writer thread writes as it runs: its nap flag, its counters,
/// the flushes it has served. Kept apart from the settings every call
/// reads (`mode`, `id`, `stopped`...): on one cache line with them, each
/// write here (the writer makes several a pass, busy or idle) would take
/// the line from the callers, and a call would wait for it to come back
/// from the writer's core (measured: a burst's first call 291 ns at p90
/// instead of 70 ns).
#[derive(Default)]
struct Progress {
    sleeping: AtomicBool,
    written: AtomicU64,
    bytes_written: AtomicU64,
    high_water: AtomicUsize,
    write_errors: AtomicU64,
    flush_done: Mutex<u64>,
    flush_cv: Condvar,
}

impl Progress {
    /// Counts write errors; none is no write, so an idle writer leaves
    /// the line alone.
    fn add_errors(&self, n: u64) {
        if n > 0 {
            self.write_errors.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Says every flush up to `target` is served, and wakes the flushers.
    fn served(&self, target: u64) {
        *lock(&self.flush_done) = target;
        self.flush_cv.notify_all();
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("id", &self.id)
            .field("mode", &self.mode)
            .field("overflow", &self.overflow)
            .field("ring_bytes", &self.ring_bytes)
            .finish_non_exhaustive()
    }
}

struct Producer {
    pipeline: u64,
    ring: Arc<Ring>,
    pos: ProducerPos,
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.ring.closed.store(true, Ordering::Release);
    }
}

#[derive(Default)]
struct Local {
    producers: Vec<Producer>,
    message: Vec<u8>,
    fields: FieldsBuf,
    /// Set on the writer thread: records it would log (from a sink's own
    /// dependencies) cannot go through its own queue.
    is_writer: bool,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}
