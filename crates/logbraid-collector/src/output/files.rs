//! The output files: one, or one per source through a route template.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use logbraid::sink::{RollingFile, Sink};
use logbraid::Record;

use super::{FileSpec, OutputError};

/// Routed files kept open at once; the least recently used is closed
/// beyond this.
const MAX_OPEN: usize = 256;

/// Longest value substituted into a route, in bytes.
const MAX_VALUE: usize = 200;

/// Says a problem of the output stage on stderr, at most once a second
/// (with a count of what was not said).
pub(super) fn report(what: &str) {
    static LAST: Mutex<(Option<Instant>, u64)> = Mutex::new((None, 0));
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    if last
        .0
        .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
    {
        last.1 += 1;
        return;
    }
    let more = std::mem::take(&mut last.1);
    last.0 = Some(now);
    let more = if more > 0 {
        format!(" ({more} more problems since the last report)")
    } else {
        String::new()
    };
    let _ = writeln!(std::io::stderr(), "logbraid serve: output: {what}{more}");
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Host,
    Program,
    Pid,
    Logger,
}

/// A parsed `--route` template.
#[derive(Debug, Clone)]
pub(super) struct Route {
    parts: Vec<Part>,
}

impl Route {
    pub(super) fn parse(template: &str) -> Result<Route, OutputError> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if rest[..open].contains('}') {
                return Err(OutputError::Route(format!(
                    "unbalanced '}}' in {template:?}"
                )));
            }
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(OutputError::Route(format!("unclosed '{{' in {template:?}")));
            };
            let name = &rest[open + 1..open + close];
            parts.push(match name {
                "host" => Part::Host,
                "program" => Part::Program,
                "pid" => Part::Pid,
                "logger" => Part::Logger,
                other => {
                    return Err(OutputError::Route(format!(
                        "unknown placeholder {{{other}}} in {template:?}; known: {{host}}, {{program}}, {{pid}}, {{logger}}"
                    )))
                }
            });
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(OutputError::Route(format!(
                "unbalanced '}}' in {template:?}"
            )));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if !parts.iter().any(|p| !matches!(p, Part::Text(_))) {
            return Err(OutputError::Route(format!(
                "{template:?} has no placeholder; use --file for one file"
            )));
        }
        Ok(Route { parts })
    }

    /// The path for a record. Values from the record are neutralised, so
    /// the result always lies below the template's own directories.
    pub(super) fn expand(&self, r: &Record<'_>) -> PathBuf {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Host => out.push_str(&neutralise(&r.source.host)),
                Part::Program => out.push_str(&neutralise(&r.source.process_name)),
                Part::Pid => out.push_str(&r.source.pid.to_string()),
                Part::Logger => out.push_str(&neutralise(r.target)),
            }
        }
        PathBuf::from(out)
    }
}

