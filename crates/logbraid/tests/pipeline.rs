//! The non-blocking pipeline: counts, order, overflow policies, flush.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use logbraid::sink::Sink;
use logbraid::{Builder, Callsite, Level, Mode, Overflow, Record};

/// A sink that keeps `thread-name|message` lines in memory, published only
/// by `flush`, and that can be stalled to simulate a slow disk.
#[derive(Clone, Debug, Default)]
struct Memory {
    published: Arc<Mutex<Vec<String>>>,
    pending: Vec<String>,
    gate: Arc<(Mutex<bool>, Condvar)>,
}

impl Memory {
    fn lines(&self) -> Vec<String> {
        self.published.lock().unwrap().clone()
    }
    fn stall(&self) {
        *self.gate.0.lock().unwrap() = true;
    }
    fn release(&self) {
        *self.gate.0.lock().unwrap() = false;
        self.gate.1.notify_all();
    }
}

impl Sink for Memory {
    fn write(&mut self, r: &Record<'_>) -> std::io::Result<usize> {
        let mut g = self.gate.0.lock().unwrap();
        while *g {
            g = self.gate.1.wait(g).unwrap();
        }
        drop(g);
        let line = format!(
            "{}|{}|{}",
            r.thread_name.unwrap_or("?"),
            r.level,
            String::from_utf8_lossy(r.message)
        );
        let n = line.len();
        self.pending.push(line);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.published.lock().unwrap().append(&mut self.pending);
        Ok(())
    }
}

fn info(logger: &logbraid::Logger, args: std::fmt::Arguments<'_>) {
    logger.log_with(&Callsite::new(Level::Info, "test"), args, &mut |_| {});
}

