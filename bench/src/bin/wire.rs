//! The native wire protocol's cost for a typical record: bytes on the
//! wire, encoding, and decoding with validation and iteration, in records
//! and megabytes a second. A measurement, so it lives here and not among
//! the tests:
//!
//! ```sh
//! cargo run --release -p logbraid-bench --bin wire
//! ```

use std::sync::Arc;
use std::time::Instant;

use logbraid::wire::{BatchEncoder, Frame, FrameReader, Push};
use logbraid::{FieldsBuf, Level, Record, Source, Value};

fn main() {
    let s = Arc::new(Source {
        host: "web-1".to_string(),
        pid: 4242,
        process_name: "api".to_string(),
    });
    let mut fields = FieldsBuf::new();
    fields.push_str("user", "ada@example.com");
    fields.push("elapsed_ms", Value::I64(12));
    let message = b"request GET /api/v1/orders/12345 completed with status 200 after 12 ms (cache miss, 3 queries)";
    assert!((90..110).contains(&message.len()));
    let record = Record::new(Level::Info, "api::orders", message, &s)
        .with_timestamp(1_795_341_600_123_456_789)
        .with_module("api::orders")
        .with_file("src/orders.rs")
        .with_line(120)
        .with_thread_id(12345)
        .with_thread_name("worker-3")
        .with_fields(fields.as_fields());
    let n: u64 = 4_000_000;

    // Encoding: each finished frame goes to a buffer that is then "sent".
    fn encode(record: &Record<'_>, n: u64, sent: &mut dyn FnMut(&[u8])) {
        let mut e = BatchEncoder::default();
        let mut frame = Vec::new();
        let mut seq = 1;
        for _ in 0..n {
            if e.push(record) == Push::Full {
                seq += u64::from(e.finish(seq, &mut frame).unwrap());
                sent(&frame);
                frame.clear();
                assert_eq!(e.push(record), Push::Added);
            }
        }
        e.finish(seq, &mut frame).unwrap();
        sent(&frame);
    }
    let mut wire_bytes = 0;
    let started = Instant::now();
    encode(&record, n, &mut |f| wire_bytes += f.len());
    let enc = started.elapsed().as_secs_f64();
    let per_record = wire_bytes as f64 / n as f64;
    let mut stream = Vec::with_capacity(wire_bytes);
    encode(&record, n, &mut |f| stream.extend_from_slice(f));

    let started = Instant::now();
    let mut r = FrameReader::default();
    let mut count = 0u64;
    let mut bytes = 0usize;
    for chunk in stream.chunks(64 * 1024) {
        r.push(chunk);
        while let Some(f) = r.next_frame().unwrap() {
            let Frame::Batch(b) = f else { panic!() };
            for rec in b.records(&s) {
                count += 1;
                bytes += rec.message.len();
            }
        }
    }
    let dec = started.elapsed().as_secs_f64();
    assert_eq!(count, n);
    assert_eq!(bytes, n as usize * message.len());
    println!(
        "typical record: {per_record:.0} bytes on the wire; encode {:.2} M records/s ({:.0} MB/s); \
         decode+validate+iterate {:.2} M records/s ({:.0} MB/s)",
        n as f64 / enc / 1e6,
        wire_bytes as f64 / enc / 1e6,
        n as f64 / dec / 1e6,
        stream.len() as f64 / dec / 1e6,
    );
}
