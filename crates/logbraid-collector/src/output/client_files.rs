//! Files chosen by clients: a Python record that names a file (the
//! `logbraid_file` key of its pickled dict, as
//! `logbraid.compat.logserv`'s handlers send it; `PROTOCOL.md` lists the
//! keys) is written to that file below [`ClientFiles::dir`], rotated and
//! formatted as it asks within the caps the collector sets. A request that
//! cannot be honoured is refused, counted, and its record written where it
//! would have gone without one.
//!
//! The name is the client's and untrusted: it must be relative to
//! [`ClientFiles::base`] or absolute inside [`ClientFiles::dir`], without a
//! `..` component, NUL or any other control character; no directory below
//! `dir` on the way to it, nor the file itself, may be a symbolic link (the
//! file is also opened with `O_NOFOLLOW`, like every file of the
//! collector).

use std::io;
use std::path::{Component, Path, PathBuf};

use logbraid::layout::LayoutSpec;
use logbraid::{Fields, FieldsBuf, Value};

/// Where client-chosen files may be written, and the caps on what clients
/// may ask.
///
/// | setting | default |
/// |---|---|
/// | `max_bytes` | [`DEFAULT_MAX_BYTES`]: a request of 0 (never rotate) or more is rotated there |
/// | `max_backups` | [`DEFAULT_MAX_BACKUPS`] |
/// | `max_open` | [`DEFAULT_MAX_OPEN`]: the least recently written is closed beyond it |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFiles {
    /// Every client file lies below this directory (absolute).
    pub dir: PathBuf,
    /// Relative names are taken from here (absolute, `dir` or below it).
    pub base: PathBuf,
    /// The largest `maxBytes` honoured; 0 for no cap.
    pub max_bytes: u64,
    /// The largest `backupCount` honoured.
    pub max_backups: usize,
    /// Client files open at once.
    pub max_open: usize,
}

/// [`ClientFiles::max_bytes`] by default: 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// [`ClientFiles::max_backups`] by default.
pub const DEFAULT_MAX_BACKUPS: usize = 100;

/// [`ClientFiles::max_open`] by default.
pub const DEFAULT_MAX_OPEN: usize = 64;

/// The keys of a file request, in a record's fields.
pub const FILE: &str = "logbraid_file";
/// `maxBytes` of the client's `RotatingFileHandler` (0: never rotate).
pub const MAX_BYTES: &str = "logbraid_max_bytes";
/// `backupCount` of the client's `RotatingFileHandler`.
pub const BACKUP_COUNT: &str = "logbraid_backup_count";
/// The client formatter's `fmt` (`None`: `%(message)s`, as `logging`).
pub const FMT: &str = "logbraid_fmt";
/// The client formatter's `datefmt`.
pub const DATEFMT: &str = "logbraid_datefmt";
/// The client formatter's style: `%`, `{` or `$`.
pub const STYLE: &str = "logbraid_style";
/// The handler's `mode` and `encoding`: sent, not used (the collector
/// appends, in UTF-8).
const IGNORED: [&str; 2] = ["logbraid_mode", "logbraid_encoding"];

/// The file a record asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Request<'a> {
    pub(super) file: &'a str,
    max_bytes: i64,
    backup_count: i64,
    fmt: Option<&'a str>,
    datefmt: Option<&'a str>,
    style: Option<&'a str>,
    /// A key of the request with a value of the wrong type.
    bad: Option<&'static str>,
}

fn is_request_key(key: &str) -> bool {
    [FILE, MAX_BYTES, BACKUP_COUNT, FMT, DATEFMT, STYLE].contains(&key) || IGNORED.contains(&key)
}

