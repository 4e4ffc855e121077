//! One measurement, in a process of its own: most libraries install a
//! process-global logger that cannot be removed, so every (library,
//! scenario) pair gets a fresh process. The result is printed on stdout as
//! one JSON line after [`MARKER`].

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::libs::{self, Peer, SelfStats};
use crate::sys;
use crate::timer::{self, Calibration};

/// Starts the result line on the child's stdout (libraries may print too).
pub const MARKER: &str = "LOGBRAID-BENCH-RESULT ";

/// Calls per burst in the latency scenario.
pub const BURST: u64 = 20;
/// Pause between bursts in the latency scenario.
pub const PAUSE: Duration = Duration::from_micros(100);
/// Pause after the throughput warm-up, so every library starts the timed
/// part with its queue drained.
pub const SETTLE: Duration = Duration::from_millis(200);
/// Times the disabled loop is timed; the median is reported.
pub const DISABLED_REPS: usize = 5;
/// How long a child polls for a file its library said was complete.
pub const POLL_LIMIT: Duration = Duration::from_secs(60);

/// What a child measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Bursts of calls, each one timed.
    Latency,
    /// Calls as fast as possible, timed until the file is complete.
    Throughput,
    /// Calls below the level filter.
    Disabled,
}

/// The child's command line.
#[derive(Clone, Debug, clap::Args)]
pub struct ChildArgs {
    /// Library name (see `libs::ALL`).
    #[arg(long)]
    pub lib: String,
    /// What to measure.
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// Logging threads.
    #[arg(long)]
    pub threads: u64,
    /// Measured calls per thread.
    #[arg(long)]
    pub per_thread: u64,
    /// Unmeasured calls per thread before the measured ones.
    #[arg(long)]
    pub warmup: u64,
    /// Directory the library writes into.
    #[arg(long)]
    pub dir: PathBuf,
}

/// Caller latency, in nanoseconds, timer overhead subtracted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    pub samples: u64,
    pub clock: String,
    pub ticks_per_ns: f64,
    pub timer_overhead_ns: f64,
}

/// End-to-end throughput.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Throughput {
    /// Timed records (warm-up excluded).
    pub records: u64,
    /// From the start of the timed part until the file was complete.
    pub elapsed_s: f64,
    pub lines_per_s: f64,
    /// Time spent in the library's flush/stop call.
    pub finish_s: f64,
    /// Time spent polling the file after that call returned (0: the file
    /// was complete when it returned).
    pub poll_s: f64,
    /// The poll gave up before the file had every line.
    pub poll_gave_up: bool,
}

/// Cost of a call the level filter rejects.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Disabled {
    pub calls: u64,
    pub ns_per_call: f64,
    /// The same loop without the call.
    pub loop_ns_per_call: f64,
}

/// Everything a child reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChildReport {
    pub lib: String,
    pub scenario: Scenario,
    pub threads: u64,
    pub latency: Option<Latency>,
    pub throughput: Option<Throughput>,
    pub disabled: Option<Disabled>,
    /// Peak resident set before the library was installed.
    pub rss_start_kib: u64,
    /// Peak resident set of the whole run.
    pub rss_peak_kib: u64,
    pub self_stats: Option<SelfStats>,
}

/// Runs the child and prints its report.
pub fn main(args: &ChildArgs) -> anyhow::Result<()> {
    let report = match args.lib.as_str() {
        "logbraid" => run::<libs::Logbraid>(args),
        "logbraid-macros" => run::<libs::LogbraidMacros>(args),
        #[cfg(feature = "peer-tracing")]
        "tracing" => run::<libs::Tracing>(args),
        #[cfg(feature = "peer-spdlog")]
        "spdlog-rs" => run::<libs::Spdlog>(args),
        #[cfg(feature = "peer-ftlog")]
        "ftlog" => run::<libs::Ftlog>(args),
        #[cfg(feature = "peer-fast-log")]
        "fast_log" => run::<libs::FastLog>(args),
        #[cfg(feature = "peer-log4rs")]
        "log4rs" => run::<libs::Log4rs>(args),
        #[cfg(feature = "peer-flexi")]
        "flexi_logger" => run::<libs::Flexi>(args),
        other => match libs::info(other) {
            Some(libs::Info {
                external: Some(e), ..
            }) => anyhow::bail!(
                "{other} runs as a program of its own (`{}` under the target directory, built by `{}`)",
                e.program,
                e.build
            ),
            Some(libs::Info {
                feature: Some(f), ..
            }) => anyhow::bail!("{other} is not compiled in (cargo feature `{f}`)"),
            _ => anyhow::bail!("unknown library {other}"),
        },
    }?;
    println!("{MARKER}{}", serde_json::to_string(&report)?);
    Ok(())
}

