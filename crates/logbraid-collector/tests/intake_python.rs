//! Records from real Python `SocketHandler`/`DatagramHandler` bytes.

mod intake_common;

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;

use intake_common::{hex_of, python, python_json};
use logbraid::{FieldsBuf, Level, OwnedRecord, Source, Value};
use logbraid_collector::intake::pickle::{Limits, PickleError};
use logbraid_collector::intake::python::{
    datagram, record_from_pickle, FrameDecoder, FrameError, IntakeError, PythonIntake,
};
use logbraid_collector::intake::SourceCache;
use serde_json::Value as Json;

const PEER: &str = "10.1.2.3";
const RECEIVED: i64 = 42;

/// Shared by the scripts: a logger whose records are captured, and a
/// description of a record (with the frame `makePickle` gives for it)
/// from Python's own view of the record.
const PRELUDE: &str = r#"
import json, logging, logging.handlers, os, pickle, struct, sys, threading
from decimal import Decimal, ROUND_HALF_EVEN
STD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
H = logging.handlers.SocketHandler("localhost", None)

def created_ns(c, msecs=None):
    """created, rounded to the microsecond, then moved into the
    millisecond msecs says when within a microsecond of it."""
    ns = int(Decimal(c).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN) * 10**9)
    if not isinstance(msecs, float) or not 0 <= msecs < 1000:
        return ns
    start = ns - ns % 10**9
    for second in (start, start - 10**9, start + 10**9):
        lo = second + int(msecs) * 10**6
        if lo - 1000 <= ns <= lo + 999_999 + 1000:
            return min(max(ns, lo), lo + 999_999)
    return ns

def typed(v):
    if v is None: return ["none", None]
    if isinstance(v, bool): return ["bool", v]
    if isinstance(v, int): return ["int", str(v)]
    if isinstance(v, float): return ["float", struct.pack("<d", v).hex()]
    if isinstance(v, str): return ["str", v]
    return ["repr", repr(v)]

def describe(record):
    frame = H.makePickle(record)
    return {
        "frame": frame.hex(),
        "created_ns": created_ns(record.created, record.__dict__.get("msecs")),
        "message": record.getMessage(),
        "name": record.name, "levelno": record.levelno, "levelname": record.levelname,
        "pathname": record.pathname, "module": record.module, "lineno": record.lineno,
        "funcName": record.funcName, "process": record.process,
        "processName": record.processName, "thread": record.thread,
        "threadName": record.threadName, "exc_text": record.exc_text,
        "stack_info": record.stack_info,
        "extras": [[k, *typed(v)] for k, v in record.__dict__.items() if k not in STD],
    }

class Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []
    def emit(self, record):
        self.records.append(record)

cap = Capture()
log = logging.getLogger("app.db")
log.setLevel(1)
log.addHandler(cap)
log.propagate = False
"#;

fn script(body: &str) -> Json {
    python_json(&format!("{PRELUDE}\n{body}"))
}

/// Cuts the single frame out of `SocketHandler` bytes.
fn one_frame(bytes: &[u8]) -> Vec<u8> {
    let mut d = FrameDecoder::default();
    d.push(bytes);
    let frame = d.next_frame().unwrap().expect("a whole frame").to_vec();
    assert_eq!(d.next_frame(), Ok(None));
    assert_eq!(d.finish(), Ok(()));
    frame
}

fn decode(frame_hex: &Json) -> Result<OwnedRecord, IntakeError> {
    let frame = one_frame(&hex_of(frame_hex));
    record_from_pickle(
        &frame,
        PEER,
        RECEIVED,
        &Limits::default(),
        &mut SourceCache::new(),
    )
}

