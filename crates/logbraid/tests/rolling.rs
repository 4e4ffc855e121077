//! The rolling file sink, driven through its public API. Time comes from a
//! `ManualClock`: no test sleeps.

use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, UNIX_EPOCH};

use logbraid::clock::{self, Clock, ManualClock};
use logbraid::layout::Layout;
use logbraid::record::{Record, Source};
use logbraid::sink::{RollingFile, RollingFileBuilder, Sink};
use logbraid::{Compression, Every, Level, Naming};

const NS: i64 = 1_000_000_000;
/// 2026-11-22 10:00:00 UTC, a Sunday.
const SUN_10H: i64 = 1_795_341_600;
/// 2026-11-23 00:00:00 UTC, a Monday.
const MON: i64 = 1_795_392_000;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// Writes the message and a newline.
#[derive(Debug)]
struct Line;

impl Layout for Line {
    fn format(&mut self, record: &Record<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(record.message);
        out.push(b'\n');
    }
}

static SOURCE: LazyLock<Source> = LazyLock::new(|| Source {
    host: "host".to_string(),
    pid: 1,
    process_name: "test".to_string(),
});

fn record(message: &[u8]) -> Record<'_> {
    Record::new(Level::Info, "test", message, &SOURCE).with_thread_id(1)
}

fn log(sink: &mut RollingFile, message: &str) -> usize {
    sink.write(&record(message.as_bytes())).unwrap()
}

fn builder(dir: &Path) -> RollingFileBuilder {
    RollingFile::builder(dir.join("app.log")).layout(Box::new(Line))
}

fn read(path: impl AsRef<Path>) -> String {
    String::from_utf8(fs::read(path).unwrap()).unwrap()
}

/// File names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn unpack(path: &Path) -> Vec<u8> {
    let bytes = fs::read(path).unwrap();
    let name = path.to_string_lossy();
    if name.ends_with(".gz") {
        gunzip(&bytes)
    } else if name.ends_with(".zst") {
        zstd::stream::decode_all(&bytes[..]).unwrap()
    } else {
        bytes
    }
}

fn set_mtime(path: &Path, secs: i64) {
    let t = UNIX_EPOCH + Duration::from_secs(secs as u64);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn ls(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A small deterministic generator for record sizes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn message(i: usize, len: usize) -> String {
    let head = format!("{i}:");
    let fill = len.saturating_sub(head.len());
    format!("{head}{}", "x".repeat(fill))
}

#[test]
fn write_buffers_until_flush_and_returns_the_formatted_length() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = builder(dir.path()).build().unwrap();
    assert_eq!(log(&mut sink, "hello"), 6);
    assert_eq!(read(dir.path().join("app.log")), "");
    sink.flush().unwrap();
    assert_eq!(read(dir.path().join("app.log")), "hello\n");
    assert_eq!(log(&mut sink, "x"), 2);
    sink.sync().unwrap();
    assert_eq!(read(dir.path().join("app.log")), "hello\nx\n");
    assert_eq!(names(dir.path()), ls(&["app.log"]));
}

#[test]
fn size_trigger_keeps_a_file_of_exactly_max_bytes_and_rotates_one_byte_later() {
    for flush_between in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = builder(dir.path()).max_bytes(10).build().unwrap();
        log(&mut sink, "aaaa");
        if flush_between {
            sink.flush().unwrap();
        }
        log(&mut sink, "bbbb");
        sink.flush().unwrap();
        assert_eq!(read(dir.path().join("app.log")), "aaaa\nbbbb\n");
        assert_eq!(names(dir.path()), ls(&["app.log"]));
        assert_eq!(sink.stats().rotations, 0);

        log(&mut sink, "c");
        assert_eq!(read(dir.path().join("app.log.1")), "aaaa\nbbbb\n");
        sink.flush().unwrap();
        assert_eq!(read(dir.path().join("app.log")), "c\n");
        assert_eq!(names(dir.path()), ls(&["app.log", "app.log.1"]));
        assert_eq!(sink.stats().rotations, 1);
    }
}

#[test]
fn pending_bytes_count_toward_the_size_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = builder(dir.path()).max_bytes(10).build().unwrap();
    log(&mut sink, "aaaa");
    log(&mut sink, "bbbb");
    log(&mut sink, "cc");
    // Rotation wrote the pending records into the old file first.
    assert_eq!(read(dir.path().join("app.log.1")), "aaaa\nbbbb\n");
    sink.flush().unwrap();
    assert_eq!(read(dir.path().join("app.log")), "cc\n");
}

