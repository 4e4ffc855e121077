//! The output stage against real files: order, acknowledgements, the merge
//! window, routing with hostile values, the memory bound, recovery from a
//! checkpoint, and rotation under load.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use logbraid::layout::LayoutSpec;
use logbraid::sink::{read_decompressed, rotated_files};
use logbraid::wire::{BatchEncoder, Dedup, Push};
use logbraid::{Compression, FieldsBuf, Level, OwnedRecord, Record, Source, SyncMode};
use logbraid_collector::output::{
    check_route, AckTo, Body, ClientFiles, Delivery, FileSpec, Output, OutputConfig, OutputError,
    OutputStats, RecordBatch,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Only a safety net, so a broken stage fails the test instead of hanging
/// it; no assertion depends on it.
const PATIENCE: Duration = Duration::from_secs(60);

fn source(host: &str, pid: u32, program: &str) -> Arc<Source> {
    Arc::new(Source {
        host: host.to_string(),
        pid,
        process_name: program.to_string(),
    })
}

fn spec(path: &Path) -> FileSpec {
    FileSpec {
        path: path.to_path_buf(),
        layout: LayoutSpec::parse("%(message)s", None).unwrap(),
        max_bytes: 0,
        backup_count: 0,
        every: None,
        compression: Compression::None,
        mode: logbraid_collector::output::DEFAULT_FILE_MODE,
        follow_links: false,
    }
}

fn config(file: FileSpec) -> OutputConfig {
    OutputConfig {
        file,
        route: None,
        merge_window: None,
        max_pending_bytes: 8 << 20,
        state_path: None,
        fallback: None,
        sync: logbraid::SyncMode::None,
        client_files: None,
    }
}

fn start(config: OutputConfig) -> (Output, logbraid_collector::output::OutputHandle) {
    Output::start(config, Arc::new(Mutex::new(Dedup::new()))).unwrap()
}

fn record<'a>(src: &'a Source, ts: i64, msg: &'a str, target: &'a str) -> Record<'a> {
    Record::new(Level::Info, target, msg.as_bytes(), src)
        .with_timestamp(ts)
        .with_thread_id(1)
}

fn owned(src: &Arc<Source>, ts: i64, msg: &str, target: &str) -> OwnedRecord {
    OwnedRecord::from_record_with_source(&record(src, ts, msg, target), src)
}

/// A real `BATCH` frame numbered from `first`, one record per
/// `(timestamp, message)`, logger `t`.
fn frame(src: &Source, first: u64, records: &[(i64, String)]) -> Vec<u8> {
    frame_of(
        src,
        first,
        records.iter().map(|(ts, m)| (*ts, m.as_str(), "t")),
    )
}

/// A `BATCH` frame numbered from `first`, one record per `(message,
/// logger)`.
fn frame_to(src: &Source, first: u64, records: &[(&str, &str)]) -> Vec<u8> {
    frame_of(src, first, records.iter().map(|&(m, t)| (1, m, t)))
}

fn frame_of<'a>(
    src: &Source,
    first: u64,
    records: impl Iterator<Item = (i64, &'a str, &'a str)>,
) -> Vec<u8> {
    let mut enc = BatchEncoder::default();
    for (ts, msg, target) in records {
        let r = record(src, ts, msg, target);
        assert_eq!(enc.push(&r), Push::Added);
    }
    let mut out = Vec::new();
    enc.finish(first, &mut out).unwrap();
    out
}

fn msgs(prefix: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<(i64, String)> {
    seqs.map(|s| (s as i64, format!("{prefix}{s}"))).collect()
}

/// A native delivery as a listener builds it: admitted by the table first,
/// then handed over with the skip the table decided and an ack address.
fn admitted(
    dedup: &Mutex<Dedup>,
    src: &Arc<Source>,
    client: &str,
    epoch: u64,
    first: u64,
    records: &[(i64, String)],
    tx: &UnboundedSender<u64>,
) -> Delivery {
    let n = records.len() as u32;
    admitted_frame(
        dedup,
        src,
        (client, epoch),
        first,
        n,
        frame(src, first, records),
        tx,
    )
}

/// [`admitted`] for a frame built by the caller, of `n` records.
fn admitted_frame(
    dedup: &Mutex<Dedup>,
    src: &Arc<Source>,
    (client, epoch): (&str, u64),
    first: u64,
    n: u32,
    frame: Vec<u8>,
    tx: &UnboundedSender<u64>,
) -> Delivery {
    let a = dedup
        .lock()
        .unwrap()
        .admit(client, epoch, first, n)
        .unwrap();
    Delivery {
        source: Arc::clone(src),
        body: Body::Native {
            frame,
            skip: a.skip,
        },
        ack: Some(AckTo {
            client_id: client.into(),
            epoch,
            last: first + u64::from(n) - 1,
            tx: tx.clone(),
        }),
    }
}

/// [`admitted`] for client `c`, epoch 1, one record per `(message, logger)`.
fn admitted_to(
    dedup: &Mutex<Dedup>,
    src: &Arc<Source>,
    first: u64,
    records: &[(&str, &str)],
    tx: &UnboundedSender<u64>,
) -> Delivery {
    let frame = frame_to(src, first, records);
    admitted_frame(dedup, src, ("c", 1), first, records.len() as u32, frame, tx)
}

fn lines(path: &Path) -> Vec<String> {
    String::from_utf8(fs::read(path).unwrap())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn ack(rx: &mut UnboundedReceiver<u64>) -> u64 {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("an ack in time")
        .expect("the ack channel open")
}

#[tokio::test]
async fn records_go_out_in_arrival_order_and_skipped_records_stay_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let (output, h) = start(config(spec(&path)));
    let a = source("a", 1, "pa");
    let b = source("b", 2, "pb");
    let native = |first, records: &[(i64, String)], skip| Delivery {
        source: Arc::clone(&a),
        body: Body::Native {
            frame: frame(&a, first, records),
            skip,
        },
        ack: None,
    };
    assert!(h.send(native(1, &msgs("a", 1..=5), 2)).await);
    let rs = vec![owned(&b, 0, "b1", "t"), owned(&b, 0, "b2", "t")];
    assert!(
        h.send(Delivery {
            source: Arc::clone(&b),
            body: Body::Records(rs),
            ack: None,
        })
        .await
    );
    assert!(h.send(native(6, &msgs("a", 6..=7), 0)).await);
    // A frame that does not decode is counted and skipped, not fatal.
    assert!(
        h.send(Delivery {
            source: Arc::clone(&a),
            body: Body::Native {
                frame: vec![1, 2, 3],
                skip: 0,
            },
            ack: None,
        })
        .await
    );
    assert!(h.send(native(8, &msgs("a", 8..=8), 0)).await);
    let stats = output.shutdown();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "a3\na4\na5\nb1\nb2\na6\na7\na8\n"
    );
    assert_eq!(
        (stats.written, stats.deliveries, stats.undecodable),
        (8, 5, 1)
    );
    // The stage is gone: a send says so instead of hanging.
    assert!(
        !h.send(Delivery {
            source: a,
            body: Body::Records(Vec::new()),
            ack: None,
        })
        .await
    );
}

