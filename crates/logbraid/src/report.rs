//! How often logbraid's own diagnostics may reach stderr.
//!
//! A failing disk or a flood of bad input must not turn into a flood of
//! lines: each kind of problem says one line per period, and the next line
//! it says tells how many were held back in between.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One kind of diagnostic's allowance: one line per `every`.
#[derive(Debug)]
pub struct RateLimit {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimit {
    /// At most one line per `every`.
    pub const fn new(every: Duration) -> Self {
        RateLimit {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(n)` when a line may be said now, `n` being how many were held
    /// back since the last one said; `None` when this one is held back
    /// (and counted).
    pub fn allow(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if s.0.is_some_and(|t| now.duration_since(t) < self.every) {
            s.1 += 1;
            return None;
        }
        s.0 = Some(now);
        Some(std::mem::take(&mut s.1))
    }

    /// How many lines were held back since the last one said; starts the
    /// count again. For a last report when stopping.
    pub fn take_held_back(&self) -> u64 {
        std::mem::take(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_and_the_rest_counted() {
        let r = RateLimit::new(Duration::from_secs(3600));
        assert_eq!(r.allow(), Some(0));
        assert_eq!(r.allow(), None);
        assert_eq!(r.allow(), None);
        assert_eq!(r.take_held_back(), 2);
        assert_eq!(r.take_held_back(), 0);
        let every_time = RateLimit::new(Duration::ZERO);
        assert_eq!(every_time.allow(), Some(0));
        assert_eq!(every_time.allow(), Some(0));
    }
}
