//! The Rust side of `scripts/soak`: a process that logs as fast as it can
//! until a deadline, through the `log` facade, through `tracing`, or
//! forwarding to a `logbraid serve`, and publishes how many records it
//! has logged so far in a shared counter file, so that the soak script can
//! put each memory sample beside the number of records logged at that time.
//!
//! ```sh
//! cargo build --release -p logbraid-bench --features soak --bin soak_child
//! scripts/soak --only rust-log,rust-tracing
//! ```

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use logbraid::forward::{Endpoint, ForwardOptions};
use logbraid::sink::RollingFile;
use logbraid::Builder;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// `log::info!` from every thread, into a rotating file.
    Log,
    /// `tracing::info!` inside spans, through `logbraid::bridge::tracing`.
    Tracing,
    /// `log::info!` forwarded to `--url` (a `logbraid serve`).
    Forward,
}

#[derive(Parser, Debug)]
struct Cli {
    #[arg(value_enum)]
    kind: Kind,
    /// Seconds to log for.
    #[arg(long)]
    seconds: f64,
    /// Logging threads.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// The log file (`log`, `tracing`).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Where to forward (`forward`): unix:PATH or tcp://HOST:PORT.
    #[arg(long)]
    url: Option<String>,
    #[arg(long, default_value_t = 50 << 20)]
    max_bytes: u64,
    #[arg(long, default_value_t = 2)]
    backup_count: usize,
    /// A file of 64 little-endian u64 slots shared with the soak script.
    #[arg(long)]
    counter: PathBuf,
    /// The first slot of this process's threads in `--counter`.
    #[arg(long, default_value_t = 0)]
    slot: usize,
}

const SLOTS: usize = 64;
/// Records between two stores of a thread's count.
const PUBLISH_EVERY: u64 = 256;

/// The counter file, mapped shared: slot `i` is written by one thread only
/// and read by the soak script.
struct Counters {
    base: *const AtomicU64,
}

// SAFETY: the mapping lives until the process exits (never unmapped) and is
// only accessed through atomics.
unsafe impl Send for Counters {}
unsafe impl Sync for Counters {}

impl Counters {
    fn open(path: &Path) -> anyhow::Result<Counters> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let len = SLOTS * 8;
        file.set_len(len as u64)?;
        // SAFETY: a fresh shared mapping of a file we hold open; the result
        // is checked below. The fd may be closed afterwards.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        anyhow::ensure!(
            ptr != libc::MAP_FAILED,
            "mmap {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        Ok(Counters {
            base: ptr.cast::<AtomicU64>(),
        })
    }

    fn store(&self, slot: usize, n: u64) {
        assert!(slot < SLOTS);
        // SAFETY: slot < SLOTS and the mapping is SLOTS * 8 bytes, page
        // aligned, so every slot is an aligned u64 inside it.
        unsafe { &*self.base.add(slot) }.store(n.to_le(), Ordering::Relaxed);
    }
}

fn rolling(cli: &Cli) -> anyhow::Result<logbraid::sink::RollingFileBuilder> {
    let file = cli.file.clone().context("--file is required")?;
    Ok(RollingFile::builder(file)
        .max_bytes(cli.max_bytes)
        .backup_count(cli.backup_count))
}

/// Runs `log_one(thread, i)` on `threads` threads until the deadline.
fn spin(cli: &Cli, counters: &Counters, log_one: fn(usize, u64)) {
    let deadline = Instant::now() + Duration::from_secs_f64(cli.seconds);
    std::thread::scope(|s| {
        for t in 0..cli.threads {
            let slot = cli.slot + t;
            s.spawn(move || {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    for _ in 0..PUBLISH_EVERY {
                        log_one(t, i);
                        i += 1;
                    }
                    counters.store(slot, i);
                }
            });
        }
    });
}

fn tracing_one(t: usize, i: u64) {
    // A new span every 64 records, so span creation, its extensions and
    // its fields are exercised as well as events.
    thread_local! {
        static SPAN: std::cell::RefCell<Option<tracing::span::EnteredSpan>> =
            const { std::cell::RefCell::new(None) };
    }
    if i % 64 == 0 {
        SPAN.with(|s| {
            let mut s = s.borrow_mut();
            drop(s.take());
            *s = Some(tracing::info_span!("batch", t, first = i).entered());
        });
    }
    tracing::info!(n = i, user = "ada", "t{t} {i} request served in 3 ms");
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let counters = Counters::open(&cli.counter)?;
    match cli.kind {
        Kind::Log => {
            let guard = Builder::new()
                .level("info")
                .inherit_collector(false)
                .file(rolling(&cli)?)?
                .init()?;
            spin(
                &cli,
                &counters,
                |t, i| log::info!(user = "ada"; "t{t} {i} request served in 3 ms"),
            );
            drop(guard);
        }
        Kind::Forward => {
            let url = cli.url.clone().context("--url is required")?;
            let guard = Builder::new()
                .level("info")
                .inherit_collector(false)
                .forward(ForwardOptions::new(Endpoint::parse(&url)?))?
                .init()?;
            spin(
                &cli,
                &counters,
                |t, i| log::info!(user = "ada"; "t{t} {i} request served in 3 ms"),
            );
            logbraid::flush_all();
            drop(guard);
        }
        Kind::Tracing => {
            use tracing_subscriber::layer::SubscriberExt;
            let (logger, guard) = Builder::new()
                .level("info")
                .inherit_collector(false)
                .file(rolling(&cli)?)?
                .build()?;
            let subscriber =
                tracing_subscriber::registry().with(logbraid::bridge::tracing::layer(logger));
            tracing::subscriber::set_global_default(subscriber)?;
            spin(&cli, &counters, tracing_one);
            drop(guard);
        }
    }
    Ok(())
}
