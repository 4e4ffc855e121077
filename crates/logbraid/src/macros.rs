//! logbraid's own logging macros: [`trace!`](crate::trace),
//! [`debug!`](crate::debug), [`info!`](crate::info), [`warn!`](crate::warn),
//! [`error!`](crate::error) and [`log!`](crate::log), which format on the
//! writer thread.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("app.log");
//! use logbraid::sink::RollingFile;
//! let (logger, guard) = logbraid::Builder::new()
//!     .file(RollingFile::builder(&path))?
//!     .build()?;
//! let (id, ms, user) = (7, 3.25, "ada");
//! logbraid::info!(logger: logger, "request {} served in {ms:.1} ms for {user}", id);
//! // Fields come first, ended by `;`:
//! logbraid::warn!(logger: logger, user = user, attempt = 3; "retrying {id}");
//! drop(guard);
//! let text = std::fs::read_to_string(&path)?;
//! assert!(text.contains(": request 7 served in 3.2 ms for ada\n"));
//! assert!(text.contains(": retrying 7 user=ada attempt=3\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Without `logger:` a macro logs to the logger installed by
//! [`Builder::init`](crate::Builder::init) (also the one of the `log`
//! facade), and does nothing while none is.
//!
//! # What a call costs
//!
//! The level is checked first (one relaxed load while the level is off for
//! every target); no argument is evaluated when it fails. Then the call
//! copies into its thread's queue the address of a `static` describing the
//! call site (level aside: target, module, file, line and format string),
//! the address of the function that formats the message, the timestamp and
//! the values of the placeholders, raw: integers, floats, `bool`, `char`
//! and strings (`&str`, `String`) are copied, any other value is formatted
//! at once with its placeholder's spec, so nothing borrowed is read later.
//! The writer thread decodes the values with their types and formats the
//! message with `format_args!` and the format string the compiler split,
//! then hands the record to the layouts as any other: the bytes are those
//! of `format!`, and those the `log` facade's path writes.
//!
//! # Syntax
//!
//! `info!([target: "literal",] [logger: expr,] [key = value, ...;] "format", args...)`
//!
//! The format string and its arguments are those of `format!`: positional
//! and named arguments, inline captures (`{name}`), every spec. A format
//! string given by a macro (`concat!`) is formatted whole at the call. The
//! optional fields come before the format string and end with `;`: after
//! it, `key = value` already means a named argument of the format string,
//! so trailing fields would be read as arguments (or the reverse) without
//! a mark, while a literal cannot start a field. Field values that are
//! integers, floats, `bool` or strings keep their type (JSON writes them
//! as numbers and booleans); others are written with `Display`.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};

use crate::level::Level;
use crate::logger::Logger;
use crate::record::{FieldsBuf, Value as FieldValue};

/// Logs at TRACE with formatting deferred to the writer thread (see
/// [`crate::macros`]).
#[macro_export]
macro_rules! trace {
    ($($t:tt)+) => { $crate::__private::deferred!([$crate] [$crate::Level::Trace] $($t)+) };
}

/// Logs at DEBUG with formatting deferred to the writer thread (see
/// [`crate::macros`]).
#[macro_export]
macro_rules! debug {
    ($($t:tt)+) => { $crate::__private::deferred!([$crate] [$crate::Level::Debug] $($t)+) };
}

/// Logs at INFO with formatting deferred to the writer thread (see
/// [`crate::macros`]).
#[macro_export]
macro_rules! info {
    ($($t:tt)+) => { $crate::__private::deferred!([$crate] [$crate::Level::Info] $($t)+) };
}

/// Logs at WARN with formatting deferred to the writer thread (see
/// [`crate::macros`]).
#[macro_export]
macro_rules! warn {
    ($($t:tt)+) => { $crate::__private::deferred!([$crate] [$crate::Level::Warn] $($t)+) };
}

/// Logs at ERROR with formatting deferred to the writer thread (see
/// [`crate::macros`]).
#[macro_export]
macro_rules! error {
    ($($t:tt)+) => { $crate::__private::deferred!([$crate] [$crate::Level::Error] $($t)+) };
}

/// Logs at the [`Level`](crate::Level) given first, with formatting
/// deferred to the writer thread (see [`crate::macros`]):
/// `log!(Level::Warn, "disk {}% full", pct)`.
#[macro_export]
macro_rules! log {
    ($level:expr, $($t:tt)+) => { $crate::__private::deferred!([$crate] [$level] $($t)+) };
}

