//! A file sink that rotates by size and by time, keeps a bounded set of
//! backups and compresses them in the background.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::civil::Time;
use jiff::tz::TimeZone;

use super::compress::{Compressor, Job};
use super::Sink;
use crate::clock::{self, SharedClock};
use crate::layout::Layout;
use crate::options::{Compression, Every, Naming, Weekday};
use crate::record::Record;
use crate::report::RateLimit;
use crate::time::period::{stamp, Schedule};

mod backups;
mod scan;

pub(crate) use backups::Shared;
use backups::{BackupSet, Counters, Ext, Retention};
pub use scan::backup_files;
use scan::{mtime_ns, scan};

pub(super) const NS_PER_SEC: i64 = 1_000_000_000;

/// `O_NOFOLLOW`, for [`std::fs::OpenOptions::custom_flags`]: the open
/// fails when the path's last component is a symbolic link. The one
/// spelling of the flag: the active file under `follow_links(false)`,
/// compressed backups, and the collector's state files use it.
pub const O_NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;

/// Default of [`RollingFileBuilder::max_pending`].
const MAX_PENDING: usize = 64 << 20;

/// Longest pause between two attempts of a `write` that waits for the file.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Capacity kept by the buffer after a large flush.
const KEEP_CAPACITY: usize = 64 << 10;

/// Bound on the retries of a rotation that keeps finding files in its way.
pub(super) const MAX_ATTEMPTS: usize = 1000;

const DEFAULT_BACKLOG: usize = 8;

/// Least time between two lines saying that `write` waits for the file.
const HELD_REPORT_EVERY: Duration = Duration::from_secs(10);

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
    /// Writes of the buffer that failed (a full disk, an I/O error, a file
    /// that cannot be opened). The records stay buffered and are written
    /// by a later flush: a write error never discards them.
    pub write_failures: u64,
    /// Times a [`write`](Sink::write) found more than
    /// [`max_pending`](RollingFileBuilder::max_pending) bytes held after
    /// failed writes and waited for the file to take them.
    pub held_waits: u64,
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
/// | [`at_time`](Self::at_time) | midnight | the time of day a daily or weekly rotation starts a new file |
/// | [`backup_count`](Self::backup_count) | `0`: keep all | keep at most this many backups |
/// | [`max_age`](Self::max_age) | none: keep all | delete backups last modified longer ago than this |
/// | [`max_total_bytes`](Self::max_total_bytes) | `0`: no limit | delete the oldest backups until their sizes add up to at most this |
/// | [`naming`](Self::naming) | [`Naming::Python`] | `app.log.1` newest, or a timestamp in the name |
/// | [`compression`](Self::compression) | [`Compression::None`] | gzip or zstd on a background thread |
/// | [`compress_backlog`](Self::compress_backlog) | `8` | backups that may wait for compression |
/// | [`local_time`](Self::local_time) | `false`: UTC | period boundaries and names in the system's time zone |
/// | [`time_zone`](Self::time_zone) | UTC | period boundaries and names in this time zone |
/// | [`clock`](Self::clock) | the system clock | where time comes from (tests inject a manual one) |
/// | [`max_pending`](Self::max_pending) | 64 MiB | past this many bytes held after failed writes, `write` waits for the file |
/// | [`sync_rotations`](Self::sync_rotations) | `false` | fdatasync a file before it is renamed to a backup, and its directory after every rename or new file |
/// | [`file_mode`](Self::file_mode) | `0o666`, less the umask (as `File::create`) | permissions of the files it creates; compressed backups keep their original's |
/// | [`dir_mode`](Self::dir_mode) | `0o777`, less the umask | permissions of the directories it creates |
/// | [`follow_links`](Self::follow_links) | `true` | whether a symbolic link in the active file's place is followed |
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RollingFileBuilder {
    path: PathBuf,
    layout: Option<Box<dyn Layout>>,
    max_bytes: u64,
    every: Option<Every>,
    week_starts: Weekday,
    at_time: Time,
    backup_count: usize,
    max_age: Option<Duration>,
    max_total_bytes: u64,
    naming: Naming,
    compression: Compression,
    compress_backlog: usize,
    zone: TimeZone,
    clock: SharedClock,
    sync_rotations: bool,
    max_pending: usize,
    file_mode: u32,
    dir_mode: u32,
    follow_links: bool,
}