/// A client's value made safe as one path component: no separator, no
/// NUL or control character, no leading dot (so neither `.` nor `..`), not
/// empty, at most 200 bytes.
pub(super) fn neutralise(value: &str) -> String {
    let mut s: String = value
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let dots = s.len() - s.trim_start_matches('.').len();
    if dots > 0 {
        s.replace_range(..dots, &"_".repeat(dots));
    }
    if s.is_empty() {
        s.push('_');
    }
    if s.len() > MAX_VALUE {
        let mut end = MAX_VALUE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

struct Open {
    sink: RollingFile,
    used: u64,
}

/// Every output file of the stage.
pub(super) struct Files {
    spec: FileSpec,
    route: Option<Route>,
    open: HashMap<PathBuf, Open>,
    /// The single file's path, or the last routed one (a cache).
    last: Option<PathBuf>,
    tick: u64,
}

impl Files {
    pub(super) fn new(spec: &FileSpec, route: Option<&str>) -> Result<Files, OutputError> {
        let mut files = Files {
            spec: spec.clone(),
            route: route.map(Route::parse).transpose()?,
            open: HashMap::new(),
            last: None,
            tick: 0,
        };
        if files.route.is_none() {
            let path = spec.path.clone();
            let sink = files.build(&path)?;
            files.open.insert(path.clone(), Open { sink, used: 0 });
            files.last = Some(path);
        }
        Ok(files)
    }

    fn build(&self, path: &Path) -> Result<RollingFile, OutputError> {
        let s = &self.spec;
        let mut b = RollingFile::builder(path)
            .layout(s.layout.build(false))
            .max_bytes(s.max_bytes)
            .backup_count(s.backup_count)
            .compression(s.compression);
        if let Some(e) = s.every {
            b = b.every(e);
        }
        b.build().map_err(|e| OutputError::Open {
            path: path.to_path_buf(),
            source: std::io::Error::new(e.kind(), e.to_string()),
        })
    }

    /// Writes one record; returns its size in the file.
    pub(super) fn write(&mut self, r: &Record<'_>) -> usize {
        self.tick += 1;
        let path = match &self.route {
            None => self.last.clone(),
            Some(route) => Some(route.expand(r)),
        };
        let Some(path) = path else { return 0 };
        if !self.open.contains_key(&path) {
            if self.open.len() >= MAX_OPEN {
                self.close_least_used();
            }
            match self.build(&path) {
                Ok(sink) => {
                    self.open.insert(path.clone(), Open { sink, used: 0 });
                }
                Err(e) => {
                    report(&format!("record lost: {e}"));
                    return 0;
                }
            }
        }
        let Some(f) = self.open.get_mut(&path) else {
            return 0;
        };
        f.used = self.tick;
        match f.sink.write(r) {
            Ok(n) => n,
            Err(e) => {
                report(&format!("cannot write {}: {e}", path.display()));
                0
            }
        }
    }

    fn close_least_used(&mut self) {
        let Some(p) = self
            .open
            .iter()
            .min_by_key(|(_, o)| o.used)
            .map(|(p, _)| p.clone())
        else {
            return;
        };
        if let Some(mut o) = self.open.remove(&p) {
            if let Err(e) = o.sink.finish() {
                report(&format!("cannot flush {}: {e}", p.display()));
            }
        }
    }

    pub(super) fn flush(&mut self) {
        for (p, o) in &mut self.open {
            if let Err(e) = o.sink.flush() {
                report(&format!("cannot flush {}: {e}", p.display()));
            }
        }
    }

    pub(super) fn finish(&mut self) {
        for (p, o) in &mut self.open {
            if let Err(e) = o.sink.finish() {
                report(&format!("cannot finish {}: {e}", p.display()));
            }
        }
    }

    /// `(path, device, inode, length)` of every open file, after a flush.
    pub(super) fn positions(&self) -> Vec<(PathBuf, u64, u64, u64)> {
        self.open
            .values()
            .filter_map(|o| {
                let p = o.sink.path();
                std::fs::metadata(p)
                    .ok()
                    .map(|m| (p.to_path_buf(), m.dev(), m.ino(), m.len()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_stay_one_harmless_component() {
        for (v, want) in [
            ("web-1", "web-1"),
            ("..", "__"),
            (".", "_"),
            ("../../etc/passwd", "___.._etc_passwd"),
            ("a/b\\c", "a_b_c"),
            ("nul\0x\nline", "nul_x_line"),
            ("", "_"),
            (".hidden", "_hidden"),
        ] {
            assert_eq!(neutralise(v), want, "{v:?}");
        }
        assert_eq!(neutralise(&"é".repeat(300)).len(), 200);
    }

    #[test]
    fn templates_are_checked() {
        assert!(Route::parse("logs/{host}/{program}.log").is_ok());
        for (bad, why) in [
            ("logs/{hots}.log", "unknown placeholder {hots}"),
            ("logs/{host.log", "unclosed"),
            ("logs/}{host}.log", "unbalanced"),
            ("logs/all.log", "no placeholder"),
        ] {
            let e = Route::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
