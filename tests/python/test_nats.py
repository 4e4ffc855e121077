"""Python clients through NATS JetStream: 4 programs forwarding to 2
`logbraid serve --publish` collectors, a 3-node JetStream cluster on
loopback started here, one `logbraid write`; a NATS server, a collector and
the writer killed with SIGKILL while the clients send (the collector and the
writer started again). Every flush returns True and the writer's file holds
each record once, in order per client.

Needs nats-server (or $NATS_SERVER) and $LOGBRAID_BIN; skipped without."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import check_streams

NATS = os.environ.get("NATS_SERVER", "nats-server")
BIN = os.environ.get("LOGBRAID_BIN")

pytestmark = pytest.mark.skipif(
    not BIN or not shutil.which(NATS), reason="needs nats-server and LOGBRAID_BIN"
)

CLIENT = """
import sys, logbraid
url, name, chunks, per_chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
logbraid.basicConfig(level="INFO", console=False, forward=url)
log = logbraid.getLogger("t")
n = 0
for c in range(chunks):
    sys.stdin.readline()
    for _ in range(per_chunk):
        log.info("%s %d", name, n)
        n += 1
    print("flushed", logbraid.flush(), flush=True)
logbraid.shutdown()
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_line(proc):
    line = proc.stdout.readline()
    assert line, "the process said nothing"
    return line.strip()


def start(tmp_path, *args):
    err = open(tmp_path / f"{args[0]}-{time.monotonic_ns()}.err", "w")
    p = subprocess.Popen(
        [BIN, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=err, text=True
    )
    return p, first_line(p)


def killed(p):
    p.send_signal(signal.SIGKILL)
    assert p.wait() == -signal.SIGKILL


def test_python_clients_lose_and_repeat_nothing_through_jetstream(tmp_path):
    client_ports = [free_port() for _ in range(3)]
    route_ports = [free_port() for _ in range(3)]
    routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in route_ports)
    nodes = []
    try:
        for i in range(3):
            d = tmp_path / f"nats{i}"
            d.mkdir()
            (d / "server.conf").write_text(
                f"server_name: n{i}\nlisten: 127.0.0.1:{client_ports[i]}\n"
                f'jetstream {{ store_dir: "{d / "js"}" }}\n'
                f"cluster {{ name: py, listen: 127.0.0.1:{route_ports[i]}, routes: [{routes}] }}\n"
            )
            nodes.append(
                subprocess.Popen(
                    [NATS, "-c", str(d / "server.conf")],
                    stdout=subprocess.DEVNULL,
                    stderr=open(d / "server.err", "w"),
                )
            )
        servers = ",".join(f"nats://127.0.0.1:{p}" for p in client_ports)
        serve = ["serve", "--publish", servers, "--listen"]
        collectors, urls = [], []
        for _ in range(2):
            p, line = start(tmp_path, *serve, "tcp://127.0.0.1:0")
            assert line.startswith("listening on "), line
            collectors.append(p)
            urls.append(line.removeprefix("listening on "))
        log = tmp_path / "out" / "app.log"
        log.parent.mkdir()
        write = ["write", "--from", servers, "--file", str(log), "--format", "%(message)s"]
        writer, line = start(tmp_path, *write)
        assert line == "consuming LOGS as logbraid-writer"

        (tmp_path / "client.py").write_text(CLIENT)
        chunks, per_chunk = 4, 5000
        clients = [
            subprocess.Popen(
                [sys.executable, "client.py", urls[i % 2], f"w{i}", str(chunks), str(per_chunk)],
                cwd=tmp_path,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for i in range(4)
        ]
        for chunk in range(chunks):
            for c in clients:
                c.stdin.write("go\n")
                c.stdin.flush()
            # Each fault while the chunk is being sent.
            if chunk == 1:
                killed(nodes[0])
            elif chunk == 2:
                killed(collectors[0])
                collectors[0], line = start(tmp_path, *serve, urls[0])
                assert line == f"listening on {urls[0]}"
            elif chunk == 3:
                killed(writer)
                writer, _ = start(tmp_path, *write)
            for c in clients:
                assert first_line(c) == "flushed True"
        for c in clients:
            c.stdin.close()
            assert c.wait(timeout=60) == 0
        total = 4 * chunks * per_chunk
        deadline = time.monotonic() + 120
        while True:
            lines = log.read_text().splitlines() if log.exists() else []
            if len(lines) >= total or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        writer.send_signal(signal.SIGTERM)
        assert writer.wait(timeout=60) == 0
        check_streams(log.read_text().splitlines(), 4, chunks * per_chunk)
        for p in collectors:
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=60) == 0
    finally:
        for p in nodes + locals().get("collectors", []) + [locals().get("writer")]:
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
