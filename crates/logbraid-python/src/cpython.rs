//! The few places where the hot path talks to CPython directly: borrowing
//! a `str`'s UTF-8, finding the caller's frame, and letting go of the GIL
//! while a caller waits for room in a full queue.
//!
//! The package is built for the stable ABI of CPython 3.9 (abi3). The
//! functions declared here are in the stable ABI from 3.10 on; 3.9 exports
//! them too, with the same signatures, so one wheel serves every version.
//! pyo3 leaves them out for abi3-py39, which is why they are declared here.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr};
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;
use std::sync::OnceLock;

use logbraid_pyfmt as pyfmt;
use pyo3::ffi::{self, PyFrameObject, PyObject, Py_ssize_t};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::Borrowed;

extern "C" {
    fn PyUnicode_AsUTF8AndSize(unicode: *mut PyObject, size: *mut Py_ssize_t) -> *const c_char;
    fn PyFrame_GetCode(frame: *mut PyFrameObject) -> *mut PyObject;
    fn PyFrame_GetBack(frame: *mut PyFrameObject) -> *mut PyFrameObject;
    fn PyObject_GenericGetDict(o: *mut PyObject, context: *mut std::ffi::c_void) -> *mut PyObject;
}

/// The UTF-8 of a `str`, borrowed from the object (CPython keeps it with
/// the string; for ASCII it is the string's own storage). `None` when `v`
/// is not a `str` or cannot be encoded (a lone surrogate).
pub(crate) fn utf8<'a>(v: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    if !v.is_instance_of::<PyString>() {
        return None;
    }
    let mut len: Py_ssize_t = 0;
    // SAFETY: `v` is a live str; the buffer lives as long as `v`, which
    // outlives 'a; CPython hands out valid UTF-8 or NULL with an error set.
    unsafe {
        let p = PyUnicode_AsUTF8AndSize(v.as_ptr(), &mut len);
        if p.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        let bytes = std::slice::from_raw_parts(p.cast::<u8>(), len as usize);
        Some(std::str::from_utf8_unchecked(bytes))
    }
}

/// Calls `f` with each key and value of `dict`, borrowed: no reference
/// counting and no size check per item, which is what the `LogRecord`
/// pass spends most on. `f` must not change the dict.
pub(crate) fn dict_items<'py>(
    dict: &Bound<'py, PyDict>,
    mut f: impl FnMut(&Bound<'py, PyAny>, &Bound<'py, PyAny>),
) {
    let py = dict.py();
    let mut pos: Py_ssize_t = 0;
    let mut k: *mut PyObject = std::ptr::null_mut();
    let mut v: *mut PyObject = std::ptr::null_mut();
    // SAFETY: PyDict_Next hands out borrowed references that stay valid
    // while the dict is unchanged; `f` only reads.
    while unsafe { ffi::PyDict_Next(dict.as_ptr(), &mut pos, &mut k, &mut v) } != 0 {
        let (key, value) = unsafe {
            (
                pyo3::Borrowed::from_ptr(py, k),
                pyo3::Borrowed::from_ptr(py, v),
            )
        };
        f(&key, &value);
    }
}

/// An instance's `__dict__`, without the attribute lookup.
pub(crate) fn instance_dict<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    // SAFETY: a new reference or NULL with an error set.
    let d = unsafe { PyObject_GenericGetDict(obj.as_ptr(), std::ptr::null_mut()) };
    if d.is_null() {
        return Err(PyErr::fetch(obj.py()));
    }
    // SAFETY: `d` is a new reference.
    let d = unsafe { Bound::from_owned_ptr(obj.py(), d) };
    Ok(d.cast_into::<PyDict>()?)
}

