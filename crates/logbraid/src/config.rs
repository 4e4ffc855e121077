//! The TOML configuration file, read into plain validated data.
//!
//! This module only reads and checks the file; turning a [`Config`] into a
//! running logger happens elsewhere. Every key is optional except
//! `file.path` when a `[file]` section is present:
//!
//! ```toml
//! level = "info,my_crate::db=debug"   # directives, see logbraid::filter; default "info"
//! mode = "non_blocking"               # or "sync"; default non_blocking
//! queue_bytes = "4MiB"                # integer bytes or a size string; default 1 MiB, per logging thread
//! overflow = "block"                  # block | drop_newest | drop_oldest; default block
//! flush_sync = false                  # fsync on flush(); default false
//!
//! [console]
//! enabled = true                      # default: true without a [file] section, else false
//! stream = "stderr"                   # stderr | stdout; default stderr
//! color = "auto"                      # auto | always | never; default auto
//! format = "text"                     # text | json | a Python %-style format string
//! datefmt = "%H:%M:%S"                # optional
//!
//! [file]
//! path = "logs/app.log"               # required in this section
//! format = "text"                     # as for the console; default "text"
//! datefmt = "%Y-%m-%d %H:%M:%S"       # optional
//! max_bytes = "100MiB"                # size trigger; 0 or absent: none
//! rotate = "daily"                    # minutely | hourly | daily | weekly; absent: none
//! backup_count = 10                   # rotated files kept; 0 or absent: no limit
//! max_age = "7d"                      # delete older backups; 0 or absent: no limit
//! max_total_bytes = "1GiB"            # cap on all backups; 0 or absent: no limit
//! naming = "python"                   # python | timestamp; default python
//! compress = "zstd"                   # none | gzip | zstd; default none
//! local_time = false                  # rotate and name by local time; default UTC
//! ```
//!
//! Values:
//!
//! - **Sizes** are an integer number of bytes or a string such as `"4MiB"`;
//!   see [`parse_size`] for the units (`KB` is 1000 bytes, `KiB` 1024).
//! - **Durations** are an integer number of seconds or a string such as
//!   `"7d"` or `"1h30m"`; see [`parse_duration`].
//! - Words (`mode`, `overflow`, `stream`, …) are case-insensitive.
//! - A relative `file.path` is kept as written: it is resolved against the
//!   working directory of the process, not the configuration file's folder.
//!
//! Reading is strict: a key that is not listed above is an error (with a
//! suggestion when a known key is close), and so is a value of the wrong
//! type. Every error names the full key, `file.max_bytes` say, and what is
//! wrong with its value:
//!
//! ```
//! use logbraid::config::Config;
//!
//! let err = Config::from_toml_str("[file]\npath = \"a.log\"\nmax_bytes = \"12 parsecs\"\n")
//!     .unwrap_err();
//! assert_eq!(err.key.as_deref(), Some("file.max_bytes"));
//! assert_eq!(
//!     err.to_string(),
//!     "file.max_bytes: \"12 parsecs\" is not a size: expected an integer number of bytes \
//!      or a number followed by B, KB, MB, GB, KiB, MiB, GiB"
//! );
//!
//! let err = Config::from_toml_str("[file]\npath = \"a.log\"\nmax_byte = 10\n").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "unknown key \"file.max_byte\"; did you mean \"file.max_bytes\"?"
//! );
//! ```
//!
//! `LOGBRAID_LEVEL` (or, when it is unset, `RUST_LOG`) overrides `level`
//! when the caller asks for it with [`Config::merge_env`].

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::filter::{Directives, LEVEL_ENV, RUST_LOG_ENV};
use crate::options::{ColorChoice, Compression, Every, Naming, Overflow, ParseOptionError};
use crate::sink::ConsoleStream;

/// The default size of each logging thread's queue: 1 MiB.
pub const DEFAULT_QUEUE_BYTES: usize = 1024 * 1024;

pub use crate::options::Mode;

