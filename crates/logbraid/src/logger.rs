//! The handle that logs, and the builder that makes one.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use crate::clock::Clock;
use crate::collect::{Bound, Embedded, EmbeddedOptions, COLLECTOR_ENV};
use crate::config::{Config, ConfigError};
use crate::endpoint::{Addr, Endpoint};
use crate::filter::{Directives, FilterError};
use crate::forward::{check_client, ForwardError, ForwardOptions};
use crate::layout::{Layout, LayoutSpec};
use crate::level::{Level, LevelFilter};
use crate::macros::FormatFn;
use crate::options::Overflow;
use crate::pipeline::{self, Callsite, Inlet, Mode, Settings, Shared, SinkSet, Stats, WaitHook};
use crate::record::{FieldsBuf, Record, Source};
use crate::sink::Sink;
use crate::sink::{Console, RollingFile, RollingFileBuilder};

/// What can go wrong while building a logger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The level directives do not parse.
    #[error("invalid level directives: {0}")]
    Filter(#[from] FilterError),
    /// A sink could not be opened.
    #[error("cannot open sink: {0}")]
    Sink(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The writer thread could not start.
    #[error("cannot start the writer thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A global logger is installed already (by logbraid or another crate).
    #[error("a global logger is already installed")]
    AlreadyInstalled,
    /// The forwarding client could not be set up.
    #[error("cannot forward: {0}")]
    Forward(#[from] ForwardError),
}

/// A handle to a pipeline. Cheap to clone; every clone logs to the same
/// sinks. The pipeline stops when [`Logger::shutdown`] is called or the
/// [`Guard`] returned with it is dropped.
#[derive(Clone)]
pub struct Logger {
    shared: Arc<Shared>,
    filter: Arc<Directives>,
    /// `filter.max_level()` as a byte: the one-load fast path.
    max: Arc<AtomicU8>,
    /// The embedded collector serving this process's children, stopped
    /// before the pipeline so their last records are written.
    children: Arc<Mutex<Option<Embedded>>>,
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger")
            .field("pipeline", &self.shared)
            .field("filter", &self.filter)
            .finish()
    }
}

impl Logger {
    /// Whether a record at `level` for `target` would be logged.
    #[inline]
    pub fn enabled(&self, target: &str, level: Level) -> bool {
        (level as u8) >= self.max.load(Ordering::Relaxed) && self.filter.enabled(target, level)
    }

    /// Whether a directive names a target (else the level alone decides).
    pub(crate) fn filters_by_target(&self) -> bool {
        self.filter.has_targets()
    }

    /// The most verbose level any directive enables.
    pub fn max_level(&self) -> LevelFilter {
        self.filter.max_level()
    }

    /// Logs a record whose message is produced by `message` and whose fields
    /// by `fields`, both writing into buffers the pipeline reuses. The filter
    /// is not consulted: call [`Logger::enabled`] first.
    pub fn log_with(
        &self,
        site: &Callsite<'_>,
        message: fmt::Arguments<'_>,
        fields: &mut dyn FnMut(&mut FieldsBuf),
    ) {
        self.shared.log(site, &mut |buf, fb| {
            match message.as_str() {
                Some(s) => buf.extend_from_slice(s.as_bytes()),
                None => {
                    use std::io::Write;
                    let _ = buf.write_fmt(message);
                }
            }
            fields(fb)
        });
    }

    /// Logs a record whose message and fields `fill` writes into the
    /// buffers it is given.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn log_fill(
        &self,
        site: &Callsite<'_>,
        fill: &mut dyn FnMut(&mut Vec<u8>, &mut FieldsBuf),
    ) {
        self.shared.log(site, fill);
    }

    /// Queues a macro's record whose values, `size` bytes, `write` writes
    /// straight into this thread's ring; false when it cannot (see
    /// [`crate::macros::log`]).
    #[inline(always)]
    pub(crate) fn try_log_deferred(
        &self,
        level: Level,
        site: &'static crate::macros::Site,
        format: crate::macros::FormatFn,
        size: usize,
        write: &mut impl FnMut(&mut crate::macros::Out<'_>),
    ) -> bool {
        self.shared
            .try_log_deferred(level, site, format, size, write)
    }

    /// Logs a record of a logbraid macro (see [`crate::macros`]).
    #[inline]
    pub(crate) fn log_deferred<F: FnMut(&mut Vec<u8>, &mut FieldsBuf)>(
        &self,
        level: Level,
        site: &'static crate::macros::Site,
        format: crate::macros::FormatFn,
        fill: F,
    ) {
        self.shared.log_deferred(level, site, format, fill);
    }

    /// Logs a message given as text, with fields filled by `fields`; for
    /// bindings that already hold the formatted message.
    pub fn log_str(
        &self,
        site: &Callsite<'_>,
        message: &str,
        fields: &mut dyn FnMut(&mut FieldsBuf),
    ) {
        self.shared.log(site, &mut |buf, fb| {
            buf.extend_from_slice(message.as_bytes());
            fields(fb)
        });
    }

    /// Logs a record whose message is made later, on the writer's thread
    /// (or on the caller's, where the record is written directly): `fill`
    /// writes the message's values, in an encoding of the binding's own,
    /// and its fields; `format` turns the values into the message text
    /// and returns whether that text is plain ([`Record::plain_message`]:
    /// `false` is always right, `true` a promise the layouts rely on).
    /// For bindings whose call sites are not static (the macros use a
    /// static site instead). `format` must not fail or log: whatever can
    /// fail is decided by the caller before choosing this way.
    pub fn log_values(
        &self,
        site: &Callsite<'_>,
        format: FormatFn,
        fill: &mut dyn FnMut(&mut Vec<u8>, &mut FieldsBuf),
    ) {
        self.shared.log_values(site, format, fill);
    }

    /// Logs a message given as bytes with encoded fields (see
    /// [`crate::Fields`]); for bindings that already hold the text.
    pub fn log_bytes(&self, site: &Callsite<'_>, message: &[u8], fields: &[u8]) {
        self.shared.log(site, &mut |buf, fb| {
            buf.extend_from_slice(message);
            if !fields.is_empty() {
                fb.clear();
                fb.extend_encoded(fields);
            }
        });
    }

    /// Logs a record received from another process, keeping its time,
    /// thread and `source`. The filter is not consulted.
    pub fn log_record(&self, record: &Record<'_>, source: &Arc<Source>) {
        self.shared.log_foreign(record, source);
    }

    /// Where records received from other processes enter this logger's
    /// pipeline (what an embedded collector takes).
    pub fn inlet(&self) -> Inlet {
        Inlet::new(Arc::clone(&self.shared))
    }

    /// Makes the calling thread's queue now and maps its memory in, so
    /// neither this thread's first record nor the first lap of its queue
    /// pays for them (see [`crate::preallocate`]).
    pub fn preallocate(&self) {
        self.shared.preallocate();
    }

    /// Returns once every record logged before the call has been written
    /// (and fsynced, when the pipeline was built with `flush_sync`).
    pub fn flush(&self) {
        self.shared.flush();
    }

    /// Flushes and stops the writer thread. Records logged afterwards are
    /// written by the caller directly, so nothing is lost. Idempotent.
    pub fn shutdown(&self) {
        if self.shared.orphaned() {
            // Forked: the collector's threads and the writer stayed in the
            // parent, which shuts them down.
            return;
        }
        let children = self
            .children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(c) = children {
            c.shutdown(CHILDREN_GRACE);
            // The variable stays (the environment is written at most once);
            // a child started from now on finds no socket behind it and
            // writes its own files, and the next logger of this process
            // that collects binds the same address again.
            if let Some(e) = lock_exported().as_mut() {
                e.served = false;
            }
        }
        self.shared.shutdown();
    }

    /// The address children forward to (the value of `LOGBRAID_COLLECTOR`),
    /// when this logger runs an embedded collector.
    pub fn collector_address(&self) -> Option<String> {
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(Embedded::address)
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }
}

/// Shuts the pipeline down when dropped: every record logged before the
/// drop is written.
#[must_use = "dropping the guard shuts the logger down at once"]
#[derive(Debug)]
pub struct Guard {
    logger: Logger,
}

impl Guard {
    /// The logger this guard stops.
    pub fn logger(&self) -> &Logger {
        &self.logger
    }
}

impl From<Logger> for Inlet {
    fn from(logger: Logger) -> Inlet {
        logger.inlet()
    }
}

impl From<&Logger> for Inlet {
    fn from(logger: &Logger) -> Inlet {
        logger.inlet()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.logger.shutdown();
    }
}

/// Builds a [`Logger`].
///
/// | setting | default |
/// |---|---|
/// | level | `LOGBRAID_LEVEL`, else `RUST_LOG`, else `info` |
/// | mode | [`Mode::NonBlocking`] |
/// | queue size | 1 MiB per logging thread |
/// | overflow | [`Overflow::Block`] (lossless) |
/// | flush fsyncs | no |
/// | sinks | none given: the console (stderr) |
/// | children | on when a file is configured: an embedded collector takes the records of child processes |
/// | wait hook | none: a caller waiting for room under [`Overflow::Block`] just waits |
/// | inherit collector | on: with `LOGBRAID_COLLECTOR` set, every record goes to that collector instead of the sinks |
/// | signals | on: SIGTERM, SIGINT and SIGHUP, where still at their default action, flush first, for at most 5 s (see [`Builder::signals`], [`Builder::signal_flush_limit`]) |
///
/// A process that finds `LOGBRAID_COLLECTOR` (set by a parent's embedded
/// collector) forwards to it and opens none of the files configured here,
/// so a file only ever has one writer; its console sinks are left out too,
/// since the parent's sinks show its records.
pub struct Builder {
    level: Option<String>,
    mode: Mode,
    queue_bytes: usize,
    overflow: Overflow,
    flush_sync: bool,
    clock: Option<Arc<dyn Clock>>,
    wait_hook: Option<WaitHook>,
    sinks: Vec<(Box<dyn Sink>, LevelFilter)>,
    children: Option<bool>,
    inherit: bool,
    has_file: bool,
    signals: bool,
    signal_flush_limit: Duration,
}

/// How long a parent's shutdown waits for children still connected.
const CHILDREN_GRACE: Duration = Duration::from_secs(2);

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("level", &self.level)
            .field("mode", &self.mode)
            .field("queue_bytes", &self.queue_bytes)
            .field("overflow", &self.overflow)
            .field("flush_sync", &self.flush_sync)
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            level: None,
            mode: Mode::NonBlocking,
            queue_bytes: crate::config::DEFAULT_QUEUE_BYTES,
            overflow: Overflow::Block,
            flush_sync: false,
            clock: None,
            wait_hook: None,
            sinks: Vec::new(),
            children: None,
            inherit: true,
            has_file: false,
            signals: true,
            signal_flush_limit: crate::sys::signal::DEFAULT_FLUSH_LIMIT,
        }
    }
}

