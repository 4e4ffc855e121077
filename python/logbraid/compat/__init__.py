"""Drop-ins for the logging designs logbraid replaces: change the import
line, keep the rest of the program.

- :mod:`logbraid.compat.logging_mp`: ``import logging_mp``
- :mod:`logbraid.compat.mplog`: ``from mplog import setup_logging, get_logger``
- :mod:`logbraid.compat.async_logger`: ``from logger import Logger`` (the
  asynchronous singleton ``Logger(log_file=, max_size=, backup_count=)``)
- :mod:`logbraid.compat.logconfig`: ``LogConfig(mode=...)`` and
  ``LoggerManager`` (SINGLE_THREAD, MULTI_PROCESS, DISTRIBUTED)
- :mod:`logbraid.compat.logserv`: ``from logserv import server`` (and
  ``client``): a log server writing the file each client names

Each is built on logbraid's own pipeline: one writer per file, children
of any start method forwarding to their parent, every record written once.
docs/MIGRATING.md says, for each, what behaves differently.
"""

import logging
import threading
from typing import Any

from .. import _level_number

__all__ = ["async_logger", "logconfig", "logging_mp", "logserv", "mplog"]


def level_of(level: Any) -> int:
    """A level given as the old libraries take it: a number or a name in
    any case ("info", "WARNING")."""
    return _level_number(level)


#: The level constants the old libraries export.
NOTSET = logging.NOTSET
DEBUG = logging.DEBUG
INFO = logging.INFO
WARNING = logging.WARNING
ERROR = logging.ERROR
CRITICAL = logging.CRITICAL


class OneInstance:
    """A class of which the process has one instance: every call returns
    it. Its ``__init__`` sets it up once, holding ``OneInstance.lock``:
    ``if self._initialized: return`` first, ``self._initialized = True``
    last (so a failed set-up is tried again by the next call)."""

    lock = threading.RLock()
    _initialized: bool

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        with OneInstance.lock:
            instance = cls.__dict__.get("_instance")
            if instance is None:
                instance = super().__new__(cls)
                instance._initialized = False
                cls._instance = instance
            return instance
