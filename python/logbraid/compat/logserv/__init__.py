"""logserv on logbraid: ``from logbraid.compat.logserv import server``
(or ``client``) where a program said ``from logserv import server``.

- :mod:`.server`: ``LogServer(address)`` runs a logbraid collector
  (``python-tcp://`` or, with ``LogServer.socket_family = socket.AF_UNIX``,
  ``python-unix:``) that writes each client's records to the file the client
  names, rotated and formatted as the client's handler says;
  ``asyncore.loop(map=server.LogServer.logging_map)``, ``server.loop()`` or
  ``serve_forever()`` wait until ``shutdown()``.
- :mod:`.client`: ``SocketForwarder(host, port, filename, ...)`` and
  ``UnixClient(path, filename, ...)``, the ``RotatingFileHandler``
  replacements, for ``dictConfig`` as before.

While no module named ``logserv`` is installed, importing this package
also makes ``logserv``, ``logserv.client`` and ``logserv.server`` name it,
so a ``dictConfig`` that still says ``"class": "logserv.client.UnixClient"``
works unchanged. docs/MIGRATING.md says what behaves differently.
"""

import importlib.util
import sys

from . import client, server

__all__ = ["client", "server"]


def _alias() -> None:
    if "logserv" in sys.modules:
        return
    try:
        installed = importlib.util.find_spec("logserv") is not None
    except (ImportError, ValueError):
        installed = True
    if installed:
        return
    sys.modules["logserv"] = sys.modules[__name__]
    sys.modules["logserv.client"] = client
    sys.modules["logserv.server"] = server


_alias()