impl Builder {
    /// A builder with the defaults in the table above.
    pub fn new() -> Self {
        Self::default()
    }

    /// Level directives, e.g. `info,my_crate::db=debug,hyper=warn`. Set
    /// here, they take precedence over the environment.
    pub fn level(mut self, directives: impl Into<String>) -> Self {
        self.level = Some(directives.into());
        self
    }

    /// Background writer or caller writes.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Bytes each logging thread may have queued.
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes;
        self
    }

    /// Whether SIGTERM, SIGINT and SIGHUP flush before they end the
    /// process (default on). Each of them still at its default action
    /// when the logger is built gets a handler that wakes a thread of
    /// logbraid's: it flushes every logger (at most 5 s), restores the
    /// default action and raises the signal again, so the process ends as
    /// it would have, killed by that signal, with its records written. A
    /// signal the program handles or ignores is left alone, and so is one
    /// whose handler the program installs later (signal-hook, tokio and
    /// ctrlc chain to ours, which then steps aside): the program's own
    /// shutdown flushes. A second signal during the flush ends the process
    /// at once. Off: the signals keep their default action.
    pub fn signals(mut self, yes: bool) -> Self {
        self.signals = yes;
        self
    }

    /// How long a signal waits for the flush (default 5 s) before the
    /// process ends anyway, saying on stderr that records were lost: a
    /// collector that stopped answering must not keep a stopped service
    /// alive. The same limit bounds the flush at exit (`atexit`, after
    /// `main` returns or `std::process::exit`) and after a panic.
    /// Process-wide: the last logger built with signals on sets it.
    pub fn signal_flush_limit(mut self, limit: Duration) -> Self {
        self.signal_flush_limit = limit;
        self
    }

    /// What happens when a thread's queue is full.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Whether [`Logger::flush`] also fsyncs the files.
    pub fn flush_sync(mut self, yes: bool) -> Self {
        self.flush_sync = yes;
        self
    }

    /// The clock that timestamps records (tests inject one).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Runs every wait of a caller for room in its full queue (under
    /// [`Overflow::Block`]) inside `hook`, which must call the function it
    /// is given exactly once. A language binding releases its interpreter
    /// lock there, so the program's other threads go on while one waits.
    pub fn on_full_wait(mut self, hook: WaitHook) -> Self {
        self.wait_hook = Some(hook);
        self
    }

    /// Adds a sink receiving every record that passes the filter.
    pub fn sink(self, sink: impl Sink + 'static) -> Self {
        self.sink_with_level(sink, LevelFilter::TRACE)
    }

    /// Adds a sink receiving only records at `level` or above.
    pub fn sink_with_level(mut self, sink: impl Sink + 'static, level: LevelFilter) -> Self {
        self.sinks.push((Box::new(sink), level));
        self
    }

    /// Adds the console, with the text layout unless it was given a
    /// layout: on a terminal (or with colour forced) that is the
    /// [`PrettyLayout`](crate::layout::PrettyLayout)'s coloured columns,
    /// elsewhere the plain text line.
    pub fn console(self, console: Console) -> Self {
        let console = if console.has_layout() {
            console
        } else {
            let color = console.wants_color();
            console.layout(LayoutSpec::Text.build(color))
        };
        self.sink(console)
    }

    /// Adds a rotating file. Opening it can fail: the error surfaces here,
    /// naming the path. In a process that forwards to a parent's collector
    /// (see the type's documentation) the file is not opened.
    pub fn file(mut self, file: RollingFileBuilder) -> Result<Self, Error> {
        self.has_file = true;
        if self.inherited().is_some() {
            return Ok(self);
        }
        let sink = file.build().map_err(|e| Error::Sink(Box::new(e)))?;
        Ok(self.sink(sink))
    }

    /// Whether this process collects the records of its child processes
    /// through an embedded collector whose address it exports in
    /// `LOGBRAID_COLLECTOR`. Default: when a file is configured.
    pub fn children(mut self, yes: bool) -> Self {
        self.children = Some(yes);
        self
    }

    /// Whether a `LOGBRAID_COLLECTOR` found in the environment takes this
    /// process's records instead of its sinks. Default: yes.
    pub fn inherit_collector(mut self, yes: bool) -> Self {
        self.inherit = yes;
        self
    }

    /// Adds a sink that forwards every record to a collector (`unix:PATH`,
    /// `tcp://HOST:PORT`, `tls://HOST:PORT`, or with the `otlp` feature an
    /// OpenTelemetry collector at `otlp-http://HOST:PORT`); [`Logger::flush`]
    /// then returns once the collector has acknowledged (accepted)
    /// everything logged before it.
    pub fn forward(self, options: ForwardOptions) -> Result<Self, Error> {
        let sink = crate::forward::sink(options)?;
        Ok(self.sink(sink))
    }

    /// The parent's collector named by `LOGBRAID_COLLECTOR`, when there is
    /// one to forward to. A value that does not parse, or names a socket
    /// that is gone (the parent exited), is reported once and ignored.
    fn inherited(&self) -> Option<Endpoint> {
        if !self.inherit {
            return None;
        }
        let value = std::env::var(COLLECTOR_ENV)
            .ok()
            .filter(|v| !v.is_empty())?;
        if exported_here().is_some_and(|e| e.address == value) {
            // Our own collector (another logger of this process): not a
            // parent's.
            return None;
        }
        let problem = match Endpoint::parse(&value) {
            Ok(Endpoint {
                addr: Addr::Unix(p),
                ..
            }) if !p.exists() => format!("{} does not exist", p.display()),
            Ok(ep) => match check_client(&ep) {
                Ok(()) => return Some(ep),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "logbraid: ignoring {COLLECTOR_ENV}={value:?} ({problem}); writing to this process's own sinks"
            );
        });
        None
    }

    /// A builder set up from a configuration file's contents (see
    /// [`crate::config`]). Every bad value is reported naming its key.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Builder::from_config_with(config, &mut |spec, color| spec.build(color))
    }

    /// [`Builder::from_config`], with each sink's layout made by `layout`
    /// from its spec and whether that sink is in colour: for a program that
    /// keeps its layouts replaceable (the Python binding's `setFormatter`).
    pub fn from_config_with(
        config: &Config,
        layout: &mut dyn FnMut(&LayoutSpec, bool) -> Box<dyn Layout>,
    ) -> Result<Self, ConfigError> {
        let config = config.clone().checked()?;
        let key =
            |k: &str, e: &dyn fmt::Display| ConfigError::new(Some(k.to_string()), e.to_string());
        let mut b = Builder::new()
            .level(config.level.to_string())
            .mode(config.mode)
            .queue_bytes(config.queue_bytes)
            .overflow(config.overflow)
            .flush_sync(config.flush_sync)
            .signals(config.signals);
        if let Some(endpoint) = config.forward {
            // Everything goes to the collector: no local sinks, and the
            // collector is the one children reach too.
            return b
                .inherit_collector(false)
                .children(false)
                .forward(
                    ForwardOptions::new(endpoint)
                        .token(config.token.unwrap_or_default())
                        .tls(config.tls)
                        .or_env(),
                )
                .map_err(|e| match e {
                    Error::Forward(ForwardError::Tls { key, reason }) => {
                        ConfigError::new(Some(key.to_string()), reason)
                    }
                    e => key("forward", &e),
                });
        }
        if let Some(yes) = config.children {
            b = b.children(yes);
        }
        let spec = |k: &str, format: &str, datefmt: Option<&str>| {
            LayoutSpec::parse(format, datefmt).map_err(|e| key(k, &e))
        };
        if config.console.enabled {
            let c = &config.console;
            let spec = spec("console.format", &c.format, c.datefmt.as_deref())?;
            let console = Console::new(c.stream).color(c.color);
            let color = console.wants_color();
            b = b.sink(console.layout(layout(&spec, color)));
        }
        if config.file.is_some() {
            b.has_file = true;
        }
        if let Some(f) = config.file.as_ref().filter(|_| b.inherited().is_none()) {
            let spec = spec("file.format", &f.format, f.datefmt.as_deref())?;
            if f.truncate {
                empty_file(&f.path).map_err(|e| key("file.path", &e))?;
            }
            let mut fb = RollingFile::builder(&f.path)
                .layout(layout(&spec, false))
                .naming(f.naming)
                .compression(f.compress)
                .local_time(f.local_time)
                .week_starts(f.week_starts);
            if let Some(n) = f.max_bytes {
                fb = fb.max_bytes(n);
            }
            if let Some(e) = f.rotate {
                fb = fb.every(e);
            }
            if let Some(n) = f.backup_count {
                fb = fb.backup_count(n as usize);
            }
            if let Some(d) = f.max_age {
                fb = fb.max_age(d);
            }
            if let Some(n) = f.max_total_bytes {
                fb = fb.max_total_bytes(n);
            }
            b = b.sink(fb.build().map_err(|e| key("file.path", &e))?);
        }
        Ok(b)
    }

    fn directives(&self) -> Result<Directives, Error> {
        if let Some(l) = &self.level {
            return Ok(Directives::parse(l)?);
        }
        Ok(Directives::from_env()?.unwrap_or(Directives::parse("info")?))
    }

    /// Starts the pipeline and returns a handle and the guard that stops it.
    pub fn build(self) -> Result<(Logger, Guard), Error> {
        crate::sys::fork::register(crate::sys::fork::Rank::Logger, hold_for_fork);
        let filter = self.directives()?;
        let inherited = self.inherited();
        let want_children = inherited.is_none()
            && self.children.unwrap_or(self.has_file)
            && !exported_here().is_some_and(|e| e.served);
        // The collector's socket is bound and its address exported before
        // this build starts a thread; it is served once the logger exists.
        let bound = if want_children {
            bind_for_children()
        } else {
            None
        };
        let mut sinks = SinkSet::new();
        match inherited {
            Some(endpoint) => {
                let sink = crate::forward::sink(ForwardOptions::new(endpoint).or_env())?;
                sinks.push(sink, LevelFilter::TRACE);
            }
            None => {
                for (s, l) in self.sinks {
                    sinks.push(s, l);
                }
            }
        }
        if sinks.is_empty() {
            let console = Console::stderr();
            let layout = LayoutSpec::Text.build(console.wants_color());
            sinks.push(Box::new(console.layout(layout)), LevelFilter::TRACE);
        }
        let shared = Shared::start(
            Settings {
                mode: self.mode,
                ring_bytes: self.queue_bytes,
                overflow: self.overflow,
                flush_sync: self.flush_sync,
                clock: self.clock,
                wait_hook: self.wait_hook,
                signals: self.signals.then_some(self.signal_flush_limit),
            },
            sinks,
        )
        .map_err(Error::Thread)?;
        let max = Arc::new(AtomicU8::new(filter.max_level().to_u8()));
        let logger = Logger {
            shared,
            filter: Arc::new(filter),
            max,
            children: Arc::new(Mutex::new(None)),
        };
        if let Some(bound) = bound {
            match bound.serve(&logger, EmbeddedOptions::default()) {
                Ok(c) => {
                    if let Some(e) = lock_exported().as_mut() {
                        e.served = true;
                    }
                    *logger.children.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
                }
                Err(e) => no_collector(&e),
            }
        }
        install_hooks();
        Ok((logger.clone(), Guard { logger }))
    }
}

