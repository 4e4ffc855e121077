"""One measurement in a fresh interpreter: a contender, configured as its
documentation shows, runs one scenario in the current directory (a temporary
directory of its own) and writes its figures as JSON to the --result file.

Run by bench.py; not meant to be started by hand, though it can be:

    python child.py --contender logbraid --scenario latency --n 10000 --result r.json

Every contender writes its lines under ./logs/. The driver reads them back
and checks them after this process has exited.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import logging.handlers
import math
import multiprocessing as mp
import os
import queue
import resource
import time
import traceback

# The same workload for every contender: the layout of each line and one
# INFO call with three arguments (process or coroutine, sequence number,
# sequence number % 1000).
FMT = "%(asctime)s %(levelname)s %(name)s %(message)s"
MSG = "w%d request %s served in %d ms"
LOGURU_FMT = "{time:YYYY-MM-DD HH:mm:ss,SSS} {level} {name} {message}"
LOGURU_MSG = "w{} request {} served in {} ms"
# picologging 0.9.3 (the latest release) writes garbage for the default
# %(asctime)s and cannot format %(msecs)03d (picologging issue #203): it is
# given an explicit datefmt, so its timestamps have no milliseconds.
PICOLOGGING_DATEFMT = "%Y-%m-%d %H:%M:%S"
NAME = "bench"
LOG_DIR = "logs"
LOG_FILE = os.path.join(LOG_DIR, "out.log")
WARMUP = 10_000
# "no rotation": logging-mp always rotates by size, so its limit is set far
# beyond anything this benchmark writes.
NO_ROTATION = 1 << 50


class Skip(Exception):
    """The contender cannot run this scenario; the message says why."""


def import_logbraid():
    # The package may be reinstalled while a run is in progress; give it a
    # moment rather than failing the row.
    for attempt in range(10):
        try:
            import logbraid

            return logbraid
        except ImportError:
            if attempt == 9:
                raise
            time.sleep(3)


def import_peer(name):
    try:
        return __import__(name)
    except ImportError as e:
        raise Skip(f"{name} is not installed ({e})") from e


# ---------------------------------------------------------------------------
# One process: each setup returns (logger, message, stop). The timed call is
# always `logger.info(message, p, i, i % 1000)`; stop() flushes and closes,
# and returns once the contender says its records are written.


def stdlib_logger(handler):
    log = logging.getLogger(NAME)
    log.handlers[:] = []
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return log


def setup_none():
    class Nothing:
        def info(self, *args):
            pass

    return Nothing(), MSG, lambda: None


def setup_stdlib_file():
    fh = logging.FileHandler(LOG_FILE)
    fh.setFormatter(logging.Formatter(FMT))
    return stdlib_logger(fh), MSG, fh.close


def setup_stdlib_queue():
    q = queue.Queue()
    fh = logging.FileHandler(LOG_FILE)
    fh.setFormatter(logging.Formatter(FMT))
    listener = logging.handlers.QueueListener(q, fh)
    listener.start()
    log = stdlib_logger(logging.handlers.QueueHandler(q))

    def stop():
        listener.stop()
        fh.close()

    return log, MSG, stop


def setup_picologging():
    picologging = import_peer("picologging")
    fh = picologging.FileHandler(LOG_FILE)
    fh.setFormatter(picologging.Formatter(FMT, datefmt=PICOLOGGING_DATEFMT))
    log = picologging.getLogger(NAME)
    log.addHandler(fh)
    log.setLevel(picologging.INFO)
    log.propagate = False

    def stop():
        fh.flush()
        fh.close()

    return log, MSG, stop


def setup_loguru(enqueue):
    def setup():
        logger = import_peer("loguru").logger
        logger.remove()
        logger.add(LOG_FILE, format=LOGURU_FMT, level="INFO", enqueue=enqueue)
        return logger, LOGURU_MSG, logger.remove

    return setup


def logging_mp_start():
    logging_mp = import_peer("logging_mp")
    # Its file layout is a module constant (with file name and line number);
    # replaced by the common layout before basicConfig builds the handler.
    logging_mp._FILE_FORMAT = logging.Formatter(FMT)
    logging_mp.basicConfig(
        level=logging_mp.INFO,
        console=False,
        file=True,
        file_path=LOG_DIR,
        max_file_size=NO_ROTATION,
    )
    # No public stop: the function it registers with atexit stops the
    # listener after draining the queue.
    return logging_mp, logging_mp._manager._shutdown


def setup_logging_mp():
    logging_mp, stop = logging_mp_start()
    return logging_mp.getLogger(NAME), MSG, stop


def setup_logbraid_handler():
    logbraid = import_logbraid()
    h = logbraid.Handler(file=LOG_FILE, format=FMT)
    return stdlib_logger(h), MSG, h.close


def setup_logbraid():
    logbraid = import_logbraid()
    logbraid.basicConfig(level="INFO", file=LOG_FILE, console=False, format=FMT)
    return logbraid.getLogger(NAME), MSG, logbraid.shutdown


SETUP = {
    "none": setup_none,
    "stdlib-file": setup_stdlib_file,
    "stdlib-queue": setup_stdlib_queue,
    "picologging": setup_picologging,
    "loguru": setup_loguru(False),
    "loguru-enqueue": setup_loguru(True),
    "logging-mp": setup_logging_mp,
    "logbraid-handler": setup_logbraid_handler,
    "logbraid": setup_logbraid,
}


# ---------------------------------------------------------------------------
# Several processes into one file, each contender its intended way. Each
# returns (start, stop, children's target, the target's leading arguments).
# Children are started with fork.


def mp_loop(info, msg, p, m):
    for i in range(m):
        info(msg, p, i, i % 1000)


def child_stdlib_file(p, m):
    fh = logging.FileHandler(LOG_FILE, mode="a")
    fh.setFormatter(logging.Formatter(FMT))
    mp_loop(stdlib_logger(fh).info, MSG, p, m)
    fh.close()


def child_stdlib_queue(q, p, m):
    mp_loop(stdlib_logger(logging.handlers.QueueHandler(q)).info, MSG, p, m)


def child_picologging(q, p, m):
    import picologging
    import picologging.handlers

    log = picologging.getLogger(NAME)
    log.addHandler(picologging.handlers.QueueHandler(q))
    log.setLevel(picologging.INFO)
    log.propagate = False
    mp_loop(log.info, MSG, p, m)


def child_loguru(logger, p, m):
    mp_loop(logger.info, LOGURU_MSG, p, m)
    # loguru's advice for a child process before it leaves.
    logger.complete()


def child_logging_mp(p, m):
    import logging_mp

    mp_loop(logging_mp.getLogger(NAME).info, MSG, p, m)


def child_logbraid(p, m):
    import logbraid

    mp_loop(logbraid.getLogger(NAME).info, MSG, p, m)


def child_logbraid_handler(p, m):
    # A plain stdlib logger: the root logger's logbraid.Handler, set up by
    # basicConfig in the parent, forwards to the parent's collector.
    mp_loop(logging.getLogger(NAME).info, MSG, p, m)


def mp_stdlib_file(ctx):
    open(LOG_FILE, "a").close()
    return (lambda: None), child_stdlib_file, ()


def mp_stdlib_queue(ctx):
    q = ctx.Queue()
    fh = logging.FileHandler(LOG_FILE)
    fh.setFormatter(logging.Formatter(FMT))
    listener = logging.handlers.QueueListener(q, fh)
    listener.start()

    def stop():
        listener.stop()
        fh.close()

    return stop, child_stdlib_queue, (q,)


def mp_picologging(ctx):
    picologging = import_peer("picologging")
    import picologging.handlers

    q = ctx.Queue()
    fh = picologging.FileHandler(LOG_FILE)
    fh.setFormatter(picologging.Formatter(FMT, datefmt=PICOLOGGING_DATEFMT))
    listener = picologging.handlers.QueueListener(q, fh)
    listener.start()

    def stop():
        listener.stop()
        fh.flush()
        fh.close()

    return stop, child_picologging, (q,)


def mp_loguru(ctx):
    raise Skip(
        "loguru without enqueue is not safe for several processes on one file; "
        "its multi-process row is loguru, enqueue=True"
    )


def mp_loguru_enqueue(ctx):
    logger = import_peer("loguru").logger
    logger.remove()
    logger.add(LOG_FILE, format=LOGURU_FMT, level="INFO", enqueue=True, context=ctx)

    def stop():
        logger.complete()
        logger.remove()

    return stop, child_loguru, (logger,)


def mp_logging_mp(ctx):
    logging_mp, stop = logging_mp_start()
    logging_mp.getLogger(NAME)
    return stop, child_logging_mp, ()


def mp_logbraid(ctx):
    logbraid = import_logbraid()
    logbraid.basicConfig(level="INFO", file=LOG_FILE, console=False, format=FMT)
    return logbraid.shutdown, child_logbraid, ()


def mp_logbraid_handler(ctx):
    logbraid = import_logbraid()
    logbraid.basicConfig(level="INFO", file=LOG_FILE, console=False, format=FMT)
    return logbraid.shutdown, child_logbraid_handler, ()


MULTIPROCESS = {
    "stdlib-file": mp_stdlib_file,
    "stdlib-queue": mp_stdlib_queue,
    "picologging": mp_picologging,
    "loguru": mp_loguru,
    "loguru-enqueue": mp_loguru_enqueue,
    "logging-mp": mp_logging_mp,
    "logbraid-handler": mp_logbraid_handler,
    "logbraid": mp_logbraid,
}


# ---------------------------------------------------------------------------
# Measurements.


def peak_rss_kib():
    """This process's peak resident set (VmHWM). ru_maxrss is not used for
    the process itself: across the driver's fork+exec it can keep the
    driver's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def lines_on_disk():
    n = 0
    for root, _, files in os.walk(LOG_DIR):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                while True:
                    block = f.read(1 << 20)
                    if not block:
                        break
                    n += block.count(b"\n")
    return n