impl Default for RollingFileBuilder {
    fn default() -> Self {
        RollingFileBuilder {
            path: PathBuf::new(),
            layout: None,
            max_bytes: 0,
            every: None,
            week_starts: Weekday::Monday,
            at_time: Time::midnight(),
            backup_count: 0,
            max_age: None,
            max_total_bytes: 0,
            naming: Naming::Python,
            compression: Compression::None,
            compress_backlog: DEFAULT_BACKLOG,
            zone: TimeZone::UTC,
            clock: clock::system(),
            sync_rotations: false,
            max_pending: MAX_PENDING,
            file_mode: 0o666,
            dir_mode: 0o777,
            follow_links: true,
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
        self.zone = if local {
            crate::time::system_zone()
        } else {
            TimeZone::UTC
        };
        self
    }

    /// Period boundaries and timestamps in names follow `zone`'s clock,
    /// daylight-saving changes included: a day holding one is 23 or 25
    /// hours long, and an hour the clock shows twice is two periods (whose
    /// backups get `.1` added to the second name). `local_time(true)` is
    /// `time_zone(TimeZone::system())`.
    pub fn time_zone(mut self, zone: TimeZone) -> Self {
        self.zone = zone;
        self
    }

    /// With [`Every::Daily`] or [`Every::Weekly`]: the time of day, on the
    /// clock of the [time zone](Self::time_zone), at which a new period
    /// starts (Python's `atTime`). On a night the clock skips that time
    /// (02:30 when 02:00 jumps to 03:00), the period starts as much later
    /// as the clock jumped (03:30); on a night it shows it twice, at the
    /// first. Either way such a night has one rotation.
    pub fn at_time(mut self, time: Time) -> Self {
        self.at_time = time;
        self
    }

    /// The clock used for the time trigger, timestamped names and
    /// `max_age`.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Makes rotations durable: the active file is fdatasynced before it is
    /// renamed to a backup, and the directory is fsynced after the rename
    /// and whenever a new active file is opened, so a power loss leaves
    /// every synced record under one of the sink's names. Costs one or two
    /// syncs per rotation; records themselves reach the disk with
    /// [`Sink::sync`].
    pub fn sync_rotations(mut self, sync: bool) -> Self {
        self.sync_rotations = sync;
        self
    }

    /// Bounds the memory records take while the file cannot be written:
    /// once a failed write leaves more than `bytes` buffered, the next
    /// [`write`](Sink::write) waits, retrying the write with back-off
    /// (10 ms doubling to 1 s, one line on stderr every 10 s), until the
    /// file takes everything. In a pipeline the writer thread then stops
    /// draining the queue, so the queue's
    /// [`Overflow`](crate::Overflow) policy decides: `Block` (the default)
    /// makes callers wait, `DropNewest`/`DropOldest` drop and count. No
    /// record is ever discarded by the sink, so a shutdown (a guard
    /// dropped) waits for the disk too; the flushes of a signal, of a
    /// panic and at exit give up after their limit
    /// ([`Builder::signal_flush_limit`](crate::Builder::signal_flush_limit))
    /// and say so. `0` never waits, for a caller
    /// that bounds what it hands over itself (the collector, whose byte
    /// budget holds back its clients).
    pub fn max_pending(mut self, bytes: usize) -> Self {
        self.max_pending = bytes;
        self
    }

    /// Permissions of the files the sink creates (the active file; the
    /// umask still applies). A collector writing other people's records
    /// passes `0o640`.
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.file_mode = mode & 0o7777;
        self
    }

    /// Permissions of the directories the sink creates for the active
    /// file (the umask still applies).
    pub fn dir_mode(mut self, mode: u32) -> Self {
        self.dir_mode = mode & 0o7777;
        self
    }

