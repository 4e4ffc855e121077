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
//! signals = true                      # flush before SIGTERM/SIGINT/SIGHUP end the process; default true
//! children = true                     # collect child processes' records; default: when there is a [file]
//! forward = "tcp://collector:9021"    # send every record to a collector instead of the sinks below
//! token = "s3cret"                    # with forward: the collector's token; default $LOGBRAID_TOKEN
//! tls_ca = "ca.pem"                   # with forward = "tls://...": who vouches for the collector; default $LOGBRAID_TLS_CA
//! tls_cert = "client.pem"             # with tls://: this client's certificate, for mutual TLS; default $LOGBRAID_TLS_CERT
//! tls_key = "client.key"              # its private key; default $LOGBRAID_TLS_KEY
//! tls_server_name = "logs.internal"   # the name the collector's certificate must carry; default the URL's host
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
//! week_starts = "monday"              # the day weekly rotation happens at midnight; default monday
//! backup_count = 10                   # rotated files kept; 0 or absent: no limit
//! max_age = "7d"                      # delete older backups; 0 or absent: no limit
//! max_total_bytes = "1GiB"            # cap on all backups; 0 or absent: no limit
//! naming = "python"                   # python | timestamp; default python
//! compress = "zstd"                   # none | gzip | zstd; default none
//! local_time = false                  # rotate and name by local time; default UTC
//! truncate = false                    # empty the active file when the logger starts; default false (append)
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

pub mod de;
mod error;
#[cfg(test)]
mod tests;
mod units;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use de::{Bounded, FileMode, Seconds, Size};
pub use error::ConfigError;
pub use units::{parse_duration, parse_size, ParseDurationError, ParseSizeError};

use crate::endpoint::Endpoint;
use crate::filter::{Directives, LEVEL_ENV, RUST_LOG_ENV};
use crate::forward::{check_client, TlsOptions};
use crate::options::{ColorChoice, Compression, Every, Naming, Overflow, Weekday};
use crate::sink::ConsoleStream;

/// The default size of each logging thread's queue: 1 MiB.
pub const DEFAULT_QUEUE_BYTES: usize = 1024 * 1024;

/// The smallest queue a logging thread may be given: 4 KiB.
pub const MIN_QUEUE_BYTES: usize = 4096;

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
    /// Whether SIGTERM, SIGINT and SIGHUP flush before they end the
    /// process (`signals`, default true; see
    /// [`Builder::signals`](crate::Builder::signals)).
    pub signals: bool,
    /// Whether this process collects its child processes' records
    /// (`children`; default `None`: when there is a file; see
    /// [`Builder::children`](crate::Builder::children)).
    pub children: Option<bool>,
    /// Send every record to this collector instead of the console and the
    /// file (`forward`, a `unix:`, `tcp://` or `tls://` URL; default none).
    pub forward: Option<Endpoint>,
    /// With `forward`, the token the collector expects (`token`; default
    /// none, then `LOGBRAID_TOKEN`).
    pub token: Option<String>,
    /// With a `tls://` `forward`, how to verify the collector and what to
    /// show it (`tls_ca`, `tls_cert`, `tls_key`, `tls_server_name`;
    /// default none, then `LOGBRAID_TLS_*`).
    pub tls: TlsOptions,
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
            signals: true,
            children: None,
            forward: None,
            token: None,
            tls: TlsOptions::default(),
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
    /// The day a weekly rotation happens, at its midnight (default Monday).
    pub week_starts: Weekday,
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
    /// Whether the active file is emptied when the logger starts (Python's
    /// `filemode="w"`), rather than appended to (default false). Only the
    /// process that opens the file empties it: a child forwarding to its
    /// parent's collector leaves it alone. Rotated files are kept.
    pub truncate: bool,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            path: PathBuf::new(),
            format: DEFAULT_FORMAT.to_string(),
            datefmt: None,
            max_bytes: None,
            rotate: None,
            week_starts: Weekday::default(),
            backup_count: None,
            max_age: None,
            max_total_bytes: None,
            naming: Naming::default(),
            compress: Compression::None,
            local_time: false,
            truncate: false,
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

/// The file as written: every key optional, each of its type; what is
/// absent or zero becomes a default in [`ConfigFile::resolve`].
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default, deserialize_with = "level")]
    level: Option<Directives>,
    #[serde(default, deserialize_with = "de::parsed")]
    mode: Option<Mode>,
    queue_bytes: Option<Size>,
    #[serde(default, deserialize_with = "de::parsed")]
    overflow: Option<Overflow>,
    flush_sync: Option<bool>,
    signals: Option<bool>,
    children: Option<bool>,
    #[serde(default, deserialize_with = "de::parsed")]
    forward: Option<Endpoint>,
    token: Option<String>,
    #[serde(default, deserialize_with = "de::path")]
    tls_ca: Option<PathBuf>,
    #[serde(default, deserialize_with = "de::path")]
    tls_cert: Option<PathBuf>,
    #[serde(default, deserialize_with = "de::path")]
    tls_key: Option<PathBuf>,
    tls_server_name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_table")]
    console: Option<ConsoleFile>,
    #[serde(default, deserialize_with = "de::opt_table")]
    file: Option<FileFile>,
}

/// The `[console]` table as written.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct ConsoleFile {
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "de::parsed")]
    stream: Option<ConsoleStream>,
    #[serde(default, deserialize_with = "de::parsed")]
    color: Option<ColorChoice>,
    #[serde(default, deserialize_with = "format")]
    format: Option<String>,
    datefmt: Option<String>,
}

