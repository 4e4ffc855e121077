//! The libraries under test: how each one is set up, called and stopped.
//!
//! Every library logs the same message, `"request {} served in {} ms"` with
//! two integers, at INFO, through its usual macro, into one file in the
//! directory it is given. Each implementation of [`Peer`] is a zero-sized
//! type so the logging macro is inlined into the measuring loop, exactly as
//! it would be in an application.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The file every library writes, inside the run's temporary directory.
pub const FILE_NAME: &str = "bench.log";

/// Static facts about one library, for the report.
#[derive(Clone, Copy, Debug)]
pub struct Info {
    /// Name used on the command line and in the tables.
    pub name: &'static str,
    /// The crate whose version the report prints.
    pub krate: &'static str,
    /// How the calls reach it.
    pub api: &'static str,
    /// How it is configured.
    pub setup: &'static str,
    /// How the benchmark waits until the file is complete.
    pub flush: &'static str,
    /// Whether the caller does the file I/O itself.
    pub synchronous: bool,
    /// The cargo feature that compiles it in (`None`: always built, or
    /// built outside cargo, see `external`).
    pub feature: Option<&'static str>,
    /// A peer built outside cargo, run as a program of its own.
    pub external: Option<External>,
}

/// A peer that is not a Rust crate: a program of its own, built by a script
/// of this crate, that takes the arguments of `logbraid-bench child`, does
/// the same work and prints the same report line.
#[derive(Clone, Copy, Debug)]
pub struct External {
    /// Its path under the cargo target directory.
    pub program: &'static str,
    /// The command that builds it, from the repository root.
    pub build: &'static str,
}

impl External {
    /// Where the program is: under the target directory of the running
    /// binary (`<target>/release/logbraid-bench` → `<target>/<program>`),
    /// which is where `build` puts it.
    pub fn path(&self) -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        Some(exe.parent()?.parent()?.join(self.program))
    }

    /// What its build recorded next to it (`<program>.version`): one
    /// `key value` pair a line (`version`, `commit`, `describe`, `include`,
    /// `compiler`, `flags`).
    pub fn build_facts(&self) -> Vec<(String, String)> {
        let Some(path) = self.path() else {
            return Vec::new();
        };
        let mut name = path.into_os_string();
        name.push(".version");
        std::fs::read_to_string(name)
            .map(|s| parse_facts(&s))
            .unwrap_or_default()
    }

    /// One fact its build recorded.
    pub fn fact(&self, key: &str) -> Option<String> {
        self.build_facts()
            .into_iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }
}

