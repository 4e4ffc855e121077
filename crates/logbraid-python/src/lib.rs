//! The Rust half of the `logbraid` Python package: pipelines (the sinks
//! behind `basicConfig` and `logbraid.Handler`) and the Rust `Logger`
//! whose calls never build a Python `LogRecord`.
//!
//! Python code lives in `python/logbraid/`; this module is
//! `logbraid._logbraid`.

// The methods mirror `logging.Logger`'s signatures, keyword for keyword.
#![allow(clippy::too_many_arguments)]

mod cpython;
mod fastcall;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use logbraid::collect::{Embedded, EmbeddedOptions};
use logbraid::config::{self, Config, ConfigError, ConsoleConfig, FileConfig};
use logbraid::endpoint::Endpoint;
use logbraid::layout::{Layout, LayoutSpec};
use logbraid::{
    Builder, Callsite, Compression, FieldsBuf, Guard, Level, Mode, Value, Weekday, When,
};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a pipeline was built from, kept so that a forked child can build
/// its own (forwarding to the parent) and `shutdown` can be undone by
/// nobody: the core's settings, made from the keywords, and the one layout
/// every sink starts with.
#[derive(Clone, Debug)]
struct Spec {
    config: Config,
    layout: LayoutSpec,
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
}

/// Every switchable layout of a pipeline, with whether its sink is in
/// colour.
#[derive(Default)]
struct Switches(Vec<(Shared<Box<dyn Layout>>, bool)>);

impl Switches {
    fn add(&mut self, spec: &LayoutSpec, color: bool) -> Box<dyn Layout> {
        let inner = std::sync::Arc::new(Mutex::new(spec.build(color)));
        self.0.push((std::sync::Arc::clone(&inner), color));
        Box::new(SwitchLayout(inner))
    }

    fn set(&self, spec: &LayoutSpec) {
        for (inner, color) in &self.0 {
            *lock(inner) = spec.build(*color);
        }
    }
}

/// The sinks of `basicConfig` or of one `logbraid.Handler`: a Rust
/// pipeline with a background writer.
#[pyclass(module = "logbraid._logbraid", frozen)]
struct Pipeline {
    spec: Spec,
    live: Mutex<Option<Live>>,
    shut: std::sync::atomic::AtomicBool,
    /// The `logbraid.Handler` whose `handle` is [`Pipeline::handle`].
    handler: std::sync::OnceLock<HandlerLink>,
}

/// What `handle` needs of its `logbraid.Handler`: the handler's filter
/// list (the same list object `addFilter` changes) and a weak reference
/// to the handler, for the rare paths that go through Python.
struct HandlerLink {
    filters: Py<pyo3::types::PyList>,
    handler: Py<PyAny>,
}

fn bad(param: &str, why: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{param}: {why}"))
}

/// A keyword's value read by the core type's own parser; its error is
/// named by the keyword.
fn word<T: std::str::FromStr>(param: &str, v: Option<&str>) -> PyResult<Option<T>>
where
    T::Err: std::fmt::Display,
{
    v.map(|v| v.parse().map_err(|e| bad(param, e))).transpose()
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
        let mut switches = Switches::default();
        let (logger, guard) =
            Builder::from_config_with(&config, &mut |spec, color| switches.add(spec, color))
                .map_err(config_error)?
                .on_full_wait(cpython::wait_without_gil)
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

/// Python's level numbers to ours.
fn level_of(levelno: i64) -> Level {
    Level::from_python(levelno)
}

/// One Python value as a field.
fn push_value(fields: &mut FieldsBuf, key: &str, v: &Bound<'_, PyAny>) {
    if v.is_none() {
        fields.push(key, Value::Null);
    } else if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
        fields.push(key, Value::Bool(b.is_true()));
    } else if v.is_instance_of::<PyString>() {
        fields.push_str(key, &cpython::text(v));
    } else if let Ok(i) = v.extract::<i64>() {
        if v.is_instance_of::<pyo3::types::PyInt>() {
            fields.push(key, Value::I64(i));
        } else {
            fields.push_str(key, &cpython::text(v));
        }
    } else if let Ok(f) = v.cast::<pyo3::types::PyFloat>() {
        fields.push(key, Value::F64(f.value()));
    } else {
        fields.push_str(key, &cpython::text(v));
    }
}

