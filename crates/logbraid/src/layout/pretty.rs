//! The console's layout on a terminal: aligned columns in colour.

use jiff::tz::TimeZone;
use unicode_width::UnicodeWidthChar;

use super::text::{push_escaped, push_fields};
use super::{
    level_color, push_u64, trailers, Layout, BOLD, BOLD_RED, BOLD_REVERSE_RED, CYAN, DIM, DIM_CYAN,
    RESET,
};
use crate::level::Level;
use crate::record::Record;
use crate::time::{self, split_ns, Strftime};

/// Columns of the level: `CRITICAL`, the longest name, fits.
const LEVEL_WIDTH: usize = 8;
/// The logger column grows to the widest name seen, up to this; a wider
/// name is written whole and pushes its own line's message to the right.
const MAX_TARGET_WIDTH: usize = 24;
/// Blanks kept at least between a line's text and its `file:line`.
const PATH_GAP: usize = 2;

const MAGENTA: &[u8] = level_color(Level::Trace);
const GREEN: &[u8] = level_color(Level::Info);
const RED: &[u8] = level_color(Level::Error);
const BLUE: &[u8] = level_color(Level::Debug);

/// The console's layout on a terminal: one record in aligned, coloured
/// columns, the caller's `file:line` at the right edge.
///
/// ```text
/// 10:04:05.123 INFO     app::db   connected user=ada                 src/db/pool.rs:42
/// 10:04:05.124 ERROR    app::db   query failed                        src/db/pool.rs:97
///                                 Traceback (most recent call last):
///                                   File "/srv/app/db.py", line 12, in query
///                                 ValueError: bad row
/// ```
///
/// In order: the time of day (dimmed), the level in its colour padded to
/// eight columns, the target or logger name (dimmed, in a column as wide
/// as the widest name seen so far, up to 24), the message and its fields
/// as [`TextLayout`](super::TextLayout) writes them, then the record's
/// `file:line` (dimmed): right-aligned to the terminal's width when the
/// console knows it ([`Layout::set_columns`]) and the line leaves room,
/// otherwise two blanks after the text. A file given by an absolute path
/// (Python's `pathname`) is shown by its name, as Python's `%(filename)s`
/// does; a relative one (Rust's `file!()`) as it is.
///
/// Every further line of a record (a multi-line message, then the
/// `exc_text` and `stack_info` tracebacks) starts under the message
/// column. In a traceback the header (`Traceback (most recent call
/// last):`) is bold, each `File "x", line N, in f` frame shows the file in
/// magenta, the line in cyan and the function in green, the `^~~~` markers
/// are red and the final `ExcType: message` line is bold red, also within
/// exception groups. Control characters of every part are escaped as the
/// text layout escapes them, so nothing a record holds can drive the
/// terminal or start a line of its own.
///
/// | option | default | effect |
/// |---|---|---|
/// | [`local_time`](PrettyLayout::local_time) | `true` | the time in the system's zone (else UTC) |
/// | [`subsecond_digits`](PrettyLayout::subsecond_digits) | 3 | digits after the seconds (0 to 9) |
/// | [`brackets`](PrettyLayout::brackets) | `false` | the time in `[` `]` |
/// | [`omit_repeated_times`](PrettyLayout::omit_repeated_times) | `false` | blanks where the time equals the line before's |
/// | [`target`](PrettyLayout::target) | `true` | the logger column |
/// | [`python_level_names`](PrettyLayout::python_level_names) | `false` | `WARNING` rather than `WARN` |
/// | [`rich_colors`](PrettyLayout::rich_colors) | `false` | Rich's colours for the time and the levels |
///
/// [`PrettyLayout::rich`] sets them as Rich's `RichHandler` shows records.
#[derive(Clone, Debug)]
pub struct PrettyLayout {
    zone: TimeZone,
    digits: u32,
    brackets: bool,
    omit_repeated_times: bool,
    target: bool,
    python_level_names: bool,
    rich_colors: bool,
    columns: Option<usize>,
    /// `HH:MM:SS`, rendered once a second.
    clock: Strftime,
    second: Option<i64>,
    second_text: Vec<u8>,
    /// The time column of this record and of the one before.
    time: Vec<u8>,
    last_time: Vec<u8>,
    target_width: usize,
    /// A newline and the blanks up to the message column.
    indent: Vec<u8>,
    path: Vec<u8>,
}

