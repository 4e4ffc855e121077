//! Timestamps from the CPU's time-stamp counter.
//!
//! Reading the TSC costs a third of `clock_gettime` here, and the caller's
//! timestamp is on every logging call's path. The caller stores raw ticks;
//! the writer turns them into nanoseconds since the epoch with an anchor
//! (ticks, ns) taken at the start of each pass and a rate measured against
//! the real-time clock since the pipeline started. Ticks are used only where
//! the kernel itself trusts the TSC (constant, non-stop, and the current
//! clock source), so they agree across cores.

use std::sync::OnceLock;

use crate::clock;

/// Whether raw ticks may be used as caller timestamps.
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if !cfg!(target_arch = "x86_64") {
            return false;
        }
        let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let source = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .unwrap_or_default();
        flags.contains(" constant_tsc") && flags.contains(" nonstop_tsc") && source.trim() == "tsc"
    })
}

/// The counter now.
#[inline]
pub(crate) fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// Converts ticks to nanoseconds since the epoch.
#[derive(Debug)]
pub(crate) struct Converter {
    origin: (u64, i64),
    anchor: (u64, i64),
    ns_per_tick: f64,
}

fn pair() -> (u64, i64) {
    // Take the tick reading between two clock readings and keep the pair
    // read in the shortest window, so the two agree to a few nanoseconds.
    let mut best = (0, 0, i64::MAX);
    for _ in 0..5 {
        let a = clock::now_ns();
        let t = ticks();
        let b = clock::now_ns();
        if b - a < best.2 {
            best = (t, a + (b - a) / 2, b - a);
        }
    }
    (best.0, best.1)
}

impl Converter {
    /// Measures the rate over a short spin (1 ms); later passes refine it.
    pub(crate) fn new() -> Self {
        let origin = pair();
        let mut now = pair();
        while now.1 - origin.1 < 1_000_000 {
            std::hint::spin_loop();
            now = pair();
        }
        Converter::from_pairs(origin, now)
    }

    /// A converter whose rate runs from `origin` to `now`, anchored at
    /// `now`: each a (ticks, ns) pair read together.
    fn from_pairs(origin: (u64, i64), now: (u64, i64)) -> Self {
        let mut c = Converter {
            origin,
            anchor: now,
            ns_per_tick: 1.0,
        };
        c.rate_from(now);
        c
    }

    fn rate_from(&mut self, now: (u64, i64)) {
        let dt = now.0.wrapping_sub(self.origin.0) as f64;
        if dt > 0.0 {
            self.ns_per_tick = (now.1 - self.origin.1) as f64 / dt;
        }
    }

    /// A converter for pipelines that never stamp with ticks.
    pub(crate) fn identity() -> Self {
        Converter {
            origin: (0, 0),
            anchor: (0, 0),
            ns_per_tick: 1.0,
        }
    }

    /// Takes a new anchor; the rate is refined from the growing interval.
    pub(crate) fn refresh(&mut self) {
        let now = pair();
        self.rate_from(now);
        self.anchor = now;
    }

    #[inline]
    pub(crate) fn to_ns(&self, t: u64) -> i64 {
        let delta = t.wrapping_sub(self.anchor.0) as i64 as f64;
        self.anchor.1 + (delta * self.ns_per_tick) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_and_anchor_turn_ticks_into_nanoseconds() {
        // 3 ticks a nanosecond, measured over 3,000 ticks.
        let mut c = Converter::from_pairs((1_000, 5_000), (4_000, 6_000));
        assert_eq!(c.to_ns(4_000), 6_000);
        assert_eq!(c.to_ns(7_000), 7_000);
        // Before the anchor (a record stamped just before a pass began).
        assert_eq!(c.to_ns(3_700), 5_900);
        // A later anchor refines the rate over the whole interval.
        c.rate_from((1_000 + 2_000_000, 5_000 + 1_000_000));
        c.anchor = (1_000 + 2_000_000, 5_000 + 1_000_000);
        assert_eq!(
            c.to_ns(1_000 + 2_000_000 + 2_000),
            5_000 + 1_000_000 + 1_000
        );
        // Ticks that wrap around stay in order.
        let w = Converter::from_pairs((u64::MAX - 999, 0), (999, 2_000));
        assert_eq!(w.to_ns(1_999), 3_000);
    }

    #[test]
    #[ignore = "needs a TSC the kernel trusts as its clock source (constant_tsc, nonstop_tsc, clocksource tsc); run with --ignored where there is one"]
    fn ticks_convert_close_to_the_real_time_clock() {
        assert!(available(), "no TSC the kernel trusts on this machine");
        let mut c = Converter::new();
        c.refresh();
        let t = ticks();
        let ns = clock::now_ns();
        // The two readings are a few hundred nanoseconds apart at most on
        // an idle machine; a loaded one may preempt between them, so the
        // bound is generous: it catches a wrong rate or unit, not jitter.
        assert!(
            (c.to_ns(t) - ns).abs() < 5_000_000,
            "{} vs {}",
            c.to_ns(t),
            ns
        );
    }
}
