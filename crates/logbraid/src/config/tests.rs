use super::units::SIZE_EXPECTED;
use super::*;
use crate::level::LevelFilter;

const MIB: u64 = 1024 * 1024;

fn parse(text: &str) -> Config {
    match Config::from_toml_str(text) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn err(text: &str) -> String {
    Config::from_toml_str(text).unwrap_err().to_string()
}

const FULL: &str = r#"
level = "info,my_crate::db=debug"
mode = "non_blocking"
queue_bytes = "4MiB"
overflow = "drop_oldest"
flush_sync = true
signals = false
children = false

[console]
enabled = true
stream = "stdout"
color = "always"
format = "%(asctime)s %(levelname)s %(message)s"
datefmt = "%H:%M:%S"

[file]
path = "logs/app.log"
format = "json"
datefmt = "%Y-%m-%d"
max_bytes = "100MiB"
rotate = "daily"
week_starts = "sunday"
backup_count = 10
max_age = "7d"
max_total_bytes = "1GiB"
naming = "timestamp"
compress = "zstd"
local_time = true
truncate = true
"#;

#[test]
fn a_full_file_parses_to_exact_values() {
    let c = parse(FULL);
    assert_eq!(
        c,
        Config {
            level: Directives::parse("info,my_crate::db=debug").unwrap(),
            mode: Mode::NonBlocking,
            queue_bytes: 4 * 1024 * 1024,
            overflow: Overflow::DropOldest,
            flush_sync: true,
            signals: false,
            children: Some(false),
            forward: None,
            token: None,
            tls: TlsOptions::default(),
            console: ConsoleConfig {
                enabled: true,
                stream: ConsoleStream::Stdout,
                color: ColorChoice::Always,
                format: "%(asctime)s %(levelname)s %(message)s".to_string(),
                datefmt: Some("%H:%M:%S".to_string()),
            },
            file: Some(FileConfig {
                path: PathBuf::from("logs/app.log"),
                format: "json".to_string(),
                datefmt: Some("%Y-%m-%d".to_string()),
                max_bytes: Some(100 * MIB),
                rotate: Some(Every::Daily),
                week_starts: Weekday::Sunday,
                backup_count: Some(10),
                max_age: Some(Duration::from_secs(7 * 86_400)),
                max_total_bytes: Some(1024 * MIB),
                naming: Naming::Timestamp,
                compress: Compression::Zstd,
                local_time: true,
                truncate: true,
            }),
        }
    );
}

#[test]
fn an_empty_file_is_the_default_config() {
    let c = parse("");
    assert_eq!(c, Config::default());
    assert_eq!(c.level.default_level(), LevelFilter::INFO);
    assert_eq!(c.mode, Mode::NonBlocking);
    assert_eq!(c.queue_bytes, 1024 * 1024);
    assert_eq!(c.overflow, Overflow::Block);
    assert!(!c.flush_sync);
    assert!(c.console.enabled);
    assert_eq!(c.console.stream, ConsoleStream::Stderr);
    assert_eq!(c.console.color, ColorChoice::Auto);
    assert_eq!(c.console.format, "text");
    assert_eq!(c.console.datefmt, None);
    assert_eq!(c.file, None);
}

#[test]
fn file_defaults_and_console_off_when_a_file_is_configured() {
    let c = parse("[file]\npath = \"app.log\"\n");
    assert_eq!(c.file, Some(FileConfig::new("app.log")));
    assert!(!c.console.enabled);
    let c = parse("[file]\npath = \"app.log\"\n[console]\ncolor = \"never\"\n");
    assert!(!c.console.enabled);
    assert_eq!(c.console.color, ColorChoice::Never);
    let c = parse("[file]\npath = \"app.log\"\n[console]\nenabled = true\n");
    assert!(c.console.enabled);
    let c = parse("[console]\nenabled = false\n");
    assert!(!c.console.enabled);
}

#[test]
fn zero_means_no_limit_and_integers_are_accepted() {
    let c = parse(
        "queue_bytes = 65536\nmode = \"SYNC\"\n[file]\npath = \"a\"\nmax_bytes = 0\n\
         backup_count = 0\nmax_age = 0\nmax_total_bytes = \"0MiB\"\n",
    );
    assert_eq!(c.queue_bytes, 65536);
    assert_eq!(c.mode, Mode::Sync);
    let f = c.file.unwrap();
    assert_eq!(f.max_bytes, None);
    assert_eq!(f.backup_count, None);
    assert_eq!(f.max_age, None);
    assert_eq!(f.max_total_bytes, None);
    let c = parse("[file]\npath = \"a\"\nmax_bytes = 1000\nmax_age = 3600\n");
    let f = c.file.unwrap();
    assert_eq!(f.max_bytes, Some(1000));
    assert_eq!(f.max_age, Some(Duration::from_secs(3600)));
}

#[test]
fn forward_names_a_collector_and_a_config_built_in_code_is_checked_too() {
    let c = parse("forward = \"tcp://127.0.0.1:9021\"");
    assert_eq!(c.forward, Some(Endpoint::tcp("127.0.0.1:9021")));
    let small = Config {
        queue_bytes: 100,
        ..Config::default()
    };
    assert_eq!(
        small.checked().unwrap_err().to_string(),
        "queue_bytes: 100 bytes is below the minimum of 4096"
    );
    let Err(e) = crate::Builder::from_config(&Config {
        file: Some(FileConfig::new("")),
        ..Config::default()
    }) else {
        panic!("an empty path was accepted")
    };
    assert_eq!(e.to_string(), "file.path: must not be empty");
}

#[test]
fn dotted_keys_are_the_same_as_sections() {
    let c = parse("file.path = \"a.log\"\nconsole.stream = \"stdout\"\n");
    assert_eq!(c.file.unwrap().path, PathBuf::from("a.log"));
    assert_eq!(c.console.stream, ConsoleStream::Stdout);
}

#[test]
fn bad_values_name_the_full_key_and_the_reason() {
    assert_eq!(
        err("[file]\npath = \"a\"\nmax_bytes = \"12 parsecs\"\n"),
        "file.max_bytes: \"12 parsecs\" is not a size: expected an integer number of bytes \
         or a number followed by B, KB, MB, GB, KiB, MiB, GiB"
    );
    assert_eq!(
        err("[file]\npath = \"a\"\nmax_age = \"7 fortnights\"\n"),
        "file.max_age: \"7 fortnights\" is not a duration: expected an integer number of \
         seconds or numbers followed by ms, s, m, h, d or w (such as 90s, 15m, 1h30m, 7d)"
    );
    assert_eq!(
        err("[file]\npath = \"a\"\nrotate = \"fortnightly\"\n"),
        "file.rotate: \"fortnightly\" is not one of: minutely, hourly, daily, weekly"
    );
    assert_eq!(
        err("overflow = \"sometimes\""),
        "overflow: \"sometimes\" is not one of: block, drop_newest, drop_oldest"
    );
    assert_eq!(
        err("mode = \"async\""),
        "mode: \"async\" is not one of: non_blocking, sync"
    );
    assert_eq!(
        err("[console]\nstream = \"stdin\""),
        "console.stream: \"stdin\" is not one of: stderr, stdout"
    );
    assert_eq!(
        err("[console]\ncolor = 1"),
        "console.color: expected a string, found integer `1`"
    );
    assert_eq!(
        err("flush_sync = \"yes\""),
        "flush_sync: expected a boolean, found string \"yes\""
    );
    assert_eq!(
        err("level = \"info,db=loud\""),
        "level: invalid directive \"db=loud\": unknown level \"loud\": expected one of \
         off, trace, debug, info, warn, warning, error, critical"
    );
    assert_eq!(
        err("queue_bytes = 0"),
        "queue_bytes: 0 bytes is below the minimum of 4096"
    );
    assert_eq!(
        err("forward = \"python-tcp://h:9020\""),
        "forward: invalid collector address \"python-tcp://h:9020\": a forwarding client \
         speaks the native protocol (unix:PATH, tcp://HOST:PORT or tls://HOST:PORT) or \
         OTLP/HTTP (otlp-http://HOST:PORT)"
    );
    assert_eq!(
        err("forward = \"tcp://h\""),
        "forward: invalid address \"tcp://h\": the URL needs a port: SCHEME://HOST:PORT"
    );
    assert_eq!(
        err("[file]\npath = \"a\"\nweek_starts = \"someday\""),
        "file.week_starts: \"someday\" is not one of: monday, tuesday, wednesday, thursday, \
         friday, saturday, sunday"
    );
    assert_eq!(
        err("queue_bytes = 1.5"),
        "queue_bytes: expected a size (an integer number of bytes or a string such as \
         \"4MiB\"), found floating point `1.5`"
    );
    assert_eq!(
        err("[file]\npath = \"a\"\nmax_total_bytes = -1"),
        "file.max_total_bytes: -1 is not a size: a size cannot be negative"
    );
    assert_eq!(
        err("[file]\npath = \"a\"\nmax_age = -5"),
        "file.max_age: -5 is not a duration: a duration cannot be negative"
    );
    assert_eq!(
        err("[file]\npath = \"a\"\nmax_age = [1]"),
        "file.max_age: expected a duration (an integer number of seconds or a string such \
         as \"7d\"), found an array"
    );
    assert_eq!(
        err("[file]\npath = \"a\"\nbackup_count = \"10\""),
        "file.backup_count: expected an integer, found string \"10\""
    );
    assert_eq!(
        err("[file]\npath = \"a\"\nbackup_count = 5000000000"),
        "file.backup_count: 5000000000 is out of range: expected 0 to 4294967295"
    );
    assert_eq!(
        err("[file]\npath = \"a\"\ncompress = \"lz4\""),
        "file.compress: \"lz4\" is not one of: none, gzip, zstd"
    );
    assert_eq!(
        err("[file]\npath = \"a\"\nnaming = true"),
        "file.naming: expected a string, found boolean `true`"
    );
    assert_eq!(
        err("[console]\nformat = \" \""),
        "console.format: must not be empty: use \"text\", \"json\" or a %-style format string"
    );
    assert_eq!(
        err("console = \"stderr\""),
        "console: expected a table, found string \"stderr\""
    );
    assert_eq!(
        err("[[file]]\npath = \"a\""),
        "file: expected a table, found an array"
    );
    // serde would fill a struct from an array, field by field: not here.
    assert_eq!(
        err("file = [\"a.log\"]"),
        "file: expected a table, found an array"
    );
    assert_eq!(
        err("[console]\ndatefmt = 1979-05-27"),
        "console.datefmt: expected a string, found map"
    );
}

#[test]
fn the_file_section_needs_a_path() {
    assert_eq!(
        err("[file]\nmax_bytes = 10\n"),
        "file.path: missing: the [file] section needs the path of the log file"
    );
    assert_eq!(err("[file]\npath = \"\"\n"), "file.path: must not be empty");
    let e = Config::from_toml_str("[file]\n").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("file.path"));
}

