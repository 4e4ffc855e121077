"""logbraid.compat: each design's README example, with only its import line
changed, run in a fresh interpreter in a temporary directory; then the files
it wrote: every record once, the documented format and date format,
rotation and retention where asked. Multi-process examples run under fork,
spawn and forkserver (a sitecustomize on PYTHONPATH sets the start method, so the
example's text stays as published)."""

import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import run_program

METHODS = ("fork", "spawn", "forkserver")


def run_example(tmp_path, code, method=None, args=(), name="example.py"):
    env = {}
    if method is not None:
        site = tmp_path / "site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(
            f"import multiprocessing\nmultiprocessing.set_start_method({method!r})\n"
        )
        env["PYTHONPATH"] = str(site)
    return run_program(tmp_path, code, *args, name=name, env=env)


def lines(path):
    return Path(path).read_text(encoding="utf-8").splitlines()


# logging_mp's README, "3.1 The Setup", import line changed.
LOGGING_MP_README = """
import multiprocessing
import time

from logbraid.compat import logging_mp
# basicConfig must be called before creating any processes or submodules.
# In spawn mode, this automatically starts the log listening process and injects Monkey Patches.
logging_mp.basicConfig(
    level=logging_mp.INFO, 
    console=True, 
    file=True,
    file_path="logs"
)
# Get a logger
logger_mp = logging_mp.getLogger(__name__)

def worker_task(name):
    # In the child process, just get a logger and log!
    # No queues to configure, no listeners to start.
    worker_logger_mp = logging_mp.getLogger("worker")
    worker_logger_mp.info(f"\U0001f44b Hello from {name} (PID: {multiprocessing.current_process().pid})")
    time.sleep(0.5)

if __name__ == "__main__":
    logger_mp.info("\U0001f680 Starting processes...")
    
    processes = []
    for i in range(3):
        p = multiprocessing.Process(target=worker_task, args=(f"Worker-{i}",))
        p.start()
        processes.append(p)
        
    for p in processes:
        p.join()
    
    logger_mp.info("\u2705 All tasks finished.")
"""

LOGGING_MP_LINE = re.compile(
    r"(\d\d:\d\d:\d\d\.\d{3}) (\w+) +\[example\.py:(\d+)\] ([\w-]+)-MainThread: (.*)"
)


@pytest.mark.parametrize("method", METHODS)
def test_logging_mp_readme(tmp_path, method):
    p = run_example(tmp_path, LOGGING_MP_README, method)
    files = list((tmp_path / "logs").iterdir())
    assert len(files) == 1, files
    assert re.fullmatch(r"example_\d{8}_\d{6}\.log", files[0].name), files[0].name
    rows = [LOGGING_MP_LINE.fullmatch(line) for line in lines(files[0])]
    assert all(rows), lines(files[0])
    levels = {m.group(2) for m in rows}
    assert levels == {"INFO"}
    # "INFO" padded to 8 columns, as %(levelname)-8s.
    assert all(line.split(" ")[1:5] == ["INFO", "", "", ""] for line in lines(files[0]))
    messages = [m.group(5) for m in rows]
    assert messages[0] == "\U0001f680 Starting processes..."
    assert messages[-1] == "\u2705 All tasks finished."
    hello = sorted(messages[1:-1])
    assert len(hello) == 3
    for i, m in enumerate(hello):
        assert re.fullmatch(rf"\U0001f44b Hello from Worker-{i} \(PID: \d+\)", m), m
    assert sorted(m.group(4) for m in rows[1:-1]) == ["Process-1", "Process-2", "Process-3"]
    assert rows[0].group(4) == rows[-1].group(4) == "MainProcess"
    # The console shows the same records.
    assert sum("Hello from Worker-" in line for line in p.stderr.splitlines()) == 3


def test_logging_mp_keeps_backup_count_runs(tmp_path):
    code = """
        from logbraid.compat import logging_mp
        import sys
        logging_mp.basicConfig(level=logging_mp.DEBUG, console=False, file=True,
                               file_path="runs", backup_count=2)
        logging_mp.getLogger("x").debug("run %s", sys.argv[1])
        try:
            logging_mp.basicConfig(level=logging_mp.INFO)
        except RuntimeError as e:
            print(e)
        """
    seen = []
    for run in range(4):
        p = run_example(tmp_path, code, args=(str(run),))
        assert p.stdout == (
            "Logging system has already been started. "
            "Please configure before any getLogger() occurs.\n"
        )
        files = sorted((tmp_path / "runs").iterdir(), key=lambda f: f.stat().st_mtime)
        seen.append([lines(f)[0].rsplit(" ", 1)[1] for f in files])
    assert seen == [["0"], ["0", "1"], ["1", "2"], ["2", "3"]]


