//! Formats records with a layout, for counting instructions under
//! callgrind (wall-clock timing is useless on a loaded machine):
//!
//! ```text
//! cargo build --release -p logbraid --example layout_cost
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/layout_cost text 1000000 100000
//! ```
//!
//! Arguments: the layout (`text`, `json`, `asctime` for Python's default
//! `%(asctime)s`, `datefmt` for a `datefmt` with names and a zone), the
//! number of records, the nanoseconds between two records' timestamps
//! (100 000: ten thousand records share each second), and the number of
//! threads whose records take turns (1: all from one thread).

use std::hint::black_box;

use logbraid::layout::{JsonLayout, Layout, PythonLayout, TextLayout};
use logbraid::record::{Record, Source};
use logbraid::Level;

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "text".to_string());
    let count: i64 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("a count"));
    let step: i64 = args
        .next()
        .map_or(100_000, |a| a.parse().expect("a step in ns"));
    let threads: u64 = args
        .next()
        .map_or(1, |a| a.parse().expect("a count of threads"));
    let mut layout: Box<dyn Layout> = match kind.as_str() {
        "text" => Box::new(TextLayout::new()),
        "json" => Box::new(JsonLayout::new()),
        "asctime" => Box::new(
            PythonLayout::new("%(asctime)s %(levelname)s %(name)s %(message)s", None)
                .expect("a valid format"),
        ),
        "datefmt" => Box::new(
            PythonLayout::new(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                Some("%a %d %b %Y %H:%M:%S %z %Z"),
            )
            .expect("a valid format"),
        ),
        other => panic!("unknown layout {other:?}: text, json, asctime or datefmt"),
    };
    let source = Source {
        host: "host".to_string(),
        pid: 42,
        process_name: "layout_cost".to_string(),
    };
    let mut out = Vec::with_capacity(1 << 16);
    let mut bytes = 0usize;
    // 2026-11-22 10:00:00 UTC.
    let start: i64 = 1_795_341_600_000_000_000;
    for i in 0..count {
        let r = Record::new(Level::Info, "app::db", b"query finished", &source)
            .with_timestamp(start + i * step)
            .with_thread_id(7 + i as u64 % threads.max(1));
        layout.format(black_box(&r), &mut out);
        if out.len() > 60_000 {
            bytes += out.len();
            out.clear();
        }
    }
    bytes += out.len();
    println!("{kind}: {count} records, {bytes} bytes");
}