def wait_complete(expected, t_stop, limit=30.0):
    """The moment the files hold `expected` lines: right after stop() for a
    contender whose stop waits for its writes (no poll), else found by
    polling every millisecond."""
    if lines_on_disk() >= expected:
        return t_stop, False
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        time.sleep(0.001)
        if lines_on_disk() >= expected:
            return time.perf_counter(), True
    return time.perf_counter(), True


def percentiles(samples, qs):
    """Nearest-rank percentiles."""
    s = sorted(samples)
    n = len(s)
    return {q: s[max(0, min(n - 1, math.ceil(round(q * n, 6)) - 1))] for q in qs}


def warmed_up(contender):
    """The contender set up, WARMUP records logged and a pause for its
    background work to settle: its `info`, message and stop function."""
    log, msg, stop = SETUP[contender]()
    info = log.info
    for i in range(WARMUP):
        info(msg, 0, i, i % 1000)
    time.sleep(0.2)
    return info, msg, stop


def run_latency(contender, n):
    info, msg, stop = warmed_up(contender)
    pc = time.perf_counter_ns
    samples = [0] * n
    for j in range(n):
        i = WARMUP + j
        k = i % 1000
        t0 = pc()
        info(msg, 0, i, k)
        t1 = pc()
        samples[j] = t1 - t0
    stop()
    p = percentiles(samples, (0.5, 0.99, 0.999))
    return {
        "p50_ns": p[0.5],
        "p99_ns": p[0.99],
        "p999_ns": p[0.999],
        "max_ns": max(samples),
        "mean_ns": sum(samples) / n,
        "expected": {"0": WARMUP + n} if contender != "none" else {},
    }


