//! Decoders for the formats other programs send: Python `logging` pickles
//! and syslog. Each turns bytes into [`logbraid::OwnedRecord`]s and never
//! panics on input.
//!
//! Everything here is sans I/O: the listeners read sockets and hand the
//! bytes over.
//!
//! | format | framing | record |
//! |---|---|---|
//! | Python `SocketHandler` (TCP) | [`python::FrameDecoder`] | [`python::record_from_pickle`] |
//! | Python `DatagramHandler` (UDP) | [`python::datagram`] | [`python::record_from_pickle`] |
//! | syslog over UDP | one message per datagram | [`syslog::parse`] |
//! | syslog over TCP (RFC 6587) | [`syslog::SyslogTcpDecoder`] | [`syslog::parse`] |
//! | OpenTelemetry logs (OTLP/HTTP, OTLP/gRPC) | one request | [`otlp::decode`], [`otlp::map`] |
//!
//! The pickle reader underneath never imports or calls code:
//! [`pickle::decode`] rejects every pickle that names code, and
//! [`pickle::Decoder::modelling_objects`], which the Python intake uses,
//! reads the standard classes a record's `extra` holds from the shape
//! CPython pickles them in, without importing them.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use logbraid::Source;

pub mod otlp;
pub mod pickle;
pub mod python;
pub mod syslog;

pub use python::IntakeError;

/// Hands out one shared [`Source`] per distinct (host, pid, process name),
/// so that the records of one process share one allocation.
///
/// Bounded in bytes: each source counts its host, its process name and
/// [`SourceCache::ENTRY_OVERHEAD`]; when the next one would take it past
/// [`SourceCache::DEFAULT_CAPACITY`] bytes (or the capacity given to
/// [`SourceCache::with_capacity`]) it forgets them all and starts again, so
/// a peer that invents a new pid or a long name per record cannot grow it.
/// A source larger than an eighth of the capacity is handed out without
/// being kept at all.
#[derive(Debug)]
pub struct SourceCache {
    /// Keyed by a hash of the three parts, so a lookup allocates nothing;
    /// each bucket is checked for equality.
    map: HashMap<u64, Vec<Arc<Source>>>,
    /// The source returned last: a stream's records nearly always share
    /// it, and comparing is cheaper than hashing.
    last: Option<Arc<Source>>,
    hasher: RandomState,
    len: usize,
    bytes: usize,
    capacity: usize,
}

impl Default for SourceCache {
    fn default() -> Self {
        SourceCache::with_capacity(SourceCache::DEFAULT_CAPACITY)
    }
}

impl SourceCache {
    /// Bytes a default cache keeps.
    pub const DEFAULT_CAPACITY: usize = 64 << 10;

    /// What one source costs beyond its text: the shared allocation
    /// (counts and the [`Source`] itself) and its slot in the map.
    pub const ENTRY_OVERHEAD: usize = 96;

    /// What `source` costs in a cache (and, shared or not, in memory).
    pub fn cost(source: &Source) -> usize {
        source.host.len() + source.process_name.len() + SourceCache::ENTRY_OVERHEAD
    }

    /// An empty cache with the default capacity.
    pub fn new() -> Self {
        SourceCache::default()
    }

    /// An empty cache that keeps at most `capacity` bytes of sources.
    pub fn with_capacity(capacity: usize) -> Self {
        SourceCache {
            map: HashMap::new(),
            last: None,
            hasher: RandomState::new(),
            len: 0,
            bytes: 0,
            capacity,
        }
    }

    /// Bytes the cached sources take, by [`SourceCache::cost`]: at most
    /// the capacity.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many sources are cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The shared source for these three values, created on first use.
    pub fn get(&mut self, host: &str, pid: u32, process_name: &str) -> Arc<Source> {
        let same = |s: &Source| s.pid == pid && s.host == host && s.process_name == process_name;
        if let Some(last) = self.last.as_ref().filter(|s| same(s)) {
            return last.clone();
        }
        let source = self.lookup(host, pid, process_name);
        self.last = Some(source.clone());
        source
    }

    fn lookup(&mut self, host: &str, pid: u32, process_name: &str) -> Arc<Source> {
        let key = self.hasher.hash_one((host, pid, process_name));
        if let Some(found) = self.map.get(&key).and_then(|bucket| {
            bucket
                .iter()
                .find(|s| s.pid == pid && s.host == host && s.process_name == process_name)
        }) {
            return found.clone();
        }
        let source = Arc::new(Source {
            host: host.to_string(),
            pid,
            process_name: process_name.to_string(),
        });
        let cost = SourceCache::cost(&source);
        if cost > self.capacity / 8 {
            return source;
        }
        if self.bytes + cost > self.capacity {
            // The map's own table goes too: it grew with the sources.
            self.map = HashMap::new();
            self.len = 0;
            self.bytes = 0;
        }
        self.map.entry(key).or_default().push(source.clone());
        self.len += 1;
        self.bytes += cost;
        source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_sources_share_one_arc() {
        let mut cache = SourceCache::new();
        let a = cache.get("h", 1, "p");
        let b = cache.get("h", 1, "p");
        let c = cache.get("h", 2, "p");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(cache.len(), 2);
        assert_eq!(
            *c,
            Source {
                host: "h".into(),
                pid: 2,
                process_name: "p".into()
            }
        );
    }

    #[test]
    fn a_full_cache_starts_again() {
        let one = 2 + SourceCache::ENTRY_OVERHEAD;
        let mut cache = SourceCache::with_capacity(8 * one + 1);
        for pid in 0..8 {
            cache.get("h", pid, "p");
        }
        assert_eq!((cache.len(), cache.bytes()), (8, 8 * one));
        cache.get("h", 8, "p");
        assert_eq!((cache.len(), cache.bytes()), (1, one));
    }

    #[test]
    fn the_cache_is_bounded_in_bytes_and_keeps_no_large_source() {
        let mut cache = SourceCache::new();
        let long = "p".repeat(256 << 10);
        // A new long name per record: handed out whole, never kept.
        for pid in 0..100 {
            let s = cache.get("h", pid, &long);
            assert_eq!((s.pid, s.process_name.len()), (pid, 256 << 10));
            assert_eq!(cache.bytes(), 0);
        }
        // Names just under an eighth of the capacity: kept, within it.
        let name = "n".repeat(SourceCache::DEFAULT_CAPACITY / 8 - 1 - SourceCache::ENTRY_OVERHEAD);
        for pid in 0..100 {
            cache.get("h", pid, &name);
            assert!(cache.bytes() <= SourceCache::DEFAULT_CAPACITY);
        }
        // Eight fill it; the ninth started it again: 100 = 12 × 8 + 4.
        assert_eq!(cache.len(), 4);
        assert_eq!(cache.bytes(), 4 * (SourceCache::DEFAULT_CAPACITY / 8));
    }
}
