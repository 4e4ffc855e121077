"""The console on a real terminal: a pseudo-terminal of the test's own as
the program's standard error, so the program decides colour and width as
it would in a window. Off a terminal (a pipe, NO_COLOR) the plain layout."""

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import textwrap
import time
import tty

ESC = re.compile(rb"\x1b\[[0-9;]*m")


def _environment(env):
    environment = dict(os.environ)
    for name in ("LOGBRAID_COLLECTOR", "LOGBRAID_PYTHON_LEVEL", "NO_COLOR", "FORCE_COLOR", "COLUMNS"):
        environment.pop(name, None)
    environment.update(env or {})
    return environment


def run_on_terminal(folder, code, columns=100, env=None, deadline=120.0):
    """Runs `code` with its standard error on a pseudo-terminal `columns`
    wide (raw, so the bytes arrive as written) and returns them."""
    script = folder / "prog.py"
    script.write_text(textwrap.dedent(code))
    main, side = os.openpty()
    tty.setraw(side)
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=folder,
        env=_environment(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=side,
    )
    os.close(side)
    got = bytearray()
    end = time.monotonic() + deadline
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([main], [], [], end - time.monotonic())
            if not ready:
                break
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: every writer of the terminal has gone
                break
            if not chunk:
                break
            got += chunk
    finally:
        os.close(main)
    assert proc.wait(timeout=max(end - time.monotonic(), 1)) == 0, bytes(got)
    return bytes(got)


