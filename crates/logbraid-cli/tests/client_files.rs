//! `python-unix:` listeners and files chosen by clients
//! (`--client-files`), driven by real Python `SocketHandler`s.

mod harness;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command};

use harness::{lines, Serve};

fn python() -> Command {
    let mut c = Command::new("python3");
    c.env_remove("LOGBRAID_COLLECTOR");
    c
}

/// A stock `SocketHandler(path, None)` sending `n` records that ask for
/// `file` with a formatter (`fmt`, `datefmt`, `style`) and rotation; the
/// same records, formatted by Python with the same formatter, go to
/// `expected`.
const WORKER: &str = r#"
import logging, logging.handlers, sys
sock, wid, n, fmt, datefmt, style, max_bytes, backups, file, expected = sys.argv[1:]
datefmt = datefmt or None
log = logging.getLogger("w" + wid)
log.setLevel(logging.DEBUG)
log.propagate = False
log.addHandler(logging.handlers.SocketHandler(sock, None))
local = logging.FileHandler(expected, "w")
local.setFormatter(logging.Formatter(fmt, datefmt, style=style))
log.addHandler(local)
request = {
    "logbraid_file": file,
    "logbraid_max_bytes": int(max_bytes),
    "logbraid_backup_count": int(backups),
    "logbraid_fmt": fmt,
    "logbraid_datefmt": datefmt,
    "logbraid_style": style,
}
levels = [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR]
for i in range(int(n)):
    log.log(levels[i % 4], "record %d of worker %s %s", i, wid, "x" * (i % 7), extra=request)
"#;

struct Worker<'a> {
    file: &'a str,
    fmt: &'a str,
    datefmt: &'a str,
    style: &'a str,
    max_bytes: u64,
    backups: u64,
}

fn spawn(dir: &Path, sock: &Path, wid: usize, n: usize, w: &Worker<'_>) -> Child {
    let script = dir.join("worker.py");
    if !script.exists() {
        std::fs::write(&script, WORKER).unwrap();
    }
    python()
        .arg(&script)
        .arg(sock)
        .args([
            &wid.to_string(),
            &n.to_string(),
            w.fmt,
            w.datefmt,
            w.style,
            &w.max_bytes.to_string(),
            &w.backups.to_string(),
            w.file,
        ])
        .arg(dir.join(format!("expected-{wid}.log")))
        .spawn()
        .unwrap()
}

/// The lines of `path` and of its backups, oldest first.
fn all_lines(path: &Path) -> (Vec<String>, usize) {
    let mut backups: Vec<_> = (1..)
        .map(|k| {
            path.with_file_name(format!(
                "{}.{k}",
                path.file_name().unwrap().to_str().unwrap()
            ))
        })
        .take_while(|p| p.exists())
        .collect();
    let n = backups.len();
    backups.reverse();
    backups.push(path.to_path_buf());
    (backups.iter().flat_map(|p| lines(p)).collect(), n)
}

#[test]
fn stock_socket_handlers_over_a_unix_socket_write_the_files_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // A link planted where a client asks to write, to a file outside.
    let target = dir.path().join("target.log");
    std::fs::write(&target, "not yours\n").unwrap();
    std::os::unix::fs::symlink(&target, root.join("planted.log")).unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            "python-unix:py.sock",
            "--file",
            "default.log",
            "--format",
            "%(name)s: %(message)s",
            "--client-files",
            "root",
            "--client-files-max-backups",
            "50",
        ],
    );
    assert_eq!(serve.urls, ["python-unix:py.sock"]);
    let sock = dir.path().join("py.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    const N: usize = 400;
    const BAD: usize = 25;
    let good = [
        Worker {
            file: "a.log",
            fmt: "%(asctime)s %(levelname)-8s %(name)s %(message)s",
            datefmt: "%Y-%m-%d %H:%M:%S",
            style: "%",
            max_bytes: 8000,
            backups: 20,
        },
        Worker {
            file: "sub/dir/b.log",
            fmt: "{asctime} [{levelname:>8}] {name}: {message}",
            datefmt: "%d/%m/%Y %H:%M",
            style: "{",
            max_bytes: 0,
            backups: 0,
        },
        Worker {
            // Absolute, inside the directory.
            file: "",
            fmt: "$levelname|$name|$message",
            datefmt: "",
            style: "$",
            max_bytes: 2000,
            backups: 2,
        },
    ];
    let c_path = root.join("c.log");
    let c_name = c_path.to_str().unwrap().to_string();
    let outside = dir.path().join("outside.log");
    let bad = [
        "../escape.log".to_string(),
        outside.to_str().unwrap().to_string(),
        "planted.log".to_string(),
    ];
    let mut children = Vec::new();
    for (wid, w) in good.iter().enumerate() {
        let w = Worker {
            file: if w.file.is_empty() { &c_name } else { w.file },
            ..*w
        };
        children.push(spawn(dir.path(), &sock, wid, N, &w));
    }
    for (k, name) in bad.iter().enumerate() {
        let w = Worker {
            file: name,
            fmt: "%(message)s",
            datefmt: "",
            style: "%",
            max_bytes: 0,
            backups: 0,
        };
        children.push(spawn(dir.path(), &sock, 3 + k, BAD, &w));
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "{} records written, 0 inputs rejected, {} client file requests refused",
            3 * N + 3 * BAD,
            3 * BAD
        )),
        "{err}"
    );
    // Said on stderr (at most once a second: the count is exact).
    assert!(
        err.contains("logbraid collector: output: a client's file "),
        "{err}"
    );

    // a.log: rotated at 8000 bytes, every record once, in order, each line
    // as Python formats it.
    let expected = |wid: usize| lines(&dir.path().join(format!("expected-{wid}.log")));
    let (a, a_backups) = all_lines(&root.join("a.log"));
    assert_eq!(a, expected(0));
    assert!(a_backups >= 2, "{a_backups}");
    for k in 1..=a_backups {
        let len = std::fs::metadata(root.join(format!("a.log.{k}")))
            .unwrap()
            .len();
        assert!(len <= 8000, "a.log.{k}: {len}");
    }
    // b.log: below directories it made, never rotated below the cap.
    let (b, b_backups) = all_lines(&root.join("sub/dir/b.log"));
    assert_eq!(b, expected(1));
    assert_eq!(b_backups, 0);
    assert!(b[0].contains("] w1: record 0 of worker 1"), "{}", b[0]);
    // c.log: two backups kept of many rotations: the newest records.
    let (c, c_backups) = all_lines(&c_path);
    assert_eq!(c_backups, 2);
    let want = expected(2);
    assert!(
        want.len() > c.len() && want.ends_with(&c),
        "{} {}",
        want.len(),
        c.len()
    );
    assert_eq!(
        c.last().unwrap(),
        &format!(
            "ERROR|w2|record {} of worker 2 {}",
            N - 1,
            "x".repeat((N - 1) % 7)
        )
    );
    // The refused ones: in the default file, in its format, in order.
    let default = lines(&dir.path().join("default.log"));
    assert_eq!(default.len(), 3 * BAD);
    for k in 0..3 {
        let wid = 3 + k;
        let mine: Vec<_> = default
            .iter()
            .filter(|l| l.starts_with(&format!("w{wid}: ")))
            .cloned()
            .collect();
        let want: Vec<_> = expected(wid)
            .iter()
            .map(|l| format!("w{wid}: {l}"))
            .collect();
        assert_eq!(mine, want);
    }
    assert!(!dir.path().join("escape.log").exists());
    assert!(!outside.exists());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "not yours\n");
    assert!(std::fs::symlink_metadata(root.join("planted.log"))
        .unwrap()
        .file_type()
        .is_symlink());
    // The socket file is gone with the collector.
    assert!(!sock.exists());
}

