//! The sinks behind `basicConfig` and each `logbraid.Handler`: a core
//! pipeline built from the keywords, with layouts `setFormatter` can
//! replace, and rebuilt in a forked child to forward to the parent.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use logbraid::collect::{Embedded, EmbeddedOptions, COLLECTOR_ENV};
use logbraid::config::{self, Config, ConfigError, ConsoleConfig, FileConfig};
use logbraid::endpoint::Endpoint;
use logbraid::forward::TlsOptions;
use logbraid::layout::{Layout, LayoutSpec, PrettyLayout, TextLayout};
use logbraid::macros::Buf as _;
use logbraid::{Builder, Callsite, Compression, FieldsBuf, Guard, Mode, Weekday, When};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::record::report_format_error;
use crate::{bad, cpython, deferred, lock};

/// What a pipeline was built from, kept so that a forked child can build
/// its own (forwarding to the parent) and `shutdown` can be undone by
/// nobody: the core's settings, made from the keywords, and the one layout
/// every sink starts with.
#[derive(Clone, Debug)]
struct Spec {
    config: Config,
    layout: LayoutSpec,
    console_style: ConsoleStyle,
    /// How long a signal (or the exit) waits for the flush; the core's
    /// default when `None`.
    flush_limit: Option<Duration>,
}

struct Live {
    /// The layouts of this pipeline's sinks, which `setFormatter` replaces.
    switches: Switches,
    /// Shared, so a call takes it out of the lock with one increment.
    logger: std::sync::Arc<logbraid::Logger>,
    /// Stops the pipeline when the Python object goes away.
    _guard: Option<Guard>,
    /// The collector this pipeline runs for forked and spawned children,
    /// when it is not the one the core exported in `LOGBRAID_COLLECTOR`.
    own_collector: Option<Embedded>,
    /// Where a child's records go: this pipeline's collector, or the one
    /// it forwards to.
    upstream: Option<String>,
}

/// A sink's layout that can be replaced while the pipeline runs, for
/// `logging.Handler.setFormatter` (dictConfig and fileConfig call it after
/// the handler is built).
#[derive(Debug)]
struct SwitchLayout(Shared<Box<dyn Layout>>);

type Shared<T> = std::sync::Arc<Mutex<T>>;

impl Layout for SwitchLayout {
    fn format(&mut self, record: &logbraid::Record<'_>, out: &mut Vec<u8>) {
        lock(&self.0).format(record, out)
    }
    fn wants_columns(&self) -> bool {
        lock(&self.0).wants_columns()
    }
    fn set_columns(&mut self, columns: Option<usize>) {
        lock(&self.0).set_columns(columns)
    }
}

/// How the console looks in colour, that is on a terminal (or with
/// `FORCE_COLOR`): the `console_style` keyword. Without colour the console
/// always writes the pipeline's layout, plain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConsoleStyle {
    /// Columns ([`PrettyLayout`]) unless a `format` (or JSON) was given,
    /// which is then coloured (the default).
    Auto,
    /// Columns whatever the layout; `format` still applies off a
    /// terminal and to files.
    Pretty,
    /// Columns as Rich's `RichHandler` shows them (logging_mp's console).
    Rich,
    /// The pipeline's layout in colour, never columns.
    Plain,
}

impl ConsoleStyle {
    fn parse(word: Option<&str>) -> PyResult<ConsoleStyle> {
        match word {
            None => Ok(ConsoleStyle::Auto),
            Some("pretty") => Ok(ConsoleStyle::Pretty),
            Some("rich") => Ok(ConsoleStyle::Rich),
            Some("plain") => Ok(ConsoleStyle::Plain),
            Some(other) => Err(bad(
                "console_style",
                format!("{other:?} is not one of: pretty, rich, plain"),
            )),
        }
    }

