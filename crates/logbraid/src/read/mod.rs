//! Reading a log set back: the active file and its rotated, gzip and zstd
//! backups as one stream of records, oldest first; several sets merged by
//! timestamp; a set followed as it is written and rotated.
//!
//! A set is what a [`RollingFile`](crate::sink::RollingFile) leaves on
//! disk: `app.log` and its backups, recognised by the sink's own names
//! (`app.log.N`, `app.log.YYYY-mm-dd_HH-MM-SS[.seq]`, either with `.gz` or
//! `.zst`) and ordered as the sink orders them, by index or stamp, never by
//! modification time.
//!
//! Each file's layout is told from its first line:
//!
//! | layout | a record is |
//! |---|---|
//! | text | a line at the margin that starts with an RFC 3339 timestamp and a level, and the lines after it that start with two spaces (message newlines, tracebacks) |
//! | JSON | one line holding an object with a `ts` |
//! | anything else (a Python `%`-style format) | one line, with no timestamp or level of its own |
//!
//! ```
//! use logbraid::read::SetReader;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("app.log");
//! # std::fs::write(dir.path().join("app.log.1"), "2026-11-22T10:00:00Z INFO  [1/main] app: first\n")?;
//! # std::fs::write(&path, "2026-11-22T10:00:01Z WARN  [1/main] app: second\n")?;
//! let messages: Vec<String> = SetReader::open(&path)?.map(|e| e.message).collect();
//! assert_eq!(messages, ["first", "second"]);
//! # Ok(())
//! # }
//! ```

mod entry;
mod follow;
mod set;

pub use entry::{Entry, Format};
pub use follow::Follower;
pub use set::{log_set, open_decoded, read_decompressed, Merge, SetReader};

use crate::config::parse_duration;
use crate::time::parse_rfc3339;

/// An instant given on a command line: an RFC 3339 timestamp
/// (`2026-11-22T10:00:00Z`, `2026-11-22T11:00:00+01:00`) or a duration
/// before `now_ns` (`90s`, `10m`, `1h30m`, `2d`). Returns nanoseconds since
/// the epoch.
///
/// # Errors
///
/// A message saying what was expected.
pub fn parse_instant(text: &str, now_ns: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Some(ns) = parse_rfc3339(text.as_bytes()) {
        return Ok(ns);
    }
    match parse_duration(text) {
        Ok(ago) => {
            let ago = i64::try_from(ago.as_nanos()).unwrap_or(i64::MAX);
            Ok(now_ns.saturating_sub(ago))
        }
        Err(_) => Err(format!(
            "{text:?} is neither an RFC 3339 timestamp (2026-11-22T10:00:00Z) \
             nor a duration before now (10m, 1h30m, 2d)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_absolute_and_relative() {
        let now = 1_800_000_000_000_000_000;
        assert_eq!(
            parse_instant("2026-11-22T10:00:00+01:00", now),
            Ok(1_795_338_000_000_000_000)
        );
        assert_eq!(parse_instant("10m", now), Ok(now - 600_000_000_000));
        assert_eq!(parse_instant(" 1h30m ", now), Ok(now - 5_400_000_000_000));
        let e = parse_instant("yesterday", now).unwrap_err();
        assert!(e.starts_with("\"yesterday\" is neither"), "{e}");
    }
}
