"""Many processes, one file, nothing passed by hand.

The parent calls `logbraid.basicConfig(file=...)`; that starts a collector
for its children and names it in the environment (LOGBRAID_COLLECTOR). The
same worker then runs under each start method (fork, spawn, forkserver) as
plain `Process`es, in a `Pool` and in a `ProcessPoolExecutor`. Workers log
through a logbraid Logger and through a standard `logging` logger; every
record lands in the parent's file, and the workers open no file at all.

    python examples/python/multiprocess.py [--dir DIR] [--method fork|spawn|forkserver]
                                           [--workers P] [--records N]

At the end the file is read back: every worker's records must be there
exactly once and in the order they were logged; the program exits 1 if not.
"""

import argparse
import concurrent.futures
import logging
import multiprocessing
import os
import sys
from pathlib import Path

import logbraid

METHODS = ("fork", "spawn", "forkserver")


def work(tag: str, n: int) -> "tuple[str, int]":
    """The worker: configures nothing, logs `n` records tagged `tag`."""
    fast = logbraid.getLogger("worker")  # implemented in Rust
    plain = logging.getLogger("worker.stdlib")  # as any library would log
    for k in range(n):
        (fast if k % 2 == 0 else plain).info("%s %d", tag, k)
    return tag, os.getpid()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="logs", help="directory of the log file (default: ./logs)")
    ap.add_argument("--method", choices=METHODS, help="one start method (default: each in turn)")
    ap.add_argument("--workers", type=int, default=3, help="processes per group")
    ap.add_argument("--records", type=int, default=2000, help="records per worker")
    args = ap.parse_args()

    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "multiprocess.log"
    for old in directory.glob("multiprocess.log*"):  # a clean slate for the check
        old.unlink()
    before = set(os.listdir(directory))

    logbraid.basicConfig(
        level="INFO", file=str(path), console=False, format="%(process)d %(name)s %(message)s"
    )
    log = logbraid.getLogger("parent")

    available = multiprocessing.get_all_start_methods()
    methods = [args.method] if args.method else [m for m in METHODS if m in available]
    p, n = args.workers, args.records
    expected: "dict[str, int]" = {}
    print(f"multiprocess: {p} workers x {n} records per group, into {path}")
    step = 0
    for method in methods:
        ctx = multiprocessing.get_context(method)

        log.info("parent %d", step)
        step += 1
        tags = [f"{method}/process-{i}" for i in range(p)]
        procs = [ctx.Process(target=work, args=(t, n)) for t in tags]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        if any(proc.exitcode != 0 for proc in procs):
            print(f"  {method}: a worker failed: {[proc.exitcode for proc in procs]}")
            return 1
        expected.update((t, n) for t in tags)
        print(f"  {method:<10} Process             {p} x {n} records")

        log.info("parent %d", step)
        step += 1
        tags = [f"{method}/pool-{i}" for i in range(p)]
        with ctx.Pool(p) as pool:
            pool.starmap(work, [(t, n) for t in tags])
            pool.close()
            pool.join()
        expected.update((t, n) for t in tags)
        print(f"  {method:<10} Pool                {p} x {n} records")

        log.info("parent %d", step)
        step += 1
        tags = [f"{method}/executor-{i}" for i in range(p)]
        with concurrent.futures.ProcessPoolExecutor(p, mp_context=ctx) as ex:
            list(ex.map(work, tags, [n] * p))
        expected.update((t, n) for t in tags)
        print(f"  {method:<10} ProcessPoolExecutor {p} x {n} records")

    logbraid.shutdown()
    expected["parent"] = step

    total = sum(expected.values())
    lines = path.read_text(encoding="utf-8").splitlines()
    pids = {line.split(" ", 1)[0] for line in lines}
    new_files = sorted(set(os.listdir(directory)) - before - {path.name})
    print(f"  written    {len(lines)} lines from {len(pids)} processes into one file")
    problems = check(lines, expected)
    if new_files:
        problems.append(f"files the workers should not have opened: {new_files}")
    if problems:
        for line in problems[:20]:
            print(f"  problem    {line}")
        print(f"  check      FAILED: {len(problems)} problems")
        return 1
    print(f"  check      {total} of {total} records, each once and in order per worker: OK")
    return 0


def check(lines: "list[str]", expected: "dict[str, int]") -> "list[str]":
    """Each `<tag> <k>` once, k = 0, 1, ... per tag, and nothing else."""
    problems = []
    nxt: "dict[str, int]" = {}
    for line in lines:
        *_, tag, k = line.split(" ")
        if tag not in expected:
            problems.append(f"unexpected line {line!r}")
        elif nxt.get(tag, 0) != int(k):
            problems.append(f"{tag}: expected {nxt.get(tag, 0)}, found {k}")
        nxt[tag] = int(k) + 1
    for tag, n in expected.items():
        if nxt.get(tag, 0) != n:
            problems.append(f"{tag}: {nxt.get(tag, 0)} records, expected {n}")
    if len(lines) != sum(expected.values()):
        problems.append(f"{len(lines)} lines, expected {sum(expected.values())}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
