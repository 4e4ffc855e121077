//! The pickle reader against pickles written by real Python 3.

mod intake_common;

use intake_common::{hex_of, python_json};
use logbraid_collector::intake::pickle::{
    decode, LimitKind, Limits, PickleError, PickleValue, MAX_DEPTH_CAP,
};

fn d(bytes: &[u8]) -> Result<PickleValue<'_>, PickleError> {
    decode(bytes, &Limits::default())
}

fn repr(v: &PickleValue<'_>) -> String {
    let mut s = String::new();
    v.write_repr(&mut s, usize::MAX);
    s
}

fn s(v: &str) -> PickleValue<'_> {
    PickleValue::Str(v.to_string().into())
}

/// Values pickled with every protocol that can store them without calling
/// code, as (name, protocol, pickle, Python's repr of `pickle.loads`).
const PLAIN_VALUES: &str = r#"
import json, pickle, pickletools
x = [1, 2]
many = ["s%d" % i for i in range(300)]
cases = {
    "none": (None, range(6)),
    "bools": ((True, False), range(6)),
    "ints": ([0, 1, -1, 255, 256, 65535, 65536, -65536, 2**31 - 1, -2**31, 2**31,
              2**63 - 1, -2**63], range(6)),
    "bigints": ([2**63, -2**63 - 1, 2**64, 2**200, -(2**200), 2**3000], range(6)),
    "floats": ([0.0, -0.0, 1.5, 1e300, -2.5e-300, float("inf"), float("-inf"), 0.1,
                1e16, 1e-5, 123456.789], range(6)),
    "strings": (["", "abc", "\u00e9", "\u65e5\u672c\u8a9e", "\U0001f600",
                 "a\nb\\c\r\x00\x1a", "quote'\"", "it's", "x" * 300,
                 "back\\u0041slash"], range(6)),
    "bytes": ([b"", b"\x00\xff", b"'", b"x" * 300], range(3, 6)),
    "bytearray": (bytearray(b"ab\x00"), [5]),
    "containers": ({"list": [1, [2, []]], "tuple": (), "t1": (1,), "t2": (1, 2),
                    "t3": (1, 2, 3), "t4": (1, 2, 3, 4), "dict": {1: "a", (1, 2): None},
                    "nested": {"a": {"b": {"c": [None]}}}}, range(6)),
    "shared": ([x, x, {"k": x}, (x,)], range(6)),
    "many_memo": ([many, many[-1], many], range(6)),
    "biglist": (list(range(2500)), range(6)),
    "bigdict": ({"k%d" % i: i for i in range(1500)}, range(6)),
}
out = []
ops = set()
for name, (value, protos) in cases.items():
    for p in protos:
        data = pickle.dumps(value, p)
        ops.update(op.name for op, _, _ in pickletools.genops(data))
        loaded = pickle.loads(data)
        if isinstance(loaded, bytearray):
            loaded = bytes(loaded)
        out.append({"name": name, "proto": p, "hex": data.hex(), "repr": repr(loaded)})
# Sets print differently ({1}) from the lists they decode to: compared apart.
sets = [{"proto": p, "hex": pickle.dumps([{3}, frozenset({4})], p).hex()} for p in (4, 5)]
for entry in sets:
    ops.update(op.name for op, _, _ in pickletools.genops(bytes.fromhex(entry["hex"])))
print(json.dumps({"values": out, "sets": sets, "ops": sorted(ops)}))
"#;

