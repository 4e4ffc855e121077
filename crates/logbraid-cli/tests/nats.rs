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

use std::collections::{BTreeMap, HashMap};
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
use harness::cluster::{self, free_port, nats_server};
use harness::http::{get, missing_from, readme_metrics, sample, wait_for_status};
use harness::{batch_frame, hello_from, read_frame, Numbered, Proc};

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
    let (p, mut lines) = logbraid_says(errs, args, 1);
    (p, lines.remove(0))
}

/// Runs `logbraid` with `args`; waits for its first `n` stdout lines.
fn logbraid_says(errs: &Path, args: &[&str], n: usize) -> (Proc, Vec<String>) {
    let k = fs::read_dir(errs).unwrap().count();
    let stderr = errs.join(format!("{}-{k}.err", args[0]));
    let mut child = Command::new(env!("CARGO_BIN_EXE_logbraid"))
        .args(args)
        .current_dir(errs)
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let p = Proc { child, stderr };
    let lines = (0..n)
        .map(|_| {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert!(!line.is_empty(), "{}", p.said());
            line.trim_end().to_string()
        })
        .collect();
    (p, lines)
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
        (
            "write --from nats://127.0.0.1:1 --file a.log --metrics 9090",
            "not HOST:PORT",
        ),
        (
            "write --from nats://127.0.0.1:1 --file a.log --stall-timeout soon",
            "--stall-timeout",
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

/// One NATS server with JetStream on `port`, its store in `dir`: started
/// again with the same two, it has the streams it had.
fn lone_nats(dir: &Path, port: u16) -> Proc {
    fs::create_dir_all(dir).unwrap();
    let conf = dir.join("server.conf");
    fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\n\
             jetstream {{ store_dir: {:?}, max_memory_store: 64MB, max_file_store: 1GB }}\n",
            dir.join("js").display().to_string()
        ),
    )
    .unwrap();
    let n = fs::read_dir(dir).unwrap().count();
    let stderr = dir.join(format!("server-{n}.err"));
    let child = Command::new(nats_server())
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("nats-server runs");
    Proc { child, stderr }
}

/// A test's directory and a lone NATS server with JetStream.
struct Lone {
    /// Says what every process said, on a failure (before the files go).
    _testimony: Testimony,
    nats: Proc,
    port: u16,
    servers: String,
    errs: PathBuf,
    top: tempfile::TempDir,
}

impl Lone {
    fn start() -> Lone {
        let top = tempfile::tempdir().unwrap();
        let errs = top.path().join("errs");
        fs::create_dir(&errs).unwrap();
        let port = free_port();
        let nats = lone_nats(&top.path().join("nats"), port);
        Lone {
            _testimony: Testimony(errs.clone()),
            nats,
            port,
            servers: format!("nats://127.0.0.1:{port}"),
            errs,
            top,
        }
    }

    /// Kills the NATS server with SIGKILL.
    fn kill_nats(&mut self) {
        self.nats.kill();
    }

    /// Starts the NATS server again, on its port and its store.
    fn restart_nats(&mut self) {
        self.nats = lone_nats(&self.top.path().join("nats"), self.port);
    }

    /// A file of the test's directory.
    fn path(&self, name: &str) -> PathBuf {
        self.top.path().join(name)
    }

    /// A collector publishing to the server, listening on one TCP port,
    /// with `more` flags: it, its listener's URL and, with `--metrics`,
    /// the address of its metrics.
    fn collector(&self, more: &[&str]) -> (Proc, String, Option<String>) {
        let mut args = vec![
            "serve",
            "--listen",
            "tcp://127.0.0.1:0",
            "--publish",
            &self.servers,
        ];
        args.extend(more);
        let metrics = more.contains(&"--metrics");
        let (p, said) = logbraid_says(&self.errs, &args, 1 + usize::from(metrics));
        let url = said[0].strip_prefix("listening on ").unwrap().to_string();
        (p, url, said.get(1).map(|l| metrics_addr(l)))
    }

    /// A writer from the server to `log` (`%(message)s` lines) with its
    /// metrics on a free port, and `more` flags: it, what it said first,
    /// and the address of its metrics.
    fn writer(&self, log: &Path, more: &[&str]) -> (Proc, String, String) {
        let mut args = vec![
            "write",
            "--from",
            &self.servers,
            "--file",
            log.to_str().unwrap(),
            "--format",
            "%(message)s",
            "--metrics",
            "127.0.0.1:0",
        ];
        args.extend(more);
        let (p, said) = logbraid_says(&self.errs, &args, 2);
        (p, said[0].clone(), metrics_addr(&said[1]))
    }
}

