//! Faults injected into a real `logbraid serve` (built with the
//! `failpoints` feature, see `logbraid::fault`) while a real forwarding
//! client sends it numbered records: the process killed with SIGKILL at
//! each failpoint, again and again, and restarted on the same file; writes
//! and checkpoints made to fail (EIO, ENOSPC) by failpoints; a full
//! disk (a small tmpfs); a directory in the way of the log file; a
//! directory it may not write to.
//!
//! Every case ends the same way: once the fault is gone, the client's
//! `flush()` returns (the collector has acknowledged everything), and the
//! log file and its backups hold every record exactly once, in order,
//! while the operator's files beside the log (`app.log.bak`,
//! `app.log.log`, `app.log.1.bak`, `notes.txt`) keep their bytes and
//! modification times, and no file appears that is not the log's, a backup
//! of it, or the collector's checkpoint and its lock.
//!
//! What may legitimately repeat: PROTOCOL.md §7.2 and the output stage's
//! documentation name one case, a rotated file compressed after the last
//! checkpoint and before the collector died, whose records written after
//! that checkpoint cannot be cut off, so their resends land a second time.
//! Those records were never acknowledged; the test with compression
//! allows exactly that, and nothing for an acknowledged record.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use logbraid::sink::{backup_files, read_decompressed};

mod harness;
use harness::{Numbered, Proc};

/// Only a safety net, so a broken collector fails the test instead of
/// hanging it; no assertion depends on it.
const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `done` until it holds.
fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One run of `logbraid serve`; killed if a test ends without stopping it.
struct Collector {
    proc: Proc,
    url: String,
}

/// How to run the collector.
#[derive(Clone, Copy, Default)]
struct Run<'a> {
    /// `FAILPOINTS`, e.g. `file::write=return(kill)`.
    failpoints: Option<&'a str>,
    /// Run as this user and group id instead of the test's own.
    user: Option<u32>,
}

impl Collector {
    /// Starts `logbraid serve` with `args` (one `--listen`), its stderr in
    /// a numbered file of `errs`, and waits for its `listening on` line.
    fn start(errs: &Path, args: &[&str], run: Run<'_>) -> Collector {
        let n = fs::read_dir(errs).unwrap().count();
        let stderr = errs.join(format!("run-{n}.err"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_logbraid"));
        cmd.arg("serve")
            .args(args)
            .env_remove("FAILPOINTS")
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr).unwrap());
        if let Some(f) = run.failpoints {
            cmd.env("FAILPOINTS", f);
        }
        if let Some(id) = run.user {
            cmd.uid(id).gid(id);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let proc = Proc { child, stderr };
        let Some(url) = line.strip_prefix("listening on ") else {
            panic!("{line:?}: {}", proc.said());
        };
        Collector {
            url: url.trim_end().to_string(),
            proc,
        }
    }

    fn said(&self) -> String {
        self.proc.said()
    }

    /// Waits for the collector to die of SIGKILL (sent by a failpoint);
    /// returns what it said.
    fn killed(&mut self) -> String {
        self.proc.killed()
    }

    /// SIGTERM; the collector must exit 0. Returns what it said.
    fn stop(&mut self) -> String {
        self.proc.stop()
    }
}

/// A forwarding client that numbers its records `rec 0`, `rec 1`, …
struct Client;

impl Client {
    fn connect(url: &str) -> Numbered {
        Numbered::connect(url, "faults", "rec", Duration::from_millis(50))
    }
}

/// The operator's files beside the log, with their bytes and times.
struct Bystanders(Vec<(PathBuf, Vec<u8>, SystemTime)>);

impl Bystanders {
    fn place(dir: &Path) -> Bystanders {
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        let mut all = Vec::new();
        for name in ["app.log.bak", "app.log.log", "app.log.1.bak", "notes.txt"] {
            let path = dir.join(name);
            let bytes = format!("{name}: the operator's, not the collector's\n").into_bytes();
            fs::write(&path, &bytes).unwrap();
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(when)
                .unwrap();
            all.push((path, bytes, when));
        }
        Bystanders(all)
    }