    /// The layout of a sink built from `spec`, in colour or not (only the
    /// console is ever in colour).
    fn layout(self, spec: &LayoutSpec, color: bool) -> Box<dyn Layout> {
        if !color {
            return spec.build(false);
        }
        let columns =
            |layout: PrettyLayout| -> Box<dyn Layout> { Box::new(layout.python_level_names(true)) };
        match (self, spec) {
            (ConsoleStyle::Rich, _) => columns(PrettyLayout::rich()),
            (ConsoleStyle::Pretty, _) | (ConsoleStyle::Auto, LayoutSpec::Text) => {
                columns(PrettyLayout::new())
            }
            (ConsoleStyle::Plain, LayoutSpec::Text) => Box::new(TextLayout::new().with_color(true)),
            _ => spec.build(true),
        }
    }
}

/// Every switchable layout of a pipeline, with whether its sink is in
/// colour.
struct Switches {
    layouts: Vec<(Shared<Box<dyn Layout>>, bool)>,
    style: ConsoleStyle,
}

impl Switches {
    fn new(style: ConsoleStyle) -> Self {
        Switches {
            layouts: Vec::new(),
            style,
        }
    }

    fn add(&mut self, spec: &LayoutSpec, color: bool) -> Box<dyn Layout> {
        let inner = std::sync::Arc::new(Mutex::new(self.style.layout(spec, color)));
        self.layouts.push((std::sync::Arc::clone(&inner), color));
        Box::new(SwitchLayout(inner))
    }

    fn set(&self, spec: &LayoutSpec, style: ConsoleStyle) {
        for (inner, color) in &self.layouts {
            *lock(inner) = style.layout(spec, *color);
        }
    }
}

/// The sinks of `basicConfig` or of one `logbraid.Handler`: a Rust
/// pipeline with a background writer.
#[pyclass(module = "logbraid._logbraid", frozen)]
pub(crate) struct Pipeline {
    spec: Spec,
    live: Mutex<Option<Live>>,
    shut: std::sync::atomic::AtomicBool,
    /// The `logbraid.Handler` whose `handle` is [`Pipeline::handle`].
    pub(crate) handler: std::sync::OnceLock<HandlerLink>,
}

/// What `handle` needs of its `logbraid.Handler`: the handler's filter
/// list (the same list object `addFilter` changes) and a weak reference
/// to the handler, for the rare paths that go through Python.
pub(crate) struct HandlerLink {
    pub(crate) filters: Py<pyo3::types::PyList>,
    pub(crate) handler: Py<PyAny>,
}

/// A keyword's value read by the core type's own parser; its error is
/// named by the keyword.
fn word<T: std::str::FromStr>(param: &str, v: Option<&str>) -> PyResult<Option<T>>
where
    T::Err: std::fmt::Display,
{
    v.map(|v| v.parse().map_err(|e| bad(param, e))).transpose()
}

/// A number of seconds given to `param`: finite and not negative.
fn seconds(param: &str, t: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(t)
        .map_err(|_| bad(param, format!("{t} is not a number of seconds >= 0")))
}

/// A core settings error, named by the keyword it came from.
fn config_error(e: ConfigError) -> PyErr {
    let key = match e.key.as_deref() {
        Some("file.path") => "file",
        Some("queue_bytes") => "queue_size",
        Some(k) => k,
        None => return PyValueError::new_err(e.to_string()),
    };
    bad(key, e.reason)
}