fn parse_facts(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.trim().split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// Every library, logbraid first.
pub const ALL: &[Info] = &[
    Info {
        name: "logbraid",
        krate: "logbraid",
        api: "`log::info!`",
        setup: "`Builder::new().level(\"info\").file(RollingFile::builder(path))`, defaults: non-blocking, 1 MiB queue per thread, `Overflow::Block`, text layout",
        flush: "drop the `Guard` (drains, flushes, joins the writer)",
        synchronous: false,
        feature: None,
        external: None,
    },
    Info {
        name: "logbraid-macros",
        krate: "logbraid",
        api: "`logbraid::info!` (formats on the writer thread)",
        setup: "as `logbraid`: the same builder, installed with `init`",
        flush: "drop the `Guard` (drains, flushes, joins the writer)",
        synchronous: false,
        feature: None,
        external: None,
    },
    Info {
        name: "tracing",
        krate: "tracing-appender",
        api: "`tracing::info!`",
        setup: "`tracing_subscriber::fmt()` (default format, no ANSI) over `tracing_appender::non_blocking` (`lossy(false)`, default 128,000-line channel) over `rolling::never(dir, file)`",
        flush: "drop the `WorkerGuard`; its wait is bounded (100 ms + 1 s), so the file is then polled until every line is there",
        synchronous: false,
        feature: Some("peer-tracing"),
        external: None,
    },
    Info {
        name: "spdlog-rs",
        krate: "spdlog-rs",
        api: "`spdlog::info!` (default logger)",
        setup: "default logger = `Logger` (level ≥ info) → `AsyncPoolSink` (own `ThreadPool`, default capacity 8192, `OverflowPolicy::Block`) → `FileSink`, default pattern",
        flush: "`logger.flush()`, then drop the logger and the thread pool (joins its thread after the queued tasks)",
        synchronous: false,
        feature: Some("peer-spdlog"),
        external: None,
    },
    Info {
        name: "ftlog",
        krate: "ftlog",
        api: "`log::info!`",
        setup: "`ftlog::builder().max_log_level(Info).bounded(100_000, true).utc().root(FileAppender::new(path))`, default format (blocking when full, so lossless; the default drops)",
        flush: "drop the `LoggerGuard` (sends a flush and waits for the logger thread's answer)",
        synchronous: false,
        feature: Some("peer-ftlog"),
        external: None,
    },
    Info {
        name: "fast_log",
        krate: "fast_log",
        api: "`log::info!`",
        setup: "`Config::new().file(path).chan_len(Some(100_000)).level(Info)`, default format with UTC time",
        flush: "`log::logger().flush()` (waits on a wait group the writer releases)",
        synchronous: false,
        feature: Some("peer-fast-log"),
        external: None,
    },
    Info {
        name: "log4rs",
        krate: "log4rs",
        api: "`log::info!`",
        setup: "`FileAppender` with the default `PatternEncoder` (`{d} {l} {t} - {m}{n}`), root at info. **Synchronous**: the caller formats and writes under a lock, flushing each record",
        flush: "nothing to wait for (every call has written its line); `log::logger().flush()`",
        synchronous: true,
        feature: Some("peer-log4rs"),
        external: None,
    },
    Info {
        name: "flexi_logger",
        krate: "flexi_logger",
        api: "`log::info!`",
        setup: "`Logger::try_with_str(\"info\").log_to_file(FileSpec::try_from(path)).format_for_files(opt_format).write_mode(WriteMode::Async)` (its default format has no timestamp; `opt_format` is its built-in one with time and level)",
        flush: "`handle.flush()` then `handle.shutdown()` (joins the output thread)",
        synchronous: false,
        feature: Some("peer-flexi"),
        external: None,
    },
    Info {
        name: "quill",
        krate: "quill (C++)",
        api: "`LOG_INFO(logger, ...)` (formats on the backend thread)",
        setup: "`Backend::start()` with default `BackendOptions` (the backend thread sleeps 100 µs when idle); `FileSink` (open mode `w`, default 64 KiB write buffer, no fsync); `Frontend::create_or_get_logger` with the pattern `%(time) %(log_level) [%(thread_id)/%(thread_name)] %(logger): %(message)` (UTC, µs) and the default TSC clock, its calibration done by a first `flush_log()` before anything is timed; default `FrontendOptions`: an `UnboundedBlocking` queue per thread (128 KiB, doubling up to 2 GiB, then blocking; nothing is dropped); `Frontend::preallocate()` on each logging thread. A C++ program of its own (`bench/cpp/quill_peer.cpp`, g++ `-O3 -march=x86-64`)",
        flush: "`logger->flush_log()`, then `Backend::stop()` (drains every queue, flushes the sink, joins the backend thread)",
        synchronous: false,
        feature: None,
        external: Some(External {
            program: "cpp/quill-peer",
            build: "bench/cpp/build",
        }),
    },
];

/// Looks a library up by name.
pub fn info(name: &str) -> Option<&'static Info> {
    ALL.iter().find(|i| i.name == name)
}

/// Counters a library reports about itself after it stopped.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct SelfStats {
    /// Records it accepted.
    pub logged: u64,
    /// Records it wrote.
    pub written: u64,
    /// Records it dropped.
    pub dropped: u64,
    /// Times a caller found its queue full.
    pub full_waits: u64,
}

/// One library under test.
pub trait Peer {
    /// What must stay alive while logging.
    type Guard;

    /// Installs the library, writing at INFO and above into
    /// `dir/`[`FILE_NAME`].
    fn init(dir: &Path) -> anyhow::Result<Self::Guard>;

