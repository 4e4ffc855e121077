//! What a rolling file finds on disk at start-up: the backups of both
//! naming schemes, compressed or not, and leftovers of an interrupted
//! compression.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::backups::{backup_path, Ext, Slot};
use super::NS_PER_SEC;

pub(super) fn mtime_ns(m: &fs::Metadata) -> i64 {
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

pub(super) fn is_stamp(b: &[u8]) -> bool {
    const SHAPE: &[u8; STAMP_LEN] = b"0000-00-00_00-00-00";
    b.len() == STAMP_LEN
        && b.iter().zip(SHAPE).all(|(c, s)| match s {
            b'0' => c.is_ascii_digit(),
            _ => c == s,
        })
}

/// The backups of the active file `active`, recognised by the sink's exact
/// names (`app.log.N`, `app.log.YYYY-mm-dd_HH-MM-SS[.seq]`, either with
/// `.gz` or `.zst`) and ordered by those names alone, oldest first:
/// timestamped backups by their stamp, then numbered ones from the highest
/// index down (a directory holds both kinds only if the naming was
/// changed). Any other file beside the log (`app.log.bak`, `app.log.log`)
/// is not one of them; modification times play no part, and nothing is
/// changed on disk.
pub fn backup_files(active: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = match active.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(base) = active.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path names no file",
        ));
    };
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some((slot, ext)) = name
            .as_bytes()
            .strip_prefix(base.as_bytes())
            .and_then(|n| n.strip_prefix(b"."))
            .and_then(parse_backup_name)
        else {
            continue;
        };
        if entry.file_type()?.is_file() {
            found.push((slot, ext));
        }
    }
    found.sort_by(|(a, x), (b, y)| {
        let rank = |s: &Slot| match s {
            Slot::Stamp { stamp, seq } => (0, stamp.clone(), *seq, 0),
            Slot::Index(n) => (1, String::new(), 0, u64::MAX - n),
        };
        rank(a).cmp(&rank(b)).then(x.cmp(y))
    });
    Ok(found
        .into_iter()
        .map(|(slot, ext)| backup_path(dir, base, &slot, ext))
        .collect())
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
pub(super) fn scan(dir: &Path, base: &OsStr) -> io::Result<Vec<(Slot, Ext)>> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn backup_files_are_the_sinks_own_names_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "app.log",
            "app.log.1",
            "app.log.10.gz",
            "app.log.2.zst",
            "app.log.2026-11-22_10-00-00.1",
            "app.log.2026-11-21_23-00-00",
            "app.log.bak",
            "app.log.log",
            "app.log.1.bak",
            ".app.log.3.gz.tmp",
            "other.log.1",
        ];
        for n in names {
            fs::write(dir.path().join(n), n).unwrap();
        }
        fs::create_dir(dir.path().join("app.log.3")).unwrap();
        let got: Vec<String> = backup_files(&dir.path().join("app.log"))
            .unwrap()
            .into_iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            got,
            [
                "app.log.2026-11-21_23-00-00",
                "app.log.2026-11-22_10-00-00.1",
                "app.log.10.gz",
                "app.log.2.zst",
                "app.log.1",
            ]
        );
        // Nothing was removed, not even the leftover of a compression.
        assert!(dir.path().join(".app.log.3.gz.tmp").exists());
    }
}