/// The whole configuration file. See the [module documentation](self) for
/// the file format and the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Which targets log at which level (`level`, default `info`).
    pub level: Directives,
    /// Background writer thread or not (`mode`, default non-blocking).
    pub mode: Mode,
    /// Bound on the bytes waiting in the non-blocking queue, so memory stays
    /// bounded when the sinks fall behind (`queue_bytes`, default 1 MiB per logging thread).
    pub queue_bytes: usize,
    /// What a caller does when the queue is full (`overflow`, default block).
    pub overflow: Overflow,
    /// Whether `flush()` also asks the operating system to put the data on
    /// disk (`flush_sync`, default false).
    pub flush_sync: bool,
    /// The `[console]` section.
    pub console: ConsoleConfig,
    /// The `[file]` section, `None` when the file has none.
    pub file: Option<FileConfig>,
}

impl Default for Config {
    /// Everything at its default: `info` to a colour-when-terminal console
    /// on standard error, no file, non-blocking with a 1 MiB queue per thread.
    fn default() -> Self {
        Config {
            level: Directives::default(),
            mode: Mode::default(),
            queue_bytes: DEFAULT_QUEUE_BYTES,
            overflow: Overflow::default(),
            flush_sync: false,
            console: ConsoleConfig::default(),
            file: None,
        }
    }
}

/// The `[console]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// Whether to log to the console at all. Default true; when the file
    /// has a `[file]` section and `console.enabled` is absent, false.
    pub enabled: bool,
    /// Standard error (default) or standard output.
    pub stream: ConsoleStream,
    /// Colour choice (default auto: on a terminal, unless `NO_COLOR`).
    pub color: ColorChoice,
    /// `text`, `json` or a Python %-style format string (default `text`);
    /// checked by the layout parser, not here.
    pub format: String,
    /// strftime-style date format for the layout, when given.
    pub datefmt: Option<String>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            stream: ConsoleStream::default(),
            color: ColorChoice::default(),
            format: DEFAULT_FORMAT.to_string(),
            datefmt: None,
        }
    }
}

/// The `[file]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileConfig {
    /// The active log file. Required in the file; the `Default` value is
    /// empty and must be replaced (or use [`FileConfig::new`]).
    pub path: PathBuf,
    /// As [`ConsoleConfig::format`] (default `text`).
    pub format: String,
    /// As [`ConsoleConfig::datefmt`].
    pub datefmt: Option<String>,
    /// Rotate before the file would grow past this many bytes; `None`
    /// (`0` or absent in the file) for no size trigger.
    pub max_bytes: Option<u64>,
    /// Rotate at the start of every period; `None` for no time trigger.
    pub rotate: Option<Every>,
    /// Keep at most this many rotated files; `None` (`0` or absent) keeps
    /// them all, subject to the other limits.
    pub backup_count: Option<u32>,
    /// Delete rotated files older than this; `None` (`0` or absent) for no
    /// age limit.
    pub max_age: Option<Duration>,
    /// Delete the oldest rotated files while all of them together take more
    /// than this; `None` (`0` or absent) for no limit.
    pub max_total_bytes: Option<u64>,
    /// How rotated files are named (default like Python's handlers).
    pub naming: Naming,
    /// Compression of rotated files (default none).
    pub compress: Compression,
    /// Whether periods and timestamped names follow local time rather than
    /// UTC (default false: UTC).
    pub local_time: bool,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            path: PathBuf::new(),
            format: DEFAULT_FORMAT.to_string(),
            datefmt: None,
            max_bytes: None,
            rotate: None,
            backup_count: None,
            max_age: None,
            max_total_bytes: None,
            naming: Naming::default(),
            compress: Compression::None,
            local_time: false,
        }
    }
}

impl FileConfig {
    /// Defaults, logging to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileConfig {
            path: path.into(),
            ..FileConfig::default()
        }
    }
}

const DEFAULT_FORMAT: &str = "text";

const TOP_KEYS: &[&str] = &[
    "level",
    "mode",
    "queue_bytes",
    "overflow",
    "flush_sync",
    "console",
    "file",
];
const CONSOLE_KEYS: &[&str] = &["enabled", "stream", "color", "format", "datefmt"];
const FILE_KEYS: &[&str] = &[
    "path",
    "format",
    "datefmt",
    "max_bytes",
    "rotate",
    "backup_count",
    "max_age",
    "max_total_bytes",
    "naming",
    "compress",
    "local_time",
];
const SECTIONS: &[(&str, &[&str])] = &[
    ("", TOP_KEYS),
    ("console", CONSOLE_KEYS),
    ("file", FILE_KEYS),
];