/// Where a deferred record was logged: a `static` per call site.
#[derive(Debug)]
pub struct Site {
    /// Target (`module_path!()` unless `target:` was given).
    pub target: &'static str,
    /// `module_path!()`.
    pub module: &'static str,
    /// `file!()`.
    pub file: &'static str,
    /// `line!()`.
    pub line: u32,
    /// The format string as written.
    pub format: &'static str,
    /// The function, for bindings that know it (Python's callers); the
    /// macros leave it `None`.
    pub function: Option<&'static str>,
}

/// Formats a message from the encoded values of a call site, and says
/// whether what it wrote is plain ([`Record::plain_message`]).
///
/// [`Record::plain_message`]: crate::Record::plain_message
pub type FormatFn = fn(&[u8], &mut Vec<u8>) -> bool;

/// Whether `text` is plain: printable ASCII other than `"` and `\`, the
/// bytes no layout escapes (see [`Record::plain_message`]).
///
/// [`Record::plain_message`]: crate::Record::plain_message
pub const fn is_plain(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] < 0x20 || b[i] > 0x7e || b[i] == b'"' || b[i] == b'\\' {
            return false;
        }
        i += 1;
    }
    true
}

/// The level below which the installed logger logs nothing for any target
/// (`u8::MAX`: no logger installed): the macros' first check.
static MAX: AtomicU8 = AtomicU8::new(u8::MAX);
/// The installed logger; each one installed is leaked, so a reference
/// read from here stays valid whatever is installed later.
static GLOBAL: AtomicPtr<Logger> = AtomicPtr::new(std::ptr::null_mut());

/// Whether the installed logger's directives name targets: without, a
/// level past [`MAX`] is enough (no second look through the logger).
static BY_TARGET: AtomicBool = AtomicBool::new(true);

/// Makes `logger` the one the macros log to when no `logger:` is given.
pub(crate) fn install(logger: &Logger) {
    let leaked: &'static Logger = Box::leak(Box::new(logger.clone()));
    BY_TARGET.store(true, Ordering::Release);
    GLOBAL.store(leaked as *const Logger as *mut Logger, Ordering::Release);
    MAX.store(logger.max_level().to_u8(), Ordering::Release);
    BY_TARGET.store(logger.filters_by_target(), Ordering::Release);
}

/// The installed logger, without the lock of [`crate::global`].
pub(crate) fn installed() -> Option<&'static Logger> {
    // SAFETY: as in `enabled_global`.
    unsafe { GLOBAL.load(Ordering::Acquire).as_ref() }
}

/// The installed logger when it logs `level` for `target`.
#[inline(always)]
pub fn enabled(level: Level, target: &str) -> Option<&'static Logger> {
    if (level as u8) < MAX.load(Ordering::Relaxed) {
        return None;
    }
    enabled_global(level, target)
}

#[inline(always)]
fn enabled_global(level: Level, target: &str) -> Option<&'static Logger> {
    let p = GLOBAL.load(Ordering::Acquire);
    // SAFETY: non-null pointers stored in GLOBAL come from Box::leak in
    // `install` and are never freed.
    let logger = unsafe { p.as_ref() }?;
    if !BY_TARGET.load(Ordering::Relaxed) {
        return Some(logger);
    }
    logger.enabled(target, level).then_some(logger)
}

/// `logger` when it logs `level` for `target`.
#[inline(always)]
pub fn enabled_in<'a>(logger: &'a Logger, level: Level, target: &str) -> Option<&'a Logger> {
    logger.enabled(target, level).then_some(logger)
}

/// Queues a deferred record. When every value is copied raw and there
/// are no fields, `size` is the bytes they take and `write` writes them
/// straight into the thread's ring; otherwise (or when that ring has no
/// room or does not exist yet) `fill` writes the values and the fields into
/// buffers, and the record takes the path of every other record.
#[inline(always)]
pub fn log<W: FnMut(&mut Out<'_>), F: FnMut(&mut Vec<u8>, &mut FieldsBuf)>(
    logger: &Logger,
    level: Level,
    site: &'static Site,
    format: FormatFn,
    size: Option<usize>,
    mut write: W,
    fill: F,
) {
    if let Some(size) = size {
        if logger.try_log_deferred(level, site, format, size, &mut write) {
            return;
        }
    }
    logger.log_deferred(level, site, format, fill);
}

