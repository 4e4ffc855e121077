"""Records of child processes reach the parent's file with nothing passed
by hand: 4 processes x 25 000 records, each line once, per-process order."""

import os
import signal
import socket
import subprocess
import textwrap
import sys
import time
from pathlib import Path

import pytest

from conftest import WORKER, check_streams

N = 25_000



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


def test_a_flush_is_not_acknowledged_while_the_collector_cannot_write(tmp_path):
    """The collector's route file for logger "blocked" cannot be opened (a
    directory is in the way): flush() says False and nothing is lost; once
    the obstacle is removed, flush() says True and every record is in the
    file once, in order."""
    binary = os.environ.get("LOGBRAID_BIN")
    if not binary:
        pytest.skip("LOGBRAID_BIN (the logbraid binary) not given")
    (tmp_path / "logs" / "blocked.log").mkdir(parents=True)
    serve = subprocess.Popen(
        [binary, "serve", "--listen", "tcp://127.0.0.1:0", "--route", "logs/{logger}.log",
         "--format", "%(message)s"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = serve.stdout.readline().split()[-1]
        client = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(f"""
                import logging, sys, logbraid
                logbraid.basicConfig(level="INFO", forward="{url}", console=False)
                log = logging.getLogger("blocked")
                for i in range(2000):
                    log.info("r%d", i)
                print(logbraid.flush(2), flush=True)
                sys.stdin.readline()
                print(logbraid.flush(60), flush=True)
            """)],
            cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert client.stdout.readline().strip() == "False"
            assert not (tmp_path / "logs" / "blocked.log").is_file()
            (tmp_path / "logs" / "blocked.log").rmdir()
            client.stdin.write("go\n")
            client.stdin.flush()
            assert client.stdout.readline().strip() == "True"
            assert client.wait(60) == 0
        finally:
            client.kill()
    finally:
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=30)
    assert serve.returncode == 0, err
    assert "cannot open" in err and "wait" in err, err
    lines = (tmp_path / "logs" / "blocked.log").read_text().splitlines()
    assert lines == [f"r{i}" for i in range(2000)]


def test_python_m_logbraid_serve_takes_the_flags_of_logbraid_serve(tmp_path):
    """`python -m logbraid serve` is the collector: bad flags exit 2 naming
    the flag, and a collector started this way stores what a
    SocketHandler sends, then stops cleanly on SIGTERM."""
    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "logbraid", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )

    bad = cli("serve", "--max-bytes", "12 parsecs")
    assert bad.returncode == 2
    assert bad.stderr.startswith(
        "error: invalid value '12 parsecs' for '--max-bytes <SIZE>': \"12 parsecs\" is not a size"
    ), bad.stderr
    unknown = cli("serve", "--bogus")
    assert unknown.returncode == 2 and "'--bogus'" in unknown.stderr
    assert cli("frobnicate").returncode == 2
    helped = cli("serve", "--help")
    assert helped.returncode == 0 and "--listen <URL>" in helped.stdout

    serve = subprocess.Popen(
        [sys.executable, "-m", "logbraid", "serve", "--listen", "python-tcp://127.0.0.1:0",
         "--file", "all.log", "--format", "%(name)s %(message)s"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        port = int(serve.stdout.readline().rsplit(":", 1)[1])
        import logging.handlers

        h = logging.handlers.SocketHandler("127.0.0.1", port)
        log = logging.getLogger("sock")
        log.addHandler(h)
        log.propagate = False
        for k in range(100):
            log.warning("w0 %d", k)
        h.close()
        # SocketHandler has no acknowledgement: wait (bounded) for the
        # lines, then stop.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (tmp_path / "all.log").exists() and len((tmp_path / "all.log").read_text().splitlines()) == 100:
                break
            time.sleep(0.05)
    finally:
        serve.send_signal(signal.SIGTERM)
        out, err = serve.communicate(timeout=30)
    assert serve.returncode == 0, err
    lines = (tmp_path / "all.log").read_text().splitlines()
    assert lines == [f"sock w0 {k}" for k in range(100)]


NAMES = """
import logging, multiprocessing as mp, os, subprocess, sys, logbraid

def child(tag):
    logbraid.getLogger("lb").info(tag)
    logging.getLogger("std").info(tag)
    return mp.current_process().name

if __name__ == "__main__":
    logbraid.basicConfig(level="INFO", file="names.log", console=False,
                         format="%(processName)s|%(name)s|%(message)s")
    child("parent")
    for method in ("fork", "spawn", "forkserver"):
        ctx = mp.get_context(method)
        p = ctx.Process(target=child, args=(method,), name=f"named-{method}")
        p.start()
        p.join()
        assert p.exitcode == 0
    with mp.get_context("fork").Pool(1) as pool:
        worker = pool.apply(child, ("pool",))
    pid = os.fork()
    if pid == 0:
        child("os.fork")
        logbraid.shutdown()
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    subprocess.run([sys.executable, "-c",
                    "import logging, logbraid; logging.getLogger('std').info('subprocess')"],
                   check=True)
    logbraid.shutdown()
    print(worker)
"""


def test_process_names_are_multiprocessing_names(run, tmp_path):
    """%(processName)s is what logging gives: multiprocessing's name of
    each child, however it was started; MainProcess for the parent, a plain
    os.fork child (named as its parent, as in logging) and a subprocess."""
    worker = run(NAMES).stdout.strip()
    assert worker.startswith("ForkPoolWorker-")
    lines = (tmp_path / "names.log").read_text().splitlines()
    want = []
    for name, tag in [
        ("MainProcess", "parent"),
        ("named-fork", "fork"),
        ("named-spawn", "spawn"),
        ("named-forkserver", "forkserver"),
        (worker, "pool"),
        ("MainProcess", "os.fork"),
    ]:
        want += [f"{name}|lb|{tag}", f"{name}|std|{tag}"]
    want.append("MainProcess|std|subprocess")
    assert sorted(lines) == sorted(want)
