//! Settings of `logbraid serve`, from flags and a TOML file.
//!
//! One struct, [`Settings`], holds them: the command line fills it (with
//! the `clap` feature, through `clap::Args`) and so does the file (through
//! serde); [`Settings::or`] lets the flags win. Every value is of a type
//! that checks itself when it is read — the same `FromStr` for a flag and
//! for a string in the file — so a bad value is reported once, naming the
//! flag (`--max-bytes`) or the key (`max_bytes`), and [`ServeConfig::new`]
//! cannot fail. A key this module does not know is an error too, with a
//! suggestion: a misspelt setting that is silently ignored is worse than
//! none.
//!
//! | key | value | default |
//! |---|---|---|
//! | `listen` | URL or list of URLs (`python-unix:PATH` for Python's `SocketHandler(path, None)`) | `unix:./logbraid.sock`, `python-tcp://127.0.0.1:9020` |
//! | `file` | path | `logs/logbraid.log` |
//! | `max_bytes` | size (`"100MiB"` or bytes) | 0: no size trigger |
//! | `backup_count` | integer | 0: keep all |
//! | `rotate` | `minutely`, `hourly`, `daily`, `weekly` | none |
//! | `compress` | `gzip`, `zstd` | none |
//! | `format` | `text`, `json`, or a Python `%`-style format | `text` |
//! | `merge_window` | milliseconds, 0 to 60000 | 0: arrival order |
//! | `route` | template with `{host}`, `{program}`, `{pid}`, `{logger}` | none |
//! | `fallback_file` | path, with `route`: where records go whose own file cannot be opened | none: they wait |
//! | `client_files` | directory: a Python record naming its own file (`logbraid.compat.logserv`'s handlers, `PROTOCOL.md`) is written there ([`crate::output::client_files`]) | none: such requests are ordinary fields |
//! | `client_files_base` | directory, `client_files` or below it: where relative client file names start | `client_files` |
//! | `client_files_max_bytes` | size: the largest `maxBytes` honoured; a request of 0 or more is rotated there; 0 for no cap | 1 GiB |
//! | `client_files_max_backups` | integer, 1 to 100000: the largest `backupCount` honoured | 100 |
//! | `client_files_max_open` | integer, 1 to 100000: client files open at once, the least recently written closed beyond | 64 |
//! | `sync` | `none`, `data`: fdatasync the files and the checkpoint before each round's acknowledgements | `none` |
//! | `token` | text native clients must present (`ps` shows a flag: prefer `token_file` or `LOGBRAID_TOKEN`) | none |
//! | `token_file` | path of a file holding the token (one line) | none; then `$LOGBRAID_TOKEN` |
//! | `tls_cert` | PEM certificate chain of the `tls://` and `syslog-tls://` listeners | none (required by them) |
//! | `tls_key` | PEM private key of `tls_cert` | none (required with it) |
//! | `tls_client_ca` | PEM certificates: TLS clients must present a certificate they issued (mutual TLS) | none: no client certificate asked |
//! | `socket_mode` | permissions of `unix:` sockets, octal | `0600` |
//! | `file_mode` | permissions of the log files, octal (routed directories are 0750; the state files 0600) | `0640` |
//! | `max_frame` | size, 1 MiB to 1 GiB | 1 MiB |
//! | `max_connections` | integer, 1 to 1000000: stream connections open at once (fewer when `RLIMIT_NOFILE`, raised to its hard limit at start, leaves room for fewer) | 1024, or as many as half of `max_memory` holds |
//! | `max_connections_per_listener` | integer, 1 to 1000000 | `max_connections` less a share kept for each other stream listener (a sixteenth of them, 1 to 64) |
//! | `max_connections_per_peer` | integer, 1 to 1000000: from one IP address | 256 |
//! | `max_memory` | size, at least 16 MiB: the ceiling on what the collector holds | 256 MiB |
//! | `max_clients` | integer, 1 to 10000000: native client ids tracked for exactly-once | 100000 |
//! | `publish` | `nats://HOST:PORT` URLs, comma-separated: publish native batches to JetStream instead of writing files ([`crate::publish`]; native listeners only, no file settings) | none |
//! | `stream` | JetStream stream name | `LOGS` |
//! | `subject` | with `publish`: subject template with `{host}`, `{program}`, `{pid}` | `logs.{host}.{program}` |
//! | `duplicate_window` | with `publish`: the stream's duplicate window when it is created | `2m` |
//! | `metrics` | `HOST:PORT` (port 0: any) where `/metrics`, `/health` and `/ready` are served ([`crate::metrics`]) | none |
//! | `stall_timeout` | duration (seconds, or `"500ms"`, `"2m"`): `/health` fails once records wait this long with no write completing (with `publish`: no acknowledgement from JetStream) | 30 s |
//!
//! `max_memory` is shared out, so that what peers can make the collector
//! hold stays under it: an eighth for records waiting for the output stage
//! (32 MiB of the default), a quarter for what connections hold while they
//! read and decode ([`ServerConfig::memory`]: frame buffers, decoding's
//! working memory, up to a sixteenth of the whole for one frame); half for
//! what each connection holds of its own
//! ([`CONNECTION_BYTES`](crate::server::CONNECTION_BYTES): its read buffer
//! and the first bytes of its frames), which bounds `max_connections`; the
//! rest for the files' buffers (written out past 1 MiB), threads and the
//! runtime. A `max_connections` that does not fit is refused, naming the
//! `max_memory` it would need.
//!
//! Fixed, not settings: idle timeout 60 s, `HELLO` timeout 10 s (also the
//! time a Python or syslog stream has to send its first complete record),
//! a record in progress on those streams arriving at 1 KiB/s or better
//! (over 10 s windows), a Unix-socket reserve of an eighth of the
//! connections (at most 64) when there is a Unix listener, eviction of the
//! oldest connection that has sent no complete frame when a new one meets
//! a full limit
//! ([`crate::server::slots`]), drain of 5 s at a stop, and the
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
//! client_files = "/var/log/apps"
//! sync = "data"              # none | data
//! token_file = "/etc/logbraid/token"
//! tls_cert = "/etc/logbraid/server.pem"
//! tls_key = "/etc/logbraid/server.key"
//! tls_client_ca = "/etc/logbraid/clients-ca.pem"
//! max_frame = "1MiB"
//! max_connections = 1024
//! max_memory = "256MiB"
//! max_clients = 100000
//! metrics = "127.0.0.1:9090"  # /metrics, /health, /ready
//! stall_timeout = "30s"
//! ```
//!
//! A client id is tracked from its first batch (a `HELLO` alone costs
//! nothing). With `max_clients` tracked, the one least recently written
//! that has been idle for 10 minutes (nothing in flight) is forgotten to
//! make room; when none has, a new client id is refused as overloaded and
//! retries later, so every client still sending keeps exactly-once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use logbraid::config::de::{self, Bounded, FileMode, Seconds, Size};
use logbraid::config::ConfigError;
use logbraid::layout::LayoutSpec;
use logbraid::wire::Dedup;
use logbraid::{Compression, Every, SyncMode};
use serde::Deserialize;