/// The fields `logging.LogRecord` has itself; anything else in its
/// `__dict__` came from `extra=` and becomes a field.
const RECORD_ATTRS: &[&str] = &[
    "name",
    "msg",
    "args",
    "levelname",
    "levelno",
    "pathname",
    "filename",
    "module",
    "exc_info",
    "exc_text",
    "stack_info",
    "lineno",
    "funcName",
    "created",
    "msecs",
    "relativeCreated",
    "thread",
    "threadName",
    "processName",
    "process",
    "taskName",
    "message",
    "asctime",
];

static WRITE_FAILURES: AtomicU64 = AtomicU64::new(0);

impl Pipeline {
    fn with_logger<R>(&self, f: impl FnOnce(&logbraid::Logger) -> R) -> Option<R> {
        let live = lock(&self.live);
        live.as_ref().map(|l| f(&l.logger))
    }

    fn current(&self) -> Option<std::sync::Arc<logbraid::Logger>> {
        lock(&self.live)
            .as_ref()
            .map(|l| std::sync::Arc::clone(&l.logger))
    }

    /// Writes a record from Python: its `extra` fields (filled by
    /// `extras`), then what `trailers` holds; a formatting error is
    /// reported once the record is written.
    fn write_record(
        &self,
        py: Python<'_>,
        site: &Callsite<'_>,
        message: &str,
        trailers: Trailers<'_>,
        extras: &mut dyn FnMut(&mut FieldsBuf),
    ) {
        let fe = trailers.format_error.as_ref().map(|e| e.to_string());
        self.write(py, site, message, &mut |f| {
            extras(f);
            if let Some(e) = &fe {
                f.push_str("format_error", e);
            }
            if let Some(t) = trailers.exc_text {
                f.push_str("exc_text", t);
            }
            if let Some(s) = trailers.stack {
                f.push_str("stack_info", s);
            }
        });
        if let Some(e) = trailers.format_error {
            report_format_error(py, e);
        }
    }

