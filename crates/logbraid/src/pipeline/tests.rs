//! The writer under overflow and sink panics: every queued record is
//! written or dropped, and gives back what it holds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::lock;
use crate::level::Level;
use crate::options::Overflow;
use crate::record::{Record, Source};
use crate::sink::Sink;

/// A sink that holds the writer inside the record `first` until let go,
/// panics on the record `boom`, and counts the records of the test (not
/// the writer's reports of drops).
#[derive(Debug, Clone, Default)]
struct Gate {
    held: Arc<AtomicBool>,
    open: Arc<(Mutex<bool>, Condvar)>,
    written: Arc<AtomicU64>,
}

impl Gate {
    /// Returns once the writer is held in `first` (a deadline, not a
    /// sleep: the writer only has to pick the record up).
    fn wait_held(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.held.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the writer never took `first`");
            thread::yield_now();
        }
    }

    fn open(&self) {
        *lock(&self.open.0) = true;
        self.open.1.notify_all();
    }
}

impl Sink for Gate {
    fn write(&mut self, r: &Record<'_>) -> std::io::Result<usize> {
        match r.message {
            b"first" => {
                self.held.store(true, Ordering::Release);
                let mut open = lock(&self.open.0);
                while !*open {
                    open = self.open.1.wait(open).unwrap_or_else(|e| e.into_inner());
                }
            }
            b"boom" => panic!("a sink bug"),
            _ => {}
        }
        if r.target == "remote" {
            self.written.fetch_add(1, Ordering::Relaxed);
        }
        Ok(r.message.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn foreign<'a>(message: &'a [u8], source: &'a Source) -> Record<'a> {
    Record::new(Level::Info, "remote", message, source)
        .with_timestamp(1)
        .with_thread_id(7)
        .with_thread_name("t")
}

fn source() -> Arc<Source> {
    Arc::new(Source {
        host: "elsewhere".into(),
        pid: 4242,
        process_name: "remote".into(),
    })
}

/// Logs `first` and waits until the writer is held in it, then logs
/// `messages` as foreign records of `source` from a thread of its own
/// (whose ring is let go when it ends).
fn log_behind_the_gate(
    logger: &crate::Logger,
    gate: &Gate,
    source: &Arc<Source>,
    messages: Vec<Vec<u8>>,
) {
    let first = Arc::new(Source::clone(source));
    logger.log_record(&foreign(b"first", &first), &first);
    gate.wait_held();
    let (logger, source) = (logger.clone(), Arc::clone(source));
    thread::spawn(move || {
        for m in &messages {
            logger.log_record(&foreign(m, &source), &source);
        }
    })
    .join()
    .unwrap();
}

fn build(gate: &Gate, overflow: Overflow) -> (crate::Logger, crate::Guard) {
    crate::Builder::new()
        .level("trace")
        .signals(false)
        .inherit_collector(false)
        .queue_bytes(4096)
        .overflow(overflow)
        .sink(gate.clone())
        .build()
        .unwrap()
}

#[test]
fn records_dropped_oldest_and_boxed_ones_give_back_their_source() {
    let gate = Gate::default();
    let (logger, guard) = build(&gate, Overflow::DropOldest);
    let source = source();
    // 2,000 small records and every tenth one too large for the ring
    // (boxed): far more than the 4 KiB ring holds while the writer is
    // held, so most are dropped by the producer.
    let messages = (0..2_000)
        .map(|i| vec![b'x'; if i % 10 == 0 { 3_000 } else { 40 }])
        .collect();
    log_behind_the_gate(&logger, &gate, &source, messages);
    gate.open();
    logger.flush();
    let stats = logger.stats();
    drop(guard);
    drop(logger);
    assert_eq!(stats.logged, 2_001);
    assert!(stats.dropped > 1_500, "{stats:?}");
    assert_eq!(stats.written + stats.dropped, stats.logged, "{stats:?}");
    assert_eq!(
        gate.written.load(Ordering::Relaxed),
        stats.written,
        "{stats:?}"
    );
    assert_eq!(Arc::strong_count(&source), 1, "every entry let go of it");
}

/// Two threads drop the oldest records of their rings while the writer
/// claims from the same rings: each record is written or dropped, and
/// whichever side had it gave its source back once.
#[test]
fn producers_dropping_while_the_writer_claims_give_back_every_source() {
    let gate = Gate::default();
    gate.open();
    let (logger, guard) = build(&gate, Overflow::DropOldest);
    let source = source();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (logger, source) = (logger.clone(), Arc::clone(&source));
            thread::spawn(move || {
                for i in 0..20_000 {
                    let m = vec![b'w'; if i % 50 == 0 { 1_500 } else { 20 + i % 90 }];
                    logger.log_record(&foreign(&m, &source), &source);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    logger.flush();
    let stats = logger.stats();
    drop(guard);
    drop(logger);
    assert_eq!(stats.logged, 40_000);
    assert_eq!(stats.written + stats.dropped, stats.logged, "{stats:?}");
    assert_eq!(gate.written.load(Ordering::Relaxed), stats.written);
    assert_eq!(Arc::strong_count(&source), 1);
}

#[test]
fn a_sink_panicking_mid_batch_frees_the_records_behind_it() {
    let gate = Gate::default();
    let (logger, guard) = build(&gate, Overflow::Block);
    let source = source();
    // Behind the gate, all in the ring when the writer's next pass
    // claims them: the panic leaves 20 records claimed and not taken,
    // a few of them boxed.
    let mut messages = vec![b"boom".to_vec()];
    messages.extend((0..20).map(|i| vec![b'y'; if i % 5 == 0 { 2_000 } else { 30 }]));
    log_behind_the_gate(&logger, &gate, &source, messages);
    assert_eq!(Arc::strong_count(&source), 1 + 21, "queued records hold it");
    gate.open();
    logger.flush();
    drop(guard);
    let stats = logger.stats();
    assert_eq!((stats.logged, stats.written), (22, 1), "{stats:?}");
    assert_eq!(Arc::strong_count(&source), 1, "the unwinding writer let go");
    drop(logger);
}
