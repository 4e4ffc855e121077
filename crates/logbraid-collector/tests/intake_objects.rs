//! Records whose `extra` holds values of classes (datetime, Decimal, UUID,
//! sets, bytes in protocols 0 to 2, paths, the program's own classes), as
//! CPython pickles them: each field must be Python's `str()` of the value.

mod intake_common;

use intake_common::{hex_of, python_json};
use logbraid::Value;
use logbraid_collector::intake::pickle::{Decoder, LimitKind, Limits, PickleError, PickleValue};
use logbraid_collector::intake::python::{record_from_pickle, IntakeError, PythonIntake};
use logbraid_collector::intake::SourceCache;

/// Every value below, pickled in a LogRecord-like dict under protocols 0
/// to 5, with Python's `str()` of it (a user object's address removed).
const VALUES: &str = r#"
import datetime as dt, decimal, json, pathlib, pickle, re, uuid
class Custom:
    def __init__(self):
        self.a = 1
class Reduced:
    def __reduce__(self):
        return (Reduced, ())
tz = dt.timezone
values = [
    dt.datetime(2026, 12, 6, 7, 0, 0, 123456, tzinfo=tz(dt.timedelta(hours=1))),
    dt.datetime(2026, 12, 6, 7, 0),
    dt.datetime(1, 1, 1, 0, 0, 5),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=tz.utc),
    dt.datetime(2026, 3, 29, 2, 30, fold=1),
    dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz(-dt.timedelta(hours=3, seconds=30, microseconds=7))),
    dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz(dt.timedelta(hours=5, minutes=30), "IST")),
    dt.date(2026, 12, 6),
    dt.time(7, 0),
    dt.time(23, 59, 1, 5, tzinfo=tz(dt.timedelta(minutes=-90))),
    dt.time(1, 2, fold=1),
    dt.timedelta(0),
    dt.timedelta(days=1),
    dt.timedelta(days=-1, seconds=5),
    dt.timedelta(days=400, hours=3, microseconds=12),
    dt.timedelta(minutes=-1),
    tz.utc,
    tz(dt.timedelta(hours=-4)),
    tz(dt.timedelta(hours=2), "EET"),
    decimal.Decimal("1.50"),
    decimal.Decimal("-0"),
    decimal.Decimal("1E+3"),
    decimal.Decimal("NaN"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    uuid.UUID(int=5),
    uuid.UUID(int=2**128 - 1),
    b"ab\x00\xff'\"",
    b"",
    bytearray(b"x\xff"),
    bytearray(),
    {1, 2},
    set(),
    {"a"},
    frozenset({1}),
    frozenset(),
    (1, "a"),
    (),
    (dt.date(2026, 1, 1),),
    [dt.datetime(2026, 12, 6, 7, 0), {3}, frozenset(), decimal.Decimal("2.5"), uuid.UUID(int=1)],
    {"when": dt.time(12, 0), "amount": decimal.Decimal("9.99"), "ids": {4}},
    pathlib.Path("/tmp/x"),
    pathlib.PurePosixPath("a/b"),
    pathlib.PurePosixPath(""),
    pathlib.PureWindowsPath("C:/x/y"),
    Custom(),
    Reduced(),
    [Custom()],
]
cases = []
for v in values:
    expected = re.sub(r" at 0x[0-9a-f]+", "", str(v))
    for p in range(6):
        d = {"msg": "m", "name": "app", "levelno": 20, "v": v, "after": 7}
        cases.append({"proto": p, "type": type(v).__name__, "expected": expected,
                      "hex": pickle.dumps(d, p).hex()})
print(json.dumps(cases))
"#;

