//! Turns the measurements into `RESULTS.md`.

use std::fmt::Write as _;

use crate::child::{self, Scenario};
use crate::libs::{self, Info};
use crate::{sys, timer, Outcome, Plan, Results, Run};

/// The targets logbraid's issue sets on this machine.
const TARGET_P50_NS: f64 = 100.0;
const TARGET_P999_NS: f64 = 2_000.0;
const TARGET_LINES_PER_S: f64 = 3_000_000.0;
const TARGET_DISABLED_NS: f64 = 2.0;
/// The targets of logbraid's own macros (`logbraid-macros`).
const MACRO: &str = "logbraid-macros";
const MACRO_P50_NS: f64 = 20.0;
const MACRO_P999_NS: f64 = 250.0;
const MACRO_LINES_PER_S: f64 = 10_000_000.0;
const MACRO_DISABLED_NS: f64 = 1.0;
const QUEUE_BYTES: u64 = 1 << 20;
const RSS_MARGIN_KIB: u64 = 32 * 1024;

/// One line for the progress output.
pub fn summary(outcome: &Outcome) -> String {
    match outcome {
        Err(e) => format!("FAILED: {e}"),
        Ok(run) => {
            let r = &run.report;
            let check = format!(
                "{}; other processes {} cores",
                check_cell(std::slice::from_ref(run)),
                cores(run.others_cores)
            );
            if let Some(l) = &r.latency {
                format!(
                    "p50 {} p99 {} p99.9 {} max {}; {check}",
                    ns(l.p50 as f64),
                    ns(l.p99 as f64),
                    ns(l.p999 as f64),
                    ns(l.max as f64)
                )
            } else if let Some(t) = &r.throughput {
                format!(
                    "{} in {:.2} s (drain {:.3} s); RSS {}; {check}",
                    rate(t.lines_per_s),
                    t.elapsed_s,
                    t.finish_s + t.poll_s,
                    mib(r.rss_peak_kib)
                )
            } else if let Some(d) = &r.disabled {
                format!(
                    "{:.2} ns/call (loop {:.2} ns); {check}",
                    d.ns_per_call, d.loop_ns_per_call
                )
            } else {
                "no figures".to_string()
            }
        }
    }
}

/// Cores other processes kept busy, for a cell.
fn cores(v: Option<f64>) -> String {
    v.map_or_else(|| "?".to_string(), |v| format!("{v:.2}"))
}

fn ns(v: f64) -> String {
    if v < 1_000.0 {
        format!("{v:.0} ns")
    } else if v < 1_000_000.0 {
        format!("{:.2} µs", v / 1e3)
    } else if v < 1e9 {
        format!("{:.2} ms", v / 1e6)
    } else {
        format!("{:.2} s", v / 1e9)
    }
}

