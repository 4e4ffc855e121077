//! `logbraid cat`: a log set (the active file and its rotated, compressed
//! backups) read as one stream, several sets merged by timestamp, followed
//! across rotations, filtered, as text, coloured text or JSON lines.

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use logbraid::read::{parse_instant, Entry, Follower, Merge, SetReader};
use logbraid::sink::color_enabled;
use logbraid::{ColorChoice, Level};
use regex::{Regex, RegexBuilder};

/// How often a follower looks for new records.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The active file of each log set (`logs/app.log`); its backups are
    /// found beside it by the rolling file's names (`app.log.1`,
    /// `app.log.2.gz`, `app.log.2026-11-22_10-00-00.zst`, …).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Keep reading what is written, across rotations, until SIGINT or
    /// SIGTERM; a file that does not exist yet is waited for.
    #[arg(short, long)]
    follow: bool,
    /// Only records at this level or more severe (trace, debug, info,
    /// warn, error, critical).
    #[arg(long, value_name = "LEVEL")]
    level: Option<Level>,
    /// Only records whose logger (target) is this one or below it
    /// (`app` takes `app`, `app::db` and `app.db`, not `apple`).
    #[arg(long, value_name = "NAME")]
    logger: Option<String>,
    /// Only records from this host, program or pid (what the record
    /// carries: the text layout shows the pid, the JSON layout all three).
    #[arg(long, value_name = "HOST|PROGRAM|PID")]
    source: Option<String>,
    /// Only records at or after this instant: RFC 3339
    /// (`2026-11-22T10:00:00Z`) or a duration before now (`10m`, `2h`).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Only records before this instant (same forms as --since).
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    /// Only records matching this regular expression anywhere in the
    /// record as stored, continuation lines included (`^` and `$` match at
    /// the start and end of each line).
    #[arg(long, value_name = "REGEX")]
    grep: Option<String>,
    /// One JSON object per record: ts, level, logger, message, the host,
    /// pid and program when known, fields.
    #[arg(long)]
    json: bool,
    /// Colour the timestamp and level: auto (on a terminal, unless
    /// NO_COLOR is set), always, never.
    #[arg(long, value_name = "WHEN", default_value = "auto")]
    color: ColorChoice,
}

/// What a record must be to be shown.
#[derive(Debug, Default)]
struct Filter {
    level: Option<Level>,
    logger: Option<String>,
    source: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    grep: Option<Regex>,
}

impl Filter {
    fn new(args: &Args, now_ns: i64) -> anyhow::Result<Filter> {
        let instant = |flag: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| parse_instant(t, now_ns).map_err(|e| anyhow::anyhow!("{flag}: {e}")))
                .transpose()
        };
        Ok(Filter {
            level: args.level,
            logger: args.logger.clone(),
            source: args.source.clone(),
            since: instant("--since", &args.since)?,
            until: instant("--until", &args.until)?,
            grep: args
                .grep
                .as_deref()
                .map(|re| RegexBuilder::new(re).multi_line(true).build())
                .transpose()
                .context("--grep")?,
        })
    }

    /// Whether `e` is shown. A filter on something the record does not
    /// carry (a level, a timestamp) leaves it out.
    fn admits(&self, e: &Entry) -> bool {
        if let Some(min) = self.level {
            if e.level.is_none_or(|l| l < min) {
                return false;
            }
        }
        if let Some(prefix) = &self.logger {
            let under = e.logger.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with("::") || rest.starts_with('.')
            });
            if !under {
                return false;
            }
        }
        if let Some(source) = &self.source {
            let pid = e.pid.map(|p| p.to_string());
            let found = [e.host.as_ref(), e.program.as_ref(), pid.as_ref()]
                .into_iter()
                .flatten()
                .any(|s| s == source);
            if !found {
                return false;
            }
        }
        // Only a timestamp the record carries counts (`ts_text`): the one
        // lent for merging does not.
        let ts = e.ts.filter(|_| e.ts_text.is_some());
        if self.since.is_some_and(|s| ts.is_none_or(|t| t < s)) {
            return false;
        }
        if self.until.is_some_and(|u| ts.is_none_or(|t| t >= u)) {
            return false;
        }
        if let Some(re) = &self.grep {
            let text = String::from_utf8_lossy(&e.raw);
            if !re.is_match(text.strip_suffix('\n').unwrap_or(&text)) {
                return false;
            }
        }
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Stored,
    Colored,
    Json,
}