impl Config {
    /// Reads a configuration from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::syntax(text, &e))?;
        Config::from_table(&table)
    }

    /// Reads a configuration file. Errors carry the file's path.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            key: None,
            reason: format!("cannot read the file: {e}"),
            kind: Kind::Io,
            file: Some(path.to_path_buf()),
            source: Some(e),
        })?;
        Config::from_toml_str(&text).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            ..e
        })
    }

    fn from_table(top: &toml::Table) -> Result<Config, ConfigError> {
        let top = Section {
            name: "",
            table: top,
        };
        top.check_keys(TOP_KEYS)?;
        let mut config = Config::default();
        if let Some(v) = top.get("level") {
            let text = top.string("level", v)?;
            config.level = Directives::parse(text)
                .map_err(|e| ConfigError::new(Some("level".to_string()), e.describe()))?;
        }
        if let Some(v) = top.get("mode") {
            config.mode = top.word("mode", v)?;
        }
        if let Some(v) = top.get("queue_bytes") {
            let bytes = top.size("queue_bytes", v)?;
            if bytes == 0 {
                return Err(top.error("queue_bytes", "must be greater than zero".to_string()));
            }
            config.queue_bytes = usize::try_from(bytes).map_err(|_| {
                top.error(
                    "queue_bytes",
                    format!("{bytes} bytes does not fit in memory on this platform"),
                )
            })?;
        }
        if let Some(v) = top.get("overflow") {
            config.overflow = top.word("overflow", v)?;
        }
        if let Some(v) = top.get("flush_sync") {
            config.flush_sync = top.boolean("flush_sync", v)?;
        }
        if let Some(v) = top.get("file") {
            let section = top.section("file", v)?;
            config.file = Some(file_config(&section)?);
        }
        let console_section = match top.get("console") {
            Some(v) => Some(top.section("console", v)?),
            None => None,
        };
        config.console.enabled = config.file.is_none();
        if let Some(section) = console_section {
            console_config(&section, &mut config.console)?;
        }
        Ok(config)
    }

    /// Lets the environment override `level`: `LOGBRAID_LEVEL`, or
    /// `RUST_LOG` when that is unset or empty, replaces the configured
    /// directives entirely. Nothing changes when neither is set. An invalid
    /// value is an error whose key is the variable's name.
    pub fn merge_env(&mut self) -> Result<(), ConfigError> {
        let ours = std::env::var_os(LEVEL_ENV);
        let rust_log = std::env::var_os(RUST_LOG_ENV);
        self.merge_env_values(ours.as_deref(), rust_log.as_deref())
    }

    fn merge_env_values(
        &mut self,
        logbraid_level: Option<&OsStr>,
        rust_log: Option<&OsStr>,
    ) -> Result<(), ConfigError> {
        match Directives::from_env_values(logbraid_level, rust_log) {
            Ok(Some(level)) => self.level = level,
            Ok(None) => {}
            Err(e) => {
                return Err(ConfigError::new(
                    e.variable().map(str::to_string),
                    e.describe(),
                ))
            }
        }
        Ok(())
    }
}

fn console_config(s: &Section<'_>, out: &mut ConsoleConfig) -> Result<(), ConfigError> {
    s.check_keys(CONSOLE_KEYS)?;
    if let Some(v) = s.get("enabled") {
        out.enabled = s.boolean("enabled", v)?;
    }
    if let Some(v) = s.get("stream") {
        out.stream = s.word("stream", v)?;
    }
    if let Some(v) = s.get("color") {
        out.color = s.word("color", v)?;
    }
    if let Some(v) = s.get("format") {
        out.format = s.format("format", v)?;
    }
    if let Some(v) = s.get("datefmt") {
        out.datefmt = Some(s.string("datefmt", v)?.to_string());
    }
    Ok(())
}