/// `dict[key]`, or `None` when missing (no exception is raised).
pub(crate) fn dict_get<'py>(
    dict: &Bound<'py, PyDict>,
    key: &Bound<'py, PyString>,
) -> Option<Bound<'py, PyAny>> {
    // SAFETY: PyDict_GetItem returns a borrowed reference (or NULL),
    // made owned at once.
    unsafe {
        // The WithError form: the plain one saves and restores the error
        // state around every lookup. A str key cannot raise.
        let v = ffi::PyDict_GetItemWithError(dict.as_ptr(), key.as_ptr());
        (!v.is_null()).then(|| Bound::from_borrowed_ptr(dict.py(), v))
    }
}

/// Most bytes `fmt % args` makes here; a longer message is left to
/// Python.
const FORMAT_MAX: usize = 1 << 20;

/// Arguments seen as [`pyfmt::Value`]s. Room for a few on the stack, so
/// that the usual call allocates nothing.
pub(crate) struct Values<'a> {
    few: [pyfmt::Value<'a>; 8],
    len: usize,
    more: Vec<pyfmt::Value<'a>>,
}

impl<'a> Values<'a> {
    pub(crate) fn new() -> Self {
        Values {
            few: [pyfmt::Value::None; 8],
            len: 0,
            more: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, v: pyfmt::Value<'a>) {
        if self.len < self.few.len() {
            self.few[self.len] = v;
        } else {
            if self.more.is_empty() {
                self.more.extend_from_slice(&self.few);
            }
            self.more.push(v);
        }
        self.len += 1;
    }

    pub(crate) fn as_slice(&self) -> &[pyfmt::Value<'a>] {
        if self.len <= self.few.len() {
            &self.few[..self.len]
        } else {
            &self.more
        }
    }
}

/// The value of `v` when it is a scalar logbraid-pyfmt models and reads
/// without calling Python: `None`, `bool`, and exact `str`, `float` and
/// `int` within 64 bits (a subclass may change what `str()` shows).
fn value<'a>(v: &'a Bound<'_, PyAny>) -> Option<pyfmt::Value<'a>> {
    if v.is_exact_instance_of::<PyString>() {
        return utf8(v).map(pyfmt::Value::Text);
    }
    if v.is_exact_instance_of::<PyInt>() {
        let mut overflow: c_int = 0;
        // SAFETY: `v` is a live int and the GIL is held. An int outside
        // 64 bits sets `overflow`, not an error; -1 with an error set is
        // only for what is not an int.
        let i = unsafe { ffi::PyLong_AsLongLongAndOverflow(v.as_ptr(), &mut overflow) };
        if overflow != 0 {
            return None;
        }
        if i == -1 && unsafe { !ffi::PyErr_Occurred().is_null() } {
            // SAFETY: as above.
            unsafe { ffi::PyErr_Clear() };
            return None;
        }
        return Some(pyfmt::Value::Int(i128::from(i)));
    }
    if v.is_none() {
        return Some(pyfmt::Value::None);
    }
    if let Ok(b) = v.cast_exact::<PyBool>() {
        return Some(pyfmt::Value::Bool(b.is_true()));
    }
    if let Ok(f) = v.cast_exact::<PyFloat>() {
        return Some(pyfmt::Value::Float(f.value()));
    }
    None
}

/// Deepest container [`owned`] copies; deeper values are left to Python.
const OWNED_DEPTH: usize = 8;

/// A copy of `v` when it is of a kind logbraid-pyfmt models, containers
/// included: what [`value`] reads, an `int` of any size, and exact `bytes`,
/// `tuple`, `list` and `dict` of such values. For the arguments [`value`]
/// does not take; `None` for anything else.
fn owned(v: &Bound<'_, PyAny>, depth: usize) -> Option<pyfmt::OwnedValue> {
    use pyfmt::OwnedValue as O;
    if let Some(scalar) = value(v) {
        return Some(match scalar {
            pyfmt::Value::Text(t) => O::Text(t.to_string()),
            pyfmt::Value::Int(i) => O::Int(i),
            pyfmt::Value::Float(f) => O::Float(f),
            pyfmt::Value::Bool(b) => O::Bool(b),
            _ => O::None,
        });
    }
    if depth >= OWNED_DEPTH {
        return None;
    }
    let all = |items: pyo3::Bound<'_, PyAny>| -> Option<Vec<O>> {
        items
            .try_iter()
            .ok()?
            .map(|i| owned(&i.ok()?, depth + 1))
            .collect()
    };
    if v.is_exact_instance_of::<PyInt>() {
        return int_bytes(v).ok().map(O::BigInt);
    }
    if let Ok(b) = v.cast_exact::<PyBytes>() {
        return Some(O::Bytes(b.as_bytes().to_vec()));
    }
    if v.is_exact_instance_of::<PyTuple>() {
        return all(v.clone()).map(O::Tuple);
    }
    if v.is_exact_instance_of::<PyList>() {
        return all(v.clone()).map(O::List);
    }
    let d = v.cast_exact::<PyDict>().ok()?;
    d.iter()
        .map(|(k, v)| Some((owned(&k, depth + 1)?, owned(&v, depth + 1)?)))
        .collect::<Option<Vec<_>>>()
        .map(O::Dict)
}