/// Writes the records that pass the filter.
struct Output<W: Write> {
    out: W,
    filter: Filter,
    style: Style,
    buf: Vec<u8>,
}

impl<W: Write> Output<W> {
    fn entry(&mut self, e: &Entry) -> io::Result<()> {
        if !self.filter.admits(e) {
            return Ok(());
        }
        self.buf.clear();
        match self.style {
            Style::Stored => self.buf.extend_from_slice(&e.raw),
            Style::Colored => e.write_colored(&mut self.buf),
            Style::Json => e.write_json(&mut self.buf),
        }
        self.out.write_all(&self.buf)
    }
}

fn warn_all(warnings: Vec<String>) {
    for w in warnings {
        eprintln!("logbraid cat: {w}");
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let now_ns = jiff_now_ns();
    let filter = Filter::new(args, now_ns)?;
    let stdout = io::stdout();
    let no_color: Option<OsString> = std::env::var_os("NO_COLOR");
    let style = if args.json {
        Style::Json
    } else if color_enabled(
        args.color,
        stdout.is_terminal(),
        no_color.as_deref(),
        std::env::var_os("FORCE_COLOR").as_deref(),
    ) {
        Style::Colored
    } else {
        Style::Stored
    };
    let mut output = Output {
        out: io::BufWriter::with_capacity(64 << 10, stdout.lock()),
        filter,
        style,
        buf: Vec::new(),
    };
    let result = if args.follow {
        follow(args, &mut output)
    } else {
        read_all(args, &mut output)
    };
    match result.and_then(|code| output.out.flush().map(|()| code)) {
        Ok(code) => Ok(code),
        // The reader went away (`| head`): not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("cannot write to standard output"),
    }
}

fn jiff_now_ns() -> i64 {
    let ns = logbraid::jiff::Timestamp::now().as_nanosecond();
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// Every set once, merged by timestamp. Exit 1 if a set could not be
/// read at all.
fn read_all<W: Write>(args: &Args, output: &mut Output<W>) -> io::Result<ExitCode> {
    let mut code = ExitCode::SUCCESS;
    let mut readers = Vec::with_capacity(args.paths.len());
    for path in &args.paths {
        match SetReader::open(path) {
            Ok(r) => readers.push(r),
            Err(e) => {
                eprintln!("logbraid cat: {}: {e}", path.display());
                code = ExitCode::FAILURE;
            }
        }
    }
    let mut merge = Merge::new(readers);
    while let Some(e) = merge.next() {
        for r in merge.streams_mut() {
            warn_all(r.take_warnings());
        }
        output.entry(&e)?;
    }
    for r in merge.streams_mut() {
        warn_all(r.take_warnings());
    }
    Ok(code)
}

/// Follows every set until SIGINT or SIGTERM, merging what each round of
/// polls brings by timestamp.
fn follow<W: Write>(args: &Args, output: &mut Output<W>) -> io::Result<ExitCode> {
    let stop = stop_on_signals()?;
    let mut followers: Vec<Follower> = args.paths.iter().map(Follower::new).collect();
    loop {
        // Read once more after the signal: what was written before it is
        // shown.
        let stopping = stop.load(Ordering::SeqCst);
        let mut rounds = Vec::with_capacity(followers.len());
        for (f, path) in followers.iter_mut().zip(&args.paths) {
            let mut got = Vec::new();
            if let Err(e) = f.poll(&mut got) {
                eprintln!("logbraid cat: {}: {e}", path.display());
            }
            if stopping {
                f.finish(&mut got);
            }
            warn_all(f.take_warnings());
            rounds.push(got.into_iter());
        }
        for e in Merge::new(rounds) {
            output.entry(&e)?;
        }
        output.out.flush()?;
        if stopping {
            return Ok(ExitCode::SUCCESS);
        }
        thread::park_timeout(POLL_INTERVAL);
    }
}

/// A flag set (and this thread woken) on SIGINT or SIGTERM.
fn stop_on_signals() -> io::Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let (mut term, mut int) = {
        let _entered = rt.enter();
        (
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        )
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let reader = thread::current();
    thread::Builder::new()
        .name("logbraid-cat-signals".into())
        .spawn(move || {
            rt.block_on(async {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
            flag.store(true, Ordering::SeqCst);
            reader.unpark();
        })?;
    Ok(stop)
}