def run_throughput(contender, n):
    info, msg, stop = warmed_up(contender)
    pc = time.perf_counter
    t0 = pc()
    for i in range(WARMUP, WARMUP + n):
        info(msg, 0, i, i % 1000)
    t_calls = pc()
    stop()
    t_stop = pc()
    t_end, polled = wait_complete(WARMUP + n, t_stop)
    return {
        "records": n,
        "calls_s": t_calls - t0,
        "stop_s": t_stop - t0,
        "secs": t_end - t0,
        "polled": polled,
        "expected": {"0": WARMUP + n},
    }


def timed_child(target, args, p, m):
    """A child's body: the contender's loop, timed; the time goes to a file
    beside the logs."""
    t0 = time.perf_counter()
    target(*args, p, m)
    with open(f"child-{p}.json", "w") as f:
        json.dump({"loop_s": time.perf_counter() - t0}, f)


def run_multiprocess(contender, processes, m):
    ctx = mp.get_context("fork")
    stop, target, args = MULTIPROCESS[contender](ctx)
    procs = [
        ctx.Process(target=timed_child, args=(target, args, p, m)) for p in range(processes)
    ]
    pc = time.perf_counter
    t0 = pc()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    t_joined = pc()
    stop()
    t_stop = pc()
    codes = [p.exitcode for p in procs]
    if any(codes):
        raise RuntimeError(f"child exit codes {codes}")
    t_end, polled = wait_complete(processes * m, t_stop)
    loops = []
    for p in range(processes):
        with open(f"child-{p}.json") as f:
            loops.append(json.load(f)["loop_s"])
    return {
        "records": processes * m,
        "processes": processes,
        "slowest_child_loop_s": max(loops),
        "joined_s": t_joined - t0,
        "stop_s": t_stop - t0,
        "secs": t_end - t0,
        "polled": polled,
        "children_peak_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "expected": {str(p): m for p in range(processes)},
    }


