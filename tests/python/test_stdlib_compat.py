"""Living with the standard library: pytest's caplog, fileConfig and
dictConfig, Unicode that is hard to encode, and `logbraid.getLogger`
before any configuration."""

import json
import logging
import os

import pytest

import logbraid
from logbraid import _logbraid

# --------------------------------------------------------------------------
# In this process (caplog only sees records logged in pytest's own process).


@pytest.fixture
def in_process():
    """Undoes, after the test, what `logbraid.basicConfig` does to this
    process: the root logger's handler and level, the default pipeline,
    the Rust root logger's level, the exported environment."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    saved_env = {k: os.environ.get(k) for k in ("LOGBRAID_COLLECTOR", "LOGBRAID_PYTHON_LEVEL")}
    assert _logbraid.get_default() is None
    yield
    logbraid.shutdown()
    for h in list(root.handlers):
        if h not in saved_handlers:
            root.removeHandler(h)
    _logbraid.set_default(None)
    logbraid._default_handler = None
    # The Rust root logger's setLevel sets the stdlib root's too: first.
    logbraid.getLogger().setLevel(logging.NOTSET)
    root.setLevel(saved_level)
    for k, v in saved_env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_caplog_sees_stdlib_loggers_after_basicconfig(in_process, caplog, tmp_path):
    logbraid.basicConfig(
        level="INFO",
        file=str(tmp_path / "app.log"),
        console=False,
        format="%(levelname)s|%(name)s|%(message)s",
    )
    std = logging.getLogger("compat.std")
    std.debug("below the level")
    std.info("hello %s", "caplog")
    std.warning("careful: %d", 3, extra={"k": "v"})
    logging.getLogger("compat.other").error("é \U0001F600")
    # A logbraid Logger writes without building a LogRecord: the file has
    # it, caplog does not.
    logbraid.getLogger("compat.lb").info("only in the file")
    assert logbraid.flush(30)

    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("compat.std", "INFO", "hello caplog"),
        ("compat.std", "WARNING", "careful: 3"),
        ("compat.other", "ERROR", "é \U0001F600"),
    ]
    assert caplog.messages == ["hello caplog", "careful: 3", "é \U0001F600"]
    assert caplog.records[1].k == "v"
    text = caplog.text.splitlines()
    assert len(text) == 3
    assert text[0].startswith("INFO") and text[0].endswith(" hello caplog")
    assert text[2].startswith("ERROR") and text[2].endswith(" é \U0001F600")
    assert (tmp_path / "app.log").read_text(encoding="utf-8") == (
        "INFO|compat.std|hello caplog\n"
        "WARNING|compat.std|careful: 3\n"
        "ERROR|compat.other|é \U0001F600\n"
        "INFO|compat.lb|only in the file\n"
    )


def test_caplog_set_level_after_basicconfig(in_process, caplog, tmp_path):
    logbraid.basicConfig(level="WARNING", file=str(tmp_path / "app.log"), console=False, format="%(message)s")
    caplog.set_level(logging.DEBUG, logger="compat.debug")
    logging.getLogger("compat.debug").debug("debug %d", 1)
    logging.getLogger("compat.quiet").info("not anywhere")
    assert logbraid.flush(30)
    assert caplog.messages == ["debug 1"]
    # the handler of basicConfig has no level of its own: the record went
    # to the file too
    assert (tmp_path / "app.log").read_text() == "debug 1\n"


def test_getlogger_before_basicconfig_is_the_stdlib_logger(in_process, caplog):
    log = logbraid.getLogger("compat.before")
    log.warning("warned %s", "early", extra={"k": 1})
    log.error("failed", exc_info=ValueError("x"))
    log.info("below the default level")
    assert [(r.name, r.levelname, r.getMessage(), getattr(r, "k", None)) for r in caplog.records] == [
        ("compat.before", "WARNING", "warned early", 1),
        ("compat.before", "ERROR", "failed", None),
    ]
    assert caplog.records[1].exc_info[0] is ValueError


def test_getlogger_before_basicconfig_follows_stdlib_levels(in_process, caplog):
    caplog.set_level(logging.INFO, logger="compat.levels")
    log = logbraid.getLogger("compat.levels")
    assert log.isEnabledFor(logging.INFO) == logging.getLogger("compat.levels").isEnabledFor(logging.INFO)
    log.info("info %d", 1)
    assert caplog.messages == ["info 1"]


def _caller_line():
    logbraid.getLogger("compat.caller").warning("from a function")
    return _caller_line.__code__.co_firstlineno + 1


def test_getlogger_before_basicconfig_names_the_caller(in_process, caplog):
    line = _caller_line()
    (r,) = caplog.records
    assert (r.funcName, r.lineno, r.filename) == ("_caller_line", line, "test_stdlib_compat.py")


# --------------------------------------------------------------------------
# fileConfig and dictConfig, each in a fresh interpreter.

FILECONFIG = """
[loggers]
keys=root,app