fn s(v: &Json) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// The record the documented mapping gives for what Python said the
/// LogRecord held.
fn expected(d: &Json) -> OwnedRecord {
    let levelno = d["levelno"].as_i64().unwrap();
    let level = Level::from_python(levelno);
    let mut fields = FieldsBuf::new();
    if i64::from(level.python_number()) != levelno {
        fields.push("levelno", Value::I64(levelno));
    }
    let levelname = d["levelname"].as_str().unwrap();
    if levelname != level.python_name() {
        fields.push_str("levelname", levelname);
    }
    for key in ["exc_text", "stack_info"] {
        if let Some(text) = d[key].as_str() {
            fields.push_str(key, text);
        }
    }
    for extra in d["extras"].as_array().unwrap() {
        let key = extra[0].as_str().unwrap();
        match extra[1].as_str().unwrap() {
            "none" => fields.push(key, Value::Null),
            "bool" => fields.push(key, Value::Bool(extra[2].as_bool().unwrap())),
            "int" => {
                let text = extra[2].as_str().unwrap();
                match (text.parse::<i64>(), text.parse::<u64>()) {
                    (Ok(i), _) => fields.push(key, Value::I64(i)),
                    (_, Ok(u)) => fields.push(key, Value::U64(u)),
                    _ => fields.push_str(key, text),
                }
            }
            "float" => {
                let bits = hex_of(&extra[2]);
                let f = f64::from_le_bytes(bits.try_into().unwrap());
                fields.push(key, Value::F64(f));
            }
            "str" => fields.push_str(key, extra[2].as_str().unwrap()),
            "repr" => {
                // Longer reprs are cut at 1,024 bytes and marked.
                let full = extra[2].as_str().unwrap();
                if full.len() > 1024 {
                    let mut end = 1024;
                    while !full.is_char_boundary(end) {
                        end -= 1;
                    }
                    fields.push_str(key, &format!("{}...", &full[..end]));
                } else {
                    fields.push_str(key, full);
                }
            }
            other => panic!("unknown kind {other}"),
        }
    }
    OwnedRecord {
        timestamp_ns: d["created_ns"].as_i64().unwrap(),
        level,
        target: s(&d["name"]).unwrap(),
        message: d["message"].as_str().unwrap().as_bytes().to_vec(),
        module: s(&d["module"]),
        file: s(&d["pathname"]),
        line: d["lineno"].as_u64().map(|l| l as u32),
        function: s(&d["funcName"]),
        thread_id: d["thread"].as_u64().unwrap_or(0),
        thread_name: s(&d["threadName"]),
        source: Arc::new(Source {
            host: PEER.to_string(),
            pid: d["process"].as_u64().map_or(0, |p| p as u32),
            process_name: s(&d["processName"]).unwrap_or_default(),
        }),
        fields,
    }
}

