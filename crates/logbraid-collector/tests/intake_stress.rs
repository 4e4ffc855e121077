//! Mutated real inputs through every decoder: none may panic, and each
//! keeps its bounds. The fuzz targets in `fuzz/` do the same with
//! coverage guidance where nightly Rust is available; this runs on stable.
//!
//! The quick test runs on every `cargo test`. The long one:
//!
//! ```text
//! INTAKE_STRESS_ITERATIONS=2000000 cargo test --release -p logbraid-collector \
//!     --test intake_stress -- --ignored --nocapture
//! ```

mod intake_common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use intake_common::{hex_of, python_json};
use logbraid_collector::intake::pickle::{decode, Limits};
use logbraid_collector::intake::python::{datagram, record_from_dict, FrameDecoder, PythonIntake};
use logbraid_collector::intake::syslog::{parse_with, SyslogTcpDecoder};
use logbraid_collector::intake::SourceCache;

/// xorshift64*: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: [u64; 12] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

/// Bytes that mean something to one of the decoders.
const TOKENS: &[u8] = b"<>[]\"\\=:-. \n\r\0(\x80\x95\x8c\x94\x93Xqh}]ustedl0123456789";

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&seeds[rng.below(seeds.len())]);
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = TOKENS[rng.below(TOKENS.len())];
            }
            2 if len > 0 => {
                let i = rng.below(len);
                out[i] = rng.next() as u8;
            }
            3 => out.truncate(rng.below(len + 1)),
            4 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(at..at, bytes);
            }
            5 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                out.drain(a..b);
            }
            6 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let copy = out[a..b].to_vec();
                let at = rng.below(len + 1);
                out.splice(at..at, copy);
            }
            7 => {
                let other = &seeds[rng.below(seeds.len())];
                let at = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            8 if len > 0 => {
                let width = [1, 2, 4, 8][rng.below(4)];
                let mut v = INTERESTING[rng.below(INTERESTING.len())];
                if rng.below(4) == 0 {
                    v = len as u64 + rng.below(3) as u64 - 1;
                }
                let bytes = if rng.below(2) == 0 {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                let at = rng.below(len);
                for (k, b) in bytes[8 - width..].iter().enumerate() {
                    if at + k < out.len() {
                        out[at + k] = *b;
                    }
                }
            }
            _ => {
                let at = rng.below(len + 1);
                out.insert(at, TOKENS[rng.below(TOKENS.len())]);
            }
        }
    }
}

/// Feeds `iterations` mutated seeds to `check`, printing the input that
/// made it panic before passing the panic on.
fn stress(name: &str, seeds: &[Vec<u8>], iterations: u64, check: impl Fn(&[u8])) -> u64 {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    let mut input = Vec::new();
    for seed in seeds {
        check(seed);
    }
    for _ in 0..iterations {
        mutate(&mut rng, seeds, &mut input);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&input))) {
            eprintln!("{name}: panic on input {:02x?}", input);
            std::panic::resume_unwind(panic);
        }
    }
    iterations + seeds.len() as u64
}

fn check_pickle(data: &[u8]) {
    let limits = Limits {
        max_elements: 100_000,
        max_total_bytes: 1 << 20,
        ..Limits::default()
    };
    if let Ok(value) = decode(data, &limits) {
        let mut repr = String::new();
        value.write_repr(&mut repr, 4096);
        assert!(repr.len() <= 4096 + 3);
        if let Ok(record) = record_from_dict(&value, "peer", 0, &mut SourceCache::new()) {
            assert!(record.fields.as_fields().validate().is_some());
        }
    }
}

fn check_python_frame(data: &[u8]) {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let mut intake = PythonIntake::default();
    let mut decoder = FrameDecoder::new(4096);
    let mut taken = 0usize;
    for chunk in stream.chunks(usize::from(step % 64) + 1) {
        decoder.push(chunk);
        assert!(decoder.buffered() <= stream.len());
        while let Ok(Some(frame)) = decoder.next_frame() {
            assert!(frame.len() <= 4096);
            taken += frame.len() + 4;
            let _ = intake.decode(frame, "peer", 0);
        }
    }
    assert!(taken <= stream.len());
    let _ = decoder.finish();
    if let Ok(pickle) = datagram(stream) {
        let _ = intake.decode(pickle, "peer", 0);
    }
}