    /// With `false`, the active file is opened with `O_NOFOLLOW`: a
    /// symbolic link in its place is an error (`ELOOP`), never followed to
    /// a file someone else chose. For a collector writing where others
    /// can create files; a program's own log may be a link on purpose (to
    /// `/dev/stdout` in a container), as Python's `FileHandler` allows.
    pub fn follow_links(mut self, follow: bool) -> Self {
        self.follow_links = follow;
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
        create_dirs(&dir, self.dir_mode)
            .map_err(|e| FileError::new("create directory", &dir, e))?;
        let list = scan(&dir, &base).map_err(|e| FileError::new("scan directory", &dir, e))?;
        let mut set = BackupSet {
            dir,
            base,
            list: Vec::new(),
            next_id: 0,
            sync: self.sync_rotations,
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
            max_bytes: self.max_bytes,
            schedule: self.every.map(|every| Schedule {
                every,
                week_starts: self.week_starts,
                at: self.at_time,
                zone: self.zone.clone(),
            }),
            zone: self.zone,
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
            sync_rotations: self.sync_rotations,
            max_pending: self.max_pending,
            file_mode: self.file_mode,
            dir_mode: self.dir_mode,
            follow_links: self.follow_links,
            held_reports: RateLimit::new(HELD_REPORT_EVERY),
            shared,
            compressor: None,
        };
        sink.open()
            .map_err(|e| FileError::new("open", &sink.path, e))?;
        if sink.schedule.is_some() {
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
/// `flush` (a [`FileError`] naming the file and the system's error,
/// counted in [`FileStats::write_failures`]), which keeps the buffer for a
/// retry; whatever part of it reached the file is not written again. In a
/// pipeline, [`Logger::flush`](crate::Logger::flush) then returns with the
/// failure counted in [`Stats::write_errors`](crate::Stats::write_errors)
/// and said on stderr, and the records wait in the sink for the next
/// flush. Once more than [`max_pending`](RollingFileBuilder::max_pending)
/// bytes wait (64 MiB by default), `write` itself waits for the file,
/// which holds the pipeline's queue back: its overflow policy makes
/// callers wait, or drops and counts; nothing is lost silently.
///
/// A rotation that fails (a rename refused, say) is counted, reported once
/// on stderr, and the records go on into the active file; it is retried
/// after the next flush.
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
    max_bytes: u64,
    /// The time trigger.
    schedule: Option<Schedule>,
    /// The clock of the timestamps in names.
    zone: TimeZone,
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
    /// [`RollingFileBuilder::sync_rotations`].
    sync_rotations: bool,
    /// [`RollingFileBuilder::max_pending`]; 0: never wait.
    max_pending: usize,
    /// [`RollingFileBuilder::file_mode`].
    file_mode: u32,
    /// [`RollingFileBuilder::dir_mode`].
    dir_mode: u32,
    /// [`RollingFileBuilder::follow_links`].
    follow_links: bool,
    /// The line saying that `write` waits for the file.
    held_reports: RateLimit,
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
            .field("every", &self.schedule.as_ref().map(|s| s.every))
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
            write_failures: c.write_failures.load(Ordering::Relaxed),
            held_waits: c.held_waits.load(Ordering::Relaxed),
        }
    }

    /// Backups queued for compression, or being compressed, now.
    pub fn compress_backlog(&self) -> usize {
        self.compressor.as_ref().map_or(0, Compressor::pending)
    }

    /// Blocks until every backup queued for compression so far is done.
    /// Dropping the sink does the same.
    pub fn wait_compressed(&self) {
        if let Some(c) = &self.compressor {
            c.wait_idle();
        }
    }

    fn set_period(&mut self, now_ns: i64) {
        if let Some(schedule) = &self.schedule {
            let (start, next) = schedule.bounds(now_ns);
            self.period_start_ns = start;
            self.next_rotation_ns = next;
        }
    }