#[test]
fn a_logged_record_with_extras_maps_every_attribute() {
    let d = script(
        r#"
log.warning("user %s logged in %d times", "ada", 3, extra={
    "user": "ada", "n": -7, "ratio": 0.1, "ok": True, "nothing": None,
    "tags": ["a", 1, (2.5, None)], "meta": {"k": "v", "n": {"deep": []}},
    "big": 2**70, "u": 2**63 + 5, "unicode_k\u00e9y": "v\u00e4lue",
    "long_list": list(range(1000)),
})
print(json.dumps(describe(cap.records[0])))
"#,
    );
    let got = decode(&d["frame"]).unwrap();
    assert_eq!(got, expected(&d));
    // The same, spelled out for what the mapping decides.
    assert_eq!(got.level, Level::Warn);
    assert_eq!(got.target, "app.db");
    assert_eq!(got.message, b"user ada logged in 3 times");
    assert_eq!(got.module.as_deref(), Some("<string>"));
    assert_eq!(got.function.as_deref(), Some("<module>"));
    assert_eq!(got.file.as_deref(), Some("<string>"));
    assert_eq!(got.source.host, PEER);
    assert_eq!(got.source.process_name, "MainProcess");
    let fields: Vec<(&str, Value<'_>)> = got.fields.as_fields().iter().collect();
    let long_list = {
        let mut s = String::from("[");
        let mut i = 0;
        while s.len() < 1024 {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(&i.to_string());
            i += 1;
        }
        s.truncate(1024);
        s + "..."
    };
    assert_eq!(
        fields,
        vec![
            ("user", Value::Str(b"ada")),
            ("n", Value::I64(-7)),
            ("ratio", Value::F64(0.1)),
            ("ok", Value::Bool(true)),
            ("nothing", Value::Null),
            ("tags", Value::Str(b"['a', 1, (2.5, None)]")),
            ("meta", Value::Str(b"{'k': 'v', 'n': {'deep': []}}")),
            ("big", Value::Str(b"1180591620717411303424")),
            ("u", Value::U64((1 << 63) + 5)),
            ("unicode_k\u{e9}y", Value::Str("v\u{e4}lue".as_bytes())),
            ("long_list", Value::Str(long_list.as_bytes())),
        ]
    );
}

#[test]
fn exception_traceback_and_stack_info_are_kept_whole() {
    let d = script(
        r#"
# A formatter that uses the time leaves `asctime` in the pickled dict.
H.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
def fail():
    return 1 / 0
try:
    fail()
except ZeroDivisionError:
    log.exception("it failed: %s", "badly", stack_info=True)
d = describe(cap.records[0])
d["has_asctime"] = "asctime" in pickle.loads(bytes.fromhex(d["frame"])[4:])
print(json.dumps(d))
"#,
    );
    assert_eq!(d["has_asctime"], true);
    let got = decode(&d["frame"]).unwrap();
    assert_eq!(got, expected(&d));
    assert_eq!(got.level, Level::Error);
    let exc = d["exc_text"].as_str().unwrap();
    assert!(exc.starts_with("Traceback (most recent call last):\n"));
    assert!(exc.ends_with("ZeroDivisionError: division by zero"));
    let stack = d["stack_info"].as_str().unwrap();
    assert!(stack.starts_with("Stack (most recent call last):\n"));
    let fields: Vec<_> = got.fields.as_fields().iter().collect();
    assert_eq!(
        fields,
        vec![
            ("exc_text", Value::Str(exc.as_bytes())),
            ("stack_info", Value::Str(stack.as_bytes())),
        ]
    );
}

#[test]
fn unicode_everywhere() {
    let d = script(
        r#"
ulog = logging.getLogger("app.\u00fcn\u00efc\u00f8de")
ulog.setLevel(1)
ulog.addHandler(cap)
def work():
    ulog.info("h\u00e9llo \U0001f600 %s", "w\u00f6rld \u65e5\u672c", extra={"\u00e9": "\u00e8"})
t = threading.Thread(target=work, name="w\u00f6rker-\u4e00")
t.start()
t.join()
print(json.dumps(describe(cap.records[0])))
"#,
    );
    let got = decode(&d["frame"]).unwrap();
    assert_eq!(got, expected(&d));
    assert_eq!(got.target, "app.\u{fc}n\u{ef}c\u{f8}de");
    assert_eq!(
        String::from_utf8(got.message).unwrap(),
        "h\u{e9}llo \u{1f600} w\u{f6}rld \u{65e5}\u{672c}"
    );
    assert_eq!(got.thread_name.as_deref(), Some("w\u{f6}rker-\u{4e00}"));
    assert_eq!(got.function.as_deref(), Some("work"));
}

#[test]
fn created_is_exact_to_the_microsecond() {
    let d = script(
        r#"
r = logging.makeLogRecord({"name": "t", "msg": "m", "levelno": 20, "levelname": "INFO",
                           "created": 1700000000.123456, "msecs": 123.0})
print(json.dumps(describe(r)))
"#,
    );
    let got = decode(&d["frame"]).unwrap();
    assert_eq!(got.timestamp_ns, 1_700_000_000_123_456_000);
    assert_eq!(got, expected(&d));

    // Many clock readings, from 1970 to 2100: each comes back as the
    // microsecond it was.
    let d = script(
        r#"
import random
rng = random.Random(7)
micros = [rng.randrange(0, 4102444800 * 10**6) for _ in range(3000)]
micros += [0, 1, 999999, 1700000000999999, 4102444799999999]
frames = []
for us in micros:
    r = logging.makeLogRecord({"msg": "m", "levelno": 20, "created": us / 10**6})
    del r.msecs  # the clock's, not this created's
    frames.append([us, H.makePickle(r).hex()])
print(json.dumps(frames))
"#,
    );
    let mut sources = SourceCache::new();
    for pair in d.as_array().unwrap() {
        let us = pair[0].as_i64().unwrap();
        let frame = one_frame(&hex_of(&pair[1]));
        let got = record_from_pickle(&frame, PEER, 0, &Limits::default(), &mut sources).unwrap();
        assert_eq!(got.timestamp_ns, us * 1000, "created = {us} us");
    }
}

/// The time Python's `logging.Formatter` prints for a record (`asctime`,
/// `msecs`) is the time the collector's Python layout prints for it, also
/// where `created` rounded to the microsecond crosses a millisecond or a
/// second that Python's `msecs` does not.
#[test]
fn asctime_and_msecs_print_as_the_sender_prints_them() {
    let d = script(
        r#"
import random, time
rng = random.Random(11)
# Whole milliseconds (as floats, often a hair below), their neighbours,
# ends of seconds, random readings.
values = [(1700000000000 + k) / 1000 for k in range(0, 3000, 7)]
values += [1700000000 + k + 0.9999996 for k in range(50)]
values += [v + d for v in values[:200] for d in (-4e-7, 4e-7)]
values += [rng.randrange(0, 4102444800 * 10**6) / 10**6 for _ in range(1000)]
f = logging.Formatter("%(asctime)s|%(msecs)03d|%(asctime)s", "%H:%M:%S")
g = logging.Formatter("%(asctime)s")
f.converter = g.converter = time.gmtime
out = []
for c in values:
    r = logging.makeLogRecord({"msg": "m", "levelno": 20})
    # What LogRecord.__init__ computes from a clock reading of c.
    r.created = c
    r.msecs = int((c - int(c)) * 1000) + 0.0
    out.append([H.makePickle(r).hex(), f.format(r), g.format(r)])
print(json.dumps(out))
"#,
    );
    use logbraid::layout::{Layout as _, PythonLayout};
    let mut f = PythonLayout::new("%(asctime)s|%(msecs)03d|%(asctime)s", Some("%H:%M:%S"))
        .unwrap()
        .with_utc(true);
    let mut g = PythonLayout::new("%(asctime)s", None)
        .unwrap()
        .with_utc(true);
    let mut sources = SourceCache::new();
    let mut moved = 0;
    for case in d.as_array().unwrap() {
        let frame = one_frame(&hex_of(&case[0]));
        let got = record_from_pickle(&frame, PEER, 0, &Limits::default(), &mut sources).unwrap();
        for (layout, want) in [(&mut f, &case[1]), (&mut g, &case[2])] {
            let mut line = Vec::new();
            layout.format(&got.as_record(), &mut line);
            assert_eq!(
                String::from_utf8(line).unwrap(),
                format!("{}\n", want.as_str().unwrap())
            );
        }
        moved += usize::from(got.timestamp_ns % 1_000_000 == 999_999);
    }
    // Some roundings did cross a boundary and were undone.
    assert!(moved > 10, "{moved}");
}

#[test]
fn every_protocol_gives_the_same_record() {
    let d = script(
        r#"
try:
    {}["missing"]
except KeyError:
    log.error("lookup %r failed", "missing", exc_info=True, extra={
        "a": [1, {"b": (None,)}], "f": -0.0, "i": 2**40, "s": "\u00e9\n\\\x00'\""})
desc = describe(cap.records[0])
d = pickle.loads(H.makePickle(cap.records[0])[4:])
desc["protocols"] = [struct.pack(">L", len(p)).hex() + p.hex()
                     for p in (pickle.dumps(d, n) for n in range(6))]
print(json.dumps(desc))
"#,
    );
    let reference = decode(&d["frame"]).unwrap();
    assert_eq!(reference, expected(&d));
    let protocols = d["protocols"].as_array().unwrap();
    assert_eq!(protocols.len(), 6);
    for (n, frame) in protocols.iter().enumerate() {
        assert_eq!(decode(frame).unwrap(), reference, "protocol {n}");
    }
}

#[test]
fn levels_custom_and_standard() {
    let d = script(
        r#"
logging.addLevelName(25, "NOTICE")
logging.addLevelName(5, "TRACE")
out = []
for level in (5, 10, 20, 25, 30, 40, 50, 0, 1, 99):
    log.log(level, "at %d", level) if level else cap.emit(logging.makeLogRecord(
        {"name": "app.db", "msg": "at 0", "levelno": 0, "levelname": "NOTSET"}))
    out.append(describe(cap.records[-1]))
print(json.dumps(out))
"#,
    );
    let want = [
        (Level::Trace, None, None),
        (Level::Debug, None, None),
        (Level::Info, None, None),
        (Level::Info, Some(25), Some("NOTICE")),
        (Level::Warn, None, None),
        (Level::Error, None, None),
        (Level::Critical, None, None),
        (Level::Trace, Some(0), Some("NOTSET")),
        (Level::Trace, Some(1), Some("Level 1")),
        (Level::Critical, Some(99), Some("Level 99")),
    ];
    for (d, (level, levelno, levelname)) in d.as_array().unwrap().iter().zip(want) {
        let got = decode(&d["frame"]).unwrap();
        assert_eq!(got, expected(d));
        assert_eq!(got.level, level);
        let mut fields = FieldsBuf::new();
        if let Some(n) = levelno {
            fields.push("levelno", Value::I64(n));
        }
        if let Some(name) = levelname {
            fields.push_str("levelname", name);
        }
        assert_eq!(got.fields, fields);
    }
}

/// Senders that pickle a LogRecord's dict without formatting it first.
#[test]
fn args_left_unformatted_are_applied_when_they_can_be() {
    let d = script(
        r#"
base = {"name": "x", "levelno": 20, "levelname": "INFO", "created": 1.5, "exc_info": None}
cases = [
    ("%s=%d (%.1f%%)", ("a", 7, 99.44)),
    ("%(user)s/%(n)05.1f", {"user": "ada", "n": 3.14159}),
    ("%s", (["x", 1],)),
    ("%s %s", ("only one",)),
    ("%d", ("not a number",)),
    ("no args", ()),
    ("kept", None),
]
out = []
for msg, args in cases:
    error = None
    try:
        py = msg % args if args else msg
    except (TypeError, ValueError) as e:
        py, error = None, f"{type(e).__name__}: {e}"
    data = pickle.dumps(dict(base, msg=msg, args=args), 1)
    out.append({"frame": (struct.pack(">L", len(data)) + data).hex(), "python": py,
                "error": error, "args_repr": repr(args)})
print(json.dumps(out))
"#,
    );
    let cases = d.as_array().unwrap();
    let messages: Vec<Vec<u8>> = cases
        .iter()
        .map(|c| decode(&c["frame"]).unwrap().message)
        .collect();
    assert_eq!(
        messages,
        vec![
            b"a=7 (99.4%)".to_vec(),
            b"ada/003.1".to_vec(),
            b"['x', 1]".to_vec(),
            b"%s %s".to_vec(),
            b"%d".to_vec(),
            b"no args".to_vec(),
            b"kept".to_vec(),
        ]
    );
    for c in cases {
        let got = decode(&c["frame"]).unwrap();
        match c["python"].as_str() {
            // Where Python formats, the result is Python's.
            Some(py) => {
                assert_eq!(got.message, py.as_bytes());
                assert!(got.fields.is_empty());
            }
            // Where Python raises, msg is kept, and the error Python
            // raised and the args are shown as fields.
            None => {
                let mut f = FieldsBuf::new();
                f.push_str("format_error", c["error"].as_str().unwrap());
                f.push_str("args", c["args_repr"].as_str().unwrap());
                assert_eq!(got.fields, f);
            }
        }
    }
}

#[test]
fn pickles_that_are_not_log_records_are_refused_and_extras_of_classes_kept() {
    let d = script(
        r#"
import datetime
class Thing:
    pass
r = logging.makeLogRecord({"msg": "hello"})
cases = {
    "record_object": pickle.dumps(r),
    "record_object_p1": pickle.dumps(r, 1),
    "os_system": pickle.dumps(os.system),
    "instance": pickle.dumps(Thing(), 2),
    "datetime_extra": H.makePickle(logging.makeLogRecord(
        {"msg": "m", "when": datetime.datetime(2024, 1, 1)}))[4:],
    "bytes_extra_protocol_1": H.makePickle(logging.makeLogRecord(
        {"msg": "m", "payload": b"\x00"}))[4:],
    "list": pickle.dumps([1, 2], 1),
    "bad_levelno": pickle.dumps({"msg": "m", "levelno": "high"}, 1),
    "bad_created": pickle.dumps({"msg": "m", "created": float("nan")}, 1),
    "bad_thread": pickle.dumps({"msg": "m", "thread": -1}, 1),
    "bad_name": pickle.dumps({"msg": "m", "name": 3}, 1),
}
print(json.dumps({k: v.hex() for k, v in cases.items()}))
"#,
    );
    let run = |name: &str| -> IntakeError {
        let payload = hex_of(&d[name]);
        record_from_pickle(
            &payload,
            PEER,
            0,
            &Limits::default(),
            &mut SourceCache::new(),
        )
        .unwrap_err()
    };
    let forbidden =
        |name: &'static str, offset| IntakeError::Pickle(PickleError::Forbidden { name, offset });
    // pickle.dumps(record): protocol 4 names logging.LogRecord with
    // STACK_GLOBAL after two strings and their MEMOIZEs.
    assert_eq!(run("record_object"), forbidden("STACK_GLOBAL", 33));
    assert_eq!(run("record_object_p1"), forbidden("GLOBAL", 0));
    assert_eq!(run("os_system"), forbidden("STACK_GLOBAL", 28));
    assert_eq!(run("instance"), forbidden("GLOBAL", 2));
    // Extras of known classes are read without running code (protocol 1,
    // which makePickle uses, stores bytes by naming _codecs.encode).
    for (name, key, shown) in [
        ("datetime_extra", "when", "2024-01-01 00:00:00"),
        ("bytes_extra_protocol_1", "payload", "b'\\x00'"),
    ] {
        let r = record_from_pickle(
            &hex_of(&d[name]),
            PEER,
            0,
            &Limits::default(),
            &mut SourceCache::new(),
        )
        .unwrap();
        // makeLogRecord({...}) leaves levelname "Level None", kept too.
        let fields: Vec<_> = r.fields.as_fields().iter().collect();
        assert_eq!(fields[1..], [(key, Value::Str(shown.as_bytes()))], "{name}");
    }
    assert_eq!(run("list"), IntakeError::NotADict { found: "list" });
    assert_eq!(
        run("bad_levelno"),
        IntakeError::BadField {
            key: "levelno",
            expected: "int",
            found: "str"
        }
    );
    assert_eq!(
        run("bad_created"),
        IntakeError::BadField {
            key: "created",
            expected: "seconds since the epoch",
            found: "float"
        }
    );
    assert_eq!(
        run("bad_thread"),
        IntakeError::BadField {
            key: "thread",
            expected: "a thread id",
            found: "int"
        }
    );
    assert_eq!(
        run("bad_name"),
        IntakeError::BadField {
            key: "name",
            expected: "str",
            found: "int"
        }
    );
    assert!(run("instance").to_string().contains("GLOBAL"));
}

#[test]
fn a_minimal_dict_gets_defaults() {
    let payload = python(
        r#"
import pickle, sys
sys.stdout.buffer.write(pickle.dumps({"msg": "only a message", "levelname": "ERROR"}, 1))
"#,
    );
    let got = record_from_pickle(
        &payload,
        PEER,
        RECEIVED,
        &Limits::default(),
        &mut SourceCache::new(),
    )
    .unwrap();
    assert_eq!(
        got,
        OwnedRecord::new(
            Level::Error,
            "root",
            b"only a message",
            Arc::new(Source {
                host: PEER.into(),
                pid: 0,
                process_name: String::new(),
            }),
        )
        .with_timestamp(RECEIVED)
    );
}

#[test]
fn records_of_one_process_share_their_source() {
    let d = script(
        r#"
log.info("one")
log.info("two")
print(json.dumps([describe(r) for r in cap.records]))
"#,
    );
    let mut intake = PythonIntake::default();
    let records: Vec<OwnedRecord> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            intake
                .decode(&one_frame(&hex_of(&r["frame"])), PEER, 0)
                .unwrap()
        })
        .collect();
    assert!(Arc::ptr_eq(&records[0].source, &records[1].source));
    let other = intake
        .decode(&one_frame(&hex_of(&d[0]["frame"])), "elsewhere", 0)
        .unwrap();
    assert!(!Arc::ptr_eq(&records[0].source, &other.source));
    assert_eq!(other.source.host, "elsewhere");
}