#[test]
fn a_record_larger_than_max_bytes_gets_a_file_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = builder(dir.path()).max_bytes(4).build().unwrap();
    log(&mut sink, "0123456789");
    sink.flush().unwrap();
    assert_eq!(names(dir.path()), ls(&["app.log"]));
    log(&mut sink, "y");
    log(&mut sink, "abcdefghij");
    sink.flush().unwrap();
    assert_eq!(read(dir.path().join("app.log.2")), "0123456789\n");
    assert_eq!(read(dir.path().join("app.log.1")), "y\n");
    assert_eq!(read(dir.path().join("app.log")), "abcdefghij\n");
}

#[test]
fn no_record_is_ever_split_and_nothing_is_lost_or_reordered() {
    let dir = tempfile::tempdir().unwrap();
    let max = 256u64;
    let mut sink = builder(dir.path()).max_bytes(max).build().unwrap();
    let mut rng = Lcg(7);
    let mut expected = String::new();
    for i in 0..800 {
        let m = message(i, 1 + rng.next(120) as usize);
        log(&mut sink, &m);
        expected.push_str(&m);
        expected.push('\n');
        if rng.next(5) == 0 {
            sink.flush().unwrap();
        }
    }
    sink.flush().unwrap();
    let mut files = sink.backups();
    files.push(dir.path().join("app.log"));
    assert_eq!(files.len() as u64, sink.stats().rotations + 1);
    let mut all = String::new();
    for f in &files {
        let text = read(f);
        assert!(text.ends_with('\n'), "{} ends mid-record", f.display());
        assert!(text.len() as u64 <= max, "{} is too large", f.display());
        all.push_str(&text);
    }
    assert_eq!(all, expected);
    // Python naming: the oldest backup has the highest number.
    let n = files.len() - 1;
    assert_eq!(files[0], dir.path().join(format!("app.log.{n}")));
}

#[test]
fn hourly_rotation_follows_the_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new((SUN_10H + HOUR) * NS - NS / 2);
    let mut sink = builder(dir.path())
        .every(Every::Hourly)
        .clock(clock.clone())
        .build()
        .unwrap();
    log(&mut sink, "a");
    clock.set_ns((SUN_10H + HOUR) * NS - 1);
    log(&mut sink, "b");
    clock.set_ns((SUN_10H + HOUR) * NS);
    log(&mut sink, "c");
    sink.flush().unwrap();
    assert_eq!(read(dir.path().join("app.log.1")), "a\nb\n");
    assert_eq!(read(dir.path().join("app.log")), "c\n");
    assert_eq!(sink.stats().rotations, 1);
}

#[test]
fn timestamp_naming_uses_the_start_of_the_period() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new((SUN_10H + 1_234) * NS);
    let mut sink = builder(dir.path())
        .every(Every::Hourly)
        .naming(Naming::Timestamp)
        .clock(clock.clone())
        .build()
        .unwrap();
    log(&mut sink, "a");
    clock.set_ns((SUN_10H + HOUR + 59) * NS);
    log(&mut sink, "b");
    sink.flush().unwrap();
    assert_eq!(
        names(dir.path()),
        ls(&["app.log", "app.log.2026-11-22_10-00-00"])
    );
    assert_eq!(read(dir.path().join("app.log.2026-11-22_10-00-00")), "a\n");
    assert_eq!(read(dir.path().join("app.log")), "b\n");
}

#[test]
fn an_empty_file_is_not_rotated_when_its_period_ends() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(SUN_10H * NS);
    let mut sink = builder(dir.path())
        .every(Every::Minutely)
        .naming(Naming::Timestamp)
        .clock(clock.clone())
        .build()
        .unwrap();
    clock.set_ns((SUN_10H + 300) * NS);
    log(&mut sink, "a");
    sink.flush().unwrap();
    assert_eq!(names(dir.path()), ls(&["app.log"]));
    assert_eq!(sink.stats().rotations, 0);
    clock.set_ns((SUN_10H + 360) * NS);
    log(&mut sink, "b");
    sink.flush().unwrap();
    assert_eq!(read(dir.path().join("app.log.2026-11-22_10-05-00")), "a\n");
    assert_eq!(read(dir.path().join("app.log")), "b\n");
}

