//! The checkpoint that makes acknowledged records exactly-once across a
//! collector crash.
//!
//! A checkpoint says, at one instant between two writes: how far each
//! client's records are written (`client` lines, from [`Dedup::iter`]) and
//! how long each output file was (`file` lines: path, device, inode,
//! length). It is saved after every flush that precedes acknowledgements,
//! so every byte a file holds up to its recorded length belongs to a record
//! the recorded `written` numbers count (or to a record that has no
//! acknowledgement at all). Bytes past the recorded length were written
//! after it: their clients were not acknowledged and will resend them, so
//! at start-up [`recover`] cuts them off and restores the numbers, and the
//! resent records are written once.
//!
//! The format is text, one entry a line, with client ids and paths in hex
//! so no byte of either can break it:
//!
//! ```text
//! logbraid-collector-state 1
//! client <epoch> <written> <client id, hex>
//! file <device> <inode> <length> <path, hex>
//! end
//! ```
//!
//! It is written to a temporary file in the same directory and renamed over
//! the old one, so a crash leaves the old checkpoint or the new one, never
//! a mix; the `end` line catches a file cut short by other means.
//!
//! # Incrementally: a journal, compacted
//!
//! Rewriting every client each round would cost each round the whole
//! table. So the state file is a *snapshot*, and each round appends to a
//! *journal* beside it (`<state>.journal`) only what changed: a block of
//! `client` lines for the clients whose numbers moved, `forget <client id,
//! hex>` for the ids the table let go to make room, the `file` lines of
//! every file as it stands now, and `end`. Recovery reads the snapshot,
//! then applies the journal's blocks in order (a `client` line as
//! [`Dedup::restore`] does, the `file` lines of a block replacing the
//! files before them). A block that was cut short (no `end`: the
//! collector died while appending it) is ignored: its round was not
//! acknowledged.
//!
//! Once the journal has grown as large as the snapshot (and at least
//! 64 KiB), the next save *compacts*: a new snapshot of every client is
//! written (temporary file, synced under `--sync data`, renamed) and the
//! journal started again. The snapshot names its generation (a line
//! `generation <n>` after the first) and so does the journal's first line
//! (`logbraid-collector-journal 1 <n>`): a journal of another generation
//! (the collector died between the new snapshot and the new journal) is
//! already in the snapshot and is ignored. What the state file holds is
//! kept by the output thread in its own copy, so neither a save nor a
//! compaction looks at the table the connections use.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use logbraid::wire::Dedup;

use super::OutputError;

/// A client's epoch and highest written sequence number.
type Numbers = (u64, u64);

const MAGIC: &str = "logbraid-collector-state 1";
const JOURNAL_MAGIC: &str = "logbraid-collector-journal 1";
const END: &str = "end";

/// A journal smaller than this is never compacted: a small table is
/// cheaper to append to than to rewrite.
const JOURNAL_MIN: u64 = 64 << 10;

/// Where one output file stood at a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Pos {
    /// The active file, absolute.
    pub(super) path: PathBuf,
    pub(super) dev: u64,
    pub(super) ino: u64,
    /// Bytes flushed to it.
    pub(super) len: u64,
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The saved checkpoint and what it holds, so that each round appends
/// only what changed, and a file opened between two rounds can be added.
#[derive(Debug)]
pub(super) struct Checkpoint {
    path: PathBuf,
    tmp: PathBuf,
    journal_path: PathBuf,
    /// The journal of the current generation, once a snapshot was written.
    journal: Option<fs::File>,
    journal_bytes: u64,
    snapshot_bytes: u64,
    generation: u64,
    /// What the state on disk says of each client: epoch, highest written.
    clients: HashMap<Box<str>, Numbers>,
    /// The files of the last save.
    files: Vec<Pos>,
    paths: HashSet<PathBuf>,
    saves: u64,
    compactions: u64,
    /// Whether a checkpoint is fsynced (file and directory) before it
    /// counts: with `--sync data`, where the log files are synced too.
    /// Without, the checkpoint protects against the collector process
    /// dying (SIGKILL, OOM killer, panic), which leaves the page cache
    /// intact; syncing it alone would not survive a power loss.
    sync: bool,
}

