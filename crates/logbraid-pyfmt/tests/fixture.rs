//! Every case CPython wrote into `tests/fixtures/pyfmt.jsonl` (by
//! `scripts/pyfmt-fixture`) must come out the same here: the text, or the
//! exception with its message.

use logbraid_pyfmt::{certain, format, Kind, OwnedValue as Py, Value};
use serde_json::Value as Json;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Little-endian two's complement of a little-endian magnitude.
fn twos_complement(negative: bool, mut le: Vec<u8>) -> Vec<u8> {
    le.push(0);
    if negative {
        let mut carry = true;
        for b in &mut le {
            let (v, c) = (!*b).overflowing_add(u8::from(carry));
            *b = v;
            carry = c;
        }
    }
    le
}

/// The magnitude of a decimal or `0x` hexadecimal number, little-endian.
fn magnitude(digits: &str, radix: u32) -> Vec<u8> {
    let mut le: Vec<u8> = vec![0];
    for c in digits.chars() {
        let mut carry = c.to_digit(radix).unwrap();
        for b in &mut le {
            let v = u32::from(*b) * radix + carry;
            *b = v as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            le.push(carry as u8);
            carry >>= 8;
        }
    }
    le
}

fn int(text: &str) -> Py {
    if let Ok(i) = text.parse::<i128>() {
        return Py::Int(i);
    }
    let (negative, le) = match text.strip_prefix("0x") {
        Some(h) => match h.strip_prefix('-') {
            Some(h) => (true, magnitude(h, 16)),
            None => (false, magnitude(h, 16)),
        },
        None => match text.strip_prefix('-') {
            Some(d) => (true, magnitude(d, 10)),
            None => (false, magnitude(text, 10)),
        },
    };
    Py::BigInt(twos_complement(negative, le))
}

/// The value a case's JSON describes; a `str` becomes checked bytes
/// (`View::Str`, as the layout gives them) when `bytes`, else `View::Text`
/// (as the collector and the binding do).
fn value(j: &Json, bytes: bool) -> Py {
    let a = j.as_array().unwrap();
    let tag = a[0].as_str().unwrap();
    let items = || {
        a[1].as_array()
            .unwrap()
            .iter()
            .map(|v| value(v, bytes))
            .collect()
    };
    match tag {
        "none" => Py::None,
        "bool" => Py::Bool(a[1].as_bool().unwrap()),
        "int" => int(a[1].as_str().unwrap()),
        "float" => Py::Float(f64::from_bits(
            u64::from_str_radix(a[1].as_str().unwrap(), 16).unwrap(),
        )),
        "str" if bytes => Py::Str(a[1].as_str().unwrap().as_bytes().to_vec()),
        "str" => Py::Text(a[1].as_str().unwrap().to_string()),
        "bytes" => Py::Bytes(hex(a[1].as_str().unwrap())),
        "tuple" => Py::Tuple(items()),
        "list" => Py::List(items()),
        "dict" => Py::Dict(
            a[1].as_array()
                .unwrap()
                .iter()
                .map(|p| (value(&p[0], bytes), value(&p[1], bytes)))
                .collect(),
        ),
        other => panic!("unknown tag {other}"),
    }
}

#[test]
fn every_case_matches_cpython() {
    for bytes in [false, true] {
        check_every_case(bytes);
    }
}

