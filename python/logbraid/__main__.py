"""``python -m logbraid serve [FLAGS]``: the collector, with exactly the
flags of the ``logbraid serve`` command (``python -m logbraid serve
--help`` lists them)."""

import sys

from . import _logbraid

USAGE = """usage: python -m logbraid serve [FLAGS]

  serve   collect records from other processes and hosts into one rotated
          file (native protocol, Python SocketHandler/DatagramHandler,
          syslog); `python -m logbraid serve --help` lists the flags
"""


def main(argv: "list[str] | None" = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    if args[0] != "serve":
        sys.stderr.write(f"logbraid: unknown command {args[0]!r}\n\n{USAGE}")
        return 2
    try:
        code = _logbraid.serve(args[1:])
    except KeyboardInterrupt:
        # SIGINT stopped the collector cleanly; Python saw it too.
        code = 0
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
