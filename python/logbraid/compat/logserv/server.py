"""The server side of logserv: ``LogServer(address)`` starts a logbraid
collector (``logbraid serve`` in a process of its own, run by this
package's extension: no Rust toolchain needed) listening for
``SocketForwarder`` clients on ``(host, port)`` (``python-tcp://``), or for
``UnixClient`` clients on a socket path once
``LogServer.socket_family = socket.AF_UNIX`` (``python-unix:``). Each
record goes to the file its client names, rotated and formatted as the
client's handler says, one writer per file.

Waiting: ``asyncore.loop(map=LogServer.logging_map)`` (Python 3.11 and
earlier), :func:`loop` (any version) or ``serve_forever()`` return once
every server is shut down (``shutdown()``, or its collector stopped).

Where client files may go: by default anywhere the server's user may
write, as with logserv, relative names from the server's working
directory; ``LogServer(address, client_files=DIR)`` confines them to DIR.
Either way a name with a ``..`` component, a control character, or a
symbolic link on the way is refused, and its records go to
``default_file`` (``logserv.log`` in the working directory), where records
that name no file go too.
"""

import atexit
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from typing import Any, Dict, List, Optional, Union

__all__ = ["LogServer", "loop"]

#: Servers running, for SIGTERM.
_running: "weakref.WeakSet[LogServer]" = weakref.WeakSet()


def _on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM of a program that left it alone: every server's collector
    writes what it received, then the signal does what it did before (ends
    the program, with the status a SIGTERM gives)."""
    for server in list(_running):
        server.shutdown()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _handle_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


class _Waker:
    """The entry a :class:`LogServer` keeps in ``LogServer.logging_map``:
    what ``asyncore.loop`` needs of a dispatcher, on the read end of a
    pipe the server writes to when it stops. The loop leaves once it
    has removed every server's entry."""

    accepting = False
    connected = False

    def __init__(self, server: "LogServer", map: Dict[int, Any]) -> None:
        self.server = server
        self.map = map
        self.read_fd, self.write_fd = os.pipe()
        self.closed = False
        # Held while the descriptors are written or closed: a closed
        # descriptor's number may already name another file.
        self.lock = threading.Lock()
        map[self.read_fd] = self

    def fileno(self) -> int:
        return self.read_fd

    def wake(self) -> None:
        with self.lock:
            if not self.closed:
                try:
                    os.write(self.write_fd, b"x")
                except OSError:
                    pass

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def handle_read_event(self) -> None:
        try:
            os.read(self.read_fd, 512)
        except OSError:
            pass
        if self.server.stopped:
            self.close()

    def handle_write_event(self) -> None:
        pass

    def handle_expt_event(self) -> None:
        pass

    def handle_error(self) -> None:
        self.close()

    def handle_close(self) -> None:
        self.close()

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if self.map.get(self.read_fd) is self:
                del self.map[self.read_fd]
            os.close(self.read_fd)
            os.close(self.write_fd)