#[tokio::test]
async fn an_ack_arrives_only_once_its_records_are_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut cfg = config(spec(&path));
    cfg.state_path = Some(dir.path().join("state"));
    let dedup = Arc::new(Mutex::new(Dedup::new()));
    let (output, h) = Output::start(cfg, Arc::clone(&dedup)).unwrap();
    let src = source("h", 1, "p");
    let (tx, mut rx) = unbounded_channel();
    for i in 0..50u64 {
        let first = i * 10 + 1;
        let d = admitted(
            &dedup,
            &src,
            "c",
            1,
            first,
            &msgs("m", first..=first + 9),
            &tx,
        );
        assert!(h.send(d).await);
    }
    let mut highest = 0;
    while highest < 500 {
        let w = ack(&mut rx).await;
        assert!(w > highest, "acks only grow: {w} after {highest}");
        highest = w;
        // Every record the ack covers is already in the file, in order.
        let got = lines(&path);
        assert!(got.len() as u64 >= w, "ack {w} with {} lines", got.len());
        for (k, line) in got.iter().take(w as usize).enumerate() {
            assert_eq!(*line, format!("m{}", k + 1));
        }
        // And the table shows it as written.
        assert!(dedup.lock().unwrap().written("c", 1) >= w);
    }
    output.shutdown();
    assert_eq!(lines(&path).len(), 500);
}

#[tokio::test]
async fn the_merge_window_orders_sources_by_time_and_keeps_each_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut cfg = config(spec(&path));
    // Nothing leaves the window before shutdown, which empties it: the
    // order below does not depend on timing.
    cfg.merge_window = Some(Duration::from_secs(3600));
    let dedup = Arc::new(Mutex::new(Dedup::new()));
    let (output, h) = Output::start(cfg, Arc::clone(&dedup)).unwrap();
    let (a, b, c) = (
        source("a", 1, "p"),
        source("b", 2, "p"),
        source("c", 3, "p"),
    );
    let (tx, mut rx) = unbounded_channel();
    // Source a's own timestamps go backwards at the end: its order wins.
    let a_records = [
        (10, "a10".to_string()),
        (50, "a50".into()),
        (30, "a30".into()),
    ];
    assert!(
        h.send(admitted(&dedup, &a, "a", 1, 1, &a_records, &tx))
            .await
    );
    let b_records = vec![owned(&b, 20, "b20", "t"), owned(&b, 40, "b40", "t")];
    assert!(
        h.send(Delivery {
            source: Arc::clone(&b),
            body: Body::Records(b_records),
            ack: None,
        })
        .await
    );
    assert!(
        h.send(admitted(&dedup, &c, "c", 1, 1, &[(5, "c5".into())], &tx))
            .await
    );
    // A resend of a's batch, all of it skipped: its ack must wait until
    // the records it covers are written, at shutdown.
    assert!(
        h.send(admitted(&dedup, &a, "a", 1, 1, &a_records, &tx))
            .await
    );
    assert!(rx.try_recv().is_err(), "nothing is written yet");
    let stats = output.shutdown();
    assert_eq!(lines(&path), ["c5", "a10", "b20", "b40", "a50", "a30"]);
    assert_eq!(stats.written, 6);
    let mut acks: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    acks.sort_unstable();
    assert_eq!(acks, [1, 3, 3]);
    let d = dedup.lock().unwrap();
    assert_eq!((d.written("a", 1), d.written("c", 1)), (3, 1));
}

#[tokio::test]
async fn a_short_merge_window_lets_records_out_without_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut cfg = config(spec(&path));
    cfg.merge_window = Some(Duration::from_millis(20));
    let dedup = Arc::new(Mutex::new(Dedup::new()));
    let (output, h) = Output::start(cfg, Arc::clone(&dedup)).unwrap();
    let (x, y) = (source("x", 1, "p"), source("y", 2, "p"));
    let (tx, mut rx) = unbounded_channel();
    assert!(
        h.send(admitted(&dedup, &x, "x", 1, 1, &msgs("x", 1..=3), &tx))
            .await
    );
    assert!(
        h.send(admitted(&dedup, &y, "y", 1, 1, &msgs("y", 1..=2), &tx))
            .await
    );
    let (mut got_x, mut got_y) = (false, false);
    while !(got_x && got_y) {
        let w = ack(&mut rx).await;
        let file = lines(&path);
        match w {
            3 => got_x = true,
            2 => got_y = true,
            other => panic!("unexpected ack {other}"),
        }
        // The acked records are in the file, whichever came first.
        let want: &[&str] = if w == 3 {
            &["x1", "x2", "x3"]
        } else {
            &["y1", "y2"]
        };
        for line in want {
            assert!(file.iter().any(|l| l == line), "{line} missing at ack {w}");
        }
    }
    output.shutdown();
    let mut all = lines(&path);
    all.sort();
    assert_eq!(all, ["x1", "x2", "x3", "y1", "y2"]);
}