fn rate(per_s: f64) -> String {
    format!("{:.2} M lines/s", per_s / 1e6)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Disabled-call differences below this are below what the loop resolves.
const DISABLED_TIE_NS: f64 = 0.05;

/// `peer / logbraid`, bold where the peer is ahead. Within half a percent
/// is a tie (it prints as 1.00×).
fn ratio(peer: f64, logbraid: Option<f64>, higher_is_better: bool) -> String {
    let tie = logbraid.unwrap_or(0.0).abs() * 0.005;
    ratio_with_tie(peer, logbraid, higher_is_better, tie)
}

/// `peer / logbraid`, bold where the peer is ahead by more than `tie`.
fn ratio_with_tie(peer: f64, logbraid: Option<f64>, higher_is_better: bool, tie: f64) -> String {
    match logbraid {
        Some(lb) if lb > 0.0 => {
            let r = peer / lb;
            let ahead = if higher_is_better {
                peer > lb + tie
            } else {
                peer < lb - tie
            };
            if ahead {
                format!("**{r:.2}×**")
            } else {
                format!("{r:.2}×")
            }
        }
        _ => "–".to_string(),
    }
}

/// The file check of a set of runs, for a table cell.
fn check_cell(runs: &[Run]) -> String {
    let missing: u64 = runs.iter().map(|r| r.verify.missing).sum();
    let dup: u64 = runs.iter().map(|r| r.verify.duplicates).sum();
    let other: u64 = runs.iter().map(|r| r.verify.other_lines).sum();
    let expected: u64 = runs.iter().map(|r| r.verify.expected).sum();
    let mut s = if missing == 0 && dup == 0 {
        format!("✔ {}/{}", count(expected), count(expected))
    } else {
        format!("✘ {} missing, {} duplicate", count(missing), count(dup))
    };
    if other > 0 {
        let _ = write!(s, ", {} other line(s)", count(other));
    }
    s
}

fn mode(info: &Info) -> &'static str {
    if info.synchronous {
        "**synchronous**"
    } else {
        "non-blocking"
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Aggregated throughput runs of one library and thread count.
struct Tp {
    median: f64,
    min: f64,
    max: f64,
    drain_s: f64,
    polled: bool,
    gave_up: bool,
    rss_peak_kib: u64,
    rss_start_kib: u64,
    complete: bool,
    /// The most other processes used during any of the runs.
    others_max: Option<f64>,
    runs: Vec<Run>,
}

fn throughput(results: &Results, lib: &str, threads: u64) -> Result<Tp, String> {
    let outcomes = results
        .throughput
        .get(&(lib.to_string(), threads))
        .ok_or_else(|| "not run".to_string())?;
    if let Some(Err(e)) = outcomes.iter().find(|o| o.is_err()) {
        return Err(e.clone());
    }
    let runs: Vec<Run> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .cloned()
        .collect();
    let figures: Vec<&child::Throughput> = runs
        .iter()
        .filter_map(|r| r.report.throughput.as_ref())
        .collect();
    if figures.is_empty() {
        return Err("no figures".to_string());
    }
    let rates: Vec<f64> = figures.iter().map(|t| t.lines_per_s).collect();
    Ok(Tp {
        median: median(rates.clone()),
        min: rates.iter().copied().fold(f64::INFINITY, f64::min),
        max: rates.iter().copied().fold(0.0, f64::max),
        drain_s: median(figures.iter().map(|t| t.finish_s + t.poll_s).collect()),
        polled: figures.iter().any(|t| t.poll_s > 0.0),
        gave_up: figures.iter().any(|t| t.poll_gave_up),
        rss_peak_kib: runs
            .iter()
            .map(|r| r.report.rss_peak_kib)
            .max()
            .unwrap_or(0),
        rss_start_kib: runs
            .iter()
            .map(|r| r.report.rss_start_kib)
            .min()
            .unwrap_or(0),
        complete: runs.iter().all(|r| r.verify.ok()),
        others_max: runs.iter().filter_map(|r| r.others_cores).reduce(f64::max),
        runs,
    })
}

fn latency<'a>(results: &'a Results, lib: &str, threads: u64) -> Result<&'a Run, String> {
    match results.latency.get(&(lib.to_string(), threads)) {
        Some(Ok(run)) if run.report.latency.is_some() => Ok(run),
        Some(Ok(_)) => Err("no figures".to_string()),
        Some(Err(e)) => Err(e.clone()),
        None => Err("not run".to_string()),
    }
}

fn disabled<'a>(results: &'a Results, lib: &str) -> Result<&'a child::Disabled, String> {
    match results.disabled.get(lib) {
        Some(Ok(run)) => run
            .report
            .disabled
            .as_ref()
            .ok_or_else(|| "no figures".to_string()),
        Some(Err(e)) => Err(e.clone()),
        None => Err("not run".to_string()),
    }
}