/// `n.to_bytes(n.bit_length() // 8 + 1, "little", signed=True)`.
fn int_bytes(n: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let bits: usize = n.call_method0("bit_length")?.extract()?;
    let kwargs = PyDict::new(n.py());
    kwargs.set_item("signed", true)?;
    n.call_method("to_bytes", (bits / 8 + 1, "little"), Some(&kwargs))?
        .extract()
}

/// `fmt % args` as logbraid-pyfmt computes it, for `fmt` a `str` and
/// `args` the positional arguments (a lone non-empty `dict` is the
/// mapping, as `logging` takes it), when every argument is of a kind
/// [`owned`] copies, written into `out` (emptied first). `false`
/// otherwise, and where the format fails (`out` then holds nothing of
/// use): the caller then lets Python format (and raise what it raises,
/// which is what logbraid-pyfmt would say, checked against CPython).
pub(crate) fn format_percent(
    fmt: &Bound<'_, PyAny>,
    args: &[Borrowed<'_, '_, PyAny>],
    out: &mut String,
) -> bool {
    out.clear();
    if !fmt.is_exact_instance_of::<PyString>() {
        return false;
    }
    let Some(fmt) = utf8(fmt) else {
        return false;
    };
    out.reserve(fmt.len() + 16 * args.len());
    if let [one] = args {
        if one.cast_exact::<PyDict>().is_ok_and(|d| !d.is_empty()) {
            return owned(one, 0)
                .is_some_and(|map| pyfmt::format(fmt, &map, out, FORMAT_MAX).is_ok());
        }
    }
    // The usual arguments are borrowed; a container or a big int makes a
    // copy of them all.
    let mut values = Values::new();
    for a in args {
        match value(a) {
            Some(v) => values.push(v),
            None => {
                let Some(all) = args.iter().map(|a| owned(a, 0)).collect::<Option<Vec<_>>>() else {
                    return false;
                };
                let tuple = pyfmt::OwnedValue::Tuple(all);
                return pyfmt::format(fmt, &tuple, out, FORMAT_MAX).is_ok();
            }
        }
    }
    let tuple = pyfmt::Value::Tuple(values.as_slice());
    pyfmt::format(fmt, &tuple, out, FORMAT_MAX).is_ok()
}

/// The format and the arguments of `fmt % args`, borrowed, when the
/// writer may make the message (see [`crate::deferred`]): `fmt` an exact
/// `str`, every argument a scalar [`value`] reads, and the format certain
/// to succeed with them. `values` receives the arguments.
pub(crate) fn percent_values<'a>(
    fmt: &'a Bound<'_, PyAny>,
    args: &'a [Borrowed<'_, '_, PyAny>],
    values: &mut Values<'a>,
) -> Option<&'a str> {
    if args.is_empty() || !fmt.is_exact_instance_of::<PyString>() {
        return None;
    }
    let text = utf8(fmt)?;
    for a in args {
        values.push(value(a)?);
    }
    crate::deferred::deferrable(text, plain_of(fmt, text), values.as_slice()).then_some(text)
}

