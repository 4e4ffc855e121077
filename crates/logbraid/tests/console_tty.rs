//! The console decides by the real terminal: a child process of this test
//! logs through `Builder::console` with its standard error on a
//! pseudo-terminal 100 columns wide (raw, so the bytes arrive as written),
//! and gets the aligned columns; the same child with `NO_COLOR` set, or
//! with a pipe, gets the plain text layout.

use std::io::Read;
use std::process::{Command, Stdio};

use logbraid::sink::Console;
use logbraid::Builder;
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{tcgetattr, tcsetattr, tcsetwinsize, OptionalActions, Winsize};

const CHILD: &str = "LOGBRAID_TEST_CONSOLE_CHILD";

/// What the child logs: a warning and a message of two lines.
#[test]
#[ignore = "run in a child by the tests below"]
fn child_logs_to_the_console() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let guard = Builder::new()
        .level("info")
        .console(Console::stderr())
        .signals(false)
        .init()
        .unwrap();
    log::warn!("disk {}% full", 91);
    log::info!("two\nlines");
    drop(guard);
}

fn child(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--ignored", "--exact", "child_logs_to_the_console"])
        .env(CHILD, "1")
        .env_remove("NO_COLOR")
        .env_remove("FORCE_COLOR")
        .env_remove("COLUMNS")
        .env_remove("LOGBRAID_COLLECTOR")
        .env_remove("LOGBRAID_LEVEL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

/// The child's standard error, written to a pseudo-terminal 100 wide.
fn on_terminal(env: &[(&str, &str)]) -> String {
    let main = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&main).unwrap();
    unlockpt(&main).unwrap();
    let name = ptsname(&main, Vec::new()).unwrap();
    let side = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    let mut mode = tcgetattr(&side).unwrap();
    mode.make_raw();
    tcsetattr(&side, OptionalActions::Now, &mode).unwrap();
    tcsetwinsize(
        &side,
        Winsize {
            ws_row: 40,
            ws_col: 100,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .unwrap();
    let mut process = child(env).stderr(side).spawn().unwrap();
    // Reads until every writer of the terminal is gone (EIO on Linux).
    let mut got = Vec::new();
    let mut main = std::fs::File::from(main);
    let mut buf = [0u8; 4096];
    loop {
        match main.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert!(process.wait().unwrap().success());
    String::from_utf8(got).unwrap()
}

fn piped() -> String {
    let out = child(&[]).stderr(Stdio::piped()).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stderr).unwrap()
}

/// `s` without the layout's colour escapes.
fn strip(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn a_terminal_gets_aligned_columns() {
    let out = on_terminal(&[]);
    let lines: Vec<&str> = out.split('\n').collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    let file = "crates/logbraid/tests/console_tty.rs";
    let warn = lines[0];
    assert!(warn.starts_with("\x1b[2m"), "{out:?}");
    assert_eq!(&warn[4 + 12..4 + 12 + 5], "\x1b[0m ", "{out:?}");
    let rest = &warn[4 + 12 + 5..];
    assert!(
        rest.starts_with("\x1b[33mWARN\x1b[0m     \x1b[2mconsole_tty\x1b[0m disk 91% full "),
        "{out:?}"
    );
    assert!(
        warn.ends_with(&format!("\x1b[2m{file}:30\x1b[0m")),
        "{out:?}"
    );
    // Right-aligned to the terminal's 100 columns.
    assert_eq!(strip(warn).chars().count(), 100, "{out:?}");
    assert!(lines[1].contains("\x1b[32mINFO\x1b[0m     \x1b[2mconsole_tty\x1b[0m two "));
    assert_eq!(strip(lines[1]).chars().count(), 100, "{out:?}");
    // The second line of the message starts under the first.
    assert_eq!(
        lines[2],
        format!("{}lines", " ".repeat(12 + 1 + 8 + 1 + 11 + 1))
    );
    assert_eq!(lines[3], "");
}

/// The plain lines with their timestamps and `[pid/thread]` made alike.
fn plain(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| match (l.find(' '), l.find('['), l.find(']')) {
            (Some(ts), Some(open), Some(close)) if !l.starts_with(' ') && ts < open => {
                format!("<ts>{}[..]{}", &l[ts..open], &l[close + 1..])
            }
            _ => l.to_string(),
        })
        .collect()
}

#[test]
fn no_color_and_a_pipe_get_the_plain_layout() {
    let pipe = piped();
    assert!(!pipe.contains('\x1b'), "{pipe:?}");
    assert_eq!(
        plain(&pipe),
        [
            "<ts> WARN  [..] console_tty: disk 91% full",
            "<ts> INFO  [..] console_tty: two",
            "  lines"
        ]
    );
    let terminal = on_terminal(&[("NO_COLOR", "1")]);
    assert_eq!(plain(&terminal), plain(&pipe), "{terminal:?}");
    // FORCE_COLOR beats NO_COLOR.
    let forced = on_terminal(&[("NO_COLOR", "1"), ("FORCE_COLOR", "1")]);
    assert!(forced.contains("\x1b[33mWARN\x1b[0m     "), "{forced:?}");
}
