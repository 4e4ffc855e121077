//! The operating system's process-wide machinery, in one place: what a
//! `fork()` leaves behind, the signals that stop a process, the size
//! of the terminal, and memory mapped in ahead of use. Everything else in
//! the crate stays portable.

pub(crate) mod fork;
pub(crate) mod memory;
pub(crate) mod signal;
pub(crate) mod term;