/// The journal beside a state file.
fn journal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// A `file` line.
fn file_line(out: &mut String, p: &Pos) {
    let _ = writeln!(
        out,
        "file {} {} {} {}",
        p.dev,
        p.ino,
        p.len,
        hex(p.path.as_os_str().as_bytes())
    );
}

impl Checkpoint {
    pub(super) fn new(path: &Path, sync: bool) -> Checkpoint {
        let mut name = OsString::from(".");
        name.push(path.file_name().unwrap_or(path.as_os_str()));
        name.push(".tmp");
        Checkpoint {
            path: path.to_path_buf(),
            tmp: path.with_file_name(name),
            journal_path: journal_path(path),
            journal: None,
            journal_bytes: 0,
            snapshot_bytes: 0,
            generation: 0,
            clients: HashMap::new(),
            files: Vec::new(),
            paths: HashSet::new(),
            saves: 0,
            compactions: 0,
            sync,
        }
    }

    /// The state file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Checkpoints saved so far.
    pub(super) fn saves(&self) -> u64 {
        self.saves
    }

    /// Whether the last checkpoint records this file.
    pub(super) fn covers(&self, path: &Path) -> bool {
        self.paths.contains(path)
    }

    /// The generation a recovered state file had: the next snapshot is
    /// the one after it.
    pub(super) fn follow(&mut self, generation: u64) {
        self.generation = generation;
    }

    /// Saves a new checkpoint: these clients changed (their epoch and
    /// highest written), these ids are forgotten, the files are these.
    /// Appends to the journal, or compacts.
    pub(super) fn save<'a>(
        &mut self,
        changes: impl Iterator<Item = (&'a str, u64, u64)>,
        forgotten: &[Arc<str>],
        files: Vec<Pos>,
    ) -> io::Result<()> {
        // Applied to the copy first, undone if the write fails.
        let mut undo: Vec<(Box<str>, Option<Numbers>)> = Vec::new();
        let mut lines = String::new();
        for (id, epoch, written) in changes {
            let old = self.clients.insert(id.into(), (epoch, written));
            undo.push((id.into(), old));
            let _ = writeln!(lines, "client {epoch} {written} {}", hex(id.as_bytes()));
        }
        for id in forgotten {
            if let Some(old) = self.clients.remove(&**id) {
                undo.push((Box::from(&**id), Some(old)));
                let _ = writeln!(lines, "forget {}", hex(id.as_bytes()));
            }
        }
        let compact = self.journal.is_none()
            || self.journal_bytes >= self.snapshot_bytes.max(JOURNAL_MIN)
            || logbraid::fault::forced("state::compact");
        let r = if compact {
            self.compact(&files)
        } else {
            self.append(lines, &files)
        };
        if let Err(e) = r {
            for (id, old) in undo.into_iter().rev() {
                match old {
                    Some(v) => self.clients.insert(id, v),
                    None => self.clients.remove(&id),
                };
            }
            return Err(e);
        }
        self.paths = files.iter().map(|p| p.path.clone()).collect();
        self.files = files;
        self.saves += 1;
        Ok(())
    }

    /// Saves the last checkpoint again with one more file, before anything
    /// is written to that file: its bytes so far all predate the
    /// checkpoint.
    pub(super) fn add_file(&mut self, pos: Pos) -> io::Result<()> {
        let mut files = self.files.clone();
        files.retain(|p| p.path != pos.path);
        files.push(pos);
        self.save(std::iter::empty(), &[], files)
    }

    /// Appends one block to the journal: `lines`, the files, `end`.
    fn append(&mut self, mut lines: String, files: &[Pos]) -> io::Result<()> {
        for p in files {
            file_line(&mut lines, p);
        }
        lines.push_str(END);
        lines.push('\n');
        let Some(journal) = self.journal.as_mut() else {
            return Err(io::Error::other("no journal"));
        };
        logbraid::fault::point("state::write")?;
        io::Write::write_all(journal, lines.as_bytes())?;
        if self.sync {
            journal.sync_data()?;
        }
        self.journal_bytes += lines.len() as u64;
        Ok(())
    }