@pytest.mark.parametrize("method", METHODS)
def test_logging_mp_children_take_the_parents_level(tmp_path, method):
    # basicConfig only under __main__: a spawned child never calls it, and
    # its getLogger still logs at the parent's level (DEBUG), not WARNING.
    run_example(
        tmp_path,
        """
        import multiprocessing
        from logbraid.compat import logging_mp

        def work():
            logging_mp.getLogger("child").debug("child debug")

        if __name__ == "__main__":
            logging_mp.basicConfig(level=logging_mp.DEBUG, console=False, file=True)
            p = multiprocessing.Process(target=work)
            p.start(); p.join()
            logging_mp.getLogger("parent").debug("parent debug")
        """,
        method,
    )
    (log,) = (tmp_path / "logs").iterdir()
    assert [line.split(": ", 1)[1] for line in lines(log)] == ["child debug", "parent debug"]


def test_logging_mp_refuses_no_output(tmp_path):
    p = run_example(
        tmp_path,
        """
        from logbraid.compat import logging_mp
        try:
            logging_mp.basicConfig(console=False, file=False)
        except ValueError as e:
            print(e)
        print(logging_mp.WARNING, logging_mp.CRITICAL, logging_mp.NOTSET)
        """,
    )
    assert p.stdout == "At least one of 'console' or 'file' must be True.\n30 50 0\n"


# mplog's README examples, import lines changed.
MPLOG_QUICK_START = """
from logbraid.compat.mplog import setup_logging, get_logger
import multiprocessing as mp

def worker():
    logger = get_logger(__name__)
    logger.info("Hello from worker process!")

if __name__ == '__main__':
    # Set up logging once in the main process
    setup_logging(level='INFO', log_file='app.log')
    
    # Use logger in main process
    logger = get_logger(__name__)
    logger.info("Starting application")
    
    # Spawn worker processes - they'll use the same logging setup
    p = mp.Process(target=worker)
    p.start()
    p.join()
    
    logger.info("Application finished")
"""

MPLOG_MULTIPROCESSING = """
import multiprocessing as mp
from logbraid.compat.mplog import setup_logging, get_logger

def worker(worker_id):
    logger = get_logger(f'worker_{worker_id}')
    logger.info(f"Worker {worker_id} started")
    # Do work...
    logger.info(f"Worker {worker_id} finished")

if __name__ == '__main__':
    setup_logging(level='INFO', log_file='workers.log')
    
    processes = [mp.Process(target=worker, args=(i,)) for i in range(4)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
"""

MPLOG_ASYNCIO = """
import asyncio
from logbraid.compat.mplog import setup_logging, get_logger

async def async_task(task_id):
    logger = get_logger(f'task_{task_id}')
    logger.info(f"Task {task_id} starting")
    await asyncio.sleep(1)
    logger.info(f"Task {task_id} completed")

async def main():
    tasks = [async_task(i) for i in range(5)]
    await asyncio.gather(*tasks)

if __name__ == '__main__':
    setup_logging(level='INFO', log_file='async.log')
    asyncio.run(main())
"""

MPLOG_COMBINED = """
import asyncio
import multiprocessing as mp
from logbraid.compat.mplog import setup_logging, get_logger

async def async_worker(worker_id):
    logger = get_logger(f'async_worker_{worker_id}')
    logger.info(f"Async worker {worker_id} started")
    await asyncio.sleep(1)
    logger.info(f"Async worker {worker_id} finished")

def run_async_worker(worker_id):
    asyncio.run(async_worker(worker_id))

if __name__ == '__main__':
    setup_logging(level='INFO', log_file='combined.log')
    
    # Each process runs its own asyncio event loop
    processes = [mp.Process(target=run_async_worker, args=(i,)) for i in range(3)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
"""

# mplog's default format and date format.
MPLOG_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - ([\w-]+)\[(\d+)\] - MainThread - (\S+) - (\w+) - (.*)"
)


def mplog_rows(path):
    rows = [MPLOG_LINE.fullmatch(line) for line in lines(path)]
    assert all(rows), lines(path)
    return [(m.group(1), m.group(3), m.group(4), m.group(5)) for m in rows]


