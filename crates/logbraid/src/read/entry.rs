//! One record read back from a file, and the splitter that cuts a file's
//! lines into records.

use std::fmt;

use serde_json::Value as Json;

use crate::layout::push_string;
use crate::layout::{level_color, push_u64, DIM, RESET};
use crate::level::Level;
use crate::time::parse_rfc3339;

/// The layout a file was written with, as the reader tells it from the
/// file's first line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// [`TextLayout`](crate::layout::TextLayout): a record's first line
    /// starts at the margin with an RFC 3339 timestamp and a level, its
    /// other lines with two spaces.
    Text,
    /// [`JsonLayout`](crate::layout::JsonLayout): one object per line.
    Json,
    /// Anything else (a Python `%`-style format, say): each line is a
    /// record that knows nothing but its text.
    Lines,
}

/// A record as read back from a log file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entry {
    /// The record as stored: every line of it, each ending in `\n`, invalid
    /// UTF-8 replaced by U+FFFD.
    pub raw: Vec<u8>,
    /// Nanoseconds since the epoch, when the record carries a timestamp.
    pub ts: Option<i64>,
    /// The timestamp as written.
    pub ts_text: Option<String>,
    /// The level, when the record carries one.
    pub level: Option<Level>,
    /// The target (logger name); empty when unknown.
    pub logger: String,
    /// The message. For the text layout, everything after `target: `,
    /// fields and traceback lines included (without their indentation): the
    /// text layout does not mark where a message ends.
    pub message: String,
    /// Structured fields, in the order written (JSON layout only).
    pub fields: Vec<(String, Json)>,
    /// The host of the process that logged it (JSON layout only).
    pub host: Option<String>,
    /// The pid of the process that logged it.
    pub pid: Option<u64>,
    /// The program (process name) that logged it (JSON layout only).
    pub program: Option<String>,
}

impl Entry {
    /// Appends the record as one JSON object on one line: `ts`, `level`,
    /// `logger`, `message`, then `host`, `pid` and `program` when known,
    /// then `fields`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        out.extend_from_slice(b"\"ts\":");
        match &self.ts_text {
            Some(t) => push_string(out, t.as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"level\":");
        match self.level {
            Some(l) => push_string(out, l.as_str().as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"logger\":");
        push_string(out, self.logger.as_bytes());
        out.extend_from_slice(b",\"message\":");
        push_string(out, self.message.as_bytes());
        if let Some(host) = &self.host {
            out.extend_from_slice(b",\"host\":");
            push_string(out, host.as_bytes());
        }
        if let Some(pid) = self.pid {
            out.extend_from_slice(b",\"pid\":");
            push_u64(out, pid);
        }
        if let Some(program) = &self.program {
            out.extend_from_slice(b",\"program\":");
            push_string(out, program.as_bytes());
        }
        out.extend_from_slice(b",\"fields\":{");
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_string(out, key.as_bytes());
            out.push(b':');
            // Writing a `Value` into a `Vec` cannot fail.
            let _ = serde_json::to_writer(&mut *out, value);
        }
        out.extend_from_slice(b"}}\n");
    }

    /// Appends the record as stored, with the text layout's colours on its
    /// timestamp and level: the bytes [`TextLayout::with_color`] would have
    /// written. Records of other layouts are appended as stored.
    ///
    /// [`TextLayout::with_color`]: crate::layout::TextLayout::with_color
    pub fn write_colored(&self, out: &mut Vec<u8>) {
        let (Some(ts), Some(level)) = (&self.ts_text, self.level) else {
            out.extend_from_slice(&self.raw);
            return;
        };
        let name = level.as_str().as_bytes();
        let head_len = ts.len() + 1 + name.len();
        let is_text_head = self.raw.starts_with(ts.as_bytes())
            && self.raw.get(ts.len()) == Some(&b' ')
            && self.raw.get(ts.len() + 1..head_len) == Some(name);
        if !is_text_head {
            out.extend_from_slice(&self.raw);
            return;
        }
        out.extend_from_slice(DIM);
        out.extend_from_slice(ts.as_bytes());
        out.extend_from_slice(RESET);
        out.push(b' ');
        out.extend_from_slice(level_color(level));
        out.extend_from_slice(name);
        out.extend_from_slice(RESET);
        out.extend_from_slice(&self.raw[head_len..]);
    }
}

/// Problems after which a file's further problems are only counted.
const SHOWN_PROBLEMS: u64 = 5;

/// Cuts the lines of one file into records, telling the layout from the
/// first line. Lines go in one at a time with their `\n` (the last line of
/// a file may lack it); records come out when they are complete.
pub(crate) struct Splitter {
    /// The file, for messages.
    label: String,
    format: Option<Format>,
    pending: Option<Entry>,
    line_no: u64,
    problems: u64,
    warnings: Vec<String>,
}

impl fmt::Debug for Splitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Splitter")
            .field("label", &self.label)
            .field("format", &self.format)
            .field("line_no", &self.line_no)
            .finish_non_exhaustive()
    }
}