/// Every regular file below `dir`, relative to it.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            assert!(!t.is_symlink(), "{:?}", e.path());
            if t.is_dir() {
                todo.push(e.path());
            } else {
                out.insert(e.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

#[tokio::test]
async fn routed_files_stay_inside_their_directory_whatever_clients_send() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let logs = root.join("logs");
    let mut cfg = config(spec(&root.join("unused.log")));
    cfg.route = Some(format!("{}/{{host}}/{{program}}.log", logs.display()));
    let (output, h) = start(cfg);
    let sources = [
        ("web-1", "api", "web-1/api.log"),
        ("../../etc/passwd", "x", "___.._etc_passwd/x.log"),
        ("a/b", "..", "a_b/__.log"),
        ("\0", "\n", "_/_.log"),
        ("..", ".", "__/_.log"),
        ("", "", "_/_.log"),
        ("x\ny", "p/../../q", "x_y/p_.._.._q.log"),
        ("\\..\\..", ".bashrc", "_.._../_bashrc.log"),
    ];
    let mut want: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for (k, (host, program, file)) in sources.iter().enumerate() {
        let src = source(host, k as u32, program);
        let rs: Vec<OwnedRecord> = (0..2)
            .map(|i| owned(&src, 0, &format!("s{k}r{i}"), "t"))
            .collect();
        want.entry(PathBuf::from(file)).or_default().extend(
            rs.iter()
                .map(|r| String::from_utf8(r.message.clone()).unwrap()),
        );
        assert!(
            h.send(Delivery {
                source: src,
                body: Body::Records(rs),
                ack: None,
            })
            .await
        );
    }
    let stats = output.shutdown();
    assert_eq!(stats.lost, 0);
    // Nothing at all outside the template's directory, nothing unexpected
    // inside it.
    assert_eq!(
        fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>(),
        ["root"]
    );
    assert_eq!(
        fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>(),
        ["logs"]
    );
    assert_eq!(tree(&logs), want.keys().cloned().collect());
    for (file, records) in &want {
        assert_eq!(lines(&logs.join(file)), *records, "{}", file.display());
    }
}

#[tokio::test]
async fn routes_by_logger_and_pid_and_rejects_bad_templates() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(spec(&dir.path().join("unused.log")));
    cfg.route = Some(format!(
        "{}/by/{{logger}}-{{pid}}.log",
        dir.path().display()
    ));
    let (output, h) = start(cfg);
    let src = source("h", 42, "p");
    let rs = vec![
        owned(&src, 0, "one", "app.db"),
        owned(&src, 0, "two", "../up"),
        owned(&src, 0, "three", "app.db"),
    ];
    assert!(
        h.send(Delivery {
            source: src,
            body: Body::Records(rs),
            ack: None,
        })
        .await
    );
    output.shutdown();
    let by = dir.path().join("by");
    assert_eq!(
        tree(&by),
        ["___up-42.log", "app.db-42.log"]
            .into_iter()
            .map(PathBuf::from)
            .collect()
    );
    assert_eq!(lines(&by.join("app.db-42.log")), ["one", "three"]);
    assert_eq!(lines(&by.join("___up-42.log")), ["two"]);

    for (bad, named) in [
        ("logs/{hostname}.log", "{hostname}"),
        ("logs/{host.log", "unclosed"),
        ("logs/host}.log", "unbalanced"),
    ] {
        let mut cfg = config(spec(&dir.path().join("unused.log")));
        cfg.route = Some(bad.to_string());
        match Output::start(cfg, Arc::new(Mutex::new(Dedup::new()))) {
            Err(OutputError::Route(why)) => assert!(why.contains(named), "{bad}: {why}"),
            other => panic!("{bad}: {other:?}"),
        }
        assert!(check_route(bad).unwrap_err().contains(named));
    }
    assert_eq!(check_route("logs/{host}/{program}.log"), Ok(()));
}

#[tokio::test]
async fn more_routed_files_than_stay_open_get_every_record_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(spec(&dir.path().join("unused.log")));
    cfg.route = Some(format!("{}/{{logger}}.log", dir.path().display()));
    let (output, h) = start(cfg);
    let src = source("h", 1, "p");
    // 300 files, 256 open at most: the least recently used are closed
    // and opened again as records keep coming to them.
    let names: Vec<String> = (0..300).map(|i| format!("l{i}")).collect();
    for round in 0..3 {
        let mut records = Vec::new();
        for name in &names {
            for k in 0..2 {
                records.push(format!("{name} {round} {k}"));
            }
        }
        let rs: Vec<(&Arc<Source>, i64, &str, &str)> = records
            .iter()
            .map(|m| (&src, 0, m.as_str(), m.split(' ').next().unwrap()))
            .collect();
        assert!(h.send(packed(&rs)).await);
    }
    let stats = output.shutdown();
    assert_eq!(stats.written, 300 * 3 * 2);
    for name in &names {
        let want: Vec<String> = (0..3)
            .flat_map(|round| (0..2).map(move |k| format!("{name} {round} {k}")))
            .collect();
        assert_eq!(lines(&dir.path().join(format!("{name}.log"))), want);
    }
}

