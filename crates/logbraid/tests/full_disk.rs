//! A logger whose rolling file cannot be written (its path a symlink to
//! `/dev/full`): the file keeps what it was handed, up to its
//! `max_pending`, then holds the writer thread back, so the queue's
//! overflow policy decides (callers wait, or drops are counted and
//! reported). Once the disk takes bytes again, every record handed to the
//! file is in it exactly once, in order.
#![cfg(target_os = "linux")]

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use logbraid::layout::LayoutSpec;
use logbraid::sink::RollingFile;
use logbraid::{Builder, Callsite, Level, Overflow, Stats};

const N: u64 = 5_000;

/// Logs `N` numbered records from a thread into a file on a full disk
/// until `stuck` holds and the file has failed a write, then frees the
/// disk; returns the numbers in the file, the lines that are not records,
/// and the counters. (On a loaded machine the queue can fill, and the
/// producer wait or drop, before the writer thread first tries the disk:
/// `stuck` alone does not mean a write failed yet.)
fn on_a_full_disk(policy: Overflow, stuck: fn(&Stats) -> bool) -> (Vec<u64>, Vec<String>, Stats) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    std::os::unix::fs::symlink("/dev/full", &path).unwrap();
    let file = RollingFile::builder(&path)
        .layout(LayoutSpec::parse("%(message)s", None).unwrap().build(false))
        .max_pending(16 << 10);
    let (logger, guard) = Builder::new()
        .level("trace")
        .signals(false)
        .inherit_collector(false)
        .children(false)
        .queue_bytes(4 << 10)
        .overflow(policy)
        .file(file)
        .unwrap()
        .build()
        .unwrap();
    let producer = {
        let logger = logger.clone();
        thread::spawn(move || {
            let site = Callsite::new(Level::Info, "t");
            for i in 0..N {
                logger.log_with(
                    &site,
                    format_args!("rec {i:04} {}", "x".repeat(40)),
                    &mut |_| {},
                );
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(stuck(&logger.stats()) && logger.stats().write_errors > 0) {
        assert!(Instant::now() < deadline, "{:?}", logger.stats());
        thread::sleep(Duration::from_millis(5));
    }
    // The disk has room again.
    fs::remove_file(&path).unwrap();
    producer.join().unwrap();
    logger.flush();
    let stats = logger.stats();
    drop(guard);
    let text = fs::read_to_string(&path).unwrap();
    let (records, other): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|l| l.starts_with("rec "));
    let numbers = records.iter().map(|l| l[4..8].parse().unwrap()).collect();
    (
        numbers,
        other.into_iter().map(String::from).collect(),
        stats,
    )
}

#[test]
fn under_block_callers_wait_for_the_disk_and_nothing_is_lost() {
    let (numbers, other, stats) = on_a_full_disk(Overflow::Block, |s| s.full_waits > 0);
    assert_eq!(numbers, (0..N).collect::<Vec<u64>>());
    assert!(other.is_empty(), "{other:?}");
    assert_eq!((stats.written, stats.dropped), (N, 0));
}

#[test]
fn under_drop_newest_every_record_dropped_is_counted_and_reported() {
    // The producer finishes (it never waits): everything it logged is
    // written or dropped by then.
    let (numbers, other, stats) =
        on_a_full_disk(Overflow::DropNewest, |s| s.logged == N && s.dropped > 0);
    assert_eq!(stats.written + stats.dropped, N);
    assert_eq!(numbers.len() as u64, stats.written);
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "order kept, none twice"
    );
    let reported: u64 = other
        .iter()
        .map(|l| {
            l.split(' ')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{l:?}"))
        })
        .sum();
    assert_eq!(reported, stats.dropped);
}
