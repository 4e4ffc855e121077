//! Facts about the process and the machine.

/// Peak resident set size of this process so far, in KiB.
///
/// On Linux this is `VmHWM` from `/proc/self/status`, the high-water mark
/// of this program's own address space. `getrusage`'s `ru_maxrss` is not
/// used there: across `execve` it keeps the peak of the address space the
/// process had before, which for a child spawned by the driver is the
/// driver's.
pub fn peak_rss_kib() -> u64 {
    if let Some(kib) = vm_hwm_kib() {
        return kib;
    }
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0;
        }
        usage
    };
    let max = usage.ru_maxrss.max(0) as u64;
    // macOS reports bytes, the others KiB.
    if cfg!(target_os = "macos") {
        max / 1024
    } else {
        max
    }
}

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// CPU time of the whole machine and of this process tree, to tell how
/// much other processes ran during a benchmark.
#[derive(Clone, Copy, Debug)]
pub struct CpuSnapshot {
    /// Busy time of all CPUs (`/proc/stat`), in seconds.
    machine_busy_s: f64,
    /// CPU time of this process and its waited-for children, in seconds.
    ours_s: f64,
}

impl CpuSnapshot {
    /// Now, or `None` where `/proc/stat` is not available.
    pub fn take() -> Option<CpuSnapshot> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
        let f: Vec<u64> = cpu
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq steal ...
        let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
        // SAFETY: sysconf has no preconditions.
        let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Some(CpuSnapshot {
            machine_busy_s: busy as f64 / tick,
            ours_s: cpu_seconds(libc::RUSAGE_SELF) + cpu_seconds(libc::RUSAGE_CHILDREN),
        })
    }

    /// Average cores other processes kept busy between `self` and `later`.
    pub fn others_cores(&self, later: &CpuSnapshot, wall_s: f64) -> f64 {
        let others = (later.machine_busy_s - self.machine_busy_s) - (later.ours_s - self.ours_s);
        (others / wall_s.max(1e-9)).max(0.0)
    }
}

fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(who, &mut u) != 0 {
            return 0.0;
        }
        u
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The CPU's model name.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// Logical CPUs this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Today's date (UTC), `YYYY-MM-DD`.
pub fn utc_date() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

/// The rustc that built this binary.
pub const RUSTC: &str = env!("BENCH_RUSTC_VERSION");

const LOCK: &str = include_str!("../../Cargo.lock");

/// Versions of `krate` in the workspace's lock file.
pub fn locked_version(krate: &str) -> String {
    let needle = format!("name = \"{krate}\"\nversion = \"");
    let versions: Vec<&str> = LOCK
        .match_indices(&needle)
        .filter_map(|(i, _)| LOCK[i + needle.len()..].split('"').next())
        .collect();
    if versions.is_empty() {
        "?".to_string()
    } else {
        versions.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_date_is_a_date() {
        let d = utc_date();
        assert!(jiff::civil::Date::strptime("%Y-%m-%d", &d).is_ok(), "{d}");
    }
}
