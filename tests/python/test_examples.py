"""Every example of examples/python runs, with small sizes, in a temporary
directory: its exit status, its summary, and the files it wrote."""

import gzip
import importlib.util
import multiprocessing
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"
RECORD = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \w+ +\[\d+/[^\]]*\] \S+: ")


def example(tmp_path, name, *args, drop_env=()):
    env = dict(os.environ)
    for k in ("LOGBRAID_COLLECTOR", "LOGBRAID_PYTHON_LEVEL", *drop_env):
        env.pop(k, None)
    p = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def test_every_example_is_listed_in_the_readme():
    readme = (EXAMPLES / "README.md").read_text()
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == [
        "asyncio_app.py",
        "collector.py",
        "multiprocess.py",
        "multiprocess_asyncio.py",
        "single_process.py",
    ]
    for s in scripts:
        assert f"python examples/python/{s}" in readme, s


def test_single_process(tmp_path):
    p = example(tmp_path, "single_process.py", "--records", "500", "--max-bytes", "8192")
    out = p.stdout.splitlines()
    log = tmp_path / "logs" / "app.log"
    assert out[0] == f"single_process: 503 records into {log}"
    assert re.fullmatch(r"  files      \d+ \(\d+ rotated at 8192 bytes, \d+ gzip-compressed\)", out[1])
    assert out[2:] == ["  check      503 of 503 records, each once and in order: OK"]
    # The console got every record too (the traceback on lines of its own).
    assert sum(1 for line in p.stderr.splitlines() if RECORD.match(line)) == 503
    assert "Traceback (most recent call last):" in p.stderr
    # Read back here as well: rotated, some compressed, 503 records in all.
    files = sorted((tmp_path / "logs").glob("app.log*"))
    assert len(files) > 3, files
    assert any(f.suffix == ".gz" for f in files)
    records = 0
    for f in files:
        data = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        records += sum(1 for line in data.decode().splitlines() if RECORD.match(line))
    assert records == 503


def test_single_process_dir_flag_and_rerun(tmp_path):
    # A second run starts from a clean slate: its check counts its own records.
    for _ in range(2):
        p = example(tmp_path, "single_process.py", "--dir", "out/sub", "--records", "50", "--no-console")
        assert p.stdout.splitlines()[-1] == "  check      53 of 53 records, each once and in order: OK"
        assert p.stderr == ""
    assert not (tmp_path / "logs").exists()
    assert [f.name for f in (tmp_path / "out" / "sub").iterdir()] == ["app.log"]
    assert len((tmp_path / "out" / "sub" / "app.log").read_text().splitlines()) > 53  # + traceback


def test_multiprocess_every_start_method(tmp_path):
    p = example(tmp_path, "multiprocess.py", "--workers", "2", "--records", "100")
    out = p.stdout.splitlines()
    log = tmp_path / "logs" / "multiprocess.log"
    groups = [
        f"  {m:<10} {g:<19} 2 x 100 records"
        for m in ("fork", "spawn", "forkserver")
        for g in ("Process", "Pool", "ProcessPoolExecutor")
    ]
    assert out[0] == f"multiprocess: 2 workers x 100 records per group, into {log}"
    assert out[1:10] == groups
    assert re.fullmatch(r"  written    1809 lines from \d+ processes into one file", out[10])
    assert out[11:] == ["  check      1809 of 1809 records, each once and in order per worker: OK"]
    lines = log.read_text().splitlines()
    assert len(lines) == 1809
    assert sorted(os.listdir(tmp_path / "logs")) == ["multiprocess.log"]


def test_multiprocess_one_method(tmp_path):
    p = example(tmp_path, "multiprocess.py", "--method", "forkserver", "--workers", "3", "--records", "40")
    assert p.stdout.splitlines()[1:4] == [
        "  forkserver Process             3 x 40 records",
        "  forkserver Pool                3 x 40 records",
        "  forkserver ProcessPoolExecutor 3 x 40 records",
    ]
    check = "  check      363 of 363 records, each once and in order per worker: OK"
    assert p.stdout.splitlines()[-1] == check
    assert len((tmp_path / "logs" / "multiprocess.log").read_text().splitlines()) == 363


