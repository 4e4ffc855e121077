//! `logbraid serve --metrics`: `/metrics` counts exactly what real clients
//! sent over real sockets, `/health` and `/ready` follow the collector's
//! state, and the HTTP server answers only what it serves.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use harness::http::{get, missing_from, readme_metrics, request, sample, wait_for_status};
use harness::{client, lines, log_range, pickled_record, serve_once, wait_for_lines, Serve};

/// Starts a collector writing `out.log` in `dir`, with metrics on a free
/// port, listening on `listen` (each `HOST:PORT` port 0), with `more`
/// flags and `env`.
fn start(dir: &Path, listen: &[&str], more: &[&str], env: &[(&str, &str)]) -> Serve {
    let mut args = Vec::new();
    for url in listen {
        args.extend(["--listen", url]);
    }
    args.extend(["--file", "out.log", "--metrics", "127.0.0.1:0"]);
    args.extend(more);
    Serve::start_env(dir, &args, listen.len(), env)
}

/// A syslog line (RFC 5424) over TCP, newline framed.
fn syslog_line(i: u64) -> String {
    format!("<14>1 2026-01-02T03:04:05Z host app 7 - - syslog {i}\n")
}

#[test]
fn metrics_count_exactly_the_records_sent_over_native_python_and_syslog() {
    const N: u64 = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let serve = start(
        dir.path(),
        &[
            "tcp://127.0.0.1:0",
            "python-tcp://127.0.0.1:0",
            "syslog-tcp://127.0.0.1:0",
        ],
        &[],
        &[],
    );
    let addr = serve.metrics.clone().unwrap();
    let (status, body) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(sample(&body, "logbraid_records_written_total"), 0.0);

    let tcp = serve.url("tcp://").to_string();
    let (logger, guard) = client(&tcp);
    log_range(&logger, "native", 0..N);
    // Acknowledged: written.
    logger.flush();
    drop(guard);

    let mut py = TcpStream::connect(("127.0.0.1", serve.port("python-tcp://"))).unwrap();
    let mut sys = TcpStream::connect(("127.0.0.1", serve.port("syslog-tcp://"))).unwrap();
    for i in 0..N {
        py.write_all(&pickled_record(&format!("python {i}"), 1, "p"))
            .unwrap();
        sys.write_all(syslog_line(i).as_bytes()).unwrap();
    }
    drop((py, sys));
    let out = dir.path().join("out.log");
    wait_for_lines(&out, 3 * N as usize);
    assert_eq!(lines(&out).len(), 3 * N as usize);

    let (_, m) = get(&addr, "/metrics");
    let received = |listener: &str, input: &str| {
        sample(
            &m,
            &format!(
                "logbraid_records_received_total{{listener=\"{listener}\",input=\"{input}\"}}"
            ),
        )
    };
    assert_eq!(received(&tcp, "native"), N as f64);
    assert_eq!(received(serve.url("python-tcp://"), "python"), N as f64);
    assert_eq!(received(serve.url("syslog-tcp://"), "syslog"), N as f64);
    assert_eq!(sample(&m, "logbraid_records_written_total"), (3 * N) as f64);
    assert_eq!(sample(&m, "logbraid_records_duplicate_total"), 0.0);
    assert_eq!(
        sample(&m, "logbraid_bytes_written_total"),
        std::fs::metadata(&out).unwrap().len() as f64
    );
    assert!(sample(&m, "logbraid_acks_total") >= 1.0);
    assert_eq!(sample(&m, "logbraid_connections_accepted_total"), 3.0);
    assert_eq!(sample(&m, "logbraid_files_open"), 1.0);
    assert_eq!(sample(&m, "logbraid_rotations_total"), 0.0);
    assert!(sample(&m, "logbraid_write_seconds_count") >= 1.0);
    assert_eq!(sample(&m, "logbraid_sync_seconds_count"), 0.0);
    for line in m
        .lines()
        .filter(|l| l.starts_with("logbraid_inputs_rejected_total"))
    {
        assert!(line.ends_with(" 0"), "nothing was rejected: {line}");
    }
    assert_eq!(get(&addr, "/health"), (200, "idle\n".to_string()));
    assert_eq!(get(&addr, "/ready"), (200, "ready\n".to_string()));
    let listed = readme_metrics("### Metrics and health");
    assert!(listed.len() >= 25, "{listed:?}");
    assert_eq!(missing_from(&listed, &m), Vec::<String>::new());

    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert!(err.contains(&format!("{} records written", 3 * N)), "{err}");
}

