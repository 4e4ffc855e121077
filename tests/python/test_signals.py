"""A process stopped by a signal loses nothing it logged before it:
`with Pool() as pool:` (whose exit SIGTERMs the workers) under every start
method, and a service stopped with SIGTERM, idle or busy. The process
still ends as the signal would have ended it."""

import os
import signal
import subprocess
import sys

import pytest

from conftest import WORKER, check_streams

N = 25_000

POOL = WORKER + """
import sys, multiprocessing as mp

if __name__ == "__main__":
    method, fn, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    logbraid.basicConfig(level="INFO", file="pool.log", console=False, format="%(message)s")
    f = work if fn == "work" else work_stdlib
    with mp.get_context(method).Pool(4) as pool:
        assert sorted(pool.starmap(f, [(i, n) for i in range(4)])) == [0, 1, 2, 3]
    logbraid.shutdown()
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("fn", ["work", "work_stdlib"])
def test_with_pool_loses_nothing(run, tmp_path, method, fn):
    # Pool.__exit__ is terminate(): SIGTERM to every worker, whose records
    # may still be queued or on their way to the parent's collector.
    run(POOL, method, fn, str(N))
    check_streams((tmp_path / "pool.log").read_text().splitlines(), 4, N)


SERVICE = """
import os, sys, signal, threading, time, logging, logbraid

mode, n = sys.argv[1], int(sys.argv[2])
logbraid.basicConfig(level="INFO", file="svc.log", console=False, format="%(message)s")
if mode == "own-handler":
    def stop(signum, frame):
        logbraid.getLogger("svc").info("stopping on %d", signum)
        sys.exit(3)
    signal.signal(signal.SIGTERM, stop)

counts = [0, 0]

def busy(t):
    log = logbraid.getLogger(f"w{t}")
    std = logging.getLogger(f"s{t}")
    k = 0
    while True:
        (log if k % 2 else std).info("w%d %d", t, k)
        k += 1
        counts[t] = k

if mode == "busy":
    for t in range(2):
        threading.Thread(target=busy, args=(t,), daemon=True).start()
    # One line, from one thread: the test signals once both are past n.
    while min(counts) < n:
        time.sleep(0.001)
    print("past", flush=True)
    threading.Event().wait()
log = logbraid.getLogger("w0")
for k in range(n):
    log.info("w0 %d", k)
print("logged", flush=True)
signal.pause()
"""


def serve_and_signal(tmp_path, mode, n, sig=signal.SIGTERM):
    script = tmp_path / "svc.py"
    script.write_text(SERVICE)
    env = dict(os.environ)
    env.pop("LOGBRAID_COLLECTOR", None)
    p = subprocess.Popen(
        [sys.executable, str(script), mode, str(n)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = p.stdout.readline().strip()
        assert line in ("logged", "past"), (line, p.stderr.read() if p.poll() is not None else "")
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
    finally:
        # A failed check must not leave a process logging for ever.
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, err, (tmp_path / "svc.log").read_text()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_idle_service_stopped_by_a_signal_writes_everything(tmp_path, sig):
    code, err, text = serve_and_signal(tmp_path, "idle", 200_000, sig)
    assert code == -sig, err
    check_streams(text.splitlines(), 1, 200_000)


def test_busy_service_stopped_by_sigterm_writes_what_it_logged_before(tmp_path):
    code, err, text = serve_and_signal(tmp_path, "busy", 100_000)
    assert code == -signal.SIGTERM, err
    assert text.endswith("\n")
    nxt = {}
    for line in text.splitlines():
        w, k = line.split()
        assert int(k) == nxt.get(w, 0), f"{w}: expected {nxt.get(w, 0)}, found {k}"
        nxt[w] = int(k) + 1
    # Everything logged before the signal (at least n per thread), no gap.
    assert nxt.keys() == {"w0", "w1"} and min(nxt.values()) >= 100_000, nxt


def test_a_programs_own_sigterm_handler_is_left_alone(tmp_path):
    code, err, text = serve_and_signal(tmp_path, "own-handler", 50_000)
    assert code == 3, err
    lines = text.splitlines()
    assert lines[-1] == f"stopping on {int(signal.SIGTERM)}"
    check_streams(lines[:-1], 1, 50_000)


CAUGHT = """
import signal, sys, logbraid
logbraid.basicConfig(level="INFO", console=False, file="x.log", handle_signals=sys.argv[1] == "on")
logbraid.getLogger("x").info("one")
mask = next(int(l.split()[1], 16) for l in open("/proc/self/status") if l.startswith("SigCgt:"))
print(" ".join(s.name for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT) if mask >> (s - 1) & 1))
"""


@pytest.mark.parametrize("signals", ["on", "off"])
def test_signals_keyword(run, signals):
    # What the process catches, as the kernel reports it: SIGTERM and SIGHUP
    # by logbraid only when asked; SIGINT is Python's (KeyboardInterrupt).
    caught = run(CAUGHT, signals).stdout.split()
    assert caught == (["SIGTERM", "SIGHUP", "SIGINT"] if signals == "on" else ["SIGINT"])


CRASH = """
import ctypes, logging, resource, sys, logbraid

resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
logbraid.basicConfig(level="INFO", file="crash.log", console=False, format="%(message)s")
log, std = logbraid.getLogger("l"), logging.getLogger("s")
for i in range(int(sys.argv[1])):
    (log if i % 2 else std).info("r %d", i)
ctypes.string_at(0)
"""


def test_a_crash_writes_what_was_logged_before(tmp_path):
    """A segmentation fault (here a read at address 0 through ctypes) still
    ends the process by SIGSEGV, after the records logged before it are
    written, best effort."""
    (tmp_path / "crash.py").write_text(CRASH)
    p = subprocess.run([sys.executable, "crash.py", str(N)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGSEGV, p.stderr
    lines = (tmp_path / "crash.log").read_text().splitlines()
    assert lines == [f"r {i}" for i in range(N)]


def test_flush_limit_bounds_the_flush_of_a_signal(run):
    # The collector accepts (the listen backlog) and never answers: the
    # flush cannot finish, and the limit given ends it.
    p = run(
        """
import os, signal, socket
import logbraid
srv = socket.socket(socket.AF_UNIX)
srv.bind("c.sock")
srv.listen(8)
logbraid.basicConfig(level="INFO", forward="unix:" + os.path.abspath("c.sock"),
                     console=False, flush_limit=0.25)
log = logbraid.getLogger("x")
for k in range(100):
    log.info("r %d", k)
os.kill(os.getpid(), signal.SIGTERM)
signal.pause()
""",
        check=False,
    )
    assert p.returncode == -signal.SIGTERM, p.stderr
    assert "not all written within 250ms; the rest are lost" in p.stderr, p.stderr


def test_flush_limit_is_checked(run):
    run(
        """
import logging, logbraid, pytest
for bad in (-1, float("nan"), float("inf"), 1e30):
    with pytest.raises(ValueError, match=r"^flush_limit: .* is not a number of seconds >= 0$"):
        logbraid.basicConfig(flush_limit=bad)
with pytest.raises(TypeError, match="^flush_limit: unexpected type bool$"):
    logbraid.Handler(flush_limit=True)
with pytest.raises(TypeError, match="^flush_limit: unexpected type str$"):
    logbraid.basicConfig(flush_limit="5")
logbraid.Handler(flush_limit=0).close()
logbraid.Handler(flush_limit=2.5).close()
"""
    )