/// A native client speaking the protocol itself, so that the batches a
/// collector receives are exactly the ones sent.
struct Raw {
    s: TcpStream,
    /// The next record's sequence number.
    next: u64,
    prefix: String,
}

impl Raw {
    /// Connects to `url` (`tcp://HOST:PORT`) as `client_id` of `program`,
    /// whose records are `<program> 0`, `<program> 1`, …
    fn connect(url: &str, client_id: &str, program: &str) -> Raw {
        let mut s = TcpStream::connect(url.strip_prefix("tcp://").unwrap()).unwrap();
        // Only a safety net against a collector that never answers.
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(&hello_from(client_id, program, b"")).unwrap();
        let welcome = read_frame(&mut s).expect("a WELCOME");
        assert!(matches!(
            logbraid::wire::decode(&welcome),
            Ok(logbraid::wire::Frame::Welcome { highest: 0, .. })
        ));
        Raw {
            s,
            next: 1,
            prefix: program.to_string(),
        }
    }

    /// Sends one batch of the next `n` records.
    fn batch(&mut self, n: u64) {
        let messages: Vec<String> = (self.next - 1..self.next - 1 + n)
            .map(|i| format!("{} {i}", self.prefix))
            .collect();
        self.s
            .write_all(&batch_frame(self.next, &messages))
            .unwrap();
        self.next += n;
    }

