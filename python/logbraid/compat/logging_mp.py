"""``logging_mp`` (PyPI ``logging-mp``) on logbraid: replace
``import logging_mp`` with ``from logbraid.compat import logging_mp``.

``basicConfig(level=, console=, file=, file_path=, backup_count=)``,
``getLogger(name)`` and the level constants behave as documented there:
children (fork, spawn, forkserver) reach the parent's sinks with nothing
passed by hand (and no patching of ``multiprocessing``); with ``file=True``
each run writes ``<file_path>/<program>_<YYYYmmdd_HHMMSS>.log``, the oldest
runs deleted so that ``backup_count`` remain, in logging_mp's file format.
On a terminal the console shows what logging_mp's Rich console shows
(``[12:00:01.123456] INFO     message          main.py:12``: the time,
blank when repeated, the level in colour, the message, the caller's
``file:line`` at the right edge, tracebacks highlighted), without Rich;
piped or with ``NO_COLOR`` set, the file format's lines.
"""

import logging
import os
import threading
from typing import Any, Optional

import logbraid

from . import CRITICAL, DEBUG, ERROR, INFO, NOTSET, WARNING, level_of

__all__ = [
    "CRITICAL",
    "DEBUG",
    "ERROR",
    "INFO",
    "NOTSET",
    "WARNING",
    "basicConfig",
    "getLogger",
]

# logging_mp's file format, also the console's where it is no terminal.
FORMAT = (
    "%(asctime)s.%(msecs)03d %(levelname)-8s [%(filename)s:%(lineno)d] "
    "%(processName)s-%(threadName)s: %(message)s"
)
DATEFMT = "%H:%M:%S"

_lock = threading.Lock()
_started = False
_level = WARNING


def basicConfig(
    level: Any = WARNING,
    console: bool = True,
    file: bool = False,
    file_path: str = "logs",
    backup_count: int = 10,
) -> None:
    """Configures logging for this process and every child it starts.
    Raises RuntimeError when logging already started (a second call, or a
    call after ``getLogger``), ValueError when neither console nor file is
    wanted, as logging_mp does. In a child of a configured process (a
    ``spawn`` child runs the module's top level again) it only sets the
    level: the child's records already go to the parent."""
    global _started, _level
    if not console and not file:
        raise ValueError("At least one of 'console' or 'file' must be True.")
    lvl = level_of(level)
    with _lock:
        if _started:
            raise RuntimeError(
                "Logging system has already been started. "
                "Please configure before any getLogger() occurs."
            )
        _start(lvl, console, file, file_path, backup_count)


def _start(lvl: int, console: bool, file: bool, file_path: str, backup_count: int) -> None:
    global _started, _level
    _level = lvl
    if not logbraid.is_configured():
        logbraid.basicConfig(
            level=lvl,
            console=console,
            file=os.path.join(file_path, "{prog}_{start}.log") if file else None,
            runs=backup_count,
            format=FORMAT,
            datefmt=DATEFMT,
            console_style="rich",
        )
    logging.getLogger().setLevel(lvl)
    _started = True


def getLogger(name: Optional[str] = None) -> logging.Logger:
    """A ``logging.Logger`` at the configured level whose records reach
    logbraid's sinks (or, in a child, the parent's). Before
    ``basicConfig`` it starts logging with logging_mp's defaults (console,
    WARNING), or, in a child, with its parent's level."""
    with _lock:
        if not _started:
            # In a child attached to its parent, the parent's level (which
            # the attachment gave the root logger), as logging_mp hands
            # its children the parent's level.
            attached = logbraid.is_configured()
            lvl = logging.getLogger().getEffectiveLevel() if attached else WARNING
            _start(lvl, True, False, "logs", 10)
    logger = logging.getLogger(name)
    if name is not None:
        logger.setLevel(_level)
    return logger
