//! `logbraid serve` driven as a real process: real peers (the forwarding
//! client, stock Python handlers, util-linux `logger`), real sockets on
//! loopback, exact outcomes read back from the files.

mod harness;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use harness::{
    assert_sequence, batch_frame, bin, client, hello, json, lines, log_range, logger_with,
    pickled_record, read_frame, serve_once, wait_for_lines, Serve,
};
use logbraid::forward::{Endpoint, ForwardOptions, ForwardSink};
use logbraid::sink::{read_decompressed, rotated_files};

fn python() -> Command {
    let mut c = Command::new("python3");
    c.env_remove("LOGBRAID_COLLECTOR");
    c
}

#[test]
fn native_clients_over_unix_and_tcp_are_written_once_and_acked() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            "unix:c.sock",
            "--listen",
            "tcp://127.0.0.1:0",
            "--file",
            "out.log",
        ],
    );
    let unix = format!("unix:{}", dir.path().join("c.sock").display());
    let tcp = serve.url("tcp://").to_string();
    let (a, ga) = client(&unix);
    let (b, gb) = client(&tcp);
    log_range(&a, "unix", 0..20_000);
    log_range(&b, "tcp", 0..20_000);
    a.flush();
    b.flush();
    // flush returned: the collector has written and acknowledged it all.
    let out = lines(&dir.path().join("out.log"));
    assert_eq!(out.len(), 40_000);
    assert_sequence(&out, "unix", 20_000);
    assert_sequence(&out, "tcp", 20_000);
    drop((ga, gb));
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert!(
        !dir.path().join("c.sock").exists(),
        "the socket is removed at exit"
    );
}

#[test]
fn a_collector_killed_mid_stream_and_restarted_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--listen", "tcp://127.0.0.1:0", "--file", "out.log"];
    let serve = Serve::start(dir.path(), &args);
    let port = serve.port("tcp://");
    let url = format!("tcp://127.0.0.1:{port}");
    let (logger, guard) = client(&url);
    const N: u64 = 300_000;
    let writer = {
        let logger = logger.clone();
        std::thread::spawn(move || log_range(&logger, "rec", 0..N))
    };
    // Kill it once part of the stream is on disk.
    let out = dir.path().join("out.log");
    for _ in 0..2000 {
        if lines(&out).len() > 20_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    serve.kill();
    let before = lines(&out).len();
    assert!(
        before > 0 && (before as u64) < N,
        "killed mid-stream ({before} lines)"
    );
    let fixed = format!("tcp://127.0.0.1:{port}");
    let serve = Serve::start(dir.path(), &["--listen", &fixed, "--file", "out.log"]);
    writer.join().unwrap();
    logger.flush();
    let got = lines(&out);
    assert_sequence(&got, "rec", N);
    drop(guard);
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
}

const SOCKET_WORKER: &str = r#"
import logging, logging.handlers, sys
port, wid, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
h = logging.handlers.SocketHandler("127.0.0.1", port)
log = logging.getLogger("worker." + wid)
log.setLevel(logging.DEBUG)
log.addHandler(h)
for i in range(n):
    log.info("w%s %d", wid, i, extra={"worker": wid, "i": i, "ratio": i / 2, "ok": True})
try:
    {}["missing"]
except KeyError:
    log.exception("w%s failed", wid)
h.close()
"#;

