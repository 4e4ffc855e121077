//! Background compression of rotated files.
//!
//! Each [`RollingFile`](super::RollingFile) that compresses owns one worker
//! thread, fed through a bounded channel. The sink only ever *tries* to hand
//! a job over: when the backlog is full the file stays uncompressed, because
//! logging must never wait for compression.
//!
//! The worker and the sink share the list of backups behind one mutex. The
//! worker holds it only to look a backup up by its id and, at the end, to
//! rename the compressed file into place; the compression itself runs
//! without it. Python-style rotation may shift a backup to another index
//! while it is being compressed, so the id, not the name, identifies it.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::SystemTime;

use super::file::Shared;
use crate::options::Compression;

/// Name of the worker thread (Linux shows its first 15 bytes).
pub(crate) const THREAD_NAME: &str = "logbraid-compress";

/// Nice value of the worker thread: compression yields to everything else.
const NICE: i32 = 10;

/// Compress the backup with this id.
#[derive(Debug)]
pub(crate) struct Job {
    /// Identifies the backup across renames.
    pub(crate) id: u64,
    /// Codec to use.
    pub(crate) compression: Compression,
}

/// Counts jobs handed over and not yet finished, so that callers can wait
/// for the worker to become idle.
#[derive(Debug, Default)]
struct InFlight {
    count: Mutex<usize>,
    idle: Condvar,
}

impl InFlight {
    fn add(&self) {
        *self.count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
    }

