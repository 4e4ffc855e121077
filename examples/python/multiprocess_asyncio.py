"""Several processes, each running an asyncio event loop with many
coroutines logging, all into the parent's one file.

The parent calls `logbraid.basicConfig(file=...)` and starts the worker
processes; they configure nothing. Their coroutines log through a logbraid
Logger and through a standard `logging` logger, and every record reaches
the parent's collector, then its file.

    python examples/python/multiprocess_asyncio.py [--dir DIR] [--processes P]
        [--tasks T] [--records N] [--method fork|spawn|forkserver]

At the end the file is read back: every coroutine's records must be there
exactly once and in order; the program exits 1 if not.
"""

import argparse
import asyncio
import logging
import multiprocessing
import sys
from pathlib import Path

import logbraid


async def handle(p: int, i: int, n: int) -> None:
    log = logging.getLogger("lib.client") if i % 2 else logbraid.getLogger("app.handler")
    for k in range(n):
        log.info("p%d/task-%d %d", p, i, k)
        await asyncio.sleep(0)


async def serve(p: int, tasks: int, n: int) -> None:
    await asyncio.gather(*(handle(p, i, n) for i in range(tasks)))


def process_main(p: int, tasks: int, n: int) -> None:
    asyncio.run(serve(p, tasks, n))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="logs", help="directory of the log file (default: ./logs)")
    ap.add_argument("--processes", type=int, default=4, help="worker processes")
    ap.add_argument("--tasks", type=int, default=50, help="coroutines per process")
    ap.add_argument("--records", type=int, default=200, help="records per coroutine")
    ap.add_argument("--method", choices=multiprocessing.get_all_start_methods(), help="start method")
    args = ap.parse_args()

    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "multiprocess_asyncio.log"
    for old in directory.glob("multiprocess_asyncio.log*"):  # a clean slate for the check
        old.unlink()

    logbraid.basicConfig(level="INFO", file=str(path), console=False, format="%(process)d %(message)s")
    ctx = multiprocessing.get_context(args.method)
    procs = [
        ctx.Process(target=process_main, args=(p, args.tasks, args.records))
        for p in range(args.processes)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    logbraid.shutdown()

    total = args.processes * args.tasks * args.records
    print(
        f"multiprocess_asyncio: {args.processes} processes ({ctx.get_start_method()}) x"
        f" {args.tasks} coroutines x {args.records} records into {path}"
    )
    problems = []
    if any(proc.exitcode != 0 for proc in procs):
        problems.append(f"worker exit codes {[proc.exitcode for proc in procs]}")
    lines = path.read_text(encoding="utf-8").splitlines()
    pids = {line.split(" ", 1)[0] for line in lines}
    print(f"  written    {len(lines)} lines from {len(pids)} processes")
    problems += check(lines, args.processes, args.tasks, args.records)
    if problems:
        for p in problems[:20]:
            print(f"  problem    {p}")
        print(f"  check      FAILED: {len(problems)} problems")
        return 1
    print(f"  check      {total} of {total} records, each once and in order per coroutine: OK")
    return 0


def check(lines: "list[str]", processes: int, tasks: int, n: int) -> "list[str]":
    problems = []
    nxt: "dict[str, int]" = {}
    pid_of: "dict[str, str]" = {}
    for line in lines:
        pid, tag, k = line.split(" ")
        proc = tag.split("/")[0]
        if pid_of.setdefault(proc, pid) != pid:
            problems.append(f"{tag} from pid {pid}, its process is {pid_of[proc]}")
        if nxt.get(tag, 0) != int(k):
            problems.append(f"{tag}: expected {nxt.get(tag, 0)}, found {k}")
        nxt[tag] = int(k) + 1
    for p in range(processes):
        for i in range(tasks):
            got = nxt.get(f"p{p}/task-{i}", 0)
            if got != n:
                problems.append(f"p{p}/task-{i}: {got} records, expected {n}")
    if len(lines) != processes * tasks * n:
        problems.append(f"{len(lines)} lines, expected {processes * tasks * n}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
