//! `logbraid demo-threads`: the in-process pipeline end to end.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use logbraid::config::parse_size;
use logbraid::read::log_set;
use logbraid::sink::RollingFile;

use crate::tally::Tally;
use logbraid::{Builder, Compression};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Directory of the log files (created if missing).
    #[arg(long, default_value = "logs")]
    dir: PathBuf,
    /// Logging threads.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Records per thread.
    #[arg(long, default_value_t = 250_000)]
    records: u64,
    /// Rotate the file when it would exceed this size.
    #[arg(long, default_value = "8MiB")]
    max_bytes: String,
    /// Compression of rotated files: none, gzip or zstd.
    #[arg(long, default_value = "zstd")]
    compress: String,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let max_bytes = parse_size(&args.max_bytes).map_err(|e| anyhow::anyhow!("--max-bytes: {e}"))?;
    let compress: Compression = args
        .compress
        .parse()
        .map_err(|e| anyhow::anyhow!("--compress: {e}"))?;
    if args.threads == 0 {
        bail!("--threads: must be at least 1");
    }
    let path = args.dir.join("demo.log");
    // A run id tells this run's records from those of earlier runs, whose
    // files the rolling sink keeps (a restart never overwrites).
    let run = format!("{:x}", logbraid::clock::now_ns());
    let file = RollingFile::builder(&path)
        .max_bytes(max_bytes)
        .compression(compress);
    let guard = Builder::new()
        .level("info")
        .file(file)
        .with_context(|| format!("cannot open {}", path.display()))?
        .init()?;
    let logger = guard.logger().clone();

    let start = Instant::now();
    std::thread::scope(|s| {
        for worker in 0..args.threads {
            let run = run.as_str();
            std::thread::Builder::new()
                .name(format!("worker-{worker}"))
                .spawn_scoped(s, move || {
                    for i in 0..args.records {
                        log::info!(target: "demo", run = run, worker = worker; "request {} served in {} ms", i, i % 1000);
                    }
                })
                .expect("spawn a worker thread");
        }
    });
    let logged_in = start.elapsed();
    drop(guard); // flush, wait for compression, stop the writer
    let total = start.elapsed();
    let stats = logger.stats();

    let files = log_set(&path)?;
    let expected = args.threads as u64 * args.records;
    let check = verify(&files, &run, args.threads, args.records)?;

    let mut out = std::io::stdout().lock();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    writeln!(
        out,
        "logbraid demo: {} threads x {} records -> {}",
        args.threads,
        args.records,
        path.display()
    )?;
    writeln!(out, "  logged      {}", stats.logged)?;
    writeln!(out, "  written     {}", stats.written)?;
    writeln!(out, "  dropped     {}", stats.dropped)?;
    writeln!(
        out,
        "  throughput  {:.2} M records/s end to end ({:.3} s incl. flush; callers done after {:.3} s)",
        expected as f64 / total.as_secs_f64() / 1e6,
        total.as_secs_f64(),
        logged_in.as_secs_f64()
    )?;
    writeln!(
        out,
        "  queue       high-water {} bytes per thread, {} full-queue waits",
        stats.queue_high_water, stats.full_waits
    )?;
    let on_disk: u64 = files
        .iter()
        .map(|f| f.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    writeln!(
        out,
        "  files       {} ({} rotated, compression {compress}), {:.1} MiB of lines, {:.1} MiB on disk",
        files.len(),
        files.len().saturating_sub(1),
        mib(stats.bytes_written),
        mib(on_disk)
    )?;
    for f in &files {
        writeln!(out, "                {}", f.display())?;
    }
    writeln!(
        out,
        "  verified    {} of {} records of this run found in the files: {} missing, {} duplicated, {} out of order",
        check.found, expected, check.missing(), check.duplicated, check.out_of_order
    )?;
    let ok = check.found == expected && check.clean() && stats.dropped == 0;
    crate::tally::verdict(&mut out, ok)
}

/// Reads every file (oldest first) and checks that each worker's records
/// of this run appear exactly once and in the order they were logged.
fn verify(
    files: &[PathBuf],
    run: &str,
    threads: usize,
    records: u64,
) -> anyhow::Result<Tally<u64>> {
    let run_field = format!(" run={run} ");
    let mut tally = Tally::new((0..threads as u64).map(|w| (w, records)));
    tally.read(files, |line| {
        if !line.contains(&run_field) {
            return None;
        }
        Some((
            number_after(line, " worker=")?,
            number_after(line, "request ")?,
        ))
    })?;
    Ok(tally)
}

fn number_after(line: &str, marker: &str) -> Option<u64> {
    let at = line.find(marker)? + marker.len();
    let digits: &str = &line[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}
