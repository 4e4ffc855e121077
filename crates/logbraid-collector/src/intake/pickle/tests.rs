use super::codecs::{
    decimal_to_le, le_to_int, quoted_escape_decode, raw_unicode_escape_decode,
    utf8_surrogatepass_lossy,
};
use super::*;

/// A LogRecord dict as `SocketHandler` pickles it (protocol 1), or in
/// protocol 4 with `MEMOIZE`; `extra` adds one more pair. With `bytes`,
/// it also holds a big int and bytes.
fn record_pickle(proto4: bool, bytes: bool, extra: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    let memo = |p: &mut Vec<u8>, n: u8| {
        if proto4 {
            p.push(0x94);
        } else {
            p.extend([b'q', n]);
        }
    };
    if proto4 {
        p.extend([0x80, 4]);
    }
    p.push(b'}');
    memo(&mut p, 0);
    p.push(b'(');
    let s = |p: &mut Vec<u8>, t: &str| {
        p.push(b'X');
        p.extend((t.len() as u32).to_le_bytes());
        p.extend(t.as_bytes());
    };
    let mut n = 1;
    let mut pair = |p: &mut Vec<u8>, k: &str, v: &[u8]| {
        s(p, k);
        memo(p, n);
        p.extend(v);
        memo(p, n + 1);
        n += 2;
    };
    pair(&mut p, "name", b"X\x05\x00\x00\x00bench");
    pair(&mut p, "msg", b"X\x08\x00\x00\x00caf\xc3\xa9 %s");
    pair(&mut p, "args", b"N");
    pair(&mut p, "levelno", b"K\x14");
    pair(&mut p, "lineno", b"M\x01\x02");
    pair(&mut p, "process", b"J\x01\x02\x03\x04");
    pair(&mut p, "created", b"G\x41\xda\xc4\x1e\x2a\x06\x81\x06");
    pair(&mut p, "thread", b"L140675377642368L\n");
    pair(&mut p, "flag", b"\x88");
    if bytes {
        pair(
            &mut p,
            "big",
            b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00",
        );
        pair(&mut p, "blob", b"C\x02\xff\x00");
    }
    p.extend(extra);
    p.extend(b"u.");
    p
}

/// The one-pass readings of a flat LogRecord dict give exactly what
/// the arena gives, for every prefix of the pickle and at the edge of
/// every limit; where they decline, the arena decides.
#[test]
fn the_flat_path_agrees_with_the_arena() {
    let mut shared = Vec::new();
    shared.extend(b"X\x01\x00\x00\x00k");
    shared.extend(b"h\x01"); // GET: not flat
    for (proto4, bytes, extra) in [
        (false, true, &b""[..]),
        (true, true, &b""[..]),
        (false, true, &shared[..]),
        (false, false, &b""[..]),
        (true, false, &b""[..]),
    ] {
        let full = record_pickle(proto4, bytes, extra);
        let mut flat_taken = 0;
        let mut plain_taken = 0;
        let base = Limits::default();
        let mut limit_sets = vec![base.clone()];
        for n in [21, 22, 23, 24] {
            limit_sets.push(Limits {
                max_elements: n,
                ..base.clone()
            });
        }
        for n in [0, 1, 20, 21, 22] {
            limit_sets.push(Limits {
                max_memo: n,
                ..base.clone()
            });
        }
        for n in [60, 70, 80] {
            limit_sets.push(Limits {
                max_total_bytes: n,
                ..base.clone()
            });
        }
        limit_sets.push(Limits {
            max_depth: 0,
            ..base.clone()
        });
        for n in (0..40).map(|k| k * 256) {
            limit_sets.push(Limits {
                max_work_bytes: n,
                ..base.clone()
            });
        }
        for limits in limit_sets {
            for end in 0..=full.len() {
                let b = &full[..end];
                let mut d = Decoder::new(limits.clone());
                let general = d.general(b);
                if let Some(pairs) = d.flat_dict(b) {
                    flat_taken += 1;
                    assert_eq!(Ok(PickleValue::Dict(pairs)), general, "{limits:?} {end}");
                }
                let mut pairs = Vec::new();
                let plain = d.str_dict(b, |k, v| {
                    pairs.push((PickleValue::Str(k.into()), PickleValue::from(v)));
                    Some(())
                });
                if plain.is_some() {
                    plain_taken += 1;
                    assert_eq!(Ok(PickleValue::Dict(pairs)), general, "{limits:?} {end}");
                }
                assert_eq!(d.decode(b), general, "{limits:?} {end}");
            }
        }
        // The whole pickle takes the flat path unless it has a GET, the
        // plain one unless it has bytes or a big int too.
        assert_eq!(flat_taken > 0, extra.is_empty());
        assert_eq!(plain_taken > 0, extra.is_empty() && !bytes);
    }
}