#[tokio::test]
async fn a_client_file_closed_to_make_room_does_not_misroute_the_next_records() {
    let dir = tempfile::tempdir().unwrap();
    let (routed, clients) = (dir.path().join("routed"), dir.path().join("clients"));
    fs::create_dir_all(&clients).unwrap();
    let mut cfg = config(spec(&dir.path().join("unused.log")));
    cfg.route = Some(format!("{}/{{logger}}.log", routed.display()));
    cfg.client_files = Some(ClientFiles {
        dir: clients.clone(),
        base: clients.clone(),
        max_bytes: 0,
        max_backups: 0,
        max_open: 1,
    });
    let (output, h) = start(cfg);
    let src = source("h", 1, "p");
    let asking = |file: &str, msg: &str| {
        let mut fields = FieldsBuf::new();
        fields.push_str("logbraid_file", file);
        OwnedRecord::from_record_with_source(
            &record(&src, 0, msg, "x").with_fields(fields.as_fields()),
            &src,
        )
    };
    // Client file a, then x's routed file; then client file b closes a,
    // and x's file takes a's place among the open ones.
    let rs = vec![
        asking("a.log", "a0"),
        owned(&src, 0, "x0", "x"),
        asking("b.log", "b0"),
        owned(&src, 0, "x1", "x"),
        owned(&src, 0, "x2", "x"),
    ];
    let d = Delivery {
        source: Arc::clone(&src),
        body: Body::Records(rs),
        ack: None,
    };
    assert!(h.send(d).await);
    assert_eq!(output.shutdown().written, 5);
    assert_eq!(lines(&routed.join("x.log")), ["x0", "x1", "x2"]);
    assert_eq!(lines(&clients.join("a.log")), ["a0"]);
    assert_eq!(lines(&clients.join("b.log")), ["b0"]);
}

fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test]
async fn a_sink_that_cannot_keep_up_makes_senders_wait() {
    let dir = tempfile::tempdir().unwrap();
    // A pipe nobody reads yet: the output thread blocks in its flush.
    let fifo = dir.path().join("slow.log");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    // Opened without blocking, so the stage can open the writing end.
    let mut reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(&fifo)
        .unwrap();
    let mut cfg = config(spec(&fifo));
    cfg.max_pending_bytes = 4096;
    let (output, h) = start(cfg);
    let src = source("h", 1, "p");
    // 2 MB of lines, far more than a pipe holds; its weight is more than
    // the whole budget, so it takes all of it.
    let big: Vec<OwnedRecord> = (0..2000)
        .map(|i| owned(&src, 0, &format!("{i:04}{}", "x".repeat(996)), "t"))
        .collect();
    let records = |rs| Delivery {
        source: Arc::clone(&src),
        body: Body::Records(rs),
        ack: None,
    };
    assert!(h.send(records(big)).await);
    let mut second = pin!(h.send(records(vec![owned(&src, 0, "last", "t")])));
    // The budget comes back only when the first delivery is written, and
    // the thread cannot write it while nobody reads the pipe.
    assert!(poll_once(second.as_mut()).is_pending());
    assert!(poll_once(second.as_mut()).is_pending());

    // Now read: the thread gets through, and the waiting send completes.
    rustix::fs::fcntl_setfl(&reader, rustix::fs::OFlags::empty()).unwrap();
    let drain = std::thread::spawn(move || {
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        all
    });
    assert!(tokio::time::timeout(PATIENCE, second)
        .await
        .expect("send completes"));
    let stats = output.shutdown();
    let all = String::from_utf8(drain.join().unwrap()).unwrap();
    let got: Vec<&str> = all.lines().collect();
    assert_eq!(got.len(), 2001);
    for (i, line) in got[..2000].iter().enumerate() {
        assert_eq!(*line, format!("{i:04}{}", "x".repeat(996)));
    }
    assert_eq!(got[2000], "last");
    assert_eq!(stats.written, 2001);
}

/// Writes `seqs` for client `c` (epoch 7) through a fresh stage with the
/// given state file and waits for their ack; returns the stage's table.
async fn run_acked(
    path: &Path,
    state: &Path,
    first: u64,
    records: &[(i64, String)],
) -> Arc<Mutex<Dedup>> {
    let mut cfg = config(spec(path));
    cfg.state_path = Some(state.to_path_buf());
    let dedup = Arc::new(Mutex::new(Dedup::new()));
    let (output, h) = Output::start(cfg, Arc::clone(&dedup)).unwrap();
    let src = source("h", 1, "p");
    let (tx, mut rx) = unbounded_channel();
    assert!(
        h.send(admitted(&dedup, &src, "c", 7, first, records, &tx))
            .await
    );
    let last = first + records.len() as u64 - 1;
    assert_eq!(ack(&mut rx).await, last);
    output.shutdown();
    dedup
}

fn append(path: &Path, text: &str) {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

#[tokio::test]
async fn a_restart_cuts_unacknowledged_bytes_and_resends_are_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let state = dir.path().join("state");
    run_acked(&path, &state, 1, &msgs("m", 1..=10)).await;
    let acked = fs::read(&path).unwrap();
    // A crash just after records 11 and 12 reached the file, before the
    // checkpoint and the ack: the file has them, the client still has them
    // too and resends them (with 9 and 10, whose ack it did not see).
    append(&path, "m11\nm12\n");

    let mut cfg = config(spec(&path));
    cfg.state_path = Some(state.clone());
    let dedup = Arc::new(Mutex::new(Dedup::new()));
    let (output, h) = Output::start(cfg, Arc::clone(&dedup)).unwrap();
    assert_eq!(
        fs::read(&path).unwrap(),
        acked,
        "cut back to the checkpoint"
    );
    // The WELCOME would tell the client where to resume.
    assert_eq!(dedup.lock().unwrap().hello("c", 7), 10);
    let src = source("h", 1, "p");
    let (tx, mut rx) = unbounded_channel();
    let d = admitted(&dedup, &src, "c", 7, 9, &msgs("m", 9..=12), &tx);
    assert!(matches!(d.body, Body::Native { skip: 2, .. }));
    assert!(h.send(d).await);
    assert_eq!(ack(&mut rx).await, 12);
    output.shutdown();
    let want: Vec<String> = (1..=12).map(|i| format!("m{i}")).collect();
    assert_eq!(lines(&path), want);
}

#[tokio::test]
async fn a_rotation_after_the_checkpoint_is_undone_in_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let state = dir.path().join("state");
    run_acked(&path, &state, 1, &msgs("m", 1..=3)).await;
    let acked = fs::read(&path).unwrap();
    // After the checkpoint: one more record, a rotation, one record in the
    // new file, then the crash.
    append(&path, "m4\n");
    fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    fs::write(&path, "m5\n").unwrap();

    let dedup = run_acked(&path, &state, 4, &msgs("m", 4..=5)).await;
    assert_eq!(fs::read(dir.path().join("app.log.1")).unwrap(), acked);
    assert_eq!(lines(&path), ["m4", "m5"]);
    assert_eq!(dedup.lock().unwrap().written("c", 7), 5);
}