use crate::output::{ClientFiles, FileSpec, OutputConfig};
use crate::server::{Endpoint, ServerConfig};

/// The listeners when none is given.
pub const DEFAULT_LISTEN: [&str; 2] = ["unix:./logbraid.sock", "python-tcp://127.0.0.1:9020"];

/// The file when none is given.
pub const DEFAULT_FILE: &str = "logs/logbraid.log";

/// Connections served at once when none is given.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 1024;

/// The memory ceiling when none is given.
pub const DEFAULT_MAX_MEMORY: usize = 256 << 20;

/// The smallest memory ceiling accepted.
pub const MIN_MAX_MEMORY: usize = 16 << 20;

/// The settings of `logbraid serve`: each field is a flag
/// (`--max-bytes`) and a key of the file (`max_bytes`), `None` (or empty)
/// when not given.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where to listen: unix:PATH, tcp://HOST:PORT, tls://HOST:PORT
    /// (native protocol), python-tcp://, python-unix:PATH, python-udp://, syslog-udp://,
    /// syslog-tcp://, syslog-tls://, otlp-http://, otlp-grpc:// (OpenTelemetry
    /// logs; TLS when --tls-cert is given). Repeat for several. Default: unix:./logbraid.sock and
    /// python-tcp://127.0.0.1:9020.
    #[cfg_attr(feature = "clap", arg(long = "listen", value_name = "URL"))]
    #[serde(default, deserialize_with = "one_or_many")]
    pub listen: Vec<Endpoint>,
    /// The log file (default: logs/logbraid.log).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, deserialize_with = "de::path")]
    pub file: Option<PathBuf>,
    /// Rotate before the file would grow past this size (e.g. 100MiB).
    #[cfg_attr(feature = "clap", arg(long, value_name = "SIZE"))]
    pub max_bytes: Option<Size>,
    /// Rotated files to keep (default: all).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub backup_count: Option<Bounded<0, { u32::MAX as u64 }>>,
    /// Also rotate every minute, hour, day or week.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "minutely|hourly|daily|weekly")
    )]
    #[serde(default, deserialize_with = "de::parsed")]
    pub rotate: Option<Every>,
    /// Compress rotated files.
    #[cfg_attr(feature = "clap", arg(long, value_name = "gzip|zstd"))]
    #[serde(default, deserialize_with = "de::parsed")]
    pub compress: Option<Compression>,
    /// Line format: text, json, or a Python %-style format.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(default, deserialize_with = "de::parsed")]
    pub format: Option<LayoutSpec>,
    /// Hold records up to this many milliseconds and write them in
    /// timestamp order across sources.
    #[cfg_attr(feature = "clap", arg(long, value_name = "MS"))]
    pub merge_window: Option<Bounded<0, 60_000>>,
    /// One file per source, e.g. 'logs/{host}/{program}.log'
    /// (placeholders: host, program, pid, logger).
    #[cfg_attr(feature = "clap", arg(long, value_name = "TEMPLATE"))]
    #[serde(default, deserialize_with = "de::parsed")]
    pub route: Option<Route>,
    /// With --route: where a record goes when its own file cannot be
    /// opened, its intended path in the field "destination". Without it,
    /// such records wait, unacknowledged, until their file opens.
    #[cfg_attr(feature = "clap", arg(long, value_name = "PATH"))]
    #[serde(default, deserialize_with = "de::path")]
    pub fallback_file: Option<PathBuf>,
    /// Write a Python record that names its own file (logbraid_file, as
    /// logbraid.compat.logserv's handlers send it) to that file, in this
    /// directory; refused names go to the usual file.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    #[serde(default, deserialize_with = "de::path")]
    pub client_files: Option<PathBuf>,
    /// Where relative client file names start: --client-files or a
    /// directory below it (default: --client-files).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    #[serde(default, deserialize_with = "de::path")]
    pub client_files_base: Option<PathBuf>,
    /// The largest maxBytes a client file gets; one asking 0 (never
    /// rotate) or more rotates there (default 1GiB; 0: no cap).
    #[cfg_attr(feature = "clap", arg(long, value_name = "SIZE"))]
    pub client_files_max_bytes: Option<Size>,
    /// The largest backupCount a client file gets (default 100).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub client_files_max_backups: Option<Bounded<1, 100_000>>,
    /// Client files open at once; the least recently written is closed
    /// beyond (default 64).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub client_files_max_open: Option<Bounded<1, 100_000>>,
    /// What an acknowledgement promises: none (default), the records are
    /// in the file, safe if the collector dies; data, they and the
    /// checkpoint are fdatasynced first, safe across a power loss too.
    #[cfg_attr(feature = "clap", arg(long, value_name = "none|data"))]
    #[serde(default, deserialize_with = "de::parsed")]
    pub sync: Option<SyncMode>,
    /// Native clients must present this token. Any user can read a
    /// command line (ps): prefer --token-file or LOGBRAID_TOKEN.
    #[cfg_attr(feature = "clap", arg(long))]
    pub token: Option<String>,
    /// A file whose first line is the token native clients must present
    /// (default: the environment variable LOGBRAID_TOKEN, if set).
    #[cfg_attr(feature = "clap", arg(long, value_name = "PATH"))]
    #[serde(default, deserialize_with = "de::path")]
    pub token_file: Option<PathBuf>,
    /// The PEM certificate (chain) of the tls:// and syslog-tls://
    /// listeners.
    #[cfg_attr(feature = "clap", arg(long, value_name = "PEM"))]
    #[serde(default, deserialize_with = "de::path")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[cfg_attr(feature = "clap", arg(long, value_name = "PEM"))]
    #[serde(default, deserialize_with = "de::path")]
    pub tls_key: Option<PathBuf>,
    /// Require TLS clients to present a certificate issued by one of
    /// these PEM certificates (mutual TLS).
    #[cfg_attr(feature = "clap", arg(long, value_name = "PEM"))]
    #[serde(default, deserialize_with = "de::path")]
    pub tls_client_ca: Option<PathBuf>,
    /// Permissions of unix: sockets, in octal (default 0600: the
    /// collector's user only).
    #[cfg_attr(feature = "clap", arg(long, value_name = "MODE"))]
    pub socket_mode: Option<FileMode>,
    /// Permissions of the log files, in octal (default 0640: the
    /// collector's user writes, its group reads).
    #[cfg_attr(feature = "clap", arg(long, value_name = "MODE"))]
    pub file_mode: Option<FileMode>,
    /// Longest frame accepted (default 1MiB). Smaller values are refused:
    /// the native protocol promises clients 1 MiB.
    #[cfg_attr(feature = "clap", arg(long, value_name = "SIZE"))]
    pub max_frame: Option<FrameLimit>,
    /// Connections served at once (default 1024; fewer when the open-file
    /// limit leaves room for fewer).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub max_connections: Option<Bounded<1, 1_000_000>>,
    /// Connections served at once on one listener (default:
    /// max-connections less a share kept for each other stream listener).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub max_connections_per_listener: Option<Bounded<1, 1_000_000>>,
    /// Connections served at once from one IP address (default 256).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub max_connections_per_peer: Option<Bounded<1, 1_000_000>>,
    /// Ceiling on the memory the collector holds (default 256MiB, at least
    /// 16MiB): records waiting for the file get an eighth, connections
    /// reading and decoding a quarter; past them, clients wait.
    #[cfg_attr(feature = "clap", arg(long, value_name = "SIZE"))]
    pub max_memory: Option<Size>,
    /// Native client ids tracked for exactly-once (default 100000): past
    /// it, one idle for 10 minutes is forgotten, or a new one is refused
    /// as overloaded until one is.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub max_clients: Option<Bounded<1, 10_000_000>>,
    /// Publish native batches to NATS JetStream instead of writing files,
    /// acknowledging clients once JetStream has stored them:
    /// nats://HOST:PORT of the cluster's servers, comma-separated.
    #[cfg_attr(feature = "clap", arg(long, value_name = "nats://HOST:PORT,..."))]
    #[serde(default, deserialize_with = "de::parsed")]
    pub publish: Option<NatsServers>,
    /// The JetStream stream (default LOGS): published to, created when
    /// missing; read by `logbraid write`.
    #[cfg_attr(feature = "clap", arg(long, value_name = "NAME"))]
    #[serde(default, deserialize_with = "de::parsed")]
    pub stream: Option<StreamName>,
    /// With --publish: the subject of a client's batches (default
    /// logs.{host}.{program}; placeholders host, program, pid).
    #[cfg_attr(feature = "clap", arg(long, value_name = "TEMPLATE"))]
    #[serde(default, deserialize_with = "de::parsed")]
    pub subject: Option<crate::publish::SubjectTemplate>,
    /// With --publish: how long the stream remembers a batch's id to drop
    /// its resends, when this collector creates it (default 2m).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DURATION"))]
    pub duplicate_window: Option<de::Seconds>,
    /// Serve /metrics (Prometheus), /health and /ready over HTTP on
    /// HOST:PORT (port 0: any free port; stdout says which).
    #[cfg_attr(feature = "clap", arg(long, value_name = "HOST:PORT"))]
    #[serde(default, deserialize_with = "de::parsed")]
    pub metrics: Option<MetricsAddr>,
    /// /health answers 503 once records have waited this long with no
    /// write completing, or with --publish no acknowledgement from
    /// JetStream (default 30s; e.g. 500ms, 2m).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DURATION"))]
    pub stall_timeout: Option<Seconds>,
}