#[test]
fn threads_times_records_arrive_exactly_once_in_thread_order() {
    const THREADS: usize = 8;
    const RECORDS: usize = 20_000;
    let mem = Memory::default();
    // A small queue forces the Block path over and over.
    let (logger, guard) = Builder::new()
        .level("trace")
        .queue_bytes(4096)
        .sink(mem.clone())
        .build()
        .unwrap();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let logger = logger.clone();
            thread::Builder::new()
                .name(format!("w{t}"))
                .spawn(move || {
                    for i in 0..RECORDS {
                        info(&logger, format_args!("{i}"));
                    }
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    logger.flush();
    let lines = mem.lines();
    assert_eq!(lines.len(), THREADS * RECORDS);
    let mut next: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        let mut parts = line.split('|');
        let thread = parts.next().unwrap().to_string();
        assert_eq!(parts.next(), Some("INFO"));
        let i: usize = parts.next().unwrap().parse().unwrap();
        let expected = next.entry(thread.clone()).or_insert(0);
        assert_eq!(i, *expected, "thread {thread} out of order");
        *expected += 1;
    }
    assert_eq!(next.len(), THREADS);
    assert!(next.values().all(|&n| n == RECORDS));
    let stats = logger.stats();
    assert_eq!(stats.logged, (THREADS * RECORDS) as u64);
    assert_eq!(stats.written, (THREADS * RECORDS) as u64);
    assert_eq!(stats.dropped, 0);
    drop(guard);
}

#[test]
fn flush_returns_after_everything_logged_before_it_is_written() {
    let mem = Memory::default();
    let (logger, _guard) = Builder::new()
        .level("trace")
        .sink(mem.clone())
        .build()
        .unwrap();
    for round in 1..=50 {
        for i in 0..round {
            info(&logger, format_args!("r{round} {i}"));
        }
        logger.flush();
        assert_eq!(mem.lines().len(), round * (round + 1) / 2);
    }
}

/// Logs 5,000 records from thread `p` through `Logger::log_with`, or
/// through `logbraid::info!` with `macros`, while the sink is stalled.
fn stalled_sink_run(policy: Overflow, macros: bool) -> (Vec<String>, logbraid::Stats) {
    const N: usize = 5_000;
    let mem = Memory::default();
    let (logger, guard) = Builder::new()
        .level("trace")
        .queue_bytes(4096)
        .overflow(policy)
        .sink(mem.clone())
        .build()
        .unwrap();
    mem.stall();
    let producer = thread::Builder::new()
        .name("p".into())
        .spawn({
            let logger = logger.clone();
            move || {
                for i in 0..N {
                    if macros {
                        logbraid::info!(logger: logger, "{}", i);
                    } else {
                        info(&logger, format_args!("{i}"));
                    }
                }
            }
        })
        .unwrap();
    if policy == Overflow::Block {
        // The producer cannot finish while the sink is stalled: release the
        // sink once it has had to wait for room, then let it finish.
        while logger.stats().full_waits == 0 {
            assert!(
                !producer.is_finished(),
                "Block must wait while the sink is stalled"
            );
            thread::yield_now();
        }
        mem.release();
    }
    producer.join().unwrap();
    mem.release();
    logger.flush();
    let stats = logger.stats();
    drop(guard);
    (mem.lines(), stats)
}

fn check_lossy(policy: Overflow, macros: bool) -> Vec<usize> {
    let (lines, stats) = stalled_sink_run(policy, macros);
    assert_eq!(stats.logged, 5_000);
    assert!(stats.dropped > 0, "a 4 KiB queue cannot hold 5000 records");
    assert_eq!(stats.written + stats.dropped, stats.logged);
    let reports: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("records dropped"))
        .collect();
    assert!(!reports.is_empty());
    let reported: u64 = reports
        .iter()
        .map(|l| {
            l.split('|')
                .nth(2)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(
        reported, stats.dropped,
        "the drop reports add up to the drop count"
    );
    assert!(reports
        .iter()
        .all(|l| l.contains(&format!("overflow policy {policy}"))));
    let kept: Vec<usize> = lines
        .iter()
        .filter(|l| l.starts_with("p|"))
        .map(|l| l.split('|').nth(2).unwrap().parse().unwrap())
        .collect();
    assert_eq!(kept.len() as u64, stats.written);
    assert!(
        kept.windows(2).all(|w| w[0] < w[1]),
        "order kept, no duplicates"
    );
    kept
}

#[test]
fn drop_newest_counts_every_drop_and_reports_it() {
    for macros in [false, true] {
        let kept = check_lossy(Overflow::DropNewest, macros);
        // The oldest records survive: the first one logged is there.
        assert_eq!(kept[0], 0);
    }
}

#[test]
fn drop_oldest_counts_every_drop_and_reports_it() {
    for macros in [false, true] {
        let kept = check_lossy(Overflow::DropOldest, macros);
        // The newest records survive: the last one logged is there.
        assert_eq!(*kept.last().unwrap(), 4_999);
    }
}

#[test]
fn block_under_a_stalled_sink_loses_nothing() {
    for macros in [false, true] {
        let (lines, stats) = stalled_sink_run(Overflow::Block, macros);
        assert_eq!(stats.dropped, 0);
        assert_eq!(stats.written, 5_000);
        let expected: Vec<String> = (0..5_000).map(|i| format!("p|INFO|{i}")).collect();
        assert_eq!(lines, expected);
    }
}

#[test]
fn sync_mode_writes_on_the_callers_thread() {
    let mem = Memory::default();
    let (logger, _guard) = Builder::new()
        .level("trace")
        .mode(Mode::Sync)
        .sink(mem.clone())
        .build()
        .unwrap();
    info(&logger, format_args!("one"));
    logbraid::warn!(logger: logger, "{} {}", "two", 2);
    // No flush: synchronous mode writes and flushes every record.
    let name = thread::current().name().unwrap().to_string();
    assert_eq!(
        mem.lines(),
        vec![format!("{name}|INFO|one"), format!("{name}|WARN|two 2")]
    );
}

#[test]
fn records_logged_after_shutdown_are_still_written() {
    let mem = Memory::default();
    let (logger, guard) = Builder::new()
        .level("trace")
        .sink(mem.clone())
        .build()
        .unwrap();
    info(&logger, format_args!("before"));
    drop(guard);
    assert_eq!(mem.lines().len(), 1);
    info(&logger, format_args!("after"));
    assert_eq!(mem.lines().len(), 2);
    logbraid::info!(logger: logger, "macro {}", 3);
    assert!(mem.lines()[2].ends_with("|INFO|macro 3"));
    assert_eq!(logger.stats().written, 3);
}

#[test]
fn a_panicking_thread_flushes_through_the_hook() {
    let mem = Memory::default();
    let (logger, _guard) = Builder::new()
        .level("trace")
        .sink(mem.clone())
        .build()
        .unwrap();
    let l = logger.clone();
    let r = thread::spawn(move || {
        for i in 0..1000 {
            info(&l, format_args!("{i}"));
        }
        panic!("boom");
    })
    .join();
    assert!(r.is_err());
    // No flush call: the panic hook flushed before the thread unwound.
    assert_eq!(mem.lines().len(), 1000);
}

#[test]
fn oversized_records_pass_through_the_heap() {
    let mem = Memory::default();
    let (logger, _guard) = Builder::new()
        .level("trace")
        .queue_bytes(4096)
        .sink(mem.clone())
        .build()
        .unwrap();
    let big = "x".repeat(100_000);
    for _ in 0..10 {
        info(&logger, format_args!("{big}"));
    }
    logger.flush();
    let lines = mem.lines();
    assert_eq!(lines.len(), 10);
    assert!(lines.iter().all(|l| l.ends_with(&big)));
}

/// A value whose formatting logs through the same logger.
struct Reentrant<'a>(&'a logbraid::Logger);

impl std::fmt::Display for Reentrant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        info(self.0, format_args!("inner"));
        f.write_str("outer")
    }
}

