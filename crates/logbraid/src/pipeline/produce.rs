//! The caller's side: stamping, queueing under the overflow policy, and
//! the direct path.

use std::cell::RefCell;
use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::caller_thread::{thread_id, thread_name};
use super::entry::{self, Deferred, Parts};
use super::ring::{ProducerPos, Ring};
use super::{lock, tsc, Callsite, Local, Mode, Producer, Shared, LOCAL};
use crate::clock;
use crate::level::Level;
use crate::macros::{FormatFn, Site};
use crate::options::Overflow;
use crate::record::{Fields, FieldsBuf, Record, Source};

impl Shared {
    #[inline]
    pub(super) fn now(&self) -> i64 {
        match &self.clock {
            Some(c) => c.now_ns(),
            None => clock::now_ns(),
        }
    }

    /// The caller's timestamp: TSC ticks where they can be trusted and no
    /// clock was injected, nanoseconds otherwise.
    #[inline]
    fn stamp(&self) -> (i64, bool) {
        if self.use_tsc {
            (tsc::ticks() as i64, true)
        } else {
            (self.now(), false)
        }
    }

    pub(super) fn wake_writer(&self) {
        if let Some(t) = self.writer_thread.get() {
            t.unpark();
        }
    }

    /// Whether this process is a fork of the one that started the
    /// pipeline. Such a pipeline has no writer: flushing and shutting it
    /// down return at once, and a record logged to it is counted as
    /// dropped (and said once on stderr).
    #[inline]
    pub(crate) fn orphaned(&self) -> bool {
        crate::sys::fork::generation() != self.fork_gen
    }

    #[cold]
    fn drop_orphaned(&self) {
        let before = self.retired_dropped.fetch_add(1, Ordering::Relaxed);
        self.retired_logged.fetch_add(1, Ordering::Relaxed);
        if before == 0 {
            let _ = writeln!(
                std::io::stderr(),
                "logbraid: pid {}: a logger started before fork() is used in the child; its records are dropped (build a new logger in the child)",
                std::process::id()
            );
        }
    }

    /// Logs one record of this process. `fill` writes the message and the
    /// fields into the buffers it is given.
    pub(crate) fn log(
        &self,
        site: &Callsite<'_>,
        fill: &mut dyn FnMut(&mut Vec<u8>, &mut FieldsBuf),
    ) {
        self.log_record(site, None, fill)
    }

    /// Logs one record whose message `format` makes, on the writer's
    /// thread, from the values `fill` writes (see
    /// [`crate::Logger::log_values`]).
    pub(crate) fn log_values(
        &self,
        site: &Callsite<'_>,
        format: FormatFn,
        fill: &mut dyn FnMut(&mut Vec<u8>, &mut FieldsBuf),
    ) {
        self.log_record(site, Some(Deferred { site: None, format }), fill)
    }

    /// Logs one record of a logbraid macro: `fill` writes the encoded
    /// values of its placeholders, which the writer formats (see
    /// [`crate::macros`]), and its fields. Generic, so each call site's
    /// encoding is inlined into its own copy of the caller's path.
    #[inline]
    pub(crate) fn log_deferred<F: FnMut(&mut Vec<u8>, &mut FieldsBuf)>(
        &self,
        level: Level,
        site: &'static Site,
        format: FormatFn,
        fill: F,
    ) {
        let callsite = Callsite {
            level,
            target: site.target,
            module: Some(site.module),
            file: Some(site.file),
            line: Some(site.line),
            function: site.function,
        };
        self.log_record(
            &callsite,
            Some(Deferred {
                site: Some(site),
                format,
            }),
            fill,
        )
    }