#[test]
fn four_python_socket_handlers_arrive_whole_with_fields_and_tracebacks() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            "python-tcp://127.0.0.1:0",
            "--file",
            "out.jsonl",
            "--format",
            "json",
        ],
    );
    let port = serve.port("python-tcp://").to_string();
    let script = dir.path().join("worker.py");
    std::fs::write(&script, SOCKET_WORKER).unwrap();
    const N: u64 = 2000;
    let workers: Vec<Child> = (0..4)
        .map(|w| {
            python()
                .arg(&script)
                .args([&port, &w.to_string(), &N.to_string()])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut w in workers {
        assert!(w.wait().unwrap().success());
    }
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    let records = json(&dir.path().join("out.jsonl"));
    assert_eq!(records.len() as u64, 4 * (N + 1));
    let mut next: HashMap<String, u64> = HashMap::new();
    let mut failed: HashMap<String, u64> = HashMap::new();
    for r in &records {
        let wid = r["target"]
            .as_str()
            .unwrap()
            .strip_prefix("worker.")
            .unwrap()
            .to_string();
        let msg = r["msg"].as_str().unwrap();
        if r["level"] == "ERROR" {
            assert_eq!(msg, format!("w{wid} failed"));
            let tb = r["fields"]["exc_text"].as_str().unwrap();
            assert!(tb.starts_with("Traceback (most recent call last):"), "{tb}");
            assert!(tb.contains("    {}[\"missing\"]\n"), "{tb}");
            assert!(tb.trim_end().ends_with("KeyError: 'missing'"), "{tb}");
            *failed.entry(wid).or_insert(0) += 1;
            continue;
        }
        let i = next.entry(wid.clone()).or_insert(0);
        assert_eq!(msg, format!("w{wid} {i}"), "per-process order");
        assert_eq!(r["fields"]["worker"], wid.as_str());
        assert_eq!(r["fields"]["i"], *i);
        assert_eq!(r["fields"]["ratio"], *i as f64 / 2.0);
        assert_eq!(r["fields"]["ok"], true);
        *i += 1;
    }
    assert_eq!(next.len(), 4);
    assert!(next.values().all(|&v| v == N));
    assert_eq!(failed.len(), 4);
    assert!(failed.values().all(|&v| v == 1), "{failed:?}");
}

const UDP_WORKER: &str = r#"
import logging, logging.handlers, sys, time
py, sl = int(sys.argv[1]), int(sys.argv[2])
log = logging.getLogger("udp")
log.setLevel(logging.INFO)
d = logging.handlers.DatagramHandler("127.0.0.1", py)
s = logging.handlers.SysLogHandler(address=("127.0.0.1", sl))
log.addHandler(d)
log.addHandler(s)
for i in range(50):
    log.warning("udp %d", i)
    time.sleep(0.001)
"#;

/// Waits (at most 30 s) until `path` holds `n` lines: for inputs that are
/// not acknowledged (UDP), whose arrival can only be seen in the file.
#[test]
fn datagram_and_syslog_handlers_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            "python-udp://127.0.0.1:0",
            "--listen",
            "syslog-udp://127.0.0.1:0",
            "--file",
            "out.jsonl",
            "--format",
            "json",
        ],
    );
    let script = dir.path().join("udp.py");
    std::fs::write(&script, UDP_WORKER).unwrap();
    let st = python()
        .arg(&script)
        .args([
            serve.port("python-udp://").to_string(),
            serve.port("syslog-udp://").to_string(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    wait_for_lines(&dir.path().join("out.jsonl"), 100);
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    let records = json(&dir.path().join("out.jsonl"));
    let count = |f: &dyn Fn(&serde_json::Value) -> bool| records.iter().filter(|r| f(r)).count();
    let dgram = count(&|r| r["target"] == "udp" && r["level"] == "WARN");
    assert_eq!(dgram, 50, "DatagramHandler records");
    let syslog = count(&|r| {
        r["fields"]["facility"] == "user"
            && r["msg"].as_str().is_some_and(|m| m.starts_with("udp "))
    });
    assert_eq!(syslog, 50, "SysLogHandler records");
    assert_eq!(records.len(), 100);
}

#[test]
#[ignore = "needs util-linux logger (Debian bsdutils); scripts/test runs it where logger is installed"]
fn the_logger_command_arrives_over_udp_and_tcp() {
    assert!(
        Command::new("logger").arg("--version").output().is_ok(),
        "util-linux logger is not installed (Debian: apt-get install bsdutils)"
    );
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            "syslog-udp://127.0.0.1:0",
            "--listen",
            "syslog-tcp://127.0.0.1:0",
            "--file",
            "out.jsonl",
            "--format",
            "json",
        ],
    );
    for (proto, port, rfc) in [
        ("--udp", serve.port("syslog-udp://"), "--rfc5424"),
        ("--udp", serve.port("syslog-udp://"), "--rfc3164"),
        ("--tcp", serve.port("syslog-tcp://"), "--rfc5424"),
        ("--tcp", serve.port("syslog-tcp://"), "--rfc3164"),
    ] {
        let st = Command::new("logger")
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                proto,
                rfc,
            ])
            .args(["-t", "lbtest", &format!("from logger {proto} {rfc}")])
            .status()
            .unwrap();
        assert!(st.success());
    }
    wait_for_lines(&dir.path().join("out.jsonl"), 4);
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    let records = json(&dir.path().join("out.jsonl"));
    assert_eq!(records.len(), 4);
    for proto in ["--udp", "--tcp"] {
        for rfc in ["--rfc5424", "--rfc3164"] {
            let want = format!("from logger {proto} {rfc}");
            let hit: Vec<_> = records
                .iter()
                .filter(|r| r["msg"] == want.as_str())
                .collect();
            assert_eq!(hit.len(), 1, "{want}");
            assert_eq!(hit[0]["fields"]["appname"], "lbtest");
        }
    }
}

