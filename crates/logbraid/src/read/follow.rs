//! Following a log set as it is written and rotated.
//!
//! `tail -F` reopens a path when it names another file, and so skips every
//! file that was rotated away between two of its looks. A [`Follower`]
//! knows the rolling file sink's rotation instead:
//!
//! - it reads the active file through its open descriptor, which stays
//!   valid when the file is renamed to a backup and even when compression
//!   replaces that backup (the descriptor keeps the old file readable);
//! - when the path names another file, it reads the old one to its end
//!   (the sink writes everything pending before it renames), then looks
//!   for the backups written since: those after the old file in the
//!   sink's order, the old file found by device and inode or, once
//!   compressed, by its length and first bytes;
//! - it takes its view of the directory only when two listings around the
//!   opening of the files agree and the active file stayed the same, so a
//!   rotation or a compression in the middle is noticed and the view is
//!   taken again.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::entry::{Entry, Splitter};
use super::set::{codec_of, decoder, lend_ts, log_set, open_member, read_lines, Codec};

/// Bytes kept of a file's start to recognise it once compressed.
const PREFIX: usize = 4096;

/// Views of the directory tried before giving up for this poll.
const ATTEMPTS: usize = 100;

/// Reads a log set, then what is written to it, across rotations: every
/// record once, in order. Call [`poll`](Follower::poll) whenever it suits
/// (every few tens of milliseconds, say); a missing file is waited for.
#[derive(Debug)]
pub struct Follower {
    active: PathBuf,
    cur: Option<Current>,
    /// The file read last, to find the backups written after it.
    last: Option<Fingerprint>,
    /// Whether the set was ever seen: before, every backup is new.
    started: bool,
    last_ts: i64,
    warnings: Vec<String>,
}

/// The file being followed.
#[derive(Debug)]
struct Current {
    file: File,
    fp: Fingerprint,
    /// Bytes after the last newline, until the line is complete.
    partial: Vec<u8>,
    splitter: Splitter,
}

/// What identifies a file that was read: its device and inode while it is
/// not compressed, its length and first bytes once it is.
#[derive(Debug, Clone)]
struct Fingerprint {
    id: (u64, u64),
    len: u64,
    prefix: Vec<u8>,
    modified: Option<SystemTime>,
    /// The size of the file on disk (compressed, for a compressed file).
    disk_len: u64,
}

impl Fingerprint {
    fn new(m: &fs::Metadata) -> Self {
        Fingerprint {
            id: (m.dev(), m.ino()),
            len: 0,
            prefix: Vec::new(),
            modified: None,
            disk_len: 0,
        }
    }

    fn add(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.prefix.len() < PREFIX {
            let take = (PREFIX - self.prefix.len()).min(bytes.len());
            self.prefix.extend_from_slice(&bytes[..take]);
        }
    }

    /// Whether the file at `path` is the one read, by device and inode
    /// (true until it is compressed, whatever it was renamed to), size and
    /// first bytes: once the file read is deleted, a new file may get its
    /// inode, and files of like records compress to the same size.
    fn is_at(&self, path: &Path) -> bool {
        let Ok(file) = File::open(path) else {
            return false;
        };
        let same = file
            .metadata()
            .is_ok_and(|m| (m.dev(), m.ino()) == self.id && m.len() == self.disk_len);
        if !same {
            return false;
        }
        let mut start = Vec::with_capacity(self.prefix.len());
        decoder(file, codec_of(path)).is_ok_and(|r| {
            r.take(self.prefix.len() as u64)
                .read_to_end(&mut start)
                .is_ok()
        }) && start == self.prefix
    }

    /// Notes what is known once the file is read to its end.
    fn done(&mut self, file: &File) {
        let m = file.metadata().ok();
        self.modified = m.as_ref().and_then(|m| m.modified().ok());
        self.disk_len = m.map_or(0, |m| m.len());
    }

    /// Whether the file at `path` holds what was read: its compressed
    /// copy, say.
    fn matches(&self, path: &Path) -> bool {
        // Compressed since it was listed: its compressed file then.
        let Ok((path, file)) = open_member(path) else {
            return false;
        };
        let path = path.as_path();
        let Ok(m) = file.metadata() else {
            return false;
        };
        // Not by inode: the file read may be gone and its inode reused.
        let codec = codec_of(path);
        if codec == Codec::Plain && m.len() != self.len {
            return false;
        }
        let Ok(reader) = decoder(file, codec) else {
            return false;
        };
        let mut start = Vec::with_capacity(self.prefix.len());
        let mut reader = reader;
        if (&mut reader)
            .take(self.prefix.len() as u64)
            .read_to_end(&mut start)
            .is_err()
            || start != self.prefix
        {
            return false;
        }
        io::copy(&mut reader, &mut io::sink()).ok() == Some(self.len - start.len() as u64)
    }
}

impl Current {
    fn open(path: &Path, file: File) -> io::Result<Current> {
        let fp = Fingerprint::new(&file.metadata()?);
        Ok(Current {
            file,
            fp,
            partial: Vec::new(),
            splitter: Splitter::new(path.display().to_string()),
        })
    }

