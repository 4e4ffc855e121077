//! The console sink: standard error (default) or standard output.

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::str::FromStr;

use crate::layout::Layout;
use crate::options::{ColorChoice, ParseOptionError};
use crate::record::Record;
use crate::sink::Sink;

/// Which standard stream a [`Console`] writes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConsoleStream {
    /// Standard error (default): logs stay apart from a program's output.
    #[default]
    Stderr,
    /// Standard output.
    Stdout,
}

impl ConsoleStream {
    /// The word that names the stream in configuration (`stderr`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ConsoleStream::Stderr => "stderr",
            ConsoleStream::Stdout => "stdout",
        }
    }

    /// Whether the stream is attached to a terminal.
    pub fn is_terminal(self) -> bool {
        match self {
            ConsoleStream::Stderr => io::stderr().is_terminal(),
            ConsoleStream::Stdout => io::stdout().is_terminal(),
        }
    }
}

impl FromStr for ConsoleStream {
    type Err = ParseOptionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "stderr" => Ok(ConsoleStream::Stderr),
            "stdout" => Ok(ConsoleStream::Stdout),
            _ => Err(ParseOptionError {
                value: s.to_string(),
                choices: "stderr, stdout",
            }),
        }
    }
}

impl fmt::Display for ConsoleStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether to use colour, given the user's choice, whether the stream is a
/// terminal, and the values of the `NO_COLOR` and `FORCE_COLOR`
/// environment variables.
///
/// `Always` and `Never` mean what they say. `Auto` means colour when
/// `FORCE_COLOR` is set to anything but empty, `0` or `false` (a request
/// for colour where no terminal is, such as a CI log, which beats a
/// general `NO_COLOR`); otherwise colour only on a terminal, and only when
/// `NO_COLOR` is unset or empty: following <https://no-color.org>, any
/// non-empty value disables colour.
pub fn color_enabled(
    choice: ColorChoice,
    is_terminal: bool,
    no_color_env: Option<&OsStr>,
    force_color_env: Option<&OsStr>,
) -> bool {
    let forced = force_color_env.is_some_and(|v| !v.is_empty() && v != "0" && v != "false");
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        _ => forced || (is_terminal && no_color_env.is_none_or(OsStr::is_empty)),
    }
}

enum Target {
    Std(ConsoleStream),
    Writer(Box<dyn Write + Send>),
}

/// A sink that writes to standard error or standard output.
///
/// Records are formatted into a buffer by [`Sink::write`]; [`Sink::flush`]
/// locks the stream and hands the whole buffer to it in one `write_all`, so
/// one batch is never interleaved with other output of the process.
///
/// | setting | default | set with |
/// |---|---|---|
/// | stream | standard error | [`Console::stderr`], [`Console::stdout`], [`Console::new`] |
/// | layout | none: **required** | [`Console::layout`] |
/// | colour | [`ColorChoice::Auto`] | [`Console::color`] |
/// | width | the terminal's, else `COLUMNS`, else unknown | [`Console::columns`] |
///
/// A layout that lines up with the terminal's width
/// ([`Layout::wants_columns`], the coloured console layout
/// [`PrettyLayout`](crate::layout::PrettyLayout)) is told the width before
/// the first record of each batch, so a resized window is followed: the
/// stream's terminal size when it is a terminal, else the `COLUMNS`
/// environment variable as it was when the console was made (read once:
/// the environment is not read while other threads may write it), else
/// unknown, and the layout then appends rather than aligns.
///
/// The layout is set after construction so that a builder can first ask
/// [`Console::wants_color`] and then pick a coloured or a plain layout.
/// Writing through a console without a layout fails with
/// [`io::ErrorKind::InvalidInput`].
///
/// # Broken pipe
///
/// When the reader of the stream goes away (`my_program | head`), writes fail
/// with `EPIPE`. The first such failure is returned from `flush`, so it can be
/// reported once; from then on the console discards what it is given and
/// reports success, because the pipe cannot come back and an error on every
/// batch would only flood whoever handles errors. Other errors are returned
/// every time, and the buffer is kept so a later `flush` retries it.
pub struct Console {
    target: Target,
    layout: Option<Box<dyn Layout>>,
    color: ColorChoice,
    /// A width set by [`Console::columns`], which beats the terminal's.
    columns: Option<usize>,
    /// `COLUMNS` when the console was made, for a stream that is no
    /// terminal (colour forced into a pipe).
    env_columns: Option<usize>,
    buf: Vec<u8>,
    /// Set after the first `EPIPE`: the reader is gone for good.
    broken_pipe: bool,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target: &dyn fmt::Debug = match &self.target {
            Target::Std(stream) => stream,
            Target::Writer(_) => &"writer",
        };
        f.debug_struct("Console")
            .field("target", target)
            .field("layout", &self.layout)
            .field("color", &self.color)
            .field("buffered", &self.buf.len())
            .field("broken_pipe", &self.broken_pipe)
            .finish()
    }
}

