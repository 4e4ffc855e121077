//! The collector's own diagnostics: every rejected input is one typed
//! event, counted and said on stderr in one place, at most once a second
//! per kind (with a tally of what was not said), so a flood of bad input
//! cannot flood the terminal.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What went wrong with an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A frame whose length is over the limit.
    FrameTooLarge,
    /// A native frame with a version this collector does not speak.
    UnsupportedVersion,
    /// A stream that ended inside a frame.
    Truncated,
    /// A frame that breaks its format (garbage, bad UTF-8, bad fields).
    Malformed,
    /// A pickle refused by the safe reader (globals, calls, limits).
    BadPickle,
    /// A datagram or line that is not syslog.
    BadSyslog,
    /// A native client with a wrong or missing token.
    BadToken,
    /// A connection turned away at `--max-connections`.
    Overloaded,
    /// A connection closed for sending nothing for too long.
    Idle,
}

const KINDS: usize = 9;

impl Kind {
    fn index(self) -> usize {
        self as usize
    }

    /// A short name, as the diagnostics print it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::FrameTooLarge => "frame too large",
            Kind::UnsupportedVersion => "unsupported version",
            Kind::Truncated => "truncated frame",
            Kind::Malformed => "malformed frame",
            Kind::BadPickle => "refused pickle",
            Kind::BadSyslog => "not syslog",
            Kind::BadToken => "bad token",
            Kind::Overloaded => "too many connections",
            Kind::Idle => "idle connection",
        }
    }

    /// The kind of a native protocol error.
    pub fn of_wire(e: &logbraid::wire::WireError) -> Kind {
        use logbraid::wire::ErrorCode;
        match e.code() {
            ErrorCode::FRAME_TOO_LARGE => Kind::FrameTooLarge,
            ErrorCode::UNSUPPORTED_VERSION => Kind::UnsupportedVersion,
            ErrorCode::BAD_TOKEN => Kind::BadToken,
            _ => Kind::Malformed,
        }
    }
}

/// Counts of every kind of rejected input.
#[derive(Debug, Default)]
pub struct Diagnostics {
    counts: [AtomicU64; KINDS],
    last: Mutex<[(Option<Instant>, u64); KINDS]>,
}

impl Diagnostics {
    /// Counts an event and, unless one of its kind was said in the last
    /// second, says it on stderr.
    pub fn emit(&self, kind: Kind, peer: &str, detail: &dyn std::fmt::Display) {
        self.counts[kind.index()].fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut last[kind.index()];
        let now = Instant::now();
        if slot
            .0
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            slot.1 += 1;
            return;
        }
        let more = std::mem::take(&mut slot.1);
        slot.0 = Some(now);
        drop(last);
        let more = if more > 0 {
            format!(" ({more} more of this kind not shown)")
        } else {
            String::new()
        };
        let _ = writeln!(
            std::io::stderr(),
            "logbraid serve: {} from {peer}: {detail}; connection closed{more}",
            kind.name()
        );
    }

    /// How many events of a kind there were.
    pub fn count(&self, kind: Kind) -> u64 {
        self.counts[kind.index()].load(Ordering::Relaxed)
    }

    /// Every event so far.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}