    /// Called on each logging thread before its first call: the
    /// library's own preparation of a thread, where it has one (logbraid's
    /// `preallocate`, as quill's and NanoLog's); nothing by default.
    fn thread_start() {}

    /// The measured call, at INFO.
    fn info(index: u64, ms: u64);

    /// The same call at DEBUG, which the level filter rejects.
    fn debug(index: u64, ms: u64);

    /// Flushes and stops; when this returns the library says the file is
    /// complete.
    fn finish(guard: Self::Guard) -> anyhow::Result<Option<SelfStats>>;
}

/// logbraid through the `log` facade.
#[derive(Debug)]
pub struct Logbraid;

impl Peer for Logbraid {
    type Guard = logbraid::Guard;

    fn init(dir: &Path) -> anyhow::Result<Self::Guard> {
        let guard = logbraid::Builder::new()
            .level("info")
            .file(logbraid::sink::RollingFile::builder(dir.join(FILE_NAME)))?
            .init()?;
        Ok(guard)
    }

    fn thread_start() {
        logbraid::preallocate();
    }

    #[inline(always)]
    fn info(index: u64, ms: u64) {
        log::info!("request {} served in {} ms", index, ms);
    }

    #[inline(always)]
    fn debug(index: u64, ms: u64) {
        log::debug!("request {} served in {} ms", index, ms);
    }

    fn finish(guard: Self::Guard) -> anyhow::Result<Option<SelfStats>> {
        drop(guard);
        let stats = logbraid::global()
            .context("logbraid::global() is None after init")?
            .stats();
        Ok(Some(SelfStats {
            logged: stats.logged,
            written: stats.written,
            dropped: stats.dropped,
            full_waits: stats.full_waits,
        }))
    }
}

/// logbraid through its own macros: the same logger as [`Logbraid`], the
/// message formatted on the writer thread.
#[derive(Debug)]
pub struct LogbraidMacros;

impl Peer for LogbraidMacros {
    type Guard = logbraid::Guard;

    fn init(dir: &Path) -> anyhow::Result<Self::Guard> {
        Logbraid::init(dir)
    }

    fn thread_start() {
        Logbraid::thread_start();
    }

    #[inline(always)]
    fn info(index: u64, ms: u64) {
        logbraid::info!("request {} served in {} ms", index, ms);
    }

    #[inline(always)]
    fn debug(index: u64, ms: u64) {
        logbraid::debug!("request {} served in {} ms", index, ms);
    }

    fn finish(guard: Self::Guard) -> anyhow::Result<Option<SelfStats>> {
        Logbraid::finish(guard)
    }
}

#[cfg(feature = "peer-tracing")]
mod tracing_peer {
    use super::*;

    /// tracing-subscriber `fmt` over tracing-appender's non-blocking writer.
    #[derive(Debug)]
    pub struct Tracing;

    impl Peer for Tracing {
        type Guard = tracing_appender::non_blocking::WorkerGuard;

        fn init(dir: &Path) -> anyhow::Result<Self::Guard> {
            let file = tracing_appender::rolling::never(dir, FILE_NAME);
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .finish(file);
            tracing_subscriber::fmt()
                .with_writer(writer)
                .with_max_level(tracing::Level::INFO)
                .try_init()
                .map_err(|e| anyhow::anyhow!("tracing init: {e}"))?;
            Ok(guard)
        }

        #[inline(always)]
        fn info(index: u64, ms: u64) {
            tracing::info!("request {} served in {} ms", index, ms);
        }

        #[inline(always)]
        fn debug(index: u64, ms: u64) {
            tracing::debug!("request {} served in {} ms", index, ms);
        }

        fn finish(guard: Self::Guard) -> anyhow::Result<Option<SelfStats>> {
            drop(guard);
            Ok(None)
        }
    }
}
#[cfg(feature = "peer-tracing")]
pub use tracing_peer::Tracing;

#[cfg(feature = "peer-spdlog")]
mod spdlog_peer {
    use std::sync::Arc;

    use super::*;
    use spdlog::sink::{AsyncPoolSink, FileSink};
    use spdlog::{Level, LevelFilter, Logger, ThreadPool};