fn file_config(s: &Section<'_>) -> Result<FileConfig, ConfigError> {
    s.check_keys(FILE_KEYS)?;
    let mut out = FileConfig::default();
    match s.get("path") {
        None => {
            return Err(s.error(
                "path",
                "missing: the [file] section needs the path of the log file".to_string(),
            ))
        }
        Some(v) => {
            let path = s.string("path", v)?;
            if path.is_empty() {
                return Err(s.error("path", "must not be empty".to_string()));
            }
            out.path = PathBuf::from(path);
        }
    }
    if let Some(v) = s.get("format") {
        out.format = s.format("format", v)?;
    }
    if let Some(v) = s.get("datefmt") {
        out.datefmt = Some(s.string("datefmt", v)?.to_string());
    }
    if let Some(v) = s.get("max_bytes") {
        out.max_bytes = Some(s.size("max_bytes", v)?).filter(|&n| n > 0);
    }
    if let Some(v) = s.get("rotate") {
        out.rotate = Some(s.word("rotate", v)?);
    }
    if let Some(v) = s.get("backup_count") {
        let n = s.integer("backup_count", v)?;
        let n = u32::try_from(n).map_err(|_| {
            s.error(
                "backup_count",
                format!("{n} is out of range: expected 0 to {}", u32::MAX),
            )
        })?;
        out.backup_count = Some(n).filter(|&n| n > 0);
    }
    if let Some(v) = s.get("max_age") {
        out.max_age = Some(s.duration("max_age", v)?).filter(|d| !d.is_zero());
    }
    if let Some(v) = s.get("max_total_bytes") {
        out.max_total_bytes = Some(s.size("max_total_bytes", v)?).filter(|&n| n > 0);
    }
    if let Some(v) = s.get("naming") {
        out.naming = s.word("naming", v)?;
    }
    if let Some(v) = s.get("compress") {
        out.compress = s.word("compress", v)?;
    }
    if let Some(v) = s.get("local_time") {
        out.local_time = s.boolean("local_time", v)?;
    }
    Ok(out)
}

/// One table of the file and its dotted name (`""` for the top level), so
/// every error can name the full key.
struct Section<'a> {
    name: &'static str,
    table: &'a toml::Table,
}

impl<'a> Section<'a> {
    fn path(&self, key: &str) -> String {
        full_key(self.name, key)
    }

    fn get(&self, key: &str) -> Option<&'a toml::Value> {
        self.table.get(key)
    }

    fn error(&self, key: &str, reason: String) -> ConfigError {
        ConfigError::new(Some(self.path(key)), reason)
    }

    fn expected(&self, key: &str, what: &str, found: &toml::Value) -> ConfigError {
        self.error(key, format!("expected {what}, found {}", describe(found)))
    }

    fn check_keys(&self, known: &[&str]) -> Result<(), ConfigError> {
        for key in self.table.keys() {
            if !known.contains(&key.as_str()) {
                let hint = suggest(self.name, key);
                return Err(ConfigError::unknown_key(self.path(key), hint));
            }
        }
        Ok(())
    }

    fn section(&self, key: &'static str, v: &'a toml::Value) -> Result<Section<'a>, ConfigError> {
        match v {
            toml::Value::Table(table) => Ok(Section { name: key, table }),
            other => Err(self.expected(key, &format!("a table ([{key}])"), other)),
        }
    }

    fn string(&self, key: &str, v: &'a toml::Value) -> Result<&'a str, ConfigError> {
        match v {
            toml::Value::String(s) => Ok(s),
            other => Err(self.expected(key, "a string", other)),
        }
    }

    fn boolean(&self, key: &str, v: &toml::Value) -> Result<bool, ConfigError> {
        match v {
            toml::Value::Boolean(b) => Ok(*b),
            other => Err(self.expected(key, "true or false", other)),
        }
    }

    fn integer(&self, key: &str, v: &toml::Value) -> Result<i64, ConfigError> {
        match v {
            toml::Value::Integer(n) => Ok(*n),
            other => Err(self.expected(key, "an integer", other)),
        }
    }

    fn word<T: FromStr<Err = ParseOptionError>>(
        &self,
        key: &str,
        v: &toml::Value,
    ) -> Result<T, ConfigError> {
        let text = self.string(key, v)?;
        text.parse()
            .map_err(|e: ParseOptionError| self.error(key, e.to_string()))
    }

    fn format(&self, key: &str, v: &toml::Value) -> Result<String, ConfigError> {
        let text = self.string(key, v)?;
        if text.trim().is_empty() {
            return Err(self.error(
                key,
                "must not be empty: use \"text\", \"json\" or a %-style format string".to_string(),
            ));
        }
        Ok(text.to_string())
    }

    fn size(&self, key: &str, v: &toml::Value) -> Result<u64, ConfigError> {
        match v {
            toml::Value::String(s) => parse_size(s).map_err(|e| self.error(key, e.to_string())),
            toml::Value::Integer(n) => u64::try_from(*n)
                .map_err(|_| self.error(key, format!("{n} is not a size: {NEGATIVE_SIZE}"))),
            other => Err(self.expected(
                key,
                "a size (an integer number of bytes or a string such as \"4MiB\")",
                other,
            )),
        }
    }

    fn duration(&self, key: &str, v: &toml::Value) -> Result<Duration, ConfigError> {
        match v {
            toml::Value::String(s) => parse_duration(s).map_err(|e| self.error(key, e.to_string())),
            toml::Value::Integer(n) => u64::try_from(*n).map(Duration::from_secs).map_err(|_| {
                self.error(key, format!("{n} is not a duration: {NEGATIVE_DURATION}"))
            }),
            other => Err(self.expected(
                key,
                "a duration (an integer number of seconds or a string such as \"7d\")",
                other,
            )),
        }
    }
}