#[test]
fn every_protocol_decodes_to_what_python_loads() {
    let doc = python_json(PLAIN_VALUES);
    let values = doc["values"].as_array().unwrap();
    assert!(values.len() > 60);
    for case in values {
        let bytes = hex_of(&case["hex"]);
        let got = d(&bytes).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(
            repr(&got),
            case["repr"].as_str().unwrap(),
            "{} protocol {}",
            case["name"],
            case["proto"]
        );
    }
    for case in doc["sets"].as_array().unwrap() {
        let bytes = hex_of(&case["hex"]);
        let got = d(&bytes).unwrap();
        assert_eq!(
            got,
            PickleValue::List(vec![
                PickleValue::List(vec![PickleValue::Int(3)]),
                PickleValue::List(vec![PickleValue::Int(4)]),
            ])
        );
    }
    // The Python-written pickles above run every opcode Python 3 still
    // writes for plain values.
    let ops: Vec<&str> = doc["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    for op in [
        "PROTO",
        "FRAME",
        "STOP",
        "MARK",
        "NONE",
        "NEWTRUE",
        "NEWFALSE",
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "FLOAT",
        "BINFLOAT",
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BYTEARRAY8",
        "EMPTY_TUPLE",
        "TUPLE",
        "TUPLE1",
        "TUPLE2",
        "TUPLE3",
        "EMPTY_LIST",
        "LIST",
        "APPEND",
        "APPENDS",
        "EMPTY_DICT",
        "DICT",
        "SETITEM",
        "SETITEMS",
        "EMPTY_SET",
        "ADDITEMS",
        "FROZENSET",
        "PUT",
        "BINPUT",
        "LONG_BINPUT",
        "GET",
        "BINGET",
        "LONG_BINGET",
        "MEMOIZE",
    ] {
        assert!(ops.contains(&op), "no test pickle uses {op}: {ops:?}");
    }
}

#[test]
fn values_are_exact() {
    let doc = python_json(
        r#"
import json, pickle
v = {"i": -5, "big": 2**64, "f": 0.5, "s": "\u00e9", "b": b"\x00", "t": (None, True), "l": [[]]}
print(json.dumps([pickle.dumps(v, p).hex() for p in (3, 4, 5)]))
"#,
    );
    let want = PickleValue::Dict(vec![
        (s("i"), PickleValue::Int(-5)),
        (
            s("big"),
            PickleValue::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0, 1]),
        ),
        (s("f"), PickleValue::Float(0.5)),
        (s("s"), s("é")),
        (s("b"), PickleValue::Bytes(vec![0].into())),
        (
            s("t"),
            PickleValue::Tuple(vec![PickleValue::None, PickleValue::Bool(true)]),
        ),
        (s("l"), PickleValue::List(vec![PickleValue::List(vec![])])),
    ]);
    for hex in doc.as_array().unwrap() {
        assert_eq!(d(&hex_of(hex)), Ok(want.clone()));
    }
}