    /// Writes a snapshot of every client and these files, of the next
    /// generation, and starts its journal.
    fn compact(&mut self, files: &[Pos]) -> io::Result<()> {
        let generation = self.generation + 1;
        let mut text = String::with_capacity(self.clients.len() * 64 + files.len() * 96 + 64);
        text.push_str(MAGIC);
        let _ = write!(text, "\ngeneration {generation}\n");
        for (id, (epoch, written)) in &self.clients {
            let _ = writeln!(text, "client {epoch} {written} {}", hex(id.as_bytes()));
        }
        for p in files {
            file_line(&mut text, p);
        }
        text.push_str(END);
        text.push('\n');
        self.write(&text)?;
        // The journal goes with the snapshot just renamed into place; a
        // crash before it is started leaves the old one, of the old
        // generation, which recovery then ignores.
        self.journal = None;
        let mut journal = create_private(&self.journal_path)?;
        let header = format!("{JOURNAL_MAGIC} {generation}\n");
        io::Write::write_all(&mut journal, header.as_bytes())?;
        if self.sync {
            journal.sync_data()?;
            self.sync_dir()?;
        }
        self.journal = Some(journal);
        self.journal_bytes = header.len() as u64;
        self.snapshot_bytes = text.len() as u64;
        self.generation = generation;
        self.compactions += 1;
        Ok(())
    }

    /// Compactions so far.
    #[cfg(test)]
    fn compactions(&self) -> u64 {
        self.compactions
    }

    fn sync_dir(&self) -> io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    fn write(&mut self, text: &str) -> io::Result<()> {
        if let Some(dir) = self.tmp.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                // Routed files live below a directory nothing has made yet.
                fs::create_dir_all(dir)?;
            }
        }
        logbraid::fault::point("state::write")?;
        {
            let mut f = create_private(&self.tmp)?;
            io::Write::write_all(&mut f, text.as_bytes())?;
            if self.sync {
                f.sync_data()?;
            }
        }
        logbraid::fault::point("state::rename")?;
        fs::rename(&self.tmp, &self.path)?;
        if self.sync {
            self.sync_dir()?;
        }
        Ok(())
    }
}

/// What a state file holds, or a journal block.
#[derive(Debug, Default, PartialEq, Eq)]
struct Saved {
    generation: u64,
    /// In order: a client's numbers, or `None` for an id forgotten.
    clients: Vec<(String, Option<Numbers>)>,
    files: Vec<Pos>,
}

fn parse(text: &str) -> Result<Saved, String> {
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(format!("the first line is not {MAGIC:?}"));
    }
    let mut saved = Saved::default();
    let mut ended = false;
    for (n, line) in lines.enumerate() {
        if ended {
            return Err(format!("line {}: text after the end", n + 2));
        }
        if line == END {
            ended = true;
            continue;
        }
        if let Some(g) = line.strip_prefix("generation ").filter(|_| n == 0) {
            saved.generation = g
                .parse()
                .map_err(|_| format!("line {}: bad number", n + 2))?;
            continue;
        }
        entry(line, n + 2, &mut saved)?;
    }
    if !ended {
        return Err("the file is cut short (no end line)".to_string());
    }
    Ok(saved)
}