#[test]
fn weekly_periods_start_on_monday_at_midnight() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new((MON - 12 * HOUR) * NS);
    let mut sink = builder(dir.path())
        .every(Every::Weekly)
        .naming(Naming::Timestamp)
        .clock(clock.clone())
        .build()
        .unwrap();
    log(&mut sink, "sunday");
    clock.set_ns(MON * NS - 1);
    log(&mut sink, "last ns of sunday");
    clock.set_ns(MON * NS);
    log(&mut sink, "monday");
    clock.set_ns((MON + 7 * DAY) * NS - 1);
    log(&mut sink, "next sunday");
    clock.set_ns((MON + 7 * DAY) * NS);
    log(&mut sink, "next monday");
    sink.flush().unwrap();
    assert_eq!(
        names(dir.path()),
        ls(&[
            "app.log",
            "app.log.2026-11-16_00-00-00",
            "app.log.2026-11-23_00-00-00"
        ])
    );
    assert_eq!(
        read(dir.path().join("app.log.2026-11-16_00-00-00")),
        "sunday\nlast ns of sunday\n"
    );
    assert_eq!(
        read(dir.path().join("app.log.2026-11-23_00-00-00")),
        "monday\nnext sunday\n"
    );
    assert_eq!(read(dir.path().join("app.log")), "next monday\n");
}

#[test]
fn daily_periods_start_at_midnight_utc() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(SUN_10H * NS);
    let mut sink = builder(dir.path())
        .every(Every::Daily)
        .naming(Naming::Timestamp)
        .clock(clock.clone())
        .build()
        .unwrap();
    log(&mut sink, "a");
    clock.set_ns((MON - 1) * NS);
    log(&mut sink, "b");
    clock.set_ns((MON + 5) * NS);
    log(&mut sink, "c");
    sink.flush().unwrap();
    assert_eq!(
        read(dir.path().join("app.log.2026-11-22_00-00-00")),
        "a\nb\n"
    );
    assert_eq!(read(dir.path().join("app.log")), "c\n");
}

#[test]
fn size_and_time_triggers_combine() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new((SUN_10H + 60) * NS);
    let mut sink = builder(dir.path())
        .max_bytes(10)
        .every(Every::Hourly)
        .naming(Naming::Timestamp)
        .clock(clock.clone())
        .build()
        .unwrap();
    for m in ["aaaa", "bbbb", "cccc", "dddd", "eeee", "ffff"] {
        log(&mut sink, m);
    }
    clock.set_ns((SUN_10H + HOUR + 30) * NS);
    log(&mut sink, "gggg");
    sink.flush().unwrap();
    let d = dir.path();
    // Size rotations are named by the time of rotation (the same second
    // twice, so the second gets `.1`); the time rotation by its period.
    assert_eq!(
        sink.backups(),
        vec![
            d.join("app.log.2026-11-22_10-01-00"),
            d.join("app.log.2026-11-22_10-01-00.1"),
            d.join("app.log.2026-11-22_10-00-00"),
        ]
    );
    assert_eq!(read(d.join("app.log.2026-11-22_10-01-00")), "aaaa\nbbbb\n");
    assert_eq!(
        read(d.join("app.log.2026-11-22_10-01-00.1")),
        "cccc\ndddd\n"
    );
    assert_eq!(read(d.join("app.log.2026-11-22_10-00-00")), "eeee\nffff\n");
    assert_eq!(read(d.join("app.log")), "gggg\n");
    assert_eq!(sink.stats().rotations, 3);
}

/// Counts how often the sink asks for the time.
#[derive(Debug, Default)]
struct CountingClock {
    now: AtomicI64,
    reads: AtomicU64,
}

impl Clock for CountingClock {
    fn now_ns(&self) -> i64 {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.now.load(Ordering::SeqCst)
    }
}

#[test]
fn the_clock_is_read_once_per_record_with_a_time_trigger_and_never_without() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(CountingClock::default());
    clock.now.store(SUN_10H * NS, Ordering::SeqCst);
    let mut sink = builder(dir.path())
        .every(Every::Hourly)
        .clock(clock.clone())
        .build()
        .unwrap();
    let at_build = clock.reads.load(Ordering::SeqCst);
    for _ in 0..100 {
        log(&mut sink, "r");
    }
    sink.flush().unwrap();
    assert_eq!(clock.reads.load(Ordering::SeqCst) - at_build, 100);

    // Rotating does not read it a second time.
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(CountingClock::default());
    let mut sink = builder(dir.path())
        .every(Every::Hourly)
        .max_bytes(1)
        .naming(Naming::Timestamp)
        .max_age(Duration::from_secs(60))
        .clock(clock.clone())
        .build()
        .unwrap();
    let at_build = clock.reads.load(Ordering::SeqCst);
    for _ in 0..10 {
        log(&mut sink, "r");
    }
    assert_eq!(sink.stats().rotations, 9);
    assert_eq!(clock.reads.load(Ordering::SeqCst) - at_build, 10);

    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(CountingClock::default());
    let mut sink = builder(dir.path()).clock(clock.clone()).build().unwrap();
    for _ in 0..100 {
        log(&mut sink, "r");
    }
    sink.flush().unwrap();
    assert_eq!(clock.reads.load(Ordering::SeqCst), 0);
}

