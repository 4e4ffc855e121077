//! OpenTelemetry logs (OTLP): a request's bytes, protobuf or JSON, into
//! [`OwnedRecord`]s. Sans I/O like the other decoders: the `otlp-http://`
//! and `otlp-grpc://` listeners read the requests, this module decodes and
//! maps them.
//!
//! | OTLP | record |
//! |---|---|
//! | `severity_number` 1–4, 5–8, 9–12, 13–16, 17–20, 21–24 | TRACE, DEBUG, INFO, WARN, ERROR, CRITICAL |
//! | `severity_text`, when the number is 0 (unspecified) | the level it names (`warning`, `fatal`, …), else INFO |
//! | `body` | the message: a string as it is, any other value as JSON (bytes as lowercase hex) |
//! | `time_unix_nano`, else `observed_time_unix_nano`, else the time of arrival | the timestamp |
//! | resource `service.name` | the program (the source's process name) and a field `service.name`, the first |
//! | resource `host.name` | the host (else the peer's address) |
//! | resource `process.pid` | the pid |
//! | scope name | the target (logger); without one, the service name, else `otlp` |
//! | `code.file.path`/`code.filepath`, `code.line.number`/`code.lineno`, `code.function.name`/`code.function`, `code.namespace` | file, line, function, module |
//! | `thread.id`, `thread.name` | thread id and name |
//! | `event_name`, `trace_id`, `span_id` (hex) | fields of those names, when set |
//! | every other attribute | a field, in order: strings, integers, doubles and booleans as such, other values as JSON |
//!
//! A record heavier than the limit it is mapped under (see [`map`]) is
//! refused, and counted in [`Mapped::rejected`]: OTLP's partial success.

use std::fmt::Write as _;
use std::sync::Arc;

#[cfg(test)]
use logbraid::layout::Layout as _;
use logbraid::record::Value;
use logbraid::{FieldsBuf, Level, OwnedRecord, Record};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message as _;

use super::SourceCache;
use crate::output::record_weight;

/// How a request's body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Binary protobuf (`application/x-protobuf`, and gRPC).
    Protobuf,
    /// OTLP/JSON (`application/json`).
    Json,
}

/// A body that is not an `ExportLogsServiceRequest`.
#[derive(Debug, thiserror::Error)]
#[error("not an OTLP logs request ({format}): {reason}")]
pub struct DecodeError {
    format: &'static str,
    reason: String,
}

/// Decodes an `ExportLogsServiceRequest`.
pub fn decode(body: &[u8], format: Format) -> Result<ExportLogsServiceRequest, DecodeError> {
    match format {
        Format::Protobuf => ExportLogsServiceRequest::decode(body).map_err(|e| DecodeError {
            format: "protobuf",
            reason: e.to_string(),
        }),
        Format::Json => serde_json::from_slice(body).map_err(|e| DecodeError {
            format: "JSON",
            reason: e.to_string(),
        }),
    }
}

/// The records of a request, and those refused.
#[derive(Debug, Default)]
pub struct Mapped {
    /// The records, in the request's order.
    pub records: Vec<OwnedRecord>,
    /// Records refused.
    pub rejected: u64,
    /// Why, for the first refused (OTLP's `error_message`); empty when none was.
    pub reason: String,
}

