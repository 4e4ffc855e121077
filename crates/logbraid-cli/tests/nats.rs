//! Scale-out on NATS JetStream, end to end: a real 3-node JetStream
//! cluster on loopback (started here, in temporary directories, on ports
//! the system hands out), two `logbraid serve --publish` collectors behind
//! a round-robin TCP balancer, one `logbraid write`, and forwarding
//! clients sending numbered records. Mid-stream a NATS server, a collector
//! and the writer are killed with SIGKILL; the collector and the writer
//! are started again (the NATS server is not: the cluster goes on with two
//! of three). The servers take messages of 64 KiB at most, so batches
//! larger than that are published in parts. In the end every client's
//! flush has been acknowledged and
//! the writer's file holds every record of every client exactly once, in
//! each client's order.
//!
//! Needs `nats-server` (2.9 or later) on PATH, or its path in
//! `$NATS_SERVER`: `#[ignore]`d, run by `scripts/test` where it is
//! installed (SKIPPED otherwise).

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logbraid::sink::{backup_files, read_decompressed};

mod harness;
use harness::cluster::{self, free_port};
use harness::{Numbered, Proc};

/// Only a safety net, so a broken cluster fails the test instead of
/// hanging it; no assertion depends on it.
const PATIENCE: Duration = Duration::from_secs(180);

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A 3-node JetStream cluster.
struct Cluster {
    nodes: Vec<Option<Proc>>,
    urls: Vec<String>,
}

impl Cluster {
    fn start(top: &Path) -> Cluster {
        let (nodes, urls) = cluster::start(top, "64KB").expect("nats-server runs");
        Cluster {
            nodes: nodes
                .into_iter()
                .map(|(child, stderr)| Some(Proc { child, stderr }))
                .collect(),
            urls,
        }
    }

    fn servers(&self) -> String {
        self.urls.join(",")
    }
}

/// Runs `logbraid` with `args`; waits for its first stdout line.
fn logbraid(errs: &Path, args: &[&str]) -> (Proc, String) {
    let n = fs::read_dir(errs).unwrap().count();
    let stderr = errs.join(format!("{}-{n}.err", args[0]));
    let mut child = Command::new(env!("CARGO_BIN_EXE_logbraid"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let p = Proc { child, stderr };
    assert!(!line.is_empty(), "{}", p.said());
    (p, line.trim_end().to_string())
}

/// A round-robin TCP balancer in front of the collectors: each new
/// connection goes to the next backend that accepts it.
struct Balancer {
    addr: String,
    stop: Arc<AtomicBool>,
}

impl Balancer {
    fn start(backends: Vec<String>) -> Balancer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        std::thread::spawn(move || {
            let next = AtomicUsize::new(0);
            for conn in l.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let all = &backends;
                let start = next.fetch_add(1, Ordering::Relaxed);
                let upstream = (0..all.len())
                    .find_map(|k| TcpStream::connect(&all[(start + k) % all.len()]).ok());
                let Some(upstream) = upstream else { continue };
                pipe(client, upstream);
            }
        });
        Balancer { addr, stop }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Copies bytes both ways until either side closes, then closes both.
fn pipe(a: TcpStream, b: TcpStream) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    for (mut from, mut to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Both);
            let _ = from.shutdown(std::net::Shutdown::Both);
        });
    }
}

/// Every record line of the log and its backups, oldest file first.
fn lines(log: &Path) -> Vec<String> {
    let mut files = backup_files(log).unwrap_or_default();
    if log.is_file() {
        files.push(log.to_path_buf());
    }
    let mut all = Vec::new();
    for f in files {
        let text = String::from_utf8(read_decompressed(&f).unwrap()).unwrap();
        all.extend(text.lines().map(str::to_string));
    }
    all
}

/// Each client's numbers in file order.
fn per_client(lines: &[String]) -> HashMap<String, Vec<u64>> {
    let mut by: HashMap<String, Vec<u64>> = HashMap::new();
    for l in lines {
        let (name, n) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l:?}"));
        by.entry(name.to_string())
            .or_default()
            .push(n.parse().unwrap_or_else(|_| panic!("{l:?}")));
    }
    by
}

/// On a failure, shows what every process said.
struct Testimony(PathBuf);

