//! The collector's rule for batches that arrive more than once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::WireError;

/// What to do with the records of a batch, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admit {
    /// Leading records already written or being written: drop them.
    pub skip: u32,
    /// The records after those: write them, then [`Dedup::commit`].
    pub write: u32,
}

/// Progress of one client id under one epoch.
#[derive(Clone, Copy, Debug)]
struct Stream {
    epoch: u64,
    /// Highest sequence number handed to the sinks (written or in flight).
    admitted: u64,
    /// Highest sequence number known to be written.
    written: u64,
    /// Position in [`Dedup::order`]: when it was last admitted to or
    /// written.
    tick: u64,
    /// When it was last admitted to or written.
    at: Instant,
}

/// Which records of a batch to write, per client id: the collector's half of
/// "every record exactly once".
///
/// For each client id the collector tracks one numbering (the `epoch` of
/// the client's `HELLO`) and two sequence numbers: the highest *admitted*
/// (handed to the sinks, perhaps not yet written) and the highest
/// *written* (reported in `WELCOME` and `ACK`). A resent batch is trimmed
/// of what was admitted, so a record is written once even when the client
/// reconnects while its previous connection's records are still in
/// flight.
///
/// | situation | result |
/// |---|---|
/// | nothing known for the client id and epoch (highest 0) | any first sequence is accepted |
/// | `first ≤ admitted` | the first `admitted - first + 1` records are skipped (all of them for an exact resend) |
/// | `first == admitted + 1` | every record is written |
/// | `first > admitted + 1` | [`WireError::SequenceGap`]: records in between were never received |
/// | a `HELLO` with a new epoch for a known client id | the old numbering is forgotten; the new one starts from nothing |
/// | a batch under an epoch that a newer `HELLO` replaced | written whole and not tracked: its client has restarted and will not resend it |
/// | a first batch of a new client id, the table full | the least recently written entry is forgotten if it is idle; if none is, [`WireError::TooManyClients`] |
///
/// An entry is made by a client id's first batch, never by its `HELLO`
/// alone (a `HELLO` only answers what is known), so connections that
/// send nothing cost the table nothing. The table holds at most
/// [`capacity`](Self::with_capacity) entries. To make room, it forgets the
/// entry least recently admitted to or written, and only one that is
/// *idle*: nothing in flight (every admitted record written) and nothing
/// admitted or written for the idle time. A client that is still sending
/// is therefore never forgotten, and keeps exactly-once; a client that was
/// idle so long and comes back starts a new entry (its next batch follows
/// what was acknowledged, so nothing is written twice unless it resends a
/// batch it had seen acknowledged). When no entry is idle, a new client id
/// is refused as overloaded (a transient error: it backs off and retries,
/// keeping its batches) rather than weakening anyone's exactly-once.
///
/// Pure logic, no locking: a collector with many connections shares one
/// behind a mutex. To keep exactly-once across its own restarts, a
/// collector saves what [`committed`](Self::committed) says before it
/// commits, and the ids [`take_forgotten`](Self::take_forgotten) hands out,
/// and [`restore`](Self::restore)s them at start-up.
#[derive(Clone, Debug)]
pub struct Dedup {
    clients: HashMap<Arc<str>, Stream>,
    /// Client ids by their entry's tick, least recently used first.
    order: BTreeMap<u64, Arc<str>>,
    tick: u64,
    capacity: usize,
    idle: Duration,
    /// Ids forgotten to make room, not yet taken by the saver.
    forgotten: Vec<Arc<str>>,
}

/// Entries looked at, least recently used first, for one that may be
/// forgotten: past them, the table counts as busy.
const SCAN: usize = 64;

impl Default for Dedup {
    fn default() -> Self {
        Dedup::with_capacity(Dedup::DEFAULT_CAPACITY, Dedup::DEFAULT_IDLE)
    }
}

impl Dedup {
    /// Client ids a table holds by default.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// How long an entry must have seen nothing admitted or written before
    /// it may be forgotten, by default.
    pub const DEFAULT_IDLE: Duration = Duration::from_secs(600);

    /// Nothing known, the default capacity and idle time.
    pub fn new() -> Self {
        Dedup::default()
    }

    /// Nothing known; at most `capacity` client ids (at least one), an
    /// entry forgotten to make room only after `idle` without a batch.
    pub fn with_capacity(capacity: usize, idle: Duration) -> Self {
        Dedup {
            clients: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            capacity: capacity.max(1),
            idle,
            forgotten: Vec::new(),
        }
    }