/// Maps every log record of `req` (see the [module](self) table). `peer`
/// is the host of records whose resource names none; `now_ns` their time
/// when they carry none; a record whose [`record_weight`] is over
/// `max_record` bytes is refused.
pub fn map(
    req: ExportLogsServiceRequest,
    peer: &str,
    now_ns: i64,
    max_record: usize,
    sources: &mut SourceCache,
) -> Mapped {
    let mut out = Mapped::default();
    for rl in req.resource_logs {
        let attrs = rl.resource.map(|r| r.attributes).unwrap_or_default();
        let text = |key: &str| {
            attrs
                .iter()
                .find_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Any::StringValue(s) if kv.key == key => Some(s.as_str()),
                    _ => None,
                })
        };
        let service = text("service.name").unwrap_or("");
        let host = text("host.name").unwrap_or(peer);
        let pid = attrs
            .iter()
            .find_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Any::IntValue(p) if kv.key == "process.pid" => u32::try_from(*p).ok(),
                _ => None,
            })
            .unwrap_or(0);
        let source = sources.get(host, pid, service);
        for sl in rl.scope_logs {
            let scope = sl.scope.as_ref().map_or("", |s| s.name.as_str());
            let target = match (scope, service) {
                ("", "") => "otlp",
                ("", s) => s,
                (s, _) => s,
            };
            for lr in sl.log_records {
                let r = record(&lr, target, service, &source, now_ns);
                let weight = record_weight(&r);
                if weight > max_record {
                    if out.rejected == 0 {
                        out.reason = format!(
                            "a record of {weight} bytes is over the limit of {max_record} bytes"
                        );
                    }
                    out.rejected += 1;
                    continue;
                }
                out.records.push(r);
            }
        }
    }
    out
}

/// The level of an OTLP severity number, or of its text when the number is
/// 0 (or out of range).
pub fn level(number: i32, text: &str) -> Level {
    match number {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21..=24 => Level::Critical,
        _ => text.parse().unwrap_or(Level::Info),
    }
}

/// Attributes that become parts of the record rather than fields.
enum Part {
    File,
    Line,
    Function,
    Module,
    ThreadId,
    ThreadName,
}

fn part(key: &str) -> Option<Part> {
    Some(match key {
        "code.file.path" | "code.filepath" => Part::File,
        "code.line.number" | "code.lineno" => Part::Line,
        "code.function.name" | "code.function" => Part::Function,
        "code.namespace" => Part::Module,
        "thread.id" => Part::ThreadId,
        "thread.name" => Part::ThreadName,
        _ => return None,
    })
}

fn record(
    lr: &LogRecord,
    target: &str,
    service: &str,
    source: &Arc<logbraid::Source>,
    now_ns: i64,
) -> OwnedRecord {
    let ns = [lr.time_unix_nano, lr.observed_time_unix_nano]
        .into_iter()
        .find(|&t| t != 0)
        .map_or(now_ns, |t| i64::try_from(t).unwrap_or(i64::MAX));
    let message = match lr.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone().into_bytes(),
        Some(v) => json(v).into_bytes(),
        None => Vec::new(),
    };
    let mut fields = FieldsBuf::new();
    if !service.is_empty() {
        fields.push_str("service.name", service);
    }
    if !lr.event_name.is_empty() {
        fields.push_str("event_name", &lr.event_name);
    }
    for (key, id) in [("trace_id", &lr.trace_id), ("span_id", &lr.span_id)] {
        if !id.is_empty() {
            fields.push_str(key, &hex(id));
        }
    }
    let (mut file, mut line, mut function, mut module) = (None, None, None, None);
    let (mut thread_id, mut thread_name) = (0u64, None);
    for kv in &lr.attributes {
        let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
        match (part(&kv.key), v) {
            (Some(Part::File), Some(Any::StringValue(s))) => file = Some(s.as_str()),
            (Some(Part::Function), Some(Any::StringValue(s))) => function = Some(s.as_str()),
            (Some(Part::Module), Some(Any::StringValue(s))) => module = Some(s.as_str()),
            (Some(Part::ThreadName), Some(Any::StringValue(s))) => thread_name = Some(s.as_str()),
            (Some(Part::Line), Some(Any::IntValue(n))) if u32::try_from(*n).is_ok() => {
                line = u32::try_from(*n).ok();
            }
            (Some(Part::ThreadId), Some(Any::IntValue(n))) if *n >= 0 => thread_id = *n as u64,
            _ => push_field(&mut fields, kv),
        }
    }
    let mut r = Record::new(
        level(lr.severity_number, &lr.severity_text),
        target,
        &message,
        source,
    )
    .with_timestamp(ns)
    .with_thread_id(thread_id)
    .with_fields(fields.as_fields());
    if let Some(f) = file {
        r = r.with_file(f);
    }
    if let Some(n) = line {
        r = r.with_line(n);
    }
    if let Some(f) = function {
        r = r.with_function(f);
    }
    if let Some(m) = module {
        r = r.with_module(m);
    }
    if let Some(t) = thread_name {
        r = r.with_thread_name(t);
    }
    OwnedRecord::from_record_with_source(&r, source)
}