#[test]
fn without_client_files_the_request_keys_are_ordinary_fields() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            "python-unix:py.sock",
            "--file",
            "all.log",
            "--format",
            "%(name)s %(logbraid_file)s: %(message)s",
        ],
    );
    let w = Worker {
        file: "mine.log",
        fmt: "%(message)s",
        datefmt: "",
        style: "%",
        max_bytes: 0,
        backups: 0,
    };
    let sock = dir.path().join("py.sock");
    assert!(spawn(dir.path(), &sock, 0, 10, &w)
        .wait()
        .unwrap()
        .success());
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert!(!err.contains("client file"), "{err}");
    let got = lines(&dir.path().join("all.log"));
    let want: Vec<_> = lines(&dir.path().join("expected-0.log"))
        .iter()
        .map(|l| format!("w0 mine.log: {l}"))
        .collect();
    assert_eq!(got, want);
    assert!(!dir.path().join("mine.log").exists());
}

#[test]
fn a_python_unix_socket_left_by_a_dead_collector_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--listen", "python-unix:py.sock", "--file", "all.log"];
    Serve::start(dir.path(), &args).kill();
    assert!(dir.path().join("py.sock").exists());
    let serve = Serve::start(dir.path(), &args);
    // A live one is not.
    let (code, err) = harness::serve_once(dir.path(), &args);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is in use by a running collector"), "{err}");
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
}

#[test]
fn client_file_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = harness::serve_once(
        dir.path(),
        &[
            "--listen",
            "python-unix:p.sock",
            "--client-files-max-open",
            "3",
        ],
    );
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        "logbraid serve: client_files_max_open: needs client_files"
    );
    std::fs::write(
        dir.path().join("c.toml"),
        "client_files = \"a\"\nclient_files_base = \"b\"\n",
    )
    .unwrap();
    let (code, err) = harness::serve_once(dir.path(), &["--config", "c.toml"]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("logbraid serve: "), "{err}");
    assert!(err.contains("client_files_base: "), "{err}");
    assert!(err.contains("/b is not inside client_files ("), "{err}");
}

#[test]
fn a_client_cannot_write_into_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--listen",
        "python-unix:py.sock",
        "--file",
        "root/default.log",
        "--client-files",
        "root",
    ];
    let serve = Serve::start(dir.path(), &args);
    let state = dir.path().join("root/.default.log.state");
    let before = std::fs::read(&state).unwrap();
    let sock = dir.path().join("py.sock");
    for (wid, file) in [".default.log.state", ".default.log.state.journal"]
        .into_iter()
        .enumerate()
    {
        let w = Worker {
            file,
            fmt: "%(message)s",
            datefmt: "",
            style: "%",
            max_bytes: 0,
            backups: 0,
        };
        assert!(spawn(dir.path(), &sock, wid, 3, &w)
            .wait()
            .unwrap()
            .success());
    }
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("6 records written, 0 inputs rejected, 6 client file requests refused"),
        "{err}"
    );
    assert!(
        err.contains("is a file of the collector's checkpoint"),
        "{err}"
    );
    assert_eq!(lines(&dir.path().join("root/default.log")).len(), 6);
    for f in [
        state.clone(),
        dir.path().join("root/.default.log.state.journal"),
    ] {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap_or_default()).into_owned();
        assert!(!text.contains("record"), "{}: {text}", f.display());
    }
    assert!(!before.is_empty());
    // The collector starts again on its checkpoint.
    let (status, err) = Serve::start(dir.path(), &args).stop();
    assert!(status.success(), "{err}");
}