    /// Waits until every record sent is acknowledged.
    fn wait_acked(&mut self) {
        let want = self.next - 1;
        let mut highest = 0;
        while highest < want {
            let f = read_frame(&mut self.s).expect("the collector closed before acknowledging");
            match logbraid::wire::decode(&f) {
                Ok(logbraid::wire::Frame::Ack { highest: h }) => {
                    assert!(h > highest && h <= want, "ack {h} after {highest}");
                    highest = h;
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

/// Scrapes `addr` until `series` has the value `want` (the writer
/// acknowledges a message a moment after its records reach the file);
/// the scrape.
fn scrape_until(addr: &str, series: &str, want: f64) -> String {
    let mut m = String::new();
    until(&format!("{series} {want}"), || {
        m = get(addr, "/metrics").1;
        sample(&m, series) == want
    });
    m
}

/// The address in `metrics on http://ADDR`.
fn metrics_addr(line: &str) -> String {
    line.strip_prefix("metrics on http://")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string()
}

/// A publishing collector and a writer, each with `--metrics`, on a lone
/// NATS server: a client sends 2,000 records in 20 batches of its own
/// making; the collector's `/metrics` count them received, published in
/// 20 batches that JetStream acknowledged (one latency observation each),
/// none pending; the writer's count 20 messages taken and acknowledged,
/// none pending, no lag, and 2,000 records written, the file holding
/// them once, in order.
#[test]
#[ignore = "needs nats-server (scripts/test runs it where it is installed)"]
fn a_publishing_collector_and_a_writer_count_exactly_what_went_through_in_their_metrics() {
    const BATCHES: u64 = 20;
    const PER_BATCH: u64 = 100;
    const N: u64 = BATCHES * PER_BATCH;
    let lone = Lone::start();
    let (mut collector, url, addr) = lone.collector(&["--metrics", "127.0.0.1:0"]);
    let addr = addr.unwrap();
    let m = get(&addr, "/metrics").1;
    assert_eq!(sample(&m, "logbraid_publish_batches_total"), 0.0);
    assert_eq!(get(&addr, "/health"), (200, "idle\n".to_string()));
    assert_eq!(get(&addr, "/ready"), (200, "ready\n".to_string()));

    let mut client = Raw::connect(&url, "metered", "app");
    for _ in 0..BATCHES {
        client.batch(PER_BATCH);
    }
    client.wait_acked();
    // Acknowledged: published, and counted before the client heard of it.
    let m = get(&addr, "/metrics").1;
    let received =
        format!("logbraid_records_received_total{{listener=\"{url}\",input=\"native\"}}");
    assert_eq!(sample(&m, &received), N as f64);
    assert_eq!(sample(&m, "logbraid_records_duplicate_total"), 0.0);
    assert_eq!(sample(&m, "logbraid_connections_accepted_total"), 1.0);
    assert_eq!(sample(&m, "logbraid_connections_open"), 1.0);
    assert_eq!(sample(&m, "logbraid_publish_batches_total"), BATCHES as f64);
    assert_eq!(sample(&m, "logbraid_publish_pending"), 0.0);
    assert_eq!(sample(&m, "logbraid_pending_bytes"), 0.0);
    assert_eq!(sample(&m, "logbraid_publish_stuck_seconds"), 0.0);
    assert_eq!(
        sample(&m, "logbraid_publish_latency_seconds_count"),
        BATCHES as f64
    );
    assert_eq!(
        sample(&m, "logbraid_publish_latency_seconds_bucket{le=\"+Inf\"}"),
        BATCHES as f64
    );
    assert!(sample(&m, "logbraid_publish_latency_seconds_sum") > 0.0);
    // JetStream holds a batch already only when a publish was tried again
    // after its answer was lost.
    assert!(
        sample(&m, "logbraid_publish_duplicates_total")
            <= sample(&m, "logbraid_publish_retries_total"),
        "{m}"
    );
    for line in m
        .lines()
        .filter(|l| l.starts_with("logbraid_inputs_rejected_total"))
    {
        assert!(line.ends_with(" 0"), "nothing was rejected: {line}");
    }
    // No files: none of the output stage's metrics.
    for absent in [
        "logbraid_records_written",
        "logbraid_write_seconds",
        "logbraid_files_open",
    ] {
        assert!(
            !m.contains(&format!("# TYPE {absent} ")),
            "{absent} in\n{m}"
        );
    }
    assert_eq!(get(&addr, "/health"), (200, "idle\n".to_string()));
    assert_eq!(get(&addr, "/ready"), (200, "ready\n".to_string()));
    let publisher_scrape = m;

    let log = lone.path("out.log");
    let (mut writer, said, waddr) = lone.writer(&log, &[]);
    assert_eq!(said, "consuming LOGS as logbraid-writer");
    until("the writer has every record", || {
        lines(&log).len() as u64 >= N
    });
    let m = scrape_until(&waddr, "logbraid_consume_acked_total", BATCHES as f64);
    assert_eq!(
        sample(&m, "logbraid_consume_messages_total"),
        BATCHES as f64
    );
    assert_eq!(sample(&m, "logbraid_consume_pending"), 0.0);
    assert_eq!(sample(&m, "logbraid_consume_lag"), 0.0);
    // The stream was new: its messages are 1 to 20.
    let m = scrape_until(&waddr, "logbraid_consume_position", BATCHES as f64);
    assert!(sample(&m, "logbraid_consume_consumers_created_total") >= 1.0);
    assert_eq!(sample(&m, "logbraid_consume_malformed_total"), 0.0);
    assert_eq!(sample(&m, "logbraid_consume_gaps_total"), 0.0);
    assert_eq!(sample(&m, "logbraid_records_written_total"), N as f64);
    assert_eq!(sample(&m, "logbraid_acks_total"), BATCHES as f64);
    assert_eq!(
        sample(&m, "logbraid_bytes_written_total"),
        fs::metadata(&log).unwrap().len() as f64
    );
    assert!(sample(&m, "logbraid_write_seconds_count") >= 1.0);
    assert_eq!(sample(&m, "logbraid_pending_bytes"), 0.0);
    assert_eq!(sample(&m, "logbraid_files_open"), 1.0);
    assert_eq!(get(&waddr, "/health"), (200, "idle\n".to_string()));
    assert_eq!(get(&waddr, "/ready"), (200, "ready\n".to_string()));
    // Every metric the README's NATS section tells to watch is served by
    // one or the other.
    let listed = readme_metrics("### Beyond one collector: NATS JetStream");
    assert!(listed.len() >= 10, "{listed:?}");
    let both = format!("{publisher_scrape}{m}");
    assert_eq!(missing_from(&listed, &both), Vec::<String>::new());

    let want: Vec<String> = (0..N).map(|i| format!("app {i}")).collect();
    assert!(lines(&log) == want, "{} lines", lines(&log).len());
    let said = writer.stop();
    assert!(
        said.contains(&format!(
            "{N} records written, {BATCHES} messages acknowledged, stream position {BATCHES}"
        )),
        "{said}"
    );
    drop(client);
    let said = collector.stop();
    assert!(
        said.contains(&format!(
            "{BATCHES} batches published to stream LOGS, 0 not acknowledged"
        )),
        "{said}"
    );
}

/// `--stall-timeout` for a publishing collector: with its NATS server
/// gone, a batch waits for JetStream and `/health` says 503 once it has
/// waited longer; `/ready` stays 200 (the budget is far from full). The
/// server started again on the same store, the batch is published and
/// acknowledged, and `/health` is 200 again.
#[test]
#[ignore = "needs nats-server (scripts/test runs it where it is installed)"]
fn health_fails_while_batches_wait_for_jetstream_longer_than_the_stall_timeout() {
    let mut lone = Lone::start();
    let (mut collector, url, addr) =
        lone.collector(&["--metrics", "127.0.0.1:0", "--stall-timeout", "300ms"]);
    let addr = addr.unwrap();
    let mut client = Raw::connect(&url, "patient", "app");
    client.batch(10);
    client.wait_acked();
    lone.kill_nats();

    client.batch(10);
    let (status, body) = wait_for_status(&addr, "/health", 503);
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("publishing stuck: "), "{body}");
    assert!(body.contains("no acknowledgement from JetStream"), "{body}");
    let m = get(&addr, "/metrics").1;
    assert_eq!(sample(&m, "logbraid_publish_pending"), 1.0);
    assert_eq!(sample(&m, "logbraid_publish_batches_total"), 1.0);
    assert!(sample(&m, "logbraid_pending_bytes") > 0.0);
    assert!(sample(&m, "logbraid_publish_stuck_seconds") > 0.3);
    assert_eq!(get(&addr, "/ready"), (200, "ready\n".to_string()));

    lone.restart_nats();
    client.wait_acked();
    assert_eq!(get(&addr, "/health"), (200, "idle\n".to_string()));
    let m = get(&addr, "/metrics").1;
    assert_eq!(sample(&m, "logbraid_publish_batches_total"), 2.0);
    assert_eq!(sample(&m, "logbraid_publish_pending"), 0.0);
    assert_eq!(sample(&m, "logbraid_publish_latency_seconds_count"), 2.0);
    drop(client);
    collector.stop();
}

/// Two writers with their own consumers and `--filter`s split a stream
/// whose subjects are `logs.{program}`: two clients of programs `alpha`
/// and `beta` send interleaved batches, and each writer's file holds
/// exactly its program's records, each once, in order, and none of the
/// other's.
#[test]
#[ignore = "needs nats-server (scripts/test runs it where it is installed)"]
fn writers_with_different_filters_split_a_stream_by_subject() {
    const BATCHES: u64 = 10;
    const PER_BATCH: u64 = 150;
    let lone = Lone::start();
    let (mut collector, url, _) = lone.collector(&["--subject", "logs.{program}"]);
    let programs = ["alpha", "beta"];
    let mut clients: Vec<Raw> = programs
        .iter()
        .map(|p| Raw::connect(&url, &format!("{p}-client"), p))
        .collect();
    for _ in 0..BATCHES {
        for c in &mut clients {
            c.batch(PER_BATCH);
        }
    }
    for c in &mut clients {
        c.wait_acked();
    }
    let mut writers = BTreeMap::new();
    for p in programs {
        let log = lone.path(&format!("{p}.log"));
        let consumer = format!("{p}-writer");
        let filter = format!("logs.{p}");
        let (writer, said, addr) =
            lone.writer(&log, &["--consumer", &consumer, "--filter", &filter]);
        assert_eq!(said, format!("consuming LOGS as {p}-writer"));
        writers.insert(p, (writer, addr, log));
    }
    for (p, (writer, addr, log)) in &mut writers {
        // Everything of its subject taken and written: nothing is left
        // for this consumer in the stream.
        let m = scrape_until(addr, "logbraid_consume_acked_total", BATCHES as f64);
        assert_eq!(
            sample(&m, "logbraid_consume_messages_total"),
            BATCHES as f64
        );
        assert_eq!(sample(&m, "logbraid_consume_lag"), 0.0);
        assert_eq!(sample(&m, "logbraid_consume_pending"), 0.0);
        writer.stop();
        let want: Vec<String> = (0..BATCHES * PER_BATCH)
            .map(|i| format!("{p} {i}"))
            .collect();
        let got = lines(log);
        assert!(
            got == want,
            "{p}: {} lines, first {:?}",
            got.len(),
            got.first()
        );
    }
    drop(clients);
    collector.stop();
}