#[test]
fn logging_while_formatting_a_message_loses_nothing() {
    let mem = Memory::default();
    let (logger, _guard) = Builder::new()
        .level("trace")
        .sink(mem.clone())
        .build()
        .unwrap();
    for _ in 0..100 {
        info(&logger, format_args!("{}", Reentrant(&logger)));
        // The macro formats a value of another type at the call.
        logbraid::info!(logger: logger, "{}", Reentrant(&logger));
    }
    logger.flush();
    let lines = mem.lines();
    assert_eq!(lines.len(), 400);
    let inner = lines.iter().filter(|l| l.ends_with("|INFO|inner")).count();
    let outer = lines.iter().filter(|l| l.ends_with("|INFO|outer")).count();
    assert_eq!((inner, outer), (200, 200));
    assert_eq!(logger.stats().logged, 400);
    assert_eq!(logger.stats().written, 400);
}

/// A sink that panics on the record `boom`.
#[derive(Debug, Default)]
struct Fragile;

impl Sink for Fragile {
    fn write(&mut self, r: &Record<'_>) -> std::io::Result<usize> {
        if r.message == b"boom" {
            panic!("sink bug");
        }
        Ok(r.message.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_panicking_sink_stops_the_writer_without_hanging_anyone() {
    let (logger, guard) = Builder::new()
        .level("trace")
        .queue_bytes(4096)
        .sink(Fragile)
        .build()
        .unwrap();
    for i in 0..100 {
        info(&logger, format_args!("{i}"));
    }
    logger.flush();
    info(&logger, format_args!("boom"));
    // Many more than the queue holds: under Block this would hang if the
    // dead writer were still waited for.
    for i in 0..10_000 {
        info(&logger, format_args!("{i}"));
    }
    logger.flush();
    drop(guard);
    let s = logger.stats();
    assert_eq!(s.logged, 10_101);
    assert_eq!(s.written, 100);
    assert_eq!(
        s.written + s.dropped,
        s.logged,
        "every record not written is counted"
    );
}

static HOOK_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn counting_hook(wait: &mut dyn FnMut()) {
    HOOK_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    wait();
}

#[test]
fn every_wait_for_room_runs_inside_the_wait_hook() {
    const N: usize = 5_000;
    let mem = Memory::default();
    let (logger, guard) = Builder::new()
        .level("trace")
        .queue_bytes(4096)
        .on_full_wait(counting_hook)
        .sink(mem.clone())
        .build()
        .unwrap();
    mem.stall();
    let producer = thread::spawn({
        let logger = logger.clone();
        move || {
            for i in 0..N {
                info(&logger, format_args!("{i}"));
            }
        }
    });
    while logger.stats().full_waits == 0 {
        thread::yield_now();
    }
    mem.release();
    producer.join().unwrap();
    logger.flush();
    let stats = logger.stats();
    drop(guard);
    let calls = HOOK_CALLS.load(std::sync::atomic::Ordering::SeqCst);
    assert!(calls >= 1);
    assert_eq!(calls, stats.full_waits);
    let got: Vec<usize> = mem
        .lines()
        .iter()
        .map(|l| l.rsplit('|').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
}

/// A record's thread id and name.
type ThreadOf = (u64, Option<String>);

/// Keeps each record's thread id and name.
#[derive(Clone, Debug, Default)]
struct Threads(Arc<Mutex<Vec<ThreadOf>>>);

impl Sink for Threads {
    fn write(&mut self, r: &Record<'_>) -> std::io::Result<usize> {
        let name = r.thread_name.map(str::to_string);
        self.0.lock().unwrap().push((r.thread_id, name));
        Ok(0)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_thread_named_and_numbered_by_its_caller_carries_both() {
    let seen = Threads::default();
    let (logger, guard) = Builder::new().sink(seen.clone()).build().unwrap();
    let l = logger.clone();
    thread::spawn(move || {
        logbraid::name_thread("py-worker");
        logbraid::set_thread_id(4242);
        info(&l, format_args!("one"));
        info(&l, format_args!("two"));
    })
    .join()
    .unwrap();
    logger.flush();
    let want = Some("py-worker".to_string());
    assert_eq!(
        *seen.0.lock().unwrap(),
        [(4242, want.clone()), (4242, want)]
    );
    drop(guard);
}

/// A binding's encoding for `log_values`: numbers as little-endian `u32`s,
/// written as `n=1,2,3`.
fn numbers(values: &[u8], out: &mut Vec<u8>) -> bool {
    out.extend_from_slice(b"n=");
    for (i, n) in values.chunks_exact(4).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let n = u32::from_le_bytes(n.try_into().unwrap());
        out.extend_from_slice(n.to_string().as_bytes());
    }
    // Digits, `=` and `,`: nothing a layout escapes.
    true
}

fn log_numbers(logger: &logbraid::Logger, ns: impl Iterator<Item = u32> + Clone) {
    logger.log_values(
        &Callsite::new(Level::Info, "test"),
        numbers,
        &mut |buf, _| {
            for n in ns.clone() {
                buf.extend_from_slice(&n.to_le_bytes());
            }
        },
    );
}

/// Records whose message the writer makes from values (what the Python
/// binding's calls use): formatted once each, in order with text records,
/// whether queued inline, too large for the queue, or written on the
/// caller's thread (synchronous mode, after shutdown).
#[test]
fn values_are_formatted_by_the_writer_in_every_way_a_record_travels() {
    let big: Vec<u32> = (0..5_000).collect();
    let big_text = format!(
        "n={}",
        big.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    );
    for mode in [Mode::NonBlocking, Mode::Sync] {
        let mem = Memory::default();
        let (logger, guard) = Builder::new()
            .level("trace")
            .mode(mode)
            .queue_bytes(4096)
            .sink(mem.clone())
            .build()
            .unwrap();
        log_numbers(&logger, [1, 2, 3].into_iter());
        info(&logger, format_args!("text"));
        log_numbers(&logger, big.iter().copied());
        log_numbers(&logger, std::iter::empty());
        drop(guard);
        log_numbers(&logger, [7].into_iter());
        let messages: Vec<String> = mem
            .lines()
            .iter()
            .map(|l| l.split_once("|INFO|").unwrap().1.to_string())
            .collect();
        assert_eq!(
            messages,
            ["n=1,2,3", "text", &big_text, "n=", "n=7"],
            "{mode:?}"
        );
        assert_eq!(logger.stats().written, 5);
    }
}

/// A sink that keeps each record's timestamp, thread and message, and
/// holds the writer inside its first `write` until opened.
#[derive(Clone, Debug, Default)]
struct Stamps {
    seen: Arc<Mutex<Vec<(i64, String, String)>>>,
    /// (entered its first write, opened)
    gate: Arc<(Mutex<(bool, bool)>, Condvar)>,
}

impl Sink for Stamps {
    fn write(&mut self, r: &Record<'_>) -> std::io::Result<usize> {
        let (lock, cv) = &*self.gate;
        let mut g = lock.lock().unwrap();
        g.0 = true;
        cv.notify_all();
        while !g.1 {
            g = cv.wait(g).unwrap();
        }
        drop(g);
        self.seen.lock().unwrap().push((
            r.timestamp_ns,
            r.thread_name.unwrap_or("?").to_string(),
            String::from_utf8_lossy(r.message).into_owned(),
        ));
        Ok(1)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Four threads take turns logging runs of one to three records (through
/// the macros and the facade's path alike) while the writer is held: once
/// let go, it writes them all in one pass, merged by time, each thread's in
/// its order and every record once.
#[test]
fn records_of_threads_taking_turns_are_merged_by_time() {
    const THREADS: usize = 4;
    const TURNS: usize = 400;
    let sink = Stamps::default();
    let (logger, guard) = Builder::new()
        .level("trace")
        .sink(sink.clone())
        .build()
        .unwrap();
    info(&logger, format_args!("gate"));
    {
        let (lock, cv) = &*sink.gate;
        let mut g = lock.lock().unwrap();
        while !g.0 {
            g = cv.wait(g).unwrap();
        }
    }
    let turn = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut expected = 0;
    for t in 0..TURNS {
        expected += 1 + t % 3;
    }
    let handles: Vec<_> = (0..THREADS)
        .map(|id| {
            let (logger, turn) = (logger.clone(), Arc::clone(&turn));
            thread::Builder::new()
                .name(format!("t{id}"))
                .spawn(move || {
                    let mut n = 0;
                    loop {
                        let t = turn.load(std::sync::atomic::Ordering::Acquire);
                        if t >= TURNS {
                            break;
                        }
                        if t % THREADS != id {
                            thread::yield_now();
                            continue;
                        }
                        for _ in 0..1 + t % 3 {
                            if n % 2 == 0 {
                                logbraid::info!(logger: logger, "{} {}", id, n);
                            } else {
                                info(&logger, format_args!("{id} {n}"));
                            }
                            n += 1;
                        }
                        turn.store(t + 1, std::sync::atomic::Ordering::Release);
                    }
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    {
        let (lock, cv) = &*sink.gate;
        lock.lock().unwrap().1 = true;
        cv.notify_all();
    }
    logger.flush();
    drop(guard);
    let seen = sink.seen.lock().unwrap().clone();
    assert_eq!(seen[0].2, "gate");
    let rest = &seen[1..];
    assert_eq!(rest.len(), expected);
    for w in rest.windows(2) {
        assert!(
            w[0].0 <= w[1].0,
            "out of time order: {:?} then {:?}",
            w[0],
            w[1]
        );
    }
    let mut next = [0usize; THREADS];
    for (_, thread, message) in rest {
        let (id, n) = message.split_once(' ').unwrap();
        let (id, n): (usize, usize) = (id.parse().unwrap(), n.parse().unwrap());
        assert_eq!(thread, &format!("t{id}"));
        assert_eq!(n, next[id], "thread {id} out of order");
        next[id] += 1;
    }
    assert_eq!(next.iter().sum::<usize>(), expected);
}