#[test]
fn unknown_keys_are_errors_with_a_suggestion() {
    assert_eq!(
        err("[file]\npath = \"a\"\nmax_byte = 1\n"),
        "unknown key \"file.max_byte\"; did you mean \"file.max_bytes\"?"
    );
    let e = Config::from_toml_str("[file]\npath = \"a\"\nmax_byte = 1\n").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("file.max_byte"));
    assert_eq!(e.reason, "unknown key; did you mean \"file.max_bytes\"?");
    assert_eq!(
        err("levle = \"debug\""),
        "unknown key \"levle\"; did you mean \"level\"?"
    );
    assert_eq!(
        err("[consol]\nenabled = true"),
        "unknown key \"consol\"; did you mean \"console\"?"
    );
    assert_eq!(
        err("[console]\ncolour = \"never\""),
        "unknown key \"console.colour\"; did you mean \"console.color\"?"
    );
    assert_eq!(
        err("[file]\npath = \"a\"\nMax_Bytes = 1\n"),
        "unknown key \"file.Max_Bytes\"; did you mean \"file.max_bytes\"?"
    );
    assert_eq!(
        err("[file]\npath = \"a\"\nmaxbytes = 1\n"),
        "unknown key \"file.maxbytes\"; did you mean \"file.max_bytes\"?"
    );
    assert_eq!(err("verbosity = 3"), "unknown key \"verbosity\"");
    assert_eq!(
        err("color = \"never\""),
        "unknown key \"color\"; did you mean \"console.color\"?"
    );
    assert_eq!(
        err("[console]\npath = \"x\""),
        "unknown key \"console.path\"; did you mean \"file.path\"?"
    );
}

