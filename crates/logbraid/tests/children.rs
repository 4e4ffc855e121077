//! Zero-configuration children: a parent that logs to a file starts an
//! embedded collector and exports its address in `LOGBRAID_COLLECTOR`;
//! children and grandchildren started with `std::process::Command` find it
//! and forward to it instead of opening files. Every child here is this
//! test binary run again, with nothing passed by hand but the test's own
//! parameters.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use logbraid::layout::LayoutSpec;
use logbraid::sink::RollingFile;
use logbraid::{Builder, Callsite, Level};

const ENV: &str = "LOGBRAID_COLLECTOR";

fn child_dir() -> Option<PathBuf> {
    std::env::var_os("LOGBRAID_TEST_CHILD").map(Into::into)
}

fn var(name: &str) -> u64 {
    std::env::var(name).unwrap().parse().unwrap()
}

/// Starts the child test of this binary with its id and record count.
/// The collector's address travels only through the inherited environment.
fn spawn_child(dir: &Path, id: u64, records: u64, grandchild: bool) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_forwards_its_records",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("LOGBRAID_TEST_CHILD", dir)
        .env("LOGBRAID_TEST_ID", id.to_string())
        .env("LOGBRAID_TEST_RECORDS", records.to_string())
        .env(
            "LOGBRAID_TEST_GRANDCHILD",
            if grandchild { "1" } else { "0" },
        )
        .env_remove("LOGBRAID_LEVEL")
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap()
}

/// A logger writing each message as a line to `path`, as a parent does.
fn parent_logger(path: &Path) -> (logbraid::Logger, logbraid::Guard) {
    Builder::new()
        .level("info")
        .file(
            RollingFile::builder(path)
                .layout(LayoutSpec::parse("%(message)s", None).unwrap().build(false)),
        )
        .unwrap()
        .build()
        .unwrap()
}

fn wait_ok(child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "child failed: {:?}", out.status);
}

/// Child: configures a file of its own, exactly as a top-level program
/// would, and logs. Because it finds `LOGBRAID_COLLECTOR`, its records go to
/// the parent and its own file is never created.
#[test]
fn child_forwards_its_records() {
    let Some(dir) = child_dir() else { return };
    assert!(std::env::var_os(ENV).is_some(), "the parent exported {ENV}");
    let id = var("LOGBRAID_TEST_ID");
    let records = var("LOGBRAID_TEST_RECORDS");
    let (logger, guard) = Builder::new()
        .level("info")
        .file(RollingFile::builder(dir.join(format!("child-{id}.log"))))
        .unwrap()
        .build()
        .unwrap();
    let grandchild =
        (var("LOGBRAID_TEST_GRANDCHILD") == 1).then(|| spawn_child(&dir, id + 100, 1000, false));
    let site = Callsite::new(Level::Info, "child");
    for seq in 0..records {
        logger.log_with(&site, format_args!("child={id} seq={seq}"), &mut |_| {});
    }
    if let Some(g) = grandchild {
        wait_ok(g);
    }
    drop(guard);
}

#[test]
fn four_children_and_a_grandchild_reach_the_parents_file_exactly_once_in_order() {
    if child_dir().is_some() {
        return;
    }
    const PER_CHILD: u64 = 250_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.log");
    let (logger, guard) = parent_logger(&path);

    let address = std::env::var(ENV).expect("a parent writing a file exports its collector");
    let socket = PathBuf::from(address.strip_prefix("unix:").expect("a unix: address"));
    let private = socket.parent().unwrap().to_path_buf();
    let mode = std::fs::metadata(&private).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the socket's directory is private");

    let children: Vec<Child> = (0..4)
        .map(|id| spawn_child(dir.path(), id, PER_CHILD, id == 0))
        .collect();
    for c in children {
        wait_ok(c);
    }
    logger.flush();
    drop(guard);

    // The environment is written once, before the parent's threads: the
    // address stays, with nothing behind it until a logger serves it again.
    assert_eq!(
        std::env::var(ENV).ok().as_deref(),
        Some(address.as_str()),
        "shutdown leaves the environment alone"
    );
    assert!(
        !socket.exists() && !private.exists(),
        "shutdown removes the socket"
    );
    for id in [0, 1, 2, 3, 100] {
        assert!(
            !dir.path().join(format!("child-{id}.log")).exists(),
            "child {id} opened its own file"
        );
    }

    let text = std::fs::read_to_string(&path).unwrap();
    let mut next: HashMap<u64, u64> = HashMap::new();
    let mut lines = 0u64;
    for line in text.lines() {
        let (id, seq) = line
            .strip_prefix("child=")
            .and_then(|l| l.split_once(" seq="))
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        let (id, seq): (u64, u64) = (id.parse().unwrap(), seq.parse().unwrap());
        let expected = next.entry(id).or_insert(0);
        assert_eq!(
            seq, *expected,
            "child {id}: a record missing, repeated or out of order"
        );
        *expected += 1;
        lines += 1;
    }
    let mut want: HashMap<u64, u64> = (0..4).map(|id| (id, PER_CHILD)).collect();
    want.insert(100, 1000);
    assert_eq!(next, want);
    assert_eq!(lines, 4 * PER_CHILD + 1000);

    // A second logger of the process collects at the same address, so the
    // exported value is good again, and a child reaches its file.
    let again = dir.path().join("again.log");
    let (logger, guard) = parent_logger(&again);
    assert_eq!(logger.collector_address(), Some(address.clone()));
    assert_eq!(
        std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
        0o700
    );
    wait_ok(spawn_child(dir.path(), 7, 1000, false));
    logger.flush();
    drop(guard);
    let text = std::fs::read_to_string(&again).unwrap();
    let want: Vec<String> = (0..1000).map(|seq| format!("child=7 seq={seq}")).collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), want);
    assert!(!dir.path().join("child-7.log").exists());
}