impl Drop for Testimony {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut files: Vec<PathBuf> = fs::read_dir(&self.0)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files {
            let text = fs::read_to_string(&f).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            eprintln!("== {}", f.display());
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

const CLIENTS: usize = 4;
const CHUNK: u64 = 2_000;
const CHUNKS: u64 = 8;

#[test]
#[ignore = "needs nats-server (scripts/test runs it where it is installed)"]
fn a_nats_node_a_collector_and_the_writer_killed_mid_stream_lose_and_repeat_nothing() {
    let top = tempfile::tempdir().unwrap();
    let errs = top.path().join("errs");
    fs::create_dir(&errs).unwrap();
    let log = top.path().join("out").join("app.log");
    fs::create_dir(log.parent().unwrap()).unwrap();
    let _testimony = Testimony(errs.clone());
    let mut cluster = Cluster::start(top.path());
    let servers = cluster.servers();

    let ports = [free_port(), free_port()];
    let listen: Vec<String> = ports
        .iter()
        .map(|p| format!("tcp://127.0.0.1:{p}"))
        .collect();
    let collector = |i: usize| {
        logbraid(
            &errs,
            &[
                "serve",
                "--listen",
                &listen[i],
                "--publish",
                &servers,
                "--duplicate-window",
                "5m",
            ],
        )
    };
    let mut collectors: Vec<Proc> = (0..2).map(|i| collector(i).0).collect();
    for c in &collectors {
        // The stream survives the loss of a server.
        let said = c.said();
        assert!(
            said.contains("publishing to stream LOGS (3 replicas, duplicate window 300 s)"),
            "{said}"
        );
    }
    let writer_args = [
        "write",
        "--from",
        &servers,
        "--file",
        log.to_str().unwrap(),
        "--format",
        "%(message)s",
        "--max-bytes",
        "256KiB",
        "--ack-wait",
        "10s",
    ];
    let (mut writer, said) = logbraid(&errs, &writer_args);
    assert_eq!(said, "consuming LOGS as logbraid-writer");

    let balancer = Balancer::start(ports.iter().map(|p| format!("127.0.0.1:{p}")).collect());
    let url = format!("tcp://{}", balancer.addr);
    let mut clients: Vec<Numbered> = (0..CLIENTS)
        .map(|i| {
            let name = format!("client-{i}");
            Numbered::connect(&url, &name, &name, Duration::from_millis(100))
        })
        .collect();

    let acked = |clients: &[Numbered]| clients.iter().map(Numbered::acked).sum::<u64>();
    for chunk in 0..CHUNKS {
        for c in &mut clients {
            c.send(CHUNK);
        }
        // Each fault strikes while the chunk just sent is in flight, once
        // the one before is acknowledged (a loaded machine only moves it
        // later in the stream).
        let before = chunk * CHUNK * CLIENTS as u64;
        until(
            &format!("chunk {chunk}: the one before acknowledged"),
            || acked(&clients) >= before,
        );
        match chunk {
            2 => {
                let mut node = cluster.nodes[0].take().unwrap();
                // nats-server exits on SIGKILL like any process.
                node.kill();
            }
            4 => {
                collectors[0].kill();
                collectors[0] = collector(0).0;
            }
            6 => {
                writer.kill();
                writer = logbraid(&errs, &writer_args).0;
            }
            _ => {}
        }
    }
    for c in &clients {
        c.logger.flush();
    }
    for c in &clients {
        assert_eq!(c.acked(), c.next, "{} not all acknowledged", c.prefix);
    }
    let total = CHUNK * CHUNKS * CLIENTS as u64;
    until("the writer has every record", || {
        lines(&log).len() as u64 >= total
    });
    let said = writer.stop();
    let got = lines(&log);
    let by = per_client(&got);
    assert_eq!(by.len(), CLIENTS, "{said}");
    for c in &clients {
        let want: Vec<u64> = (0..c.next).collect();
        let have = &by[&c.prefix];
        if have != &want {
            let mut sorted = have.clone();
            sorted.sort_unstable();
            let repeated: Vec<&[u64]> =
                sorted.windows(2).filter(|w| w[0] == w[1]).take(5).collect();
            panic!(
                "{}: {} records for {}, repeats {repeated:?}; writer said {said}",
                c.prefix,
                have.len(),
                c.next
            );
        }
    }
    assert_eq!(got.len() as u64, total);
    drop(balancer);
    for c in &mut collectors {
        c.stop();
    }
    // The NATS servers are killed when the cluster is dropped (nats-server
    // exits 1 on SIGTERM).
    drop(cluster);
}

/// Runs `logbraid` to its end in `dir`: exit code and stderr.
fn run_to_end(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_logbraid"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_publishing_and_writing_settings_exit_2_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    for (args, want) in [
        (
            "serve --publish nats://127.0.0.1:1 --listen python-tcp://127.0.0.1:0",
            "logbraid serve: publish: takes native listeners only",
        ),
        (
            "serve --publish nats://127.0.0.1:1 --listen tcp://127.0.0.1:0 --rotate daily",
            "logbraid serve: rotate: is for files, and publish writes none",
        ),
        (
            "serve --publish tcp://127.0.0.1:1 --listen tcp://127.0.0.1:0",
            "is not a nats://HOST:PORT URL",
        ),
        (
            "write --from nats://127.0.0.1:1 --file a.log --listen tcp://127.0.0.1:0",
            "logbraid write: listen is a setting of logbraid serve, not of write",
        ),
        (
            "write --from nats://127.0.0.1:1 --file a.log --consumer a.b",
            "logbraid write: consumer: \"a.b\" is not a consumer name",
        ),
        (
            "write --from nats://127.0.0.1:1 --file a.log --stream a.b",
            "is not a stream name",
        ),
    ] {
        let args: Vec<&str> = args.split(' ').collect();
        let (code, said) = run_to_end(dir.path(), &args);
        assert_eq!(code, Some(2), "{args:?}: {said}");
        assert!(said.contains(want), "{args:?}: {said}");
    }
    // Nothing was created: no log, no checkpoint, no socket.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}