#[tokio::test]
async fn recovery_goes_by_backup_index_and_leaves_other_files_beside_the_log_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let state = dir.path().join("state");
    // Files that only look related: an operator's copy, the file another
    // route names `app.log.log`, and names close to a backup's.
    let others: Vec<(PathBuf, &[u8])> = [
        ("app.log.bak", &b"operator copy\n"[..]),
        ("app.log.log", b"another route\n"),
        ("app.log.1.bak", b"kept\n"),
        ("app.log.01", b"not an index\n"),
        ("app.log.2024-01-01", b"not a stamp\n"),
    ]
    .into_iter()
    .map(|(n, b)| (dir.path().join(n), b))
    .collect();
    for (p, b) in &others {
        fs::write(p, b).unwrap();
    }
    run_acked(&path, &state, 1, &msgs("m", 1..=3)).await;
    let acked = fs::read(&path).unwrap();
    // After the checkpoint: two rotations and a record in each new file,
    // then the crash. The oldest backup is touched last, so by modification
    // time it would look the newest; the index says it is the oldest.
    append(&path, "m4\n");
    fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    fs::write(&path, "m5\n").unwrap();
    fs::rename(dir.path().join("app.log.1"), dir.path().join("app.log.2")).unwrap();
    fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    fs::write(&path, "m6\n").unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    for p in others
        .iter()
        .map(|(p, _)| p)
        .chain([&dir.path().join("app.log.2")])
    {
        fs::File::options()
            .append(true)
            .open(p)
            .unwrap()
            .set_modified(later)
            .unwrap();
    }

    let dedup = run_acked(&path, &state, 4, &msgs("m", 4..=6)).await;
    assert_eq!(fs::read(dir.path().join("app.log.2")).unwrap(), acked);
    assert_eq!(fs::read(dir.path().join("app.log.1")).unwrap(), b"");
    assert_eq!(lines(&path), ["m4", "m5", "m6"]);
    assert_eq!(dedup.lock().unwrap().written("c", 7), 6);
    for (p, b) in &others {
        assert_eq!(fs::read(p).unwrap(), *b, "{}", p.display());
    }
}

#[tokio::test]
async fn a_rotated_file_already_compressed_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let state = dir.path().join("state");
    run_acked(&path, &state, 1, &msgs("m", 1..=3)).await;
    // The rotated file was compressed (a new inode) before the crash: it
    // cannot be cut, and nothing else is touched (start-up says on stderr
    // that records may appear twice).
    let packed = dir.path().join("app.log.1.gz");
    fs::rename(&path, &packed).unwrap();
    fs::write(&path, "m4\n").unwrap();
    let mut cfg = config(spec(&path));
    cfg.state_path = Some(state);
    let dedup = Arc::new(Mutex::new(Dedup::new()));
    let (output, _h) = Output::start(cfg, Arc::clone(&dedup)).unwrap();
    output.shutdown();
    assert_eq!(lines(&path), ["m4"]);
    assert_eq!(fs::read(&packed).unwrap(), b"m1\nm2\nm3\n");
    assert_eq!(dedup.lock().unwrap().written("c", 7), 3);
}

