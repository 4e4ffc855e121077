"""logbraid.compat.logserv: logserv's README examples with the import line
changed, over TCP and a Unix socket; several client processes, each naming
its own file, format, date format and rotation; hostile file names."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

# The README's server, with `from logserv import server` changed.
INET_SERVER = """
import asyncore
from logbraid.compat.logserv import server
s = server.LogServer(("localhost", {port}))
print("ready", flush=True)
asyncore.loop(map=server.LogServer.logging_map)
"""

UNIX_SERVER = """
import asyncore, socket
from logbraid.compat.logserv import server
server.LogServer.socket_family = socket.AF_UNIX
s = server.LogServer({path!r})
print("ready", flush=True)
asyncore.loop(map=server.LogServer.logging_map)
"""

# A client as the README configures one: its RotatingFileHandler swapped
# for the forwarder, the other parameters and the formatter kept. The same
# records go, formatted by Python, to `expected`.
CLIENT = """
import logging, logging.config, sys
{imports}
wid, n, expected = sys.argv[1], int(sys.argv[2]), sys.argv[3]
LOGGING = {{
    "version": 1,
    "formatters": {{"mine": {formatter!r}}},
    "handlers": {{
        "old_rotating_file_handler_1": {{
            "class": {cls!r},
            {address}
            "formatter": "mine",
            "filename": {filename!r},
            "maxBytes": {max_bytes},
            "backupCount": {backups},
        }},
        "expected": {{"class": "logging.FileHandler", "filename": expected, "mode": "w",
                      "formatter": "mine"}},
    }},
    "root": {{"level": "DEBUG", "handlers": ["old_rotating_file_handler_1", "expected"]}},
}}
logging.config.dictConfig(LOGGING)
log = logging.getLogger("app.w" + wid)
for i in range(n):
    log.log([10, 20, 30, 40][i % 4], "worker %s record %d %s", wid, i, "-" * (i % 5))
try:
    {{}}["missing"]
except KeyError:
    log.exception("worker %s failed", wid)
"""


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def env():
    e = dict(os.environ)
    e.pop("LOGBRAID_COLLECTOR", None)
    return e


def write(path, code):
    path.write_text(textwrap.dedent(code))
    return path


def start_server(folder, code):
    """Runs the server program in `folder` until it says it is ready."""
    script = write(folder / "server_prog.py", code)
    p = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=folder,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline() == "ready\n", p.communicate(timeout=60)
    return p


def stop_server(p, sig=signal.SIGINT):
    """Ctrl-C (or `sig`), as a user stops it: the collector writes what it
    received, then the program ends. Returns its stderr."""
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    if sig == signal.SIGTERM:
        # Ended by the signal, as it would have been without a server.
        assert p.returncode == -signal.SIGTERM, err
    return err


def run_clients(folder, clients, n):
    """Starts every client at once (each a process of its own, in a folder
    of its own), waits for all."""
    procs = []
    for wid, code in enumerate(clients):
        where = folder / f"client{wid}"
        where.mkdir()
        script = write(where / "client_prog.py", code)
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), str(wid), str(n), str(where / "expected.log")],
                cwd=where,
                env=env(),
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert err == ""


def read_set(path):
    """The lines of `path` and its backups, oldest first, and how many
    backups there are."""
    backups = []
    k = 1
    while os.path.exists(f"{path}.{k}"):
        backups.append(f"{path}.{k}")
        k += 1
    text = "".join(open(p).read() for p in [*reversed(backups), path])
    return text.splitlines(), len(backups)


# Each client: its formatter, file (relative names are the server's),
# maxBytes, backupCount.
SPECS = [
    (
        {"format": "%(asctime)s %(levelname)-8s %(name)s: %(message)s",
         "datefmt": "%Y-%m-%d %H:%M:%S"},
        "logs/one.log", 3000, 50,
    ),
    (
        {"format": "{asctime}|{levelname:>8}|{name}|{message}", "datefmt": "%d.%m.%y %H:%M",
         "style": "{"},
        "two.log", 0, 0,
    ),
    (
        {"format": "[$levelname] $message", "style": "$"},
        "three.log", 1500, 2,
    ),
]  # fmt: skip
N = 300


def check_files(root, clients):
    for wid, (_, filename, max_bytes, backups) in enumerate(SPECS[: len(clients)]):
        expected = (root / f"client{wid}" / "expected.log").read_text().splitlines()
        assert len(expected) > N  # and the traceback's lines
        got, kept = read_set(root / filename)
        if max_bytes == 0:
            assert kept == 0
            assert got == expected
        elif backups >= 50:
            # Everything kept: every record once, in order, exact lines.
            assert kept >= 3
            assert got == expected
        else:
            # Only the newest `backups` kept: the tail, exactly.
            assert kept == backups
            assert len(got) < len(expected) and expected[-len(got) :] == got
        for k in range(1, kept + 1):
            assert os.path.getsize(f"{root / filename}.{k}") <= max_bytes
    # The traceback came along, after its record, as Python prints it.
    one = (root / "logs/one.log").read_text()
    assert "worker 0 failed\nTraceback (most recent call last):\n" in one
    assert one.endswith("KeyError: 'missing'\n")


def clients_for(cls, address, imports="from logbraid.compat.logserv import client"):
    return [
        CLIENT.format(
            imports=imports,
            formatter=formatter,
            cls=cls,
            address=address,
            filename=filename,
            max_bytes=max_bytes,
            backups=backups,
        )
        for formatter, filename, max_bytes, backups in SPECS
    ]


def readme_run(folder, server_code, cls, address, imports, sig=signal.SIGINT):
    """The README's server in `folder`, three clients with their own
    files, then Ctrl-C (or `sig`): the server's stderr."""
    server = start_server(folder, server_code)
    try:
        clients = clients_for(cls, address, imports)
        run_clients(folder, clients, N)
    finally:
        err = stop_server(server, sig)
    assert "0 client file requests refused" in err, err
    check_files(folder, clients)
    # Nothing named no file: the default file is empty.
    assert (folder / "logserv.log").read_text() == ""
    return err