impl Default for PrettyLayout {
    fn default() -> Self {
        PrettyLayout::new()
    }
}

impl PrettyLayout {
    /// The default columns: `10:04:05.123 INFO     app::db   message   file:line`,
    /// in local time.
    pub fn new() -> Self {
        PrettyLayout {
            zone: time::system_zone(),
            digits: 3,
            brackets: false,
            omit_repeated_times: false,
            target: true,
            python_level_names: false,
            rich_colors: false,
            columns: None,
            clock: Strftime::parse("%H:%M:%S"),
            second: None,
            second_text: Vec::new(),
            time: Vec::new(),
            last_time: Vec::new(),
            target_width: 0,
            indent: Vec::new(),
            path: Vec::new(),
        }
    }

    /// The columns of Rich's `RichHandler` as `logging_mp` configures it:
    /// `[10:04:05.123456] WARNING  message   file.py:42`: microseconds in
    /// brackets, blank when repeated, Python's level names, no logger
    /// column, in Rich's colours.
    pub fn rich() -> Self {
        PrettyLayout::new()
            .subsecond_digits(6)
            .brackets(true)
            .omit_repeated_times(true)
            .target(false)
            .python_level_names(true)
            .rich_colors(true)
    }

    /// The time in the system's time zone (`true`, default) or in UTC.
    #[must_use]
    pub fn local_time(mut self, local: bool) -> Self {
        self.zone = if local {
            time::system_zone()
        } else {
            TimeZone::UTC
        };
        self.second = None;
        self
    }

    /// How many digits of the second's fraction follow the seconds, 0 to 9
    /// (more are taken as 9); truncated, never rounded.
    #[must_use]
    pub fn subsecond_digits(mut self, digits: u8) -> Self {
        self.digits = u32::from(digits.min(9));
        self
    }

    /// Writes the time in brackets.
    #[must_use]
    pub fn brackets(mut self, yes: bool) -> Self {
        self.brackets = yes;
        self
    }

    /// Leaves the time column blank when it would show what the line
    /// before showed.
    #[must_use]
    pub fn omit_repeated_times(mut self, yes: bool) -> Self {
        self.omit_repeated_times = yes;
        self
    }

    /// Whether the target (logger name) has a column.
    #[must_use]
    pub fn target(mut self, yes: bool) -> Self {
        self.target = yes;
        self
    }

    /// Python's level names (`WARNING`) rather than Rust's (`WARN`).
    #[must_use]
    pub fn python_level_names(mut self, yes: bool) -> Self {
        self.python_level_names = yes;
        self
    }

    /// Rich's colours: the time dim cyan, DEBUG green, INFO blue, WARNING
    /// red, ERROR bold red, CRITICAL bold red reversed, TRACE dimmed
    /// (rather than the text layout's colours and a dimmed time).
    #[must_use]
    pub fn rich_colors(mut self, yes: bool) -> Self {
        self.rich_colors = yes;
        self
    }