#[test]
fn a_damaged_state_file_is_moved_aside_and_the_files_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let log = dir.path().join("app.log");
    let damaged = dir.path().join("state.damaged");
    for damage in [
        &b""[..],
        b"not a state file\n",
        b"logbraid-collector-state 1\nclient 1 2 zz\nend\n",
        b"logbraid-collector-state 1\nclient 1 2 63\n",
        b"\xff\xfe",
    ] {
        fs::write(&state, damage).unwrap();
        fs::write(&log, "before\n").unwrap();
        let mut cfg = config(spec(&log));
        cfg.state_path = Some(state.clone());
        let dedup = Arc::new(Mutex::new(Dedup::new()));
        let output =
            Output::start(cfg, Arc::clone(&dedup)).unwrap_or_else(|e| panic!("{damage:?}: {e}"));
        assert_eq!(fs::read(&damaged).unwrap(), damage);
        assert_eq!(dedup.lock().unwrap().iter().count(), 0);
        output.0.shutdown();
        // Nothing was cut, and a good checkpoint replaced the damaged one.
        assert_eq!(fs::read_to_string(&log).unwrap(), "before\n");
        assert!(fs::read_to_string(&state)
            .unwrap()
            .starts_with("logbraid-collector-state 1\n"));
    }
    // Unreadable: a directory where the file should be.
    fs::remove_file(&state).unwrap();
    fs::create_dir(&state).unwrap();
    let mut cfg = config(spec(&log));
    cfg.state_path = Some(state.clone());
    match Output::start(cfg, Arc::new(Mutex::new(Dedup::new()))) {
        Err(e @ OutputError::State { .. }) => {
            assert!(e.to_string().contains(&*state.to_string_lossy()), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_second_stage_on_the_same_state_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = || {
        let mut cfg = config(spec(&dir.path().join("app.log")));
        cfg.state_path = Some(state.clone());
        cfg
    };
    let first = Output::start(cfg(), Arc::new(Mutex::new(Dedup::new()))).unwrap();
    match Output::start(cfg(), Arc::new(Mutex::new(Dedup::new()))) {
        Err(OutputError::Locked { path, pid }) => {
            assert_eq!(path, state);
            assert_eq!(pid, Some(std::process::id()));
        }
        other => panic!("{other:?}"),
    }
    first.0.shutdown();
    // Released with the first stage.
    let again = Output::start(cfg(), Arc::new(Mutex::new(Dedup::new()))).unwrap();
    again.0.shutdown();
}

#[tokio::test]
async fn under_rotation_every_line_is_written_once_and_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut file = spec(&path);
    file.max_bytes = 2000;
    file.compression = Compression::Gzip;
    let mut cfg = config(file);
    cfg.state_path = Some(dir.path().join("state"));
    let dedup = Arc::new(Mutex::new(Dedup::new()));
    let (output, h) = Output::start(cfg, Arc::clone(&dedup)).unwrap();
    let (tx, mut rx) = unbounded_channel();
    let clients = [("c1", source("h1", 1, "p")), ("c2", source("h2", 2, "p"))];
    let pad = "y".repeat(40);
    for batch in 0..100u64 {
        for (id, src) in &clients {
            let first = batch * 10 + 1;
            let records: Vec<(i64, String)> = (first..first + 10)
                .map(|s| (s as i64, format!("{id} {s:05} {pad}")))
                .collect();
            assert!(
                h.send(admitted(&dedup, src, id, 1, first, &records, &tx))
                    .await
            );
        }
    }
    let mut done = 0;
    while done < 2 {
        if ack(&mut rx).await == 1000 {
            done += 1;
        }
    }
    let stats = output.shutdown();
    let files = rotated_files(&path).unwrap();
    assert!(files.len() > 20, "{} files", files.len());
    let mut next = BTreeMap::from([("c1", 1u64), ("c2", 1u64)]);
    for f in &files {
        let text = String::from_utf8(read_decompressed(f).unwrap()).unwrap();
        assert!(text.ends_with('\n'), "{} ends mid-line", f.display());
        assert!(text.len() <= 2000, "{}: {} bytes", f.display(), text.len());
        for line in text.lines() {
            let mut parts = line.split(' ');
            let id = parts.next().unwrap();
            let seq: u64 = parts.next().unwrap().parse().unwrap();
            assert_eq!(parts.next(), Some(&*pad), "{line:?}");
            // Oldest file first, so each client's numbers run on without
            // a gap or a repeat across files.
            let want = next.get_mut(id).unwrap();
            assert_eq!(seq, *want, "{id} in {}", f.display());
            *want += 1;
        }
    }
    assert_eq!(next, BTreeMap::from([("c1", 1001), ("c2", 1001)]));
    assert_eq!(stats.written, 2000);
    // At least one checkpoint per rotation, beyond the one per round.
    assert!(stats.checkpoints as usize >= files.len(), "{stats:?}");
}

#[tokio::test]
async fn dropping_the_stage_without_shutdown_still_writes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut cfg = config(spec(&path));
    cfg.merge_window = Some(Duration::from_secs(3600));
    let (output, h) = start(cfg);
    let src = source("h", 1, "p");
    let rs = vec![owned(&src, 2, "second", "t"), owned(&src, 1, "first", "t")];
    assert!(
        h.send(Delivery {
            source: src,
            body: Body::Records(rs),
            ack: None,
        })
        .await
    );
    drop(output);
    assert_eq!(lines(&path), ["second", "first"]);
}

/// Polls `done` until it holds; the deadline is only a safety net.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A stage routing by logger below `dir/logs`, where a directory stands in
/// the way of `blocked.log`; `adjust` changes its settings.
struct Blocked {
    _dir: tempfile::TempDir,
    logs: PathBuf,
    dedup: Arc<Mutex<Dedup>>,
    output: Output,
    h: logbraid_collector::output::OutputHandle,
    tx: UnboundedSender<u64>,
    rx: UnboundedReceiver<u64>,
}

impl Blocked {
    fn start(adjust: impl FnOnce(&Path, &mut OutputConfig)) -> Blocked {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        fs::create_dir_all(logs.join("blocked.log")).unwrap();
        let mut cfg = config(spec(&dir.path().join("unused.log")));
        cfg.route = Some(format!("{}/{{logger}}.log", logs.display()));
        cfg.state_path = Some(dir.path().join("state"));
        adjust(dir.path(), &mut cfg);
        let dedup = Arc::new(Mutex::new(Dedup::new()));
        let (output, h) = Output::start(cfg, Arc::clone(&dedup)).unwrap();
        let (tx, rx) = unbounded_channel();
        Blocked {
            _dir: dir,
            logs,
            dedup,
            output,
            h,
            tx,
            rx,
        }
    }

    /// Client `c`'s batch from `first`, one record per `(message, logger)`.
    fn native(&self, c: &Arc<Source>, first: u64, records: &[(&str, &str)]) -> Delivery {
        admitted_to(&self.dedup, c, first, records, &self.tx)
    }
}

#[tokio::test]
async fn records_whose_file_cannot_be_opened_wait_unacknowledged_until_it_can() {
    let mut t = Blocked::start(|_, _| {});
    let (c, b) = (source("c", 1, "pc"), source("b", 2, "pb"));
    let batch = [
        ("m1", "ok"),
        ("m2", "ok"),
        ("m3", "blocked"),
        ("m4", "blocked"),
        ("m5", "ok"),
    ];
    assert!(t.h.send(t.native(&c, 1, &batch)).await);
    assert!(t.h.send(t.native(&c, 6, &[("m6", "ok")])).await);
    // Another source is not held up by c's blocked file.
    assert!(
        t.h.send(Delivery {
            source: Arc::clone(&b),
            body: Body::Records(vec![owned(&b, 0, "b1", "ok")]),
            ack: None,
        })
        .await
    );
    // What could be written is acknowledged: up to m2, nothing past it.
    assert_eq!(ack(&mut t.rx).await, 2);
    let ok = t.logs.join("ok.log");
    until("b1 written", || {
        ok.exists() && lines(&ok).contains(&"b1".to_string())
    })
    .await;
    until("four records held", || t.output.stats().held == 4).await;
    assert_eq!(lines(&ok), ["m1", "m2", "b1"]);
    assert!(t.rx.try_recv().is_err(), "an ack for records not written");
    assert_eq!(t.dedup.lock().unwrap().written("c", 1), 2);
    let stats = t.output.stats();
    assert_eq!((stats.stalled, stats.lost), (1, 0));

    // The obstacle goes: everything held is written once, in order, and
    // acknowledged.
    fs::remove_dir(t.logs.join("blocked.log")).unwrap();
    let mut highest = 2;
    while highest < 6 {
        highest = ack(&mut t.rx).await;
    }
    assert_eq!(lines(&t.logs.join("blocked.log")), ["m3", "m4"]);
    assert_eq!(lines(&ok), ["m1", "m2", "b1", "m5", "m6"]);
    let stats = t.output.shutdown();
    assert_eq!((stats.written, stats.held, stats.lost), (7, 0, 0));
    assert_eq!(t.dedup.lock().unwrap().written("c", 1), 6);
}