fn full_key(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    }
}

/// How a value of the wrong type is shown in an error.
fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("string {s:?}"),
        toml::Value::Integer(n) => format!("integer {n}"),
        toml::Value::Float(x) => format!("float {x}"),
        toml::Value::Boolean(b) => format!("boolean {b}"),
        toml::Value::Datetime(d) => format!("datetime {d}"),
        toml::Value::Array(_) => "an array".to_string(),
        toml::Value::Table(_) => "a table".to_string(),
    }
}

/// The known key an unknown `key` in `section` most likely meant: a key of
/// the same section within edit distance 2 (the closest, then the first
/// listed), or else a key of that exact name in another section.
fn suggest(section: &str, key: &str) -> Option<String> {
    let lower = key.to_ascii_lowercase();
    let own = SECTIONS
        .iter()
        .find(|(name, _)| *name == section)
        .map_or(&[][..], |(_, keys)| *keys);
    let close = own
        .iter()
        .map(|k| (edit_distance(&lower, k), *k))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d);
    if let Some((_, k)) = close {
        return Some(full_key(section, k));
    }
    SECTIONS
        .iter()
        .filter(|(name, _)| *name != section)
        .find(|(_, keys)| keys.contains(&lower.as_str()))
        .map(|(name, _)| full_key(name, &lower))
}

/// Optimal string alignment distance: insertions, deletions, substitutions
/// and swaps of adjacent characters each count one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Rows i-2, i-1 and i of the dynamic-programming table.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[derive(Debug)]
enum Kind {
    Value,
    UnknownKey { hint: Option<String> },
    Syntax { line: usize, column: usize },
    Io,
}

/// An error in a configuration: which key, and what is wrong with it.
///
/// Displays as `file.max_bytes: "12 parsecs" is not a size: …`, as
/// `unknown key "file.max_byte"; did you mean "file.max_bytes"?`, or, for
/// TOML syntax, `TOML syntax error at line 3, column 9: …`; prefixed with
/// the file's path when it came from [`Config::from_file`].
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The full dotted key at fault (`file.max_bytes`), or the environment
    /// variable for [`Config::merge_env`]; `None` for errors of the whole
    /// file (syntax, reading).
    pub key: Option<String>,
    /// What is wrong, without the key.
    pub reason: String,
    kind: Kind,
    file: Option<PathBuf>,
    #[source]
    source: Option<io::Error>,
}

impl ConfigError {
    /// An error about the value of `key`, for code that validates a
    /// [`Config`] further (a format string that does not parse, say) and
    /// wants its errors to look like these.
    pub fn new(key: Option<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key,
            reason: reason.into(),
            kind: Kind::Value,
            file: None,
            source: None,
        }
    }

    fn unknown_key(key: String, hint: Option<String>) -> Self {
        let reason = match &hint {
            Some(h) => format!("unknown key; did you mean {h:?}?"),
            None => "unknown key".to_string(),
        };
        ConfigError {
            key: Some(key),
            reason,
            kind: Kind::UnknownKey { hint },
            file: None,
            source: None,
        }
    }

    fn syntax(text: &str, e: &toml::de::Error) -> Self {
        let (line, column) = e
            .span()
            .map_or((1, 1), |span| line_column(text, span.start));
        let message = e.message().trim().replace('\n', "; ");
        ConfigError {
            key: None,
            reason: format!("TOML syntax error at line {line}, column {column}: {message}"),
            kind: Kind::Syntax { line, column },
            file: None,
            source: None,
        }
    }

    /// For a TOML syntax error, where it is: line and column, from 1.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        match self.kind {
            Kind::Syntax { line, column } => Some((line, column)),
            _ => None,
        }
    }

    /// The configuration file, when the error came from
    /// [`Config::from_file`].
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if let Some(file) = &self.file {
            out.push_str(&format!("{}: ", file.display()));
        }
        match (&self.kind, &self.key) {
            (Kind::UnknownKey { hint }, Some(key)) => {
                out.push_str(&format!("unknown key {key:?}"));
                if let Some(h) = hint {
                    out.push_str(&format!("; did you mean {h:?}?"));
                }
            }
            (_, Some(key)) => out.push_str(&format!("{key}: {}", self.reason)),
            (_, None) => out.push_str(&self.reason),
        }
        out
    }
}