/// `--publish`: NATS server URLs, `nats://HOST:PORT`, comma-separated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsServers(pub Vec<String>);

impl FromStr for NatsServers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let urls: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect();
        if urls.is_empty() {
            return Err("no NATS server URL".to_string());
        }
        for u in &urls {
            if !u.starts_with("nats://") {
                return Err(format!("{u:?} is not a nats://HOST:PORT URL"));
            }
            crate::nats::client::server_addr(u).map_err(|e| e.to_string())?;
        }
        Ok(NatsServers(urls))
    }
}

/// A JetStream stream name: letters, digits, `-` and `_`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamName(pub String);

impl FromStr for StreamName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty()
            || s.len() > 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "{s:?} is not a stream name (1 to 64 letters, digits, - and _)"
            ));
        }
        Ok(StreamName(s.to_string()))
    }
}

/// Where the metrics are served: `HOST:PORT`, the port a number (0 for
/// any free one), the host a name or an address (`[::1]` for IPv6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsAddr(pub String);

impl FromStr for MetricsAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not HOST:PORT");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        Ok(MetricsAddr(s.to_string()))
    }
}

/// `listen`: one URL or a list of them.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Endpoint>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "expected a URL or a list of URLs")]
    enum Urls {
        One(String),
        Many(Vec<String>),
    }
    let urls = match Urls::deserialize(d)? {
        Urls::One(u) => vec![u],
        Urls::Many(us) => us,
    };
    urls.iter()
        .map(|u| u.parse().map_err(serde::de::Error::custom))
        .collect()
}