@pytest.mark.parametrize("serve", ["python -m logbraid", "LOGBRAID_BIN"])
def test_collector(tmp_path, serve):
    # The example runs $LOGBRAID_BIN when it is set, else `python -m logbraid`.
    if serve == "LOGBRAID_BIN":
        if not os.environ.get("LOGBRAID_BIN"):
            pytest.skip("LOGBRAID_BIN (the logbraid binary) not given")
        drop = ()
    else:
        if importlib.util.find_spec("logbraid.__main__") is None:
            pytest.skip("this logbraid has no `python -m logbraid`")
        drop = ("LOGBRAID_BIN",)
    p = example(
        tmp_path, "collector.py", "--workers", "3", "--stdlib-workers", "1", "--records", "500", drop_env=drop
    )
    out = p.stdout.splitlines()
    program = [os.environ["LOGBRAID_BIN"]] if serve == "LOGBRAID_BIN" else [sys.executable, "-m", "logbraid"]
    log = tmp_path / "logs" / "collected.log"
    command = program + [
        "serve", "--listen", "tcp://127.0.0.1:0", "--listen", "python-tcp://127.0.0.1:0",
        "--file", str(log), "--format", "%(process)d %(name)s %(message)s",
    ]  # fmt: skip
    assert out[0] == f"collector: {shlex.join(command)}"
    assert re.fullmatch(r"  listening  tcp://127\.0\.0\.1:\d+", out[1])
    assert re.fullmatch(r"  listening  python-tcp://127\.0\.0\.1:\d+", out[2])
    assert out[3:] == [
        "  sent       3 logbraid programs x 500 records (acknowledged)",
        "             1 SocketHandler programs x 500 records",
        "  stopped    SIGTERM, collector exit code 0",
        f"  check      2000 of 2000 records in {log}, each once and in order: OK",
    ]
    lines = log.read_text().splitlines()
    assert len(lines) == 2000
    names = [line.split(" ")[1] for line in lines]
    assert (names.count("worker"), names.count("worker.stdlib"), names.count("stdlib")) == (750, 750, 500)


def test_asyncio_app(tmp_path):
    p = example(tmp_path, "asyncio_app.py", "--tasks", "20", "--records", "50")
    out = p.stdout.splitlines()
    log = tmp_path / "logs" / "asyncio.log"
    assert out[0] == f"asyncio_app: 20 coroutines x 50 records into {log}"
    assert re.fullmatch(
        r"  loop lag   \d+ samples: median \d+\.\d\d ms, p99 \d+\.\d\d ms, max \d+\.\d\d ms", out[1]
    )
    assert out[2:] == ["  check      1000 of 1000 records, each once and in order per coroutine: OK"]
    lines = log.read_text().splitlines()
    assert len(lines) == 1000
    assert sum(" aiohttp.access task-" in line for line in lines) == 5 * 50


@pytest.mark.parametrize("method", [None, "spawn"])
def test_multiprocess_asyncio(tmp_path, method):
    flags = ["--method", method] if method else []
    p = example(
        tmp_path, "multiprocess_asyncio.py", "--processes", "3", "--tasks", "5", "--records", "40", *flags
    )
    out = p.stdout.splitlines()
    log = tmp_path / "logs" / "multiprocess_asyncio.log"
    shown = method or multiprocessing.get_context().get_start_method()
    assert out == [
        f"multiprocess_asyncio: 3 processes ({shown}) x 5 coroutines x 40 records into {log}",
        "  written    600 lines from 3 processes",
        "  check      600 of 600 records, each once and in order per coroutine: OK",
    ]
    assert len(log.read_text().splitlines()) == 600
