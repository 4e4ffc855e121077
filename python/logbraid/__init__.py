"""logbraid: a drop-in for the standard ``logging`` module.

Records go through a Rust pipeline with a background writer: rotated,
compressed files, text or JSON, and child processes forwarding to their
parent's collector with nothing passed by hand.

    import logbraid
    logbraid.basicConfig(level="INFO", file="app.log")
    log = logbraid.getLogger("app")
    log.info("user %s logged in", "ada", extra={"request": 42})
"""

from __future__ import annotations

import atexit
import codecs
import datetime
import logging
import os
import re
import sys
import threading
import weakref
from typing import Any, Dict, Optional, Union

from . import _logbraid
from ._logbraid import Logger

__all__ = [
    "Handler",
    "Logger",
    "basicConfig",
    "flush",
    "getLogger",
    "is_configured",
    "shutdown",
    "stats",
]

_ENV = _logbraid.COLLECTOR_ENV
_LEVEL_ENV = "LOGBRAID_PYTHON_LEVEL"

# Every pipeline of this process, to flush before a fork and rebuild after.
_pipelines: "list[_logbraid.Pipeline]" = []
_lock = threading.Lock()
_default_handler: Optional["Handler"] = None
# Whether a pipeline of this process has been built, and so threads of
# logbraid may be running: from then on the package writes no environment
# variable (see _export_for_children).
_threads_started = False


def _level_number(level: Any, param: str = "level") -> int:
    if isinstance(level, bool):
        raise TypeError(f"{param}: expected an int or a level name, got bool")
    if isinstance(level, int):
        return level
    if isinstance(level, str):
        value = logging.getLevelName(level.upper())
        if isinstance(value, int):
            return value
        raise ValueError(f"{param}: unknown level name {level!r}")
    raise TypeError(f"{param}: expected an int or a level name, got {type(level).__name__}")


def _pipeline(
    *,
    file: Optional[str] = None,
    console: bool = False,
    json: bool = False,
    format: Optional[str] = None,
    datefmt: Optional[str] = None,
    max_bytes: int = 0,
    backup_count: int = 0,
    when: Optional[str] = None,
    compress: Optional[str] = None,
    forward: Optional[str] = None,
    queue_size: Optional[int] = None,
    overflow: str = "block",
    children: bool = True,
    handle_signals: bool = True,
    flush_limit: Optional[float] = None,
    file_mode: str = "a",
    encoding: Optional[str] = "utf-8",
    sync: bool = False,
    token: Optional[str] = None,
    tls_ca: "Optional[Union[str, os.PathLike[str]]]" = None,
    tls_cert: "Optional[Union[str, os.PathLike[str]]]" = None,
    tls_key: "Optional[Union[str, os.PathLike[str]]]" = None,
    tls_server_name: Optional[str] = None,
    console_style: Optional[str] = None,
) -> "_logbraid.Pipeline":
    for name, value, kind in (
        ("file", file, (str, os.PathLike, type(None))),
        ("console", console, bool),
        ("json", json, bool),
        ("format", format, (str, type(None))),
        ("datefmt", datefmt, (str, type(None))),
        ("max_bytes", max_bytes, int),
        ("backup_count", backup_count, int),
        ("when", when, (str, type(None))),
        ("compress", compress, (str, type(None))),
        ("forward", forward, (str, type(None))),
        ("queue_size", queue_size, (int, type(None))),
        ("overflow", overflow, str),
        ("handle_signals", handle_signals, bool),
        ("flush_limit", flush_limit, (int, float, type(None))),
        ("file_mode", file_mode, str),
        ("encoding", encoding, (str, type(None))),
        ("sync", sync, bool),
        ("token", token, (str, type(None))),
        ("tls_ca", tls_ca, (str, os.PathLike, type(None))),
        ("tls_cert", tls_cert, (str, os.PathLike, type(None))),
        ("tls_key", tls_key, (str, os.PathLike, type(None))),
        ("tls_server_name", tls_server_name, (str, type(None))),
        ("console_style", console_style, (str, type(None))),
    ):
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TypeError(f"{name}: unexpected type {type(value).__name__}")
    truncate = _truncate(file_mode)
    _check_encoding(encoding)
    global _threads_started
    # Set first: the build starts the pipeline's threads.
    _threads_started = True
    p = _logbraid.Pipeline(
        file=os.fspath(file) if file is not None else None,
        console=console,
        json=json,
        format=format,
        datefmt=datefmt,
        max_bytes=max_bytes,
        backup_count=backup_count,
        when=when,
        compress=compress,
        forward=forward,
        queue_size=queue_size,
        overflow=overflow,
        children=children,
        signals=handle_signals,
        flush_limit=flush_limit,
        sync=sync,
        truncate=truncate,
        token=token,
        tls_ca=_path(tls_ca),
        tls_cert=_path(tls_cert),
        tls_key=_path(tls_key),
        tls_server_name=tls_server_name,
        console_style=console_style,
    )
    with _lock:
        _pipelines.append(p)
    return p


