//! logbraid's own macros, end to end through the logger `Builder::init`
//! installs (also the `log` facade's): every argument kind and spec gives
//! the bytes `format!` gives, and the same lines as `log::info!` in the
//! text, JSON and Python-style layouts. Each test logs under a target of
//! its own (its module) and reads back only its lines.

use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;

use logbraid::layout::LayoutSpec;
use logbraid::sink::RollingFile;
use logbraid::{Builder, Guard};

struct Setup {
    dir: PathBuf,
    _guard: Guard,
    _tmp: tempfile::TempDir,
}

const PYTHON: &str = "%(levelname)s|%(name)s|%(module)s|%(filename)s|%(lineno)d|%(message)s";

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let file = |name: &str, spec: LayoutSpec| {
            RollingFile::builder(dir.join(name)).layout(spec.build(false))
        };
        let guard = Builder::new()
            .level("info")
            .children(false)
            .inherit_collector(false)
            .signals(false)
            .file(file("text.log", LayoutSpec::Text))
            .unwrap()
            .file(file("json.log", LayoutSpec::Json))
            .unwrap()
            .file(file("python.log", LayoutSpec::parse(PYTHON, None).unwrap()))
            .unwrap()
            .init()
            .unwrap();
        Setup {
            dir,
            _guard: guard,
            _tmp: tmp,
        }
    })
}

/// This target's lines of one file, after a flush.
fn lines(file: &str, target: &str) -> Vec<String> {
    let dir = &setup().dir;
    logbraid::global().unwrap().flush();
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let text_mark = format!(" {target}: ");
    let json_mark = format!("\"target\":\"{target}\"");
    let python_mark = format!("|{target}|");
    text.lines()
        .filter(|l| l.contains(&text_mark) || l.contains(&json_mark) || l.contains(&python_mark))
        .map(str::to_string)
        .collect()
}

/// The text line without its timestamp.
fn untimed(line: &str) -> &str {
    line.split_once(' ').unwrap().1
}

/// Logs through `log::info!` and `logbraid::info!` on one source line, so
/// the two records differ in nothing but their time.
macro_rules! both {
    ($($t:tt)*) => {{
        log::info!($($t)*);
        logbraid::info!($($t)*);
    }};
}

/// Checks that every pair of records of `target` is the same line in each
/// layout, and that the messages are `expected`, in order.
fn check_pairs(target: &str, expected: &[String]) {
    let text = lines("text.log", target);
    let json = lines("json.log", target);
    let python = lines("python.log", target);
    assert_eq!(text.len(), 2 * expected.len(), "{text:#?}");
    assert_eq!(json.len(), text.len());
    assert_eq!(python.len(), text.len());
    for (i, want) in expected.iter().enumerate() {
        let (a, b) = (&text[2 * i], &text[2 * i + 1]);
        assert_eq!(untimed(a), untimed(b), "text layout");
        assert!(
            b.ends_with(&format!(" {target}: {want}")),
            "{b:?} does not end with {want:?}"
        );
        let mut ja: serde_json::Value = serde_json::from_str(&json[2 * i]).unwrap();
        let mut jb: serde_json::Value = serde_json::from_str(&json[2 * i + 1]).unwrap();
        ja.as_object_mut().unwrap().remove("ts");
        jb.as_object_mut().unwrap().remove("ts");
        assert_eq!(ja, jb, "JSON layout");
        assert_eq!(jb["msg"], serde_json::Value::String(want.clone()));
        assert_eq!(python[2 * i], python[2 * i + 1], "Python layout");
        assert!(python[2 * i + 1].ends_with(&format!("|{want}")));
    }
}

/// Displays as `<x>`, honouring width and alignment through `pad`.
struct Padded(&'static str);

impl fmt::Display for Padded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("<{}>", self.0))
    }
}

/// Displays as `[x]` and ignores every spec.
#[derive(Debug)]
struct Plain(u32);

impl fmt::Display for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.0)
    }
}

#[derive(Debug)]
#[allow(dead_code)]
struct Point {
    x: i32,
    name: String,
}

mod kinds {
    use super::*;