    /// Marks the client id's entry as used now.
    fn touch(&mut self, client_id: &str) {
        let Some((id, s)) = self.clients.get_key_value(client_id) else {
            return;
        };
        let id = Arc::clone(id);
        let old = s.tick;
        self.tick += 1;
        let tick = self.tick;
        self.order.remove(&old);
        self.order.insert(tick, id);
        if let Some(s) = self.clients.get_mut(client_id) {
            s.tick = tick;
            s.at = Instant::now();
        }
    }

    /// A new entry for the client id under `epoch`, making room first.
    fn insert(&mut self, client_id: &str, epoch: u64) -> Result<(), WireError> {
        while self.clients.len() >= self.capacity {
            if !self.forget_idle() {
                return Err(WireError::TooManyClients { max: self.capacity });
            }
        }
        self.tick += 1;
        let id: Arc<str> = client_id.into();
        self.order.insert(self.tick, Arc::clone(&id));
        self.clients.insert(
            id,
            Stream {
                epoch,
                admitted: 0,
                written: 0,
                tick: self.tick,
                at: Instant::now(),
            },
        );
        Ok(())
    }

    /// Forgets the least recently used entry that is idle, looking at the
    /// [`SCAN`] least recently used (those with records in flight are
    /// passed over).
    fn forget_idle(&mut self) -> bool {
        let found = self
            .order
            .iter()
            .take(SCAN)
            .find(|(_, id)| {
                self.clients
                    .get(*id)
                    .is_some_and(|s| s.admitted == s.written && s.at.elapsed() >= self.idle)
            })
            .map(|(&tick, _)| tick);
        let Some(id) = found.and_then(|tick| self.order.remove(&tick)) else {
            return false;
        };
        self.clients.remove(&id);
        self.forgotten.push(id);
        true
    }

    /// Answers a client's `HELLO`: the highest sequence number written for
    /// it, for the `WELCOME` (0: none). A new epoch replaces the client
    /// id's previous one; an unknown client id gets no entry until its
    /// first batch.
    pub fn hello(&mut self, client_id: &str, epoch: u64) -> u64 {
        match self.clients.get_mut(client_id) {
            Some(s) if s.epoch == epoch => s.written,
            Some(s) => {
                s.epoch = epoch;
                s.admitted = 0;
                s.written = 0;
                0
            }
            None => 0,
        }
    }

    /// Decides which records of the batch `first ..= first + count - 1` to
    /// write, and counts them as admitted. Call it once the whole batch is
    /// decoded, write the records it says, and [`commit`](Self::commit)
    /// once they are written.
    pub fn admit(
        &mut self,
        client_id: &str,
        epoch: u64,
        first: u64,
        count: u32,
    ) -> Result<Admit, WireError> {
        if count == 0 {
            return Ok(Admit { skip: 0, write: 0 });
        }
        match self.clients.get(client_id) {
            Some(s) if s.epoch == epoch => {}
            // A connection of a client that has restarted since (a newer
            // HELLO brought another epoch): that process is gone and will
            // never resend, so write its records and leave the new
            // numbering alone.
            Some(_) => {
                return Ok(Admit {
                    skip: 0,
                    write: count,
                })
            }
            None => self.insert(client_id, epoch)?,
        }
        self.touch(client_id);
        let Some(s) = self.clients.get_mut(client_id) else {
            return Ok(Admit {
                skip: 0,
                write: count,
            });
        };
        let last = first.saturating_add(u64::from(count) - 1);
        if s.admitted == 0 {
            s.admitted = last;
            return Ok(Admit {
                skip: 0,
                write: count,
            });
        }
        // In u128, so that a numbering reaching u64::MAX cannot overflow.
        let next = u128::from(s.admitted) + 1;
        if u128::from(first) > next {
            return Err(WireError::SequenceGap {
                expected: s.admitted + 1,
                first,
            });
        }
        let skip = (next - u128::from(first)).min(u128::from(count)) as u32;
        s.admitted = s.admitted.max(last);
        Ok(Admit {
            skip,
            write: count - skip,
        })
    }

    /// What [`commit`](Self::commit) would make the highest written
    /// sequence number, without changing anything: to save it before the
    /// table shows it.
    pub fn committed(&self, client_id: &str, epoch: u64, last: u64) -> Option<u64> {
        let s = self.clients.get(client_id)?;
        if s.epoch != epoch {
            return None;
        }
        Some(s.written.max(last.min(s.admitted)))
    }

    /// Records that everything up to `last` is written, and returns the
    /// highest written sequence number, for the `ACK`. `None` when the
    /// client id has moved to another epoch since (a newer connection of a
    /// restarted client): this connection's client is gone, send nothing.
    pub fn commit(&mut self, client_id: &str, epoch: u64, last: u64) -> Option<u64> {
        let written = self.committed(client_id, epoch, last)?;
        self.touch(client_id);
        if let Some(s) = self.clients.get_mut(client_id) {
            s.written = written;
        }
        Some(written)
    }

