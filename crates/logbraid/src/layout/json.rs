//! JSON lines: one object per record.

use super::time::Rfc3339Cache;
use super::{push_i64, push_u64, Layout};
use crate::record::{Fields, Record, Value};

/// One JSON object per line, for machines.
///
/// ```text
/// {"ts":"2026-11-22T10:04:05.123456Z","level":"INFO","target":"app::db","msg":"connected","module":"app::db","file":"src/db.rs","line":42,"function":"connect","host":"web-1","pid":4242,"process":"app","thread_id":7,"thread":"main","fields":{"user":"ada"}}
/// ```
///
/// Keys always appear in this order. `module`, `file`, `line`, `function`
/// and `thread` (the thread's name) are left out when the record does not
/// know them, and `fields` when there are none. `level` is the Rust name
/// (`WARN`, not `WARNING`).
///
/// Field values keep their type: text as strings, integers and finite
/// floats as numbers, `NaN` and infinities as the strings `"NaN"`, `"inf"`
/// and `"-inf"`, booleans, and `null`. A key given more than once appears
/// once, with its last value, where it first appeared, so the line stays
/// an object every JSON reader agrees on.
///
/// Strings are escaped so that each record stays on one line and any JSON
/// reader accepts it: control characters, U+007F, U+2028 and U+2029 as
/// escapes, and each invalid UTF-8 sequence as `\ufffd`.
#[derive(Clone, Debug, Default)]
pub struct JsonLayout {
    timestamp: Rfc3339Cache,
    /// Key hashes of the current record's fields, kept to spot duplicate
    /// keys without allocating per record.
    hashes: Vec<u64>,
}

impl JsonLayout {
    /// The layout.
    pub fn new() -> Self {
        JsonLayout::default()
    }

    /// Writes `"fields"`, given the key hashes already in `self.hashes`.
    fn push_fields(&mut self, fields: Fields<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"fields\":{");
        self.hashes.sort_unstable();
        if self.hashes.windows(2).any(|w| w[0] == w[1]) {
            push_deduplicated(fields, out);
        } else {
            let mut first = true;
            for (key, value) in fields {
                if !first {
                    out.push(b',');
                }
                first = false;
                push_member(out, key, value);
            }
        }
        out.push(b'}');
    }
}

impl Layout for JsonLayout {
    fn format(&mut self, r: &Record<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"ts\":\"");
        self.timestamp.write(r.timestamp_ns, out);
        out.extend_from_slice(b"\",\"level\":\"");
        out.extend_from_slice(r.level.as_str().as_bytes());
        out.extend_from_slice(b"\",\"target\":");
        push_string(out, r.target.as_bytes());
        out.extend_from_slice(b",\"msg\":");
        if r.plain_message {
            // Nothing in it to escape: no need to look.
            out.push(b'"');
            out.extend_from_slice(r.message);
            out.push(b'"');
        } else {
            push_string(out, r.message);
        }
        if let Some(module) = r.module {
            out.extend_from_slice(b",\"module\":");
            push_string(out, module.as_bytes());
        }
        if let Some(file) = r.file {
            out.extend_from_slice(b",\"file\":");
            push_string(out, file.as_bytes());
        }
        if let Some(line) = r.line {
            out.extend_from_slice(b",\"line\":");
            push_u64(out, u64::from(line));
        }
        if let Some(function) = r.function {
            out.extend_from_slice(b",\"function\":");
            push_string(out, function.as_bytes());
        }
        out.extend_from_slice(b",\"host\":");
        push_string(out, r.source.host.as_bytes());
        out.extend_from_slice(b",\"pid\":");
        push_u64(out, u64::from(r.source.pid));
        out.extend_from_slice(b",\"process\":");
        push_string(out, r.source.process_name.as_bytes());
        out.extend_from_slice(b",\"thread_id\":");
        push_u64(out, r.thread_id);
        if let Some(thread) = r.thread_name {
            out.extend_from_slice(b",\"thread\":");
            push_string(out, thread.as_bytes());
        }
        // One pass both counts the fields (none: no "fields" key, even when
        // the encoding is malformed from the first byte) and hashes their
        // keys to rule out duplicates.
        self.hashes.clear();
        self.hashes
            .extend(r.fields.iter().map(|(key, _)| key_hash(key)));
        if !self.hashes.is_empty() {
            self.push_fields(r.fields, out);
        }
        out.extend_from_slice(b"}\n");
    }
}