fn one_line(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The whole markdown document.
pub fn render(plan: &Plan, results: &Results) -> String {
    let mut md = String::new();
    header(&mut md, plan, results);
    targets(&mut md, plan, results);
    if plan.scenarios.contains(&Scenario::Latency) {
        for &t in &plan.threads {
            latency_table(&mut md, plan, results, t);
        }
    }
    if plan.scenarios.contains(&Scenario::Throughput) {
        for &t in &plan.threads {
            throughput_table(&mut md, plan, results, t);
        }
    }
    if plan.scenarios.contains(&Scenario::Disabled) {
        disabled_table(&mut md, plan, results);
    }
    formats(&mut md, plan, results);
    method(&mut md, plan, results);
    md
}

fn header(md: &mut String, plan: &Plan, results: &Results) {
    let _ = writeln!(md, "# logbraid benchmark results\n");
    let _ = writeln!(
        md,
        "Generated by `cargo run --release -p logbraid-bench -- --write bench/RESULTS.md`; \
         this file is the tool's output, not edited by hand. See `bench/README.md`.\n"
    );
    if plan.quick {
        let _ = writeln!(
            md,
            "> **Quick run** (`--quick`): small counts, one run each. A smoke test, not a measurement.\n"
        );
    }
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| date (UTC) | {} |", sys::utc_date());
    let _ = writeln!(md, "| CPU | {} |", one_line(&sys::cpu_model()));
    let _ = writeln!(md, "| logical cores | {} |", sys::cores());
    let _ = writeln!(
        md,
        "| OS | {} {} |",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    let _ = writeln!(md, "| compiler | {} |", sys::RUSTC);
    for info in &results.libs {
        let Some(ext) = info.external else { continue };
        if let Some(cxx) = ext.fact("compiler") {
            let flags = ext.fact("flags").unwrap_or_default();
            let _ = writeln!(
                md,
                "| C++ compiler ({}) | {} `{}` |",
                info.name,
                one_line(&cxx),
                flags
            );
        }
    }
    let _ = writeln!(
        md,
        "| profile | release (`opt-level = 3`, `codegen-units = 4`, `debug = 1`) |"
    );
    let _ = writeln!(
        md,
        "| wall time of this run | {:.0} s |",
        results.wall.as_secs_f64()
    );
    let opt = |v: Option<f64>| v.map_or_else(|| "unknown".to_string(), |v| format!("{v:.2}"));
    let _ = writeln!(
        md,
        "| other processes during the run | {} cores busy on average (load average at start: {}) |\n",
        opt(results.others_cores),
        opt(results.load_before)
    );
    let all_runs: Vec<&Run> = results
        .latency
        .values()
        .chain(results.throughput.values().flatten())
        .chain(results.disabled.values())
        .filter_map(|o| o.as_ref().ok())
        .collect();
    let disturbed = all_runs
        .iter()
        .filter(|r| r.others_cores.is_some_and(|c| c > 0.1))
        .count();
    let _ = writeln!(
        md,
        "Child processes during which other processes kept more than 0.1 core busy: {} of {} \
         (each row's *other CPU* column gives the figure; the driver waits up to the `--quiet-wait` \
         time for an idle machine before each child).\n",
        disturbed,
        all_runs.len()
    );
    if results.others_cores.is_some_and(|c| c > 0.1) {
        let _ = writeln!(
            md,
            "> **Warning**: other processes used CPU during this run; the figures are disturbed. \
             Rerun on a quiet machine.\n"
        );
    }

    let _ = writeln!(md, "| library | crate | version | mode | called through |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for info in &results.libs {
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {} | {} |",
            info.name,
            info.krate,
            version(info),
            mode(info),
            info.api
        );
    }
    let _ = writeln!(
        md,
        "\nAlso: `log` {}, `tracing` {}, `tracing-subscriber` {}, `hdrhistogram` {}.\n",
        sys::locked_version("log"),
        sys::locked_version("tracing"),
        sys::locked_version("tracing-subscriber"),
        sys::locked_version("hdrhistogram"),
    );
    let failed: Vec<String> = results
        .libs
        .iter()
        .filter_map(|i| {
            let mine = |(l, _): &(String, u64)| l == i.name;
            results
                .latency
                .iter()
                .filter(|(k, _)| mine(k))
                .map(|(_, o)| o)
                .chain(
                    results
                        .throughput
                        .iter()
                        .filter(|(k, _)| mine(k))
                        .flat_map(|(_, o)| o),
                )
                .chain(results.disabled.get(i.name))
                .find_map(|o| o.as_ref().err())
                .map(|e| format!("- **{}**: {}", i.name, one_line(e)))
        })
        .collect();
    if failed.is_empty() {
        let _ = writeln!(md, "Every library built and ran.\n");
    } else {
        let _ = writeln!(
            md,
            "Libraries that failed to build or run (their rows say why):\n"
        );
        for f in failed {
            let _ = writeln!(md, "{f}");
        }
        let _ = writeln!(md);
    }
}

/// The version of a library: from the lock file for a crate, from what its
/// build recorded for a program of its own.
fn version(info: &Info) -> String {
    let Some(ext) = info.external else {
        return sys::locked_version(info.krate);
    };
    match (ext.fact("version"), ext.fact("describe")) {
        (Some(v), Some(d)) => format!("{v} (git `{d}`)"),
        (Some(v), None) => v,
        (None, _) => "not built".to_string(),
    }
}

/// How a library's calls at DEBUG are made.
fn debug_api(info: &Info) -> String {
    info.api
        .replace("info!", "debug!")
        .replace("LOG_INFO", "LOG_DEBUG")
}

/// The libraries of the run that are programs of their own, for the notes.
fn externals(results: &Results) -> Vec<&'static Info> {
    results
        .libs
        .iter()
        .copied()
        .filter(|i| i.external.is_some())
        .collect()
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "✔"
    } else {
        "✘"
    }
}

