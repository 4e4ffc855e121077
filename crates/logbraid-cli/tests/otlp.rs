//! OpenTelemetry logs into `logbraid serve`: the OpenTelemetry Python
//! SDK's own OTLP exporters (HTTP and gRPC) as clients, raw HTTP requests
//! for what an exporter never sends (JSON, garbage, a wrong token), and
//! logbraid's own OTLP/HTTP exporter. Real sockets on loopback; every
//! outcome read back from the file.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use harness::{json, lines, Serve};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message as _;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// The Python that has the OpenTelemetry SDK: `$LOGBRAID_TEST_PYTHON`, or
/// the virtual environment `scripts/test` makes (`target/venv`), or
/// `python3`. Fails, saying what to install, when the SDK is missing.
fn otel_python() -> Command {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/venv/bin/python");
    let python = match std::env::var_os("LOGBRAID_TEST_PYTHON") {
        Some(p) => p,
        None if venv.exists() => venv.into_os_string(),
        None => "python3".into(),
    };
    let probe = Command::new(&python)
        .args([
            "-c",
            "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http, \
             opentelemetry.exporter.otlp.proto.grpc",
        ])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{python:?} lacks the OpenTelemetry SDK: run scripts/test (it installs opentelemetry-sdk, \
         opentelemetry-exporter-otlp-proto-http and -grpc into target/venv) or set \
         LOGBRAID_TEST_PYTHON: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let mut c = Command::new(python);
    c.env_remove("LOGBRAID_COLLECTOR");
    // requests lets these override the CA the exporter is given.
    c.env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE");
    c
}

/// Logs `n` records through the SDK's `LoggingHandler` and exporter `kind`
/// (`http` or `grpc`, `gzip` to compress), then prints what
/// `force_flush` returned: `True` once the collector has answered every
/// export with success.
const SDK_CLIENT: &str = r#"
import logging, sys
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

kind, endpoint, n, tag, gzip = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == "gzip"
ca = sys.argv[6] if len(sys.argv) > 6 else None
if kind == "http":
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    exporter = OTLPLogExporter(endpoint=endpoint + "/v1/logs", certificate_file=ca,
                               compression=Compression.Gzip if gzip else Compression.NoCompression)
else:
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    credentials = grpc.ssl_channel_credentials(open(ca, "rb").read()) if ca else None
    exporter = OTLPLogExporter(endpoint=endpoint, insecure=ca is None, credentials=credentials,
                               compression=grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression)
provider = LoggerProvider(resource=Resource.create({"service.name": "checkout", "host.name": "web-7"}))
provider.add_log_record_processor(BatchLogRecordProcessor(exporter, max_export_batch_size=64))
log = logging.getLogger("shop.orders")
log.propagate = False
log.setLevel(logging.DEBUG)
log.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
levels = [log.debug, log.info, log.warning, log.error, log.critical]
for i in range(n):
    levels[i % 5]("%s order %d placed", tag, i, extra={"order": i, "tag": tag})
print(provider.force_flush(30000))
provider.shutdown()
"#;