/// Reads one `client`, `forget` or `file` line (line number `at`) into
/// `saved`.
fn entry(line: &str, at: usize, saved: &mut Saved) -> Result<(), String> {
    let at = |what: &str| format!("line {at}: {what}");
    let num = |s: &str| s.parse::<u64>().map_err(|_| at("bad number"));
    let id = |s: &str| {
        unhex(s)
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| at("bad client id"))
    };
    let f: Vec<&str> = line.split(' ').collect();
    match f.as_slice() {
        ["client", epoch, written, hex_id] => {
            let numbers = (num(epoch)?, num(written)?);
            saved.clients.push((id(hex_id)?, Some(numbers)));
        }
        ["forget", hex_id] => saved.clients.push((id(hex_id)?, None)),
        ["file", dev, ino, len, path] => {
            let path = unhex(path)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| at("bad path"))?;
            saved.files.push(Pos {
                path: PathBuf::from(OsString::from_vec(path)),
                dev: num(dev)?,
                ino: num(ino)?,
                len: num(len)?,
            });
        }
        _ => return Err(at("not a state entry")),
    }
    Ok(())
}

/// What a journal adds to the snapshot of its generation.
#[derive(Debug, Default, PartialEq, Eq)]
struct Journal {
    /// Client changes of every complete block, in order.
    clients: Vec<(String, Option<Numbers>)>,
    /// The files of the last complete block, if any.
    files: Option<Vec<Pos>>,
    /// A last block was cut short, and ignored.
    torn: bool,
}

/// Reads a journal; `None` when it is of another generation than the
/// snapshot's (already in it).
fn parse_journal(text: &str, generation: u64) -> Result<Option<Journal>, String> {
    let mut lines = text.split_inclusive('\n');
    let header = lines.next().unwrap_or("");
    let Some(g) = header
        .strip_suffix('\n')
        .and_then(|h| h.strip_prefix(JOURNAL_MAGIC))
        .and_then(|g| g.strip_prefix(' '))
    else {
        return Err(format!("the journal's first line is not {JOURNAL_MAGIC:?}"));
    };
    if g.parse::<u64>() != Ok(generation) {
        return Ok(None);
    }
    let mut journal = Journal::default();
    let mut block = Saved::default();
    let mut open = false;
    for (n, line) in lines.enumerate() {
        let Some(line) = line.strip_suffix('\n') else {
            // The last line, unfinished: its block was cut short.
            break;
        };
        open = true;
        if line == END {
            let b = std::mem::take(&mut block);
            journal.clients.extend(b.clients);
            journal.files = Some(b.files);
            open = false;
            continue;
        }
        entry(line, n + 2, &mut block).map_err(|e| format!("journal {e}"))?;
    }
    journal.torn = open || !text.ends_with('\n');
    Ok(Some(journal))
}

