//! Reads back what a library wrote and checks that every record is there
//! exactly once.

use std::io::BufRead as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What the files of one run hold.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Verification {
    /// Records that should be there: indices `0..expected`.
    pub expected: u64,
    /// Lines in all files.
    pub lines: u64,
    /// Indices never seen.
    pub missing: u64,
    /// Extra copies of indices seen more than once.
    pub duplicates: u64,
    /// Lines that are not a record of this run (a library's own notices,
    /// corrupt or interleaved text, an index out of range).
    pub other_lines: u64,
    /// Bytes in all files.
    pub bytes: u64,
    /// Files in the directory.
    pub files: u64,
    /// The first record line, for the report.
    pub sample: Option<String>,
    /// Some line holds an ANSI escape.
    pub escapes: bool,
}

impl Verification {
    /// Every record present exactly once, nothing else.
    pub fn ok(&self) -> bool {
        self.missing == 0 && self.duplicates == 0
    }
}

/// Parses `request {index} served in {ms} ms` out of a line; the
/// message may be preceded by anything (the layout) and, in some layouts,
/// followed by nothing else.
fn parse(line: &str) -> Option<u64> {
    let at = line.rfind("request ")?;
    let rest = &line[at + "request ".len()..];
    let (index, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("served in ")?;
    let (ms, rest) = rest.split_once(' ')?;
    if rest.trim_end() != "ms" {
        return None;
    }
    let index: u64 = index.parse().ok()?;
    let ms: u64 = ms.parse().ok()?;
    (ms == index % 1000).then_some(index)
}

/// Checks every file in `dir` for the records `0..expected`.
pub fn check(dir: &Path, expected: u64) -> std::io::Result<Verification> {
    let mut seen = vec![0u8; expected as usize];
    let mut v = Verification {
        expected,
        ..Verification::default()
    };
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    let mut line = Vec::with_capacity(256);
    for path in paths.iter().filter(|p| p.is_file()) {
        v.files += 1;
        let mut r = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
        loop {
            line.clear();
            let n = r.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            v.bytes += n as u64;
            v.lines += 1;
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            if text.contains('\u{1b}') {
                v.escapes = true;
            }
            match parse(text).filter(|&i| i < expected) {
                Some(i) => {
                    let c = &mut seen[i as usize];
                    *c = c.saturating_add(1);
                    if v.sample.is_none() {
                        v.sample = Some(text.to_string());
                    }
                }
                None => v.other_lines += 1,
            }
        }
    }
    for &c in &seen {
        match c {
            0 => v.missing += 1,
            1 => {}
            n => v.duplicates += u64::from(n - 1),
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_message_after_any_layout() {
        assert_eq!(
            parse("2026-01-01T00:00:00Z INFO  [1/x] a: request 1234 served in 234 ms"),
            Some(1234)
        );
        assert_eq!(parse("[ts] [info] request 7 served in 7 ms"), Some(7));
        assert_eq!(parse("request 7 served in 8 ms"), None);
        assert_eq!(parse("request 7 served in 7 msx"), None);
        assert_eq!(parse("request 7 served in 7 ms request 9 served"), None);
        assert_eq!(parse("something else"), None);
    }

    #[test]
    fn counts_missing_duplicate_and_foreign_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.log"),
            "x request 0 served in 0 ms\nx request 2 served in 2 ms\nx request 2 served in 2 ms\nnotice\n",
        )
        .unwrap();
        let v = check(dir.path(), 3).unwrap();
        assert_eq!(
            (v.lines, v.missing, v.duplicates, v.other_lines),
            (4, 1, 1, 1)
        );
        assert!(!v.ok());
    }
}
