//! The collector's own diagnostics: every rejected input is one typed
//! event, counted and said on stderr in one place, at most once a second
//! per kind (with a tally of what was not said), so a flood of bad input
//! cannot flood the terminal. They go to stderr and never into the log
//! files: the files hold what clients sent, nothing else.
//!
//! The counts are exact whatever is printed, so tests and operators read
//! them with [`Diagnostics::count`]; [`Diagnostics::finish`] prints the
//! tallies still owed when the collector stops.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use logbraid::report::RateLimit;

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
    /// A native connection closed for not sending its `HELLO` in time.
    HelloTimeout,
    /// A peer that does not speak TLS on a TLS listener (plaintext).
    NotTls,
    /// A TLS handshake that failed: no client certificate where one is
    /// required, one of an unknown authority, no protocol in common, or
    /// nothing within the `HELLO` timeout.
    TlsHandshake,
    /// A native `HELLO` for a client id held by a live connection of
    /// another credential.
    ClientIdTaken,
    /// A connection that had sent no complete frame, closed to make room
    /// for a new one at a full connection limit.
    Evicted,
    /// A Python or syslog stream whose record in progress arrived slower
    /// than the minimum rate.
    TooSlow,
}

const KINDS: usize = 15;

/// Every kind, in the order [`Diagnostics::finish`] reports them.
const ALL: [Kind; KINDS] = [
    Kind::FrameTooLarge,
    Kind::UnsupportedVersion,
    Kind::Truncated,
    Kind::Malformed,
    Kind::BadPickle,
    Kind::BadSyslog,
    Kind::BadToken,
    Kind::Overloaded,
    Kind::Idle,
    Kind::HelloTimeout,
    Kind::NotTls,
    Kind::TlsHandshake,
    Kind::ClientIdTaken,
    Kind::Evicted,
    Kind::TooSlow,
];

/// What the collector did about an event, as the diagnostic says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The connection it came on is closed (the others go on).
    Closed,
    /// A datagram was dropped (there is no connection to close).
    Dropped,
    /// A request (OTLP over HTTP or gRPC) was answered with an error; its
    /// connection stays open.
    Answered,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Closed => "connection closed",
            Action::Dropped => "datagram dropped",
            Action::Answered => "request refused",
        }
    }
}

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
            Kind::HelloTimeout => "no HELLO in time",
            Kind::NotTls => "not TLS",
            Kind::TlsHandshake => "TLS handshake failed",
            Kind::ClientIdTaken => "client id taken",
            Kind::Evicted => "evicted while silent",
            Kind::TooSlow => "record too slow",
        }
    }

    /// Every kind.
    pub const ALL: [Kind; KINDS] = ALL;

    /// Its name as a metric label: `frame_too_large`, `bad_pickle`…
    pub fn label(self) -> &'static str {
        match self {
            Kind::FrameTooLarge => "frame_too_large",
            Kind::UnsupportedVersion => "unsupported_version",
            Kind::Truncated => "truncated",
            Kind::Malformed => "malformed",
            Kind::BadPickle => "bad_pickle",
            Kind::BadSyslog => "bad_syslog",
            Kind::BadToken => "bad_token",
            Kind::Overloaded => "overloaded",
            Kind::Idle => "idle",
            Kind::HelloTimeout => "hello_timeout",
            Kind::NotTls => "not_tls",
            Kind::TlsHandshake => "tls_handshake",
            Kind::ClientIdTaken => "client_id_taken",
            Kind::Evicted => "evicted",
            Kind::TooSlow => "too_slow",
        }
    }

    /// The kind of a native protocol error.
    pub fn of_wire(e: &logbraid::wire::WireError) -> Kind {
        use logbraid::wire::ErrorCode;
        match e.code() {
            ErrorCode::FRAME_TOO_LARGE => Kind::FrameTooLarge,
            ErrorCode::UNSUPPORTED_VERSION => Kind::UnsupportedVersion,
            ErrorCode::BAD_TOKEN => Kind::BadToken,
            ErrorCode::CLIENT_ID_TAKEN => Kind::ClientIdTaken,
            _ => Kind::Malformed,
        }
    }
}

/// Counts of every kind of rejected input.
#[derive(Debug)]
pub struct Diagnostics {
    counts: [AtomicU64; KINDS],
    limits: [RateLimit; KINDS],
}

impl Default for Diagnostics {
    fn default() -> Self {
        Diagnostics {
            counts: Default::default(),
            limits: [const { RateLimit::new(Duration::from_secs(1)) }; KINDS],
        }
    }
}

impl Diagnostics {
    /// Counts an event and, unless one of its kind was said in the last
    /// second, says it on stderr.
    pub fn emit(&self, kind: Kind, peer: &str, action: Action, detail: &dyn std::fmt::Display) {
        self.counts[kind.index()].fetch_add(1, Ordering::Relaxed);
        let Some(more) = self.limits[kind.index()].allow() else {
            return;
        };
        let more = if more > 0 {
            format!(" ({more} more of this kind not shown)")
        } else {
            String::new()
        };
        let _ = writeln!(
            std::io::stderr(),
            "logbraid serve: {} from {peer}: {detail}; {}{more}",
            kind.name(),
            action.as_str()
        );
    }

    /// Says on stderr how many events of each kind were counted but not
    /// shown since the last line of their kind, so the last second of a
    /// flood is not left out of the record. Call it when stopping.
    pub fn finish(&self) {
        let mut err = std::io::stderr().lock();
        for kind in ALL {
            let more = self.limits[kind.index()].take_held_back();
            if more > 0 {
                let _ = writeln!(err, "logbraid serve: {more} more {} not shown", kind.name());
            }
        }
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