fn targets(md: &mut String, plan: &Plan, results: &Results) {
    let _ = writeln!(md, "## logbraid's targets\n");
    let _ = writeln!(
        md,
        "Each line compares a figure measured in this run with the target; nothing here is assumed.\n"
    );
    let lb = "logbraid";
    let mut lines: Vec<String> = Vec::new();
    let mut ahead: Vec<String> = Vec::new();
    // logbraid's own macros are logbraid, not a peer: they have targets of
    // their own below.
    let peers: Vec<&&Info> = results
        .libs
        .iter()
        .filter(|i| i.name != lb && i.name != MACRO)
        .collect();

    if plan.scenarios.contains(&Scenario::Latency) {
        for &t in &plan.threads {
            match latency(results, lb, t) {
                Ok(run) => {
                    let l = run.report.latency.as_ref().expect("checked by latency()");
                    lines.extend(latency_targets(
                        l,
                        (TARGET_P50_NS, TARGET_P999_NS),
                        "through the `log` facade",
                        t,
                    ));
                    type Pick = fn(&child::Latency) -> u64;
                    let figures: [(&str, Pick); 4] = [
                        ("p50", |l| l.p50),
                        ("p99", |l| l.p99),
                        ("p99.9", |l| l.p999),
                        ("max", |l| l.max),
                    ];
                    for (name, pick) in figures {
                        let mine = pick(l);
                        let better: Vec<String> = peers
                            .iter()
                            .filter_map(|p| {
                                let pl =
                                    latency(results, p.name, t).ok()?.report.latency.as_ref()?;
                                (pick(pl) < mine)
                                    .then(|| format!("{} {}", p.name, ns(pick(pl) as f64)))
                            })
                            .collect();
                        ahead.push(ahead_line(
                            &format!(
                                "caller latency {name}, {t} thread(s) (logbraid {})",
                                ns(mine as f64)
                            ),
                            &better,
                        ));
                    }
                }
                Err(e) => lines.push(format!(
                    "- ✘ caller latency, {t} thread(s): not measured ({})",
                    one_line(&e)
                )),
            }
        }
    }
    if plan.scenarios.contains(&Scenario::Throughput) {
        for &t in &plan.threads {
            match throughput(results, lb, t) {
                Ok(tp) => {
                    let dropped: u64 = tp
                        .runs
                        .iter()
                        .filter_map(|r| r.report.self_stats.map(|s| s.dropped))
                        .sum();
                    let lossless = tp.complete && dropped == 0;
                    lines.push(format!(
                        "- {} end-to-end ≥ {} with nothing dropped, {t} thread(s): {} (median of {}), file check {}, dropped counter {}",
                        mark(tp.median >= TARGET_LINES_PER_S && lossless),
                        rate(TARGET_LINES_PER_S),
                        rate(tp.median),
                        tp.runs.len(),
                        check_cell(&tp.runs),
                        dropped
                    ));
                    let limit = QUEUE_BYTES / 1024 * t + RSS_MARGIN_KIB;
                    lines.push(format!(
                        "- {} peak RSS ≤ queue size ({t} × 1 MiB) + 32 MiB = {}, {t} thread(s): {}",
                        mark(tp.rss_peak_kib <= limit),
                        mib(limit),
                        mib(tp.rss_peak_kib)
                    ));
                    let better: Vec<String> = peers
                        .iter()
                        .filter_map(|p| {
                            let pt = throughput(results, p.name, t).ok()?;
                            (pt.median > tp.median)
                                .then(|| format!("{} {}", p.name, rate(pt.median)))
                        })
                        .collect();
                    ahead.push(ahead_line(
                        &format!(
                            "end-to-end throughput, {t} thread(s) (logbraid {})",
                            rate(tp.median)
                        ),
                        &better,
                    ));
                    let better: Vec<String> = peers
                        .iter()
                        .filter_map(|p| {
                            let pt = throughput(results, p.name, t).ok()?;
                            (pt.rss_peak_kib < tp.rss_peak_kib)
                                .then(|| format!("{} {}", p.name, mib(pt.rss_peak_kib)))
                        })
                        .collect();
                    ahead.push(ahead_line(
                        &format!(
                            "peak RSS, {t} thread(s) (logbraid {})",
                            mib(tp.rss_peak_kib)
                        ),
                        &better,
                    ));
                }
                Err(e) => lines.push(format!(
                    "- ✘ end-to-end, {t} thread(s): not measured ({})",
                    one_line(&e)
                )),
            }
        }
    }
    if plan.scenarios.contains(&Scenario::Disabled) {
        match disabled(results, lb) {
            Ok(d) => {
                lines.push(disabled_line(TARGET_DISABLED_NS, "", d));
                // Differences under 0.05 ns are below what this loop resolves.
                let better: Vec<String> = peers
                    .iter()
                    .filter_map(|p| {
                        let pd = disabled(results, p.name).ok()?;
                        (pd.ns_per_call + DISABLED_TIE_NS < d.ns_per_call)
                            .then(|| format!("{} {:.2} ns", p.name, pd.ns_per_call))
                    })
                    .collect();
                ahead.push(ahead_line(
                    &format!(
                        "disabled call (logbraid {:.2} ns; within {DISABLED_TIE_NS} ns is a tie)",
                        d.ns_per_call
                    ),
                    &better,
                ));
            }
            Err(e) => lines.push(format!(
                "- ✘ disabled call: not measured ({})",
                one_line(&e)
            )),
        }
    }
    if results.libs.iter().any(|i| i.name == MACRO) {
        macro_targets(&mut lines, plan, results);
    }
    for l in lines {
        let _ = writeln!(md, "{l}");
    }
    let all_ahead = ahead.iter().all(|l| l.starts_with("  - ✔"));
    let _ = writeln!(
        md,
        "- {} ahead of every peer on every figure:",
        mark(all_ahead && !ahead.is_empty())
    );
    for l in ahead {
        let _ = writeln!(md, "{l}");
    }
    let _ = writeln!(md);
}