@pytest.mark.parametrize("method", METHODS)
def test_mplog_quick_start(tmp_path, method):
    p = run_example(tmp_path, MPLOG_QUICK_START, method)
    child_name = "__main__" if method == "fork" else "__mp_main__"
    assert mplog_rows(tmp_path / "app.log") == [
        ("MainProcess", "__main__", "INFO", "Starting application"),
        ("Process-1", child_name, "INFO", "Hello from worker process!"),
        ("MainProcess", "__main__", "INFO", "Application finished"),
    ]
    # log_to_stderr=True by default: the same three lines on stderr.
    assert [line for line in p.stderr.splitlines() if MPLOG_LINE.fullmatch(line)] == lines(
        tmp_path / "app.log"
    )


@pytest.mark.parametrize("method", METHODS)
def test_mplog_multiprocessing(tmp_path, method):
    run_example(tmp_path, MPLOG_MULTIPROCESSING, method)
    rows = mplog_rows(tmp_path / "workers.log")
    assert sorted(rows) == sorted(
        (f"Process-{i + 1}", f"worker_{i}", "INFO", f"Worker {i} {what}")
        for i in range(4)
        for what in ("started", "finished")
    )
    for i in range(4):
        mine = [r[3] for r in rows if r[1] == f"worker_{i}"]
        assert mine == [f"Worker {i} started", f"Worker {i} finished"]


def test_mplog_asyncio(tmp_path):
    run_example(tmp_path, MPLOG_ASYNCIO)
    rows = mplog_rows(tmp_path / "async.log")
    assert rows[:5] == [("MainProcess", f"task_{i}", "INFO", f"Task {i} starting") for i in range(5)]
    assert sorted(rows[5:]) == [
        ("MainProcess", f"task_{i}", "INFO", f"Task {i} completed") for i in range(5)
    ]


@pytest.mark.parametrize("method", METHODS)
def test_mplog_multiprocessing_and_asyncio(tmp_path, method):
    run_example(tmp_path, MPLOG_COMBINED, method)
    rows = mplog_rows(tmp_path / "combined.log")
    assert len(rows) == 6
    for i in range(3):
        mine = [(r[0], r[3]) for r in rows if r[1] == f"async_worker_{i}"]
        assert mine == [
            (f"Process-{i + 1}", f"Async worker {i} started"),
            (f"Process-{i + 1}", f"Async worker {i} finished"),
        ]


def test_mplog_custom_formatting_and_exceptions(tmp_path):
    run_example(
        tmp_path,
        """
from logbraid.compat.mplog import setup_logging, get_logger

setup_logging(
    level='DEBUG',
    log_file='custom.log',
    format_string='%(asctime)s [%(levelname)s] %(name)s: %(message)s',
    date_format='%H:%M:%S'
)

logger = get_logger('custom')
logger.debug("This uses custom formatting")
""",
    )
    (line,) = lines(tmp_path / "custom.log")
    assert re.fullmatch(r"\d\d:\d\d:\d\d \[DEBUG\] custom: This uses custom formatting", line)
    run_example(
        tmp_path,
        """
from logbraid.compat.mplog import setup_logging, get_logger

setup_logging(level='INFO', log_file='errors.log')
logger = get_logger(__name__)

try:
    result = 1 / 0
except ZeroDivisionError:
    # Logs exception with full traceback
    logger.exception("Division by zero occurred")
""",
    )
    text = lines(tmp_path / "errors.log")
    assert MPLOG_LINE.fullmatch(text[0]).group(4, 5) == ("ERROR", "Division by zero occurred")
    assert text[1] == "Traceback (most recent call last):"
    assert text[-1] == "ZeroDivisionError: division by zero"
    assert "    result = 1 / 0" in text


def test_mplog_rotation_file_mode_and_state(tmp_path):
    (tmp_path / "app.log").write_text("from an earlier run\n")
    p = run_example(
        tmp_path,
        """
        from logbraid.compat.mplog import (setup_logging, get_logger, shutdown_logging,
                                           is_logging_setup)
        print(is_logging_setup())
        setup_logging(level="INFO", log_file="app.log", log_to_stderr=False,
                      format_string="%(message)s", file_mode="w", max_bytes=1000,
                      backup_count=3)
        print(is_logging_setup())
        log = get_logger("r")
        for i in range(300):
            log.info("record %04d %s", i, "x" * 20)
        shutdown_logging()
        print(is_logging_setup())
        # Still written, on this thread.
        log.info("record %04d %s", 300, "x" * 20)
        """,
    )
    assert p.stdout == "False\nTrue\nFalse\n"
    names = sorted(f.name for f in tmp_path.iterdir() if f.name.startswith("app.log"))
    assert names == ["app.log", "app.log.1", "app.log.2", "app.log.3"]
    kept = []
    for name in reversed(names):
        data = (tmp_path / name).read_bytes()
        assert 0 < len(data) <= 1000, (name, len(data))
        kept += data.decode().splitlines()
    # The newest records, each once, in order, up to the last one.
    assert kept == [f"record {i:04d} {'x' * 20}" for i in range(301 - len(kept), 301)]