#[test]
fn restart_appends_and_counts_the_existing_size() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("app.log"), "old\n").unwrap();
    let mut sink = builder(dir.path()).build().unwrap();
    log(&mut sink, "new");
    drop(sink);
    assert_eq!(read(dir.path().join("app.log")), "old\nnew\n");

    fs::write(dir.path().join("app.log"), "12345678\n").unwrap();
    let mut sink = builder(dir.path()).max_bytes(10).build().unwrap();
    log(&mut sink, "a");
    sink.flush().unwrap();
    assert_eq!(read(dir.path().join("app.log.1")), "12345678\n");
    assert_eq!(read(dir.path().join("app.log")), "a\n");
}

#[test]
fn restart_rotates_an_active_file_left_from_an_earlier_period() {
    let dir = tempfile::tempdir().unwrap();
    let active = dir.path().join("app.log");
    fs::write(&active, "yesterday's\n").unwrap();
    set_mtime(&active, SUN_10H + 100);
    let clock = ManualClock::new((SUN_10H + 2 * HOUR) * NS);
    let mut sink = builder(dir.path())
        .every(Every::Hourly)
        .naming(Naming::Timestamp)
        .clock(clock)
        .build()
        .unwrap();
    log(&mut sink, "now");
    sink.flush().unwrap();
    assert_eq!(
        read(dir.path().join("app.log.2026-11-22_10-00-00")),
        "yesterday's\n"
    );
    assert_eq!(read(&active), "now\n");
}

#[test]
fn restart_continues_python_numbering_without_overwriting() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("app.log.1"), "one\n").unwrap();
    fs::write(d.join("app.log.2"), "two\n").unwrap();
    fs::write(d.join("app.log.3"), "three\n").unwrap();
    fs::write(d.join("app.log"), "active\n").unwrap();
    let mut sink = builder(d).max_bytes(1).build().unwrap();
    assert_eq!(sink.backups().len(), 3);
    log(&mut sink, "x");
    sink.flush().unwrap();
    assert_eq!(read(d.join("app.log.1")), "active\n");
    assert_eq!(read(d.join("app.log.2")), "one\n");
    assert_eq!(read(d.join("app.log.3")), "two\n");
    assert_eq!(read(d.join("app.log.4")), "three\n");
    assert_eq!(read(d.join("app.log")), "x\n");
    assert_eq!(
        names(d),
        ls(&[
            "app.log",
            "app.log.1",
            "app.log.2",
            "app.log.3",
            "app.log.4"
        ])
    );
}

#[test]
fn shifting_keeps_extensions_and_stops_at_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("app.log.1"), "one\n").unwrap();
    fs::write(d.join("app.log.2.gz"), "not really gzip").unwrap();
    fs::write(d.join("app.log.4"), "four\n").unwrap();
    fs::write(d.join("app.log.notes"), "unrelated\n").unwrap();
    fs::write(d.join("app.log"), "active\n").unwrap();
    let mut sink = builder(d).max_bytes(1).build().unwrap();
    log(&mut sink, "x");
    sink.flush().unwrap();
    assert_eq!(
        names(d),
        ls(&[
            "app.log",
            "app.log.1",
            "app.log.2",
            "app.log.3.gz",
            "app.log.4",
            "app.log.notes"
        ])
    );
    assert_eq!(read(d.join("app.log.1")), "active\n");
    assert_eq!(read(d.join("app.log.2")), "one\n");
    assert_eq!(read(d.join("app.log.3.gz")), "not really gzip");
    assert_eq!(read(d.join("app.log.4")), "four\n");
    assert_eq!(read(d.join("app.log.notes")), "unrelated\n");
}

