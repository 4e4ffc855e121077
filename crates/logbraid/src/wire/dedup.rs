//! The collector's rule for batches that arrive more than once.

use std::collections::HashMap;

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
///
/// Pure logic, no locking: a collector with many connections shares one
/// behind a mutex. Memory is one small entry per client id; a collector
/// that accepts clients it does not know should cap [`len`](Self::len) or
/// [`forget`](Self::forget) idle ids. To keep exactly-once across its own
/// restarts, a collector saves [`iter`](Self::iter) when it acknowledges,
/// and [`restore`](Self::restore)s it at start-up.
#[derive(Clone, Debug, Default)]
pub struct Dedup {
    clients: HashMap<Box<str>, Stream>,
}

impl Dedup {
    /// Nothing known.
    pub fn new() -> Self {
        Dedup::default()
    }

    /// The client id's stream, made the given epoch's (and emptied) if it
    /// was another's.
    fn stream(&mut self, client_id: &str, epoch: u64) -> &mut Stream {
        let fresh = Stream {
            epoch,
            admitted: 0,
            written: 0,
        };
        let s = self.clients.entry(client_id.into()).or_insert(fresh);
        if s.epoch != epoch {
            *s = fresh;
        }
        s
    }

    /// Registers a client's `HELLO` and returns the highest sequence number
    /// written for it, for the `WELCOME` (0: none). A new epoch replaces the
    /// client id's previous one.
    pub fn hello(&mut self, client_id: &str, epoch: u64) -> u64 {
        self.stream(client_id, epoch).written
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
        let s = match self.clients.get_mut(client_id) {
            Some(s) if s.epoch == epoch => s,
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
            None => self.stream(client_id, epoch),
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

    /// Records that everything up to `last` is written, and returns the
    /// highest written sequence number, for the `ACK`. `None` when the
    /// client id has moved to another epoch since (a newer connection of a
    /// restarted client): this connection's client is gone, send nothing.
    pub fn commit(&mut self, client_id: &str, epoch: u64, last: u64) -> Option<u64> {
        let s = self.clients.get_mut(client_id)?;
        if s.epoch != epoch {
            return None;
        }
        s.written = s.written.max(last.min(s.admitted));
        Some(s.written)
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
    /// client connects.
    pub fn restore(&mut self, client_id: &str, epoch: u64, written: u64) {
        let s = self.stream(client_id, epoch);
        s.written = s.written.max(written);
        s.admitted = s.admitted.max(written);
    }

    /// `(client id, epoch, highest written)` of every client id, to save.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64, u64)> + '_ {
        self.clients
            .iter()
            .map(|(id, s)| (&**id, s.epoch, s.written))
    }

    /// Forgets a client id; returns whether it was known. A batch resent
    /// under it afterwards is written again.
    pub fn forget(&mut self, client_id: &str) -> bool {
        self.clients.remove(client_id).is_some()
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

    fn admit(d: &mut Dedup, first: u64, count: u32) -> Result<(u32, u32), WireError> {
        d.admit("c", 1, first, count).map(|a| (a.skip, a.write))
    }

    #[test]
    fn a_new_client_starts_anywhere_then_must_be_contiguous() {
        let mut d = Dedup::new();
        assert_eq!(d.hello("c", 1), 0);
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
    fn sequence_numbers_near_the_top_do_not_overflow() {
        let mut d = Dedup::new();
        assert_eq!(admit(&mut d, u64::MAX - 1, 2), Ok((0, 2)));
        assert_eq!(admit(&mut d, u64::MAX, 1), Ok((1, 0)));
        assert_eq!(admit(&mut d, 1, 0), Ok((0, 0)));
    }
}
