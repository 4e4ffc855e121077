//! `logbraid cat` driven as a real process over log sets written by the
//! real rolling file sink (through a `Logger`), rotated and compressed.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use logbraid::clock::ManualClock;
use logbraid::layout::JsonLayout;
use logbraid::read::{log_set, read_decompressed};
use logbraid::sink::{RollingFile, RollingFileBuilder};
use logbraid::{Builder, Callsite, Compression, Guard, Level, Logger, Naming, Value};

fn cat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_logbraid"))
        .arg("cat")
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A logger writing `path` (rotated at `max_bytes` unless 0, compressed)
/// from its background thread, with no collector for children.
fn logger(
    path: &Path,
    max_bytes: u64,
    compression: Compression,
    json: bool,
    clock: Option<Arc<ManualClock>>,
) -> (Logger, Guard) {
    let mut file = RollingFile::builder(path)
        .max_bytes(max_bytes)
        .compression(compression)
        // Every backup compressed, however fast the rotations.
        .compress_backlog(100_000);
    if json {
        file = file.layout(Box::new(JsonLayout::new()));
    }
    logger_with(file, clock)
}

fn logger_with(file: RollingFileBuilder, clock: Option<Arc<ManualClock>>) -> (Logger, Guard) {
    let mut b = Builder::new()
        .level("trace")
        .children(false)
        .inherit_collector(false)
        .file(file)
        .unwrap();
    if let Some(c) = clock {
        b = b.clock(c);
    }
    b.build().unwrap()
}

fn log(logger: &Logger, level: Level, target: &str, message: &str) {
    let site = Callsite::new(level, target);
    logger.log_with(&site, format_args!("{message}"), &mut |_| {});
}

/// The message of each text line (after `target: `).
fn messages(text: &str) -> Vec<&str> {
    text.lines()
        .map(|l| l.split_once(": ").map_or(l, |(_, m)| m))
        .collect()
}

/// Logs `messages`, flushing after every third so that the file rotates
/// as the records arrive, then shuts the logger down (compression done).
fn write_fast(logger: Logger, guard: Guard, messages: &[String]) {
    for (i, m) in messages.iter().enumerate() {
        log(&logger, Level::Info, "app", m);
        if i % 3 == 0 {
            logger.flush();
        }
    }
    drop(logger);
    drop(guard);
}

fn numbered(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag} {i:05}")).collect()
}