/// Takes the lock that makes this collector the only one using the state
/// file `path` (and so its log files): an exclusive `flock` on
/// `<path>.lock`, which holds the owner's pid. Held while the returned
/// file is open; the system releases it when the process ends, however it
/// ends.
pub(super) fn lock(path: &Path) -> Result<fs::File, OutputError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let bad = |e: io::Error| OutputError::State {
        path: lock_path.clone(),
        reason: format!("cannot lock: {e}"),
    };
    if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(bad)?;
    }
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(logbraid::sink::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(bad)?;
    use rustix::fs::{flock, FlockOperation};
    if let Err(e) = flock(&f, FlockOperation::NonBlockingLockExclusive) {
        if e != rustix::io::Errno::WOULDBLOCK {
            return Err(bad(e.into()));
        }
        let pid = fs::read_to_string(&lock_path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        return Err(OutputError::Locked {
            path: path.to_path_buf(),
            pid,
        });
    }
    f.set_len(0).map_err(bad)?;
    io::Write::write_all(&mut f, format!("{}\n", std::process::id()).as_bytes()).map_err(bad)?;
    Ok(f)
}

/// Reads the state file, if there is one: restores the deduplication
/// table and cuts every recorded file back to its recorded length.
///
/// A state file that is empty, cut short or not a state file (a power
/// loss between its write and the disk, a stray edit) is not a reason to
/// stop collecting: it is moved aside to `<path>.damaged`, said on
/// stderr, and the collector starts without it, keeping every file as it
/// is. Clients resend what they had not seen acknowledged; what was
/// written after the last good checkpoint may then appear twice, and the
/// line says so. A state file that cannot be read at all (permissions, a
/// directory in the way) is an error: the next checkpoint could not be
/// saved either.
pub(super) fn recover(path: &Path, dedup: &mut Dedup) -> Result<u64, OutputError> {
    let bad = |reason: String| OutputError::State {
        path: path.to_path_buf(),
        reason,
    };
    let journal = journal_path(path);
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(bad(e.to_string())),
    };
    let journal_bytes = match fs::read(&journal) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(bad(format!("{}: {e}", journal.display()))),
    };
    let text = |b: Vec<u8>| String::from_utf8(b).map_err(|_| "not UTF-8 text".to_string());
    let read = text(bytes).and_then(|t| parse(&t)).and_then(|saved| {
        let j = match journal_bytes {
            Some(b) => text(b).and_then(|t| parse_journal(&t, saved.generation))?,
            None => None,
        };
        Ok((saved, j))
    });
    let (mut saved, journal_read) = match read {
        Ok(r) => r,
        Err(why) => {
            let mut moved = Vec::new();
            for p in [path, journal.as_path()] {
                if !p.exists() {
                    continue;
                }
                let mut aside = p.as_os_str().to_owned();
                aside.push(".damaged");
                let aside = PathBuf::from(aside);
                fs::rename(p, &aside)
                    .map_err(|e| bad(format!("{why}; cannot move it aside: {e}")))?;
                moved.push(aside.display().to_string());
            }
            say(&format!(
                "{} is damaged ({why}); moved to {} and starting without it: files are \
                 kept as they are, and records written after the last good checkpoint \
                 may appear twice when their clients resend them",
                path.display(),
                moved.join(" and ")
            ));
            return Ok(0);
        }
    };
    if let Some(j) = journal_read {
        if j.torn {
            say(&format!(
                "{}: the last round's entry was cut short (the collector stopped while \
                 saving it); it was never acknowledged, and is ignored",
                journal.display()
            ));
        }
        saved.clients.extend(j.clients);
        if let Some(files) = j.files {
            saved.files = files;
        }
    }
    for p in &saved.files {
        cut_back(p).map_err(|e| bad(format!("{}: {e}", p.path.display())))?;
    }
    for (id, numbers) in &saved.clients {
        match numbers {
            Some((epoch, written)) => dedup.restore(id, *epoch, *written),
            None => {
                dedup.forget(id);
            }
        }
    }
    Ok(saved.generation)
}

/// Creates `path` anew for the collector's user only (0600, `O_EXCL`,
/// never through a symbolic link); what was there (a temporary file left by
/// a crash, the journal being replaced) is removed first.
fn create_private(path: &Path) -> io::Result<fs::File> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(logbraid::sink::O_NOFOLLOW)
        .open(path)
}

fn same_file(m: &fs::Metadata, p: &Pos) -> bool {
    (m.dev(), m.ino()) == (p.dev, p.ino)
}

/// Cuts a file to `len` if it is longer. Returns the bytes removed.
fn truncate(path: &Path, len: u64) -> io::Result<u64> {
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(logbraid::sink::O_NOFOLLOW)
        .open(path)?;
    let had = f.metadata()?.len();
    if had <= len {
        return Ok(0);
    }
    f.set_len(len)?;
    Ok(had - len)
}

fn compressed(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("gz" | "zst")
    )
}

/// Says what recovery did or could not do, once per file at start-up: not
/// through the rate-limited reporter, so no line of it is lost.
fn say(what: &str) {
    let _ = io::Write::write_all(
        &mut io::stderr(),
        format!("logbraid collector: recovery: {what}\n").as_bytes(),
    );
}

fn said(path: &Path, removed: u64) {
    if removed > 0 {
        say(&format!(
            "{}: removed {removed} bytes written after the last checkpoint \
             (not acknowledged; their clients resend them)",
            path.display()
        ));
    }
}