#[test]
fn a_file_in_the_way_is_adopted_as_a_backup_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut sink = builder(d).max_bytes(1).build().unwrap();
    log(&mut sink, "first");
    log(&mut sink, "second");
    fs::write(d.join("app.log.2"), "intruder\n").unwrap();
    fs::write(d.join("app.log.3.zst"), "another\n").unwrap();
    log(&mut sink, "third");
    sink.flush().unwrap();
    assert_eq!(read(d.join("app.log.1")), "second\n");
    assert_eq!(read(d.join("app.log.2")), "first\n");
    assert_eq!(read(d.join("app.log.3")), "intruder\n");
    assert_eq!(read(d.join("app.log.4.zst")), "another\n");
    assert_eq!(read(d.join("app.log")), "third\n");
    assert_eq!(sink.backups().len(), 4);
}

#[test]
fn timestamp_names_that_are_taken_get_a_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("app.log.2026-11-22_10-00-00"), "foreign\n").unwrap();
    let clock = ManualClock::new(SUN_10H * NS);
    let mut sink = builder(d)
        .max_bytes(1)
        .naming(Naming::Timestamp)
        .clock(clock)
        .build()
        .unwrap();
    log(&mut sink, "a");
    log(&mut sink, "b");
    log(&mut sink, "c");
    sink.flush().unwrap();
    assert_eq!(read(d.join("app.log.2026-11-22_10-00-00")), "foreign\n");
    assert_eq!(read(d.join("app.log.2026-11-22_10-00-00.1")), "a\n");
    assert_eq!(read(d.join("app.log.2026-11-22_10-00-00.2")), "b\n");
    assert_eq!(read(d.join("app.log")), "c\n");
    assert_eq!(names(d).len(), 4);
}

#[test]
fn backup_count_keeps_the_newest_backups() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut sink = builder(d).max_bytes(1).backup_count(2).build().unwrap();
    for i in 0..6 {
        log(&mut sink, &format!("r{i}"));
    }
    sink.flush().unwrap();
    assert_eq!(names(d), ls(&["app.log", "app.log.1", "app.log.2"]));
    assert_eq!(read(d.join("app.log.1")), "r4\n");
    assert_eq!(read(d.join("app.log.2")), "r3\n");
    assert_eq!(read(d.join("app.log")), "r5\n");
    assert_eq!(sink.stats().rotations, 5);
}

#[test]
fn backup_count_zero_rotates_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = builder(dir.path()).max_bytes(1).build().unwrap();
    for i in 0..21 {
        log(&mut sink, &format!("r{i}"));
    }
    sink.flush().unwrap();
    assert_eq!(names(dir.path()).len(), 21);
    assert_eq!(read(dir.path().join("app.log.20")), "r0\n");
}

#[test]
fn max_age_deletes_backups_by_modification_time() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = clock::now_ns().div_euclid(NS);
    for (name, age) in [
        ("app.log.1", HOUR),
        ("app.log.2", 2 * DAY),
        ("app.log.3", 3 * DAY),
    ] {
        fs::write(d.join(name), format!("{name}\n")).unwrap();
        set_mtime(&d.join(name), now - age);
    }
    fs::write(d.join("app.log"), "active\n").unwrap();
    let clock = ManualClock::new(now * NS);
    let mut sink = builder(d)
        .max_bytes(1)
        .max_age(Duration::from_secs(DAY as u64))
        .clock(clock)
        .build()
        .unwrap();
    log(&mut sink, "x");
    sink.flush().unwrap();
    assert_eq!(names(d), ls(&["app.log", "app.log.1", "app.log.2"]));
    assert_eq!(read(d.join("app.log.1")), "active\n");
    assert_eq!(read(d.join("app.log.2")), "app.log.1\n");
}

#[test]
fn max_total_bytes_deletes_the_oldest_until_under_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 1..=3 {
        fs::write(d.join(format!("app.log.{i}")), vec![b'0' + i as u8; 100]).unwrap();
    }
    fs::write(d.join("app.log"), format!("{}\n", "x".repeat(49))).unwrap();
    let mut sink = builder(d)
        .max_bytes(1)
        .max_total_bytes(260)
        .build()
        .unwrap();
    log(&mut sink, "y");
    sink.flush().unwrap();
    // 50 + 100 + 100 + 100 = 350 > 260: the oldest (was .3, now .4) goes.
    assert_eq!(
        names(d),
        ls(&["app.log", "app.log.1", "app.log.2", "app.log.3"])
    );
    assert_eq!(fs::read(d.join("app.log.3")).unwrap(), vec![b'2'; 100]);
    assert_eq!(fs::read(d.join("app.log.1")).unwrap().len(), 50);
}