fn error_code(mut s: TcpStream) -> Option<u16> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut back = Vec::new();
    let _ = s.read_to_end(&mut back);
    match logbraid::wire::decode(&back).ok()? {
        logbraid::wire::Frame::Error { code, .. } => Some(code.0),
        _ => None,
    }
}

/// Waits until the collector has closed `s` (after ending the sending half
/// first with `eof`) without answering.
fn closed_by_server(mut s: TcpStream, eof: bool) {
    if eof {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut back = Vec::new();
    assert_eq!(
        s.read_to_end(&mut back).unwrap(),
        0,
        "closed without an answer"
    );
}

fn send(port: u16, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(bytes).unwrap();
    s
}

#[test]
fn bad_input_closes_only_its_connection_and_good_clients_get_through() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            "tcp://127.0.0.1:0",
            "--listen",
            "python-tcp://127.0.0.1:0",
            "--file",
            "out.log",
            "--token",
            "s3cret",
            "--max-connections",
            "8",
        ],
    );
    let native = serve.port("tcp://");
    let py = serve.port("python-tcp://");

    // A good client is connected throughout.
    let url = format!("tcp://127.0.0.1:{native}");
    let good = ForwardSink::new(
        ForwardOptions::new(Endpoint::parse(&url).unwrap()).token(b"s3cret".to_vec()),
    )
    .unwrap();
    let (logger, guard) = logger_with(good);
    log_range(&logger, "good", 0..100);
    logger.flush();

    // Oversize length, refused from its four bytes.
    assert_eq!(
        error_code(send(native, &[0xff, 0xff, 0xff, 0x7f, 1, 1])),
        Some(4)
    );
    // Unknown version.
    assert_eq!(
        error_code(send(native, &[10, 0, 0, 0, 7, 1, 0, 0, 0, 0, 0, 0])),
        Some(2)
    );
    // Wrong token.
    assert_eq!(error_code(send(native, &hello("raw", b"guess"))), Some(1));
    // Garbage.
    assert_eq!(
        error_code(send(native, b"\x05\x00\x00\x00\x01\x63garbage")),
        Some(8)
    );
    // Truncated frame, then the end of the stream.
    let mut h = hello("raw", b"s3cret");
    h.truncate(h.len() - 3);
    closed_by_server(send(native, &h), true);
    // A pickle that would run os.system, and one with invalid UTF-8.
    let evil = b"cos\nsystem\n(S'touch pwned'\ntR.";
    let mut frame = (evil.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(evil);
    let mut s = send(py, &frame);
    let mut sink = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(
        s.read_to_end(&mut sink).unwrap(),
        0,
        "closed without an answer"
    );
    // Invalid UTF-8 in a str is decoded the way Python's surrogatepass
    // writes it, with U+FFFD: one record, the connection unharmed.
    let bad_utf8 = b"}q\x00(X\x03\x00\x00\x00msgq\x01X\x04\x00\x00\x00b\xff\xfeXu.";
    let mut frame = (bad_utf8.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(bad_utf8);
    closed_by_server(send(py, &frame), true);
    // A flood over --max-connections. Every bad connection above is closed
    // by now, and a connection gives its slot back before its socket
    // closes, so the good client holds the only slot. One of the 8 is kept
    // for the other stream listener (python-tcp), so this listener holds
    // 7: of 12 more, 6 are welcome and 6 refused with OVERLOADED, each
    // told at once (none has been silent for the second that would let a
    // newer one evict it).
    let flood: Vec<TcpStream> = (0..12)
        .map(|_| send(native, &hello("raw", b"s3cret")))
        .collect();
    let (mut welcome, mut overloaded) = (0, 0);
    for mut s in flood.iter() {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let frame = read_frame(&mut s).expect("an answer to a flood connection");
        match logbraid::wire::decode(&frame) {
            Ok(logbraid::wire::Frame::Welcome { .. }) => welcome += 1,
            Ok(logbraid::wire::Frame::Error { code, .. }) if code.0 == 7 => overloaded += 1,
            other => panic!("unexpected answer to a flood connection: {other:?}"),
        }
    }
    assert_eq!((welcome, overloaded), (6, 6));
    drop(flood);

    // The good client is still served.
    log_range(&logger, "good", 100..200);
    logger.flush();
    drop(guard);
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert!(!dir.path().join("pwned").exists());
    let out = lines(&dir.path().join("out.log"));
    assert_sequence(&out, "good", 200);
    for what in [
        "frame too large",
        "unsupported version",
        "bad token",
        "malformed frame",
        "truncated frame",
        "refused pickle",
        "too many connections",
    ] {
        assert!(err.contains(what), "no diagnostic for {what}: {err}");
    }
    assert_eq!(
        out.iter()
            .filter(|l| l.contains("b\u{fffd}\u{fffd}X"))
            .count(),
        1,
        "{out:?}"
    );
    // Six bad inputs and six connections over the cap, nothing else.
    assert!(
        err.contains("stopped; 201 records written, 12 inputs rejected"),
        "{err}"
    );
}

#[test]
fn bad_settings_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| serve_once(dir.path(), args);
    let (code, err) = run(&["--max-bytes", "12 parsecs"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--max-bytes"), "{err}");
    let (code, err) = run(&["--listen", "ftp://h:1"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--listen") && err.contains("unknown scheme"),
        "{err}"
    );
    let (code, err) = run(&["--route", "logs/{hots}.log"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--route") && err.contains("{hots}"), "{err}");
    std::fs::write(dir.path().join("bad.toml"), "rotate = \"fortnightly\"\n").unwrap();
    let (code, err) = run(&["--config", "bad.toml"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("rotate:"), "{err}");
    std::fs::write(dir.path().join("unknown.toml"), "colour = true\n").unwrap();
    let (code, err) = run(&["--config", "unknown.toml"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn a_toml_file_configures_routing_and_hostile_names_stay_inside() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("logbraid.toml"),
        "listen = [\"python-tcp://127.0.0.1:0\"]\nroute = \"logs/{host}/{program}.log\"\nformat = \"%(message)s\"\n",
    )
    .unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--config",
            "logbraid.toml",
            "--listen",
            "python-tcp://127.0.0.1:0",
        ],
    );
    let port = serve.port("python-tcp://").to_string();
    let script = r#"
import logging, logging.handlers, sys, multiprocessing
multiprocessing.current_process().name = sys.argv[2]
h = logging.handlers.SocketHandler("127.0.0.1", int(sys.argv[1]))
log = logging.getLogger("r"); log.setLevel(logging.INFO); log.addHandler(h)
for i in range(10): log.info("%s %d", sys.argv[2], i)
h.close()
"#;
    for name in ["api", "../../escape", "a/b"] {
        assert!(python()
            .args(["-c", script, &port, name])
            .status()
            .unwrap()
            .success());
    }
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    let logs = dir.path().join("logs/127.0.0.1");
    let mut names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    assert_eq!(names, ["___.._escape.log", "a_b.log", "api.log"]);
    assert_eq!(lines(&logs.join("api.log")).len(), 10);
    assert!(!dir.path().join("escape.log").exists());
}

#[test]
fn rotation_under_load_from_several_sources_loses_splits_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            "unix:c.sock",
            "--file",
            "out.log",
            "--max-bytes",
            "64KiB",
            "--compress",
            "gzip",
        ],
    );
    let unix = format!("unix:{}", dir.path().join("c.sock").display());
    let clients: Vec<_> = (0..4).map(|_| client(&unix)).collect();
    std::thread::scope(|s| {
        for (i, (logger, _)) in clients.iter().enumerate() {
            s.spawn(move || log_range(logger, &format!("src{i}"), 0..10_000));
        }
    });
    for (l, _) in &clients {
        l.flush();
    }
    drop(clients);
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    let files = rotated_files(&dir.path().join("out.log")).unwrap();
    assert!(files.len() > 10, "{} files", files.len());
    let mut all = Vec::new();
    for f in &files {
        let text = String::from_utf8(read_decompressed(f).unwrap()).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "a record split at the end of {f:?}"
        );
        all.extend(text.lines().map(str::to_string));
    }
    for i in 0..4 {
        assert_sequence(&all, &format!("src{i}"), 10_000);
    }
    assert_eq!(all.len(), 40_000);
}

/// A Python process with a stock `SocketHandler` that logs `n` records,
/// says `sent` on stdout, and keeps its connection open until its stdin
/// closes.
const LINGERING_WORKER: &str = r#"
import logging, logging.handlers, sys
h = logging.handlers.SocketHandler("127.0.0.1", int(sys.argv[1]))
log = logging.getLogger("linger")
log.setLevel(logging.INFO)
log.addHandler(h)
for i in range(int(sys.argv[2])):
    log.info("linger %d", i)
print("sent", flush=True)
sys.stdin.read()
"#;

#[test]
fn sigterm_writes_what_connections_still_open_had_sent_and_removes_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    // A socket file left by a collector that died: taken over.
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("c.sock")).unwrap());
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            "unix:c.sock",
            "--listen",
            "python-tcp://127.0.0.1:0",
            "--file",
            "out.log",
            "--format",
            "%(message)s",
        ],
    );
    // A second collector on the same socket is refused, and the first one's
    // socket stays.
    let second = Command::new(bin())
        .args(["serve", "--listen", "unix:c.sock", "--file", "other.log"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("in use by a running collector"), "{err}");
    assert!(dir.path().join("c.sock").exists());

    // Native: 20 batches in flight, no acknowledgement waited for.
    let mut native = std::os::unix::net::UnixStream::connect(dir.path().join("c.sock")).unwrap();
    native.write_all(&hello("raw", b"")).unwrap();
    let welcome = read_frame(&mut native).expect("a WELCOME");
    assert!(matches!(
        logbraid::wire::decode(&welcome),
        Ok(logbraid::wire::Frame::Welcome { highest: 0, .. })
    ));
    let mut bytes = Vec::new();
    for b in 0..20u64 {
        let msgs: Vec<String> = (b * 100..(b + 1) * 100)
            .map(|i| format!("raw {i}"))
            .collect();
        bytes.extend(batch_frame(1 + b * 100, &msgs));
    }
    native.write_all(&bytes).unwrap();
    // Python: 3000 records sent, connection left open.
    let script = dir.path().join("linger.py");
    std::fs::write(&script, LINGERING_WORKER).unwrap();
    let mut py = python()
        .arg(&script)
        .args([&serve.port("python-tcp://").to_string(), "3000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    BufReader::new(py.stdout.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert_eq!(said.trim(), "sent");

    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    drop(py.stdin.take());
    assert!(py.wait().unwrap().success());
    // The native client was acknowledged as far as the collector wrote
    // before closing, never beyond what it sent.
    let mut highest = 0;
    while let Some(f) = read_frame(&mut native) {
        if let Ok(logbraid::wire::Frame::Ack { highest: h }) = logbraid::wire::decode(&f) {
            assert!(h > highest && h <= 2000);
            highest = h;
        }
    }
    let mut got = lines(&dir.path().join("out.log"));
    got.sort();
    let mut want: Vec<String> = (0..2000).map(|i| format!("raw {i}")).collect();
    want.extend((0..3000).map(|i| format!("linger {i}")));
    want.sort();
    assert!(got == want, "{} lines, {} expected", got.len(), want.len());
    assert!(
        !dir.path().join("c.sock").exists(),
        "socket removed at exit"
    );
    assert!(!dir.path().join("other.log").exists());
}

#[test]
fn toml_values_of_the_wrong_kind_and_bad_flags_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| serve_once(dir.path(), args);
    for (toml, key) in [
        (
            "backup_count = \"ten\"\n",
            "backup_count: expected an integer",
        ),
        (
            "merge_window = -5\n",
            "merge_window: -5 is out of range: expected 0 to 60000",
        ),
        ("max_bytes = true\n", "max_bytes: expected a size"),
        ("listen = 9020\n", "listen: expected a URL"),
        (
            "max_frame = \"64KiB\"\n",
            "max_frame: 65536 is below 1048576",
        ),
        ("[serve]\nfile = \"x.log\"\n", "unknown key \"serve\""),
        ("colour = true\n", "unknown key \"colour\""),
    ] {
        std::fs::write(dir.path().join("bad.toml"), toml).unwrap();
        let (code, err) = run(&["--config", "bad.toml"]);
        assert_eq!(code, Some(2), "{toml}");
        assert!(err.contains(key), "{toml}: {err}");
    }
    std::fs::write(
        dir.path().join("broken.toml"),
        "file = \"a\"\nrotate = = 1\n",
    )
    .unwrap();
    let (code, err) = run(&["--config", "broken.toml"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("broken.toml: TOML syntax error at line 2"),
        "{err}"
    );
    for (args, key) in [
        (&["--max-frame", "1KiB"][..], "--max-frame"),
        (&["--max-connections", "0"][..], "--max-connections"),
        (&["--merge-window", "soon"][..], "--merge-window"),
        (&["--compress", "rar"][..], "--compress"),
        (&["--format", "%(nosuch)q"][..], "--format"),
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(err.contains(key), "{args:?}: {err}");
    }
    // Nothing was started or written by any of them.
    assert!(!dir.path().join("logs").exists());
    assert!(!dir.path().join("logbraid.sock").exists());
}

#[test]
fn every_toml_key_takes_effect_and_flags_win_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("logbraid.toml"),
        r#"
listen = ["tcp://127.0.0.1:0", "python-tcp://127.0.0.1:0"]
file = "from-toml.log"
max_bytes = "16KiB"
backup_count = 2
rotate = "daily"
compress = "gzip"
format = "json"
merge_window = 20
token = "t0k"
max_frame = "2MiB"
max_connections = 2
sync = "data"
"#,
    )
    .unwrap();
    let serve = Serve::start_with(
        dir.path(),
        &["--config", "logbraid.toml", "--format", "%(message)s"],
        2,
    );
    assert_eq!(serve.urls.len(), 2, "{:?}", serve.urls);
    let native = serve.port("tcp://");
    // The token is required, and the frame limit is the file's.
    assert_eq!(error_code(send(native, &hello("raw", b"nope"))), Some(1));
    let mut s = send(native, &hello("raw", b"t0k"));
    let welcome = read_frame(&mut s).unwrap();
    assert!(matches!(
        logbraid::wire::decode(&welcome),
        Ok(logbraid::wire::Frame::Welcome {
            max_frame: 2097152,
            ..
        })
    ));
    // Two connections are the cap: this one and the Python worker's; a
    // third is refused.
    let script = dir.path().join("linger.py");
    std::fs::write(&script, LINGERING_WORKER).unwrap();
    let mut py = python()
        .arg(&script)
        .args([&serve.port("python-tcp://").to_string(), "10000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    BufReader::new(py.stdout.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert_eq!(said.trim(), "sent");
    assert_eq!(error_code(send(native, &hello("raw", b"t0k"))), Some(7));
    drop(py.stdin.take());
    assert!(py.wait().unwrap().success());
    drop(s);
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("10000 records written and synced to disk ("),
        "{err}"
    );
    // 10000 lines of about 12 bytes rotate several times at 16 KiB: the
    // file's size trigger, its backup count, its compression, and the
    // flag's format.
    let active = dir.path().join("from-toml.log");
    let files = rotated_files(&active).unwrap();
    assert_eq!(files.len(), 3, "{files:?}");
    let mut kept = Vec::new();
    for f in &files {
        if f != &active {
            assert_eq!(f.extension().and_then(|e| e.to_str()), Some("gz"), "{f:?}");
        }
        let text = String::from_utf8(read_decompressed(f).unwrap()).unwrap();
        kept.extend(text.lines().map(str::to_string));
    }
    assert!(
        !kept.is_empty() && kept.len() < 10000,
        "{} lines kept",
        kept.len()
    );
    for l in &kept {
        assert!(l.starts_with("linger "), "not the flag's format: {l}");
    }
}

#[test]
#[ignore = "binds the default port 9020; scripts/test runs it when the port is free"]
fn without_flags_it_listens_on_the_default_socket_and_port() {
    assert!(
        std::net::TcpListener::bind("127.0.0.1:9020").is_ok(),
        "port 9020 is in use here"
    );
    let dir = tempfile::tempdir().unwrap();
    let stderr = dir.path().join("serve.err");
    let mut child = Command::new(bin())
        .arg("serve")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut said = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        said.push(line.trim_end().to_string());
    }
    let serve = Serve {
        child,
        urls: Vec::new(),
        stderr,
        metrics: None,
    };
    assert_eq!(
        said,
        [
            "listening on unix:./logbraid.sock",
            "listening on python-tcp://127.0.0.1:9020"
        ],
        "{}",
        std::fs::read_to_string(&serve.stderr).unwrap_or_default()
    );
    let script = dir.path().join("linger.py");
    std::fs::write(&script, LINGERING_WORKER).unwrap();
    let mut py = python()
        .arg(&script)
        .args(["9020", "10"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(py.wait().unwrap().success());
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    let got = lines(&dir.path().join("logs/logbraid.log"));
    assert_eq!(got.len(), 10, "{got:?}");
    assert!(got.iter().all(|l| l.contains("linger")), "{got:?}");
    assert!(!dir.path().join("logbraid.sock").exists());
}

#[test]
fn a_second_collector_on_the_same_file_exits_2_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let first = Serve::start(
        dir.path(),
        &["--listen", "tcp://127.0.0.1:0", "--file", "all.log"],
    );
    std::fs::write(dir.path().join("all.log.extra"), "operator's\n").unwrap();
    let second = Command::new(bin())
        .args([
            "serve",
            "--listen",
            "tcp://127.0.0.1:0",
            "--file",
            "all.log",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!("another collector (pid {})", first.child.id())),
        "{err}"
    );
    let (status, _) = first.stop();
    assert!(status.success());
    // The lock goes with the first collector; a third one starts.
    let third = Serve::start(
        dir.path(),
        &["--listen", "tcp://127.0.0.1:0", "--file", "all.log"],
    );
    let (status, _) = third.stop();
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("all.log.extra")).unwrap(),
        "operator's\n"
    );
}