fn run<P: Peer>(args: &ChildArgs) -> anyhow::Result<ChildReport> {
    let rss_start_kib = sys::peak_rss_kib();
    let mut report = ChildReport {
        lib: args.lib.clone(),
        scenario: args.scenario,
        threads: args.threads,
        latency: None,
        throughput: None,
        disabled: None,
        rss_start_kib,
        rss_peak_kib: 0,
        self_stats: None,
    };
    match args.scenario {
        Scenario::Latency => {
            // Calibrate before the library starts its threads.
            let cal = Calibration::measure(Duration::from_millis(200))?;
            let guard = P::init(&args.dir)?;
            let hist = latency::<P>(args, cal)?;
            report.self_stats = P::finish(guard)?;
            report.latency = Some(Latency {
                p50: hist.value_at_quantile(0.50),
                p99: hist.value_at_quantile(0.99),
                p999: hist.value_at_quantile(0.999),
                max: hist.max(),
                mean: hist.mean(),
                samples: hist.len(),
                clock: timer::SOURCE.to_string(),
                ticks_per_ns: cal.ticks_per_ns,
                timer_overhead_ns: cal.overhead_ns(),
            });
        }
        Scenario::Throughput => {
            let guard = P::init(&args.dir)?;
            let (t, stats) = throughput::<P>(args, guard)?;
            report.throughput = Some(t);
            report.self_stats = stats;
        }
        Scenario::Disabled => {
            let guard = P::init(&args.dir)?;
            report.disabled = Some(disabled::<P>(args)?);
            report.self_stats = P::finish(guard)?;
        }
    }
    report.rss_peak_kib = sys::peak_rss_kib();
    Ok(report)
}

fn spawn_workers<T: Send + 'static>(
    threads: u64,
    body: impl Fn(u64) -> T + Send + Sync + 'static,
) -> anyhow::Result<Vec<thread::JoinHandle<T>>> {
    let body = Arc::new(body);
    (0..threads)
        .map(|t| {
            let body = Arc::clone(&body);
            thread::Builder::new()
                .name(format!("bench-{t}"))
                .spawn(move || body(t))
                .context("cannot spawn a logging thread")
        })
        .collect()
}

fn join_all<T>(handles: Vec<thread::JoinHandle<T>>) -> anyhow::Result<Vec<T>> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .map_err(|_| anyhow::anyhow!("a logging thread panicked"))
        })
        .collect()
}

/// The first record index of thread `t`: each thread logs a disjoint range,
/// warm-up included, so the file can be checked line by line.
fn base(args: &ChildArgs, t: u64) -> u64 {
    t * (args.warmup + args.per_thread)
}

fn latency<P: Peer>(args: &ChildArgs, cal: Calibration) -> anyhow::Result<Histogram<u64>> {
    let barrier = Arc::new(Barrier::new(args.threads as usize));
    let (warmup, total) = (args.warmup, args.warmup + args.per_thread);
    let bases: Vec<u64> = (0..args.threads).map(|t| base(args, t)).collect();
    let handles = spawn_workers(args.threads, move |t| {
        let mut hist = new_histogram();
        let base = bases[t as usize];
        P::thread_start();
        barrier.wait();
        let mut k = 0;
        while k < total {
            let end = (k + BURST).min(total);
            while k < end {
                let index = base + k;
                let ms = index % 1000;
                let a = timer::start();
                P::info(index, ms);
                let b = timer::stop();
                if k >= warmup {
                    hist.saturating_record(cal.ns(a, b));
                }
                k += 1;
            }
            thread::sleep(PAUSE);
        }
        hist
    })?;
    let mut all = new_histogram();
    for h in join_all(handles)? {
        all.add(h)?;
    }
    Ok(all)
}

/// Nanoseconds from 1 to 100 s at 3 significant digits: a sample above
/// that would be recorded as 100 s (none comes near).
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

