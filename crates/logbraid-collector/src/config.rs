//! Settings of `logbraid serve`, from flags and a TOML file.
//!
//! Every flag has a TOML key of the same name with `_` for `-`, at the top
//! level of the file; a flag given on the command line wins over the
//! file. Values are checked here, and a bad one is an error naming the
//! flag or key it came from and the reason.
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
use serde::Deserialize;

use crate::output::{FileSpec, OutputConfig};
use crate::server::{ListenUrl, ServerConfig};

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
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Size {
    /// Bytes.
    Bytes(u64),
    /// Text for [`parse_size`].
    Text(String),
}

/// Settings as given, before they are checked: the flags, or the file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Raw {
    #[serde(default)]
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
    pub listen: Vec<ListenUrl>,
    /// The output stage.
    pub output: OutputConfig,
    /// The listeners' limits.
    pub server: ServerConfig,
}

/// Reads a TOML file of settings.
pub fn read_file(path: &Path) -> Result<Raw, SettingError> {
    let bad = |reason: String| SettingError {
        key: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    toml::from_str(&text).map_err(|e| bad(e.message().to_string()))
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
            .map(|u| ListenUrl::parse(u).map_err(|e| err(&listen_key, e)))
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
        let file: Raw =
            toml::from_str("max_bytes = \"2MiB\"\nbackup_count = 3\nrotate = \"hourly\"").unwrap();
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
        let bad_file: Raw = toml::from_str("rotate = \"fortnightly\"").unwrap();
        let e = ServeConfig::resolve(Raw::default(), bad_file).unwrap_err();
        assert_eq!(e.key, "rotate");
        assert!(toml::from_str::<Raw>("colour = 1")
            .unwrap_err()
            .message()
            .contains("colour"));
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
}
