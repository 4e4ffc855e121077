//! A file sink that rotates by size and by time, keeps a bounded set of
//! backups and compresses them in the background.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::compress::{Compressor, Job};
use super::Sink;
use crate::clock::{self, SharedClock};
use crate::layout::Layout;
use crate::options::{Compression, Every, Naming, Weekday};
use crate::record::Record;

const NS_PER_SEC: i64 = 1_000_000_000;

/// Past this many pending bytes after a failed write, the buffer is
/// discarded: memory stays bounded when the disk stays broken.
const MAX_PENDING: usize = 64 << 20;

/// Capacity kept by the buffer after a large flush.
const KEEP_CAPACITY: usize = 64 << 10;

/// Bound on the retries of a rotation that keeps finding files in its way.
const MAX_ATTEMPTS: usize = 1000;

const DEFAULT_BACKLOG: usize = 8;

/// An error of the rolling file sink: what was being done, to which path,
/// and the operating system's error.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}{detail}: {source}", .path.display())]
pub struct FileError {
    action: &'static str,
    path: PathBuf,
    /// Said after the path, e.g. what was discarded.
    detail: String,
    #[source]
    source: io::Error,
}

impl FileError {
    pub(crate) fn new(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        FileError {
            action,
            path: path.into(),
            detail: String::new(),
            source,
        }
    }

    /// The file or directory concerned.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kind of the underlying I/O error.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The underlying I/O error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl From<FileError> for io::Error {
    fn from(e: FileError) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

/// Counters of a [`RollingFile`], read with [`RollingFile::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileStats {
    /// Rotations done.
    pub rotations: u64,
    /// Backups compressed.
    pub compressed: u64,
    /// Backups left uncompressed because the compression backlog was full.
    pub compress_skipped: u64,
    /// Backups left uncompressed because compressing them failed.
    pub compress_failed: u64,
    /// Rotations that failed (the records went on into the active file).
    pub rotation_failures: u64,
    /// Records discarded after write errors, when the pending buffer grew
    /// past 64 MiB.
    pub records_lost: u64,
}

/// Configures and builds a [`RollingFile`].
///
/// Every option has a default.
///
/// | option | default | meaning |
/// |---|---|---|
/// | [`path`](Self::path) | none, set by [`RollingFile::builder`] | the active file; parent directories are created |
/// | [`layout`](Self::layout) | [`TextLayout`](crate::layout::TextLayout) | turns each record into one line |
/// | [`max_bytes`](Self::max_bytes) | `0`: no size trigger | rotate before a record would make the file larger |
/// | [`every`](Self::every) | none: no time trigger | rotate at the start of every minute, hour, day or week |
/// | [`week_starts`](Self::week_starts) | [`Weekday::Monday`] | the day a weekly rotation starts a new file |
/// | [`backup_count`](Self::backup_count) | `0`: keep all | keep at most this many backups |
/// | [`max_age`](Self::max_age) | none: keep all | delete backups last modified longer ago than this |
/// | [`max_total_bytes`](Self::max_total_bytes) | `0`: no limit | delete the oldest backups until their sizes add up to at most this |
/// | [`naming`](Self::naming) | [`Naming::Python`] | `app.log.1` newest, or a timestamp in the name |
/// | [`compression`](Self::compression) | [`Compression::None`] | gzip or zstd on a background thread |
/// | [`compress_backlog`](Self::compress_backlog) | `8` | backups that may wait for compression |
/// | [`local_time`](Self::local_time) | `false`: UTC | period boundaries and names in local time |
/// | [`clock`](Self::clock) | the system clock | where time comes from (tests inject a manual one) |
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RollingFileBuilder {
    path: PathBuf,
    layout: Option<Box<dyn Layout>>,
    max_bytes: u64,
    every: Option<Every>,
    week_starts: Weekday,
    backup_count: usize,
    max_age: Option<Duration>,
    max_total_bytes: u64,
    naming: Naming,
    compression: Compression,
    compress_backlog: usize,
    local_time: bool,
    clock: SharedClock,
}

impl Default for RollingFileBuilder {
    fn default() -> Self {
        RollingFileBuilder {
            path: PathBuf::new(),
            layout: None,
            max_bytes: 0,
            every: None,
            week_starts: Weekday::Monday,
            backup_count: 0,
            max_age: None,
            max_total_bytes: 0,
            naming: Naming::Python,
            compression: Compression::None,
            compress_backlog: DEFAULT_BACKLOG,
            local_time: false,
            clock: clock::system(),
        }
    }
}