fn ahead_line(figure: &str, better: &[String]) -> String {
    if better.is_empty() {
        format!("  - ✔ {figure}")
    } else {
        format!("  - ✘ {figure}: behind {}", better.join(", "))
    }
}

/// The lines of the p50 and p99.9 targets of calls made `how`.
fn latency_targets(l: &child::Latency, (p50, p999): (f64, f64), how: &str, t: u64) -> [String; 2] {
    [
        format!(
            "- {} caller p50 ≤ {} {how}, {t} thread(s): {}",
            mark(l.p50 as f64 <= p50),
            ns(p50),
            ns(l.p50 as f64)
        ),
        format!(
            "- {} caller p99.9 ≤ {} {how}, {t} thread(s): {}",
            mark(l.p999 as f64 <= p999),
            ns(p999),
            ns(l.p999 as f64)
        ),
    ]
}

/// The check of a disabled call against `target`: the call's own cost is
/// the loop with the call less the same loop without it (the bare loop,
/// two `black_box`ed values per iteration, takes over 1 ns by itself on
/// this machine); both figures are shown.
fn disabled_line(target: f64, api: &str, d: &child::Disabled) -> String {
    let own = d.ns_per_call - d.loop_ns_per_call;
    format!(
        "- {} disabled call ≤ {target:.0} ns{api}: {own:.2} ns over the bare loop ({:.2} ns per iteration with the call, {:.2} ns without)",
        mark(own <= target),
        d.ns_per_call,
        d.loop_ns_per_call
    )
}

/// The lines of the macros' targets: caller latency against the facade's,
/// end to end and the disabled call.
fn macro_targets(lines: &mut Vec<String>, plan: &Plan, results: &Results) {
    let api = "through `logbraid::info!`";
    if plan.scenarios.contains(&Scenario::Latency) {
        for &t in &plan.threads {
            let Ok(run) = latency(results, MACRO, t) else {
                lines.push(format!(
                    "- ✘ caller latency {api}, {t} thread(s): not measured"
                ));
                continue;
            };
            let l = run.report.latency.as_ref().expect("checked by latency()");
            lines.extend(latency_targets(l, (MACRO_P50_NS, MACRO_P999_NS), api, t));
            if let Some(f) = latency(results, "logbraid", t)
                .ok()
                .and_then(|r| r.report.latency.as_ref())
            {
                lines.push(format!(
                    "- {} caller p50 {api} ≤ a quarter of the `log` facade's, {t} thread(s): {} against {} ({:.2}×)",
                    mark(l.p50 * 4 <= f.p50),
                    ns(l.p50 as f64),
                    ns(f.p50 as f64),
                    l.p50 as f64 / f.p50.max(1) as f64
                ));
            }
        }
    }
    if plan.scenarios.contains(&Scenario::Throughput) {
        for &t in &plan.threads {
            let Ok(tp) = throughput(results, MACRO, t) else {
                lines.push(format!("- ✘ end-to-end {api}, {t} thread(s): not measured"));
                continue;
            };
            lines.push(format!(
                "- {} end-to-end ≥ {} {api}, {t} thread(s): {} (median of {}), file check {}",
                mark(tp.median >= MACRO_LINES_PER_S && tp.complete),
                rate(MACRO_LINES_PER_S),
                rate(tp.median),
                tp.runs.len(),
                check_cell(&tp.runs)
            ));
        }
    }
    if plan.scenarios.contains(&Scenario::Disabled) {
        match disabled(results, MACRO) {
            Ok(d) => lines.push(disabled_line(MACRO_DISABLED_NS, &format!(" {api}"), d)),
            Err(e) => lines.push(format!(
                "- ✘ disabled call {api}: not measured ({})",
                one_line(&e)
            )),
        }
    }
}