    /// Reads what was appended since the last call; complete lines go to
    /// the splitter.
    fn read_new(&mut self, out: &mut Vec<Entry>) -> io::Result<()> {
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            let n = match self.file.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let bytes = &chunk[..n];
            self.fp.add(bytes);
            let mut rest = bytes;
            while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
                if self.partial.is_empty() {
                    self.splitter.line(&rest[..=nl], out);
                } else {
                    self.partial.extend_from_slice(&rest[..=nl]);
                    let line = std::mem::take(&mut self.partial);
                    self.splitter.line(&line, out);
                }
                rest = &rest[nl + 1..];
            }
            self.partial.extend_from_slice(rest);
        }
    }

    /// The file will not grow any more: reads its end and hands over
    /// everything, a last line without its newline included.
    fn finish(&mut self, out: &mut Vec<Entry>) -> io::Result<Fingerprint> {
        let read = self.read_new(out);
        if !self.partial.is_empty() {
            self.splitter.warn("the file ends in the middle of a line");
            let line = std::mem::take(&mut self.partial);
            self.splitter.line(&line, out);
        }
        self.splitter.finish(out);
        self.fp.done(&self.file);
        read.map(|()| self.fp.clone())
    }
}

/// The next file of the set, opened while the directory held still.
enum Next {
    Backup(PathBuf, File),
    Active(PathBuf, File),
    /// Nothing after the file read last.
    Nothing,
    /// The directory kept changing while it was looked at.
    Unsettled,
}

/// What one step of reading did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A backup was read whole.
    Backup,
    /// The active file is open and read to its current end.
    Active,
    /// Nothing more to read for now.
    Idle,
    /// The directory kept changing while it was looked at: nothing read.
    Unsettled,
}

impl Follower {
    /// Follows the set whose active file is `active` (which need not exist
    /// yet). The first [`poll`](Follower::poll) reads what is already there.
    pub fn new(active: impl Into<PathBuf>) -> Follower {
        Follower {
            active: active.into(),
            cur: None,
            last: None,
            started: false,
            last_ts: i64::MIN,
            warnings: Vec::new(),
        }
    }

    /// The active file of the set.
    pub fn path(&self) -> &Path {
        &self.active
    }

    /// Messages about the content read since the last call, for stderr.
    pub fn take_warnings(&mut self) -> Vec<String> {
        let mut w = std::mem::take(&mut self.warnings);
        if let Some(cur) = &mut self.cur {
            w.extend(cur.splitter.take_warnings());
        }
        w
    }

    /// Appends to `out` every record written since the last call, oldest
    /// first. A record still being written stays for the next call.
    ///
    /// # Errors
    ///
    /// Reading the directory or an open file failed. The follower stays
    /// usable: the next call goes on from where this one stopped.
    pub fn poll(&mut self, out: &mut Vec<Entry>) -> io::Result<()> {
        let first = out.len();
        let result = self.poll_inner(out);
        for e in &mut out[first..] {
            self.last_ts = lend_ts(e, self.last_ts);
        }
        result
    }

    fn poll_inner(&mut self, out: &mut Vec<Entry>) -> io::Result<()> {
        while self.step(out)? == Step::Backup {}
        Ok(())
    }

    /// Reads on by one file: what was appended to the file being
    /// followed, or, once it was rotated away, the end of it and then the
    /// next file of the set.
    pub(crate) fn step(&mut self, out: &mut Vec<Entry>) -> io::Result<Step> {
        if let Some(cur) = &mut self.cur {
            cur.read_new(out)?;
            if active_id(&self.active)? == Some(cur.fp.id) {
                // The sink writes whole records: at the end of what is
                // written, the last record is complete.
                if cur.partial.is_empty() {
                    cur.splitter.flush(out);
                }
                return Ok(Step::Active);
            }
            // Rotated (or removed): nothing more is written to it.
            let fp = cur.finish(out)?;
            self.warnings.extend(cur.splitter.take_warnings());
            self.last = Some(fp);
            self.cur = None;
        }
        match self.next_file()? {
            Next::Backup(path, file) => {
                let mut cur = Current::open(&path, file)?;
                let reader = decoder(cur.file.try_clone()?, codec_of(&path))?;
                let fp = &mut cur.fp;
                read_lines(
                    &mut BufReader::new(reader),
                    &mut cur.splitter,
                    out,
                    |line| fp.add(line),
                );
                cur.splitter.finish(out);
                cur.fp.done(&cur.file);
                self.warnings.extend(cur.splitter.take_warnings());
                self.last = Some(cur.fp);
                Ok(Step::Backup)
            }
            Next::Active(path, file) => {
                let mut cur = Current::open(&path, file)?;
                cur.read_new(out)?;
                if cur.partial.is_empty() {
                    cur.splitter.flush(out);
                }
                self.cur = Some(cur);
                Ok(Step::Active)
            }
            Next::Nothing => Ok(Step::Idle),
            Next::Unsettled => Ok(Step::Unsettled),
        }
    }

