"""A standalone collector and independent programs sending to it.

Starts `python -m logbraid serve` (the `logbraid serve` collector) on a
free TCP port for the native protocol and another for the standard
library's `SocketHandler`, writing one file. Then it runs worker programs
that are not its children as far as logbraid knows: each calls
`logbraid.basicConfig(forward=URL)`, as a program on another host would,
and one more uses nothing but `logging.handlers.SocketHandler`. Finally
the collector gets SIGTERM (it drains, flushes and exits 0) and the file is
checked: every worker's records exactly once, in order per worker.

    python examples/python/collector.py [--dir DIR] [--workers P] [--records N]

With the environment variable LOGBRAID_BIN naming the `logbraid` binary,
that binary is started (`$LOGBRAID_BIN serve ...`) instead of
`python -m logbraid serve`.
"""

import argparse
import logging
import logging.handlers
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import logbraid

FORMAT = "%(process)d %(name)s %(message)s"


def native_worker(i: int, url: str, n: int) -> None:
    """A program sending to the collector with logbraid's native protocol:
    batches are acknowledged, and resent after a reconnect."""
    logbraid.basicConfig(level="INFO", forward=url, console=False)
    fast = logbraid.getLogger("worker")
    plain = logging.getLogger("worker.stdlib")
    for k in range(n):
        (fast if k % 2 == 0 else plain).info("w%d %d", i, k)
    # Returns once the collector has acknowledged every record (exiting
    # does the same).
    logbraid.flush()


def stdlib_worker(i: int, url: str, n: int) -> None:
    """A program using the standard library only."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    handler = logging.handlers.SocketHandler(host, int(port))
    log = logging.getLogger("stdlib")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    for k in range(n):
        log.info("w%d %d", i, k)
    handler.close()


def serve_command() -> "list[str]":
    binary = os.environ.get("LOGBRAID_BIN")
    if binary:
        return [binary, "serve"]
    return [sys.executable, "-m", "logbraid", "serve"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="logs", help="directory of the log file (default: ./logs)")
    ap.add_argument("--workers", type=int, default=4, help="programs using logbraid")
    ap.add_argument("--stdlib-workers", type=int, default=1, help="programs using SocketHandler")
    ap.add_argument("--records", type=int, default=5000, help="records per program")
    ap.add_argument("--worker", nargs=3, metavar=("KIND", "I", "URL"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        kind, i, url = args.worker
        (native_worker if kind == "native" else stdlib_worker)(int(i), url, args.records)
        return 0

    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "collected.log"
    for old in list(directory.glob("collected.log*")) + list(directory.glob(".collected.log*")):
        old.unlink()  # a clean slate for the check, the collector's checkpoint included

    command = serve_command() + [
        "--listen", "tcp://127.0.0.1:0",
        "--listen", "python-tcp://127.0.0.1:0",
        "--file", str(path),
        "--format", FORMAT,
    ]  # fmt: skip
    # The collector and the workers are independent programs: none of them
    # inherits a collector address from whoever started this one.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGBRAID_") or k == "LOGBRAID_BIN"}
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    # The collector's stdout, read on a thread so that waiting for its
    # first lines can give up if it dies.
    lines: "queue.Queue[str]" = queue.Queue()

    def read_stdout() -> None:
        for line in server.stdout:
            lines.put(line)

    threading.Thread(target=read_stdout, daemon=True).start()
    try:
        urls = {}
        deadline = time.monotonic() + 30
        while len(urls) < 2:
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                if server.poll() is not None or time.monotonic() > deadline:
                    print(f"collector: no 'listening on' lines from {shlex.join(command)}")
                    return 1
                continue
            if line.startswith("listening on "):  # one line per --listen
                url = line.split()[-1]
                urls[url.split("://")[0]] = url  # by scheme: tcp, python-tcp
        print(f"collector: {shlex.join(command)}")
        for url in urls.values():
            print(f"  listening  {url}")

        workers = [("native", i, urls["tcp"]) for i in range(args.workers)] + [
            ("stdlib", args.workers + i, urls["python-tcp"]) for i in range(args.stdlib_workers)
        ]
        procs = [
            subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--records", str(args.records),
                 "--worker", kind, str(i), url],
                env=env,
            )
            for kind, i, url in workers
        ]  # fmt: skip
        codes = [p.wait() for p in procs]
        if any(codes):
            print(f"  a worker failed: exit codes {codes}")
            return 1
        print(f"  sent       {args.workers} logbraid programs x {args.records} records (acknowledged)")
        print(
            f"             {args.stdlib_workers} SocketHandler programs x {args.records} records"
        )

        # SocketHandler gets no acknowledgement: give the collector a moment
        # to read what is in flight before asking it to stop.
        total = len(workers) * args.records
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and count_lines(path) < total:
            time.sleep(0.05)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            code = "killed after 30 s"
    print(f"  stopped    SIGTERM, collector exit code {code}")

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    problems = check(text.splitlines(), len(workers), args.records)
    if code != 0:
        problems.append(f"the collector exited with {code}")
    if problems:
        for p in problems[:20]:
            print(f"  problem    {p}")
        print(f"  check      FAILED: {len(problems)} problems")
        return 1
    print(f"  check      {total} of {total} records in {path}, each once and in order: OK")
    return 0


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def check(lines: "list[str]", workers: int, n: int) -> "list[str]":
    problems = []
    nxt: "dict[str, int]" = {}
    for line in lines:
        *_, w, k = line.split(" ")
        if nxt.get(w, 0) != int(k):
            problems.append(f"{w}: expected {nxt.get(w, 0)}, found {k}")
        nxt[w] = int(k) + 1
    for i in range(workers):
        if nxt.get(f"w{i}", 0) != n:
            problems.append(f"w{i}: {nxt.get(f'w{i}', 0)} records, expected {n}")
    if len(lines) != workers * n:
        problems.append(f"{len(lines)} lines, expected {workers * n}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