impl Splitter {
    pub(crate) fn new(label: String) -> Self {
        Splitter {
            label,
            format: None,
            pending: None,
            line_no: 0,
            problems: 0,
            warnings: Vec::new(),
        }
    }

    /// Messages about the file's content since the last call, for stderr.
    pub(crate) fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Notes a problem with the file's content. The first few are kept as
    /// messages, the rest only counted and summed up by `finish`.
    pub(crate) fn warn(&mut self, what: impl fmt::Display) {
        self.problems += 1;
        if self.problems <= SHOWN_PROBLEMS {
            self.warnings.push(format!("{}: {what}", self.label));
        }
    }

    /// Takes one line; pushes to `out` the record it completes, if any.
    pub(crate) fn line(&mut self, bytes: &[u8], out: &mut Vec<Entry>) {
        self.line_no += 1;
        let mut line = match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => {
                let n = self.line_no;
                self.warn(format_args!("line {n}: invalid UTF-8, shown with U+FFFD"));
                String::from_utf8_lossy(bytes).into_owned()
            }
        };
        if !line.ends_with('\n') {
            line.push('\n');
        }
        let format = match self.format {
            Some(f) => f,
            None if line.trim().is_empty() => return,
            None => {
                let f = if line.starts_with('{') {
                    Format::Json
                } else if text_head(&line).is_some() {
                    Format::Text
                } else {
                    self.warnings.push(format!(
                        "{}: not in logbraid's text or JSON layout; read line by line \
                         (each line a record without timestamp or level)",
                        self.label
                    ));
                    Format::Lines
                };
                self.format = Some(f);
                f
            }
        };
        match format {
            Format::Text => self.text_line(line, out),
            Format::Json => match json_entry(&line) {
                Some(e) => out.push(e),
                None => self.not_a_record(),
            },
            Format::Lines => out.push(Entry {
                message: line.trim_end_matches('\n').to_string(),
                raw: line.into_bytes(),
                ..Entry::default()
            }),
        }
    }

    fn not_a_record(&mut self) {
        let n = self.line_no;
        self.warn(format_args!("line {n}: not a record, skipped"));
    }

    fn text_line(&mut self, line: String, out: &mut Vec<Entry>) {
        if let Some(rest) = line.strip_prefix("  ") {
            match &mut self.pending {
                Some(e) => {
                    e.message.push('\n');
                    e.message.push_str(rest.trim_end_matches('\n'));
                    e.raw.extend_from_slice(line.as_bytes());
                }
                None => self.not_a_record(),
            }
            return;
        }
        out.extend(self.pending.take());
        match text_entry(&line) {
            Some(e) => self.pending = Some(e),
            None => self.not_a_record(),
        }
    }

    /// Hands over the record still open: its file ended, or nothing more
    /// has been written to it for now.
    pub(crate) fn flush(&mut self, out: &mut Vec<Entry>) {
        out.extend(self.pending.take());
    }

    /// The file is done: hands over the open record and sums up the
    /// problems that were only counted.
    pub(crate) fn finish(&mut self, out: &mut Vec<Entry>) {
        self.flush(out);
        if self.problems > SHOWN_PROBLEMS {
            self.warnings.push(format!(
                "{}: {} more problems like these",
                self.label,
                self.problems - SHOWN_PROBLEMS
            ));
        }
        self.problems = 0;
    }
}

/// The parts of a text layout record's first line: timestamp, level and
/// where the rest starts.
fn text_head(line: &str) -> Option<(i64, Level, &str, &str)> {
    let (ts_text, rest) = line.split_once(' ')?;
    let ts = parse_rfc3339(ts_text.as_bytes())?;
    let rest = rest.trim_start_matches(' ');
    let (level_text, rest) = rest.split_once(' ').unwrap_or((rest.trim_end(), ""));
    let level = level_text.parse::<Level>().ok()?;
    if !level_text.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Some((ts, level, ts_text, rest.trim_start_matches(' ')))
}

/// A text layout record from its first line:
/// `TS LEVEL [pid/thread] target: message…`.
fn text_entry(line: &str) -> Option<Entry> {
    let (ts, level, ts_text, rest) = text_head(line)?;
    let rest = rest.trim_end_matches('\n');
    let mut e = Entry {
        raw: line.as_bytes().to_vec(),
        ts: Some(ts),
        ts_text: Some(ts_text.to_string()),
        level: Some(level),
        ..Entry::default()
    };
    let tail = rest
        .strip_prefix('[')
        .and_then(|r| r.split_once("] "))
        .and_then(|(who, after)| {
            let pid = who.split_once('/').map_or(who, |(p, _)| p).parse().ok()?;
            let (target, message) = after.split_once(": ").unwrap_or((after, ""));
            Some((pid, target, message))
        });
    match tail {
        Some((pid, target, message)) => {
            e.pid = Some(pid);
            e.logger = target.to_string();
            e.message = message.to_string();
        }
        None => e.message = rest.to_string(),
    }
    Some(e)
}

/// The keys of a JSON layout line that a reader needs; the others are
/// ignored.
#[derive(serde::Deserialize)]
struct JsonLine {
    ts: String,
    level: Option<String>,
    target: Option<String>,
    msg: Option<String>,
    host: Option<String>,
    pid: Option<u64>,
    process: Option<String>,
    fields: Option<OrderedFields>,
}