/// A `--route` template whose placeholders are all known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route(pub String);

impl FromStr for Route {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::output::check_route(s).map(|()| Route(s.to_string()))
    }
}

/// A frame limit: a size from 1 MiB (what the native protocol promises
/// every client) to 1 GiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimit(pub usize);

/// Why a size is not a frame limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameLimitError(String);

impl fmt::Display for FrameLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FrameLimitError {}

impl TryFrom<Size> for FrameLimit {
    type Error = FrameLimitError;
    fn try_from(Size(n): Size) -> Result<Self, Self::Error> {
        let min = logbraid::wire::DEFAULT_MAX_FRAME as u64;
        if n < min {
            return Err(FrameLimitError(format!(
                "{n} is below {min} bytes, the smallest frame limit the native protocol allows"
            )));
        }
        if n > 1 << 30 {
            return Err(FrameLimitError(format!("{n} is above the limit of 1 GiB")));
        }
        Ok(FrameLimit(n as usize))
    }
}

impl FromStr for FrameLimit {
    type Err = FrameLimitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let size: Size = s.parse().map_err(|e| FrameLimitError(format!("{e}")))?;
        size.try_into()
    }
}

impl<'de> Deserialize<'de> for FrameLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Size::deserialize(d)?
            .try_into()
            .map_err(serde::de::Error::custom)
    }
}

impl Settings {
    /// Reads the settings in a TOML file. An unreadable file, a syntax
    /// error (with its line and column), an unknown key or a bad value is
    /// an error that names the file and the key.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        Settings::from_toml_str(&de::read_file(path)?).map_err(|e| e.in_file(path))
    }

    /// Reads the settings in TOML text: every key at the top level.
    pub fn from_toml_str(text: &str) -> Result<Settings, ConfigError> {
        de::read(text, &[("", de::fields_of::<Settings>())])
    }

    /// These settings, with `other`'s where these have none.
    pub fn or(self, other: Settings) -> Settings {
        Settings {
            listen: if self.listen.is_empty() {
                other.listen
            } else {
                self.listen
            },
            file: self.file.or(other.file),
            max_bytes: self.max_bytes.or(other.max_bytes),
            backup_count: self.backup_count.or(other.backup_count),
            rotate: self.rotate.or(other.rotate),
            compress: self.compress.or(other.compress),
            format: self.format.or(other.format),
            merge_window: self.merge_window.or(other.merge_window),
            route: self.route.or(other.route),
            fallback_file: self.fallback_file.or(other.fallback_file),
            sync: self.sync.or(other.sync),
            client_files: self.client_files.or(other.client_files),
            client_files_base: self.client_files_base.or(other.client_files_base),
            client_files_max_bytes: self.client_files_max_bytes.or(other.client_files_max_bytes),
            client_files_max_backups: self
                .client_files_max_backups
                .or(other.client_files_max_backups),
            client_files_max_open: self.client_files_max_open.or(other.client_files_max_open),
            token: self.token.or(other.token),
            token_file: self.token_file.or(other.token_file),
            tls_cert: self.tls_cert.or(other.tls_cert),
            tls_key: self.tls_key.or(other.tls_key),
            tls_client_ca: self.tls_client_ca.or(other.tls_client_ca),
            socket_mode: self.socket_mode.or(other.socket_mode),
            file_mode: self.file_mode.or(other.file_mode),
            max_frame: self.max_frame.or(other.max_frame),
            max_connections: self.max_connections.or(other.max_connections),
            max_connections_per_listener: self
                .max_connections_per_listener
                .or(other.max_connections_per_listener),
            max_connections_per_peer: self
                .max_connections_per_peer
                .or(other.max_connections_per_peer),
            max_memory: self.max_memory.or(other.max_memory),
            max_clients: self.max_clients.or(other.max_clients),
            publish: self.publish.or(other.publish),
            stream: self.stream.or(other.stream),
            subject: self.subject.or(other.subject),
            duplicate_window: self.duplicate_window.or(other.duplicate_window),
            metrics: self.metrics.or(other.metrics),
            stall_timeout: self.stall_timeout.or(other.stall_timeout),
        }
    }
}

/// Everything `logbraid serve` runs with.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where to listen.
    pub listen: Vec<Endpoint>,
    /// Permissions of the `unix:` listeners' sockets.
    pub socket_mode: u32,
    /// The output stage.
    pub output: OutputConfig,
    /// The listeners' limits.
    pub server: ServerConfig,
    /// Native client ids the deduplication table holds.
    pub max_clients: usize,
    /// With `publish`: batches go to JetStream, no file is written.
    pub publish: Option<crate::publish::PublishConfig>,
    /// The stream `logbraid write` reads (the one published to).
    pub stream: String,
    /// Where `/metrics`, `/health` and `/ready` are served, if anywhere.
    pub metrics: Option<String>,
    /// How long records may wait with no write completing before
    /// `/health` fails.
    pub stall_timeout: Duration,
}

impl ServeConfig {
    /// The deduplication table for these settings, empty.
    pub fn dedup(&self) -> Dedup {
        Dedup::with_capacity(self.max_clients, Dedup::DEFAULT_IDLE)
    }
}

/// Where the collector finds its token when neither `token` nor
/// `token_file` gives one.
pub const TOKEN_ENV: &str = "LOGBRAID_TOKEN";

fn key_error(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(Some(key.to_string()), reason)
}

