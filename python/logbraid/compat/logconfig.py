"""The LogConfig pattern on logbraid: one configuration class,
``LogConfig(mode=...)``, and a singleton ``LoggerManager`` that applies it.

- ``SINGLE_THREAD``: records are written to the file and the console on
  the calling thread (``logbraid.basicConfig(sync=True)``).
- ``MULTI_PROCESS``: a background writer in the main process; worker
  processes (fork, spawn, forkserver) forward to it with nothing passed by
  hand: no queue, no listener to start.
- ``DISTRIBUTED``: clients forward to a collector at ``host``:``port``
  (the native protocol: acknowledged, resent after a reconnect);
  :class:`LogRecordReceiver` is that collector (``logbraid serve``).

The root logger is configured, so ``logging.getLogger(...)`` loggers of
any module reach the same sinks.
"""

import enum
import logging
import logging.handlers
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, List, Optional, Union

import logbraid

from . import OneInstance, level_of

__all__ = ["LogConfig", "LogMode", "LogRecordReceiver", "LoggerManager"]


class LogMode(enum.Enum):
    """How records travel from the code that logs to the file."""

    SINGLE_THREAD = "SINGLE_THREAD"
    MULTI_PROCESS = "MULTI_PROCESS"
    DISTRIBUTED = "DISTRIBUTED"


SINGLE_THREAD = LogMode.SINGLE_THREAD
MULTI_PROCESS = LogMode.MULTI_PROCESS
DISTRIBUTED = LogMode.DISTRIBUTED

DEFAULT_FORMAT = "%(asctime)s - %(processName)s - %(name)s - %(levelname)s - %(message)s"


@dataclass
class LogConfig:
    """The settings of every mode. ``mode`` is a :class:`LogMode` or its
    name ("MULTI_PROCESS", any case)."""

    mode: Union[LogMode, str] = LogMode.SINGLE_THREAD
    log_file: Optional[str] = "app.log"
    level: Union[int, str] = logging.INFO
    max_bytes: int = 10 * 1024 * 1024
    backup_count: int = 5
    log_format: str = DEFAULT_FORMAT
    date_format: Optional[str] = None
    console: bool = True
    host: str = "localhost"
    port: int = logging.handlers.DEFAULT_TCP_LOGGING_PORT

    SINGLE_THREAD = LogMode.SINGLE_THREAD
    MULTI_PROCESS = LogMode.MULTI_PROCESS
    DISTRIBUTED = LogMode.DISTRIBUTED

    def __post_init__(self) -> None:
        if isinstance(self.mode, str):
            try:
                self.mode = LogMode[self.mode.upper()]
            except KeyError:
                names = ", ".join(m.name for m in LogMode)
                raise ValueError(f"mode: {self.mode!r} is not one of: {names}") from None
        elif not isinstance(self.mode, LogMode):
            raise TypeError(f"mode: expected a LogMode or its name, got {type(self.mode).__name__}")
        self.level = level_of(self.level)

    @property
    def address(self) -> str:
        """The collector's address in DISTRIBUTED mode."""
        return f"tcp://{self.host}:{self.port}"


