//! The set of sinks one pipeline writes to, with per-sink level thresholds
//! and rate-limited error reports.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::level::LevelFilter;
use crate::record::Record;
use crate::report::RateLimit;
use crate::sink::Sink;

/// Least time between two error reports of one sink on stderr.
const REPORT_EVERY: Duration = Duration::from_secs(10);

struct Entry {
    sink: Box<dyn Sink>,
    level: LevelFilter,
    reports: RateLimit,
}

/// The sinks of a pipeline, each with a level threshold; write errors are
/// counted and reported on stderr at most once per 10 seconds per sink.
/// Also used by the collector, whose output thread writes without a queue.
pub struct SinkSet {
    entries: Vec<Entry>,
    meter: Arc<Meter>,
}

/// What the pipeline's [`Stats`](super::Stats) reads of its sinks: how
/// long their flushes and syncs take, and their own counters as of the
/// last flush.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    pub(crate) write: Timing,
    pub(crate) sync: Timing,
    pub(crate) rotations: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) resent: AtomicU64,
}

/// Count, total and longest of the durations of one operation.
#[derive(Debug, Default)]
pub(crate) struct Timing {
    count: AtomicU64,
    total_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Timing {
    fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let r = f();
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
        r
    }

    pub(crate) fn summary(&self) -> super::LatencySummary {
        super::LatencySummary {
            count: self.count.load(Ordering::Relaxed),
            total: Duration::from_nanos(self.total_ns.load(Ordering::Relaxed)),
            max: Duration::from_nanos(self.max_ns.load(Ordering::Relaxed)),
        }
    }
}

impl std::fmt::Debug for SinkSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| (&e.sink, e.level)))
            .finish()
    }
}

impl Default for SinkSet {
    fn default() -> Self {
        SinkSet::new()
    }
}

impl SinkSet {
    /// No sinks.
    pub fn new() -> Self {
        SinkSet {
            entries: Vec::new(),
            meter: Arc::default(),
        }
    }

    /// Adds a sink that receives records at `level` or above.
    pub fn push(&mut self, sink: Box<dyn Sink>, level: LevelFilter) {
        self.entries.push(Entry {
            sink,
            level,
            reports: RateLimit::new(REPORT_EVERY),
        });
    }

    /// Whether there is no sink.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes to every sink whose threshold passes; returns the largest
    /// byte count one sink produced.
    pub fn write(&mut self, record: &Record<'_>) -> usize {
        let mut bytes = 0;
        for e in &mut self.entries {
            if !e.level.enables(record.level) {
                continue;
            }
            match e.sink.write(record) {
                Ok(n) => bytes = bytes.max(n),
                Err(err) => report(e, &err),
            }
        }
        bytes
    }

    /// Flushes (and with `sync`, fsyncs) every sink; returns the number of
    /// sinks that failed. Each flush and sync is timed.
    pub fn flush(&mut self, sync: bool) -> u64 {
        let meter = Arc::clone(&self.meter);
        let failed = self.each(|s| {
            meter.write.time(|| s.flush())?;
            if sync {
                meter.sync.time(|| s.sync())?;
            }
            Ok(())
        });
        self.count();
        failed
    }

    /// Where the timings and the sinks' counters are kept.
    pub(crate) fn meter(&self) -> Arc<Meter> {
        Arc::clone(&self.meter)
    }

    /// Sums the sinks' own counters into the meter.
    fn count(&self) {
        let (mut rotations, mut acked, mut resent) = (0, 0, 0);
        for e in &self.entries {
            let s = e.sink.sink_stats();
            rotations += s.rotations;
            acked += s.acked;
            resent += s.resent;
        }
        let m = &self.meter;
        m.rotations.store(rotations, Ordering::Relaxed);
        m.acked.store(acked, Ordering::Relaxed);
        m.resent.store(resent, Ordering::Relaxed);
    }

    /// Flushes (and with `sync`, fsyncs) every sink, then waits for each
    /// to confirm delivery ([`Sink::confirm`]); returns the number of sink
    /// operations that failed.
    pub fn flush_confirmed(&mut self, sync: bool) -> u64 {
        let failed = self.flush(sync) + self.each(|s| s.confirm());
        // Confirmed: what the collector acknowledged is counted.
        self.count();
        failed
    }

    /// Flushes every sink and waits for its background work.
    pub fn finish(&mut self) -> u64 {
        let failed = self.each(|s| s.finish());
        self.count();
        failed
    }

    fn each(&mut self, mut f: impl FnMut(&mut dyn Sink) -> std::io::Result<()>) -> u64 {
        let mut failed = 0;
        for e in &mut self.entries {
            let r = f(&mut *e.sink);
            if let Err(err) = r {
                failed += 1;
                report(e, &err);
            }
        }
        failed
    }
}

fn report(e: &mut Entry, err: &std::io::Error) {
    let Some(held_back) = e.reports.allow() else {
        return;
    };
    let _ = writeln!(
        std::io::stderr(),
        "logbraid: sink {:?} failed ({} failure(s) since the last report): {err}",
        e.sink,
        held_back + 1
    );
}
