//! The native wire protocol, through the public API of `logbraid::wire`.
//!
//! The worked examples in `PROTOCOL.md` are produced here: run
//! `LOGBRAID_BLESS=1 cargo test -p logbraid --test wire` after changing the
//! encoding, and the file and the fuzz seeds are rewritten; otherwise the
//! test fails if they drift.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use logbraid::wire::{
    self, decode, encode_ack, encode_error, encode_hello, encode_ping, encode_pong, encode_welcome,
    frame_len, BatchEncoder, Dedup, ErrorCode, Frame, FrameReader, FrameType, Hello, Push,
    WireError, DEFAULT_MAX_FRAME,
};
use logbraid::{FieldsBuf, Level, OwnedRecord, Record, Source, Value};

fn source() -> Arc<Source> {
    Arc::new(Source {
        host: "web-1".to_string(),
        pid: 4242,
        process_name: "api".to_string(),
    })
}

const HELLO: Hello<'static> = Hello {
    versions: &[1],
    client_id: "web-1/api",
    epoch: 0x0123_4567_89ab_cdef,
    host: "web-1",
    pid: 4242,
    program: "api",
    token: b"s3cret",
};

/// A record with every optional part present.
fn full<'a>(source: &'a Source, message: &'a [u8], fields: &'a FieldsBuf) -> Record<'a> {
    Record::new(Level::Warn, "app.db", message, source)
        .with_timestamp(1_795_341_600_123_456_789)
        .with_module("app::db")
        .with_file("src/db.rs")
        .with_line(42)
        .with_function("connect")
        .with_thread_id(7)
        .with_thread_name("main")
        .with_fields(fields.as_fields())
}

/// A record with every optional part absent.
fn bare<'a>(source: &'a Source, message: &'a [u8]) -> Record<'a> {
    Record::new(Level::Trace, "", message, source)
        .with_timestamp(-1)
        .with_thread_id(u64::MAX)
}

fn some_fields() -> FieldsBuf {
    let mut f = FieldsBuf::new();
    f.push_str("user", "ada");
    f.push("n", Value::I64(-3));
    f.push("u", Value::U64(u64::MAX));
    f.push("f", Value::F64(-0.5));
    f.push("ok", Value::Bool(true));
    f.push("none", Value::Null);
    f.push_bytes("raw", b"\xff\xfe");
    f
}