/// Opcodes that only push what is already there (`DUP`, `GET`) or open a
/// `MARK` are charged as working memory, so a pickle of them cannot make
/// the reader hold more than the limit; the decoder then gives the memory
/// back.
#[test]
fn stacks_of_dup_get_and_mark_are_charged_and_given_back() {
    let n = 100_000;
    let limits = Limits {
        max_work_bytes: 1 << 20,
        ..Limits::default()
    };
    let cases: [(&str, Vec<u8>); 3] = [
        ("DUP", [&b"(N"[..], &vec![b'2'; n], b"1}."].concat()),
        (
            "GET",
            [&b"(Nq\x00"[..], &b"h\x00".repeat(n), b"1}."].concat(),
        ),
        ("MARK", [&vec![b'('; n][..], b"}."].concat()),
    ];
    for (name, pickle) in cases {
        let mut d = Decoder::new(limits.clone());
        match d.decode(&pickle) {
            Err(PickleError::Limit {
                kind: LimitKind::Work,
                max,
                ..
            }) => assert_eq!(max, 1 << 20, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(d.retained_bytes() <= Decoder::KEEP_BYTES, "{name}");
        // With room enough, the same pickle reads, and what it needed is
        // not kept.
        let mut d = Decoder::new(Limits {
            max_work_bytes: 64 << 20,
            ..Limits::default()
        });
        let v = d.decode(&pickle).unwrap();
        assert_eq!(v, PickleValue::Dict(Vec::new()), "{name}");
        assert!(d.retained_bytes() <= Decoder::KEEP_BYTES, "{name}");
    }
}

fn d(bytes: &[u8]) -> Result<PickleValue<'_>, PickleError> {
    decode(bytes, &Limits::default())
}

#[test]
fn long_payloads_become_int_when_they_fit() {
    assert!(matches!(le_to_int(&[]), PickleValue::Int(0)));
    assert!(matches!(le_to_int(&[0xff]), PickleValue::Int(-1)));
    assert!(matches!(le_to_int(&[0x80, 0x00]), PickleValue::Int(128)));
    assert!(matches!(
        le_to_int(&[0xff, 0xff, 0xff]),
        PickleValue::Int(-1)
    ));
    let max = i64::MAX.to_le_bytes();
    assert!(matches!(le_to_int(&max), PickleValue::Int(i64::MAX)));
    match le_to_int(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0]) {
        PickleValue::BigInt(b) => assert_eq!(b, vec![0, 0, 0, 0, 0, 0, 0, 0x80, 0]),
        _ => panic!("2**63 is a big int"),
    }
}

#[test]
fn decimal_big_ints_match_the_binary_form() {
    assert_eq!(
        decimal_to_le(false, b"9223372036854775808"),
        vec![0, 0, 0, 0, 0, 0, 0, 0x80, 0]
    );
    assert_eq!(
        decimal_to_le(true, b"9223372036854775809"),
        vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff]
    );
    let repr = |v: PickleValue<'_>| {
        let mut s = String::new();
        v.write_repr(&mut s, usize::MAX);
        s
    };
    let le = decimal_to_le(false, b"9223372036854775808");
    assert_eq!(repr(PickleValue::BigInt(le)), "9223372036854775808");
    let digits = "1".repeat(100);
    let le = decimal_to_le(true, digits.as_bytes());
    assert_eq!(repr(PickleValue::BigInt(le)), format!("-{digits}"));
}

#[test]
fn int_text_handles_the_extremes() {
    assert_eq!(
        d(b"I-9223372036854775808\n."),
        Ok(PickleValue::Int(i64::MIN))
    );
    assert_eq!(
        d(b"I9223372036854775807\n."),
        Ok(PickleValue::Int(i64::MAX))
    );
    assert_eq!(
        d(b"L9223372036854775808L\n."),
        Ok(PickleValue::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0x80, 0]))
    );
    assert_eq!(d(b"I01\n."), Ok(PickleValue::Bool(true)));
    assert_eq!(d(b"I00\n."), Ok(PickleValue::Bool(false)));
    assert_eq!(d(b"I0\n."), Ok(PickleValue::Int(0)));
    // Up to 18 digits, and from 19 on, either side of the sign.
    for (text, v) in [
        (&b"L999999999999999999L\n."[..], 999_999_999_999_999_999),
        (b"L-999999999999999999L\n.", -999_999_999_999_999_999),
        (b"L1000000000000000000L\n.", 1_000_000_000_000_000_000),
        (b"L-1000000000000000000L\n.", -1_000_000_000_000_000_000),
        (b"I-0\n.", 0),
        (b"I+007\n.", 7),
        (b"L 140580380302208L\n.", 140_580_380_302_208),
    ] {
        assert_eq!(d(text), Ok(PickleValue::Int(v)), "{text:?}");
    }
}

#[test]
fn escapes_decode_like_python() {
    assert_eq!(
        quoted_escape_decode(br"'a\'b\\c\n\x41\101\7'"),
        Some(b"a'b\\c\nAA\x07".to_vec())
    );
    assert_eq!(quoted_escape_decode(br"'\q'"), Some(b"\\q".to_vec()));
    assert_eq!(quoted_escape_decode(br"'\x4'"), None);
    assert_eq!(quoted_escape_decode(br"'abc"), None);
    assert_eq!(
        raw_unicode_escape_decode(br"a\u00e9\\u0041\\\u0041\U0001f600").as_deref(),
        Some("a\u{e9}\\\\u0041\\\\A\u{1f600}")
    );
    assert_eq!(
        raw_unicode_escape_decode(b"\xe9").as_deref(),
        Some("\u{e9}")
    );
    assert_eq!(
        raw_unicode_escape_decode(br"\ud800").as_deref(),
        Some("\u{fffd}")
    );
    assert_eq!(raw_unicode_escape_decode(br"\u12"), None);
}

#[test]
fn lone_surrogates_become_one_replacement_character() {
    assert_eq!(utf8_surrogatepass_lossy(b"a\xed\xb3\xbfb"), "a\u{fffd}b");
    assert_eq!(utf8_surrogatepass_lossy(b"\xff"), "\u{fffd}");
    assert_eq!(utf8_surrogatepass_lossy(b"ok\xe2\x82"), "ok\u{fffd}");
}

#[test]
fn repr_is_cut_at_the_budget() {
    let v = PickleValue::List(vec![PickleValue::Str("x".repeat(100).into()); 3]);
    let mut s = String::new();
    v.write_repr(&mut s, 10);
    assert_eq!(s, "['xxxxxxxx...");
    let mut s = String::new();
    PickleValue::Tuple(vec![PickleValue::Int(1)]).write_repr(&mut s, 100);
    assert_eq!(s, "(1,)");
}