/// The token: `token`, or the first line of `token_file`, or `env`
/// (the value of [`TOKEN_ENV`]); two of the settings at once is an error.
fn token(s: &Settings, env: Option<std::ffi::OsString>) -> Result<Option<Arc<[u8]>>, ConfigError> {
    let token = match (&s.token, &s.token_file) {
        (Some(_), Some(_)) => {
            return Err(key_error(
                "token_file",
                "and token are both set: give the token one way",
            ))
        }
        (Some(t), None) => t.as_bytes().to_vec(),
        (None, Some(path)) => {
            let text = std::fs::read(path)
                .map_err(|e| key_error("token_file", format!("{}: {e}", path.display())))?;
            let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                return Err(key_error(
                    "token_file",
                    format!("{}: the first line is empty", path.display()),
                ));
            }
            line.to_vec()
        }
        (None, None) => {
            use std::os::unix::ffi::OsStringExt as _;
            match env.map(|v| v.into_vec()).filter(|v| !v.is_empty()) {
                Some(t) => t,
                None => return Ok(None),
            }
        }
    };
    Ok(Some(Arc::from(token)))
}

/// The TLS listeners' settings, the files read: `None` when no listener
/// speaks TLS. A TLS listener needs a certificate and its key; TLS
/// settings without a TLS listener are an error too (a mistake, not a
/// preference).
fn tls(s: &Settings) -> Result<Option<Arc<logbraid::tls::rustls::ServerConfig>>, ConfigError> {
    // OTLP listeners speak TLS when a certificate is given, and plaintext
    // otherwise.
    let listener = s.listen.iter().find(|e| e.protocol.is_tls()).or_else(|| {
        s.listen
            .iter()
            .find(|e| e.protocol.is_otlp() && s.tls_cert.is_some())
    });
    let Some(listener) = listener else {
        let set = [
            ("tls_cert", s.tls_cert.is_some()),
            ("tls_key", s.tls_key.is_some()),
            ("tls_client_ca", s.tls_client_ca.is_some()),
        ];
        return match set.into_iter().find(|(_, on)| *on) {
            Some((key, _)) => Err(key_error(
                key,
                "is for a tls://, syslog-tls://, otlp-http:// or otlp-grpc:// listener, and none is \
                 given",
            )),
            None => Ok(None),
        };
    };
    let (Some(cert), Some(key)) = (&s.tls_cert, &s.tls_key) else {
        let missing = if s.tls_cert.is_none() {
            "tls_cert"
        } else {
            "tls_key"
        };
        return Err(key_error(
            missing,
            format!("missing: {listener} needs a certificate and its key (tls_cert, tls_key)"),
        ));
    };
    logbraid::tls::server_config(cert, key, s.tls_client_ca.as_deref())
        .map(Some)
        .map_err(|e| {
            let key = match &e {
                logbraid::tls::TlsError::File { path, .. }
                    if Some(path) == s.tls_client_ca.as_ref() =>
                {
                    "tls_client_ca"
                }
                logbraid::tls::TlsError::File { path, .. } if path == key => "tls_key",
                _ => "tls_cert",
            };
            key_error(key, e.to_string())
        })
}

/// The client files' settings: `None` without `client_files`, whose
/// companions are then an error; the directories made absolute (from the
/// working directory), the base checked to lie in the directory.
fn client_files(s: &Settings) -> Result<Option<ClientFiles>, ConfigError> {
    let Some(dir) = &s.client_files else {
        let set = [
            ("client_files_base", s.client_files_base.is_some()),
            ("client_files_max_bytes", s.client_files_max_bytes.is_some()),
            (
                "client_files_max_backups",
                s.client_files_max_backups.is_some(),
            ),
            ("client_files_max_open", s.client_files_max_open.is_some()),
        ];
        return match set.into_iter().find(|(_, on)| *on) {
            Some((key, _)) => Err(key_error(key, "needs client_files")),
            None => Ok(None),
        };
    };
    let absolute = |key: &str, p: &Path| {
        std::path::absolute(p)
            .map(|a| a.components().collect::<PathBuf>())
            .map_err(|e| key_error(key, format!("{}: {e}", p.display())))
    };
    let dir = absolute("client_files", dir)?;
    let base = match &s.client_files_base {
        Some(b) => absolute("client_files_base", b)?,
        None => dir.clone(),
    };
    if !base.starts_with(&dir)
        || base
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(key_error(
            "client_files_base",
            format!(
                "{} is not inside client_files ({})",
                base.display(),
                dir.display()
            ),
        ));
    }
    Ok(Some(ClientFiles {
        dir,
        base,
        max_bytes: s
            .client_files_max_bytes
            .map_or(crate::output::client_files::DEFAULT_MAX_BYTES, |b| b.0),
        max_backups: s
            .client_files_max_backups
            .map_or(crate::output::client_files::DEFAULT_MAX_BACKUPS, |n| {
                n.0 as usize
            }),
        max_open: s
            .client_files_max_open
            .map_or(crate::output::client_files::DEFAULT_MAX_OPEN, |n| {
                n.0 as usize
            }),
    }))
}

impl ServeConfig {
    /// The collector `settings` describe, with the defaults for what they
    /// leave out, the token from [`TOKEN_ENV`] when no setting gives one,
    /// and the TLS files read. The rules between settings: a fallback file
    /// needs a route (without one there is one file, opened at start); a
    /// TLS listener needs `tls_cert` and `tls_key`; one token setting at
    /// most.
    pub fn new(s: Settings) -> Result<ServeConfig, ConfigError> {
        ServeConfig::with_env(s, std::env::var_os(TOKEN_ENV))
    }

