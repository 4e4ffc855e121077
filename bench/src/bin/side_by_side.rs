//! logbraid's own `info!` against `log::info!` in one process, into one
//! file: 100,000 calls of each, every call timed in bursts of 20 with a
//! 100 µs pause, the two paths taking turns burst by burst. Twice: once
//! with the fenced `rdtsc` stopwatch of the latency tables (`lfence` on
//! both sides, so nothing of the call overlaps the timer), once with
//! `std::time::Instant`, as a program timing its own calls would; each
//! time the timer's own median overhead is subtracted. Then the file is
//! read back: each record once, and every line, whichever path wrote it,
//! the text layout's line for its message. Prints each path's p50 and p99
//! and the ratio of the p50s, for each timer.
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

/// Times 100,000 calls of each path with `time` (which runs the call it
/// is given and returns its nanoseconds), the ids from `first` on: macro
/// records take the even ids, facade records the odd ones.
fn run(first: u64, mut time: impl FnMut(&mut dyn FnMut()) -> u64) -> (Vec<u64>, Vec<u64>) {
    let mut macros = Vec::with_capacity(CALLS as usize);
    let mut facade = Vec::with_capacity(CALLS as usize);
    for burst in 0..CALLS / BURST {
        for i in 0..BURST {
            let id = first + 2 * (burst * BURST + i);
            macros.push(time(&mut || {
                logbraid::info!("request {} served in {} ms", id, 3)
            }));
        }
        pause();
        for i in 0..BURST {
            let id = first + 2 * (burst * BURST + i) + 1;
            facade.push(time(&mut || {
                log::info!("request {} served in {} ms", id, 3)
            }));
        }
        pause();
    }
    (macros, facade)
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("side_by_side.log");
    let guard = logbraid::Builder::new()
        .level("info")
        .file(logbraid::sink::RollingFile::builder(&path))?
        .init()?;
    let cal = timer::Calibration::measure(Duration::from_millis(200))?;
    let fenced = run(0, |f| {
        let a = timer::start();
        f();
        let b = timer::stop();
        cal.ns(a, b)
    });
    let instant_overhead = {
        let mut o: Vec<u64> = (0..100_000)
            .map(|_| {
                let a = Instant::now();
                Instant::now().duration_since(a).as_nanos() as u64
            })
            .collect();
        o.sort_unstable();
        quantile(&o, 0.5)
    };
    let instant = run(2 * CALLS, |f| {
        let a = Instant::now();
        f();
        (a.elapsed().as_nanos() as u64).saturating_sub(instant_overhead)
    });
    drop(guard);

    let text = std::fs::read_to_string(&path).context("reading the log back")?;
    let mut seen = vec![false; 4 * CALLS as usize];
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
    println!("file verified: {} records, each once", 4 * CALLS);
    for ((mut macros, mut facade), timer) in [
        (
            fenced,
            format!(
                "{}, {:.2} ticks/ns, overhead {:.1} ns subtracted",
                timer::SOURCE,
                cal.ticks_per_ns,
                cal.overhead_ns()
            ),
        ),
        (
            instant,
            format!("Instant::now(), overhead {instant_overhead} ns subtracted"),
        ),
    ] {
        macros.sort_unstable();
        facade.sort_unstable();
        let (m50, f50) = (quantile(&macros, 0.5), quantile(&facade, 0.5));
        println!(
            "timer: {timer}\n  logbraid::info!  p50 {m50} ns  p99 {} ns\n  log::info!       p50 {f50} ns  p99 {} ns\n  p50 ratio {:.2} (macro ÷ facade)",
            quantile(&macros, 0.99),
            quantile(&facade, 0.99),
            m50 as f64 / f50.max(1) as f64,
        );
    }
    Ok(())
}
