//! What `fork()` leaves behind, in one place.
//!
//! A forked child has one thread, the one that called `fork`, and a copy of
//! the parent's memory. Two things follow:
//!
//! - A pipeline started before the fork is orphaned in the child: its
//!   writer thread (and any thread holding its locks) stayed in the
//!   parent, so the child must neither wait for it nor write into its
//!   queues. [`generation`] counts the forks this process came out of as
//!   the child, and a pipeline compares it with the one it started in.
//! - A process-wide lock that another thread held at the moment of the
//!   fork stays locked in the child for ever, and the child's first use of
//!   it hangs. Every such lock the child may need (the process's
//!   [`Source`](crate::record::Source) and name, the list of live
//!   pipelines, the exported collector address, the global logger and the
//!   signal watcher's) is taken just before the fork, by the forking
//!   thread, and released in both the parent and the child after it: the
//!   fork happens between critical sections, never inside one. Apart from
//!   the source's lock, which takes the name's inside it (and is taken
//!   first here too), none of these locks is held while another is taken,
//!   so taking them all cannot deadlock. The layers above register their
//!   locks here ([`register`], by [`Rank`]); this module calls none of them
//!   by name.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Incremented in the child of every `fork`.
#[inline]
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Locks held across a fork, in the order they were taken.
pub(crate) type Held = Vec<Box<dyn Any>>;

thread_local! {
    /// Set by `prepare` on the forking thread, emptied after the fork.
    static HELD: RefCell<Held> = const { RefCell::new(Vec::new()) };
}

/// Takes `m` for the duration of a fork: called by `prepare` for each of
/// the process-wide locks (see the module documentation).
pub(crate) fn hold<T: 'static>(held: &mut Held, m: &'static Mutex<T>) {
    held.push(Box::new(m.lock().unwrap_or_else(|e| e.into_inner())));
}

/// The layers whose process-wide locks a fork must not split, in the order
/// their locks are taken before it: the locks under which other code runs
/// first, the leaves (held only for a lookup or an assignment) last. Each
/// layer registers its own ([`register`]) before it starts a thread, so
/// this module knows their order and nothing of their contents.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rank {
    /// The exported collector address and the global logger.
    Logger,
    /// The list of live pipelines.
    Pipeline,
    /// The process's source and name.
    Record,
}

const RANKS: usize = Rank::Record as usize + 1;

/// What each rank registered. Held itself across the fork, taken first:
/// a layer registering meanwhile waits until the fork is over, so a lock
/// is either held by `prepare` or first taken after the fork.
static HOLDS: Mutex<[Option<HoldFn>; RANKS]> = Mutex::new([None; RANKS]);

/// Takes a layer's locks for a fork.
type HoldFn = fn(&mut Held);

/// Registers `hold`, which takes the locks of the layer `rank` for a fork
/// (calling [`hold`] for each). Called with none of those locks held, before
/// the layer's first use of them that another thread could see.
pub(crate) fn register(rank: Rank, hold: HoldFn) {
    HOLDS.lock().unwrap_or_else(|e| e.into_inner())[rank as usize] = Some(hold);
}

extern "C" fn prepare() {
    let mut held: Held = Vec::with_capacity(8);
    let registered = HOLDS.lock().unwrap_or_else(|e| e.into_inner());
    let holds = *registered;
    held.push(Box::new(registered));
    for hold in holds.into_iter().flatten() {
        hold(&mut held);
    }
    super::signal::hold_for_fork(&mut held);
    // `try_with`: a thread whose local storage is being torn down forks
    // without the guarantee rather than aborting.
    let _ = HELD.try_with(|h| *h.borrow_mut() = held);
}

fn release() {
    let _ = HELD.try_with(|h| {
        let mut held = std::mem::take(&mut *h.borrow_mut());
        // Released in the reverse order of taking.
        while held.pop().is_some() {}
    });
}

extern "C" fn parent() {
    release();
}

extern "C" fn child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    super::signal::forked_child();
    // The locks were taken by this very thread, which is the child's only
    // one: unlocking them is an atomic store each (and a futex wake that
    // finds no waiter).
    release();
}

/// Installs the fork handlers, once per process: before the first
/// pipeline starts a thread of its own.
pub(crate) fn watch() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registering handlers has no precondition. `prepare` runs
        // before the fork as ordinary code; `parent` and `child` run after
        // it on the forking thread and only unlock locks that thread took,
        // and free memory (glibc's allocator is usable in the child's fork
        // handlers: it reinitialises its own locks before calling them).
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
        }
    });
}
