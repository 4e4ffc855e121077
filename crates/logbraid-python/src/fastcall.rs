//! `Logger.debug` … `Logger.critical`, `exception` and `log`, called the
//! vectorcall way (`METH_FASTCALL | METH_KEYWORDS`): the arguments arrive
//! as the caller's own array. pyo3 gives a method with `*args` the
//! tuple-and-dict convention instead, where the interpreter builds a tuple
//! and a dict for every call and pyo3 slices the tuple again: that was a
//! third of the cost of a log call.
//!
//! `METH_FASTCALL` is in the stable ABI from 3.10 on; CPython has honoured
//! it since 3.7, so the abi3-py39 build uses it on 3.9 too.

use std::ffi::{c_int, CStr};

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi::{self, PyObject, Py_ssize_t};
use pyo3::impl_::trampoline;
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::cpython;
use crate::logger::Logger;

const METH_FASTCALL: c_int = 0x0080;

type FastWithKeywords = unsafe extern "C" fn(
    *mut PyObject,
    *const *mut PyObject,
    Py_ssize_t,
    *mut PyObject,
) -> *mut PyObject;

/// `K` names the method: a level number, or one of these.
const EXCEPTION: i32 = -1;
const LOG: i32 = -2;

/// The methods, their `K` and what `help()` shows.
const METHODS: &[(&CStr, FastWithKeywords, &CStr)] = &[
    (c"debug", method::<10>, c"Logs msg % args at DEBUG."),
    (c"info", method::<20>, c"Logs msg % args at INFO."),
    (c"warning", method::<30>, c"Logs msg % args at WARNING."),
    (
        c"warn",
        method::<30>,
        c"Deprecated name of warning, as in logging.",
    ),
    (c"error", method::<40>, c"Logs msg % args at ERROR."),
    (c"critical", method::<50>, c"Logs msg % args at CRITICAL."),
    (
        c"fatal",
        method::<50>,
        c"Another name of critical, as in logging.",
    ),
    (
        c"exception",
        method::<EXCEPTION>,
        c"Logs msg % args at ERROR with the traceback of the exception being handled.",
    ),
    (
        c"log",
        method::<LOG>,
        c"log(level, msg, *args, exc_info=None, extra=None, stack_info=False, stacklevel=1)",
    ),
];

/// Puts the methods on the `Logger` type.
pub(crate) fn install(ty: &Bound<'_, PyType>) -> PyResult<()> {
    let py = ty.py();
    for (name, f, doc) in METHODS {
        let def = Box::leak(Box::new(ffi::PyMethodDef {
            ml_name: name.as_ptr(),
            // SAFETY: a union of function pointers; CPython calls it with
            // the signature the flags below name.
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionWithKeywords: unsafe {
                    std::mem::transmute::<FastWithKeywords, ffi::PyCFunctionWithKeywords>(*f)
                },
            },
            ml_flags: METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: doc.as_ptr(),
        }));
        // SAFETY: `ty` is a type object; `def` lives for ever.
        let descr = unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_ptr().cast(), def))?
        };
        ty.setattr(name.to_str().unwrap_or_default(), descr)?;
    }
    Ok(())
}

/// The entry CPython calls: pyo3's own trampoline for fastcall methods,
/// the one every `#[pymethods]` method goes through. It tells pyo3 that
/// the thread holds the GIL for the call (a `Py` dropped in the call is
/// then released at once; under `Python::assume_attached` it was queued on
/// pyo3's pending list, which a thread calling nothing but these methods
/// never emptied: 8 bytes a record, without end). `Python::attach` would
/// do the same through `PyGILState_Ensure`/`Release`: 3,308 instructions a
/// call against 3,249 here and 3,198 for the leaking entry (callgrind, a
/// call from a thread). `impl_` is pyo3's interface to the code its macros
/// generate, so it changes only with pyo3's version, and a change shows as
/// a build error here.
struct Entry<const K: i32>;

impl<const K: i32> trampoline::MethodDef<trampoline::fastcall_cfunction_with_keywords::Func>
    for Entry<K>
{
    const METH: trampoline::fastcall_cfunction_with_keywords::Func = method_attached::<K>;
}

/// # Safety
/// Called by CPython, with the GIL held, as a `METH_FASTCALL |
/// METH_KEYWORDS` method of `Logger`: `args` holds `nargs` positional
/// values followed by one value per name in `kwnames` (a tuple or NULL).
unsafe extern "C" fn method<const K: i32>(
    slf: *mut PyObject,
    args: *const *mut PyObject,
    nargs: Py_ssize_t,
    kwnames: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: as this function's contract says.
    unsafe { trampoline::fastcall_cfunction_with_keywords::<Entry<K>>(slf, args, nargs, kwnames) }
}

