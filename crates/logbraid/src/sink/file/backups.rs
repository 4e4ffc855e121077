//! The backups of a rolling file: their names, the renames of a rotation,
//! retention, and the hand-over to the compression worker.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::scan::mtime_ns;
use super::MAX_ATTEMPTS;
use crate::options::Compression;

#[derive(Clone, Copy, Debug)]
pub(super) struct Retention {
    pub(super) backup_count: usize,
    pub(super) max_age: Option<Duration>,
    pub(super) max_total_bytes: u64,
}

/// State shared by the sink and its compression worker.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(super) backups: Mutex<BackupSet>,
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
    pub(super) rotations: AtomicU64,
    pub(crate) compressed: AtomicU64,
    pub(super) compress_skipped: AtomicU64,
    pub(super) compress_failed: AtomicU64,
    pub(super) rotation_failures: AtomicU64,
    pub(super) write_failures: AtomicU64,
    pub(super) held_waits: AtomicU64,
    pub(super) reported_skip: AtomicBool,
    pub(super) reported_compress_failure: AtomicBool,
}

/// The file-name extension of a backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ext {
    Plain,
    Gz,
    Zst,
}

impl Ext {
    pub(super) const ALL: [Ext; 3] = [Ext::Plain, Ext::Gz, Ext::Zst];

    pub(super) fn suffix(self) -> &'static str {
        match self {
            Ext::Plain => "",
            Ext::Gz => ".gz",
            Ext::Zst => ".zst",
        }
    }

    pub(super) fn of(c: Compression) -> Ext {
        match c {
            Compression::None => Ext::Plain,
            Compression::Gzip => Ext::Gz,
            Compression::Zstd => Ext::Zst,
        }
    }
}

/// Where a backup sits in the naming scheme, without its extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    /// `app.log.N`.
    Index(u64),
    /// `app.log.YYYY-mm-dd_HH-MM-SS`, with `.seq` when `seq > 0`.
    Stamp { stamp: String, seq: u64 },
}

#[derive(Debug)]
pub(super) struct Backup {
    /// Stable across renames, so the worker finds a backup that Python
    /// naming shifted while it was being compressed.
    pub(super) id: u64,
    pub(super) slot: Slot,
    pub(super) ext: Ext,
    pub(super) compressing: bool,
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
    pub(super) dir: PathBuf,
    pub(super) base: OsString,
    pub(super) list: Vec<Backup>,
    pub(super) next_id: u64,
    /// [`sync_rotations`](super::RollingFileBuilder::sync_rotations): a
    /// compressed backup's name is synced before the original goes.
    pub(super) sync: bool,
}

impl BackupSet {
    pub(super) fn path_of(&self, slot: &Slot, ext: Ext) -> PathBuf {
        backup_path(&self.dir, &self.base, slot, ext)
    }

    /// The temporary name of a compression in progress. It starts with a
    /// dot followed by the base name, so no scan takes it for a backup.
    pub(super) fn tmp_path(&self, id: u64, ext: Ext) -> PathBuf {
        let mut name = OsString::from(".");
        name.push(&self.base);
        name.push(format!(".{id}{}.tmp", ext.suffix()));
        self.dir.join(name)
    }

    pub(super) fn find_mut(&mut self, id: u64) -> Option<&mut Backup> {
        self.list.iter_mut().find(|b| b.id == id)
    }

    pub(super) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Every extension under which `slot` exists on disk.
    pub(super) fn on_disk(&self, slot: &Slot) -> io::Result<Vec<Ext>> {
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

    pub(super) fn push_newest(&mut self, slot: Slot, ext: Ext) -> u64 {
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
    pub(super) fn adopt(&mut self, slot: Slot, ext: Ext) {
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
    pub(super) fn contiguous_top(&self) -> u64 {
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
    pub(super) fn rotate_python(&mut self, active: &Path) -> io::Result<u64> {
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
    pub(super) fn rotate_stamp(&mut self, active: &Path, stamp: String) -> io::Result<u64> {
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
    pub(super) fn delete_at(&mut self, k: usize, failures: &mut Vec<(PathBuf, io::Error)>) -> bool {
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
    pub(super) fn enforce(&mut self, r: &Retention, now_ns: i64) -> Vec<(PathBuf, io::Error)> {
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
        self.list[pos].compressing = false;
        if self.sync {
            // The compressed file's data was synced before the rename; its
            // name must be on disk too before the original goes, or a
            // power loss could leave neither. If it cannot be, the
            // original stays the backup.
            let synced = crate::fault::point("compress::sync_dir")
                .and_then(|()| File::open(&self.dir)?.sync_all());
            if let Err(e) = synced {
                let _ = fs::remove_file(&packed);
                return Err(e);
            }
        }
        self.list[pos].ext = ext;
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

pub(super) fn backup_path(dir: &Path, base: &OsStr, slot: &Slot, ext: Ext) -> PathBuf {
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
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        use rustix::io::Errno;
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            // The file system or kernel does not support the flag: check
            // first, then rename, below.
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
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

#[cfg(test)]
mod tests {
    use super::*;

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