#[test]
fn nan_survives() {
    let doc = python_json(
        r#"
import json, pickle
print(json.dumps([pickle.dumps(float("nan"), p).hex() for p in range(6)]))
"#,
    );
    for hex in doc.as_array().unwrap() {
        match d(&hex_of(hex)) {
            Ok(PickleValue::Float(f)) => assert!(f.is_nan()),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn opcodes_python_3_no_longer_writes() {
    // Python 2 strings, DUP, POP, and the 8-byte lengths (only written for
    // values over 4 GiB), written by hand.
    let cases: Vec<(&[u8], PickleValue<'_>)> = vec![
        (b"S'abc'\np0\n.", s("abc")),
        (b"S\"it's\"\n.", s("it's")),
        (b"S'\\xe9'\n.", PickleValue::Bytes(vec![0xe9].into())),
        (b"S'\\xc3\\xa9\\n'\n.", s("é\n")),
        (b"U\x03abcq\x00.", s("abc")),
        (
            b"T\x02\x00\x00\x00\xff\xfe.",
            PickleValue::Bytes(vec![0xff, 0xfe].into()),
        ),
        (
            b"\x80\x04\x8d\x03\x00\x00\x00\x00\x00\x00\x00abc.",
            s("abc"),
        ),
        (
            b"\x80\x04\x8e\x02\x00\x00\x00\x00\x00\x00\x00\x01\x02.",
            PickleValue::Bytes(vec![1, 2].into()),
        ),
        (
            b"K\x012\x86.",
            PickleValue::Tuple(vec![PickleValue::Int(1), PickleValue::Int(1)]),
        ),
        (b"K\x01K\x020.", PickleValue::Int(1)),
        (b"K\x01(K\x02K\x031.", PickleValue::Int(1)),
        // POP of an empty stack above a mark pops the mark, as CPython does.
        (b"K\x01(0.", PickleValue::Int(1)),
        (
            b"(K\x01K\x02l.",
            PickleValue::List(vec![PickleValue::Int(1), PickleValue::Int(2)]),
        ),
        (
            b"(K\x01K\x02d.",
            PickleValue::Dict(vec![(PickleValue::Int(1), PickleValue::Int(2))]),
        ),
        (
            b"I42\nI-7\n\x86.",
            PickleValue::Tuple(vec![PickleValue::Int(42), PickleValue::Int(-7)]),
        ),
        (b"F1.5\n.", PickleValue::Float(1.5)),
        (b"Vcaf\\u00e9\\U0001f600\n.", s("café😀")),
        (b"\x8a\x00.", PickleValue::Int(0)),
        // Bytes after STOP are ignored, as pickle.loads ignores them.
        (b"N.trailing", PickleValue::None),
    ];
    for (bytes, want) in cases {
        assert_eq!(d(bytes), Ok(want), "{}", bytes.escape_ascii());
    }
}

/// Pickles that name or call code, each with the first such opcode and its
/// offset, found by Python's own `pickletools`.
const FORBIDDEN: &str = r#"
import copyreg, io, json, logging, os, pickle, pickletools, datetime, collections

class Thing:
    def __init__(self):
        self.a = 1

class Slotted:
    __slots__ = ("a",)
    def __init__(self):
        self.a = 1
    def __getstate__(self):
        return (None, {"a": self.a})

class WithNew:
    def __getnewargs_ex__(self):
        return ((), {"x": 1})

class Old:
    def __reduce__(self):
        return (Old, ())

copyreg.add_extension("collections", "OrderedDict", 240)
copyreg.add_extension("collections", "Counter", 70000)
copyreg.add_extension("collections", "deque", 300)

class Persist(pickle.Pickler):
    def persistent_id(self, obj):
        return "pid" if obj == "persist-me" else None

def persistent(proto):
    f = io.BytesIO()
    Persist(f, proto).dump(["persist-me"])
    return f.getvalue()

FORBIDDEN = {"GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD", "INST", "OBJ", "NEWOBJ",
             "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID", "NEXT_BUFFER",
             "READONLY_BUFFER"}
record = logging.makeLogRecord({"msg": "hello"})
samples = []
def add(label, data):
    for op, _, pos in pickletools.genops(data):
        if op.name in FORBIDDEN:
            samples.append({"label": label, "hex": data.hex(), "op": op.name, "pos": pos})
            return
    raise SystemExit("no forbidden opcode in " + label)

for p in range(6):
    add("os.system/%d" % p, pickle.dumps(os.system, p))
    add("LogRecord/%d" % p, pickle.dumps(record, p))
    add("instance/%d" % p, pickle.dumps(Thing(), p))
    add("datetime/%d" % p, pickle.dumps({"when": datetime.datetime(2024, 1, 2)}, p))
    add("ordered/%d" % p, pickle.dumps(collections.OrderedDict(a=1), p))
    add("persistent/%d" % p, persistent(p))
    if p >= 2:
        add("counter/%d" % p, pickle.dumps(collections.Counter(), p))
        add("deque/%d" % p, pickle.dumps(collections.deque(), p))
for p in range(3):
    add("bytes/%d" % p, pickle.dumps(b"\x00", p))
for p in range(4):
    add("set/%d" % p, pickle.dumps({1}, p))
add("slots/2", pickle.dumps(Slotted(), 2))
add("newobj_ex/4", pickle.dumps(WithNew(), 4))
add("old_class/0", pickle.dumps(Old(), 0))
bufs = []
add("next_buffer/5", pickle.dumps(pickle.PickleBuffer(b"abc"), 5, buffer_callback=bufs.append))
add("inst/0", b"(i__main__\nThing\n(dp0\nb.")
add("obj/1", b"(K\x01o.")
print(json.dumps(samples))
"#;

#[test]
fn pickles_that_name_code_are_rejected_with_the_opcode_and_offset() {
    let doc = python_json(FORBIDDEN);
    let samples = doc.as_array().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for sample in samples {
        let bytes = hex_of(&sample["hex"]);
        let name = sample["op"].as_str().unwrap();
        let pos = sample["pos"].as_u64().unwrap() as usize;
        let err = d(&bytes).unwrap_err();
        assert_eq!(
            err,
            PickleError::Forbidden {
                name: match_name(name),
                offset: pos
            },
            "{}",
            sample["label"]
        );
        assert!(err.to_string().contains(name), "{err}");
        seen.insert(name.to_string());
    }
    let want: std::collections::BTreeSet<String> = [
        "GLOBAL",
        "STACK_GLOBAL",
        "REDUCE",
        "BUILD",
        "INST",
        "OBJ",
        "NEWOBJ",
        "NEWOBJ_EX",
        "EXT1",
        "EXT2",
        "EXT4",
        "PERSID",
        "BINPERSID",
        "NEXT_BUFFER",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    // Python puts a mark before INST's and OBJ's arguments, and BUILD and
    // REDUCE come after GLOBAL; the hand-written ones below reach the rest.
    for op in &want {
        if !seen.contains(op) {
            assert!(
                ["REDUCE", "BUILD", "NEWOBJ", "NEWOBJ_EX"].contains(&op.as_str()),
                "no Python pickle reached {op}: {seen:?}"
            );
        }
    }
    // Each opcode rejected where it stands, even after plain values.
    for (bytes, name, offset) in [
        (&b"N)R."[..], "REDUCE", 2usize),
        (b"}N}b.", "BUILD", 3),
        (b"))\x81.", "NEWOBJ", 2),
        (b")})\x92.", "NEWOBJ_EX", 3),
        (b"\x80\x05\x97\x98.", "NEXT_BUFFER", 2),
        (b"\x80\x05C\x01a\x98.", "READONLY_BUFFER", 5),
        (b"K\x01\x82\x01.", "EXT1", 2),
        (b"\x83\x01\x00.", "EXT2", 0),
        (b"\x84\x01\x00\x00\x00.", "EXT4", 0),
        (b"Pabc\n.", "PERSID", 0),
        (b"K\x01Q.", "BINPERSID", 2),
        (
            b"X\x01\x00\x00\x00aX\x01\x00\x00\x00b\x93.",
            "STACK_GLOBAL",
            12,
        ),
    ] {
        assert_eq!(
            d(bytes),
            Err(PickleError::Forbidden {
                name: match_name(name),
                offset
            })
        );
    }
}

fn match_name(name: &str) -> &'static str {
    [
        "GLOBAL",
        "STACK_GLOBAL",
        "REDUCE",
        "BUILD",
        "INST",
        "OBJ",
        "NEWOBJ",
        "NEWOBJ_EX",
        "EXT1",
        "EXT2",
        "EXT4",
        "PERSID",
        "BINPERSID",
        "NEXT_BUFFER",
        "READONLY_BUFFER",
    ]
    .into_iter()
    .find(|n| *n == name)
    .unwrap_or_else(|| panic!("unexpected opcode {name}"))
}

#[test]
fn self_references_are_refused() {
    let doc = python_json(
        r#"
import json, pickle
l = []
l.append(l)
d = {}
d["me"] = d
a = []
t = (a,)
a.append(t)
print(json.dumps([pickle.dumps(v, p).hex() for v in (l, d, t) for p in range(6)]))
"#,
    );
    for hex in doc.as_array().unwrap() {
        let bytes = hex_of(hex);
        let stop = bytes.iter().rposition(|&b| b == b'.').unwrap();
        assert_eq!(d(&bytes), Err(PickleError::Cycle { offset: stop }));
    }
}

#[test]
fn limits_are_enforced() {
    let tight = |f: fn(&mut Limits)| {
        let mut l = Limits::default();
        f(&mut l);
        l
    };
    // Input size.
    let l = tight(|l| l.max_input = 3);
    assert_eq!(
        decode(b"K\x01K\x02.", &l),
        Err(PickleError::TooLarge { len: 5, max: 3 })
    );
    // Depth: [[[]]] is three deep.
    let nested = b"]]]aa.";
    let l = tight(|l| l.max_depth = 2);
    assert_eq!(
        decode(nested, &l),
        Err(PickleError::Limit {
            kind: LimitKind::Depth,
            max: 2,
            offset: 5
        })
    );
    let l = tight(|l| l.max_depth = 3);
    assert!(decode(nested, &l).is_ok());
    // The cap holds whatever the limit says.
    let mut deep = vec![b']'; MAX_DEPTH_CAP + 1];
    deep.extend(std::iter::repeat_n(b'a', MAX_DEPTH_CAP));
    deep.push(b'.');
    let l = tight(|l| l.max_depth = usize::MAX);
    assert_eq!(
        decode(&deep, &l),
        Err(PickleError::Limit {
            kind: LimitKind::Depth,
            max: MAX_DEPTH_CAP,
            offset: deep.len() - 1
        })
    );
    // Elements created while decoding.
    let l = tight(|l| l.max_elements = 2);
    assert_eq!(
        decode(b"NNN\x87.", &l),
        Err(PickleError::Limit {
            kind: LimitKind::Elements,
            max: 2,
            offset: 2
        })
    );
    // Elements of the result: one list GET-ed many times is created once
    // but appears 1 + 1000 * 2 times.
    let mut shared = b"]q\x00(K\x01K\x02e](".to_vec();
    for _ in 0..1000 {
        shared.extend_from_slice(b"h\x00");
    }
    shared.extend_from_slice(b"e.");
    assert!(d(&shared).is_ok());
    let l = tight(|l| l.max_elements = 1000);
    assert!(matches!(
        decode(&shared, &l),
        Err(PickleError::Limit {
            kind: LimitKind::Elements,
            max: 1000,
            ..
        })
    ));
    // Bytes of the result: a 1 KiB string shown 100 times.
    let mut big = b"X\x00\x04\x00\x00".to_vec();
    big.extend(std::iter::repeat_n(b'x', 1024));
    big.extend_from_slice(b"q\x00](");
    for _ in 0..100 {
        big.extend_from_slice(b"h\x00");
    }
    big.extend_from_slice(b"e.");
    let l = tight(|l| l.max_total_bytes = 50 * 1024);
    assert!(matches!(
        decode(&big, &l),
        Err(PickleError::Limit {
            kind: LimitKind::TotalBytes,
            ..
        })
    ));
    // Memo entries.
    let l = tight(|l| l.max_memo = 1);
    assert_eq!(
        decode(b"Nq\x00q\x01.", &l),
        Err(PickleError::Limit {
            kind: LimitKind::Memo,
            max: 1,
            offset: 3
        })
    );
    // Overwriting an entry does not grow the memo.
    assert_eq!(decode(b"Nq\x00q\x00.", &l), Ok(PickleValue::None));
}

#[test]
fn lengths_beyond_the_input_are_refused_before_allocating() {
    for (bytes, offset, len, remaining) in [
        (
            &b"\x8d\xff\xff\xff\xff\xff\xff\xff\xffabc."[..],
            0usize,
            u64::MAX,
            4usize,
        ),
        (
            b"\x80\x05\x96\x00\x00\x00\x00\x01\x00\x00\x00.",
            2,
            1 << 32,
            1,
        ),
        (b"X\xff\xff\xff\xffabc", 0, u32::MAX as u64, 3),
        (b"B\x05\x00\x00\x00abc", 0, 5, 3),
        (b"\x8a\x09\x01", 0, 9, 1),
        (b"\x95\x00\x01\x00\x00\x00\x00\x00\x00N.", 0, 256, 2),
    ] {
        assert_eq!(
            d(bytes),
            Err(PickleError::LengthOverrun {
                offset,
                len,
                remaining
            }),
            "{}",
            bytes.escape_ascii()
        );
    }
}

#[test]
fn malformed_pickles_are_errors() {
    let cases: Vec<(&[u8], PickleError)> = vec![
        (b"", PickleError::Truncated { offset: 0 }),
        (b"N", PickleError::Truncated { offset: 1 }),
        (b"J\x01\x00", PickleError::Truncated { offset: 0 }),
        (b"I12", PickleError::Truncated { offset: 0 }),
        (
            b"\x80\x06N.",
            PickleError::UnsupportedProtocol {
                version: 6,
                offset: 0,
            },
        ),
        (
            b"\xffN.",
            PickleError::UnknownOpcode {
                opcode: 0xff,
                offset: 0,
            },
        ),
        (
            b".",
            PickleError::Malformed {
                offset: 0,
                reason: "stack underflow",
            },
        ),
        (
            b"(.",
            PickleError::Malformed {
                offset: 1,
                reason: "stack underflow",
            },
        ),
        (
            b"Na.",
            PickleError::Malformed {
                offset: 1,
                reason: "stack underflow",
            },
        ),
        (
            b"NNa.",
            PickleError::Malformed {
                offset: 2,
                reason: "APPEND to something that is not a list",
            },
        ),
        (
            b"}(K\x01u.",
            PickleError::Malformed {
                offset: 4,
                reason: "odd number of items for SETITEMS",
            },
        ),
        (
            b"t.",
            PickleError::Malformed {
                offset: 0,
                reason: "no MARK on the stack",
            },
        ),
        (
            b"h\x05.",
            PickleError::MemoMissing {
                index: 5,
                offset: 0,
            },
        ),
        (
            b"Ixyz\n.",
            PickleError::Malformed {
                offset: 0,
                reason: "invalid decimal integer",
            },
        ),
        (
            b"Fone\n.",
            PickleError::Malformed {
                offset: 0,
                reason: "invalid float literal",
            },
        ),
        (
            b"T\xff\xff\xff\xff.",
            PickleError::Malformed {
                offset: 0,
                reason: "BINSTRING with a negative byte count",
            },
        ),
        (
            b"N(K\x01e.",
            PickleError::Malformed {
                offset: 4,
                reason: "APPENDS to something that is not a list",
            },
        ),
        (
            b"(K\x01\x86.",
            PickleError::Malformed {
                offset: 3,
                reason: "stack underflow",
            },
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(d(bytes), Err(want), "{}", bytes.escape_ascii());
    }
    let digits = format!("I{}\n.", "9".repeat(4301));
    assert_eq!(
        d(digits.as_bytes()),
        Err(PickleError::Limit {
            kind: LimitKind::Digits,
            max: 4300,
            offset: 0
        })
    );
}

#[test]
fn every_prefix_of_a_real_pickle_is_an_error_not_a_panic() {
    let doc = python_json(
        r#"
import json, pickle
v = {"s": "\u00e9" * 20, "l": [1, 2**70, 1.5, None, (True,)], "n": -3}
w = dict(v, b=b"xy", a=bytearray(b"z"), t={1, 2}, f=frozenset())
print(json.dumps([pickle.dumps(v, p).hex() for p in range(6)] + [pickle.dumps(w, 5).hex()]))
"#,
    );
    for hex in doc.as_array().unwrap() {
        let bytes = hex_of(hex);
        assert!(d(&bytes).is_ok());
        for cut in 0..bytes.len() {
            assert!(d(&bytes[..cut]).is_err(), "prefix of {cut} bytes decoded");
        }
    }
}
