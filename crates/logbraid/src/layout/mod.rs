//! Layouts turn a [`Record`] into the bytes of one line.

use std::fmt;

use crate::record::Record;

/// Formats records. A layout is owned by one sink and used from one thread
/// at a time, so it may keep caches (the formatted date of the current
/// second, say) in `&mut self`.
pub trait Layout: Send + fmt::Debug {
    /// Appends one complete line for `record` to `out`, ending in `\n`.
    fn format(&mut self, record: &Record<'_>, out: &mut Vec<u8>);
}