    fn names(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(p, _, _)| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect()
    }

    fn unchanged(&self) {
        for (path, bytes, when) in &self.0 {
            assert_eq!(&fs::read(path).unwrap(), bytes, "{}", path.display());
            let m = fs::metadata(path).unwrap().modified().unwrap();
            assert_eq!(m, *when, "{} was touched", path.display());
        }
    }
}

/// The numbers of the records in `files`, in file order.
fn numbers(files: &[PathBuf]) -> Vec<u64> {
    let mut got = Vec::new();
    for f in files {
        let text = String::from_utf8(read_decompressed(f).unwrap()).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} ends mid-line",
            f.display()
        );
        for line in text.lines() {
            let n = line
                .strip_prefix("rec ")
                .unwrap_or_else(|| panic!("{line:?}"));
            got.push(n.parse().unwrap());
        }
    }
    got
}

/// The log's files, oldest first by the sink's own naming: its backups by
/// index, then the active file.
fn log_files(log: &Path) -> Vec<PathBuf> {
    let mut files = backup_files(log).unwrap();
    if log.is_file() {
        files.push(log.to_path_buf());
    }
    files
}

fn assert_exactly_once(got: &[u64], n: u64) {
    let want: Vec<u64> = (0..n).collect();
    if got != want {
        let mut sorted = got.to_vec();
        sorted.sort_unstable();
        let repeated: Vec<&[u64]> = sorted
            .windows(2)
            .filter(|w| w[0] == w[1])
            .take(10)
            .collect();
        panic!(
            "{} records for {n}: first repeats {repeated:?}, first {:?}",
            got.len(),
            &got[..got.len().min(20)]
        );
    }
}

/// Every file in `dir` is the log, one of its backups, the collector's
/// checkpoint, its journal or lock, a bystander, or one of `also`.
fn nothing_else(dir: &Path, by: &Bystanders, also: &[&str]) {
    let mut allowed = by.names();
    allowed.extend(also.iter().map(|s| s.to_string()));
    allowed.extend(
        [
            ".app.log.state",
            ".app.log.state.journal",
            ".app.log.state.lock",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let log = dir.join("app.log");
    for f in log_files(&log) {
        allowed.push(f.file_name().unwrap().to_str().unwrap().to_string());
    }
    for e in fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(
            allowed.contains(&name),
            "{name} appeared in the log's directory"
        );
    }
}

/// A test's directories: `logs` holds the log, the operator's files and
/// the checkpoint; `errs` what each run of the collector said.
struct Scene {
    top: tempfile::TempDir,
    dir: PathBuf,
    errs: PathBuf,
    log: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let top = tempfile::tempdir().unwrap();
        let (dir, errs) = (top.path().join("logs"), top.path().join("errs"));
        fs::create_dir(&dir).unwrap();
        fs::create_dir(&errs).unwrap();
        let log = dir.join("app.log");
        Scene {
            top,
            dir,
            errs,
            log,
        }
    }

    /// A unix socket beside the log's directory.
    fn socket(&self) -> String {
        format!("unix:{}", self.top.path().join("c.sock").display())
    }

    /// `logbraid serve`'s flags: one listener, the log, one record a line.
    fn args<'a>(&'a self, listen: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "--listen",
            listen,
            "--file",
            self.log.to_str().unwrap(),
            "--format",
            "%(message)s",
        ];
        args.extend_from_slice(extra);
        args
    }
}

/// Records a run sends before the failpoint kills it.
const CHUNK: u64 = 400;
/// Consecutive runs killed at the failpoint.
const KILLS: usize = 2;