def _truncate(file_mode: str) -> bool:
    """``file_mode`` as ``logging.FileHandler``'s ``mode``: "a" appends,
    "w" empties the file when the pipeline starts."""
    if file_mode not in ("a", "w"):
        raise ValueError(f"file_mode: expected 'a' (append) or 'w' (truncate), got {file_mode!r}")
    return file_mode == "w"


def _check_encoding(encoding: Optional[str]) -> None:
    """Files are written in UTF-8 (every sink and the collector share one
    encoding); any name of UTF-8 is accepted, any other encoding is
    refused rather than silently ignored."""
    if encoding is None:
        return
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"encoding: unknown encoding {encoding!r}") from None
    if name != "utf-8":
        raise ValueError(
            f"encoding: logbraid writes UTF-8 only; {encoding!r} is not supported "
            "(records from every thread, process and host share one encoding)"
        )


# The fields of a per-run file name, and the pattern each one's text
# matches when earlier runs' files are looked for.
_RUN_FIELD = re.compile(r"\{(prog|start|pid)\}")
_RUN_PATTERN = {"prog": None, "start": r"\d{8}_\d{6}(?:_\d+)?", "pid": r"\d+"}


def _program_name() -> str:
    """The program's name for ``{prog}``: ``sys.argv[0]`` without its
    folder and extension, or "app" when there is none (``python -c``)."""
    argv0 = sys.argv[0] if sys.argv else ""
    name = os.path.splitext(os.path.basename(argv0))[0]
    return name if name and not name.startswith("-") else "app"


def _per_run_file(file: Any, runs: int) -> Any:
    """A file name with ``{prog}``, ``{start}`` or ``{pid}`` is a new file
    per run: the fields are filled (``{start}``: the local time now,
    ``20240131_235959``; a second run in the same second gets ``_1``), and
    with ``runs`` > 0, the files of the oldest earlier runs (and their
    rotated backups) are deleted so that, with this run's, ``runs`` remain.
    Any other name is returned as given."""
    if not isinstance(runs, int) or isinstance(runs, bool):
        raise TypeError(f"runs: unexpected type {type(runs).__name__}")
    if runs < 0:
        raise ValueError(f"runs: {runs}: must be 0 (keep every run) or more")
    if file is None or not isinstance(file, (str, os.PathLike)):
        return file
    template = os.fspath(file)
    if not isinstance(template, str) or not _RUN_FIELD.search(template):
        if runs:
            raise ValueError("runs: needs a per-run file name ({prog}, {start} or {pid} in file)")
        return file
    values = {
        "prog": _program_name(),
        "start": datetime.datetime.now().strftime("%Y%m%d_%H%M%S"),
        "pid": str(os.getpid()),
    }
    folder, base = os.path.split(template)
    if _RUN_FIELD.search(folder):
        raise ValueError("file: {prog}, {start} and {pid} may only appear in the file's name")
    pattern = re.compile(
        "".join(
            re.escape(part) if i % 2 == 0 else (_RUN_PATTERN[part] or re.escape(values[part]))
            for i, part in enumerate(_RUN_FIELD.split(base))
        )
    )
    earlier = sorted(
        (
            os.path.join(folder, n)
            for n in (os.listdir(folder or ".") if os.path.isdir(folder or ".") else ())
            if pattern.fullmatch(n)
        ),
        key=lambda p: (os.path.getmtime(p), p),
    )
    if runs:
        for old in earlier[: max(0, len(earlier) - (runs - 1))]:
            # The run's file and its own backups, by the sink's exact names:
            # an operator's "app.log.bak" beside them is not the run's.
            for f in [old, *map(os.fspath, _logbraid.backup_files(old))]:
                try:
                    os.remove(f)
                except FileNotFoundError:
                    pass
    path = _RUN_FIELD.sub(lambda m: values[m.group(1)], template)
    stem, ext = os.path.splitext(path)
    n = 0
    while os.path.exists(path):
        n += 1
        path = f"{stem}_{n}{ext}"
    if folder:
        os.makedirs(folder, exist_ok=True)
    return path