/// One `BATCH` frame holding `records`, numbered from `first`.
fn batch_frame(first: u64, records: &[Record<'_>]) -> Vec<u8> {
    let mut e = BatchEncoder::default();
    for r in records {
        assert_eq!(e.push(r), Push::Added);
    }
    let mut out = Vec::new();
    assert_eq!(e.finish(first, &mut out), Ok(records.len() as u32));
    out
}

/// The records of a `BATCH` frame, owned, under `source`.
fn records_of(frame: &[u8], source: &Source) -> Vec<OwnedRecord> {
    match decode(frame) {
        Ok(Frame::Batch(b)) => b
            .records(source)
            .map(|r| OwnedRecord::from_record(&r))
            .collect(),
        other => panic!("not a batch: {other:?}"),
    }
}

/// One of each frame type, as a client or collector would send it.
fn sample_frames() -> Vec<Vec<u8>> {
    let s = source();
    let fields = some_fields();
    let mut frames = Vec::new();
    let mut out = Vec::new();
    encode_hello(&HELLO, &mut out).unwrap();
    frames.push(std::mem::take(&mut out));
    encode_hello(
        &Hello {
            versions: &[3, 1, 2],
            token: b"",
            host: "",
            program: "",
            ..HELLO
        },
        &mut out,
    )
    .unwrap();
    frames.push(std::mem::take(&mut out));
    encode_welcome(1, 41, DEFAULT_MAX_FRAME as u32, &mut out);
    frames.push(std::mem::take(&mut out));
    frames.push(batch_frame(1, &[full(&s, b"hello", &fields)]));
    frames.push(batch_frame(
        1000,
        &[
            full(&s, "héllo wörld".as_bytes(), &fields),
            bare(&s, b"\xff\x00not utf-8\xc3"),
            bare(&s, b""),
        ],
    ));
    encode_ack(41, &mut out);
    frames.push(std::mem::take(&mut out));
    encode_error(ErrorCode::OVERLOADED, "too many connections", &mut out);
    frames.push(std::mem::take(&mut out));
    encode_ping(7, &mut out);
    frames.push(std::mem::take(&mut out));
    encode_pong(7, &mut out);
    frames.push(std::mem::take(&mut out));
    frames
}

#[test]
fn every_frame_type_round_trips() {
    let frames = sample_frames();
    let mut seen = Vec::new();
    for bytes in &frames {
        let frame = decode(bytes).unwrap();
        seen.push(frame.frame_type());
        let mut again = Vec::new();
        frame.encode(&mut again).unwrap();
        assert_eq!(&again, bytes, "{frame:?}");
        assert_eq!(decode(&again).unwrap(), frame);
        assert_eq!(frame_len(bytes, DEFAULT_MAX_FRAME), Ok(Some(bytes.len())));
    }
    for t in [
        FrameType::Hello,
        FrameType::Welcome,
        FrameType::Batch,
        FrameType::Ack,
        FrameType::Error,
        FrameType::Ping,
        FrameType::Pong,
    ] {
        assert!(seen.contains(&t), "{t}");
    }

    match decode(&frames[0]).unwrap() {
        Frame::Hello(h) => {
            assert_eq!(h, HELLO);
            assert_eq!(h.negotiate(), Ok(1));
            assert!(h.token_matches(b"s3cret"));
            assert_eq!(h.source(), *source());
        }
        f => panic!("{f:?}"),
    }
    assert_eq!(
        decode(&frames[2]).unwrap(),
        Frame::Welcome {
            version: 1,
            highest: 41,
            max_frame: DEFAULT_MAX_FRAME as u32
        }
    );
    assert_eq!(
        decode(&frames[6]).unwrap(),
        Frame::Error {
            code: ErrorCode::OVERLOADED,
            message: "too many connections"
        }
    );
}

#[test]
fn records_keep_every_part_present_or_absent() {
    let s = source();
    let fields = some_fields();
    let msg = b"\xff\x00not utf-8\xc3";
    let sent = [
        full(&s, b"with everything", &fields),
        bare(&s, msg),
        Record {
            level: Level::Critical,
            ..bare(&s, b"empty but present")
        }
        .with_line(0)
        .with_module("")
        .with_thread_name(""),
    ];
    let frame = batch_frame(5, &sent);
    let got = records_of(&frame, &s);
    let want: Vec<_> = sent.iter().map(OwnedRecord::from_record).collect();
    assert_eq!(got, want);
    assert_eq!(got[1].message, msg);
    assert_eq!(got[2].module.as_deref(), Some(""));
    assert_eq!(got[2].file, None);
    let Frame::Batch(b) = decode(&frame).unwrap() else {
        panic!()
    };
    assert_eq!((b.first_seq(), b.last_seq(), b.len()), (5, 7, 3));
    assert_eq!(b.records(&s).len(), 3);
}

#[test]
fn records_borrow_the_frame_and_the_callers_source() {
    let s = source();
    let frame = batch_frame(1, &[bare(&s, b"zero copy")]);
    let other = Source {
        host: "elsewhere".into(),
        pid: 1,
        process_name: "x".into(),
    };
    let Frame::Batch(b) = decode(&frame).unwrap() else {
        panic!()
    };
    let r = b.records(&other).next().unwrap();
    assert!(std::ptr::eq(r.source, &other));
    let range = frame.as_ptr_range();
    assert!(range.contains(&r.message.as_ptr()));
}

#[test]
fn names_longer_than_64k_are_cut_at_a_char_boundary() {
    let s = source();
    let long = "é".repeat(40_000);
    let r = Record::new(Level::Trace, &long, b"m", &s).with_file(&long);
    let got = records_of(&batch_frame(1, &[r]), &s);
    assert_eq!(got[0].target.len(), 65_534);
    assert!(long.starts_with(&got[0].target));
    assert_eq!(got[0].file.as_deref(), Some(&*got[0].target));
}

/// Hand-built frames, for inputs the encoder never produces.
mod raw {
    pub fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = ((payload.len() + 2) as u32).to_le_bytes().to_vec();
        f.extend_from_slice(&[1, ty]);
        f.extend_from_slice(payload);
        f
    }

    /// A record with the given header values and byte blobs.
    pub fn record(
        level: u8,
        flags: u8,
        line: u32,
        names: [&[u8]; 5],
        message: &[u8],
        fields: &[u8],
    ) -> Vec<u8> {
        let body = 40 + names.iter().map(|n| n.len()).sum::<usize>() + message.len() + fields.len();
        let mut r = (body as u32).to_le_bytes().to_vec();
        r.extend_from_slice(&0i64.to_le_bytes());
        r.extend_from_slice(&1u64.to_le_bytes());
        r.extend_from_slice(&line.to_le_bytes());
        r.extend_from_slice(&(message.len() as u32).to_le_bytes());
        r.extend_from_slice(&(fields.len() as u32).to_le_bytes());
        r.push(level);
        r.push(flags);
        for n in names {
            r.extend_from_slice(&(n.len() as u16).to_le_bytes());
        }
        for n in names {
            r.extend_from_slice(n);
        }
        r.extend_from_slice(message);
        r.extend_from_slice(fields);
        r
    }

    pub fn batch(first: u64, count: u32, records: &[u8]) -> Vec<u8> {
        let mut p = first.to_le_bytes().to_vec();
        p.extend_from_slice(&count.to_le_bytes());
        p.extend_from_slice(records);
        frame(3, &p)
    }
}

