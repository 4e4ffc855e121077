//! Failpoints: named places where the fault-injection tests make a file
//! operation fail or the process die, through the `fail` crate.
//!
//! Compiled only with the `failpoints` cargo feature, which is off by
//! default and refused in a build without debug assertions (a release);
//! without it [`point`] is an empty inline function. With it, a program
//! that calls [`setup`] (`logbraid serve` does) reads `FAILPOINTS` as the
//! `fail` crate does: `name=actions` separated by `;`, an action being
//! `[p%][count*]task[(arg)]` chained with `->` (`2*off->return(kill)`:
//! pass twice, then act). Besides `fail`'s own tasks (`panic`,
//! `sleep(ms)`, `pause`, `off`…), `return(arg)` means:
//!
//! | arg | what happens at the point |
//! |---|---|
//! | `kill` | the process sends itself SIGKILL: it dies there, as a `kill -9` would find it |
//! | `enospc`, `eio`, `eacces`, `eisdir`, `emfile`, `erofs`, `eexist` | the operation fails with that error, doing nothing |
//!
//! The points:
//!
//! | name | where |
//! |---|---|
//! | `file::open` | a rolling file opens (or creates) its active file |
//! | `file::write` | a rolling file writes its buffer |
//! | `file::sync` | a rolling file fdatasyncs (a round under `--sync data`, or before a rotation's rename) |
//! | `compress::sync_dir` | with `sync_rotations`, a compressed backup's directory is synced before the original goes |
//! | `file::rotate` | a rolling file, flushed, is about to be renamed to a backup |
//! | `output::rotated` | the collector's output stage, after a rotation, before the checkpoint that records it |
//! | `state::write` | the collector's checkpoint, before its bytes are written (a journal block, or a snapshot's temporary file) |
//! | `state::rename` | the collector's checkpoint snapshot, written, before it is renamed into place |
//! | `state::compact` | with any `return`, every checkpoint is a new snapshot rather than a journal block ([`forced`]) |

use std::io;

// Failpoints are for tests: a build without debug assertions (a release)
// must never carry them, whatever features are turned on.
#[cfg(all(feature = "failpoints", not(debug_assertions)))]
compile_error!("the `failpoints` feature is for test builds; build releases without it");

/// Evaluates the failpoint `name`: `Ok(())` unless it is configured to
/// fail (or to end the process, in which case this does not return).
#[inline(always)]
pub fn point(name: &str) -> io::Result<()> {
    #[cfg(feature = "failpoints")]
    if let Some(r) = fail::eval(name, |arg| act(name, arg.as_deref())) {
        return r;
    }
    let _ = name;
    Ok(())
}

/// Whether the failpoint `name` is configured to act now (any `return`):
/// for points that choose a path rather than fail one. Always false
/// without the `failpoints` feature.
#[inline(always)]
pub fn forced(name: &str) -> bool {
    #[cfg(feature = "failpoints")]
    if fail::eval(name, |_| ()).is_some() {
        return true;
    }
    let _ = name;
    false
}

/// Configures the failpoints from `FAILPOINTS`; the error names the entry
/// that does not parse. Without the `failpoints` feature, does nothing.
pub fn setup() -> Result<(), String> {
    #[cfg(feature = "failpoints")]
    if let Ok(all) = std::env::var("FAILPOINTS") {
        for entry in all.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((name, actions)) = entry.split_once('=') else {
                return Err(format!("FAILPOINTS: {entry:?} is not name=actions"));
            };
            fail::cfg(name.trim(), actions.trim())
                .map_err(|e| format!("FAILPOINTS: {name}: {e}"))?;
        }
    }
    Ok(())
}

#[cfg(feature = "failpoints")]
fn act(name: &str, arg: Option<&str>) -> io::Result<()> {
    let errno = match arg.unwrap_or("") {
        "kill" => {
            // SAFETY: raise has no memory-safety preconditions. SIGKILL
            // cannot be caught: nothing after this line runs.
            unsafe { libc::raise(libc::SIGKILL) };
            libc::EINTR
        }
        "enospc" => libc::ENOSPC,
        "eio" => libc::EIO,
        "eacces" => libc::EACCES,
        "eisdir" => libc::EISDIR,
        "emfile" => libc::EMFILE,
        "erofs" => libc::EROFS,
        "eexist" => libc::EEXIST,
        other => {
            return Err(io::Error::other(format!(
                "failpoint {name}: unknown action argument {other:?}"
            )))
        }
    };
    Err(io::Error::from_raw_os_error(errno))
}

#[cfg(all(test, feature = "failpoints"))]
mod tests {
    use super::*;

    #[test]
    fn a_configured_point_fails_with_its_error_then_passes() {
        let name = "fault::tests::point";
        point(name).unwrap();
        fail::cfg(name, "1*return(enospc)->1*return(nonsense)->off").unwrap();
        assert_eq!(point(name).unwrap_err().raw_os_error(), Some(libc::ENOSPC));
        let e = point(name).unwrap_err();
        assert!(e.to_string().contains("unknown action argument"), "{e}");
        point(name).unwrap();
        fail::remove(name);
    }
}