    /// [`ServeConfig::new`] with `token_env` for the value of
    /// [`TOKEN_ENV`].
    pub fn with_env(
        s: Settings,
        token_env: Option<std::ffi::OsString>,
    ) -> Result<ServeConfig, ConfigError> {
        if s.fallback_file.is_some() && s.route.is_none() {
            return Err(ConfigError::new(
                Some("fallback_file".to_string()),
                "needs route: without a route there is one file, opened at start",
            ));
        }
        let publish = publishing(&s)?;
        let stream = s
            .stream
            .clone()
            .map_or_else(|| crate::publish::DEFAULT_STREAM.to_string(), |n| n.0);
        let token = token(&s, token_env)?;
        let tls = tls(&s)?;
        let client_files = client_files(&s)?;
        let listen = if s.listen.is_empty() {
            DEFAULT_LISTEN
                .iter()
                .map(|u| u.parse().expect("the default URLs parse"))
                .collect()
        } else {
            s.listen
        };
        let memory = s.max_memory.map_or(DEFAULT_MAX_MEMORY as u64, |m| m.0);
        if memory < MIN_MAX_MEMORY as u64 {
            return Err(ConfigError::new(
                Some("max_memory".to_string()),
                format!("{memory} is below {MIN_MAX_MEMORY} bytes, the smallest ceiling allowed"),
            ));
        }
        let memory = usize::try_from(memory).unwrap_or(usize::MAX);
        // Connections hold their own bytes outside the pool: half the
        // ceiling is theirs.
        let fit = (memory / 2 / crate::server::CONNECTION_BYTES) as u64;
        let max_connections = match s.max_connections {
            Some(n) if n.0 > fit => {
                let need = n.0 * 2 * crate::server::CONNECTION_BYTES as u64;
                return Err(ConfigError::new(
                    Some("max_connections".to_string()),
                    format!(
                        "{} connections hold up to {} KiB each of their own, more than half \
                         of max_memory ({memory} bytes) allows; raise max_memory to at least \
                         {need} bytes or lower max_connections to {fit}",
                        n.0,
                        crate::server::CONNECTION_BYTES >> 10
                    ),
                ));
            }
            Some(n) => n.0,
            None => DEFAULT_MAX_CONNECTIONS.min(fit),
        };
        let path = s.file.unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
        // Hidden, and not named like a backup of the log file.
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "logbraid.log".to_string());
        let state = path.with_file_name(format!(".{name}.state"));
        Ok(ServeConfig {
            listen,
            socket_mode: s
                .socket_mode
                .map_or(crate::server::DEFAULT_SOCKET_MODE, |m| m.0),
            output: OutputConfig {
                file: FileSpec {
                    path,
                    layout: s.format.unwrap_or(LayoutSpec::Text),
                    max_bytes: s.max_bytes.map_or(0, |b| b.0),
                    backup_count: s.backup_count.map_or(0, |n| n.0 as usize),
                    every: s.rotate,
                    compression: s.compress.unwrap_or(Compression::None),
                    mode: s
                        .file_mode
                        .map_or(crate::output::DEFAULT_FILE_MODE, |m| m.0),
                    follow_links: false,
                },
                route: s.route.map(|r| r.0),
                merge_window: s
                    .merge_window
                    .map(|ms| Duration::from_millis(ms.0))
                    .filter(|d| !d.is_zero()),
                max_pending_bytes: memory / 8,
                state_path: Some(state),
                fallback: s.fallback_file,
                sync: s.sync.unwrap_or_default(),
                client_files,
            },
            server: ServerConfig {
                token,
                tls,
                max_frame: s
                    .max_frame
                    .map_or(logbraid::wire::DEFAULT_MAX_FRAME, |f| f.0),
                max_connections: max_connections as usize,
                max_connections_per_listener: s.max_connections_per_listener.map(|n| n.0 as usize),
                max_connections_per_peer: s
                    .max_connections_per_peer
                    .map_or(crate::server::DEFAULT_MAX_CONNECTIONS_PER_PEER, |n| {
                        n.0 as usize
                    }),
                memory: memory / 4,
                ..ServerConfig::default()
            },
            max_clients: s
                .max_clients
                .map_or(Dedup::DEFAULT_CAPACITY, |n| n.0 as usize),
            publish: publish.map(|mut p| {
                p.max_pending_bytes = memory / 8;
                p
            }),
            stream,
            metrics: s.metrics.map(|m| m.0),
            stall_timeout: s
                .stall_timeout
                .map_or(crate::metrics::DEFAULT_STALL_TIMEOUT, |t| t.0),
        })
    }
}

