//! Settings of `logbraid serve`, from flags and a TOML file.
//!
//! Every flag has a TOML key of the same name with `_` for `-`, at the top
//! level of the file (the file configures one collector, so there is no
//! section to name); a flag given on the command line wins over the file.
//! Values are checked here, and a bad one is an error naming the flag or
//! key it came from and the reason; so is a key this module does not know,
//! since a misspelt setting that is silently ignored is worse than none.
//!
//! | key | value | default |
//! |---|---|---|
//! | `listen` | URL or list of URLs | `unix:./logbraid.sock`, `python-tcp://127.0.0.1:9020` |
//! | `file` | path | `logs/logbraid.log` |
//! | `max_bytes` | size (`"100MiB"` or bytes) | 0: no size trigger |
//! | `backup_count` | integer | 0: keep all |
//! | `rotate` | `minutely`, `hourly`, `daily`, `weekly` | none |
//! | `compress` | `gzip`, `zstd` | none |
//! | `format` | `text`, `json`, or a Python `%`-style format | `text` |
//! | `merge_window` | milliseconds, 0 to 60000 | 0: arrival order |
//! | `route` | template with `{host}`, `{program}`, `{pid}`, `{logger}` | none |
//! | `token` | text native clients must present | none |
//! | `max_frame` | size, 1 MiB to 1 GiB | 1 MiB |
//! | `max_connections` | integer, 1 to 1000000 | 1024 |
//!
//! Fixed, not settings: idle timeout 60 s, `HELLO` timeout 10 s, 32 MiB of
//! records pending in the output stage, drain of 5 s at a stop, and the
//! checkpoint for exactly-once across restarts next to the log file, as
//! `.<file name>.state`.
//!
//! `max_frame` below 1 MiB is refused rather than raised: the native
//! protocol promises every client frames of 1 MiB, so a smaller limit
//! cannot be honoured, and raising it silently would hide the mistake.
//!
//! ```toml
//! listen = ["tcp://0.0.0.0:9021", "python-tcp://127.0.0.1:9020"]
//! file = "logs/all.log"
//! max_bytes = "100MiB"       # or a number of bytes
//! backup_count = 10
//! rotate = "daily"           # minutely | hourly | daily | weekly
//! compress = "zstd"          # gzip | zstd
//! format = "json"            # text | json | a Python %-style format
//! merge_window = 50          # milliseconds
//! route = "logs/{host}/{program}.log"
//! token = "s3cret"
//! max_frame = "1MiB"
//! max_connections = 1024
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use logbraid::config::parse_size;
use logbraid::layout::LayoutSpec;
use logbraid::{Compression, Every};

use crate::output::{FileSpec, OutputConfig};
use crate::server::{Endpoint, ServerConfig};

/// The listeners when none is given.
pub const DEFAULT_LISTEN: [&str; 2] = ["unix:./logbraid.sock", "python-tcp://127.0.0.1:9020"];

/// The file when none is given.
pub const DEFAULT_FILE: &str = "logs/logbraid.log";

/// A bad setting: which flag or key, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct SettingError {
    /// `--max-bytes` for a flag, `max_bytes` for a key of the file, or the
    /// file's path when it cannot be read or parsed.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// A size given as a number of bytes or as text (`"100MiB"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Size {
    /// Bytes.
    Bytes(u64),
    /// Text for [`parse_size`].
    Text(String),
}

/// Settings as given, before they are checked: the flags, or the file.
/// Each field is the flag or key of the same name.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct Raw {
    pub listen: Vec<String>,
    pub file: Option<PathBuf>,
    pub max_bytes: Option<Size>,
    pub backup_count: Option<u64>,
    pub rotate: Option<String>,
    pub compress: Option<String>,
    pub format: Option<String>,
    pub merge_window: Option<u64>,
    pub route: Option<String>,
    pub token: Option<String>,
    pub max_frame: Option<Size>,
    pub max_connections: Option<u64>,
}

/// Everything `logbraid serve` runs with.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where to listen.
    pub listen: Vec<Endpoint>,
    /// The output stage.
    pub output: OutputConfig,
    /// The listeners' limits.
    pub server: ServerConfig,
}

