//! The pipeline: from the logging call to the sinks.
//!
//! In non-blocking mode each logging thread owns a [`ring::Ring`] per
//! pipeline. The caller encodes the record (its message already formatted)
//! into its ring and returns; the writer thread claims entries from every
//! ring, merges them by timestamp, hands each record to the sinks, and
//! flushes the sinks once per batch. In synchronous mode, or after the writer
//! stopped, the caller writes to the sinks itself under a lock.

mod entry;
mod ring;
mod sinks;
mod sync;
mod tsc;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use crate::clock::{self, Clock};
use crate::level::Level;
use crate::options::Overflow;
use crate::record::{Fields, FieldsBuf, Record, Source};

use entry::{Batch, Parts};
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
    writer_sleeping: AtomicBool,
    /// Sinks used by the caller directly: in synchronous mode, and after the
    /// writer thread has stopped (records logged after shutdown still land).
    direct: Mutex<Option<SinkSet>>,
    stopping: AtomicBool,
    stopped: AtomicBool,
    /// A sink panicked and the writer thread ended with it.
    writer_dead: AtomicBool,

    flush_requested: AtomicU64,
    flush_done: Mutex<u64>,
    flush_cv: Condvar,

    retired_logged: AtomicU64,
    retired_dropped: AtomicU64,
    direct_logged: AtomicU64,
    written: AtomicU64,
    bytes_written: AtomicU64,
    high_water: AtomicUsize,
    write_errors: AtomicU64,
    full_waits: AtomicU64,
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
    /// The name given with [`name_thread`], which wins over the OS's.
    static THREAD_NAME: RefCell<Option<String>> = const { RefCell::new(None) };
    /// The id given with [`set_thread_id`], which wins over the OS's.
    static THREAD_ID: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Names the calling thread in the records it logs from now on, where the
/// caller's threads have names of their own that the operating system does
/// not know (a language binding: Python's `threading` names). Call it
/// before the thread's first record: a thread's queue keeps the name it
/// started with.
pub fn name_thread(name: &str) {
    THREAD_NAME.with(|n| *n.borrow_mut() = Some(name.to_string()));
}

/// Gives the calling thread the id its records carry from now on, in place
/// of the OS thread id, where the caller's threads have ids of their own (a
/// language binding: Python's `threading.get_ident()`). As with
/// [`name_thread`], call it before the thread's first record.
pub fn set_thread_id(id: u64) {
    THREAD_ID.with(|i| i.set(Some(id)));
}

/// The calling thread's name: the one given with [`name_thread`], else
/// the OS thread's.
fn thread_name() -> Option<String> {
    THREAD_NAME
        .with(|n| n.borrow().clone())
        .or_else(|| thread::current().name().map(str::to_string))
}

