//! Tests of the rolling file that reach into its private state.

use super::*;

#[derive(Debug)]
struct Line;

impl Layout for Line {
    fn format(&mut self, record: &Record<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(record.message);
        out.push(b'\n');
    }
}

fn log(sink: &mut RollingFile, msg: &str) {
    let source = crate::record::Source {
        host: String::new(),
        pid: 0,
        process_name: String::new(),
    };
    let r = Record::new(crate::Level::Info, "t", msg.as_bytes(), &source);
    sink.write(&r).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn a_full_backlog_leaves_backups_uncompressed_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = RollingFile::builder(dir.path().join("app.log"))
        .layout(Box::new(Line))
        .max_bytes(1)
        .compression(Compression::Gzip)
        .build()
        .unwrap();
    // A worker that does not run yet: the backlog of 2 fills up.
    let (detached, rx) = Compressor::detached(2);
    sink.compressor = Some(detached);
    for i in 0..5 {
        log(&mut sink, &format!("r{i}"));
    }
    let stats = sink.stats();
    assert_eq!((stats.rotations, stats.compress_skipped), (4, 2));
    assert_eq!(
        names(dir.path()),
        [
            "app.log",
            "app.log.1",
            "app.log.2",
            "app.log.3",
            "app.log.4"
        ]
    );
    // The two queued backups have been shifted since: the worker finds
    // them at their new names.
    let shared = Arc::clone(&sink.shared);
    if let Some(c) = sink.compressor.as_mut() {
        c.run_detached(rx, shared);
    }
    sink.wait_compressed();
    assert_eq!(
        names(dir.path()),
        [
            "app.log",
            "app.log.1",
            "app.log.2",
            "app.log.3.gz",
            "app.log.4.gz"
        ]
    );
    assert_eq!(sink.stats().compressed, 2);
}

/// A daily rotation at 02:30 on the nights the clock changes: one
/// rotation a night, each backup named once, each holding exactly the
/// records of its period (a record every 10 minutes for 60 hours).
#[test]
fn a_daily_rotation_at_0230_happens_once_on_each_dst_night() {
    // (zone, 12:00 local on the day before the change, the backups,
    // records in each: 14.5 hours, then a 23- or 25-hour day.)
    let cases = [
        (
            "America/New_York",
            1_772_902_800,
            ["app.log.2026-03-07_02-30-00", "app.log.2026-03-08_03-30-00"],
            [87, 138],
        ),
        (
            "Europe/Berlin",
            1_792_836_000,
            ["app.log.2026-10-24_02-30-00", "app.log.2026-10-25_02-30-00"],
            [87, 150],
        ),
    ];
    for (zone, noon, backups, counts) in cases {
        let Some(tz) = crate::time::testing::zone(zone) else {
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        let clock = clock::ManualClock::new(noon * NS_PER_SEC);
        let mut sink = RollingFile::builder(dir.path().join("app.log"))
            .layout(Box::new(Line))
            .every(Every::Daily)
            .at_time(jiff::civil::time(2, 30, 0, 0))
            .time_zone(tz)
            .naming(Naming::Timestamp)
            .clock(clock.clone())
            .build()
            .unwrap();
        for i in 0..360 {
            clock.set_ns((noon + i * 600) * NS_PER_SEC);
            log(&mut sink, &format!("r{i}"));
            sink.flush().unwrap();
        }
        assert_eq!(sink.stats().rotations, 2, "{zone}");
        let mut want = vec!["app.log".to_string()];
        want.extend(backups.iter().map(|b| b.to_string()));
        assert_eq!(names(dir.path()), want, "{zone}");
        let lines = |name: &str| {
            fs::read_to_string(dir.path().join(name))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let first = lines(backups[0]);
        let second = lines(backups[1]);
        assert_eq!([first.len(), second.len()], counts, "{zone}");
        assert_eq!(first[0], "r0");
        assert_eq!(second[0], format!("r{}", counts[0]));
        assert_eq!(lines("app.log").len(), 360 - counts[0] - counts[1]);
    }
}

#[test]
fn reopen_after_a_move_starts_a_new_file_and_leaves_the_moved_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut sink = RollingFile::builder(&path)
        .layout(Box::new(Line))
        .sync_rotations(true)
        .build()
        .unwrap();
    log(&mut sink, "one");
    sink.flush().unwrap();
    let moved = dir.path().join("app.log.moved");
    fs::rename(&path, &moved).unwrap();
    log(&mut sink, "two");
    sink.reopen().unwrap();
    // The new file exists at once, holding what was pending.
    assert_eq!(fs::read(&path).unwrap(), b"two\n");
    let id = fs::metadata(&path).unwrap().ino();
    log(&mut sink, "three");
    sink.flush().unwrap();
    assert_eq!(fs::read(&moved).unwrap(), b"one\n");
    assert_eq!(fs::read(&path).unwrap(), b"two\nthree\n");
    assert_eq!(sink.position().map(|p| (p.1 .1, p.2)), Some((id, 10)));
    // Without a move, a reopen goes on in the same file.
    sink.reopen().unwrap();
    log(&mut sink, "four");
    sink.flush().unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"two\nthree\nfour\n");
}