impl<'a> Request<'a> {
    /// The request in `fields`, `None` when they name no file.
    pub(super) fn find(fields: Fields<'a>) -> Option<Request<'a>> {
        let mut req = Request::default();
        let mut named = false;
        for (key, value) in fields {
            let text = |key: &'static str| match value {
                Value::Str(s) => std::str::from_utf8(s).map(Some).map_err(|_| key),
                Value::Null => Ok(None),
                _ => Err(key),
            };
            let int = |key: &'static str| match value {
                Value::I64(n) => Ok(n),
                Value::U64(n) => Ok(i64::try_from(n).unwrap_or(i64::MAX)),
                Value::Null => Ok(0),
                _ => Err(key),
            };
            let got = match key {
                FILE => {
                    named = true;
                    text(FILE).map(|v| req.file = v.unwrap_or_default())
                }
                MAX_BYTES => int(MAX_BYTES).map(|n| req.max_bytes = n),
                BACKUP_COUNT => int(BACKUP_COUNT).map(|n| req.backup_count = n),
                FMT => text(FMT).map(|v| req.fmt = v),
                DATEFMT => text(DATEFMT).map(|v| req.datefmt = v),
                STYLE => text(STYLE).map(|v| req.style = v),
                _ => Ok(()),
            };
            if let Err(key) = got {
                req.bad.get_or_insert(key);
            }
        }
        named.then_some(req)
    }
}

/// `fields` without the keys of a file request: what the file shows.
pub(super) fn strip(fields: Fields<'_>) -> FieldsBuf {
    let mut out = FieldsBuf::new();
    for (key, value) in fields {
        if !is_request_key(key) {
            out.push(key, value);
        }
    }
    out
}

/// What a granted request opens: the file, its layout and rotation.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Grant {
    pub(super) path: PathBuf,
    pub(super) layout: LayoutSpec,
    pub(super) max_bytes: u64,
    pub(super) backup_count: usize,
}

impl ClientFiles {
    /// The file `req` names, with its layout and rotation within the caps;
    /// the reason when it is refused. Looks at the file system only for
    /// symbolic links.
    pub(super) fn grant(&self, req: &Request<'_>) -> Result<Grant, String> {
        if let Some(key) = req.bad {
            return Err(format!("{key} has a value of the wrong type"));
        }
        let path = self.resolve(req.file)?;
        let format = percent_format(req.fmt.unwrap_or("%(message)s"), req.style.unwrap_or("%"))?;
        let layout = LayoutSpec::parse(&format, req.datefmt).map_err(|e| e.to_string())?;
        if matches!(layout, LayoutSpec::Text | LayoutSpec::Json) {
            // A format `text` or `json` is Python text without a field.
            return Err(format!("the format {format:?} has no field"));
        }
        let cap = |n: u64, max: u64| {
            if max > 0 && (n == 0 || n > max) {
                max
            } else {
                n
            }
        };
        let max_bytes = cap(u64::try_from(req.max_bytes).unwrap_or(0), self.max_bytes);
        let backups = usize::try_from(req.backup_count).unwrap_or(0);
        // The sink keeps every backup for 0; a rotating file keeps at least
        // one (Python's would empty itself instead: a collector discards
        // no record).
        let backup_count = backups.clamp(1, self.max_backups.max(1));
        self.check_links(&path).map_err(|e| e.to_string())?;
        Ok(Grant {
            path,
            layout,
            max_bytes,
            backup_count,
        })
    }

    /// Where `name` lies: inside [`dir`](Self::dir), or the reason it
    /// does not.
    pub(super) fn resolve(&self, name: &str) -> Result<PathBuf, String> {
        if name.is_empty() {
            return Err("the file name is empty".into());
        }
        if name.chars().any(char::is_control) {
            return Err(format!("the file name {name:?} holds a control character"));
        }
        let given = Path::new(name);
        let mut path = if given.is_absolute() {
            PathBuf::from("/")
        } else {
            self.base.clone()
        };
        for c in given.components() {
            match c {
                Component::Normal(part) => path.push(part),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    return Err(format!("the file name {name:?} has a '..' component"))
                }
            }
        }
        match path.strip_prefix(&self.dir) {
            Ok(rest) if rest.components().next().is_some() => Ok(path),
            Ok(_) => Err(format!("{name:?} names the directory of the client files")),
            Err(_) => Err(format!(
                "{} is outside {}, the directory of the client files",
                path.display(),
                self.dir.display()
            )),
        }
    }

    /// Refuses `path` when a directory below [`dir`](Self::dir) on the way
    /// to it, or the file itself, is a symbolic link.
    fn check_links(&self, path: &Path) -> io::Result<()> {
        let Ok(rest) = path.strip_prefix(&self.dir) else {
            return Ok(());
        };
        super::files::refuse_links(
            &self.dir,
            rest.components(),
            "a client file is never reached through one",
        )
    }
}