/// Formats longer than this are not kept: at most [`FORMATS_KEPT`] of
/// them per thread, so a thread holds at most 256 KiB of formats made at
/// run time.
const FORMAT_KEPT_LEN: usize = 256;
const FORMATS_KEPT: usize = 1024;

/// `Plain::of(text)` for `fmt` (whose text is `text`), from this thread's
/// cache: a log call's format is most often a constant of its code.
fn plain_of(fmt: &Bound<'_, PyAny>, text: &str) -> Option<pyfmt::Plain> {
    if text.len() > FORMAT_KEPT_LEN {
        return pyfmt::Plain::of(text);
    }
    let key = fmt.as_ptr() as usize;
    let cached = SITES.try_with(|s| s.try_borrow().ok()?.formats.get(&key).map(|(_, p)| *p));
    if let Ok(Some(plain)) = cached {
        return plain;
    }
    let plain = pyfmt::Plain::of(text);
    let _ = SITES.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            if s.formats.len() >= FORMATS_KEPT {
                s.formats.clear();
            }
            s.formats.insert(key, (fmt.clone().unbind(), plain));
        }
    });
    plain
}

/// Up to this many arguments [`lend`] keeps on the stack.
const FEW: usize = 8;

/// Calls `f` with `items` as a slice of borrowed objects (the caller holds
/// them for the call): on the stack for a few, so that the usual call
/// allocates nothing and counts no references. `fill` stands in the
/// unused slots.
pub(crate) fn lend<'a, 'py, R>(
    items: impl ExactSizeIterator<Item = Borrowed<'a, 'py, PyAny>>,
    fill: Borrowed<'a, 'py, PyAny>,
    f: impl FnOnce(&[Borrowed<'a, 'py, PyAny>]) -> R,
) -> R {
    let n = items.len();
    if n <= FEW {
        let mut few = [fill; FEW];
        for (slot, item) in few.iter_mut().zip(items) {
            *slot = item;
        }
        f(&few[..n])
    } else {
        let all: Vec<_> = items.collect();
        f(&all)
    }
}

/// Largest message buffer a thread keeps for its next record.
const MESSAGE_KEEP: usize = 64 * 1024;

thread_local! {
    static MESSAGE: Cell<String> = const { Cell::new(String::new()) };
}

/// This thread's buffer for a formatted message, kept between records so
/// that formatting allocates nothing (an allocation and a free cost more
/// than the `%`-formatting of a usual message). Taken out of the thread's
/// slot while in use: a record logged meanwhile (by a `__str__` called for
/// an `extra` field) gets a buffer of its own. Put back on drop, unless it
/// grew past [`MESSAGE_KEEP`].
pub(crate) struct MessageBuf(String);

impl MessageBuf {
    pub(crate) fn take() -> MessageBuf {
        MessageBuf(MESSAGE.try_with(Cell::take).unwrap_or_default())
    }
}

impl std::ops::Deref for MessageBuf {
    type Target = String;
    fn deref(&self) -> &String {
        &self.0
    }
}

impl std::ops::DerefMut for MessageBuf {
    fn deref_mut(&mut self) -> &mut String {
        &mut self.0
    }
}

impl Drop for MessageBuf {
    fn drop(&mut self) {
        if self.0.capacity() <= MESSAGE_KEEP {
            let buf = std::mem::take(&mut self.0);
            // During the thread's exit the slot may be gone: then the
            // buffer is simply freed.
            let _ = MESSAGE.try_with(|m| m.set(buf));
        }
    }
}

/// `v` as text: a `str` borrowed, a `str` with lone surrogates with each
/// replaced by U+FFFD, a value logbraid-pyfmt models through its `str()`,
/// anything else through Python's `str()` (or `repr()` when `str()`
/// raises). Never fails: a record is always written.
pub(crate) fn text<'a>(v: &'a Bound<'_, PyAny>) -> Cow<'a, str> {
    if let Some(s) = utf8(v) {
        return Cow::Borrowed(s);
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Cow::Owned(s.to_string_lossy().into_owned());
    }
    if let Some(value) = owned(v, 0) {
        let mut s = String::new();
        if pyfmt::write_str(&mut s, &value).is_ok() {
            return Cow::Owned(s);
        }
    }
    let shown = v.str().or_else(|_| v.repr());
    match shown {
        Ok(s) => Cow::Owned(text(s.as_any()).into_owned()),
        Err(_) => Cow::Borrowed("<unprintable>"),
    }
}