#[test]
fn sync_rotations_keeps_every_record_under_the_sinks_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut sink = RollingFile::builder(&path)
        .layout(Box::new(Line))
        .max_bytes(8)
        .sync_rotations(true)
        .build()
        .unwrap();
    for i in 0..5 {
        log(&mut sink, &format!("r{i}"));
    }
    sink.sync().unwrap();
    assert_eq!(sink.stats().rotations, 2);
    assert_eq!(fs::read(dir.path().join("app.log.2")).unwrap(), b"r0\nr1\n");
    assert_eq!(fs::read(dir.path().join("app.log.1")).unwrap(), b"r2\nr3\n");
    assert_eq!(fs::read(&path).unwrap(), b"r4\n");
}

/// Polls `done` until it holds; the deadline only keeps a broken sink
/// from hanging the test.
fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(target_os = "linux")]
#[test]
fn past_max_pending_a_write_waits_for_the_file_and_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let active = dir.path().join("app.log");
    std::os::unix::fs::symlink("/dev/full", &active).unwrap();
    let mut sink = RollingFile::builder(&active)
        .layout(Box::new(Line))
        .max_pending(100)
        .build()
        .unwrap();
    // 26 records of 4 bytes: the last one finds 100 buffered, not more
    // than the limit, and goes in without waiting.
    let want: Vec<String> = (0..26).map(|i| format!("r{i:02}")).collect();
    for r in &want {
        log(&mut sink, r);
    }
    // 104 bytes held: a flush fails and keeps them.
    assert!(sink.flush().is_err());
    assert_eq!(sink.stats().held_waits, 0);
    let shared = Arc::clone(&sink.shared);
    let waits = move || shared.counters.held_waits.load(Ordering::Relaxed);
    let writer = std::thread::spawn(move || {
        log(&mut sink, "last");
        sink
    });
    until("the write waits", || waits() == 1);
    // The disk is still full: the write cannot have returned.
    assert!(!writer.is_finished());
    fs::remove_file(&active).unwrap();
    let mut sink = writer.join().unwrap();
    sink.flush().unwrap();
    let mut text = want.join("\n");
    text.push_str("\nlast\n");
    assert_eq!(fs::read_to_string(&active).unwrap(), text);
    let stats = sink.stats();
    assert_eq!(stats.held_waits, 1);
    assert!(stats.write_failures >= 2, "{stats:?}");
}