    #[test]
    fn every_argument_kind_formats_as_format_does_and_as_the_facade() {
        setup();
        let target = module_path!();
        let mut want = Vec::new();
        macro_rules! case {
            ($($t:tt)*) => {{
                both!($($t)*);
                want.push(format!($($t)*));
            }};
        }
        case!(
            "integers {} {} {} {} {} {}",
            -5i8,
            200u8,
            i16::MIN,
            u16::MAX,
            i32::MIN,
            u32::MAX
        );
        case!(
            "wide {} {} {} {} {} {}",
            i64::MIN,
            u64::MAX,
            i128::MIN,
            u128::MAX,
            -3isize,
            7usize
        );
        case!(
            "floats {} {} {} {} {}",
            1.1f32,
            0.1 + 0.2,
            f64::NAN,
            f64::NEG_INFINITY,
            1e300
        );
        case!(
            "float specs {:.3} {:e} {:E} {:?} {:+08.2} {:10.1}|",
            std::f64::consts::PI,
            1234.5,
            0.00012f32,
            1.0f32,
            -2.5,
            7.25
        );
        case!(
            "bool {} {:>6}| char {} {:?} {:?}",
            true,
            false,
            'é',
            '\'',
            '\n'
        );
        case!(
            "str {:>8}|{:<8}|{:^9}|{:*^9}|{:.3}|",
            "ab",
            "cd",
            "mid",
            "star",
            "truncated"
        );
        case!(
            "debug str {:?} {:?}",
            "quote\" back\\ nl\n tab\t é \u{7f}",
            String::from("owned")
        );
        case!(
            "texts {} {} {} {}",
            String::from("s"),
            &String::from("rs"),
            std::borrow::Cow::Borrowed("cow"),
            Box::<str>::from("boxed")
        );
        case!("refs {} {} {}", &5, &&"two", &mut 3.5);
        case!(
            "hex {:#x} {:#010b} {:o} {:X} {:x?} {:X?} {:08x}",
            255,
            5u8,
            64,
            3054,
            255,
            [10, 11],
            -1i32
        );
        case!(
            "counts {:>1$}|{:.*}|{:>w$.p$}|",
            42,
            6,
            1.23456,
            9.87654,
            w = 7,
            p = 1
        );
        let (width, name, n) = (5, "ada", 17u64);
        case!("captures {name} {n:>width$} {name:?} {n:#x}");
        case!("braces {{}} {{{}}} }}{{", 1);
        case!("positions {1} {0} {1:?} {0:>3}", String::from("a"), "b");
        case!("named {a} {b:?} {a:>4}", a = 1, b = "x");
        case!(
            "display {} {:>9}| {:<9}| {} {:>9}|",
            Padded("p"),
            Padded("q"),
            Padded("r"),
            Plain(1),
            Plain(2)
        );
        let addr = std::net::Ipv4Addr::new(10, 0, 0, 1);
        case!("addr {} {:>12}| {:?}", addr, addr, addr);
        case!(
            "debug {:?} {:?} {:?}",
            vec![1, 2, 3],
            Point {
                x: 1,
                name: "n".into()
            },
            Some("x")
        );
        case!("plain text");
        // Bare placeholders only: written without `core::fmt`.
        case!(
            "bare {} {} {} {} {} {} {} {}|{}|",
            true,
            'é',
            'z',
            i64::MIN,
            -0i32,
            Padded("p"),
            1.5f64,
            "",
            Box::<str>::from("boxed")
        );
        let x = 5;
        case!("pointer {:p}", &x);
        let café = 'c';
        case!("unicode capture {café:?} {}", 2);
        case!(concat!("concat ", "{} {:>4}|"), 1, "ab");
        check_pairs(target, &want);
    }
}

mod generics {
    use super::*;

    fn generic<T: fmt::Display + fmt::Debug>(t: T, want: &mut Vec<String>) {
        both!("generic {} {:?} {:>6}", t, t, t);
        want.push(format!("generic {} {:?} {:>6}", t, t, t));
    }

    #[test]
    fn values_of_generic_types_are_formatted_at_the_call() {
        setup();
        let target = module_path!();
        let mut want = Vec::new();
        generic(5, &mut want);
        generic("s", &mut want);
        generic(Plain(3), &mut want);
        check_pairs(target, &want);
    }
}

mod fields {
    use super::*;