/// A real `SocketHandler` over a real TCP connection, read in whatever
/// pieces the socket gives.
#[test]
fn socket_handler_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let child = Command::new("python3")
        .arg("-c")
        .arg(format!(
            r#"
import logging, logging.handlers
h = logging.handlers.SocketHandler("127.0.0.1", {port})
log = logging.getLogger("net")
log.setLevel(logging.DEBUG)
log.addHandler(h)
for i in range(200):
    log.info("record %d %s", i, "x" * (i * 37 % 3000), extra={{"i": i}})
h.close()
"#
        ))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (mut conn, peer) = listener.accept().unwrap();
    let mut decoder = FrameDecoder::default();
    let mut intake = PythonIntake::default();
    let mut records = Vec::new();
    let mut chunk = [0u8; 1000];
    loop {
        let n = conn.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        decoder.push(&chunk[..n]);
        while let Some(frame) = decoder.next_frame().unwrap() {
            records.push(intake.decode(frame, &peer.ip().to_string(), 0).unwrap());
        }
    }
    assert_eq!(decoder.finish(), Ok(()));
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(records.len(), 200);
    for (i, r) in records.iter().enumerate() {
        let text = format!("record {i} {}", "x".repeat(i * 37 % 3000));
        assert_eq!(r.message, text.as_bytes());
        assert_eq!(r.target, "net");
        assert_eq!(r.source.host, "127.0.0.1");
        let fields: Vec<_> = r.fields.as_fields().iter().collect();
        assert_eq!(fields, vec![("i", Value::I64(i as i64))]);
    }
}