fn malformed(bytes: &[u8]) -> &'static str {
    match decode(bytes) {
        Err(WireError::Malformed { reason, .. }) => reason,
        other => panic!("expected malformed, got {other:?}"),
    }
}

#[test]
fn hostile_records_are_rejected_whole() {
    let ok = raw::record(20, 0, 0, [b"t", b"", b"", b"", b""], b"m", b"");
    assert!(decode(&raw::batch(1, 1, &ok)).is_ok());

    // Fields whose string claims 4 GiB.
    let mut fields = vec![1, 0, b'k', 0];
    fields.extend_from_slice(&u32::MAX.to_le_bytes());
    fields.extend_from_slice(b"abc");
    let r = raw::record(20, 0, 0, [b"t", b"", b"", b"", b""], b"m", &fields);
    let mut two = ok.clone();
    two.extend_from_slice(&r);
    // The first record is fine, the second is not: nothing is handed out.
    assert_eq!(malformed(&raw::batch(1, 2, &two)), "malformed fields");

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            raw::record(
                20,
                0,
                0,
                [b"t", b"", b"", b"", b""],
                b"m",
                &[1, 0, b'k', 99],
            ),
            "malformed fields",
        ),
        (
            raw::record(20, 0, 0, [b"\xff", b"", b"", b"", b""], b"m", b""),
            "target is not UTF-8",
        ),
        (
            raw::record(20, 16, 0, [b"t", b"", b"", b"", b"\xc3"], b"m", b""),
            "thread name is not UTF-8",
        ),
        (
            raw::record(20, 0, 0, [b"t", b"mod", b"", b"", b""], b"m", b""),
            "name given but flagged absent",
        ),
        (
            raw::record(20, 0, 9, [b"t", b"", b"", b"", b""], b"m", b""),
            "line given but flagged absent",
        ),
        (
            raw::record(20, 32, 0, [b"t", b"", b"", b"", b""], b"m", b""),
            "unknown record flags",
        ),
    ];
    for (record, reason) in &cases {
        assert_eq!(malformed(&raw::batch(1, 1, record)), *reason);
    }

    // Lengths that do not add up: the record length says one byte more.
    let mut long = ok.clone();
    long[0] += 1;
    long.push(0);
    assert_eq!(
        malformed(&raw::batch(1, 1, &long)),
        "record lengths do not add up"
    );
    let mut short = ok.clone();
    short[0..4].copy_from_slice(&39u32.to_le_bytes());
    assert_eq!(
        malformed(&raw::batch(1, 1, &short)),
        "record shorter than its header"
    );
    let mut beyond = ok.clone();
    beyond[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        malformed(&raw::batch(1, 1, &beyond)),
        "record longer than the frame"
    );

    assert_eq!(
        malformed(&raw::batch(0, 1, &ok)),
        "sequence numbers start at 1"
    );
    assert_eq!(malformed(&raw::batch(1, 0, b"")), "empty batch");
    assert_eq!(
        malformed(&raw::batch(u64::MAX, 2, &two)),
        "sequence numbers overflow"
    );
    assert_eq!(
        malformed(&raw::batch(1, u32::MAX, &ok)),
        "more records than the frame can hold"
    );
    let mut trailing = ok.clone();
    trailing.push(0);
    assert_eq!(
        malformed(&raw::batch(1, 1, &trailing)),
        "bytes after the last record"
    );
}

#[test]
fn levels_between_the_standard_ones_round_down() {
    let s = source();
    for (n, level) in [(0, Level::Trace), (25, Level::Info), (255, Level::Critical)] {
        let r = raw::record(n, 0, 0, [b"t", b"", b"", b"", b""], b"m", b"");
        assert_eq!(records_of(&raw::batch(1, 1, &r), &s)[0].level, level);
    }
}

#[test]
fn handshake_frames_ignore_appended_fields_others_do_not() {
    for ty in [1u8, 2, 5] {
        let mut f = sample_frames().into_iter().find(|f| f[5] == ty).unwrap();
        let original = f.clone();
        f.extend_from_slice(b"future");
        let len = (f.len() - 4) as u32;
        f[..4].copy_from_slice(&len.to_le_bytes());
        assert_eq!(decode(&f), decode(&original), "type {ty}");
    }
    for ty in [3u8, 4, 6, 7] {
        let mut f = sample_frames().into_iter().find(|f| f[5] == ty).unwrap();
        f.push(0);
        let len = (f.len() - 4) as u32;
        f[..4].copy_from_slice(&len.to_le_bytes());
        assert!(
            matches!(decode(&f), Err(WireError::Malformed { .. })),
            "type {ty}"
        );
    }
}

