"""What the package puts in the environment for child processes, and
when: only before any thread of logbraid runs (setenv while another thread
reads the environment is undefined behaviour in C)."""

from conftest import WORKER, check_streams

# Notes every write of a LOGBRAID_ variable with the number of threads the
# process had then (the kernel's count: Rust threads included).
WATCH = """
import os
writes = []
_putenv = os.putenv

def putenv(key, value):
    # os.environ passes bytes on POSIX.
    k, v = (os.fsdecode(x) for x in (key, value))
    if k.startswith("LOGBRAID_"):
        writes.append((k, v, len(os.listdir("/proc/self/task"))))
    _putenv(key, value)

os.putenv = putenv
"""


def test_written_before_any_thread_and_seen_in_os_environ(run, tmp_path):
    p = run(
        WATCH
        + WORKER
        + """
import subprocess, sys
import logbraid

logbraid.basicConfig(level="INFO", file="app.log", console=False, format="%(message)s")
print("writes", writes)
assert writes == [("LOGBRAID_PYTHON_LEVEL", "20", 1)], writes
# The collector's address, which the core exported, is in os.environ too,
# so an environment built from it reaches the collector.
address = logbraid._logbraid.get_default().collector_address
assert address and os.environ["LOGBRAID_COLLECTOR"] == address, (address, os.environ.get("LOGBRAID_COLLECTOR"))
code = "import logbraid, logging\\n" \\
    "logbraid.getLogger('w0').info('w0 %d', 0)\\n" \\
    "logbraid.getLogger('w0').debug('below the level')\\n" \\
    "logging.getLogger('w0').info('w0 %d', 1)\\n"
subprocess.run([sys.executable, "-c", code], env={**os.environ, "X": "1"}, check=True)
# A later configuration, with threads running, writes nothing: children
# keep the first level.
logbraid.basicConfig(level="DEBUG", file="app.log", console=False, format="%(message)s", force=True)
assert len(writes) == 1, writes
assert os.environ["LOGBRAID_PYTHON_LEVEL"] == "20"
logbraid.shutdown()
"""
    )
    assert "writes" in p.stdout
    check_streams((tmp_path / "app.log").read_text().splitlines(), 1, 2)


def test_a_failed_configuration_leaves_the_environment_as_it_was(run):
    run(
        WATCH
        + """
import logbraid
try:
    logbraid.basicConfig(level="INFO", forward="nonsense://x")
except ValueError as e:
    assert "forward" in str(e), e
else:
    raise AssertionError("no error")
assert "LOGBRAID_COLLECTOR" not in os.environ
assert "LOGBRAID_PYTHON_LEVEL" not in os.environ
# Nothing was started: the next configuration still exports.
logbraid.basicConfig(level="WARNING", file="app.log", console=False)
assert os.environ["LOGBRAID_PYTHON_LEVEL"] == "30"
assert [w[2] for w in writes] == [1, 1, 1], writes
logbraid.shutdown()
"""
    )