#[test]
fn compressed_backups_decode_to_exactly_the_rotated_bytes() {
    for (compression, ext) in [(Compression::Gzip, ".gz"), (Compression::Zstd, ".zst")] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut sink = builder(d)
            .max_bytes(20)
            .compression(compression)
            .build()
            .unwrap();
        let mut expected = Vec::new();
        let mut current = String::new();
        for i in 0..8 {
            let m = format!("record {i}");
            if !current.is_empty() && current.len() + m.len() + 1 > 20 {
                expected.push(std::mem::take(&mut current));
            }
            current.push_str(&m);
            current.push('\n');
            log(&mut sink, &m);
        }
        sink.flush().unwrap();
        sink.wait_compressed();
        assert_eq!(expected.len(), 3);
        assert_eq!(
            names(d),
            vec![
                "app.log".to_string(),
                format!("app.log.1{ext}"),
                format!("app.log.2{ext}"),
                format!("app.log.3{ext}"),
            ]
        );
        for (i, want) in expected.iter().rev().enumerate() {
            let got = unpack(&d.join(format!("app.log.{}{ext}", i + 1)));
            assert_eq!(String::from_utf8(got).unwrap(), *want);
        }
        assert_eq!(read(d.join("app.log")), current);
        let stats = sink.stats();
        assert_eq!((stats.rotations, stats.compressed), (3, 3));
        assert_eq!((stats.compress_skipped, stats.compress_failed), (0, 0));
    }
}

#[test]
fn retention_counts_compressed_backups() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut sink = builder(d)
        .max_bytes(1)
        .backup_count(2)
        .compression(Compression::Gzip)
        .build()
        .unwrap();
    for i in 0..6 {
        log(&mut sink, &format!("r{i}"));
    }
    sink.flush().unwrap();
    sink.wait_compressed();
    assert_eq!(names(d), ls(&["app.log", "app.log.1.gz", "app.log.2.gz"]));
    assert_eq!(unpack(&d.join("app.log.1.gz")), b"r4\n");
    assert_eq!(unpack(&d.join("app.log.2.gz")), b"r3\n");
}

#[test]
fn compression_racing_with_shifts_keeps_every_record_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut sink = builder(d)
        .max_bytes(64)
        .compression(Compression::Zstd)
        .compress_backlog(10_000)
        .build()
        .unwrap();
    let mut rng = Lcg(42);
    let mut expected = Vec::new();
    for i in 0..400 {
        let m = message(i, 1 + rng.next(40) as usize);
        log(&mut sink, &m);
        expected.extend_from_slice(m.as_bytes());
        expected.push(b'\n');
    }
    sink.flush().unwrap();
    sink.wait_compressed();
    let stats = sink.stats();
    assert!(stats.rotations > 50);
    assert_eq!(stats.compressed, stats.rotations);
    let backups = sink.backups();
    assert_eq!(backups.len() as u64, stats.rotations);
    let mut all = Vec::new();
    for b in &backups {
        assert!(b.to_string_lossy().ends_with(".zst"));
        all.extend(unpack(b));
    }
    all.extend(fs::read(d.join("app.log")).unwrap());
    assert_eq!(all, expected);
    assert_eq!(names(d).len(), backups.len() + 1);
}

#[test]
fn dropping_the_sink_flushes_and_finishes_queued_compression() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut sink = builder(d)
        .max_bytes(1)
        .compression(Compression::Gzip)
        .build()
        .unwrap();
    for i in 0..4 {
        log(&mut sink, &format!("r{i}"));
    }
    drop(sink);
    assert_eq!(
        names(d),
        ls(&["app.log", "app.log.1.gz", "app.log.2.gz", "app.log.3.gz"])
    );
    assert_eq!(read(d.join("app.log")), "r3\n");
    assert_eq!(unpack(&d.join("app.log.3.gz")), b"r0\n");
}

#[test]
fn restart_removes_temporaries_and_compresses_what_was_left_plain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join(".app.log.7.gz.tmp"), "half written").unwrap();
    fs::write(d.join(".app.log.9.zst.tmp"), "half written").unwrap();
    fs::write(d.join(".app.log.keep"), "not ours").unwrap();
    fs::write(d.join("app.log.1"), "one\n").unwrap();
    fs::write(d.join("app.log.2.gz"), gzip(b"two\n")).unwrap();
    let sink = builder(d).compression(Compression::Gzip).build().unwrap();
    sink.wait_compressed();
    assert_eq!(
        names(d),
        ls(&[".app.log.keep", "app.log", "app.log.1.gz", "app.log.2.gz"])
    );
    assert_eq!(unpack(&d.join("app.log.1.gz")), b"one\n");
    assert_eq!(unpack(&d.join("app.log.2.gz")), b"two\n");
    assert_eq!(sink.stats().compressed, 1);
}

