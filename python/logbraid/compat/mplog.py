"""``mplog`` on logbraid: replace ``from mplog import ...`` with
``from logbraid.compat.mplog import ...``.

``setup_logging`` takes every keyword of mplog's, ``get_logger`` returns a
``logging.Logger``, ``shutdown_logging`` flushes and stops (and runs at
exit), ``is_logging_setup`` says whether ``setup_logging`` ran. Worker
processes (fork or spawn) and coroutines log to the main process's sinks
with nothing else to set up.
"""

import logging
import threading
from pathlib import Path
from typing import Any, Optional, Union

import logbraid

from . import level_of

__all__ = ["get_logger", "is_logging_setup", "setup_logging", "shutdown_logging"]

# mplog's defaults.
FORMAT = (
    "%(asctime)s - %(processName)s[%(process)d] - "
    "%(threadName)s - %(name)s - %(levelname)s - %(message)s"
)
DATEFMT = "%Y-%m-%d %H:%M:%S"

_lock = threading.Lock()
_is_setup = False


def setup_logging(
    level: Union[int, str] = logging.INFO,
    log_file: Optional[Union[str, Path]] = None,
    log_to_stderr: bool = True,
    format_string: Optional[str] = None,
    date_format: Optional[str] = None,
    file_mode: str = "a",
    file_encoding: str = "utf-8",
    max_bytes: int = 10 * 1024 * 1024,
    backup_count: int = 5,
) -> None:
    """Sets up logging for this process and its workers: stderr and/or
    ``log_file`` (rotated at ``max_bytes``, 0 for never, keeping
    ``backup_count`` backups). A second call replaces the first."""
    global _is_setup
    lvl = level_of(level)
    with _lock:
        if log_file is not None:
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        logbraid.basicConfig(
            level=lvl,
            console=log_to_stderr,
            file=log_file,
            format=format_string if format_string is not None else FORMAT,
            datefmt=date_format if date_format is not None else DATEFMT,
            file_mode=file_mode,
            encoding=file_encoding,
            max_bytes=max_bytes,
            backup_count=backup_count if max_bytes > 0 else 0,
            force=True,
        )
        _is_setup = True


def get_logger(name: Optional[str] = None) -> logging.Logger:
    """A ``logging.Logger``. Sets logging up with the defaults when
    nothing did (not in a worker: its records go to the main process)."""
    with _lock:
        needed = not _is_setup and not logbraid.is_configured()
    if needed:
        setup_logging()
    return logging.getLogger(name)


def shutdown_logging() -> None:
    """Writes every pending record and stops the background writer.
    Records logged afterwards are still written, by the thread that logs
    them. Also runs at exit."""
    global _is_setup
    with _lock:
        _is_setup = False
    logbraid.shutdown()


def is_logging_setup() -> bool:
    """Whether ``setup_logging`` ran in this process (and
    ``shutdown_logging`` did not follow), or this process is a worker
    whose records go to a set-up parent."""
    with _lock:
        return _is_setup or (_attached() and logbraid.is_configured())


def _attached() -> bool:
    # A worker attached to its parent at import has logging.lastResort
    # as its forwarder, never a handler on the root logger.
    return isinstance(logging.lastResort, logbraid.Handler)