/// The calling thread's id: the one given with [`set_thread_id`], else
/// the OS thread's.
fn thread_id() -> u64 {
    if let Ok(Some(id)) = THREAD_ID.try_with(Cell::get) {
        return id;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions.
        (unsafe { libc::gettid() }) as u64
    }
    #[cfg(not(target_os = "linux"))]
    {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        thread_local!(static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
        ID.with(|id| *id)
    }
}

impl Shared {
    pub(crate) fn start(settings: Settings, sinks: SinkSet) -> std::io::Result<Arc<Shared>> {
        crate::sys::fork::watch();
        if let Some(limit) = settings.signals {
            crate::sys::signal::install(limit);
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let shared_ring = Arc::new(Ring::new(
            settings.ring_bytes,
            0,
            None,
            Box::new(entry::release),
        ));
        let shared = Arc::new(Shared {
            id,
            fork_gen: crate::sys::fork::generation(),
            mode: settings.mode,
            ring_bytes: settings.ring_bytes,
            overflow: settings.overflow,
            flush_sync: settings.flush_sync,
            use_tsc: settings.clock.is_none()
                && settings.mode == Mode::NonBlocking
                && tsc::available(),
            clock: settings.clock,
            wait_hook: settings.wait_hook,
            rings: Mutex::new(vec![Arc::clone(&shared_ring)]),
            rings_gen: AtomicU64::new(0),
            shared_ring: Mutex::new(Producer {
                pipeline: id,
                ring: shared_ring,
                pos: ProducerPos::default(),
            }),
            writer: Mutex::new(None),
            writer_thread: OnceLock::new(),
            writer_sleeping: AtomicBool::new(false),
            direct: Mutex::new(None),
            stopping: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            writer_dead: AtomicBool::new(false),
            flush_requested: AtomicU64::new(0),
            flush_done: Mutex::new(0),
            flush_cv: Condvar::new(),
            retired_logged: AtomicU64::new(0),
            retired_dropped: AtomicU64::new(0),
            direct_logged: AtomicU64::new(0),
            written: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            high_water: AtomicUsize::new(0),
            write_errors: AtomicU64::new(0),
            full_waits: AtomicU64::new(0),
        });
        match settings.mode {
            Mode::Sync => {
                *lock(&shared.direct) = Some(sinks);
                shared.stopped.store(true, Ordering::Release);
            }
            Mode::NonBlocking => {
                let s = Arc::clone(&shared);
                let handle = thread::Builder::new()
                    .name("logbraid-writer".into())
                    .spawn(move || {
                        let shared = Arc::clone(&s);
                        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            Writer::new(s, sinks).run()
                        }));
                        if run.is_err() {
                            shared.writer_died();
                        }
                        run.ok()
                    })?;
                let _ = shared.writer_thread.set(handle.thread().clone());
                *lock(&shared.writer) = Some(handle);
            }
        }
        let mut live = lock(&LIVE);
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&shared));
        Ok(shared)
    }

    #[inline]
    fn now(&self) -> i64 {
        match &self.clock {
            Some(c) => c.now_ns(),
            None => clock::now_ns(),
        }
    }

    /// The caller's timestamp: TSC ticks where they can be trusted and no
    /// clock was injected, nanoseconds otherwise.
    #[inline]
    fn stamp(&self) -> (i64, bool) {
        if self.use_tsc {
            (tsc::ticks() as i64, true)
        } else {
            (self.now(), false)
        }
    }

    fn wake_writer(&self) {
        if let Some(t) = self.writer_thread.get() {
            t.unpark();
        }
    }

    /// Whether this process is a fork of the one that started the
    /// pipeline. Such a pipeline has no writer: flushing and shutting it
    /// down return at once, and a record logged to it is counted as
    /// dropped (and said once on stderr).
    #[inline]
    pub(crate) fn orphaned(&self) -> bool {
        crate::sys::fork::generation() != self.fork_gen
    }

    #[cold]
    fn drop_orphaned(&self) {
        let before = self.retired_dropped.fetch_add(1, Ordering::Relaxed);
        self.retired_logged.fetch_add(1, Ordering::Relaxed);
        if before == 0 {
            let _ = writeln!(
                std::io::stderr(),
                "logbraid: pid {}: a logger started before fork() is used in the child; its records are dropped (build a new logger in the child)",
                std::process::id()
            );
        }
    }

    /// Logs one record of this process. `fill` writes the message and the
    /// fields into the buffers it is given.
    pub(crate) fn log(
        &self,
        site: &Callsite<'_>,
        fill: &mut dyn FnMut(&mut Vec<u8>, &mut FieldsBuf),
    ) {
        if self.orphaned() {
            return self.drop_orphaned();
        }
        let (stamp, is_tsc) = self.stamp();
        let handled = LOCAL.try_with(|local| match local.try_borrow_mut() {
            Ok(mut local) => {
                let local = &mut *local;
                local.message.clear();
                local.fields.clear();
                fill(&mut local.message, &mut local.fields);
                if local.is_writer {
                    // Dropped and counted: logging from inside a sink would
                    // make the writer wait for itself.
                    self.retired_logged.fetch_add(1, Ordering::Relaxed);
                    self.retired_dropped.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                let mut parts = Parts::at_site(
                    site,
                    (stamp, is_tsc),
                    &local.message,
                    local.fields.as_bytes(),
                );
                if !self.queued(&mut local.producers, &parts) {
                    if parts.tsc {
                        parts.timestamp_ns = self.now();
                        parts.tsc = false;
                    }
                    self.write_direct(&parts);
                }
                true
            }
            Err(_) => false,
        });
        if handled != Ok(true) {
            // A re-entrant call (a Display impl that logs) or a thread whose
            // local storage is gone: queue through the shared ring, which
            // carries the thread with each record.
            let mut message = Vec::new();
            let mut fields = FieldsBuf::new();
            fill(&mut message, &mut fields);
            let mut parts = Parts::at_site(site, (self.now(), false), &message, fields.as_bytes());
            let source = Source::current();
            parts.foreign = Some((thread_id(), None, &source));
            self.log_shared(&parts);
        }
    }

    fn log_shared(&self, parts: &Parts<'_>) {
        let queued = {
            let mut shared = lock(&self.shared_ring);
            !self.stopped.load(Ordering::Acquire) && self.push(&mut shared, parts)
        };
        if !queued {
            self.write_direct(parts);
        }
    }

    /// Logs a record that came from elsewhere (another process): its
    /// source and thread are kept.
    pub(crate) fn log_foreign(&self, record: &Record<'_>, source: &Arc<Source>) {
        if self.orphaned() {
            return self.drop_orphaned();
        }
        let parts = Parts {
            timestamp_ns: record.timestamp_ns,
            level: record.level,
            target: record.target,
            module: record.module,
            file: record.file,
            line: record.line,
            function: record.function,
            message: record.message,
            fields: record.fields.encoded(),
            foreign: Some((record.thread_id, record.thread_name, source)),
            tsc: false,
        };
        let handled = LOCAL.try_with(|local| match local.try_borrow_mut() {
            Ok(mut local) if !local.is_writer => {
                if !self.queued(&mut local.producers, &parts) {
                    self.write_direct(&parts);
                }
                true
            }
            _ => false,
        });
        if handled != Ok(true) {
            self.log_shared(&parts);
        }
    }

    /// Queues through this thread's ring, creating it on first use.
    /// Returns false when the record must take the direct path.
    fn queued(&self, producers: &mut Vec<Producer>, parts: &Parts<'_>) -> bool {
        if self.mode == Mode::Sync || self.stopped.load(Ordering::Acquire) {
            return false;
        }
        let idx = match producers.iter().position(|p| p.pipeline == self.id) {
            Some(i) => i,
            None => {
                // Forget rings of pipelines that no longer exist.
                producers.retain(|p| Arc::strong_count(&p.ring) > 1);
                let ring = Arc::new(Ring::new(
                    self.ring_bytes,
                    thread_id(),
                    thread_name(),
                    Box::new(entry::release),
                ));
                *lock(&ring.producer_thread) = Some(thread::current());
                lock(&self.rings).push(Arc::clone(&ring));
                self.rings_gen.fetch_add(1, Ordering::Release);
                producers.push(Producer {
                    pipeline: self.id,
                    ring,
                    pos: ProducerPos::default(),
                });
                producers.len() - 1
            }
        };
        self.push(&mut producers[idx], parts)
    }

    /// Pushes into `p`'s ring, applying the overflow policy when it is full.
    fn push(&self, p: &mut Producer, parts: &Parts<'_>) -> bool {
        let ring = &*p.ring;
        ring.counters.bump_logged();
        if parts.push(ring, &mut p.pos) {
            self.maybe_wake(ring, &mut p.pos);
            return true;
        }
        self.full_waits.fetch_add(1, Ordering::Relaxed);
        match self.overflow {
            Overflow::DropNewest => {
                ring.counters.bump_dropped();
                self.wake_writer();
                true
            }
            Overflow::DropOldest => {
                // Entries are at most a quarter of the ring, so dropping old
                // ones always makes room eventually.
                while !parts.push(ring, &mut p.pos) {
                    ring.drop_oldest(&mut p.pos);
                }
                self.wake_writer();
                true
            }
            _ => match self.wait_hook {
                None => self.block_until_pushed(ring, &mut p.pos, parts),
                Some(hook) => {
                    let mut pushed = false;
                    hook(&mut || pushed = self.block_until_pushed(ring, &mut p.pos, parts));
                    pushed
                }
            },
        }
    }

    #[inline]
    fn maybe_wake(&self, ring: &Ring, pos: &mut ProducerPos) {
        // Wake a sleeping writer once the ring is half full, so a burst does
        // not wait for the writer's idle timer. The cached head is refreshed
        // only when it says half full, so the reader's line is read about
        // once per half ring of traffic, not on every call.
        let half = ring.capacity() / 2;
        if pos.tail.wrapping_sub(pos.cached_head) > half {
            pos.cached_head = ring.head_now();
            if pos.tail.wrapping_sub(pos.cached_head) > half
                && self.writer_sleeping.load(Ordering::Relaxed)
            {
                self.wake_writer();
            }
        }
    }

    fn block_until_pushed(&self, ring: &Ring, pos: &mut ProducerPos, parts: &Parts<'_>) -> bool {
        ring.waiting.store(true, Ordering::Release);
        let mut spins = 0u32;
        let pushed = loop {
            self.wake_writer();
            if parts.push(ring, pos) {
                break true;
            }
            if self.stopped.load(Ordering::Acquire) {
                break false;
            }
            spins += 1;
            if spins < 16 {
                thread::yield_now();
            } else {
                thread::park_timeout(Duration::from_micros(200));
            }
        };
        ring.waiting.store(false, Ordering::Release);
        if !pushed {
            // The writer stopped while we waited: the caller writes directly,
            // so take back the count.
            ring.counters.unbump_logged();
        }
        pushed
    }

    /// Writes on the caller's thread: synchronous mode, and after the
    /// writer stopped.
    fn write_direct(&self, parts: &Parts<'_>) {
        self.direct_logged.fetch_add(1, Ordering::Relaxed);
        let own_name;
        let own_source;
        let (thread_id, thread_name, source) = match parts.foreign {
            Some((id, name, source)) => (id, name, &**source),
            None => {
                own_name = thread_name();
                own_source = Source::current();
                (thread_id(), own_name.as_deref(), &*own_source)
            }
        };
        let record = Record {
            timestamp_ns: parts.timestamp_ns,
            level: parts.level,
            target: parts.target,
            message: parts.message,
            module: parts.module,
            file: parts.file,
            line: parts.line,
            function: parts.function,
            thread_id,
            thread_name,
            source,
            fields: Fields::from_encoded(parts.fields),
        };
        // No sinks only when the writer thread panicked and took them with
        // it: `stats` then counts every unwritten record as dropped.
        if let Some(sinks) = lock(&self.direct).as_mut() {
            let n = sinks.write(&record);
            self.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
            self.written.fetch_add(1, Ordering::Relaxed);
            self.write_errors
                .fetch_add(sinks.flush(self.flush_sync), Ordering::Relaxed);
        }
    }

    /// Returns once every record logged before the call is written.
    pub(crate) fn flush(&self) {
        if self.orphaned() {
            return;
        }
        // The writer cannot wait for itself (a panic hook running on it).
        if LOCAL
            .try_with(|l| l.try_borrow().map(|l| l.is_writer).unwrap_or(false))
            .unwrap_or(false)
        {
            return;
        }
        if self.stopped.load(Ordering::Acquire) || self.mode == Mode::Sync {
            if let Some(s) = lock(&self.direct).as_mut() {
                self.write_errors
                    .fetch_add(s.flush_confirmed(self.flush_sync), Ordering::Relaxed);
            }
            return;
        }
        let target = self.flush_requested.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake_writer();
        let mut done = lock(&self.flush_done);
        while *done < target && !self.stopped.load(Ordering::Acquire) {
            done = self
                .flush_cv
                .wait_timeout(done, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
            // The timeout only re-checks `stopped` and wakes the writer
            // again; it never gives up on the records.
            if *done < target {
                self.wake_writer();
            }
        }
    }

    /// A sink panicked on the writer thread and took the sinks with it:
    /// stop queueing, count what can no longer be written, say so.
    fn writer_died(&self) {
        self.writer_dead.store(true, Ordering::Release);
        self.stopped.store(true, Ordering::Release);
        let st = self.stats();
        let _ = writeln!(
            std::io::stderr(),
            "logbraid: a sink panicked on the writer thread; {} queued records are lost and later records are counted as dropped",
            st.logged - st.written
        );
        *lock(&self.flush_done) = u64::MAX;
        self.flush_cv.notify_all();
        for r in lock(&self.rings).iter() {
            if let Some(t) = lock(&r.producer_thread).as_ref() {
                t.unpark();
            }
        }
    }

    /// Drains, flushes and stops the writer thread. Records logged later
    /// are written directly by the caller. Idempotent.
    pub(crate) fn shutdown(&self) {
        if self.orphaned() {
            return;
        }
        let handle = lock(&self.writer).take();
        let Some(handle) = handle else {
            self.flush();
            if let Some(s) = lock(&self.direct).as_mut() {
                self.write_errors.fetch_add(s.finish(), Ordering::Relaxed);
            }
            return;
        };
        self.stopping.store(true, Ordering::Release);
        self.wake_writer();
        let on_writer = thread::current().id() == handle.thread().id();
        if on_writer {
            return;
        }
        if let Ok(Some(sinks)) = handle.join() {
            *lock(&self.direct) = Some(sinks);
        }
        self.stopped.store(true, Ordering::Release);
        self.flush_cv.notify_all();
        // Producers blocked on a full ring see `stopped` and write directly.
        for r in lock(&self.rings).iter() {
            if let Some(t) = lock(&r.producer_thread).as_ref() {
                t.unpark();
            }
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut logged = self.retired_logged.load(Ordering::Relaxed);
        let mut dropped = self.retired_dropped.load(Ordering::Relaxed);
        for r in lock(&self.rings).iter() {
            logged += r.counters.logged.load(Ordering::Relaxed);
            dropped += r.counters.dropped.load(Ordering::Relaxed);
        }
        let logged = logged + self.direct_logged.load(Ordering::Relaxed);
        let written = self.written.load(Ordering::Relaxed);
        if self.writer_dead.load(Ordering::Acquire) {
            dropped = logged.saturating_sub(written);
        }
        Stats {
            logged,
            written,
            dropped,
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            queue_high_water: self.high_water.load(Ordering::Relaxed) as u64,
            write_errors: self.write_errors.load(Ordering::Relaxed),
            full_waits: self.full_waits.load(Ordering::Relaxed),
        }
    }

    fn dropped_total(&self, rings: &[Arc<Ring>]) -> u64 {
        self.retired_dropped.load(Ordering::Relaxed)
            + rings
                .iter()
                .map(|r| r.counters.dropped.load(Ordering::Relaxed))
                .sum::<u64>()
    }
}

/// Flushes every live pipeline: from the panic hook and at exit.
pub(crate) fn flush_all() {
    let live: Vec<_> = lock(&LIVE).iter().filter_map(Weak::upgrade).collect();
    for p in live {
        p.flush();
    }
}

/// Bytes claimed from one ring per pass: bounds the writer's scratch memory
/// and keeps the merge fair between threads.
const CLAIM_LIMIT: usize = 256 * 1024;
/// A pass that wrote fewer records than this is a trickle: the writer naps
/// for [`GATHER_FOR`] before the next one. A record then reaches the sinks
/// at most that much later; `flush` does not wait for the nap.
const GATHER_BELOW: usize = 64;
const GATHER_FOR: Duration = Duration::from_micros(200);

/// A flush being served: its number, and each ring's tail when it began.
type PendingFlush = (u64, Vec<(Arc<Ring>, usize)>);

struct Writer {
    shared: Arc<Shared>,
    sinks: SinkSet,
    rings: Vec<Arc<Ring>>,
    /// What each ring's last claim took, freed if the writer unwinds
    /// before it is written.
    scratch: Vec<Batch>,
    gen: u64,
    reported_drops: u64,
    pending_flush: Option<PendingFlush>,
    tsc: tsc::Converter,
}

impl Writer {
    fn new(shared: Arc<Shared>, sinks: SinkSet) -> Self {
        Writer {
            sinks,
            rings: Vec::new(),
            scratch: Vec::new(),
            gen: u64::MAX,
            reported_drops: 0,
            pending_flush: None,
            tsc: if shared.use_tsc {
                tsc::Converter::new()
            } else {
                tsc::Converter::identity()
            },
            shared,
        }
    }

    fn refresh_rings(&mut self) {
        let gen = self.shared.rings_gen.load(Ordering::Acquire);
        if gen != self.gen {
            self.gen = gen;
            self.rings = lock(&self.shared.rings).clone();
            self.scratch.resize_with(self.rings.len(), Batch::default);
        }
    }

    /// Forgets rings whose thread has exited and that are empty.
    fn retire_rings(&mut self) {
        let dead = |r: &Arc<Ring>| r.closed.load(Ordering::Acquire) && r.is_empty();
        if !self.rings.iter().any(dead) {
            return;
        }
        let mut all = lock(&self.shared.rings);
        all.retain(|r| {
            if dead(r) {
                self.shared
                    .retired_logged
                    .fetch_add(r.counters.logged.load(Ordering::Relaxed), Ordering::Relaxed);
                self.shared.retired_dropped.fetch_add(
                    r.counters.dropped.load(Ordering::Relaxed),
                    Ordering::Relaxed,
                );
                false
            } else {
                true
            }
        });
        self.shared.rings_gen.fetch_add(1, Ordering::Release);
    }

    /// One pass: claims from every ring, merges by timestamp, writes.
    /// Returns the number of records written.
    fn pass(&mut self) -> usize {
        if self.shared.use_tsc {
            self.tsc.refresh();
        }
        let mut high = 0;
        for (ring, batch) in self.rings.iter().zip(self.scratch.iter_mut()) {
            high = high.max(batch.claim(ring, CLAIM_LIMIT));
            if !batch.is_empty() && ring.waiting.load(Ordering::Acquire) {
                if let Some(t) = lock(&ring.producer_thread).as_ref() {
                    t.unpark();
                }
            }
        }
        self.shared.high_water.fetch_max(high, Ordering::Relaxed);
        // Read per pass: the process may name itself (set_process_name).
        let source = Source::current();
        let mut count = 0;
        let mut bytes = 0;
        loop {
            // The ring with the oldest next entry; few rings, so a scan.
            let mut best: Option<(usize, i64)> = None;
            for (i, batch) in self.scratch.iter().enumerate() {
                if let Some(ts) = batch.next_timestamp(&self.tsc) {
                    if best.is_none_or(|(_, b)| ts < b) {
                        best = Some((i, ts));
                    }
                }
            }
            let Some((i, _)) = best else { break };
            let Some(claimed) = self.scratch[i].take_next() else {
                break;
            };
            let ring = &self.rings[i];
            let rec = claimed.record(
                (ring.thread_id, ring.thread_name.as_deref()),
                &source,
                &self.tsc,
            );
            bytes += self.sinks.write(&rec);
            count += 1;
        }
        self.shared
            .written
            .fetch_add(count as u64, Ordering::Relaxed);
        self.shared
            .bytes_written
            .fetch_add(bytes as u64, Ordering::Relaxed);
        count
    }

    fn report_drops(&mut self) {
        let total = self.shared.dropped_total(&self.rings);
        if total <= self.reported_drops {
            return;
        }
        let new = total - self.reported_drops;
        self.reported_drops = total;
        let message = format!(
            "{new} records dropped: the queue was full under overflow policy {} ({total} dropped in total)",
            self.shared.overflow
        );
        let mut fields = FieldsBuf::new();
        fields.push("dropped", crate::record::Value::U64(new));
        fields.push("dropped_total", crate::record::Value::U64(total));
        let rec = Record {
            timestamp_ns: self.shared.now(),
            level: Level::Warn,
            target: "logbraid",
            message: message.as_bytes(),
            module: None,
            file: None,
            line: None,
            function: None,
            thread_id: thread_id(),
            thread_name: Some("logbraid-writer"),
            source: &Source::current(),
            fields: fields.as_fields(),
        };
        self.sinks.write(&rec);
    }

    fn flush_sinks(&mut self, sync: bool) {
        let errors = self.sinks.flush(sync);
        self.shared
            .write_errors
            .fetch_add(errors, Ordering::Relaxed);
    }

    fn run(mut self) -> SinkSet {
        let _ = LOCAL.try_with(|l| {
            if let Ok(mut l) = l.try_borrow_mut() {
                l.is_writer = true;
            }
        });
        let mut idle = 0u32;
        loop {
            let requested = self.shared.flush_requested.load(Ordering::Acquire);
            let stopping = self.shared.stopping.load(Ordering::Acquire);
            self.refresh_rings();
            if self.pending_flush.is_none() && requested > *lock(&self.shared.flush_done) {
                let marks = self
                    .rings
                    .iter()
                    .map(|r| (Arc::clone(r), r.tail_now()))
                    .collect();
                self.pending_flush = Some((requested, marks));
            }
            let n = self.pass();
            self.report_drops();
            if n > 0 {
                self.flush_sinks(false);
            }
            if let Some((target, marks)) = &self.pending_flush {
                if marks.iter().all(|(r, t)| r.consumed(*t)) {
                    let target = *target;
                    self.pending_flush = None;
                    let errors = self.sinks.flush_confirmed(self.shared.flush_sync);
                    self.shared
                        .write_errors
                        .fetch_add(errors, Ordering::Relaxed);
                    *lock(&self.shared.flush_done) = target;
                    self.shared.flush_cv.notify_all();
                    continue;
                }
            }
            if n > 0 {
                idle = 0;
                if n < GATHER_BELOW && !stopping && self.pending_flush.is_none() {
                    // A trickle: let records gather before the next pass,
                    // rather than chase the producers a few records at a
                    // time (a write system call and the rings' shared
                    // lines pulled across CPUs for every few records).
                    self.nap(GATHER_FOR, requested, false);
                }
                continue;
            }
            if stopping && self.rings.iter().all(|r| r.is_empty()) {
                self.report_drops();
                self.flush_sinks(self.shared.flush_sync);
                let errors = self.sinks.finish();
                self.shared
                    .write_errors
                    .fetch_add(errors, Ordering::Relaxed);
                *lock(&self.shared.flush_done) = u64::MAX;
                self.shared.flush_cv.notify_all();
                return self.sinks;
            }
            self.retire_rings();
            idle = idle.saturating_add(1);
            if idle < 4 {
                thread::yield_now();
                continue;
            }
            let wait =
                Duration::from_micros(50u64 << (idle - 4).min(8)).min(Duration::from_millis(10));
            self.nap(wait, requested, true);
        }
    }

    /// Sleeps for `wait` unless there is work: a stop, a flush request
    /// newer than `requested`, or (with `for_records`) a record in a ring.
    /// Producers wake a napping writer when a ring is half full, and
    /// `flush`/`shutdown` wake it at once.
    fn nap(&self, wait: Duration, requested: u64, for_records: bool) {
        self.shared.writer_sleeping.store(true, Ordering::SeqCst);
        let work = self.shared.stopping.load(Ordering::SeqCst)
            || self.shared.flush_requested.load(Ordering::SeqCst) != requested
            || (for_records && self.rings.iter().any(|r| !r.is_empty()));
        if !work {
            thread::park_timeout(wait);
        }
        self.shared.writer_sleeping.store(false, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    use super::*;
    use crate::sink::Sink;

    /// A sink that holds the writer inside the record `first` until let go,
    /// panics on the record `boom`, and counts the records of the test (not
    /// the writer's reports of drops).
    #[derive(Debug, Clone, Default)]
    struct Gate {
        held: Arc<AtomicBool>,
        open: Arc<(Mutex<bool>, Condvar)>,
        written: Arc<AtomicU64>,
    }

    impl Gate {
        /// Returns once the writer is held in `first` (a deadline, not a
        /// sleep: the writer only has to pick the record up).
        fn wait_held(&self) {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !self.held.load(Ordering::Acquire) {
                assert!(Instant::now() < deadline, "the writer never took `first`");
                thread::yield_now();
            }
        }

        fn open(&self) {
            *lock(&self.open.0) = true;
            self.open.1.notify_all();
        }
    }

    impl Sink for Gate {
        fn write(&mut self, r: &Record<'_>) -> std::io::Result<usize> {
            match r.message {
                b"first" => {
                    self.held.store(true, Ordering::Release);
                    let mut open = lock(&self.open.0);
                    while !*open {
                        open = self.open.1.wait(open).unwrap_or_else(|e| e.into_inner());
                    }
                }
                b"boom" => panic!("a sink bug"),
                _ => {}
            }
            if r.target == "remote" {
                self.written.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r.message.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn foreign<'a>(message: &'a [u8], source: &'a Source) -> Record<'a> {
        Record {
            timestamp_ns: 1,
            level: Level::Info,
            target: "remote",
            message,
            module: None,
            file: None,
            line: None,
            function: None,
            thread_id: 7,
            thread_name: Some("t"),
            source,
            fields: Fields::EMPTY,
        }
    }

    fn source() -> Arc<Source> {
        Arc::new(Source {
            host: "elsewhere".into(),
            pid: 4242,
            process_name: "remote".into(),
        })
    }

    /// Logs `first` and waits until the writer is held in it, then logs
    /// `messages` as foreign records of `source` from a thread of its own
    /// (whose ring is let go when it ends).
    fn log_behind_the_gate(
        logger: &crate::Logger,
        gate: &Gate,
        source: &Arc<Source>,
        messages: Vec<Vec<u8>>,
    ) {
        let first = Arc::new(Source::clone(source));
        logger.log_record(&foreign(b"first", &first), &first);
        gate.wait_held();
        let (logger, source) = (logger.clone(), Arc::clone(source));
        thread::spawn(move || {
            for m in &messages {
                logger.log_record(&foreign(m, &source), &source);
            }
        })
        .join()
        .unwrap();
    }

    fn build(gate: &Gate, overflow: Overflow) -> (crate::Logger, crate::Guard) {
        crate::Builder::new()
            .level("trace")
            .signals(false)
            .inherit_collector(false)
            .queue_bytes(4096)
            .overflow(overflow)
            .sink(gate.clone())
            .build()
            .unwrap()
    }

    #[test]
    fn records_dropped_oldest_and_boxed_ones_give_back_their_source() {
        let gate = Gate::default();
        let (logger, guard) = build(&gate, Overflow::DropOldest);
        let source = source();
        // 2,000 small records and every tenth one too large for the ring
        // (boxed): far more than the 4 KiB ring holds while the writer is
        // held, so most are dropped by the producer.
        let messages = (0..2_000)
            .map(|i| vec![b'x'; if i % 10 == 0 { 3_000 } else { 40 }])
            .collect();
        log_behind_the_gate(&logger, &gate, &source, messages);
        gate.open();
        logger.flush();
        let stats = logger.stats();
        drop(guard);
        drop(logger);
        assert_eq!(stats.logged, 2_001);
        assert!(stats.dropped > 1_500, "{stats:?}");
        assert_eq!(stats.written + stats.dropped, stats.logged, "{stats:?}");
        assert_eq!(
            gate.written.load(Ordering::Relaxed),
            stats.written,
            "{stats:?}"
        );
        assert_eq!(Arc::strong_count(&source), 1, "every entry let go of it");
    }

    /// Two threads drop the oldest records of their rings while the writer
    /// claims from the same rings: each record is written or dropped, and
    /// whichever side had it gave its source back once.
    #[test]
    fn producers_dropping_while_the_writer_claims_give_back_every_source() {
        let gate = Gate::default();
        gate.open();
        let (logger, guard) = build(&gate, Overflow::DropOldest);
        let source = source();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (logger, source) = (logger.clone(), Arc::clone(&source));
                thread::spawn(move || {
                    for i in 0..20_000 {
                        let m = vec![b'w'; if i % 50 == 0 { 1_500 } else { 20 + i % 90 }];
                        logger.log_record(&foreign(&m, &source), &source);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        logger.flush();
        let stats = logger.stats();
        drop(guard);
        drop(logger);
        assert_eq!(stats.logged, 40_000);
        assert_eq!(stats.written + stats.dropped, stats.logged, "{stats:?}");
        assert_eq!(gate.written.load(Ordering::Relaxed), stats.written);
        assert_eq!(Arc::strong_count(&source), 1);
    }

    #[test]
    fn a_sink_panicking_mid_batch_frees_the_records_behind_it() {
        let gate = Gate::default();
        let (logger, guard) = build(&gate, Overflow::Block);
        let source = source();
        // Behind the gate, all in the ring when the writer's next pass
        // claims them: the panic leaves 20 records claimed and not taken,
        // a few of them boxed.
        let mut messages = vec![b"boom".to_vec()];
        messages.extend((0..20).map(|i| vec![b'y'; if i % 5 == 0 { 2_000 } else { 30 }]));
        log_behind_the_gate(&logger, &gate, &source, messages);
        assert_eq!(Arc::strong_count(&source), 1 + 21, "queued records hold it");
        gate.open();
        logger.flush();
        drop(guard);
        let stats = logger.stats();
        assert_eq!((stats.logged, stats.written), (22, 1), "{stats:?}");
        assert_eq!(Arc::strong_count(&source), 1, "the unwinding writer let go");
        drop(logger);
    }
}