/// Empties the log file at `path` if it exists (`truncate`), before the
/// rolling file opens it for appending; a missing file is left to it.
fn empty_file(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(std::io::Error::new(
            e.kind(),
            format!("cannot empty {}: {e}", path.display()),
        )),
    }
}

/// What this process exported in `LOGBRAID_COLLECTOR`, with the pid that
/// did: a forked child inherits the memory but is another process, so the
/// value is a parent's again.
#[derive(Clone, Debug)]
struct Exported {
    pid: u32,
    address: String,
    /// Whether a collector of this process serves the address now.
    served: bool,
}

static EXPORTED: Mutex<Option<Exported>> = Mutex::new(None);

fn lock_exported() -> std::sync::MutexGuard<'static, Option<Exported>> {
    EXPORTED.lock().unwrap_or_else(|e| e.into_inner())
}

fn exported_here() -> Option<Exported> {
    lock_exported()
        .as_ref()
        .filter(|e| e.pid == std::process::id())
        .cloned()
}

/// Binds the socket of a collector for child processes and makes sure its
/// address is in `LOGBRAID_COLLECTOR`, before the caller starts a thread.
///
/// The environment is written once in the life of the process, here, by
/// the first logger that collects, and never again (not even to withdraw
/// the address at shutdown): `setenv` while another thread reads the
/// environment is undefined behaviour in C (`getenv` in the C library's
/// time and name-resolution functions), so the write happens before the
/// build starts its writer, signal and collector threads. The only thread
/// of ours that can be older is the compression worker of a rolling file
/// built before the logger, which reads no environment; none of our
/// threads calls the C library's time functions (dates go through jiff).
/// A later logger binds the same address again.
fn bind_for_children() -> Option<Bound> {
    let again = exported_here().map(|e| e.address);
    let bound = match &again {
        Some(address) => {
            let path = address.strip_prefix("unix:").unwrap_or(address);
            Bound::again(std::path::Path::new(path))
        }
        None => Bound::new(),
    };
    let bound = match bound {
        Ok(b) => b,
        Err(e) => {
            no_collector(&e);
            return None;
        }
    };
    if again.is_none() {
        std::env::set_var(COLLECTOR_ENV, bound.address());
        *lock_exported() = Some(Exported {
            pid: std::process::id(),
            address: bound.address(),
            served: false,
        });
    }
    Some(bound)
}