def _path(p: "Optional[Union[str, os.PathLike[str]]]") -> Optional[str]:
    return os.fspath(p) if p is not None else None


def _forget(p: "_logbraid.Pipeline") -> None:
    # A closed pipeline needs neither flushing before a fork nor
    # rebuilding after one; a program that makes and closes handlers all
    # day must not keep them all.
    with _lock:
        try:
            _pipelines.remove(p)
        except ValueError:
            pass


# The sink keywords Handler and basicConfig share, passed on to _pipeline.
_SINK_KEYWORDS = (
    "file",
    "console",
    "json",
    "format",
    "datefmt",
    "max_bytes",
    "backup_count",
    "when",
    "compress",
    "forward",
    "queue_size",
    "overflow",
    "handle_signals",
    "flush_limit",
    "file_mode",
    "encoding",
    "sync",
    "token",
    "tls_ca",
    "tls_cert",
    "tls_key",
    "tls_server_name",
    "console_style",
)


def _sink_keywords(arguments: Dict[str, Any]) -> Dict[str, Any]:
    """The keywords for _pipeline, with a per-run ``file`` (see
    _per_run_file) made this run's file name."""
    keywords = {k: arguments[k] for k in _SINK_KEYWORDS}
    keywords["file"] = _per_run_file(keywords["file"], arguments["runs"])
    return keywords