impl RollingFileBuilder {
    /// The active file. Backups are created next to it, named after it.
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = path.into();
        self
    }

    /// How records become bytes. Required.
    pub fn layout(mut self, layout: Box<dyn Layout>) -> Self {
        self.layout = Some(layout);
        self
    }

    /// Size trigger: before a record is buffered, the file is rotated if the
    /// record would take it past `max_bytes` (and the file is not empty: a
    /// record larger than the limit gets a file of its own rather than being
    /// split). `0` turns the size trigger off.
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Time trigger: the first record written in a new period starts a new
    /// file. A file that is empty when its period ends is not rotated.
    pub fn every(mut self, every: Every) -> Self {
        self.every = Some(every);
        self
    }

    /// With [`Every::Weekly`]: the day whose midnight starts a new file
    /// (Python's `when="W0"` is Monday … `"W6"` Sunday).
    pub fn week_starts(mut self, day: Weekday) -> Self {
        self.week_starts = day;
        self
    }

    /// Keeps at most `count` backups, deleting the oldest first. `0` keeps
    /// them all. Unlike Python's `RotatingFileHandler`, where
    /// `backupCount=0` turns size rotation off, the file is still rotated.
    pub fn backup_count(mut self, count: usize) -> Self {
        self.backup_count = count;
        self
    }

    /// Deletes, at each rotation, the backups whose modification time is
    /// more than `age` before the clock's now. Zero turns the limit off.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = (!age.is_zero()).then_some(age);
        self
    }

    /// Deletes, at each rotation, the oldest backups until the backups
    /// (compressed or not) add up to at most `bytes`. `0` turns the limit off.
    pub fn max_total_bytes(mut self, bytes: u64) -> Self {
        self.max_total_bytes = bytes;
        self
    }

    /// How backups are named.
    pub fn naming(mut self, naming: Naming) -> Self {
        self.naming = naming;
        self
    }

    /// Compression of backups, done on a background thread.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// How many backups may wait for compression. When that many are
    /// waiting, a new backup stays uncompressed (counted in
    /// [`FileStats::compress_skipped`]). With `0`, a backup is compressed
    /// only if the worker is idle at the moment of rotation.
    pub fn compress_backlog(mut self, backlog: usize) -> Self {
        self.compress_backlog = backlog;
        self
    }

    /// Period boundaries and timestamps in names follow the local time zone
    /// instead of UTC.
    pub fn local_time(mut self, local: bool) -> Self {
        self.local_time = local;
        self
    }

    /// The clock used for the time trigger, timestamped names and
    /// `max_age`.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Creates missing parent directories, scans them for existing backups,
    /// opens the active file for appending and, with compression, starts
    /// the worker and queues the backups left uncompressed.
    pub fn build(self) -> Result<RollingFile, FileError> {
        let invalid = |msg: &str| io::Error::new(io::ErrorKind::InvalidInput, msg.to_string());
        let layout = self
            .layout
            .unwrap_or_else(|| Box::new(crate::layout::TextLayout::new()));
        if self.path.as_os_str().is_empty() {
            return Err(FileError::new(
                "build a rolling file for",
                self.path,
                invalid("no path given"),
            ));
        }
        // Absolute, so that a later change of working directory does not
        // send the records elsewhere.
        let path = std::path::absolute(&self.path)
            .map_err(|e| FileError::new("resolve", &self.path, e))?;
        let Some(base) = path.file_name().map(OsStr::to_os_string) else {
            return Err(FileError::new(
                "build a rolling file for",
                path,
                invalid("the path does not name a file"),
            ));
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("/"),
        };
        fs::create_dir_all(&dir).map_err(|e| FileError::new("create directory", &dir, e))?;
        let list = scan(&dir, &base).map_err(|e| FileError::new("scan directory", &dir, e))?;
        let mut set = BackupSet {
            dir,
            base,
            list: Vec::new(),
            next_id: 0,
        };
        for (slot, ext) in list {
            set.push_newest(slot, ext);
        }
        let shared = Arc::new(Shared {
            backups: Mutex::new(set),
            counters: Counters::default(),
        });
        let mut sink = RollingFile {
            path,
            layout,
            file: None,
            file_id: None,
            size: 0,
            buf: Vec::new(),
            buf_records: 0,
            max_bytes: self.max_bytes,
            every: self.every,
            week_starts: self.week_starts,
            local_time: self.local_time,
            period_start_ns: 0,
            next_rotation_ns: i64::MAX,
            naming: self.naming,
            compression: self.compression,
            retention: Retention {
                backup_count: self.backup_count,
                max_age: self.max_age,
                max_total_bytes: self.max_total_bytes,
            },
            clock: self.clock,
            rotation_suspended: false,
            reported_rotation_failure: false,
            shared,
            compressor: None,
        };
        sink.open()
            .map_err(|e| FileError::new("open", &sink.path, e))?;
        if sink.every.is_some() {
            // A file last written in an earlier period is rotated by the
            // first record of this run, as if the program had kept running.
            let now = sink.clock.now_ns();
            let mut since = now;
            if sink.size > 0 {
                if let Ok(m) = fs::metadata(&sink.path) {
                    since = since.min(mtime_ns(&m));
                }
            }
            sink.set_period(since);
        }
        if sink.compression != Compression::None {
            let compressor = Compressor::start(Arc::clone(&sink.shared), self.compress_backlog)
                .map_err(|e| FileError::new("start the compression thread for", &sink.path, e))?;
            sink.compressor = Some(compressor);
            let plain: Vec<u64> = sink
                .shared
                .backups()
                .list
                .iter()
                .filter(|b| b.ext == Ext::Plain)
                .map(|b| b.id)
                .collect();
            for id in plain {
                sink.queue_compression(id);
            }
        }
        Ok(sink)
    }
}

/// A file sink that rotates by size, by time, or both.
///
/// Records are formatted into a buffer by [`Sink::write`] and reach the file
/// with [`Sink::flush`], in one write call. Rotation happens in `write`,
/// before the record is buffered, so a record is never split across files.
///
/// # Naming
///
/// With [`Naming::Python`] (the default) the active file is `app.log` and
/// backups are `app.log.1` (newest) to `app.log.N` (oldest), with `.gz` or
/// `.zst` appended once compressed. A rotation shifts the backups up by one,
/// from the top of the run that starts at `.1` down (a gap in the numbers
/// ends the shift, so backups past a gap keep their names). With
/// [`Naming::Timestamp`], a backup is named after the start of the period it
/// covers (time trigger) or the moment of rotation (size trigger):
/// `app.log.2026-11-22_10-00-00`, with `.1`, `.2`… added if that name is
/// taken; a rotation renames one file only.
///
/// # Files that were not expected
///
/// No rename ever replaces a file. A file found under a backup name that the
/// sink did not create (left by hand, or by another program) is adopted as a
/// backup at the position its name gives it, exactly as a restart would
/// find it: it is shifted along with the others and counted by retention.
/// Nothing is overwritten and nothing is deleted except by retention.
///
/// # Restart
///
/// On [`build`](RollingFileBuilder::build) the sink appends to an existing
/// active file (its size counts toward `max_bytes`, and its modification
/// time decides whether its period is already over), finds the existing
/// backups of both naming schemes, compressed or not, removes the temporary
/// files of an interrupted compression, and queues uncompressed backups for
/// compression when compression is on.
///
/// # Retention
///
/// After each rotation, and only then: `backup_count`, `max_age` and
/// `max_total_bytes` are applied in that order, oldest backups first.
///
/// # The active file removed from outside
///
/// Every `flush` that has something to write compares the device and inode
/// of the path with the open file; if the path is gone or names another
/// file, the path is opened again (created if needed) and the records go
/// there.
///
/// # Errors
///
/// `write` never fails and never drops a record: I/O errors surface from
/// `flush`, which keeps the buffer for a retry. If after a failure more than
/// 64 MiB are pending, they are discarded, counted in
/// [`FileStats::records_lost`], and the error says so. A rotation that fails
/// (a rename refused, say) is counted, reported once on stderr, and the
/// records go on into the active file; it is retried after the next flush.
///
/// # Example
///
/// ```
/// use logbraid::layout::Layout;
/// use logbraid::record::Record;
/// use logbraid::sink::{RollingFile, Sink};
/// use logbraid::{Compression, Every};
///
/// #[derive(Debug)]
/// struct Message;
///
/// impl Layout for Message {
///     fn format(&mut self, record: &Record<'_>, out: &mut Vec<u8>) {
///         out.extend_from_slice(record.message);
///         out.push(b'\n');
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let mut sink = RollingFile::builder(dir.path().join("logs/app.log"))
///     .layout(Box::new(Message))
///     .max_bytes(10 << 20)
///     .every(Every::Daily)
///     .backup_count(7)
///     .compression(Compression::Zstd)
///     .build()?;
/// sink.flush()?;
/// assert!(dir.path().join("logs/app.log").exists());
/// # Ok(())
/// # }
/// ```
#[must_use = "records reach the file when the sink is flushed or dropped"]
pub struct RollingFile {
    path: PathBuf,
    layout: Box<dyn Layout>,
    file: Option<File>,
    /// (device, inode) of `file`, to notice the path being removed or
    /// replaced from outside.
    file_id: Option<(u64, u64)>,
    /// Bytes in the active file, for the size trigger.
    size: u64,
    buf: Vec<u8>,
    /// Records in `buf`, to count what a discarded buffer loses.
    buf_records: u64,
    max_bytes: u64,
    every: Option<Every>,
    week_starts: Weekday,
    local_time: bool,
    /// Start of the period the active file belongs to; names time backups.
    period_start_ns: i64,
    /// The time trigger as one integer compare (`i64::MAX` without one).
    next_rotation_ns: i64,
    naming: Naming,
    compression: Compression,
    retention: Retention,
    clock: SharedClock,
    /// Set when a rotation failed, so a persistent failure costs one
    /// attempt per flush rather than one per record.
    rotation_suspended: bool,
    reported_rotation_failure: bool,
    shared: Arc<Shared>,
    /// Declared last: dropping it joins the worker after the final flush.
    compressor: Option<Compressor>,
}