#[test]
fn hello_rejects_what_it_must() {
    let mut ok = Vec::new();
    encode_hello(&HELLO, &mut ok).unwrap();
    let payload = &ok[6..];
    // versions: count 0
    let mut p = payload.to_vec();
    p[0] = 0;
    assert_eq!(malformed(&raw::frame(1, &p)), "no version offered");
    // client id length 0 (at 1 + 1 + 8 + 4)
    let mut p = payload.to_vec();
    p[14] = 0;
    assert_eq!(malformed(&raw::frame(1, &p)), "empty client id");
    // client id not UTF-8
    let mut p = payload.to_vec();
    p[15] = 0xff;
    assert_eq!(
        malformed(&raw::frame(1, &p)),
        "client id truncated or not UTF-8"
    );
    let none = Hello {
        versions: &[7, 9],
        ..HELLO
    };
    assert_eq!(
        none.negotiate(),
        Err(WireError::NoCommonVersion { offered: 9 })
    );
    assert_eq!(
        none.negotiate().unwrap_err().code(),
        ErrorCode::UNSUPPORTED_VERSION
    );
}

#[test]
fn error_messages_are_cut_to_one_kib() {
    let mut out = Vec::new();
    encode_error(ErrorCode::MALFORMED, &"é".repeat(1000), &mut out);
    let Frame::Error { code, message } = decode(&out).unwrap() else {
        panic!()
    };
    assert_eq!(code, ErrorCode::MALFORMED);
    assert_eq!(message.len(), 1024);
    let mut out = Vec::new();
    encode_error(ErrorCode(999), "", &mut out);
    assert_eq!(
        decode(&out).unwrap(),
        Frame::Error {
            code: ErrorCode(999),
            message: ""
        }
    );
}

#[test]
fn every_cut_of_every_frame_waits_or_fails_without_panicking() {
    for frame in sample_frames() {
        for cut in 0..frame.len() {
            let head = &frame[..cut];
            // As a stream prefix: wait for more.
            let mut r = FrameReader::default();
            r.push(head);
            assert!(matches!(r.next_frame(), Ok(None)), "cut {cut}");
            match frame_len(head, DEFAULT_MAX_FRAME) {
                Ok(None) => assert!(cut < 4),
                Ok(Some(n)) => assert_eq!(n, frame.len()),
                Err(e) => panic!("cut {cut}: {e}"),
            }
            // As a whole frame: too short for its length field.
            assert!(decode(head).is_err(), "cut {cut}");
            // With the length field rewritten to match: a malformed payload.
            if cut >= 6 {
                let mut f = head.to_vec();
                f[..4].copy_from_slice(&((cut - 4) as u32).to_le_bytes());
                let handshake = matches!(f[5], 1 | 2 | 5);
                match decode(&f) {
                    Err(WireError::Malformed { .. }) => {}
                    // Only the handshake frames' own fields are required;
                    // a cut cannot make any frame valid before its end.
                    other => panic!("cut {cut} of type {} ({handshake}): {other:?}", f[5]),
                }
            }
        }
    }
}

#[test]
fn a_4_gib_length_is_rejected_from_the_length_field_alone() {
    let mut r = FrameReader::default();
    r.push(&[0xff, 0xff, 0xff, 0xff]);
    assert_eq!(
        r.next_frame().unwrap_err(),
        WireError::FrameTooLarge {
            len: u32::MAX,
            max: DEFAULT_MAX_FRAME
        }
    );
    assert_eq!(r.buffered(), 4);
    assert_eq!(
        r.next_frame().unwrap_err().code(),
        ErrorCode::FRAME_TOO_LARGE
    );
    // Just above and at the limit.
    let over = (DEFAULT_MAX_FRAME as u32 + 1).to_le_bytes();
    assert!(matches!(
        frame_len(&over, DEFAULT_MAX_FRAME),
        Err(WireError::FrameTooLarge { .. })
    ));
    let at = (DEFAULT_MAX_FRAME as u32).to_le_bytes();
    assert_eq!(
        frame_len(&at, DEFAULT_MAX_FRAME),
        Ok(Some(DEFAULT_MAX_FRAME + 4))
    );
    for short in [0u32, 1] {
        assert_eq!(
            frame_len(&short.to_le_bytes(), DEFAULT_MAX_FRAME),
            Err(WireError::FrameTooShort(short))
        );
    }
}

#[test]
fn unknown_version_and_type_are_caught_from_the_header() {
    let mut f = Vec::new();
    encode_ack(1, &mut f);
    let mut v2 = f.clone();
    v2[4] = 2;
    let e = frame_len(&v2[..5], DEFAULT_MAX_FRAME).unwrap_err();
    assert_eq!(e, WireError::UnsupportedVersion(2));
    assert_eq!(e.code(), ErrorCode::UNSUPPORTED_VERSION);
    assert_eq!(decode(&v2).unwrap_err(), e);

    let mut t = f.clone();
    t[5] = 42;
    let e = frame_len(&t[..6], DEFAULT_MAX_FRAME).unwrap_err();
    assert_eq!(e, WireError::UnknownFrameType(42));
    assert_eq!(e.code(), ErrorCode::UNKNOWN_FRAME_TYPE);
    let mut r = FrameReader::default();
    r.push(&t);
    assert_eq!(r.next_frame().unwrap_err(), e);
}