fn field<'a>(fields: &'a [(&'a str, Value<'a>)], key: &str) -> Option<&'a Value<'a>> {
    fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

#[test]
fn every_class_renders_as_str_in_every_protocol() {
    let cases = python_json(VALUES);
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 47 * 6);
    let mut intake = PythonIntake::default();
    for case in cases {
        let payload = hex_of(&case["hex"]);
        let what = format!("{} protocol {}", case["type"], case["proto"]);
        let record = intake
            .decode(&payload, "h", 0)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let fields: Vec<_> = record.fields.as_fields().iter().collect();
        let got = match field(&fields, "v") {
            Some(Value::Str(b)) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("{what}: {other:?}"),
        };
        assert_eq!(got, case["expected"].as_str().unwrap(), "{what}");
        assert_eq!(field(&fields, "after"), Some(&Value::I64(7)), "{what}");
        assert_eq!(record.message, b"m");
        assert_eq!(record.target, "app");
    }
}

/// Every prefix of these pickles, and every one with a byte changed, is
/// a record or an error, never a panic.
#[test]
fn damaged_object_pickles_are_errors_not_panics() {
    let cases = python_json(VALUES);
    let mut intake = PythonIntake::default();
    let mut records = 0;
    for case in cases.as_array().unwrap() {
        let payload = hex_of(&case["hex"]);
        for end in 0..payload.len() {
            records += usize::from(intake.decode(&payload[..end], "h", 0).is_ok());
        }
        let mut damaged = payload.clone();
        for i in 0..payload.len() {
            for b in [0x00, 0x01, 0x7f, 0x80, 0xff, payload[i] ^ 0x20] {
                damaged[i] = b;
                records += usize::from(intake.decode(&damaged, "h", 0).is_ok());
            }
            damaged[i] = payload[i];
        }
    }
    // Some damaged pickles still hold a record (a changed digit, say).
    assert!(records > 0);
}

/// Arguments Python would refuse (out of range, of the wrong type) give
/// a placeholder for the class, not a value and not a panic; a path
/// pickled as given is shown normalised.
#[test]
fn arguments_out_of_range_give_a_placeholder() {
    let mut d = Decoder::modelling_objects(Limits::default());
    let cases: [(&[u8], &str); 7] = [
        (
            b"cdatetime\ntimedelta\n(L-9223372036854775808L\nI0\nI0\ntR.",
            "<datetime.timedelta object>",
        ),
        (
            b"cdatetime\ntimezone\n(cdatetime\ntimedelta\n(I999999999\nI0\nI0\ntRtR.",
            "<datetime.timezone object>",
        ),
        (
            b"cdatetime\ndate\n(C\x04\x07\xea\x0d\x01tR.",
            "<datetime.date object>",
        ),
        (
            b"cdatetime\ntime\n(C\x06\x18\x00\x00\x00\x00\x00tR.",
            "<datetime.time object>",
        ),
        (b"cdecimal\nDecimal\n(I1\ntR.", "<decimal.Decimal object>"),
        // As Python 3.13 pickles Path('/tmp//x/./y/'): the path as given.
        (
            b"cpathlib\nPosixPath\n(X\x0c\x00\x00\x00/tmp//x/./y/tR.",
            "/tmp/x/y",
        ),
        (
            b"cuuid\nUUID\n)\x81}(X\x03\x00\x00\x00intI-1\nub.",
            "<uuid.UUID object>",
        ),
    ];
    for (pickle, shown) in cases {
        match d.decode(pickle) {
            Ok(PickleValue::Object(o)) => {
                assert_eq!(o.text(), shown);
                assert_eq!(o.unmodelled().is_some(), shown.starts_with('<'));
            }
            other => panic!("{shown}: {other:?}"),
        }
    }
}

/// The reader used alone keeps refusing globals unless asked to model
/// them; modelled, a datetime is an object with Python's `repr()`.
#[test]
fn modelling_is_asked_for() {
    let d = python_json(
        r#"
import datetime, json, pickle
print(json.dumps(pickle.dumps(datetime.date(2026, 12, 6), 1).hex()))
"#,
    );
    let payload = hex_of(&d);
    let mut strict = Decoder::new(Limits::default());
    assert_eq!(
        strict.decode(&payload),
        Err(PickleError::Forbidden {
            name: "GLOBAL",
            offset: 0
        })
    );
    let mut modelling = Decoder::modelling_objects(Limits::default());
    match modelling.decode(&payload) {
        Ok(PickleValue::Object(o)) => {
            assert_eq!(o.text(), "2026-12-06");
            assert_eq!(o.repr(), "datetime.date(2026, 12, 6)");
            assert_eq!(o.type_name(), "date");
            assert_eq!(o.unmodelled(), None);
        }
        other => panic!("{other:?}"),
    }
}