impl Spec {
    /// Starts the pipeline: forwarding to `forward_to` (a forked child's
    /// parent) when given, else as the keywords said.
    fn build(&self, forward_to: Option<&str>, children: bool) -> PyResult<Live> {
        let mut config = self.config.clone();
        if let Some(addr) = forward_to {
            config.forward = Some(Endpoint::parse(addr).map_err(|e| bad("forward", e))?);
        }
        // In a child of a configured process the core forwards to the
        // parent's collector instead of opening the files.
        config.children = Some(children);
        // A process that forwards names its target in LOGBRAID_COLLECTOR
        // for its children before it builds the pipeline (the environment
        // is written before any thread of ours starts): that is not a
        // parent's collector to defer to, and this pipeline keeps its
        // other sinks (the console).
        let own_export = children
            && config.forward.as_ref().is_some_and(|f| {
                std::env::var(COLLECTOR_ENV)
                    .is_ok_and(|v| Endpoint::parse(&v).is_ok_and(|e| &e == f))
            });
        let mut switches = Switches::new(self.console_style);
        let builder =
            Builder::from_config_with(&config, &mut |spec, color| switches.add(spec, color))
                .map_err(config_error)?
                .inherit_collector(!own_export)
                .on_full_wait(cpython::wait_without_gil);
        let builder = match self.flush_limit {
            Some(limit) => builder.signal_flush_limit(limit),
            None => builder,
        };
        let (logger, guard) = builder
            .build()
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let mut own_collector = None;
        let target = config.forward.as_ref().map(ToString::to_string);
        let mut upstream = target.or_else(|| logger.collector_address());
        if upstream.is_none() && children && config.file.is_some() {
            // Another pipeline of this process already serves the exported
            // address: this one gets a collector of its own, so that a
            // forked child's records still reach this pipeline's file.
            if let Ok(c) = Embedded::start(logger.clone(), EmbeddedOptions::default()) {
                upstream = Some(c.address());
                own_collector = Some(c);
            }
        }
        Ok(Live {
            switches,
            logger: std::sync::Arc::new(logger),
            _guard: Some(guard),
            own_collector,
            upstream,
        })
    }
}

impl Pipeline {
    fn with_logger<R>(&self, f: impl FnOnce(&logbraid::Logger) -> R) -> Option<R> {
        let live = lock(&self.live);
        live.as_ref().map(|l| f(&l.logger))
    }

    pub(crate) fn current(&self) -> Option<std::sync::Arc<logbraid::Logger>> {
        lock(&self.live)
            .as_ref()
            .map(|l| std::sync::Arc::clone(&l.logger))
    }

    /// Writes one record: message and caller given, fields filled by
    /// `fields` (which may call into Python: no lock is held meanwhile).
    pub(crate) fn write(
        &self,
        py: Python<'_>,
        site: &Callsite<'_>,
        message: &str,
        fields: &mut dyn FnMut(&mut FieldsBuf),
    ) {
        if let Some(logger) = self.current() {
            cpython::holding_gil(py, || logger.log_str(site, message, fields));
        }
    }
}

/// Writes a record from Python to `logger` (a pipeline's; none: the record
/// is not written): its `extra` fields (filled by `extras`), then what
/// `trailers` holds; a formatting error is reported once the record is
/// written. With `fixed`, the static form of `site` (see [`crate::site`]),
/// the record carries its address instead of copies of its strings.
pub(crate) fn write_to(
    logger: Option<&logbraid::Logger>,
    py: Python<'_>,
    site: &Callsite<'_>,
    fixed: Option<&'static logbraid::macros::Site>,
    message: Message<'_>,
    trailers: Trailers<'_>,
    extras: Option<&mut dyn FnMut(&mut FieldsBuf)>,
) {
    let fe = trailers.format_error.as_ref().map(|e| e.to_string());
    // Without fields the values go straight into the queue.
    let plain =
        extras.is_none() && fe.is_none() && trailers.exc_text.is_none() && trailers.stack.is_none();
    let mut extras = extras;
    let mut fields = |f: &mut FieldsBuf| {
        if let Some(extras) = extras.as_mut() {
            extras(f);
        }
        if let Some(e) = &fe {
            f.push_str("format_error", e);
        }
        if let Some(t) = trailers.exc_text {
            f.push_str("exc_text", t);
        }
        if let Some(s) = trailers.stack {
            f.push_str("stack_info", s);
        }
    };
    if let Some(logger) = logger {
        cpython::holding_gil(py, || match (fixed, message) {
            (Some(fixed), Message::Percent(fmt, values)) => log_out_of_line(
                logger,
                site.level,
                fixed,
                deferred::format,
                plain.then(|| deferred::encoded_len(fmt, values)),
                |out| deferred::encode(fmt, values, out),
                |buf, f| {
                    deferred::encode(fmt, values, buf);
                    fields(f)
                },
            ),
            (Some(fixed), Message::Text(text)) => log_out_of_line(
                logger,
                site.level,
                fixed,
                deferred::verbatim,
                plain.then_some(text.len()),
                |out| out.put(text.as_bytes()),
                |buf, f| {
                    buf.extend_from_slice(text.as_bytes());
                    fields(f)
                },
            ),
            (None, Message::Percent(fmt, values)) => {
                logger.log_values(site, deferred::format, &mut |buf, f| {
                    deferred::encode(fmt, values, buf);
                    fields(f)
                })
            }
            (None, Message::Text(text)) => logger.log_str(site, text, &mut fields),
        });
    }
    if let Some(e) = trailers.format_error {
        report_format_error(py, e);
    }
}