fn no_collector(e: &std::io::Error) {
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "logbraid: cannot start the collector for child processes ({e}); children will write their own files"
    );
}

static GLOBAL: Mutex<Option<Logger>> = Mutex::new(None);

/// The locks of this module, held across a fork (see `crate::sys::fork`).
pub(crate) fn hold_for_fork(held: &mut crate::sys::fork::Held) {
    crate::sys::fork::hold(held, &EXPORTED);
    crate::sys::fork::hold(held, &GLOBAL);
}

#[cfg(any(feature = "log", feature = "tracing"))]
pub(crate) fn set_global(logger: Logger) {
    crate::macros::install(&logger);
    // The logger replaced is dropped after the lock is let go.
    let _old = GLOBAL
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .replace(logger);
}

/// The logger installed by [`Builder::init`], if any.
pub fn global() -> Option<Logger> {
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Makes the calling thread's queue in the installed logger now, and maps
/// its memory in: call it at the start of a thread whose calls must stay
/// fast from the first, as quill's and NanoLog's `preallocate`.
///
/// Otherwise a thread's queue (the builder's `queue_bytes`) is made by its
/// first record and its pages are mapped in by the kernel as records
/// first fill them: about one call in 70 of the first lap of a 1 MiB queue
/// then takes a page fault (microseconds, where a call takes tens of
/// nanoseconds). That is the default because a queue mapped in costs its
/// full size in memory at once, for every thread that ever logs.
///
/// Nothing while no logger is installed, in synchronous mode, or in a
/// forked child.
pub fn preallocate() {
    if let Some(logger) = crate::macros::installed() {
        logger.preallocate();
    }
}

/// Flushes every live logger of the process.
pub fn flush_all() {
    pipeline::flush_all();
}

extern "C" fn at_exit() {
    crate::sys::signal::flush_all_bounded("exit", pipeline::flush_all);
}

/// Installs, once per process, a panic hook that flushes every logger
/// after the previous hook ran, and an `atexit` handler that flushes them
/// when the process exits (including through `std::process::exit`).
fn install_hooks() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            crate::sys::signal::flush_all_bounded("panic", pipeline::flush_all);
        }));
        // SAFETY: at_exit is an `extern "C" fn()` that never unwinds
        // (flush_all catches nothing but panics nowhere on its own).
        unsafe {
            libc::atexit(at_exit);
        }
    });
}