    /// spdlog-rs with an asynchronous pool sink over a file sink.
    #[derive(Debug)]
    pub struct Spdlog;

    impl Peer for Spdlog {
        type Guard = (Arc<Logger>, Arc<ThreadPool>);

        fn init(dir: &Path) -> anyhow::Result<Self::Guard> {
            let file = FileSink::builder().path(dir.join(FILE_NAME)).build_arc()?;
            let pool = ThreadPool::builder().build_arc()?;
            let sink = AsyncPoolSink::builder()
                .sink(file)
                .thread_pool(Arc::clone(&pool))
                .build_arc()?;
            let logger = Logger::builder()
                .sink(sink)
                .level_filter(LevelFilter::MoreSevereEqual(Level::Info))
                .build_arc()?;
            spdlog::set_default_logger(Arc::clone(&logger));
            Ok((logger, pool))
        }

        #[inline(always)]
        fn info(index: u64, ms: u64) {
            spdlog::info!("request {} served in {} ms", index, ms);
        }

        #[inline(always)]
        fn debug(index: u64, ms: u64) {
            spdlog::debug!("request {} served in {} ms", index, ms);
        }

        fn finish(guard: Self::Guard) -> anyhow::Result<Option<SelfStats>> {
            let (logger, pool) = guard;
            logger.flush();
            // The default logger holds the last other reference to the sink
            // and so to the pool: replace it, so dropping `pool` joins the
            // pool's thread once it has run every queued task.
            spdlog::set_default_logger(Logger::builder().build_arc()?);
            drop(logger);
            drop(pool);
            Ok(None)
        }
    }
}
#[cfg(feature = "peer-spdlog")]
pub use spdlog_peer::Spdlog;

#[cfg(feature = "peer-ftlog")]
mod ftlog_peer {
    use super::*;

    /// ftlog, made lossless (it drops on a full queue by default).
    #[derive(Debug)]
    pub struct Ftlog;

    impl Peer for Ftlog {
        type Guard = ftlog::LoggerGuard;

        fn init(dir: &Path) -> anyhow::Result<Self::Guard> {
            let guard = ftlog::builder()
                .max_log_level(ftlog::LevelFilter::Info)
                .bounded(100_000, true)
                .utc()
                .root(ftlog::appender::FileAppender::new(dir.join(FILE_NAME)))
                .try_init()
                .map_err(|e| anyhow::anyhow!("ftlog init: {e}"))?;
            Ok(guard)
        }

        #[inline(always)]
        fn info(index: u64, ms: u64) {
            log::info!("request {} served in {} ms", index, ms);
        }

        #[inline(always)]
        fn debug(index: u64, ms: u64) {
            log::debug!("request {} served in {} ms", index, ms);
        }

        fn finish(guard: Self::Guard) -> anyhow::Result<Option<SelfStats>> {
            drop(guard);
            Ok(None)
        }
    }
}
#[cfg(feature = "peer-ftlog")]
pub use ftlog_peer::Ftlog;

#[cfg(feature = "peer-fast-log")]
mod fast_log_peer {
    use super::*;
    use fast_log::formats::{FastLogFormat, TimeType};

    /// fast_log with a bounded channel, as its README recommends.
    #[derive(Debug)]
    pub struct FastLog;

    impl Peer for FastLog {
        type Guard = ();

        fn init(dir: &Path) -> anyhow::Result<Self::Guard> {
            let path = dir.join(FILE_NAME);
            let path = path.to_str().context("temporary path is not UTF-8")?;
            fast_log::init(
                fast_log::Config::new()
                    .file(path)
                    .chan_len(Some(100_000))
                    .level(log::LevelFilter::Info)
                    .format(FastLogFormat::new().set_time_type(TimeType::Utc)),
            )
            .map_err(|e| anyhow::anyhow!("fast_log init: {e}"))?;
            Ok(())
        }

        #[inline(always)]
        fn info(index: u64, ms: u64) {
            log::info!("request {} served in {} ms", index, ms);
        }