/// Names of one code object, worked out once.
pub(crate) struct CodeNames {
    pub(crate) file: Box<str>,
    pub(crate) function: Box<str>,
    pub(crate) module: Box<str>,
    /// Code of the `logging` module itself, which callers are looked for
    /// above, as `logging` does.
    internal: bool,
}

/// Where a call came from.
pub(crate) struct Caller {
    pub(crate) names: Rc<CodeNames>,
    pub(crate) line: u32,
    /// The site made static (see [`crate::site`]), when it could be.
    pub(crate) site: Option<&'static logbraid::macros::Site>,
}

/// A multiplicative hash for pointer-and-offset keys: the std hasher costs
/// more than the rest of the lookup.
#[derive(Default)]
struct PtrHasher(u64);

impl Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_i32(&mut self, n: i32) {
        self.write_u64(n as u64);
    }
}

type Fast<K, V> = HashMap<K, V, BuildHasherDefault<PtrHasher>>;

/// Per thread: the names of code objects seen, the line of each
/// (code, instruction offset) seen with the static site last logged there
/// and the code's names again (one look for a place seen before), and the
/// formats seen with what `Plain::of` said of each. A code object or
/// format is held while cached, so its address cannot be another's.
#[derive(Default)]
struct SiteCache {
    codes: Fast<usize, (Py<PyAny>, Rc<CodeNames>)>,
    formats: Fast<usize, (Py<PyAny>, Option<pyfmt::Plain>)>,
    lines: Fast<(usize, i32), (u32, Option<&'static logbraid::macros::Site>, Rc<CodeNames>)>,
}

/// Past this many code objects or call sites a thread's cache starts over.
const CACHE_LIMIT: usize = 4096;

thread_local! {
    static SITES: RefCell<SiteCache> = RefCell::new(SiteCache::default());
}

type GetLasti = unsafe extern "C" fn(*mut PyFrameObject) -> c_int;

/// `PyFrame_GetLasti` (CPython 3.11 and newer), looked up once; older
/// versions read `f_lasti`.
fn get_lasti_fn() -> Option<GetLasti> {
    static F: OnceLock<Option<GetLasti>> = OnceLock::new();
    *F.get_or_init(|| {
        const NAME: &CStr = c"PyFrame_GetLasti";
        // SAFETY: dlsym with a NUL-terminated name; the symbol, when the
        // interpreter exports it, has this signature.
        unsafe {
            let p = libc::dlsym(libc::RTLD_DEFAULT, NAME.as_ptr());
            (!p.is_null()).then(|| std::mem::transmute::<*mut libc::c_void, GetLasti>(p))
        }
    })
}

/// Where the call into Rust came from, as `logging` finds it: the
/// `stacklevel`-th frame up from the direct caller (1: that caller),
/// counting only frames outside the `logging` module itself (so that a
/// `LoggerAdapter` around a logbraid Logger names the adapter's caller);
/// the outermost frame when the stack is not that deep. `None` when no
/// Python code is running. `target` is the logger's name, for the site.
pub(crate) fn caller(py: Python<'_>, stacklevel: i32, target: &str) -> Option<Caller> {
    // SAFETY: the GIL is held; PyEval_GetFrame returns a borrowed frame,
    // made owned here; PyFrame_GetBack returns a new reference.
    let mut frame: Bound<'_, PyAny> = unsafe {
        let f = ffi::PyEval_GetFrame();
        if f.is_null() {
            return None;
        }
        Bound::from_borrowed_ptr(py, f.cast())
    };
    let mut remaining = stacklevel.max(1);
    loop {
        let fptr = frame.as_ptr().cast::<PyFrameObject>();
        // SAFETY: `frame` is a live frame; the code is a new reference.
        let code: Bound<'_, PyAny> = unsafe { Bound::from_owned_ptr(py, PyFrame_GetCode(fptr)) };
        let spot = spot(&frame, &code);
        if !spot.names.internal {
            remaining -= 1;
        }
        if remaining == 0 {
            return Some(spot.caller(&frame, target));
        }
        // SAFETY: a new reference, or NULL at the outermost frame.
        match unsafe { Bound::from_owned_ptr_or_opt(py, PyFrame_GetBack(fptr).cast()) } {
            Some(back) => frame = back,
            None => return Some(spot.caller(&frame, target)),
        }
    }
}