/// Placeholders are for extras only: a class instance, a function or a
/// call anywhere else in the record refuses it, naming the opcode that
/// named the code.
#[test]
fn unknown_objects_outside_extras_are_refused() {
    let d = python_json(
        r#"
import json, os, pickle
class Thing:
    pass
class D(dict):
    pass
cases = {
    "dict_subclass_extra": pickle.dumps({"msg": "m", "d": D(a=1)}, 1),
    "msg": pickle.dumps({"msg": Thing()}, 1),
    "args": pickle.dumps({"msg": "%s", "args": (Thing(),)}, 2),
    "key": pickle.dumps({Thing(): 1}, 4),
    "function_extra": pickle.dumps({"msg": "m", "f": os.system}, 4),
    "class_extra": pickle.dumps({"msg": "m", "c": Thing}, 1),
}
print(json.dumps({k: v.hex() for k, v in cases.items()}))
"#,
    );
    let run = |name: &str| {
        record_from_pickle(
            &hex_of(&d[name]),
            "h",
            0,
            &Limits::default(),
            &mut SourceCache::new(),
        )
    };
    // copy_reg._reconstructor, named first, at offset 13.
    assert_eq!(
        run("msg").unwrap_err(),
        IntakeError::Pickle(PickleError::Forbidden {
            name: "GLOBAL",
            offset: 13
        })
    );
    assert!(matches!(
        run("args").unwrap_err(),
        IntakeError::Pickle(PickleError::Forbidden { name: "GLOBAL", .. })
    ));
    assert!(matches!(
        run("key").unwrap_err(),
        IntakeError::Pickle(PickleError::Forbidden {
            name: "STACK_GLOBAL",
            ..
        })
    ));
    let shown = |name: &str| {
        let r = run(name).unwrap();
        let fields: Vec<_> = r.fields.as_fields().iter().collect();
        match &fields[..] {
            [(_, Value::Str(b))] => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(shown("function_extra"), "<class 'posix.system'>");
    assert_eq!(shown("class_extra"), "<class '__main__.Thing'>");
    // copyreg._reconstructor(D, dict, {...}): a class the reader does not
    // know, whatever it derives from.
    assert_eq!(shown("dict_subclass_extra"), "<__main__.D object>");
}

/// Limits bound what the rendered objects hold.
#[test]
fn limits_bound_the_objects() {
    let d = python_json(
        r#"
import json, pickle
print(json.dumps(pickle.dumps({"msg": "m", "s": set(range(2000))}, 1).hex()))
"#,
    );
    let payload = hex_of(&d);
    // The set's 2,000 items pass the element limit; its rendered text
    // (4 KiB, cut) passes the byte limit.
    for (kind, limits) in [
        (
            LimitKind::TotalBytes,
            Limits {
                max_total_bytes: 4000,
                ..Limits::default()
            },
        ),
        (
            LimitKind::Elements,
            Limits {
                max_elements: 1000,
                ..Limits::default()
            },
        ),
    ] {
        match Decoder::modelling_objects(limits).decode(&payload) {
            Err(PickleError::Limit { kind: k, .. }) => assert_eq!(k, kind),
            other => panic!("{kind:?}: {other:?}"),
        }
    }
    // With the default limits, the set's text is cut, and the field too.
    let r = PythonIntake::default().decode(&payload, "h", 0).unwrap();
    let fields: Vec<_> = r.fields.as_fields().iter().collect();
    match &fields[..] {
        [("s", Value::Str(b))] => {
            assert_eq!(b.len(), 1024 + 3);
            assert!(b.starts_with(b"{0, 1, 2, "));
            assert!(b.ends_with(b"..."));
        }
        other => panic!("{other:?}"),
    }
}