impl fmt::Debug for RollingFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RollingFile")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("pending", &self.buf.len())
            .field("max_bytes", &self.max_bytes)
            .field("every", &self.every)
            .field("naming", &self.naming)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

impl RollingFile {
    /// Starts configuring a sink whose active file is `path`.
    pub fn builder(path: impl Into<PathBuf>) -> RollingFileBuilder {
        RollingFileBuilder::default().path(path)
    }

    /// The active file (made absolute when the sink was built).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the active file stands: its path, its (device, inode), and the
    /// bytes it holds as far as this sink knows (what it found at open plus
    /// what reached the file since; records still buffered are not
    /// counted). `None` while no file is open (after a failed reopen).
    ///
    /// Right after a successful [`flush`](Sink::flush) this is the file's
    /// length, which is what a collector saves in its checkpoint so that a
    /// restart can cut off bytes written after the checkpoint.
    pub fn position(&self) -> Option<(&Path, (u64, u64), u64)> {
        match (&self.file, self.file_id) {
            (Some(_), Some(id)) => Some((&self.path, id, self.size)),
            _ => None,
        }
    }

    /// The backups known to the sink, oldest first, under their current
    /// names.
    pub fn backups(&self) -> Vec<PathBuf> {
        let set = self.shared.backups();
        set.list
            .iter()
            .map(|b| set.path_of(&b.slot, b.ext))
            .collect()
    }

    /// The sink's counters.
    pub fn stats(&self) -> FileStats {
        let c = &self.shared.counters;
        FileStats {
            rotations: c.rotations.load(Ordering::Relaxed),
            compressed: c.compressed.load(Ordering::Relaxed),
            compress_skipped: c.compress_skipped.load(Ordering::Relaxed),
            compress_failed: c.compress_failed.load(Ordering::Relaxed),
            rotation_failures: c.rotation_failures.load(Ordering::Relaxed),
            records_lost: c.records_lost.load(Ordering::Relaxed),
        }
    }

    /// Blocks until every backup queued for compression so far is done.
    /// Dropping the sink does the same.
    pub fn wait_compressed(&self) {
        if let Some(c) = &self.compressor {
            c.wait_idle();
        }
    }

    fn set_period(&mut self, now_ns: i64) {
        if let Some(every) = self.every {
            let (start, next) = period_bounds(every, self.week_starts, now_ns, self.local_time);
            self.period_start_ns = start;
            self.next_rotation_ns = next;
        }
    }

    /// Opens (or creates) the path for appending and takes its size.
    fn open(&mut self) -> io::Result<()> {
        self.file = None;
        self.file_id = None;
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        let file = match options.open(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(dir) = self.path.parent() {
                    fs::create_dir_all(dir)?;
                }
                options.open(&self.path)?
            }
            other => other?,
        };
        let m = file.metadata()?;
        self.size = m.len();
        self.file_id = Some((m.dev(), m.ino()));
        self.file = Some(file);
        Ok(())
    }

    /// Makes sure the open file is the one at the path.
    fn ensure_open(&mut self) -> io::Result<()> {
        if let (Some(id), Some(_)) = (self.file_id, &self.file) {
            match fs::metadata(&self.path) {
                Ok(m) if (m.dev(), m.ino()) == id => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.open()
    }

    /// Writes `buf[..upto]` with one `write_all`, removing from the buffer
    /// what reached the file, even when the call fails part way: a retry
    /// then neither repeats nor skips bytes.
    fn write_out(&mut self, upto: usize) -> io::Result<()> {
        if upto == 0 {
            return Ok(());
        }
        self.ensure_open()?;
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("the log file is not open"));
        };
        let mut out = Counted { file, written: 0 };
        let buf = &self.buf[..upto];
        let result = crate::sys::signal::gate(|| out.write_all(buf));
        let written = out.written;
        self.size += written as u64;
        self.buf.drain(..written);
        result
    }

    /// Moves the active file aside and starts a new one. `upto` pending
    /// bytes belong to the old file. Returns whether the rotation is done
    /// (or there was nothing to rotate).
    fn rotate(&mut self, upto: usize, trigger: Trigger, now: Option<i64>) -> bool {
        let flushed = self.ensure_open().and_then(|()| self.write_out(upto));
        if let Err(e) = flushed {
            self.rotation_failed(&e);
            return false;
        }
        if self.size == 0 {
            return true;
        }
        let now = now.unwrap_or_else(|| self.clock.now_ns());
        let named_at = match trigger {
            Trigger::Time => self.period_start_ns,
            Trigger::Size => now,
        };
        let shared = Arc::clone(&self.shared);
        let mut set = shared.backups();
        let renamed = match self.naming {
            Naming::Timestamp => set.rotate_stamp(&self.path, stamp(named_at, self.local_time)),
            Naming::Python => set.rotate_python(&self.path),
        };
        let id = match renamed {
            Ok(id) => id,
            Err(e) => {
                drop(set);
                self.rotation_failed(&e);
                return false;
            }
        };
        let failures = set.enforce(&self.retention, now);
        drop(set);
        for (path, e) in failures {
            eprintln!(
                "logbraid: cannot delete old log file {}: {e}",
                path.display()
            );
        }
        shared.counters.rotations.fetch_add(1, Ordering::Relaxed);
        self.reported_rotation_failure = false;
        self.file = None;
        self.file_id = None;
        self.size = 0;
        if let Err(e) = self.open() {
            // The next flush tries again; the records stay buffered.
            eprintln!(
                "logbraid: cannot open log file {}: {e}",
                self.path.display()
            );
        }
        if self.compression != Compression::None {
            self.queue_compression(id);
        }
        true
    }

    fn rotation_failed(&mut self, e: &io::Error) {
        self.rotation_suspended = true;
        self.shared
            .counters
            .rotation_failures
            .fetch_add(1, Ordering::Relaxed);
        if !self.reported_rotation_failure {
            self.reported_rotation_failure = true;
            eprintln!(
                "logbraid: cannot rotate log file {}: {e}; writing on into it",
                self.path.display()
            );
        }
    }

    /// Hands the backup to the worker if there is room in the backlog.
    fn queue_compression(&self, id: u64) {
        let Some(compressor) = &self.compressor else {
            return;
        };
        let mut set = self.shared.backups();
        let Some(b) = set.find_mut(id) else {
            // Already deleted by retention.
            return;
        };
        if b.ext != Ext::Plain || b.compressing {
            return;
        }
        b.compressing = true;
        let queued = compressor.try_submit(Job {
            id,
            compression: self.compression,
        });
        if queued {
            return;
        }
        b.compressing = false;
        let slot = b.slot.clone();
        let path = set.path_of(&slot, Ext::Plain);
        drop(set);
        let c = &self.shared.counters;
        c.compress_skipped.fetch_add(1, Ordering::Relaxed);
        if !c.reported_skip.swap(true, Ordering::Relaxed) {
            eprintln!(
                "logbraid: compression backlog full, leaving {} uncompressed \
                 (further skips are only counted)",
                path.display()
            );
        }
    }

    /// The time trigger fired: rotate unless the file is empty.
    fn period_ended(&mut self, now_ns: i64) {
        let pending = self.buf.len();
        let empty = self.size + pending as u64 == 0;
        if empty || (!self.rotation_suspended && self.rotate(pending, Trigger::Time, Some(now_ns)))
        {
            self.set_period(now_ns);
        }
    }
}