    /// Reads the active file to its end, a last line without its newline
    /// included (with a warning), as a reader that does not follow ends.
    pub(crate) fn end(&mut self, out: &mut Vec<Entry>) -> io::Result<()> {
        if let Some(cur) = &mut self.cur {
            cur.finish(out)?;
            self.warnings.extend(cur.splitter.take_warnings());
        }
        Ok(())
    }

    /// Stops following: hands over the record still open. A line still
    /// being written is left out.
    pub fn finish(&mut self, out: &mut Vec<Entry>) {
        if let Some(cur) = &mut self.cur {
            if let Err(e) = cur.read_new(out) {
                cur.splitter.warn(format_args!("cannot read on: {e}"));
            }
            cur.splitter.finish(out);
        }
    }

    /// The next file to read: the oldest backup written after the file
    /// read last (the oldest of all before anything was read), else the
    /// active file; opened while the directory held still.
    fn next_file(&mut self) -> io::Result<Next> {
        'attempt: for _ in 0..ATTEMPTS {
            let before = active_id(&self.active)?;
            let listed = self.backups()?;
            if listed.is_empty() && before.is_none() {
                return Ok(Next::Nothing);
            }
            let start = match self.after_last(&listed) {
                Some(k) => k,
                // Not found while the directory changes: look again.
                None if self.backups()? != listed => continue 'attempt,
                None => self.after_lost(&listed),
            };
            let next = match listed.get(start) {
                Some(path) => match open_member(path) {
                    Ok((path, file)) => Next::Backup(path, file),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue 'attempt,
                    Err(e) => return Err(e),
                },
                None => match File::open(&self.active) {
                    Ok(file) => {
                        let m = file.metadata()?;
                        if Some((m.dev(), m.ino())) != before {
                            continue 'attempt;
                        }
                        Next::Active(self.active.clone(), file)
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound && before.is_none() => {
                        Next::Nothing
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue 'attempt,
                    Err(e) => return Err(e),
                },
            };
            if active_id(&self.active)? == before && self.backups()? == listed {
                self.started = true;
                return Ok(next);
            }
        }
        Ok(Next::Unsettled)
    }

    /// The backups, oldest first; none while the directory is missing.
    fn backups(&self) -> io::Result<Vec<PathBuf>> {
        match log_set(&self.active) {
            Ok(mut set) => {
                if set.last() == Some(&self.active) {
                    set.pop();
                }
                Ok(set)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Where the backups written after the file read last start in
    /// `listed`; `None` if that file is not there.
    fn after_last(&self, listed: &[PathBuf]) -> Option<usize> {
        match &self.last {
            None if self.started => Some(listed.len()),
            None => Some(0),
            // Device and inode first: one `stat` each. Only a file
            // compressed since it was read needs decoding, and it is among
            // the newest.
            Some(last) => listed
                .iter()
                .rposition(|p| last.is_at(p))
                .or_else(|| listed.iter().rposition(|p| last.matches(p)))
                .map(|k| k + 1),
        }
    }

    /// The file read last is gone (deleted by retention, or removed from
    /// outside): the backups modified after it are the newer ones.
    fn after_lost(&mut self, listed: &[PathBuf]) -> usize {
        let lost = format!(
            "{}: the file read last is no longer in the set; \
             going on with the backups modified after it",
            self.active.display()
        );
        if self.warnings.last() != Some(&lost) {
            self.warnings.push(lost);
        }
        let modified = self.last.as_ref().and_then(|l| l.modified);
        listed
            .iter()
            .position(|p| {
                fs::metadata(p)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| modified.is_some_and(|l| t > l))
            })
            .unwrap_or(listed.len())
    }
}

/// Device and inode of the file at `path`, `None` if there is none.
fn active_id(path: &Path) -> io::Result<Option<(u64, u64)>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some((m.dev(), m.ino()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file that took over the inode of the file read last (deleted once
    /// compressed), with the same size, is not taken for it.
    #[test]
    fn a_reused_inode_is_not_the_file_read() {
        let dir = tempfile::tempdir().unwrap();
        let newer = dir.path().join("app.log.1");
        fs::write(&newer, "2026-11-22T10:00:01Z INFO  [1/m] a: f 00002\n").unwrap();
        let m = fs::metadata(&newer).unwrap();
        let mut read = Fingerprint::new(&m);
        read.add(b"2026-11-22T10:00:00Z INFO  [1/m] a: f 00000\n");
        read.disk_len = m.len();
        assert_eq!(read.len, m.len());
        assert!(!read.is_at(&newer));
        assert!(!read.matches(&newer));

        // Its compressed copy, under whatever name, is.
        let packed = dir.path().join("app.log.2.gz");
        let mut gz = flate2::write::GzEncoder::new(
            File::create(&packed).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(b"2026-11-22T10:00:00Z INFO  [1/m] a: f 00000\n")
            .unwrap();
        gz.finish().unwrap();
        assert!(read.matches(&packed));
        assert!(!read.is_at(&packed));
    }
}
