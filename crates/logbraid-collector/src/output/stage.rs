//! The output thread: rounds of writing, flushing, checkpointing and
//! acknowledging (the `output` module's documentation says what a round
//! promises).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use logbraid::wire::{Dedup, Frame};
use logbraid::{OwnedRecord, Source};

use super::files::{report, Files};
use super::merge::{Held, Key, Merge, Stream};
use super::{AckTo, Body, Counters, Delivery, Msg, Pending, RETRY, ROUND_BYTES};

mod stalled;

use stalled::{delivery_key, Stalled};

/// A delivery whose records are held in the merge window: done when
/// `left` FIFOs have written their part of it.
#[derive(Debug)]
struct Waiting {
    ack: Option<AckTo>,
    permits: u32,
    left: usize,
}

/// The output thread's state.
pub(super) struct Stage {
    rx: mpsc::Receiver<Msg>,
    files: Files,
    dedup: Arc<Mutex<Dedup>>,
    pending: Arc<Pending>,
    merge: Option<Merge>,
    counters: Arc<Counters>,
    /// Deliveries written this round, to commit and acknowledge once it is
    /// flushed and checkpointed.
    acks: Vec<AckTo>,
    /// Merge window: native records written this round whose batch is still
    /// partly held, by numbering and highest sequence number.
    commits: Vec<(Arc<Stream>, u64)>,
    /// Budget to give back once this round is written.
    permits: usize,
    /// Merge window: deliveries with records still held, by completion id.
    waiting: HashMap<u64, Waiting>,
    next_done: u64,
    /// Something was written or completed since the last round ended.
    dirty: bool,
    /// A flush or checkpoint failed, or a delivery is stalled: when to try
    /// again.
    retry_at: Option<Instant>,
    /// Deliveries waiting for a file that could not be opened or written,
    /// in arrival order; a source with one here has all its later
    /// deliveries here too, so its records keep their order.
    stalled: VecDeque<Stalled>,
    /// Merge window: the record that could not be written. Nothing else
    /// is written before it, to keep the order of the window.
    stalled_held: Option<Held>,
    /// Ids the table forgot to make room, until a checkpoint says so.
    forgotten: Vec<Arc<str>>,
    /// The round's commits, as the checkpoint saves them: client id,
    /// epoch, highest written.
    changes: Vec<(Box<str>, u64, u64)>,
    /// Records written when progress was last noted.
    progressed_at: u64,
}

/// The failpoint between a rotation and the checkpoint that records it
/// (`logbraid::fault`): only ending the process there means something,
/// so an error configured for it is ignored.
fn rotated_point() {
    let _ = logbraid::fault::point("output::rotated");
}

fn source_key(s: &Source) -> Key {
    Key::Source(s.host.clone(), s.pid, s.process_name.clone())
}

fn same_source(key: &Key, s: &Source) -> bool {
    matches!(key, Key::Source(h, p, n) if *p == s.pid && *h == s.host && *n == s.process_name)
}

impl Stage {
    pub(super) fn new(
        rx: mpsc::Receiver<Msg>,
        files: Files,
        dedup: Arc<Mutex<Dedup>>,
        pending: Arc<Pending>,
        merge_window: Option<std::time::Duration>,
        counters: Arc<Counters>,
    ) -> Stage {
        Stage {
            rx,
            files,
            dedup,
            pending,
            merge: merge_window.map(Merge::new),
            counters,
            acks: Vec::new(),
            commits: Vec::new(),
            permits: 0,
            waiting: HashMap::new(),
            next_done: 0,
            dirty: false,
            retry_at: None,
            stalled: VecDeque::new(),
            stalled_held: None,
            forgotten: Vec::new(),
            changes: Vec::new(),
            progressed_at: 0,
        }
    }

    pub(super) fn run(&mut self) {
        loop {
            let expiry = self.merge.as_mut().and_then(Merge::next_expiry);
            let deadline = [expiry, self.retry_at].into_iter().flatten().min();
            let first = match deadline {
                Some(at) => match self
                    .rx
                    .recv_timeout(at.saturating_duration_since(Instant::now()))
                {
                    Ok(m) => Some(m),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => Some(Msg::Stop),
                },
                None => Some(self.rx.recv().unwrap_or(Msg::Stop)),
            };
            let stop = self.take_round(first);
            self.emit(stop);
            if stop {
                self.close();
                return;
            }
            let retry_due = self.retry_at.is_some_and(|t| t <= Instant::now());
            if retry_due {
                self.retry_stalled();
                self.emit(false);
            }
            if self.dirty || retry_due {
                self.end_round();
            }
        }
    }

