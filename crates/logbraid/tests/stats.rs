//! `Logger::stats`: exact counts of what a pipeline logged, wrote and
//! rotated, and how long its sinks took to write and sync.

use logbraid::layout::LayoutSpec;
use logbraid::sink::RollingFile;
use logbraid::{Builder, Callsite, Level};

#[test]
fn stats_count_records_bytes_rotations_and_time_the_writes_and_syncs() {
    const N: u64 = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let layout = LayoutSpec::parse("%(message)s", None).unwrap();
    let (logger, guard) = Builder::new()
        .level("debug")
        .children(false)
        .inherit_collector(false)
        .flush_sync(true)
        .file(
            RollingFile::builder(&path)
                .layout(layout.build(false))
                .max_bytes(4096),
        )
        .unwrap()
        .build()
        .unwrap();
    let before = logger.stats();
    assert_eq!((before.logged, before.written, before.rotations), (0, 0, 0));
    let site = Callsite::new(Level::Info, "t");
    for i in 0..N {
        logger.log_with(&site, format_args!("record {i:05}"), &mut |_| {});
    }
    logger.flush();
    let s = logger.stats();
    assert_eq!((s.logged, s.written, s.dropped), (N, N, 0));
    // "record 00000\n": 13 bytes each.
    assert_eq!(s.bytes_written, 13 * N);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let on_disk: u64 = files
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(s.bytes_written, on_disk);
    // Every file but the active one is a backup left by a rotation.
    assert_eq!(s.rotations, files.len() as u64 - 1);
    assert!(s.rotations >= 9, "{s:?}");
    let (w, y) = (s.write_latency, s.sync_latency);
    assert!(w.count >= 1 && w.max <= w.total, "{w:?}");
    // flush_sync: the flush that returned synced every sink.
    assert!(y.count >= 1 && y.max <= y.total, "{y:?}");
    drop(guard);
}
