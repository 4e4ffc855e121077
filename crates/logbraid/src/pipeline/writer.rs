//! The writer thread: claims from every ring, merges by timestamp, writes
//! in batches, serves flushes and the shutdown drain.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::caller_thread::thread_id;
use super::entry::Batch;
use super::ring::Ring;
use super::{lock, tsc, Shared, SinkSet, LOCAL};
use crate::level::Level;
use crate::record::{FieldsBuf, Record, Source};

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

pub(super) struct Writer {
    shared: Arc<Shared>,
    sinks: SinkSet,
    rings: Vec<Arc<Ring>>,
    /// What each ring's last claim took, freed if the writer unwinds
    /// before it is written.
    scratch: Vec<Batch>,
    gen: u64,
    reported_drops: u64,
    pending_flush: Option<PendingFlush>,
    /// The last flush served: the writer is the only one to move
    /// `flush_done` while it runs, so it need not lock it to read it.
    flush_served: u64,
    tsc: tsc::Converter,
    /// The message of a macro's record, formatted here.
    text: Vec<u8>,
}

impl Writer {
    pub(super) fn new(shared: Arc<Shared>, sinks: SinkSet) -> Self {
        Writer {
            sinks,
            rings: Vec::new(),
            scratch: Vec::new(),
            gen: u64::MAX,
            reported_drops: 0,
            pending_flush: None,
            flush_served: 0,
            tsc: if shared.use_tsc {
                tsc::Converter::new()
            } else {
                tsc::Converter::identity()
            },
            text: Vec::new(),
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
        // The callers' settings sit next to nothing written here, but the
        // counters below are read by `stats`: written only when changed.
        let high_water = &self.shared.progress.high_water;
        if high > high_water.load(Ordering::Relaxed) {
            high_water.store(high, Ordering::Relaxed);
        }
        // Read per pass: the process may name itself (set_process_name).
        let source = Source::current();
        let mut count = 0;
        let mut bytes = 0;
        loop {
            // The ring with the oldest next entry, and the oldest next entry
            // of the others (ties to the ring listed first); few rings, so
            // a scan.
            let mut best: Option<(usize, i64)> = None;
            let mut others: Option<(usize, i64)> = None;
            for (i, batch) in self.scratch.iter_mut().enumerate() {
                let Some(ts) = batch.next_timestamp(&self.tsc) else {
                    continue;
                };
                if best.is_none_or(|(_, b)| ts < b) {
                    others = best;
                    best = Some((i, ts));
                } else if others.is_none_or(|(_, o)| ts < o) {
                    others = Some((i, ts));
                }
            }
            let Some((i, _)) = best else { break };
            // Its entries in order for as long as they stay ahead of the
            // others' (all of them when no other ring has any left): the
            // order a scan per entry would give, without the scans.
            while let Some(claimed) = self.scratch[i].take_next() {
                let ring = &self.rings[i];
                let rec = claimed.record(
                    (ring.thread_id, ring.thread_name.as_deref()),
                    &source,
                    &self.tsc,
                    &mut self.text,
                );
                bytes += self.sinks.write(&rec);
                count += 1;
                drop(claimed);
                if let Some((j, o)) = others {
                    match self.scratch[i].next_timestamp(&self.tsc) {
                        Some(ts) if ts < o || (ts == o && i < j) => {}
                        _ => break,
                    }
                }
            }
        }
        if count > 0 {
            let progress = &self.shared.progress;
            progress.written.fetch_add(count as u64, Ordering::Relaxed);
            progress
                .bytes_written
                .fetch_add(bytes as u64, Ordering::Relaxed);
        }
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
        let source = Source::current();
        let rec = Record::new(Level::Warn, "logbraid", message.as_bytes(), &source)
            .with_timestamp(self.shared.now())
            .with_thread_id(thread_id())
            .with_thread_name("logbraid-writer")
            .with_fields(fields.as_fields());
        self.sinks.write(&rec);
    }

    fn flush_sinks(&mut self, sync: bool) {
        let errors = self.sinks.flush(sync);
        self.shared.progress.add_errors(errors);
    }

    pub(super) fn run(mut self) -> SinkSet {
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
            if self.pending_flush.is_none() && requested > self.flush_served {
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
                    self.shared.progress.add_errors(errors);
                    self.flush_served = target;
                    self.shared.progress.served(target);
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
                self.shared.progress.add_errors(errors);
                self.shared.progress.served(u64::MAX);
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
        self.shared.progress.sleeping.store(true, Ordering::SeqCst);
        let work = self.shared.stopping.load(Ordering::SeqCst)
            || self.shared.flush_requested.load(Ordering::SeqCst) != requested
            || (for_records && self.rings.iter().any(|r| !r.is_empty()));
        if !work {
            thread::park_timeout(wait);
        }
        self.shared
            .progress
            .sleeping
            .store(false, Ordering::Relaxed);
    }
}