#[test]
fn other_protocols_on_the_port_are_rejected_at_once() {
    let cases: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        // A TLS ClientHello.
        &[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ],
        // A Python SocketHandler pickle: 4-byte big-endian length.
        &[0x00, 0x00, 0x01, 0x2c, 0x80, 0x04, 0x95],
        b"<34>1 2026-11-22T10:00:00Z host app - - - hi\n",
    ];
    for bytes in cases {
        let mut r = FrameReader::default();
        r.push(bytes);
        let e = r.next_frame().unwrap_err();
        assert!(
            matches!(
                e,
                WireError::FrameTooLarge { .. } | WireError::UnsupportedVersion(_)
            ),
            "{e}"
        );
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = rng.below(64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = decode(&bytes);
        let _ = frame_len(&bytes, DEFAULT_MAX_FRAME);
        let mut r = FrameReader::new(256);
        r.push(&bytes);
        while let Ok(Some(_)) = r.next_frame() {}
    }
}

#[test]
fn a_stream_fed_one_byte_at_a_time_yields_every_frame() {
    let frames = sample_frames();
    let stream: Vec<u8> = frames.concat();
    let mut r = FrameReader::default();
    let mut got = Vec::new();
    for b in &stream {
        r.push(std::slice::from_ref(b));
        while let Some(f) = r.next_frame().unwrap() {
            let mut bytes = Vec::new();
            f.encode(&mut bytes).unwrap();
            got.push(bytes);
        }
    }
    assert_eq!(got, frames);
    assert_eq!(r.buffered(), 0);
}

#[test]
fn the_two_step_api_works_over_a_caller_owned_buffer() {
    let stream: Vec<u8> = sample_frames().concat();
    let mut buf = &stream[..];
    let mut n = 0;
    while let Some(len) = frame_len(buf, DEFAULT_MAX_FRAME).unwrap() {
        let (frame, rest) = buf.split_at(len);
        decode(frame).unwrap();
        buf = rest;
        n += 1;
    }
    assert_eq!(n, sample_frames().len());
}

#[test]
fn batches_fill_up_to_the_limit_and_no_further() {
    let s = source();
    let fields = some_fields();
    let mut e = BatchEncoder::new(64 * 1024);
    let mut pushed = 0;
    let mut out = Vec::new();
    let mut first = 1;
    let mut frames = 0;
    while pushed < 2000 {
        let msg = format!("record {pushed}");
        match e.push(&full(&s, msg.as_bytes(), &fields)) {
            Push::Added => pushed += 1,
            Push::Full => {
                assert!(e.frame_len() <= 4 + 64 * 1024);
                first += u64::from(e.finish(first, &mut out).unwrap());
                frames += 1;
            }
            Push::Truncated => panic!(),
        }
    }
    e.finish(first, &mut out).unwrap();
    frames += 1;
    let mut r = FrameReader::new(64 * 1024);
    r.push(&out);
    let mut next = 1;
    let mut seen = 0;
    while let Some(f) = r.next_frame().unwrap() {
        let Frame::Batch(b) = f else { panic!() };
        assert_eq!(b.first_seq(), next);
        next += u64::from(b.len());
        for rec in b.records(&s) {
            assert_eq!(rec.message, format!("record {seen}").as_bytes());
            seen += 1;
        }
    }
    assert_eq!((seen, frames > 1), (2000, true));
}

