import json

import pytest


def test_file_levels_caller_and_stdlib_loggers(run, tmp_path):
    run(
        """
        import logging, logbraid
        logbraid.basicConfig(level="INFO", file="app.log", console=False,
                             format="%(levelname)s|%(name)s|%(funcName)s|%(message)s")
        log = logbraid.getLogger("app.db")
        def work():
            log.debug("hidden")
            log.info("user %s has %d items", "ada", 3)
            log.warning("plain %s")
            logging.getLogger("third.party").error("from %s", "stdlib")
            log.log(25, "level %d", 25)
        work()
        assert log.isEnabledFor(20) and not log.isEnabledFor(10)
        assert log.getEffectiveLevel() == 20
        logbraid.shutdown()
        """
    )
    assert (tmp_path / "app.log").read_text().splitlines() == [
        "INFO|app.db|work|user ada has 3 items",
        "WARNING|app.db|work|plain %s",
        "ERROR|third.party|work|from stdlib",
        "INFO|app.db|work|level 25",
    ]


def test_json_extra_exceptions_and_stack(run, tmp_path):
    run(
        """
        import logbraid
        logbraid.basicConfig(level="DEBUG", file="app.jsonl", console=False, json=True)
        log = logbraid.getLogger("svc")
        log.info("hello", extra={"request_id": "r-1", "attempt": 2, "ratio": 0.5, "ok": True, "none": None})
        try:
            {}["missing"]
        except KeyError:
            log.exception("lookup failed")
        log.info("where", stack_info=True)
        logbraid.shutdown()
        """
    )
    rows = [json.loads(l) for l in (tmp_path / "app.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    first = json.dumps(rows[0])
    for needle in ['"request_id": "r-1"', '"attempt": 2', '"ratio": 0.5', '"ok": true', '"none": null']:
        assert needle in first, first
    assert rows[0]["msg"] == "hello" and rows[0]["target"] == "svc", rows[0]
    exc = json.dumps(rows[1])
    assert "Traceback (most recent call last)" in exc and "KeyError: 'missing'" in exc
    assert "Stack (most recent call last)" in json.dumps(rows[2])


def test_bad_format_args_still_write_the_record(run, tmp_path):
    p = run(
        """
        import logbraid
        logbraid.basicConfig(level="INFO", file="app.log", console=False, format="%(message)s")
        log = logbraid.getLogger("x")
        log.info("count %d", "not a number")
        log.info("after")
        logbraid.shutdown()
        """
    )
    assert (tmp_path / "app.log").read_text().splitlines() == ["count %d", "after"]
    assert "--- Logging error ---" in p.stderr and "a real number is required" in p.stderr


def test_logging_after_shutdown_does_not_crash(run, tmp_path):
    run(
        """
        import logbraid
        logbraid.basicConfig(level="INFO", file="app.log", console=False, format="%(message)s")
        log = logbraid.getLogger("x")
        log.info("before")
        logbraid.shutdown()
        log.info("after")
        logbraid.shutdown()
        logbraid.flush()
        """
    )
    assert (tmp_path / "app.log").read_text().splitlines() == ["before", "after"]


def test_dictconfig_handler(run, tmp_path):
    run(
        """
        import logging, logging.config
        logging.config.dictConfig({
            "version": 1,
            "handlers": {"lb": {"class": "logbraid.Handler", "file": "app.jsonl", "json": True}},
            "root": {"handlers": ["lb"], "level": "INFO"},
        })
        logging.getLogger("a.b").info("via %s", "dictConfig", extra={"k": 7})
        logging.shutdown()
        """
    )
    rows = [json.loads(l) for l in (tmp_path / "app.jsonl").read_text().splitlines()]
    assert len(rows) == 1
    assert '"k": 7' in json.dumps(rows[0]) and "via dictConfig" in json.dumps(rows[0])


def test_bad_arguments_name_the_parameter(run):
    p = run(
        """
        import logbraid
        for kwargs, err in [
            ({"overflow": "sometimes"}, ValueError),
            ({"max_bytes": -1}, ValueError),
            ({"compress": "rar"}, ValueError),
            ({"when": "fortnightly"}, ValueError),
            ({"level": "LOUD"}, ValueError),
            ({"max_bytes": "1MB"}, TypeError),
        ]:
            try:
                logbraid.basicConfig(file="x.log", **kwargs)
            except err as e:
                print(list(kwargs)[0], "->", e)
            else:
                raise SystemExit(f"{kwargs} accepted")
        """
    )
    lines = p.stdout.splitlines()
    assert len(lines) == 6
    for line in lines:
        name, _, message = line.partition(" -> ")
        assert message.startswith(name), line


def test_rotation_and_compression_from_python(run, tmp_path):
    run(
        """
        import logbraid
        logbraid.basicConfig(level="INFO", file="app.log", console=False, format="%(message)s",
                             max_bytes=20000, backup_count=100, compress="gzip")
        log = logbraid.getLogger("r")
        for i in range(20000):
            log.info("w0 %d", i)
        logbraid.shutdown()
        """
    )
    import gzip

    from conftest import check_streams

    files = sorted(tmp_path.glob("app.log*"))
    assert len(files) > 2, files
    assert any(f.suffix == ".gz" for f in files)
    # Oldest first: the highest index is the oldest backup.
    def order(f):
        parts = f.name.split(".")
        return -int(parts[2]) if len(parts) > 2 else 0

    lines = []
    for f in sorted(files, key=order):
        data = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        lines += data.decode().splitlines()
    check_streams(lines, 1, 20000)


def test_a_caller_waiting_for_room_lets_other_threads_run(tmp_path):
    """Overflow "block" with the console sink on a pipe nobody reads yet:
    the logging thread must wait, and while it waits the GIL is free, so
    the main thread goes on; once the pipe is read, every record is there."""
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys, threading, time, logbraid
        h = logbraid.Handler(console=True, format="%(message)s", queue_size=4096)
        import logging
        log = logging.getLogger("w")
        log.addHandler(h)
        log.setLevel(logging.INFO)
        log.propagate = False
        def work():
            for i in range(20000):
                log.info("w0 %d", i)
        t = threading.Thread(target=work)
        t.start()
        # Only the GIL being free lets this loop run while `work` waits.
        while h.stats()["full_waits"] == 0:
            time.sleep(0.001)
        print("main thread ran while the logging thread waited", flush=True)
        t.join()
        h.close()
        """
    )
    env = dict(os.environ)
    env.pop("LOGBRAID_COLLECTOR", None)
    p = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Nothing reads stderr until the child says its main thread ran; a
    # child that hangs instead is killed, and the line is then missing.
    import threading

    watchdog = threading.Timer(120, p.kill)
    watchdog.start()
    first = p.stdout.readline()
    watchdog.cancel()
    assert first == "main thread ran while the logging thread waited\n"
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err[-2000:]
    from conftest import check_streams

    check_streams(err.splitlines(), 1, 20000)


def test_set_formatter_plain_custom_and_none(run, tmp_path):
    """A plain Formatter becomes the pipeline's layout; a Formatter
    subclass formats in Python (its traceback text too, once); None
    restores the handler's own format."""
    run(
        """
        import logging, logbraid

        class Upper(logging.Formatter):
            def format(self, record):
                return "U:" + super().format(record).upper()

        h = logbraid.Handler(file="f.log", format="%(name)s %(message)s")
        log = logging.getLogger("app")
        log.addHandler(h)
        log.setLevel(logging.INFO)
        log.info("own %d", 1)
        h.setFormatter(logging.Formatter("%(levelname)s|%(message)s"))
        log.warning("plain %d", 2)
        h.setFormatter(Upper("%(levelname)s|%(message)s"))
        log.info("custom %d", 3)
        try:
            1 / 0
        except ZeroDivisionError:
            log.exception("boom")
        h.setFormatter(None)
        log.info("own again")
        h.close()
        """
    )
    lines = (tmp_path / "f.log").read_text().splitlines()
    assert lines[:3] == ["app own 1", "WARNING|plain 2", "U:INFO|CUSTOM 3"]
    assert lines[3] == "U:ERROR|BOOM"
    assert lines[4] == "TRACEBACK (MOST RECENT CALL LAST):"
    assert lines[-2] == "ZERODIVISIONERROR: DIVISION BY ZERO"
    assert lines[-1] == "app own again"
    assert sum("ZERODIVISIONERROR" in l for l in lines) == 1


def test_logging_from_functions_and_coroutines_leaks_no_frames(run):
    """Finding the caller takes frame references: each is given back."""
    p = run(
        """
        import asyncio, gc, logbraid
        logbraid.basicConfig(level="INFO", file="f.log", console=False)
        log = logbraid.getLogger("f")

        def frames():
            gc.collect()
            return sum(1 for o in gc.get_objects() if type(o).__name__ == "frame")

        def plain(i):
            log.info("plain %d", i)
            log.info("up one", stacklevel=2)

        async def worker(n):
            for i in range(n):
                log.info("async %d", i)
                await asyncio.sleep(0)

        plain(-1)
        asyncio.run(worker(1))
        before = frames()
        for i in range(1000):
            plain(i)
        async def many():
            await asyncio.gather(*(worker(100) for _ in range(10)))

        asyncio.run(many())
        print(frames() - before)
        logbraid.shutdown()
        """
    )
    assert p.stdout.split() == ["0"]


PERCENT_CASES = [
    ("plain %s and %d and %i", ("str", 7, -12)),
    ("%%d stays, %s", ("x",)),
    ("%s%s%s", ("", "é\U0001F600", "z")),
    ("big %d", (2**70,)),
    ("bools %s %d", (True, False)),
    ("float %s %d", (1.5, 2.75)),
    ("width %5d|%-4s|", (42, "ab")),
    ("repr %r", ("q",)),
    ("subclass %s", (type("S", (str,), {})("sub"),)),
    ("int as %s", (10**18,)),
    ("é %s ü", ("ö",)),
    ("%é", ()),
    ("%x %#o %e %g %c %c %a %+05d", (255, 8, 1234.5, 1e-5, 65, "é", "é", 7)),
    ("huge %d %x", (10**30, -(2**100))),
    ("%f %5.1f %s %r", (float("nan"), float("-inf"), -0.0, 1e16)),
    ("none %s %r", (None, None)),
    ("%(a)s %(b)05.1f %%", ({"a": "x", "b": 2.25},)),
    ("%(k)s", ({"k": [1, "two"]},)),
    ("%(missing)s", ({"k": 1},)),
    ("%d", ("x",)),
    ("%s %s", (1,)),
    ("%s", (1, 2)),
    ("%c", (0x110000,)),
    ("%s and %r", ([1, "a", None, 2**70], {"k": (1, 2.5), 2: b"it's"})),
    ("%s|%.5s|%a", ((1, 2), ["é"], {"é": [True]})),
    ("%s", ([[[[[[[[[["deep"]]]]]]]]]],)),
    # Left to the writer thread: plain directives over scalars.
    ("%d %i %u %s %r", (-(2**63), 2**63 - 1, 2**63, -(2**64), 2**64)),
    ("%s %r %a %s %s", ("é'\"", "é'\"", "é\n", -0.0, 1e300)),
    ("%s " * 12, tuple(range(12))),
    ("long %s", ("x" * 100_000,)),
    ("%s%%%r", (None, True)),
    ("lone %s", ("\udc80",)),
]


def test_percent_formatting_matches_python(run, tmp_path):
    """The Logger formats common messages itself; every result must be
    the one Python's % gives (or, where % raises, the unformatted msg).
    The `sub` argument is a str subclass in the program."""
    cases = repr(PERCENT_CASES).replace("'sub'", "S('sub')")
    run(
        f"""
import logging, logbraid
from math import inf, nan
S = type("S", (str,), {{}})
CASES = {cases}
logbraid.basicConfig(level="INFO", file="p.log", console=False, format="%(message)s")
lb = logbraid.getLogger("lb")
std = logging.getLogger("std")
for fmt, args in CASES:
    lb.info(fmt, *args)
    std.info(fmt, *args)
logbraid.shutdown()
"""
    )
    expected = []
    for fmt, args in PERCENT_CASES:
        if len(args) == 1 and isinstance(args[0], dict) and args[0]:
            args = args[0]  # as LogRecord takes a lone mapping
        try:
            text = fmt % args if args else fmt
        except (TypeError, ValueError, KeyError, OverflowError):
            text = fmt
        # A lone surrogate cannot be written as UTF-8: each of its bytes
        # in Python's surrogatepass encoding is written as U+FFFD.
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        expected += [text, text]
    assert (tmp_path / "p.log").read_text(encoding="utf-8").splitlines() == expected


WEEKLY = """
import datetime as dt, os, sys, logbraid

n, before = int(sys.argv[1]), sys.argv[2] == "before"
now = dt.datetime.now(dt.timezone.utc)
midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
# The last midnight (UTC) that began weekday n (0 Monday ... 6 Sunday).
start = midnight - dt.timedelta(days=(now.weekday() - n) % 7)
stamp = (start.timestamp() - 60) if before else min(start.timestamp() + 60, now.timestamp())
with open("app.log", "w") as f:
    f.write("old\\n")
os.utime("app.log", (stamp, stamp))
logbraid.basicConfig(level="INFO", console=False, file="app.log", when=f"W{n}", format="%(message)s")
logbraid.getLogger("w").info("new")
logbraid.shutdown()
"""


@pytest.mark.parametrize("n", range(7))
def test_weekly_rotation_starts_on_the_weekday_given(run, tmp_path, n):
    """when="W<n>" starts a new file at the midnight beginning weekday n
    (W0 Monday ... W6 Sunday), as TimedRotatingFileHandler does: a file
    last written a minute before that midnight is rotated by the first
    record, one written a minute after it is not."""
    run(WEEKLY, str(n), "before")
    assert (tmp_path / "app.log").read_text() == "new\n"
    assert (tmp_path / "app.log.1").read_text() == "old\n"
    for p in tmp_path.glob("app.log*"):
        p.unlink()
    run(WEEKLY, str(n), "after")
    assert (tmp_path / "app.log").read_text() == "old\nnew\n"
    assert not (tmp_path / "app.log.1").exists()


def test_weekday_out_of_range_is_refused(run):
    p = run(
        "import logbraid\nlogbraid.basicConfig(file='x.log', when='W7')\n",
        check=False,
    )
    assert (
        'ValueError: when: "W7" is not one of: M, H, D, midnight, W0 (Monday) to W6 (Sunday),'
        in p.stderr
    ), p.stderr


def test_a_new_configuration_reaches_threads_that_logged_before(run, tmp_path):
    """Each thread keeps its own copy of the default pipeline's logger;
    basicConfig(force=True) makes every thread take the new one, also a
    thread that logged before and only logs again afterwards."""
    run(
        """
        import threading, logbraid
        fmt = "%(threadName)s %(message)s"
        logbraid.basicConfig(level="INFO", file="a.log", console=False, format=fmt)
        log = logbraid.getLogger("x")
        logged, go = threading.Event(), threading.Event()
        def worker():
            log.info("before %d", 1)
            logged.set()
            go.wait()
            log.info("after %d", 2)
        t = threading.Thread(target=worker, name="w")
        t.start()
        logged.wait()
        log.info("before %d", 3)
        logbraid.basicConfig(level="INFO", file="b.log", console=False, format=fmt, force=True)
        go.set()
        t.join()
        log.info("after %d", 4)
        logbraid.shutdown()
        """
    )
    assert (tmp_path / "a.log").read_text().splitlines() == ["w before 1", "MainThread before 3"]
    assert (tmp_path / "b.log").read_text().splitlines() == ["w after 2", "MainThread after 4"]


def test_one_line_of_code_shared_by_loggers_threads_and_fields(run, tmp_path):
    """A call site is kept once per logger, file, function and line (its
    strings are not copied per record): one line of code logging through
    two loggers from two threads, with and without fields, a traceback and
    a format left to the caller, writes each record's own name, function,
    module and line."""
    run(
        """
        import threading, logbraid
        logbraid.basicConfig(level="INFO", file="app.log", console=False,
                             format="%(name)s|%(funcName)s|%(module)s|%(lineno)d|%(threadName)s|%(message)s")
        def emit(log, i, **kw):
            log.info("n=%d %s", i, "x", **kw)
        def other(log, i):
            log.info("n=%d %s", i, "y")
        def work():
            a, b = logbraid.getLogger("a"), logbraid.getLogger("b.c")
            for i in range(3):
                emit(a, i)
                emit(b, i)
                other(a, i)
            emit(a, 9, extra={"k": 1})
            try:
                1 / 0
            except ZeroDivisionError:
                emit(b, 10, exc_info=True)
            a.info("n=%5d %s", 11, "w")
        t = threading.Thread(target=work, name="T2")
        t.start(); t.join()
        work()
        logbraid.shutdown()
        """
    )
    lines = (tmp_path / "app.log").read_text().splitlines()
    # The script's lines: `emit`'s call is line 6, `other`'s line 8, the
    # width format line 20 (the script starts after its first newline).
    want = []
    for thread in ["T2", "MainThread"]:
        for i in range(3):
            want.append(f"a|emit|prog|6|{thread}|n={i} x")
            want.append(f"b.c|emit|prog|6|{thread}|n={i} x")
            want.append(f"a|other|prog|8|{thread}|n={i} y")
        want.append(f"a|emit|prog|6|{thread}|n=9 x")
        want.append(f"b.c|emit|prog|6|{thread}|n=10 x")
        want.append(f"a|work|prog|20|{thread}|n=   11 w")
    got = [l for l in lines if not l.startswith(("  ", "Traceback", "ZeroDivision"))]
    assert got == want, "\n".join(lines)
    assert sum("ZeroDivisionError: division by zero" in l for l in lines) == 2
