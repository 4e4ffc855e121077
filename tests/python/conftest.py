"""Each test runs its Python program in a fresh interpreter (logbraid's
configuration is per process), in a temporary directory."""

import os
import subprocess
import sys
import textwrap

import pytest


def run_program(
    folder, code: str, *args: str, name="prog.py", env=None, timeout: float = 120, check=True
):
    """Writes `code` (dedented) to `folder`/`name` and runs it there in a
    fresh interpreter, without the logbraid variables of this process's
    environment (plus `env`); with `check`, a non-zero exit fails the test
    showing both streams."""
    script = folder / name
    script.write_text(textwrap.dedent(code))
    environment = dict(os.environ)
    environment.pop("LOGBRAID_COLLECTOR", None)
    environment.pop("LOGBRAID_PYTHON_LEVEL", None)
    environment.update(env or {})
    p = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


@pytest.fixture
def run(tmp_path):
    def run(code: str, *args: str, timeout: float = 120, check: bool = True):
        return run_program(tmp_path, code, *args, timeout=timeout, check=check)

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