#[test]
fn sighup_after_a_move_reopens_the_file_and_nothing_is_lost_or_misplaced() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--listen", "tcp://127.0.0.1:0", "--file", "out.log"];
    let serve = Serve::start(dir.path(), &args);
    let port = serve.port("tcp://");
    let (logger, guard) = client(serve.url("tcp://"));
    log_range(&logger, "before", 0..5_000);
    // flush returned: all of it is written and acknowledged.
    logger.flush();

    // What logrotate does without copytruncate: move, then SIGHUP.
    let out = dir.path().join("out.log");
    let moved = dir.path().join("out.log-20261206");
    std::fs::rename(&out, &moved).unwrap();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(serve.child.id() as i32, libc::SIGHUP) };
    // The reopen creates the file again; nothing else writes it meanwhile.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !out.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no file after SIGHUP: {}",
            std::fs::read_to_string(&serve.stderr).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    log_range(&logger, "after", 0..5_000);
    logger.flush();
    assert_sequence(&lines(&moved), "before", 5_000);
    assert_eq!(lines(&moved).len(), 5_000);
    assert_sequence(&lines(&out), "after", 5_000);
    assert_eq!(lines(&out).len(), 5_000);

    // A crash now, and a restart: the checkpoint names the new file, so
    // recovery cuts nothing and the moved file is not touched.
    serve.kill();
    let fixed = format!("tcp://127.0.0.1:{port}");
    let serve = Serve::start(dir.path(), &["--listen", &fixed, "--file", "out.log"]);
    log_range(&logger, "later", 0..100);
    logger.flush();
    drop(guard);
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert_sequence(&lines(&moved), "before", 5_000);
    assert_eq!(lines(&moved).len(), 5_000);
    let got = lines(&out);
    assert_eq!(got.len(), 5_100, "{err}");
    assert_sequence(&got[..5_000], "after", 5_000);
    assert_sequence(&got[5_000..], "later", 100);
}

