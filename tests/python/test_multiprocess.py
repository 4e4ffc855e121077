"""Records of child processes reach the parent's file with nothing passed
by hand: 4 processes x 25 000 records, each line once, per-process order."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import check_streams

N = 25_000

WORKER = """
import logging, logbraid

def work(i, n):
    log = logbraid.getLogger(f"w{i}")
    for k in range(n):
        log.info("w%d %d", i, k)
    return i

def work_stdlib(i, n):
    log = logging.getLogger(f"w{i}")
    for k in range(n):
        log.info("w%d %d", i, k)
    return i
"""


def parent(body: str) -> str:
    return (
        WORKER
        + """
if __name__ == "__main__":
    import sys, multiprocessing as mp, concurrent.futures as cf
    logbraid.basicConfig(level="INFO", file="mp.log", console=False, format="%(message)s")
"""
        + "\n".join("    " + line for line in body.strip().splitlines())
        + """
    logbraid.shutdown()
"""
    )


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("fn", ["work", "work_stdlib"])
def test_start_methods(run, tmp_path, method, fn):
    run(
        parent(
            f"""
ctx = mp.get_context("{method}")
ps = [ctx.Process(target={fn}, args=(i, {N})) for i in range(4)]
for p in ps: p.start()
for p in ps: p.join()
assert [p.exitcode for p in ps] == [0, 0, 0, 0]
"""
        )
    )
    check_streams((tmp_path / "mp.log").read_text().splitlines(), 4, N)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_and_executor(run, tmp_path, method):
    run(
        parent(
            f"""
ctx = mp.get_context("{method}")
pool = ctx.Pool(4)
assert sorted(pool.starmap(work, [(i, {N}) for i in range(2)])) == [0, 1]
pool.close()
pool.join()
with cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
    assert sorted(ex.map(work, [2, 3], [{N}, {N}])) == [2, 3]
"""
        )
    )
    check_streams((tmp_path / "mp.log").read_text().splitlines(), 4, N)


def test_subprocess_importing_logbraid(run, tmp_path):
    (tmp_path / "child.py").write_text(
        "import sys, logbraid\n"
        "log = logbraid.getLogger('c')\n"
        "i = int(sys.argv[1])\n"
        f"for k in range({N}):\n"
        "    log.info('w%d %d', i, k)\n"
    )
    run(
        parent(
            """
import subprocess
ps = [subprocess.Popen([sys.executable, "child.py", str(i)]) for i in range(4)]
assert [p.wait() for p in ps] == [0, 0, 0, 0]
"""
        )
    )
    check_streams((tmp_path / "mp.log").read_text().splitlines(), 4, N)


def test_sigkilled_child_loses_nothing_of_the_others(run, tmp_path):
    run(
        parent(
            f"""
import os, signal, time
def doomed():
    log = logbraid.getLogger("doomed")
    log.info("doomed started")
    logbraid.flush()
    os.kill(os.getpid(), signal.SIGKILL)
ctx = mp.get_context("fork")
ps = [ctx.Process(target=work, args=(i, {N})) for i in range(3)]
k = ctx.Process(target=doomed)
for p in ps + [k]: p.start()
for p in ps + [k]: p.join()
assert k.exitcode == -signal.SIGKILL
"""
        )
    )
    lines = (tmp_path / "mp.log").read_text().splitlines()
    assert lines.count("doomed started") == 1
    check_streams([l for l in lines if l != "doomed started"], 3, N)


def test_standalone_collector_with_forward(run, tmp_path):
    binary = os.environ.get("LOGBRAID_BIN")
    if not binary:
        pytest.skip("LOGBRAID_BIN (the logbraid binary) not given")
    serve = subprocess.Popen(
        [binary, "serve", "--listen", "tcp://127.0.0.1:0", "--file", "all.log", "--format", "%(message)s"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = serve.stdout.readline().split()[-1]
        run(
            WORKER
            + f"""
if __name__ == "__main__":
    import multiprocessing as mp
    logbraid.basicConfig(level="INFO", forward="{url}", console=False)
    ps = [mp.get_context("spawn").Process(target=work, args=(i, {N})) for i in range(4)]
    for p in ps: p.start()
    for p in ps: p.join()
    assert [p.exitcode for p in ps] == [0, 0, 0, 0]
    assert logbraid.flush(30)
"""
        )
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0
    check_streams((tmp_path / "all.log").read_text().splitlines(), 4, N)
