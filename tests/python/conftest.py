"""Each test runs its Python program in a fresh interpreter (logbraid's
configuration is per process), in a temporary directory."""

import os
import subprocess
import sys
import textwrap

import pytest


@pytest.fixture
def run(tmp_path):
    def run(code: str, *args: str, timeout: float = 120, check: bool = True):
        script = tmp_path / "prog.py"
        script.write_text(textwrap.dedent(code))
        env = dict(os.environ)
        env.pop("LOGBRAID_COLLECTOR", None)
        env.pop("LOGBRAID_PYTHON_LEVEL", None)
        p = subprocess.run(
            [sys.executable, str(script), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and p.returncode != 0:
            raise AssertionError(f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        return p

    return run


def check_streams(lines, workers, per_worker):
    """Each `w<i> <k>` line exactly once, in order per worker."""
    nxt = {}
    for line in lines:
        w, k = line.split()
        assert nxt.get(w, 0) == int(k), f"{w}: expected {nxt.get(w, 0)}, found {k}"
        nxt[w] = int(k) + 1
    assert nxt == {f"w{i}": per_worker for i in range(workers)}
    assert len(lines) == workers * per_worker


# The workers the multi-process tests run: `w<i> <k>` lines, through the
# logbraid Logger or a stdlib logger.
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