    /// Writes one record: message and caller given, fields filled by
    /// `fields` (which may call into Python: no lock is held meanwhile).
    fn write(
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

#[pymethods]
impl Pipeline {
    #[new]
    #[pyo3(signature = (*, file=None, console=false, json=false, format=None, datefmt=None,
        max_bytes=0, backup_count=0, when=None, compress=None, forward=None,
        queue_size=None, overflow="block", sync=false, children=true, signals=true))]
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
    ) -> PyResult<Self> {
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
        let spec = Spec { config, layout };
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
    /// `datefmt`, or, with `format=None`, the layout the pipeline was built
    /// with. Records logged before are written first, in the old layout
    /// (the GIL is released meanwhile).
    #[pyo3(signature = (format, datefmt=None))]
    fn set_layout(
        &self,
        py: Python<'_>,
        format: Option<&str>,
        datefmt: Option<&str>,
    ) -> PyResult<()> {
        let spec = match format {
            Some(f) => LayoutSpec::parse(f, datefmt).map_err(|e| bad("format", e))?,
            None => self.spec.layout.clone(),
        };
        if let Some(logger) = self.current() {
            py.detach(|| logger.flush());
        }
        if let Some(live) = lock(&self.live).as_ref() {
            live.switches.set(&spec);
        }
        Ok(())
    }

    /// Writes `record` as the line `text` (formatted by a Python
    /// `Formatter`): with the layout `%(message)s`, the line as given.
    fn emit_line(&self, record: &Bound<'_, PyAny>, text: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = record.py();
        let levelno: i64 = record.getattr(pyo3::intern!(py, "levelno"))?.extract()?;
        let name = record.getattr(pyo3::intern!(py, "name"))?;
        let name = cpython::text(&name);
        let site = Callsite::new(level_of(levelno), &name);
        self.write(py, &site, &cpython::text(text), &mut |_| {});
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

    /// `logging.Handler.handle` for a `logbraid.Handler` without filters:
    /// writes the record and returns True, with no Python frame and no
    /// handler lock (the pipeline takes records from any thread). With
    /// filters, the handler's own `handle` runs; a record that cannot be
    /// written goes to the handler's `handleError`, as with any handler.
    fn handle(&self, record: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = record.py();
        let Some(link) = self.handler.get() else {
            self.emit(record)?;
            return Ok(pyo3::types::PyBool::new(py, true)
                .to_owned()
                .into_any()
                .unbind());
        };
        let handler = || link.handler.bind(py).call0();
        if !link.filters.bind(py).is_empty() {
            return Ok(handler()?
                .call_method1(pyo3::intern!(py, "_handle_filtered"), (record,))?
                .unbind());
        }
        if let Err(e) = self.emit(record) {
            let h = handler()?;
            if !h.is_none() {
                h.call_method1(pyo3::intern!(py, "_emit_failed"), (record, e.value(py)))?;
            }
        }
        Ok(pyo3::types::PyBool::new(py, true)
            .to_owned()
            .into_any()
            .unbind())
    }

    /// Writes a standard `logging.LogRecord`: its attributes are read in
    /// one pass over its `__dict__`; whatever `extra=` added becomes a
    /// field.
    fn emit(&self, record: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = record.py();
        let dict = cpython::instance_dict(record)?;
        let dict = &dict;
        let mut r = RecordAttrs::default();
        let mut extras: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> = Vec::new();
        let keys = record_keys(py);
        match keys {
            // As the constructor left it: nothing came from `extra=`, and
            // the attributes used are looked up, not searched for.
            Some(keys) if dict.len() == keys.count => {
                let get = |k: &Py<PyString>| cpython::dict_get(dict, k.bind(py));
                r.name = get(&keys.name);
                r.msg = get(&keys.msg);
                r.args = get(&keys.args);
                r.levelno = get(&keys.levelno).and_then(|v| v.extract().ok());
                r.pathname = get(&keys.pathname);
                r.module = get(&keys.module);
                r.func = get(&keys.func);
                r.lineno = get(&keys.lineno).and_then(|v| v.extract().ok());
                r.exc_info = get(&keys.exc_info);
                r.exc_text = get(&keys.exc_text);
                r.stack_info = get(&keys.stack_info);
            }
            _ => cpython::dict_items(dict, |k, v| {
                let v = v.clone();
                // A key that is not text as UTF-8 (a lone surrogate) is
                // not one of the record's own: a field, named by `text`.
                let Some(key) = cpython::utf8(k) else {
                    extras.push((k.clone(), v));
                    return;
                };
                match key {
                    "name" => r.name = Some(v),
                    "msg" => r.msg = Some(v),
                    "args" => r.args = Some(v),
                    "levelno" => r.levelno = v.extract().ok(),
                    "pathname" => r.pathname = Some(v),
                    "module" => r.module = Some(v),
                    "funcName" => r.func = Some(v),
                    "lineno" => r.lineno = v.extract().ok(),
                    "exc_info" => r.exc_info = Some(v),
                    "exc_text" => r.exc_text = Some(v),
                    "stack_info" => r.stack_info = Some(v),
                    k if RECORD_ATTRS.contains(&k) => {}
                    _ => extras.push((k.clone(), v)),
                }
            }),
        }
        let (message, format_error) = record_message(record, &r);
        let message = message.text();
        let name = r.name.as_ref().map(cpython::text);
        let pathname = r.pathname.as_ref().and_then(cpython::utf8);
        let module = r.module.as_ref().and_then(cpython::utf8);
        let func = r.func.as_ref().and_then(cpython::utf8);
        let exc_text = exception_text(r.exc_text.as_ref(), r.exc_info.as_ref())?;
        let stack = r
            .stack_info
            .as_ref()
            .filter(|s| !s.is_none())
            .map(cpython::text);
        let site = Callsite {
            level: level_of(r.levelno.unwrap_or(20)),
            target: name.as_deref().unwrap_or("root"),
            module,
            file: pathname,
            line: r.lineno,
            function: func,
        };
        let trailers = Trailers {
            format_error,
            exc_text: exc_text.as_deref(),
            stack: stack.as_deref(),
        };
        self.write_record(py, &site, &message, trailers, &mut |f| {
            for (k, v) in &extras {
                push_value(f, &cpython::text(k), v);
            }
        });
        Ok(())
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
        match timeout {
            None => {
                py.detach(|| logger.flush());
                Ok(true)
            }
            Some(t) if t >= 0.0 && t.is_finite() => {
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    logger.flush();
                    let _ = tx.send(());
                });
                Ok(py.detach(move || {
                    rx.recv_timeout(std::time::Duration::from_secs_f64(t))
                        .is_ok()
                }))
            }
            Some(t) => Err(bad(
                "timeout",
                format!("{t} is not a number of seconds >= 0"),
            )),
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

    /// The pipeline's counters: logged, written, dropped, bytes (and more).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        if let Some(st) = self.with_logger(|l| l.stats()) {
            d.set_item("logged", st.logged)?;
            d.set_item("written", st.written)?;
            d.set_item("dropped", st.dropped)?;
            d.set_item("bytes", st.bytes_written)?;
            d.set_item("write_errors", st.write_errors)?;
            d.set_item("queue_high_water", st.queue_high_water)?;
            d.set_item("full_waits", st.full_waits)?;
        }
        Ok(d)
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
        if self.shut.load(Ordering::Acquire) {
            return Ok(());
        }
        *live = Some(self.spec.build(upstream.as_deref(), false)?);
        Ok(())
    }
}

