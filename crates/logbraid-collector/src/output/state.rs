//! The checkpoint that makes acknowledged records exactly-once across a
//! collector crash.
//!
//! Saved after every round's flush and before its `ACK`s: each client id's
//! epoch and highest written sequence number, and each open file's device,
//! inode and length. Bytes a file holds past its checkpointed length were
//! written after the last acknowledgement, so their clients still hold
//! them and will resend them; at start-up they are cut off and the
//! deduplication table is restored, so the resent records are written
//! once. Text, one entry a line, names in hex so that no byte of a client's
//! id can break the format; written to a temporary file and renamed, so a
//! crash leaves the old checkpoint or the new one, never half of one.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use logbraid::wire::Dedup;

use super::files::report;
use super::OutputError;

const MAGIC: &str = "logbraid-collector-state 1";

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Saves the checkpoint.
pub(super) fn save(
    path: &Path,
    dedup: &Dedup,
    files: &[(PathBuf, u64, u64, u64)],
) -> std::io::Result<()> {
    let mut text = String::from(MAGIC);
    text.push('\n');
    for (id, epoch, written) in dedup.iter() {
        let _ = writeln!(text, "client {epoch} {written} {}", hex(id.as_bytes()));
    }
    for (p, dev, ino, len) in files {
        use std::os::unix::ffi::OsStrExt;
        let _ = writeln!(
            text,
            "file {dev} {ino} {len} {}",
            hex(p.as_os_str().as_bytes())
        );
    }
    let tmp = path.with_extension("state-tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

/// Restores the table and cuts files back to their checkpointed lengths.
pub(super) fn recover(path: &Path, dedup: &Mutex<Dedup>) -> Result<(), OutputError> {
    let bad = |reason: String| OutputError::State {
        path: path.to_path_buf(),
        reason,
    };
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(bad(e.to_string())),
    };
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(bad(format!("the first line is not {MAGIC:?}")));
    }
    let mut d = dedup.lock().unwrap_or_else(|e| e.into_inner());
    for (n, line) in lines.enumerate() {
        let at = || format!("line {}: {line:?}", n + 2);
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["client", epoch, written, id] => {
                let (Ok(epoch), Ok(written)) = (epoch.parse::<u64>(), written.parse::<u64>())
                else {
                    return Err(bad(format!("{}: bad number", at())));
                };
                let id = unhex(id)
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| bad(format!("{}: bad client id", at())))?;
                d.restore(&id, epoch, written);
            }
            ["file", dev, ino, len, p] => {
                let (Ok(dev), Ok(ino), Ok(len)) =
                    (dev.parse::<u64>(), ino.parse::<u64>(), len.parse::<u64>())
                else {
                    return Err(bad(format!("{}: bad number", at())));
                };
                use std::os::unix::ffi::OsStringExt;
                let p = PathBuf::from(std::ffi::OsString::from_vec(
                    unhex(p).ok_or_else(|| bad(format!("{}: bad path", at())))?,
                ));
                cut_back(&p, dev, ino, len);
            }
            _ => return Err(bad(format!("{}: not a state entry", at()))),
        }
    }
    Ok(())
}

fn cut_back(p: &Path, dev: u64, ino: u64, len: u64) {
    let Ok(m) = fs::metadata(p) else { return };
    if (m.dev(), m.ino()) != (dev, ino) {
        report(&format!(
            "{} was rotated after the last checkpoint: records written after it may appear twice",
            p.display()
        ));
        return;
    }
    if m.len() <= len {
        return;
    }
    let cut = OpenOptions::new()
        .write(true)
        .open(p)
        .and_then(|f| f.set_len(len));
    match cut {
        Ok(()) => {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!(
                    "logbraid serve: {}: removed {} bytes written after the last acknowledgement; their clients resend them\n",
                    p.display(),
                    m.len() - len
                )
                .as_bytes(),
            );
        }
        Err(e) => report(&format!(
            "cannot cut {} back to {len} bytes: {e}",
            p.display()
        )),
    }
}
