//! The merge window: records held per source, released in timestamp order.
//!
//! Each source has a FIFO of its records in arrival order. While the head of
//! some FIFO has been held for the whole window, the head with the smallest
//! timestamp among all heads goes out. So a source's records always keep
//! their order, records of different sources come out by timestamp, and no
//! record waits much longer than the window (a head that has waited the
//! window is released, or a head with an earlier timestamp is released
//! before it, and there are finitely many of those).
//!
//! Two heaps over the heads find, in logarithmic time, the head that has
//! waited longest (its arrival number is the smallest) and the head with
//! the smallest timestamp. A heap entry is stale once its record has left
//! the FIFO; stale entries are dropped when they reach the top.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logbraid::OwnedRecord;

/// What one source's records are ordered by: a native client's id (its
/// sequence numbers must be written in order for the acknowledgements to
/// hold), or the host, pid and program of decoded records.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Key {
    Client(Box<str>),
    Source(String, u32, String),
}

/// A client's numbering: client id and epoch.
#[derive(Debug)]
pub(super) struct Stream {
    pub(super) client_id: Box<str>,
    pub(super) epoch: u64,
}

/// A record held for the merge window.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) record: OwnedRecord,
    /// For a native record: its numbering and sequence number, committed
    /// when it is written (so a checkpoint taken while the rest of its
    /// batch is still held counts what is already in the file).
    pub(super) seq: Option<(Arc<Stream>, u64)>,
    /// Deliveries (by completion id) that this record is the last of, in
    /// its FIFO.
    pub(super) done: Vec<u64>,
    arrived: Instant,
    /// Arrival number: increases with `arrived`.
    n: u64,
}

impl Held {
    pub(super) fn new(record: OwnedRecord, seq: Option<(Arc<Stream>, u64)>) -> Held {
        Held {
            record,
            seq,
            done: Vec::new(),
            arrived: Instant::now(),
            n: 0,
        }
    }
}

#[derive(Debug)]
struct Queue {
    key: Key,
    items: VecDeque<Held>,
}

/// Every held record.
#[derive(Debug)]
pub(super) struct Merge {
    window: Duration,
    queues: HashMap<u64, Queue>,
    ids: HashMap<Key, u64>,
    /// Heads by (timestamp, arrival number).
    by_time: BinaryHeap<Reverse<(i64, u64, u64)>>,
    /// Heads by arrival number.
    by_arrival: BinaryHeap<Reverse<(u64, u64)>>,
    next_n: u64,
    next_queue: u64,
}

impl Merge {
    pub(super) fn new(window: Duration) -> Merge {
        Merge {
            window,
            queues: HashMap::new(),
            ids: HashMap::new(),
            by_time: BinaryHeap::new(),
            by_arrival: BinaryHeap::new(),
            next_n: 0,
            next_queue: 0,
        }
    }

    /// Holds a record at the end of its source's FIFO.
    pub(super) fn push(&mut self, key: &Key, mut held: Held) {
        self.next_n += 1;
        held.n = self.next_n;
        let q = match self.ids.get(key) {
            Some(&q) => q,
            None => {
                self.next_queue += 1;
                let q = self.next_queue;
                self.ids.insert(key.clone(), q);
                self.queues.insert(
                    q,
                    Queue {
                        key: key.clone(),
                        items: VecDeque::new(),
                    },
                );
                q
            }
        };
        let Some(queue) = self.queues.get_mut(&q) else {
            return;
        };
        let head = queue.items.is_empty();
        let (ts, n) = (held.record.timestamp_ns, held.n);
        queue.items.push_back(held);
        if head {
            self.by_time.push(Reverse((ts, n, q)));
            self.by_arrival.push(Reverse((n, q)));
        }
    }

    /// Attaches completion `done` to the last record held for `key`, so the
    /// delivery completes only once every record before it in that FIFO is
    /// written; `false` when nothing is held for `key`.
    pub(super) fn push_done(&mut self, key: &Key, done: u64) -> bool {
        let last = self
            .ids
            .get(key)
            .and_then(|q| self.queues.get_mut(q))
            .and_then(|q| q.items.back_mut());
        match last {
            Some(h) => {
                h.done.push(done);
                true
            }
            None => false,
        }
    }