/// The names of `code`, from this thread's cache.
fn names_of(code: &Bound<'_, PyAny>) -> Rc<CodeNames> {
    let key = code.as_ptr() as usize;
    if let Some(n) = SITES.with(|s| s.borrow().codes.get(&key).map(|(_, n)| Rc::clone(n))) {
        return n;
    }
    let names = Rc::new(code_names(code));
    SITES.with(|s| {
        let mut s = s.borrow_mut();
        if s.codes.len() >= CACHE_LIMIT {
            *s = SiteCache::default();
        }
        s.codes
            .insert(key, (code.clone().unbind(), Rc::clone(&names)));
    });
    names
}

/// Where a frame is: its code's names, and, when this thread has been
/// there before, its line and the static site last logged from there.
struct Spot {
    names: Rc<CodeNames>,
    seen: Option<(u32, Option<&'static logbraid::macros::Site>)>,
    /// The cache's key: the code and the instruction offset (none when
    /// the frame does not tell its offset).
    key: Option<(usize, i32)>,
}

/// The [`Spot`] of `frame`, running `code`: one look in this thread's
/// cache for a place seen before.
fn spot(frame: &Bound<'_, PyAny>, code: &Bound<'_, PyAny>) -> Spot {
    let py = frame.py();
    let fptr = frame.as_ptr().cast::<PyFrameObject>();
    let lasti = match get_lasti_fn() {
        // SAFETY: `fptr` is a live frame and the GIL is held.
        Some(f) => unsafe { f(fptr) },
        None => frame
            .getattr(pyo3::intern!(py, "f_lasti"))
            .and_then(|v| v.extract::<i32>())
            .unwrap_or(-1),
    };
    let key = (lasti >= 0).then_some((code.as_ptr() as usize, lasti));
    if let Some(key) = key {
        let found = SITES.with(|s| {
            s.borrow()
                .lines
                .get(&key)
                .map(|(line, site, names)| (*line, *site, Rc::clone(names)))
        });
        if let Some((line, site, names)) = found {
            return Spot {
                names,
                seen: Some((line, site)),
                key: Some(key),
            };
        }
    }
    Spot {
        names: names_of(code),
        seen: None,
        key,
    }
}

impl Spot {
    /// The caller at this spot (`frame`'s), its line worked out where not
    /// seen before (it walks the code's line table), its site made static
    /// for logger `target`; both kept for the next call from here.
    fn caller(self, frame: &Bound<'_, PyAny>, target: &str) -> Caller {
        let line = match self.seen {
            Some((line, Some(site))) if site.target == target => {
                return Caller {
                    names: self.names,
                    line,
                    site: Some(site),
                }
            }
            Some((line, _)) => line,
            None => line_of(frame),
        };
        let site = crate::site::of(target, &self.names, line);
        if let Some(key) = self.key {
            SITES.with(|s| {
                let mut s = s.borrow_mut();
                if s.lines.len() >= CACHE_LIMIT {
                    s.lines.clear();
                }
                // The key's code object is held by `codes` (`names_of` put
                // it there), so its address is not reused while kept.
                if s.codes.contains_key(&key.0) {
                    s.lines.insert(key, (line, site, Rc::clone(&self.names)));
                }
            });
        }
        Caller {
            names: self.names,
            line,
            site,
        }
    }
}

fn line_of(frame: &Bound<'_, PyAny>) -> u32 {
    frame
        .getattr(pyo3::intern!(frame.py(), "f_lineno"))
        .and_then(|v| v.extract::<u32>())
        .unwrap_or(0)
}

fn code_names(code: &Bound<'_, PyAny>) -> CodeNames {
    let py = code.py();
    let attr = |name: &Bound<'_, PyString>| -> Box<str> {
        code.getattr(name)
            .map(|v| text(&v).into())
            .unwrap_or_default()
    };
    let file = attr(pyo3::intern!(py, "co_filename"));
    let function = attr(pyo3::intern!(py, "co_name"));
    let module = pyfmt::record::module(&file).into();
    let internal = logging_source(py).is_some_and(|src| &*file == src);
    CodeNames {
        file,
        function,
        module,
        internal,
    }
}