    fn level_style(&self, level: Level) -> &'static [u8] {
        if !self.rich_colors {
            return level_color(level);
        }
        match level {
            Level::Trace => DIM,
            Level::Debug => GREEN,
            Level::Info => BLUE,
            Level::Warn => RED,
            Level::Error => BOLD_RED,
            Level::Critical => BOLD_REVERSE_RED,
        }
    }

    /// The terminal's width, as [`Layout::set_columns`] sets it.
    #[must_use]
    pub fn columns(mut self, columns: Option<usize>) -> Self {
        self.columns = columns;
        self
    }

    fn render_time(&mut self, ns: i64) {
        let (secs, nanos) = split_ns(ns);
        if self.second != Some(secs) {
            self.second_text.clear();
            self.clock.write(secs, &self.zone, &mut self.second_text);
            self.second = Some(secs);
        }
        self.time.clear();
        if self.brackets {
            self.time.push(b'[');
        }
        self.time.extend_from_slice(&self.second_text);
        if self.digits > 0 {
            self.time.push(b'.');
            let fraction = nanos / 10u32.pow(9 - self.digits);
            let start = self.time.len();
            push_u64(&mut self.time, u64::from(fraction));
            let written = self.time.len() - start;
            let zeros = self.digits as usize - written;
            self.time
                .splice(start..start, std::iter::repeat_n(b'0', zeros));
        }
        if self.brackets {
            self.time.push(b']');
        }
    }

    /// Ends the first line of a record with its `file:line`; the line
    /// took `head` columns up to `text_start` and then holds what was
    /// written from there.
    fn push_path(
        &mut self,
        record: &Record<'_>,
        head: usize,
        text_start: usize,
        out: &mut Vec<u8>,
    ) {
        let Some(file) = record.file.filter(|f| !f.is_empty()) else {
            return;
        };
        let shown = match file.strip_prefix('/') {
            Some(absolute) => absolute.rsplit('/').next().unwrap_or(absolute),
            None => file,
        };
        self.path.clear();
        push_escaped(&mut self.path, shown.as_bytes(), b"\\n");
        if let Some(line) = record.line {
            self.path.push(b':');
            push_u64(&mut self.path, u64::from(line));
        }
        let gap = match self.columns {
            Some(columns) => {
                let used = head + display_width(&out[text_start..]);
                let width = display_width(&self.path);
                if used + PATH_GAP + width <= columns {
                    columns - used - width
                } else {
                    PATH_GAP
                }
            }
            None => PATH_GAP,
        };
        out.resize(out.len() + gap, b' ');
        out.extend_from_slice(DIM);
        out.extend_from_slice(&self.path);
        out.extend_from_slice(RESET);
    }
}

impl Layout for PrettyLayout {
    fn format(&mut self, record: &Record<'_>, out: &mut Vec<u8>) {
        self.render_time(record.timestamp_ns);
        let mut indent = self.time.len() + 1 + LEVEL_WIDTH + 1;
        let mut head = indent;
        if self.omit_repeated_times && self.time == self.last_time {
            out.resize(out.len() + self.time.len(), b' ');
        } else {
            out.extend_from_slice(if self.rich_colors { DIM_CYAN } else { DIM });
            out.extend_from_slice(&self.time);
            out.extend_from_slice(RESET);
            std::mem::swap(&mut self.time, &mut self.last_time);
        }
        out.push(b' ');

        let name = if self.python_level_names {
            record.level.python_name()
        } else {
            record.level.as_str()
        };
        out.extend_from_slice(self.level_style(record.level));
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(RESET);
        out.resize(out.len() + LEVEL_WIDTH.saturating_sub(name.len()) + 1, b' ');

        if self.target {
            let mut width = 0;
            if !record.target.is_empty() {
                out.extend_from_slice(DIM);
                let start = out.len();
                push_escaped(out, record.target.as_bytes(), b"\\n");
                width = display_width(&out[start..]);
                out.extend_from_slice(RESET);
            }
            self.target_width = self.target_width.max(width.min(MAX_TARGET_WIDTH));
            out.resize(
                out.len() + self.target_width.saturating_sub(width) + 1,
                b' ',
            );
            head += self.target_width.max(width) + 1;
            indent += self.target_width + 1;
        }
        self.indent.clear();
        self.indent.push(b'\n');
        self.indent.resize(1 + indent, b' ');

        // A message's one trailing newline (a `print`-style habit) ends
        // its last line rather than adding an empty one.
        let message = record.message.strip_suffix(b"\n").unwrap_or(record.message);
        let (first, rest) = match message.iter().position(|&b| b == b'\n') {
            Some(at) => (&message[..at], Some(&message[at + 1..])),
            None => (message, None),
        };
        let text_start = out.len();
        push_escaped(out, first, b"");
        let mut has_trailer = false;
        if rest.is_none() {
            has_trailer = push_fields(out, record.fields);
        }
        self.push_path(record, head, text_start, out);
        if let Some(rest) = rest {
            out.extend_from_slice(&self.indent);
            push_escaped(out, rest, &self.indent);
            has_trailer = push_fields(out, record.fields);
        }
        if has_trailer {
            for text in trailers(record.fields) {
                let mut in_traceback = false;
                for line in text.split(|&b| b == b'\n') {
                    if line.is_empty() {
                        out.push(b'\n');
                        continue;
                    }
                    out.extend_from_slice(&self.indent);
                    push_traceback_line(out, line, &mut in_traceback);
                }
            }
        }
        out.push(b'\n');
    }