def test_readme_inet_server_and_socket_forwarders(tmp_path):
    port = free_port()
    readme_run(
        tmp_path,
        INET_SERVER.format(port=port),
        "logbraid.compat.logserv.client.SocketForwarder",
        f'"host": "localhost", "port": {port},',
        imports="",
    )


def test_readme_unix_server_and_unix_clients_through_the_logserv_name(tmp_path):
    sock = tmp_path / "test.sock"
    # The dictConfig still says logserv.client.UnixClient.
    readme_run(
        tmp_path,
        UNIX_SERVER.format(path=str(sock)),
        "logserv.client.UnixClient",
        f'"host": {str(sock)!r},',
        imports="import logbraid.compat.logserv",
        sig=signal.SIGTERM,
    )
    assert not sock.exists()


def test_hostile_names_are_refused_counted_and_kept(tmp_path):
    """With client_files=DIR: '../x', an absolute path outside, and a link
    planted in DIR are refused; their records land in the default file."""
    root = tmp_path / "root"
    root.mkdir()
    target = tmp_path / "target.log"
    target.write_text("keep\n")
    os.symlink(target, root / "planted.log")
    port = free_port()
    server = start_server(
        tmp_path,
        f"""
        import socket
        from logbraid.compat.logserv import server
        s = server.LogServer(("127.0.0.1", {port}), client_files="root")
        print("ready", flush=True)
        server.loop()
        """,
    )
    names = ["../x.log", str(tmp_path / "outside.log"), "planted.log", "fine.log"]
    try:
        clients = [
            CLIENT.format(
                imports="",
                formatter={"format": "%(message)s"},
                cls="logbraid.compat.logserv.client.SocketForwarder",
                address=f'"host": "127.0.0.1", "port": {port},',
                filename=name,
                max_bytes=0,
                backups=0,
            )
            for name in names
        ]
        run_clients(tmp_path, clients, 20)
    finally:
        err = stop_server(server)
    # 20 records and one with a traceback from each refused client.
    assert "63 client file requests refused" in err, err
    default = (tmp_path / "logserv.log").read_text()
    for wid in range(3):
        assert default.count(f"worker {wid} record") == 20
        assert f"worker {wid} record 19" in default
    assert "worker 3" not in default
    fine = (root / "fine.log").read_text().splitlines()
    assert fine == (tmp_path / "client3" / "expected.log").read_text().splitlines()
    assert target.read_text() == "keep\n"
    assert not (tmp_path / "x.log").exists()
    assert not (tmp_path / "outside.log").exists()


def test_serve_forever_shutdown_and_port_zero_in_process(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import logging
    import threading

    from logbraid.compat.logserv import client, server

    s = server.LogServer(("127.0.0.1", 0))
    host, port = s.server_address
    assert host == "127.0.0.1" and port > 0
    waited = threading.Thread(target=s.serve_forever)
    waited.start()
    looped = threading.Thread(target=server.loop)
    looped.start()
    h = client.SocketForwarder("127.0.0.1", port, "direct.log", maxBytes=0)
    h.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    log = logging.getLogger("direct")
    log.propagate = False
    log.addHandler(h)
    for i in range(5):
        log.warning("n=%d", i)
    h.close()
    assert s.shutdown() == 0
    waited.join(60)
    looped.join(60)
    assert not waited.is_alive() and not looped.is_alive()
    assert s.shutdown() is None
    assert (tmp_path / "direct.log").read_text() == "".join(
        f"WARNING:direct:n={i}\n" for i in range(5)
    )


def test_a_killed_server_leaves_no_collector_behind(tmp_path):
    """SIGKILL gives the program no chance to stop its collector: the
    collector sees its stdin close, writes what it received and exits."""
    port = free_port()
    server = start_server(tmp_path, INET_SERVER.format(port=port))
    clients = clients_for(
        "logbraid.compat.logserv.client.SocketForwarder",
        f'"host": "localhost", "port": {port},',
        imports="",
    )
    run_clients(tmp_path, clients[1:2], 50)
    server.kill()
    server.communicate(timeout=60)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("localhost", port), timeout=1).close()
        except OSError:
            break
        assert time.monotonic() < deadline, "the collector still listens"
        time.sleep(0.05)
    expected = (tmp_path / "client0" / "expected.log").read_text()
    while (tmp_path / "two.log").read_text() != expected:
        assert time.monotonic() < deadline, "the collector did not write everything"
        time.sleep(0.05)
    # Gone, not only closed: its checkpoint lock is free for a new one.
    while True:
        s = subprocess.run(
            [sys.executable, "-c", "import fcntl,sys; f=open(sys.argv[1],'a');"
             "fcntl.flock(f, fcntl.LOCK_EX|fcntl.LOCK_NB)", str(tmp_path / ".logserv.log.state.lock")],
            capture_output=True,
        )
        if s.returncode == 0:
            break
        assert time.monotonic() < deadline, s.stderr
        time.sleep(0.05)
