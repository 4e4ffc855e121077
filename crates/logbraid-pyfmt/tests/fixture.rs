//! Every case CPython wrote into `tests/fixtures/pyfmt.jsonl` (by
//! `scripts/pyfmt-fixture`) must come out the same here: the text, or the
//! exception with its message.

use std::sync::atomic::{AtomicBool, Ordering};

use logbraid_pyfmt::{format, Object, View};
use serde_json::Value as Json;

/// Whether a `str` shows as [`View::Str`] (bytes, checked) rather than
/// [`View::Text`]: the layout uses the one, the collector and the binding
/// the other, so every case is run both ways.
static AS_BYTES: AtomicBool = AtomicBool::new(false);

/// A Python value read from the fixture.
#[derive(Debug)]
enum Py {
    None,
    Bool(bool),
    Int(i128),
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Py>),
    List(Vec<Py>),
    Dict(Vec<(Py, Py)>),
}

impl Object for Py {
    fn view(&self) -> View<'_, Self> {
        match self {
            Py::None => View::None,
            Py::Bool(b) => View::Bool(*b),
            Py::Int(i) => View::Int(*i),
            Py::BigInt(b) => View::BigInt(b),
            Py::Float(f) => View::Float(*f),
            Py::Str(s) if AS_BYTES.load(Ordering::Relaxed) => View::Str(s.as_bytes()),
            Py::Str(s) => View::Text(s),
            Py::Bytes(b) => View::Bytes(b),
            Py::Tuple(t) => View::Tuple(t),
            Py::List(l) => View::List(l),
            Py::Dict(d) => View::Dict(d),
        }
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Little-endian two's complement of a magnitude given as big-endian
/// base-2^32 limbs.
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

fn value(j: &Json) -> Py {
    let a = j.as_array().unwrap();
    let tag = a[0].as_str().unwrap();
    let items = || a[1].as_array().unwrap().iter().map(value).collect();
    match tag {
        "none" => Py::None,
        "bool" => Py::Bool(a[1].as_bool().unwrap()),
        "int" => int(a[1].as_str().unwrap()),
        "float" => Py::Float(f64::from_bits(
            u64::from_str_radix(a[1].as_str().unwrap(), 16).unwrap(),
        )),
        "str" => Py::Str(a[1].as_str().unwrap().to_string()),
        "bytes" => Py::Bytes(hex(a[1].as_str().unwrap())),
        "tuple" => Py::Tuple(items()),
        "list" => Py::List(items()),
        "dict" => Py::Dict(
            a[1].as_array()
                .unwrap()
                .iter()
                .map(|p| (value(&p[0]), value(&p[1])))
                .collect(),
        ),
        other => panic!("unknown tag {other}"),
    }
}

#[test]
fn every_case_matches_cpython() {
    for bytes in [false, true] {
        AS_BYTES.store(bytes, Ordering::Relaxed);
        check_every_case();
    }
}

fn check_every_case() {
    let text = include_str!("fixtures/pyfmt.jsonl");
    let mut mismatches = Vec::new();
    let mut total = 0;
    for (n, line) in text.lines().enumerate() {
        let case: Json = serde_json::from_str(line).unwrap();
        let fmt = case["f"].as_str().unwrap();
        let args = value(&case["a"]);
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
        AS_BYTES.load(Ordering::Relaxed),
        mismatches
            .iter()
            .take(12)
            .map(|m| truncate(m))
            .collect::<Vec<_>>()
            .join("\n")
    );
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