/// A client that loses its connection twice (once before the collector
/// committed, once before the client saw the acks) still gets every record
/// written exactly once, in order.
#[test]
fn resending_after_reconnects_writes_each_record_once() {
    let s = source();
    let mut dedup = Dedup::new();
    let mut written: Vec<Vec<u8>> = Vec::new();
    // Client side: frames kept until acked, as (first, last, bytes).
    let mut unacked: Vec<(u64, u64, Vec<u8>)> = Vec::new();
    let mut next_seq = 1;
    let mut e = BatchEncoder::default();
    let mut make = |n: usize, e: &mut BatchEncoder, unacked: &mut Vec<(u64, u64, Vec<u8>)>| {
        for i in 0..n {
            let m = format!("m{}", next_seq + i as u64);
            let _ = e.push(&bare(&s, m.as_bytes()));
        }
        let mut f = Vec::new();
        let count = e.finish(next_seq, &mut f).unwrap();
        unacked.push((next_seq, next_seq + u64::from(count) - 1, f));
        next_seq += u64::from(count);
    };
    make(3, &mut e, &mut unacked);
    make(3, &mut e, &mut unacked);

    // One connection: the collector handles the frames it receives, in
    // order, and answers with the acks the client receives.
    // One connection: the collector handles the first `deliver` frames the
    // client (re)sends; `commit` says whether it got to commit them,
    // `ack_seen` whether the client got the acks.
    let mut connect = |dedup: &mut Dedup,
                       unacked: &mut Vec<(u64, u64, Vec<u8>)>,
                       deliver: usize,
                       commit: bool,
                       ack_seen: bool| {
        let highest = dedup.hello(HELLO.client_id, HELLO.epoch);
        unacked.retain(|&(_, last, _)| last > highest);
        let mut acked = 0;
        for (_, _, frame) in unacked.iter().take(deliver) {
            let Frame::Batch(b) = decode(frame).unwrap() else {
                panic!()
            };
            let a = dedup
                .admit(HELLO.client_id, HELLO.epoch, b.first_seq(), b.len())
                .unwrap();
            for r in b.records(&s).skip(a.skip as usize) {
                written.push(r.message.to_vec());
            }
            if commit {
                acked = dedup
                    .commit(HELLO.client_id, HELLO.epoch, b.last_seq())
                    .unwrap();
            }
        }
        if ack_seen {
            unacked.retain(|&(_, last, _)| last > acked);
        }
    };
    // Batch 1 is handed to the sinks, the connection drops before the
    // collector commits it: the next welcome says 0, the resend is skipped.
    connect(&mut dedup, &mut unacked, 1, false, false);
    make(2, &mut e, &mut unacked);
    // Batches 1 and 2 are committed, the acks are lost.
    connect(&mut dedup, &mut unacked, 2, true, false);
    // The welcome drops them; batch 3 goes through and is acked.
    connect(&mut dedup, &mut unacked, usize::MAX, true, true);
    assert!(unacked.is_empty());
    let want: Vec<Vec<u8>> = (1..=8).map(|i| format!("m{i}").into_bytes()).collect();
    assert_eq!(written, want);
}

#[test]
fn frames_from_a_newer_hello_still_parse() {
    // A future client offering versions 1 and 2 sends its HELLO as version 1.
    let mut out = Vec::new();
    encode_hello(
        &Hello {
            versions: &[2, 1],
            ..HELLO
        },
        &mut out,
    )
    .unwrap();
    let Frame::Hello(h) = decode(&out).unwrap() else {
        panic!()
    };
    assert_eq!(h.negotiate(), Ok(wire::VERSION));
}

// ---------------------------------------------------------------------
// The worked examples of PROTOCOL.md and the fuzz seeds.

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bless() -> bool {
    std::env::var_os("LOGBRAID_BLESS").is_some()
}

/// Renders labelled pieces as an annotated hex dump, after checking that
/// they make up exactly `frame`.
fn annotate(title: &str, frame: &[u8], pieces: &[(&str, Vec<u8>)]) -> String {
    let joined: Vec<u8> = pieces.iter().flat_map(|(_, b)| b.clone()).collect();
    assert_eq!(
        joined, frame,
        "the annotation of {title} disagrees with the encoder"
    );
    let mut s = format!("{title} ({} bytes):\n\n```text\n", frame.len());
    for (label, bytes) in pieces {
        let mut first = true;
        for chunk in bytes.chunks(16) {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let hex = hex.join(" ");
            if first {
                let _ = writeln!(s, "{hex:<47}  {label}");
                first = false;
            } else {
                let _ = writeln!(s, "{hex}");
            }
        }
        if bytes.is_empty() {
            let _ = writeln!(s, "{:<47}  {label}", "");
        }
    }
    s.push_str("```\n\nAs one string: `");
    for b in frame {
        let _ = write!(s, "{b:02x}");
    }
    s.push_str("`\n");
    s
}

