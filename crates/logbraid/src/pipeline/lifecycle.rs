//! Starting a pipeline, flushing it, shutting it down, and its counters.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::entry;
use super::ring::{ProducerPos, Ring};
use super::writer::Writer;
use super::{lock, tsc, Mode, Producer, Settings, Shared, SinkSet, Stats, LIVE, LOCAL, NEXT_ID};

impl Shared {
    pub(crate) fn start(settings: Settings, sinks: SinkSet) -> std::io::Result<Arc<Shared>> {
        {
            use crate::sys::fork::{register, watch, Rank};
            register(Rank::Pipeline, super::hold_for_fork);
            register(Rank::Record, crate::record::hold_for_fork);
            watch();
        }
        if let Some(limit) = settings.signals {
            crate::sys::signal::install(limit, flush_all);
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let shared_ring = Arc::new(Ring::new(
            settings.ring_bytes,
            0,
            None,
            Box::new(entry::release),
        ));
        let shared = Arc::new(Shared {
            id,
            fork_gen: crate::sys::fork::generation(),
            mode: settings.mode,
            ring_bytes: settings.ring_bytes,
            overflow: settings.overflow,
            flush_sync: settings.flush_sync,
            use_tsc: settings.clock.is_none()
                && settings.mode == Mode::NonBlocking
                && tsc::available(),
            clock: settings.clock,
            wait_hook: settings.wait_hook,
            rings: Mutex::new(vec![Arc::clone(&shared_ring)]),
            rings_gen: AtomicU64::new(0),
            shared_ring: Mutex::new(Producer {
                pipeline: id,
                ring: shared_ring,
                pos: ProducerPos::default(),
            }),
            writer: Mutex::new(None),
            writer_thread: OnceLock::new(),
            direct: Mutex::new(None),
            stopping: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            writer_dead: AtomicBool::new(false),
            flush_requested: AtomicU64::new(0),
            retired_logged: AtomicU64::new(0),
            retired_dropped: AtomicU64::new(0),
            direct_logged: AtomicU64::new(0),
            full_waits: AtomicU64::new(0),
            progress: CachePadded::default(),
            meter: sinks.meter(),
        });
        match settings.mode {
            Mode::Sync => {
                *lock(&shared.direct) = Some(sinks);
                shared.stopped.store(true, Ordering::Release);
            }
            Mode::NonBlocking => {
                let s = Arc::clone(&shared);
                let handle = thread::Builder::new()
                    .name("logbraid-writer".into())
                    .spawn(move || {
                        let shared = Arc::clone(&s);
                        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            Writer::new(s, sinks).run()
                        }));
                        if run.is_err() {
                            shared.writer_died();
                        }
                        run.ok()
                    })?;
                let _ = shared.writer_thread.set(handle.thread().clone());
                *lock(&shared.writer) = Some(handle);
            }
        }
        let mut live = lock(&LIVE);
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&shared));
        Ok(shared)
    }

    /// Returns once every record logged before the call is written.
    pub(crate) fn flush(&self) {
        if self.orphaned() {
            return;
        }
        // The writer cannot wait for itself (a panic hook running on it).
        if LOCAL
            .try_with(|l| l.try_borrow().map(|l| l.is_writer).unwrap_or(false))
            .unwrap_or(false)
        {
            return;
        }
        if self.stopped.load(Ordering::Acquire) || self.mode == Mode::Sync {
            if let Some(s) = lock(&self.direct).as_mut() {
                self.progress.add_errors(s.flush_confirmed(self.flush_sync));
            }
            return;
        }
        let target = self.flush_requested.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake_writer();
        let mut done = lock(&self.progress.flush_done);
        while *done < target && !self.stopped.load(Ordering::Acquire) {
            done = self
                .progress
                .flush_cv
                .wait_timeout(done, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
            // The timeout only re-checks `stopped` and wakes the writer
            // again; it never gives up on the records.
            if *done < target {
                self.wake_writer();
            }
        }
    }

    /// A sink panicked on the writer thread and took the sinks with it:
    /// stop queueing, count what can no longer be written, say so.
    pub(super) fn writer_died(&self) {
        self.writer_dead.store(true, Ordering::Release);
        self.stopped.store(true, Ordering::Release);
        let st = self.stats();
        let _ = writeln!(
            std::io::stderr(),
            "logbraid: a sink panicked on the writer thread; {} queued records are lost and later records are counted as dropped",
            st.logged - st.written
        );
        self.progress.served(u64::MAX);
        for r in lock(&self.rings).iter() {
            if let Some(t) = lock(&r.producer_thread).as_ref() {
                t.unpark();
            }
        }
    }

    /// Drains, flushes and stops the writer thread. Records logged later
    /// are written directly by the caller. Idempotent.
    pub(crate) fn shutdown(&self) {
        if self.orphaned() {
            return;
        }
        let handle = lock(&self.writer).take();
        let Some(handle) = handle else {
            self.flush();
            if let Some(s) = lock(&self.direct).as_mut() {
                self.progress.add_errors(s.finish());
            }
            return;
        };
        self.stopping.store(true, Ordering::Release);
        self.wake_writer();
        let on_writer = thread::current().id() == handle.thread().id();
        if on_writer {
            return;
        }
        if let Ok(Some(sinks)) = handle.join() {
            *lock(&self.direct) = Some(sinks);
        }
        self.stopped.store(true, Ordering::Release);
        self.progress.flush_cv.notify_all();
        // Producers blocked on a full ring see `stopped` and write directly.
        for r in lock(&self.rings).iter() {
            if let Some(t) = lock(&r.producer_thread).as_ref() {
                t.unpark();
            }
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut logged = self.retired_logged.load(Ordering::Relaxed);
        let mut dropped = self.retired_dropped.load(Ordering::Relaxed);
        for r in lock(&self.rings).iter() {
            logged += r.counters.logged.load(Ordering::Relaxed);
            dropped += r.counters.dropped.load(Ordering::Relaxed);
        }
        let logged = logged + self.direct_logged.load(Ordering::Relaxed);
        let written = self.progress.written.load(Ordering::Relaxed);
        if self.writer_dead.load(Ordering::Acquire) {
            dropped = logged.saturating_sub(written);
        }
        Stats {
            logged,
            written,
            dropped,
            bytes_written: self.progress.bytes_written.load(Ordering::Relaxed),
            queue_high_water: self.progress.high_water.load(Ordering::Relaxed) as u64,
            write_errors: self.progress.write_errors.load(Ordering::Relaxed),
            full_waits: self.full_waits.load(Ordering::Relaxed),
            rotations: self.meter.rotations.load(Ordering::Relaxed),
            forward_acked: self.meter.acked.load(Ordering::Relaxed),
            forward_resent: self.meter.resent.load(Ordering::Relaxed),
            write_latency: self.meter.write.summary(),
            sync_latency: self.meter.sync.summary(),
        }
    }

    pub(super) fn dropped_total(&self, rings: &[Arc<Ring>]) -> u64 {
        self.retired_dropped.load(Ordering::Relaxed)
            + rings
                .iter()
                .map(|r| r.counters.dropped.load(Ordering::Relaxed))
                .sum::<u64>()
    }
}

/// Flushes every live pipeline: from the panic hook and at exit.
pub(crate) fn flush_all() {
    let live: Vec<_> = lock(&LIVE).iter().filter_map(Weak::upgrade).collect();
    for p in live {
        p.flush();
    }
}