class Handler(logging.Handler):
    """A ``logging.Handler`` whose sinks are a Rust pipeline.

    Takes the sink keywords of :func:`basicConfig`, ``forward``, ``token``
    and ``tls_*`` included; usable from ``dictConfig`` (``{"class":
    "logbraid.Handler", "file": "app.jsonl", "json": True}``) and
    ``fileConfig``.
    """

    def __init__(
        self,
        file: Optional[str] = None,
        console: bool = False,
        json: bool = False,
        format: Optional[str] = None,
        datefmt: Optional[str] = None,
        max_bytes: int = 0,
        backup_count: int = 0,
        when: Optional[str] = None,
        compress: Optional[str] = None,
        forward: Optional[str] = None,
        level: Any = logging.NOTSET,
        queue_size: Optional[int] = None,
        overflow: str = "block",
        handle_signals: bool = True,
        flush_limit: Optional[float] = None,
        file_mode: str = "a",
        encoding: Optional[str] = "utf-8",
        sync: bool = False,
        runs: int = 0,
        token: Optional[str] = None,
        tls_ca: "Optional[Union[str, os.PathLike[str]]]" = None,
        tls_cert: "Optional[Union[str, os.PathLike[str]]]" = None,
        tls_key: "Optional[Union[str, os.PathLike[str]]]" = None,
        tls_server_name: Optional[str] = None,
        console_style: Optional[str] = None,
        *,
        _pipeline_object: "Optional[_logbraid.Pipeline]" = None,
        _file: Optional[str] = None,
    ) -> None:
        super().__init__(_level_number(level))
        if _pipeline_object is not None:
            self._pipe = _pipeline_object
            #: The file this handler writes (a per-run name filled in).
            self.file = _file
        else:
            keywords = _sink_keywords(locals())
            self.file = keywords["file"]
            self._pipe = _pipeline(**keywords)
        self._formats_in_python = False
        self._fast = type(self).handle is Handler.handle and type(self).emit is Handler.emit
        if self._fast:
            # The pipeline handles records itself: no Python frame and no
            # handler lock per record (it takes records from any thread).
            # Filters, if any are added, still run (_handle_filtered).
            self._pipe._link_handler(self.filters, weakref.ref(self))
            self.handle = self._pipe.handle  # type: ignore[method-assign]

    def setFormatter(self, fmt: Optional[logging.Formatter]) -> None:
        """A plain ``logging.Formatter`` with a ``%``-style format becomes
        the pipeline's layout (formatted in Rust); any other formatter
        formats each record in Python, as with a stdlib handler."""
        super().setFormatter(fmt)
        python_side = False
        if fmt is None:
            self._pipe.set_layout(None)
        elif type(fmt) is logging.Formatter and type(fmt._style) is logging.PercentStyle:
            try:
                self._pipe.set_layout(fmt._fmt, fmt.datefmt)
            except ValueError:
                python_side = True
        else:
            python_side = True
        if python_side:
            self._pipe.set_layout("%(message)s")
        self._formats_in_python = python_side
        if self._fast:
            if python_side:
                self.__dict__.pop("handle", None)
            else:
                self.handle = self._pipe.handle  # type: ignore[method-assign]

    def _handle_filtered(self, record: logging.LogRecord) -> Any:
        return logging.Handler.handle(self, record)

    def _emit_failed(self, record: logging.LogRecord, error: BaseException) -> None:
        try:
            raise error
        except Exception:
            self.handleError(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self._formats_in_python:
                self._pipe.emit_line(record, self.format(record))
            else:
                self._pipe.emit(record)
        except Exception:
            self.handleError(record)

    def flush(self, timeout: Optional[float] = None) -> bool:  # type: ignore[override]
        return self._pipe.flush(timeout)

    def close(self) -> None:
        self._pipe.shutdown()
        _forget(self._pipe)
        super().close()

    def stats(self) -> Dict[str, int]:
        return self._pipe.stats()

    @property
    def collector_address(self) -> Optional[str]:
        return self._pipe.collector_address


def getLogger(name: Optional[str] = None) -> Logger:
    """The logbraid Logger of ``name`` (the root logger for ``None``)."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    return _logbraid.get_logger(name)


def basicConfig(
    level: Any = logging.WARNING,
    console: bool = True,
    file: Optional[str] = None,
    format: Optional[str] = None,
    datefmt: Optional[str] = None,
    max_bytes: int = 0,
    backup_count: int = 0,
    when: Optional[str] = None,
    compress: Optional[str] = None,
    json: bool = False,
    forward: Optional[str] = None,
    queue_size: Optional[int] = None,
    overflow: str = "block",
    force: bool = False,
    handle_signals: bool = True,
    flush_limit: Optional[float] = None,
    file_mode: str = "a",
    encoding: Optional[str] = "utf-8",
    sync: bool = False,
    runs: int = 0,
    token: Optional[str] = None,
    tls_ca: "Optional[Union[str, os.PathLike[str]]]" = None,
    tls_cert: "Optional[Union[str, os.PathLike[str]]]" = None,
    tls_key: "Optional[Union[str, os.PathLike[str]]]" = None,
    tls_server_name: Optional[str] = None,
    console_style: Optional[str] = None,
) -> None:
    """Configures the default pipeline and attaches a :class:`Handler` for
    it to the root logger, so ``logging.getLogger`` loggers of third-party
    code reach the same sinks. A second call does nothing unless
    ``force=True``, as with ``logging.basicConfig``.

    ``handle_signals`` (default True): SIGTERM and SIGHUP (and SIGINT, where the
    program left it at its default action) flush what was logged before
    they end the process; False leaves every signal alone. ``flush_limit``
    (seconds, default 5): how long that flush, and the one at exit, may
    take before the process ends anyway, saying on stderr that records
    were lost (a collector that stopped answering must not keep a stopped
    service alive); process-wide, the last pipeline built sets it (to 5 s
    when it gives none).

    When standard error is a terminal and ``NO_COLOR`` is unset or empty
    (or ``FORCE_COLOR`` is set), the console writes aligned columns: the time, the
    level in colour, the logger's name, the message and the caller's
    ``file:line`` at the right edge, tracebacks highlighted. Anywhere else
    (a pipe, a file, ``NO_COLOR=1``) it writes the plain layout.
    ``console_style`` chooses the terminal's look: None (default) columns
    unless ``format`` or ``json`` is given (that layout is then coloured),
    "pretty" columns even then (``format`` still applies to files and to a
    console that is no terminal), "rich" columns as Rich's ``RichHandler``
    shows records (``[12:00:01.123456] WARNING  message   file.py:12``),
    "plain" the layout in colour, never columns.

    ``file_mode``: "a" (default) appends to ``file``, "w" empties it
    first (only the process that writes it: never a child forwarding to
    it). ``encoding``: files are UTF-8; "utf-8" in any spelling is
    accepted, any other encoding raises ValueError. ``sync=True``: no
    background writer; each record is formatted and written on the thread
    that logs it, before the call returns (for scripts, debugging, and
    programs that must see a line on disk as soon as it is logged).

    Per-run files: a ``file`` whose name holds ``{prog}`` (the program's
    name), ``{start}`` (the local time at configuration,
    ``20240131_235959``) or ``{pid}`` is a new file for each run
    (``file="logs/{prog}_{start}.log"``); ``runs=N`` keeps the files of the
    last N runs, this one included, deleting older ones (0: keep all).

    ``forward="tls://host:port"`` sends everything to a collector over
    TLS: ``tls_ca`` (PEM) is who vouches for the collector's certificate,
    which must name ``host`` (or ``tls_server_name``); ``tls_cert`` and
    ``tls_key`` are this process's certificate for a collector that
    requires one. ``token`` is the collector's token (default: the
    environment variable ``LOGBRAID_TOKEN``; ``LOGBRAID_TLS_CA``,
    ``LOGBRAID_TLS_CERT``, ``LOGBRAID_TLS_KEY`` likewise). Child processes
    are given all of these in their environment, so they forward to the
    same collector the same way.

    ``forward="otlp-http://host:port"`` sends everything to an
    OpenTelemetry collector (``logbraid serve --listen otlp-http://``, or
    any other) as OTLP/HTTP logs, protobuf batches to ``/v1/logs``:
    ``flush()`` returns True once the collector has accepted (answered
    2xx to) everything logged before it; a batch is sent again after a
    connection error, 429 or 503 (with back-off) until it is. ``token``
    goes as ``Authorization: Bearer``. Plain HTTP only."""
    global _default_handler
    lvl = _level_number(level)
    with _lock:
        existing = _default_handler
    if existing is not None and not force:
        return
    if existing is not None:
        logging.getLogger().removeHandler(existing)
        if logging.lastResort is existing:
            logging.lastResort = _stdlib_last_resort
        existing.close()
    keywords = _sink_keywords(locals())
    restore = _export_for_children(lvl, forward, keywords)
    try:
        pipe = _pipeline(**keywords)
    except (TypeError, ValueError):
        # Keywords refused before the build: no thread was started.
        restore()
        raise
    _install(pipe, lvl, file=keywords["file"])
    _mirror_collector()


def is_configured() -> bool:
    """Whether this process's logging is set up: by :func:`basicConfig`,
    or, in a child of a configured process, by attaching to the parent at
    import. When it is, ``basicConfig()`` without ``force=True`` does
    nothing."""
    with _lock:
        return _default_handler is not None


# What a child needs, besides the address, to forward as this process
# does: the keyword and its variable (read by the core's client).
_FORWARD_ENV = (
    ("token", "LOGBRAID_TOKEN"),
    ("tls_ca", "LOGBRAID_TLS_CA"),
    ("tls_cert", "LOGBRAID_TLS_CERT"),
    ("tls_key", "LOGBRAID_TLS_KEY"),
    ("tls_server_name", "LOGBRAID_TLS_SERVER_NAME"),
)


def _export_for_children(lvl: int, forward: Optional[str], keywords: Dict[str, Any]) -> Any:
    """Puts in the environment what a child needs to attach to this
    process's logging: its level and, when this process forwards, where to
    and with which token and TLS files (as absolute paths: a child may
    change directory). Returns what undoes it, for a configuration that
    fails.

    Only before the first pipeline of the process starts: ``setenv`` while
    another thread reads the environment is undefined behaviour in C (the
    C library's time and name-resolution functions call ``getenv``, on the
    pipeline's threads and the program's), and Rust's lock around
    ``std::env`` does not cover ``os.environ`` writes. So the environment
    is written once, before any thread of logbraid runs, as the core does
    for ``LOGBRAID_COLLECTOR`` (exported by the build before it starts a
    thread, and mirrored into ``os.environ`` by _mirror_collector). A later
    ``basicConfig`` (``force=True``, or one after a ``logbraid.Handler``
    was made) leaves children with what the first configuration said."""
    if _threads_started:
        return lambda: None
    saved = {k: os.environ.get(k) for k in (_LEVEL_ENV, _ENV, *(v for _, v in _FORWARD_ENV))}
    os.environ[_LEVEL_ENV] = str(lvl)
    if forward is not None:
        os.environ[_ENV] = forward
        for keyword, variable in _FORWARD_ENV:
            value = keywords[keyword]
            if keyword in ("tls_ca", "tls_cert", "tls_key") and isinstance(
                value, (str, os.PathLike)
            ):
                value = os.path.abspath(os.fspath(value))
            # A value of the wrong type is refused by _pipeline, which
            # then undoes this.
            if isinstance(value, str):
                os.environ[variable] = value

    def restore() -> None:
        # Still before any thread: the pipeline was not built.
        global _threads_started
        _threads_started = False
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    return restore


def _mirror_collector() -> None:
    """Makes ``os.environ`` show the ``LOGBRAID_COLLECTOR`` the core put in
    the process's environment (before its threads started), without
    writing the environment again (``os.environ[k] = v`` calls
    ``putenv``): code that builds a child's environment from
    ``os.environ`` (``subprocess.run(env={**os.environ, ...})``) passes it
    on. ``os.environ`` is a copy made at start-up that only its own writes
    update."""
    address = _logbraid.exported_collector()
    data = getattr(os.environ, "_data", None)
    if address is None or not isinstance(data, dict):
        return
    data[os.environ.encodekey(_ENV)] = os.environ.encodevalue(address)


def _install(
    pipe: "_logbraid.Pipeline", lvl: int, last_resort: bool = False, file: Optional[str] = None
) -> None:
    """Makes `pipe` the default pipeline, at level `lvl`, with its Handler
    on the root logger, or, with `last_resort`, as ``logging.lastResort``
    (which handles a record only when no handler of the program would)."""
    global _default_handler
    root = logging.getLogger()
    if last_resort:
        handler = Handler(_pipeline_object=pipe, level=lvl)
        logging.lastResort = handler
    else:
        handler = Handler(_pipeline_object=pipe, _file=file)
        root.addHandler(handler)
    root.setLevel(lvl)
    getLogger().setLevel(lvl)
    _logbraid.set_default(pipe)
    with _lock:
        _default_handler = handler


def flush(timeout: Optional[float] = None) -> bool:
    """Waits until every record logged before the call is written (or,
    when forwarding, acknowledged). Returns False if ``timeout`` seconds
    passed first."""
    ok = True
    with _lock:
        pipes = list(_pipelines)
    for p in pipes:
        ok = p.flush(timeout) and ok
    return ok


def shutdown() -> None:
    """Flushes and stops every pipeline; run at exit and by
    ``logging.shutdown()``. Records logged later are still written."""
    with _lock:
        pipes = list(_pipelines)
    for p in pipes:
        p.shutdown()


def stats() -> Dict[str, int]:
    """Counters of the default pipeline, each an int: records ``logged``
    (accepted), ``written`` and ``dropped`` (by a lossy ``overflow``
    policy), ``bytes`` written, ``write_errors``, ``queue_high_water``,
    ``full_waits``, file ``rotations``, records a collector acknowledged
    to a forwarding pipeline (``forward_acked``) and batches it sent again
    (``forward_resent``), and the sinks' writes and syncs: how many
    (``write_count``, ``sync_count``), their total time and the longest,
    in nanoseconds (``write_ns``, ``write_ns_max``, ``sync_ns``,
    ``sync_ns_max``). Exact once ``flush()`` has returned; all 0 before
    ``basicConfig``."""
    p = _logbraid.get_default()
    if p is None:
        return _logbraid.Pipeline.empty_stats()
    return p.stats()


def _name_process() -> None:
    """Records say what ``logging`` says in ``%(processName)s``:
    ``multiprocessing``'s name for this process, else ``MainProcess``."""
    name = "MainProcess"
    mp = sys.modules.get("multiprocessing")
    if mp is not None:
        try:
            name = mp.current_process().name
        except Exception:
            pass
    _logbraid.set_process_name(str(name))