impl Default for Console {
    /// [`Console::stderr`].
    fn default() -> Self {
        Console::stderr()
    }
}

impl Console {
    fn with_target(target: Target) -> Self {
        let env_columns = match target {
            Target::Std(_) => std::env::var("COLUMNS")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .filter(|&n| n > 0),
            Target::Writer(_) => None,
        };
        Console {
            target,
            layout: None,
            color: ColorChoice::default(),
            columns: None,
            env_columns,
            buf: Vec::new(),
            broken_pipe: false,
        }
    }

    /// A console on the given stream.
    pub fn new(stream: ConsoleStream) -> Self {
        Console::with_target(Target::Std(stream))
    }

    /// A console on standard error.
    pub fn stderr() -> Self {
        Console::new(ConsoleStream::Stderr)
    }

    /// A console on standard output.
    pub fn stdout() -> Self {
        Console::new(ConsoleStream::Stdout)
    }

    /// A console that writes to `writer` instead of a standard stream, for
    /// tests. It is never a terminal, so `Auto` colour is off.
    pub fn to_writer(writer: Box<dyn Write + Send>) -> Self {
        Console::with_target(Target::Writer(writer))
    }

    /// Sets the layout that formats each record.
    #[must_use]
    pub fn layout(mut self, layout: Box<dyn Layout>) -> Self {
        self.layout = Some(layout);
        self
    }

    /// Sets the colour choice (default [`ColorChoice::Auto`]).
    #[must_use]
    pub fn color(mut self, choice: ColorChoice) -> Self {
        self.color = choice;
        self
    }

    /// Sets the width a layout that aligns to the terminal lines up with,
    /// in place of the terminal's (`None`: the terminal's, as by default).
    #[must_use]
    pub fn columns(mut self, columns: Option<usize>) -> Self {
        self.columns = columns;
        self
    }

    /// The width to line up with: see the type's table.
    fn current_columns(&self) -> Option<usize> {
        self.columns.or_else(|| match self.target {
            Target::Std(stream) => crate::sys::term::columns(stream).or(self.env_columns),
            Target::Writer(_) => None,
        })
    }

    /// Whether a layout was set.
    pub fn has_layout(&self) -> bool {
        self.layout.is_some()
    }

    /// Whether the layout should emit colour: the colour choice applied to
    /// this stream and the current `NO_COLOR` and `FORCE_COLOR` (see
    /// [`color_enabled`]).
    pub fn wants_color(&self) -> bool {
        let is_terminal = match &self.target {
            Target::Std(stream) => stream.is_terminal(),
            Target::Writer(_) => false,
        };
        color_enabled(
            self.color,
            is_terminal,
            std::env::var_os("NO_COLOR").as_deref(),
            std::env::var_os("FORCE_COLOR").as_deref(),
        )
    }

    /// The standard stream written to, `None` for [`Console::to_writer`].
    pub fn stream(&self) -> Option<ConsoleStream> {
        match self.target {
            Target::Std(stream) => Some(stream),
            Target::Writer(_) => None,
        }
    }