#[pymethods]
impl Pipeline {
    #[new]
    #[pyo3(signature = (*, file=None, console=false, json=false, format=None, datefmt=None,
        max_bytes=0, backup_count=0, when=None, compress=None, forward=None,
        queue_size=None, overflow="block", sync=false, children=true, signals=true,
        flush_limit=None, truncate=false, token=None, tls_ca=None, tls_cert=None, tls_key=None,
        tls_server_name=None, console_style=None))]
    fn new(
        file: Option<String>,
        console: bool,
        json: bool,
        format: Option<String>,
        datefmt: Option<String>,
        max_bytes: i64,
        backup_count: i64,
        when: Option<String>,
        compress: Option<String>,
        forward: Option<String>,
        queue_size: Option<i64>,
        overflow: &str,
        sync: bool,
        children: bool,
        signals: bool,
        flush_limit: Option<f64>,
        truncate: bool,
        token: Option<String>,
        tls_ca: Option<PathBuf>,
        tls_cert: Option<PathBuf>,
        tls_key: Option<PathBuf>,
        tls_server_name: Option<String>,
        console_style: Option<&str>,
    ) -> PyResult<Self> {
        let console_style = ConsoleStyle::parse(console_style)?;
        let flush_limit = flush_limit.map(|t| seconds("flush_limit", t)).transpose()?;
        let layout = match (json, &format) {
            (true, Some(_)) => {
                return Err(bad("format", "cannot be given together with json=True"))
            }
            (true, None) => LayoutSpec::Json,
            (false, Some(f)) => {
                LayoutSpec::parse(f, datefmt.as_deref()).map_err(|e| bad("format", e))?
            }
            (false, None) => LayoutSpec::Text,
        };
        let (format, datefmt) = layout.words();
        let when: Option<When> = word("when", when.as_deref())?;
        let compress: Option<Compression> = word("compress", compress.as_deref())?;
        let count = |param: &str, n: i64| {
            u64::try_from(n).map_err(|_| bad(param, format!("{n}: must be 0 (no limit) or more")))
        };
        let max_bytes = count("max_bytes", max_bytes)?;
        let backup_count = count("backup_count", backup_count)?;
        let file = file.map(|path| FileConfig {
            format: format.clone(),
            datefmt: datefmt.clone(),
            max_bytes: Some(max_bytes).filter(|&n| n > 0),
            backup_count: Some(backup_count.min(u64::from(u32::MAX)) as u32).filter(|&n| n > 0),
            rotate: when.map(|w| w.every),
            week_starts: when.map_or(Weekday::Monday, |w| w.week_starts),
            compress: compress.unwrap_or(Compression::None),
            truncate,
            ..FileConfig::new(path)
        });
        let config = Config {
            level: "trace".parse().expect("a level"),
            mode: if sync { Mode::Sync } else { Mode::NonBlocking },
            queue_bytes: match queue_size {
                Some(q) => usize::try_from(q).unwrap_or(0),
                None => config::DEFAULT_QUEUE_BYTES,
            },
            overflow: word("overflow", Some(overflow))?.unwrap_or_default(),
            flush_sync: false,
            signals,
            children: Some(children),
            forward: word("forward", forward.as_deref())?,
            token,
            tls: TlsOptions {
                ca: tls_ca,
                cert: tls_cert,
                key: tls_key,
                server_name: tls_server_name,
            },
            console: ConsoleConfig {
                enabled: console || file.is_none(),
                format,
                datefmt,
                ..ConsoleConfig::default()
            },
            file,
        }
        .checked()
        .map_err(config_error)?;
        let spec = Spec {
            config,
            layout,
            console_style,
            flush_limit,
        };
        let live = spec.build(None, children)?;
        Ok(Pipeline {
            spec,
            live: Mutex::new(Some(live)),
            shut: std::sync::atomic::AtomicBool::new(false),
            handler: std::sync::OnceLock::new(),
        })
    }

    /// The address children forward to, if this pipeline serves them.
    #[getter]
    fn collector_address(&self) -> Option<String> {
        lock(&self.live).as_ref().and_then(|l| l.upstream.clone())
    }

    /// Replaces the layout of every sink: a Python `%`-style `format` with
    /// `datefmt` (on a terminal too: a formatter set by hand is the
    /// console's), or, with `format=None`, the layouts the pipeline was
    /// built with. Records logged before are written first, in the old
    /// layout (the GIL is released meanwhile).
    #[pyo3(signature = (format, datefmt=None))]
    fn set_layout(
        &self,
        py: Python<'_>,
        format: Option<&str>,
        datefmt: Option<&str>,
    ) -> PyResult<()> {
        let (spec, style) = match format {
            Some(f) => (
                LayoutSpec::parse(f, datefmt).map_err(|e| bad("format", e))?,
                ConsoleStyle::Auto,
            ),
            None => (self.spec.layout.clone(), self.spec.console_style),
        };
        if let Some(logger) = self.current() {
            py.detach(|| logger.flush());
        }
        if let Some(live) = lock(&self.live).as_ref() {
            live.switches.set(&spec, style);
        }
        Ok(())
    }

    /// Links the `logbraid.Handler` that uses [`Pipeline::handle`] as its
    /// `handle`: `filters` is its filter list, `handler` a weak reference
    /// to it.
    fn _link_handler(
        &self,
        filters: Bound<'_, pyo3::types::PyList>,
        handler: Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.handler
            .set(HandlerLink {
                filters: filters.unbind(),
                handler: handler.unbind(),
            })
            .map_err(|_| PyRuntimeError::new_err("this pipeline has a handler already"))
    }

    /// Waits until every record logged before the call is written (for a
    /// forwarding pipeline: acknowledged by the collector). The GIL is
    /// released while waiting. `timeout` (seconds) bounds the wait; the
    /// result says whether it finished in time.
    #[pyo3(signature = (timeout=None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let Some(logger) = self.current() else {
            return Ok(true);
        };
        match timeout.map(|t| seconds("timeout", t)).transpose()? {
            None => {
                py.detach(|| logger.flush());
                Ok(true)
            }
            Some(t) => {
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    logger.flush();
                    let _ = tx.send(());
                });
                Ok(py.detach(move || rx.recv_timeout(t).is_ok()))
            }
        }
    }

    /// Flushes and stops the pipeline (and the collector it runs for
    /// children, after their records are in). Records logged afterwards
    /// are still written, by the caller. Idempotent.
    fn shutdown(&self, py: Python<'_>) {
        if self.shut.swap(true, Ordering::AcqRel) {
            return;
        }
        let (collector, logger) = {
            let mut live = lock(&self.live);
            match live.as_mut() {
                Some(l) => (
                    l.own_collector.take(),
                    Some(std::sync::Arc::clone(&l.logger)),
                ),
                None => (None, None),
            }
        };
        py.detach(|| {
            if let Some(c) = collector {
                c.shutdown(std::time::Duration::from_secs(5));
            }
            if let Some(l) = logger {
                l.shutdown();
            }
        });
    }

    /// The pipeline's counters, as [`stats_dict`] gives them.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.with_logger(|l| l.stats()).unwrap_or_default();
        stats_dict(py, &st)
    }

    /// The counters of a pipeline that has logged nothing, every one 0.
    #[staticmethod]
    fn empty_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
        stats_dict(py, &logbraid::Stats::default())
    }

    /// In a forked child: forget the parent's pipeline (its threads stayed
    /// in the parent) and forward to the parent's collector instead.
    fn _after_fork_child(&self) -> PyResult<()> {
        let mut live = lock(&self.live);
        let upstream = live.as_ref().and_then(|l| l.upstream.clone());
        if let Some(old) = live.take() {
            // Its threads are gone: dropping would wait for them.
            std::mem::forget(old);
        }
        // Threads' copies of the default logger name the parent's.
        crate::logger::default_changed();
        if self.shut.load(Ordering::Acquire) {
            return Ok(());
        }
        *live = Some(self.spec.build(upstream.as_deref(), false)?);
        Ok(())
    }
}