    fn wants_columns(&self) -> bool {
        true
    }

    fn set_columns(&mut self, columns: Option<usize>) {
        self.columns = columns;
    }
}

/// The columns `bytes` take on a terminal: East Asian wide characters
/// count two, combining marks none, a tab moves to the next multiple of
/// eight, and the layouts' own colour escapes (`ESC [ … m`) nothing.
fn display_width(bytes: &[u8]) -> usize {
    if bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        return bytes.len();
    }
    let mut width = 0;
    let mut i = 0;
    // Byte by byte while ASCII (most of a line), by character otherwise.
    while let Some(&b) = bytes.get(i) {
        match b {
            0x1b => {
                i += bytes[i..]
                    .iter()
                    .position(u8::is_ascii_alphabetic)
                    .map_or(bytes.len() - i, |end| end + 1);
            }
            b'\t' => {
                width = (width / 8 + 1) * 8;
                i += 1;
            }
            0x20..=0x7e => {
                width += 1;
                i += 1;
            }
            0..=0x7f => i += 1,
            _ => {
                let len = match b {
                    0xf0.. => 4,
                    0xe0.. => 3,
                    _ => 2,
                };
                let end = (i + len).min(bytes.len());
                match std::str::from_utf8(&bytes[i..end]) {
                    Ok(c) => {
                        width += c.chars().map(|c| c.width().unwrap_or(0)).sum::<usize>();
                        i = end;
                    }
                    // Not UTF-8 (the layout writes none): a column a
                    // byte, as the replacement characters a terminal
                    // shows.
                    Err(_) => {
                        width += 1;
                        i += 1;
                    }
                }
            }
        }
    }
    width
}

/// Writes one line of a Python traceback (or stack), coloured by what it
/// is; `in_traceback` is set once a header was seen, so that a line at the
/// margin is taken for the exception only after one.
fn push_traceback_line(out: &mut Vec<u8>, line: &[u8], in_traceback: &mut bool) {
    // Exception groups draw their sub-tracebacks behind `|` and `+`.
    let body_at = line
        .iter()
        .position(|&b| !matches!(b, b' ' | b'|' | b'+'))
        .unwrap_or(line.len());
    let (prefix, body) = line.split_at(body_at);
    out.extend_from_slice(prefix);
    let paint = |out: &mut Vec<u8>, color: &[u8], text: &[u8]| {
        out.extend_from_slice(color);
        push_escaped(out, text, b"");
        out.extend_from_slice(RESET);
    };
    if body.ends_with(b"(most recent call last):") {
        *in_traceback = true;
        paint(out, BOLD, body);
    } else if let Some(frame) = Frame::parse(body) {
        out.extend_from_slice(b"File \"");
        paint(out, MAGENTA, frame.file);
        out.extend_from_slice(b"\", line ");
        paint(out, CYAN, frame.line);
        if let Some(function) = frame.function {
            out.extend_from_slice(b", in ");
            paint(out, GREEN, function);
        }
        push_escaped(out, frame.rest, b"");
    } else if !body.is_empty() && body.iter().all(|&b| matches!(b, b'^' | b'~' | b' ')) {
        paint(out, RED, body);
    } else if *in_traceback && at_margin(prefix) && is_exception(body) {
        paint(out, BOLD_RED, body);
    } else {
        push_escaped(out, body, b"");
    }
}