#[test]
fn syntax_errors_give_line_and_column() {
    let e = Config::from_toml_str("level = \"info\"\nmode = sync\n").unwrap_err();
    assert_eq!(e.line_column(), Some((2, 8)));
    assert_eq!(e.key, None);
    assert!(
        e.to_string()
            .starts_with("TOML syntax error at line 2, column 8: "),
        "{e}"
    );
    let e = Config::from_toml_str("a = 1\na = 2\n").unwrap_err();
    assert_eq!(e.line_column().map(|(line, _)| line), Some(2));
}

#[test]
fn from_file_reads_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "level = \"debug\"\n").unwrap();
    let c = Config::from_file(&good).unwrap();
    assert_eq!(c.level.default_level(), LevelFilter::DEBUG);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "queue_bytes = \"lots\"\n").unwrap();
    let e = Config::from_file(&bad).unwrap_err();
    assert_eq!(e.file(), Some(bad.as_path()));
    assert_eq!(e.key.as_deref(), Some("queue_bytes"));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: queue_bytes: \"lots\" is not a size: {SIZE_EXPECTED}",
            bad.display()
        )
    );

    let missing = dir.path().join("missing.toml");
    let e = Config::from_file(&missing).unwrap_err();
    assert_eq!(e.key, None);
    assert!(std::error::Error::source(&e).is_some());
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read the file: ", missing.display())),
        "{e}"
    );
}

