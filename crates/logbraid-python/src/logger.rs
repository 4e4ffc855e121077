//! The Rust `Logger`: the calls of `logging.Logger`, with levels kept per
//! name in a registry, writing to the default pipeline without building a
//! Python `LogRecord`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use logbraid::{Callsite, FieldsBuf};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::Borrowed;

use crate::pipeline::{Message, Pipeline, Trailers};
use crate::record::{format_exc_info, level_of, push_value};
use crate::{bad, cpython, lock};

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

/// Moves whenever the logger `DEFAULT` leads to may change (a new default
/// pipeline, a fork's new logger): each thread's copy is read again.
static DEFAULT_GEN: AtomicU64 = AtomicU64::new(1);

/// Where a thread's `Logger` calls go, as last read from `DEFAULT`.
enum Destination {
    /// No default pipeline: the standard logger of the name.
    Stdlib,
    /// The default pipeline's logger; weak, so that a thread that stops
    /// logging does not keep a replaced pipeline's queues alive. `None`:
    /// the pipeline has none.
    Pipeline(Option<Weak<logbraid::Logger>>),
}

thread_local! {
    static DESTINATION: RefCell<(u64, Destination)> =
        const { RefCell::new((0, Destination::Stdlib)) };
}

/// Where a call goes: `None` for the standard logger, else the default
/// pipeline's logger (if it has one). From this thread's copy while
/// [`DEFAULT_GEN`] has not moved: no lock and no reference count of the
/// pipeline on the way of a record.
fn destination(py: Python<'_>) -> Option<Option<Arc<logbraid::Logger>>> {
    let gen = DEFAULT_GEN.load(Ordering::Acquire);
    let cached = DESTINATION.try_with(|d| {
        let d = d.try_borrow().ok()?;
        if d.0 != gen {
            return None;
        }
        match &d.1 {
            Destination::Stdlib => Some(None),
            Destination::Pipeline(None) => Some(Some(None)),
            // A logger gone meanwhile is read again below.
            Destination::Pipeline(Some(w)) => w.upgrade().map(|l| Some(Some(l))),
        }
    });
    if let Ok(Some(found)) = cached {
        return found;
    }
    let found = lock(&DEFAULT).as_ref().map(|p| p.bind(py).get().current());
    let copy = match &found {
        None => Destination::Stdlib,
        Some(l) => Destination::Pipeline(l.as_ref().map(Arc::downgrade)),
    };
    let _ = DESTINATION.try_with(|d| {
        if let Ok(mut d) = d.try_borrow_mut() {
            *d = (gen, copy);
        }
    });
    found
}

/// Tells every thread to read `DEFAULT` again before its next call.
pub(crate) fn default_changed() {
    DEFAULT_GEN.fetch_add(1, Ordering::AcqRel);
}

/// A logger implemented in Rust with the calls of `logging.Logger`.
#[pyclass(module = "logbraid", frozen)]
pub(crate) struct Logger {
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
    pub(crate) fn may_log(&self, levelno: i32) -> bool {
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

    pub(crate) fn log_at(
        &self,
        py: Python<'_>,
        levelno: i32,
        msg: &Bound<'_, PyAny>,
        args: &[Borrowed<'_, '_, PyAny>],
        exc_info: Option<&Bound<'_, PyAny>>,
        extra: Option<&Bound<'_, PyAny>>,
        stack_info: bool,
        stacklevel: i32,
    ) -> PyResult<()> {
        if CONFIGURED.load(Ordering::Acquire) && levelno < self.effective_level() {
            return Ok(());
        }
        let Some(logger) = destination(py) else {
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
            all.extend(args.iter().map(|a| Borrowed::to_owned(*a)));
            std.call_method("log", PyTuple::new(py, all)?, Some(&kwargs))?;
            return Ok(());
        };
        // The message: left to the writer when `msg % args` is certain to
        // succeed with arguments copied raw; else formatted now as logging
        // does when it handles the record (`msg % args`, a lone non-empty
        // mapping as the mapping).
        let mut format_error = None;
        // Taken only where formatting here needs it.
        let mut buf: Option<cpython::MessageBuf> = None;
        let formatted;
        let mut values = cpython::Values::new();
        let percent = cpython::percent_values(msg, args, &mut values);
        let text: std::borrow::Cow<'_, str> = if percent.is_some() {
            std::borrow::Cow::Borrowed("")
        } else if args.is_empty() {
            cpython::text(msg)
        } else if cpython::format_percent(msg, args, buf.insert(cpython::MessageBuf::take())) {
            std::borrow::Cow::Borrowed(buf.as_ref().map_or("", |b| b.as_str()))
        } else {
            let a = match args {
                [first] if first.is_instance_of::<PyDict>() && first.is_truthy()? => {
                    Borrowed::to_owned(*first)
                }
                _ => PyTuple::new(py, args.iter().map(|a| Borrowed::to_owned(*a)))?.into_any(),
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
        let caller = cpython::caller(py, stacklevel, &self.name);
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
        let message = match percent {
            Some(fmt) => Message::Percent(fmt, values.as_slice()),
            None => Message::Text(&text),
        };
        let mut extra_fields = |f: &mut FieldsBuf| {
            if let Some(d) = extra {
                for (k, v) in d.iter() {
                    push_value(f, &cpython::text(&k), &v);
                }
            }
        };
        crate::pipeline::write_to(
            logger.as_deref(),
            py,
            &site,
            caller.as_ref().and_then(|c| c.site),
            message,
            trailers,
            extra
                .is_some()
                .then_some(&mut extra_fields as &mut dyn FnMut(&mut FieldsBuf)),
        );
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
pub(crate) fn get_logger(py: Python<'_>, name: Option<&str>) -> PyResult<Py<Logger>> {
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
pub(crate) fn set_default(pipeline: Option<Py<Pipeline>>) {
    let configured = pipeline.is_some();
    let old = std::mem::replace(&mut *lock(&DEFAULT), pipeline);
    CONFIGURED.store(configured, Ordering::Release);
    default_changed();
    drop(old);
}

/// The one `getLogger` loggers write to.
#[pyfunction]
pub(crate) fn get_default(py: Python<'_>) -> Option<Py<Pipeline>> {
    lock(&DEFAULT).as_ref().map(|p| p.clone_ref(py))
}
