//! The forwarding client against the embedded collector, over real Unix
//! sockets in temporary directories.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logbraid::collect::{Embedded, EmbeddedOptions};
use logbraid::forward::{Endpoint, ForwardOptions, ForwardSink};
use logbraid::layout::LayoutSpec;
use logbraid::sink::RollingFile;
use logbraid::wire::{self, Dedup};
use logbraid::{Builder, Callsite, Guard, Level, Logger};

fn collector_logger(path: &Path) -> (Logger, Guard) {
    file_logger(path, "%(process)d %(message)s")
}

fn file_logger(path: &Path, format: &str) -> (Logger, Guard) {
    let layout = LayoutSpec::parse(format, None).unwrap();
    Builder::new()
        .level("trace")
        .children(false)
        .inherit_collector(false)
        .file(RollingFile::builder(path).layout(layout.build(false)))
        .unwrap()
        .build()
        .unwrap()
}

fn client(options: ForwardOptions) -> (Logger, Guard, logbraid::forward::ForwardStats) {
    let sink = ForwardSink::new(options).unwrap();
    let stats = sink.stats();
    let (logger, guard) = Builder::new()
        .level("trace")
        .inherit_collector(false)
        .sink(sink)
        .build()
        .unwrap();
    (logger, guard, stats)
}

fn log_range(logger: &Logger, range: std::ops::Range<u64>) {
    let site = Callsite::new(Level::Info, "t");
    for i in range {
        logger.log_with(&site, format_args!("record {i}"), &mut |_| {});
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn messages(path: &Path) -> Vec<String> {
    lines(path)
        .iter()
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect()
}

fn expected(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|i| format!("record {i}")).collect()
}

fn options(sock: &Path) -> ForwardOptions {
    ForwardOptions::new(Endpoint::unix(sock))
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
}

#[test]
fn flush_returns_once_the_collector_has_written_everything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    let sock = dir.path().join("c.sock");
    let (clog, _cguard) = collector_logger(&out);
    let collector = Embedded::start_at(&sock, clog, EmbeddedOptions::default()).unwrap();
    let (logger, guard, stats) = client(options(&sock));
    log_range(&logger, 0..50_000);
    logger.flush();
    // No sleep: the ack came after the collector's writer wrote the lines.
    assert_eq!(messages(&out), expected(0..50_000));
    let s = stats.get();
    assert_eq!((s.records, s.acked, s.lost), (50_000, 50_000, 0));
    // The logger's own counters say the same, as of the flush.
    let ls = logger.stats();
    assert_eq!(
        (ls.forward_acked, ls.forward_resent),
        (50_000, s.batches_resent)
    );
    drop(guard);
    assert_eq!(collector.stats().records, 50_000);
}

/// A macro's record is formatted on the sender's writer thread and
/// travels as any other: the collector writes the message, the target,
/// the line and the fields it was logged with.
#[test]
fn macro_records_arrive_formatted_with_their_call_site_and_fields() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    let sock = dir.path().join("c.sock");
    let (clog, _cguard) = file_logger(&out, "json");
    let collector = Embedded::start_at(&sock, clog, EmbeddedOptions::default()).unwrap();
    let (logger, guard, stats) = client(options(&sock));
    let user = "ada";
    for i in 0..1_000u32 {
        logbraid::info!(logger: logger, "record {i} of {:>5} for {user}", 1_000);
    }
    let line = line!() + 1;
    logbraid::warn!(logger: logger, n = 7, who = user; "with fields {:.2}", 0.5);
    logger.flush();
    let records: Vec<serde_json::Value> = lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1_001);
    for (i, r) in records[..1_000].iter().enumerate() {
        assert_eq!(r["msg"], format!("record {i} of  1000 for ada"));
        assert_eq!(r["level"], "INFO");
    }
    let last = &records[1_000];
    assert_eq!(last["msg"], "with fields 0.50");
    assert_eq!(last["level"], "WARN");
    assert_eq!(last["target"], module_path!());
    assert_eq!(last["line"], line);
    assert_eq!(last["fields"], serde_json::json!({"n": 7, "who": "ada"}));
    assert_eq!(stats.get().acked, 1_001);
    drop(guard);
    assert_eq!(collector.stats().records, 1_001);
}

/// The collector logs into the pipeline's inlet, below the logger: the
/// collecting logger's level does not filter what children send.
#[test]
fn a_collector_writes_what_arrives_whatever_the_level_of_its_logger() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    let sock = dir.path().join("c.sock");
    let layout = LayoutSpec::parse("%(levelname)s %(message)s", None).unwrap();
    let (clog, cguard) = Builder::new()
        .level("error")
        .children(false)
        .inherit_collector(false)
        .file(RollingFile::builder(&out).layout(layout.build(false)))
        .unwrap()
        .build()
        .unwrap();
    let collector = Embedded::start_at(&sock, clog.inlet(), EmbeddedOptions::default()).unwrap();
    drop(clog);
    let (logger, guard, stats) = client(options(&sock));
    log_range(&logger, 0..3);
    logger.flush();
    assert_eq!(
        lines(&out),
        ["INFO record 0", "INFO record 1", "INFO record 2"]
    );
    assert_eq!(stats.get().acked, 3);
    drop(guard);
    drop(collector);
    drop(cguard);
}