const ONE_BLOCKED: [(&str, &str); 3] = [("m1", "ok"), ("m2", "blocked"), ("m3", "ok")];

#[tokio::test]
async fn in_the_merge_window_a_record_that_cannot_be_written_holds_the_rest() {
    let mut t = Blocked::start(|_, cfg| cfg.merge_window = Some(Duration::from_millis(5)));
    let c = source("c", 1, "pc");
    assert!(t.h.send(t.native(&c, 1, &ONE_BLOCKED)).await);
    until("m2 held", || t.output.stats().held == 1).await;
    assert_eq!(lines(&t.logs.join("ok.log")), ["m1"]);
    assert!(t.rx.try_recv().is_err(), "an ack for records not written");
    fs::remove_dir(t.logs.join("blocked.log")).unwrap();
    assert_eq!(ack(&mut t.rx).await, 3);
    assert_eq!(lines(&t.logs.join("ok.log")), ["m1", "m3"]);
    assert_eq!(lines(&t.logs.join("blocked.log")), ["m2"]);
    t.output.shutdown();
}

#[tokio::test]
async fn stopping_with_records_held_says_what_is_resent_and_counts_what_is_lost() {
    let t = Blocked::start(|_, _| {});
    let b = source("b", 2, "pb");
    let rs = vec![
        owned(&b, 0, "b1", "ok"),
        owned(&b, 0, "b2", "blocked"),
        owned(&b, 0, "b3", "ok"),
    ];
    assert!(
        t.h.send(Delivery {
            source: Arc::clone(&b),
            body: Body::Records(rs),
            ack: None,
        })
        .await
    );
    until("two records held", || t.output.stats().held == 2).await;
    let stats = t.output.shutdown();
    assert_eq!((stats.written, stats.lost), (1, 2));
    assert_eq!(lines(&t.logs.join("ok.log")), ["b1"]);
}

/// A delivery of a packed batch (what Python and syslog streams hand
/// over) of `(source, timestamp, message, logger)`, from the connection
/// of the first source.
fn packed(records: &[(&Arc<Source>, i64, &str, &str)]) -> Delivery {
    let mut batch = RecordBatch::new();
    for &(src, ts, msg, target) in records {
        batch.push(&record(src, ts, msg, target), src);
    }
    Delivery {
        source: Arc::clone(records[0].0),
        body: Body::Batch(batch),
        ack: None,
    }
}

#[tokio::test]
async fn a_packed_batch_waits_for_its_file_from_the_record_that_cannot_be_written() {
    let t = Blocked::start(|_, _| {});
    let (b, c) = (source("b", 2, "pb"), source("c", 3, "pc"));
    let d = packed(&[
        (&b, 0, "b1", "ok"),
        (&c, 0, "c1", "ok"),
        (&b, 0, "b2", "blocked"),
        (&c, 0, "c2", "ok"),
    ]);
    assert!(t.h.send(d).await);
    until("two records held", || t.output.stats().held == 2).await;
    let ok = t.logs.join("ok.log");
    assert_eq!(lines(&ok), ["b1", "c1"]);
    fs::remove_dir(t.logs.join("blocked.log")).unwrap();
    until("all written", || t.output.stats().written == 4).await;
    let stats = t.output.shutdown();
    assert_eq!((stats.written, stats.held, stats.lost), (4, 0, 0));
    assert_eq!(lines(&ok), ["b1", "c1", "c2"]);
    assert_eq!(lines(&t.logs.join("blocked.log")), ["b2"]);
}

#[tokio::test]
async fn in_the_merge_window_a_packed_batch_is_ordered_by_time_each_source_in_its_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut cfg = config(spec(&path));
    cfg.merge_window = Some(Duration::from_secs(3600));
    cfg.file.layout = LayoutSpec::parse("%(process)d %(message)s", None).unwrap();
    let (output, h) = start(cfg);
    let (a, b) = (source("a", 1, "p"), source("b", 2, "p"));
    let d = packed(&[
        (&a, 10, "a10", "t"),
        (&b, 20, "b20", "t"),
        (&a, 50, "a50", "t"),
        (&a, 30, "a30", "t"),
        (&b, 40, "b40", "t"),
    ]);
    assert!(h.send(d).await);
    let stats = output.shutdown();
    assert_eq!(stats.written, 5);
    assert_eq!(lines(&path), ["1 a10", "2 b20", "2 b40", "1 a50", "1 a30"]);
}