impl Sink for RollingFile {
    fn write(&mut self, record: &Record<'_>) -> io::Result<usize> {
        // With a time trigger the clock is read once here and reused by a
        // rotation; without one, only a rotation reads it.
        let mut now = None;
        if self.every.is_some() {
            let t = self.clock.now_ns();
            if t >= self.next_rotation_ns {
                self.period_ended(t);
            }
            now = Some(t);
        }
        let pending = self.buf.len();
        self.layout.format(record, &mut self.buf);
        let len = self.buf.len() - pending;
        if self.max_bytes > 0 && !self.rotation_suspended {
            let used = self.size + pending as u64;
            if used > 0
                && used + len as u64 > self.max_bytes
                && self.rotate(pending, Trigger::Size, now)
            {
                // Whatever was pending is in the old file now.
                self.buf_records = 0;
            }
        }
        self.buf_records += 1;
        Ok(len)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.rotation_suspended = false;
        let pending = self.buf.len();
        match self.write_out(pending) {
            Ok(()) => {
                self.buf_records = 0;
                if self.buf.capacity() > MAX_PENDING / 16 {
                    self.buf.shrink_to(KEEP_CAPACITY);
                }
                Ok(())
            }
            Err(e) if self.buf.len() > MAX_PENDING => {
                let lost = self.buf_records;
                let bytes = self.buf.len();
                self.buf = Vec::new();
                self.buf_records = 0;
                self.shared
                    .counters
                    .records_lost
                    .fetch_add(lost, Ordering::Relaxed);
                let mut err = FileError::new("write to", &self.path, e);
                err.detail =
                    format!(" ({lost} records, {bytes} bytes, discarded after repeated failures)");
                Err(err.into())
            }
            Err(e) => Err(FileError::new("write to", &self.path, e).into()),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        match &self.file {
            // fdatasync: the data and the file size, not the timestamps.
            Some(f) => f
                .sync_data()
                .map_err(|e| FileError::new("sync", &self.path, e).into()),
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        let r = self.flush();
        self.wait_compressed();
        r
    }
}

impl Drop for RollingFile {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            eprintln!("logbraid: records lost at shutdown: {e}");
        }
    }
}

/// A writer that counts what reached the file, so that a failed `write_all`
/// still tells how far it got.
struct Counted<'a> {
    file: &'a mut File,
    written: usize,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    Size,
    Time,
}

#[derive(Clone, Copy, Debug)]
struct Retention {
    backup_count: usize,
    max_age: Option<Duration>,
    max_total_bytes: u64,
}

/// State shared by the sink and its compression worker.
#[derive(Debug)]
pub(crate) struct Shared {
    backups: Mutex<BackupSet>,
    pub(crate) counters: Counters,
}

impl Shared {
    /// Locks the backup list. Renames and deletions of backups happen only
    /// under this lock.
    pub(crate) fn backups(&self) -> MutexGuard<'_, BackupSet> {
        self.backups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a failed compression, reporting the first one on stderr.
    pub(crate) fn compress_failed(&self, path: &Path, e: &io::Error) {
        let c = &self.counters;
        c.compress_failed.fetch_add(1, Ordering::Relaxed);
        if !c.reported_compress_failure.swap(true, Ordering::Relaxed) {
            eprintln!(
                "logbraid: cannot compress {}: {e}; leaving it uncompressed \
                 (further failures are only counted)",
                path.display()
            );
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    rotations: AtomicU64,
    pub(crate) compressed: AtomicU64,
    compress_skipped: AtomicU64,
    compress_failed: AtomicU64,
    rotation_failures: AtomicU64,
    records_lost: AtomicU64,
    reported_skip: AtomicBool,
    reported_compress_failure: AtomicBool,
}

/// The file-name extension of a backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ext {
    Plain,
    Gz,
    Zst,
}

impl Ext {
    const ALL: [Ext; 3] = [Ext::Plain, Ext::Gz, Ext::Zst];

    fn suffix(self) -> &'static str {
        match self {
            Ext::Plain => "",
            Ext::Gz => ".gz",
            Ext::Zst => ".zst",
        }
    }

    fn of(c: Compression) -> Ext {
        match c {
            Compression::None => Ext::Plain,
            Compression::Gzip => Ext::Gz,
            Compression::Zstd => Ext::Zst,
        }
    }
}

/// Where a backup sits in the naming scheme, without its extension.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Slot {
    /// `app.log.N`.
    Index(u64),
    /// `app.log.YYYY-mm-dd_HH-MM-SS`, with `.seq` when `seq > 0`.
    Stamp { stamp: String, seq: u64 },
}

#[derive(Debug)]
struct Backup {
    /// Stable across renames, so the worker finds a backup that Python
    /// naming shifted while it was being compressed.
    id: u64,
    slot: Slot,
    ext: Ext,
    compressing: bool,
}

/// What the worker needs to compress a backup.
#[derive(Debug)]
pub(crate) struct CompressSource {
    /// The backup, opened for reading: renames do not disturb it.
    pub(crate) file: File,
    /// Its name when the work started, for messages.
    pub(crate) path: PathBuf,
    /// Where to write the compressed bytes.
    pub(crate) tmp: PathBuf,
    pub(crate) modified: Option<SystemTime>,
}

/// The backups of one sink, oldest first.
#[derive(Debug)]
pub(crate) struct BackupSet {
    dir: PathBuf,
    base: OsString,
    list: Vec<Backup>,
    next_id: u64,
}

impl BackupSet {
    fn path_of(&self, slot: &Slot, ext: Ext) -> PathBuf {
        backup_path(&self.dir, &self.base, slot, ext)
    }

    /// The temporary name of a compression in progress. It starts with a
    /// dot followed by the base name, so no scan takes it for a backup.
    fn tmp_path(&self, id: u64, ext: Ext) -> PathBuf {
        let mut name = OsString::from(".");
        name.push(&self.base);
        name.push(format!(".{id}{}.tmp", ext.suffix()));
        self.dir.join(name)
    }

