"""OpenTelemetry logs with the standalone collector: logbraid's own
OTLP/HTTP exporter (``forward="otlp-http://..."``) and the OpenTelemetry
SDK's exporter, both into ``logbraid serve --listen otlp-http://``; the
collector's file is read back as soon as ``flush`` says True."""

import json
import os
import signal
import subprocess

import pytest


@pytest.fixture
def collector(tmp_path):
    binary = os.environ.get("LOGBRAID_BIN")
    if not binary:
        pytest.skip("LOGBRAID_BIN (the logbraid binary) not given")
    started = []

    def start(*args):
        serve = subprocess.Popen(
            [binary, "serve", "--listen", "otlp-http://127.0.0.1:0", *args],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        started.append(serve)
        line = serve.stdout.readline()
        assert line.startswith("listening on otlp-http://"), line
        return line.split()[-1]

    yield start
    for serve in started:
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=30)
        assert serve.returncode == 0, err
        assert ", 0 inputs rejected" in err, err


def test_forward_to_an_otlp_http_listener_exact_lines(run, tmp_path, collector):
    url = collector("--file", "all.log", "--format", "%(levelname)s|%(name)s|%(message)s|%(user)s")
    run(f"""
        import logging, logbraid
        logbraid.basicConfig(level="DEBUG", forward="{url}", console=False)
        log = logging.getLogger("shop.cart")
        log.debug("d %d", 1, extra={{"user": "ada"}})
        log.info("i", extra={{"user": "bob"}})
        log.warning("w\\nsecond", extra={{"user": "cy"}})
        log.error("e", extra={{"user": "dee"}})
        log.critical("c", extra={{"user": "eve"}})
        assert logbraid.flush(30)
        print(open("all.log").read(), end="")
    """)
    assert (tmp_path / "all.log").read_text().splitlines() == [
        "DEBUG|shop.cart|d 1|ada",
        "INFO|shop.cart|i|bob",
        "WARNING|shop.cart|w",
        "second|cy",
        "ERROR|shop.cart|e|dee",
        "CRITICAL|shop.cart|c|eve",
    ]


def test_the_sdk_http_exporter_every_record_once(run, tmp_path, collector):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    url = collector("--file", "all.jsonl", "--format", "json")
    endpoint = url.replace("otlp-http://", "http://") + "/v1/logs"
    n = 500
    run(f"""
        import logging
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        provider = LoggerProvider(resource=Resource.create({{"service.name": "payments"}}))
        provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint="{endpoint}")))
        log = logging.getLogger("payments.api")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        log.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
        for i in range({n}):
            (log.info if i % 2 else log.error)("payment %d", i, extra={{"i": i}})
        assert provider.force_flush(30000)
        provider.shutdown()
    """)
    records = [json.loads(l) for l in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert len(records) == n
    assert sorted(r["fields"]["i"] for r in records) == list(range(n))
    for r in records:
        i = r["fields"]["i"]
        assert r["msg"] == f"payment {i}"
        assert r["level"] == ("INFO" if i % 2 else "ERROR")
        assert r["process"] == "payments"
        assert r["fields"]["service.name"] == "payments"
        assert r["target"] == "payments.api"