#[test]
fn restart_resolves_an_interrupted_compression_without_losing_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Complete compressed copy: the plain file is the leftover.
    fs::write(d.join("app.log.1"), "one\n").unwrap();
    fs::write(d.join("app.log.1.gz"), gzip(b"one\n")).unwrap();
    // A compressed file that does not match: both are kept.
    fs::write(d.join("app.log.2"), "two\n").unwrap();
    fs::write(d.join("app.log.2.gz"), gzip(b"something else\n")).unwrap();
    let sink = builder(d).build().unwrap();
    assert_eq!(
        names(d),
        ls(&["app.log", "app.log.1.gz", "app.log.2", "app.log.2.gz"])
    );
    assert_eq!(sink.backups().len(), 3);
}

#[test]
fn restart_finds_both_naming_schemes_and_retention_covers_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = [
        ("app.log.2026-11-20_00-00-00", SUN_10H - 2 * DAY),
        ("app.log.2026-11-21_00-00-00.zst", SUN_10H - DAY),
        ("app.log.1", SUN_10H),
    ];
    for (name, mtime) in files {
        fs::write(d.join(name), name).unwrap();
        set_mtime(&d.join(name), mtime);
    }
    fs::write(d.join("app.log"), "active\n").unwrap();
    let mut sink = builder(d).max_bytes(1).backup_count(2).build().unwrap();
    assert_eq!(
        sink.backups(),
        vec![d.join(files[0].0), d.join(files[1].0), d.join(files[2].0)]
    );
    log(&mut sink, "x");
    sink.flush().unwrap();
    assert_eq!(names(d), ls(&["app.log", "app.log.1", "app.log.2"]));
    assert_eq!(read(d.join("app.log.2")), "app.log.1");
}

#[test]
fn parent_directories_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/app.log");
    let mut sink = RollingFile::builder(&path)
        .layout(Box::new(Line))
        .build()
        .unwrap();
    log(&mut sink, "deep");
    sink.flush().unwrap();
    assert_eq!(read(&path), "deep\n");
    assert_eq!(sink.path(), path);
}

#[test]
fn a_deleted_active_file_is_recreated_at_the_next_flush() {
    let dir = tempfile::tempdir().unwrap();
    let active = dir.path().join("app.log");
    let mut sink = builder(dir.path()).build().unwrap();
    log(&mut sink, "before");
    sink.flush().unwrap();
    fs::remove_file(&active).unwrap();
    log(&mut sink, "after");
    sink.flush().unwrap();
    assert_eq!(read(&active), "after\n");
}

#[test]
fn a_moved_active_file_is_replaced_and_keeps_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let active = dir.path().join("app.log");
    let mut sink = builder(dir.path()).build().unwrap();
    log(&mut sink, "one");
    sink.flush().unwrap();
    log(&mut sink, "two");
    fs::rename(&active, dir.path().join("moved.log")).unwrap();
    log(&mut sink, "three");
    sink.flush().unwrap();
    assert_eq!(read(dir.path().join("moved.log")), "one\n");
    assert_eq!(read(&active), "two\nthree\n");
    // Replaced by another file: the sink appends to that one.
    fs::remove_file(&active).unwrap();
    fs::write(&active, "theirs\n").unwrap();
    log(&mut sink, "four");
    sink.flush().unwrap();
    assert_eq!(read(&active), "theirs\nfour\n");
}

#[test]
fn a_failed_rotation_keeps_the_records_in_the_active_file_and_retries_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    // The active name fits in NAME_MAX (255 bytes); `name.1` does not, so
    // every rotation fails, even for root.
    let active = dir.path().join("l".repeat(254));
    let mut sink = RollingFile::builder(&active)
        .layout(Box::new(Line))
        .max_bytes(1)
        .build()
        .unwrap();
    log(&mut sink, "a");
    log(&mut sink, "b");
    log(&mut sink, "c");
    assert_eq!(sink.stats().rotation_failures, 1);
    sink.flush().unwrap();
    log(&mut sink, "d");
    sink.flush().unwrap();
    assert_eq!(sink.stats().rotation_failures, 2);
    assert_eq!(sink.stats().rotations, 0);
    assert_eq!(read(&active), "a\nb\nc\nd\n");
    assert_eq!(names(dir.path()).len(), 1);
}