def _before_fork() -> None:
    flush()
    # Held across the fork, as logging holds its module lock: a thread in
    # the middle of changing the list must not leave it locked for ever in
    # the child.
    _lock.acquire()


def _after_fork_parent() -> None:
    _lock.release()


def _after_fork_child() -> None:
    global _lock
    # Taken by this thread for the fork; the child's only thread starts
    # with a lock of its own.
    _lock = threading.Lock()
    # A plain os.fork child is named as its parent, as in logging; a
    # multiprocessing child is renamed once multiprocessing has named it
    # (_in_multiprocessing_child).
    _name_process()
    with _lock:
        pipes = list(_pipelines)
    for p in pipes:
        p._after_fork_child()


def _finalize_in_child() -> None:
    # multiprocessing children leave through os._exit, which skips atexit:
    # its own finalizers run just before, so the last records go then.
    import multiprocessing.util as mpu

    mpu.Finalize(None, shutdown, exitpriority=100)


def _in_multiprocessing_child(_: object = None) -> None:
    # Runs in every multiprocessing child (fork, spawn, forkserver), after
    # multiprocessing has set the process's name and before its target.
    _name_process()
    _finalize_in_child()


class _AfterFork:
    pass


_after_fork_marker = _AfterFork()


def _register_multiprocessing() -> None:
    import multiprocessing.util as mpu

    mpu.register_after_fork(_after_fork_marker, _in_multiprocessing_child)


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child
)
atexit.register(shutdown)
_register_multiprocessing()
_name_process()


# What logging.lastResort was before a child made the forwarder its last
# resort; put back if the child configures logbraid itself.
_stdlib_last_resort = logging.lastResort


def _attach_to_parent() -> None:
    """In a child of a configured process (``LOGBRAID_COLLECTOR`` set by an
    ancestor): forward to it, at its level, every logbraid Logger's record
    and every ``logging`` record that no handler of the program's own
    handles.

    The forwarder is ``logging.lastResort``, not a handler on the root
    logger: a child that sets up its own handlers (the logging cookbook's
    ``QueueHandler`` recipe) gets each record once, through them, as a
    program without logbraid would; a child that sets up nothing gets
    every record forwarded."""
    if _logbraid.get_default() is not None:
        return
    try:
        lvl = int(os.environ.get(_LEVEL_ENV, str(logging.WARNING)))
    except ValueError:
        lvl = logging.WARNING
    pipe = _pipeline(forward=os.environ[_ENV], children=False)
    _install(pipe, lvl, last_resort=True)
    _finalize_in_child()


if os.environ.get(_ENV):
    _attach_to_parent()
