"""The client side of logserv: ``RotatingFileHandler`` replacements that
send each record to a :class:`~logbraid.compat.logserv.server.LogServer`
(or any ``logbraid serve --client-files DIR``), which writes it to the file
the handler names.

They are stock ``logging.handlers.SocketHandler``\\ s: the wire is the
stock length-prefixed pickle of ``record.__dict__``, with the handler's
file request added to the dict (``logbraid_file``, ``logbraid_max_bytes``,
``logbraid_backup_count``, and the formatter's ``logbraid_fmt``,
``logbraid_datefmt``, ``logbraid_style``: PROTOCOL.md, appendix A).
The record itself is not changed, so other handlers see it as it was.
"""

import logging
import logging.handlers
import os
import pickle
import struct
from typing import Any, Dict, Optional

__all__ = ["SocketForwarder", "UnixClient"]

_STYLES = {
    logging.PercentStyle: "%",
    logging.StrFormatStyle: "{",
    logging.StringTemplateStyle: "$",
}


class SocketForwarder(logging.handlers.SocketHandler):
    """Sends records over TCP to the log server at ``host``:``port``,
    which writes them to ``filename`` rotated at ``maxBytes`` with
    ``backupCount`` backups, as the ``RotatingFileHandler`` this replaces
    would have. A relative ``filename`` is relative to the server's working
    directory. The handler's formatter (a plain ``logging.Formatter``:
    its ``fmt``, ``datefmt`` and ``style``) is applied by the server;
    ``mode`` and ``encoding`` are kept for the signature (the server
    appends, in UTF-8) and ``delay`` is what it always does: nothing is
    opened before the first record.
    """

    def __init__(
        self,
        host: Any,
        port: Optional[int],
        filename: "str | os.PathLike[str]",
        mode: str = "a",
        maxBytes: int = 0,
        backupCount: int = 0,
        encoding: Optional[str] = None,
        delay: bool = False,
    ) -> None:
        super().__init__(host, port)
        self.baseFilename = os.fspath(filename)
        self.mode = mode
        self.maxBytes = maxBytes
        self.backupCount = backupCount
        self.encoding = encoding
        self.delay = delay

    def request(self) -> Dict[str, Any]:
        """The keys this handler adds to each record it sends."""
        f = self.formatter
        fmt = datefmt = None
        style = "%"
        if f is not None:
            fmt = f._fmt
            datefmt = f.datefmt
            style = _STYLES.get(type(f._style), "%")
        return {
            "logbraid_file": self.baseFilename,
            "logbraid_max_bytes": int(self.maxBytes),
            "logbraid_backup_count": int(self.backupCount),
            "logbraid_fmt": fmt,
            "logbraid_datefmt": datefmt,
            "logbraid_style": style,
            "logbraid_mode": self.mode,
            "logbraid_encoding": self.encoding,
        }

    def makePickle(self, record: logging.LogRecord) -> bytes:
        """``SocketHandler.makePickle``, with the file request in the
        pickled dict."""
        if record.exc_info:
            # Puts the traceback into record.exc_text, as the stock
            # handler does.
            self.format(record)
        d = dict(record.__dict__)
        d["msg"] = record.getMessage()
        d["args"] = None
        d["exc_info"] = None
        d.pop("message", None)
        d.update(self.request())
        s = pickle.dumps(d, 1)
        return struct.pack(">L", len(s)) + s


class UnixClient(SocketForwarder):
    """:class:`SocketForwarder` over the Unix socket at ``host`` (a path,
    relative to the client's working directory), for a server with
    ``LogServer.socket_family = socket.AF_UNIX``."""

    def __init__(
        self,
        host: "str | os.PathLike[str]",
        filename: "str | os.PathLike[str]",
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """``UnixClient(host, filename, mode='a', maxBytes=0, backupCount=0,
        encoding=None, delay=False)``: the arguments of
        :class:`SocketForwarder` after ``port``."""
        super().__init__(os.fspath(host), None, filename, *args, **kwargs)
