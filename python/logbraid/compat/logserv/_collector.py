"""``python -m logbraid.compat.logserv._collector FLAGS``: ``logbraid
serve FLAGS`` for a :class:`~logbraid.compat.logserv.server.LogServer`,
which holds this process's stdin: when it closes (the server's process
ended, however it ended), the collector stops as after SIGTERM, writing
everything it received. So no collector outlives the program that
started it."""

import os
import signal
import sys
import threading

from logbraid import _logbraid


def _stop_when_stdin_closes() -> None:
    while os.read(0, 4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> int:
    threading.Thread(target=_stop_when_stdin_closes, daemon=True).start()
    try:
        return _logbraid.serve(sys.argv[1:])
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