fn check_syslog(data: &[u8]) {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let received = i64::from(step) * 86_400_000_000_000 * 61;
    let mut sources = SourceCache::new();
    if let Ok(record) = parse_with(rest, received, "peer", &mut sources) {
        assert!(record.fields.as_fields().validate().is_some());
        assert!(record.message.len() <= rest.len());
    }
    let mut decoder = SyslogTcpDecoder::new(512);
    for chunk in rest.chunks(usize::from(step % 64) + 1) {
        decoder.push(chunk);
        while let Ok(Some(frame)) = decoder.next_frame() {
            assert!(frame.len() <= 512);
            let _ = parse_with(frame, received, "peer", &mut sources);
        }
    }
    if let Ok(Some(frame)) = decoder.finish() {
        let _ = parse_with(frame, received, "peer", &mut sources);
    }
}

struct Seeds {
    pickle: Vec<Vec<u8>>,
    frame: Vec<Vec<u8>>,
    syslog: Vec<Vec<u8>>,
}

/// Real pickles and frames from Python, and syslog lines as the RFCs,
/// `logger` and Python's `SysLogHandler` write them.
fn seeds() -> Seeds {
    let doc = python_json(
        r#"
import datetime, json, logging, logging.handlers, os, pickle
H = logging.handlers.SocketHandler("localhost", None)
records = []
class Keep(logging.Handler):
    def emit(self, r):
        records.append(r)
log = logging.getLogger("seed")
log.addHandler(Keep())
log.setLevel(1)
try:
    {}["k"]
except KeyError:
    log.exception("failed %s", "x", extra={"a": [1, {"b": (2.5, None)}], "u": "\u00e9"})
log.info("plain", stack_info=True)
pickles, frames = [], []
for r in records:
    frame = H.makePickle(r)
    frames.append(b"\x07" + frame + frame)
    d = pickle.loads(frame[4:])
    for p in range(6):
        data = pickle.dumps(d, p)
        pickles.append(data)
        frames.append(bytes([p * 11]) + len(data).to_bytes(4, "big") + data)
for v in ([1, 2**70, -2**100, 1.5], {"x": b"\x00", "s": {1, 2}, "f": frozenset([3]),
          "ba": bytearray(b"q")}, (None, True, False, (), (1,), (1, 2), (1, 2, 3))):
    for p in range(3, 6):
        pickles.append(pickle.dumps(v, p))
pickles.append(pickle.dumps(os.system))
pickles.append(pickle.dumps(datetime.datetime(2024, 1, 1), 0))
print(json.dumps({"pickle": [p.hex() for p in pickles], "frame": [f.hex() for f in frames]}))
"#,
    );
    let list = |k: &str| doc[k].as_array().unwrap().iter().map(hex_of).collect();
    let mut pickle: Vec<Vec<u8>> = list("pickle");
    pickle.push(b"S'abc'\np0\n.".to_vec());
    pickle.push(b"Vcaf\\u00e9\n(K\x01K\x02l2\x86.".to_vec());
    let lines: [&[u8]; 9] = [
        b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root' failed",
        b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time",
        b"<165>1 2003-10-11T22:14:15.003Z h evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Ap\\\"p\\]\"][x@1 a=\"b\"] msg",
        b"<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!",
        b"<86>Mar  1 00:00:01 sshd[4242]: Accepted publickey",
        b"<30>2024-02-10T08:00:00.5+00:00 web1 systemd-logind[1]: New session",
        b"<187>Jan  2 2020 03:04:05 sw1 LINK: down",
        b"<12>svc: msg\0",
        b"<14>1 - - - - - -",
    ];
    let mut syslog = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let mut one = vec![i as u8];
        one.extend_from_slice(line);
        syslog.push(one);
        let mut stream = vec![(i * 7) as u8];
        stream.extend_from_slice(format!("{} ", line.len()).as_bytes());
        stream.extend_from_slice(line);
        stream.extend_from_slice(line);
        stream.extend_from_slice(b"\n");
        syslog.push(stream);
    }
    Seeds {
        pickle,
        frame: list("frame"),
        syslog,
    }
}

fn run(iterations: u64) {
    let s = seeds();
    let runs = [
        (
            "pickle",
            stress("pickle", &s.pickle, iterations, check_pickle),
        ),
        (
            "python_frame",
            stress("python_frame", &s.frame, iterations, check_python_frame),
        ),
        (
            "syslog",
            stress("syslog", &s.syslog, iterations, check_syslog),
        ),
    ];
    for (name, executions) in runs {
        eprintln!("{name}: {executions} executions, 0 panics");
    }
}

#[test]
fn mutated_inputs_never_panic() {
    run(20_000);
}

#[test]
#[ignore = "long: run with --release -- --ignored"]
fn mutated_inputs_never_panic_long() {
    let iterations = std::env::var("INTAKE_STRESS_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    run(iterations);
}