    /// The fast path of a macro's record whose values are all copied raw
    /// and that has no fields: `write` writes the values, `size` bytes,
    /// straight into this thread's existing ring. False, with nothing
    /// logged, whenever anything is out of the ordinary (no ring yet, a
    /// full ring, a large record, synchronous mode, a stopped writer, a
    /// fork, a re-entrant call, the writer thread): the caller then takes
    /// the general path, which handles each of these.
    #[inline(always)]
    pub(crate) fn try_log_deferred(
        &self,
        level: Level,
        site: &'static Site,
        format: FormatFn,
        size: usize,
        write: &mut impl FnMut(&mut crate::macros::Out<'_>),
    ) -> bool {
        if self.mode == Mode::Sync || self.orphaned() {
            return false;
        }
        // Read first: the clock's read is the longest step of the call,
        // and what follows does not wait for it.
        let stamp = self.stamp();
        // Only the thread-local's address comes out of `try_with`: the rest
        // of the call then stays inline at the call site, its values in
        // registers, rather than passed by reference into a closure that
        // the compiler keeps out of line (35 instructions of a call of 160).
        let Ok(local) = LOCAL.try_with(|local| local as *const RefCell<Local>) else {
            return false;
        };
        // SAFETY: `try_with` succeeded, so this thread's `LOCAL` is alive,
        // and it stays alive until the thread's local destructors run,
        // which nothing below can start; the reference is used only on
        // this thread, before this function returns.
        let local = unsafe { &*local };
        let Ok(mut local) = local.try_borrow_mut() else {
            return false;
        };
        let Some(p) = local.producers.iter_mut().find(|p| p.pipeline == self.id) else {
            return false;
        };
        if self.stopped.load(Ordering::Acquire) {
            return false;
        }
        let ring = &*p.ring;
        ring.counters.bump_logged();
        let d = (site, format);
        if !entry::push_deferred_raw(ring, &mut p.pos, level, d, size, || stamp, write) {
            ring.counters.unbump_logged();
            return false;
        }
        self.maybe_wake(ring, &mut p.pos);
        true
    }

    #[inline]
    fn log_record<F: FnMut(&mut Vec<u8>, &mut FieldsBuf)>(
        &self,
        site: &Callsite<'_>,
        deferred: Option<Deferred>,
        mut fill: F,
    ) {
        if self.orphaned() {
            return self.drop_orphaned();
        }
        let stamp = self.stamp();
        let handled = LOCAL.try_with(|local| match local.try_borrow_mut() {
            Ok(mut local) => {
                let local = &mut *local;
                local.message.clear();
                local.fields.clear();
                fill(&mut local.message, &mut local.fields);
                self.queue_filled(local, site, stamp, deferred);
                true
            }
            Err(_) => false,
        });
        if handled != Ok(true) {
            self.log_reentrant(site, deferred, &mut fill);
        }
    }

    /// Queues the record `fill` wrote into this thread's buffers.
    fn queue_filled(
        &self,
        local: &mut Local,
        site: &Callsite<'_>,
        (stamp, is_tsc): (i64, bool),
        deferred: Option<Deferred>,
    ) {
        if local.is_writer {
            // Dropped and counted: logging from inside a sink would make the
            // writer wait for itself.
            self.retired_logged.fetch_add(1, Ordering::Relaxed);
            self.retired_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut parts = Parts::at_site(
            site,
            (stamp, is_tsc),
            &local.message,
            local.fields.as_bytes(),
        );
        parts.deferred = deferred;
        if !self.queued(&mut local.producers, &parts) {
            if parts.tsc {
                parts.timestamp_ns = self.now();
                parts.tsc = false;
            }
            self.write_direct(&parts);
        }
    }

    /// A re-entrant call (a Display impl that logs) or a thread whose local
    /// storage is gone: queues through the shared ring, which carries the
    /// thread with each record. A macro's message is formatted here.
    #[cold]
    fn log_reentrant(
        &self,
        site: &Callsite<'_>,
        deferred: Option<Deferred>,
        fill: &mut dyn FnMut(&mut Vec<u8>, &mut FieldsBuf),
    ) {
        let mut message = Vec::new();
        let mut fields = FieldsBuf::new();
        fill(&mut message, &mut fields);
        if let Some(d) = deferred {
            let mut text = Vec::new();
            d.format(&message, &mut text);
            message = text;
        }
        let mut parts = Parts::at_site(site, (self.now(), false), &message, fields.as_bytes());
        let source = Source::current();
        parts.foreign = Some((thread_id(), None, &source));
        self.log_shared(&parts);
    }

    fn log_shared(&self, parts: &Parts<'_>) {
        let queued = {
            let mut shared = lock(&self.shared_ring);
            !self.stopped.load(Ordering::Acquire) && self.push(&mut shared, parts)
        };
        if !queued {
            self.write_direct(parts);
        }
    }

    /// Logs a record that came from elsewhere (another process): its
    /// source and thread are kept.
    pub(crate) fn log_foreign(&self, record: &Record<'_>, source: &Arc<Source>) {
        if self.orphaned() {
            return self.drop_orphaned();
        }
        let parts = Parts {
            timestamp_ns: record.timestamp_ns,
            level: record.level,
            target: record.target,
            module: record.module,
            file: record.file,
            line: record.line,
            function: record.function,
            message: record.message,
            fields: record.fields.encoded(),
            foreign: Some((record.thread_id, record.thread_name, source)),
            tsc: false,
            deferred: None,
        };
        let handled = LOCAL.try_with(|local| match local.try_borrow_mut() {
            Ok(mut local) if !local.is_writer => {
                if !self.queued(&mut local.producers, &parts) {
                    self.write_direct(&parts);
                }
                true
            }
            _ => false,
        });
        if handled != Ok(true) {
            self.log_shared(&parts);
        }
    }

    /// Queues through this thread's ring, creating it on first use.
    /// Returns false when the record must take the direct path.
    fn queued(&self, producers: &mut Vec<Producer>, parts: &Parts<'_>) -> bool {
        if self.mode == Mode::Sync || self.stopped.load(Ordering::Acquire) {
            return false;
        }
        let idx = self.producer(producers, false);
        self.push(&mut producers[idx], parts)
    }

    /// Index of this thread's producer for this pipeline, its ring made
    /// (and, with `prefault`, mapped in) when it has none yet.
    fn producer(&self, producers: &mut Vec<Producer>, prefault: bool) -> usize {
        if let Some(i) = producers.iter().position(|p| p.pipeline == self.id) {
            return i;
        }
        // Forget rings of pipelines that no longer exist.
        producers.retain(|p| Arc::strong_count(&p.ring) > 1);
        let mut ring = Ring::new(
            self.ring_bytes,
            thread_id(),
            thread_name(),
            Box::new(entry::release),
        );
        if prefault {
            ring.prefault();
        }
        let ring = Arc::new(ring);
        *lock(&ring.producer_thread) = Some(thread::current());
        lock(&self.rings).push(Arc::clone(&ring));
        self.rings_gen.fetch_add(1, Ordering::Release);
        producers.push(Producer {
            pipeline: self.id,
            ring,
            pos: ProducerPos::default(),
        });
        producers.len() - 1
    }

    /// Makes this thread's queue now and maps its memory in (see
    /// [`crate::preallocate`]). Nothing in synchronous mode, after a fork
    /// or once the writer stopped.
    pub(crate) fn preallocate(&self) {
        if self.mode == Mode::Sync || self.orphaned() || self.stopped.load(Ordering::Acquire) {
            return;
        }
        let _ = LOCAL.try_with(|local| {
            let Ok(mut local) = local.try_borrow_mut() else {
                return;
            };
            if local.is_writer {
                return;
            }
            let existed = local.producers.iter().any(|p| p.pipeline == self.id);
            let idx = self.producer(&mut local.producers, true);
            if existed {
                local.producers[idx].ring.populate();
            }
        });
    }

    /// Pushes into `p`'s ring, applying the overflow policy when it is full.
    fn push(&self, p: &mut Producer, parts: &Parts<'_>) -> bool {
        let ring = &*p.ring;
        ring.counters.bump_logged();
        if parts.push(ring, &mut p.pos) {
            self.maybe_wake(ring, &mut p.pos);
            return true;
        }
        self.full_waits.fetch_add(1, Ordering::Relaxed);
        match self.overflow {
            Overflow::DropNewest => {
                ring.counters.bump_dropped();
                self.wake_writer();
                true
            }
            Overflow::DropOldest => {
                // Entries are at most a quarter of the ring, so dropping old
                // ones always makes room eventually.
                while !parts.push(ring, &mut p.pos) {
                    ring.drop_oldest(&mut p.pos);
                }
                self.wake_writer();
                true
            }
            _ => match self.wait_hook {
                None => self.block_until_pushed(ring, &mut p.pos, parts),
                Some(hook) => {
                    let mut pushed = false;
                    hook(&mut || pushed = self.block_until_pushed(ring, &mut p.pos, parts));
                    pushed
                }
            },
        }
    }

    #[inline]
    fn maybe_wake(&self, ring: &Ring, pos: &mut ProducerPos) {
        // Wake a sleeping writer once the ring is half full, so a burst does
        // not wait for the writer's idle timer. The cached head is refreshed
        // only when it says half full, so the reader's line is read about
        // once per half ring of traffic, not on every call.
        let half = ring.capacity() / 2;
        if pos.tail.wrapping_sub(pos.cached_head) > half {
            pos.cached_head = ring.head_now();
            if pos.tail.wrapping_sub(pos.cached_head) > half
                && self.progress.sleeping.load(Ordering::Relaxed)
            {
                self.wake_writer();
            }
        }
    }

    fn block_until_pushed(&self, ring: &Ring, pos: &mut ProducerPos, parts: &Parts<'_>) -> bool {
        ring.waiting.store(true, Ordering::Release);
        let mut spins = 0u32;
        let pushed = loop {
            self.wake_writer();
            if parts.push(ring, pos) {
                break true;
            }
            if self.stopped.load(Ordering::Acquire) {
                break false;
            }
            spins += 1;
            if spins < 16 {
                thread::yield_now();
            } else {
                thread::park_timeout(Duration::from_micros(200));
            }
        };
        ring.waiting.store(false, Ordering::Release);
        if !pushed {
            // The writer stopped while we waited: the caller writes directly,
            // so take back the count.
            ring.counters.unbump_logged();
        }
        pushed
    }

    /// Writes on the caller's thread: synchronous mode, and after the
    /// writer stopped.
    fn write_direct(&self, parts: &Parts<'_>) {
        self.direct_logged.fetch_add(1, Ordering::Relaxed);
        let own_name;
        let own_source;
        let (thread_id, thread_name, source) = match parts.foreign {
            Some((id, name, source)) => (id, name, &**source),
            None => {
                own_name = thread_name();
                own_source = Source::current();
                (thread_id(), own_name.as_deref(), &*own_source)
            }
        };
        let text;
        let (message, plain_message) = match parts.deferred {
            Some(d) => {
                let mut t = Vec::new();
                let plain = d.format(parts.message, &mut t);
                text = t;
                (&text[..], plain)
            }
            None => (parts.message, false),
        };
        let record = Record {
            timestamp_ns: parts.timestamp_ns,
            level: parts.level,
            target: parts.target,
            message,
            plain_message,
            module: parts.module,
            file: parts.file,
            line: parts.line,
            function: parts.function,
            thread_id,
            thread_name,
            source,
            fields: Fields::from_encoded(parts.fields),
        };
        // No sinks only when the writer thread panicked and took them with
        // it: `stats` then counts every unwritten record as dropped.
        if let Some(sinks) = lock(&self.direct).as_mut() {
            let n = sinks.write(&record);
            self.progress
                .bytes_written
                .fetch_add(n as u64, Ordering::Relaxed);
            self.progress.written.fetch_add(1, Ordering::Relaxed);
            self.progress.add_errors(sinks.flush(self.flush_sync));
        }
    }
}