/// FNV-1a: cheap, and only used to rule duplicates out.
fn key_hash(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The slow path, taken only when two keys hash alike: each key once, at
/// its first position, with its last value.
fn push_deduplicated(fields: Fields<'_>, out: &mut Vec<u8>) {
    use std::collections::HashMap;
    let all: Vec<(&str, Value<'_>)> = fields.iter().collect();
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(all.len());
    for (i, (key, _)) in all.iter().enumerate() {
        last.insert(key, i);
    }
    let mut first = true;
    for (key, _) in &all {
        // Removing the entry marks the key written.
        if let Some(i) = last.remove(key) {
            if !first {
                out.push(b',');
            }
            first = false;
            push_member(out, key, all[i].1);
        }
    }
}

fn push_member(out: &mut Vec<u8>, key: &str, value: Value<'_>) {
    push_string(out, key.as_bytes());
    out.push(b':');
    match value {
        Value::Str(s) => push_string(out, s),
        Value::I64(v) => push_i64(out, v),
        Value::U64(v) => push_u64(out, v),
        Value::F64(v) if v.is_nan() => out.extend_from_slice(b"\"NaN\""),
        Value::F64(v) if v.is_infinite() => {
            out.extend_from_slice(if v > 0.0 { b"\"inf\"" } else { b"\"-inf\"" })
        }
        Value::F64(v) => {
            use std::io::Write;
            // Debug prints the shortest text that reads back as the same
            // number, always a valid JSON number (`1.0`, `1e-7`, `-0.0`).
            let _ = write!(out, "{v:?}");
        }
        Value::Bool(v) => out.extend_from_slice(if v { b"true" } else { b"false" }),
        Value::Null => out.extend_from_slice(b"null"),
    }
}

/// For each ASCII byte, the character after `\` that escapes it, `u` for a
/// `\u00XX` escape, or 0 when the byte is written as it is.
const ESCAPE: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x7f] = b'u';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` as a quoted JSON string.
pub(crate) fn push_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    // Most text is ASCII: escape it in the same pass that checks it, and
    // validate UTF-8 only from the first byte that is not ASCII.
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x80 {
            out.extend_from_slice(&bytes[run..i]);
            push_non_ascii(out, &bytes[i..]);
            out.push(b'"');
            return;
        }
        if ESCAPE[b as usize] != 0 {
            out.extend_from_slice(&bytes[run..i]);
            push_ascii_escape(out, b);
            run = i + 1;
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

fn push_ascii_escape(out: &mut Vec<u8>, b: u8) {
    let e = ESCAPE[b as usize];
    out.push(b'\\');
    out.push(e);
    if e == b'u' {
        out.extend_from_slice(b"00");
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 0xf) as usize]);
    }
}

/// The rest of a string, from its first non-ASCII byte.
fn push_non_ascii(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        push_escaped(out, chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
}

/// Escapes valid UTF-8, copying the runs between escapes in one go.
fn push_escaped(out: &mut Vec<u8>, s: &[u8]) {
    let mut run = 0;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b < 0x80 {
            if ESCAPE[b as usize] != 0 {
                out.extend_from_slice(&s[run..i]);
                push_ascii_escape(out, b);
                run = i + 1;
            }
            i += 1;
        } else if b == 0xe2
            && s.get(i + 1) == Some(&0x80)
            && matches!(s.get(i + 2), Some(0xa8 | 0xa9))
        {
            // U+2028 and U+2029 end a line in JavaScript.
            out.extend_from_slice(&s[run..i]);
            out.extend_from_slice(if s[i + 2] == 0xa8 {
                b"\\u2028"
            } else {
                b"\\u2029"
            });
            i += 3;
            run = i;
        } else {
            i += 1;
        }
    }
    out.extend_from_slice(&s[run..]);
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::level::Level;
    use crate::record::FieldsBuf;
    use serde_json::Value as J;

    fn line(rec: &Record<'_>) -> String {
        let mut out = Vec::new();
        JsonLayout::new().format(rec, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn string(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        push_string(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn exact_object() {
        let src = source();
        let mut f = FieldsBuf::new();
        f.push_str("user", "ada");
        f.push("n", Value::I64(-3));
        f.push("big", Value::U64(u64::MAX));
        f.push("ratio", Value::F64(0.5));
        f.push("whole", Value::F64(2.0));
        f.push("nan", Value::F64(f64::NAN));
        f.push("up", Value::F64(f64::INFINITY));
        f.push("down", Value::F64(f64::NEG_INFINITY));
        f.push("ok", Value::Bool(false));
        f.push("gone", Value::Null);
        let rec = record(&src, &f);
        assert_eq!(
            line(&rec),
            "{\"ts\":\"2023-11-14T22:13:20.123456Z\",\"level\":\"INFO\",\"target\":\"app::db\",\
             \"msg\":\"connected\",\"module\":\"app::db\",\"file\":\"src/db/pool.rs\",\"line\":42,\
             \"function\":\"connect\",\"host\":\"web-1\",\"pid\":4242,\"process\":\"app\",\
             \"thread_id\":7,\"thread\":\"main\",\"fields\":{\"user\":\"ada\",\"n\":-3,\
             \"big\":18446744073709551615,\"ratio\":0.5,\"whole\":2.0,\"nan\":\"NaN\",\
             \"up\":\"inf\",\"down\":\"-inf\",\"ok\":false,\"gone\":null}}\n"
        );
        let parsed: J = serde_json::from_str(&line(&rec)).unwrap();
        assert_eq!(parsed["fields"]["big"], J::from(u64::MAX));
    }

    #[test]
    fn absent_parts_are_omitted() {
        let src = source();
        let f = FieldsBuf::new();
        let mut rec = bare(&src, &f);
        rec.level = Level::Warn;
        assert_eq!(
            line(&rec),
            "{\"ts\":\"2023-11-14T22:13:20.123456Z\",\"level\":\"WARN\",\"target\":\"app::db\",\
             \"msg\":\"connected\",\"host\":\"web-1\",\"pid\":4242,\"process\":\"app\",\
             \"thread_id\":7}\n"
        );
    }

    #[test]
    fn escapes_exactly() {
        assert_eq!(string(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            string(b"\n\r\t\x08\x0c\x00\x1f\x7f"),
            r#""\n\r\t\b\f\u0000\u001f\u007f""#
        );
        assert_eq!(string("\u{2028}x\u{2029}".as_bytes()), r#""\u2028x\u2029""#);
        assert_eq!(string("é€😀/".as_bytes()), "\"é€😀/\"");
        assert_eq!(string(b"\xff"), r#""\ufffd""#);
        assert_eq!(string(b"\xe2\x80"), r#""\ufffd""#);
        assert_eq!(string(b"x\xe2\x80\xa8"), r#""x\u2028""#);
    }

    /// Every string the layout writes must read back, with `serde_json`, as
    /// exactly the lossy UTF-8 of the input.
    #[test]
    fn hostile_strings_round_trip() {
        let mut hostile: Vec<Vec<u8>> = vec![
            (0u8..=0x7f).collect(),
            b"\"quoted\" and \\back\\slashed\\".to_vec(),
            "line\u{2028}para\u{2029}end".as_bytes().to_vec(),
            b"\xff".to_vec(),
            b"\xc3\x28".to_vec(),
            b"ok \xe2\x82 truncated".to_vec(),
            b"\xf0\x9f\x98".to_vec(),
            b"\xed\xa0\x80 surrogate".to_vec(),
            b"\xc0\xaf overlong".to_vec(),
            b"\xe2\x80".to_vec(),
            b"".to_vec(),
        ];
        for b in 0x80..=0xffu8 {
            hostile.push(vec![b'a', b, b'z']);
        }
        let src = source();
        for s in &hostile {
            let mut f = FieldsBuf::new();
            f.push_bytes("v", s);
            let key = String::from_utf8_lossy(s).into_owned();
            f.push_str(&key, "k");
            let mut rec = bare(&src, &f);
            rec.message = s;
            let thread = String::from_utf8_lossy(s);
            rec.thread_name = Some(&thread);
            let text = line(&rec);
            assert_eq!(text.matches('\n').count(), 1, "{text:?}");
            assert!(text.ends_with('\n'));
            let parsed: J = serde_json::from_str(&text).unwrap();
            let want = J::from(String::from_utf8_lossy(s).into_owned());
            assert_eq!(parsed["msg"], want);
            assert_eq!(parsed["thread"], want);
            assert_eq!(parsed["fields"]["v"], want);
            assert_eq!(parsed["fields"][key.as_str()], J::from("k"));
        }
    }

    #[test]
    fn random_strings_round_trip() {
        for s in hostile_strings(5000) {
            let text = string(&s);
            assert!(
                !text.contains(['\n', '\r', '\u{2028}', '\u{2029}']),
                "{text:?}"
            );
            let parsed: String = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed, String::from_utf8_lossy(&s), "{s:?}");
        }
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_in_the_first_place() {
        let src = source();
        let mut f = FieldsBuf::new();
        f.push("a", Value::I64(1));
        f.push("b", Value::I64(2));
        f.push("a", Value::I64(3));
        f.push("c", Value::I64(4));
        f.push("b", Value::Null);
        f.push("a", Value::Bool(true));
        let rec = bare(&src, &f);
        assert!(line(&rec).ends_with(",\"fields\":{\"a\":true,\"b\":null,\"c\":4}}\n"));
    }

    #[test]
    fn many_fields_and_reuse() {
        let src = source();
        let mut f = FieldsBuf::new();
        for i in 0..500 {
            f.push(&format!("k{i}"), Value::U64(i));
        }
        let rec = bare(&src, &f);
        let mut layout = JsonLayout::new();
        let mut out = Vec::new();
        layout.format(&rec, &mut out);
        layout.format(&rec, &mut out);
        let text = String::from_utf8(out).unwrap();
        for l in text.lines() {
            let parsed: J = serde_json::from_str(l).unwrap();
            assert_eq!(parsed["fields"].as_object().unwrap().len(), 500);
            assert_eq!(parsed["fields"]["k499"], J::from(499));
        }
    }

    #[test]
    fn malformed_fields_do_not_panic() {
        let src = source();
        let bytes = [1u8, 0, b'k', 9];
        let empty = FieldsBuf::new();
        let mut rec = bare(&src, &empty);
        rec.fields = Fields::from_encoded(&bytes);
        let text = line(&rec);
        assert!(!text.contains("fields"));
        serde_json::from_str::<J>(&text).unwrap();
    }
}
