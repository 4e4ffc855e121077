//! The operating system's process-wide machinery, in one place: what a
//! `fork()` leaves behind, and the signals that stop a process. Everything
//! else in the crate stays portable.

pub(crate) mod fork;
pub(crate) mod signal;
