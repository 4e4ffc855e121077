//! `logbraid serve`'s connection slots, driven as a real process: a crowd
//! of connections that never say anything cannot keep clients out, and a
//! Python or syslog stream must send its first record in time and keep a
//! record in progress moving.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use harness::{assert_sequence, client, lines, log_range, Serve};

/// How many events of `kind` the collector reported on stderr: the lines
/// shown, the ones they say were held back, and the count at the stop.
fn reported(stderr: &str, kind: &str) -> u64 {
    let mut n = 0;
    for line in stderr.lines() {
        if line.contains(&format!("{kind} from ")) {
            n += 1;
            if let Some(more) = line
                .split(" (")
                .nth(1)
                .and_then(|m| m.strip_suffix(" more of this kind not shown)"))
            {
                n += more.parse::<u64>().unwrap();
            }
        } else if let Some(more) = line
            .strip_prefix("logbraid serve: ")
            .and_then(|l| l.strip_suffix(&format!(" more {kind} not shown")))
        {
            n += more.parse::<u64>().unwrap();
        }
    }
    n
}

#[test]
fn a_crowd_of_silent_connections_cannot_keep_clients_out() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            "unix:c.sock",
            "--listen",
            "tcp://127.0.0.1:0",
            "--listen",
            "python-tcp://127.0.0.1:0",
            "--file",
            "out.log",
        ],
    );
    let tcp = serve.port("tcp://");
    let py = serve.port("python-tcp://");
    // 1,100 connections from this address that never send a byte, to
    // both TCP listeners: more than the collector's 1,024 slots.
    let crowd: Vec<TcpStream> = (0..1100)
        .map(|i| TcpStream::connect(("127.0.0.1", if i % 2 == 0 { tcp } else { py })).unwrap())
        .collect();

    // A local client: served from the slots kept for Unix sockets.
    let unix = format!("unix:{}", dir.path().join("c.sock").display());
    let (a, ga) = client(&unix);
    log_range(&a, "unix", 0..1000);
    a.flush();
    // A client from the crowd's own address: the oldest silent connection
    // makes room for it.
    let (b, gb) = client(&format!("tcp://127.0.0.1:{tcp}"));
    log_range(&b, "tcp", 0..1000);
    b.flush();
    // flush returned: both are written and acknowledged.
    let out = lines(&dir.path().join("out.log"));
    assert_eq!(out.len(), 2000);
    assert_sequence(&out, "unix", 1000);
    assert_sequence(&out, "tcp", 1000);
    drop((ga, gb));

    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    // 256 connections from one address at once. Each later one either
    // evicted a connection silent for a second or, while none had been,
    // was turned away (the TCP client then tried again): how the 845 split
    // depends on the pace of the connects, but the TCP client got in only
    // by an eviction (the crowd's 256 would otherwise have held the
    // address's slots for the 10 s they may stay silent), and nothing was
    // evicted or refused twice.
    let evicted = reported(&err, "evicted while silent");
    let refused = reported(&err, "too many connections");
    assert!(evicted >= 1, "{err}");
    assert!(evicted <= 845, "{err}");
    assert!(evicted + refused >= 845, "{err}");
    drop(crowd);
}

/// Reads from `s` until the collector closes it (a deadline guards the
/// test against a collector that never does).
fn wait_closed(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(_) => assert!(Instant::now() < deadline, "never closed"),
        }
    }
}

#[test]
fn streams_must_start_in_time_and_keep_a_record_moving() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            "syslog-tcp://127.0.0.1:0",
            "--listen",
            "python-tcp://127.0.0.1:0",
            "--file",
            "out.log",
        ],
    );
    let syslog = serve.port("syslog-tcp://");
    let py = serve.port("python-tcp://");
    // Says nothing at all; half a frame header and then nothing.
    let mut mute = TcpStream::connect(("127.0.0.1", syslog)).unwrap();
    let mut stub = TcpStream::connect(("127.0.0.1", py)).unwrap();
    stub.write_all(&[0, 0]).unwrap();
    // Sends a whole record, then starts another and trickles it out at a
    // byte a second, far under the minimum rate.
    let mut slow = TcpStream::connect(("127.0.0.1", syslog)).unwrap();
    slow.write_all(b"<14>1 - web app 7 - - first\n<14>1 - web app 7 - - sec")
        .unwrap();
    let trickle = std::thread::spawn(move || {
        // The pace of a slow sender is what is tested here.
        for b in b"ond and more".iter().cycle().take(60) {
            if slow.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        slow
    });
    wait_closed(&mut mute);
    wait_closed(&mut stub);
    let mut slow = trickle.join().unwrap();
    wait_closed(&mut slow);

    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert_eq!(
        reported(&err, "no HELLO in time"),
        2,
        "the mute and the stub: {err}"
    );
    assert!(err.contains("no complete record within 10s"), "{err}");
    assert_eq!(reported(&err, "record too slow"), 1, "{err}");
    // The record that came whole is written; the one cut short is not.
    let out = lines(&dir.path().join("out.log"));
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].contains(": first "), "{out:?}");
}