/// `logging._srcfile`: the file of the `logging` module's own code.
fn logging_source(py: Python<'_>) -> Option<&str> {
    static SRC: pyo3::sync::PyOnceLock<Option<String>> = pyo3::sync::PyOnceLock::new();
    SRC.get_or_init(py, || {
        py.import("logging")
            .and_then(|m| m.getattr("_srcfile"))
            .and_then(|v| v.extract::<Option<String>>())
            .ok()
            .flatten()
    })
    .as_deref()
}

thread_local! {
    /// Set while this thread, holding the GIL, is inside a pipeline call
    /// made by [`holding_gil`].
    static HOLDS_GIL: Cell<bool> = const { Cell::new(false) };
}

thread_local! {
    static NAMED: Cell<bool> = const { Cell::new(false) };
}

/// Before a thread's first record: its records carry its `threading`
/// name (`MainThread`, `worker-7`) and `threading.get_ident()`, as
/// `%(threadName)s` and `%(thread)d` do in logging.
fn name_this_thread(py: Python<'_>) {
    if NAMED.with(|n| n.replace(true)) {
        return;
    }
    let name = py
        .import(pyo3::intern!(py, "threading"))
        .and_then(|t| t.call_method0(pyo3::intern!(py, "current_thread")))
        .and_then(|t| t.getattr(pyo3::intern!(py, "name")));
    if let Ok(name) = name {
        logbraid::name_thread(&text(&name));
    }
    // SAFETY: a plain C call; the GIL is held.
    logbraid::set_thread_id(unsafe { ffi::PyThread_get_thread_ident() } as u64);
}

/// Runs `log` (a call into the pipeline) noting that this thread holds the
/// GIL, so that [`wait_without_gil`] may let go of it.
pub(crate) fn holding_gil<R>(py: Python<'_>, log: impl FnOnce() -> R) -> R {
    name_this_thread(py);
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            HOLDS_GIL.with(|h| h.set(self.0));
        }
    }
    let _reset = Reset(HOLDS_GIL.with(|h| h.replace(true)));
    log()
}

/// The pipeline's wait hook: a caller that must wait for room in a full
/// queue (overflow "block") lets go of the GIL while it waits, so the
/// program's other threads, and the event loops running on them, go on.
/// Threads that are not in a call from Python (the collector's) just wait.
pub(crate) fn wait_without_gil(wait: &mut dyn FnMut()) {
    if !HOLDS_GIL.with(Cell::get) {
        return wait();
    }
    struct Restore(*mut ffi::PyThreadState);
    impl Drop for Restore {
        fn drop(&mut self) {
            HOLDS_GIL.with(|h| h.set(true));
            // SAFETY: the state this thread saved with PyEval_SaveThread.
            unsafe { ffi::PyEval_RestoreThread(self.0) }
        }
    }
    HOLDS_GIL.with(|h| h.set(false));
    // SAFETY: this thread holds the GIL (it is in `holding_gil`); it is
    // taken back on the way out, even if `wait` panics.
    let _restore = Restore(unsafe { ffi::PyEval_SaveThread() });
    wait();
}