COROUTINES = 10


def run_loop_lag(contender, total):
    log, msg, stop = SETUP[contender]()
    info = log.info
    per = total // COROUTINES
    pc = time.perf_counter_ns
    lags = []
    done = False

    async def worker(p):
        for i in range(per):
            info(msg, p, i, i % 1000)
            await asyncio.sleep(0)

    async def monitor():
        while not done:
            t0 = pc()
            await asyncio.sleep(0.001)
            # A sleep that outlasted the logging is not counted: the loop
            # then goes idle, and its selector's timeout, rounded up to a
            # whole millisecond, sets that sample's lag, not the logging.
            if not done:
                lags.append(max(0, pc() - t0 - 1_000_000))

    async def main():
        nonlocal done
        m = asyncio.create_task(monitor())
        await asyncio.sleep(0)
        t0 = pc()
        await asyncio.gather(*(worker(p) for p in range(COROUTINES)))
        t1 = pc()
        done = True
        await m
        return t1 - t0

    wall_ns = asyncio.run(main())
    stop()
    p = percentiles(lags, (0.5, 0.99))
    return {
        "records": per * COROUTINES,
        "samples": len(lags),
        "worst_lag_ns": max(lags),
        "p99_lag_ns": p[0.99],
        "p50_lag_ns": p[0.5],
        "wall_s": wall_ns / 1e9,
        "expected": {str(c): per for c in range(COROUTINES)} if contender != "none" else {},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--contender", required=True, choices=sorted(SETUP))
    ap.add_argument(
        "--scenario", required=True, choices=["latency", "throughput", "multiprocess", "loop"]
    )
    ap.add_argument("--n", type=int, required=True, help="calls, records, or records per process")
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--result", required=True)
    a = ap.parse_args()
    os.makedirs(LOG_DIR, exist_ok=True)
    try:
        if a.scenario == "latency":
            out = run_latency(a.contender, a.n)
        elif a.scenario == "throughput":
            out = run_throughput(a.contender, a.n)
        elif a.scenario == "multiprocess":
            out = run_multiprocess(a.contender, a.processes, a.n)
        else:
            out = run_loop_lag(a.contender, a.n)
        out["status"] = "ok"
    except Skip as e:
        out = {"status": "skipped", "reason": str(e)}
    except Exception as e:
        out = {
            "status": "error",
            "reason": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(),
        }
    out["peak_rss_kib"] = peak_rss_kib()
    with open(a.result, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