/// The sum of the raw sizes, `None` when one is not raw.
#[inline(always)]
pub const fn add(total: Option<usize>, size: Option<usize>) -> Option<usize> {
    match (total, size) {
        (Some(a), Some(b)) => Some(a + b),
        _ => None,
    }
}

/// Where encoded values go: a buffer, or a reserved entry of a ring.
pub trait Buf {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl Buf for Vec<u8> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// The values' part of an entry reserved in a ring, written in order.
pub struct Out<'a> {
    slot: crate::pipeline::Slot<'a>,
    at: usize,
}

impl fmt::Debug for Out<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Out").field("at", &self.at).finish()
    }
}

impl<'a> Out<'a> {
    pub(crate) fn new(slot: crate::pipeline::Slot<'a>, at: usize) -> Self {
        Out { slot, at }
    }
}

impl Buf for Out<'_> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        self.slot.put(self.at, bytes);
        self.at += bytes.len();
    }
}

/// Never called: the compiler checks the format string and its arguments
/// through it, with `format!`'s own messages.
pub fn check(_: fmt::Arguments<'_>) {}

/// Appends formatted text: `fmt::write` straight into the vector, without
/// the `io::Write` adapter's error plumbing (the same bytes).
#[inline]
pub fn write_fmt(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    struct Text<'a>(&'a mut Vec<u8>);

    impl fmt::Write for Text<'_> {
        #[inline]
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }

    match args.as_str() {
        Some(s) => out.extend_from_slice(s.as_bytes()),
        None => {
            // Only a `Display` implementation that fails stops it: what it
            // wrote so far stays, as on the `log` facade's path.
            let _ = fmt::write(&mut Text(out), args);
        }
    }
}

/// Reads encoded values back, in the order they were written. Reading past
/// the end gives zeros and empty strings, never a panic.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    #[inline]
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    #[inline]
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.bytes.len());
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        head
    }

    /// The next `N` bytes: one comparison and a load of constant size
    /// where they are all there (every value the call wrote), the bytes
    /// left and zeros past them otherwise.
    #[inline]
    fn array<const N: usize>(&mut self) -> [u8; N] {
        if let Some((head, rest)) = self.bytes.split_first_chunk::<N>() {
            self.bytes = rest;
            return *head;
        }
        self.short()
    }

    #[cold]
    fn short<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let b = self.take(N);
        a[..b.len()].copy_from_slice(b);
        a
    }

    #[inline]
    fn str(&mut self) -> &'a str {
        let len = u32::from_le_bytes(self.array());
        // Written from a `&str` by `put_str`, so valid unless cut short.
        std::str::from_utf8(self.take(len as usize)).unwrap_or("")
    }
}

#[inline(always)]
fn str_len(s: &str) -> usize {
    s.len().min(u32::MAX as usize)
}

#[inline(always)]
fn put_str<B: Buf>(out: &mut B, s: &str) {
    let len = str_len(s);
    out.put(&(len as u32).to_le_bytes());
    out.put(&s.as_bytes()[..len]);
}