    #[test]
    fn fields_come_before_the_format_string_and_keep_their_types() {
        setup();
        let target = module_path!();
        both!(user = "ada", n = 3, ok = true, ratio = 0.5; "served {} in {} ms", 7, 12);
        let user = String::from("bob");
        logbraid::info!(user = user, big = u64::MAX, neg = -4i64, addr = std::net::Ipv4Addr::LOCALHOST, c = 'x'; "{user} again");
        let json = lines("json.log", target);
        assert_eq!(json.len(), 3);
        let parse = |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap();
        let (a, b, c) = (parse(&json[0]), parse(&json[1]), parse(&json[2]));
        assert_eq!(a["fields"], b["fields"]);
        assert_eq!(
            b["fields"],
            serde_json::json!({"user": "ada", "n": 3, "ok": true, "ratio": 0.5})
        );
        assert_eq!(b["msg"], "served 7 in 12 ms");
        assert_eq!(
            c["fields"],
            serde_json::json!({"user": "bob", "big": u64::MAX, "neg": -4, "addr": "127.0.0.1", "c": "x"})
        );
        assert_eq!(c["msg"], "bob again");
        let text = lines("text.log", target);
        assert_eq!(untimed(&text[0]), untimed(&text[1]));
        assert!(text[1].ends_with(": served 7 in 12 ms user=ada n=3 ok=true ratio=0.5"));
        assert!(text[2]
            .ends_with(": bob again user=bob big=18446744073709551615 neg=-4 addr=127.0.0.1 c=x"));
    }
}

mod disabled {
    use super::*;

    #[test]
    fn a_disabled_level_evaluates_no_argument() {
        setup();
        let target = module_path!();
        let evaluated = std::cell::Cell::new(0);
        let count = || {
            evaluated.set(evaluated.get() + 1);
            evaluated.get()
        };
        logbraid::debug!("x {}", count());
        logbraid::trace!(n = count(); "x {}", count());
        logbraid::log!(logbraid::Level::Debug, "x {}", count());
        logbraid::info!(target: "disabled::elsewhere", "x {}", count());
        assert_eq!(evaluated.get(), 1, "only the enabled call evaluates, once");
        logbraid::info!(n = count(); "x {} {0}", count());
        assert_eq!(evaluated.get(), 3);
        logbraid::warn!("w");
        logbraid::error!("e");
        logbraid::log!(logbraid::Level::Critical, "c");
        let text = lines("text.log", target);
        let tail: Vec<&str> = text.iter().map(|l| untimed(l)).collect();
        assert_eq!(tail.len(), 4, "{tail:?}");
        assert!(tail[0].starts_with("INFO "));
        assert!(tail[0].ends_with(": x 3 3 n=2"), "{}", tail[0]);
        assert!(tail[1].starts_with("WARN ") && tail[1].ends_with(": w"));
        assert!(tail[2].starts_with("ERROR ") && tail[2].ends_with(": e"));
        assert!(tail[3].starts_with("CRITICAL ") && tail[3].ends_with(": c"));
        let other = lines("text.log", "disabled::elsewhere");
        assert_eq!(other.len(), 1);
        assert!(other[0].ends_with(" disabled::elsewhere: x 1"));
        // A format string formatted whole at the call (a capture with a
        // name beyond ASCII) evaluates its arguments once too.
        let café = "au lait";
        logbraid::info!("{café} {}", count());
        assert_eq!(evaluated.get(), 4);
        let text = lines("text.log", target);
        assert!(text[4].ends_with(": au lait 4"), "{}", text[4]);
    }
}

mod large {
    use super::*;

    #[test]
    fn a_record_larger_than_the_ring_holds_is_written_whole() {
        setup();
        let target = module_path!();
        // The queue is 1 MiB per thread; entries over a quarter travel boxed.
        let big = "0123456789".repeat(40_000);
        let also = String::from("tail");
        logbraid::info!(big = big.as_str(); "head {big} {also} {}", 5);
        logbraid::info!("after");
        let text = lines("text.log", target);
        assert_eq!(text.len(), 2);
        assert!(text[0].ends_with(&format!(": head {big} tail 5 big={big}")));
        assert!(text[1].ends_with(": after"));
    }
}

mod order {
    use super::*;