#[cfg(target_os = "linux")]
fn os_error(e: &io::Error) -> Option<i32> {
    let inner = e.get_ref()?.downcast_ref::<logbraid::sink::FileError>()?;
    inner.io_error().raw_os_error()
}

#[cfg(target_os = "linux")]
#[test]
fn a_failed_flush_keeps_the_records_for_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let active = dir.path().join("app.log");
    std::os::unix::fs::symlink("/dev/full", &active).unwrap();
    let mut sink = builder(dir.path()).build().unwrap();
    log(&mut sink, "a");
    log(&mut sink, "b");
    let e = sink.flush().unwrap_err();
    assert_eq!(os_error(&e), Some(libc::ENOSPC));
    assert!(e.to_string().contains("app.log"), "{e}");
    assert!(sink.flush().is_err());
    assert_eq!(sink.stats().write_failures, 2);
    fs::remove_file(&active).unwrap();
    log(&mut sink, "c");
    sink.flush().unwrap();
    assert!(fs::symlink_metadata(&active).unwrap().is_file());
    assert_eq!(read(&active), "a\nb\nc\n");
}

#[cfg(target_os = "linux")]
#[test]
fn with_max_pending_0_over_64_mib_waits_for_the_disk_whole() {
    let dir = tempfile::tempdir().unwrap();
    let active = dir.path().join("app.log");
    std::os::unix::fs::symlink("/dev/full", &active).unwrap();
    let mut sink = builder(dir.path()).max_pending(0).build().unwrap();
    let big = "z".repeat(1 << 20);
    // 65 records of 1 MiB + 1 byte, past the default limit: no write
    // waits, and nothing is let go.
    for _ in 0..65 {
        log(&mut sink, &big);
    }
    for _ in 0..3 {
        let e = sink.flush().unwrap_err();
        assert_eq!(os_error(&e), Some(libc::ENOSPC));
        assert!(
            e.to_string().contains("68157505 bytes of records kept"),
            "{e}"
        );
    }
    let stats = sink.stats();
    assert_eq!((stats.write_failures, stats.held_waits), (3, 0));
    fs::remove_file(&active).unwrap();
    log(&mut sink, "after");
    sink.flush().unwrap();
    let text = read(&active);
    assert_eq!(text.len(), 65 * ((1 << 20) + 1) + "after\n".len());
    assert_eq!(text.lines().filter(|l| *l == big).count(), 65);
    assert!(text.ends_with("\nafter\n"));
}

#[cfg(target_os = "linux")]
#[test]
fn the_compression_thread_is_named_and_runs_at_lower_priority() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = builder(dir.path())
        .max_bytes(1)
        .compression(Compression::Gzip)
        .build()
        .unwrap();
    log(&mut sink, "a");
    log(&mut sink, "b");
    sink.wait_compressed();
    // The kernel keeps the first 15 bytes of a thread name.
    let mut niced = 0;
    for task in fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let Ok(comm) = fs::read_to_string(task.join("comm")) else {
            continue;
        };
        if comm.trim_end() != "logbraid-compre" {
            continue;
        }
        let Ok(stat) = fs::read_to_string(task.join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name; nice is field 19 overall.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let nice: i32 = after.split(' ').nth(16).unwrap().parse().unwrap();
        if nice == 10 {
            niced += 1;
        }
    }
    assert!(niced >= 1);
}

#[test]
fn build_reports_the_path_in_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let e = RollingFile::builder("").build().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(e.path(), Path::new(""));
    drop(path);

    let blocker = dir.path().join("file");
    fs::write(&blocker, "").unwrap();
    let e = builder(&blocker.join("sub")).build().unwrap_err();
    assert_eq!(e.path(), blocker.join("sub"));
    assert!(std::error::Error::source(&e).is_some());
    let as_io: io::Error = e.into();
    assert!(as_io.to_string().contains("sub"));
}

#[test]
fn builder_defaults_are_documented_values() {
    let dir = tempfile::tempdir().unwrap();
    // Default builder plus a path and layout: plain appending, no rotation.
    let mut sink = logbraid::sink::RollingFileBuilder::default()
        .path(dir.path().join("app.log"))
        .layout(Box::new(Line))
        .build()
        .unwrap();
    for _ in 0..1000 {
        log(&mut sink, "0123456789");
    }
    sink.flush().unwrap();
    assert_eq!(names(dir.path()), ls(&["app.log"]));
    assert_eq!(sink.stats(), Default::default());
}

#[test]
fn paths_are_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let sink = builder(dir.path()).build().unwrap();
    assert!(sink.path().is_absolute());
}