    fn write_buffer(&mut self) -> io::Result<()> {
        match &mut self.target {
            Target::Std(ConsoleStream::Stderr) => {
                let mut out = io::stderr().lock();
                out.write_all(&self.buf)?;
                out.flush()
            }
            Target::Std(ConsoleStream::Stdout) => {
                let mut out = io::stdout().lock();
                out.write_all(&self.buf)?;
                out.flush()
            }
            Target::Writer(w) => {
                w.write_all(&self.buf)?;
                w.flush()
            }
        }
    }
}

impl Sink for Console {
    /// Formats `record` into the buffer. Returns 0 without formatting once
    /// the stream's reader is gone (see [broken pipe](Console#broken-pipe)).
    fn write(&mut self, record: &Record<'_>) -> io::Result<usize> {
        if self.broken_pipe {
            return Ok(0);
        }
        if self.buf.is_empty() && self.layout.as_ref().is_some_and(|l| l.wants_columns()) {
            let columns = self.current_columns();
            if let Some(layout) = self.layout.as_mut() {
                layout.set_columns(columns);
            }
        }
        let Some(layout) = self.layout.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "console sink has no layout: set one with Console::layout",
            ));
        };
        let before = self.buf.len();
        layout.format(record, &mut self.buf);
        strip_terminal_controls(&mut self.buf, before);
        Ok(self.buf.len() - before)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        match self.write_buffer() {
            Ok(()) => {
                self.buf.clear();
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.buf.clear();
                if self.broken_pipe {
                    Ok(())
                } else {
                    self.broken_pipe = true;
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// Removes from `buf[from..]` what a terminal would act on rather than
/// show, except the colours logbraid's layouts write themselves: escape
/// sequences (CSI, OSC and the other string controls, two-byte escapes),
/// C0 control bytes other than tab and newline, DEL, and the C1 controls
/// (U+0080 to U+009F). A message can then neither retitle the window, move
/// the cursor, rewrite earlier lines, nor hide text; the text layout
/// escapes these itself, the Python `%` layout (whose files keep the bytes
/// as Python's own handlers do) relies on this.
fn strip_terminal_controls(buf: &mut Vec<u8>, from: usize) {
    let foreign = |b: u8| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f || b == 0xc2;
    let Some(first) = buf[from..].iter().position(|&b| foreign(b)) else {
        return;
    };
    let start = from + first;
    let tail = buf.split_off(start);
    let mut i = 0;
    while i < tail.len() {
        let b = tail[i];
        match b {
            0x1b => {
                let len = escape_len(&tail[i..]);
                let seq = &tail[i..i + len];
                if crate::layout::is_own_escape(seq) {
                    buf.extend_from_slice(seq);
                }
                i += len;
            }
            // C1 controls, as UTF-8.
            0xc2 if matches!(tail.get(i + 1), Some(0x80..=0x9f)) => i += 2,
            _ if b != 0xc2 && foreign(b) => i += 1,
            _ => {
                buf.push(b);
                i += 1;
            }
        }
    }
}

/// The length of the escape sequence at the start of `s` (which starts
/// with ESC): a CSI up to its final byte, a string control (OSC, DCS, SOS,
/// PM, APC) up to its terminator (BEL or ESC \\) or the end of the line,
/// otherwise ESC and the byte after it when that is printable. A sequence
/// cut short ends where it stops being one.
fn escape_len(s: &[u8]) -> usize {
    match s.get(1) {
        Some(b'[') => {
            let mut i = 2;
            while let Some(&b) = s.get(i) {
                i += 1;
                match b {
                    0x20..=0x3f => {}
                    0x40..=0x7e => return i,
                    _ => return i - 1,
                }
            }
            i
        }
        Some(b']' | b'P' | b'X' | b'^' | b'_') => {
            let mut i = 2;
            while let Some(&b) = s.get(i) {
                match b {
                    0x07 => return i + 1,
                    0x1b if s.get(i + 1) == Some(&b'\\') => return i + 2,
                    b'\n' => return i,
                    _ => i += 1,
                }
            }
            i
        }
        Some(0x20..=0x7e) => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level::Level;
    use crate::record::Source;
    use std::sync::{Arc, Mutex};

    /// `LEVEL target: message`, nothing else.
    #[derive(Debug)]
    struct Plain;

    impl Layout for Plain {
        fn format(&mut self, r: &Record<'_>, out: &mut Vec<u8>) {
            out.extend_from_slice(r.level.as_str().as_bytes());
            out.push(b' ');
            out.extend_from_slice(r.target.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(r.message);
            out.push(b'\n');
        }
    }

    /// Shared bytes plus a count of `write` calls; fails with a chosen error
    /// when one is set.
    #[derive(Clone, Default)]
    struct Capture {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        fail: Arc<Mutex<Option<io::ErrorKind>>>,
    }

    impl Write for Capture {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            *self.writes.lock().unwrap() += 1;
            if let Some(kind) = *self.fail.lock().unwrap() {
                return Err(io::Error::from(kind));
            }
            self.bytes.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn record<'a>(source: &'a Source, level: Level, target: &'a str, msg: &'a str) -> Record<'a> {
        Record::new(level, target, msg.as_bytes(), source).with_thread_id(1)
    }

    fn source() -> Source {
        Source {
            host: "h".to_string(),
            pid: 1,
            process_name: "p".to_string(),
        }
    }

    #[test]
    fn a_batch_goes_out_in_one_write_with_exact_bytes() {
        let cap = Capture::default();
        let mut c = Console::to_writer(Box::new(cap.clone())).layout(Box::new(Plain));
        let src = source();
        assert_eq!(
            c.write(&record(&src, Level::Info, "app", "started"))
                .unwrap(),
            18
        );
        assert_eq!(
            c.write(&record(&src, Level::Warn, "app::db", "slow"))
                .unwrap(),
            19
        );
        c.write(&record(&src, Level::Error, "x", "")).unwrap();
        assert!(cap.bytes.lock().unwrap().is_empty(), "nothing before flush");
        c.flush().unwrap();
        assert_eq!(
            cap.bytes.lock().unwrap().as_slice(),
            b"INFO app: started\nWARN app::db: slow\nERROR x: \n"
        );
        assert_eq!(*cap.writes.lock().unwrap(), 1);
        c.flush().unwrap();
        assert_eq!(
            *cap.writes.lock().unwrap(),
            1,
            "an empty flush writes nothing"
        );
    }

    #[test]
    fn broken_pipe_is_reported_once_then_swallowed() {
        let cap = Capture::default();
        *cap.fail.lock().unwrap() = Some(io::ErrorKind::BrokenPipe);
        let mut c = Console::to_writer(Box::new(cap.clone())).layout(Box::new(Plain));
        let src = source();
        c.write(&record(&src, Level::Info, "a", "1")).unwrap();
        let e = c.flush().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(c.write(&record(&src, Level::Info, "a", "2")).unwrap(), 0);
        c.flush().unwrap();
        c.flush().unwrap();
        assert_eq!(
            *cap.writes.lock().unwrap(),
            1,
            "no write after the pipe broke"
        );
    }

    #[test]
    fn other_errors_keep_the_buffer_for_a_retry() {
        let cap = Capture::default();
        *cap.fail.lock().unwrap() = Some(io::ErrorKind::Other);
        let mut c = Console::to_writer(Box::new(cap.clone())).layout(Box::new(Plain));
        let src = source();
        c.write(&record(&src, Level::Info, "a", "kept")).unwrap();
        assert_eq!(c.flush().unwrap_err().kind(), io::ErrorKind::Other);
        assert_eq!(c.flush().unwrap_err().kind(), io::ErrorKind::Other);
        *cap.fail.lock().unwrap() = None;
        c.flush().unwrap();
        assert_eq!(cap.bytes.lock().unwrap().as_slice(), b"INFO a: kept\n");
    }

    #[test]
    fn writing_without_a_layout_is_an_error() {
        let mut c = Console::to_writer(Box::new(Capture::default()));
        let src = source();
        let e = c.write(&record(&src, Level::Info, "a", "x")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            e.to_string(),
            "console sink has no layout: set one with Console::layout"
        );
    }

    #[test]
    fn color_follows_the_choice_the_terminal_and_no_color() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        assert!(color_enabled(ColorChoice::Always, false, set, None));
        assert!(!color_enabled(ColorChoice::Never, true, None, set));
        assert!(color_enabled(ColorChoice::Auto, true, None, None));
        assert!(color_enabled(ColorChoice::Auto, true, empty, empty));
        assert!(!color_enabled(ColorChoice::Auto, true, set, None));
        assert!(!color_enabled(ColorChoice::Auto, false, None, None));
        assert!(!color_enabled(ColorChoice::Auto, false, empty, None));
        // FORCE_COLOR: colour without a terminal, even with NO_COLOR; not
        // when it says no.
        assert!(color_enabled(ColorChoice::Auto, false, None, set));
        assert!(color_enabled(ColorChoice::Auto, false, set, set));
        for no in ["", "0", "false"] {
            let no = Some(OsStr::new(no));
            assert!(!color_enabled(ColorChoice::Auto, false, None, no));
            assert!(!color_enabled(ColorChoice::Auto, true, set, no));
        }
    }

    #[test]
    fn a_writer_is_not_a_terminal() {
        let c = Console::to_writer(Box::new(io::sink()));
        assert!(!c.wants_color());
        assert!(c.color(ColorChoice::Always).wants_color());
        assert_eq!(Console::stdout().stream(), Some(ConsoleStream::Stdout));
        assert_eq!(Console::default().stream(), Some(ConsoleStream::Stderr));
    }

    #[test]
    fn stream_words_parse() {
        assert_eq!("STDOUT".parse::<ConsoleStream>(), Ok(ConsoleStream::Stdout));
        assert_eq!(ConsoleStream::Stderr.to_string(), "stderr");
        assert_eq!(
            "stdin".parse::<ConsoleStream>().unwrap_err().to_string(),
            "\"stdin\" is not one of: stderr, stdout"
        );
    }

    /// What the console shows for one record of `layout`.
    fn shown(layout: Box<dyn Layout>, level: Level, msg: &str) -> Vec<u8> {
        let cap = Capture::default();
        let mut c = Console::to_writer(Box::new(cap.clone())).layout(layout);
        let src = source();
        c.write(&record(&src, level, "app", msg)).unwrap();
        c.flush().unwrap();
        let out = cap.bytes.lock().unwrap().clone();
        out
    }

    /// A message that retitles the window, clears the screen, moves the
    /// cursor, overwrites with a carriage return, rings the bell, hides
    /// text with a C1 CSI, and ends in a cut-off sequence.
    const HOSTILE: &str = "a\x1b]0;pwned\x07b\x1b[2J\x1b[1;1Hc\rd\x08e\x07f\u{9b}31mg\x1bPdcs\x1b\\h\x1bci\x7fj\tk\x1b[";

    #[test]
    fn foreign_terminal_controls_never_reach_the_console() {
        let py = |color| -> Box<dyn Layout> {
            Box::new(
                crate::layout::PythonLayout::new("%(levelname)s:%(message)s", None)
                    .unwrap()
                    .with_color(color),
            )
        };
        assert_eq!(
            shown(py(false), Level::Info, HOSTILE),
            b"INFO:abcdef31mghij\tk\n"
        );
        // Newlines of a multi-line message (a traceback) stay.
        assert_eq!(
            shown(py(false), Level::Info, "one\n  two\x1b[A"),
            b"INFO:one\n  two\n"
        );
        // The layout's own colours stay, byte for byte, around the same
        // stripped message; the same colour injected by a message is
        // only a colour.
        assert_eq!(
            shown(py(true), Level::Error, HOSTILE),
            b"\x1b[31mERROR\x1b[0m:abcdef31mghij\tk\n"
        );
        // Plain text and UTF-8 beyond the C1 range pass untouched.
        assert_eq!(
            shown(py(false), Level::Warn, "caf\u{e9} \u{a0}\u{20ac} ok"),
            "WARNING:caf\u{e9} \u{a0}\u{20ac} ok\n".as_bytes()
        );
    }

    /// A layout that records the widths it is told.
    #[derive(Debug, Default)]
    struct Widths(Arc<Mutex<Vec<Option<usize>>>>);

    impl Layout for Widths {
        fn format(&mut self, _: &Record<'_>, out: &mut Vec<u8>) {
            out.extend_from_slice(b"x\n");
        }
        fn wants_columns(&self) -> bool {
            true
        }
        fn set_columns(&mut self, columns: Option<usize>) {
            self.0.lock().unwrap().push(columns);
        }
    }

    #[test]
    fn the_width_is_told_once_a_batch() {
        let told = Arc::new(Mutex::new(Vec::new()));
        let layout = Box::new(Widths(Arc::clone(&told)));
        let mut c = Console::to_writer(Box::new(io::sink())).layout(layout);
        let src = source();
        let rec = record(&src, Level::Info, "a", "m");
        c.write(&rec).unwrap();
        c.write(&rec).unwrap();
        c.flush().unwrap();
        c.write(&rec).unwrap();
        // A writer has no terminal and no COLUMNS: unknown, until set.
        assert_eq!(*told.lock().unwrap(), [None, None]);
        let layout = Box::new(Widths(Arc::clone(&told)));
        let mut c = Console::to_writer(Box::new(io::sink()))
            .columns(Some(120))
            .layout(layout);
        c.write(&rec).unwrap();
        assert_eq!(*told.lock().unwrap(), [None, None, Some(120)]);
    }

    #[test]
    fn the_pretty_layout_passes_the_console_unchanged() {
        let pretty = || {
            crate::layout::PrettyLayout::new()
                .local_time(false)
                .columns(Some(60))
        };
        let src = source();
        let mut rec = record(&src, Level::Warn, "app", HOSTILE);
        rec = rec.with_file("src/main.rs").with_line(7);
        let mut direct = Vec::new();
        pretty().format(&rec, &mut direct);
        let cap = Capture::default();
        let mut c = Console::to_writer(Box::new(cap.clone()))
            .columns(Some(60))
            .layout(Box::new(pretty()));
        c.write(&rec).unwrap();
        c.flush().unwrap();
        assert_eq!(*cap.bytes.lock().unwrap(), direct);
        assert_eq!(
            String::from_utf8(direct).unwrap(),
            "\x1b[2m00:00:00.000\x1b[0m \x1b[33mWARN\x1b[0m     \x1b[2mapp\x1b[0m \
             a\\u{1b}]0;pwned\\u{7}b\\u{1b}[2J\\u{1b}[1;1Hc\\rd\\u{8}e\\u{7}f\\u{9b}31mg\\u{1b}Pdcs\\u{1b}\\h\\u{1b}ci\\u{7f}j\tk\\u{1b}[  \
             \x1b[2msrc/main.rs:7\x1b[0m\n"
        );
    }

    #[test]
    fn the_text_layout_escapes_what_the_console_would_strip() {
        let text = crate::layout::TextLayout::new();
        let mut direct = Vec::new();
        let src = source();
        text.clone()
            .format(&record(&src, Level::Info, "app", HOSTILE), &mut direct);
        // The text layout writes escapes, not controls: the console shows
        // its line unchanged.
        assert_eq!(shown(Box::new(text), Level::Info, HOSTILE), direct);
        assert!(!direct.contains(&0x1b));
    }
}
