//! The operating system's process-wide machinery, in one place: what a
//! `fork()` leaves behind, the signals that stop a process, and the size
//! of the terminal. Everything else in the crate stays portable.

pub(crate) mod fork;
pub(crate) mod signal;
pub(crate) mod term;