/// Runs [`SDK_CLIENT`]; with `ca`, over TLS, trusting that authority.
fn run_sdk_client(
    dir: &Path,
    (kind, endpoint): (&str, &str),
    n: usize,
    tag: &str,
    gzip: bool,
    ca: Option<&Path>,
) {
    let script = dir.join("sdk_client.py");
    std::fs::write(&script, SDK_CLIENT).unwrap();
    let out = otel_python()
        .arg(&script)
        .args([kind, endpoint, &n.to_string(), tag])
        .arg(if gzip { "gzip" } else { "plain" })
        .args(ca)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout == b"True\n" && out.stderr.is_empty(),
        "{tag}: {:?} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `logbraid serve` with both OTLP listeners, JSON lines into `out.jsonl`,
/// and `more` flags.
fn serve_both(dir: &Path, more: &[&str]) -> Serve {
    let mut args = vec![
        "--listen",
        "otlp-http://127.0.0.1:0",
        "--listen",
        "otlp-grpc://127.0.0.1:0",
        "--file",
        "out.jsonl",
        "--format",
        "json",
    ];
    args.extend(more);
    Serve::start(dir, &args)
}

#[test]
fn the_sdk_exporters_over_http_and_grpc_write_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_both(dir.path(), &[]);
    let http = format!("http://127.0.0.1:{}", serve.port("otlp-http://"));
    let grpc = format!("http://127.0.0.1:{}", serve.port("otlp-grpc://"));
    let n = 300;
    let runs = [
        ("http", &http, "h", false),
        ("http", &http, "hz", true),
        ("grpc", &grpc, "g", false),
        ("grpc", &grpc, "gz", true),
    ];
    let out = dir.path().join("out.jsonl");
    let mut total = 0;
    for (kind, endpoint, tag, gzip) in runs {
        run_sdk_client(dir.path(), (kind, endpoint), n, tag, gzip, None);
        // The exporter's flush returned: its records are in the file.
        total += n;
        let records = json(&out);
        assert_eq!(records.len(), total, "{tag}");
        let mine: Vec<_> = records
            .iter()
            .filter(|r| r["fields"]["tag"] == tag)
            .collect();
        assert_eq!(mine.len(), n, "{tag}");
        let levels = ["DEBUG", "INFO", "WARN", "ERROR", "CRITICAL"];
        let mut seen = vec![0; n];
        for r in &mine {
            let i = r["fields"]["order"].as_u64().unwrap() as usize;
            seen[i] += 1;
            assert_eq!(r["msg"], format!("{tag} order {i} placed"), "{r}");
            assert_eq!(r["level"], levels[i % 5], "{r}");
            assert_eq!(r["target"], "shop.orders", "{r}");
            assert_eq!(r["process"], "checkout", "{r}");
            assert_eq!(r["host"], "web-7", "{r}");
            assert_eq!(r["fields"]["service.name"], "checkout", "{r}");
            assert!(
                r["file"].as_str().unwrap().ends_with("sdk_client.py"),
                "{r}"
            );
            assert_eq!(r["line"], 28, "{r}");
        }
        assert!(seen.iter().all(|&c| c == 1), "{tag}: each record once");
    }
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert!(
        err.ends_with("stopped; 1200 records written, 0 inputs rejected\n"),
        "{err}"
    );
}

#[test]
fn the_sdk_exporters_speak_tls_when_the_collector_has_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = harness::pki::Ca::new(dir.path(), "ca");
    let server = ca.server("server");
    let serve = serve_both(
        dir.path(),
        &[
            "--tls-cert",
            server.cert.to_str().unwrap(),
            "--tls-key",
            server.key.to_str().unwrap(),
        ],
    );
    let http = format!("https://localhost:{}", serve.port("otlp-http://"));
    let grpc = format!("localhost:{}", serve.port("otlp-grpc://"));
    run_sdk_client(dir.path(), ("http", &http), 50, "th", false, Some(&ca.pem));
    run_sdk_client(dir.path(), ("grpc", &grpc), 50, "tg", true, Some(&ca.pem));
    let records = json(&dir.path().join("out.jsonl"));
    for tag in ["th", "tg"] {
        let n = records.iter().filter(|r| r["fields"]["tag"] == tag).count();
        assert_eq!(n, 50, "{tag}");
    }
    assert_eq!(records.len(), 100);
    // A plaintext request on the TLS port is turned away, counted.
    let mut s = TcpStream::connect(("127.0.0.1", serve.port("otlp-http://"))).unwrap();
    let _ = s.write_all(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(!rest.starts_with(b"HTTP/1.1 200"));
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert!(err.contains("plaintext") || err.contains("TLS"), "{err}");
    assert!(
        err.ends_with("stopped; 100 records written, 1 inputs rejected\n"),
        "{err}"
    );
}

/// Sends, over one gRPC channel, `LogsService/Export` calls with a body
/// that is not protobuf, then one empty (valid) request: prints each
/// call's status code.
const GRPC_GARBAGE: &str = r#"
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
export = channel.unary_unary(
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    request_serializer=lambda b: b, response_deserializer=lambda b: b)
for body in [b"\xff\xff\xff\xff", b"\x0a\x05ab", b""]:
    try:
        export(body, timeout=10)
        print("OK")
    except grpc.RpcError as e:
        print(e.code().name)