fn latency_table(md: &mut String, plan: &Plan, results: &Results, t: u64) {
    let _ = writeln!(md, "## Caller latency, {t} thread(s)\n");
    let preparation = if results.libs.iter().any(|i| i.name == "quill") {
        "logbraid's rows call `logbraid::preallocate()` (its queue made and mapped in), quill's row \
         `quill::Frontend::preallocate()` (its thread's queue made); the other peers have none"
    } else {
        "logbraid's rows call `logbraid::preallocate()` (its queue made and mapped in, as quill's \
         `preallocate`); the peers have none"
    };
    let _ = writeln!(
        md,
        "Time spent inside one logging call, {} calls per thread in bursts of {} with a {} µs pause; \
         {} timer overhead subtracted. Each thread first makes the library's per-thread preparation \
         where it has one: {preparation}. Ratios are peer ÷ logbraid: above 1× logbraid is faster, \
         **bold** where the peer is faster.\n",
        count(plan.latency_per_thread),
        child::BURST,
        child::PAUSE.as_micros(),
        timer::SOURCE,
    );
    let _ = writeln!(
        md,
        "| library | mode | p50 | p99 | p99.9 | max | p50 ratio | p99 ratio | p99.9 ratio | file check | other CPU |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    let lb = latency(results, "logbraid", t)
        .ok()
        .and_then(|r| r.report.latency.clone());
    for info in &results.libs {
        match latency(results, info.name, t) {
            Ok(run) => {
                let l = run.report.latency.as_ref().expect("checked by latency()");
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    info.name,
                    mode(info),
                    ns(l.p50 as f64),
                    ns(l.p99 as f64),
                    ns(l.p999 as f64),
                    ns(l.max as f64),
                    ratio(l.p50 as f64, lb.as_ref().map(|b| b.p50 as f64), false),
                    ratio(l.p99 as f64, lb.as_ref().map(|b| b.p99 as f64), false),
                    ratio(l.p999 as f64, lb.as_ref().map(|b| b.p999 as f64), false),
                    check_cell(std::slice::from_ref(run)),
                    cores(run.others_cores),
                );
            }
            Err(e) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | failed: {} ||||||||| ",
                    info.name,
                    mode(info),
                    one_line(&e)
                );
            }
        }
    }
    if let Some(l) = &lb {
        let _ = writeln!(
            md,
            "\nTimer: {}, {:.3} ticks/ns, overhead {:.1} ns per start/stop pair (median, subtracted). Samples per library: {}.",
            l.clock,
            l.ticks_per_ns,
            l.timer_overhead_ns,
            count(l.samples)
        );
    }
    self_stats_note(
        md,
        results
            .latency
            .get(&("logbraid".to_string(), t))
            .into_iter(),
    );
    let _ = writeln!(md);
}

fn self_stats_note<'a>(md: &mut String, outcomes: impl Iterator<Item = &'a Outcome>) {
    let mut total = libs::SelfStats::default();
    let mut any = false;
    for s in outcomes.filter_map(|o| o.as_ref().ok()?.report.self_stats) {
        any = true;
        total.logged += s.logged;
        total.written += s.written;
        total.dropped += s.dropped;
        total.full_waits += s.full_waits;
    }
    if any {
        let _ = writeln!(
            md,
            "\nlogbraid's own counters (`stats()`, all runs): logged {}, written {}, dropped {}, queue-full waits {}.",
            count(total.logged),
            count(total.written),
            count(total.dropped),
            count(total.full_waits)
        );
    }
}

