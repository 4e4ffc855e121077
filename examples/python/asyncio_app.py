"""An asyncio program: many coroutines logging at once, and a monitor of
the event loop's lag.

A logbraid call formats the message and hands it to a background writer:
the loop never waits for the disk. Coroutines log through a logbraid
Logger, and some through a standard `logging` logger (as libraries do);
a monitor coroutine measures how late the loop wakes it up and prints the
figures at the end.

    python examples/python/asyncio_app.py [--dir DIR] [--tasks T] [--records N]

At the end the file is read back: every coroutine's records must be there
exactly once and in order; the program exits 1 if not.
"""

import argparse
import asyncio
import logging
import statistics
import sys
from pathlib import Path

import logbraid


async def handle(i: int, n: int) -> None:
    """A coroutine serving `n` requests; every 4th uses the stdlib logger."""
    log = logging.getLogger("aiohttp.access") if i % 4 == 3 else logbraid.getLogger("app.handler")
    for k in range(n):
        log.info("task-%d %d", i, k)
        if k % 10 == 9:
            await asyncio.sleep(0.001)  # waiting for I/O
        else:
            await asyncio.sleep(0)  # let the others run


async def monitor(interval: float, lags: "list[float]", stop: asyncio.Event) -> None:
    """How much later than asked the loop wakes a sleeping coroutine."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(interval)
        lags.append(max(0.0, loop.time() - start - interval))
        if stop.is_set():
            return


async def run(tasks: int, n: int) -> "list[float]":
    lags: "list[float]" = []
    stop = asyncio.Event()
    mon = asyncio.create_task(monitor(0.005, lags, stop))
    await asyncio.gather(*(handle(i, n) for i in range(tasks)))
    stop.set()
    await mon
    return lags


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="logs", help="directory of the log file (default: ./logs)")
    ap.add_argument("--tasks", type=int, default=200, help="coroutines")
    ap.add_argument("--records", type=int, default=200, help="records per coroutine")
    args = ap.parse_args()

    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "asyncio.log"
    for old in directory.glob("asyncio.log*"):  # a clean slate for the check
        old.unlink()

    logbraid.basicConfig(
        level="INFO",
        file=str(path),
        console=False,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    lags = asyncio.run(run(args.tasks, args.records))
    logbraid.shutdown()

    total = args.tasks * args.records
    print(f"asyncio_app: {args.tasks} coroutines x {args.records} records into {path}")
    ms = sorted(x * 1000 for x in lags)  # at least one sample
    print(
        f"  loop lag   {len(ms)} samples: median {statistics.median(ms):.2f} ms,"
        f" p99 {ms[int((len(ms) - 1) * 0.99)]:.2f} ms, max {ms[-1]:.2f} ms"
    )
    lines = path.read_text(encoding="utf-8").splitlines()
    problems = check(lines, args.tasks, args.records)
    if problems:
        for p in problems[:20]:
            print(f"  problem    {p}")
        print(f"  check      FAILED: {len(problems)} problems")
        return 1
    print(f"  check      {total} of {total} records, each once and in order per coroutine: OK")
    return 0


def check(lines: "list[str]", tasks: int, n: int) -> "list[str]":
    problems = []
    nxt: "dict[str, int]" = {}
    for line in lines:
        *_, name, task, k = line.split(" ")
        want_name = "aiohttp.access" if int(task[5:]) % 4 == 3 else "app.handler"
        if name != want_name:
            problems.append(f"{task} logged through {name}, expected {want_name}")
        if nxt.get(task, 0) != int(k):
            problems.append(f"{task}: expected {nxt.get(task, 0)}, found {k}")
        nxt[task] = int(k) + 1
    for i in range(tasks):
        if nxt.get(f"task-{i}", 0) != n:
            problems.append(f"task-{i}: {nxt.get(f'task-{i}', 0)} records, expected {n}")
    if len(lines) != tasks * n:
        problems.append(f"{len(lines)} lines, expected {tasks * n}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