/// A collector killed at `point` (configured with `actions`) `KILLS` times
/// running, restarted each time on the same file, then once more without
/// failpoints. `cut`: the kill leaves bytes past the checkpoint, which the
/// next start must cut off. `repeats`: records not acknowledged may be
/// written twice (see the module documentation).
fn killed_at(point: &str, actions: &str, extra: &[&str], cut: bool, repeats: bool) {
    let scene = Scene::new();
    let (dir, errs, log) = (&scene.dir, &scene.errs, &scene.log);
    let by = Bystanders::place(dir);
    let sock = scene.socket();
    let args = scene.args(&sock, extra);
    let failpoints = format!("{point}={actions}");

    let mut c = Collector::start(errs, &args, Run::default());
    let mut client = Client::connect(&c.url);
    client.send(CHUNK);
    client.logger.flush();
    assert_eq!(client.acked(), CHUNK);
    c.stop();
    drop(c);

    let mut acked = CHUNK;
    // Per kill: what was acknowledged once the collector had died, and
    // what had been sent by then.
    let mut acked_at_kill = Vec::new();
    for k in 0..KILLS {
        let run = Run {
            failpoints: Some(&failpoints),
            ..Run::default()
        };
        let mut c = Collector::start(errs, &args, run);
        client.send(CHUNK);
        let said = c.killed();
        if cut && k > 0 {
            assert!(said.contains("written after the last checkpoint"), "{said}");
        }
        // Acknowledgements only grow; nothing is acknowledged past what
        // was sent.
        let now = client.acked();
        assert!(now >= acked && now <= client.next, "{now} after {acked}");
        acked = now;
        acked_at_kill.push((now, client.next));
    }

    let mut c = Collector::start(errs, &args, Run::default());
    client.logger.flush();
    assert_eq!(client.acked(), client.next);
    let said = c.stop();
    if cut {
        assert!(said.contains("written after the last checkpoint"), "{said}");
    }
    let got = numbers(&log_files(log));
    if repeats {
        // Each record acknowledged before the first kill once; any other
        // at least once, plus at most one copy for each kill it lived
        // through unacknowledged (that kill's compressed backup may hold
        // it past the checkpoint, and the client sends it again).
        let count = |i: u64| got.iter().filter(|&&g| g == i).count();
        for i in 0..client.next {
            let kills = acked_at_kill
                .iter()
                .filter(|&&(acked, sent)| (acked..sent).contains(&i))
                .count();
            let want = 1..=1 + kills;
            assert!(
                want.contains(&count(i)),
                "rec {i}: {} times, {kills} kills unacknowledged",
                count(i)
            );
        }
    } else {
        assert_exactly_once(&got, client.next);
    }
    by.unchanged();
    nothing_else(dir, &by, &[]);
}

#[test]
fn killed_before_a_write_nothing_is_lost_or_repeated() {
    killed_at("file::write", "return(kill)", &[], false, false);
}

#[test]
fn killed_after_the_write_before_its_sync_the_unacknowledged_bytes_are_cut() {
    killed_at(
        "file::sync",
        "return(kill)",
        &["--sync", "data"],
        true,
        false,
    );
}

#[test]
fn killed_before_the_checkpoint_is_written_the_unacknowledged_bytes_are_cut() {
    // The first hit is the checkpoint every start saves.
    killed_at("state::write", "1*off->return(kill)", &[], true, false);
}

#[test]
fn killed_before_the_checkpoint_is_renamed_the_unacknowledged_bytes_are_cut() {
    // Every checkpoint a snapshot, so that the second one is renamed.
    killed_at(
        "state::rename",
        "1*off->return(kill);state::compact=return",
        &[],
        true,
        false,
    );
}

#[test]
fn killed_before_a_rotation_renames_the_file_nothing_is_lost_or_repeated() {
    killed_at(
        "file::rotate",
        "return(kill)",
        &["--max-bytes", "1000"],
        false,
        false,
    );
}

#[test]
fn killed_before_the_new_file_opens_the_rotated_one_is_cut_back() {
    // The first hit is the open at start.
    killed_at(
        "file::open",
        "1*off->return(kill)",
        &["--max-bytes", "1000"],
        false,
        false,
    );
}

#[test]
fn killed_between_a_rotation_and_its_checkpoint_nothing_is_lost_or_repeated() {
    killed_at(
        "output::rotated",
        "return(kill)",
        &["--max-bytes", "1000"],
        false,
        false,
    );
}

