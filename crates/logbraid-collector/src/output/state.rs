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

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use logbraid::wire::Dedup;

use super::OutputError;

const MAGIC: &str = "logbraid-collector-state 1";
const END: &str = "end";

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

/// The saved checkpoint and what it holds, so that a file opened between
/// two rounds can be added to it without recomputing the rest.
#[derive(Debug)]
pub(super) struct Checkpoint {
    path: PathBuf,
    tmp: PathBuf,
    /// The `client` lines of the last save.
    clients: String,
    /// The files of the last save.
    files: Vec<Pos>,
    paths: HashSet<PathBuf>,
    saves: u64,
    /// Whether a checkpoint is fsynced (file and directory) before it
    /// counts: with `--sync data`, where the log files are synced too.
    /// Without, the checkpoint protects against the collector process
    /// dying (SIGKILL, OOM killer, panic), which leaves the page cache
    /// intact; syncing it alone would not survive a power loss.
    sync: bool,
}

impl Checkpoint {
    pub(super) fn new(path: &Path, sync: bool) -> Checkpoint {
        let mut name = OsString::from(".");
        name.push(path.file_name().unwrap_or(path.as_os_str()));
        name.push(".tmp");
        Checkpoint {
            path: path.to_path_buf(),
            tmp: path.with_file_name(name),
            clients: String::new(),
            files: Vec::new(),
            paths: HashSet::new(),
            saves: 0,
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

    /// Saves a new checkpoint: these clients, these files.
    pub(super) fn save<'a>(
        &mut self,
        clients: impl Iterator<Item = (&'a str, u64, u64)>,
        files: Vec<Pos>,
    ) -> io::Result<()> {
        let mut lines = String::new();
        for (id, epoch, written) in clients {
            let _ = writeln!(lines, "client {epoch} {written} {}", hex(id.as_bytes()));
        }
        self.write(&lines, &files)?;
        self.clients = lines;
        self.paths = files.iter().map(|p| p.path.clone()).collect();
        self.files = files;
        Ok(())
    }

    /// Saves the last checkpoint again with one more file, before anything
    /// is written to that file: its bytes so far all predate the
    /// checkpoint.
    pub(super) fn add_file(&mut self, pos: Pos) -> io::Result<()> {
        let mut files = self.files.clone();
        files.retain(|p| p.path != pos.path);
        files.push(pos);
        let clients = std::mem::take(&mut self.clients);
        let r = self.write(&clients, &files);
        self.clients = clients;
        r?;
        self.paths = files.iter().map(|p| p.path.clone()).collect();
        self.files = files;
        Ok(())
    }

    fn write(&mut self, clients: &str, files: &[Pos]) -> io::Result<()> {
        let mut text = String::with_capacity(clients.len() + files.len() * 96 + 64);
        text.push_str(MAGIC);
        text.push('\n');
        text.push_str(clients);
        for p in files {
            let _ = writeln!(
                text,
                "file {} {} {} {}",
                p.dev,
                p.ino,
                p.len,
                hex(p.path.as_os_str().as_bytes())
            );
        }
        text.push_str(END);
        text.push('\n');
        if let Some(dir) = self.tmp.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                // Routed files live below a directory nothing has made yet.
                fs::create_dir_all(dir)?;
            }
        }
        logbraid::fault::point("state::write")?;
        {
            let mut f = fs::File::create(&self.tmp)?;
            io::Write::write_all(&mut f, text.as_bytes())?;
            if self.sync {
                f.sync_data()?;
            }
        }
        logbraid::fault::point("state::rename")?;
        fs::rename(&self.tmp, &self.path)?;
        if self.sync {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::File::open(dir)?.sync_all()?;
            }
        }
        self.saves += 1;
        Ok(())
    }
}

/// What a state file holds.
#[derive(Debug, Default, PartialEq, Eq)]
struct Saved {
    clients: Vec<(String, u64, u64)>,
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
        let at = |what: &str| format!("line {}: {what}", n + 2);
        let num = |s: &str| s.parse::<u64>().map_err(|_| at("bad number"));
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["client", epoch, written, id] => {
                let id = unhex(id)
                    .and_then(|b| String::from_utf8(b).ok())
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| at("bad client id"))?;
                saved.clients.push((id, num(epoch)?, num(written)?));
            }
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
            [END] => ended = true,
            _ => return Err(at("not a state entry")),
        }
    }
    if !ended {
        return Err("the file is cut short (no end line)".to_string());
    }
    Ok(saved)
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
        .open(&lock_path)
        .map_err(bad)?;
    use std::os::fd::AsRawFd as _;
    // SAFETY: flock on a descriptor this function owns; no memory is
    // involved.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::WouldBlock {
            return Err(bad(e));
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
pub(super) fn recover(path: &Path, dedup: &mut Dedup) -> Result<(), OutputError> {
    let bad = |reason: String| OutputError::State {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(bad(e.to_string())),
    };
    let saved = String::from_utf8(bytes)
        .map_err(|_| "not UTF-8 text".to_string())
        .and_then(|text| parse(&text));
    let saved = match saved {
        Ok(saved) => saved,
        Err(why) => {
            let mut aside = path.as_os_str().to_owned();
            aside.push(".damaged");
            let aside = PathBuf::from(aside);
            fs::rename(path, &aside)
                .map_err(|e| bad(format!("{why}; cannot move it aside: {e}")))?;
            say(&format!(
                "{} is damaged ({why}); moved to {} and starting without it: files are \
                 kept as they are, and records written after the last good checkpoint \
                 may appear twice when their clients resend them",
                path.display(),
                aside.display()
            ));
            return Ok(());
        }
    };
    for p in &saved.files {
        cut_back(p).map_err(|e| bad(format!("{}: {e}", p.path.display())))?;
    }
    for (id, epoch, written) in &saved.clients {
        dedup.restore(id, *epoch, *written);
    }
    Ok(())
}

fn same_file(m: &fs::Metadata, p: &Pos) -> bool {
    (m.dev(), m.ino()) == (p.dev, p.ino)
}

/// Cuts a file to `len` if it is longer. Returns the bytes removed.
fn truncate(path: &Path, len: u64) -> io::Result<u64> {
    let f = OpenOptions::new().write(true).open(path)?;
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
        cp.save([("id with spaces\n", 9, 41)].into_iter(), vec![pos.clone()])
            .unwrap();
        let text = fs::read_to_string(&state).unwrap();
        let saved = parse(&text).unwrap();
        assert_eq!(saved.clients, [("id with spaces\n".to_string(), 9, 41)]);
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
}