#[test]
fn a_collector_restarted_at_the_same_address_gets_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    let sock = dir.path().join("c.sock");
    let (clog, _cguard) = collector_logger(&out);
    let dedup = Arc::new(Mutex::new(Dedup::new()));
    let opts = EmbeddedOptions::default().dedup(dedup.clone());
    let first = Embedded::start_at(&sock, clog.clone(), opts.clone()).unwrap();
    let (logger, guard, stats) = client(options(&sock));
    log_range(&logger, 0..20_000);
    logger.flush();
    // The collector goes away; records logged meanwhile wait in the client.
    first.shutdown(Duration::ZERO);
    drop(first);
    log_range(&logger, 20_000..40_000);
    let second = Embedded::start_at(&sock, clog, opts).unwrap();
    log_range(&logger, 40_000..60_000);
    logger.flush();
    assert_eq!(messages(&out), expected(0..60_000));
    let s = stats.get();
    assert!(s.connects >= 2, "{s:?}");
    assert_eq!(s.acked, 60_000);
    let ls = logger.stats();
    assert_eq!(
        (ls.forward_acked, ls.forward_resent),
        (60_000, s.batches_resent)
    );
    drop(guard);
    drop(second);
}

#[test]
fn a_wrong_token_is_refused_and_a_good_client_still_gets_through() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    let sock = dir.path().join("c.sock");
    let (clog, _cguard) = collector_logger(&out);
    let collector = Embedded::start_at(
        &sock,
        clog,
        EmbeddedOptions::default().token(b"s3cret".to_vec()),
    )
    .unwrap();
    let (bad, bad_guard, bad_stats) = client(
        options(&sock)
            .token(b"wrong".to_vec())
            .linger(Duration::from_millis(100)),
    );
    log_range(&bad, 0..10);
    bad.log_with(
        &Callsite::new(Level::Info, "t"),
        format_args!("x"),
        &mut |_| {},
    );
    // Wait until the refusal has been seen (bounded: the test fails if not).
    let mut seen = None;
    for _ in 0..200 {
        if let Some(e) = bad_stats
            .get()
            .last_error
            .filter(|e| e.contains("bad token"))
        {
            seen = Some(e);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(seen.is_some(), "{:?}", bad_stats.get());
    drop(bad_guard);
    assert_eq!(bad_stats.get().lost, 11);

    let (good, guard, _) = client(options(&sock).token(b"s3cret".to_vec()));
    log_range(&good, 0..100);
    good.flush();
    assert_eq!(messages(&out), expected(0..100));
    drop(guard);
    assert!(collector.stats().rejected >= 1);
}

/// Sends `bytes` on a raw connection and returns what comes back until the
/// collector closes it.
fn raw(sock: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    back
}

fn error_code(frame: &[u8]) -> u16 {
    match wire::decode(frame).unwrap() {
        wire::Frame::Error { code, .. } => code.0,
        other => panic!("expected an ERROR, got {other:?}"),
    }
}

#[test]
fn garbage_and_oversize_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    let sock = dir.path().join("c.sock");
    let (clog, _cguard) = collector_logger(&out);
    let collector = Embedded::start_at(&sock, clog, EmbeddedOptions::default()).unwrap();

    // A length of 4 GiB: refused from the four length bytes.
    let back = raw(&sock, &[0xff, 0xff, 0xff, 0xff, 1, 3]);
    assert_eq!(error_code(&back), 4);
    // An unknown version byte.
    let back = raw(&sock, &[10, 0, 0, 0, 9, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(error_code(&back), 2);
    // A batch before any hello.
    let back = raw(
        &sock,
        &[14, 0, 0, 0, 1, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    assert!([3, 9].contains(&error_code(&back)));
    // Text that is not the protocol at all.
    let back = raw(&sock, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(error_code(&back), 4);

    let (good, guard, _) = client(options(&sock));
    log_range(&good, 0..100);
    good.flush();
    assert_eq!(messages(&out), expected(0..100));
    drop(guard);
    assert_eq!(collector.stats().rejected, 4);
}

#[test]
fn shutdown_without_a_collector_reports_what_it_could_not_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nobody.sock");
    let (logger, guard, stats) = client(options(&sock).linger(Duration::from_millis(200)));
    log_range(&logger, 0..25);
    drop(guard);
    let s = stats.get();
    assert_eq!((s.records, s.acked, s.lost), (25, 0, 25));
    assert!(s.last_error.unwrap().contains("cannot connect"));
}

/// Runs `logger.flush()` with a safety net. A flush that never returns
/// would also hang the panic hook (it flushes every live logger), so a
/// failed assertion could not end the test: the process is aborted instead.
fn flush_or_abort(logger: &Logger, what: &str) {
    let l = logger.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        l.flush();
        let _ = tx.send(());
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        eprintln!("Logger::flush did not return: {what}");
        std::process::abort();
    }
}

#[test]
fn after_a_lossy_shutdown_flush_returns_and_later_records_still_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    let sock = dir.path().join("late.sock");
    let (logger, guard, stats) = client(options(&sock).linger(Duration::from_millis(100)));
    log_range(&logger, 0..7);
    drop(guard);
    assert_eq!(stats.get().lost, 7);
    // What shutdown gave up on no longer holds up a flush (the panic hook
    // and `atexit` flush every live logger too).
    flush_or_abort(&logger, "after a shutdown that lost records");

    // A record logged after shutdown is written directly by the caller;
    // through a forwarding sink it must still reach the collector.
    let (clog, _cguard) = collector_logger(&out);
    let collector = Embedded::start_at(&sock, clog, EmbeddedOptions::default()).unwrap();
    log_range(&logger, 7..8);
    flush_or_abort(&logger, "for a record logged after shutdown");
    assert_eq!(messages(&out), expected(7..8));
    let s = stats.get();
    assert_eq!((s.records, s.acked, s.lost), (8, 1, 7));
    drop(logger);
    collector.shutdown(Duration::from_secs(1));
}

#[test]
fn shutdown_ends_even_when_the_socket_file_was_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    let sock = dir.path().join("c.sock");
    let (clog, _cguard) = collector_logger(&out);
    let collector = Embedded::start_at(&sock, clog, EmbeddedOptions::default()).unwrap();
    // A temporary-directory cleaner removes the socket.
    std::fs::remove_file(&sock).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        collector.shutdown(Duration::ZERO);
        tx.send(()).unwrap();
    });
    // A safety net, not a speed bound: before the fix this never returned.
    rx.recv_timeout(Duration::from_secs(60))
        .expect("shutdown returned");
}