    fn find_mut(&mut self, id: u64) -> Option<&mut Backup> {
        self.list.iter_mut().find(|b| b.id == id)
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Every extension under which `slot` exists on disk.
    fn on_disk(&self, slot: &Slot) -> io::Result<Vec<Ext>> {
        let mut found = Vec::new();
        for ext in Ext::ALL {
            match fs::symlink_metadata(self.path_of(slot, ext)) {
                Ok(_) => found.push(ext),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    fn push_newest(&mut self, slot: Slot, ext: Ext) -> u64 {
        let id = self.next_id();
        self.list.push(Backup {
            id,
            slot,
            ext,
            compressing: false,
        });
        id
    }

    /// Takes a file that appeared under a backup name into the list, at the
    /// position its name gives it.
    fn adopt(&mut self, slot: Slot, ext: Ext) {
        if self.list.iter().any(|b| b.slot == slot && b.ext == ext) {
            return;
        }
        let pos = match slot {
            Slot::Index(n) => self
                .list
                .iter()
                .position(|b| matches!(b.slot, Slot::Index(m) if m < n))
                .or_else(|| {
                    self.list
                        .iter()
                        .rposition(|b| matches!(b.slot, Slot::Index(_)))
                        .map(|p| p + 1)
                })
                .unwrap_or(self.list.len()),
            Slot::Stamp { .. } => self.list.len(),
        };
        let id = self.next_id();
        self.list.insert(
            pos,
            Backup {
                id,
                slot,
                ext,
                compressing: false,
            },
        );
    }

    /// The largest `k` such that indices `1..=k` are all in the list.
    fn contiguous_top(&self) -> u64 {
        let mut indices: Vec<u64> = self
            .list
            .iter()
            .filter_map(|b| match b.slot {
                Slot::Index(n) => Some(n),
                Slot::Stamp { .. } => None,
            })
            .collect();
        indices.sort_unstable();
        indices.dedup();
        let mut top = 0;
        for n in indices {
            if n != top + 1 {
                break;
            }
            top = n;
        }
        top
    }

    /// Python naming: shifts `.1..=.k` up by one and renames the active
    /// file to `.1`. Returns the id of the new backup.
    fn rotate_python(&mut self, active: &Path) -> io::Result<u64> {
        'attempt: for _ in 0..MAX_ATTEMPTS {
            let top = self.contiguous_top();
            for i in (0..=top).rev() {
                // Slot i + 1 is free in the list (the gap above the run, or
                // just vacated); anything on disk there is unexpected.
                let target = Slot::Index(i + 1);
                let intruders = self.on_disk(&target)?;
                if !intruders.is_empty() {
                    for ext in intruders {
                        self.adopt(target.clone(), ext);
                    }
                    continue 'attempt;
                }
                if i == 0 {
                    break;
                }
                let from = Slot::Index(i);
                let mut k = 0;
                while k < self.list.len() {
                    if self.list[k].slot != from {
                        k += 1;
                        continue;
                    }
                    let ext = self.list[k].ext;
                    match rename_noreplace(&self.path_of(&from, ext), &self.path_of(&target, ext)) {
                        Ok(()) => self.list[k].slot = target.clone(),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            // Deleted from outside: nothing left to keep.
                            self.list.remove(k);
                            continue;
                        }
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                            self.adopt(target.clone(), ext);
                            continue 'attempt;
                        }
                        Err(e) => return Err(e),
                    }
                    k += 1;
                }
            }
            let first = Slot::Index(1);
            match rename_noreplace(active, &self.path_of(&first, Ext::Plain)) {
                Ok(()) => return Ok(self.push_newest(first, Ext::Plain)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    self.adopt(first, Ext::Plain);
                }
                Err(e) => return Err(e),
            }
        }
        Err(too_many_attempts())
    }

    /// Timestamp naming: renames the active file to the first free name for
    /// `stamp`. Returns the id of the new backup.
    fn rotate_stamp(&mut self, active: &Path, stamp: String) -> io::Result<u64> {
        for seq in 0..MAX_ATTEMPTS as u64 {
            let slot = Slot::Stamp {
                stamp: stamp.clone(),
                seq,
            };
            let taken = self.on_disk(&slot)?;
            if !taken.is_empty() {
                for ext in taken {
                    self.adopt(slot.clone(), ext);
                }
                continue;
            }
            match rename_noreplace(active, &self.path_of(&slot, Ext::Plain)) {
                Ok(()) => return Ok(self.push_newest(slot, Ext::Plain)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    self.adopt(slot, Ext::Plain);
                }
                Err(e) => return Err(e),
            }
        }
        Err(too_many_attempts())
    }

    /// Deletes the backup at `k`; `false` if it could not be deleted.
    fn delete_at(&mut self, k: usize, failures: &mut Vec<(PathBuf, io::Error)>) -> bool {
        let b = &self.list[k];
        let path = self.path_of(&b.slot, b.ext);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                failures.push((path, e));
                return false;
            }
        }
        self.list.remove(k);
        true
    }

    /// Applies retention, oldest first. Returns the files that could not be
    /// deleted.
    fn enforce(&mut self, r: &Retention, now_ns: i64) -> Vec<(PathBuf, io::Error)> {
        let mut failures = Vec::new();
        if r.backup_count > 0 {
            while self.list.len() > r.backup_count {
                if !self.delete_at(0, &mut failures) {
                    break;
                }
            }
        }
        if let Some(age) = r.max_age {
            let age_ns = i64::try_from(age.as_nanos()).unwrap_or(i64::MAX);
            let cutoff = now_ns.saturating_sub(age_ns);
            let mut k = 0;
            while k < self.list.len() {
                let b = &self.list[k];
                let expired = match fs::symlink_metadata(self.path_of(&b.slot, b.ext)) {
                    Ok(m) => mtime_ns(&m) < cutoff,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => true,
                    Err(_) => false,
                };
                if !(expired && self.delete_at(k, &mut failures)) {
                    k += 1;
                }
            }
        }
        if r.max_total_bytes > 0 {
            let mut sizes: Vec<u64> = self
                .list
                .iter()
                .map(|b| fs::symlink_metadata(self.path_of(&b.slot, b.ext)).map_or(0, |m| m.len()))
                .collect();
            let mut total: u64 = sizes.iter().sum();
            while total > r.max_total_bytes && !self.list.is_empty() {
                if !self.delete_at(0, &mut failures) {
                    break;
                }
                total -= sizes.remove(0);
            }
        }
        failures
    }

    /// Marks the start of the compression of backup `id`: opens it and
    /// picks the temporary name. `None` if it is gone or unreadable.
    pub(crate) fn begin_compression(
        &mut self,
        id: u64,
        compression: Compression,
    ) -> Option<CompressSource> {
        let tmp = self.tmp_path(id, Ext::of(compression));
        let b = self.list.iter().find(|b| b.id == id)?;
        let path = self.path_of(&b.slot, b.ext);
        match File::open(&path) {
            Ok(file) => {
                let modified = file.metadata().and_then(|m| m.modified()).ok();
                Some(CompressSource {
                    file,
                    path,
                    tmp,
                    modified,
                })
            }
            Err(_) => {
                self.abandon_compression(id);
                None
            }
        }
    }

    /// Puts the compressed file in place of backup `id`, under the name the
    /// backup has now, and deletes the uncompressed one. Returns `false` if
    /// the backup was deleted meanwhile (the temporary file is removed).
    pub(crate) fn finish_compression(
        &mut self,
        id: u64,
        tmp: &Path,
        compression: Compression,
    ) -> io::Result<bool> {
        let Some(pos) = self.list.iter().position(|b| b.id == id) else {
            let _ = fs::remove_file(tmp);
            return Ok(false);
        };
        let ext = Ext::of(compression);
        let b = &self.list[pos];
        let plain = self.path_of(&b.slot, b.ext);
        let packed = self.path_of(&b.slot, ext);
        if let Err(e) = rename_noreplace(tmp, &packed) {
            let _ = fs::remove_file(tmp);
            self.list[pos].compressing = false;
            return Err(e);
        }
        self.list[pos].ext = ext;
        self.list[pos].compressing = false;
        match fs::remove_file(&plain) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => {
                // The compressed copy is complete; the uncompressed one
                // stays on disk and will be adopted as a backup of its own.
                Err(e)
            }
        }
    }

    /// The compression of `id` will not happen.
    pub(crate) fn abandon_compression(&mut self, id: u64) {
        if let Some(b) = self.find_mut(id) {
            b.compressing = false;
        }
    }
}