#[test]
fn rejected_inputs_are_counted_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let serve = start(
        dir.path(),
        &["tcp://127.0.0.1:0", "python-tcp://127.0.0.1:0"],
        &[],
        &[],
    );
    let addr = serve.metrics.clone().unwrap();
    let send_and_wait_for_close = |port: u16, bytes: &[u8]| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(bytes).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.read_to_end(&mut Vec::new());
    };
    // A native frame of garbage, twice; a pickle that would call a global.
    let native = serve.port("tcp://");
    send_and_wait_for_close(native, b"\x05\x00\x00\x00\x01\x63garbage");
    send_and_wait_for_close(native, b"\x05\x00\x00\x00\x01\x63garbage");
    let evil = b"cos\nsystem\n(S'true'\ntR.";
    let mut frame = (evil.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(evil);
    send_and_wait_for_close(serve.port("python-tcp://"), &frame);

    // Closed after it was counted.
    let (_, m) = get(&addr, "/metrics");
    let rejected = |reason: &str| {
        sample(
            &m,
            &format!("logbraid_inputs_rejected_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(rejected("malformed"), 2.0);
    assert_eq!(rejected("bad_pickle"), 1.0);
    assert_eq!(rejected("frame_too_large"), 0.0);
    assert_eq!(sample(&m, "logbraid_records_written_total"), 0.0);
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert!(err.contains("3 inputs rejected"), "{err}");
}

#[test]
fn the_metrics_server_answers_get_on_its_paths_only_and_survives_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let serve = start(dir.path(), &["python-tcp://127.0.0.1:0"], &[], &[]);
    let addr = serve.metrics.clone().unwrap();
    assert_eq!(get(&addr, "/nothing").0, 404);
    assert_eq!(get(&addr, "/metrics/x").0, 404);
    let post =
        "POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
    assert_eq!(request(&addr, post).0, 405);
    // Not HTTP, and a head larger than the server reads: answered with an
    // error or closed, and the server goes on.
    let garbage = request(&addr, "\x00\x01\x02 nonsense\r\n\r\n").0;
    assert!(garbage == 0 || garbage == 400, "{garbage}");
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let status = request(&addr, &huge).0;
    assert!(status == 0 || status == 431, "{status}");
    assert_eq!(get(&addr, "/metrics?x=1").0, 200);
    assert_eq!(get(&addr, "/health").0, 200);
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
}

#[test]
fn bad_metrics_settings_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = serve_once(dir.path(), &["--metrics", "9090"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--metrics") && err.contains("not HOST:PORT"),
        "{err}"
    );
    std::fs::write(dir.path().join("c.toml"), "metrics = \"localhost:http\"\n").unwrap();
    let (code, err) = serve_once(dir.path(), &["--config", "c.toml"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("metrics: \"localhost:http\" is not HOST:PORT"),
        "{err}"
    );
    std::fs::write(dir.path().join("d.toml"), "stall_timeout = \"soon\"\n").unwrap();
    let (code, err) = serve_once(dir.path(), &["--config", "d.toml"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("stall_timeout:"), "{err}");
}

/// Records whose routed file cannot be opened (a directory stands in its
/// place) wait, holding their memory: once they fill the share of
/// `--max-memory` for records waiting for the files, `/ready` says 503,
/// and once no write has completed for longer than `--stall-timeout`,
/// `/health` says 503.
#[test]
fn ready_fails_over_the_memory_budget_and_health_when_no_write_completes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs/p.log")).unwrap();
    let serve = start(
        dir.path(),
        &["python-tcp://127.0.0.1:0"],
        &[
            "--route",
            "logs/{program}.log",
            "--max-memory",
            "16MiB",
            "--stall-timeout",
            "200ms",
        ],
        &[],
    );
    let addr = serve.metrics.clone().unwrap();
    assert_eq!(get(&addr, "/ready").0, 200);
    let port = serve.port("python-tcp://");
    // The collector stops reading once the budget is full: a thread of
    // its own sends, and is left blocked when the collector is killed.
    std::thread::spawn(move || {
        let mut py = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let message = "m".repeat(1000);
        for _ in 0..10_000 {
            if py.write_all(&pickled_record(&message, 1, "p")).is_err() {
                return;
            }
        }
    });
    let (status, body) = wait_for_status(&addr, "/ready", 503);
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("over the memory budget: "), "{body}");
    let (status, body) = wait_for_status(&addr, "/health", 503);
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("output stuck: "), "{body}");
    let (_, m) = get(&addr, "/metrics");
    assert_eq!(
        sample(&m, "logbraid_pending_bytes"),
        sample(&m, "logbraid_pending_limit_bytes")
    );
    assert_eq!(sample(&m, "logbraid_pending_limit_bytes"), (2 << 20) as f64);
    assert!(sample(&m, "logbraid_records_held") > 0.0);
    assert_eq!(sample(&m, "logbraid_records_written_total"), 0.0);
    serve.kill();
}

/// A write that never returns (the `file::write` failpoint paused): once
/// a record has waited longer than `--stall-timeout`, `/health` says 503;
/// `/ready` says 503 from the SIGTERM on, while the collector drains.
#[cfg(feature = "failpoints")]
#[test]
fn health_fails_while_the_output_is_stuck_and_ready_fails_while_draining() {
    let dir = tempfile::tempdir().unwrap();
    let serve = start(
        dir.path(),
        &["python-tcp://127.0.0.1:0"],
        &["--stall-timeout", "200ms"],
        &[("FAILPOINTS", "file::write=pause")],
    );
    let addr = serve.metrics.clone().unwrap();
    // Nothing waits: an idle output is healthy.
    assert_eq!(get(&addr, "/health"), (200, "idle\n".to_string()));
    assert_eq!(get(&addr, "/ready").0, 200);
    let mut py = TcpStream::connect(("127.0.0.1", serve.port("python-tcp://"))).unwrap();
    py.write_all(&pickled_record("stuck", 1, "p")).unwrap();
    let (status, body) = wait_for_status(&addr, "/health", 503);
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("output stuck: "), "{body}");
    let (_, m) = get(&addr, "/metrics");
    assert!(sample(&m, "logbraid_pending_bytes") > 0.0);
    assert!(sample(&m, "logbraid_output_stuck_seconds") > 0.0);
    assert_eq!(sample(&m, "logbraid_records_written_total"), 1.0);
    // Stuck, but not draining and far from the budget: still ready.
    assert_eq!(get(&addr, "/ready").0, 200);
    drop(py);
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(serve.child.id() as i32, libc::SIGTERM) };
    // The drain waits for the write, which never returns.
    let (status, body) = wait_for_status(&addr, "/ready", 503);
    assert_eq!((status, body.as_str()), (503, "draining\n"));
    assert_eq!(get(&addr, "/health").0, 503);
    serve.kill();
}
