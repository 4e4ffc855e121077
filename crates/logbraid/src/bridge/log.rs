//! The `log` facade: [`Builder::init`](crate::Builder::init) installs a
//! logger that hands `log` records to a logbraid pipeline.

use crate::level::{Level, LevelFilter};
use crate::logger::{set_global, Builder, Error, Guard, Logger};
use crate::pipeline::Callsite;
use crate::record::FieldsBuf;

/// Maps a `log` level.
pub fn level_from_log(l: log::Level) -> Level {
    match l {
        log::Level::Error => Level::Error,
        log::Level::Warn => Level::Warn,
        log::Level::Info => Level::Info,
        log::Level::Debug => Level::Debug,
        log::Level::Trace => Level::Trace,
    }
}

fn filter_to_log(f: LevelFilter) -> log::LevelFilter {
    match f {
        LevelFilter::Off => log::LevelFilter::Off,
        LevelFilter::Level(Level::Trace) => log::LevelFilter::Trace,
        LevelFilter::Level(Level::Debug) => log::LevelFilter::Debug,
        LevelFilter::Level(Level::Info) => log::LevelFilter::Info,
        LevelFilter::Level(Level::Warn) => log::LevelFilter::Warn,
        LevelFilter::Level(Level::Error | Level::Critical) => log::LevelFilter::Error,
    }
}

/// A `log::Log` implementation over a [`Logger`]; install it yourself with
/// `log::set_boxed_logger` when `Builder::init` does not fit.
#[derive(Debug, Clone)]
pub struct LogBridge {
    logger: Logger,
}

impl LogBridge {
    /// Wraps a logger.
    pub fn new(logger: Logger) -> Self {
        LogBridge { logger }
    }
}

struct KvCollector<'a>(&'a mut FieldsBuf);

impl<'kvs> log::kv::VisitSource<'kvs> for KvCollector<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        use crate::record::Value;
        let k = key.as_str();
        if let Some(v) = value.to_i64() {
            self.0.push(k, Value::I64(v));
        } else if let Some(v) = value.to_u64() {
            self.0.push(k, Value::U64(v));
        } else if let Some(v) = value.to_f64() {
            self.0.push(k, Value::F64(v));
        } else if let Some(v) = value.to_bool() {
            self.0.push(k, Value::Bool(v));
        } else if let Some(s) = value.to_borrowed_str() {
            self.0.push_str(k, s);
        } else {
            self.0.push_fmt(k, format_args!("{value}"));
        }
        Ok(())
    }
}

impl log::Log for LogBridge {
    #[inline]
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.logger
            .enabled(metadata.target(), level_from_log(metadata.level()))
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = level_from_log(record.level());
        if !self.logger.enabled(record.target(), level) {
            return;
        }
        let site = Callsite {
            level,
            target: record.target(),
            module: record.module_path(),
            file: record.file(),
            line: record.line(),
            function: None,
        };
        let kvs = record.key_values();
        self.logger.log_with(&site, *record.args(), &mut |fields| {
            if kvs.count() > 0 {
                let _ = kvs.visit(&mut KvCollector(fields));
            }
        });
    }

    fn flush(&self) {
        self.logger.flush();
    }
}

pub(crate) fn install(logger: Logger) -> Result<(), Error> {
    let max = filter_to_log(logger.max_level());
    log::set_boxed_logger(Box::new(LogBridge::new(logger))).map_err(|_| Error::AlreadyInstalled)?;
    log::set_max_level(max);
    Ok(())
}

impl Builder {
    /// Builds, and installs the logger behind the `log` facade. Keep the
    /// guard alive until the end of `main`.
    pub fn init(self) -> Result<Guard, Error> {
        let (logger, guard) = self.build()?;
        install(logger.clone())?;
        set_global(logger);
        Ok(guard)
    }
}