/// With `sync_rotations`, a compressed backup replaces its original only
/// once its name is synced: when the directory cannot be synced, the
/// original stays the backup and the compressed copy goes.
#[cfg(feature = "failpoints")]
#[test]
fn a_compressed_backup_replaces_the_original_only_once_synced() {
    for sync in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = RollingFile::builder(dir.path().join("app.log"))
            .layout(Box::new(Line))
            .max_bytes(1)
            .sync_rotations(sync)
            .compression(Compression::Gzip)
            .build()
            .unwrap();
        fail::cfg("compress::sync_dir", "return(eio)").unwrap();
        log(&mut sink, "a");
        log(&mut sink, "b");
        sink.wait_compressed();
        fail::remove("compress::sync_dir");
        let stats = sink.stats();
        if sync {
            assert_eq!(names(dir.path()), ["app.log", "app.log.1"]);
            assert_eq!((stats.compressed, stats.compress_failed), (0, 1));
            assert_eq!(fs::read(dir.path().join("app.log.1")).unwrap(), b"a\n");
        } else {
            // Without sync the directory is not synced: the point is not
            // reached.
            assert_eq!(names(dir.path()), ["app.log", "app.log.1.gz"]);
            assert_eq!((stats.compressed, stats.compress_failed), (1, 0));
        }
    }
}

#[test]
fn without_follow_links_a_link_in_place_of_the_file_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("someone-elses");
    fs::write(&target, b"theirs\n").unwrap();
    let path = dir.path().join("app.log");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let err = RollingFile::builder(&path)
        .layout(Box::new(Line))
        .follow_links(false)
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("is a symbolic link: not followed"),
        "{err}"
    );
    assert_eq!(fs::read(&target).unwrap(), b"theirs\n");

    // A link that appears later (between a rotation and the reopen): the
    // reopen fails, the records stay buffered, the target is untouched.
    let real = dir.path().join("real.log");
    let mut sink = RollingFile::builder(&real)
        .layout(Box::new(Line))
        .follow_links(false)
        .build()
        .unwrap();
    log(&mut sink, "one");
    sink.flush().unwrap();
    fs::rename(&real, dir.path().join("real.log.moved")).unwrap();
    std::os::unix::fs::symlink(&target, &real).unwrap();
    log(&mut sink, "two");
    assert!(sink.reopen().is_err());
    assert_eq!(fs::read(&target).unwrap(), b"theirs\n");
    fs::remove_file(&real).unwrap();
    sink.reopen().unwrap();
    sink.flush().unwrap();
    assert_eq!(fs::read(&real).unwrap(), b"two\n");

    // By default a link is followed, as Python's FileHandler does (a log
    // linked to /dev/stdout in a container).
    let linked = dir.path().join("linked.log");
    std::os::unix::fs::symlink(&target, &linked).unwrap();
    let mut sink = RollingFile::builder(&linked)
        .layout(Box::new(Line))
        .build()
        .unwrap();
    log(&mut sink, "mine");
    sink.flush().unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"theirs\nmine\n");
}

#[test]
fn files_and_directories_are_created_with_the_modes_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/app.log");
    let mut sink = RollingFile::builder(&path)
        .layout(Box::new(Line))
        .file_mode(0o640)
        .dir_mode(0o750)
        .max_bytes(8)
        .compression(Compression::Gzip)
        .build()
        .unwrap();
    for m in ["first", "second", "third"] {
        log(&mut sink, m);
        sink.flush().unwrap();
    }
    drop(sink);
    // The umask may take bits away, never add them.
    let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
    for (p, asked) in [
        (dir.path().join("a"), 0o750),
        (dir.path().join("a/b"), 0o750),
        (path.clone(), 0o640),
    ] {
        let m = mode(&p);
        assert_eq!(m & !asked, 0, "{}: {m:o}", p.display());
        assert_eq!(m & 0o700, asked & 0o700, "{}: {m:o}", p.display());
    }
    // Compressed backups keep their original's permissions.
    let backups: Vec<_> = names(&dir.path().join("a/b"))
        .into_iter()
        .filter(|n| n.ends_with(".gz"))
        .collect();
    assert!(!backups.is_empty(), "{:?}", names(&dir.path().join("a/b")));
    for b in backups {
        assert_eq!(mode(&dir.path().join("a/b").join(&b)), mode(&path), "{b}");
    }
}
