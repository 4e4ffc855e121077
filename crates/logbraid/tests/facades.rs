//! The `log` facade end to end, and the environment and exit paths that
//! need a process of their own (each child re-runs this test binary).

use std::path::Path;
use std::process::Command;

use logbraid::layout::LayoutSpec;
use logbraid::sink::RollingFile;
use logbraid::Builder;

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Runs the test named `name` of this binary in a child process with
/// `LOGBRAID_TEST_CHILD` set to `dir`, plus `env`.
fn run_child(name: &str, dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env("LOGBRAID_TEST_CHILD", dir)
        .env_remove("LOGBRAID_LEVEL")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn child_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("LOGBRAID_TEST_CHILD").map(Into::into)
}

fn json_file(dir: &Path) -> RollingFile {
    RollingFile::builder(dir.join("app.jsonl"))
        .layout(LayoutSpec::Json.build(false))
        .build()
        .unwrap()
}

/// Child: installs the `log` facade with directives from the environment
/// and logs one record per level and target.
#[test]
fn child_logs_through_the_facade() {
    let Some(dir) = child_dir() else { return };
    let _guard = Builder::new().sink(json_file(&dir)).init().unwrap();
    for target in ["app", "app::db", "other"] {
        log::trace!(target: target, "trace");
        log::debug!(target: target, "debug");
        log::info!(target: target, "info");
        log::warn!(target: target, "warn");
        log::error!(target: target, "error");
    }
    log::info!(target: "app", user = "ada", n = 3; "request {} served in {} ms", 7, 12);
}

fn seen(dir: &Path) -> Vec<String> {
    json_lines(&dir.join("app.jsonl"))
        .iter()
        .map(|v| {
            format!(
                "{}:{}",
                v["target"].as_str().unwrap(),
                v["msg"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn log_facade_records_carry_level_target_message_and_fields() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_child("child_logs_through_the_facade", dir.path(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&dir.path().join("app.jsonl"));
    // Default level is INFO: 3 levels × 3 targets, plus the structured one.
    assert_eq!(lines.len(), 10);
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "INFO");
    assert_eq!(last["target"], "app");
    assert_eq!(last["msg"], "request 7 served in 12 ms");
    assert_eq!(last["fields"]["user"], "ada");
    assert_eq!(last["fields"]["n"], 3);
    assert_eq!(last["module"], "facades");
    assert!(last["file"].as_str().unwrap().ends_with("facades.rs"));
    assert_eq!(last["pid"], serde_json::Value::from(out_pid(&lines)));
}

fn out_pid(lines: &[serde_json::Value]) -> u64 {
    lines[0]["pid"].as_u64().unwrap()
}

/// What `warn,app::db=trace` lets through of the children's records.
const WARN_AND_APP_DB_TRACE: [&str; 9] = [
    "app:warn",
    "app:error",
    "app::db:trace",
    "app::db:debug",
    "app::db:info",
    "app::db:warn",
    "app::db:error",
    "other:warn",
    "other:error",
];

#[test]
fn logbraid_level_directives_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_child(
        "child_logs_through_the_facade",
        dir.path(),
        &[
            ("LOGBRAID_LEVEL", "warn,app::db=trace"),
            ("RUST_LOG", "off"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = seen(dir.path());
    assert_eq!(got, WARN_AND_APP_DB_TRACE);
}

/// Child: the same records as `child_logs_through_the_facade`, through
/// logbraid's own macros.
#[test]
fn child_logs_through_the_macros() {
    let Some(dir) = child_dir() else { return };
    let _guard = Builder::new().sink(json_file(&dir)).init().unwrap();
    macro_rules! each_level {
        ($($target:literal),*) => {$(
            logbraid::trace!(target: $target, "trace");
            logbraid::debug!(target: $target, "debug");
            logbraid::info!(target: $target, "info");
            logbraid::warn!(target: $target, "warn");
            logbraid::error!(target: $target, "error");
        )*};
    }
    each_level!("app", "app::db", "other");
}

#[test]
fn the_macros_follow_the_level_directives_of_each_target() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_child(
        "child_logs_through_the_macros",
        dir.path(),
        &[("LOGBRAID_LEVEL", "warn,app::db=trace")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(seen(dir.path()), WARN_AND_APP_DB_TRACE);
    // Without target directives the level alone decides.
    let dir = tempfile::tempdir().unwrap();
    let out = run_child(
        "child_logs_through_the_macros",
        dir.path(),
        &[("LOGBRAID_LEVEL", "error")],
    );
    assert!(out.status.success());
    assert_eq!(
        seen(dir.path()),
        ["app:error", "app::db:error", "other:error"]
    );
}

#[test]
fn rust_log_is_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_child(
        "child_logs_through_the_facade",
        dir.path(),
        &[("RUST_LOG", "error,other=debug")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        seen(dir.path()),
        [
            "app:error",
            "app::db:error",
            "other:debug",
            "other:info",
            "other:warn",
            "other:error"
        ]
    );
}

#[test]
fn a_bad_environment_directive_is_an_error_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_child(
        "child_reports_build_errors",
        dir.path(),
        &[("LOGBRAID_LEVEL", "info,app=loud")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msg = std::fs::read_to_string(dir.path().join("error.txt")).unwrap();
    assert!(msg.contains("LOGBRAID_LEVEL"), "{msg}");
    assert!(msg.contains("loud"), "{msg}");
}

/// Child: writes the error `Builder::build` returns into `error.txt`.
#[test]
fn child_reports_build_errors() {
    let Some(dir) = child_dir() else { return };
    let err = Builder::new().build().unwrap_err();
    std::fs::write(dir.join("error.txt"), err.to_string()).unwrap();
}

/// Child: logs, then the main thread panics without flushing or dropping
/// the guard (it is leaked on purpose).
#[test]
fn child_panics_with_records_queued() {
    let Some(dir) = child_dir() else { return };
    let guard = Builder::new().sink(json_file(&dir)).init().unwrap();
    std::mem::forget(guard);
    // logbraid's own macros and the facade, alternately.
    for i in 0..10_000 {
        if i % 2 == 0 {
            logbraid::info!("record {i}");
        } else {
            log::info!("record {i}");
        }
    }
    panic!("the program gives up");
}

#[test]
fn a_panic_flushes_every_record_logged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_child("child_panics_with_records_queued", dir.path(), &[]);
    assert!(!out.status.success());
    let lines = json_lines(&dir.path().join("app.jsonl"));
    assert_eq!(lines.len(), 10_000);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["msg"], format!("record {i}"));
    }
}

/// Child: logs, then leaves with `std::process::exit` while the guard is
/// still alive (so its drop never runs).
#[test]
fn child_exits_with_records_queued() {
    let Some(dir) = child_dir() else { return };
    let _guard = Builder::new().sink(json_file(&dir)).init().unwrap();
    for i in 0..10_000 {
        if i % 2 == 0 {
            logbraid::info!("record {i}");
        } else {
            log::info!("record {i}");
        }
    }
    std::process::exit(3);
}

#[test]
fn process_exit_flushes_through_atexit() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_child("child_exits_with_records_queued", dir.path(), &[]);
    assert_eq!(out.status.code(), Some(3));
    let lines = json_lines(&dir.path().join("app.jsonl"));
    assert_eq!(lines.len(), 10_000);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["msg"], format!("record {i}"));
    }
}