/// `set_process_name`: the name in `%(processName)s`, in the process's own
/// file and at a collector it forwards to. The only test here that names
/// the process (the name is the whole process's).
const NAMED: &str = "%(processName)s %(message)s";

#[test]
fn records_carry_the_name_set_for_the_process_here_and_at_the_collector() {
    let dir = tempfile::tempdir().unwrap();
    let site = Callsite::new(Level::Info, "t");
    let exe = std::env::current_exe().unwrap();
    let exe = exe.file_name().unwrap().to_string_lossy().into_owned();

    // The process's own file: the executable's name until a name is set.
    let own = dir.path().join("own.log");
    let (logger, guard) = file_logger(&own, NAMED);
    logger.log_with(&site, format_args!("before"), &mut |_| {});
    logger.flush();

    // A forwarding sink built before the name is set, as in a forked
    // child: it has not connected yet, so the collector learns the name.
    let collected = dir.path().join("collected.log");
    let (clog, _cguard) = file_logger(&collected, NAMED);
    let sock = dir.path().join("c.sock");
    let collector = Embedded::start_at(&sock, clog, EmbeddedOptions::default()).unwrap();
    let (client, client_guard, stats) = client(options(&sock));
    assert_eq!(
        stats.get().connects,
        0,
        "no connection before the first batch"
    );

    logbraid::set_process_name("svc-a");
    logger.log_with(&site, format_args!("after"), &mut |_| {});
    logger.flush();
    for i in 0..3 {
        client.log_with(&site, format_args!("forwarded {i}"), &mut |_| {});
    }
    client.flush();

    assert_eq!(
        lines(&own),
        [format!("{exe} before"), "svc-a after".to_string()]
    );
    assert_eq!(
        lines(&collected),
        [
            "svc-a forwarded 0",
            "svc-a forwarded 1",
            "svc-a forwarded 2"
        ]
    );
    assert_eq!(logbraid::Source::current().process_name, "svc-a");
    drop(client_guard);
    drop(collector);
    drop(guard);
}

#[test]
fn a_unix_socket_served_by_another_user_gets_nothing() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("SKIPPED: needs root, to listen as another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let sock = dir.path().join("other.sock");
    // Another user's listener at the path: a plain socket that accepts and
    // keeps what it reads, run as nobody.
    let script = format!(
        "import os, socket, sys\nos.setgid(65534); os.setuid(65534)\n\
         s = socket.socket(socket.AF_UNIX); s.bind({:?}); s.listen()\n\
         print('listening', flush=True)\nc, _ = s.accept()\nsys.stdin.read()\n",
        sock.to_str().unwrap()
    );
    let mut other = match std::process::Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("SKIPPED: no python3 to listen as another user ({e})");
            return;
        }
    };
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(other.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "listening");
    let (logger, guard, stats) = client(options(&sock));
    log_range(&logger, 0..10);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let error = loop {
        if let Some(e) = stats.get().last_error.filter(|e| e.contains("uid")) {
            break e;
        }
        assert!(std::time::Instant::now() < deadline, "no refusal");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        error.contains("is served by uid 65534, neither this user (0) nor root"),
        "{error}"
    );
    assert_eq!(stats.get().batches_sent, 0);
    let _ = other.kill();
    let _ = other.wait();
    drop(logger);
    drop(guard);
}