"#;

#[test]
fn a_malformed_grpc_request_is_invalid_argument_and_the_channel_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_both(dir.path(), &[]);
    let script = dir.path().join("garbage.py");
    std::fs::write(&script, GRPC_GARBAGE).unwrap();
    let out = otel_python()
        .arg(&script)
        .arg(format!("127.0.0.1:{}", serve.port("otlp-grpc://")))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "INVALID_ARGUMENT\nINVALID_ARGUMENT\nOK\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert!(err.contains("not an OTLP logs request (gRPC)"), "{err}");
    assert!(
        err.ends_with("stopped; 0 records written, 2 inputs rejected\n"),
        "{err}"
    );
}

/// One HTTP/1.1 request on `s`: the status and the body of the answer.
fn request(
    s: &mut TcpStream,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<String>, Vec<u8>) {
    let mut head = format!(
        "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).unwrap();
    // A refusal may come, and the connection close, before the body is
    // all sent.
    let _ = s.write_all(body);
    read_answer(s)
}

fn read_answer(s: &mut TcpStream) -> (u16, Vec<String>, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "closed: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<String> = lines
        .filter(|l| !l.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let len: usize = headers
        .iter()
        .find_map(|h| h.strip_prefix("content-length: "))
        .unwrap()
        .parse()
        .unwrap();
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    (status, headers, body)
}

const JSON_REQUEST: &str = r#"{"resourceLogs":[{"resource":{"attributes":[
  {"key":"service.name","value":{"stringValue":"billing"}},
  {"key":"host.name","value":{"stringValue":"db-2"}}]},
 "scopeLogs":[{"scope":{"name":"billing.invoices"},"logRecords":[
  {"timeUnixNano":"1700000000000000000","severityNumber":17,"severityText":"ERROR",
   "body":{"stringValue":"invoice 7 failed"},
   "attributes":[{"key":"invoice","value":{"intValue":"7"}},{"key":"retry","value":{"boolValue":true}}]},
  {"observedTimeUnixNano":"1700000001000000000","severityText":"warning",
   "body":{"kvlistValue":{"values":[{"key":"k","value":{"doubleValue":1.5}}]}}}]}]}]}"#;