    /// Takes `first` and whatever else is queued, up to a round's weight
    /// (everything, once stopping). Returns whether to stop.
    fn take_round(&mut self, first: Option<Msg>) -> bool {
        let mut weight = 0usize;
        let mut stop = false;
        let mut next = first;
        while let Some(m) = next.take() {
            match m {
                Msg::Stop => stop = true,
                Msg::Reopen => self.reopen(),
                Msg::Deliver(d, permits) => {
                    weight += permits as usize;
                    self.take(d, permits);
                }
            }
            // Once stopping, the budget is closed: what is still queued was
            // sent before, and is written too.
            if stop || weight < ROUND_BYTES {
                next = self.rx.try_recv().ok();
            }
        }
        stop
    }

    /// Ends the round so far (its records go to the files as they are
    /// now), then closes and reopens every file; the next round's
    /// checkpoint records the new files.
    fn reopen(&mut self) {
        self.end_round();
        self.files.reopen();
        self.dirty = true;
    }

    fn undecodable(&mut self, permits: u32) {
        self.counters.undecodable.fetch_add(1, Ordering::Relaxed);
        report("a native frame handed to the output does not decode as a batch; skipped");
        // Not acknowledged: its records are not written.
        self.permits += permits as usize;
        self.dirty = true;
    }

    /// Writes a delivery now, or holds its records for the merge window.
    fn take(&mut self, d: Delivery, permits: u32) {
        self.counters.deliveries.fetch_add(1, Ordering::Relaxed);
        if self.merge.is_some() {
            self.hold(d, permits);
            return;
        }
        let key = delivery_key(&d);
        let s = Stalled {
            d,
            permits,
            next: 0,
            key,
        };
        if self.stalled.iter().any(|w| w.key == s.key) {
            // Behind its source's stalled delivery.
            self.count_held(&s);
            self.stalled.push_back(s);
            return;
        }
        if let Some(s) = self.write_delivery(s) {
            self.counters.stalled.fetch_add(1, Ordering::Relaxed);
            self.count_held(&s);
            self.stalled.push_back(s);
        }
    }

    /// Writes the records of a delivery from `s.next` on. When one cannot
    /// be written (its routed file does not open), the delivery is handed
    /// back, `next` at that record, to wait (`None`: all written): what was written before it is
    /// committed and acknowledged with this round (a native client then
    /// resends only the rest, should it reconnect), the rest is neither.
    fn write_delivery(&mut self, mut s: Stalled) -> Option<Stalled> {
        let (n, bytes, fault) = match &s.d.body {
            Body::Native { frame, skip } => {
                let Ok(Frame::Batch(b)) = logbraid::wire::decode(frame) else {
                    self.undecodable(s.permits);
                    return None;
                };
                let (n, bytes, fault) = self
                    .files
                    .write_all(b.records(&s.d.source).skip(*skip as usize + s.next));
                if fault.is_some() && n > 0 {
                    if let Some(a) = &s.d.ack {
                        // Sequence number of the last record written.
                        let written = b.first_seq() + u64::from(*skip) + (s.next as u64) + n - 1;
                        self.acks.push(AckTo {
                            client_id: a.client_id.clone(),
                            epoch: a.epoch,
                            last: written,
                            tx: a.tx.clone(),
                        });
                    }
                }
                (n, bytes, fault)
            }
            Body::Records(rs) => self
                .files
                .write_all(rs[s.next..].iter().map(OwnedRecord::as_record)),
            Body::Batch(b) => self.files.write_all(b.iter().skip(s.next)),
        };
        self.counters.written.fetch_add(n, Ordering::Relaxed);
        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        s.next += n as usize;
        if n > 0 {
            self.dirty = true;
        }
        if let Some(e) = fault {
            self.stall(&e);
            return Some(s);
        }
        self.permits += s.permits as usize;
        self.acks.extend(s.d.ack);
        self.dirty = true;
        if self.files.take_rotated() {
            // The rotated file may be compressed soon; checkpoint the new
            // one before writing more.
            rotated_point();
            self.end_round();
        }
        None
    }