fn le16(v: u16) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}
fn le32(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}
fn le64(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn examples() -> String {
    let mut doc = String::new();

    let mut hello = Vec::new();
    encode_hello(&HELLO, &mut hello).unwrap();
    doc += &annotate(
        "`HELLO` from client `web-1/api` (host `web-1`, pid 4242, program `api`, token `s3cret`, epoch `0x0123456789abcdef`)",
        &hello,
        &[
            ("length = 46", le32(46)),
            ("version 1", vec![1]),
            ("type 1 = HELLO", vec![1]),
            ("1 version offered", vec![1]),
            ("  version 1", vec![1]),
            ("epoch", le64(HELLO.epoch)),
            ("pid = 4242", le32(4242)),
            ("client id: 9 bytes", vec![9]),
            ("  \"web-1/api\"", b"web-1/api".to_vec()),
            ("host: 5 bytes", le16(5)),
            ("  \"web-1\"", b"web-1".to_vec()),
            ("program: 3 bytes", le16(3)),
            ("  \"api\"", b"api".to_vec()),
            ("token: 6 bytes", le16(6)),
            ("  \"s3cret\"", b"s3cret".to_vec()),
        ],
    );
    doc.push('\n');

    let mut welcome = Vec::new();
    encode_welcome(1, 41, DEFAULT_MAX_FRAME as u32, &mut welcome);
    doc += &annotate(
        "`WELCOME`: version 1, records up to 41 already written, frames up to 1 MiB",
        &welcome,
        &[
            ("length = 15", le32(15)),
            ("version 1", vec![1]),
            ("type 2 = WELCOME", vec![2]),
            ("accepted version 1", vec![1]),
            ("highest written = 41", le64(41)),
            ("max frame = 1048576", le32(1 << 20)),
        ],
    );
    doc.push('\n');

    let s = source();
    let mut fields = FieldsBuf::new();
    fields.push_str("user", "ada");
    fields.push("attempt", Value::I64(2));
    let record = Record::new(Level::Info, "app.db", b"connected in 3 ms", &s)
        .with_timestamp(1_795_341_600_123_456_789)
        .with_module("app::db")
        .with_file("src/db.rs")
        .with_line(42)
        .with_thread_id(7)
        .with_thread_name("main")
        .with_fields(fields.as_fields());
    let batch = batch_frame(42, &[record]);
    let body = 40 + 6 + 7 + 9 + 4 + 17 + fields.as_bytes().len();
    let frame_length = format!("length = {}", batch.len() - 4);
    let record_length = format!("record length = {body}");
    let fields_length = format!("fields length = {}", fields.as_bytes().len());
    doc += &annotate(
        "`BATCH` of one record, sequence number 42",
        &batch,
        &[
            (&frame_length, le32((batch.len() - 4) as u32)),
            ("version 1", vec![1]),
            ("type 3 = BATCH", vec![3]),
            ("first sequence = 42", le64(42)),
            ("count = 1", le32(1)),
            (&record_length, le32(body as u32)),
            (
                "timestamp = 1795341600123456789 ns (2026-11-22T10:00:00.123456789Z)",
                le64(record.timestamp_ns as u64),
            ),
            ("thread id = 7", le64(7)),
            ("line = 42", le32(42)),
            ("message length = 17", le32(17)),
            (&fields_length, le32(fields.as_bytes().len() as u32)),
            ("level = 20 (INFO)", vec![20]),
            (
                "flags = module | file | line | thread name",
                vec![1 | 2 | 4 | 16],
            ),
            ("target length = 6", le16(6)),
            ("module length = 7", le16(7)),
            ("file length = 9", le16(9)),
            ("function length = 0 (absent)", le16(0)),
            ("thread name length = 4", le16(4)),
            ("target \"app.db\"", b"app.db".to_vec()),
            ("module \"app::db\"", b"app::db".to_vec()),
            ("file \"src/db.rs\"", b"src/db.rs".to_vec()),
            ("thread name \"main\"", b"main".to_vec()),
            (
                "message \"connected in 3 ms\"",
                b"connected in 3 ms".to_vec(),
            ),
            ("field key: 4 bytes", le16(4)),
            ("  \"user\"", b"user".to_vec()),
            ("  tag 0 = string", vec![0]),
            ("  value: 3 bytes", le32(3)),
            ("  \"ada\"", b"ada".to_vec()),
            ("field key: 7 bytes", le16(7)),
            ("  \"attempt\"", b"attempt".to_vec()),
            ("  tag 1 = i64", vec![1]),
            ("  value 2", le64(2)),
        ],
    );
    doc.push('\n');

    let mut ack = Vec::new();
    encode_ack(42, &mut ack);
    doc += &annotate(
        "`ACK`: everything up to 42 is written",
        &ack,
        &[
            ("length = 10", le32(10)),
            ("version 1", vec![1]),
            ("type 4 = ACK", vec![4]),
            ("highest written = 42", le64(42)),
        ],
    );
    doc.push('\n');

    let mut error = Vec::new();
    encode_error(ErrorCode::BAD_TOKEN, "bad token", &mut error);
    doc += &annotate(
        "`ERROR`: bad token",
        &error,
        &[
            ("length = 15", le32(15)),
            ("version 1", vec![1]),
            ("type 5 = ERROR", vec![5]),
            ("code 1 = bad token", le16(1)),
            ("message: 9 bytes", le16(9)),
            ("  \"bad token\"", b"bad token".to_vec()),
        ],
    );
    doc
}

const BEGIN: &str = "<!-- BEGIN GENERATED EXAMPLES: crates/logbraid/tests/wire.rs -->\n";
const END: &str = "<!-- END GENERATED EXAMPLES -->";

#[test]
fn protocol_md_examples_match_the_encoder() {
    let path = repo_root().join("PROTOCOL.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        panic!("PROTOCOL.md lacks the generated-examples markers")
    };
    let generated = examples();
    let current = &text[b + BEGIN.len()..e];
    if current == generated {
        return;
    }
    if bless() {
        let new = format!("{}{}{}", &text[..b + BEGIN.len()], generated, &text[e..]);
        std::fs::write(&path, new).unwrap();
    } else {
        panic!("PROTOCOL.md examples are stale: rerun with LOGBRAID_BLESS=1\n{generated}");
    }
}

#[test]
fn fuzz_seeds_are_real_frames() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/decode");
    let mut frames = sample_frames();
    frames.push(sample_frames().concat());
    for (i, frame) in frames.iter().enumerate() {
        let path = dir.join(format!("frame-{i:02}"));
        if bless() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, frame).unwrap();
        } else {
            let seed = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; rerun with LOGBRAID_BLESS=1", path.display()));
            assert_eq!(&seed, frame, "{} is stale", path.display());
        }
    }
}