fn check_every_case(bytes: bool) {
    let text = include_str!("fixtures/pyfmt.jsonl");
    let mut mismatches = Vec::new();
    let mut total = 0;
    for (n, line) in text.lines().enumerate() {
        let case: Json = serde_json::from_str(line).unwrap();
        let fmt = case["f"].as_str().unwrap();
        let args = value(&case["a"], bytes);
        let mut out = String::new();
        let got = match format(fmt, &args, &mut out, 1 << 20) {
            Ok(()) => Ok(out),
            Err(e) => Err(e.to_string()),
        };
        let want = match (case.get("out"), case.get("err")) {
            (Some(o), _) => Ok(o.as_str().unwrap().to_string()),
            (_, Some(e)) => Err(e.as_str().unwrap().to_string()),
            _ => panic!("line {}: neither out nor err", n + 1),
        };
        total += 1;
        if got != want {
            mismatches.push(format!(
                "line {}: {fmt:?} % {args:?}\n    CPython: {want:?}\n    here:    {got:?}",
                n + 1
            ));
        }
    }
    assert!(total > 1000, "only {total} cases read");
    assert!(
        mismatches.is_empty(),
        "{} of {total} cases differ from CPython (str as bytes: {}); the first ones:\n{}",
        mismatches.len(),
        bytes,
        mismatches
            .iter()
            .take(12)
            .map(|m| truncate(m))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The kind of a scalar, for [`certain`]; `None` for containers and big
/// ints, which it never takes.
fn scalar(v: &Py) -> Option<Kind> {
    Kind::of(&match v {
        Py::None => Value::None,
        Py::Bool(b) => Value::Bool(*b),
        Py::Int(i) => Value::Int(*i),
        Py::Float(f) => Value::Float(*f),
        Py::Str(s) => Value::Str(s),
        Py::Text(t) => Value::Text(t),
        _ => return None,
    })
}

/// Every case `certain` vouches for is one CPython formatted without an
/// error; and it vouches for the plain cases among them, so that the
/// binding's deferred path is taken where it should be.
#[test]
fn what_certain_vouches_for_cpython_formats_without_error() {
    let text = include_str!("fixtures/pyfmt.jsonl");
    let (mut vouched, mut plain_ok) = (0, 0);
    for (n, line) in text.lines().enumerate() {
        let case: Json = serde_json::from_str(line).unwrap();
        let fmt = case["f"].as_str().unwrap();
        let Py::Tuple(items) = value(&case["a"], false) else {
            continue;
        };
        let Some(args) = items.iter().map(scalar).collect::<Option<Vec<_>>>() else {
            continue;
        };
        let ok = case.get("out").is_some();
        if certain(fmt, &args) {
            vouched += 1;
            assert!(
                ok,
                "line {}: certain({fmt:?}, {args:?}) but CPython raised",
                n + 1
            );
        }
        let bare = fmt.replace("%%", "");
        let plain = ["%s", "%r", "%a", "%d", "%i", "%u"]
            .iter()
            .map(|d| bare.matches(d).count())
            .sum::<usize>()
            == bare.matches('%').count();
        if ok && plain {
            plain_ok += 1;
        }
    }
    assert!(vouched > 100, "certain vouched for only {vouched} cases");
    assert!(vouched <= plain_ok, "{vouched} vouched, {plain_ok} plain");
}

#[test]
fn certain_refuses_what_could_fail_or_is_not_plain() {
    let i = Kind::Int;
    let t = Kind::Str;
    assert!(certain("a %s b %d c %r %%", &[t, i, t]));
    assert!(certain("%a%i%u", &[Kind::Float, Kind::Bool, i]));
    assert!(!certain("%d", &[t]), "%d of a str raises");
    assert!(!certain("%d", &[Kind::Float]), "%d of nan or inf raises");
    assert!(!certain("%d", &[Kind::None]));
    assert!(!certain("%s %s", &[t]), "too few arguments");
    assert!(!certain("%s", &[t, t]), "too many arguments");
    assert!(!certain("no directive", &[t]));
    assert!(!certain("%5d", &[i]), "a width is not plain");
    assert!(!certain("%(k)s", &[t]), "a key needs a mapping");
    assert!(!certain("%x %f %c", &[i, i, i]));
    assert_eq!(Kind::of(&Value::Bytes(b"b")), None, "only scalars");
    assert_eq!(Kind::of(&Value::BigInt(&[1; 17])), None);
    assert!(!certain("100%", &[]), "an incomplete format raises");
}

fn truncate(s: &str) -> String {
    if s.len() <= 600 {
        return s.to_string();
    }
    let mut end = 600;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