[handlers]
keys=lb

[formatters]
keys=

[logger_root]
level=WARNING
handlers=lb

[logger_app]
level=DEBUG
handlers=
qualname=app

[handler_lb]
class=logbraid.Handler
level=INFO
{arguments}
"""


@pytest.mark.parametrize(
    "arguments",
    [
        "args=('app.log', False, False, '%%(levelname)s|%%(name)s|%%(message)s|%%(k)s')",
        "kwargs={'file': 'app.log', 'format': '%%(levelname)s|%%(name)s|%%(message)s|%%(k)s'}",
    ],
    ids=["args", "kwargs"],
)
def test_fileconfig(run, tmp_path, arguments):
    (tmp_path / "logging.ini").write_text(FILECONFIG.format(arguments=arguments))
    run(
        """
        import logging, logging.config
        logging.config.fileConfig("logging.ini")
        app = logging.getLogger("app")
        app.debug("below the handler's level")
        app.info("user %s", "ada", extra={"k": 7})
        logging.getLogger("other").info("below the root level")
        logging.getLogger("other").error("failed: %r", "x")
        logging.shutdown()
        """
    )
    assert (tmp_path / "app.log").read_bytes() == b"INFO|app|user ada|7\nERROR|other|failed: 'x'|-\n"


def test_dictconfig_with_format_keyword(run, tmp_path):
    run(
        """
        import logging, logging.config
        logging.config.dictConfig({
            "version": 1,
            "handlers": {
                "lb": {
                    "class": "logbraid.Handler",
                    "file": "app.log",
                    "format": "%(levelno)d %(levelname)-8s %(name)s: %(message)s [%(k)s]",
                    "level": "INFO",
                },
            },
            "loggers": {"noisy": {"level": "ERROR"}},
            "root": {"handlers": ["lb"], "level": "DEBUG"},
        })
        logging.getLogger("a.b").debug("below the handler's level")
        logging.getLogger("a.b").info("via %s", "dictConfig", extra={"k": 1.5})
        logging.getLogger("noisy").warning("below the logger's level")
        logging.getLogger("noisy").critical("100%% sure")
        logging.shutdown()
        """
    )
    # Without arguments a message is not %-formatted: "%%" stays, as in logging.
    assert (tmp_path / "app.log").read_bytes() == (
        b"20 INFO     a.b: via dictConfig [1.5]\n"
        b"50 CRITICAL noisy: 100%% sure [-]\n"
    )


def test_dictconfig_formatter_is_honoured(run, tmp_path):
    run(
        """
        import logging, logging.config
        logging.config.dictConfig({
            "version": 1,
            "formatters": {"f": {"format": "%(levelname)s|%(name)s|%(message)s"}},
            "handlers": {"lb": {"class": "logbraid.Handler", "file": "app.log", "formatter": "f"}},
            "root": {"handlers": ["lb"], "level": "INFO"},
        })
        logging.getLogger("a").info("hello %s", "formatter")
        logging.shutdown()
        """
    )
    assert (tmp_path / "app.log").read_bytes() == b"INFO|a|hello formatter\n"


# --------------------------------------------------------------------------
# Unicode: characters outside the BMP, combining characters, lone surrogates.

UNICODE_PROGRAM = """
import logging, logbraid

logbraid.basicConfig(level="INFO", file="u.log", console=False, {layout})
for log in (logbraid.getLogger("lb"), logging.getLogger("std")):
    log.info("astral \\U0001F600 \\U00010348 \\U0001D11E", extra={{"v": "\\U0001F680"}})
    log.info("combining e\\u0301 a\\u0308 \\u0915\\u094d\\u0937", extra={{"v": "n\\u0303"}})
    log.info("lone \\ud800 and \\udfff", extra={{"v": "x\\udc80y"}})
    log.info("arg %s|%s", "\\ud83d", "\\U0001F600", extra={{"v": "ok"}})
