//! The Python `%`-style layout's cost: a fixed number of records rendered
//! with three formats (the usual one, one of numbers and repr, and
//! `extra=` fields with widths), deterministic so that an instruction
//! count measures it on a busy machine:
//!
//! ```sh
//! cargo build --release -p logbraid-bench --bin pylayout
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/pylayout 20000
//! ```
//!
//! It prints the number of bytes rendered and a checksum of them, which
//! must not change when the layout's code does.

use logbraid::layout::{Layout, PythonLayout};
use logbraid::{FieldsBuf, Level, Record, Source, Value};

const FORMATS: [&str; 3] = [
    "%(asctime)s %(levelname)-8s %(name)s [%(process)d/%(threadName)s] %(module)s:%(lineno)d %(message)s",
    "%(created)f %(msecs)03d %(thread)d %(levelno)s %(name)r %(lineno)#x %(created).3e %(message).20s",
    "%(message)s user=%(user)s n=%(n)5d ratio=%(ratio).3f ok=%(ok)s big=%(big)d miss=%(missing)s t=%(ratio)s",
];

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let source = Source {
        host: "web-1".to_string(),
        pid: 4242,
        process_name: "api".to_string(),
    };
    let mut fields = FieldsBuf::new();
    fields.push_str("user", "ada@example.com");
    fields.push("n", Value::I64(-12));
    fields.push("ratio", Value::F64(0.123_456_7));
    fields.push("ok", Value::Bool(true));
    fields.push("big", Value::U64(u64::MAX));
    let mut layouts: Vec<PythonLayout> = FORMATS
        .iter()
        .map(|f| PythonLayout::new(f, None).unwrap().with_utc(true))
        .collect();
    let mut out = Vec::with_capacity(1 << 16);
    let (mut bytes, mut sum) = (0usize, 0u64);
    for i in 0..n {
        let message = b"request GET /api/v1/orders/12345 completed with status 200";
        let record = Record::new(Level::Info, "api.orders", message, &source)
            .with_timestamp(1_795_341_600_123_456_789 + (i as i64) * 1_234_567)
            .with_module("api.orders")
            .with_file("src/orders.py")
            .with_line(120 + (i % 7) as u32)
            .with_function("handle")
            .with_thread_id(12345)
            .with_thread_name("worker-3")
            .with_fields(fields.as_fields());
        for layout in &mut layouts {
            out.clear();
            layout.format(&record, &mut out);
            bytes += out.len();
            for &b in &out {
                sum = sum.wrapping_mul(31).wrapping_add(u64::from(b));
            }
        }
    }
    println!("{bytes} bytes, checksum {sum:016x}");
}
