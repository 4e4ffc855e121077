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

/// Runs `test` in a child and checks its file and its memory.
fn check(test: &str, kind: &str) {
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
