//! Records logged before SIGTERM, SIGINT or SIGHUP reach their sink.
//!
//! A supervisor stops a service with SIGTERM (systemd, `docker stop`,
//! Kubernetes, `multiprocessing.Pool.terminate`), a terminal with SIGINT
//! or SIGHUP. Left at the default action, the signal ends the process at
//! once and whatever sits in the queues is lost. So, when a pipeline
//! starts, each of these signals still at its default action gets a
//! handler that only writes the signal's number into a pipe. A thread of
//! ours reads it, flushes every live pipeline (at most the flush limit,
//! [`DEFAULT_FLUSH_LIMIT`] unless a builder set another),
//! restores the default action and raises the signal again: the process
//! ends as it would have, killed by that signal, with its records written.
//!
//! What a program chose is left alone:
//!
//! - A signal already handled or ignored when the pipeline starts (as
//!   Python's SIGINT, which raises `KeyboardInterrupt`) is not touched;
//!   the program's own path to exit flushes (guard drop, `atexit`).
//! - A handler installed after ours replaces it; one that chains to the
//!   handler it found (signal-hook, tokio, ctrlc) calls ours, which then
//!   sees it is no longer the installed handler and does nothing, so the
//!   program's graceful shutdown is not cut short.
//! - A second signal while the first is being flushed ends the process at
//!   once, as the default action would.
//!
//! Threads go on logging during the flush. A write to a file that a fatal
//! signal interrupts can stop part way (Linux checks between pages), which
//! would leave half a record at the end of the file; so once the flush is
//! done, file writes are closed ([`gate`]) and the signal is raised only
//! when none is in progress: the file ends with a whole record.
//!
//! A forked child inherits the handler but not the thread: until a
//! pipeline starts in the child (which installs a thread of its own), the
//! handler there takes the default action at once.
//!
//! # Fatal signals, best effort
//!
//! SIGSEGV, SIGBUS, SIGABRT, SIGFPE and SIGILL end a process that is
//! already broken, so what can be done is less, and done differently. Each
//! gets a handler when it is at its default action *or* has a handler of
//! its own (Rust's runtime has one for SIGSEGV and SIGBUS, to report stack
//! overflows), which is kept and called after ours. The handler runs on
//! the faulting thread, on the alternate signal stack where the thread has
//! one: it wakes the same thread of ours, which flushes every pipeline and
//! closes file writes; meanwhile the handler waits (sleeping, which is
//! async-signal-safe) at most the flush limit. Then it puts back the
//! action it found and returns: a fault happens again and meets that
//! action (a core dump, or Rust's report), a signal sent by `kill` or
//! `abort` is raised again first. The flush can fail: when the crashed
//! thread holds a lock the flush needs (a crash inside a sink, or the
//! writer thread itself crashing), the handler gives up at the limit.

use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, IntoRawFd as _, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The signals handled, when at their default action.
const SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// The fatal signals handled (see the module documentation).
const FATAL: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGABRT,
    libc::SIGFPE,
    libc::SIGILL,
];

/// The actions the fatal signals had before ours, by signal number.
static mut PREVIOUS: [Option<libc::sigaction>; 32] = [None; 32];
/// Set by the first fatal signal: another one goes straight on.
static FATAL_FIRED: AtomicBool = AtomicBool::new(false);
/// Set by the signal thread once a fatal signal's flush is over.
static FATAL_DONE: AtomicBool = AtomicBool::new(false);

/// How long a signal waits for the pipelines' flush before the process
/// ends anyway (a collector that stopped answering must not keep a
/// stopped service alive).
pub(crate) const DEFAULT_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// The flush limit in milliseconds: the one the last logger built with
/// signals on asked for (the signal ends the whole process, whatever
/// logger each record went to).
static FLUSH_LIMIT_MS: AtomicU64 = AtomicU64::new(5_000);

/// The process the handler thread and pipe belong to; another pid (a
/// forked child that has not started a pipeline) has neither.
static OWNER: AtomicU32 = AtomicU32::new(0);
/// Write end of the pipe the handler wakes the thread through.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// Read end, kept only to be closed in a forked child.
static READ_FD: AtomicI32 = AtomicI32::new(-1);
/// Set by the first signal: a second one takes the default action at once.
static FIRED: AtomicBool = AtomicBool::new(false);
/// Set once the flush is done and the process is about to end: no new
/// file write starts.
static HALTED: AtomicBool = AtomicBool::new(false);
/// File writes in progress (see [`gate`]).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// What the signal thread calls to flush every live pipeline (given by the
/// pipelines to [`install`]: this module calls no layer above it).
static FLUSH_ALL: OnceLock<fn()> = OnceLock::new();
/// Serialises [`install`]; held across a fork like the other locks.
static INSTALL: Mutex<()> = Mutex::new(());

/// The lock of this module, held across a fork (see `crate::sys::fork`).
pub(crate) fn hold_for_fork(held: &mut crate::sys::fork::Held) {
    super::fork::hold(held, &INSTALL);
}

