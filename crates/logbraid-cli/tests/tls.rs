//! `logbraid serve` with TLS listeners, driven as a real process: mutual
//! TLS with certificates made at test time, the token from a file, and
//! every kind of peer that must be turned away (no certificate, one of
//! another authority, a wrong token, plaintext, a client id held by
//! another certificate) while a good client is served throughout.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::pki::{Ca, Leaf};
use harness::{
    assert_sequence, hello, lines, log_range, logger_with, serve_once, wait_for_lines, Serve,
};
use logbraid::forward::{Endpoint, ForwardOptions, ForwardSink, TlsOptions};
use logbraid::tls::rustls::{pki_types::ServerName, ClientConnection, StreamOwned};
use logbraid::wire::{Frame, FrameReader};
use logbraid::Builder;

/// Safety net for polling: generous, never reached when things work.
const PATIENCE: Duration = Duration::from_secs(30);

/// The first frame the collector answers with, or what ended the
/// connection before one came.
fn answer(s: &mut impl Read) -> Result<String, String> {
    let mut reader = FrameReader::new(64 << 10);
    let mut buf = [0u8; 4096];
    loop {
        match reader.next_frame() {
            Ok(Some(Frame::Welcome { .. })) => return Ok("WELCOME".into()),
            Ok(Some(Frame::Error { code, .. })) => return Ok(format!("ERROR {}", code.0)),
            Ok(Some(f)) => return Ok(format!("{}", f.frame_type())),
            Ok(None) => {}
            Err(e) => return Err(format!("not a frame: {e}")),
        }
        match s.read(&mut buf) {
            Ok(0) => return Err("closed".into()),
            Ok(n) => reader.push(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to `port` that trusts `ca` and shows `cert`.
fn tls(port: u16, ca: &Path, cert: Option<&Leaf>) -> Tls {
    let config = logbraid::tls::client_config(ca, cert.map(|l| (&*l.cert, &*l.key))).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    StreamOwned::new(ClientConnection::new(config, name).unwrap(), tcp)
}

/// Sends a `HELLO` over `s` and returns the answer.
fn say_hello(mut s: Tls, client_id: &str, token: &[u8]) -> Result<String, String> {
    s.write_all(&hello(client_id, token))
        .and_then(|()| s.flush())
        .map_err(|e| e.to_string())?;
    answer(&mut s)
}

fn forward(url: &str, tls: TlsOptions, token: &[u8]) -> ForwardOptions {
    ForwardOptions::new(Endpoint::parse(url).unwrap())
        .tls(tls)
        .token(token.to_vec())
}

fn client_tls(ca: &Path, leaf: &Leaf) -> TlsOptions {
    TlsOptions {
        ca: Some(ca.to_path_buf()),
        cert: Some(leaf.cert.clone()),
        key: Some(leaf.key.clone()),
        server_name: None,
    }
}

fn octet_counted(messages: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        out.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
    }
    out
}

struct Pki {
    ca: Ca,
    other_ca: Ca,
    server: Leaf,
    good: Leaf,
    other: Leaf,
    stranger: Leaf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let ca = Ca::new(dir, "ca");
        let other_ca = Ca::new(dir, "other-ca");
        Pki {
            server: ca.server("server"),
            good: ca.client("good-client"),
            other: ca.client("other-client"),
            stranger: other_ca.client("stranger"),
            ca,
            other_ca,
        }
    }

    /// `logbraid serve args` in `dir` with this server certificate,
    /// requiring client certificates of `ca`, writing `out.log`.
    fn serve(&self, dir: &Path, args: &[&str]) -> Serve {
        let tls = [
            "--tls-cert",
            self.server.cert.to_str().unwrap(),
            "--tls-key",
            self.server.key.to_str().unwrap(),
            "--tls-client-ca",
            self.ca.pem.to_str().unwrap(),
            "--file",
            "out.log",
        ];
        Serve::start(dir, &[&tls[..], args].concat())
    }
}

#[test]
fn mutual_tls_serves_good_clients_and_turns_away_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
    let serve = pki.serve(
        dir.path(),
        &[
            "--listen",
            "tls://127.0.0.1:0",
            "--listen",
            "syslog-tls://127.0.0.1:0",
            "--token-file",
            "token",
            "--format",
            "%(name)s: %(message)s",
        ],
    );
    let url = serve.url("tls://").to_string();
    let port = serve.port("tls://");
    let syslog_port = serve.port("syslog-tls://");

    // The good client: verifies the collector, shows its certificate and
    // the token, and is served throughout.
    let good = ForwardSink::new(
        forward(&url, client_tls(&pki.ca.pem, &pki.good), b"s3cret").client_id("app-1"),
    )
    .unwrap();
    let good_stats = good.stats();
    let (logger, guard) = logger_with(good);
    log_range(&logger, "good", 0..100);
    logger.flush();
    assert_eq!(good_stats.get().acked, 100);

    // No certificate: the handshake is refused.
    let e = say_hello(tls(port, &pki.ca.pem, None), "x", b"s3cret").unwrap_err();
    assert!(e.contains("CertificateRequired"), "{e}");
    // A certificate of another authority.
    let e = say_hello(tls(port, &pki.ca.pem, Some(&pki.stranger)), "x", b"s3cret").unwrap_err();
    assert!(e.contains("UnknownCA"), "{e}");
    // A good certificate with a wrong token: ERROR BAD_TOKEN.
    assert_eq!(
        say_hello(tls(port, &pki.ca.pem, Some(&pki.other)), "x", b"guess"),
        Ok("ERROR 1".to_string())
    );
    // Plaintext on the TLS port: no WELCOME, only a TLS alert, if anything.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.set_read_timeout(Some(PATIENCE)).unwrap();
    plain.write_all(&hello("x", b"s3cret")).unwrap();
    let mut back = Vec::new();
    plain.read_to_end(&mut back).unwrap();
    assert!(back.is_empty() || back[0] == 0x15, "{back:?}");
    // Another certificate of the same authority asks for the good client's
    // id while it is connected: CLIENT_ID_TAKEN.
    assert_eq!(
        say_hello(tls(port, &pki.ca.pem, Some(&pki.other)), "app-1", b"s3cret"),
        Ok("ERROR 10".to_string())
    );
    // The same certificate under its own id is welcome.
    assert_eq!(
        say_hello(tls(port, &pki.ca.pem, Some(&pki.other)), "app-2", b"s3cret"),
        Ok("WELCOME".to_string())
    );
    // A forwarding client that trusts another authority refuses the
    // collector, and says why.
    let wary = ForwardSink::new(
        forward(
            &url,
            client_tls(&pki.other_ca.pem, &pki.stranger),
            b"s3cret",
        )
        .backoff(Duration::from_secs(3600), Duration::from_secs(3600))
        .linger(Duration::ZERO),
    )
    .unwrap();
    let wary_stats = wary.stats();
    let (wary_logger, wary_guard) = Builder::new()
        .inherit_collector(false)
        .sink(wary)
        .build()
        .unwrap();
    log_range(&wary_logger, "wary", 0..1);
    let deadline = Instant::now() + PATIENCE;
    while wary_stats.get().failures == 0 {
        assert!(Instant::now() < deadline, "the wary client never failed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let why = wary_stats.get().last_error.unwrap();
    assert!(
        why.contains("TLS handshake failed") && why.contains("UnknownIssuer"),
        "{why}"
    );
    assert_eq!(wary_stats.get().connects, 0);

    // Syslog over TLS (RFC 5425), with a good certificate.
    let messages: Vec<String> = (0..3)
        .map(|i| format!("<14>1 2026-01-02T03:04:05Z h relay - - - syslog {i}"))
        .collect();
    let mut s = tls(syslog_port, &pki.ca.pem, Some(&pki.good));
    s.write_all(&octet_counted(&messages)).unwrap();
    s.flush().unwrap();
    s.conn.send_close_notify();
    s.flush().unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);

    // The good client is still served.
    log_range(&logger, "good", 100..200);
    logger.flush();
    assert_eq!(good_stats.get().acked, 200);
    assert_eq!(good_stats.get().connects, 1);
    drop(guard);
    drop(wary_guard);
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    let out = lines(&dir.path().join("out.log"));
    assert_sequence(&out, "good", 200);
    let syslog: Vec<&String> = out.iter().filter(|l| l.starts_with("relay: ")).collect();
    assert_eq!(
        syslog,
        ["relay: syslog 0", "relay: syslog 1", "relay: syslog 2"]
    );
    assert!(!out.iter().any(|l| l.contains("wary")), "{out:?}");
    // Six turned away, each counted once: two handshakes the collector
    // refused and one the client broke off, a wrong token, plaintext, a
    // taken id. Each kind is said (at most once a second per kind).
    for what in [
        "TLS handshake failed",
        "not TLS",
        "bad token",
        "client id taken",
    ] {
        assert!(err.contains(what), "{what} not said: {err}");
    }
    assert!(err.contains(", 6 inputs rejected"), "{err}");
}

#[test]
fn tls_settings_are_checked_before_anything_listens() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let run = |args: &[&str]| serve_once(dir.path(), args);
    let cert = pki.server.cert.to_str().unwrap();
    let key = pki.server.key.to_str().unwrap();
    let listen = ["--listen", "tls://127.0.0.1:0", "--file", "out.log"];
    assert_eq!(
        run(&listen),
        (
            Some(2),
            "logbraid serve: tls_cert: missing: tls://127.0.0.1:0 needs a certificate and its \
             key (tls_cert, tls_key)"
                .to_string()
        )
    );
    assert_eq!(
        run(&[&listen[..], &["--tls-cert", cert]].concat()).1,
        "logbraid serve: tls_key: missing: tls://127.0.0.1:0 needs a certificate and its key \
         (tls_cert, tls_key)"
    );
    assert_eq!(
        run(&[&listen[..], &["--tls-cert", cert, "--tls-key", cert]].concat()).1,
        format!(
            "logbraid serve: tls_key: key file {cert}: no private key in it (expected \
             -----BEGIN PRIVATE KEY-----)"
        )
    );
    let missing = dir.path().join("nope.pem");
    let (code, e) = run(&[
        &listen[..],
        &[
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--tls-client-ca",
            missing.to_str().unwrap(),
        ],
    ]
    .concat());
    assert_eq!(code, Some(2));
    assert!(
        e.starts_with(&format!(
            "logbraid serve: tls_client_ca: CA file {}: ",
            missing.display()
        )),
        "{e}"
    );
    assert_eq!(
        run(&["--listen", "tcp://127.0.0.1:0", "--tls-cert", cert]).1,
        "logbraid serve: tls_cert: is for a tls://, syslog-tls://, otlp-http:// or otlp-grpc:// \
         listener, and none is given"
    );
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    assert_eq!(
        run(&["--listen", "tcp://127.0.0.1:0", "--token-file", "empty"]).1,
        "logbraid serve: token_file: empty: the first line is empty"
    );
    assert_eq!(
        run(&["--token", "a", "--token-file", "empty"]).1,
        "logbraid serve: token_file: and token are both set: give the token one way"
    );
    // Nothing was created.
    assert!(!dir.path().join("out.log").exists());
}

/// rsyslog's configuration for a relay that takes local messages on a
/// Unix socket and forwards them over TLS (its gtls driver, GnuTLS), with
/// its own certificate, to the collector at `port`, checking that the
/// collector's certificate names `localhost`.
fn rsyslog_relay_conf(dir: &Path, pki: &Pki, relay: &Leaf, port: u16) -> String {
    let p = |p: &Path| p.display().to_string();
    format!(
        r#"global(
  workDirectory="{work}"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="{ca}"
  defaultNetstreamDriverCertFile="{cert}"
  defaultNetstreamDriverKeyFile="{key}"
)
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{sock}")
template(name="rfc5424" type="string"
         string="<%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME% %PROCID% - -%msg:::sp-if-no-1st-sp%%msg%")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
       StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
       StreamDriverPermittedPeers="localhost" TCP_Framing="octet-counted"
       template="rfc5424")
"#,
        work = p(dir),
        ca = p(&pki.ca.pem),
        cert = p(&relay.cert),
        key = p(&relay.key),
        sock = p(&dir.join("in.sock")),
    )
}