#[test]
fn json_protobuf_gzip_and_bad_requests_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &["--listen", "otlp-http://127.0.0.1:0", "--file", "out.log"],
    );
    let addr = ("127.0.0.1", serve.port("otlp-http://"));
    let mut s = TcpStream::connect(addr).unwrap();
    let json_ct = [("Content-Type", "application/json")];
    let (status, headers, body) = request(&mut s, &json_ct, JSON_REQUEST.as_bytes());
    assert_eq!((status, &body[..]), (200, &b"{}"[..]));
    assert!(headers.contains(&"content-type: application/json".to_string()));
    let want = [
        "2023-11-14T22:13:20.000000Z ERROR [0/0] billing.invoices: invoice 7 failed \
         service.name=billing invoice=7 retry=true",
        "2023-11-14T22:13:21.000000Z WARN  [0/0] billing.invoices: {\"k\":1.5} service.name=billing",
    ];
    // Answered: written.
    assert_eq!(lines(&dir.path().join("out.log")), want);

    // The same request as protobuf, then gzip-compressed, on the same
    // connection.
    let req: ExportLogsServiceRequest = serde_json::from_str(JSON_REQUEST).unwrap();
    let pb = [("Content-Type", "application/x-protobuf")];
    let (status, _, body) = request(&mut s, &pb, &req.encode_to_vec());
    assert_eq!(status, 200);
    assert_eq!(
        ExportLogsServiceResponse::decode(&body[..]).unwrap(),
        Default::default()
    );
    let gz = gzip(&req.encode_to_vec());
    let pbz = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "gzip"),
    ];
    assert_eq!(request(&mut s, &pbz, &gz).0, 200);
    assert_eq!(
        lines(&dir.path().join("out.log")),
        [want, want, want].concat()
    );

    // Garbage: 400 with a google.rpc.Status saying why, and the
    // connection and the collector go on.
    let (status, _, body) = request(&mut s, &pb, b"\xff\xff\xff\xff");
    assert_eq!(status, 400);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("not an OTLP logs request (protobuf)"),
        "{text}"
    );
    let (status, _, body) = request(&mut s, &json_ct, b"{\"resourceLogs\":");
    assert_eq!(status, 400);
    let err: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(err["code"], 3, "INVALID_ARGUMENT");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .starts_with("not an OTLP logs request (JSON): "));
    let (status, _, _) = request(&mut s, &pbz, b"not gzip at all");
    assert_eq!(status, 400);
    assert_eq!(request(&mut s, &json_ct, JSON_REQUEST.as_bytes()).0, 200);
    let mut fresh = TcpStream::connect(addr).unwrap();
    assert_eq!(
        request(&mut fresh, &json_ct, JSON_REQUEST.as_bytes()).0,
        200
    );

    // Other media types, paths and methods; over --max-frame (1 MiB by
    // default), said before the body is read when its length is known.
    // Each is refused before its body is read, so its connection closes
    // after the answer.
    let conn = || TcpStream::connect(addr).unwrap();
    let (status, _, _) = request(&mut conn(), &[("Content-Type", "text/plain")], b"x");
    assert_eq!(status, 415);
    let mut c = conn();
    c.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut c).0, 404);
    let mut c = conn();
    c.write_all(b"GET /v1/logs HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, headers, _) = read_answer(&mut c);
    assert_eq!(status, 405);
    assert!(headers.contains(&"allow: post".to_string()));
    let big = vec![b' '; (1 << 20) + 1];
    let (status, _, body) = request(&mut conn(), &json_ct, &big);
    assert_eq!(status, 413);
    assert!(String::from_utf8_lossy(&body).contains("over the limit of 1048576 bytes"));

    let out = lines(&dir.path().join("out.log"));
    assert_eq!(out.len(), 5 * 2);
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("stopped; 10 records written, 4 inputs rejected"),
        "{err}"
    );
}

#[test]
fn records_over_the_limit_are_a_partial_success() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &["--listen", "otlp-http://127.0.0.1:0", "--file", "out.log"],
    );
    let mut s = TcpStream::connect(("127.0.0.1", serve.port("otlp-http://"))).unwrap();
    // Three records, the middle one 1.5 MiB: over the 1 MiB a record may
    // weigh, inside what a gzip body may inflate to.
    let huge = "x".repeat(3 << 19);
    let body = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"scope":{{"name":"big"}},"logRecords":[
        {{"timeUnixNano":"1","body":{{"stringValue":"before"}}}},
        {{"timeUnixNano":"2","body":{{"stringValue":"{huge}"}}}},
        {{"timeUnixNano":"3","body":{{"stringValue":"after"}}}}]}}]}}]}}"#
    );
    let gz = gzip(body.as_bytes());
    let headers = [
        ("Content-Type", "application/json"),
        ("Content-Encoding", "gzip"),
    ];
    let (status, _, answer) = request(&mut s, &headers, &gz);
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedLogRecords"], "1");
    let why = answer["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(why.ends_with("is over the limit of 1048576 bytes"), "{why}");
    let out = lines(&dir.path().join("out.log"));
    assert_eq!(
        out,
        [
            "1970-01-01T00:00:00.000000Z INFO  [0/0] big: before",
            "1970-01-01T00:00:00.000000Z INFO  [0/0] big: after"
        ]
    );
    let (status, _) = serve.stop();
    assert!(status.success());
}