        #[inline(always)]
        fn debug(index: u64, ms: u64) {
            log::debug!("request {} served in {} ms", index, ms);
        }

        fn finish(_guard: Self::Guard) -> anyhow::Result<Option<SelfStats>> {
            log::logger().flush();
            Ok(None)
        }
    }
}
#[cfg(feature = "peer-fast-log")]
pub use fast_log_peer::FastLog;

#[cfg(feature = "peer-log4rs")]
mod log4rs_peer {
    use super::*;
    use log4rs::append::file::FileAppender;
    use log4rs::config::{Appender, Config, Root};
    use log4rs::encode::pattern::PatternEncoder;

    /// log4rs: a synchronous file appender.
    #[derive(Debug)]
    pub struct Log4rs;

    impl Peer for Log4rs {
        type Guard = log4rs::Handle;

        fn init(dir: &Path) -> anyhow::Result<Self::Guard> {
            let file = FileAppender::builder()
                .encoder(Box::new(PatternEncoder::default()))
                .build(dir.join(FILE_NAME))?;
            let config = Config::builder()
                .appender(Appender::builder().build("file", Box::new(file)))
                .build(
                    Root::builder()
                        .appender("file")
                        .build(log::LevelFilter::Info),
                )?;
            Ok(log4rs::init_config(config)?)
        }

        #[inline(always)]
        fn info(index: u64, ms: u64) {
            log::info!("request {} served in {} ms", index, ms);
        }

        #[inline(always)]
        fn debug(index: u64, ms: u64) {
            log::debug!("request {} served in {} ms", index, ms);
        }

        fn finish(guard: Self::Guard) -> anyhow::Result<Option<SelfStats>> {
            log::logger().flush();
            drop(guard);
            Ok(None)
        }
    }
}
#[cfg(feature = "peer-log4rs")]
pub use log4rs_peer::Log4rs;

#[cfg(feature = "peer-flexi")]
mod flexi_peer {
    use super::*;
    use flexi_logger::{FileSpec, LoggerHandle, WriteMode};

    /// flexi_logger in asynchronous write mode.
    #[derive(Debug)]
    pub struct Flexi;

    impl Peer for Flexi {
        type Guard = LoggerHandle;

        fn init(dir: &Path) -> anyhow::Result<Self::Guard> {
            let handle = flexi_logger::Logger::try_with_str("info")?
                .log_to_file(FileSpec::try_from(dir.join(FILE_NAME))?)
                .format_for_files(flexi_logger::opt_format)
                .write_mode(WriteMode::Async)
                .start()?;
            Ok(handle)
        }

        #[inline(always)]
        fn info(index: u64, ms: u64) {
            log::info!("request {} served in {} ms", index, ms);
        }

        #[inline(always)]
        fn debug(index: u64, ms: u64) {
            log::debug!("request {} served in {} ms", index, ms);
        }

        fn finish(guard: Self::Guard) -> anyhow::Result<Option<SelfStats>> {
            guard.flush();
            guard.shutdown();
            drop(guard);
            Ok(None)
        }
    }
}
#[cfg(feature = "peer-flexi")]
pub use flexi_peer::Flexi;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_externals_have_no_feature() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(ALL[i + 1..].iter().all(|b| b.name != a.name), "{}", a.name);
            if a.external.is_some() {
                assert!(a.feature.is_none(), "{}", a.name);
            }
        }
        assert!(info("quill").and_then(|i| i.external).is_some());
    }

    #[test]
    fn reads_the_facts_a_build_recorded() {
        let facts = parse_facts(
            "version 12.1.0\ndescribe v12.1.0-2-gc4f3fa4e\ncompiler g++ (Debian 12.2.0-14) 12.2.0\n\nodd\n",
        );
        assert_eq!(
            facts,
            [
                ("version".to_string(), "12.1.0".to_string()),
                ("describe".to_string(), "v12.1.0-2-gc4f3fa4e".to_string()),
                (
                    "compiler".to_string(),
                    "g++ (Debian 12.2.0-14) 12.2.0".to_string()
                ),
            ]
        );
    }
}
