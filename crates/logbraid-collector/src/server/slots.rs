//! Connection slots: how many stream connections the collector holds open,
//! shared so that no listener, no peer and no crowd of silent connections
//! can take them all.
//!
//! | limit | default | what it keeps |
//! |---|---|---|
//! | total | `max_connections`, lowered to fit `RLIMIT_NOFILE` | the process from running out of descriptors |
//! | per listener | the total less a share kept for each other stream listener (a sixteenth of the total, 1 to 64) | room on every other listener |
//! | per peer address | `max_connections_per_peer` | room for every other host |
//! | Unix reserve | with a Unix listener: an eighth of the total, at most 64 | room for the local native clients, whatever the network does |
//!
//! A connection is *pending* until it has sent its first complete frame
//! (a native `HELLO`, a first record). When a new connection meets a full
//! limit, the oldest connection counted against that limit that has been
//! pending for [`Limits::evict_after`] (a second) is evicted to make room:
//! a crowd of connections that never say anything cannot keep a client
//! that speaks out, and the crowd loses nothing (it sent nothing). A
//! client's first frame arrives well within that second, so a burst of new
//! connections cannot evict one another. Only when no such connection
//! holds the limit is the new one refused.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The limits of [`Slots`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, all listeners together.
    pub total: usize,
    /// Connections open at once on one listener.
    pub per_listener: usize,
    /// Connections open at once from one peer address (Unix sockets have
    /// no address and are not counted here).
    pub per_peer: usize,
    /// Slots only Unix-socket connections may take: part of `total`.
    pub unix_reserve: usize,
    /// How long a connection must have been pending before it can be
    /// evicted.
    pub evict_after: Duration,
}

impl Limits {
    /// The limits for `total` connections over `stream_listeners` stream
    /// listeners (`unix` of them Unix sockets), with `per_peer` from one
    /// address (see the module documentation for the shares).
    pub fn new(total: usize, stream_listeners: usize, unix: usize, per_peer: usize) -> Limits {
        let total = total.max(1);
        let share = (total / 16).clamp(1, 64);
        let others = stream_listeners.saturating_sub(1);
        let per_listener = total.saturating_sub(others * share).max(1);
        Limits {
            total,
            per_listener,
            per_peer: per_peer.max(1),
            unix_reserve: if unix > 0 { (total / 8).min(64) } else { 0 },
            evict_after: Duration::from_secs(1),
        }
    }
}

/// Why a connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// Every slot is taken.
    Total,
    /// The listener's share is taken.
    Listener,
    /// The peer address's share is taken.
    Peer,
}

/// The slots of one server (see the module documentation).
#[derive(Debug)]
pub struct Slots {
    limits: Limits,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// Connections in the shared slots (all but those in the reserve).
    shared: usize,
    /// Connections in the Unix reserve.
    reserved: usize,
    per_listener: HashMap<usize, usize>,
    per_peer: HashMap<String, usize>,
    /// Pending connections, oldest first.
    pending: BTreeMap<u64, Held>,
}

/// What a slot holds, and how to end its connection.
#[derive(Clone, Debug)]
struct Held {
    listener: usize,
    peer: Option<String>,
    reserved: bool,
    since: Instant,
    released: Arc<AtomicBool>,
    evict: Arc<Notify>,
}

impl State {
    fn take(&mut self, h: &Held) {
        if h.reserved {
            self.reserved += 1;
        } else {
            self.shared += 1;
            *self.per_listener.entry(h.listener).or_default() += 1;
            if let Some(p) = &h.peer {
                *self.per_peer.entry(p.clone()).or_default() += 1;
            }
        }
    }

    fn give_back(&mut self, h: &Held) {
        if h.reserved {
            self.reserved -= 1;
            return;
        }
        self.shared -= 1;
        if let Some(n) = self.per_listener.get_mut(&h.listener) {
            *n -= 1;
            if *n == 0 {
                self.per_listener.remove(&h.listener);
            }
        }
        if let Some(p) = &h.peer {
            if let Some(n) = self.per_peer.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    self.per_peer.remove(p);
                }
            }
        }
    }

    /// The first limit a new shared connection would break.
    fn full(&self, limits: &Limits, listener: usize, peer: Option<&str>) -> Option<Full> {
        if self.per_listener.get(&listener).copied().unwrap_or(0) >= limits.per_listener {
            Some(Full::Listener)
        } else if peer
            .is_some_and(|p| self.per_peer.get(p).copied().unwrap_or(0) >= limits.per_peer)
        {
            Some(Full::Peer)
        } else if self.shared >= limits.total - limits.unix_reserve.min(limits.total - 1) {
            Some(Full::Total)
        } else {
            None
        }
    }

    /// Ends the oldest pending connection that holds a slot counted
    /// against `full`; false when there is none.
    fn evict(&mut self, limits: &Limits, full: Full, listener: usize, peer: Option<&str>) -> bool {
        let victim = self.pending.iter().find_map(|(&id, h)| {
            let counts = !h.reserved
                && h.since.elapsed() >= limits.evict_after
                && match full {
                    Full::Total => true,
                    Full::Listener => h.listener == listener,
                    Full::Peer => h.peer.as_deref() == peer,
                };
            counts.then_some(id)
        });
        let Some(id) = victim else {
            return false;
        };
        let h = self.pending.remove(&id).expect("found above");
        if !h.released.swap(true, Ordering::AcqRel) {
            self.give_back(&h);
        }
        h.evict.notify_one();
        true
    }
}

