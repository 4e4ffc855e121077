//! A standard `logging.LogRecord` written by a pipeline
//! (`logbraid.Handler`'s `handle` and `emit`), and what the Rust `Logger`
//! shares with that path: a Python value as a field, the text of an
//! exception, a formatting error reported as `logging` reports it.

use std::sync::atomic::{AtomicU64, Ordering};

use logbraid::{Callsite, FieldsBuf, Level, Value};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::cpython;
use crate::pipeline::{self, Pipeline, Trailers};

/// Python's level numbers to ours.
pub(crate) fn level_of(levelno: i64) -> Level {
    Level::from_python(levelno)
}

/// One Python value as a field.
pub(crate) fn push_value(fields: &mut FieldsBuf, key: &str, v: &Bound<'_, PyAny>) {
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

pub(crate) static WRITE_FAILURES: AtomicU64 = AtomicU64::new(0);

#[pymethods]
impl Pipeline {
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
        let mut buf = cpython::MessageBuf::take();
        let (message, format_error) = record_message(record, &r, &mut buf);
        let message = message.text(&buf);
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
        let mut extra_fields = |f: &mut FieldsBuf| {
            for (k, v) in &extras {
                push_value(f, &cpython::text(k), v);
            }
        };
        pipeline::write_to(
            self.current().as_deref(),
            py,
            &site,
            None,
            pipeline::Message::Text(&message),
            trailers,
            (!extras.is_empty()).then_some(&mut extra_fields as &mut dyn FnMut(&mut FieldsBuf)),
        );
        Ok(())
    }
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
/// formatted here, into `buf`, as `getMessage` would; a subclass's
/// `getMessage` is called.
fn record_message<'py>(
    record: &Bound<'py, PyAny>,
    r: &RecordAttrs<'py>,
    buf: &mut String,
) -> (Message<'py>, Option<PyErr>) {
    let py = record.py();
    let plain = log_record_type(py).is_some_and(|t| record.get_type().is(t));
    let formatted = match (&r.msg, plain) {
        (Some(msg), true) => match &r.args {
            Some(args) if args.is_truthy().unwrap_or(false) => {
                // A tuple, or the mapping LogRecord made of a lone dict.
                let formatted = match args.cast_exact::<PyTuple>() {
                    Ok(t) => cpython::lend(t.iter_borrowed(), args.as_borrowed(), |items| {
                        cpython::format_percent(msg, items, buf)
                    }),
                    Err(_) => cpython::format_percent(msg, &[args.as_borrowed()], buf),
                };
                if formatted {
                    return (Message::Formatted, None);
                }
                msg.str().and_then(|m| m.as_any().rem(args))
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

/// A record's message: formatted here (into the buffer given to
/// [`record_message`]), or a Python object to show.
enum Message<'py> {
    Formatted,
    Object(Bound<'py, PyAny>),
}

impl Message<'_> {
    fn text<'a>(&'a self, buf: &'a str) -> std::borrow::Cow<'a, str> {
        match self {
            Message::Formatted => std::borrow::Cow::Borrowed(buf),
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
pub(crate) fn format_exc_info(info: &Bound<'_, PyAny>) -> PyResult<String> {
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
pub(crate) fn report_format_error(py: Python<'_>, e: PyErr) {
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