/// A native client that logs `good 0`, `good 1`, … and waits for each
/// lot to be acknowledged.
struct GoodClient {
    logger: logbraid::Logger,
    _guard: logbraid::Guard,
    served: u64,
}

impl GoodClient {
    fn new(url: &str) -> GoodClient {
        let (logger, _guard) = client(url);
        GoodClient {
            logger,
            _guard,
            served: 0,
        }
    }

    /// Logs `n` more and returns once they are acknowledged.
    fn serve(&mut self, n: u64) {
        log_range(&self.logger, "good", self.served..self.served + n);
        self.served += n;
        self.logger.flush();
    }
}

/// Stops the collector, checking that it exits 0 and that its peak
/// resident memory stayed under `limit`; what it said on stderr.
fn stop_under(serve: Serve, limit: u64) -> String {
    let peak = peak_rss(serve.child.id());
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert!(peak < limit, "peak RSS {peak} bytes");
    err
}

/// Peak resident memory of a process, from `VmHWM` in its status.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap();
    kib << 10
}

/// Sends `bytes`, then reads until the collector closes the connection.
fn send_and_wait_for_close(port: u16, bytes: &[u8]) {
    let mut s = send(port, bytes);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.read_to_end(&mut Vec::new());
}

/// The attacks on memory that a collector reachable by strangers must
/// survive, one after the other against one collector started with
/// `--max-memory 64MiB`: its peak resident memory stays under that, every
/// good record is written, and a native client logging throughout is
/// served (its flushes return: acknowledged) between and after them.
#[test]
fn hostile_peers_cannot_take_the_collector_past_max_memory() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            "unix:c.sock",
            "--listen",
            "python-tcp://127.0.0.1:0",
            "--listen",
            "syslog-tcp://127.0.0.1:0",
            "--file",
            "out.log",
            "--max-memory",
            "64MiB",
            // The messages alone: the 256 KiB names are not written 2,000
            // times.
            "--format",
            "%(message)s",
        ],
    );
    let py = serve.port("python-tcp://");
    let syslog = serve.port("syslog-tcp://");
    let unix = format!("unix:{}", dir.path().join("c.sock").display());
    let mut good = GoodClient::new(&unix);

    // 2,000 records on one connection, each with its own pid and a
    // 256 KiB process name.
    let name = "p".repeat(256 << 10);
    let mut s = send(py, b"");
    for i in 0..2000u32 {
        s.write_all(&pickled_record(&format!("named {i}"), i + 1, &name))
            .unwrap();
    }
    drop(s);
    good.serve(100);

    // 64 connections, each one 1 MiB pickle of DUPs (then a valid dict).
    let mut dup = b"\x80\x02(N".to_vec();
    dup.resize((1 << 20) - 8, b'2');
    dup.extend(b"1}.");
    let mut frame = (dup.len() as u32).to_be_bytes().to_vec();
    frame.extend(&dup);
    let attackers: Vec<_> = (0..64)
        .map(|_| {
            let frame = frame.clone();
            std::thread::spawn(move || send_and_wait_for_close(py, &frame))
        })
        .collect();
    good.serve(100);
    for a in attackers {
        a.join().unwrap();
    }
    good.serve(100);

    // A syslog flood: 8 connections of 8,000 lines of 2 KiB each, twice
    // the ceiling.
    let flood: Vec<_> = (0..8)
        .map(|k| {
            std::thread::spawn(move || {
                let line = format!(
                    "<13>1 2026-12-06T00:00:00Z host{k} app - - - {}\n",
                    "x".repeat(2000)
                );
                let mut s = send(syslog, b"");
                for _ in 0..8_000 {
                    s.write_all(line.as_bytes()).unwrap();
                }
            })
        })
        .collect();
    good.serve(100);
    for f in flood {
        f.join().unwrap();
    }
    good.serve(100);
    drop(good);
    let err = stop_under(serve, 64 << 20);
    let out = lines(&dir.path().join("out.log"));
    assert_sequence(&out, "good", 500);
    let named = out.iter().filter(|l| l.starts_with("named ")).count();
    assert_eq!(named, 2000);
    let long = "x".repeat(2000);
    let flooded = out.iter().filter(|l| **l == long).count();
    assert_eq!(flooded, 64_000);
    // Every DUP pickle was refused for the working memory it asked for.
    assert!(err.contains("working memory limit"), "{err}");
}

