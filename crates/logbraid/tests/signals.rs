//! SIGTERM, SIGINT and SIGHUP flush before they end the process: what was
//! logged before the signal is in the file, and the process still ends
//! killed by that signal. A program that handles the signal itself keeps
//! its own shutdown. Each case runs in a child process (this test binary,
//! re-run), signalled by the test.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

mod common;

use common::{message_file, thread_counts};

use logbraid::{Builder, Callsite, Level, Logger};

const RECORDS: u64 = 200_000;

fn child_dir(case: &str) -> Option<std::path::PathBuf> {
    (std::env::var("LOGBRAID_TEST_SIGNAL").ok()? == case)
        .then(|| std::env::var_os("LOGBRAID_TEST_CHILD").map(Into::into))
        .flatten()
}

fn build(dir: &Path) -> (Logger, logbraid::Guard) {
    Builder::new()
        .level("info")
        .children(false)
        .file(message_file(dir.join("app.log")))
        .unwrap()
        .build()
        .unwrap()
}

fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// Child: logs `RECORDS` records, says so, and sits idle.
#[test]
fn child_idle() {
    let Some(dir) = child_dir("idle") else { return };
    let (logger, _guard) = build(&dir);
    let site = Callsite::new(Level::Info, "app");
    // logbraid's own macros and `log_with`, alternately.
    for i in 0..RECORDS {
        if i % 2 == 0 {
            logbraid::info!(target: "app", logger: logger, "r {}", i);
        } else {
            logger.log_with(&site, format_args!("r {i}"), &mut |_| {});
        }
    }
    say("logged");
    loop {
        std::thread::park();
    }
}

/// Child: logs without end from two threads; says `logged` once both have
/// logged more than `RECORDS / 2`.
#[test]
fn child_busy() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let Some(dir) = child_dir("busy") else { return };
    let (logger, _guard) = build(&dir);
    let counts: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    for t in 0..2 {
        let (logger, counts) = (logger.clone(), counts.clone());
        std::thread::spawn(move || {
            let site = Callsite::new(Level::Info, "app");
            for i in 0.. {
                logger.log_with(&site, format_args!("t{t} {i}"), &mut |_| {});
                counts[t].store(i + 1, Ordering::Relaxed);
            }
        });
    }
    while counts
        .iter()
        .any(|c| c.load(Ordering::Relaxed) <= RECORDS / 2)
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    say("logged");
    loop {
        std::thread::park();
    }
}

/// Child: forwards to a collector that accepts and never answers (the
/// address in `LOGBRAID_TEST_STALLED`), with a flush limit of 300 ms.
#[test]
fn child_stalled_collector() {
    use logbraid::forward::{Endpoint, ForwardOptions};
    let Some(_dir) = child_dir("stalled") else {
        return;
    };
    let url = std::env::var("LOGBRAID_TEST_STALLED").unwrap();
    let (logger, _guard) = Builder::new()
        .level("info")
        .signal_flush_limit(std::time::Duration::from_millis(300))
        .forward(ForwardOptions::new(Endpoint::parse(&url).unwrap()))
        .unwrap()
        .build()
        .unwrap();
    let site = Callsite::new(Level::Info, "app");
    for i in 0..10 {
        logger.log_with(&site, format_args!("r {i}"), &mut |_| {});
    }
    say("logged");
    loop {
        std::thread::park();
    }
}

/// Child: logs `RECORDS` records and crashes, as `LOGBRAID_TEST_CRASH`
/// says: a read through a null pointer (SIGSEGV) or `abort` (SIGABRT).
#[test]
fn child_crash() {
    let Some(dir) = child_dir("crash") else {
        return;
    };
    // No core file in the test's directory.
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit with a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
    let (logger, _guard) = build(&dir);
    let site = Callsite::new(Level::Info, "app");
    for i in 0..RECORDS {
        logger.log_with(&site, format_args!("r {i}"), &mut |_| {});
    }
    match std::env::var("LOGBRAID_TEST_CRASH").as_deref() {
        Ok("segv") => {
            // SAFETY: none: the point is the fault.
            let x = unsafe { std::ptr::read_volatile(std::ptr::null::<u8>()) };
            say(&format!("read {x}"));
        }
        _ => std::process::abort(),
    }
}

/// Child: forwards to a collector that is not there, logs, and returns
/// with the logger still alive: the exit flush must not wait for ever.
#[test]
fn child_exit_unreachable() {
    use logbraid::forward::{Endpoint, ForwardOptions};
    let Some(dir) = child_dir("exit") else { return };
    let (logger, guard) = Builder::new()
        .level("info")
        .signal_flush_limit(std::time::Duration::from_millis(300))
        .forward(ForwardOptions::new(Endpoint::unix(dir.join("absent.sock"))))
        .unwrap()
        .build()
        .unwrap();
    let site = Callsite::new(Level::Info, "app");
    for i in 0..10 {
        logger.log_with(&site, format_args!("r {i}"), &mut |_| {});
    }
    // As a global logger would be: never dropped before the exit.
    std::mem::forget(guard);
}

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static mut PREVIOUS: Option<libc::sigaction> = None;

extern "C" fn chaining_handler(sig: libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
    // Calls the handler found at installation, as signal-hook, tokio and
    // ctrlc do.
    // SAFETY: written once before the handler was installed.
    if let Some(prev) = unsafe { PREVIOUS } {
        if prev.sa_sigaction != libc::SIG_DFL && prev.sa_sigaction != libc::SIG_IGN {
            // SAFETY: the previous action is a plain handler of this shape.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev.sa_sigaction) };
            f(sig);
        }
    }
}