class LoggerManager(OneInstance):
    """Applies a :class:`LogConfig` once per process; every later
    ``LoggerManager()`` is the same object (a later config is ignored, as
    the first one is in force)."""

    def __init__(self, config: Optional[LogConfig] = None) -> None:
        with OneInstance.lock:
            if self._initialized:
                return
            self.config = config if config is not None else LogConfig()
            self._configure(given=config is not None)
            self._initialized = True

    def _configure(self, given: bool) -> None:
        c = self.config
        if logbraid.is_configured():
            # A worker of a configured process: its records already go to
            # the parent, at the parent's level unless a config says.
            if given:
                logging.getLogger().setLevel(c.level)
            return
        common = dict(level=c.level, format=c.log_format, datefmt=c.date_format)
        if c.mode is LogMode.DISTRIBUTED:
            logbraid.basicConfig(forward=c.address, **common)
            return
        if c.log_file:
            folder = os.path.dirname(c.log_file)
            if folder:
                os.makedirs(folder, exist_ok=True)
        logbraid.basicConfig(
            console=c.console,
            file=c.log_file or None,
            max_bytes=c.max_bytes,
            backup_count=c.backup_count,
            sync=c.mode is LogMode.SINGLE_THREAD,
            **common,
        )

    @property
    def mode(self) -> LogMode:
        return self.config.mode  # type: ignore[return-value]

    def get_logger(self, name: Optional[str] = None) -> logging.Logger:
        """A ``logging.Logger`` whose records reach the configured sinks."""
        return logging.getLogger(name)

    getLogger = get_logger

    def setup_worker(self, *args: Any, **kwargs: Any) -> None:
        """In MULTI_PROCESS, what a worker called to attach its queue. A
        worker of a configured process is attached at import: nothing is
        left to do, and any queue given is not needed."""

    def get_queue(self) -> None:
        """MULTI_PROCESS's queue for workers: none is needed (workers find
        the main process's collector by themselves), so None."""
        return None

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every record logged before is written (DISTRIBUTED:
        acknowledged by the collector)."""
        return logbraid.flush(timeout)

    def shutdown(self) -> None:
        """Writes every pending record and stops the writer; also at exit."""
        logbraid.shutdown()


class LogRecordReceiver:
    """The DISTRIBUTED mode's log server: a logbraid collector listening
    on ``host``:``port`` for the clients, writing ``config.log_file``
    rotated as the config says, in its format.

    ``serve_forever()`` runs it in this process until SIGTERM or SIGINT;
    ``start()`` runs it as a separate process and ``shutdown()`` stops that
    one, once it has written everything it acknowledged."""

    def __init__(
        self,
        host: str = "localhost",
        port: int = logging.handlers.DEFAULT_TCP_LOGGING_PORT,
        config: Optional[LogConfig] = None,
    ) -> None:
        self.config = config if config is not None else LogConfig(mode=LogMode.DISTRIBUTED)
        self.host = host
        self.port = port
        self._process: Optional[subprocess.Popen] = None

    def args(self) -> List[str]:
        """The flags of ``logbraid serve`` this server runs with."""
        c = self.config
        args = ["--listen", f"tcp://{self.host}:{self.port}", "--format", c.log_format]
        if c.log_file:
            args += ["--file", c.log_file]
        if c.max_bytes:
            args += ["--max-bytes", str(c.max_bytes)]
        if c.backup_count:
            args += ["--backup-count", str(c.backup_count)]
        return args

    def serve_forever(self) -> int:
        """Runs the collector here until SIGTERM or SIGINT; its exit code."""
        return logbraid._logbraid.serve(self.args())

    def start(self, timeout: float = 60) -> None:
        """Starts the collector as a separate process; returns once it
        accepts connections (RuntimeError if it exits or ``timeout``
        seconds pass first)."""
        if self._process is not None:
            raise RuntimeError("this LogRecordReceiver is already running")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "logbraid", "serve", *self.args()],
            stdin=subprocess.DEVNULL,
        )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60) -> None:
        """Returns once the collector at ``host``:``port`` accepts
        connections; RuntimeError if ``timeout`` seconds pass first or the
        process ``start`` started exits."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError as e:
                if self._process is not None and self._process.poll() is not None:
                    code = self._process.returncode
                    self._process = None
                    raise RuntimeError(f"the collector exited with status {code}") from e
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"no collector accepts connections on {self.host}:{self.port}"
                    ) from e
                time.sleep(0.05)

    def shutdown(self, timeout: Optional[float] = 30) -> Optional[int]:
        """Stops the process ``start`` started: it stops accepting, writes
        what it received, and exits. Returns its exit code."""
        p, self._process = self._process, None
        if p is None:
            return None
        p.send_signal(signal.SIGTERM)
        return p.wait(timeout)