    fn done(&self) {
        let mut n = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.idle.notify_all();
        }
    }

    fn count(&self) -> usize {
        *self.count.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_idle(&self) {
        let mut n = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        while *n > 0 {
            n = self.idle.wait(n).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// The sending side of one sink's compression worker. Dropping it lets the
/// worker finish every queued job, then joins it.
#[derive(Debug)]
pub(crate) struct Compressor {
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    in_flight: Arc<InFlight>,
}

impl Compressor {
    /// Starts the worker with room for `backlog` waiting jobs.
    pub(crate) fn start(shared: Arc<Shared>, backlog: usize) -> io::Result<Compressor> {
        let (tx, rx) = mpsc::sync_channel(backlog);
        let in_flight = Arc::new(InFlight::default());
        let worker_in_flight = Arc::clone(&in_flight);
        let thread = thread::Builder::new()
            .name(THREAD_NAME.to_string())
            .spawn(move || {
                lower_priority();
                run(rx, &shared, &worker_in_flight);
            })?;
        Ok(Compressor {
            tx: Some(tx),
            thread: Some(thread),
            in_flight,
        })
    }

    /// A compressor without a thread: the caller gets the receiving end and
    /// decides when jobs run (with [`Compressor::run_detached`]).
    #[cfg(test)]
    pub(crate) fn detached(backlog: usize) -> (Compressor, Receiver<Job>) {
        let (tx, rx) = mpsc::sync_channel(backlog);
        let c = Compressor {
            tx: Some(tx),
            thread: None,
            in_flight: Arc::new(InFlight::default()),
        };
        (c, rx)
    }

    /// Runs the jobs of a detached compressor on a new worker thread.
    #[cfg(test)]
    pub(crate) fn run_detached(&mut self, rx: Receiver<Job>, shared: Arc<Shared>) {
        let in_flight = Arc::clone(&self.in_flight);
        self.thread = Some(thread::spawn(move || run(rx, &shared, &in_flight)));
    }

    /// Hands a job over without waiting. Returns `false` when the backlog is
    /// full (or the worker is gone): the file then stays uncompressed.
    pub(crate) fn try_submit(&self, job: Job) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        // Counted before sending, so the worker can never finish a job that
        // is not counted yet.
        self.in_flight.add();
        match tx.try_send(job) {
            Ok(()) => true,
            Err(_) => {
                self.in_flight.done();
                false
            }
        }
    }

    /// Jobs handed over and not finished yet.
    pub(crate) fn pending(&self) -> usize {
        self.in_flight.count()
    }

    /// Blocks until every job handed over so far is finished.
    pub(crate) fn wait_idle(&self) {
        self.in_flight.wait_idle();
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        // Closing the channel ends the worker's loop once the queue is empty.
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Lowers the priority of the calling thread. Failure is ignored: a worker
/// at normal priority is still correct.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // On Linux a thread id names one thread, so this changes the worker
    // only, not the whole process.
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICE);
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {
    // Elsewhere PRIO_PROCESS would lower the whole process; leave it alone.
    let _ = NICE;
}

fn run(rx: Receiver<Job>, shared: &Shared, in_flight: &InFlight) {
    for job in rx {
        // A panic in a codec must not leave waiters hanging or stop the
        // worker: the file stays uncompressed and the next job runs.
        let id = job.id;
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| process(&job, shared)));
        if outcome.is_err() {
            shared.backups().abandon_compression(id);
            shared.compress_failed(Path::new("?"), &io::Error::other("the compressor panicked"));
        }
        in_flight.done();
    }
}

fn process(job: &Job, shared: &Shared) {
    let Some(source) = shared.backups().begin_compression(job.id, job.compression) else {
        // Deleted by retention, or unreadable, before its turn came.
        return;
    };
    let result = compress(&source.file, &source.tmp, job.compression, source.modified);
    drop(source.file);
    if let Err(e) = result {
        let _ = fs::remove_file(&source.tmp);
        shared.backups().abandon_compression(job.id);
        shared.compress_failed(&source.path, &e);
        return;
    }
    let finished = shared
        .backups()
        .finish_compression(job.id, &source.tmp, job.compression);
    match finished {
        Ok(true) => {
            shared.counters.compressed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(false) => {}
        Err(e) => shared.compress_failed(&source.path, &e),
    }
}

/// Creates `dst` anew (`O_EXCL`, never through a symbolic link; a file
/// left there by an interrupted compression is removed first) with the
/// permissions of `src`.
fn create_like(src: &File, dst: &Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mode = src.metadata()?.permissions().mode() & 0o7777;
    match std::fs::remove_file(dst) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(super::O_NOFOLLOW)
        .open(dst)
}

/// Writes the compressed form of `src` to `dst` (created anew),
/// gives it the modification time of the original (so that age-based
/// retention sees when the records were written, not when they were
/// compressed), and puts it on disk before the original may be deleted.
pub(crate) fn compress(
    mut src: &File,
    dst: &Path,
    compression: Compression,
    modified: Option<SystemTime>,
) -> io::Result<()> {
    let out = BufWriter::with_capacity(128 * 1024, create_like(src, dst)?);
    let mut out = match compression {
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            io::copy(&mut src, &mut enc)?;
            enc.finish()?
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(out, 0)?;
            io::copy(&mut src, &mut enc)?;
            enc.finish()?
        }
        Compression::None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no compression configured",
            ))
        }
    };
    out.flush()?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    if let Some(t) = modified {
        file.set_modified(t)?;
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn compress_round_trips_and_keeps_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let src_path = dir.path().join("src");
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        fs::write(&src_path, &data).unwrap();
        let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        for c in [Compression::Gzip, Compression::Zstd] {
            let dst = dir.path().join(format!("out{}", c.extension()));
            let src = File::open(&src_path).unwrap();
            compress(&src, &dst, c, Some(when)).unwrap();
            let packed = fs::read(&dst).unwrap();
            let mut back = Vec::new();
            match c {
                Compression::Gzip => {
                    flate2::read::GzDecoder::new(&packed[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                _ => back = zstd::stream::decode_all(&packed[..]).unwrap(),
            }
            assert_eq!(back, data);
            assert_eq!(fs::metadata(&dst).unwrap().modified().unwrap(), when);
        }
        let src = File::open(&src_path).unwrap();
        let e = compress(&src, &dir.path().join("x"), Compression::None, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn full_backlog_refuses_without_waiting_and_idle_wait_returns() {
        let (c, rx) = Compressor::detached(1);
        let job = |id| Job {
            id,
            compression: Compression::Gzip,
        };
        assert!(c.try_submit(job(1)));
        assert!(!c.try_submit(job(2)));
        assert_eq!(*c.in_flight.count.lock().unwrap(), 1);
        drop(rx);
        assert!(!c.try_submit(job(3)));
        assert_eq!(*c.in_flight.count.lock().unwrap(), 1);
        c.in_flight.done();
        c.wait_idle();
    }
}