/// What a Python record carries after its `extra` fields.
struct Trailers<'a> {
    /// Why `msg % args` failed (the message is then written unformatted).
    format_error: Option<PyErr>,
    exc_text: Option<&'a str>,
    stack: Option<&'a str>,
}

/// The attributes of a `LogRecord` the pipeline uses.
#[derive(Default)]
struct RecordAttrs<'py> {
    name: Option<Bound<'py, PyAny>>,
    msg: Option<Bound<'py, PyAny>>,
    args: Option<Bound<'py, PyAny>>,
    levelno: Option<i64>,
    pathname: Option<Bound<'py, PyAny>>,
    module: Option<Bound<'py, PyAny>>,
    func: Option<Bound<'py, PyAny>>,
    lineno: Option<u32>,
    exc_info: Option<Bound<'py, PyAny>>,
    exc_text: Option<Bound<'py, PyAny>>,
    stack_info: Option<Bound<'py, PyAny>>,
}

/// `record.getMessage()`, and the error when formatting failed (the
/// unformatted message is written then). A plain `LogRecord`'s message is
/// formatted here, as `getMessage` would; a subclass's `getMessage` is
/// called.
fn record_message<'py>(
    record: &Bound<'py, PyAny>,
    r: &RecordAttrs<'py>,
) -> (Message<'py>, Option<PyErr>) {
    let py = record.py();
    let plain = log_record_type(py).is_some_and(|t| record.get_type().is(t));
    let formatted = match (&r.msg, plain) {
        (Some(msg), true) => match &r.args {
            Some(args) if args.is_truthy().unwrap_or(false) => {
                // A tuple, or the mapping LogRecord made of a lone dict.
                let items = match args.cast_exact::<PyTuple>() {
                    Ok(t) => t.iter().collect(),
                    Err(_) => vec![args.clone()],
                };
                match cpython::format_percent(msg, &items) {
                    Some(text) => return (Message::Text(text), None),
                    None => msg.str().and_then(|m| m.as_any().rem(args)),
                }
            }
            _ => Ok(msg.clone()),
        },
        _ => record.call_method0(pyo3::intern!(py, "getMessage")),
    };
    match formatted {
        Ok(m) => (Message::Object(m), None),
        Err(e) => {
            let raw = r.msg.clone().unwrap_or_else(|| py.None().into_bound(py));
            (Message::Object(raw), Some(e))
        }
    }
}

/// A record's message: formatted here, or a Python object to show.
enum Message<'py> {
    Text(String),
    Object(Bound<'py, PyAny>),
}

impl Message<'_> {
    fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Message::Text(t) => std::borrow::Cow::Borrowed(t),
            Message::Object(o) => cpython::text(o),
        }
    }
}

/// The names of the attributes the pipeline reads, and how many
/// attributes `logging.LogRecord`'s constructor sets (a record with just
/// those has no `extra=` fields).
struct RecordKeys {
    count: usize,
    name: Py<PyString>,
    msg: Py<PyString>,
    args: Py<PyString>,
    levelno: Py<PyString>,
    pathname: Py<PyString>,
    module: Py<PyString>,
    func: Py<PyString>,
    lineno: Py<PyString>,
    exc_info: Py<PyString>,
    exc_text: Py<PyString>,
    stack_info: Py<PyString>,
}