impl Slots {
    /// Slots under `limits`.
    pub fn new(limits: Limits) -> Slots {
        Slots {
            limits,
            state: Mutex::new(State::default()),
        }
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Counters only: a panic elsewhere leaves them consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections holding a slot now.
    pub fn open(&self) -> usize {
        let st = self.lock();
        st.shared + st.reserved
    }

    /// A slot for a new connection on `listener` from `peer` (`None`: a
    /// Unix socket), evicting pending connections as the module
    /// documentation says; the limit that turned it away otherwise.
    pub fn acquire(self: &Arc<Self>, listener: usize, peer: Option<&str>) -> Result<Slot, Full> {
        let mut st = self.lock();
        let reserved = peer.is_none() && st.reserved < self.limits.unix_reserve;
        if !reserved {
            // Each eviction frees one slot under one limit; three limits
            // may each need one.
            let mut evictions = 0;
            while let Some(full) = st.full(&self.limits, listener, peer) {
                if evictions == 3 || !st.evict(&self.limits, full, listener, peer) {
                    return Err(full);
                }
                evictions += 1;
            }
        }
        let id = st.next_id;
        st.next_id += 1;
        let held = Held {
            listener,
            peer: peer.map(str::to_string),
            reserved,
            since: Instant::now(),
            released: Arc::new(AtomicBool::new(false)),
            evict: Arc::new(Notify::new()),
        };
        st.take(&held);
        st.pending.insert(id, held.clone());
        Ok(Slot {
            slots: Arc::clone(self),
            id,
            held,
        })
    }
}

/// One connection's slot, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    held: Held,
}

impl Slot {
    /// The connection sent its first complete frame: it can no longer be
    /// evicted.
    pub fn spoke(&self) {
        self.slots.lock().pending.remove(&self.id);
    }

    /// Completes when the connection is evicted to make room for another.
    pub async fn evicted(&self) {
        self.held.evict.notified().await
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.slots.lock();
        st.pending.remove(&self.id);
        if !self.held.released.swap(true, Ordering::AcqRel) {
            st.give_back(&self.held);
        }
    }
}

/// Descriptors kept for everything but connections: listeners, the files
/// and state being written, the runtime's own.
const DESCRIPTORS_KEPT: u64 = 64;

