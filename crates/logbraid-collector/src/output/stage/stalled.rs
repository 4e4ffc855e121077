//! Deliveries that wait for a file that could not be opened or written.

use std::sync::atomic::Ordering;
use std::time::Instant;

use logbraid::wire::Frame;

use super::super::files::report;
use super::super::merge::Key;
use super::super::{Body, Delivery, OutputError, RETRY};
use super::{source_key, Stage};

/// A delivery that is partly written: `next` records of its body (after a
/// native batch's `skip`) are in the files, the rest waits.
#[derive(Debug)]
pub(super) struct Stalled {
    pub(super) d: Delivery,
    pub(super) permits: u32,
    pub(super) next: usize,
    pub(super) key: Key,
}

/// Whose order a delivery belongs to: a native client's numbering, or the
/// connection's source.
pub(super) fn delivery_key(d: &Delivery) -> Key {
    match &d.ack {
        Some(a) if a.is_numbered() => Key::Client(a.client_id.clone()),
        Some(_) => source_key(&d.source),
        None => source_key(&d.source),
    }
}

impl Stage {
    pub(super) fn count_held(&self, s: &Stalled) {
        self.counters
            .held
            .fetch_add(self.held_in(s), Ordering::Relaxed);
    }

    /// Says that a record cannot be written, and when it is tried again.
    pub(super) fn stall(&mut self, e: &OutputError) {
        report(&format!(
            "{e}; the records for it wait (acknowledged only once written) \
             and are tried again every {}s",
            RETRY.as_secs()
        ));
        self.retry_at.get_or_insert_with(|| Instant::now() + RETRY);
    }

    /// Tries the stalled deliveries again, in order; one that still
    /// cannot be written keeps the later ones of its source waiting.
    pub(super) fn retry_stalled(&mut self) {
        if let Some(h) = self.stalled_held.take() {
            self.stalled_held = self.write_held(h);
        }
        let mut blocked: Vec<Key> = Vec::new();
        for s in std::mem::take(&mut self.stalled) {
            if blocked.contains(&s.key) {
                self.stalled.push_back(s);
                continue;
            }
            if let Some(s) = self.write_delivery(s) {
                blocked.push(s.key.clone());
                self.stalled.push_back(s);
            }
        }
        let held: u64 = self.stalled.iter().map(|s| self.held_in(s)).sum::<u64>()
            + u64::from(self.stalled_held.is_some());
        self.counters.held.store(held, Ordering::Relaxed);
    }

    pub(super) fn held_in(&self, s: &Stalled) -> u64 {
        let total = match &s.d.body {
            Body::Native { frame, skip } => match logbraid::wire::decode(frame) {
                Ok(Frame::Batch(b)) => (b.len() as usize).saturating_sub(*skip as usize),
                _ => 0,
            },
            Body::Records(rs) => rs.len(),
            Body::Batch(b) => b.len(),
        };
        total.saturating_sub(s.next) as u64
    }
}