/// How the writer reads one value back and formats it: each formatting
/// trait the type has delegates to it (the others are never reached:
/// the compiler rejected the format string).
pub trait Decode: 'static {
    /// Whether [`Decode::plain`] writes plain text ([`is_plain`]) for
    /// every value: digits, signs, points, `inf`, `NaN`, `true`, `false`.
    const PLAIN: bool = false;
    /// The value read back.
    type Out<'a>;
    /// Reads the next value.
    fn decode<'a>(r: &mut Reader<'a>) -> Self::Out<'a>;
    /// `{}`.
    fn display(v: &Self::Out<'_>, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    /// `{:?}`.
    fn debug(v: &Self::Out<'_>, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    /// `{:x}`.
    fn lower_hex(_: &Self::Out<'_>, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
    /// `{:X}`.
    fn upper_hex(_: &Self::Out<'_>, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
    /// `{:o}`.
    fn octal(_: &Self::Out<'_>, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
    /// `{:b}`.
    fn binary(_: &Self::Out<'_>, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
    /// `{:e}`.
    fn lower_exp(_: &Self::Out<'_>, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
    /// `{:E}`.
    fn upper_exp(_: &Self::Out<'_>, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
    /// `{:p}`.
    fn pointer(_: &Self::Out<'_>, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
    /// `{}` appended to `out`: the bytes of [`Decode::display`] with no
    /// spec, written without `core::fmt` where a type can (integers,
    /// strings, `bool`, `char`). The writer's path for a format string
    /// whose placeholders are all bare.
    #[inline]
    fn plain(v: &Self::Out<'_>, out: &mut Vec<u8>)
    where
        Self: Sized,
    {
        write_fmt(out, format_args!("{}", Decoded::<Self>::by_ref(v)));
    }
}

/// A decoded value, formatted through its [`Decode`].
pub struct Decoded<'a, K: Decode>(pub K::Out<'a>);

impl<'a, K: Decode> Decoded<'a, K> {
    /// Reads the next value.
    #[inline]
    pub fn read(r: &mut Reader<'a>) -> Self {
        Decoded(K::decode(r))
    }

    /// Appends it as `{}` does (see [`Decode::plain`]).
    #[inline(always)]
    pub fn plain(&self, out: &mut Vec<u8>) {
        K::plain(&self.0, out)
    }
}

/// A decoded value borrowed, formatted through its [`Decode`].
struct ByRef<'v, 'a, K: Decode>(&'v K::Out<'a>);

impl<K: Decode> fmt::Display for ByRef<'_, '_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        K::display(self.0, f)
    }
}

impl<K: Decode> Decoded<'_, K> {
    fn by_ref<'v, 'a>(v: &'v K::Out<'a>) -> ByRef<'v, 'a, K> {
        ByRef(v)
    }
}

macro_rules! delegate {
    ($($tr:ident => $m:ident),*) => {$(
        impl<K: Decode> fmt::$tr for Decoded<'_, K> {
            #[inline]
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                K::$m(&self.0, f)
            }
        }
    )*};
}

delegate!(Display => display, Debug => debug, LowerHex => lower_hex, UpperHex => upper_hex,
    Octal => octal, Binary => binary, LowerExp => lower_exp, UpperExp => upper_exp,
    Pointer => pointer);

/// A type whose values are copied raw at the call.
pub trait Raw {
    /// How the writer reads it back.
    type Kind: Decode;
    /// Bytes of the encoding.
    fn size(&self) -> usize;
    /// Appends the encoding, [`Raw::size`] bytes.
    fn put<B: Buf>(&self, out: &mut B);
    /// Pushes it as a field.
    fn field(&self, fields: &mut FieldsBuf, key: &str);
}

impl<T: Raw + ?Sized> Raw for &T {
    type Kind = T::Kind;
    #[inline(always)]
    fn size(&self) -> usize {
        (**self).size()
    }
    #[inline(always)]
    fn put<B: Buf>(&self, out: &mut B) {
        (**self).put(out)
    }
    fn field(&self, fields: &mut FieldsBuf, key: &str) {
        (**self).field(fields, key)
    }
}

macro_rules! numbers {
    ($($t:ty => $field:expr, [$($tr:ident => $m:ident),*] $(, plain: $plain:expr)?;)*) => {$(
        impl Raw for $t {
            type Kind = $t;
            #[inline(always)]
            fn size(&self) -> usize {
                std::mem::size_of::<$t>()
            }
            #[inline(always)]
            fn put<B: Buf>(&self, out: &mut B) {
                out.put(&self.to_le_bytes());
            }
            fn field(&self, fields: &mut FieldsBuf, key: &str) {
                #[allow(clippy::redundant_closure_call)]
                ($field)(fields, key, *self)
            }
        }

        impl Decode for $t {
            const PLAIN: bool = true;
            type Out<'a> = $t;
            #[inline]
            fn decode<'a>(r: &mut Reader<'a>) -> $t {
                <$t>::from_le_bytes(r.array())
            }
            fn display(v: &$t, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(v, f)
            }
            fn debug(v: &$t, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(v, f)
            }
            $(fn $m(v: &$t, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::$tr::fmt(v, f)
            })*
            $(#[inline(always)]
            fn plain(v: &$t, out: &mut Vec<u8>) {
                #[allow(clippy::redundant_closure_call)]
                ($plain)(v, out)
            })?
        }
    )*};
}

macro_rules! integers {
    ($($t:ty => $field:expr;)*) => {
        numbers!($($t => $field, [LowerHex => lower_hex, UpperHex => upper_hex, Octal => octal,
            Binary => binary, LowerExp => lower_exp, UpperExp => upper_exp],
            plain: |v: &$t, out: &mut Vec<u8>| Plain::push(*v, out);)*);
    };
}

/// Integers written in decimal without `core::fmt`.
trait Plain: fmt::Display + Copy {
    fn push(self, out: &mut Vec<u8>);
}

macro_rules! plain_ints {
    (unsigned: $($u:ty),*; signed: $($i:ty),*; wide: $($w:ty),*) => {
        $(impl Plain for $u {
            #[inline(always)]
            fn push(self, out: &mut Vec<u8>) {
                crate::layout::push_u64(out, self as u64)
            }
        })*
        $(impl Plain for $i {
            #[inline(always)]
            fn push(self, out: &mut Vec<u8>) {
                crate::layout::push_i64(out, self as i64)
            }
        })*
        $(impl Plain for $w {
            fn push(self, out: &mut Vec<u8>) {
                write_fmt(out, format_args!("{self}"))
            }
        })*
    };
}

plain_ints!(unsigned: u8, u16, u32, u64, usize; signed: i8, i16, i32, i64, isize; wide: i128, u128);

fn signed(fields: &mut FieldsBuf, key: &str, v: i64) {
    fields.push(key, FieldValue::I64(v));
}

fn unsigned(fields: &mut FieldsBuf, key: &str, v: u64) {
    fields.push(key, FieldValue::U64(v));
}

integers! {
    i8 => |f, k, v| signed(f, k, v as i64);
    i16 => |f, k, v| signed(f, k, v as i64);
    i32 => |f, k, v| signed(f, k, v as i64);
    i64 => signed;
    isize => |f, k, v| signed(f, k, v as i64);
    u8 => |f, k, v| unsigned(f, k, v as u64);
    u16 => |f, k, v| unsigned(f, k, v as u64);
    u32 => |f, k, v| unsigned(f, k, v as u64);
    u64 => unsigned;
    usize => |f, k, v| unsigned(f, k, v as u64);
    i128 => |f: &mut FieldsBuf, k, v| f.push_fmt(k, format_args!("{v}"));
    u128 => |f: &mut FieldsBuf, k, v| f.push_fmt(k, format_args!("{v}"));
}

numbers! {
    f32 => |f: &mut FieldsBuf, k, v: f32| f.push(k, FieldValue::F64(v as f64)),
        [LowerExp => lower_exp, UpperExp => upper_exp];
    f64 => |f: &mut FieldsBuf, k, v| f.push(k, FieldValue::F64(v)),
        [LowerExp => lower_exp, UpperExp => upper_exp];
}

impl Raw for bool {
    type Kind = bool;
    #[inline(always)]
    fn size(&self) -> usize {
        1
    }
    #[inline(always)]
    fn put<B: Buf>(&self, out: &mut B) {
        out.put(&[*self as u8]);
    }
    fn field(&self, fields: &mut FieldsBuf, key: &str) {
        fields.push(key, FieldValue::Bool(*self));
    }
}

impl Decode for bool {
    const PLAIN: bool = true;
    type Out<'a> = bool;
    #[inline]
    fn decode<'a>(r: &mut Reader<'a>) -> bool {
        r.array::<1>()[0] != 0
    }
    fn display(v: &bool, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(v, f)
    }
    fn debug(v: &bool, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(v, f)
    }
    #[inline]
    fn plain(v: &bool, out: &mut Vec<u8>) {
        out.extend_from_slice(if *v { b"true" } else { b"false" });
    }
}

impl Raw for char {
    type Kind = char;
    #[inline(always)]
    fn size(&self) -> usize {
        4
    }
    #[inline(always)]
    fn put<B: Buf>(&self, out: &mut B) {
        out.put(&(*self as u32).to_le_bytes());
    }
    fn field(&self, fields: &mut FieldsBuf, key: &str) {
        fields.push_str(key, self.encode_utf8(&mut [0; 4]));
    }
}

impl Decode for char {
    type Out<'a> = char;
    #[inline]
    fn decode<'a>(r: &mut Reader<'a>) -> char {
        char::from_u32(u32::from_le_bytes(r.array())).unwrap_or(char::REPLACEMENT_CHARACTER)
    }
    fn display(v: &char, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(v, f)
    }
    fn debug(v: &char, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(v, f)
    }
    #[inline]
    fn plain(v: &char, out: &mut Vec<u8>) {
        out.extend_from_slice(v.encode_utf8(&mut [0; 4]).as_bytes());
    }
}