/// Reads a TOML file of settings. An unreadable file or a syntax error is
/// reported under the file's path (with the line); a bad or unknown key
/// under the key's name.
pub fn read_file(path: &Path) -> Result<Raw, SettingError> {
    let bad = |reason: String| SettingError {
        key: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    Raw::from_toml_str(&text).map_err(|e| match e {
        TomlError::Syntax(reason) => bad(reason),
        TomlError::Key(e) => e,
    })
}

/// Why a TOML text gave no [`Raw`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TomlError {
    /// The text is not TOML: what is wrong, and where.
    Syntax(String),
    /// A key is unknown or its value is of the wrong kind.
    Key(SettingError),
}

/// The keys of the file, in the order of `logbraid serve --help`.
pub const KEYS: [&str; 12] = [
    "listen",
    "file",
    "max_bytes",
    "backup_count",
    "rotate",
    "compress",
    "format",
    "merge_window",
    "route",
    "token",
    "max_frame",
    "max_connections",
];

impl Raw {
    /// Reads settings from TOML text: every key at the top level, each
    /// checked for its kind of value here (a string where a number belongs
    /// names the key), the values themselves by [`ServeConfig::resolve`].
    pub fn from_toml_str(text: &str) -> Result<Raw, TomlError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|r| text[..r.start.min(text.len())].matches('\n').count() + 1);
            let message = e.message().trim_end().to_string();
            TomlError::Syntax(match line {
                Some(l) => format!("line {l}: {message}"),
                None => message,
            })
        })?;
        let mut raw = Raw::default();
        for (key, value) in &table {
            let wrong = |expected: &str| {
                TomlError::Key(SettingError {
                    key: key.clone(),
                    reason: format!("expected {expected}, found {}", describe(value)),
                })
            };
            let text = || {
                value
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| wrong("a string"))
            };
            let count = || match value {
                toml::Value::Integer(n) => u64::try_from(*n).map_err(|_| {
                    TomlError::Key(SettingError {
                        key: key.clone(),
                        reason: format!("{n} is negative"),
                    })
                }),
                _ => Err(wrong("a whole number")),
            };
            let size = || match value {
                toml::Value::String(s) => Ok(Size::Text(s.clone())),
                toml::Value::Integer(_) => count().map(Size::Bytes),
                _ => Err(wrong("a size such as \"100MiB\" or a number of bytes")),
            };
            match key.as_str() {
                "listen" => {
                    raw.listen = match value {
                        toml::Value::String(s) => vec![s.clone()],
                        toml::Value::Array(items) => items
                            .iter()
                            .map(|v| v.as_str().map(str::to_string))
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| wrong("a list of URL strings"))?,
                        _ => return Err(wrong("a URL or a list of URLs")),
                    }
                }
                "file" => raw.file = Some(PathBuf::from(text()?)),
                "max_bytes" => raw.max_bytes = Some(size()?),
                "backup_count" => raw.backup_count = Some(count()?),
                "rotate" => raw.rotate = Some(text()?),
                "compress" => raw.compress = Some(text()?),
                "format" => raw.format = Some(text()?),
                "merge_window" => raw.merge_window = Some(count()?),
                "route" => raw.route = Some(text()?),
                "token" => raw.token = Some(text()?),
                "max_frame" => raw.max_frame = Some(size()?),
                "max_connections" => raw.max_connections = Some(count()?),
                _ => {
                    return Err(TomlError::Key(SettingError {
                        key: key.clone(),
                        reason: format!("unknown key; the keys are {}", KEYS.join(", ")),
                    }))
                }
            }
        }
        Ok(raw)
    }
}

/// A TOML value's kind and, for scalars, the value, for error messages.
fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("the string {s:?}"),
        toml::Value::Integer(n) => format!("the number {n}"),
        toml::Value::Float(f) => format!("the number {f}"),
        toml::Value::Boolean(b) => format!("{b}"),
        other => format!("a {}", other.type_str()),
    }
}