    /// Puts a delivery's records in the merge window. The delivery is done
    /// (acknowledged, its budget given back) once the last of its records
    /// in every FIFO it touched is written.
    fn hold(&mut self, d: Delivery, permits: u32) {
        let Some(merge) = self.merge.as_mut() else {
            return;
        };
        let mut keys: Vec<Key> = Vec::new();
        let records = match d.body {
            Body::Native { frame, skip } => {
                let Ok(Frame::Batch(b)) = logbraid::wire::decode(&frame) else {
                    self.undecodable(permits);
                    return;
                };
                // A client's records keep their sequence order, whatever
                // connection brought them.
                let key = match &d.ack {
                    Some(a) => Key::Client(a.client_id.clone()),
                    None => source_key(&d.source),
                };
                let stream = d.ack.as_ref().map(|a| {
                    Arc::new(Stream {
                        client_id: a.client_id.clone(),
                        epoch: a.epoch,
                    })
                });
                let first = b.first_seq().saturating_add(u64::from(skip));
                for (i, r) in b.records(&d.source).skip(skip as usize).enumerate() {
                    let seq = stream
                        .as_ref()
                        .map(|s| (Arc::clone(s), first.saturating_add(i as u64)));
                    merge.push(
                        &key,
                        Held::new(OwnedRecord::from_record_with_source(&r, &d.source), seq),
                    );
                }
                keys.push(key);
                Vec::new()
            }
            Body::Records(rs) => rs,
            // Held one by one: a packed batch is unpacked.
            Body::Batch(b) => b.to_owned_records(),
        };
        for r in records {
            if !keys.last().is_some_and(|k| same_source(k, &r.source)) {
                let k = source_key(&r.source);
                // Keep the found key last, for the next record.
                keys.retain(|x| *x != k);
                keys.push(k);
            }
            if let Some(k) = keys.last() {
                merge.push(k, Held::new(r, None));
            }
        }
        if keys.is_empty() {
            keys.push(source_key(&d.source));
        }
        self.next_done += 1;
        let id = self.next_done;
        let left = keys.iter().filter(|k| merge.push_done(k, id)).count();
        if left == 0 {
            // Nothing of it, nor anything before it of its sources, is
            // held: done once this round is flushed.
            self.permits += permits as usize;
            self.acks.extend(d.ack);
            self.dirty = true;
        } else {
            self.waiting.insert(
                id,
                Waiting {
                    ack: d.ack,
                    permits,
                    left,
                },
            );
        }
    }

    /// Writes held records whose window has passed (all of them with
    /// `all`), in the order [`Merge::pop`] gives. Nothing is written while a
    /// record that could not be written waits.
    fn emit(&mut self, all: bool) {
        let now = Instant::now();
        while self.stalled_held.is_none() {
            let Some(h) = self.merge.as_mut().and_then(|m| m.pop(now, all)) else {
                break;
            };
            if let Some(h) = self.write_held(h) {
                self.counters.stalled.fetch_add(1, Ordering::Relaxed);
                self.counters.held.store(1, Ordering::Relaxed);
                self.stalled_held = Some(h);
            }
        }
    }

    /// Writes one record of the merge window and completes what it ends;
    /// hands it back when it cannot be written.
    fn write_held(&mut self, h: Held) -> Option<Held> {
        let len = match self.files.write(&h.record.as_record()) {
            Ok(len) => len,
            Err(e) => {
                self.stall(&e);
                return Some(h);
            }
        };
        self.counters.written.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.dirty = true;
        if let Some((stream, seq)) = h.seq {
            match self.commits.last_mut() {
                Some((s, last)) if Arc::ptr_eq(s, &stream) => *last = seq,
                _ => self.commits.push((stream, seq)),
            }
        }
        for id in h.done {
            let Some(w) = self.waiting.get_mut(&id) else {
                continue;
            };
            w.left -= 1;
            if w.left == 0 {
                if let Some(w) = self.waiting.remove(&id) {
                    self.permits += w.permits as usize;
                    self.acks.extend(w.ack);
                }
            }
        }
        if self.files.take_rotated() {
            rotated_point();
            self.end_round();
        }
        None
    }

    /// Flushes, saves the checkpoint, commits, gives the budget back and
    /// acknowledges. On a failed flush or checkpoint, nothing is committed
    /// or acknowledged and everything is tried again later. Returns whether
    /// the round is done.
    fn end_round(&mut self) -> bool {
        self.dirty = false;
        let flushed = self.files.flush();
        // Before the acknowledgements, so a client that has one sees it.
        self.counters
            .syncs
            .store(self.files.syncs(), Ordering::Relaxed);
        let done = flushed && self.checkpoint_and_commit();
        self.counters
            .checkpoints
            .store(self.files.checkpoints(), Ordering::Relaxed);
        self.counters
            .diverted
            .store(self.files.diverted(), Ordering::Relaxed);
        self.counters
            .client_files_refused
            .store(self.files.refused(), Ordering::Relaxed);
        let c = &self.counters;
        c.rotations.store(self.files.rotations(), Ordering::Relaxed);
        c.files_open
            .store(self.files.open_count() as u64, Ordering::Relaxed);
        c.compress_backlog
            .store(self.files.compress_backlog() as u64, Ordering::Relaxed);
        let stalled = !self.stalled.is_empty() || self.stalled_held.is_some();
        let written = c.written.load(Ordering::Relaxed);
        if done && (written != self.progressed_at || !stalled) {
            // Records were written, or nothing waits: the stage is not
            // stuck (a retry that writes nothing is no progress).
            self.pending.stamp();
            self.progressed_at = written;
        }
        if !done {
            self.counters.failed_rounds.fetch_add(1, Ordering::Relaxed);
            self.retry_at = Some(Instant::now() + RETRY);
            return false;
        }
        self.retry_at = stalled.then(|| Instant::now() + RETRY);
        true
    }