/// Child: builds the logger, then installs a SIGTERM handler of its own
/// that chains to the one it found; on the signal it logs a last record
/// and leaves with exit code 0.
#[test]
fn child_own_handler() {
    let Some(dir) = child_dir("own") else { return };
    let (logger, guard) = build(&dir);
    // SAFETY: a zeroed sigaction is valid; PREVIOUS is written before the
    // handler that reads it is installed.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGTERM, std::ptr::null(), &mut old);
        PREVIOUS = Some(old);
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = chaining_handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGTERM, &act, std::ptr::null_mut());
    }
    let site = Callsite::new(Level::Info, "app");
    for i in 0..RECORDS {
        logger.log_with(&site, format_args!("r {i}"), &mut |_| {});
    }
    say("logged");
    while !STOP.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // Long enough for a flush-and-kill, had the chained handler done one.
    std::thread::sleep(std::time::Duration::from_millis(500));
    logger.log_with(&site, format_args!("graceful"), &mut |_| {});
    drop(guard);
    std::process::exit(0);
}

/// Kills the child if a check fails before it ended: a failed test must
/// not leave a process logging for ever.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs the child `test` for `case`, sends `sig` once it has said
/// `logged`, and returns how it ended and its file.
fn signalled(test: &str, case: &str, sig: libc::c_int) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.stdout(Stdio::piped());
    let (status, _) = run_signalled(&mut cmd, dir.path(), test, case, sig);
    let text = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
    (status, text)
}

/// As [`signalled`], with `cmd` set up by the caller; returns how the
/// child ended and its stderr.
fn run_signalled(
    cmd: &mut Command,
    dir: &Path,
    test: &str,
    case: &str,
    sig: libc::c_int,
) -> (std::process::ExitStatus, String) {
    let mut child = Reap(
        cmd.args(["--exact", test, "--nocapture", "--test-threads", "1"])
            .env("LOGBRAID_TEST_CHILD", dir)
            .env("LOGBRAID_TEST_SIGNAL", case)
            .env_remove("LOGBRAID_COLLECTOR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let ready = lines.any(|l| l.is_ok_and(|l| l.ends_with("logged")));
    assert!(ready, "the child ended before it logged");
    // SAFETY: signals the child started above.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, sig) }, 0);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut err).unwrap();
    let status = child.0.wait().unwrap();
    (status, err)
}

#[test]
fn a_stalled_collector_does_not_keep_a_stopped_process_alive() {
    // Accepts the connection and never answers: no acknowledgement comes,
    // so the flush cannot finish; the limit ends the wait.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("LOGBRAID_TEST_STALLED", &url);
    let (status, err) = run_signalled(
        &mut cmd,
        dir.path(),
        "child_stalled_collector",
        "stalled",
        libc::SIGTERM,
    );
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?} {err}");
    assert!(
        err.contains(
            "signal 15: the queued records were not all written within 300ms; the rest are lost"
        ),
        "{err}"
    );
    drop(listener);
}

#[test]
fn an_idle_process_stopped_by_sigterm_writes_everything_and_dies_of_sigterm() {
    let (status, text) = signalled("child_idle", "idle", libc::SIGTERM);
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert_eq!(text.lines().count() as u64, RECORDS);
    for (i, line) in text.lines().enumerate() {
        assert_eq!(line, format!("r {i}"));
    }
}

#[test]
fn sighup_and_sigint_flush_too() {
    for sig in [libc::SIGHUP, libc::SIGINT] {
        let (status, text) = signalled("child_idle", "idle", sig);
        assert_eq!(status.signal(), Some(sig), "{status:?}");
        assert_eq!(text.lines().count() as u64, RECORDS, "signal {sig}");
    }
}

#[test]
fn a_busy_process_stopped_by_sigterm_writes_what_it_logged_before() {
    let (status, text) = signalled("child_busy", "busy", libc::SIGTERM);
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    // Each thread's records: once each, in order, with no gap, and at
    // least those logged before the signal.
    let next = thread_counts(&text, 2);
    assert!(next.iter().all(|&n| n > RECORDS / 2), "{next:?}");
    assert!(text.ends_with('\n'), "a partial last line");
}

#[test]
fn a_handler_the_program_installs_later_keeps_its_graceful_shutdown() {
    let (status, text) = signalled("child_own_handler", "own", libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{status:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as u64, RECORDS + 1);
    assert_eq!(lines.last(), Some(&"graceful"));
}

#[test]
fn a_crash_writes_what_was_logged_before_and_still_ends_the_process() {
    for (how, sig) in [("segv", libc::SIGSEGV), ("abort", libc::SIGABRT)] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_crash",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("LOGBRAID_TEST_CHILD", dir.path())
            .env("LOGBRAID_TEST_SIGNAL", "crash")
            .env("LOGBRAID_TEST_CRASH", how)
            .env_remove("LOGBRAID_COLLECTOR")
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(sig), "{how}: {:?}", out.status);
        let text = std::fs::read_to_string(dir.path().join("app.log")).unwrap();
        assert_eq!(text.lines().count() as u64, RECORDS, "{how}");
        for (i, line) in text.lines().enumerate() {
            assert_eq!(line, format!("r {i}"), "{how}");
        }
    }
}

#[test]
fn a_process_exiting_while_its_collector_is_unreachable_still_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Reap(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_exit_unreachable", "--nocapture"])
            .env("LOGBRAID_TEST_CHILD", dir.path())
            .env("LOGBRAID_TEST_SIGNAL", "exit")
            .env_remove("LOGBRAID_COLLECTOR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Only a safety net: the child's own limit is 300 ms.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the exit is waiting for an unreachable collector"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        err.contains(
            "exit: the queued records were not all written within 300ms; the rest are lost"
        ),
        "{err}"
    );
}