#[test]
fn a_token_is_required_when_the_collector_has_one() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            "otlp-http://127.0.0.1:0",
            "--token",
            "s3cret",
            "--file",
            "out.log",
        ],
    );
    let addr = ("127.0.0.1", serve.port("otlp-http://"));
    let ct = ("Content-Type", "application/json");
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("s3cret"),
        Some("Basic s3cret"),
    ] {
        let mut headers = vec![ct];
        headers.extend(auth.map(|a| ("Authorization", a)));
        // Refused before its body is read: the connection closes after
        // the answer.
        let mut s = TcpStream::connect(addr).unwrap();
        let (status, h, _) = request(&mut s, &headers, JSON_REQUEST.as_bytes());
        assert_eq!(status, 401, "{auth:?}");
        assert!(h.contains(&"www-authenticate: bearer".to_string()));
    }
    assert!(lines(&dir.path().join("out.log")).is_empty());
    let mut s = TcpStream::connect(addr).unwrap();
    let headers = [ct, ("Authorization", "Bearer s3cret")];
    assert_eq!(request(&mut s, &headers, JSON_REQUEST.as_bytes()).0, 200);
    assert_eq!(lines(&dir.path().join("out.log")).len(), 2);
    let (status, err) = serve.stop();
    assert!(status.success());
    assert!(err.contains("4 inputs rejected"), "{err}");
}

/// Records as a program logs them through logbraid's own OTLP/HTTP
/// exporter, the collector's exact lines for them.
#[test]
fn the_exporter_round_trips_through_an_otlp_http_listener() {
    use logbraid::{FieldsBuf, Level, Record, Source};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        dir.path(),
        &["--listen", "otlp-http://127.0.0.1:0", "--file", "out.log"],
    );
    let (logger, guard) = harness::client(serve.url("otlp-http://"));
    let source = Arc::new(Source {
        host: "web-3".into(),
        pid: 4242,
        process_name: "billing".into(),
    });
    let other = Arc::new(Source {
        host: "web-4".into(),
        pid: 7,
        process_name: "mailer".into(),
    });
    let mut fields = FieldsBuf::new();
    fields.push_str("user", "ada lovelace");
    fields.push("n", logbraid::Value::I64(-3));
    fields.push("big", logbraid::Value::U64(u64::MAX));
    fields.push("ok", logbraid::Value::Bool(true));
    fields.push("ratio", logbraid::Value::F64(0.25));
    let levels = Level::ALL;
    for (i, level) in levels.into_iter().enumerate() {
        let msg = format!("record {i}\nsecond line");
        let r = Record::new(level, "app::db", msg.as_bytes(), &source)
            .with_timestamp(1_700_000_000_000_000_000 + i as i64 * 1_000)
            .with_thread_id(11)
            .with_thread_name("worker-1")
            .with_file("src/db.rs")
            .with_line(40 + i as u32)
            .with_fields(fields.as_fields());
        logger.log_record(&r, &source);
    }
    let r =
        Record::new(Level::Info, "mail", b"sent", &other).with_timestamp(1_700_000_001_000_000_000);
    logger.log_record(&r, &other);
    // Returns once the collector has answered 2xx: the lines are there.
    logger.flush();
    let mut want: Vec<String> = levels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            format!(
                "2023-11-14T22:13:20.00000{i}Z {:<5} [4242/worker-1] app::db: record {i}\n  \
                 second line service.name=billing user=\"ada lovelace\" n=-3 \
                 big=18446744073709551615 ok=true ratio=0.25",
                l.as_str()
            )
        })
        .flat_map(|l| l.split('\n').map(str::to_string).collect::<Vec<_>>())
        .collect();
    want.push("2023-11-14T22:13:21.000000Z INFO  [7/0] mail: sent service.name=mailer".into());
    assert_eq!(lines(&dir.path().join("out.log")), want);
    drop(guard);
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert!(
        err.ends_with("stopped; 7 records written, 0 inputs rejected\n"),
        "{err}"
    );
}

/// A scripted OTLP/HTTP server: answers its requests, in order, with
/// `script` (a status, or 0 to close the connection without an answer),
/// then 200; hands back every body it received.
fn scripted_server(script: Vec<u16>) -> (u16, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        let mut script = script.into_iter();
        for conn in listener.incoming() {
            let mut s = conn.unwrap();
            loop {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                if !head.ends_with(b"\r\n\r\n") {
                    break;
                }
                let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
                let mut body = vec![0; len];
                s.read_exact(&mut body).unwrap();
                bodies.push(body);
                match script.next() {
                    Some(0) => break,
                    Some(status) => {
                        let answer = format!(
                            "HTTP/1.1 {status} Busy\r\nRetry-After: 0\r\nContent-Length: 0\r\n\r\n"
                        );
                        s.write_all(answer.as_bytes()).unwrap();
                    }
                    None => {
                        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .unwrap();
                        return bodies;
                    }
                }
            }
        }
        bodies
    });
    (port, handle)
}