/// A `logging.Formatter` format of `style` (`%`, `{` or `$`) as the
/// `%`-style format that formats records the same way, or the reason it
/// cannot be used.
///
/// `{`-style fields take a `!r`, `!s` or `!a` conversion and a spec of
/// `<` or `>` alignment, sign (`+`, space), `#`, `0`, width, precision
/// and a type of `s d i o x X e E f F g G`; `$`-style takes `$name`,
/// `${name}` and `$$`. Anything else (attribute or index access, fill
/// characters, centring, thousands separators) is refused.
pub fn percent_format(fmt: &str, style: &str) -> Result<String, String> {
    match style {
        "%" => Ok(fmt.to_string()),
        "{" => brace_format(fmt),
        "$" => dollar_format(fmt),
        other => Err(format!("style {other:?} is not one of '%', '{{', '$'")),
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The attributes `logging` holds as numbers: a `{}` field of one without
/// a type aligns right, as Python aligns numbers.
const NUMERIC: [&str; 7] = [
    "levelno",
    "lineno",
    "process",
    "thread",
    "created",
    "msecs",
    "relativeCreated",
];

fn brace_format(fmt: &str) -> Result<String, String> {
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut rest = fmt;
    while let Some(at) = rest.find(['{', '}', '%']) {
        out.push_str(&rest[..at]);
        let c = rest.as_bytes()[at];
        let after = &rest[at + 1..];
        match c {
            b'%' => {
                out.push_str("%%");
                rest = after;
            }
            b'}' if after.starts_with('}') => {
                out.push('}');
                rest = &after[1..];
            }
            b'}' => return Err(format!("single '}}' in the format {fmt:?}")),
            _ if after.starts_with('{') => {
                out.push('{');
                rest = &after[1..];
            }
            _ => {
                let Some(end) = after.find('}') else {
                    return Err(format!("unclosed '{{' in the format {fmt:?}"));
                };
                brace_field(&after[..end], &mut out)
                    .map_err(|why| format!("{why} in the format {fmt:?}"))?;
                rest = &after[end + 1..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn brace_field(field: &str, out: &mut String) -> Result<(), String> {
    let (head, spec) = field.split_once(':').unwrap_or((field, ""));
    let (name, conv) = match head.split_once('!') {
        Some((n, c @ ("r" | "s" | "a"))) => (n, c.chars().next()),
        Some((_, c)) => return Err(format!("unknown conversion !{c}")),
        None => (head, None),
    };
    if !is_name(name) {
        return Err(format!("field {{{field}}} is not a plain attribute name"));
    }
    let mut flags = String::new();
    let mut s = spec;
    let mut align = None;
    if let Some(a @ ('<' | '>')) = s.chars().next() {
        align = Some(a);
        s = &s[1..];
    } else if s.chars().nth(1).is_some_and(|c| "<>=^".contains(c)) {
        return Err(format!(
            "fill or alignment of {{{field}}} has no %-style equivalent"
        ));
    }
    if s.starts_with(['=', '^']) {
        return Err(format!(
            "alignment of {{{field}}} has no %-style equivalent"
        ));
    }
    if let Some(sign @ ('+' | ' ')) = s.chars().next() {
        flags.push(sign);
        s = &s[1..];
    }
    if let Some(rest) = s.strip_prefix('#') {
        flags.push('#');
        s = rest;
    }
    if let Some(rest) = s.strip_prefix('0') {
        flags.push('0');
        s = rest;
    }
    let digits = |t: &str| t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let n = digits(s);
    let width = &s[..n];
    s = &s[n..];
    let mut precision = "";
    if let Some(rest) = s.strip_prefix('.') {
        let n = digits(rest);
        if n == 0 {
            return Err(format!("precision of {{{field}}} has no digits"));
        }
        precision = &s[..n + 1];
        s = &rest[n..];
    }
    let ty = match (s, conv) {
        ("", Some(c)) => c,
        ("", None) => 's',
        (t, _) if t.len() == 1 && "sdioxXeEfFgG".contains(t) => {
            if conv.is_some() && t != "s" {
                return Err(format!(
                    "{{{field}}} converts to text, then formats a number"
                ));
            }
            match conv {
                Some(c) => c,
                None => t.chars().next().unwrap_or('s'),
            }
        }
        (t, _) => return Err(format!("format spec {t:?} of {{{field}}} is not supported")),
    };
    // Python aligns text left and numbers right by default; `%` aligns
    // everything right.
    let number = ty != 's' && ty != 'r' && ty != 'a'
        || (ty == 's' && conv.is_none() && s.is_empty() && NUMERIC.contains(&name));
    let left = match align {
        Some('<') => true,
        Some(_) => false,
        None => !number,
    };
    if left && !width.is_empty() {
        flags.insert(0, '-');
    }
    out.push_str("%(");
    out.push_str(name);
    out.push(')');
    out.push_str(&flags);
    out.push_str(width);
    out.push_str(precision);
    out.push(ty);
    Ok(())
}

fn dollar_format(fmt: &str) -> Result<String, String> {
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut rest = fmt;
    while let Some(at) = rest.find(['$', '%']) {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if rest.as_bytes()[at] == b'%' {
            out.push_str("%%");
            rest = after;
            continue;
        }
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let (name, next) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (&inner[..end], &inner[end + 1..]),
                None => return Err(format!("unclosed '${{' in the format {fmt:?}")),
            },
            None => {
                let end = after
                    .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if !is_name(name) {
            return Err(format!(
                "invalid placeholder after '$' in the format {fmt:?}"
            ));
        }
        out.push_str("%(");
        out.push_str(name);
        out.push_str(")s");
        rest = next;
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> ClientFiles {
        ClientFiles {
            dir: dir.to_path_buf(),
            base: dir.to_path_buf(),
            max_bytes: 1000,
            max_backups: 5,
            max_open: 4,
        }
    }

    #[test]
    fn styles_become_the_percent_format_that_formats_alike() {
        for (fmt, style, want) in [
            ("%(asctime)s %(message)s", "%", "%(asctime)s %(message)s"),
            (
                "{asctime} {levelname:<8} {message}",
                "{",
                "%(asctime)s %(levelname)-8s %(message)s",
            ),
            (
                "{levelname:8}|{lineno:4}|{lineno:<4}",
                "{",
                "%(levelname)-8s|%(lineno)4s|%(lineno)-4s",
            ),
            (
                "{levelname:>8} {msg!r} 100%",
                "{",
                "%(levelname)8s %(msg)r 100%%",
            ),
            (
                "{created:.3f} {process:05d} {{x}}",
                "{",
                "%(created).3f %(process)05d {x}",
            ),
            (
                "$asctime ${levelname}: $message $$5 10%",
                "$",
                "%(asctime)s %(levelname)s: %(message)s $5 10%%",
            ),
        ] {
            assert_eq!(percent_format(fmt, style).as_deref(), Ok(want), "{fmt}");
        }
        for (fmt, style, why) in [
            ("{a.b}", "{", "not a plain attribute name"),
            ("{x:*^9}", "{", "no %-style equivalent"),
            ("{x:,}", "{", "not supported"),
            ("{x", "{", "unclosed"),
            ("x}", "{", "single '}'"),
            ("$ x", "$", "invalid placeholder"),
            ("${x", "$", "unclosed"),
            ("%(x)s", "#", "not one of"),
        ] {
            let e = percent_format(fmt, style).unwrap_err();
            assert!(e.contains(why), "{fmt}: {e}");
        }
    }

    #[test]
    fn names_stay_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let cf = files(root);
        assert_eq!(cf.resolve("app.log"), Ok(root.join("app.log")));
        assert_eq!(cf.resolve("./a/./b.log"), Ok(root.join("a/b.log")));
        let inside = root.join("x/y.log");
        assert_eq!(cf.resolve(inside.to_str().unwrap()), Ok(inside.clone()));
        for (name, why) in [
            ("../x", "'..' component"),
            ("a/../../x", "'..' component"),
            ("/etc/passwd", "is outside"),
            ("", "empty"),
            ("a\0b", "control character"),
            ("a\nb", "control character"),
            (".", "names the directory"),
        ] {
            let e = cf.resolve(name).unwrap_err();
            assert!(e.contains(why), "{name:?}: {e}");
        }
        // A base below the directory: relative names start there.
        let cf = ClientFiles {
            base: root.join("sub"),
            ..files(root)
        };
        assert_eq!(cf.resolve("a.log"), Ok(root.join("sub/a.log")));
    }

    #[test]
    fn links_below_the_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.join("linked")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join("f"), root.join("f.log")).unwrap();
        let cf = files(root);
        let req = |file| Request {
            file,
            ..Request::default()
        };
        for name in ["linked/a.log", "f.log"] {
            let e = cf.grant(&req(name)).unwrap_err();
            assert!(e.contains("is a symbolic link"), "{name}: {e}");
        }
        let g = cf.grant(&req("new/dir/a.log")).unwrap();
        assert_eq!(g.path, root.join("new/dir/a.log"));
    }

    #[test]
    fn rotation_is_honoured_within_the_caps() {
        let dir = tempfile::tempdir().unwrap();
        let cf = files(dir.path());
        let grant = |max_bytes, backup_count| {
            let g = cf
                .grant(&Request {
                    file: "a.log",
                    max_bytes,
                    backup_count,
                    ..Request::default()
                })
                .unwrap();
            (g.max_bytes, g.backup_count)
        };
        assert_eq!(grant(500, 3), (500, 3));
        assert_eq!(grant(5000, 30), (1000, 5));
        assert_eq!(grant(0, 0), (1000, 1));
        assert_eq!(grant(-1, -1), (1000, 1));
        let uncapped = ClientFiles {
            max_bytes: 0,
            ..files(dir.path())
        };
        let g = uncapped
            .grant(&Request {
                file: "a.log",
                ..Request::default()
            })
            .unwrap();
        assert_eq!(g.max_bytes, 0);
        assert_eq!(
            g.layout,
            LayoutSpec::Python {
                format: "%(message)s".into(),
                datefmt: None
            }
        );
    }

    #[test]
    fn a_request_is_read_from_the_fields_and_stripped_from_them() {
        let mut f = FieldsBuf::new();
        f.push_str("user", "ann");
        f.push_str(FILE, "a.log");
        f.push(MAX_BYTES, Value::I64(10));
        f.push(BACKUP_COUNT, Value::I64(2));
        f.push_str(FMT, "{message}");
        f.push(DATEFMT, Value::Null);
        f.push_str(STYLE, "{");
        f.push_str("logbraid_mode", "a");
        let req = Request::find(f.as_fields()).unwrap();
        assert_eq!(
            req,
            Request {
                file: "a.log",
                max_bytes: 10,
                backup_count: 2,
                fmt: Some("{message}"),
                datefmt: None,
                style: Some("{"),
                bad: None,
            }
        );
        let kept = strip(f.as_fields());
        let keys: Vec<_> = kept.as_fields().iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["user"]);
        let mut none = FieldsBuf::new();
        none.push_str(FMT, "x");
        assert_eq!(Request::find(none.as_fields()), None);
        let mut bad = FieldsBuf::new();
        bad.push(FILE, Value::I64(3));
        let dir = tempfile::tempdir().unwrap();
        let e = files(dir.path())
            .grant(&Request::find(bad.as_fields()).unwrap())
            .unwrap_err();
        assert_eq!(e, "logbraid_file has a value of the wrong type");
    }
}