#[tokio::test]
async fn with_a_fallback_records_whose_file_cannot_be_opened_go_there_named() {
    let mut t = Blocked::start(|dir, cfg| {
        cfg.file.layout = LayoutSpec::Json;
        cfg.fallback = Some(dir.join("fallback.log"));
    });
    let fallback = t.logs.parent().unwrap().join("fallback.log");
    let c = source("c", 1, "pc");
    assert!(t.h.send(t.native(&c, 1, &ONE_BLOCKED)).await);
    // Nothing waits: all three are written and acknowledged at once.
    assert_eq!(ack(&mut t.rx).await, 3);
    let stats = t.output.shutdown();
    assert_eq!((stats.written, stats.diverted, stats.held), (3, 1, 0));
    let json = |p: &Path| -> Vec<serde_json::Value> {
        lines(p)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let ok: Vec<_> = json(&t.logs.join("ok.log"))
        .iter()
        .map(|v| v["msg"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ok, ["m1", "m3"]);
    let diverted = json(&fallback);
    assert_eq!(diverted.len(), 1);
    assert_eq!(diverted[0]["msg"], "m2");
    assert_eq!(
        diverted[0]["fields"]["destination"],
        t.logs.join("blocked.log").to_str().unwrap()
    );
    assert!(
        t.logs.join("blocked.log").is_dir(),
        "the obstacle is untouched"
    );
}

#[tokio::test]
async fn with_sync_data_a_round_syncs_each_file_it_wrote_once() {
    for sync in [SyncMode::Data, SyncMode::None] {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let mut cfg = config(spec(&dir.path().join("unused.log")));
        cfg.route = Some(format!("{}/{{logger}}.log", logs.display()));
        cfg.state_path = Some(dir.path().join("state"));
        cfg.sync = sync;
        let dedup = Arc::new(Mutex::new(Dedup::new()));
        let (output, h) = Output::start(cfg, Arc::clone(&dedup)).unwrap();
        let (tx, mut rx) = unbounded_channel();
        let src = source("h", 1, "p");
        let names: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
        let both: Vec<(&str, &str)> = names
            .iter()
            .enumerate()
            .map(|(i, m)| (m.as_str(), if i % 2 == 0 { "a" } else { "b" }))
            .collect();
        // One delivery, one round: two files written, two syncs, not 1000.
        assert!(h.send(admitted_to(&dedup, &src, 1, &both, &tx)).await);
        assert_eq!(ack(&mut rx).await, 1000);
        let per_file = |n: u64| if sync == SyncMode::Data { n } else { 0 };
        assert_eq!(output.stats().syncs, per_file(2));
        // The next round writes one file only: one more sync.
        assert!(
            h.send(admitted_to(&dedup, &src, 1001, &[("last", "a")], &tx))
                .await
        );
        assert_eq!(ack(&mut rx).await, 1001);
        assert_eq!(output.stats().syncs, per_file(3));
        let stats = output.shutdown();
        assert_eq!(stats.written, 1001);
        let a = lines(&logs.join("a.log"));
        assert_eq!(a.len(), 501);
        assert_eq!(a[500], "last");
        assert_eq!(lines(&logs.join("b.log")).len(), 500);
        assert!(fs::read_to_string(dir.path().join("state"))
            .unwrap()
            .ends_with("end\n"));
    }
}

#[tokio::test]
async fn a_full_disk_loses_nothing_however_much_waits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    std::os::unix::fs::symlink("/dev/full", &path).unwrap();
    let mut cfg = config(FileSpec {
        follow_links: true,
        ..spec(&path)
    });
    // Room for more than the 64 MiB a rolling file keeps by default.
    cfg.max_pending_bytes = 100 << 20;
    let (output, h) = start(cfg);
    let src = source("h", 1, "p");
    let big = "z".repeat(1 << 20);
    for i in 0..66 {
        let r = owned(&src, 0, &format!("{i:02}{big}"), "t");
        assert!(
            h.send(Delivery {
                source: Arc::clone(&src),
                body: Body::Records(vec![r]),
                ack: None,
            })
            .await
        );
    }
    // Every record is formatted, then a flush of all of them fails (once
    // more after that, to be sure nothing was let go).
    let deadline = std::time::Instant::now() + PATIENCE;
    let wait_for = |done: &dyn Fn(OutputStats) -> bool| {
        while !done(output.stats()) {
            assert!(std::time::Instant::now() < deadline, "{:?}", output.stats());
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for(&|s| s.written == 66);
    let failed = output.stats().failed_rounds;
    wait_for(&|s| s.failed_rounds >= failed + 2);
    // The disk has room again.
    fs::remove_file(&path).unwrap();
    output.shutdown();
    let got = lines(&path);
    assert_eq!(got.len(), 66);
    for (i, l) in got.iter().enumerate() {
        assert_eq!(*l, format!("{i:02}{big}"));
    }
}

#[tokio::test]
async fn routed_files_are_made_privately_and_never_through_a_link() {
    use std::os::unix::fs::{symlink, MetadataExt};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let logs = root.join("logs");
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir_all(&logs).unwrap();
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("target.log"), b"theirs\n").unwrap();
    // Someone who can write below the route's directory: a host's
    // directory is a link, and a program's file in a real directory is one.
    symlink(&elsewhere, logs.join("evil")).unwrap();
    fs::create_dir(logs.join("web")).unwrap();
    symlink(elsewhere.join("target.log"), logs.join("web/api.log")).unwrap();
    let mut cfg = config(spec(&root.join("unused.log")));
    cfg.route = Some(format!("{}/{{host}}/{{program}}.log", logs.display()));
    cfg.fallback = Some(root.join("fallback.log"));
    let (output, h) = start(cfg);
    for (k, (host, program)) in [("evil", "target"), ("web", "api"), ("good", "app")]
        .into_iter()
        .enumerate()
    {
        let src = source(host, k as u32, program);
        let rs = vec![owned(&src, 0, &format!("from {host}"), "t")];
        assert!(
            h.send(Delivery {
                source: src,
                body: Body::Records(rs),
                ack: None,
            })
            .await
        );
    }
    let stats = output.shutdown();
    assert_eq!((stats.written, stats.diverted, stats.lost), (3, 2, 0));
    // Nothing reached the links' targets.
    assert_eq!(fs::read(elsewhere.join("target.log")).unwrap(), b"theirs\n");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 1);
    assert_eq!(lines(&logs.join("good/app.log")), ["from good"]);
    assert_eq!(lines(&root.join("fallback.log")), ["from evil", "from web"]);
    // Made for the collector's user and group only (the umask may take
    // bits away, never add them).
    for (p, asked) in [
        (logs.join("good"), 0o750),
        (logs.join("good/app.log"), 0o640),
        (root.join("fallback.log"), 0o640),
    ] {
        let m = fs::symlink_metadata(&p).unwrap().mode() & 0o777;
        assert_eq!(m & !asked, 0, "{}: {m:o}", p.display());
        assert_eq!(m & 0o700, asked & 0o700, "{}: {m:o}", p.display());
    }
}
