//! The files of a log set on disk: which they are, in which order, and
//! their bytes, decompressed.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufRead, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::entry::{Entry, Splitter};
use super::follow::{Follower, Step};
use crate::sink::backup_files;

/// The active file and its backups (`app.log.3.gz`, `app.log.2`,
/// `app.log.1`, `app.log.2026-11-22_10-00-00.zst`, …), oldest first, as the
/// rolling file sink names and orders them: by index or stamp, never by
/// modification time; the active file last, if it exists. Any other file
/// beside the log (`app.log.bak`) is not part of the set.
///
/// While a backup is being compressed both `app.log.1` and `app.log.1.gz`
/// exist for a moment, with the same records: only the uncompressed one is
/// listed ([`open_decoded`] falls back to the compressed one if the other
/// is gone by then).
pub fn log_set(active: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = Vec::new();
    for path in backup_files(active)? {
        let twin = out
            .last()
            .is_some_and(|kept| kept.as_os_str() == plain_name(&path).as_os_str());
        if !twin {
            out.push(path);
        }
    }
    match fs::metadata(active) {
        Ok(m) if m.is_file() => out.push(active.to_path_buf()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(out)
}

/// Which codec a file's name asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    Plain,
    Gzip,
    Zstd,
}

pub(crate) fn codec_of(path: &Path) -> Codec {
    match path.extension().map(|e| e.as_bytes()) {
        Some(b"gz") => Codec::Gzip,
        Some(b"zst") => Codec::Zstd,
        _ => Codec::Plain,
    }
}

/// `path` without a `.gz` or `.zst` extension.
fn plain_name(path: &Path) -> PathBuf {
    match codec_of(path) {
        Codec::Plain => path.to_path_buf(),
        _ => path.with_extension(""),
    }
}

/// A reader of the decompressed bytes of an opened file.
pub(crate) fn decoder(file: File, codec: Codec) -> io::Result<Box<dyn Read + Send>> {
    Ok(match codec {
        Codec::Plain => Box::new(file),
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(file)?),
    })
}

/// Opens a member of a log set for reading its decompressed bytes. If an
/// uncompressed backup is gone (compressed meanwhile), its `.gz` or `.zst`
/// is opened instead. Returns the path actually opened.
pub fn open_decoded(path: &Path) -> io::Result<(PathBuf, Box<dyn Read + Send>)> {
    let (path, file) = open_member(path)?;
    let codec = codec_of(&path);
    Ok((path, decoder(file, codec)?))
}

/// Opens `path`, or its compressed successor when it was an uncompressed
/// backup that compression replaced.
pub(crate) fn open_member(path: &Path) -> io::Result<(PathBuf, File)> {
    match File::open(path) {
        Ok(f) => Ok((path.to_path_buf(), f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound && codec_of(path) == Codec::Plain => {
            for ext in [".gz", ".zst"] {
                let mut name = OsString::from(path.as_os_str());
                name.push(ext);
                let packed = PathBuf::from(name);
                match File::open(&packed) {
                    Ok(f) => return Ok((packed, f)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// The contents of a log file, decompressed according to its extension
/// (`.gz`, `.zst`).
pub fn read_decompressed(path: &Path) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    decoder(File::open(path)?, codec_of(path))?.read_to_end(&mut out)?;
    Ok(out)
}

/// Reads a file's lines to its end into `splitter`, and says on the
/// splitter's warnings where and why reading stopped early (a truncated or
/// corrupt compressed file). Returns the bytes read.
pub(crate) fn read_lines(
    reader: &mut dyn BufRead,
    splitter: &mut Splitter,
    out: &mut Vec<Entry>,
    mut seen: impl FnMut(&[u8]),
) -> u64 {
    let mut line = Vec::new();
    let mut total = 0u64;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return total,
            Ok(n) => {
                total += n as u64;
                seen(&line);
                if line.last() != Some(&b'\n') {
                    splitter.warn("the file ends in the middle of a line");
                }
                splitter.line(&line, out);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if !line.is_empty() {
                    splitter.warn("the file ends in the middle of a line");
                    splitter.line(&line, out);
                }
                splitter.warn(format_args!(
                    "cannot read past byte {total} of its content: {e} \
                     (a truncated or corrupt file); the rest of the set is still read"
                ));
                return total;
            }
        }
    }
}

/// Reads a whole log set, oldest record first, one file at a time.
///
/// The set may be written and rotated meanwhile: each next file is found
/// the way a [`Follower`] finds it (after the file read last, in a view of
/// the directory that held still while the file was opened), so a
/// rotation shifting the backups' names neither repeats nor skips one.
/// The active file is read to its end as it is when reached.
///
/// Problems with the content (a truncated compressed file, a line that is
/// not a record, invalid UTF-8) do not stop the reading: they are kept as
/// messages for [`take_warnings`](SetReader::take_warnings).
#[derive(Debug)]
pub struct SetReader {
    follower: Follower,
    ready: std::collections::VecDeque<Entry>,
    done: bool,
    warnings: Vec<String>,
    /// The last timestamp seen, lent to records that carry none so that
    /// a merge keeps them beside their neighbours.
    last_ts: i64,
}

impl SetReader {
    /// The set whose active file is `active`.
    ///
    /// # Errors
    ///
    /// The directory cannot be read, or holds neither the file nor a
    /// backup of it (`NotFound`).
    pub fn open(active: &Path) -> io::Result<SetReader> {
        if log_set(active)?.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no such file, and no backups of it",
            ));
        }
        Ok(SetReader {
            follower: Follower::new(active),
            ready: Default::default(),
            done: false,
            warnings: Vec::new(),
            last_ts: i64::MIN,
        })
    }

    /// Messages about the content read since the last call, for stderr.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Reads the next file; `false` once the set is read.
    fn read_next_file(&mut self) -> bool {
        if self.done {
            return false;
        }
        let mut out = Vec::new();
        let step = self.follower.step(&mut out).and_then(|step| {
            if step == Step::Active {
                self.follower.end(&mut out)?;
            }
            Ok(step)
        });
        match step {
            Ok(Step::Backup) => {}
            Ok(Step::Active | Step::Idle) => self.done = true,
            Ok(Step::Unsettled) => {
                self.warnings.push(format!(
                    "{}: the set kept changing while being listed; stopped reading it",
                    self.follower.path().display()
                ));
                self.done = true;
            }
            Err(e) => {
                self.warnings.push(format!(
                    "{}: cannot read on: {e}",
                    self.follower.path().display()
                ));
                self.done = true;
            }
        }
        self.warnings.extend(self.follower.take_warnings());
        for mut e in out {
            self.last_ts = lend_ts(&mut e, self.last_ts);
            self.ready.push_back(e);
        }
        true
    }
}

/// Gives a record without a timestamp the one before it (for merging
/// only: `ts_text` stays empty); returns the timestamp to lend next.
pub(crate) fn lend_ts(e: &mut Entry, last: i64) -> i64 {
    match e.ts {
        Some(ts) => ts,
        None => {
            e.ts = Some(last);
            last
        }
    }
}

impl Iterator for SetReader {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            if !self.read_next_file() {
                return None;
            }
        }
    }
}

