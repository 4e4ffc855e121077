"""Python logging libraries side by side with logbraid: caller cost per call,
end-to-end records/s into a file, several processes into one file, and
asyncio event-loop lag. Every contender runs in a fresh interpreter
(child.py) in a temporary directory of its own; every line it wrote is read
back and checked.

    bench/python/run                   # print the report
    bench/python/run --write           # write bench/PYTHON.md and the python
                                       # section of bench/RESULTS.md
    bench/python/run --only logbraid,stdlib-file --calls 20000
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)
CHILD = os.path.join(HERE, "child.py")

SECTION_BEGIN = "<!-- python results: written by the python bench -->"
SECTION_END = "<!-- end of python results -->"


class Contender:
    def __init__(self, key, label, package, single, multi, mlabel=None):
        self.key = key
        self.label = label
        self.package = package
        self.single = single
        self.multi = multi
        # Its name in the several-processes scenario, when set up otherwise.
        self.mlabel = mlabel or label


CONTENDERS = [
    Contender(
        "stdlib-file",
        "stdlib FileHandler",
        None,
        "`logging.FileHandler` on the logger",
        "each process opens its own `FileHandler(mode=\"a\")` on the same file (the naive way)",
        "stdlib FileHandler, each process appending",
    ),
    Contender(
        "stdlib-queue",
        "stdlib QueueHandler + QueueListener",
        None,
        "`QueueHandler` into a `queue.Queue`, a `QueueListener` thread writing a `FileHandler`",
        "`QueueHandler` in the children into a `multiprocessing.Queue`, `QueueListener` + `FileHandler` in the parent",
        "stdlib QueueHandler → QueueListener",
    ),
    Contender(
        "picologging",
        "picologging FileHandler",
        "picologging",
        "`picologging.FileHandler` on a picologging logger",
        "picologging's `QueueHandler` in the children into a `multiprocessing.Queue`, its `QueueListener` + `FileHandler` in the parent",
        "picologging QueueHandler → QueueListener",
    ),
    Contender(
        "loguru",
        "loguru",
        "loguru",
        "`logger.add(file)` (no enqueue)",
        "not run (not safe for several processes without enqueue)",
    ),
    Contender(
        "loguru-enqueue",
        "loguru, enqueue=True",
        "loguru",
        "`logger.add(file, enqueue=True)`: a writer thread behind a queue",
        "sink added with `enqueue=True` in the parent, `logger` passed to each child as an argument, `logger.complete()` at the end of each child",
    ),
    Contender(
        "logging-mp",
        "logging-mp",
        "logging-mp",
        "`logging_mp.basicConfig(file=True)`, `logging_mp.getLogger`: a `multiprocessing.Queue` drained by a listener thread",
        "`basicConfig` in the parent, `logging_mp.getLogger` in the children",
    ),
    Contender(
        "logbraid-handler",
        "stdlib Logger + logbraid.Handler",
        "logbraid",
        "`logbraid.Handler(file=...)` on a stdlib logger",
        "`logbraid.basicConfig` in the parent (its `logbraid.Handler` on the root logger); `logging.getLogger` in the children",
    ),
    Contender(
        "logbraid",
        "logbraid Logger",
        "logbraid",
        "`logbraid.basicConfig(file=..., console=False, format=...)`, `logbraid.getLogger`",
        "`logbraid.basicConfig` in the parent; `logbraid.getLogger` in the children",
    ),
]
BY_KEY = {c.key: c for c in CONTENDERS}
NONE = Contender("none", "no logging", None, "", "")

SCENARIOS = ["latency", "throughput", "multiprocess", "loop"]
LETTERS = {"a": "latency", "b": "throughput", "c": "multiprocess", "e": "loop"}
OURS = "logbraid"


# ---------------------------------------------------------------------------
# The machine.


def cpu_busy_seconds():
    """Busy CPU seconds of the whole machine so far, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
        user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def own_cpu_seconds():
    """CPU seconds of this process and every child it has waited for."""
    t = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        t += r.ru_utime + r.ru_stime
    return t


class CpuWatch:
    """Cores used by other processes between start and stop."""

    def __init__(self):
        self.busy = cpu_busy_seconds()
        self.own = own_cpu_seconds()
        self.t = time.monotonic()

    def others_cores(self):
        busy = cpu_busy_seconds()
        if busy is None or self.busy is None:
            return None
        wall = time.monotonic() - self.t
        if wall <= 0:
            return None
        return max(0.0, (busy - self.busy) - (own_cpu_seconds() - self.own)) / wall


QUIET_CORES = 0.1


