//! The set of sinks one pipeline writes to, with per-sink level thresholds
//! and rate-limited error reports.

use std::io::Write as _;
use std::time::Duration;

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
    /// sinks that failed.
    pub fn flush(&mut self, sync: bool) -> u64 {
        self.each(|s| if sync { s.sync() } else { s.flush() })
    }

    /// Flushes (and with `sync`, fsyncs) every sink, then waits for each
    /// to confirm delivery ([`Sink::confirm`]); returns the number of sink
    /// operations that failed.
    pub fn flush_confirmed(&mut self, sync: bool) -> u64 {
        self.flush(sync) + self.each(|s| s.confirm())
    }

    /// Flushes every sink and waits for its background work.
    pub fn finish(&mut self) -> u64 {
        self.each(|s| s.finish())
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