# The async singleton Logger's README example, import line changed.
ASYNC_LOGGER_README = """
import threading
from logbraid.compat.async_logger import Logger  # Assuming logger.py contains the Logger class

def worker_thread(logger, thread_id):
    for i in range(5):
        logger.log(f"Log message {i} from thread {thread_id}", level="INFO")

if __name__ == "__main__":
    logger = Logger(log_file="app.log", max_size=1024, backup_count=5)

    # Create and start worker threads
    threads = []
    for i in range(3):  # Example with 3 threads
        t = threading.Thread(target=worker_thread, args=(logger, i), name=f"Thread-{i}")
        threads.append(t)
        t.start()

    # Wait for all threads to complete
    for t in threads:
        t.join()

    # Gracefully shut down the logger
    logger.shutdown()

    print("Logging completed. Check the app.log file for output.")
"""

ASYNC_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - ([\w-]+) - (\w+) - (.*)")


def test_async_logger_readme(tmp_path):
    p = run_example(tmp_path, ASYNC_LOGGER_README)
    assert p.stdout == "Logging completed. Check the app.log file for output.\n"
    rows = [ASYNC_LINE.fullmatch(line) for line in lines(tmp_path / "app.log")]
    assert all(rows), lines(tmp_path / "app.log")
    for t in range(3):
        mine = [m.group(3) for m in rows if m.group(1) == f"Thread-{t}"]
        assert mine == [f"Log message {i} from thread {t}" for i in range(5)]
    assert len(rows) == 15 and {m.group(2) for m in rows} == {"INFO"}
    assert sorted(f.name for f in tmp_path.iterdir() if f.name.startswith("app.log")) == ["app.log"]


def test_async_logger_rotates_and_is_one_instance(tmp_path):
    code = ASYNC_LOGGER_README.replace("max_size=1024", "max_size=1").replace(
        "range(5)", "range(40)"
    )
    code += textwrap.dedent(
        """
        assert Logger() is logger and Logger(log_file="other.log") is logger
        logger.log("100% done, level by number", level=40)
        logger.log("lower case", level="warning")
        logger.shutdown()
        logger.log("after shutdown", level="INFO")
        """
    )
    run_example(tmp_path, code)
    names = sorted(f.name for f in tmp_path.iterdir() if f.name.startswith("app.log"))
    assert names == ["app.log"] + [f"app.log.{i}" for i in range(1, 6)]
    assert not (tmp_path / "other.log").exists()
    kept = []
    for name in reversed(names):
        data = (tmp_path / name).read_bytes()
        assert 0 < len(data) <= 1024, (name, len(data))
        kept += [ASYNC_LINE.fullmatch(line).group(1, 2, 3) for line in data.decode().splitlines()]
    assert kept[-3:] == [
        ("MainThread", "ERROR", "100% done, level by number"),
        ("MainThread", "WARNING", "lower case"),
        ("MainThread", "INFO", "after shutdown"),
    ]
    # The files hold the newest records: of each thread, its last ones
    # (none, for a thread that finished early), each once and in order.
    for t in range(3):
        mine = [m[2] for m in kept if m[0] == f"Thread-{t}"]
        assert mine == [f"Log message {i} from thread {t}" for i in range(40 - len(mine), 40)]
    assert len(kept) > 3 + 40 and len(kept) == len(set(kept))