/// A pipeline's counters ([`logbraid::Stats`]) as a dict of ints:
/// logged, written, dropped, bytes, write_errors, queue_high_water,
/// full_waits, rotations, forward_acked, forward_resent, and for the
/// sinks' writes and syncs their count, total and longest time in
/// nanoseconds (write_count, write_ns, write_ns_max, sync_count, sync_ns,
/// sync_ns_max).
fn stats_dict<'py>(py: Python<'py>, st: &logbraid::Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let ns = |t: std::time::Duration| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
    let (w, s) = (st.write_latency, st.sync_latency);
    for (key, value) in [
        ("logged", st.logged),
        ("written", st.written),
        ("dropped", st.dropped),
        ("bytes", st.bytes_written),
        ("write_errors", st.write_errors),
        ("queue_high_water", st.queue_high_water),
        ("full_waits", st.full_waits),
        ("rotations", st.rotations),
        ("forward_acked", st.forward_acked),
        ("forward_resent", st.forward_resent),
        ("write_count", w.count),
        ("write_ns", ns(w.total)),
        ("write_ns_max", ns(w.max)),
        ("sync_count", s.count),
        ("sync_ns", ns(s.total)),
        ("sync_ns_max", ns(s.max)),
    ] {
        d.set_item(key, value)?;
    }
    Ok(d)
}