#[test]
fn with_compression_killed_after_a_rotation_only_unacknowledged_records_may_repeat() {
    killed_at(
        "output::rotated",
        "return(kill)",
        &["--max-bytes", "1000", "--compress", "gzip"],
        false,
        true,
    );
}

/// A collector whose failpoints make its first attempts fail (`why` is
/// the error they say): nothing is acknowledged until an attempt succeeds,
/// a second later, and then everything is written once.
fn injected(failpoints: &str, why: &str) {
    let scene = Scene::new();
    let by = Bystanders::place(&scene.dir);
    let sock = scene.socket();
    let args = scene.args(&sock, &[]);
    let run = Run {
        failpoints: Some(failpoints),
        ..Run::default()
    };
    let mut c = Collector::start(&scene.errs, &args, run);
    let mut client = Client::connect(&c.url);
    client.send(CHUNK);
    until("the collector reports the failure", || {
        c.said().contains(why)
    });
    assert_eq!(client.acked(), 0);
    client.logger.flush();
    assert_eq!(client.acked(), CHUNK);
    c.stop();
    assert_exactly_once(&numbers(&log_files(&scene.log)), CHUNK);
    by.unchanged();
    nothing_else(&scene.dir, &by, &[]);
}

#[test]
fn failed_writes_are_retried_and_acknowledged_only_once_written() {
    injected("file::write=2*return(eio)", "Input/output error");
}

#[test]
fn a_failed_checkpoint_holds_the_acknowledgements_and_repeats_no_record() {
    // The first hit is the checkpoint every start saves; the records of
    // the round whose checkpoint fails are in the file already.
    injected(
        "state::rename=1*off->2*return(enospc);state::compact=return",
        "No space left on device",
    );
}

/// What stands in the way of the log file.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Obstacle {
    /// A directory where the file should be (EISDIR).
    Directory,
    /// The log's directory made read-only (EACCES). As root the collector
    /// runs as `nobody`, since root passes mode bits.
    ReadOnly,
}

const NOBODY: u32 = 65534;

/// The collector writes the log; the operator moves it away (as
/// `logrotate` does, without SIGHUP), then `obstacle` keeps a new one from
/// being created. Nothing the client sends meanwhile is acknowledged, and
/// nothing reaches the moved file; once the obstacle goes, everything
/// lands in the new file once.
fn blocked_by(obstacle: Obstacle) {
    let scene = Scene::new();
    let (dir, errs, log) = (&scene.dir, &scene.errs, &scene.log);
    let by = Bystanders::place(dir);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let user = (root && obstacle == Obstacle::ReadOnly).then_some(NOBODY);
    if user.is_some() {
        for p in [scene.top.path(), dir] {
            std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
    }
    let args = scene.args("tcp://127.0.0.1:0", &[]);
    let run = Run {
        user,
        ..Run::default()
    };
    let mut c = Collector::start(errs, &args, run);
    let mut client = Client::connect(&c.url);
    client.send(CHUNK);
    client.logger.flush();
    assert_eq!(client.acked(), CHUNK);

    let moved = dir.join("app.log.moved");
    fs::rename(log, &moved).unwrap();
    let why = match obstacle {
        Obstacle::Directory => {
            fs::create_dir(log).unwrap();
            "Is a directory"
        }
        Obstacle::ReadOnly => {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).unwrap();
            "Permission denied"
        }
    };
    client.send(CHUNK);
    until("the collector reports the obstacle", || {
        c.said().contains(why)
    });
    // Records are missing from the disk: no acknowledgement went out.
    assert_eq!(client.acked(), CHUNK);
    assert_exactly_once(&numbers(std::slice::from_ref(&moved)), CHUNK);

    match obstacle {
        Obstacle::Directory => fs::remove_dir(log).unwrap(),
        Obstacle::ReadOnly => fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap(),
    }
    client.logger.flush();
    assert_eq!(client.acked(), 2 * CHUNK);
    c.stop();
    assert_exactly_once(&numbers(&[moved.clone(), log.to_path_buf()]), 2 * CHUNK);
    by.unchanged();
    nothing_else(dir, &by, &["app.log.moved"]);
}