logbraid.shutdown()
"""

FFFD3 = "\ufffd" * 3  # a lone surrogate: its three bytes each become U+FFFD


def test_unicode_python_format(run, tmp_path):
    run(UNICODE_PROGRAM.format(layout='format="%(name)s|%(message)s|%(v)s"'))
    expected = "".join(
        f"{name}|{line}\n"
        for name in ("lb", "std")
        for line in (
            "astral \U0001F600 \U00010348 \U0001D11E|\U0001F680",
            "combining e\u0301 a\u0308 \u0915\u094d\u0937|n\u0303",
            f"lone {FFFD3} and {FFFD3}|x{FFFD3}y",
            f"arg {FFFD3}|\U0001F600|ok",
        )
    )
    assert (tmp_path / "u.log").read_bytes() == expected.encode("utf-8")


def test_unicode_text_layout(run, tmp_path):
    run(UNICODE_PROGRAM.format(layout=""))
    lines = (tmp_path / "u.log").read_bytes().decode("utf-8").splitlines()
    assert len(lines) == 8
    # After the timestamp, level and [pid/thread]: target, message, fields.
    tails = [line.split("] ", 1)[1] for line in lines]
    assert tails == [
        f"{name}: {rest}"
        for name in ("lb", "std")
        for rest in (
            "astral \U0001F600 \U00010348 \U0001D11E v=\U0001F680",
            "combining e\u0301 a\u0308 \u0915\u094d\u0937 v=n\u0303",
            f"lone {FFFD3} and {FFFD3} v=x{FFFD3}y",
            f"arg {FFFD3}|\U0001F600 v=ok",
        )
    ]


def test_unicode_json(run, tmp_path):
    run(UNICODE_PROGRAM.format(layout="json=True"))
    rows = [json.loads(line) for line in (tmp_path / "u.log").read_text(encoding="utf-8").splitlines()]
    assert [(r["target"], r["msg"], r["fields"]) for r in rows] == [
        (name, msg, fields)
        for name in ("lb", "std")
        for msg, fields in (
            ("astral \U0001F600 \U00010348 \U0001D11E", {"v": "\U0001F680"}),
            ("combining e\u0301 a\u0308 \u0915\u094d\u0937", {"v": "n\u0303"}),
            (f"lone {FFFD3} and {FFFD3}", {"v": f"x{FFFD3}y"}),
            (f"arg {FFFD3}|\U0001F600", {"v": "ok"}),
        )
    ]


@pytest.mark.parametrize(
    "logger",
    [
        'logbraid.getLogger("x")',
        'logging.getLogger("x")',
    ],
    ids=["logbraid", "stdlib"],
)
def test_lone_surrogate_in_an_extra_key(run, tmp_path, logger):
    run(
        f"""
        import logging, logbraid
        logbraid.basicConfig(level="INFO", file="u.log", console=False, json=True)
        {logger}.info("key", extra={{"k\\ud800": "value", "z\\U0001F600": 1}})
        logbraid.shutdown()
        """
    )
    (row,) = [json.loads(line) for line in (tmp_path / "u.log").read_text(encoding="utf-8").splitlines()]
    assert row["fields"] == {f"k{FFFD3}": "value", "z\U0001F600": 1}


# --------------------------------------------------------------------------
# What a record says about where it came from, as `logging` says it.

CALLER_CASES = {
    "direct": "log.info('direct')",
    "helper with stacklevel=2": "helper(log, 'helper')",
    "LoggerAdapter": "logging.LoggerAdapter(log, {}).info('adapter')",
    "stacklevel beyond the stack": "log.info('deep', stacklevel=99)",
}


@pytest.mark.parametrize(
    "case",
    [
        "direct",
        "helper with stacklevel=2",
        "LoggerAdapter",
        "stacklevel beyond the stack",
    ],
)
def test_caller_is_the_one_logging_names(run, tmp_path, case):
    """The same call through a stdlib logger and a logbraid Logger, on the
    same line: funcName, lineno, module and filename agree."""
    run(
        f"""
        import logging, logbraid
        logbraid.basicConfig(level="INFO", file="c.log", console=False,
                             format="%(funcName)s|%(lineno)d|%(module)s|%(filename)s|%(name)s")

        def helper(log, msg):
            log.info(msg, stacklevel=2)

        def caller():
            for log in (logging.getLogger("std"), logbraid.getLogger("lb")):
                {CALLER_CASES[case]}

        caller()
        logbraid.shutdown()
        """
    )
    std, lb = (tmp_path / "c.log").read_text().splitlines()
    assert std.endswith("|std") and lb.endswith("|lb")
    assert lb[: -len("lb")] == std[: -len("std")]


NAMES_PROGRAM = """
import logging, logbraid, threading
logbraid.basicConfig(level="INFO", file="n.log", console=False, format="{fmt}|%(message)s")