    /// The highest sequence number written for a client id under an epoch
    /// (0: none known).
    pub fn written(&self, client_id: &str, epoch: u64) -> u64 {
        match self.clients.get(client_id) {
            Some(s) if s.epoch == epoch => s.written,
            _ => 0,
        }
    }

    /// Sets what a previous run of the collector had written, before any
    /// client connects. Restored entries count against the capacity like
    /// any other (a table restored over it makes room from the least
    /// recently restored on, as they become idle).
    pub fn restore(&mut self, client_id: &str, epoch: u64, written: u64) {
        let known = self.clients.get_mut(client_id);
        let s = match known {
            Some(s) => s,
            None => {
                self.tick += 1;
                let id: Arc<str> = client_id.into();
                self.order.insert(self.tick, Arc::clone(&id));
                self.clients.entry(id).or_insert(Stream {
                    epoch,
                    admitted: 0,
                    written: 0,
                    tick: self.tick,
                    at: Instant::now(),
                })
            }
        };
        if s.epoch != epoch {
            *s = Stream {
                epoch,
                admitted: 0,
                written: 0,
                ..*s
            };
        }
        s.written = s.written.max(written);
        s.admitted = s.admitted.max(written);
    }

    /// `(client id, epoch, highest written)` of every client id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64, u64)> + '_ {
        self.clients
            .iter()
            .map(|(id, s)| (&**id, s.epoch, s.written))
    }

    /// The ids forgotten to make room since the last call, for the saved
    /// state to forget them too.
    pub fn take_forgotten(&mut self) -> Vec<Arc<str>> {
        std::mem::take(&mut self.forgotten)
    }

    /// Forgets a client id; returns whether it was known. A batch resent
    /// under it afterwards is written again.
    pub fn forget(&mut self, client_id: &str) -> bool {
        match self.clients.remove(client_id) {
            Some(s) => {
                self.order.remove(&s.tick);
                true
            }
            None => false,
        }
    }

    /// Number of client ids tracked.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client id is tracked.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ErrorCode;

    fn admit(d: &mut Dedup, first: u64, count: u32) -> Result<(u32, u32), WireError> {
        d.admit("c", 1, first, count).map(|a| (a.skip, a.write))
    }

    #[test]
    fn a_new_client_starts_anywhere_then_must_be_contiguous() {
        let mut d = Dedup::new();
        assert_eq!(d.hello("c", 1), 0);
        // A HELLO alone makes no entry.
        assert!(d.is_empty());
        assert_eq!(admit(&mut d, 500, 10), Ok((0, 10)));
        assert_eq!(admit(&mut d, 510, 5), Ok((0, 5)));
        assert_eq!(
            admit(&mut d, 516, 1),
            Err(WireError::SequenceGap {
                expected: 515,
                first: 516
            })
        );
        assert_eq!(d.commit("c", 1, 514), Some(514));
    }

    #[test]
    fn exact_resend_is_skipped_whole() {
        let mut d = Dedup::new();
        assert_eq!(admit(&mut d, 1, 10), Ok((0, 10)));
        assert_eq!(d.commit("c", 1, 10), Some(10));
        assert_eq!(d.hello("c", 1), 10);
        assert_eq!(admit(&mut d, 1, 10), Ok((10, 0)));
        assert_eq!(admit(&mut d, 11, 1), Ok((0, 1)));
    }

    #[test]
    fn overlapping_resend_writes_only_the_new_tail() {
        let mut d = Dedup::new();
        assert_eq!(admit(&mut d, 1, 10), Ok((0, 10)));
        d.commit("c", 1, 10);
        assert_eq!(admit(&mut d, 6, 10), Ok((5, 5)));
        assert_eq!(d.commit("c", 1, 15), Some(15));
        assert_eq!(admit(&mut d, 15, 1), Ok((1, 0)));
    }

    #[test]
    fn records_in_flight_are_not_admitted_twice() {
        let mut d = Dedup::new();
        assert_eq!(admit(&mut d, 1, 10), Ok((0, 10)));
        // The client reconnects before the collector wrote the batch: the
        // welcome says nothing is written, the resend is skipped anyway.
        assert_eq!(d.hello("c", 1), 0);
        assert_eq!(admit(&mut d, 1, 10), Ok((10, 0)));
        assert_eq!(d.commit("c", 1, 10), Some(10));
    }

    #[test]
    fn commit_never_goes_back_nor_past_what_was_admitted() {
        let mut d = Dedup::new();
        admit(&mut d, 1, 10).unwrap();
        assert_eq!(d.commit("c", 1, 10), Some(10));
        assert_eq!(d.commit("c", 1, 4), Some(10));
        assert_eq!(d.commit("c", 1, 99), Some(10));
        assert_eq!(d.written("c", 1), 10);
    }

    #[test]
    fn a_new_epoch_starts_over_and_silences_the_old_one() {
        let mut d = Dedup::new();
        admit(&mut d, 1, 10).unwrap();
        d.commit("c", 1, 10);
        assert_eq!(d.hello("c", 2), 0);
        assert_eq!(d.admit("c", 2, 1, 3), Ok(Admit { skip: 0, write: 3 }));
        // The old process's last batch, still queued on its old connection,
        // is written without disturbing the new numbering.
        assert_eq!(d.admit("c", 1, 11, 2), Ok(Admit { skip: 0, write: 2 }));
        assert_eq!(d.commit("c", 1, 12), None);
        assert_eq!(d.written("c", 1), 0);
        assert_eq!(d.admit("c", 2, 1, 4), Ok(Admit { skip: 3, write: 1 }));
        assert_eq!(d.commit("c", 2, 4), Some(4));
    }

    #[test]
    fn restored_state_dedups_and_detects_gaps() {
        let mut d = Dedup::new();
        d.restore("c", 1, 100);
        d.restore("other", 5, 7);
        assert_eq!(d.len(), 2);
        let mut saved: Vec<_> = d.iter().map(|(c, e, w)| (c.to_string(), e, w)).collect();
        saved.sort();
        assert_eq!(
            saved,
            [("c".to_string(), 1, 100), ("other".to_string(), 5, 7)]
        );
        assert_eq!(d.hello("c", 1), 100);
        assert_eq!(admit(&mut d, 90, 20), Ok((11, 9)));
        assert!(matches!(
            admit(&mut d, 200, 1),
            Err(WireError::SequenceGap { expected: 110, .. })
        ));
        assert!(d.forget("c"));
        assert!(!d.forget("c"));
        assert_eq!(admit(&mut d, 200, 1), Ok((0, 1)));
    }

    #[test]
    fn a_full_table_forgets_the_least_recently_written_idle_entry() {
        let mut d = Dedup::with_capacity(2, Duration::ZERO);
        for id in ["a", "b"] {
            d.admit(id, 1, 1, 5).unwrap();
            d.commit(id, 1, 5);
        }
        // "a" is used again: "b" is now the least recently written.
        assert_eq!(d.admit("a", 1, 6, 1), Ok(Admit { skip: 0, write: 1 }));
        d.commit("a", 1, 6);
        d.admit("c", 1, 1, 1).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.written("a", 1), 6);
        assert_eq!(d.written("b", 1), 0);
        assert_eq!(d.take_forgotten(), [Arc::from("b")]);
        assert!(d.take_forgotten().is_empty());
        // "a" is now the least recently used, and idle ("c" has a
        // record in flight).
        d.admit("d", 1, 1, 1).unwrap();
        assert_eq!(d.take_forgotten(), [Arc::from("a")]);
        // Now "c" and "d" both have records in flight: nobody is idle.
        assert_eq!(
            d.admit("e", 1, 1, 1),
            Err(WireError::TooManyClients { max: 2 })
        );
        assert_eq!(
            WireError::TooManyClients { max: 2 }.code(),
            ErrorCode::OVERLOADED
        );
        d.commit("c", 1, 1);
        assert_eq!(d.admit("e", 1, 1, 1), Ok(Admit { skip: 0, write: 1 }));
        assert_eq!(d.take_forgotten(), [Arc::from("c")]);
    }

    #[test]
    fn entries_used_within_the_idle_time_are_kept() {
        let mut d = Dedup::with_capacity(1, Duration::from_secs(3600));
        d.admit("a", 1, 1, 1).unwrap();
        d.commit("a", 1, 1);
        assert_eq!(
            d.admit("b", 1, 1, 1),
            Err(WireError::TooManyClients { max: 1 })
        );
        // A HELLO of a new client costs nothing and is answered.
        assert_eq!(d.hello("b", 1), 0);
        assert_eq!(d.hello("a", 1), 1);
        assert_eq!(d.len(), 1);
        // The client still sending keeps exactly-once.
        assert_eq!(d.admit("a", 1, 1, 2), Ok(Admit { skip: 1, write: 1 }));
    }

    #[test]
    fn sequence_numbers_near_the_top_do_not_overflow() {
        let mut d = Dedup::new();
        assert_eq!(admit(&mut d, u64::MAX - 1, 2), Ok((0, 2)));
        assert_eq!(admit(&mut d, u64::MAX, 1), Ok((1, 0)));
        assert_eq!(admit(&mut d, 1, 0), Ok((0, 0)));
    }
}