/// A value with the name it is reported under.
struct Pick<T> {
    value: Option<T>,
    key: String,
}

fn pick<T>(flag: Option<T>, file: Option<T>, name: &str) -> Pick<T> {
    match (flag, file) {
        (Some(v), _) => Pick {
            value: Some(v),
            key: format!("--{}", name.replace('_', "-")),
        },
        (None, v) => Pick {
            value: v,
            key: name.to_string(),
        },
    }
}

fn size(p: Pick<Size>) -> Result<Option<u64>, SettingError> {
    match p.value {
        None => Ok(None),
        Some(Size::Bytes(n)) => Ok(Some(n)),
        Some(Size::Text(t)) => parse_size(&t).map(Some).map_err(|e| SettingError {
            key: p.key,
            reason: e.to_string(),
        }),
    }
}

impl ServeConfig {
    /// Checks and combines the flags with the file's settings (flags win).
    pub fn resolve(flags: Raw, file: Raw) -> Result<ServeConfig, SettingError> {
        let err = |key: &str, reason: String| SettingError {
            key: key.to_string(),
            reason,
        };
        let listen = if !flags.listen.is_empty() {
            pick(Some(flags.listen), None, "listen")
        } else if !file.listen.is_empty() {
            pick(None, Some(file.listen), "listen")
        } else {
            pick(
                None,
                Some(DEFAULT_LISTEN.iter().map(|s| s.to_string()).collect()),
                "listen",
            )
        };
        let listen_key = listen.key.clone();
        let listen = listen
            .value
            .unwrap_or_default()
            .iter()
            .map(|u| Endpoint::parse(u).map_err(|e| err(&listen_key, e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;

        let path = pick(flags.file, file.file, "file")
            .value
            .unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
        let max_bytes = size(pick(flags.max_bytes, file.max_bytes, "max_bytes"))?.unwrap_or(0);
        let backup = pick(flags.backup_count, file.backup_count, "backup_count");
        let backup_count = match backup.value {
            Some(n) => {
                usize::try_from(n).map_err(|_| err(&backup.key, format!("{n} is too large")))?
            }
            None => 0,
        };
        let rotate = pick(flags.rotate, file.rotate, "rotate");
        let every = match &rotate.value {
            Some(r) => Some(
                r.parse::<Every>()
                    .map_err(|e| err(&rotate.key, e.to_string()))?,
            ),
            None => None,
        };
        let compress = pick(flags.compress, file.compress, "compress");
        let compression = match &compress.value {
            Some(c) => c
                .parse::<Compression>()
                .map_err(|e| err(&compress.key, e.to_string()))?,
            None => Compression::None,
        };
        let format = pick(flags.format, file.format, "format");
        let layout = LayoutSpec::parse(format.value.as_deref().unwrap_or("text"), None)
            .map_err(|e| err(&format.key, e.to_string()))?;
        let merge = pick(flags.merge_window, file.merge_window, "merge_window");
        let merge_window = match merge.value {
            Some(0) | None => None,
            Some(ms) if ms > 60_000 => {
                return Err(err(
                    &merge.key,
                    format!("{ms} ms is above the limit of 60000"),
                ))
            }
            Some(ms) => Some(Duration::from_millis(ms)),
        };
        let route = pick(flags.route, file.route, "route");
        if let Some(r) = &route.value {
            crate::output::check_route(r).map_err(|e| err(&route.key, e))?;
        }
        let token = pick(flags.token, file.token, "token").value;
        let mf = pick(flags.max_frame, file.max_frame, "max_frame");
        let mf_key = mf.key.clone();
        let max_frame = match size(mf)? {
            None => logbraid::wire::DEFAULT_MAX_FRAME,
            Some(n) if n < logbraid::wire::DEFAULT_MAX_FRAME as u64 => {
                return Err(err(
                    &mf_key,
                    format!("{n} is below 1048576 bytes, the smallest frame limit the native protocol allows"),
                ))
            }
            Some(n) if n > 1 << 30 => {
                return Err(err(&mf_key, format!("{n} is above the limit of 1 GiB")))
            }
            Some(n) => n as usize,
        };
        let mc = pick(
            flags.max_connections,
            file.max_connections,
            "max_connections",
        );
        let max_connections = match mc.value {
            Some(0) => return Err(err(&mc.key, "must be at least 1".to_string())),
            Some(n) if n > 1_000_000 => {
                return Err(err(&mc.key, format!("{n} is above the limit of 1000000")))
            }
            Some(n) => n as usize,
            None => 1024,
        };
        // Hidden, and not named like a backup of the log file.
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "logbraid.log".to_string());
        let state = path.with_file_name(format!(".{name}.state"));
        Ok(ServeConfig {
            listen,
            output: OutputConfig {
                file: FileSpec {
                    path,
                    layout,
                    max_bytes,
                    backup_count,
                    every,
                    compression,
                },
                route: route.value,
                merge_window,
                max_pending_bytes: 32 << 20,
                state_path: Some(state),
            },
            server: ServerConfig {
                token: token.map(|t| Arc::from(t.into_bytes())),
                max_frame,
                max_connections,
                ..ServerConfig::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_and_bad_values_name_their_key() {
        let file =
            Raw::from_toml_str("max_bytes = \"2MiB\"\nbackup_count = 3\nrotate = \"hourly\"")
                .unwrap();
        let flags = Raw {
            max_bytes: Some(Size::Text("1KiB".into())),
            ..Raw::default()
        };
        let c = ServeConfig::resolve(flags, file.clone()).unwrap();
        assert_eq!(c.output.file.max_bytes, 1024);
        assert_eq!(c.output.file.backup_count, 3);
        assert_eq!(c.listen.len(), 2);

        let bad = Raw {
            max_bytes: Some(Size::Text("12 parsecs".into())),
            ..Raw::default()
        };
        let e = ServeConfig::resolve(bad, Raw::default()).unwrap_err();
        assert_eq!(e.key, "--max-bytes");
        let bad_file = Raw::from_toml_str("rotate = \"fortnightly\"").unwrap();
        let e = ServeConfig::resolve(Raw::default(), bad_file).unwrap_err();
        assert_eq!(e.key, "rotate");
        let e = ServeConfig::resolve(
            Raw {
                max_frame: Some(Size::Bytes(10)),
                ..Raw::default()
            },
            Raw::default(),
        )
        .unwrap_err();
        assert_eq!(e.key, "--max-frame");
    }

    #[test]
    fn toml_values_of_the_wrong_kind_and_unknown_keys_name_the_key() {
        let key = |text: &str| match Raw::from_toml_str(text) {
            Err(TomlError::Key(e)) => (e.key, e.reason),
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(
            key("backup_count = \"ten\""),
            (
                "backup_count".to_string(),
                "expected a whole number, found the string \"ten\"".to_string()
            )
        );
        assert_eq!(key("merge_window = -5").1, "-5 is negative");
        assert_eq!(key("max_bytes = true").0, "max_bytes");
        assert_eq!(key("listen = [\"tcp://h:1\", 2]").0, "listen");
        let (k, why) = key("colour = 1");
        assert_eq!(k, "colour");
        assert!(
            why.starts_with("unknown key; the keys are listen, file,"),
            "{why}"
        );
        // Sections are not settings either.
        assert_eq!(key("[serve]\nfile = \"x\"").0, "serve");
        match Raw::from_toml_str("file = \"a\"\nmax_bytes = = 3") {
            Err(TomlError::Syntax(why)) => assert!(why.starts_with("line 2: "), "{why}"),
            other => panic!("{other:?}"),
        }
        // Both spellings of a size, and a single URL.
        let raw = Raw::from_toml_str(
            "max_bytes = 2048\nmax_frame = \"2MiB\"\nlisten = \"tcp://127.0.0.1:0\"",
        )
        .unwrap();
        let c = ServeConfig::resolve(Raw::default(), raw).unwrap();
        assert_eq!(c.output.file.max_bytes, 2048);
        assert_eq!(c.server.max_frame, 2 << 20);
        assert_eq!(c.listen.len(), 1);
    }
}
