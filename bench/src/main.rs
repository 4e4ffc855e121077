//! Side-by-side benchmarks of logbraid against peer logging libraries.
//!
//! `cargo run --release -p logbraid-bench -- --write bench/RESULTS.md`
//! runs every scenario for every library, each in a child process of its
//! own (this binary, re-executed with `child …`), checks every file the
//! libraries wrote, and writes the tables. See `bench/README.md`.

mod child;
mod libs;
mod report;
mod section;
mod sys;
mod timer;
mod verify;

use std::collections::HashMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use child::{ChildArgs, ChildReport, Scenario};
use verify::Verification;

/// Benchmarks logbraid against peer logging libraries and writes a
/// markdown report.
#[derive(Debug, Parser)]
#[command(name = "logbraid-bench")]
struct Cli {
    /// Write the report to this file (default: standard output).
    #[arg(long)]
    write: Option<PathBuf>,
    /// Libraries to run, comma-separated (default: all). logbraid is
    /// always included, as every ratio is relative to it.
    #[arg(long, value_delimiter = ',')]
    libs: Vec<String>,
    /// Smaller counts and one run: a smoke test, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Logging thread counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    threads: Vec<u64>,
    /// Throughput runs per library and thread count (median reported).
    #[arg(long)]
    runs: Option<usize>,
    /// Before each child, wait up to this many seconds for other processes
    /// to leave the CPUs idle (0: do not wait).
    #[arg(long, default_value_t = 3.0)]
    quiet_wait: f64,
    /// Scenarios to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    scenarios: Vec<Scenario>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Runs one measurement (used by the driver).
    #[command(hide = true)]
    Child(ChildArgs),
}

/// The counts of one benchmark run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub quick: bool,
    pub threads: Vec<u64>,
    pub scenarios: Vec<Scenario>,
    pub runs: usize,
    pub latency_per_thread: u64,
    pub latency_warmup: u64,
    pub throughput_total: u64,
    pub throughput_warmup: u64,
    pub disabled_calls: u64,
    pub disabled_warmup: u64,
    pub quiet_wait: Duration,
}

impl Plan {
    fn new(cli: &Cli) -> anyhow::Result<Plan> {
        let mut threads = cli.threads.clone();
        threads.dedup();
        anyhow::ensure!(
            !threads.is_empty() && threads.iter().all(|&t| t > 0),
            "--threads needs positive counts"
        );
        let scenarios = if cli.scenarios.is_empty() {
            vec![Scenario::Latency, Scenario::Throughput, Scenario::Disabled]
        } else {
            cli.scenarios.clone()
        };
        let (q, full) = (cli.quick, !cli.quick);
        Ok(Plan {
            quick: q,
            threads,
            scenarios,
            runs: cli.runs.unwrap_or(if full { 5 } else { 1 }).max(1),
            latency_per_thread: if full { 100_000 } else { 10_000 },
            latency_warmup: if full { 10_000 } else { 1_000 },
            throughput_total: if full { 2_000_000 } else { 200_000 },
            throughput_warmup: if full { 10_000 } else { 1_000 },
            disabled_calls: if full { 10_000_000 } else { 1_000_000 },
            disabled_warmup: if full { 1_000_000 } else { 100_000 },
            quiet_wait: Duration::try_from_secs_f64(cli.quiet_wait.max(0.0))
                .context("--quiet-wait is out of range")?,
        })
    }
}

/// One child's result, checked.
#[derive(Clone, Debug)]
pub struct Run {
    pub report: ChildReport,
    pub verify: Verification,
    /// Average cores other processes kept busy while the child ran.
    pub others_cores: Option<f64>,
}

/// A run, or why there is none.
pub type Outcome = Result<Run, String>;

/// Everything the report is made of.
#[derive(Debug, Default)]
pub struct Results {
    pub libs: Vec<&'static libs::Info>,
    pub latency: HashMap<(String, u64), Outcome>,
    pub throughput: HashMap<(String, u64), Vec<Outcome>>,
    pub disabled: HashMap<String, Outcome>,
    pub wall: Duration,
    /// Load average when the run started.
    pub load_before: Option<f64>,
    /// Average cores kept busy by other processes during the run.
    pub others_cores: Option<f64>,
}

