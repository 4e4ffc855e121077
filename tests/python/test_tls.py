"""forward="tls://..." with tls_ca, tls_cert, tls_key and token: to a
`python -m logbraid serve` that requires client certificates and a token,
with certificates made by openssl in the test's directory."""

import os
import shutil
import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """ca.pem; server.pem/.key for localhost and 127.0.0.1; client.pem/.key
    signed by ca; stranger.pem/.key signed by another ca."""
    for ca in ("ca", "other-ca"):
        openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN={ca}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign,cRLSign",
            cwd=d,
        )  # fmt: skip
    leaves = [
        ("server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "ca", "extendedKeyUsage=clientAuth\n"),
        ("stranger", "other-ca", "extendedKeyUsage=clientAuth\n"),
    ]
    for name, ca, ext in leaves:
        (d / f"{name}.ext").write_text(ext)
        openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
            cwd=d,
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
            cwd=d,
        )  # fmt: skip


class Collector:
    """`python -m logbraid serve` on tls://127.0.0.1:0 with mutual TLS and
    a token file."""

    def __init__(self, d):
        (d / "token").write_text("s3cret\n")
        self.log = d / "out.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOGBRAID_")}
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "logbraid", "serve", "--listen", "tls://127.0.0.1:0",
                "--tls-cert", "server.pem", "--tls-key", "server.key", "--tls-client-ca", "ca.pem",
                "--token-file", "token", "--file", str(self.log), "--format", "%(name)s %(message)s",
            ],
            cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = self.proc.stdout.readline()
        assert line.startswith("listening on tls://"), line + self.proc.stderr.read()
        self.url = line.split()[-1]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return self.log.read_text().splitlines(), err


@pytest.fixture
def pki(tmp_path):
    make_pki(tmp_path)
    return tmp_path


def test_basicconfig_and_its_children_forward_over_mutual_tls(run, pki):
    collector = Collector(pki)
    try:
        run(
            f"""
            import logbraid, subprocess, sys
            logbraid.basicConfig(level="INFO", forward={collector.url!r}, tls_ca="ca.pem",
                                 tls_cert="client.pem", tls_key="client.key", token="s3cret")
            log = logbraid.getLogger("parent")
            for i in range(50):
                log.info("p %d", i)
            assert logbraid.flush(timeout=60)
            # A child finds the collector, the files and the token in its
            # environment, and goes elsewhere (cwd) first.
            child = "import logbraid\\n" \\
                "log = logbraid.getLogger('child')\\n" \\
                "[log.info('c %d', i) for i in range(20)]\\n" \\
                "assert logbraid.flush(timeout=60)\\n"
            subprocess.run([sys.executable, "-c", child], cwd="/", check=True)
            """
        )
    finally:
        lines, err = collector.stop()
    assert [x for x in lines if x.startswith("parent ")] == [f"parent p {i}" for i in range(50)]
    assert [x for x in lines if x.startswith("child ")] == [f"child c {i}" for i in range(20)]
    assert "0 inputs rejected" in err


def test_handler_keywords_and_a_certificate_of_another_ca(run, pki):
    collector = Collector(pki)
    try:
        run(
            f"""
            import logging, logbraid
            good = logbraid.Handler(forward={collector.url!r}, tls_ca="ca.pem", tls_cert="client.pem",
                                    tls_key="client.key", token="s3cret", format="%(message)s")
            log = logging.getLogger("app")
            log.setLevel(logging.INFO)
            log.addHandler(good)
            for i in range(30):
                log.info("h %d", i)
            assert good.flush(timeout=60)
            # Another CA's certificate: nothing is acknowledged.
            bad = logbraid.Handler(forward={collector.url!r}, tls_ca="ca.pem", tls_cert="stranger.pem",
                                   tls_key="stranger.key", token="s3cret")
            log.removeHandler(good)
            log.addHandler(bad)
            log.info("never")
            assert not bad.flush(timeout=0.5)
            # The refused records would hold up the exit for the linger
            # time; they are lost by design.
            import os
            os._exit(0)
            """
        )
    finally:
        lines, err = collector.stop()
    assert lines == [f"app h {i}" for i in range(30)]
    assert "TLS handshake failed" in err


def test_tls_keywords_are_checked(run, pki):
    p = run(
        """
        import logbraid, pathlib

        def error(**kw):
            try:
                logbraid.Handler(**kw)
            except (TypeError, ValueError) as e:
                return f"{type(e).__name__}: {e}"
            return "accepted"

        print(error(forward="tls://127.0.0.1:9", token="t"))
        print(error(forward="tcp://127.0.0.1:9", tls_ca="ca.pem"))
        print(error(forward="tls://127.0.0.1:9", tls_ca="ca.pem", tls_cert="client.pem"))
        print(error(forward="tls://127.0.0.1:9", tls_ca="nope.pem"))
        print(error(forward="tls://127.0.0.1:9", tls_ca="client.key"))
        print(error(tls_key="client.key"))
        print(error(token="t"))
        print(error(forward="tls://127.0.0.1:9", tls_ca=7))
        print(error(forward="tls://127.0.0.1:9", tls_ca=pathlib.Path("ca.pem")))
        """
    )
    assert p.stdout.splitlines() == [
        "ValueError: tls_ca: missing: tls://127.0.0.1:9 needs the PEM file of the certificate authority "
        "that signed the collector's certificate (or LOGBRAID_TLS_CA)",
        "ValueError: tls_ca: is for a tls:// collector, and tcp://127.0.0.1:9 is not one",
        "ValueError: tls_key: missing: tls_cert needs its key",
        "ValueError: tls_ca: CA file nope.pem: No such file or directory (os error 2)",
        "ValueError: tls_ca: CA file client.key: no certificate in it (expected -----BEGIN CERTIFICATE-----)",
        "ValueError: tls_key: is for a tls:// collector: set forward too",
        "ValueError: token: is for a collector: set forward too",
        "TypeError: tls_ca: unexpected type int",
        "accepted",
    ]
