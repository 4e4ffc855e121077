//! A cycle-accurate stopwatch for timing single calls.
//!
//! On x86_64 it reads the time-stamp counter (`lfence; rdtsc; lfence` to
//! start, `rdtscp; lfence` to stop, so the timed code can neither move before
//! the first read nor after the second). The counter is converted to
//! nanoseconds with a rate calibrated once against [`Instant`]. Elsewhere it
//! falls back to [`Instant`] itself, in nanoseconds.

use std::time::{Duration, Instant};

/// Which clock [`start`] and [`stop`] read.
pub const SOURCE: &str = if cfg!(target_arch = "x86_64") {
    "rdtsc"
} else {
    "Instant"
};

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::{__rdtscp, _mm_lfence, _rdtsc};

    #[inline(always)]
    pub(super) fn start() -> u64 {
        // SAFETY: lfence and rdtsc are available on every x86_64 CPU and have
        // no memory effects.
        unsafe {
            _mm_lfence();
            let t = _rdtsc();
            _mm_lfence();
            t
        }
    }

    #[inline(always)]
    pub(super) fn stop() -> u64 {
        let mut aux = 0u32;
        // SAFETY: rdtscp writes only `aux`, a local; the CPU check is done
        // once by `calibrate` (the `rdtscp` flag is on every x86_64 CPU made
        // since 2006 and the benchmark refuses to start without it).
        unsafe {
            let t = __rdtscp(&mut aux);
            _mm_lfence();
            t
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    use std::sync::OnceLock;
    use std::time::Instant;

    fn epoch() -> Instant {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        *EPOCH.get_or_init(Instant::now)
    }

    #[inline(always)]
    pub(super) fn start() -> u64 {
        epoch().elapsed().as_nanos() as u64
    }

    #[inline(always)]
    pub(super) fn stop() -> u64 {
        epoch().elapsed().as_nanos() as u64
    }
}

/// Reads the clock before the timed code.
#[inline(always)]
pub fn start() -> u64 {
    imp::start()
}

/// Reads the clock after the timed code.
#[inline(always)]
pub fn stop() -> u64 {
    imp::stop()
}

/// The clock's rate and the cost of one `start`/`stop` pair.
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    /// Ticks per nanosecond.
    pub ticks_per_ns: f64,
    /// Median ticks between `start` and `stop` with nothing in between:
    /// subtracted from every sample.
    pub overhead_ticks: u64,
}

impl Calibration {
    /// Measures the rate over `span` against [`Instant`], and the overhead
    /// as the median of many empty pairs.
    pub fn measure(span: Duration) -> anyhow::Result<Calibration> {
        #[cfg(target_arch = "x86_64")]
        {
            let tsc = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            if !tsc.is_empty() && !tsc.contains(" rdtscp") {
                anyhow::bail!("this CPU has no rdtscp instruction");
            }
        }
        let t0 = Instant::now();
        let c0 = start();
        while t0.elapsed() < span {
            std::hint::spin_loop();
        }
        let c1 = stop();
        let ns = t0.elapsed().as_nanos() as f64;
        let ticks_per_ns = (c1 - c0) as f64 / ns;

        let mut pairs: Vec<u64> = (0..100_000)
            .map(|_| {
                let a = start();
                let b = stop();
                b.saturating_sub(a)
            })
            .collect();
        pairs.sort_unstable();
        Ok(Calibration {
            ticks_per_ns,
            overhead_ticks: pairs[pairs.len() / 2],
        })
    }

    /// A timed interval in nanoseconds, the overhead taken out.
    #[inline]
    pub fn ns(&self, start: u64, stop: u64) -> u64 {
        let ticks = stop
            .saturating_sub(start)
            .saturating_sub(self.overhead_ticks);
        (ticks as f64 / self.ticks_per_ns).round() as u64
    }

    /// The overhead in nanoseconds.
    pub fn overhead_ns(&self) -> f64 {
        self.overhead_ticks as f64 / self.ticks_per_ns
    }
}