    fn is_head(&self, q: u64, n: u64) -> bool {
        self.queues
            .get(&q)
            .and_then(|q| q.items.front())
            .is_some_and(|h| h.n == n)
    }

    /// When the head that has waited longest has waited the window.
    pub(super) fn next_expiry(&mut self) -> Option<Instant> {
        while let Some(&Reverse((n, q))) = self.by_arrival.peek() {
            if let Some(h) = self
                .queues
                .get(&q)
                .and_then(|q| q.items.front())
                .filter(|h| h.n == n)
            {
                return Some(h.arrived + self.window);
            }
            self.by_arrival.pop();
        }
        None
    }

    /// The next record to write: when some head has waited the window at
    /// `now` (or with `all`, whenever anything is held), the head with the
    /// smallest timestamp.
    pub(super) fn pop(&mut self, now: Instant, all: bool) -> Option<Held> {
        let expiry = self.next_expiry()?;
        if !all && expiry > now {
            return None;
        }
        let q = loop {
            let Reverse((_, n, q)) = self.by_time.pop()?;
            if self.is_head(q, n) {
                break q;
            }
        };
        let queue = self.queues.get_mut(&q)?;
        let held = queue.items.pop_front()?;
        match queue.items.front() {
            Some(next) => {
                self.by_time
                    .push(Reverse((next.record.timestamp_ns, next.n, q)));
                self.by_arrival.push(Reverse((next.n, q)));
            }
            None => {
                let key = queue.key.clone();
                self.queues.remove(&q);
                self.ids.remove(&key);
            }
        }
        Some(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logbraid::{Level, Source};

    fn record(ts: i64) -> OwnedRecord {
        let source = Arc::new(Source {
            host: String::new(),
            pid: 0,
            process_name: String::new(),
        });
        OwnedRecord::new(Level::Info, "", b"", source).with_timestamp(ts)
    }

    fn drain(m: &mut Merge) -> Vec<i64> {
        let mut out = Vec::new();
        while let Some(h) = m.pop(Instant::now(), true) {
            out.push(h.record.timestamp_ns);
        }
        out
    }

    #[test]
    fn heads_leave_by_timestamp_and_each_source_keeps_its_order() {
        let mut m = Merge::new(Duration::from_secs(3600));
        let (a, b) = (Key::Client("a".into()), Key::Client("b".into()));
        for ts in [10, 50, 30] {
            m.push(&a, Held::new(record(ts), None));
        }
        for ts in [20, 40] {
            m.push(&b, Held::new(record(ts), None));
        }
        // Nothing has waited an hour.
        assert!(m.pop(Instant::now(), false).is_none());
        assert_eq!(drain(&mut m), [10, 20, 40, 50, 30]);
        assert!(m.next_expiry().is_none());
        assert!(m.queues.is_empty() && m.ids.is_empty());
    }

    #[test]
    fn an_expired_head_releases_the_earliest_head() {
        let mut m = Merge::new(Duration::ZERO);
        let (a, b) = (Key::Client("a".into()), Key::Client("b".into()));
        m.push(&a, Held::new(record(5), None));
        m.push(&b, Held::new(record(1), None));
        let later = Instant::now() + Duration::from_millis(1);
        assert_eq!(m.pop(later, false).map(|h| h.record.timestamp_ns), Some(1));
        assert_eq!(m.pop(later, false).map(|h| h.record.timestamp_ns), Some(5));
        assert!(m.pop(later, false).is_none());
    }

    #[test]
    fn completions_wait_for_the_records_before_them() {
        let mut m = Merge::new(Duration::from_secs(3600));
        let a = Key::Client("a".into());
        assert!(!m.push_done(&a, 7));
        m.push(&a, Held::new(record(1), None));
        m.push(&a, Held::new(record(2), None));
        assert!(m.push_done(&a, 7));
        assert!(m.pop(Instant::now(), true).unwrap().done.is_empty());
        assert_eq!(m.pop(Instant::now(), true).unwrap().done, [7]);
    }
}