/// The client ids a stopped collector's state holds: its snapshot's, then
/// what its journal changed.
fn saved_clients(state: &Path) -> std::collections::BTreeSet<String> {
    let mut journal = state.as_os_str().to_owned();
    journal.push(".journal");
    let unhex = |h: &str| {
        let bytes: Vec<u8> = (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect();
        String::from_utf8(bytes).unwrap()
    };
    let mut ids = std::collections::BTreeSet::new();
    for text in [
        std::fs::read_to_string(state).unwrap(),
        std::fs::read_to_string(std::path::PathBuf::from(journal)).unwrap(),
    ] {
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["client", _, _, id] => ids.insert(unhex(id)),
                ["forget", id] => ids.remove(&unhex(id)),
                _ => false,
            };
        }
    }
    ids
}

/// 200,000 `HELLO`s with fresh client ids make no entry at all (an entry
/// is made by a first batch), and a table of `--max-clients 100`, none of
/// them idle, refuses the 101st client id as overloaded rather than forget
/// one still sending; a native client logging throughout is acknowledged
/// all along, and the state saved holds exactly the 100 ids.
#[test]
fn hellos_make_no_state_and_a_full_table_refuses_new_client_ids() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            "unix:c.sock",
            "--listen",
            "tcp://127.0.0.1:0",
            "--file",
            "out.log",
            "--max-clients",
            "100",
            "--max-memory",
            "64MiB",
        ],
    );
    let tcp = serve.port("tcp://");
    let unix = format!("unix:{}", dir.path().join("c.sock").display());
    let mut good = GoodClient::new(&unix);
    good.serve(100);

    let hellos: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..25_000 {
                    let mut s = send(tcp, &hello(&format!("fresh-{t}-{i}"), b""));
                    s.shutdown(std::net::Shutdown::Write).unwrap();
                    let welcome = read_frame(&mut s).unwrap();
                    assert!(matches!(
                        logbraid::wire::decode(&welcome),
                        Ok(logbraid::wire::Frame::Welcome { highest: 0, .. })
                    ));
                }
            })
        })
        .collect();
    good.serve(100);
    for h in hellos {
        h.join().unwrap();
    }
    good.serve(100);

    // Client ids with a batch each: 99 fit beside the good client's.
    for i in 0..150 {
        let mut s = send(tcp, &hello(&format!("batch-{i}"), b""));
        s.write_all(&batch_frame(1, &[format!("batch {i}")]))
            .unwrap();
        read_frame(&mut s).unwrap();
        let answer = logbraid::wire::decode(&read_frame(&mut s).unwrap())
            .map(|f| format!("{f:?}"))
            .unwrap();
        if i < 99 {
            assert_eq!(answer, "Ack { highest: 1 }", "client {i}");
        } else {
            assert!(
                answer.starts_with("Error { code: ErrorCode(7)"),
                "client {i}: {answer}"
            );
        }
    }
    good.serve(100);
    drop(good);
    stop_under(serve, 64 << 20);
    let out = lines(&dir.path().join("out.log"));
    assert_sequence(&out, "good", 400);
    assert_eq!(out.iter().filter(|l| l.contains(": batch ")).count(), 99);
    let ids = saved_clients(&dir.path().join(".out.log.state"));
    assert_eq!(ids.len(), 100, "{ids:?}");
    assert!((0..99).all(|i| ids.contains(&format!("batch-{i}"))));
    assert!(!ids.iter().any(|id| id.starts_with("fresh-")));
}