/// A Python record's message.
pub(crate) enum Message<'a> {
    /// Formatted already.
    Text(&'a str),
    /// `fmt % tuple(values)`, left to the writer (see [`deferred`]).
    Percent(&'a str, &'a [logbraid_pyfmt::Value<'a>]),
}

/// What a Python record carries after its `extra` fields.
pub(crate) struct Trailers<'a> {
    /// Why `msg % args` failed (the message is then written unformatted).
    pub(crate) format_error: Option<PyErr>,
    pub(crate) exc_text: Option<&'a str>,
    pub(crate) stack: Option<&'a str>,
}

/// `logbraid::macros::log` in a function of its own: inlined twice into the
/// large function that reads a call's arguments, the macros' fast path made
/// the Python call 30-70 ns dearer at p50 (`bench/python`), while in a
/// function of its own it keeps what the Rust macros gain by being inline.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn log_out_of_line<W, F>(
    logger: &logbraid::Logger,
    level: logbraid::Level,
    site: &'static logbraid::macros::Site,
    format: logbraid::macros::FormatFn,
    size: Option<usize>,
    write: W,
    fill: F,
) where
    W: FnMut(&mut logbraid::macros::Out<'_>),
    F: FnMut(&mut Vec<u8>, &mut FieldsBuf),
{
    logbraid::macros::log(logger, level, site, format, size, write, fill)
}