/// Text copied at the call; `String` and `Cow<str>` format as `str` does.
#[derive(Debug)]
pub enum Text {}

impl Decode for Text {
    type Out<'a> = &'a str;
    #[inline]
    fn decode<'a>(r: &mut Reader<'a>) -> &'a str {
        r.str()
    }
    fn display(v: &&str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(*v, f)
    }
    fn debug(v: &&str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(*v, f)
    }
    #[inline]
    fn plain(v: &&str, out: &mut Vec<u8>) {
        out.extend_from_slice(v.as_bytes());
    }
}

macro_rules! texts {
    ($($t:ty),*) => {$(
        impl Raw for $t {
            type Kind = Text;
            #[inline(always)]
            fn size(&self) -> usize {
                4 + str_len(self)
            }
            #[inline(always)]
            fn put<B: Buf>(&self, out: &mut B) {
                put_str(out, self);
            }
            fn field(&self, fields: &mut FieldsBuf, key: &str) {
                fields.push_str(key, self);
            }
        }
    )*};
}

texts!(str, String, std::borrow::Cow<'_, str>, Box<str>);

/// A value formatted at the call, with its placeholder's spec: the writer
/// writes the text as it is, whatever the spec.
#[derive(Debug)]
pub enum Formatted {}

impl Decode for Formatted {
    type Out<'a> = &'a str;
    #[inline]
    fn decode<'a>(r: &mut Reader<'a>) -> &'a str {
        r.str()
    }
    #[inline]
    fn plain(v: &&str, out: &mut Vec<u8>) {
        out.extend_from_slice(v.as_bytes());
    }
    fn display(v: &&str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(v)
    }
    fn debug(v: &&str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(v)
    }
    fn lower_hex(v: &&str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(v)
    }
    fn upper_hex(v: &&str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(v)
    }
    fn octal(v: &&str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(v)
    }
    fn binary(v: &&str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(v)
    }
    fn lower_exp(v: &&str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(v)
    }
    fn upper_exp(v: &&str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(v)
    }
    fn pointer(v: &&str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(v)
    }
}