#[test]
fn a_set_of_thirty_rotated_compressed_files_is_read_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let (lg, guard) = logger(&path, 600, Compression::Gzip, false, None);
    for m in numbered("r", 1000) {
        log(&lg, Level::Info, "app", &m);
        lg.flush();
    }
    drop(lg);
    drop(guard);
    let files = log_set(&path).unwrap();
    let gz = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "gz"))
        .count();
    assert!(gz >= 30, "{} files, {gz} compressed", files.len());

    let out = cat(&[path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let text = stdout(&out);
    assert_eq!(messages(&text), numbered("r", 1000));
    // Byte for byte what the files hold, oldest first.
    let stored: Vec<u8> = files
        .iter()
        .flat_map(|f| read_decompressed(f).unwrap())
        .collect();
    assert_eq!(text.as_bytes(), stored);
}

/// Collects a child's standard output on a thread.
struct Captured {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Captured {
    fn start(args: &[&str]) -> Captured {
        let mut child = Command::new(env!("CARGO_BIN_EXE_logbraid"))
            .arg("cat")
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stdout.take().unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&out);
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Captured {
            child,
            out,
            reader: Some(reader),
        }
    }

    fn lines(&self) -> usize {
        self.out
            .lock()
            .unwrap()
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    /// Waits until `n` lines arrived. The deadline only turns a hang into
    /// a failure: the caller then compares what was seen.
    fn wait_lines(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.lines() < n && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        self.signal(libc::SIGTERM)
    }

    fn signal(&mut self, signal: i32) -> (std::process::ExitStatus, String) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let status = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let out = String::from_utf8(self.out.lock().unwrap().clone()).unwrap();
        (status, out)
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        // A failed test leaves no follower behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A follower started before anything exists, a writer rotating a tiny
/// file as fast as it can with compression on: every record once, in
/// order, exactly what the finished set holds.
fn follow_fast_rotations(naming: Naming, compression: Compression) {
    let dir = tempfile::tempdir().unwrap();
    // Neither the file nor its directory exists yet.
    let path = dir.path().join("logs/app.log");
    let follower = Captured::start(&["--follow", path.to_str().unwrap()]);
    let file = RollingFile::builder(&path)
        .max_bytes(300)
        .naming(naming)
        .compression(compression)
        .compress_backlog(100_000);
    let (lg, guard) = logger_with(file, None);
    let all = numbered("f", 1500);
    write_fast(lg, guard, &all);
    let files = log_set(&path).unwrap();
    assert!(files.len() > 200, "{} files", files.len());
    follower.wait_lines(all.len());
    let (status, text) = follower.terminate();
    assert!(status.success(), "{status}");
    assert_eq!(messages(&text), all);
    let stored = stdout(&cat(&[path.to_str().unwrap()]));
    assert_eq!(text, stored);
}

#[test]
fn a_follower_started_first_sees_every_record_once_across_fast_rotations() {
    follow_fast_rotations(Naming::Python, Compression::Zstd);
}

#[test]
fn a_follower_sees_every_record_once_across_timestamped_backups() {
    follow_fast_rotations(Naming::Timestamp, Compression::Gzip);
}

#[test]
fn a_follower_on_an_existing_set_reads_it_then_what_follows_and_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let (lg, guard) = logger(&path, 200, Compression::Gzip, false, None);
    for m in numbered("a", 20) {
        log(&lg, Level::Info, "app", &m);
    }
    lg.flush();
    let mut follower = Captured::start(&["-f", path.to_str().unwrap()]);
    follower.wait_lines(20);
    for m in numbered("b", 20) {
        log(&lg, Level::Warn, "app", &m);
        lg.flush();
    }
    follower.wait_lines(40);
    drop(lg);
    drop(guard);
    let (status, text) = follower.signal(libc::SIGINT);
    assert!(status.success(), "{status}");
    let mut want = numbered("a", 20);
    want.extend(numbered("b", 20));
    assert_eq!(messages(&text), want);
}

#[test]
fn filters_level_logger_source_grep_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let clock = ManualClock::new(1_795_338_000_000_000_000); // 2026-11-22T09:00:00Z
    let (lg, guard) = logger(&path, 250, Compression::None, false, Some(clock.clone()));
    let levels = Level::ALL;
    let targets = ["app", "app::db", "apple", "app.web"];
    for i in 0..24 {
        let m = format!("m{i:02}");
        log(&lg, levels[i % 6], targets[i % 4], &m);
        clock.advance_ns(60_000_000_000);
    }
    drop(lg);
    drop(guard);
    let p = path.to_str().unwrap();
    let pick = |args: &[&str]| {
        let mut all = vec![p];
        all.extend_from_slice(args);
        let out = cat(&all);
        assert!(out.status.success(), "{}", stderr(&out));
        messages(&stdout(&out))
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let want = |is: &[usize]| is.iter().map(|i| format!("m{i:02}")).collect::<Vec<_>>();
    assert_eq!(
        pick(&["--level", "error"]),
        want(&[4, 5, 10, 11, 16, 17, 22, 23])
    );
    assert_eq!(
        pick(&["--level", "WARNING"]),
        want(&[3, 4, 5, 9, 10, 11, 15, 16, 17, 21, 22, 23])
    );
    assert_eq!(
        pick(&["--logger", "app", "--level", "info"]),
        want(&[3, 4, 5, 8, 9, 10, 11, 14, 15, 16, 17, 20, 21, 22, 23])
            .into_iter()
            .filter(|m| {
                let i: usize = m[1..].parse().unwrap();
                i % 4 != 2
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(pick(&["--logger", "app::db"]), want(&[1, 5, 9, 13, 17, 21]));
    assert_eq!(pick(&["--grep", "m1[02]$"]), want(&[10, 12]));
    assert_eq!(
        pick(&[
            "--since",
            "2026-11-22T09:05:00Z",
            "--until",
            "2026-11-22T10:08:00+01:00"
        ]),
        want(&[5, 6, 7])
    );
    let pid = std::process::id().to_string();
    assert_eq!(pick(&["--source", &pid]).len(), 24);
    assert_eq!(pick(&["--source", "1"]), Vec::<String>::new());
    let bad = cat(&[p, "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("--since: \"yesterday\" is neither an RFC 3339 timestamp"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn two_sets_merge_by_timestamp_each_in_its_own_order() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b/b.log"));
    let t0 = 1_795_338_000_000_000_000;
    let ca = ManualClock::new(t0);
    let cb = ManualClock::new(t0);
    let (la, ga) = logger(&a, 300, Compression::Gzip, false, Some(ca.clone()));
    let (lb, gb) = logger(&b, 300, Compression::Zstd, true, Some(cb.clone()));
    let mut want = Vec::new();
    for i in 0..60i64 {
        // a at even microseconds, b at multiples of three: ties at
        // multiples of six, where a (named first) goes first.
        ca.set_ns(t0 + 2 * i * 1000);
        log(&la, Level::Info, "a", &format!("a{i:02}"));
        cb.set_ns(t0 + 3 * i * 1000);
        log(&lb, Level::Info, "b", &format!("b{i:02}"));
    }
    let mut stamps: Vec<(i64, usize, String)> = (0..60i64)
        .flat_map(|i| {
            [
                (2 * i, 0, format!("a{i:02}")),
                (3 * i, 1, format!("b{i:02}")),
            ]
        })
        .collect();
    stamps.sort();
    want.extend(stamps.into_iter().map(|(_, _, m)| m));
    drop((la, ga, lb, gb));
    assert!(log_set(&a).unwrap().len() > 5);
    assert!(log_set(&b).unwrap().len() > 5);
    let out = cat(&["--json", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Vec<String> = stdout(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["message"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn json_output_of_text_and_json_files() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_795_338_000_123_456_000);
    let (text, json) = (dir.path().join("t.log"), dir.path().join("j.log"));
    for (path, is_json) in [(&text, false), (&json, true)] {
        let (lg, guard) = logger(path, 0, Compression::None, is_json, Some(clock.clone()));
        let site = Callsite::new(Level::Warn, "app::db");
        lg.log_with(&site, format_args!("disk \"almost\" full"), &mut |f| {
            f.push("free", Value::U64(12));
            f.push_str("unit", "MiB");
        });
        drop((lg, guard));
    }
    let pid = std::process::id();
    let one = |path: &Path| {
        let out = cat(&["--json", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(
        one(&text),
        format!(
            "{{\"ts\":\"2026-11-22T09:00:00.123456Z\",\"level\":\"WARN\",\"logger\":\"app::db\",\
             \"message\":\"disk \\\"almost\\\" full free=12 unit=MiB\",\"pid\":{pid},\"fields\":{{}}}}\n"
        )
    );
    let got: serde_json::Value = serde_json::from_str(&one(&json)).unwrap();
    let host = got["host"].as_str().unwrap().to_string();
    let program = got["program"].as_str().unwrap().to_string();
    assert_eq!(
        got,
        serde_json::json!({
            "ts": "2026-11-22T09:00:00.123456Z", "level": "WARN", "logger": "app::db",
            "message": "disk \"almost\" full", "host": host, "pid": pid, "program": program,
            "fields": {"free": 12, "unit": "MiB"}
        })
    );
    // Object keys in the documented order.
    let line = one(&json);
    let order: Vec<usize> = [
        "\"ts\"",
        "\"level\"",
        "\"logger\"",
        "\"message\"",
        "\"fields\"",
    ]
    .iter()
    .map(|k| line.find(k).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{line}");
}

#[test]
fn a_traceback_stays_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let (lg, guard) = logger(&path, 0, Compression::None, false, None);
    log(&lg, Level::Info, "app", "before");
    let site = Callsite::new(Level::Error, "app");
    lg.log_with(&site, format_args!("failed\nsecond line"), &mut |f| {
        f.push_str(
            "exc_text",
            "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nValueError: bad",
        );
    });
    log(&lg, Level::Info, "app", "after");
    drop((lg, guard));
    let p = path.to_str().unwrap();
    let out = cat(&[p, "--level", "error"]);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.lines().skip(1).all(|l| l.starts_with("  ")), "{text}");
    assert!(text.ends_with("  ValueError: bad\n"), "{text}");
    // Matching a continuation line gives the whole record.
    assert_eq!(stdout(&cat(&[p, "--grep", "ValueError"])), text);
    let out = cat(&[p, "--json", "--grep", "ValueError"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim_end()).unwrap();
    assert_eq!(
        v["message"],
        "failed\nsecond line\nTraceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nValueError: bad"
    );
    assert_eq!(
        messages(&stdout(&cat(&[p, "--level", "info"])))[0],
        "before"
    );
}

#[test]
fn bad_input_is_reported_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let (lg, guard) = logger(&path, 150, Compression::Gzip, false, None);
    for m in numbered("x", 12) {
        log(&lg, Level::Info, "app", &m);
        lg.flush();
    }
    drop((lg, guard));
    let files = log_set(&path).unwrap();
    let text_of = |f: &Path| String::from_utf8(read_decompressed(f).unwrap()).unwrap();
    let in_oldest: Vec<String> = messages(&text_of(&files[0]))
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut want: Vec<String> = files[1..]
        .iter()
        .flat_map(|f| {
            messages(&text_of(f))
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    want.push("caf\u{fffd}".to_string());
    // The oldest backup cut short, as if its compression were interrupted.
    let oldest = &files[0];
    let bytes = std::fs::read(oldest).unwrap();
    std::fs::write(oldest, &bytes[..bytes.len() - 12]).unwrap();
    // A line that is no record, and invalid UTF-8, in the active file.
    let active_lines = text_of(&path).lines().count();
    let mut active = std::fs::read(&path).unwrap();
    active.extend_from_slice(b"not a record\n");
    active.extend_from_slice(b"2026-11-22T10:00:00Z INFO  [1/m] app: caf\xe9\n");
    std::fs::write(&path, active).unwrap();

    let out = cat(&[path.to_str().unwrap()]);
    assert!(out.status.success());
    let err = stderr(&out);
    let text = stdout(&out);
    let got = messages(&text);
    // What the cut file still gives (its last line cut short), then
    // everything else.
    let cut = got.len() - want.len();
    assert!(cut > 0 && cut <= in_oldest.len(), "{got:?}");
    assert_eq!(got[..cut - 1], in_oldest[..cut - 1]);
    assert!(in_oldest[cut - 1].starts_with(got[cut - 1]), "{got:?}");
    assert_eq!(got[cut..], want);
    assert!(
        err.contains(&format!(
            "logbraid cat: {}: the file ends in the middle of a line\n",
            files[0].display()
        )),
        "{err}"
    );
    let name = oldest.display().to_string();
    assert!(
        err.contains(&format!("logbraid cat: {name}: cannot read past byte")),
        "{err}"
    );
    let active_name = path.display();
    let (bad, invalid) = (active_lines + 1, active_lines + 2);
    assert!(
        err.contains(&format!(
            "logbraid cat: {active_name}: line {bad}: not a record, skipped\n"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "logbraid cat: {active_name}: line {invalid}: invalid UTF-8, shown with U+FFFD\n"
        )),
        "{err}"
    );

    let missing = cat(&[dir.path().join("none.log").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("none.log: no such file, and no backups of it"));
}

#[test]
fn colour_on_request_never_in_a_pipe_or_with_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let (lg, guard) = logger(&path, 0, Compression::None, false, None);
    log(&lg, Level::Error, "app", "boom");
    drop((lg, guard));
    let p = path.to_str().unwrap();
    let plain = stdout(&cat(&[p]));
    assert!(!plain.contains('\x1b'));
    let colored = stdout(&cat(&[p, "--color", "always"]));
    assert!(colored.contains("\x1b[31mERROR\x1b[0m"), "{colored:?}");
    assert!(colored.starts_with("\x1b[2m20"), "{colored:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_logbraid"))
        .args(["cat", p, "--color", "auto"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(stdout(&out), plain);
}

/// lnav, with a home of its own, or `None` (said on stderr) when it is
/// not installed.
fn lnav(home: &Path) -> Option<Command> {
    let mut c = Command::new("lnav");
    c.env("HOME", home);
    match c.arg("-V").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            eprintln!("SKIPPED: lnav is not installed");
            return None;
        }
    }
    let mut c = Command::new("lnav");
    c.env("HOME", home);
    Some(c)
}

#[test]
fn the_lnav_format_file_reads_both_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let Some(mut install) = lnav(&home) else {
        return;
    };
    let format = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/lnav/logbraid.json");
    let out = install.arg("-i").arg(&format).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (text, json) = (dir.path().join("t.log"), dir.path().join("j.log"));
    for (path, is_json) in [(&text, false), (&json, true)] {
        let (lg, guard) = logger(path, 0, Compression::None, is_json, None);
        log(&lg, Level::Warn, "app::db", "slow query");
        let site = Callsite::new(Level::Error, "app");
        lg.log_with(&site, format_args!("failed"), &mut |f| {
            f.push_str(
                "exc_text",
                "Traceback (most recent call last):\nValueError: bad",
            );
        });
        drop((lg, guard));
    }
    let query = |table: &str, path: &Path| {
        let out = lnav(&home)
            .unwrap()
            .arg("-n")
            .arg("-c")
            .arg(format!(";SELECT log_level, target, log_body FROM {table}"))
            .arg("-c")
            .arg(":write-csv-to -")
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(
        query("logbraid_text", &text),
        "log_level,target,log_body\nwarning,app::db,slow query\nerror,app,\"failed\n  \
         Traceback (most recent call last):\n  ValueError: bad\"\n"
    );
    let json_rows = query("logbraid_json", &json);
    assert!(
        json_rows
            .starts_with("log_level,target,log_body\nwarning,app::db,slow query\nerror,app,failed"),
        "{json_rows}"
    );
}

#[test]
fn reading_a_set_while_it_rotates_gives_each_record_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let (lg, guard) = logger(&path, 300, Compression::Gzip, false, None);
    let all = numbered("w", 3000);
    let writer = {
        let all = all.clone();
        thread::spawn(move || write_fast(lg, guard, &all))
    };
    // Each read, taken while names shift and backups are compressed, is
    // the records from the first on, none missing or repeated.
    let mut reads = 0;
    while !writer.is_finished() || reads < 3 {
        let out = cat(&[path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let got = messages(&text);
        assert_eq!(got, all[..got.len()], "read {reads}");
        reads += 1;
    }
    writer.join().unwrap();
    assert_eq!(messages(&stdout(&cat(&[path.to_str().unwrap()]))), all);
}