// ---------------------------------------------------------------------
// Measurements: run with
// `cargo test --release -p logbraid --test wire -- --ignored --nocapture`.

/// xorshift64*: a small deterministic generator, so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Reads everything a decoded frame exposes, as a collector would.
fn touch(frame: &Frame<'_>, source: &Source) -> usize {
    let mut n = 0;
    if let Frame::Batch(b) = frame {
        for r in b.records(source) {
            n += r.message.len() + r.target.len() + r.module.map_or(0, str::len);
            for (k, v) in r.fields.iter() {
                n += k.len() + v.to_string().len();
            }
        }
        assert_eq!(b.records(source).count(), b.len() as usize);
    }
    n
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&seeds[rng.below(seeds.len() as u64) as usize]);
    for _ in 0..1 + rng.below(4) {
        let len = out.len() as u64;
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len) as usize;
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len) as usize;
                out[i] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5) as usize];
            }
            2 => out.truncate(rng.below(len + 1) as usize),
            3 => {
                let other = &seeds[rng.below(seeds.len() as u64) as usize];
                let at = rng.below(len + 1) as usize;
                let from = rng.below(other.len() as u64 + 1) as usize;
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            4 if len > 0 => {
                let a = rng.below(len) as usize;
                let b = a + rng.below(len - a as u64 + 1) as usize;
                let dup = out[a..b].to_vec();
                out.splice(b..b, dup);
            }
            5 if len > 0 => {
                let a = rng.below(len) as usize;
                let b = a + rng.below((len - a as u64).min(16) + 1) as usize;
                out.drain(a..b);
            }
            6 if len >= 4 => {
                let i = rng.below(len - 3) as usize;
                let v: u32 =
                    [0, 1, 2, 39, 40, 44, 0xffff, 0x7fff_ffff, u32::MAX][rng.below(9) as usize];
                out[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            7 => {
                for _ in 0..rng.below(8) {
                    out.push(rng.next() as u8);
                }
            }
            _ => {}
        }
    }
    // Half the time, make the length field agree, to reach the payload.
    if out.len() >= 4 && rng.below(2) == 0 {
        let len = (out.len() - 4) as u32;
        out[..4].copy_from_slice(&len.to_le_bytes());
    }
}

#[test]
#[ignore = "stress: run in release with --ignored"]
fn stress_mutated_frames_never_panic() {
    let iterations: u64 = std::env::var("WIRE_STRESS_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000_000);
    let s = source();
    let mut seeds = sample_frames();
    seeds.push(sample_frames().concat());
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut buf = Vec::new();
    let mut reencoded = Vec::new();
    let (mut ok, mut batches, mut records, mut touched) = (0u64, 0u64, 0u64, 0usize);
    let started = Instant::now();
    for i in 0..iterations {
        mutate(&mut rng, &seeds, &mut buf);
        if let Ok(frame) = decode(&buf) {
            ok += 1;
            touched += touch(&frame, &s);
            if let Frame::Batch(b) = frame {
                batches += 1;
                records += u64::from(b.len());
            }
            // What decodes re-encodes to something that decodes the same.
            reencoded.clear();
            frame.encode(&mut reencoded).unwrap();
            assert_eq!(decode(&reencoded).unwrap(), frame, "iteration {i}");
        }
        // As a stream, in random pieces, under a random limit.
        let max = [64, 4096, DEFAULT_MAX_FRAME][rng.below(3) as usize];
        let mut r = FrameReader::new(max);
        let mut rest = &buf[..];
        'feed: while !rest.is_empty() {
            let n = 1 + rng.below(rest.len() as u64) as usize;
            r.push(&rest[..n]);
            rest = &rest[n..];
            loop {
                match r.next_frame() {
                    Ok(Some(f)) => touched += touch(&f, &s),
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
        assert!(r.buffered() <= buf.len());
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "stress: {iterations} mutated inputs (each decoded whole and as a stream) in {secs:.1} s \
         = {:.0}/s; {ok} decoded, {batches} batches, {records} records read ({touched} bytes)",
        iterations as f64 / secs
    );
}