fn backup_path(dir: &Path, base: &OsStr, slot: &Slot, ext: Ext) -> PathBuf {
    let mut name = base.to_os_string();
    match slot {
        Slot::Index(n) => name.push(format!(".{n}")),
        Slot::Stamp { stamp, seq: 0 } => name.push(format!(".{stamp}")),
        Slot::Stamp { stamp, seq } => name.push(format!(".{stamp}.{seq}")),
    }
    name.push(ext.suffix());
    dir.join(name)
}

fn too_many_attempts() -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        "too many unexpected files in the way of the rotation",
    )
}

/// Renames `from` to `to`, failing with `AlreadyExists` instead of
/// replacing a file at `to`.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::ffi::CString;
        let f = CString::new(from.as_os_str().as_bytes())?;
        let t = CString::new(to.as_os_str().as_bytes())?;
        // SAFETY: both are valid NUL-terminated strings that outlive the
        // call; AT_FDCWD makes relative paths relative to the working
        // directory, as rename does.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // The file system or kernel does not support the flag: check
            // first, then rename, below.
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {}
            _ => return Err(e),
        }
    }
    match fs::symlink_metadata(to) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists", to.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::rename(from, to),
        Err(e) => Err(e),
    }
}

fn mtime_ns(m: &fs::Metadata) -> i64 {
    m.mtime()
        .saturating_mul(NS_PER_SEC)
        .saturating_add(m.mtime_nsec())
}

/// Parses what follows `base.` in a file name.
fn parse_backup_name(rest: &[u8]) -> Option<(Slot, Ext)> {
    let (core, ext) = if let Some(c) = rest.strip_suffix(b".gz") {
        (c, Ext::Gz)
    } else if let Some(c) = rest.strip_suffix(b".zst") {
        (c, Ext::Zst)
    } else {
        (rest, Ext::Plain)
    };
    if let Some(n) = parse_index(core) {
        return Some((Slot::Index(n), ext));
    }
    if core.len() < STAMP_LEN || !is_stamp(&core[..STAMP_LEN]) {
        return None;
    }
    let seq = match &core[STAMP_LEN..] {
        [] => 0,
        [b'.', digits @ ..] => parse_index(digits)?,
        _ => return None,
    };
    let stamp = String::from_utf8(core[..STAMP_LEN].to_vec()).ok()?;
    Some((Slot::Stamp { stamp, seq }, ext))
}

/// A positive decimal number without leading zeros.
fn parse_index(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 18 || b[0] == b'0' || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

const STAMP_LEN: usize = "YYYY-mm-dd_HH-MM-SS".len();

fn is_stamp(b: &[u8]) -> bool {
    const SHAPE: &[u8; STAMP_LEN] = b"0000-00-00_00-00-00";
    b.len() == STAMP_LEN
        && b.iter().zip(SHAPE).all(|(c, s)| match s {
            b'0' => c.is_ascii_digit(),
            _ => c == s,
        })
}

/// A backup found on disk at start-up.
struct Found {
    slot: Slot,
    ext: Ext,
    mtime: i64,
    len: u64,
}

/// Finds the backups of `base` in `dir`, oldest first, and removes the
/// temporary files of an interrupted compression.
fn scan(dir: &Path, base: &OsStr) -> io::Result<Vec<(Slot, Ext)>> {
    let base_bytes = base.as_bytes();
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.as_bytes();
        if let Some(rest) = name
            .strip_prefix(b".")
            .and_then(|n| n.strip_prefix(base_bytes))
            .and_then(|n| n.strip_prefix(b"."))
        {
            if rest.ends_with(b".gz.tmp") || rest.ends_with(b".zst.tmp") {
                match fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            continue;
        }
        let Some(rest) = name
            .strip_prefix(base_bytes)
            .and_then(|n| n.strip_prefix(b"."))
        else {
            continue;
        };
        let Some((slot, ext)) = parse_backup_name(rest) else {
            continue;
        };
        let m = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if m.is_dir() {
            continue;
        }
        found.push(Found {
            slot,
            ext,
            mtime: mtime_ns(&m),
            len: m.len(),
        });
    }
    drop_compressed_twins(dir, base, &mut found);

    let (mut indexed, mut stamped): (Vec<Found>, Vec<Found>) = found
        .into_iter()
        .partition(|f| matches!(f.slot, Slot::Index(_)));
    // Oldest first: highest index first; earliest stamp first.
    indexed.sort_by(|a, b| match (&a.slot, &b.slot) {
        (Slot::Index(x), Slot::Index(y)) => y.cmp(x).then(a.ext.cmp(&b.ext)),
        _ => std::cmp::Ordering::Equal,
    });
    stamped.sort_by(|a, b| match (&a.slot, &b.slot) {
        (Slot::Stamp { stamp: s, seq: x }, Slot::Stamp { stamp: t, seq: y }) => {
            s.cmp(t).then(x.cmp(y)).then(a.ext.cmp(&b.ext))
        }
        _ => std::cmp::Ordering::Equal,
    });
    // Each scheme keeps its own order; between the two, modification times
    // decide (a directory holds both only if the naming was changed).
    let mut merged = Vec::with_capacity(indexed.len() + stamped.len());
    let mut a = indexed.into_iter().peekable();
    let mut b = stamped.into_iter().peekable();
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.mtime <= y.mtime,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_a { a.next() } else { b.next() };
        if let Some(f) = next {
            merged.push((f.slot, f.ext));
        }
    }
    Ok(merged)
}

