//! Where a burst's latency tail comes from: each call of the latency
//! scenario's shape (bursts of 20, `thread::sleep(100 µs)` between) timed
//! and grouped by its position in the burst, for logbraid's `info!`, the
//! `log` facade into the same logger, and an empty call (the timer's
//! noise alone). The first call of a burst pays for what the pause cost
//! the caller's core: its caches used by others, and any line the writer
//! took meanwhile.
//!
//! ```sh
//! cargo run --release -p logbraid-bench --bin by_position
//! ```

use std::hint::black_box;
use std::time::Duration;

#[path = "../timer.rs"]
mod timer;

const BURST: usize = 20;
const BURSTS: usize = 5_000;
const WARM_BURSTS: usize = 500;

/// A name and the call to time with the record's id.
type Path = (&'static str, fn(u64));

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let _guard = logbraid::Builder::new()
        .level("info")
        .file(logbraid::sink::RollingFile::builder(
            dir.path().join("by_position.log"),
        ))?
        .init()?;
    logbraid::preallocate();
    let cal = timer::Calibration::measure(Duration::from_millis(200))?;
    let paths: [Path; 3] = [
        ("logbraid::info!", |i| {
            logbraid::info!("request {} served in {} ms", i, 3)
        }),
        ("log::info!", |i| {
            log::info!("request {} served in {} ms", i, 3)
        }),
        ("empty", |i| {
            black_box(i);
        }),
    ];
    println!(
        "Timer: {}, {:.1} ns a start/stop pair (subtracted). {BURSTS} bursts of {BURST} per path.\n",
        timer::SOURCE,
        cal.overhead_ns()
    );
    println!("| path | position | p50 | p90 | p99 | p99.9 | mean below p99 |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut id = 0u64;
    for (name, call) in paths {
        let mut by_position: Vec<Vec<u64>> =
            (0..BURST).map(|_| Vec::with_capacity(BURSTS)).collect();
        for burst in 0..WARM_BURSTS + BURSTS {
            for samples in by_position.iter_mut() {
                id += 1;
                let a = timer::start();
                call(id);
                let b = timer::stop();
                if burst >= WARM_BURSTS {
                    samples.push(cal.ns(a, b));
                }
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        let rest: Vec<u64> = by_position[1..].concat();
        let first = std::mem::take(&mut by_position[0]);
        let mut all = [first.clone(), rest.clone()].concat();
        for (label, mut v) in [("first", first), ("others", rest)] {
            v.sort_unstable();
            row(name, label, &v);
        }
        all.sort_unstable();
        row(name, "all", &all);
    }
    Ok(())
}

fn row(name: &str, label: &str, sorted: &[u64]) {
    let at = |f: f64| ((sorted.len() - 1) as f64 * f) as usize;
    let q = |f: f64| sorted[at(f)];
    // The stopwatch ticks in steps (10 ns on some machines): the mean of
    // the calls below the p99 shows a change smaller than a step.
    let body = &sorted[..at(0.99)];
    let mean = body.iter().sum::<u64>() as f64 / body.len().max(1) as f64;
    println!(
        "| {name} | {label} | {} ns | {} ns | {} ns | {} ns | {mean:.1} ns |",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999)
    );
}