    /// Commits the round to the table and, with a state path, saves the
    /// checkpoint holding the commits first; then sends the acks.
    ///
    /// The checkpoint must hold the commits, and the table must not show
    /// them (a `WELCOME` would report them) before it is saved. So the
    /// table is locked twice, briefly, and never while the file is
    /// written: once to learn what the commits will make of each client
    /// ([`Dedup::committed`]: a batch's records were admitted before they
    /// were written, so nothing a connection does in between changes
    /// that) and to take the ids it forgot; then, once the journal holds
    /// them, to commit.
    fn checkpoint_and_commit(&mut self) -> bool {
        {
            let mut table = self.dedup.lock().unwrap_or_else(|e| e.into_inner());
            self.forgotten.extend(table.take_forgotten());
            if self.files.checkpointed() {
                self.changes.clear();
                let mut seen: HashMap<&str, usize> = HashMap::new();
                let streams = self
                    .commits
                    .iter()
                    .map(|(s, seq)| (&s.client_id, s.epoch, *seq));
                let acks = self
                    .acks
                    .iter()
                    .filter(|a| a.is_numbered())
                    .map(|a| (&a.client_id, a.epoch, a.last));
                for (id, epoch, last) in streams.chain(acks) {
                    let Some(w) = table.committed(id, epoch, last) else {
                        continue;
                    };
                    match seen.get(&**id) {
                        Some(&i) => self.changes[i].2 = self.changes[i].2.max(w),
                        None => {
                            seen.insert(id, self.changes.len());
                            self.changes.push((id.clone(), epoch, w));
                        }
                    }
                }
            }
        }
        if self.files.checkpointed() {
            let changes = self.changes.iter().map(|(id, e, w)| (&**id, *e, *w));
            if let Err(e) = self.files.save(changes, &self.forgotten) {
                let path = self.files.state_path().unwrap_or(Path::new("?"));
                report(&format!(
                    "cannot save {}: {e}; acknowledgements wait",
                    path.display()
                ));
                return false;
            }
        }
        self.forgotten.clear();
        let mut highest = Vec::with_capacity(self.acks.len());
        {
            let mut table = self.dedup.lock().unwrap_or_else(|e| e.into_inner());
            self.commit(&mut table, &mut highest);
        }
        self.commits.clear();
        // Before the acknowledgements, so that whoever has one finds the
        // budget given back and the acknowledgement counted (`/metrics`).
        if self.permits > 0 {
            self.pending.give_back(std::mem::take(&mut self.permits));
        }
        for (a, w) in self.acks.drain(..).zip(highest) {
            if let Some(w) = w {
                self.counters.acks.fetch_add(1, Ordering::Relaxed);
                if a.tx.send(w).is_err() {
                    // A closed receiver: the connection is gone, nothing
                    // was acknowledged.
                    self.counters.acks.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        true
    }

    fn commit(&self, table: &mut Dedup, highest: &mut Vec<Option<u64>>) {
        for (s, seq) in &self.commits {
            table.commit(&s.client_id, s.epoch, *seq);
        }
        highest.extend(self.acks.iter().map(|a| match a.is_numbered() {
            true => table.commit(&a.client_id, a.epoch, a.last),
            false => Some(0),
        }));
    }

    /// The end: writes what is held, ends the last round, finishes the
    /// files.
    fn close(&mut self) {
        self.retry_stalled();
        if !self.stalled.is_empty() || self.stalled_held.is_some() {
            let held = self.counters.held.load(Ordering::Relaxed);
            let native = self.stalled.iter().filter(|s| s.d.ack.is_some()).count();
            let lost: u64 = self
                .stalled
                .iter()
                .filter(|s| s.d.ack.is_none())
                .map(|s| self.held_in(s))
                .sum::<u64>()
                + self
                    .stalled_held
                    .as_ref()
                    .map_or(0, |h| u64::from(h.seq.is_none()));
            self.counters.lost.store(lost, Ordering::Relaxed);
            report(&format!(
                "stopping with {held} record(s) not written, their file could not be \
                 opened or written: {native} native batch(es) were not acknowledged and \
                 will be resent; {lost} Python or syslog record(s) are lost"
            ));
        }
        if (self.dirty || self.retry_at.is_some()) && !self.end_round() {
            report(&format!(
                "stopping with {} acknowledgement(s) not sent: the flush or \
                 checkpoint failed; their clients will resend",
                self.acks.len()
            ));
        }
        self.files.finish();
    }
}