/// Line and column (both from 1, the column in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

const SIZE_EXPECTED: &str =
    "expected an integer number of bytes or a number followed by B, KB, MB, GB, KiB, MiB, GiB";
const NEGATIVE_SIZE: &str = "a size cannot be negative";
const DURATION_EXPECTED: &str = "expected an integer number of seconds or numbers followed by \
     ms, s, m, h, d or w (such as 90s, 15m, 1h30m, 7d)";
const NEGATIVE_DURATION: &str = "a duration cannot be negative";

/// Error from [`parse_size`]; the message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseSizeError(String);

/// Error from [`parse_duration`]; the message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseDurationError(String);

/// Parses a size in bytes: an integer (`"1048576"`), or a number and a
/// unit, with or without a space between (`"4MiB"`, `"1.5 GB"`).
///
/// | unit | bytes |
/// |---|---|
/// | `B` | 1 |
/// | `KB`, `MB`, `GB` | 1000, 1000², 1000³ |
/// | `KiB`, `MiB`, `GiB` | 1024, 1024², 1024³ |
///
/// Units are case-insensitive. A fractional number is accepted when the
/// result is a whole number of bytes (`"1.5KiB"` is 1536, `"1.5B"` is an
/// error).
///
/// ```
/// use logbraid::config::parse_size;
/// assert_eq!(parse_size("4MiB"), Ok(4 * 1024 * 1024));
/// assert_eq!(parse_size("1.5 GB"), Ok(1_500_000_000));
/// ```
pub fn parse_size(input: &str) -> Result<u64, ParseSizeError> {
    let fail = |why: &str| ParseSizeError(format!("{input:?} is not a size: {why}"));
    let s = input.trim();
    if s.starts_with('-') {
        return Err(fail(NEGATIVE_SIZE));
    }
    let (whole, frac, rest) = split_number(s).ok_or_else(|| fail(SIZE_EXPECTED))?;
    let unit: u128 = match rest.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(fail(SIZE_EXPECTED)),
    };
    let too_large = || {
        ParseSizeError(format!(
            "{input:?} is too large: the largest size is {} bytes",
            u64::MAX
        ))
    };
    let whole = digits_value(whole)
        .and_then(|w| w.checked_mul(unit))
        .ok_or_else(too_large)?;
    let frac = frac.trim_end_matches('0');
    let frac_bytes = if frac.is_empty() {
        0
    } else {
        // A unit is at most 2^30, so more than 30 significant decimals can
        // never make a whole number of bytes.
        let scale = if frac.len() <= 30 {
            10u128.pow(frac.len() as u32)
        } else {
            0
        };
        let numerator = digits_value(frac).and_then(|f| f.checked_mul(unit));
        match numerator {
            Some(n) if scale != 0 && n % scale == 0 => n / scale,
            _ => {
                return Err(ParseSizeError(format!(
                    "{input:?} is not a whole number of bytes"
                )))
            }
        }
    };
    let total = whole.checked_add(frac_bytes).ok_or_else(too_large)?;
    u64::try_from(total).map_err(|_| too_large())
}