def work():
    print(threading.get_ident(), flush=True)
    for log in (logging.getLogger("std"), logbraid.getLogger("lb")):
        log.info(log.name)

work()
t = threading.Thread(target=work, name="worker-7")
t.start()
t.join()
logbraid.shutdown()
"""


def test_thread_names_are_the_ones_logging_uses(run, tmp_path):
    run(NAMES_PROGRAM.format(fmt="%(threadName)s"))
    assert (tmp_path / "n.log").read_text().splitlines() == [
        "MainThread|std",
        "MainThread|lb",
        "worker-7|std",
        "worker-7|lb",
    ]


def test_thread_ids_are_the_ones_logging_uses(run, tmp_path):
    main, worker = run(NAMES_PROGRAM.format(fmt="%(thread)d")).stdout.split()
    assert main != worker
    assert (tmp_path / "n.log").read_text().splitlines() == [
        f"{main}|std",
        f"{main}|lb",
        f"{worker}|std",
        f"{worker}|lb",
    ]


def test_process_names_are_the_ones_logging_uses(run, tmp_path):
    run(NAMES_PROGRAM.format(fmt="%(processName)s"))
    assert (tmp_path / "n.log").read_text().splitlines() == [
        "MainProcess|std",
        "MainProcess|lb",
        "MainProcess|std",
        "MainProcess|lb",
    ]


# --------------------------------------------------------------------------
# logging.Handler's own machinery on logbraid.Handler: levels, filters,
# subclasses.


def test_handler_levels_filters_and_subclass(run, tmp_path):
    run(
        """
        import logging, logging.config, logbraid

        class AddRequest(logging.Filter):
            def filter(self, record):
                record.request_id = f"r-{record.n}" if hasattr(record, "n") else "none"
                return True

        class Prefixed(logbraid.Handler):
            def emit(self, record):
                record.msg = "sub:" + record.msg
                super().emit(record)

        logging.config.dictConfig({
            "version": 1,
            "filters": {"only_app": {"name": "app"}, "add": {"()": AddRequest}},
            "handlers": {"lb": {
                "class": "logbraid.Handler", "file": "f.log", "level": "INFO",
                "format": "%(name)s|%(message)s|%(request_id)s", "filters": ["only_app", "add"],
            }},
            "root": {"handlers": ["lb"], "level": "DEBUG"},
        })
        app, db, other = (logging.getLogger(n) for n in ("app", "app.db", "other"))
        app.debug("below the handler's level")
        app.info("one", extra={"n": 1})
        db.warning("two")
        other.error("not app")
        (h,) = logging.getLogger().handlers
        h.addFilter(lambda r: "secret" not in r.getMessage())
        app.info("a secret")
        app.info("three", extra={"n": 3})
        h.setLevel("ERROR")
        app.warning("below the new level")
        app.error("four")
        h.removeFilter(h.filters[-1])
        sub = Prefixed(file="g.log", format="%(levelname)s %(message)s")
        db.addHandler(sub)
        db.critical("five with a secret")
        db.removeHandler(sub)
        sub.close()
        db.critical("six")
        logging.shutdown()
        """
    )
    assert (tmp_path / "f.log").read_text().splitlines() == [
        "app|one|r-1",
        "app.db|two|none",
        "app|three|r-3",
        "app|four|none",
        "app.db|sub:five with a secret|none",
        "app.db|six|none",
    ]
    assert (tmp_path / "g.log").read_text() == "CRITICAL sub:five with a secret\n"
