//! Time, injectable so that tests cross hour and day boundaries without
//! sleeping.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A source of wall-clock time in nanoseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in nanoseconds since the Unix epoch (UTC).
    fn now_ns(&self) -> i64;
}

/// The system's real-time clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now_ns(&self) -> i64 {
        now_ns()
    }
}

/// Reads the real-time clock (one vDSO call on Linux).
#[inline]
pub fn now_ns() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

/// A clock that moves only when told to: for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// A clock standing at `now_ns`.
    pub fn new(now_ns: i64) -> Arc<Self> {
        Arc::new(ManualClock {
            now: AtomicI64::new(now_ns),
        })
    }

    /// Sets the time.
    pub fn set_ns(&self, now_ns: i64) {
        self.now.store(now_ns, Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance_ns(&self, by: i64) {
        self.now.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The default clock.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}
