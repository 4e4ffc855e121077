//! Sinks: where formatted records go.

use std::fmt;
use std::io;

use crate::record::Record;

mod compress;
mod console;
mod file;

/// The files of a set, as [`read::log_set`](crate::read::log_set) lists
/// them, under the name they had before reading moved to [`crate::read`].
pub use crate::read::{log_set as rotated_files, read_decompressed};
pub use console::{color_enabled, Console, ConsoleStream};
pub use file::{backup_files, FileError, FileStats, RollingFile, RollingFileBuilder, O_NOFOLLOW};

pub use crate::pipeline::SinkSet;

/// A destination for records. Each sink owns its layout, formats each
/// record into its own buffer, and writes the buffer once per batch.
///
/// A sink is driven from one thread at a time (the writer thread, or the
/// caller under a lock in synchronous mode).
pub trait Sink: Send + fmt::Debug {
    /// Formats `record` and buffers it. Returns the number of bytes the
    /// record takes in the output. A sink that rotates decides here, before
    /// buffering, whether the record goes into a new file, so a record is
    /// never split across two files.
    fn write(&mut self, record: &Record<'_>) -> io::Result<usize>;

    /// Writes everything buffered, in one write call where the platform
    /// allows. On error the buffer is kept, so a later call can retry.
    fn flush(&mut self) -> io::Result<()>;

    /// Flushes, then asks the operating system to put the data on disk.
    fn sync(&mut self) -> io::Result<()> {
        self.flush()
    }

    /// Waits until everything flushed so far has reached the sink's
    /// destination as far as the sink can tell: for a forwarding sink,
    /// until the collector has acknowledged it. Called when a
    /// [`Logger::flush`](crate::Logger::flush) is served, after `flush` or
    /// `sync`. Local sinks have nothing to wait for.
    fn confirm(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Flushes, then waits for the sink's background work (compression of
    /// rotated files) to finish. Called when the pipeline shuts down.
    fn finish(&mut self) -> io::Result<()> {
        self.flush()
    }

    /// What the sink counted that a pipeline's
    /// [`Stats`](crate::pipeline::Stats) reports: nothing, for most sinks.
    fn sink_stats(&self) -> SinkStats {
        SinkStats::default()
    }
}

/// Counters a sink keeps for its pipeline's
/// [`Stats`](crate::pipeline::Stats), summed over its sinks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStats {
    /// Rotations of a file.
    pub rotations: u64,
    /// Records a collector acknowledged (a forwarding sink).
    pub acked: u64,
    /// Batches sent again after a reconnect (a forwarding sink).
    pub resent: u64,
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn write(&mut self, record: &Record<'_>) -> io::Result<usize> {
        (**self).write(record)
    }
    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
    fn sync(&mut self) -> io::Result<()> {
        (**self).sync()
    }
    fn confirm(&mut self) -> io::Result<()> {
        (**self).confirm()
    }
    fn finish(&mut self) -> io::Result<()> {
        (**self).finish()
    }
    fn sink_stats(&self) -> SinkStats {
        (**self).sink_stats()
    }
}