/// An interrupted compression can leave a backup both compressed and not:
/// the compressed file is renamed into place before the original is
/// deleted. If the compressed file decodes to exactly the original's
/// length, the original is the leftover and is removed; otherwise both are
/// kept as backups.
fn drop_compressed_twins(dir: &Path, base: &OsStr, found: &mut Vec<Found>) {
    let mut k = 0;
    while k < found.len() {
        let f = &found[k];
        if f.ext == Ext::Plain {
            let twin = found
                .iter()
                .find(|g| g.slot == f.slot && g.ext != Ext::Plain);
            if let Some(g) = twin {
                let packed = backup_path(dir, base, &g.slot, g.ext);
                let plain = backup_path(dir, base, &f.slot, Ext::Plain);
                if decoded_len(&packed, g.ext) == Some(f.len) && fs::remove_file(&plain).is_ok() {
                    found.remove(k);
                    continue;
                }
            }
        }
        k += 1;
    }
}

/// Bytes that a compressed file decodes to, or `None` if it does not decode.
fn decoded_len(path: &Path, ext: Ext) -> Option<u64> {
    let file = File::open(path).ok()?;
    let mut reader: Box<dyn Read> = match ext {
        Ext::Gz => Box::new(flate2::read::GzDecoder::new(file)),
        Ext::Zst => Box::new(zstd::stream::read::Decoder::new(file).ok()?),
        Ext::Plain => return file.metadata().ok().map(|m| m.len()),
    };
    io::copy(&mut reader, &mut io::sink()).ok()
}

/// Start and end, in ns since the epoch, of the period holding `now_ns`;
/// weeks start on `week_starts`.
fn period_bounds(every: Every, week_starts: Weekday, now_ns: i64, local: bool) -> (i64, i64) {
    let secs = now_ns.div_euclid(NS_PER_SEC);
    if local {
        if let Some((start, end)) = local_bounds(every, week_starts, secs) {
            return (start * NS_PER_SEC, end * NS_PER_SEC);
        }
    }
    let (start, end) = utc_bounds(every, week_starts, secs, 0);
    (start * NS_PER_SEC, end * NS_PER_SEC)
}

/// Period bounds in seconds for a clock `offset` seconds ahead of UTC.
fn utc_bounds(every: Every, week_starts: Weekday, secs: i64, offset: i64) -> (i64, i64) {
    const DAY: i64 = 86_400;
    let (len, phase) = match every {
        Every::Minutely => (60, 0),
        Every::Hourly => (3_600, 0),
        Every::Daily => (DAY, 0),
        // The epoch was a Thursday (3 days after Monday): the first week
        // starting on day `d` began (d - 3) mod 7 days after it.
        Every::Weekly => {
            let d = i64::from(week_starts.days_from_monday());
            (7 * DAY, (d + 4).rem_euclid(7) * DAY)
        }
    };
    let wall = secs + offset;
    let start = (wall - phase).div_euclid(len) * len + phase;
    (start - offset, start + len - offset)
}

fn localtime(secs: i64) -> Option<libc::tm> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: an all-zero tm is a valid value (the pointer field is null).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call;
    // localtime_r is the reentrant form and writes only into `tm`.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    (!r.is_null()).then_some(tm)
}

/// Period bounds in the local time zone. Minutes and hours are fixed
/// lengths aligned on the current offset (which handles zones half or
/// three quarters of an hour off UTC); days and weeks go through mktime so
/// that those containing a daylight-saving change are 23 or 25 hours long.
fn local_bounds(every: Every, week_starts: Weekday, secs: i64) -> Option<(i64, i64)> {
    if matches!(every, Every::Minutely | Every::Hourly) {
        let offset = widen(localtime(secs)?.tm_gmtoff);
        return Some(utc_bounds(every, week_starts, secs, offset));
    }
    let mut start = localtime(secs)?;
    start.tm_sec = 0;
    start.tm_min = 0;
    start.tm_hour = 0;
    if every == Every::Weekly {
        // tm_wday counts from Sunday; back to the last `week_starts`.
        let from_monday = (start.tm_wday + 6) % 7;
        let d = libc::c_int::from(week_starts.days_from_monday());
        start.tm_mday -= (from_monday - d).rem_euclid(7);
    }
    start.tm_isdst = -1;
    let mut end = start;
    end.tm_mday += if every == Every::Weekly { 7 } else { 1 };
    // SAFETY: both are valid, initialised tm values; mktime normalises them
    // in place.
    let (s, e) = unsafe { (libc::mktime(&mut start), libc::mktime(&mut end)) };
    let (s, e) = (widen(s), widen(e));
    if s <= secs && secs < e {
        return Some((s, e));
    }
    // mktime could not express the period: use the current offset.
    let offset = widen(localtime(secs)?.tm_gmtoff);
    Some(utc_bounds(every, week_starts, secs, offset))
}

/// `time_t` and `c_long` are 32 bits on some targets and 64 on others.
fn widen<T: Into<i64>>(v: T) -> i64 {
    v.into()
}