LOGCONFIG_PROGRAM = """
import logging, multiprocessing as mp, sys, threading
from logbraid.compat.logconfig import LogConfig, LoggerManager

def worker(i):
    log = LoggerManager().get_logger(f"worker.{i}")
    for k in range(3):
        log.info("worker %d record %d", i, k)

if __name__ == "__main__":
    config = LogConfig(mode=sys.argv[1], log_file="logs/app.log", level="INFO",
                       log_format="%(processName)s %(name)s %(levelname)s %(message)s",
                       console=False)
    manager = LoggerManager(config)
    assert LoggerManager() is manager
    log = manager.get_logger("main")
    log.debug("hidden")
    log.info("start")
    if config.mode is LogConfig.SINGLE_THREAD:
        # Written on this thread before info() returned.
        print(open("logs/app.log").read().splitlines())
        print(sorted(t.name for t in threading.enumerate()))
    procs = [mp.Process(target=worker, args=(i,)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    log.info("end")
    manager.shutdown()
"""


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", ["SINGLE_THREAD", "MULTI_PROCESS"])
def test_logconfig_local_modes(tmp_path, mode, method):
    p = run_example(tmp_path, LOGCONFIG_PROGRAM, method, args=(mode,))
    if mode == "SINGLE_THREAD":
        assert p.stdout.splitlines()[0] == "['MainProcess main INFO start']"
    got = lines(tmp_path / "logs" / "app.log")
    assert got[0] == "MainProcess main INFO start" and got[-1] == "MainProcess main INFO end"
    for i in range(2):
        assert [line for line in got if f"worker.{i} " in line] == [
            f"Process-{i + 1} worker.{i} INFO worker {i} record {k}" for k in range(3)
        ]
    assert len(got) == 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_logconfig_distributed(tmp_path):
    port = free_port()
    run_example(
        tmp_path,
        f"""
        import multiprocessing as mp
        from logbraid.compat.logconfig import LogConfig, LoggerManager, LogRecordReceiver, LogMode

        def client(i):
            config = LogConfig(mode=LogMode.DISTRIBUTED, host="127.0.0.1", port={port},
                               log_format="%(name)s %(levelname)s %(message)s")
            manager = LoggerManager(config)
            for k in range(50):
                manager.get_logger(f"client{{i}}").warning("record %d", k)
            assert manager.flush(60)

        if __name__ == "__main__":
            server_config = LogConfig(mode="distributed", log_file="server/all.log",
                                      log_format="%(name)s %(levelname)s %(message)s")
            server = LogRecordReceiver("127.0.0.1", {port}, server_config)
            server.start()
            # Independent processes, as separate hosts would be.
            procs = [mp.get_context("spawn").Process(target=client, args=(i,)) for i in range(3)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
                assert p.exitcode == 0
            assert server.shutdown() == 0
        """,
    )
    got = lines(tmp_path / "server" / "all.log")
    for i in range(3):
        assert [line for line in got if line.startswith(f"client{i} ")] == [
            f"client{i} WARNING record {k}" for k in range(50)
        ]
    assert len(got) == 150


@pytest.mark.parametrize("method", METHODS)
def test_logconfig_workers_keep_the_parents_level(tmp_path, method):
    run_example(
        tmp_path,
        """
        import multiprocessing as mp
        from logbraid.compat.logconfig import LogConfig, LoggerManager

        def work():
            LoggerManager().get_logger("w").debug("worker debug")

        if __name__ == "__main__":
            LoggerManager(LogConfig(mode="MULTI_PROCESS", level="DEBUG", console=False,
                                    log_format="%(message)s"))
            p = mp.Process(target=work)
            p.start(); p.join()
        """,
        method,
    )
    assert lines(tmp_path / "app.log") == ["worker debug"]


def test_logconfig_receiver_serves_in_its_own_process_until_sigterm(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from logbraid.compat.logconfig import LogConfig, LogRecordReceiver\n"
            f"config = LogConfig(log_file='all.log', log_format='%(name)s %(message)s')\n"
            f"raise SystemExit(LogRecordReceiver('127.0.0.1', {port}, config).serve_forever())\n",
        ],
        cwd=tmp_path,
    )
    try:
        run_example(
            tmp_path,
            f"""
            from logbraid.compat.logconfig import LogConfig, LoggerManager, LogRecordReceiver
            LogRecordReceiver("127.0.0.1", {port}).wait_ready()
            m = LoggerManager(LogConfig(mode="DISTRIBUTED", host="127.0.0.1", port={port}))
            m.get_logger("client").info("over the wire")
            assert m.flush(60)
            """,
        )
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
    assert lines(tmp_path / "all.log") == ["client over the wire"]


def test_logconfig_receiver_start_reports_a_collector_that_cannot_start(tmp_path):
    p = run_example(
        tmp_path,
        """
        from logbraid.compat.logconfig import LogConfig, LogRecordReceiver
        config = LogConfig(log_file="x.log", max_bytes=-5)
        try:
            LogRecordReceiver("127.0.0.1", 1, config).start()
        except RuntimeError as e:
            print(e)
        """,
    )
    assert p.stdout == "the collector exited with status 2\n"


def test_logconfig_bad_mode(tmp_path):
    p = run_example(
        tmp_path,
        """
        from logbraid.compat.logconfig import LogConfig
        try:
            LogConfig(mode="CLUSTER")
        except ValueError as e:
            print(e)
        """,
    )
    assert p.stdout == "mode: 'CLUSTER' is not one of: SINGLE_THREAD, MULTI_PROCESS, DISTRIBUTED\n"