#[test]
fn the_exporter_resends_a_batch_until_it_is_accepted() {
    // 503, then a connection closed without an answer, then 429, then 200.
    let (port, server) = scripted_server(vec![503, 0, 429]);
    let (logger, guard) = harness::client(&format!("otlp-http://127.0.0.1:{port}"));
    harness::log_range(&logger, "r", 0..50);
    logger.flush();
    // flush returned: the 200 came, after three failures.
    let bodies = server.join().unwrap();
    assert_eq!(bodies.len(), 4);
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "the same batch each time"
    );
    let req = ExportLogsServiceRequest::decode(&bodies[0][..]).unwrap();
    let logs = &req.resource_logs[0].scope_logs[0].log_records;
    let messages: Vec<String> = logs
        .iter()
        .map(|l| match l.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
                s.clone()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    let want: Vec<String> = (0..50).map(|i| format!("r {i}")).collect();
    assert_eq!(messages, want);
    assert!(logs
        .iter()
        .all(|l| l.severity_number == 9 && l.severity_text == "INFO"));
    drop(guard);
}

/// A request of `n` records of 1000 bytes for the logger `blocked`.
fn blocked_request(tag: &str, n: usize) -> String {
    let text = "x".repeat(1000);
    let logs: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"timeUnixNano":"1","body":{{"stringValue":"{tag} {i} {text}"}}}}"#))
        .collect();
    format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"scope":{{"name":"blocked"}},"logRecords":[{}]}}]}}]}}"#,
        logs.join(",")
    )
}

#[test]
fn a_request_the_output_stage_has_no_room_for_is_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    // The route's file cannot be opened (a directory is in the way): its
    // records wait, holding the output stage's budget (an eighth of 16 MiB).
    std::fs::create_dir_all(dir.path().join("logs/blocked.log")).unwrap();
    let serve = Serve::start(
        dir.path(),
        &[
            "--listen",
            "otlp-http://127.0.0.1:0",
            "--route",
            "logs/{logger}.log",
            "--format",
            "%(message).5s",
            "--max-memory",
            "16MiB",
        ],
    );
    let addr = ("127.0.0.1", serve.port("otlp-http://"));
    let ct = [("Content-Type", "application/json")];
    // 900 records of 1 KB: held, unanswered, until they are written.
    let first = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        request(&mut s, &ct, blocked_request("a", 900).as_bytes()).0
    });
    let out = dir.path().join("logs/blocked.log");
    // The first request's records are held once the collector says so.
    let stderr = serve.stderr.clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&stderr)
        .unwrap()
        .contains("cannot open")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the file never failed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut s = TcpStream::connect(addr).unwrap();
    let (status, headers, _) = request(&mut s, &ct, blocked_request("b", 900).as_bytes());
    assert_eq!(status, 503);
    assert!(
        headers.contains(&"retry-after: 1".to_string()),
        "{headers:?}"
    );
    assert!(
        !first.is_finished(),
        "the first request waits for its records"
    );
    // The obstacle goes: the held records are written, then answered.
    std::fs::remove_dir(&out).unwrap();
    assert_eq!(first.join().unwrap(), 200);
    let mut s = TcpStream::connect(addr).unwrap();
    assert_eq!(
        request(&mut s, &ct, blocked_request("b", 900).as_bytes()).0,
        200
    );
    let written = lines(&out);
    assert_eq!(written.len(), 1800);
    assert_eq!(written.iter().filter(|l| l.starts_with("a ")).count(), 900);
    let (status, err) = serve.stop();
    assert!(status.success(), "{err}");
    assert!(err.contains("could not take the records"), "{err}");
}