/// The `[file]` table as written.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileFile {
    #[serde(default, deserialize_with = "de::path")]
    path: Option<PathBuf>,
    #[serde(default, deserialize_with = "format")]
    format: Option<String>,
    datefmt: Option<String>,
    max_bytes: Option<Size>,
    #[serde(default, deserialize_with = "de::parsed")]
    rotate: Option<Every>,
    #[serde(default, deserialize_with = "de::parsed")]
    week_starts: Option<Weekday>,
    backup_count: Option<Bounded<0, { u32::MAX as u64 }>>,
    max_age: Option<Seconds>,
    max_total_bytes: Option<Size>,
    #[serde(default, deserialize_with = "de::parsed")]
    naming: Option<Naming>,
    #[serde(default, deserialize_with = "de::parsed")]
    compress: Option<Compression>,
    local_time: Option<bool>,
    truncate: Option<bool>,
}

/// `level`: directives, with their own description of what is wrong.
fn level<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Directives>, D::Error> {
    let text = String::deserialize(d)?;
    Directives::parse(&text)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(e.describe()))
}

/// A layout's `format`: checked by the layout parser later, only not empty
/// here.
fn format<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de::non_empty(d).map_err(|_: D::Error| {
        serde::de::Error::custom(
            "must not be empty: use \"text\", \"json\" or a %-style format string",
        )
    })
}

impl ConfigFile {
    /// The defaults for what is absent, and the rules that join keys.
    fn resolve(self) -> Result<Config, ConfigError> {
        let d = Config::default();
        let queue_bytes = match self.queue_bytes {
            None => d.queue_bytes,
            Some(Size(n)) => usize::try_from(n).map_err(|_| {
                key_error(
                    "queue_bytes",
                    format!("{n} bytes does not fit in memory on this platform"),
                )
            })?,
        };
        let file = self.file.map(FileFile::resolve).transpose()?;
        let c = self.console.unwrap_or_default();
        let console = ConsoleConfig {
            // The console is on by default only when there is no file.
            enabled: c.enabled.unwrap_or(file.is_none()),
            stream: c.stream.unwrap_or(d.console.stream),
            color: c.color.unwrap_or(d.console.color),
            format: c.format.unwrap_or(d.console.format),
            datefmt: c.datefmt,
        };
        Config {
            level: self.level.unwrap_or(d.level),
            mode: self.mode.unwrap_or(d.mode),
            queue_bytes,
            overflow: self.overflow.unwrap_or(d.overflow),
            flush_sync: self.flush_sync.unwrap_or(d.flush_sync),
            signals: self.signals.unwrap_or(d.signals),
            children: self.children,
            forward: self.forward,
            token: self.token,
            tls: TlsOptions {
                ca: self.tls_ca,
                cert: self.tls_cert,
                key: self.tls_key,
                server_name: self.tls_server_name,
            },
            console,
            file,
        }
        .checked()
    }
}

impl FileFile {
    fn resolve(self) -> Result<FileConfig, ConfigError> {
        let Some(path) = self.path else {
            return Err(key_error(
                "file.path",
                "missing: the [file] section needs the path of the log file",
            ));
        };
        let d = FileConfig::default();
        // Zero, for a limit, is no limit.
        let nonzero = |s: Option<Size>| s.map(|s| s.0).filter(|&n| n > 0);
        Ok(FileConfig {
            path,
            format: self.format.unwrap_or(d.format),
            datefmt: self.datefmt,
            max_bytes: nonzero(self.max_bytes),
            rotate: self.rotate,
            week_starts: self.week_starts.unwrap_or(d.week_starts),
            backup_count: self.backup_count.map(|n| n.0 as u32).filter(|&n| n > 0),
            max_age: self.max_age.map(|s| s.0).filter(|d| !d.is_zero()),
            max_total_bytes: nonzero(self.max_total_bytes),
            naming: self.naming.unwrap_or(d.naming),
            compress: self.compress.unwrap_or(d.compress),
            local_time: self.local_time.unwrap_or(d.local_time),
            truncate: self.truncate.unwrap_or(d.truncate),
        })
    }
}

fn key_error(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(Some(key.to_string()), reason)
}

impl Config {
    /// The rules between values that their types cannot check alone: a
    /// queue of at least [`MIN_QUEUE_BYTES`], a file path that is not
    /// empty, a `forward` endpoint a client can connect to. The file reader
    /// and [`Builder::from_config`](crate::Builder::from_config) both
    /// apply them, so a `Config` built in code is held to the same.
    pub fn checked(self) -> Result<Config, ConfigError> {
        if self.queue_bytes < MIN_QUEUE_BYTES {
            return Err(key_error(
                "queue_bytes",
                format!(
                    "{} bytes is below the minimum of {MIN_QUEUE_BYTES}",
                    self.queue_bytes
                ),
            ));
        }
        if let Some(f) = &self.file {
            if f.path.as_os_str().is_empty() {
                return Err(key_error("file.path", "must not be empty"));
            }
        }
        match &self.forward {
            Some(e) => {
                check_client(e).map_err(|e| key_error("forward", e.to_string()))?;
                self.tls.check(e).map_err(|(k, why)| key_error(k, why))?;
            }
            None if self.token.is_some() => {
                return Err(key_error("token", "is for a collector: set forward too"))
            }
            None => {
                if let Some(k) = self.tls.first_set() {
                    return Err(key_error(k, "is for a tls:// collector: set forward too"));
                }
            }
        }
        Ok(self)
    }

    /// Reads a configuration from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let tables = [
            ("", de::fields_of::<ConfigFile>()),
            ("console", de::fields_of::<ConsoleFile>()),
            ("file", de::fields_of::<FileFile>()),
        ];
        de::read::<ConfigFile>(text, &tables)?.resolve()
    }

    /// Reads a configuration file. Errors carry the file's path.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        Config::from_toml_str(&de::read_file(path)?).map_err(|e| e.in_file(path))
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