/// Merges several streams of records by timestamp: each stream keeps its
/// own order, and between streams the earlier timestamp goes first, the
/// earlier stream on a tie.
#[derive(Debug)]
pub struct Merge<I: Iterator<Item = Entry>> {
    heads: Vec<(Option<Entry>, I)>,
}

impl<I: Iterator<Item = Entry>> Merge<I> {
    /// Merges `streams`, in this order of precedence on ties.
    pub fn new(streams: Vec<I>) -> Self {
        Merge {
            heads: streams.into_iter().map(|s| (None, s)).collect(),
        }
    }

    /// The streams, to collect their warnings.
    pub fn streams_mut(&mut self) -> impl Iterator<Item = &mut I> {
        self.heads.iter_mut().map(|(_, s)| s)
    }
}

impl<I: Iterator<Item = Entry>> Iterator for Merge<I> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        let mut best: Option<(usize, i64)> = None;
        for (k, (head, stream)) in self.heads.iter_mut().enumerate() {
            if head.is_none() {
                *head = stream.next();
            }
            if let Some(e) = head {
                let ts = e.ts.unwrap_or(i64::MIN);
                if best.is_none_or(|(_, b)| ts < b) {
                    best = Some((k, ts));
                }
            }
        }
        let (k, _) = best?;
        self.heads[k].0.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twins_of_a_compression_in_progress_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let active = dir.path().join("app.log");
        for n in [
            "app.log",
            "app.log.1",
            "app.log.2",
            "app.log.2.gz",
            "app.log.x",
        ] {
            fs::write(dir.path().join(n), n).unwrap();
        }
        let names: Vec<String> = log_set(&active)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["app.log.2", "app.log.1", "app.log"]);
        // Compressed meanwhile: the compressed file is read instead.
        fs::remove_file(dir.path().join("app.log.2")).unwrap();
        let (opened, _) = open_decoded(&dir.path().join("app.log.2")).unwrap();
        assert_eq!(opened, dir.path().join("app.log.2.gz"));
    }

    fn entry(ts: i64, text: &str) -> Entry {
        Entry {
            ts: Some(ts),
            message: text.into(),
            ..Entry::default()
        }
    }

    #[test]
    fn merge_keeps_each_stream_in_order_and_ties_in_stream_order() {
        let a = vec![entry(1, "a1"), entry(3, "a3"), entry(2, "a2-late")];
        let b = vec![entry(1, "b1"), entry(2, "b2"), entry(5, "b5")];
        let got: Vec<String> = Merge::new(vec![a.into_iter(), b.into_iter()])
            .map(|e| e.message)
            .collect();
        assert_eq!(got, ["a1", "b1", "b2", "a3", "a2-late", "b5"]);
    }
}