/// Parses a duration: an integer number of seconds (`"3600"`), or one or
/// more integers each followed by a unit (`"90s"`, `"15m"`, `"1h30m"`,
/// `"2w"`), spaces allowed between the parts.
///
/// | unit | meaning |
/// |---|---|
/// | `ms` | milliseconds |
/// | `s` | seconds |
/// | `m` | minutes |
/// | `h` | hours |
/// | `d` | days of 24 hours |
/// | `w` | weeks of 7 days |
///
/// Units are lower case only, so `m` (minutes) cannot be misread as months.
///
/// ```
/// use logbraid::config::parse_duration;
/// use std::time::Duration;
/// assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, ParseDurationError> {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let fail = |why: &str| ParseDurationError(format!("{input:?} is not a duration: {why}"));
    let too_large = || ParseDurationError(format!("{input:?} is too large for a duration"));
    let s = input.trim();
    if s.starts_with('-') {
        return Err(fail(NEGATIVE_DURATION));
    }
    if s.is_empty() {
        return Err(fail(DURATION_EXPECTED));
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(fail(DURATION_EXPECTED));
        }
        let n = digits_value(&rest[..digits_end]).ok_or_else(too_large)?;
        let after = rest[digits_end..].trim_start();
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let nanos_per_unit: u128 = match &after[..unit_end] {
            // A bare number is seconds, but only as the whole input.
            "" if digits_end == rest.len() && rest.len() == s.len() => NANOS_PER_SEC,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3_600 * NANOS_PER_SEC,
            "d" => 86_400 * NANOS_PER_SEC,
            "w" => 604_800 * NANOS_PER_SEC,
            _ => return Err(fail(DURATION_EXPECTED)),
        };
        total = n
            .checked_mul(nanos_per_unit)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(too_large)?;
        rest = after[unit_end..].trim_start();
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| too_large())?;
    Ok(Duration::new(secs, (total % NANOS_PER_SEC) as u32))
}

/// Splits `"12.5 MiB"` into `("12", "5", " MiB")`. `None` unless it starts
/// with a digit; a `.` must have digits on both sides.
fn split_number(s: &str) -> Option<(&str, &str, &str)> {
    let whole_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if whole_end == 0 {
        return None;
    }
    let (whole, rest) = s.split_at(whole_end);
    match rest.strip_prefix('.') {
        None => Some((whole, "", rest)),
        Some(after) => {
            let frac_end = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            if frac_end == 0 {
                return None;
            }
            Some((whole, &after[..frac_end], &after[frac_end..]))
        }
    }
}