    #[test]
    fn macro_and_facade_records_interleave_in_order_and_flush_writes_them() {
        setup();
        let target = module_path!();
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..5_000u64 {
                        if i % 2 == 0 {
                            logbraid::info!("t{} n{}", t, i);
                        } else {
                            log::info!("t{} n{}", t, i);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // `lines` flushes: every record logged before it is in the file.
        let text = lines("text.log", target);
        assert_eq!(text.len(), 20_000);
        let mut next = [0u64; 4];
        for l in &text {
            let msg = l.rsplit_once(": ").unwrap().1;
            let (t, n) = msg.split_once(' ').unwrap();
            let t: usize = t[1..].parse().unwrap();
            let n: u64 = n[1..].parse().unwrap();
            assert_eq!(n, next[t], "thread {t} out of order");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4]);
    }
}

mod side_by_side {
    use super::*;

    /// 100,000 records through each path into one file: each once, and the
    /// two paths' lines the same but for the time and the line number.
    #[test]
    fn a_hundred_thousand_calls_of_each_path_write_the_same_lines() {
        setup();
        let target = module_path!();
        for id in 0..100_000u64 {
            logbraid::info!("request {} served in {} ms", id, 3);
        }
        for id in 0..100_000u64 {
            log::info!("request {} served in {} ms", id, 3);
        }
        let text = lines("text.log", target);
        assert_eq!(text.len(), 200_000);
        let (macro_lines, facade_lines) = text.split_at(100_000);
        for (id, (m, f)) in macro_lines.iter().zip(facade_lines).enumerate() {
            let want = format!(" {target}: request {id} served in 3 ms");
            assert!(m.ends_with(&want), "{m}");
            assert_eq!(untimed(m), untimed(f));
        }
    }
}

mod plain {
    use super::*;
    use logbraid::layout::Layout;
    use logbraid::Record;

    /// Writes whether the record's message was marked plain, then the
    /// message as it is.
    #[derive(Debug)]
    struct ShowPlain;

    impl Layout for ShowPlain {
        fn format(&mut self, record: &Record<'_>, out: &mut Vec<u8>) {
            out.extend_from_slice(if record.plain_message {
                b"plain "
            } else {
                b"look  "
            });
            out.extend_from_slice(record.message);
            out.push(b'\n');
        }
    }

    /// A message is marked plain (copied by the layouts without looking)
    /// only when its literal text and every value's type promise bytes no
    /// layout escapes; the facade's records never are.
    #[test]
    fn only_messages_that_cannot_need_escapes_are_marked_plain() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("plain.log");
        let (logger, guard) = Builder::new()
            .level("info")
            .children(false)
            .inherit_collector(false)
            .signals(false)
            .file(RollingFile::builder(&path).layout(Box::new(ShowPlain)))
            .unwrap()
            .build()
            .unwrap();
        let (id, small, ratio, name, c) = (7u64, 200u8, -1.5f64, "ada", 'c');
        let bare = 5i32;
        logbraid::info!(logger: logger, "request {} served in {} ms", id, -3i32);
        logbraid::info!(logger: logger, "{} {small} {ratio} {}", true, f32::NAN);
        logbraid::info!(logger: logger, "no values at all");
        logbraid::info!(logger: logger, "inline {bare}");
        logbraid::info!(logger: logger, "name {}", name);
        logbraid::info!(logger: logger, "char {}", c);
        logbraid::info!(logger: logger, "padded {:>4}", id);
        logbraid::info!(logger: logger, "quote \" {}", id);
        logbraid::info!(logger: logger, "back\\slash {}", id);
        logbraid::info!(logger: logger, "tab\t{}", id);
        logbraid::info!(logger: logger, "caf\u{e9} {}", id);
        logbraid::info!(logger: logger, "del \u{7f}{}", id);
        logbraid::info!(logger: logger, "debug {:?}", id);
        logbraid::info!(logger: logger, user = name; "with a field {}", id);
        drop(guard);
        let text = std::fs::read_to_string(&path).unwrap();
        let want = [
            "plain request 7 served in -3 ms",
            "plain true 200 -1.5 NaN",
            "plain no values at all",
            "plain inline 5",
            "look  name ada",
            "look  char c",
            "look  padded    7",
            "look  quote \" 7",
            "look  back\\slash 7",
            "look  tab\t7",
            "look  caf\u{e9} 7",
            "look  del \u{7f}7",
            "look  debug 7",
        ];
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(got[..want.len()], want);
        // Fields take the general path; the flag is about the message only.
        assert_eq!(got[want.len()..], ["plain with a field 7"]);
    }
}