fn record_keys(py: Python<'_>) -> Option<&RecordKeys> {
    static KEYS: pyo3::sync::PyOnceLock<RecordKeys> = pyo3::sync::PyOnceLock::new();
    KEYS.get_or_try_init(py, || -> PyResult<_> {
        let t = log_record_type(py).ok_or_else(|| PyRuntimeError::new_err("no LogRecord"))?;
        let probe = t.call1(("n", 20, "p", 1, "m", py.None(), py.None()))?;
        let count = probe.getattr("__dict__")?.len()?;
        let k = |s: &str| PyString::intern(py, s).unbind();
        Ok(RecordKeys {
            count,
            name: k("name"),
            msg: k("msg"),
            args: k("args"),
            levelno: k("levelno"),
            pathname: k("pathname"),
            module: k("module"),
            func: k("funcName"),
            lineno: k("lineno"),
            exc_info: k("exc_info"),
            exc_text: k("exc_text"),
            stack_info: k("stack_info"),
        })
    })
    .ok()
}

/// `logging.LogRecord`, looked up once.
fn log_record_type(py: Python<'_>) -> Option<&Bound<'_, pyo3::types::PyType>> {
    static TYPE: pyo3::sync::PyOnceLock<Py<pyo3::types::PyType>> = pyo3::sync::PyOnceLock::new();
    TYPE.get_or_try_init(py, || -> PyResult<_> {
        Ok(py
            .import("logging")?
            .getattr("LogRecord")?
            .cast_into::<pyo3::types::PyType>()?
            .unbind())
    })
    .ok()
    .map(|t| t.bind(py))
}

/// The traceback text of a record: its `exc_text` when a formatter left
/// one, else its `exc_info` formatted.
fn exception_text(
    exc_text: Option<&Bound<'_, PyAny>>,
    exc_info: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<String>> {
    if let Some(t) = exc_text.and_then(cpython::utf8) {
        if !t.is_empty() {
            return Ok(Some(t.to_string()));
        }
    }
    match exc_info {
        Some(info) if !info.is_none() && info.is_truthy()? => format_exc_info(info).map(Some),
        _ => Ok(None),
    }
}

/// `traceback.format_exception` of an `exc_info` tuple, without the last
/// newline, as `logging.Formatter.formatException` gives it.
fn format_exc_info(info: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = info.py();
    let tb = py.import(pyo3::intern!(py, "traceback"))?;
    let t = info.cast::<PyTuple>()?;
    let lines = tb.call_method1(
        pyo3::intern!(py, "format_exception"),
        (t.get_item(0)?, t.get_item(1)?, t.get_item(2)?),
    )?;
    let text: String = PyString::new(py, "")
        .call_method1(pyo3::intern!(py, "join"), (lines,))?
        .extract()?;
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
}

/// As `logging.Handler.handleError`: the record was written anyway; the
/// error goes to stderr and the program goes on.
fn report_format_error(py: Python<'_>, e: PyErr) {
    WRITE_FAILURES.fetch_add(1, Ordering::Relaxed);
    let raise = py
        .import("logging")
        .and_then(|m| m.getattr("raiseExceptions"))
        .and_then(|v| v.is_truthy())
        .unwrap_or(true);
    if raise {
        let msg = format!(
            "--- Logging error ---\nlogbraid: formatting the message failed ({e}); the record was written with the unformatted message\n"
        );
        let _ = py
            .import("sys")
            .and_then(|s| s.getattr("stderr"))
            .and_then(|s| s.call_method1("write", (msg,)));
    }
}

// ---------------------------------------------------------------------
// The Rust Logger.

/// Bumped by every `setLevel`, so cached effective levels are re-read.
static LEVEL_GEN: AtomicU64 = AtomicU64::new(1);

struct Registry {
    loggers: HashMap<String, Py<Logger>>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// The pipeline `logbraid.getLogger` loggers write to (set by
/// `basicConfig` and in children).
static DEFAULT: Mutex<Option<Py<Pipeline>>> = Mutex::new(None);

/// Whether `DEFAULT` is set, readable without its lock: before that,
/// loggers answer level questions as the standard logger of their name.
static CONFIGURED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A logger implemented in Rust with the calls of `logging.Logger`.
#[pyclass(module = "logbraid", frozen)]
struct Logger {
    #[pyo3(get)]
    name: String,
    level: AtomicI32,
    /// Cached effective level and the generation it was computed at.
    effective: AtomicI32,
    effective_gen: AtomicU64,
}

const NOTSET: i32 = 0;
const WARNING: i32 = 30;

fn registry_level(name: &str) -> Option<i32> {
    let reg = lock(&REGISTRY);
    let reg = reg.as_ref()?;
    let l = reg.loggers.get(name)?;
    let v = l.get().level.load(Ordering::Relaxed);
    (v != NOTSET).then_some(v)
}

impl Logger {
    fn effective_level(&self) -> i32 {
        let gen = LEVEL_GEN.load(Ordering::Acquire);
        if self.effective_gen.load(Ordering::Acquire) == gen {
            return self.effective.load(Ordering::Relaxed);
        }
        let own = self.level.load(Ordering::Relaxed);
        let value = if own != NOTSET {
            own
        } else {
            let mut name = self.name.as_str();
            let mut found = None;
            while let Some(dot) = name.rfind('.') {
                name = &name[..dot];
                if let Some(l) = registry_level(name) {
                    found = Some(l);
                    break;
                }
            }
            found.or_else(|| registry_level("root")).unwrap_or(WARNING)
        };
        self.effective.store(value, Ordering::Relaxed);
        self.effective_gen.store(gen, Ordering::Release);
        value
    }

    /// Whether a call at `levelno` may write: always before `basicConfig`
    /// (the standard logger decides then).
    fn may_log(&self, levelno: i32) -> bool {
        !CONFIGURED.load(Ordering::Acquire) || levelno >= self.effective_level()
    }

    /// `logging.getLogger(self.name)`.
    fn stdlib<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let name = if self.name == "root" {
            None
        } else {
            Some(&self.name)
        };
        py.import(pyo3::intern!(py, "logging"))?
            .call_method1(pyo3::intern!(py, "getLogger"), (name,))
    }

    fn log_at(
        &self,
        py: Python<'_>,
        levelno: i32,
        msg: &Bound<'_, PyAny>,
        args: &[Bound<'_, PyAny>],
        exc_info: Option<&Bound<'_, PyAny>>,
        extra: Option<&Bound<'_, PyAny>>,
        stack_info: bool,
        stacklevel: i32,
    ) -> PyResult<()> {
        if CONFIGURED.load(Ordering::Acquire) && levelno < self.effective_level() {
            return Ok(());
        }
        // A `Bound`, released on drop at once (the GIL is held).
        let pipeline = lock(&DEFAULT).as_ref().map(|p| p.bind(py).clone());
        let Some(pipeline) = pipeline else {
            // Not configured: behave as the standard logger of that name,
            // levels included. Called from Rust, it sees no frame of ours:
            // the caller is `stacklevel` frames up, as given.
            let std = self.stdlib(py)?;
            let kwargs = PyDict::new(py);
            if let Some(e) = exc_info {
                kwargs.set_item("exc_info", e)?;
            }
            if let Some(e) = extra {
                kwargs.set_item("extra", e)?;
            }
            kwargs.set_item("stack_info", stack_info)?;
            kwargs.set_item("stacklevel", stacklevel)?;
            let mut all = vec![levelno.into_pyobject(py)?.into_any(), msg.clone()];
            all.extend(args.iter().cloned());
            std.call_method("log", PyTuple::new(py, all)?, Some(&kwargs))?;
            return Ok(());
        };
        // The message, formatted now as logging does when it handles the
        // record: `msg % args`, a lone non-empty mapping as the mapping.
        let mut format_error = None;
        let formatted;
        let text: std::borrow::Cow<'_, str> = if args.is_empty() {
            cpython::text(msg)
        } else if let Some(text) = cpython::format_percent(msg, args) {
            std::borrow::Cow::Owned(text)
        } else {
            let a = match args {
                [first] if first.is_instance_of::<PyDict>() && first.is_truthy()? => first.clone(),
                _ => PyTuple::new(py, args)?.into_any(),
            };
            match msg.str().and_then(|m| m.as_any().rem(&a)) {
                Ok(s) => {
                    formatted = s;
                    cpython::text(&formatted)
                }
                Err(e) => {
                    format_error = Some(e);
                    cpython::text(msg)
                }
            }
        };
        // The caller: the Python frame that called this method, or one
        // further up per `stacklevel`.
        let caller = cpython::caller(py, stacklevel);
        let exc_text = match exc_info {
            Some(e) if e.is_truthy()? => Some(exc_info_text(py, e)?),
            _ => None,
        };
        let stack = if stack_info {
            Some(stack_text(py, stacklevel)?)
        } else {
            None
        };
        let names = caller.as_ref().map(|c| &*c.names);
        let site = Callsite {
            level: level_of(i64::from(levelno)),
            target: &self.name,
            module: names.map(|n| &*n.module),
            file: names.map(|n| &*n.file),
            line: caller.as_ref().map(|c| c.line),
            function: names.map(|n| &*n.function),
        };
        let extra = match extra {
            Some(e) if !e.is_none() => Some(e.cast::<PyDict>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "extra: expected a dict, got {}",
                    e.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?),
            _ => None,
        };
        let trailers = Trailers {
            format_error,
            exc_text: exc_text.as_deref(),
            stack: stack.as_deref(),
        };
        pipeline
            .get()
            .write_record(py, &site, &text, trailers, &mut |f| {
                if let Some(d) = extra {
                    for (k, v) in d.iter() {
                        push_value(f, &cpython::text(&k), &v);
                    }
                }
            });
        Ok(())
    }
}

fn exc_info_text(py: Python<'_>, e: &Bound<'_, PyAny>) -> PyResult<String> {
    let info = if e.is_instance_of::<pyo3::exceptions::PyBaseException>() {
        PyTuple::new(
            py,
            [
                e.get_type().into_any(),
                e.clone(),
                e.getattr("__traceback__")?,
            ],
        )?
        .into_any()
    } else if e.is_instance_of::<PyTuple>() {
        e.clone()
    } else {
        py.import("sys")?.call_method0("exc_info")?
    };
    if info.cast::<PyTuple>()?.get_item(0)?.is_none() {
        return Ok("NoneType: None".to_string());
    }
    format_exc_info(&info)
}

fn stack_text(py: Python<'_>, stacklevel: i32) -> PyResult<String> {
    let tb = py.import("traceback")?;
    let sys = py.import("sys")?;
    let frame = sys.call_method1("_getframe", ((stacklevel.max(1) - 1) as i64,))?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("f", frame)?;
    let lines = tb.call_method("format_stack", (), Some(&kwargs))?;
    let text: String = PyString::new(py, "")
        .call_method1("join", (lines,))?
        .extract()?;
    Ok(format!(
        "Stack (most recent call last):\n{}",
        text.strip_suffix('\n').unwrap_or(&text)
    ))
}

#[pymethods]
impl Logger {
    #[pyo3(name = "isEnabledFor")]
    fn is_enabled_for(&self, py: Python<'_>, level: i32) -> PyResult<bool> {
        if !CONFIGURED.load(Ordering::Acquire) {
            return self
                .stdlib(py)?
                .call_method1(pyo3::intern!(py, "isEnabledFor"), (level,))?
                .extract();
        }
        Ok(level >= self.effective_level())
    }

    #[pyo3(name = "getEffectiveLevel")]
    fn get_effective_level(&self, py: Python<'_>) -> PyResult<i32> {
        if !CONFIGURED.load(Ordering::Acquire) {
            return self
                .stdlib(py)?
                .call_method0(pyo3::intern!(py, "getEffectiveLevel"))?
                .extract();
        }
        Ok(self.effective_level())
    }

    #[getter]
    fn level(&self) -> i32 {
        self.level.load(Ordering::Relaxed)
    }

    #[pyo3(name = "setLevel")]
    fn set_level(&self, py: Python<'_>, level: &Bound<'_, PyAny>) -> PyResult<()> {
        let n = level_number(py, level)?;
        self.level.store(n, Ordering::Relaxed);
        LEVEL_GEN.fetch_add(1, Ordering::AcqRel);
        // The standard logger of the same name follows: before
        // `basicConfig` calls go to it, and its records (and `caplog`'s
        // view of them) should agree with this logger.
        self.stdlib(py)?
            .call_method1(pyo3::intern!(py, "setLevel"), (n,))?;
        Ok(())
    }

    fn __repr__(&self) -> String {
        let lvl = self.effective_level();
        format!("<logbraid.Logger {} ({})>", self.name, level_label(lvl))
    }
}

fn level_label(n: i32) -> String {
    match n {
        50 => "CRITICAL".into(),
        40 => "ERROR".into(),
        30 => "WARNING".into(),
        20 => "INFO".into(),
        10 => "DEBUG".into(),
        0 => "NOTSET".into(),
        n => format!("Level {n}"),
    }
}

/// A level given as a number or a name, as `logging` accepts it.
fn level_number(py: Python<'_>, level: &Bound<'_, PyAny>) -> PyResult<i32> {
    if let Ok(n) = level.extract::<i32>() {
        return Ok(n);
    }
    if let Ok(s) = level.extract::<String>() {
        let names = py
            .import("logging")?
            .call_method0("getLevelNamesMapping")
            .ok();
        if let Some(m) = names {
            if let Ok(v) = m.get_item(s.to_ascii_uppercase()) {
                return v.extract();
            }
        }
        return Err(bad("level", format!("unknown level name {s:?}")));
    }
    Err(PyTypeError::new_err(
        "level: expected an int or a level name",
    ))
}

/// `logbraid.getLogger(name)`: one Logger per name, created on first use.
#[pyfunction]
#[pyo3(signature = (name=None))]
fn get_logger(py: Python<'_>, name: Option<&str>) -> PyResult<Py<Logger>> {
    let name = match name {
        None | Some("") | Some("root") => "root",
        Some(n) => n,
    };
    let mut reg = lock(&REGISTRY);
    let reg = reg.get_or_insert_with(|| Registry {
        loggers: HashMap::new(),
    });
    if let Some(l) = reg.loggers.get(name) {
        return Ok(l.clone_ref(py));
    }
    let l = Py::new(
        py,
        Logger {
            name: name.to_string(),
            level: AtomicI32::new(NOTSET),
            effective: AtomicI32::new(0),
            effective_gen: AtomicU64::new(0),
        },
    )?;
    reg.loggers.insert(name.to_string(), l.clone_ref(py));
    LEVEL_GEN.fetch_add(1, Ordering::AcqRel);
    Ok(l)
}

/// Makes `pipeline` the one `getLogger` loggers write to (`None`: none).
#[pyfunction]
fn set_default(pipeline: Option<Py<Pipeline>>) {
    let configured = pipeline.is_some();
    *lock(&DEFAULT) = pipeline;
    CONFIGURED.store(configured, Ordering::Release);
}

/// Names this process in its records (`%(processName)s`, and the program
/// a collector is told): `multiprocessing`'s name for it, as `logging`
/// gives it.
#[pyfunction]
fn set_process_name(name: &str) {
    logbraid::set_process_name(name);
}

/// The one `getLogger` loggers write to.
#[pyfunction]
fn get_default(py: Python<'_>) -> Option<Py<Pipeline>> {
    lock(&DEFAULT).as_ref().map(|p| p.clone_ref(py))
}

/// Counted formatting failures (each also reported on stderr).
#[pyfunction]
fn format_errors() -> u64 {
    WRITE_FAILURES.load(Ordering::Relaxed)
}

/// `logbraid serve` with `args` (its flags): runs the collector until
/// SIGTERM or SIGINT, with the GIL released, and returns the exit code.
#[pyfunction]
fn serve(py: Python<'_>, args: Vec<std::ffi::OsString>) -> u8 {
    py.detach(|| logbraid_cli::serve_main(args))
}

#[pymodule]
fn _logbraid(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Pipeline>()?;
    m.add_class::<Logger>()?;
    fastcall::install(&m.py().get_type::<Logger>())?;
    m.add_function(wrap_pyfunction!(get_logger, m)?)?;
    m.add_function(wrap_pyfunction!(set_default, m)?)?;
    m.add_function(wrap_pyfunction!(get_default, m)?)?;
    m.add_function(wrap_pyfunction!(set_process_name, m)?)?;
    m.add_function(wrap_pyfunction!(format_errors, m)?)?;
    m.add_function(wrap_pyfunction!(serve, m)?)?;
    m.add("COLLECTOR_ENV", logbraid::collect::COLLECTOR_ENV)?;
    Ok(())
}
