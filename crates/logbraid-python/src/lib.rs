//! The Rust half of the `logbraid` Python package: pipelines (the sinks
//! behind `basicConfig` and `logbraid.Handler`) and the Rust `Logger`
//! whose calls never build a Python `LogRecord`.
//!
//! Python code lives in `python/logbraid/`; this module is
//! `logbraid._logbraid`.
//!
//! - [`pipeline`]: the sinks, their replaceable layouts, flush, shutdown
//!   and the rebuild in a forked child;
//! - [`record`]: a standard `LogRecord` to a record (`Handler.handle`);
//! - [`logger`]: the Rust `Logger` and its registry of names and levels;
//! - [`deferred`]: `msg % args` left to the writer's thread;
//! - [`cpython`] and [`fastcall`]: the direct calls into CPython.

// The methods mirror `logging.Logger`'s signatures, keyword for keyword.
#![allow(clippy::too_many_arguments)]

mod cpython;
mod deferred;
mod fastcall;
mod logger;
mod pipeline;
mod record;
mod site;

use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use logger::{get_default, get_logger, set_default, Logger};
use pipeline::Pipeline;
use record::WRITE_FAILURES;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn bad(param: &str, why: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{param}: {why}"))
}

/// Names this process in its records (`%(processName)s`, and the program
/// a collector is told): `multiprocessing`'s name for it, as `logging`
/// gives it.
#[pyfunction]
fn set_process_name(name: &str) {
    logbraid::set_process_name(name);
}

/// The `LOGBRAID_COLLECTOR` of the process's environment (the C one,
/// which the core writes; Python's `os.environ` is a copy made at start).
#[pyfunction]
fn exported_collector() -> Option<String> {
    std::env::var(logbraid::collect::COLLECTOR_ENV)
        .ok()
        .filter(|v| !v.is_empty())
}

/// Counted formatting failures (each also reported on stderr).
#[pyfunction]
fn format_errors() -> u64 {
    WRITE_FAILURES.load(Ordering::Relaxed)
}

/// The rotated backups of the log file `path` (`path.N`, the timestamped
/// names, either compressed), recognised by the sink's exact names, oldest
/// first: what a per-run file's retention deletes with the run's file,
/// and nothing else beside it.
#[pyfunction]
fn backup_files(path: std::path::PathBuf) -> PyResult<Vec<std::path::PathBuf>> {
    Ok(logbraid::sink::backup_files(&path)?)
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
    m.add_function(wrap_pyfunction!(exported_collector, m)?)?;
    m.add_function(wrap_pyfunction!(serve, m)?)?;
    m.add_function(wrap_pyfunction!(backup_files, m)?)?;
    m.add("COLLECTOR_ENV", logbraid::collect::COLLECTOR_ENV)?;
    Ok(())
}