/// `YYYY-mm-dd_HH-MM-SS` for `ns`, in UTC or local time.
fn stamp(ns: i64, local: bool) -> String {
    let secs = ns.div_euclid(NS_PER_SEC);
    if local {
        if let Some(tm) = localtime(secs) {
            return format!(
                "{:04}-{:02}-{:02}_{:02}-{:02}-{:02}",
                i64::from(tm.tm_year) + 1900,
                tm.tm_mon + 1,
                tm.tm_mday,
                tm.tm_hour,
                tm.tm_min,
                tm.tm_sec
            );
        }
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}_{:02}-{:02}-{:02}",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day number (0 = 1970-01-01).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Count from 0000-03-01, so that the leap day ends each four-year cycle
    // and the month lengths repeat in a five-month pattern from March.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-22 10:00:00 UTC, a Sunday.
    const SUN_10H: i64 = 1_795_341_600;

    #[test]
    fn backup_names_parse_and_others_do_not() {
        let p = |s: &str| parse_backup_name(s.as_bytes());
        assert_eq!(p("1"), Some((Slot::Index(1), Ext::Plain)));
        assert_eq!(p("12.gz"), Some((Slot::Index(12), Ext::Gz)));
        assert_eq!(p("3.zst"), Some((Slot::Index(3), Ext::Zst)));
        let stamp = |seq| Slot::Stamp {
            stamp: "2026-11-22_10-00-00".to_string(),
            seq,
        };
        assert_eq!(p("2026-11-22_10-00-00"), Some((stamp(0), Ext::Plain)));
        assert_eq!(p("2026-11-22_10-00-00.2.gz"), Some((stamp(2), Ext::Gz)));
        for other in [
            "0",
            "01",
            "",
            "gz",
            "1.gz.tmp",
            "1.bak",
            "x1",
            "2026-11-22",
            "2026-11-22_10-00-00.",
            "2026-11-22_10-00-00.0",
            "2026-11-22_10-00-00x",
            "2026-11-22 10-00-00",
        ] {
            assert_eq!(p(other), None, "{other:?}");
        }
    }

    #[test]
    fn dates_and_stamps_in_utc() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(SUN_10H / 86_400), (2026, 11, 22));
        assert_eq!(
            stamp(SUN_10H * NS_PER_SEC + 999, false),
            "2026-11-22_10-00-00"
        );
        assert_eq!(
            stamp(951_868_799 * NS_PER_SEC, false),
            "2000-02-29_23-59-59"
        );
        assert_eq!(stamp(-NS_PER_SEC, false), "1969-12-31_23-59-59");
    }

    #[test]
    fn utc_periods() {
        let at = |every, secs: i64| {
            let (s, e) = period_bounds(every, Weekday::Monday, secs * NS_PER_SEC + 1, false);
            (s / NS_PER_SEC, e / NS_PER_SEC)
        };
        let t = SUN_10H + 1_234;
        assert_eq!(at(Every::Minutely, t), (SUN_10H + 1_200, SUN_10H + 1_260));
        assert_eq!(at(Every::Hourly, t), (SUN_10H, SUN_10H + 3_600));
        let midnight = SUN_10H - 10 * 3_600;
        assert_eq!(at(Every::Daily, t), (midnight, midnight + 86_400));
        // Sunday belongs to the week that started on the Monday before.
        let monday = midnight - 6 * 86_400;
        assert_eq!(at(Every::Weekly, t), (monday, monday + 7 * 86_400));
        assert_eq!(at(Every::Weekly, monday), (monday, monday + 7 * 86_400));
        assert_eq!(at(Every::Hourly, -1), (-3_600, 0));
    }

    #[test]
    fn weekly_periods_start_on_the_day_asked_for() {
        // SUN_10H is a Sunday; its midnight, and the midnights before it.
        let sunday = SUN_10H - 10 * 3_600;
        let day = 86_400;
        for (n, back) in [(0, 6), (1, 5), (2, 4), (3, 3), (4, 2), (5, 1), (6, 0)] {
            // `n` days after Monday, as Python's when="W<n>".
            let weekday = Weekday::from_days_from_monday(n).unwrap();
            let start = sunday - back * day;
            for t in [SUN_10H, start, start + 7 * day - 1] {
                let (s, e) = period_bounds(Every::Weekly, weekday, t * NS_PER_SEC, false);
                assert_eq!(
                    (s / NS_PER_SEC, e / NS_PER_SEC),
                    (start, start + 7 * day),
                    "{weekday:?} at {t}"
                );
            }
            // Local time: the period starts at a local midnight of that day.
            let (s, _) = period_bounds(Every::Weekly, weekday, SUN_10H * NS_PER_SEC, true);
            let tm = localtime(s / NS_PER_SEC).unwrap();
            assert_eq!(
                (tm.tm_wday + 6) % 7,
                libc::c_int::from(n),
                "{weekday:?} local"
            );
            assert_eq!((tm.tm_hour, tm.tm_min, tm.tm_sec), (0, 0, 0));
        }
        assert_eq!(Weekday::from_days_from_monday(7), None);
    }

    #[test]
    fn local_periods_start_on_local_boundaries() {
        // Whatever the time zone of the machine running the test, a local
        // period must contain the instant, start and end on the wall-clock
        // boundary, and (weekly) start on a Monday.
        for secs in [
            SUN_10H,
            SUN_10H + 1_234_567,
            1_700_000_000,
            1_711_846_800,
            1_710_054_000,
            1_730_612_000,
            1_730_615_400,
            1_730_617_200,
        ] {
            for every in [Every::Minutely, Every::Hourly, Every::Daily, Every::Weekly] {
                let (s, e) = period_bounds(every, Weekday::Monday, secs * NS_PER_SEC, true);
                let (s, e) = (s / NS_PER_SEC, e / NS_PER_SEC);
                assert!(s <= secs && secs < e, "{every:?} {secs}: {s}..{e}");
                for edge in [s, e] {
                    let tm = localtime(edge).unwrap();
                    assert_eq!(tm.tm_sec, 0);
                    if every != Every::Minutely {
                        assert_eq!(tm.tm_min, 0);
                    }
                    if matches!(every, Every::Daily | Every::Weekly) {
                        assert_eq!(tm.tm_hour, 0);
                    }
                    if every == Every::Weekly {
                        assert_eq!(tm.tm_wday, 1);
                    }
                }
                let len = e - s;
                let (h, d) = (3_600, 86_400);
                match every {
                    Every::Minutely => assert_eq!(len, 60),
                    Every::Hourly => assert_eq!(len, h),
                    Every::Daily => assert!((d - h..=d + h).contains(&len), "{len}"),
                    Every::Weekly => assert!((7 * d - h..=7 * d + h).contains(&len), "{len}"),
                }
            }
        }
        let s = stamp(SUN_10H * NS_PER_SEC, true);
        assert!(is_stamp(s.as_bytes()), "{s}");
    }

    #[derive(Debug)]
    struct Line;

    impl Layout for Line {
        fn format(&mut self, record: &Record<'_>, out: &mut Vec<u8>) {
            out.extend_from_slice(record.message);
            out.push(b'\n');
        }
    }

    fn log(sink: &mut RollingFile, msg: &str) {
        let source = crate::record::Source {
            host: String::new(),
            pid: 0,
            process_name: String::new(),
        };
        let r = Record {
            timestamp_ns: 0,
            level: crate::Level::Info,
            target: "t",
            message: msg.as_bytes(),
            module: None,
            file: None,
            line: None,
            function: None,
            thread_id: 0,
            thread_name: None,
            source: &source,
            fields: crate::record::Fields::EMPTY,
        };
        sink.write(&r).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_full_backlog_leaves_backups_uncompressed_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = RollingFile::builder(dir.path().join("app.log"))
            .layout(Box::new(Line))
            .max_bytes(1)
            .compression(Compression::Gzip)
            .build()
            .unwrap();
        // A worker that does not run yet: the backlog of 2 fills up.
        let (detached, rx) = Compressor::detached(2);
        sink.compressor = Some(detached);
        for i in 0..5 {
            log(&mut sink, &format!("r{i}"));
        }
        let stats = sink.stats();
        assert_eq!((stats.rotations, stats.compress_skipped), (4, 2));
        assert_eq!(
            names(dir.path()),
            [
                "app.log",
                "app.log.1",
                "app.log.2",
                "app.log.3",
                "app.log.4"
            ]
        );
        // The two queued backups have been shifted since: the worker finds
        // them at their new names.
        let shared = Arc::clone(&sink.shared);
        if let Some(c) = sink.compressor.as_mut() {
            c.run_detached(rx, shared);
        }
        sink.wait_compressed();
        assert_eq!(
            names(dir.path()),
            [
                "app.log",
                "app.log.1",
                "app.log.2",
                "app.log.3.gz",
                "app.log.4.gz"
            ]
        );
        assert_eq!(sink.stats().compressed, 2);
    }

    #[test]
    fn rename_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, "a").unwrap();
        fs::write(&b, "b").unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&b).unwrap(), b"b");
        fs::remove_file(&b).unwrap();
        rename_noreplace(&a, &b).unwrap();
        assert_eq!(fs::read(&b).unwrap(), b"a");
        assert!(!a.exists());
    }
}
