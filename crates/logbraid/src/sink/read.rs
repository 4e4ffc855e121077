//! Reading back what a rolling file wrote: for tests, demos and tools that
//! check a log is complete.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The active file and every rotated file next to it (`app.log`,
/// `app.log.1`, `app.log.2026-11-22_10-00-00.zst`, …), oldest first: rotated
/// files by modification time, then name; the active file last. Temporary
/// files of an unfinished compression (hidden names) are left out.
pub fn rotated_files(active: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = match active.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = active.file_name().and_then(|n| n.to_str()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path names no file",
        ));
    };
    let prefix = format!("{name}.");
    let mut backups = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        if n.starts_with(&prefix) && entry.file_type()?.is_file() {
            let modified = entry.metadata()?.modified()?;
            backups.push((modified, backup_rank(&n[prefix.len()..]), entry.path()));
        }
    }
    // Python naming: a larger index is older, whatever the mtimes say when
    // several rotations happen within the file system's time resolution.
    backups.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let mut out: Vec<PathBuf> = backups.into_iter().map(|b| b.2).collect();
    if active.exists() {
        out.push(active.to_path_buf());
    }
    Ok(out)
}

/// The index of a Python-style backup suffix (`3` or `3.gz`), if it is one.
fn backup_rank(suffix: &str) -> Option<u64> {
    suffix.split('.').next()?.parse().ok()
}

/// The contents of a log file, decompressed according to its extension
/// (`.gz`, `.zst`).
pub fn read_decompressed(path: &Path) -> io::Result<Vec<u8>> {
    let file = fs::File::open(path)?;
    let mut out = Vec::new();
    match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => {
            flate2::read::MultiGzDecoder::new(file).read_to_end(&mut out)?;
        }
        Some("zst") => {
            zstd::stream::read::Decoder::new(file)?.read_to_end(&mut out)?;
        }
        _ => {
            io::BufReader::new(file).read_to_end(&mut out)?;
        }
    }
    Ok(out)
}