class LogServer:
    """A log server at ``address``: ``(host, port)`` by default, a socket
    path when ``LogServer.socket_family`` is ``socket.AF_UNIX``. It serves
    as soon as it is made (the collector is listening when ``__init__``
    returns; port 0 picks a free port, ``server_address`` says which).

    Keywords beyond logserv's: ``client_files`` (confine client files to
    this directory), ``default_file`` (where records without a usable file
    request go), ``timeout`` (seconds to wait for the collector to
    listen).
    """

    socket_family: int = socket.AF_INET
    #: The servers' entries, for ``asyncore.loop(map=LogServer.logging_map)``.
    logging_map: Dict[int, Any] = {}

    def __init__(
        self,
        address: Any,
        *,
        client_files: "Optional[Union[str, os.PathLike[str]]]" = None,
        default_file: "Union[str, os.PathLike[str]]" = "logserv.log",
        timeout: float = 60,
    ) -> None:
        self.family = type(self).socket_family
        cwd = os.getcwd()
        if self.family == socket.AF_UNIX:
            path = os.fspath(address)
            listen = "python-unix:" + os.path.abspath(path)
        else:
            host, port = address[0], address[1]
            # "" is every interface, as for socket.bind.
            host = host or ("::" if self.family == socket.AF_INET6 else "0.0.0.0")
            shown = f"[{host}]" if ":" in host else host
            listen = f"python-tcp://{shown}:{int(port)}"
        if client_files is None:
            root, base = "/", cwd
            caps = ["--client-files-max-bytes", "0", "--client-files-max-backups", "100000"]
        else:
            root = os.path.abspath(os.fspath(client_files))
            inside = os.path.commonpath([root, cwd]) == root
            base = cwd if inside else root
            caps = []
        self.args: List[str] = [
            "--listen", listen,
            "--file", os.path.abspath(os.fspath(default_file)),
            "--client-files", root,
            "--client-files-base", base,
            *caps,
        ]  # fmt: skip
        self.stopped = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        env = dict(os.environ)
        env.pop("LOGBRAID_COLLECTOR", None)
        # The collector imports this very package, wherever it was found.
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
        self._process: Optional[subprocess.Popen] = subprocess.Popen(
            [sys.executable, "-m", "logbraid.compat.logserv._collector", *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        shown_url = self._wait_listening(timeout)
        if self.family == socket.AF_UNIX:
            self.server_address: Any = address
        else:
            port = int(shown_url.rsplit(":", 1)[1])
            self.server_address = (address[0], port)
        self.url = shown_url
        self._waker = _Waker(self, type(self).logging_map)
        threading.Thread(target=self._watch, name="logserv-collector", daemon=True).start()
        atexit.register(self.shutdown)
        _running.add(self)
        _handle_sigterm()

    def _wait_listening(self, timeout: float) -> str:
        p = self._process
        assert p is not None and p.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready = select.select([p.stdout], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                self._kill()
                raise OSError(f"the log collector did not start listening within {timeout} s")
            chunk = os.read(p.stdout.fileno(), 1)
            if not chunk:
                code = p.wait()
                self._process = None
                raise OSError(f"the log collector exited with status {code} (its error is above)")
            line += chunk
        text = line.decode().strip()
        if not text.startswith("listening on "):
            self._kill()
            raise OSError(f"unexpected output of the log collector: {text!r}")
        return text[len("listening on ") :]

    def _kill(self) -> None:
        p, self._process = self._process, None
        if p is not None:
            p.kill()
            p.wait()

    def _watch(self) -> None:
        p = self._process
        if p is not None:
            p.wait()
        self._finished()

    def _finished(self) -> None:
        self.stopped = True
        self._done.set()
        self._waker.wake()

    def serve_forever(self, poll_interval: Optional[float] = None) -> None:
        """Returns once the server is shut down."""
        self._done.wait()

    def shutdown(self, timeout: Optional[float] = None) -> Optional[int]:
        """Stops the collector: it stops accepting, writes everything it
        received and exits; then every wait on this server returns. Returns
        the collector's exit status (None when it was stopped already)."""
        with self._lock:
            p, self._process = self._process, None
        if p is None:
            self._finished()
            return None
        try:
            p.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        code = p.wait(timeout)
        for f in (p.stdin, p.stdout):
            if f is not None:
                f.close()
        self._finished()
        atexit.unregister(self.shutdown)
        _running.discard(self)
        return code

    close = shutdown

    def __enter__(self) -> "LogServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()


def loop(timeout: float = 30.0, map: Optional[Dict[int, Any]] = None) -> None:
    """``asyncore.loop(map=LogServer.logging_map)`` without asyncore (gone
    in Python 3.12): returns once every server is shut down."""
    entries = LogServer.logging_map if map is None else map
    while entries:
        ready = select.select(list(entries), [], [], timeout)[0]
        for fd in ready:
            entry = entries.get(fd)
            if entry is not None:
                entry.handle_read_event()