/// One placeholder's value at the call, chosen by type (see [`Sel`]).
pub trait Arg {
    /// How the writer reads it back.
    type Kind: Decode;
    /// Bytes of the encoding when the value is copied raw.
    fn raw_size(&self) -> Option<usize>;
    /// Writes the raw encoding (only when [`Arg::raw_size`] is `Some`).
    fn put_raw(&self, out: &mut Out<'_>);
    /// Appends the value's encoding; `eager` formats it with its spec
    /// when it is not copied raw.
    fn encode(&self, out: &mut Vec<u8>, eager: impl FnOnce(&mut Vec<u8>));
    /// Pushes the value as a field; `eager` pushes it with `Display`.
    fn field(&self, fields: &mut FieldsBuf, key: &str, eager: impl FnOnce(&mut FieldsBuf));
}

/// A value copied raw.
#[derive(Debug)]
pub struct RawArg<'a, T: ?Sized>(pub &'a T);

impl<T: Raw + ?Sized> Arg for RawArg<'_, T> {
    type Kind = T::Kind;
    #[inline(always)]
    fn raw_size(&self) -> Option<usize> {
        Some(self.0.size())
    }
    #[inline(always)]
    fn put_raw(&self, out: &mut Out<'_>) {
        self.0.put(out)
    }
    #[inline]
    fn encode(&self, out: &mut Vec<u8>, _: impl FnOnce(&mut Vec<u8>)) {
        self.0.put(out)
    }
    #[inline]
    fn field(&self, fields: &mut FieldsBuf, key: &str, _: impl FnOnce(&mut FieldsBuf)) {
        self.0.field(fields, key)
    }
}

/// A value formatted at the call.
#[derive(Debug)]
pub struct EagerArg;