/// An object's members in the order written (serde_json's map sorts them).
struct OrderedFields(Vec<(String, Json)>);

impl<'de> serde::Deserialize<'de> for OrderedFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = OrderedFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedFields, A::Error> {
                let mut out = Vec::new();
                while let Some(member) = map.next_entry()? {
                    out.push(member);
                }
                Ok(OrderedFields(out))
            }
        }
        d.deserialize_map(Members)
    }
}

/// A JSON layout record; `None` unless the line is an object with a
/// timestamp.
fn json_entry(line: &str) -> Option<Entry> {
    let j: JsonLine = serde_json::from_str(line).ok()?;
    let ts = parse_rfc3339(j.ts.as_bytes())?;
    Some(Entry {
        raw: line.as_bytes().to_vec(),
        ts: Some(ts),
        ts_text: Some(j.ts),
        level: j.level.and_then(|l| l.parse().ok()),
        logger: j.target.unwrap_or_default(),
        message: j.msg.unwrap_or_default(),
        fields: j.fields.map(|f| f.0).unwrap_or_default(),
        host: j.host,
        pid: j.pid,
        program: j.process,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(lines: &[&[u8]]) -> (Vec<Entry>, Vec<String>) {
        let mut s = Splitter::new("f".into());
        let mut out = Vec::new();
        for l in lines {
            s.line(l, &mut out);
        }
        s.finish(&mut out);
        (out, s.take_warnings())
    }

    #[test]
    fn text_records_keep_their_continuation_lines() {
        let (out, warnings) = split(&[
            b"2026-11-22T10:04:05.123456Z INFO  [42/main] app::db: connected user=ada\n",
            b"2026-11-22T10:04:06Z ERROR [42/7] app: failed\n",
            b"  Traceback (most recent call last):\n",
            b"    ValueError: x\n",
            b"2026-11-22T10:04:07Z WARN  [43/w] b: last",
        ]);
        assert_eq!(warnings, Vec::<String>::new());
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].logger, "app::db");
        assert_eq!(out[0].message, "connected user=ada");
        assert_eq!(out[0].pid, Some(42));
        assert_eq!(out[0].level, Some(Level::Info));
        assert_eq!(
            out[1].raw,
            b"2026-11-22T10:04:06Z ERROR [42/7] app: failed\n  Traceback (most recent call last):\n    ValueError: x\n"
        );
        assert_eq!(
            out[1].message,
            "failed\nTraceback (most recent call last):\n  ValueError: x"
        );
        assert_eq!(out[2].raw, b"2026-11-22T10:04:07Z WARN  [43/w] b: last\n");
    }

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let (out, warnings) = split(&[
            b"2026-11-22T10:04:05Z INFO  [1/m] a: one\n",
            b"garbage\n",
            b"2026-11-22T10:04:06Z INFO  [1/m] a: t\xffo\n",
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].message, "t\u{fffd}o");
        assert_eq!(
            warnings,
            [
                "f: line 2: not a record, skipped",
                "f: line 3: invalid UTF-8, shown with U+FFFD"
            ]
        );
    }

    #[test]
    fn json_records_and_other_layouts() {
        let (out, _) = split(&[
            br#"{"ts":"2026-11-22T10:04:05.000001Z","level":"WARN","target":"t","msg":"m","host":"h","pid":7,"process":"p","thread_id":1,"fields":{"b":1,"a":"x"}}"#,
            b"{not json\n",
        ]);
        assert_eq!(out.len(), 1);
        let mut json = Vec::new();
        out[0].write_json(&mut json);
        assert_eq!(
            String::from_utf8(json).unwrap(),
            "{\"ts\":\"2026-11-22T10:04:05.000001Z\",\"level\":\"WARN\",\"logger\":\"t\",\
             \"message\":\"m\",\"host\":\"h\",\"pid\":7,\"program\":\"p\",\"fields\":{\"b\":1,\"a\":\"x\"}}\n"
        );
        let (out, warnings) = split(&[b"INFO:root:hello\n", b"WARNING:root:bye\n"]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].raw, b"WARNING:root:bye\n");
        assert_eq!(out[1].ts, None);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn colours_are_the_text_layouts() {
        use crate::layout::{Layout, TextLayout};
        use crate::record::{Record, Source};
        let source = Source {
            host: "h".into(),
            pid: 9,
            process_name: "p".into(),
        };
        let mut record = Record::new(Level::Error, "app", b"two\nlines", &source);
        record.timestamp_ns = 1_700_000_000_123_456_000;
        let (mut plain, mut colored) = (Vec::new(), Vec::new());
        TextLayout::new().format(&record, &mut plain);
        TextLayout::new()
            .with_color(true)
            .format(&record, &mut colored);
        let lines: Vec<&[u8]> = plain.split_inclusive(|&b| b == b'\n').collect();
        let (out, _) = split(&lines);
        assert_eq!(out.len(), 1);
        let mut got = Vec::new();
        out[0].write_colored(&mut got);
        assert_eq!(got, colored);
    }
}