/// Raises this process's soft limit on open files to its hard limit and
/// returns `requested` connections, or fewer when that limit leaves room
/// for fewer (each connection is a descriptor), with a sentence saying so.
pub fn fit_open_files(requested: usize) -> (usize, Option<String>) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    let below_hard = match (lim.current, lim.maximum) {
        (Some(soft), Some(hard)) => soft < hard,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if below_hard {
        let raised = rustix::process::Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            lim = raised;
        }
    }
    let Some(soft) = lim.current else {
        return (requested, None);
    };
    let room = soft.saturating_sub(DESCRIPTORS_KEPT).max(1);
    if (requested as u64) <= room {
        return (requested, None);
    }
    let fitted = room as usize;
    (
        fitted,
        Some(format!(
            "max_connections lowered from {requested} to {fitted}: the open-file limit \
             (RLIMIT_NOFILE) is {soft}, and {DESCRIPTORS_KEPT} are kept for files and listeners"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots whose pending connections can be evicted at once.
    fn slots(total: usize, listeners: usize, per_peer: usize) -> Arc<Slots> {
        let mut limits = Limits::new(total, listeners, 1, per_peer);
        limits.evict_after = Duration::ZERO;
        Arc::new(Slots::new(limits))
    }

    #[test]
    fn a_connection_just_made_is_not_evicted() {
        let s = Arc::new(Slots::new(Limits::new(8, 1, 1, 100)));
        let held: Vec<Slot> = (0..7).map(|_| s.acquire(0, Some("a")).unwrap()).collect();
        // All seven are pending, none for a second yet: a burst of new
        // connections is refused, not let in at their expense.
        assert_eq!(s.acquire(0, Some("b")).unwrap_err(), Full::Total);
        drop(held);
    }

    #[test]
    fn a_full_limit_evicts_the_oldest_silent_connection_it_holds() {
        let s = slots(8, 1, 100);
        // A Unix reserve of 1: seven shared slots.
        let held: Vec<Slot> = (0..7).map(|_| s.acquire(0, Some("a")).unwrap()).collect();
        held[0].spoke();
        held[2].spoke();
        // Full: the oldest silent one (1) makes room.
        let late = s.acquire(0, Some("b")).unwrap();
        late.spoke();
        ready(held[1].evicted());
        assert_eq!(s.open(), 7);
        // Then the silent ones in age order (3 to 6), none that spoke.
        let cs: Vec<Slot> = (3..7)
            .map(|i| {
                let c = s.acquire(0, Some("c")).unwrap();
                c.spoke();
                ready(held[i].evicted());
                c
            })
            .collect();
        assert_eq!(s.acquire(0, Some("d")).unwrap_err(), Full::Total);
        drop(held);
        assert_eq!(s.open(), 5, "the late one and four from c");
        drop((late, cs));
        assert_eq!(s.open(), 0);
    }

    #[test]
    fn unix_clients_keep_their_reserve() {
        let s = slots(16, 1, 100);
        assert_eq!(s.limits().unix_reserve, 2);
        let net: Vec<Slot> = (0..14).map(|_| s.acquire(0, Some("a")).unwrap()).collect();
        for n in &net {
            n.spoke();
        }
        assert_eq!(s.acquire(0, Some("a")).unwrap_err(), Full::Total);
        let u1 = s.acquire(1, None).unwrap();
        let u2 = s.acquire(1, None).unwrap();
        u1.spoke();
        u2.spoke();
        // The reserve is taken: a third Unix client needs a shared slot.
        assert_eq!(s.acquire(1, None).unwrap_err(), Full::Total);
        drop(u1);
        assert!(s.acquire(1, None).is_ok());
        drop(net);
    }

    #[test]
    fn one_peer_and_one_listener_get_their_share_only() {
        let s = slots(100, 2, 3);
        assert_eq!(s.limits().per_listener, 94);
        let a: Vec<Slot> = (0..3)
            .map(|_| s.acquire(0, Some("10.0.0.1")).unwrap())
            .collect();
        for x in &a {
            x.spoke();
        }
        assert_eq!(s.acquire(0, Some("10.0.0.1")).unwrap_err(), Full::Peer);
        assert!(s.acquire(0, Some("10.0.0.2")).is_ok());
        // A silent connection of the same peer makes room for it.
        drop(a);
        let silent = s.acquire(0, Some("10.0.0.1")).unwrap();
        let _b: Vec<Slot> = (0..2)
            .map(|_| s.acquire(0, Some("10.0.0.1")).unwrap())
            .collect();
        let next = s.acquire(0, Some("10.0.0.1")).unwrap();
        ready(silent.evicted());
        drop(next);

        // Two listeners, no Unix one: no reserve.
        let s = Arc::new(Slots::new(Limits::new(8, 2, 0, 100)));
        assert_eq!(s.limits().unix_reserve, 0);
        assert_eq!(s.limits().per_listener, 7);
        let on0: Vec<Slot> = (0..7)
            .map(|i| s.acquire(0, Some(&format!("p{i}"))).unwrap())
            .collect();
        for x in &on0 {
            x.spoke();
        }
        assert_eq!(s.acquire(0, Some("q")).unwrap_err(), Full::Listener);
        assert!(s.acquire(1, Some("q")).is_ok());
    }

    #[test]
    fn the_connection_limit_fits_the_open_file_limit() {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let (n, note) = fit_open_files(usize::MAX / 2);
        let soft_after = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        // The soft limit was raised to the hard one where it could be.
        assert!(soft_after >= soft.current);
        match soft_after {
            Some(soft) => {
                assert_eq!(n as u64, soft - DESCRIPTORS_KEPT);
                assert!(note.unwrap().contains(&format!("RLIMIT_NOFILE) is {soft}")));
            }
            None => assert_eq!(n, usize::MAX / 2),
        }
        assert_eq!(fit_open_files(10), (10, None));
    }

    /// Polls `f` once and requires it to be ready.
    fn ready<F: std::future::Future>(f: F) {
        let mut f = std::pin::pin!(f);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(f.as_mut().poll(&mut cx).is_ready(), "not evicted");
    }
}