#[test]
fn a_directory_in_the_way_holds_records_unacknowledged_until_it_goes() {
    blocked_by(Obstacle::Directory);
}

#[test]
fn a_read_only_directory_holds_records_unacknowledged_until_writable() {
    blocked_by(Obstacle::ReadOnly);
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, options: &str) -> Tmpfs {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let target = CString::new(at.as_os_str().as_bytes()).unwrap();
        let options = CString::new(options).unwrap();
        // SAFETY: every pointer is a NUL-terminated string that outlives
        // the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        assert_eq!(
            rc,
            0,
            "mount tmpfs on {}: {}",
            at.display(),
            std::io::Error::last_os_error()
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        use std::os::unix::ffi::OsStrExt;
        let Ok(target) = std::ffi::CString::new(self.0.as_os_str().as_bytes()) else {
            return;
        };
        // SAFETY: a NUL-terminated path that outlives the call. Detached,
        // so a file still open there cannot keep the mount behind.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Fills the file system of `dir` with one file until it is full.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = fs::File::create(&path).unwrap();
    let block = [b'f'; 4096];
    loop {
        match f.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return path,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
#[ignore = "mounts a tmpfs: needs root (scripts/test runs it when it can mount one)"]
fn a_full_tmpfs_holds_records_unacknowledged_and_writes_them_once_when_freed() {
    let scene = Scene::new();
    let (dir, errs, log) = (&scene.dir, &scene.errs, &scene.log);
    let _mount = Tmpfs::mount(dir, "size=256k,mode=0755");
    let by = Bystanders::place(dir);
    let sock = scene.socket();
    let args = scene.args(&sock, &[]);
    let mut c = Collector::start(errs, &args, Run::default());
    let mut client = Client::connect(&c.url);
    client.send(CHUNK);
    client.logger.flush();
    assert_eq!(client.acked(), CHUNK);

    let filler = fill(dir);
    // More than the free end of the log's last page can take.
    client.send(5 * CHUNK);
    until("the collector reports the full disk", || {
        c.said().contains("No space left on device")
    });
    // Part of the new records may be in the file (a write takes what
    // fits, perhaps ending mid-line), none twice. A batch that fit whole in
    // the free end of the log's last page before the disk filled is written
    // and may be acknowledged; every acknowledged record is in the file,
    // and not all of them are.
    let acked = client.acked();
    assert!((CHUNK..6 * CHUNK).contains(&acked), "{acked}");
    let text = fs::read_to_string(log).unwrap();
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let partial: Vec<u64> = whole
        .lines()
        .map(|l| l.strip_prefix("rec ").unwrap().parse().unwrap())
        .collect();
    assert!(partial.len() < 6 * CHUNK as usize, "{}", partial.len());
    assert_exactly_once(&partial, partial.len() as u64);
    assert!(
        acked <= partial.len() as u64,
        "{acked} acknowledged, {} in the file",
        partial.len()
    );

    fs::remove_file(&filler).unwrap();
    client.logger.flush();
    assert_eq!(client.acked(), 6 * CHUNK);
    c.stop();
    drop(c);
    assert_exactly_once(&numbers(&log_files(log)), 6 * CHUNK);
    by.unchanged();
    nothing_else(dir, &by, &[]);
}

#[test]
fn a_malformed_failpoint_setting_exits_2_naming_it_before_anything_starts() {
    let scene = Scene::new();
    let args = scene.args("tcp://127.0.0.1:0", &[]);
    for (bad, says) in [
        (
            "file::write",
            "FAILPOINTS: \"file::write\" is not name=actions",
        ),
        ("file::write=nonsense", "FAILPOINTS: file::write: "),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_logbraid"))
            .arg("serve")
            .args(&args)
            .env("FAILPOINTS", bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{bad}: {err}");
        assert!(out.stdout.is_empty());
        assert_eq!(fs::read_dir(&scene.dir).unwrap().count(), 0);
    }
}