#[test]
fn environment_overrides_the_level() {
    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }
    let mut c = parse("level = \"warn\"");
    c.merge_env_values(None, None).unwrap();
    assert_eq!(c.level, Directives::parse("warn").unwrap());
    c.merge_env_values(None, os("a=trace")).unwrap();
    assert_eq!(c.level, Directives::parse("a=trace").unwrap());
    c.merge_env_values(os("error"), os("debug")).unwrap();
    assert_eq!(c.level, Directives::parse("error").unwrap());
    let e = c.merge_env_values(os("x=y=z"), None).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("LOGBRAID_LEVEL"));
    assert_eq!(
        e.to_string(),
        "LOGBRAID_LEVEL: invalid directive \"x=y=z\": more than one \"=\""
    );
    assert_eq!(
        c.level,
        Directives::parse("error").unwrap(),
        "unchanged on error"
    );
}

#[test]
fn config_error_new_is_for_further_validation() {
    let e = ConfigError::new(Some("console.format".to_string()), "bad %(x)q");
    assert_eq!(e.to_string(), "console.format: bad %(x)q");
    assert_eq!(ConfigError::new(None, "whole").to_string(), "whole");
}

#[test]
fn mode_words() {
    assert_eq!("non-blocking".parse::<Mode>(), Ok(Mode::NonBlocking));
    assert_eq!(Mode::Sync.to_string(), "sync");
    assert_eq!(Mode::default(), Mode::NonBlocking);
}

#[test]
fn odd_input_never_panics() {
    for text in [
        "\u{0}",
        "[file]\npath = \"\u{0}\"",
        "level = \"é🦀=debug\"",
        "[file]\npath = \"a\"\nmax_bytes = \"é\"",
        "[file]\npath = \"a\"\nmax_age = \"1é\"",
        "= 1",
        "\"\" = 1",
        "[console.extra]\nx = 1",
    ] {
        let _ = Config::from_toml_str(text);
    }
}

#[test]
#[cfg(feature = "tls")]
fn forward_keys_go_together() {
    let c = parse(
        "forward = \"tls://logs.internal:6514\"\ntoken = \"t\"\ntls_ca = \"ca.pem\"\n\
         tls_cert = \"c.pem\"\ntls_key = \"c.key\"\ntls_server_name = \"logs\"\n",
    );
    assert_eq!(c.token.as_deref(), Some("t"));
    assert_eq!(
        c.tls,
        TlsOptions {
            ca: Some("ca.pem".into()),
            cert: Some("c.pem".into()),
            key: Some("c.key".into()),
            server_name: Some("logs".into()),
        }
    );
    let err = |text: &str| Config::from_toml_str(text).unwrap_err().to_string();
    assert_eq!(
        err("forward = \"tcp://h:1\"\ntls_ca = \"ca.pem\"\n"),
        "tls_ca: is for a tls:// collector, and tcp://h:1 is not one"
    );
    assert_eq!(
        err("forward = \"tls://h:1\"\ntls_cert = \"c.pem\"\n"),
        "tls_key: missing: tls_cert needs its key"
    );
    assert_eq!(
        err("tls_key = \"c.key\"\n"),
        "tls_key: is for a tls:// collector: set forward too"
    );
    assert_eq!(
        err("token = \"t\"\n"),
        "token: is for a collector: set forward too"
    );
    assert_eq!(
        err("forward = \"syslog-tls://h:1\"\n")
            .split(": a forwarding")
            .next(),
        Some("forward: invalid collector address \"syslog-tls://h:1\"")
    );
}

/// Builds a logger from `file` with the console off, logs `message`, and
/// stops it.
fn log_once(file: FileConfig, message: &str) {
    let config = Config {
        level: Directives::parse("info").unwrap(),
        mode: Mode::Sync,
        children: Some(false),
        signals: false,
        console: ConsoleConfig {
            enabled: false,
            ..ConsoleConfig::default()
        },
        file: Some(FileConfig {
            format: "%(message)s".to_string(),
            ..file
        }),
        ..Config::default()
    };
    let (logger, guard) = crate::Builder::from_config(&config)
        .unwrap()
        .inherit_collector(false)
        .build()
        .unwrap();
    let site = crate::Callsite::new(crate::Level::Info, "test");
    logger.log_str(&site, message, &mut |_| {});
    drop(guard);
}

#[test]
fn truncate_empties_the_active_file_and_keeps_the_backups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    std::fs::write(&path, "old run\n").unwrap();
    std::fs::write(dir.path().join("app.log.1"), "older run\n").unwrap();
    log_once(FileConfig::new(&path), "appended");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "old run\nappended\n"
    );
    let file = FileConfig {
        truncate: true,
        ..FileConfig::new(&path)
    };
    log_once(file.clone(), "fresh");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "fresh\n");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("app.log.1")).unwrap(),
        "older run\n"
    );
    // A file that does not exist yet is simply created.
    std::fs::remove_file(&path).unwrap();
    log_once(file, "new");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
}