/// The value of a string of ASCII digits, `None` on overflow.
fn digits_value(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |acc, b| {
        acc.checked_mul(10)?.checked_add(u128::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
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
backup_count = 10
max_age = "7d"
max_total_bytes = "1GiB"
naming = "timestamp"
compress = "zstd"
local_time = true
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
                    backup_count: Some(10),
                    max_age: Some(Duration::from_secs(7 * 86_400)),
                    max_total_bytes: Some(1024 * MIB),
                    naming: Naming::Timestamp,
                    compress: Compression::Zstd,
                    local_time: true,
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
            "console.color: expected a string, found integer 1"
        );
        assert_eq!(
            err("flush_sync = \"yes\""),
            "flush_sync: expected true or false, found string \"yes\""
        );
        assert_eq!(
            err("level = \"info,db=loud\""),
            "level: invalid directive \"db=loud\": unknown level \"loud\": expected one of \
             off, trace, debug, info, warn, warning, error, critical"
        );
        assert_eq!(
            err("queue_bytes = 0"),
            "queue_bytes: must be greater than zero"
        );
        assert_eq!(
            err("queue_bytes = 1.5"),
            "queue_bytes: expected a size (an integer number of bytes or a string such as \
             \"4MiB\"), found float 1.5"
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
            "file.naming: expected a string, found boolean true"
        );
        assert_eq!(
            err("[console]\nformat = \" \""),
            "console.format: must not be empty: use \"text\", \"json\" or a %-style format string"
        );
        assert_eq!(
            err("console = \"stderr\""),
            "console: expected a table ([console]), found string \"stderr\""
        );
        assert_eq!(
            err("[[file]]\npath = \"a\""),
            "file: expected a table ([file]), found an array"
        );
        assert_eq!(
            err("[console]\ndatefmt = 1979-05-27"),
            "console.datefmt: expected a string, found datetime 1979-05-27"
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
    fn line_column_counts_characters() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é = x", 3), (1, 3));
        assert_eq!(line_column("é", 1), (1, 1));
        assert_eq!(line_column("x", 99), (1, 2));
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
    fn sizes_in_every_unit() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("7B"), Ok(7));
        assert_eq!(parse_size("2KB"), Ok(2_000));
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_size("4GB"), Ok(4_000_000_000));
        assert_eq!(parse_size("2KiB"), Ok(2_048));
        assert_eq!(parse_size("3MiB"), Ok(3 * MIB));
        assert_eq!(parse_size("4GiB"), Ok(4 * 1024 * MIB));
        assert_eq!(parse_size(" 100 mib "), Ok(100 * MIB));
        assert_eq!(parse_size("1kb"), Ok(1000));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("1.5 GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("0.5MiB"), Ok(MIB / 2));
        assert_eq!(parse_size("2.000B"), Ok(2));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn size_errors() {
        let e = |s: &str| parse_size(s).unwrap_err().to_string();
        let generic = |s: &str| format!("{s:?} is not a size: {SIZE_EXPECTED}");
        for s in [
            "",
            "  ",
            "12 parsecs",
            "MiB",
            "4M",
            "4 KiB B",
            "1e6",
            ".5MiB",
            "5.MiB",
            "1_000",
            "+5",
            "4MiB!",
            "٣KB",
        ] {
            assert_eq!(e(s), generic(s), "{s:?}");
        }
        assert_eq!(
            e("-5MB"),
            "\"-5MB\" is not a size: a size cannot be negative"
        );
        assert_eq!(e("1.5B"), "\"1.5B\" is not a whole number of bytes");
        assert_eq!(e("0.0001KB"), "\"0.0001KB\" is not a whole number of bytes");
        assert_eq!(
            e("1.0000000000000000000000000000000000000000001GiB"),
            "\"1.0000000000000000000000000000000000000000001GiB\" is not a whole number of bytes"
        );
        assert_eq!(
            e("18446744073709551616"),
            "\"18446744073709551616\" is too large: the largest size is 18446744073709551615 bytes"
        );
        assert_eq!(
            e("20000000000GB"),
            "\"20000000000GB\" is too large: the largest size is 18446744073709551615 bytes"
        );
        assert!(e(&"9".repeat(60)).contains("is too large"));
    }

    #[test]
    fn durations_in_every_unit() {
        let secs = Duration::from_secs;
        assert_eq!(parse_duration("0"), Ok(secs(0)));
        assert_eq!(parse_duration("3600"), Ok(secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(secs(30)));
        assert_eq!(parse_duration("15m"), Ok(secs(900)));
        assert_eq!(parse_duration("12h"), Ok(secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(secs(604_800)));
        assert_eq!(parse_duration("2w"), Ok(secs(1_209_600)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5_400)));
        assert_eq!(parse_duration(" 1d 12h "), Ok(secs(129_600)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1_500)));
        assert_eq!(parse_duration("5 m"), Ok(secs(300)));
        assert_eq!(parse_duration("18446744073709551615"), Ok(secs(u64::MAX)));
    }

    #[test]
    fn duration_errors() {
        let e = |s: &str| parse_duration(s).unwrap_err().to_string();
        let generic = |s: &str| format!("{s:?} is not a duration: {DURATION_EXPECTED}");
        for s in [
            "",
            " ",
            "7 fortnights",
            "d",
            "7D",
            "7M",
            "1.5h",
            "1h 30",
            "30 1h",
            "7days",
            "h7",
            "7d!",
            "+7d",
            "1_000s",
        ] {
            assert_eq!(e(s), generic(s), "{s:?}");
        }
        assert_eq!(
            e("-5s"),
            "\"-5s\" is not a duration: a duration cannot be negative"
        );
        assert_eq!(
            e("18446744073709551616"),
            "\"18446744073709551616\" is too large for a duration"
        );
        assert_eq!(
            e("99999999999999999w"),
            "\"99999999999999999w\" is too large for a duration"
        );
        assert!(e(&"9".repeat(60)).contains("is too large"));
    }

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("max_byte", "max_bytes"), 1);
        assert_eq!(edit_distance("max_bytse", "max_bytes"), 1);
        assert_eq!(edit_distance("colour", "color"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
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
    fn mode_words() {
        assert_eq!("non-blocking".parse::<Mode>(), Ok(Mode::NonBlocking));
        assert_eq!(Mode::Sync.to_string(), "sync");
        assert_eq!(Mode::default(), Mode::NonBlocking);
    }
}