fn throughput_table(md: &mut String, plan: &Plan, results: &Results, t: u64) {
    let _ = writeln!(md, "## End-to-end throughput, {t} thread(s)\n");
    let _ = writeln!(
        md,
        "{} records split over {t} thread(s), logged as fast as possible; the clock runs from the start \
         until the library's flush/stop returned and the file was complete. Median of {} run(s). \
         *Drain* is the time from the last call's return to a complete file. Peak RSS is the child \
         process's `VmHWM` (the process before the library was installed: about {}). \
         Throughput ratio is peer ÷ logbraid: below 1× logbraid is faster; RSS ratio above 1× means \
         logbraid uses less. **Bold** where the peer is ahead.\n",
        count(plan.throughput_total),
        plan.runs,
        throughput(results, "logbraid", t)
            .map(|tp| mib(tp.rss_start_kib))
            .unwrap_or_else(|_| "–".to_string()),
    );
    let _ = writeln!(
        md,
        "| library | mode | lines/s | range | ratio | drain | file check | peak RSS | RSS ratio | other CPU |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---|---:|---:|---:|");
    let lb = throughput(results, "logbraid", t).ok();
    let mut polled = Vec::new();
    for info in &results.libs {
        match throughput(results, info.name, t) {
            Ok(tp) => {
                let mut figure = rate(tp.median);
                if !tp.complete {
                    figure = format!("{figure} ⚠ lines lost");
                }
                if tp.polled {
                    polled.push(info.name);
                    figure.push_str(" ¹");
                }
                if tp.gave_up {
                    figure.push_str(" (poll gave up)");
                }
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.2}–{:.2} M | {} | {:.3} s | {} | {} | {} | {} |",
                    info.name,
                    mode(info),
                    figure,
                    tp.min / 1e6,
                    tp.max / 1e6,
                    ratio(tp.median, lb.as_ref().map(|b| b.median), true),
                    tp.drain_s,
                    check_cell(&tp.runs),
                    mib(tp.rss_peak_kib),
                    ratio(
                        tp.rss_peak_kib as f64,
                        lb.as_ref().map(|b| b.rss_peak_kib as f64),
                        false
                    ),
                    cores(tp.others_max),
                );
            }
            Err(e) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | failed: {} |||||||| ",
                    info.name,
                    mode(info),
                    one_line(&e)
                );
            }
        }
    }
    if !polled.is_empty() {
        let _ = writeln!(
            md,
            "\n¹ When the library's flush/stop call returned, the file did not yet hold every line; \
             the run polled the file (every 1 ms, counting lines) until it did, and the clock ran \
             until then: {}.",
            polled.join(", ")
        );
    }
    self_stats_note(
        md,
        results
            .throughput
            .get(&("logbraid".to_string(), t))
            .into_iter()
            .flatten(),
    );
    let _ = writeln!(md);
}

fn disabled_table(md: &mut String, plan: &Plan, results: &Results) {
    let _ = writeln!(md, "## Disabled call\n");
    let _ = writeln!(
        md,
        "Level INFO, {} `debug!` calls in a loop on one thread (after {} warm-up calls), arguments \
         passed through `std::hint::black_box`; total time ÷ calls. *Loop* is the same loop without \
         the call. Median of {} timings of the whole loop. Ratio is peer ÷ logbraid, **bold** where \
         the peer is faster by more than {DISABLED_TIE_NS} ns. All libraries behind the `log` facade share its check \
         (`log::max_level()`, one relaxed load), so they differ only by noise.{}\n",
        count(plan.disabled_calls),
        count(plan.disabled_warmup),
        child::DISABLED_REPS,
        if externals(results).is_empty() {
            ""
        } else {
            " The C++ child passes its arguments through the barrier `black_box` compiles to (the \
             value stored, its address given to an empty `asm` that may touch memory); its loops are \
             g++'s code, so its *loop* figure differs from the Rust children's and the call's own \
             cost is ns/call less *loop*."
        },
    );
    let _ = writeln!(
        md,
        "| library | called through | ns/call | loop | ratio | other CPU |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");
    let lb = disabled(results, "logbraid").ok().map(|d| d.ns_per_call);
    for info in &results.libs {
        match disabled(results, info.name) {
            Ok(d) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.2} | {:.2} | {} | {} |",
                    info.name,
                    debug_api(info),
                    d.ns_per_call,
                    d.loop_ns_per_call,
                    ratio_with_tie(d.ns_per_call, lb, false, DISABLED_TIE_NS),
                    cores(
                        results
                            .disabled
                            .get(info.name)
                            .and_then(|o| o.as_ref().ok()?.others_cores)
                    ),
                );
            }
            Err(e) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | failed: {} |||| ",
                    info.name,
                    debug_api(info),
                    one_line(&e)
                );
            }
        }
    }
    let _ = writeln!(md);
}

