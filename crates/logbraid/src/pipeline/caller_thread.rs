//! Which thread a record comes from: its id and name, as the OS or a
//! language binding gives them.

use std::cell::{Cell, RefCell};
use std::thread;

thread_local! {
    /// The name given with [`name_thread`], which wins over the OS's.
    static THREAD_NAME: RefCell<Option<String>> = const { RefCell::new(None) };
    /// The id given with [`set_thread_id`], which wins over the OS's.
    static THREAD_ID: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Names the calling thread in the records it logs from now on, where the
/// caller's threads have names of their own that the operating system does
/// not know (a language binding: Python's `threading` names). Call it
/// before the thread's first record: a thread's queue keeps the name it
/// started with.
pub fn name_thread(name: &str) {
    THREAD_NAME.with(|n| *n.borrow_mut() = Some(name.to_string()));
}

/// Gives the calling thread the id its records carry from now on, in place
/// of the OS thread id, where the caller's threads have ids of their own (a
/// language binding: Python's `threading.get_ident()`). As with
/// [`name_thread`], call it before the thread's first record.
pub fn set_thread_id(id: u64) {
    THREAD_ID.with(|i| i.set(Some(id)));
}

/// The calling thread's name: the one given with [`name_thread`], else
/// the OS thread's.
pub(super) fn thread_name() -> Option<String> {
    THREAD_NAME
        .with(|n| n.borrow().clone())
        .or_else(|| thread::current().name().map(str::to_string))
}

/// The calling thread's id: the one given with [`set_thread_id`], else
/// the OS thread's.
pub(super) fn thread_id() -> u64 {
    if let Ok(Some(id)) = THREAD_ID.try_with(Cell::get) {
        return id;
    }
    #[cfg(target_os = "linux")]
    {
        rustix::thread::gettid().as_raw_nonzero().get() as u64
    }
    #[cfg(not(target_os = "linux"))]
    {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        thread_local!(static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
        ID.with(|id| *id)
    }
}