/// Puts one recorded file back as it was at the checkpoint.
fn cut_back(p: &Pos) -> io::Result<()> {
    match fs::metadata(&p.path) {
        Ok(m) if same_file(&m, p) => {
            said(&p.path, truncate(&p.path, p.len)?);
            return Ok(());
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // The file at the path is another one (or none): the recorded file was
    // rotated after the checkpoint. Find it among the backups next to it,
    // recognised by the sink's own names and ordered by them (never by
    // modification time, and never a file of another name, such as an
    // operator's `app.log.bak` or the `app.log.log` of another route); the
    // backups rotated after it, and the new active file, hold only records
    // written after the checkpoint.
    let backups = match logbraid::sink::backup_files(&p.path) {
        Ok(all) => all,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let active: Vec<PathBuf> = fs::symlink_metadata(&p.path)
        .is_ok_and(|m| m.is_file())
        .then(|| p.path.clone())
        .into_iter()
        .collect();
    let found = backups
        .iter()
        .position(|f| !compressed(f) && fs::symlink_metadata(f).is_ok_and(|m| same_file(&m, p)));
    let Some(k) = found else {
        if !backups.is_empty() || !active.is_empty() {
            say(&format!(
                "{} was rotated after the last checkpoint and the file it was \
                 is gone (compressed or deleted): records written after the \
                 checkpoint may appear twice",
                p.path.display()
            ));
        }
        return Ok(());
    };
    said(&backups[k], truncate(&backups[k], p.len)?);
    for newer in backups[k + 1..].iter().chain(&active) {
        if compressed(newer) {
            say(&format!(
                "{}: written after the last checkpoint and already compressed: \
                 its records may appear twice",
                newer.display()
            ));
        } else {
            said(newer, truncate(newer, 0)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut cp = Checkpoint::new(&state, true);
        let odd = PathBuf::from(OsString::from_vec(b"/l o\ng/\xffa.log".to_vec()));
        let pos = Pos {
            path: odd,
            dev: 1,
            ino: 2,
            len: 3,
        };
        cp.save(
            [("id with spaces\n", 9, 41)].into_iter(),
            &[],
            vec![pos.clone()],
        )
        .unwrap();
        let text = fs::read_to_string(&state).unwrap();
        let saved = parse(&text).unwrap();
        assert_eq!(
            saved.clients,
            [("id with spaces\n".to_string(), Some((9, 41)))]
        );
        assert_eq!(saved.files, std::slice::from_ref(&pos));
        assert!(cp.covers(&pos.path));
        assert!(!dir.path().join(".state.tmp").exists());

        for (bad, why) in [
            ("", "first line"),
            ("logbraid-collector-state 2\nend\n", "first line"),
            ("logbraid-collector-state 1\n", "cut short"),
            (
                "logbraid-collector-state 1\nclient x 1 61\nend\n",
                "line 2: bad number",
            ),
            (
                "logbraid-collector-state 1\nclient 1 1 6\nend\n",
                "bad client id",
            ),
            (
                "logbraid-collector-state 1\nfile 1 2 3\nend\n",
                "not a state entry",
            ),
            (
                "logbraid-collector-state 1\nend\nclient 1 1 61\n",
                "after the end",
            ),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    fn table(path: &Path) -> Vec<(String, u64, u64)> {
        let mut d = Dedup::new();
        recover(path, &mut d).unwrap();
        let mut all: Vec<_> = d.iter().map(|(c, e, w)| (c.to_string(), e, w)).collect();
        all.sort();
        all
    }

    #[test]
    fn each_round_appends_what_changed_and_recovery_replays_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let journal = journal_path(&state);
        let mut cp = Checkpoint::new(&state, true);
        let ids: Vec<String> = (0..1000).map(|i| format!("client-{i}")).collect();
        cp.save(ids.iter().map(|id| (id.as_str(), 1, 10)), &[], Vec::new())
            .unwrap();
        assert_eq!(cp.compactions(), 1);
        let snapshot = fs::read_to_string(&state).unwrap();
        assert!(snapshot.starts_with("logbraid-collector-state 1\ngeneration 1\n"));
        assert_eq!(
            fs::read_to_string(&journal).unwrap(),
            "logbraid-collector-journal 1 1\n"
        );
        // One client moves, one is forgotten: the journal grows by their
        // lines only.
        cp.save(
            [("client-7", 1, 12)].into_iter(),
            &[Arc::from("client-9")],
            Vec::new(),
        )
        .unwrap();
        assert_eq!(fs::read_to_string(&state).unwrap(), snapshot);
        assert_eq!(
            fs::read_to_string(&journal).unwrap(),
            format!(
                "logbraid-collector-journal 1 1\nclient 1 12 {}\nforget {}\nend\n",
                hex(b"client-7"),
                hex(b"client-9")
            )
        );
        let t = table(&state);
        assert_eq!(t.len(), 999);
        assert!(t.contains(&("client-7".to_string(), 1, 12)));
        assert!(!t.iter().any(|(c, ..)| c == "client-9"));

        // A block cut short is ignored; the ones before it count.
        let mut f = OpenOptions::new().append(true).open(&journal).unwrap();
        io::Write::write_all(
            &mut f,
            format!("client 1 99 {}\n", hex(b"client-7")).as_bytes(),
        )
        .unwrap();
        assert!(table(&state).contains(&("client-7".to_string(), 1, 12)));
        io::Write::write_all(&mut f, b"end\nclient 1 5").unwrap();
        assert!(table(&state).contains(&("client-7".to_string(), 1, 99)));

        // A journal of another generation is already in its snapshot, and
        // is not applied: the snapshot alone counts.
        fs::write(
            &journal,
            format!(
                "logbraid-collector-journal 1 0\nforget {}\nend\n",
                hex(b"client-1")
            ),
        )
        .unwrap();
        let t = table(&state);
        assert_eq!(t.len(), 1000);
        assert!(t.contains(&("client-7".to_string(), 1, 10)));
    }

    #[test]
    fn the_journal_is_compacted_once_it_is_as_large_as_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let journal = journal_path(&state);
        let mut cp = Checkpoint::new(&state, false);
        cp.save([("a", 1, 1)].into_iter(), &[], Vec::new()).unwrap();
        let mut rounds = 0u64;
        while cp.compactions() == 1 {
            rounds += 1;
            cp.save([("a", 1, rounds + 1)].into_iter(), &[], Vec::new())
                .unwrap();
            let len = fs::metadata(&journal).unwrap().len();
            assert!(len <= JOURNAL_MIN + 64, "{len}");
        }
        // The round that found the journal at 64 KiB wrote a snapshot.
        let line = format!("client 1 2 {}\nend\n", hex(b"a")).len() as u64;
        assert!(rounds >= (JOURNAL_MIN - 40) / (line + 4) && rounds <= JOURNAL_MIN / line + 1);
        assert_eq!(
            fs::read_to_string(&journal).unwrap(),
            "logbraid-collector-journal 1 2\n"
        );
        assert_eq!(table(&state), [("a".to_string(), 1, rounds + 1)]);
    }

    #[test]
    fn a_damaged_journal_is_moved_aside_with_its_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let journal = journal_path(&state);
        let mut cp = Checkpoint::new(&state, false);
        cp.save([("a", 1, 5)].into_iter(), &[], Vec::new()).unwrap();
        cp.save([("a", 1, 6)].into_iter(), &[], Vec::new()).unwrap();
        let mut f = OpenOptions::new().append(true).open(&journal).unwrap();
        io::Write::write_all(&mut f, b"client 1 x 61\nend\n").unwrap();
        let mut d = Dedup::new();
        assert_eq!(recover(&state, &mut d).unwrap(), 0);
        assert!(d.is_empty());
        assert!(!state.exists() && !journal.exists());
        let aside = |p: &Path| {
            let mut name = p.as_os_str().to_owned();
            name.push(".damaged");
            fs::read_to_string(PathBuf::from(name)).unwrap()
        };
        assert!(aside(&state).starts_with(MAGIC));
        assert!(aside(&journal).ends_with("client 1 x 61\nend\n"));
    }
}
