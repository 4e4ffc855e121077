"""A stock logging.handlers.SocketHandler whose records carry extras of
many classes, sent to the real `logbraid serve` ($LOGBRAID_BIN): every
record is written, each such field as Python's str() of the value."""

import datetime as dt
import decimal
import json
import logging
import logging.handlers
import os
import pathlib
import re
import signal
import subprocess
import uuid

import pytest


class Custom:
    def __init__(self):
        self.a = 1


def extras():
    tz = dt.timezone(dt.timedelta(hours=1))
    return [
        dt.datetime(2026, 12, 6, 7, 0, 0, 123456, tzinfo=tz),
        dt.date(2026, 12, 6),
        dt.time(7, 30, 1),
        dt.timedelta(days=2, seconds=5),
        decimal.Decimal("1.50"),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        b"ab\x00",
        bytearray(b"xy"),
        {1, 2},
        frozenset({1}),
        (1, "a"),
        pathlib.Path("/tmp/x"),
        Custom(),
    ]


def test_socket_handler_records_with_extras_of_any_class_are_all_written(tmp_path):
    binary = os.environ.get("LOGBRAID_BIN")
    if not binary:
        pytest.skip("LOGBRAID_BIN (the logbraid binary) not given")
    out = tmp_path / "out.jsonl"
    serve = subprocess.Popen(
        [binary, "serve", "--listen", "python-tcp://127.0.0.1:0", "--file", str(out),
         "--format", "json"],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = serve.stdout.readline()
        m = re.fullmatch(r"listening on python-tcp://127\.0\.0\.1:(\d+)\n", line)
        assert m, line + serve.stderr.read()
        handler = logging.handlers.SocketHandler("127.0.0.1", int(m.group(1)))
        log = logging.getLogger("extras.e2e")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        values = extras()
        expected = []
        for i in range(400):
            if i % 2:
                v = values[i // 2 % len(values)]
                log.info("with %d", i, extra={"value": v, "i": i})
                expected.append(("with %d" % i, re.sub(r" at 0x[0-9a-f]+", "", str(v))))
            else:
                log.info("plain %d", i, extra={"i": i})
                expected.append(("plain %d" % i, None))
        log.removeHandler(handler)
        handler.close()
    finally:
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 400, err
    for i, (r, (msg, shown)) in enumerate(zip(records, expected)):
        assert r["msg"] == msg
        assert r["fields"]["i"] == i
        assert r["fields"].get("value") == shown
    shown = {r["fields"]["value"] for r in records if "value" in r["fields"]}
    assert f"<{__name__}.Custom object>" in shown
    assert "2026-12-06 07:00:00.123456+01:00" in shown