    /// Opens (or creates) the path for appending and takes its size.
    fn open(&mut self) -> io::Result<()> {
        self.file = None;
        self.file_id = None;
        crate::fault::point("file::open")?;
        let mut options = OpenOptions::new();
        options.append(true).create(true).mode(self.file_mode);
        if !self.follow_links {
            options.custom_flags(O_NOFOLLOW);
        }
        let file = match options.open(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(dir) = self.path.parent() {
                    create_dirs(dir, self.dir_mode)?;
                }
                options.open(&self.path)?
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "{} is a symbolic link: not followed ({e})",
                        self.path.display()
                    ),
                ))
            }
            other => other?,
        };
        let m = file.metadata()?;
        self.size = m.len();
        self.file_id = Some((m.dev(), m.ino()));
        self.file = Some(file);
        if self.sync_rotations {
            // The new file's name, and the rename of the one before it.
            self.sync_dir()?;
        }
        Ok(())
    }

    /// fsyncs the directory of the active file.
    fn sync_dir(&self) -> io::Result<()> {
        match self.path.parent() {
            Some(dir) => File::open(dir)?.sync_all(),
            None => Ok(()),
        }
    }

    /// fdatasyncs the active file, if one is open.
    fn sync_file(&self) -> io::Result<()> {
        match &self.file {
            Some(f) => {
                crate::fault::point("file::sync")?;
                f.sync_data()
            }
            None => Ok(()),
        }
    }

    /// Closes the active file and opens the path again, creating it if it
    /// is gone: what `logrotate` expects after moving the file away and
    /// sending SIGHUP. Pending records are written first, to the file at
    /// the path (a sink notices a file moved away before each write, so
    /// they never go to the moved file); nothing is written to the old
    /// file after this returns. With
    /// [`sync_rotations`](RollingFileBuilder::sync_rotations) the old file
    /// is fdatasynced before it is let go.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.flush()?;
        if self.sync_rotations {
            self.sync_file()
                .map_err(|e| io::Error::from(FileError::new("sync", &self.path, e)))?;
        }
        self.open()
            .map_err(|e| FileError::new("reopen", &self.path, e).into())
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
        crate::fault::point("file::write")?;
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
        if self.sync_rotations {
            // Synced under its own name: once renamed it is a backup the
            // sink never writes again.
            if let Err(e) = self.sync_file() {
                self.rotation_failed(&e);
                return false;
            }
        }
        if let Err(e) = crate::fault::point("file::rotate") {
            self.rotation_failed(&e);
            return false;
        }
        let now = now.unwrap_or_else(|| self.clock.now_ns());
        let named_at = match trigger {
            Trigger::Time => self.period_start_ns,
            Trigger::Size => now,
        };
        let shared = Arc::clone(&self.shared);
        let mut set = shared.backups();
        let renamed = match self.naming {
            Naming::Timestamp => set.rotate_stamp(&self.path, stamp(named_at, &self.zone)),
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

    /// More than `max_pending` bytes are held after failed writes: retries
    /// the write, with back-off, until the file takes them all. Never gives
    /// up and never discards: the caller (a pipeline's writer thread) waits,
    /// and so its queue's overflow policy applies.
    fn wait_for_room(&mut self) {
        let mut pause = Duration::from_millis(10);
        let mut counted = false;
        while let Err(e) = self.flush() {
            if !counted {
                counted = true;
                self.shared
                    .counters
                    .held_waits
                    .fetch_add(1, Ordering::Relaxed);
            }
            if let Some(more) = self.held_reports.allow() {
                eprintln!(
                    "logbraid: {e}; logging waits until the file takes them \
                     ({more} more failures since the last report)"
                );
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_BACKOFF);
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
        if self.max_pending > 0 && self.buf.len() > self.max_pending {
            self.wait_for_room();
        }
        // With a time trigger the clock is read once here and reused by a
        // rotation; without one, only a rotation reads it.
        let mut now = None;
        if self.schedule.is_some() {
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
            if used > 0 && used + len as u64 > self.max_bytes {
                self.rotate(pending, Trigger::Size, now);
            }
        }
        Ok(len)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.rotation_suspended = false;
        let pending = self.buf.len();
        match self.write_out(pending) {
            Ok(()) => {
                if self.buf.capacity() > MAX_PENDING / 16 {
                    self.buf.shrink_to(KEEP_CAPACITY);
                }
                Ok(())
            }
            Err(e) => {
                self.shared
                    .counters
                    .write_failures
                    .fetch_add(1, Ordering::Relaxed);
                let mut err = FileError::new("write to", &self.path, e);
                err.detail = format!(" ({} bytes of records kept for a retry)", self.buf.len());
                Err(err.into())
            }
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        // fdatasync: the data and the file size, not the timestamps.
        self.sync_file()
            .map_err(|e| FileError::new("sync", &self.path, e).into())
    }

    fn finish(&mut self) -> io::Result<()> {
        let r = self.flush();
        self.wait_compressed();
        r
    }

    fn sink_stats(&self) -> crate::sink::SinkStats {
        crate::sink::SinkStats {
            rotations: self.shared.counters.rotations.load(Ordering::Relaxed),
            ..Default::default()
        }
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

/// Creates `dir` and its missing parents with `mode` (the umask applies).
fn create_dirs(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new().recursive(true).mode(mode).create(dir)
}

#[cfg(test)]
mod tests;
