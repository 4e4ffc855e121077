"""The asynchronous singleton ``Logger`` on logbraid: replace
``from logger import Logger`` with
``from logbraid.compat.async_logger import Logger``.

``Logger(log_file="app.log", max_size=1024, backup_count=5)`` (``max_size``
in KB) returns the one instance of the process; ``log(message,
level="INFO")`` from any thread hands the record to logbraid's background
writer; the file rotates by size, ``app.log`` → ``app.log.1`` → …;
``shutdown()`` returns once every record logged before it is written.
"""

import logging
from typing import Any

import logbraid

from . import OneInstance, level_of

__all__ = ["Logger"]

FORMAT = "%(asctime)s - %(threadName)s - %(levelname)s - %(message)s"


class Logger(OneInstance):
    """The process's one asynchronous file logger."""

    def __init__(self, log_file: str = "app.log", max_size: int = 1024, backup_count: int = 5):
        with OneInstance.lock:
            if self._initialized:
                return
            if not isinstance(max_size, (int, float)) or isinstance(max_size, bool) or max_size < 0:
                raise ValueError(f"max_size: expected a number of KB >= 0, got {max_size!r}")
            self.log_file = log_file
            self.max_size = int(max_size * 1024)
            self.backup_count = backup_count
            self._handler = logbraid.Handler(
                file=log_file,
                max_bytes=self.max_size,
                backup_count=backup_count,
                format=FORMAT,
            )
            # Not in logging's hierarchy: the program's own logging
            # configuration neither sees nor changes these records.
            self._logger = logging.Logger("async_logger", logging.NOTSET)
            self._logger.addHandler(self._handler)
            self._initialized = True

    def log(self, message: Any, level: Any = "INFO") -> None:
        """Logs ``message`` (written as given, never %-formatted) at
        ``level``, a name ("INFO", "warning") or a number."""
        self._logger.log(level_of(level), "%s", message)

    def shutdown(self) -> None:
        """Writes every pending message and stops the background writer.
        Messages logged afterwards are still written, by the thread that
        logs them."""
        self._handler.close()
