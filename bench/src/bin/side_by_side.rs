//! logbraid's own `info!` against `log::info!` in one process, into one
//! file: 100,000 calls of each, every call timed (`rdtsc`, the timer's
//! overhead subtracted) in bursts of 20 with a 100 µs pause, the two paths
//! taking turns burst by burst. Then the file is read back: each record
//! once, and every line, whichever path wrote it, the text layout's line
//! for its message. Prints each path's p50 and p99 and the ratio of the
//! p50s.
//!
//! ```sh
//! cargo run --release -p logbraid-bench --bin side_by_side
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

#[path = "../timer.rs"]
mod timer;

const CALLS: u64 = 100_000;
const BURST: u64 = 20;
const PAUSE: Duration = Duration::from_micros(100);

fn pause() {
    let until = Instant::now() + PAUSE;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize]
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("side_by_side.log");
    let guard = logbraid::Builder::new()
        .level("info")
        .file(logbraid::sink::RollingFile::builder(&path))?
        .init()?;
    let cal = timer::Calibration::measure(Duration::from_millis(200))?;
    let mut macros = Vec::with_capacity(CALLS as usize);
    let mut facade = Vec::with_capacity(CALLS as usize);
    // Macro records take the even ids, facade records the odd ones.
    for burst in 0..CALLS / BURST {
        for i in 0..BURST {
            let id = 2 * (burst * BURST + i);
            let a = timer::start();
            logbraid::info!("request {} served in {} ms", id, 3);
            let b = timer::stop();
            macros.push(cal.ns(a, b));
        }
        pause();
        for i in 0..BURST {
            let id = 2 * (burst * BURST + i) + 1;
            let a = timer::start();
            log::info!("request {} served in {} ms", id, 3);
            let b = timer::stop();
            facade.push(cal.ns(a, b));
        }
        pause();
    }
    drop(guard);

    let text = std::fs::read_to_string(&path).context("reading the log back")?;
    let mut seen = vec![false; 2 * CALLS as usize];
    let target = module_path!();
    for line in text.lines() {
        // 2026-11-22T10:04:05.123456Z INFO  [4242/main] side_by_side: request 7 served in 3 ms
        let rest = line.split_once(' ').map(|(_, r)| r).unwrap_or("");
        let Some(msg) = rest.strip_prefix("INFO  [").and_then(|r| {
            let (_, r) = r.split_once("] ")?;
            r.strip_prefix(target)?.strip_prefix(": request ")
        }) else {
            bail!("not a record of this run: {line:?}");
        };
        let id: u64 = msg
            .strip_suffix(" served in 3 ms")
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("malformed record: {line:?}"))?;
        let slot = seen
            .get_mut(id as usize)
            .with_context(|| format!("id out of range: {line:?}"))?;
        if std::mem::replace(slot, true) {
            bail!("record {id} written twice");
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        bail!("record {missing} missing");
    }
    macros.sort_unstable();
    facade.sort_unstable();
    let (m50, f50) = (quantile(&macros, 0.5), quantile(&facade, 0.5));
    println!(
        "logbraid::info!  p50 {m50} ns  p99 {} ns\nlog::info!       p50 {f50} ns  p99 {} ns\np50 ratio {:.2} (macro ÷ facade); file verified: {} records, each once\ntimer: {}, {:.2} ticks/ns, overhead {:.1} ns subtracted",
        quantile(&macros, 0.99),
        quantile(&facade, 0.99),
        m50 as f64 / f50.max(1) as f64,
        2 * CALLS,
        timer::SOURCE,
        cal.ticks_per_ns,
        cal.overhead_ns()
    );
    Ok(())
}