/// # Safety
/// As [`method`], with `py` attached.
unsafe fn method_attached<const K: i32>(
    py: Python<'_>,
    slf: *mut PyObject,
    args: *const *mut PyObject,
    nargs: Py_ssize_t,
    kwnames: *mut PyObject,
) -> PyResult<*mut PyObject> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: as this function's contract says.
        unsafe { call::<K>(py, slf, args, nargs, kwnames) }
    }));
    match result {
        Ok(Ok(())) => {
            // SAFETY: None is immortal or counted; the caller owns this one.
            Ok(unsafe {
                ffi::Py_IncRef(ffi::Py_None());
                ffi::Py_None()
            })
        }
        Ok(Err(e)) => Err(e),
        // A panic is our bug: an ordinary exception, not pyo3's
        // PanicException (a BaseException that `except Exception` misses).
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(PyRuntimeError::new_err(format!(
                "logbraid: internal error: {what}"
            )))
        }
    }
}

/// # Safety
/// As [`method`].
unsafe fn call<const K: i32>(
    py: Python<'_>,
    slf: *mut PyObject,
    args: *const *mut PyObject,
    nargs: Py_ssize_t,
    kwnames: *mut PyObject,
) -> PyResult<()> {
    // The method's name, for error messages only.
    let name = || {
        METHODS
            .iter()
            .find(|m| std::ptr::fn_addr_eq(m.1, method::<K> as FastWithKeywords))
            .and_then(|m| m.0.to_str().ok())
            .unwrap_or("log")
    };
    // SAFETY: the descriptor checked that `slf` is a Logger.
    let slf = unsafe { Bound::from_borrowed_ptr(py, slf) };
    let logger = slf.cast::<Logger>()?.get();
    let nkw = if kwnames.is_null() {
        0
    } else {
        // SAFETY: kwnames is a tuple.
        unsafe { ffi::PyTuple_Size(kwnames) }
    };
    let all: &[*mut PyObject] = if args.is_null() {
        &[]
    } else {
        // SAFETY: CPython passes nargs + len(kwnames) values.
        unsafe { std::slice::from_raw_parts(args, (nargs + nkw) as usize) }
    };
    let (positional, keywords) = all.split_at(nargs as usize);
    // SAFETY: every pointer is a live object the caller holds.
    let arg = |p: *mut PyObject| unsafe { Bound::from_borrowed_ptr(py, p) };
    let fixed = if K == LOG { 2 } else { 1 };
    if positional.len() < fixed {
        let missing = if K == LOG && positional.is_empty() {
            "'level' and 'msg'"
        } else {
            "'msg'"
        };
        return Err(PyTypeError::new_err(format!(
            "{}() missing required argument {missing}",
            name()
        )));
    }
    let levelno = match K {
        LOG => {
            let level = arg(positional[0]);
            level
                .extract::<i32>()
                .map_err(|_| PyTypeError::new_err("level must be an integer"))?
        }
        EXCEPTION => 40,
        level => level,
    };
    // A disabled call stops here, before any allocation.
    if !logger.may_log(levelno) {
        return Ok(());
    }
    let mut exc_info =
        (K == EXCEPTION).then(|| pyo3::types::PyBool::new(py, true).to_owned().into_any());
    let mut extra = None;
    let mut stack_info = false;
    let mut stacklevel = 1;
    if nkw > 0 {
        // SAFETY: kwnames is a tuple of str.
        let names = unsafe { Bound::from_borrowed_ptr(py, kwnames) };
        for (key, value) in names.try_iter()?.zip(keywords) {
            let key = key?;
            let value = arg(*value);
            match cpython::utf8(&key) {
                Some("exc_info") => exc_info = Some(value),
                Some("extra") => extra = Some(value),
                Some("stack_info") => stack_info = value.is_truthy()?,
                Some("stacklevel") => stacklevel = value.extract()?,
                _ => {
                    return Err(PyTypeError::new_err(format!(
                        "{}() got an unexpected keyword argument {}",
                        name(),
                        key.repr()?
                    )))
                }
            }
        }
    }
    let msg = arg(positional[fixed - 1]);
    // A slice lent from the caller's own array, not a tuple: a tuple per
    // call would also wake the garbage collector every few hundred calls.
    // SAFETY: every pointer is a live object the caller holds for the call.
    let rest = positional[fixed..]
        .iter()
        .map(|p| unsafe { pyo3::Borrowed::from_ptr(py, *p) });
    cpython::lend(rest, msg.as_borrowed(), |rest| {
        logger.log_at(
            py,
            levelno,
            &msg,
            rest,
            exc_info.as_ref(),
            extra.as_ref(),
            stack_info,
            stacklevel,
        )
    })
}
