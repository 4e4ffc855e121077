//! Memory stays flat however many records threads log through the `log`
//! and `tracing` facades. Each measurement runs in a child process of its
//! own (this test binary, re-run), so no other test's threads share the
//! address space being measured.

use std::process::Command;
use std::sync::{Arc, Barrier};

mod common;

use common::{message_file, thread_counts};

use logbraid::Builder;

const THREADS: usize = 4;
const WARM: usize = 20_000;
const PER_THREAD: usize = 400_000;

fn rss_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Logs `WARM` records per thread, measures, logs the rest, flushes and
/// measures again; prints both.
fn spin(log: fn(usize, usize), flush: impl Fn()) {
    let warm = Arc::new(Barrier::new(THREADS + 1));
    let go = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (warm, go) = (warm.clone(), go.clone());
            std::thread::spawn(move || {
                for i in 0..WARM {
                    log(t, i);
                }
                warm.wait();
                go.wait();
                for i in WARM..PER_THREAD {
                    log(t, i);
                }
            })
        })
        .collect();
    warm.wait();
    flush();
    let before = rss_anon_kib();
    go.wait();
    for t in threads {
        t.join().unwrap();
    }
    flush();
    let after = rss_anon_kib();
    println!("RSS {before} {after}");
}

fn child_dir(kind: &str) -> Option<std::path::PathBuf> {
    (std::env::var("LOGBRAID_TEST_MEMORY").ok()? == kind)
        .then(|| std::env::var_os("LOGBRAID_TEST_CHILD").map(Into::into))
        .flatten()
}

#[test]
fn child_log_facade_threads() {
    let Some(dir) = child_dir("log") else { return };
    let guard = Builder::new()
        .level("info")
        .children(false)
        .file(message_file(dir.join("mem.log")))
        .unwrap()
        .init()
        .unwrap();
    spin(|t, i| log::info!("t{t} {i}"), logbraid::flush_all);
    drop(guard);
}

#[cfg(feature = "tracing")]
#[test]
fn child_tracing_threads() {
    use tracing_subscriber::layer::SubscriberExt;
    let Some(dir) = child_dir("tracing") else {
        return;
    };
    let (logger, guard) = Builder::new()
        .level("info")
        .children(false)
        .file(message_file(dir.join("mem.log")))
        .unwrap()
        .build()
        .unwrap();
    let flusher = logger.clone();
    let subscriber = tracing_subscriber::registry().with(logbraid::bridge::tracing::layer(logger));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    spin(
        |t, i| tracing::info!(n = i, "t{t} {i}"),
        move || flusher.flush(),
    );
    drop(guard);
}

/// Runs `test` in a child; returns the RssAnon it printed before and after
/// (KiB) and the file it wrote.
fn run_child(test: &str, kind: &str) -> (i64, i64, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env("LOGBRAID_TEST_CHILD", dir.path())
        .env("LOGBRAID_TEST_MEMORY", kind)
        .env_remove("LOGBRAID_COLLECTOR")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (before, after) = stdout
        .lines()
        .find_map(|l| l.split_once("RSS ").map(|(_, r)| r))
        .and_then(|l| l.split_once(char::is_whitespace))
        .map(|(a, b)| (a.parse::<i64>().unwrap(), b.parse::<i64>().unwrap()))
        .unwrap_or_else(|| panic!("no RSS line in {stdout}"));
    let text = std::fs::read_to_string(dir.path().join("mem.log")).unwrap();
    (before, after, text)
}

/// Runs `test` in a child and checks its file and its memory.
fn check(test: &str, kind: &str) {
    let (before, after, text) = run_child(test, kind);
    assert_eq!(
        thread_counts(&text, THREADS),
        vec![PER_THREAD as u64; THREADS]
    );
    // 1.52 M records: a leak of one pointer per record would be 11.6 MiB.
    let grown = after - before;
    assert!(
        grown < 4096,
        "RssAnon grew {grown} KiB over {} records",
        THREADS * (PER_THREAD - WARM)
    );
}

#[test]
fn log_facade_threads_keep_memory_flat() {
    check("child_log_facade_threads", "log");
}

#[cfg(feature = "tracing")]
#[test]
fn tracing_threads_keep_memory_flat() {
    check("child_tracing_threads", "tracing");
}

const QUEUE: usize = 8 << 20;

/// A thread logs one record into a `QUEUE`-byte queue, after
/// `preallocate()` when `kind` is "preallocate"; prints RssAnon before the
/// thread starts and after its record is written.
fn one_thread_queue(kind: &str) {
    let Some(dir) = child_dir(kind) else { return };
    let guard = Builder::new()
        .level("info")
        .children(false)
        .queue_bytes(QUEUE)
        .file(message_file(dir.join("mem.log")))
        .unwrap()
        .init()
        .unwrap();
    let prefault = kind == "preallocate";
    // A thread of its own: the main thread's queue may exist already.
    let (before, after) = std::thread::spawn(move || {
        let before = rss_anon_kib();
        if prefault {
            logbraid::preallocate();
        }
        log::info!("t0 0");
        logbraid::flush_all();
        (before, rss_anon_kib())
    })
    .join()
    .unwrap();
    println!("RSS {before} {after}");
    drop(guard);
}

#[test]
fn child_preallocate() {
    one_thread_queue("preallocate");
}

#[test]
fn child_lazy_queue() {
    one_thread_queue("lazy");
}

/// Runs `test` in a child; its one record is in the file; returns how
/// many KiB RssAnon grew while its thread logged.
fn queue_growth(test: &str, kind: &str) -> i64 {
    let (before, after, text) = run_child(test, kind);
    assert_eq!(text, "t0 0\n");
    after - before
}

/// `preallocate()` maps the thread's whole queue in at once; without it
/// the queue's pages are mapped in only as records reach them.
#[test]
fn preallocate_maps_the_whole_queue_in_and_the_default_does_not() {
    let queue_kib = (QUEUE / 1024) as i64;
    let prefaulted = queue_growth("child_preallocate", "preallocate");
    assert!(
        prefaulted >= queue_kib,
        "RssAnon grew {prefaulted} KiB after preallocate() of a {queue_kib} KiB queue"
    );
    let lazy = queue_growth("child_lazy_queue", "lazy");
    assert!(
        lazy < queue_kib / 8,
        "RssAnon grew {lazy} KiB for one record in a {queue_kib} KiB queue"
    );
}