def run_piped(folder, code, env=None):
    script = folder / "prog.py"
    script.write_text(textwrap.dedent(code))
    p = subprocess.run(
        [sys.executable, str(script)],
        cwd=folder,
        env=_environment(env),
        capture_output=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    return p.stderr


PROGRAM = """\
import logging, logbraid
logbraid.basicConfig(level="DEBUG")
log = logging.getLogger("app.db")
log.warning("disk %d%% full", 91)
log.info("two\\nlines")
try:
    {}["k"]
except KeyError:
    log.exception("lookup failed")
"""

TIME = rb"\x1b\[2m\d\d:\d\d:\d\d\.\d{3}\x1b\[0m "


def width(line):
    return len(ESC.sub(b"", line).decode())


def test_a_terminal_gets_aligned_columns(tmp_path):
    out = run_on_terminal(tmp_path, PROGRAM, columns=100)
    lines = out.split(b"\n")
    assert lines[-1] == b"", out
    indent = b" " * (12 + 1 + 8 + 1 + len("app.db") + 1)
    assert re.fullmatch(
        TIME + rb"\x1b\[33mWARNING\x1b\[0m  \x1b\[2mapp.db\x1b\[0m disk 91% full +"
        rb"\x1b\[2mprog.py:4\x1b\[0m",
        lines[0],
    ), out
    # The caller's file:line ends at the terminal's right edge.
    assert width(lines[0]) == 100, lines[0]
    assert re.fullmatch(
        TIME + rb"\x1b\[32mINFO\x1b\[0m     \x1b\[2mapp.db\x1b\[0m two +\x1b\[2mprog.py:5\x1b\[0m",
        lines[1],
    ), out
    assert width(lines[1]) == 100
    assert lines[2] == indent + b"lines"
    assert re.fullmatch(
        TIME + rb"\x1b\[31mERROR\x1b\[0m    \x1b\[2mapp.db\x1b\[0m lookup failed +"
        rb"\x1b\[2mprog.py:9\x1b\[0m",
        lines[3],
    ), out
    assert lines[4] == indent + b"\x1b[1mTraceback (most recent call last):\x1b[0m"
    frame = (
        indent
        + b'  File "\x1b[35m'
        + str(tmp_path / "prog.py").encode()
        + b'\x1b[0m", line \x1b[36m7\x1b[0m, in \x1b[32m<module>\x1b[0m'
    )
    assert lines[5] == frame, out
    assert lines[6] == indent + b'    {}["k"]'
    assert lines[-2] == indent + b"\x1b[1;31mKeyError: 'k'\x1b[0m", out


def plain(out):
    """The plain layout's lines with their timestamps and pid made alike."""
    return re.sub(rb"^\S+Z (\S+ +)\[\d+/", rb"<ts> \1[<pid>/", out, flags=re.M)


def test_no_color_and_pipes_get_the_plain_layout(tmp_path):
    piped = run_piped(tmp_path, PROGRAM)
    assert b"\x1b" not in piped
    assert re.match(
        rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z WARN  \[\d+/MainThread\] app.db: disk 91% full\n",
        piped,
    ), piped
    on_terminal = run_on_terminal(tmp_path, PROGRAM, env={"NO_COLOR": "1"})
    assert plain(on_terminal) == plain(piped)
    # An empty NO_COLOR is no request: columns.
    assert b"\x1b[33mWARNING" in run_on_terminal(tmp_path, PROGRAM, env={"NO_COLOR": ""})


def test_force_color_colours_a_pipe_to_columns_wide(tmp_path):
    out = run_piped(tmp_path, PROGRAM, env={"FORCE_COLOR": "1", "COLUMNS": "90"})
    first = out.split(b"\n")[0]
    assert re.fullmatch(TIME + rb"\x1b\[33mWARNING\x1b\[0m .*\x1b\[2mprog.py:4\x1b\[0m", first)
    assert width(first) == 90
    # Without COLUMNS, the file:line follows the message.
    out = run_piped(tmp_path, PROGRAM, env={"FORCE_COLOR": "1"})
    assert out.split(b"\n")[0].endswith(b"disk 91% full  \x1b[2mprog.py:4\x1b[0m")


def test_styles_and_a_format_on_a_terminal(tmp_path):
    formatted = """\
    import logging, logbraid
    logbraid.basicConfig(format="%(levelname)s:%(name)s:%(message)s"{style})
    logging.getLogger("app").warning("w")
    """
    # A format of one's own is kept, its level coloured.
    out = run_on_terminal(tmp_path, formatted.format(style=""))
    assert out == b"\x1b[33mWARNING\x1b[0m:app:w\n"
    out = run_on_terminal(tmp_path, formatted.format(style=", console_style='pretty'"), columns=60)
    assert re.fullmatch(
        TIME + rb"\x1b\[33mWARNING\x1b\[0m  \x1b\[2mapp\x1b\[0m w +\x1b\[2mprog.py:3\x1b\[0m\n", out
    ), out
    assert width(out[:-1]) == 60
    out = run_on_terminal(
        tmp_path,
        """\
        import logging, logbraid
        logbraid.basicConfig(console_style="plain")
        logging.getLogger("app").warning("w")
        """,
    )
    assert re.fullmatch(
        rb"\x1b\[2m\S+Z\x1b\[0m \x1b\[33mWARN\x1b\[0m  \[\d+/MainThread\] app: w\n", out
    ), out
    # setFormatter on the handler: that format, on a terminal too.
    out = run_on_terminal(
        tmp_path,
        """\
        import logging, logbraid
        logbraid.basicConfig()
        logging.getLogger().handlers[0].setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logging.getLogger("app").error("e")
        """,
    )
    assert out == b"\x1b[31mERROR\x1b[0m e\n"


def test_an_unknown_style_is_refused(tmp_path):
    out = run_piped(
        tmp_path,
        """\
        import logbraid
        try:
            logbraid.basicConfig(console_style="fancy")
        except ValueError as e:
            print(e, file=__import__("sys").stderr)
        """,
    )
    assert out == b"console_style: \"fancy\" is not one of: pretty, rich, plain\n"


LOGGING_MP = """\
from logbraid.compat import logging_mp
logging_mp.basicConfig(level=logging_mp.INFO)
log = logging_mp.getLogger(__name__)
log.warning("careful")
log.info("done")
"""


def test_logging_mp_looks_like_its_rich_console(tmp_path):
    out = run_on_terminal(tmp_path, LOGGING_MP, columns=80)
    first, second, end = out.split(b"\n")
    assert end == b""
    rich_time = rb"\x1b\[2;36m\[\d\d:\d\d:\d\d\.\d{6}\]\x1b\[0m "
    assert re.fullmatch(
        rich_time + rb"\x1b\[31mWARNING\x1b\[0m  careful +\x1b\[2mprog.py:4\x1b\[0m", first
    ), out
    # The second line's time is blank when it repeats the first's.
    assert re.fullmatch(
        rb"(" + rich_time + rb"| {18})\x1b\[34mINFO\x1b\[0m     done +\x1b\[2mprog.py:5\x1b\[0m",
        second,
    ), out
    assert width(first) == width(second) == 80
    # Piped: logging_mp's file format, as before.
    piped = run_piped(tmp_path, LOGGING_MP)
    assert re.fullmatch(
        rb"\d\d:\d\d:\d\d\.\d{3} WARNING  \[prog.py:4\] MainProcess-MainThread: careful\n"
        rb"\d\d:\d\d:\d\d\.\d{3} INFO     \[prog.py:5\] MainProcess-MainThread: done\n",
        piped,
    ), piped