#[test]
#[ignore = "needs rsyslogd and its gtls module (Debian: rsyslog, rsyslog-gnutls); scripts/test runs it when they are there"]
fn rsyslog_relays_over_syslog_tls_with_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let relay = pki.ca.client("relay");
    let serve = pki.serve(
        dir.path(),
        &[
            "--listen",
            "syslog-tls://127.0.0.1:0",
            "--format",
            "%(name)s %(process)d %(message)s",
        ],
    );
    let work = dir.path().join("rsyslog");
    std::fs::create_dir(&work).unwrap();
    let conf = work.join("rsyslog.conf");
    let port = serve.port("syslog-tls://");
    std::fs::write(&conf, rsyslog_relay_conf(&work, &pki, &relay, port)).unwrap();
    let mut rsyslogd = std::process::Command::new("rsyslogd")
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(work.join("rsyslogd.pid"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(work.join("rsyslogd.err")).unwrap())
        .spawn()
        .unwrap();
    let sock = work.join("in.sock");
    let deadline = Instant::now() + PATIENCE;
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "rsyslogd made no socket: {}",
            std::fs::read_to_string(work.join("rsyslogd.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let local = std::os::unix::net::UnixDatagram::unbound().unwrap();
    for i in 0..3 {
        let m = format!("<13>Dec  6 10:00:00 myapp[123]: interop {i}");
        local.send_to(m.as_bytes(), &sock).unwrap();
    }
    let out = dir.path().join("out.log");
    wait_for_lines(&out, 3);
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(rsyslogd.id() as i32, libc::SIGTERM) };
    rsyslogd.wait().unwrap();
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert_eq!(
        lines(&out),
        [
            "myapp 123 interop 0",
            "myapp 123 interop 1",
            "myapp 123 interop 2"
        ],
        "rsyslogd said: {}",
        std::fs::read_to_string(work.join("rsyslogd.err")).unwrap_or_default()
    );
    assert!(err.contains(", 0 inputs rejected"), "{err}");
}