/// Whether a line whose leading blanks and borders are `prefix` starts at
/// its traceback's margin: nothing before it, or one blank after the last
/// `|` of an exception group's border.
fn at_margin(prefix: &[u8]) -> bool {
    match prefix.iter().rposition(|&b| b == b'|') {
        None => prefix.is_empty(),
        Some(bar) => prefix.len() - bar <= 2,
    }
}

/// Whether `body` reads `Name: message`, `pkg.Name: message` or `Name`:
/// the line naming the exception (a code line of a frame is indented, and
/// `During handling of the above exception…` has a blank after its first
/// word).
fn is_exception(body: &[u8]) -> bool {
    let name_end = body
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'.'))
        .unwrap_or(body.len());
    let starts_well = body
        .first()
        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_');
    starts_well && matches!(body.get(name_end), None | Some(b':'))
}

/// `File "path", line 12, in function` and what follows it.
struct Frame<'a> {
    file: &'a [u8],
    line: &'a [u8],
    function: Option<&'a [u8]>,
    rest: &'a [u8],
}

impl<'a> Frame<'a> {
    fn parse(body: &'a [u8]) -> Option<Frame<'a>> {
        let after = body.strip_prefix(b"File \"")?;
        const LINE: &[u8] = b"\", line ";
        let quote = after.windows(LINE.len()).position(|w| w == LINE)?;
        let file = &after[..quote];
        let after = &after[quote + LINE.len()..];
        let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let (line, after) = after.split_at(digits);
        let (function, rest) = match after.strip_prefix(b", in ") {
            Some(function) => (Some(function), &after[after.len()..]),
            None => (None, after),
        };
        Some(Frame {
            file,
            line,
            function,
            rest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::record::{FieldsBuf, Source};

    fn utc() -> PrettyLayout {
        PrettyLayout::new().local_time(false)
    }

    fn line(layout: &mut PrettyLayout, rec: &Record<'_>) -> String {
        let mut out = Vec::new();
        layout.format(rec, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// `record()` without fields at [`TS`], at `level`, saying `message`.
    fn at<'a>(src: &'a Source, f: &'a FieldsBuf, level: Level, message: &'a str) -> Record<'a> {
        let mut rec = record(src, f);
        rec.level = level;
        rec.message = message.as_bytes();
        rec
    }

    const TIME: &str = "\x1b[2m22:13:20.123\x1b[0m ";

    #[test]
    fn every_level_in_its_colour_and_column() {
        let src = source();
        let f = FieldsBuf::new();
        let mut layout = utc();
        for (level, shown) in [
            (Level::Trace, "\x1b[35mTRACE\x1b[0m    "),
            (Level::Debug, "\x1b[34mDEBUG\x1b[0m    "),
            (Level::Info, "\x1b[32mINFO\x1b[0m     "),
            (Level::Warn, "\x1b[33mWARN\x1b[0m     "),
            (Level::Error, "\x1b[31mERROR\x1b[0m    "),
            (Level::Critical, "\x1b[1;37;41mCRITICAL\x1b[0m "),
        ] {
            assert_eq!(
                line(&mut layout, &at(&src, &f, level, "connected")),
                format!(
                    "{TIME}{shown}\x1b[2mapp::db\x1b[0m connected  \x1b[2msrc/db/pool.rs:42\x1b[0m\n"
                )
            );
        }
        let mut python = utc().python_level_names(true);
        assert!(line(&mut python, &at(&src, &f, Level::Warn, "x"))
            .contains("\x1b[33mWARNING\x1b[0m  \x1b[2mapp::db"));
    }

    #[test]
    fn the_path_is_right_aligned_to_the_terminal() {
        let src = source();
        let mut f = FieldsBuf::new();
        f.push_str("user", "ada");
        let rec = at(&src, &f, Level::Info, "connected");
        // 12 + 1 + 8 + 1 + 7 + 1 columns before the message, 18 of it and
        // its field, 17 of path: 40 blanks fill 105 columns.
        let mut layout = utc().columns(Some(105));
        let got = line(&mut layout, &rec);
        assert_eq!(
            got,
            format!(
                "{TIME}\x1b[32mINFO\x1b[0m     \x1b[2mapp::db\x1b[0m connected user=ada{}\x1b[2msrc/db/pool.rs:42\x1b[0m\n",
                " ".repeat(40)
            )
        );
        // Exactly the width of the line, the escapes taking none.
        assert_eq!(display_width(got.trim_end().as_bytes()), 105);
        // No room for two blanks: appended after two.
        layout.set_columns(Some(30 + 18 + 18));
        assert!(line(&mut layout, &rec).ends_with("user=ada  \x1b[2msrc/db/pool.rs:42\x1b[0m\n"));
        // An absolute path (Python's pathname) shows its file name; no
        // line number, no colon.
        let mut rec = rec;
        rec.file = Some("/srv/app/worker.py");
        rec.line = None;
        assert!(line(&mut utc(), &rec).ends_with("user=ada  \x1b[2mworker.py\x1b[0m\n"));
        rec.file = None;
        assert!(line(&mut utc(), &rec).ends_with("user=ada\n"));
    }

    #[test]
    fn widths_of_text_escapes_and_tabs() {
        assert_eq!(display_width(b""), 0);
        assert_eq!(display_width(b"abc"), 3);
        assert_eq!(display_width(b"\x1b[1;31mab\x1b[0m"), 2);
        assert_eq!(display_width(b"a\tb"), 9);
        assert_eq!(display_width("caf\u{e9}\u{301}".as_bytes()), 4);
        assert_eq!(display_width("\u{4e2d}\u{1f680}x".as_bytes()), 5);
        assert_eq!(display_width(b"\xff\xe2\x82"), 3);
        assert_eq!(display_width(b"cut\x1b[3"), 3);
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let src = source();
        let f = FieldsBuf::new();
        // Each of the four characters (CJK and an emoji) takes two columns.
        let rec = at(&src, &f, Level::Info, "日本語\u{1f680}");
        let got = line(&mut utc().columns(Some(60)), &rec);
        assert_eq!(display_width(got.trim_end().as_bytes()), 60);
        assert!(got.contains(&format!(
            "日本語\u{1f680}{}\x1b[2msrc",
            " ".repeat(60 - 30 - 8 - 17)
        )));
    }

    #[test]
    fn continuation_lines_start_under_the_message() {
        let src = source();
        let mut f = FieldsBuf::new();
        f.push_str("n", "1");
        let rec = at(&src, &f, Level::Warn, "first\nsecond\n\tthird\n");
        let pad = " ".repeat(30);
        assert_eq!(
            line(&mut utc(), &rec),
            format!(
                "{TIME}\x1b[33mWARN\x1b[0m     \x1b[2mapp::db\x1b[0m first  \x1b[2msrc/db/pool.rs:42\x1b[0m\n\
                 {pad}second\n{pad}\tthird n=1\n"
            )
        );
        // A single trailing newline adds no empty line.
        let rec = at(&src, &f, Level::Warn, "done\n");
        assert_eq!(
            line(&mut utc(), &rec),
            format!(
                "{TIME}\x1b[33mWARN\x1b[0m     \x1b[2mapp::db\x1b[0m done n=1  \x1b[2msrc/db/pool.rs:42\x1b[0m\n"
            )
        );
    }

    #[test]
    fn terminal_controls_in_a_record_are_escaped() {
        let src = source();
        let f = FieldsBuf::new();
        let mut rec = at(&src, &f, Level::Error, "a\x1b[2J\x1b[31mred\rb\u{9b}1m");
        rec.target = "t\x1b]0;x\x07";
        rec.file = Some("f\n.rs");
        let got = line(&mut utc(), &rec);
        assert_eq!(
            got,
            format!(
                "{TIME}\x1b[31mERROR\x1b[0m    \x1b[2mt\\u{{1b}}]0;x\\u{{7}}\x1b[0m \
                 a\\u{{1b}}[2J\\u{{1b}}[31mred\\rb\\u{{9b}}1m  \x1b[2mf\\n.rs:42\x1b[0m\n"
            )
        );
        // Every escape left is one of the layout's own.
        let mut rest = got.as_bytes();
        while let Some(at) = rest.iter().position(|&b| b == 0x1b) {
            let end = at + rest[at..].iter().position(|&b| b == b'm').unwrap() + 1;
            assert!(crate::layout::is_own_escape(&rest[at..end]), "{got:?}");
            rest = &rest[end..];
        }
    }

    #[test]
    fn the_target_column_grows_to_the_widest_name() {
        let src = source();
        let f = FieldsBuf::new();
        let mut layout = utc();
        let mut rec = at(&src, &f, Level::Info, "m");
        rec.file = None;
        let mut shown_with = |target: &'static str, message: &'static str| {
            rec.target = target;
            rec.message = message.as_bytes();
            let got = line(&mut layout, &rec);
            got[TIME.len() + "\x1b[32mINFO\x1b[0m     ".len()..].to_string()
        };
        let mut shown = |target| shown_with(target, "m");
        assert_eq!(shown("a"), "\x1b[2ma\x1b[0m m\n");
        assert_eq!(shown("app::db"), "\x1b[2mapp::db\x1b[0m m\n");
        assert_eq!(shown("a"), "\x1b[2ma\x1b[0m       m\n");
        // Wider than 24: whole, on its own line's column.
        let wide = "a_very_long_crate::module::submodule";
        assert_eq!(shown(wide), format!("\x1b[2m{wide}\x1b[0m m\n"));
        assert_eq!(shown("a"), format!("\x1b[2ma\x1b[0m{} m\n", " ".repeat(23)));
        assert_eq!(shown(""), format!("{} m\n", " ".repeat(24)));
        // Continuation lines follow the column.
        assert_eq!(
            shown_with("a", "x\ny"),
            format!(
                "\x1b[2ma\x1b[0m{} x\n{}y\n",
                " ".repeat(23),
                " ".repeat(12 + 10 + 25)
            )
        );
    }

    #[test]
    fn tracebacks_are_highlighted() {
        let src = source();
        let mut f = FieldsBuf::new();
        f.push_str(
            "exc_text",
            "Traceback (most recent call last):\n  File \"/app/main.py\", line 12, in <module>\n    \
             run()\n    ~~~^^\nValueError: bad \"row\"\n\nDuring handling of the above exception, \
             another exception occurred:\n\nTraceback (most recent call last):\n  File \"x.py\", line 3\n\
             mod.KeyError: 'k'\nsecond line\n",
        );
        f.push_str(
            "stack_info",
            "Stack (most recent call last):\n  File \"a.py\", line 1, in f\n",
        );
        let mut rec = at(&src, &f, Level::Error, "failed");
        rec.target = "app";
        let pad = " ".repeat(26);
        assert_eq!(
            line(&mut utc(), &rec),
            format!(
                "{TIME}\x1b[31mERROR\x1b[0m    \x1b[2mapp\x1b[0m failed  \x1b[2msrc/db/pool.rs:42\x1b[0m\n\
                 {pad}\x1b[1mTraceback (most recent call last):\x1b[0m\n\
                 {pad}  File \"\x1b[35m/app/main.py\x1b[0m\", line \x1b[36m12\x1b[0m, in \x1b[32m<module>\x1b[0m\n\
                 {pad}    run()\n\
                 {pad}    \x1b[31m~~~^^\x1b[0m\n\
                 {pad}\x1b[1;31mValueError: bad \"row\"\x1b[0m\n\
                 \n\
                 {pad}During handling of the above exception, another exception occurred:\n\
                 \n\
                 {pad}\x1b[1mTraceback (most recent call last):\x1b[0m\n\
                 {pad}  File \"\x1b[35mx.py\x1b[0m\", line \x1b[36m3\x1b[0m\n\
                 {pad}\x1b[1;31mmod.KeyError: 'k'\x1b[0m\n\
                 {pad}second line\n\
                 {pad}\x1b[1mStack (most recent call last):\x1b[0m\n\
                 {pad}  File \"\x1b[35ma.py\x1b[0m\", line \x1b[36m1\x1b[0m, in \x1b[32mf\x1b[0m\n"
            )
        );
    }

    #[test]
    fn exception_groups_and_lines_outside_a_traceback() {
        let mut out = Vec::new();
        let mut seen = false;
        // Before a header, a line at the margin is only text.
        push_traceback_line(&mut out, b"ValueError: x", &mut seen);
        assert_eq!(out, b"ValueError: x");
        for (line, shown) in [
            (
                "  + Exception Group Traceback (most recent call last):",
                "  + \x1b[1mException Group Traceback (most recent call last):\x1b[0m",
            ),
            (
                "  | ExceptionGroup: two (2 sub-exceptions)",
                "  | \x1b[1;31mExceptionGroup: two (2 sub-exceptions)\x1b[0m",
            ),
            (
                "    |   File \"g.py\", line 4, in <module>",
                "    |   File \"\x1b[35mg.py\x1b[0m\", line \x1b[36m4\x1b[0m, in \x1b[32m<module>\x1b[0m",
            ),
            ("    |     x: int = f()", "    |     x: int = f()"),
            ("    | TypeError: 1", "    | \x1b[1;31mTypeError: 1\x1b[0m"),
            ("    +------------ 2 ------------", "    +------------ 2 ------------"),
            ("  File \"q\", line x", "  File \"q\", line x"),
        ] {
            out.clear();
            push_traceback_line(&mut out, line.as_bytes(), &mut seen);
            assert_eq!(String::from_utf8(out.clone()).unwrap(), shown);
        }
    }

    #[test]
    fn rich_columns_blank_a_repeated_time() {
        let src = source();
        let f = FieldsBuf::new();
        let mut layout = PrettyLayout::rich().local_time(false);
        let mut rec = at(&src, &f, Level::Warn, "disk");
        rec.file = Some("/srv/app/main.py");
        let time = "\x1b[2;36m[22:13:20.123456]\x1b[0m ";
        assert_eq!(
            line(&mut layout, &rec),
            format!("{time}\x1b[31mWARNING\x1b[0m  disk  \x1b[2mmain.py:42\x1b[0m\n")
        );
        rec.level = Level::Info;
        rec.message = b"same\nmicrosecond";
        assert_eq!(
            line(&mut layout, &rec),
            format!(
                "{}\x1b[34mINFO\x1b[0m     same  \x1b[2mmain.py:42\x1b[0m\n{}microsecond\n",
                " ".repeat(18),
                " ".repeat(27)
            )
        );
        rec.timestamp_ns += 1_000;
        assert!(line(&mut layout, &rec).starts_with("\x1b[2;36m[22:13:20.123457]\x1b[0m "));
        for (level, shown) in [
            (Level::Trace, "\x1b[2mTRACE"),
            (Level::Debug, "\x1b[32mDEBUG"),
            (Level::Error, "\x1b[1;31mERROR"),
            (Level::Critical, "\x1b[1;7;31mCRITICAL"),
        ] {
            rec.level = level;
            assert!(line(&mut layout, &rec).contains(&format!(" {shown}\x1b[0m ")));
        }
    }

    #[test]
    fn subsecond_digits_are_truncated_and_padded() {
        let src = source();
        let f = FieldsBuf::new();
        let mut rec = at(&src, &f, Level::Info, "m");
        rec.timestamp_ns = 1_700_000_000_004_056_789;
        for (digits, shown) in [
            (0, "22:13:20"),
            (1, "22:13:20.0"),
            (3, "22:13:20.004"),
            (6, "22:13:20.004056"),
            (9, "22:13:20.004056789"),
            (12, "22:13:20.004056789"),
        ] {
            let got = line(&mut utc().subsecond_digits(digits), &rec);
            assert!(
                got.starts_with(&format!("\x1b[2m{shown}\x1b[0m ")),
                "{got:?}"
            );
        }
    }
}