fn throughput<P: Peer>(
    args: &ChildArgs,
    guard: P::Guard,
) -> anyhow::Result<(Throughput, Option<SelfStats>)> {
    let ready = Arc::new(Barrier::new(args.threads as usize + 1));
    let go = Arc::new(Barrier::new(args.threads as usize + 1));
    let (warmup, total) = (args.warmup, args.warmup + args.per_thread);
    let bases: Vec<u64> = (0..args.threads).map(|t| base(args, t)).collect();
    let handles = {
        let (ready, go) = (Arc::clone(&ready), Arc::clone(&go));
        spawn_workers(args.threads, move |t| {
            let base = bases[t as usize];
            P::thread_start();
            for k in 0..warmup {
                P::info(base + k, (base + k) % 1000);
            }
            ready.wait();
            go.wait();
            for k in warmup..total {
                P::info(base + k, (base + k) % 1000);
            }
        })?
    };
    ready.wait();
    thread::sleep(SETTLE);
    let start = Instant::now();
    go.wait();
    join_all(handles)?;
    let finish_start = Instant::now();
    let stats = P::finish(guard)?;
    let finished = Instant::now();

    // The library says the file is complete; check by counting lines, and
    // if it is not, keep counting until it is (the clock keeps running).
    let expected = args.threads * total;
    let mut counter = LineCounter::new(&args.dir);
    let mut end = finished;
    let mut gave_up = false;
    if counter.count()? < expected {
        loop {
            if counter.count()? >= expected {
                end = Instant::now();
                break;
            }
            if finished.elapsed() > POLL_LIMIT {
                end = Instant::now();
                gave_up = true;
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
    let elapsed = end - start;
    let records = args.threads * args.per_thread;
    Ok((
        Throughput {
            records,
            elapsed_s: elapsed.as_secs_f64(),
            lines_per_s: records as f64 / elapsed.as_secs_f64(),
            finish_s: (finished - finish_start).as_secs_f64(),
            poll_s: (end - finished).as_secs_f64(),
            poll_gave_up: gave_up,
        },
        stats,
    ))
}

fn disabled<P: Peer>(args: &ChildArgs) -> anyhow::Result<Disabled> {
    let (warmup, calls) = (args.warmup, args.per_thread);
    let h = thread::Builder::new()
        .name("bench-0".into())
        .spawn(move || {
            for i in 0..warmup {
                let (index, ms) = (black_box(i), black_box(i % 1000));
                P::debug(index, ms);
            }
            let mut with_call = Vec::with_capacity(DISABLED_REPS);
            let mut bare = Vec::with_capacity(DISABLED_REPS);
            for _ in 0..DISABLED_REPS {
                let t = Instant::now();
                for i in 0..calls {
                    let (index, ms) = (black_box(i), black_box(i % 1000));
                    P::debug(index, ms);
                }
                with_call.push(t.elapsed());
                let t = Instant::now();
                for i in 0..calls {
                    black_box((black_box(i), black_box(i % 1000)));
                }
                bare.push(t.elapsed());
            }
            with_call.sort_unstable();
            bare.sort_unstable();
            (with_call[DISABLED_REPS / 2], bare[DISABLED_REPS / 2])
        })?;
    let (with_call, bare) = h
        .join()
        .map_err(|_| anyhow::anyhow!("the logging thread panicked"))?;
    Ok(Disabled {
        calls,
        ns_per_call: with_call.as_nanos() as f64 / calls as f64,
        loop_ns_per_call: bare.as_nanos() as f64 / calls as f64,
    })
}

/// Counts the newlines of every file in a directory, reading only what was
/// added since the last count.
struct LineCounter {
    dir: PathBuf,
    seen: Vec<(PathBuf, u64, u64)>,
    buf: Vec<u8>,
}

impl LineCounter {
    fn new(dir: &Path) -> Self {
        LineCounter {
            dir: dir.to_path_buf(),
            seen: Vec::new(),
            buf: vec![0; 1 << 20],
        }
    }

    fn count(&mut self) -> anyhow::Result<u64> {
        use std::io::{Read, Seek, SeekFrom};
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if !path.is_file() {
                continue;
            }
            let i = match self.seen.iter().position(|(p, _, _)| *p == path) {
                Some(i) => i,
                None => {
                    self.seen.push((path.clone(), 0, 0));
                    self.seen.len() - 1
                }
            };
            let (_, offset, lines) = &mut self.seen[i];
            let mut f = std::fs::File::open(&path)?;
            f.seek(SeekFrom::Start(*offset))?;
            loop {
                let n = f.read(&mut self.buf)?;
                if n == 0 {
                    break;
                }
                *offset += n as u64;
                *lines += self.buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            }
        }
        Ok(self.seen.iter().map(|(_, _, l)| l).sum())
    }
}