/// The publisher's settings, when `publish` is given: its listeners must
/// all speak the native protocol (the only one whose clients number their
/// records, which JetStream deduplicates by), and it writes no file. The
/// subject and duplicate window are for it alone.
fn publishing(s: &Settings) -> Result<Option<crate::publish::PublishConfig>, ConfigError> {
    let Some(servers) = &s.publish else {
        if s.subject.is_some() {
            return Err(key_error("subject", "is for publish, which is not given"));
        }
        if s.duplicate_window.is_some() {
            return Err(key_error(
                "duplicate_window",
                "is for publish, which is not given",
            ));
        }
        return Ok(None);
    };
    if let Some(l) = s.listen.iter().find(|l| {
        !matches!(
            l.protocol,
            crate::server::Protocol::Native | crate::server::Protocol::NativeTls
        )
    }) {
        return Err(key_error(
            "publish",
            format!(
                "takes native listeners only (unix:, tcp://, tls://): {l} carries no client \
                 numbering for JetStream to deduplicate by"
            ),
        ));
    }
    if s.listen.is_empty() {
        return Err(key_error(
            "publish",
            "needs listen: the default listeners include python-tcp://, which it cannot publish",
        ));
    }
    let files = [
        ("file", s.file.is_some()),
        ("route", s.route.is_some()),
        ("fallback_file", s.fallback_file.is_some()),
        ("max_bytes", s.max_bytes.is_some()),
        ("rotate", s.rotate.is_some()),
        ("compress", s.compress.is_some()),
        ("merge_window", s.merge_window.is_some()),
        ("sync", s.sync.is_some()),
    ];
    if let Some((key, _)) = files.into_iter().find(|(_, on)| *on) {
        return Err(key_error(
            key,
            "is for files, and publish writes none (logbraid write does)",
        ));
    }
    Ok(Some(crate::publish::PublishConfig {
        servers: servers.0.clone(),
        stream: s
            .stream
            .clone()
            .map_or_else(|| crate::publish::DEFAULT_STREAM.to_string(), |n| n.0),
        subject: s.subject.clone().unwrap_or_else(|| {
            crate::publish::DEFAULT_SUBJECT
                .parse()
                .expect("the default subject parses")
        }),
        duplicate_window: s
            .duplicate_window
            .map_or(crate::publish::DEFAULT_DUPLICATE_WINDOW, |d| d.0),
        max_pending_bytes: 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Settings::from_toml_str(text).unwrap_err().to_string()
    }

    #[test]
    fn publishing_takes_native_listeners_and_no_file_settings() {
        let with = |toml: &str| ServeConfig::new(Settings::from_toml_str(toml).unwrap());
        let c = with(
            "publish = \"nats://a:4222, nats://b:4222\"\nlisten = \"tcp://127.0.0.1:0\"\n\
             duplicate_window = \"5m\"",
        )
        .unwrap();
        let p = c.publish.unwrap();
        assert_eq!(p.servers, ["nats://a:4222", "nats://b:4222"]);
        assert_eq!(
            (p.stream.as_str(), p.subject.to_string().as_str()),
            ("LOGS", "logs.{host}.{program}")
        );
        assert_eq!(p.duplicate_window, Duration::from_secs(300));
        assert_eq!(p.max_pending_bytes, 32 << 20);
        for (toml, want) in [
            (
                "publish = \"nats://a:4222\"\nlisten = \"python-tcp://127.0.0.1:0\"",
                "publish: takes native listeners only",
            ),
            (
                "publish = \"nats://a:4222\"",
                "publish: needs listen: the default listeners include python-tcp://",
            ),
            (
                "publish = \"nats://a:4222\"\nlisten = \"tcp://127.0.0.1:0\"\nfile = \"x.log\"",
                "file: is for files, and publish writes none",
            ),
            ("subject = \"logs.{host}\"", "subject: is for publish"),
        ] {
            let e = with(toml).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
        }
        for (toml, want) in [
            (
                "publish = \"tcp://a:4222\"",
                "is not a nats://HOST:PORT URL",
            ),
            ("publish = \"nats://a\"", "not a NATS server URL"),
            ("stream = \"a.b\"", "is not a stream name"),
            ("subject = \"logs.{hst}\"", "a placeholder"),
        ] {
            let e = err(toml);
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let file =
            Settings::from_toml_str("max_bytes = \"2MiB\"\nbackup_count = 3\nrotate = \"hourly\"")
                .unwrap();
        let flags = Settings {
            max_bytes: Some("1KiB".parse().unwrap()),
            ..Settings::default()
        };
        let c = ServeConfig::new(flags.or(file)).unwrap();
        assert_eq!(c.output.file.max_bytes, 1024);
        assert_eq!(c.output.file.backup_count, 3);
        assert_eq!(c.output.file.every, Some(Every::Hourly));
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.server.max_connections, 1024);
        assert_eq!(c.output.max_pending_bytes, 32 << 20);
        assert_eq!(c.server.memory, 64 << 20);
        assert_eq!(c.max_clients, 100_000);
        assert_eq!(c.output.file.path, PathBuf::from(DEFAULT_FILE));
        assert_eq!(
            c.output.state_path,
            Some(PathBuf::from("logs/.logbraid.log.state"))
        );
    }

    #[test]
    fn values_check_themselves_the_same_from_text_and_toml() {
        assert_eq!(
            "64KiB".parse::<FrameLimit>().unwrap_err().to_string(),
            "65536 is below 1048576 bytes, the smallest frame limit the native protocol allows"
        );
        assert_eq!(
            err("max_frame = \"64KiB\""),
            "max_frame: 65536 is below 1048576 bytes, the smallest frame limit the native \
             protocol allows"
        );
        assert_eq!(
            err("max_frame = 2147483648"),
            "max_frame: 2147483648 is above the limit of 1 GiB"
        );
        assert_eq!("2MiB".parse::<FrameLimit>(), Ok(FrameLimit(2 << 20)));
        assert!("logs/{hots}.log"
            .parse::<Route>()
            .unwrap_err()
            .contains("{hots}"));
        assert!(err("route = \"logs/{hots}.log\"").starts_with("route: "));
        assert_eq!(
            err("backup_count = \"ten\""),
            "backup_count: expected an integer, found string \"ten\""
        );
        assert_eq!(
            err("merge_window = -5"),
            "merge_window: -5 is out of range: expected 0 to 60000"
        );
        assert_eq!(
            err("max_connections = 0"),
            "max_connections: 0 is out of range: expected 1 to 1000000"
        );
        assert!(err("max_bytes = true").starts_with("max_bytes: expected a size"));
        assert_eq!(
            err("listen = 9020"),
            "listen: expected a URL or a list of URLs"
        );
        assert!(
            err("listen = [\"tcp://h:1\", \"ftp://h:2\"]").contains("unknown scheme"),
            "{}",
            err("listen = [\"tcp://h:1\", \"ftp://h:2\"]")
        );
        assert_eq!(
            err("format = \"%(nosuch)q\"").split(':').next(),
            Some("format")
        );
    }

    #[test]
    fn unknown_keys_and_sections_are_named_with_a_suggestion() {
        assert_eq!(
            err("max_byte = 1"),
            "unknown key \"max_byte\"; did you mean \"max_bytes\"?"
        );
        assert_eq!(err("[serve]\nfile = \"x\""), "unknown key \"serve\"");
        let e = Settings::from_toml_str("file = \"a\"\nmax_bytes = = 3").unwrap_err();
        assert_eq!(e.line_column().map(|(l, _)| l), Some(2));
    }

    #[test]
    fn metrics_is_host_and_port() {
        let s =
            Settings::from_toml_str("metrics = \"[::1]:0\"\nstall_timeout = \"250ms\"").unwrap();
        let c = ServeConfig::new(s).unwrap();
        assert_eq!(c.metrics.as_deref(), Some("[::1]:0"));
        assert_eq!(c.stall_timeout, Duration::from_millis(250));
        let c = ServeConfig::new(Settings::default()).unwrap();
        assert_eq!(
            (c.metrics, c.stall_timeout),
            (None, crate::metrics::DEFAULT_STALL_TIMEOUT)
        );
        assert_eq!(
            err("metrics = \"9090\""),
            "metrics: \"9090\" is not HOST:PORT"
        );
        assert_eq!(
            err("metrics = \":9090\""),
            "metrics: \":9090\" is not HOST:PORT"
        );
        assert_eq!(
            err("metrics = \"host:99999\""),
            "metrics: \"host:99999\" is not HOST:PORT"
        );
    }

    #[test]
    fn one_url_or_a_list() {
        let s = Settings::from_toml_str("listen = \"tcp://127.0.0.1:0\"").unwrap();
        assert_eq!(s.listen, [Endpoint::tcp("127.0.0.1:0")]);
        let s =
            Settings::from_toml_str("listen = [\"unix:a.sock\", \"syslog-udp://h:0\"]").unwrap();
        assert_eq!(s.listen.len(), 2);
        let c = ServeConfig::new(s).unwrap();
        let e = ServeConfig::new(Settings {
            fallback_file: Some("other.log".into()),
            ..Settings::default()
        })
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("fallback_file"));
        assert_eq!(c.listen[0], Endpoint::unix("a.sock"));
    }

    #[test]
    fn max_memory_shares_out_and_has_a_floor() {
        let c = |text: &str| ServeConfig::new(Settings::from_toml_str(text).unwrap());
        let m = c("max_memory = \"64MiB\"").unwrap();
        assert_eq!(m.output.max_pending_bytes, 8 << 20);
        assert_eq!(m.server.memory, 16 << 20);
        // 32 MiB of 96 KiB connections.
        assert_eq!(m.server.max_connections, 341);
        assert_eq!(
            c("max_memory = \"64MiB\"\nmax_connections = 342")
                .unwrap_err()
                .to_string(),
            "max_connections: 342 connections hold up to 96 KiB each of their own, more than \
             half of max_memory (67108864 bytes) allows; raise max_memory to at least 67239936 \
             bytes or lower max_connections to 341"
        );
        assert_eq!(
            c("max_memory = \"64MiB\"\nmax_connections = 341")
                .unwrap()
                .server
                .max_connections,
            341
        );
        assert_eq!(
            c("max_memory = \"15MiB\"").unwrap_err().to_string(),
            "max_memory: 15728640 is below 16777216 bytes, the smallest ceiling allowed"
        );
    }

    #[test]
    fn client_files_are_a_directory_with_caps() {
        let c = |text: &str| ServeConfig::new(Settings::from_toml_str(text).unwrap());
        assert_eq!(c("").unwrap().output.client_files, None);
        let cf = c("client_files = \"/srv/logs/./apps\"")
            .unwrap()
            .output
            .client_files
            .unwrap();
        assert_eq!(
            cf,
            ClientFiles {
                dir: "/srv/logs/apps".into(),
                base: "/srv/logs/apps".into(),
                max_bytes: 1 << 30,
                max_backups: 100,
                max_open: 64,
            }
        );
        let cf = c("client_files = \"/\"\nclient_files_base = \"/home/a\"\n\
                    client_files_max_bytes = \"1MiB\"\nclient_files_max_backups = 3\n\
                    client_files_max_open = 2")
        .unwrap()
        .output
        .client_files
        .unwrap();
        assert_eq!(
            (
                cf.dir.to_str(),
                cf.base.to_str(),
                cf.max_bytes,
                cf.max_backups,
                cf.max_open
            ),
            (Some("/"), Some("/home/a"), 1 << 20, 3, 2)
        );
        let relative = c("client_files = \"logs\"")
            .unwrap()
            .output
            .client_files
            .unwrap();
        assert_eq!(relative.dir, std::env::current_dir().unwrap().join("logs"));
        for (text, key, why) in [
            (
                "client_files_max_open = 3",
                "client_files_max_open",
                "needs client_files",
            ),
            (
                "client_files_base = \"/a\"",
                "client_files_base",
                "needs client_files",
            ),
            (
                "client_files = \"/a\"\nclient_files_base = \"/b\"",
                "client_files_base",
                "/b is not inside client_files (/a)",
            ),
        ] {
            let e = c(text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{text}");
            assert!(e.to_string().contains(why), "{text}: {e}");
        }
        assert_eq!(
            err("client_files_max_backups = 0"),
            "client_files_max_backups: 0 is out of range: expected 1 to 100000"
        );
        assert_eq!(
            err("client_file = \"x\"").split(';').next(),
            Some("unknown key \"client_file\"")
        );
    }

    #[test]
    fn sync_is_none_or_data() {
        let c = |text: &str| ServeConfig::new(Settings::from_toml_str(text).unwrap()).unwrap();
        assert_eq!(c("").output.sync, SyncMode::None);
        assert_eq!(c("sync = \"data\"").output.sync, SyncMode::Data);
        assert_eq!(
            err("sync = \"always\""),
            "sync: \"always\" is not one of: none, data"
        );
    }

    #[test]
    fn the_token_comes_from_the_setting_the_file_or_the_environment() {
        let token = |s: Settings, env: Option<&str>| {
            ServeConfig::with_env(s, env.map(Into::into))
                .unwrap()
                .server
                .token
                .map(|t| String::from_utf8(t.to_vec()).unwrap())
        };
        assert_eq!(token(Settings::default(), None), None);
        assert_eq!(token(Settings::default(), Some("")), None);
        assert_eq!(
            token(Settings::default(), Some("from-env")).as_deref(),
            Some("from-env")
        );
        let flag = Settings {
            token: Some("from-flag".into()),
            ..Settings::default()
        };
        assert_eq!(token(flag, Some("from-env")).as_deref(), Some("from-flag"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\r\nsecond line\n").unwrap();
        let s = Settings::from_toml_str(&format!("token_file = {:?}", file.display().to_string()))
            .unwrap();
        assert_eq!(token(s, Some("from-env")).as_deref(), Some("from-file"));
        let missing = dir.path().join("missing");
        let e = ServeConfig::with_env(
            Settings {
                token_file: Some(missing.clone()),
                ..Settings::default()
            },
            None,
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("token_file"));
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );
    }
}