fn handler_address() -> libc::sighandler_t {
    on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t
}

/// The action installed for `sig` now.
fn current_action(sig: libc::c_int) -> Option<libc::sighandler_t> {
    // SAFETY: a zeroed sigaction is a valid out-parameter; a NULL new
    // action only reads.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        (libc::sigaction(sig, std::ptr::null(), &mut old) == 0).then_some(old.sa_sigaction)
    }
}

/// Sets `sig` to its default action and raises it: the end the process
/// would have had. Async-signal-safe.
fn default_action(sig: libc::c_int) {
    // SAFETY: sigaction, getpid and kill are async-signal-safe; a zeroed
    // sigaction with SIG_DFL and an empty mask is valid.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut dfl.sa_mask);
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
        // Pending until this handler (if in one) returns, then delivered.
        libc::kill(libc::getpid(), sig);
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe calls here; errno is kept for the code the
    // signal interrupted.
    // SAFETY: reading and writing the thread's errno.
    let errno = unsafe { *libc::__errno_location() };
    if current_action(sig) != Some(handler_address()) {
        // Chained to by a handler the program installed after ours: the
        // program handles this signal.
    } else if OWNER.load(Ordering::Acquire) != std::process::id()
        || FIRED.swap(true, Ordering::AcqRel)
    {
        default_action(sig);
    } else {
        if !wake(sig) {
            default_action(sig);
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Wakes the signal thread with the signal's number: one `write(2)` to a
/// non-blocking pipe (a full pipe cannot stall a handler), which is all a
/// handler may do. False when the byte could not be written.
fn wake(sig: libc::c_int) -> bool {
    let fd = WAKE_FD.load(Ordering::Acquire);
    if fd < 0 {
        return false;
    }
    // SAFETY: a descriptor stored by `start` for this process and never
    // closed while it is there (a forked child replaces it before closing
    // the inherited one).
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::write(fd, &[sig as u8]) == Ok(1)
}

/// The handler of the fatal signals; see the module documentation.
extern "C" fn on_fatal(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: reading and writing the thread's errno.
    let errno = unsafe { *libc::__errno_location() };
    if OWNER.load(Ordering::Acquire) == std::process::id()
        && !FATAL_FIRED.swap(true, Ordering::AcqRel)
        && !FIRED.swap(true, Ordering::AcqRel)
        && wake(sig)
    {
        let limit_ms = FLUSH_LIMIT_MS.load(Ordering::Acquire);
        let tick = rustix::thread::Timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000,
        };
        let mut waited = 0;
        while !FATAL_DONE.load(Ordering::Acquire) && waited < limit_ms {
            // A system call, async-signal-safe.
            let _ = rustix::thread::nanosleep(&tick);
            waited += 1;
        }
    }
    // SAFETY: PREVIOUS is written before the handler is installed and not
    // after; sigaction and raise are async-signal-safe; `info` is the
    // kernel's, valid for this call.
    unsafe {
        let previous = (*std::ptr::addr_of!(PREVIOUS))
            .get(sig as usize)
            .copied()
            .flatten();
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut dfl.sa_mask);
        libc::sigaction(sig, previous.as_ref().unwrap_or(&dfl), std::ptr::null_mut());
        // Sent (kill, raise, abort) rather than caused by an instruction:
        // returning would not bring it back, so raise it again; it is
        // delivered, to the action just restored, once this returns.
        if info.is_null() || (*info).si_code <= 0 {
            libc::raise(sig);
        }
        *libc::__errno_location() = errno;
    }
}

/// Installs the handler of the fatal signals, keeping the actions they had
/// (not over an ignored one, nor over a handler the program installed
/// after ours; once per process).
fn install_fatal() {
    for sig in FATAL {
        let Some(here) = current_action(sig) else {
            continue;
        };
        if here == libc::SIG_IGN || here == fatal_address() {
            continue;
        }
        // SAFETY: a zeroed sigaction is a valid out-parameter; PREVIOUS is
        // written here only, under INSTALL, before the handler that reads
        // it is installed.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            (*std::ptr::addr_of_mut!(PREVIOUS))[sig as usize] = Some(old);
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = fatal_address();
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

fn fatal_address() -> libc::sighandler_t {
    on_fatal as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
        as libc::sighandler_t
}

/// Installs the handler for each of [`SIGNALS`] at its default action,
/// and the thread it wakes, which calls `flush_all` (the pipelines' flush
/// of every live pipeline); once per process (again in a forked child).
pub(crate) fn install(flush_limit: Duration, flush_all: fn()) {
    let _ = FLUSH_ALL.set(flush_all);
    let ms = u64::try_from(flush_limit.as_millis()).unwrap_or(u64::MAX);
    FLUSH_LIMIT_MS.store(ms, Ordering::Release);
    let pid = std::process::id();
    if OWNER.load(Ordering::Acquire) == pid {
        return;
    }
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if OWNER.load(Ordering::Acquire) == pid {
        return;
    }
    if let Err(e) = start(pid) {
        say(format_args!(
            "cannot watch for SIGTERM ({e}); records still queued when one arrives are lost"
        ));
    }
}

fn start(pid: u32) -> io::Result<()> {
    use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    fcntl_setfl(&write, fcntl_getfl(&write)? | OFlags::NONBLOCK)?;
    let read_fd = read.as_raw_fd();
    std::thread::Builder::new()
        .name("logbraid-signals".into())
        .spawn(move || wait_for_signal(read))?;
    // A forked child's inherited pipe is the parent's: its ends are closed
    // here (the parent keeps its own) and replaced.
    for (slot, fd) in [(&WAKE_FD, write.into_raw_fd()), (&READ_FD, read_fd)] {
        let inherited = slot.swap(fd, Ordering::AcqRel);
        if inherited >= 0 {
            // SAFETY: our own descriptor from before the fork, used by no
            // one in this process now that the slot names the new one.
            drop(unsafe { OwnedFd::from_raw_fd(inherited) });
        }
    }
    FIRED.store(false, Ordering::Release);
    FATAL_FIRED.store(false, Ordering::Release);
    FATAL_DONE.store(false, Ordering::Release);
    OWNER.store(pid, Ordering::Release);
    install_fatal();
    for sig in SIGNALS {
        let here = current_action(sig);
        let free = here == Some(libc::SIG_DFL) || here == Some(handler_address());
        if !free {
            continue;
        }
        // SAFETY: a zeroed sigaction with our handler, an empty mask and
        // SA_RESTART (interrupted reads resume) is valid.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = handler_address();
            act.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
    Ok(())
}

/// Runs one write of whole records to a file, unless the process is about
/// to end by a signal: then the calling thread waits here for that end, so
/// that no write is cut short by it. Two sequentially consistent atomic
/// operations a write (a batch of records), against the signal thread's
/// store of `HALTED` and reads of `IN_FLIGHT`: either the signal thread
/// sees this write in flight and waits for it, or this write sees `HALTED`.
pub(crate) fn gate<R>(write: impl FnOnce() -> R) -> R {
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    while HALTED.load(Ordering::SeqCst) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        // The process ends in a moment; should it not, writes reopen.
        while HALTED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    }
    let r = write();
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    r
}

/// In a forked child (its only thread is the forking one): the parent's
/// writes in progress, or a halt under way, are not the child's.
pub(super) fn forked_child() {
    IN_FLIGHT.store(0, Ordering::SeqCst);
    HALTED.store(false, Ordering::SeqCst);
}

/// Closes file writes and waits (at most a second) for those in progress.
fn halt_writes() {
    HALTED.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while IN_FLIGHT.load(Ordering::SeqCst) != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Flushes every live pipeline, waiting at most the flush limit (a
/// forwarding pipeline whose collector is gone would wait for ever): for
/// the end of the process (`atexit`, a panic), which must come whatever
/// the collector does. Says on stderr when the limit ends the wait.
pub(crate) fn flush_all_bounded(why: &str, flush_all: fn()) {
    let (tx, rx) = std::sync::mpsc::channel();
    let flushing = std::thread::Builder::new()
        .name("logbraid-exit-flush".into())
        .spawn(move || {
            flush_all();
            let _ = tx.send(());
        });
    if flushing.is_err() {
        // No thread to bound it with: flush here, unbounded.
        flush_all();
        return;
    }
    let limit = Duration::from_millis(FLUSH_LIMIT_MS.load(Ordering::Acquire));
    if rx.recv_timeout(limit).is_err() {
        say(format_args!(
            "{why}: the queued records were not all written within {limit:?}; the rest are lost"
        ));
    }
}

/// The thread the handler wakes: flush, then the signal's default action.
fn wait_for_signal(read: OwnedFd) {
    let mut byte = [0u8; 1];
    loop {
        match rustix::io::read(&read, &mut byte) {
            Ok(1) => break,
            Err(rustix::io::Errno::INTR) => continue,
            // The write end is gone: nothing will wake this thread.
            _ => return,
        }
    }
    let [byte] = byte;
    let sig = libc::c_int::from(byte);
    let fatal = FATAL.contains(&sig);
    if let Some(&flush_all) = FLUSH_ALL.get() {
        flush_all_bounded(&format!("signal {sig}"), flush_all);
    }
    halt_writes();
    if fatal {
        // The faulting thread ends the process (see `on_fatal`).
        FATAL_DONE.store(true, Ordering::Release);
    } else {
        default_action(sig);
    }
    // Still here: something kept the signal from ending the process (it is
    // blocked in every thread). Logging goes on.
    std::thread::sleep(Duration::from_secs(2));
    HALTED.store(false, Ordering::SeqCst);
    say(format_args!(
        "signal {sig} did not end the process; logging goes on"
    ));
}

fn say(what: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "logbraid: pid {}: {what}",
        std::process::id()
    );
}