fn formats(md: &mut String, plan: &Plan, results: &Results) {
    let _ = writeln!(md, "## What each library wrote\n");
    let _ = writeln!(
        md,
        "Each library uses its own text layout (see setup below), so lines differ in length; \
         the line and bytes/line are from the first throughput run with the fewest threads.\n"
    );
    let _ = writeln!(
        md,
        "| library | bytes/line | first line of a throughput file |"
    );
    let _ = writeln!(md, "|---|---:|---|");
    for info in &results.libs {
        let key = |t: u64| (info.name.to_string(), t);
        let run = plan
            .threads
            .iter()
            .filter_map(|&t| results.throughput.get(&key(t)))
            .flatten()
            .chain(
                plan.threads
                    .iter()
                    .filter_map(|&t| results.latency.get(&key(t))),
            )
            .find_map(|o| o.as_ref().ok().filter(|r| r.verify.sample.is_some()));
        match run {
            Some(r) => {
                let v = &r.verify;
                let _ = writeln!(
                    md,
                    "| {} | {:.1} | `{}`{} |",
                    info.name,
                    v.bytes as f64 / v.lines.max(1) as f64,
                    v.sample.as_deref().unwrap_or("").replace('`', "'"),
                    if v.escapes {
                        " (holds ANSI escapes)"
                    } else {
                        ""
                    }
                );
            }
            None => {
                let _ = writeln!(md, "| {} | – | – |", info.name);
            }
        }
    }
    let _ = writeln!(md, "\n### Setup of each library\n");
    for info in &results.libs {
        let _ = writeln!(
            md,
            "- **{}**: {}. Waiting for the file: {}.",
            info.name, info.setup, info.flush
        );
    }
    let _ = writeln!(md);
}

fn method(md: &mut String, plan: &Plan, results: &Results) {
    let _ = writeln!(md, "## Method\n");
    let _ = writeln!(
        md,
        "- Every (library, scenario, thread count) runs in a fresh child process (the driver re-executes \
         itself), because most libraries install a process-global logger. The child logs into its own \
         temporary directory, which is deleted after the check.\n\
         - Same workload for every library: `\"request {{}} served in {{}} ms\"` at INFO with two integers, \
         the record's index and index % 1000, from threads named `bench-N`. Each thread logs a disjoint \
         range of indices, warm-up included.\n\
         - **Caller latency**: {warm} warm-up then {n} timed calls per thread, in bursts of {burst} calls \
         separated by `thread::sleep({pause} µs)`, so no queue fills. Each call is timed alone with \
         `lfence; rdtsc; lfence` before and `rdtscp; lfence` after (x86_64; `Instant` elsewhere), \
         converted with a rate calibrated against `Instant` over 200 ms; the median cost of an empty \
         start/stop pair is subtracted from every sample. Samples of all threads go into one HdrHistogram \
         (3 significant digits).\n\
         - **End-to-end throughput**: {tp} records split over the threads. Each thread first logs \
         {tpw} warm-up records; then the run pauses {settle} ms so every library starts drained, and the \
         clock starts when the threads are released. It stops when the library's flush/stop call returns \
         and the file holds every line (counted; see the ¹ note where polling was needed). Lines/s counts \
         the timed records only.\n\
         - **File check** (all scenarios): after the child exits, the driver reads every file in the \
         directory and checks that each expected index appears exactly once with the right second \
         argument; anything else is counted as missing, duplicate or other.\n\
         - **Disabled call**: level INFO, {dis} `debug!` calls after {disw} warm-up calls, one thread; \
         the loop is timed {reps} times and the median kept.\n\
         - **Peak RSS**: `VmHWM` from `/proc/self/status` of the throughput child at its end (the peak \
         over the whole run, which includes the process's own baseline; `getrusage`'s `ru_maxrss` \
         is not used on Linux because across `execve` it keeps the spawning driver's peak); the \
         maximum over the runs.\n\
         - Order: scenarios in turn; throughput runs go round-robin over the libraries. The machine has \
         {cores} logical cores, so with 4 logging threads plus each library's background thread(s), \
         threads share cores.\n\
         - log4rs has no asynchronous appender: its figures are for a synchronous file write per call \
         and are listed for reference.",
        warm = count(plan.latency_warmup),
        n = count(plan.latency_per_thread),
        burst = child::BURST,
        pause = child::PAUSE.as_micros(),
        tp = count(plan.throughput_total),
        tpw = count(plan.throughput_warmup),
        settle = child::SETTLE.as_millis(),
        dis = count(plan.disabled_calls),
        disw = count(plan.disabled_warmup),
        reps = child::DISABLED_REPS,
        cores = sys::cores(),
    );
    for info in externals(results) {
        let ext = info.external.expect("filtered by externals()");
        let _ = writeln!(
            md,
            "- {name} is a C++ library: its child is a program of its own (`target/{program}`, built \
             from `bench/cpp/` by `{build}` against {name}'s headers, which are not part of this \
             repository). It takes the child's arguments and does the same work: the same threads, \
             barriers, bursts, pauses and counts, the same fenced `rdtsc` stopwatch calibrated against the \
             steady clock with the median empty pair subtracted, samples in a histogram laid out as \
             HdrHistogram's (3 significant digits, the same percentile, max and mean arithmetic), and it \
             prints the same report line; the driver checks its file as any other.",
            name = info.name,
            program = ext.program,
            build = ext.build,
        );
    }
    let _ = writeln!(md);
}