/// A real `DatagramHandler` over UDP: one frame per datagram.
#[test]
fn datagram_handler_over_udp() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Only so that a lost datagram fails the test instead of hanging it.
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let status = Command::new("python3")
        .arg("-c")
        .arg(format!(
            r#"
import logging, logging.handlers
h = logging.handlers.DatagramHandler("127.0.0.1", {port})
log = logging.getLogger("udp")
log.addHandler(h)
for i in range(3):
    log.warning("datagram %d", i)
h.close()
"#
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let mut intake = PythonIntake::default();
    let mut buf = vec![0u8; 65536];
    for i in 0..3 {
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        let record = intake
            .decode(datagram(&buf[..n]).unwrap(), PEER, 0)
            .unwrap();
        assert_eq!(record.message, format!("datagram {i}").as_bytes());
        assert_eq!(record.level, Level::Warn);
        assert_eq!(record.target, "udp");
    }
}

#[test]
fn frames_in_any_pieces_and_bad_frames() {
    let d = script(
        r#"
for i in range(5):
    log.info("piece %d", i)
print(json.dumps([describe(r) for r in cap.records]))
"#,
    );
    let stream: Vec<u8> = d
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| hex_of(&r["frame"]))
        .collect();
    for piece in [1, 2, 3, 7, 64, stream.len()] {
        let mut decoder = FrameDecoder::new(1 << 16);
        let mut messages = Vec::new();
        for chunk in stream.chunks(piece) {
            decoder.push(chunk);
            while let Some(frame) = decoder.next_frame().unwrap() {
                let r =
                    record_from_pickle(frame, PEER, 0, &Limits::default(), &mut SourceCache::new())
                        .unwrap();
                messages.push(String::from_utf8(r.message).unwrap());
            }
        }
        assert_eq!(
            messages,
            (0..5).map(|i| format!("piece {i}")).collect::<Vec<_>>()
        );
        assert_eq!(decoder.buffered(), 0);
    }

    // A frame over the limit is refused when its prefix arrives; the frames
    // before it still come out.
    let first = one_frame(&hex_of(&d[0]["frame"]));
    let mut decoder = FrameDecoder::new(first.len());
    decoder.push(&hex_of(&d[0]["frame"]));
    decoder.push(&[0, 0, 0x10, 0]);
    decoder.push(&[0u8; 100]);
    assert_eq!(decoder.buffered(), first.len() + 4);
    assert_eq!(decoder.next_frame(), Ok(Some(&first[..])));
    let too_large = FrameError::TooLarge {
        len: 0x1000,
        max: first.len(),
    };
    assert_eq!(decoder.next_frame(), Err(too_large.clone()));
    assert_eq!(decoder.finish(), Err(too_large));

    // Datagrams must carry exactly the length they announce.
    let whole = hex_of(&d[0]["frame"]);
    assert_eq!(datagram(&whole), Ok(&first[..]));
    assert_eq!(
        datagram(&whole[..whole.len() - 1]),
        Err(FrameError::LengthMismatch {
            declared: first.len() as u32,
            actual: first.len() - 1
        })
    );
    assert_eq!(datagram(&[0, 0, 1]), Err(FrameError::TooShort { len: 3 }));
    assert_eq!(datagram(&[0, 0, 0, 0]), Ok(&[][..]));
}