fn push_field(fields: &mut FieldsBuf, kv: &KeyValue) {
    let key = kv.key.as_str();
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        None => fields.push(key, Value::Null),
        Some(Any::StringValue(s)) => fields.push_str(key, s),
        Some(Any::IntValue(n)) => fields.push(key, Value::I64(*n)),
        Some(Any::DoubleValue(d)) => fields.push(key, Value::F64(*d)),
        Some(Any::BoolValue(b)) => fields.push(key, Value::Bool(*b)),
        Some(other) => fields.push_str(key, &json(other)),
    }
}

/// Lowercase hex, as OTLP/JSON writes trace and span ids.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A value as JSON text: arrays and maps as such, bytes as a hex string,
/// a double that JSON cannot hold (NaN, infinities) as its name.
fn json(v: &Any) -> String {
    to_json(v).to_string()
}

fn to_json(v: &Any) -> serde_json::Value {
    use serde_json::Value as J;
    let any = |a: &AnyValue| a.value.as_ref().map_or(J::Null, to_json);
    match v {
        Any::StringValue(s) => J::String(s.clone()),
        Any::BoolValue(b) => J::Bool(*b),
        Any::IntValue(n) => J::from(*n),
        Any::DoubleValue(d) => {
            serde_json::Number::from_f64(*d).map_or_else(|| J::String(d.to_string()), J::Number)
        }
        Any::BytesValue(b) => J::String(hex(b)),
        Any::ArrayValue(a) => J::Array(a.values.iter().map(any).collect()),
        Any::KvlistValue(kvs) => J::Object(
            kvs.values
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(J::Null, any)))
                .collect(),
        ),
        Any::StringValueStrindex(i) => J::from(*i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope};
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(key: &str, v: Any) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn request(
        resource: Vec<KeyValue>,
        scope: &str,
        logs: Vec<LogRecord>,
    ) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: scope.into(),
                        ..Default::default()
                    }),
                    log_records: logs,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn line(r: &OwnedRecord) -> String {
        let mut out = Vec::new();
        logbraid::layout::TextLayout::new().format(&r.as_record(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn severity_numbers_and_texts_map_to_levels() {
        let got: Vec<Level> = (0..=25).map(|n| level(n, "")).collect();
        let mut want = vec![Level::Info];
        for l in Level::ALL {
            want.extend([l; 4]);
        }
        want.push(Level::Info);
        assert_eq!(got, want);
        assert_eq!(level(0, "WARNING"), Level::Warn);
        assert_eq!(level(0, "fatal"), Level::Critical);
        assert_eq!(level(0, "nonsense"), Level::Info);
        assert_eq!(level(17, "debug"), Level::Error, "the number wins");
    }

    #[test]
    fn a_record_maps_with_its_resource_scope_and_attributes() {
        let lr = LogRecord {
            time_unix_nano: 1_700_000_000_123_456_789,
            observed_time_unix_nano: 5,
            severity_number: 13,
            body: Some(AnyValue {
                value: Some(Any::StringValue("disk low".into())),
            }),
            attributes: vec![
                kv("code.file.path", Any::StringValue("app.py".into())),
                kv("code.line.number", Any::IntValue(42)),
                kv("free", Any::IntValue(3)),
                kv("ratio", Any::DoubleValue(0.5)),
                kv("ok", Any::BoolValue(false)),
                kv(
                    "tags",
                    Any::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(Any::StringValue("a b".into())),
                        }],
                    }),
                ),
            ],
            trace_id: vec![0xab; 16],
            ..Default::default()
        };
        let req = request(
            vec![
                kv("service.name", Any::StringValue("shop".into())),
                kv("host.name", Any::StringValue("web-1".into())),
                kv("process.pid", Any::IntValue(77)),
            ],
            "shop.disk",
            vec![lr],
        );
        let m = map(req, "10.0.0.9", 9, usize::MAX, &mut SourceCache::new());
        assert_eq!((m.records.len(), m.rejected), (1, 0));
        let r = &m.records[0];
        assert_eq!(
            (&*r.source.host, r.source.pid, &*r.source.process_name),
            ("web-1", 77, "shop")
        );
        assert_eq!((r.file.as_deref(), r.line), (Some("app.py"), Some(42)));
        assert_eq!(
            line(r),
            format!(
                "2023-11-14T22:13:20.123456Z WARN  [77/0] shop.disk: disk low service.name=shop \
                 trace_id={} free=3 ratio=0.5 ok=false tags=\"[\\\"a b\\\"]\"\n",
                "ab".repeat(16)
            )
        );
    }

    #[test]
    fn without_a_scope_the_service_is_the_target_and_bodies_of_other_kinds_are_json() {
        let body = |v| LogRecord {
            body: Some(AnyValue { value: Some(v) }),
            severity_text: "error".into(),
            ..Default::default()
        };
        let req = request(
            vec![kv("service.name", Any::StringValue("svc".into()))],
            "",
            vec![
                body(Any::IntValue(7)),
                body(Any::BytesValue(vec![1, 255])),
                body(Any::DoubleValue(f64::NAN)),
                LogRecord::default(),
            ],
        );
        let m = map(req, "peer", 9, usize::MAX, &mut SourceCache::new());
        let got: Vec<_> = m
            .records
            .iter()
            .map(|r| {
                (
                    r.target.as_str(),
                    r.level,
                    String::from_utf8_lossy(&r.message).into_owned(),
                    r.timestamp_ns,
                    r.source.host.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("svc", Level::Error, "7".to_string(), 9, "peer"),
                ("svc", Level::Error, "\"01ff\"".to_string(), 9, "peer"),
                ("svc", Level::Error, "\"NaN\"".to_string(), 9, "peer"),
                ("svc", Level::Info, String::new(), 9, "peer"),
            ]
        );
        let bare = map(
            request(vec![], "", vec![LogRecord::default()]),
            "p",
            1,
            usize::MAX,
            &mut SourceCache::new(),
        );
        assert_eq!(bare.records[0].target, "otlp");
    }

    #[test]
    fn records_over_the_limit_are_refused_and_counted() {
        let msg = |n: usize| LogRecord {
            body: Some(AnyValue {
                value: Some(Any::StringValue("x".repeat(n))),
            }),
            ..Default::default()
        };
        let req = request(vec![], "s", vec![msg(10), msg(5000), msg(20), msg(6000)]);
        let m = map(req, "p", 1, 4096, &mut SourceCache::new());
        assert_eq!(m.records.len(), 2);
        assert_eq!(m.rejected, 2);
        assert!(
            m.reason.starts_with("a record of ")
                && m.reason.ends_with("over the limit of 4096 bytes"),
            "{}",
            m.reason
        );
    }

    #[test]
    fn json_and_protobuf_decode_to_the_same_request_and_garbage_is_an_error() {
        let json = br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"j"}}]},
            "scopeLogs":[{"scope":{"name":"s"},"logRecords":[{"timeUnixNano":"1700000000000000000",
            "severityNumber":9,"body":{"stringValue":"hi"},"attributes":[{"key":"n","value":{"intValue":"5"}}],
            "traceId":"0102030405060708090a0b0c0d0e0f10"}]}]}]}"#;
        let from_json = decode(json, Format::Json).unwrap();
        let bytes = from_json.encode_to_vec();
        assert_eq!(decode(&bytes, Format::Protobuf).unwrap(), from_json);
        let m = map(from_json, "p", 1, usize::MAX, &mut SourceCache::new());
        assert_eq!(
            line(&m.records[0]),
            "2023-11-14T22:13:20.000000Z INFO  [0/0] s: hi service.name=j \
             trace_id=0102030405060708090a0b0c0d0e0f10 n=5\n"
        );
        let e = decode(b"\xff\xff\xff", Format::Protobuf).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("not an OTLP logs request (protobuf): "),
            "{e}"
        );
        let e = decode(b"{\"resourceLogs\": 5}", Format::Json).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("not an OTLP logs request (JSON): "),
            "{e}"
        );
    }
}