def wait_for_quiet(limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        w = CpuWatch()
        time.sleep(0.5)
        c = w.others_cores()
        if c is None or c < QUIET_CORES:
            return


def read_first(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def git_revision():
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "crates", "python", "pyproject.toml"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return rev + (" plus uncommitted changes to the package" if dirty else "")
    except OSError:
        return "unknown"


def version_of(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine():
    mem = read_first("/proc/meminfo", "MemTotal")
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "cpu": read_first("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "memory": f"{int(mem.split()[0]) / 1048576:.1f} GiB" if mem else "unknown",
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": {
            p: version_of(p) for p in ("logbraid", "picologging", "loguru", "logging-mp", "rich")
        },
        "revision": git_revision(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load": os.getloadavg(),
    }


# ---------------------------------------------------------------------------
# Checking the files.

LINE = re.compile(
    rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO \S+ w(\d+) request (\d+) served in (\d+) ms"
)
# picologging's timestamps have no milliseconds (see child.py).
LINE_NO_MS = re.compile(
    rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO \S+ w(\d+) request (\d+) served in (\d+) ms"
)


def verify(logdir, expected, line=LINE):
    """Reads every file under `logdir`: each expected (p, i) exactly once,
    in order per p, every line in the common layout."""
    seen = {int(p): bytearray(n) for p, n in expected.items()}
    last = {p: -1 for p in seen}
    lines = dup = ooo = bad = 0
    files = []
    for root, _, names in os.walk(logdir):
        files += [os.path.join(root, n) for n in names]
    files.sort()
    for path in files:
        with open(path, "rb") as f:
            for raw in f:
                lines += 1
                m = line.fullmatch(raw.rstrip(b"\r\n"))
                if not m:
                    bad += 1
                    continue
                p, i, k = int(m[1]), int(m[2]), int(m[3])
                s = seen.get(p)
                if s is None or i >= len(s) or k != i % 1000:
                    bad += 1
                    continue
                if s[i]:
                    dup += 1
                    continue
                s[i] = 1
                if i < last[p]:
                    ooo += 1
                else:
                    last[p] = i
    want = sum(expected.values())
    missing = sum(len(s) - sum(s) for s in seen.values())
    ok = lines == want and not (missing or dup or ooo or bad)
    out = {
        "ok": ok,
        "files": len(files),
        "lines": lines,
        "expected": want,
        "missing": missing,
        "duplicated": dup,
        "out_of_order": ooo,
        "malformed": bad,
    }
    if not ok:
        out["reason"] = (
            f"{lines:,} lines of {want:,} expected in {len(files)} file(s): {missing:,} missing, "
            f"{dup:,} duplicated, {ooo:,} out of order, {bad:,} malformed"
        )
    return out


# ---------------------------------------------------------------------------
# Running one child.


def clean_env():
    env = dict(os.environ)
    for k in ("LOGBRAID_COLLECTOR", "LOGBRAID_PYTHON_LEVEL", "LOGURU_AUTOINIT", "PYTHONSTARTUP"):
        env.pop(k, None)
    return env


def run_child(contender, scenario, n, args):
    d = tempfile.mkdtemp(prefix=f"logbraid-pybench-{contender}-")
    result = os.path.join(d, "result.json")
    cmd = [
        sys.executable,
        CHILD,
        "--contender",
        contender,
        "--scenario",
        scenario,
        "--n",
        str(n),
        "--processes",
        str(args.processes),
        "--result",
        result,
    ]
    watch = CpuWatch()
    p = subprocess.Popen(
        cmd,
        cwd=d,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, err = p.communicate(timeout=args.timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        _, err = p.communicate()
        timed_out = True
    others = watch.others_cores()
    err = err.decode(errors="replace").strip()
    try:
        with open(result) as f:
            out = json.load(f)
    except (OSError, ValueError):
        tail = err.splitlines()[-1] if err else "no output"
        out = {"status": "error", "reason": f"exit status {p.returncode}: {tail}"}
    if timed_out:
        out = {"status": "error", "reason": f"timed out after {args.timeout:.0f} s"}
    elif out.get("status") == "ok" and p.returncode != 0:
        out["status"] = "error"
        out["reason"] = f"exit status {p.returncode} after measuring"
    out["others_cores"] = others
    if err:
        out["stderr"] = err[-2000:]
    if out.get("status") == "ok" and out.get("expected"):
        out["check"] = verify(
            os.path.join(d, "logs"),
            out["expected"],
            LINE_NO_MS if contender == "picologging" else LINE,
        )
        if not out["check"]["ok"]:
            out["status"] = "failed"
            out["reason"] = out["check"]["reason"]
    shutil.rmtree(d, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------
# Formatting.


def fmt_ns(ns):
    if ns is None:
        return "—"
    if ns < 1000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        us = ns / 1000
        return f"{us:.2f} µs" if us < 10 else f"{us:.1f} µs" if us < 100 else f"{us:.0f} µs"
    ms = ns / 1e6
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"


def fmt_rate(r):
    if r is None:
        return "—"
    if r >= 1e6:
        return f"{r / 1e6:.2f} M"
    return f"{r / 1e3:.0f} k"


def fmt_mib(kib):
    return "—" if not kib else f"{kib / 1024:.1f} MiB"


def fmt_ratio(x):
    if x is None:
        return "—"
    return f"{x:.2f}×" if x < 10 else f"{x:.1f}×"


def fmt_cores(c):
    return "—" if c is None else f"{c:.2f}"


def status_cell(r):
    s = r.get("status")
    if s == "ok":
        chk = r.get("check")
        if chk:
            extra = f" in {chk['files']} files" if chk["files"] != 1 else ""
            return f"ok, {chk['lines']:,} lines{extra}"
        return "—"
    if s == "skipped":
        return f"not run: {r['reason']}"
    if s == "failed":
        return f"**FAILED**: {r['reason']}"
    return f"**FAILED**: {r.get('reason', 'unknown error')}"


def ok(r):
    return r is not None and r.get("status") == "ok"


def rate(r):
    return r["records"] / r["secs"] if ok(r) else None


# ---------------------------------------------------------------------------
# The run.


# What a run of each scenario is ranked by to pick the median run, and how
# that figure is shown.
MEDIAN_BY = {
    "latency": (lambda r: r["p50_ns"], lambda v: fmt_ns(v)),
    "throughput": (rate, lambda v: fmt_rate(v)),
    "multiprocess": (rate, lambda v: fmt_rate(v)),
    "loop": (lambda r: r["worst_lag_ns"], lambda v: fmt_ns(v)),
}


def median_run(scenario, runs):
    """The run with the median figure (p50 for A, records/s for B and C,
    worst lag for E), with every run's figure in run order; or the first
    bad run."""
    if len(runs) == 1:
        return runs[0]
    bad = [r for r in runs if not ok(r)]
    if bad:
        r = dict(bad[0])
        if len(runs) > 1:
            r["reason"] = f"{len(bad)} of {len(runs)} runs: {r.get('reason')}"
        return r
    key, show = MEDIAN_BY[scenario]
    ranked = sorted(runs, key=key)
    r = dict(ranked[(len(ranked) - 1) // 2])
    r["all_runs"] = ", ".join(show(key(x)) for x in runs)
    return r


def median_note(args, table):
    """What a table's figures are when there were several runs."""
    if args.runs <= 1:
        return ""
    by = {"latency": "p50", "throughput": "records/s", "multiprocess": "records/s", "loop": "worst lag"}[table]
    return (
        f"Each contender ran {args.runs} times, the runs of all contenders taking turns; the run with "
        f"the median {by} is shown, and every run's {by} is listed under the table. "
    )


def runs_list(rows):
    """The lines under a table listing every run's figure."""
    return [f"- {name}: {r['all_runs']}" for name, r in rows if ok(r) and r.get("all_runs")]


def summary_line(scenario, r):
    if not ok(r):
        return status_cell(r).replace("**", "")
    if scenario == "latency":
        s = f"p50 {fmt_ns(r['p50_ns'])}, p99 {fmt_ns(r['p99_ns'])}, p99.9 {fmt_ns(r['p999_ns'])}"
    elif scenario == "loop":
        s = f"worst lag {fmt_ns(r['worst_lag_ns'])}, p99 {fmt_ns(r['p99_lag_ns'])}"
    else:
        s = f"{fmt_rate(rate(r))} records/s"
    chk = r.get("check")
    return s + (", verified" if chk else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200_000, help="timed calls, scenario A (default 200000)")
    ap.add_argument("--records", type=int, default=200_000, help="records, scenario B (default 200000)")
    ap.add_argument(
        "--records-per-process", type=int, default=100_000, help="records per process, scenario C (default 100000)"
    )
    ap.add_argument("--processes", type=int, default=4, help="processes, scenario C (default 4)")
    ap.add_argument(
        "--loop-records", type=int, default=100_000, help="records of the 10 coroutines together, scenario E (default 100000)"
    )
    ap.add_argument("--runs", type=int, default=1, help="runs of every scenario per contender, taking turns; the median run is reported (default 1)")
    ap.add_argument("--only", help="contenders, comma-separated: " + ",".join(c.key for c in CONTENDERS))
    ap.add_argument("--scenarios", default="latency,throughput,multiprocess,loop", help="A/latency, B/throughput, C/multiprocess, E/loop")
    ap.add_argument("--quiet-wait", type=float, default=2.0, help="before each child, wait up to SECS for other processes to leave the CPUs idle (default 2; 0 disables)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds before a child is killed (default 300)")
    ap.add_argument("--write", action="store_true", help="write bench/PYTHON.md and the python section of bench/RESULTS.md")
    args = ap.parse_args()

    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        unknown = [k for k in keys if k not in BY_KEY]
        if unknown:
            ap.error(f"unknown contender(s) {', '.join(unknown)}; known: {', '.join(BY_KEY)}")
        contenders = [c for c in CONTENDERS if c.key in keys]
    else:
        contenders = list(CONTENDERS)
    scenarios = []
    for s in args.scenarios.split(","):
        s = LETTERS.get(s.strip().lower(), s.strip().lower())
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r}")
        if s not in scenarios:
            scenarios.append(s)
    scenarios.sort(key=SCENARIOS.index)

    jobs = []
    for s in scenarios:
        keys = [c.key for c in contenders]
        if s in ("latency", "loop"):
            keys = ["none"] + keys
        n = {
            "latency": args.calls,
            "throughput": args.records,
            "multiprocess": args.records_per_process,
            "loop": args.loop_records,
        }[s]
        for _ in range(args.runs):
            jobs += [(s, k, n) for k in keys]

    info = machine()
    results = {s: {} for s in scenarios}
    started = time.monotonic()
    watch = CpuWatch()
    for j, (s, k, n) in enumerate(jobs, 1):
        if args.quiet_wait > 0:
            wait_for_quiet(args.quiet_wait)
        t = time.monotonic()
        r = run_child(k, s, n, args)
        results[s].setdefault(k, []).append(r)
        print(
            f"[{j}/{len(jobs)}] {s} {k}: {summary_line(s, r)} ({time.monotonic() - t:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
    info["wall_s"] = time.monotonic() - started
    info["others_cores"] = watch.others_cores()
    info["load_end"] = os.getloadavg()
    final = {s: {k: median_run(s, rs) for k, rs in by.items()} for s, by in results.items()}

    full, summary = render(args, info, contenders, scenarios, final)
    if args.write:
        with open(os.path.join(BENCH, "PYTHON.md"), "w") as f:
            f.write(full)
        path = os.path.join(BENCH, "RESULTS.md")
        try:
            with open(path) as f:
                doc = f.read()
        except FileNotFoundError:
            doc = "# Results\n"
        with open(path, "w") as f:
            f.write(replace_section(doc, summary))
        print(f"wrote bench/PYTHON.md and the python section of bench/RESULTS.md in {info['wall_s']:.0f} s", file=sys.stderr)
    else:
        sys.stdout.write(full)


def replace_section(doc, body):
    """`doc` with its python section replaced by `body` (appended when there
    is none); the same markers and rule as bench/src/section.rs."""
    section = f"{SECTION_BEGIN}\n\n{body.strip()}\n\n{SECTION_END}"
    start = doc.find(SECTION_BEGIN)
    if start >= 0:
        end = doc.find(SECTION_END, start)
        if end >= 0:
            end += len(SECTION_END)
            return doc[:start] + section + doc[end:]
    return f"{doc.rstrip()}\n\n{section}\n"


# ---------------------------------------------------------------------------
# The report.


def command_line():
    return " ".join(["bench/python/run"] + sys.argv[1:])


def render(args, info, contenders, scenarios, final):
    label = {c.key: c.label for c in CONTENDERS}
    label["none"] = "no logging"
    mlabel = {c.key: c.mlabel for c in CONTENDERS}
    peers = [c for c in contenders if c.key != OURS]
    L = final.get("latency", {})
    B = final.get("throughput", {})
    C = final.get("multiprocess", {})
    E = final.get("loop", {})

    def fig(res, key, field):
        r = res.get(key)
        return r[field] if ok(r) else None

    def tput(res, key):
        return rate(res.get(key))

    def cost_ratio(peer, ours):
        return peer / ours if peer and ours else None

    def tput_ratio(peer, ours):
        return ours / peer if peer and ours else None

    # Figures: (title, scenario results, value function, cost?, formatter)
    figures = []
    if "latency" in scenarios:
        for f, t in (("p50_ns", "caller p50"), ("p99_ns", "caller p99"), ("p999_ns", "caller p99.9")):
            figures.append((t, lambda k, f=f: fig(L, k, f), True, fmt_ns))
    if "throughput" in scenarios:
        figures.append(("end to end, 1 process (records/s)", lambda k: tput(B, k), False, fmt_rate))
    if "multiprocess" in scenarios:
        figures.append(
            (f"{args.processes} processes, one file (records/s)", lambda k: tput(C, k), False, fmt_rate)
        )
    if "loop" in scenarios:
        figures.append(("event-loop worst lag", lambda k: fig(E, k, "worst_lag_ns"), True, fmt_ns))
        figures.append(("event-loop p99 lag", lambda k: fig(E, k, "p99_lag_ns"), True, fmt_ns))

    targets = render_targets(args, scenarios, L, C, E)
    cores = info["cores"]
    o = []
    w = o.append

    # -- summary: the body of the Summary section here and of RESULTS.md's
    # python section --
    s = []
    sw = s.append
    if info["others_cores"] is not None and info["others_cores"] > QUIET_CORES:
        sw(
            f"**Not a quiet machine**: other processes used {info['others_cores']:.2f} cores on average "
            "during this run, so its timings are noisy (some targets may be missed for that reason alone); "
            "rerun on an idle machine for figures to compare.\n"
        )
    if targets:
        sw("| target | measured | met |\n|---|---|---|")
        for t in targets:
            sw(f"| {t[0]} | {t[1]} | {t[2]} |")
        sw("")
    if figures and OURS in [c.key for c in contenders]:
        sw(
            "Ratios read \"logbraid Logger is N× better\": a peer's cost ÷ logbraid's for "
            "latencies, logbraid's records/s ÷ the peer's for throughput; below 1× the peer is ahead. "
            "Best peer: the best figure among the other contenders (the stdlib + logbraid.Handler row excluded).\n"
        )
        sw("| figure | logbraid Logger | stdlib Logger + logbraid.Handler | stdlib FileHandler | best peer |")
        sw("|---|---:|---:|---:|---|")
        for title, val, cost, fm in figures:
            ours = val(OURS)
            hv = val("logbraid-handler")
            sv = val("stdlib-file")
            cands = [(val(c.key), c.key) for c in peers if c.key != "logbraid-handler" and val(c.key)]
            best = None
            if cands:
                best = min(cands) if cost else max(cands)
            ratio = (cost_ratio if cost else tput_ratio)
            names = mlabel if title.startswith(f"{args.processes} processes") else label
            best_cell = (
                f"{names[best[1]]} {fm(best[0])} ({fmt_ratio(ratio(best[0], ours))})" if best else "—"
            )
            sf = fm(sv) + (f" ({fmt_ratio(ratio(sv, ours))})" if sv and ours else "")
            sw(f"| {title} | {fm(ours)} | {fm(hv)} | {sf} | {best_cell} |")
        sw("")
    failed = [
        (sc, k, r)
        for sc in scenarios
        for k, r in final[sc].items()
        if r.get("status") in ("failed", "error")
    ]
    if failed:
        sw(
            "Runs that failed (their figures are left out of every ratio): "
            + "; ".join(f"{sc} {label[k]}: {r.get('reason')}" for sc, k, r in failed)
            + "\n"
        )
    summary = "\n".join(
        [
            "## Python\n",
            "`bench/python/` runs the logbraid Python package side by side with the standard library, "
            "picologging, loguru and logging-mp: same layout, same INFO call, same machine, one run, "
            "every line of every output file read back and checked. Full tables, method and machine: "
            f"[PYTHON.md](PYTHON.md). This run: {info['python']}, {cores} cores, {info['date']}, "
            f"`{command_line()}`.\n",
        ]
        + s
    )

    # -- full report --
    w("# Python logging benchmarks\n")
    w(
        "Generated by `bench/python/bench.py`; do not edit by hand, rerun:\n\n"
        f"```sh\n{command_line()}\n```\n"
    )
    w("## Machine\n")
    v = info["versions"]
    w(
        f"- CPU: {info['cpu']}, {cores} logical cores ({info['usable_cores']} usable), {info['memory']}\n"
        f"- {info['kernel']}; {info['python']}\n"
        f"- logbraid {v.get('logbraid') or 'not installed'} built from revision {info['revision']}; "
        f"picologging {v.get('picologging') or 'not installed'}, loguru {v.get('loguru') or 'not installed'}, "
        f"logging-mp {v.get('logging-mp') or 'not installed'} (with rich {v.get('rich') or '—'})\n"
        f"- {info['date']}; the run took {info['wall_s']:.0f} s; load average {info['load'][0]:.2f} at the start, "
        f"{info['load_end'][0]:.2f} at the end; other processes used {fmt_cores(info['others_cores'])} cores on average "
        f"during the run (the *other CPU* columns give it per child)\n"
    )
    w("## Summary\n")
    w("\n".join(s))

    if "latency" in scenarios:
        w("## A. Caller cost per call, one process\n")
        w(
            f"{args.calls:,} calls, each timed alone with `time.perf_counter_ns()` before and after, "
            f"after 10,000 warm-up calls and a 200 ms pause; no subtraction. Then the contender is "
            f"flushed and closed and the file checked ({args.calls + 10000:,} lines). "
            + median_note(args, "latency")
            + "\n"
        )
        w("| contender | p50 | p99 | p99.9 | max | mean | file check | peak RSS | other CPU |")
        w("|---|---:|---:|---:|---:|---:|---|---:|---:|")
        for k in ["none"] + [c.key for c in contenders]:
            r = L.get(k)
            if r is None:
                continue
            name = "timer alone (two consecutive `perf_counter_ns()`)" if k == "none" else label[k]
            if ok(r):
                w(
                    f"| {name} | {fmt_ns(r['p50_ns'])} | {fmt_ns(r['p99_ns'])} | {fmt_ns(r['p999_ns'])} | "
                    f"{fmt_ns(r['max_ns'])} | {fmt_ns(r['mean_ns'])} | {status_cell(r)} | "
                    f"{fmt_mib(r.get('peak_rss_kib'))} | {fmt_cores(r.get('others_cores'))} |"
                )
            else:
                w(f"| {name} | | | | | | {status_cell(r)} | | {fmt_cores(r.get('others_cores'))} |")
        listed = runs_list((label.get(k, k), L[k]) for k in [c.key for c in contenders] if k in L)
        w("\n" + "\n".join(["p50 of every run:", *listed]) + "\n" if listed else "")

    if "throughput" in scenarios:
        w("## B. End to end, one process, into a file\n")
        w(
            f"{args.records:,} records as fast as one thread can log them, after 10,000 warm-up records "
            "and a 200 ms pause; the clock stops when the contender's flush/stop/listener-stop has returned "
            "and the file holds every line (written to the file, not fsynced). "
            + median_note(args, "throughput")
            + "*calls* is the time the logging loop itself took.\n"
        )
        w("| contender | records/s | seconds | calls | stop returned | file check | peak RSS | other CPU |")
        w("|---|---:|---:|---:|---:|---|---:|---:|")
        for c in contenders:
            r = B.get(c.key)
            if r is None:
                continue
            if ok(r):
                poll = " ¹" if r.get("polled") else ""
                w(
                    f"| {c.label} | {fmt_rate(rate(r))}{poll} | {r['secs']:.3f} | {r['calls_s']:.3f} | "
                    f"{r['stop_s']:.3f} | {status_cell(r)} | {fmt_mib(r.get('peak_rss_kib'))} | "
                    f"{fmt_cores(r.get('others_cores'))} |"
                )
            else:
                w(f"| {c.label} | | | | | {status_cell(r)} | | {fmt_cores(r.get('others_cores'))} |")
        w(
            "\n¹ the file was not complete when stop returned; the clock ran on until it was "
            "(polled every millisecond).\n"
            if any(ok(r) and r.get("polled") for r in B.values())
            else ""
        )
        listed = runs_list((c.label, B[c.key]) for c in contenders if c.key in B)
        w("\n".join(["records/s of every run:", *listed]) + "\n" if listed else "")

    if "multiprocess" in scenarios:
        w(f"## C. {args.processes} processes into one file\n")
        w(
            f"{args.processes} processes started with `multiprocessing` (fork), each logging "
            f"{args.records_per_process:,} records as fast as it can; the clock starts before the first "
            "child is started and stops when the parent's shutdown has returned and the file holds all "
            f"{args.processes * args.records_per_process:,} lines. Each contender the way its documentation "
            "shows for several processes (below). *Slowest child's loop*: the longest time a child "
            "spent in its logging loop (for loguru, including the `logger.complete()` that ends it); "
            "*children joined*: when the last child had exited. "
            + median_note(args, "multiprocess")
            + "\n"
        )
        w(
            "| contender | records/s | seconds | slowest child's loop | children joined | shutdown returned | "
            "file check | parent peak RSS | largest child peak RSS | other CPU |"
        )
        w("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
        for c in contenders:
            r = C.get(c.key)
            if r is None:
                continue
            if ok(r):
                poll = " ¹" if r.get("polled") else ""
                w(
                    f"| {c.mlabel} | {fmt_rate(rate(r))}{poll} | {r['secs']:.3f} | "
                    f"{r['slowest_child_loop_s']:.3f} | {r['joined_s']:.3f} | "
                    f"{r['stop_s']:.3f} | {status_cell(r)} | {fmt_mib(r.get('peak_rss_kib'))} | "
                    f"{fmt_mib(r.get('children_peak_rss_kib'))} | {fmt_cores(r.get('others_cores'))} |"
                )
            else:
                w(f"| {c.mlabel} | | | | | | {status_cell(r)} | | | {fmt_cores(r.get('others_cores'))} |")
        if any(ok(r) and r.get("polled") for r in C.values()):
            w("\n¹ the file was not complete when shutdown returned; the clock ran on until it was.")
        listed = runs_list((c.mlabel, C[c.key]) for c in contenders if c.key in C)
        w("\n" + "\n".join(["records/s of every run:", *listed]) if listed else "")
        w("\nHow each contender is set up for several processes:\n")
        for c in contenders:
            w(f"- {c.mlabel}: {c.multi}")
        w("")

    if "loop" in scenarios:
        w("## E. asyncio event-loop lag\n")
        w(
            f"One event loop; 10 coroutines log {args.loop_records:,} records together, each yielding "
            "with `await asyncio.sleep(0)` after every record, while a monitor coroutine repeatedly "
            "awaits `asyncio.sleep(0.001)` and records how much later than 1 ms it woke up; "
            "a wake-up after the last record was logged is not counted (the loop has gone idle by "
            "then, and the selector's timeout, rounded up to a whole millisecond, sets that lag). "
            "Then the contender is flushed and closed and the file checked. The *no logging* row is "
            "the same loop without the call: what the loop costs by itself. "
            + median_note(args, "loop")
            + "\n"
        )
        w("| contender | worst lag | p99 lag | p50 lag | samples | logging loop | file check | peak RSS | other CPU |")
        w("|---|---:|---:|---:|---:|---:|---|---:|---:|")
        for k in ["none"] + [c.key for c in contenders]:
            r = E.get(k)
            if r is None:
                continue
            if ok(r):
                w(
                    f"| {label[k]} | {fmt_ns(r['worst_lag_ns'])} | {fmt_ns(r['p99_lag_ns'])} | "
                    f"{fmt_ns(r['p50_lag_ns'])} | {r['samples']:,} | {r['wall_s']:.2f} s | {status_cell(r)} | "
                    f"{fmt_mib(r.get('peak_rss_kib'))} | {fmt_cores(r.get('others_cores'))} |"
                )
            else:
                w(f"| {label[k]} | | | | | | {status_cell(r)} | | {fmt_cores(r.get('others_cores'))} |")
        listed = runs_list((label[k], E[k]) for k in ["none"] + [c.key for c in contenders] if k in E)
        w("\n" + "\n".join(["Worst lag of every run:", *listed]) + "\n" if listed else "")

    if figures and OURS in [c.key for c in contenders]:
        w("## Ratios: logbraid Logger against each contender\n")
        w(
            "N× means the logbraid Logger is N times better: the contender's cost ÷ logbraid's for "
            "latencies and lag, logbraid's records/s ÷ the contender's for throughput. Below 1× the "
            "contender is ahead. — : not measured, not run or failed.\n"
        )
        w("| contender | " + " | ".join(f[0] for f in figures) + " |")
        w("|---|" + "---:|" * len(figures))
        w(
            "| logbraid Logger (the figures) | "
            + " | ".join(fm(val(OURS)) for _, val, _, fm in figures)
            + " |"
        )
        for c in peers:
            cells = []
            for _, val, cost, fm in figures:
                pv, ov = val(c.key), val(OURS)
                cells.append(fmt_ratio((cost_ratio if cost else tput_ratio)(pv, ov)))
            w(f"| {c.label} | " + " | ".join(cells) + " |")
        w("")

    w("## Contenders\n")
    for c in contenders:
        version = info["versions"].get(c.package) if c.package else platform.python_version()
        w(f"- **{c.label}** ({c.package or 'Python'} {version or 'not installed'}): {c.single}.")
    w(
        "\nEvery contender writes the same layout, `%(asctime)s %(levelname)s %(name)s %(message)s` "
        "(loguru: `{time:YYYY-MM-DD HH:mm:ss,SSS} {level} {name} {message}`, where `{name}` is the "
        "module), at level INFO, with the call `log.info(\"w%d request %s served in %d ms\", p, i, i % 1000)` "
        "(loguru: `logger.info(\"w{} request {} served in {} ms\", p, i, i % 1000)`), p being the process "
        "or coroutine and i the record's sequence number.\n"
    )
    notes = {
        "logging-mp": "logging-mp writes a fixed layout with file name and line number, taken from its "
        "module constant `_FILE_FORMAT` when `basicConfig` builds the file handler; the benchmark sets "
        "that constant to the common layout first. It always rotates by size (`max_file_size`), so the "
        "limit is set far beyond what is written; its file is named after the program and a timestamp. "
        "It has no public stop: the benchmark calls the function it registers with `atexit` "
        "(`logging_mp._manager._shutdown`), which drains the queue and joins the listener.",
        "loguru": "loguru without enqueue is not run with several processes: its documentation says a "
        "file sink shared by processes needs `enqueue=True`, which is the loguru, enqueue=True row.",
        "picologging": "picologging 0.9.3, the latest release, writes garbage for the default "
        "`%(asctime)s` and cannot format `%(msecs)03d` (picologging issue #203, fixed in its repository "
        "after the release): it is given `datefmt=\"%Y-%m-%d %H:%M:%S\"`, so its timestamps lack the "
        "milliseconds (4 bytes less per line than the others). It has no multiprocessing support of its "
        "own; its `QueueHandler`/`QueueListener` are used with a `multiprocessing.Queue`, as with the "
        "standard library.",
    }
    present = [notes[c.key] for c in contenders if c.key in notes]
    if present:
        w("Special handling:\n")
        w("\n".join(f"- {n}" for n in present) + "\n")

    w("## Method\n")
    w(
        "- Each (contender, scenario, run) is a fresh `python` process (`bench/python/child.py`) in a "
        "temporary directory of its own, started with `LOGBRAID_COLLECTOR` removed from the environment. "
        "It writes its figures as JSON; after it has exited the driver reads every file under its "
        "`logs/` directory (rotated files included; no rotation is configured) and checks that each "
        "line has the common layout, that each (p, i) expected appears exactly once with the right "
        "third argument, and that each p's records are in order. A run that fails the check, exits "
        "with an error or times out is reported as FAILED with the reason, and is left out of the ratios.\n"
        "- Before each child the driver waits (up to `--quiet-wait` seconds) until other processes "
        "leave the CPUs idle; the *other CPU* columns give how many cores other processes used while "
        "the child ran (busy time in `/proc/stat` minus this benchmark's own).\n"
        "- **A**: warm-up, pause, then a plain loop; each call's `info(...)` is bracketed by two "
        "`perf_counter_ns()` calls, the index arithmetic is done outside the bracket. The loop runs as "
        "fast as it can, so contenders with a background thread pay for it under the GIL on the calling "
        "thread. Percentiles are nearest-rank over all samples. The timer row is the same loop without "
        "the call.\n"
        "- **B**: records/s = timed records ÷ (stop of the clock − start of the loop).\n"
        "- **C**: children are `multiprocessing` fork children; their exit codes must all be 0.\n"
        "- **E**: lag = actual sleep − 1 ms, negative values counted as 0; percentiles over every "
        "monitor wake-up that came before the 10 coroutines finished.\n"
        "- Peak RSS: `VmHWM` of the measuring process at its end (the children's: "
        "`getrusage(RUSAGE_CHILDREN).ru_maxrss`, which includes what a fork child shares with its parent).\n"
    )
    w(
        "Flags: `--calls N` (A), `--records N` (B), `--records-per-process N` and `--processes N` (C), "
        "`--loop-records N` (E), `--runs N` (every scenario), `--only a,b`, `--scenarios A,B,C,E`, "
        "`--quiet-wait SECS`, `--timeout SECS`, `--write`. "
        "This run: "
        + ", ".join(
            text
            for scenario, text in (
                ("latency", f"calls {args.calls:,}"),
                ("throughput", f"records {args.records:,}"),
                ("multiprocess", f"records per process {args.records_per_process:,} × {args.processes} processes"),
                ("loop", f"loop records {args.loop_records:,}"),
            )
            if scenario in scenarios
        )
        + f", runs {args.runs}"
        + f", quiet wait {args.quiet_wait:g} s.\n"
    )
    stderr_notes = [
        (sc, k, r["stderr"]) for sc in scenarios for k, r in final[sc].items() if r.get("stderr")
    ]
    if stderr_notes:
        w("## Standard error of the children\n")
        for sc, k, e in stderr_notes:
            first = e.strip().splitlines()[-1][:300]
            w(f"- {sc}, {label[k]}: `{first}`")
        w("")
    return "\n".join(o).rstrip() + "\n", summary


def render_targets(args, scenarios, L, C, E):
    def f(res, k, field):
        r = res.get(k)
        return r[field] if ok(r) else None

    def met(b):
        return "—" if b is None else ("yes" if b else "**no**")

    t = []
    if "latency" in scenarios:
        p = f(L, OURS, "p50_ns")
        timer = f(L, "none", "p50_ns")
        measured = fmt_ns(p) if p else status_cell(L.get(OURS, {"status": "error", "reason": "not run"}))
        if p and timer:
            measured += f" (timer included; {fmt_ns(p - timer)} less the timer's own p50)"
        t.append(
            (
                "logbraid Logger ≤ 1 µs per call (p50)",
                measured,
                met(None if p is None else p <= 1000),
            )
        )
        t.append(
            (
                "logbraid Logger ≤ 250 ns per call less the timer (p50)",
                fmt_ns(p - timer) if p and timer else "—",
                met(None if not (p and timer) else p - timer <= 250),
            )
        )
        h, s = f(L, "logbraid-handler", "p50_ns"), f(L, "stdlib-file", "p50_ns")
        t.append(
            (
                "stdlib Logger + logbraid.Handler ≤ 0.6× stdlib FileHandler per call (p50)",
                f"{h / s:.2f}× ({fmt_ns(h)} vs {fmt_ns(s)})" if h and s else "—",
                met(None if not (h and s) else h <= 0.6 * s),
            )
        )
    if "multiprocess" in scenarios:
        for k, name in ((OURS, "logbraid Logger"), ("logbraid-handler", "stdlib Logger + logbraid.Handler")):
            r = C.get(k)
            v = rate(r)
            cond = f"{args.processes} processes" + ("" if args.processes == 4 else " (the target is for 4)")
            t.append(
                (
                    f"{cond} ≥ 1 M records/s into one file ({name})",
                    f"{fmt_rate(v)} records/s" if v else (status_cell(r) if r else "—"),
                    met(None if v is None or args.processes != 4 else v >= 1e6),
                )
            )
    if "loop" in scenarios:
        base = f(E, "none", "worst_lag_ns")
        for k, name in ((OURS, "logbraid Logger"), ("logbraid-handler", "stdlib Logger + logbraid.Handler")):
            v = f(E, k, "worst_lag_ns")
            t.append(
                (
                    f"event-loop lag never above 1 ms ({name})",
                    (f"worst {fmt_ns(v)}, p99 {fmt_ns(f(E, k, 'p99_lag_ns'))}" if v is not None else "—")
                    + (f" (no logging: worst {fmt_ns(base)})" if base is not None and v is not None else ""),
                    met(None if v is None else v <= 1_000_000),
                )
            )
    return t


if __name__ == "__main__":
    main()