const CHILD_TIMEOUT: Duration = Duration::from_secs(300);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Cmd::Child(args)) => child::main(args),
        None => drive(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn drive(cli: &Cli) -> anyhow::Result<()> {
    let plan = Plan::new(cli)?;
    let mut selected: Vec<&'static libs::Info> = vec![&libs::ALL[0]];
    if cli.libs.is_empty() {
        selected = libs::ALL.iter().collect();
    } else {
        for name in &cli.libs {
            let info = libs::info(name).with_context(|| {
                let names: Vec<_> = libs::ALL.iter().map(|i| i.name).collect();
                format!("unknown library {name}; known: {}", names.join(", "))
            })?;
            if !selected.iter().any(|i| i.name == info.name) {
                selected.push(info);
            }
        }
    }

    let started = Instant::now();
    let cpu_before = sys::CpuSnapshot::take();
    let mut results = Results {
        libs: selected.clone(),
        load_before: sys::load_average(),
        ..Results::default()
    };
    let mut jobs: Vec<(Scenario, u64, &'static libs::Info)> = Vec::new();
    for &scenario in &plan.scenarios {
        match scenario {
            Scenario::Latency => {
                for &t in &plan.threads {
                    jobs.extend(selected.iter().map(|&l| (scenario, t, l)));
                }
            }
            Scenario::Throughput => {
                // Round-robin over the libraries, so a disturbance on the
                // machine does not hit all runs of one library.
                for _ in 0..plan.runs {
                    for &t in &plan.threads {
                        jobs.extend(selected.iter().map(|&l| (scenario, t, l)));
                    }
                }
            }
            Scenario::Disabled => jobs.extend(selected.iter().map(|&l| (scenario, 1, l))),
        }
    }

    let total = jobs.len();
    for (n, (scenario, threads, lib)) in jobs.into_iter().enumerate() {
        wait_for_quiet(plan.quiet_wait);
        let outcome = run_child(&plan, lib.name, scenario, threads);
        eprintln!(
            "[{}/{}] {:?} {} × {}: {}",
            n + 1,
            total,
            scenario,
            lib.name,
            threads,
            report::summary(&outcome)
        );
        let key = (lib.name.to_string(), threads);
        match scenario {
            Scenario::Latency => {
                results.latency.insert(key, outcome);
            }
            Scenario::Throughput => results.throughput.entry(key).or_default().push(outcome),
            Scenario::Disabled => {
                results.disabled.insert(lib.name.to_string(), outcome);
            }
        }
    }
    results.wall = started.elapsed();
    if let (Some(a), Some(b)) = (cpu_before, sys::CpuSnapshot::take()) {
        results.others_cores = Some(a.others_cores(&b, results.wall.as_secs_f64()));
    }

    let markdown = report::render(&plan, &results);
    match &cli.write {
        Some(path) => {
            // Keep the sections of the collector and Python benches, which
            // this run does not measure.
            let markdown = match std::fs::read_to_string(path) {
                Ok(old) => section::carry_over(&old, &markdown),
                Err(_) => markdown,
            };
            std::fs::write(path, markdown)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {} in {:.0?}", path.display(), results.wall);
        }
        None => print!("{markdown}"),
    }
    Ok(())
}

/// Other processes' CPU use below this counts as a quiet machine.
const QUIET_CORES: f64 = 0.1;

/// Waits, up to `limit`, until other processes leave the CPUs idle for
/// half a second (this process is idle meanwhile).
fn wait_for_quiet(limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let Some(a) = sys::CpuSnapshot::take() else {
            return;
        };
        let t = Instant::now();
        std::thread::sleep(Duration::from_millis(500));
        let Some(b) = sys::CpuSnapshot::take() else {
            return;
        };
        if a.others_cores(&b, t.elapsed().as_secs_f64()) < QUIET_CORES {
            return;
        }
    }
}

/// Runs one measurement in a child process and checks its file.
fn run_child(plan: &Plan, lib: &str, scenario: Scenario, threads: u64) -> Outcome {
    let dir = tempfile::Builder::new()
        .prefix("logbraid-bench-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let (per_thread, warmup) = match scenario {
        Scenario::Latency => (plan.latency_per_thread, plan.latency_warmup),
        Scenario::Throughput => (plan.throughput_total / threads, plan.throughput_warmup),
        Scenario::Disabled => (plan.disabled_calls, plan.disabled_warmup),
    };
    // A peer built outside cargo is a program of its own taking the same
    // arguments; without it the row says how to build it.
    let exe = match libs::info(lib).and_then(|i| i.external) {
        Some(ext) => match ext.path() {
            Some(path) if path.is_file() => path,
            _ => return Err(format!("not built: run {}", ext.build)),
        },
        None => std::env::current_exe().map_err(|e| e.to_string())?,
    };
    let cpu_before = sys::CpuSnapshot::take();
    let child_start = Instant::now();
    let scenario_arg = match scenario {
        Scenario::Latency => "latency",
        Scenario::Throughput => "throughput",
        Scenario::Disabled => "disabled",
    };
    let mut child = Command::new(exe)
        .args(["child", "--lib", lib, "--scenario", scenario_arg])
        .args(["--threads", &threads.to_string()])
        .args(["--per-thread", &per_thread.to_string()])
        .args(["--warmup", &warmup.to_string()])
        .arg("--dir")
        .arg(dir.path())
        .env_remove("RUST_LOG")
        .env_remove("LOGBRAID_LEVEL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("timed out after {CHILD_TIMEOUT:?} (killed)"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break Err(e.to_string()),
        }
    };
    let others_cores = match (cpu_before, sys::CpuSnapshot::take()) {
        (Some(a), Some(b)) => Some(a.others_cores(&b, child_start.elapsed().as_secs_f64())),
        _ => None,
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let tail = |s: &str| {
        let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(3)..].join(" / ")
    };
    let status = status.map_err(|e| format!("{e}; stderr: {}", tail(&err)))?;
    if !status.success() {
        return Err(format!("child failed ({status}): {}", tail(&err)));
    }
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(child::MARKER))
        .ok_or_else(|| format!("child printed no result; stderr: {}", tail(&err)))?;
    let report: ChildReport =
        serde_json::from_str(line).map_err(|e| format!("bad child report: {e}"))?;
    let expected = match scenario {
        Scenario::Disabled => 0,
        _ => threads * (per_thread + warmup),
    };
    let verify = verify::check(dir.path(), expected)
        .map_err(|e| format!("cannot read the log files back: {e}"))?;
    Ok(Run {
        report,
        verify,
        others_cores,
    })
}