impl Arg for EagerArg {
    type Kind = Formatted;
    fn raw_size(&self) -> Option<usize> {
        None
    }
    fn put_raw(&self, _: &mut Out<'_>) {}
    fn encode(&self, out: &mut Vec<u8>, eager: impl FnOnce(&mut Vec<u8>)) {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        eager(out);
        let len = (out.len() - at - 4).min(u32::MAX as usize);
        out.truncate(at + 4 + len);
        out[at..at + 4].copy_from_slice(&(len as u32).to_le_bytes());
    }
    fn field(&self, fields: &mut FieldsBuf, _: &str, eager: impl FnOnce(&mut FieldsBuf)) {
        eager(fields)
    }
}

/// Chooses how a value travels: `(&Sel(&v)).__lb_pick()` is a [`RawArg`]
/// when the type is [`Raw`] (the method found without auto-reference)
/// and an [`EagerArg`] otherwise.
#[derive(Debug)]
pub struct Sel<'a, T: ?Sized>(pub &'a T);

/// The raw choice of [`Sel`].
pub trait ViaRaw<'a, T: ?Sized> {
    /// See [`Sel`].
    fn __lb_pick(&self) -> RawArg<'a, T>;
}

impl<'a, T: Raw + ?Sized> ViaRaw<'a, T> for Sel<'a, T> {
    #[inline]
    fn __lb_pick(&self) -> RawArg<'a, T> {
        RawArg(self.0)
    }
}

/// The fallback choice of [`Sel`].
pub trait ViaEager {
    /// See [`Sel`].
    fn __lb_pick(&self) -> EagerArg;
}

impl<T: ?Sized> ViaEager for &Sel<'_, T> {
    #[inline]
    fn __lb_pick(&self) -> EagerArg {
        EagerArg
    }
}

#[cfg(test)]
// `(&Sel(&v)).__lb_pick()` is written as the macros write it: the borrow
// is what makes the fallback reachable.
#[allow(clippy::needless_borrow)]
mod tests {
    use super::*;

    fn encoded<A: Arg>(a: A, eager: &str) -> (Vec<u8>, &'static str) {
        let mut out = Vec::new();
        a.encode(&mut out, |w| w.extend_from_slice(eager.as_bytes()));
        (out, std::any::type_name::<A::Kind>())
    }

    /// Displays through `pad`.
    struct Shown;

    impl fmt::Display for Shown {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.pad("shown")
        }
    }

    #[test]
    fn raw_types_are_copied_and_others_formatted_at_the_call() {
        let pick_i32 = (&Sel(&-2i32)).__lb_pick();
        assert_eq!(
            encoded(pick_i32, "unused"),
            ((-2i32).to_le_bytes().to_vec(), "i32")
        );
        let s = String::from("ab");
        let r = &&s;
        let (bytes, kind) = encoded((&Sel(&r)).__lb_pick(), "unused");
        assert_eq!(bytes, b"\x02\0\0\0ab");
        assert!(kind.ends_with("Text"), "{kind}");
        let (bytes, kind) = encoded((&Sel(&Shown)).__lb_pick(), "  shown");
        assert_eq!(bytes, b"\x07\0\0\0  shown");
        assert!(kind.ends_with("Formatted"), "{kind}");
        assert_eq!(
            encoded((&Sel(&'é')).__lb_pick(), "").0,
            0xe9u32.to_le_bytes()
        );
        assert_eq!(encoded((&Sel(&true)).__lb_pick(), "").0, [1]);
    }

    #[test]
    fn values_read_back_with_their_types() {
        let mut out = Vec::new();
        7u16.put(&mut out);
        "text".put(&mut out);
        (-1.5f32).put(&mut out);
        let mut r = Reader::new(&out);
        assert_eq!(format!("{:>4}", Decoded::<u16>::read(&mut r)), "   7");
        assert_eq!(format!("{:?}", Decoded::<Text>::read(&mut r)), "\"text\"");
        assert_eq!(format!("{:e}", Decoded::<f32>::read(&mut r)), "-1.5e0");
        // Past the end: zeros and empty text, no panic.
        assert_eq!(format!("{}", Decoded::<u64>::read(&mut r)), "0");
        assert_eq!(format!("{}", Decoded::<Text>::read(&mut r)), "");
        // Text cut short reads as empty rather than as half a character.
        let mut r = Reader::new(b"\x04\0\0\0\xc3");
        assert_eq!(Decoded::<Text>::read(&mut r).0, "");
    }
}
