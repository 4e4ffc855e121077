//! The output files: one, or one per source through a route template.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use logbraid::report::RateLimit;
use logbraid::sink::{RollingFile, Sink};
use logbraid::{FieldsBuf, Record, SyncMode};
use prometheus_client::metrics::histogram::Histogram;

use super::client_files::{self, ClientFiles, Request};
use super::state::{Checkpoint, Pos};
use super::{FileSpec, OutputError};

/// Routed files kept open at once; the least recently used is flushed and
/// closed beyond this, so a collector with many sources does not run out
/// of file descriptors.
const MAX_OPEN: usize = 256;

/// Permissions of the directories routes create: the collector's user
/// writes, its group may enter and read.
const ROUTED_DIR_MODE: u32 = 0o750;

/// Longest value substituted into a route, in bytes.
const MAX_VALUE: usize = 200;

/// Longest path component a route produces, in bytes: below the usual 255
/// of file systems, with room for the backup suffixes (`.12.gz`, or a
/// timestamp) that rotation appends to the file name.
const MAX_COMPONENT: usize = 220;

/// Says a problem of the output stage on stderr, at most once a second
/// (with a count of what was not said), so a broken disk or a flood of bad
/// input cannot flood the terminal.
pub(super) fn report(what: &str) {
    static LIMIT: RateLimit = RateLimit::new(Duration::from_secs(1));
    let Some(more) = LIMIT.allow() else { return };
    let more = if more > 0 {
        format!(" ({more} more problems since the last report)")
    } else {
        String::new()
    };
    let _ = writeln!(
        std::io::stderr(),
        "logbraid collector: output: {what}{more}"
    );
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Host,
    Program,
    Pid,
    Logger,
}

/// A parsed route template, split into path components.
#[derive(Debug, Clone)]
pub(super) struct Route {
    components: Vec<Vec<Part>>,
    uses_logger: bool,
    /// Path components of the template's leading directories that hold no
    /// placeholder (the operator's); the ones below are named by records.
    fixed: usize,
}

fn parse_component(segment: &str, template: &str) -> Result<Vec<Part>, OutputError> {
    let unbalanced = || OutputError::Route(format!("unbalanced '}}' in {template:?}"));
    let mut parts = Vec::new();
    let mut rest = segment;
    while let Some(open) = rest.find('{') {
        if rest[..open].contains('}') {
            return Err(unbalanced());
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
                    "unknown placeholder {{{other}}} in {template:?} \
                     (known: {{host}}, {{program}}, {{pid}}, {{logger}})"
                )))
            }
        });
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err(unbalanced());
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

impl Route {
    pub(super) fn parse(template: &str) -> Result<Route, OutputError> {
        let components = template
            .split('/')
            .map(|s| parse_component(s, template))
            .collect::<Result<Vec<_>, _>>()?;
        let all = || components.iter().flatten();
        if all().all(|p| matches!(p, Part::Text(_))) {
            return Err(OutputError::Route(format!(
                "{template:?} has no placeholder; known: {{host}}, {{program}}, {{pid}}, {{logger}}"
            )));
        }
        if components
            .last()
            .is_none_or(|c| c.iter().all(|p| matches!(p, Part::Text(t) if t.is_empty())))
        {
            return Err(OutputError::Route(format!(
                "{template:?} names a directory, not a file"
            )));
        }
        let uses_logger = all().any(|p| *p == Part::Logger);
        let fixed: PathBuf = template
            .split('/')
            .zip(&components)
            .take_while(|(_, c)| c.iter().all(|p| matches!(p, Part::Text(_))))
            .map(|(text, _)| if text.is_empty() { "/" } else { text })
            .collect();
        Ok(Route {
            components,
            uses_logger,
            fixed: fixed.components().count(),
        })
    }

    /// Refuses `path` (an expansion of this route) when a directory in it
    /// that a record's values name is a symbolic link: values are
    /// neutralised, but a link someone made below the route's directory
    /// could still lead the file elsewhere. Directories not made yet are
    /// made by the file sink (0750).
    pub(super) fn check_dirs(&self, path: &Path) -> io::Result<()> {
        let parts: Vec<_> = path.components().collect();
        let Some((_, dirs)) = parts.split_last() else {
            return Ok(());
        };
        let fixed = self.fixed.min(dirs.len());
        refuse_links(
            &dirs[..fixed].iter().collect::<PathBuf>(),
            dirs[fixed..].iter().copied(),
            "a routed directory is never followed",
        )
    }

    /// The path for a record. Values from the record are neutralised, so
    /// the result always lies below the template's own directories.
    pub(super) fn expand(&self, r: &Record<'_>) -> PathBuf {
        let mut out = String::new();
        for (k, component) in self.components.iter().enumerate() {
            if k > 0 {
                out.push('/');
            }
            let mut fixed = 0;
            let mut values = Vec::new();
            for p in component {
                match p {
                    Part::Text(t) => fixed += t.len(),
                    Part::Pid => fixed += 10,
                    Part::Host => values.push(neutralise(&r.source.host)),
                    Part::Program => values.push(neutralise(&r.source.process_name)),
                    Part::Logger => values.push(neutralise(r.target)),
                }
            }
            // Several values in one component share what is left of it.
            let total: usize = values.iter().map(String::len).sum();
            let room = MAX_COMPONENT.saturating_sub(fixed);
            if total > room && !values.is_empty() {
                let each = (room / values.len()).max(1);
                for v in &mut values {
                    cut(v, each);
                }
            }
            let mut values = values.into_iter();
            for p in component {
                match p {
                    Part::Text(t) => out.push_str(t),
                    Part::Pid => out.push_str(&r.source.pid.to_string()),
                    _ => out.push_str(&values.next().unwrap_or_default()),
                }
            }
        }
        PathBuf::from(out)
    }
}

/// Refuses the way from `from` down through `steps` when one of them is
/// a symbolic link (`rule` says which rule that breaks); steps that do not
/// exist yet are made by the file sink, without links.
pub(super) fn refuse_links<'a>(
    from: &Path,
    steps: impl IntoIterator<Item = std::path::Component<'a>>,
    rule: &str,
) -> io::Result<()> {
    let mut at = from.to_path_buf();
    for step in steps {
        at.push(step);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{} is a symbolic link: {rule}", at.display()),
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Cuts `s` to at most `max` bytes at a character boundary, never to
/// nothing (a value of one character longer than `max` keeps a `_`).
fn cut(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    if s.is_empty() {
        s.push('_');
    }
}

/// A client's value made safe as (part of) one path component: `/`, `\`,
/// NUL and every other control character become `_`; leading dots become
/// `_` (so neither `.` nor `..`, and no hidden file); an empty value is
/// `_`; at most 200 bytes. Whatever a client sends, the value cannot step
/// out of the directory the template puts it in.
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
    cut(&mut s, MAX_VALUE);
    s
}

/// The values of the last routed record, so consecutive records of one
/// source (the common case: a batch) skip the expansion.
#[derive(Debug, Default)]
struct LastSource {
    host: String,
    pid: u32,
    program: String,
    logger: String,
}

impl LastSource {
    fn matches(&self, r: &Record<'_>, logger: bool) -> bool {
        self.pid == r.source.pid
            && self.host == r.source.host
            && self.program == r.source.process_name
            && (!logger || self.logger == r.target)
    }

    fn set(&mut self, r: &Record<'_>, logger: bool) {
        self.pid = r.source.pid;
        self.host.clone_from(&r.source.host);
        self.program.clone_from(&r.source.process_name);
        if logger {
            self.logger.clear();
            self.logger.push_str(r.target);
        }
    }
}

/// What an open file is for, which decides when it may be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The one file, or the fallback: open from start to end.
    Fixed,
    /// A file a route names: closed beyond [`MAX_OPEN`].
    Routed,
    /// A file a client chose: closed beyond [`ClientFiles::max_open`].
    Client,
}

#[derive(Debug)]
struct Open {
    sink: RollingFile,
    role: Role,
    used: u64,
    /// Written since its last sync (with [`SyncMode::Data`]).
    dirty: bool,
    /// Bytes buffered since the file's buffer was last written out.
    buffered: usize,
}

/// The open files, by path. Kept in a vector, so that the file the
/// records are going to is found again by its place, without hashing its
/// path for each record.
#[derive(Debug, Default)]
struct OpenFiles {
    files: Vec<(PathBuf, Open)>,
    /// Each file's place in `files`.
    places: HashMap<PathBuf, usize>,
}

impl OpenFiles {
    /// Adds the file at `path`, or replaces the one open there.
    fn insert(&mut self, path: PathBuf, o: Open) {
        match self.places.get(&path) {
            Some(&i) => self.files[i].1 = o,
            None => {
                self.places.insert(path.clone(), self.files.len());
                self.files.push((path, o));
            }
        }
    }

    /// Closes the file at `path`: another takes its place.
    fn remove(&mut self, path: &Path) -> Option<Open> {
        let i = self.places.remove(path)?;
        let (_, o) = self.files.swap_remove(i);
        if let Some((moved, _)) = self.files.get(i) {
            self.places.insert(moved.clone(), i);
        }
        Some(o)
    }

    fn place(&self, path: &Path) -> Option<usize> {
        self.places.get(path).copied()
    }

    fn contains_key(&self, path: &Path) -> bool {
        self.places.contains_key(path)
    }

    fn get_mut(&mut self, path: &Path) -> Option<&mut Open> {
        let i = self.place(path)?;
        Some(&mut self.files[i].1)
    }

    fn len(&self) -> usize {
        self.files.len()
    }

    fn iter(&self) -> impl Iterator<Item = (&PathBuf, &Open)> {
        self.files.iter().map(|(p, o)| (p, o))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&PathBuf, &mut Open)> {
        self.files.iter_mut().map(|(p, o)| (&*p, o))
    }

    fn values(&self) -> impl Iterator<Item = &Open> {
        self.files.iter().map(|(_, o)| o)
    }
}

/// A file's buffer is written out (not synced, not checkpointed: that is
/// for the end of the round) once it holds this much, so that a round of
/// records that lay out larger than they weigh does not grow it.
pub(super) const WRITE_OUT: usize = 1 << 20;

impl Open {
    fn new(sink: RollingFile, role: Role) -> Open {
        Open {
            sink,
            role,
            used: 0,
            dirty: false,
            buffered: 0,
        }
    }

    /// Flushes the file, or with `sync` makes what it was written durable
    /// (one fdatasync, skipped when nothing was written since the last,
    /// counted in `syncs`); each write and sync timed into `latency`.
    fn done(&mut self, sync: bool, syncs: &mut u64, latency: &Latency) -> std::io::Result<()> {
        // Always flushed (a flush also ends a suspended rotation); timed
        // when there is something to write.
        let timed = if self.buffered > 0 {
            &latency.write
        } else {
            &None
        };
        latency.time(timed, || self.sink.flush())?;
        if sync && self.dirty {
            latency.time(&latency.sync, || self.sink.sync())?;
            self.dirty = false;
            *syncs += 1;
        }
        self.buffered = 0;
        Ok(())
    }
}

/// Where the output stage's writes and syncs are timed.
#[derive(Clone, Debug, Default)]
pub(super) struct Latency {
    /// Seconds each write of a file's buffer takes.
    pub(super) write: Option<Histogram>,
    /// Seconds each fdatasync takes.
    pub(super) sync: Option<Histogram>,
}

impl Latency {
    fn time<T>(&self, into: &Option<Histogram>, f: impl FnOnce() -> T) -> T {
        let Some(h) = into else { return f() };
        let start = std::time::Instant::now();
        let r = f();
        h.observe(start.elapsed().as_secs_f64());
        r
    }
}

fn position(sink: &RollingFile) -> Option<Pos> {
    sink.position().map(|(path, (dev, ino), len)| Pos {
        path: path.to_path_buf(),
        dev,
        ino,
        len,
    })
}

/// The error for a record whose file is not open: without a route the one
/// file is opened at start and never closed, so this is not expected.
fn not_open(path: &Path) -> OutputError {
    OutputError::Open {
        path: path.to_path_buf(),
        source: std::io::Error::other("the file is not open"),
    }
}

/// Every output file of the stage, and the checkpoint of their positions.
#[derive(Debug)]
pub(super) struct Files {
    spec: FileSpec,
    route: Option<Route>,
    open: OpenFiles,
    /// Where the last record went (without a route: the one file).
    current: PathBuf,
    /// The place of `current` in `open`, once found (until it changes, or
    /// a file is closed).
    current_at: Option<usize>,
    /// `None` until a routed record was seen.
    last: Option<LastSource>,
    tick: u64,
    /// A write made a file rotate since [`take_rotated`](Self::take_rotated).
    rotated: bool,
    /// Files closed since the last checkpoint, where they ended.
    closed: Vec<Pos>,
    checkpoint: Option<Checkpoint>,
    /// Where records go whose routed file cannot be opened (a key of
    /// `open`, never closed).
    fallback: Option<PathBuf>,
    /// Records written to the fallback.
    diverted: u64,
    /// Where records that name their own file go.
    clients: Option<ClientFiles>,
    /// The last client file name and where it lies: consecutive records
    /// of one client skip the resolution.
    last_client: Option<(String, PathBuf)>,
    /// Records whose file request was refused.
    refused: u64,
    /// Sync the files written in a round, not only flush them.
    sync: bool,
    /// Files synced so far.
    syncs: u64,
    /// Rotations of every file so far.
    rotations: u64,
    /// Where writes and syncs are timed.
    pub(super) latency: Latency,
}

impl Files {
    /// Opens the file (without a route) and, with a state path, saves a
    /// first checkpoint holding `clients` (the restored table): a snapshot
    /// of the generation after `generation`, the recovered one.
    pub(super) fn new<'a>(
        spec: &FileSpec,
        route: Option<Route>,
        fallback: Option<&Path>,
        state: Option<(&Path, u64)>,
        sync: SyncMode,
        client_files: Option<ClientFiles>,
        clients: impl Iterator<Item = (&'a str, u64, u64)>,
    ) -> Result<Files, OutputError> {
        let sync = sync == SyncMode::Data;
        let mut files = Files {
            spec: spec.clone(),
            route,
            open: OpenFiles::default(),
            current: spec.path.clone(),
            current_at: None,
            last: None,
            tick: 0,
            rotated: false,
            closed: Vec::new(),
            checkpoint: state.map(|(p, generation)| {
                let mut cp = Checkpoint::new(p, sync);
                cp.follow(generation);
                cp
            }),
            fallback: None,
            diverted: 0,
            clients: client_files,
            last_client: None,
            refused: 0,
            sync,
            syncs: 0,
            rotations: 0,
            latency: Latency::default(),
        };
        if files.route.is_none() {
            let sink = files.build(spec, &spec.path)?;
            files
                .open
                .insert(spec.path.clone(), Open::new(sink, Role::Fixed));
        } else if let Some(path) = fallback {
            // Opened now: a fallback that does not open is a setting to fix
            // before anything runs, not a surprise during a fault.
            let sink = files.build(spec, path)?;
            files
                .open
                .insert(path.to_path_buf(), Open::new(sink, Role::Fixed));
            files.fallback = Some(path.to_path_buf());
        }
        let positions = files.positions();
        if let Some(cp) = &mut files.checkpoint {
            cp.save(clients, &[], positions)
                .map_err(|e| OutputError::State {
                    path: cp.path().to_path_buf(),
                    reason: format!("cannot save: {e}"),
                })?;
        }
        Ok(files)
    }

    /// A file at `path` with the settings of `s` (its path aside).
    fn build(&self, s: &FileSpec, path: &Path) -> Result<RollingFile, OutputError> {
        let mut b = RollingFile::builder(path)
            .layout(s.layout.build(false))
            .max_bytes(s.max_bytes)
            .backup_count(s.backup_count)
            .compression(s.compression)
            .sync_rotations(self.sync)
            .file_mode(s.mode)
            .dir_mode(ROUTED_DIR_MODE)
            .follow_links(s.follow_links)
            // A record is acknowledged once a flush succeeds, and a failed
            // one keeps it. The byte budget bounds memory, so a write never
            // waits for the file here: the stage retries its rounds.
            .max_pending(0);
        if let Some(e) = s.every {
            b = b.every(e);
        }
        b.build().map_err(|e| OutputError::Open {
            path: path.to_path_buf(),
            // The sink's message names the path too: keep the cause only.
            source: std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .and_then(std::io::Error::raw_os_error)
                .map_or_else(
                    || std::io::Error::new(e.kind(), e.to_string()),
                    std::io::Error::from_raw_os_error,
                ),
        })
    }

    /// Opens a routed file, closing the least recently used beyond the cap.
    /// A file the checkpoint does not know yet is added to it before any
    /// record goes in: what the file holds now is older than the checkpoint.
    fn open_routed(&mut self, path: &Path) -> Result<(), OutputError> {
        if let Some(route) = &self.route {
            route.check_dirs(path).map_err(|source| OutputError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let spec = self.spec.clone();
        self.open_file(path, &spec, Role::Routed)
    }

    /// Opens a file of `role` with the settings of `spec`, closing the
    /// least recently used of its role beyond its cap, and adds it to the
    /// checkpoint.
    fn open_file(&mut self, path: &Path, spec: &FileSpec, role: Role) -> Result<(), OutputError> {
        let cap = match (role, &self.clients) {
            (Role::Client, Some(c)) => c.max_open.max(1),
            _ => MAX_OPEN,
        };
        if self.open.values().filter(|o| o.role == role).count() >= cap {
            self.close_least_used(role);
        }
        let sink = self.build(spec, path)?;
        if let (Some(cp), Some(pos)) = (&mut self.checkpoint, position(&sink)) {
            if !cp.covers(&pos.path) {
                if let Err(e) = cp.add_file(pos) {
                    report(&format!("cannot save {}: {e}", cp.path().display()));
                }
            }
        }
        self.open.insert(path.to_path_buf(), Open::new(sink, role));
        Ok(())
    }

    /// Writes one record (buffered until [`flush`](Self::flush)); returns
    /// its size in the file, or the error when its routed file cannot be
    /// opened: the record is not written, and the caller keeps it.
    pub(super) fn write(&mut self, r: &Record<'_>) -> Result<usize, OutputError> {
        self.tick += 1;
        if self.clients.is_some() {
            if let Some(req) = Request::find(r.fields) {
                let fields = client_files::strip(r.fields);
                let r = r.with_fields(fields.as_fields());
                match self.client_file(&req) {
                    Ok(path) => return self.put(&path, &r),
                    Err(why) => {
                        self.refused += 1;
                        report(&format!(
                            "a client's file {:?} is refused: {why}; its record goes \
                             where it would without one",
                            req.file
                        ));
                        return self.write_default(&r);
                    }
                }
            }
        }
        self.write_default(r)
    }

    /// Writes `records` in order until one cannot be written: how many
    /// were, their size in the files, and the error that stopped them
    /// (the record it names is not written; see [`write`](Self::write)).
    pub(super) fn write_all<'r>(
        &mut self,
        records: impl Iterator<Item = Record<'r>>,
    ) -> (u64, u64, Option<OutputError>) {
        let (mut n, mut bytes) = (0, 0);
        for r in records {
            match self.write(&r) {
                Ok(len) => bytes += len as u64,
                Err(e) => return (n, bytes, Some(e)),
            }
            n += 1;
        }
        (n, bytes, None)
    }

    /// The file a client asked for, opened if it is not; the reason when
    /// the request is refused.
    fn client_file(&mut self, req: &Request<'_>) -> Result<PathBuf, String> {
        let Some(clients) = &self.clients else {
            return Err("the collector takes no client files".into());
        };
        let path = match &self.last_client {
            Some((name, path)) if name == req.file => path.clone(),
            _ => {
                let path = clients.resolve(req.file)?;
                self.last_client = Some((req.file.to_string(), path.clone()));
                path
            }
        };
        if self.open.contains_key(&path) {
            return Ok(path);
        }
        let grant = clients.grant(req)?;
        if let Some(state) = self.state_path().and_then(|p| std::path::absolute(p).ok()) {
            // The checkpoint, its journal, lock and temporary file.
            let ours = grant.path.parent() == state.parent()
                && grant.path.file_name().is_some_and(|n| {
                    let state = state.file_name().unwrap_or_default().as_encoded_bytes();
                    n.as_encoded_bytes().starts_with(state)
                });
            if ours {
                return Err(format!(
                    "{} is a file of the collector's checkpoint",
                    grant.path.display()
                ));
            }
        }
        let spec = FileSpec {
            path: grant.path.clone(),
            layout: grant.layout,
            max_bytes: grant.max_bytes,
            backup_count: grant.backup_count,
            every: None,
            compression: logbraid::Compression::None,
            mode: self.spec.mode,
            follow_links: false,
        };
        self.open_file(&grant.path, &spec, Role::Client)
            .map_err(|e| e.to_string())?;
        Ok(grant.path)
    }

    /// Writes `r` where it goes without a file request: the one file, or
    /// the file its route names.
    fn write_default(&mut self, r: &Record<'_>) -> Result<usize, OutputError> {
        if let Some(route) = &self.route {
            let logger = route.uses_logger;
            if !self.last.as_ref().is_some_and(|l| l.matches(r, logger)) {
                self.current = route.expand(r);
                self.current_at = None;
                self.last
                    .get_or_insert_with(LastSource::default)
                    .set(r, logger);
            }
            if self.current_at.is_none() && !self.open.contains_key(&self.current) {
                let path = self.current.clone();
                if let Err(e) = self.open_routed(&path) {
                    return self.divert(r, e);
                }
            }
        }
        let at = match self.current_at {
            Some(at) => at,
            None => {
                let at = self
                    .open
                    .place(&self.current)
                    .ok_or_else(|| not_open(&self.current))?;
                self.current_at = Some(at);
                at
            }
        };
        self.put_at(at, r)
    }

    /// Writes `r` to the open file `path`.
    fn put(&mut self, path: &Path, r: &Record<'_>) -> Result<usize, OutputError> {
        let at = self.open.place(path).ok_or_else(|| not_open(path))?;
        self.put_at(at, r)
    }

    /// Writes `r` to the open file at place `at`.
    fn put_at(&mut self, at: usize, r: &Record<'_>) -> Result<usize, OutputError> {
        let Some((path, f)) = self.open.files.get_mut(at) else {
            return Err(not_open(&self.current));
        };
        f.used = self.tick;
        f.dirty = true;
        let before = f.sink.stats().rotations;
        let n = f.sink.write(r).map_err(|source| OutputError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        let after = f.sink.stats().rotations;
        if after != before {
            self.rotated = true;
            self.rotations += after - before;
        }
        f.buffered += n;
        // Bytes past the last checkpoint are cut at recovery, so writing
        // them out early promises nothing; a failure leaves them buffered
        // for the round's flush, which reports it.
        if f.buffered >= WRITE_OUT
            && self
                .latency
                .time(&self.latency.write, || f.sink.flush())
                .is_ok()
        {
            f.buffered = 0;
        }
        Ok(n)
    }

    /// Writes `r`, whose routed file failed with `e`, to the fallback with
    /// its destination as a field; without a fallback, hands `e` back.
    fn divert(&mut self, r: &Record<'_>, e: OutputError) -> Result<usize, OutputError> {
        let Some(fallback) = &self.fallback else {
            return Err(e);
        };
        let Some(f) = self.open.get_mut(fallback) else {
            return Err(e);
        };
        report(&format!(
            "{e}; its records go to {} with their destination in the field \"destination\"",
            fallback.display()
        ));
        let mut fields = FieldsBuf::new();
        fields.extend_encoded(r.fields.encoded());
        fields.push_str("destination", &self.current.to_string_lossy());
        let diverted = r.with_fields(fields.as_fields());
        f.dirty = true;
        let n = f
            .sink
            .write(&diverted)
            .map_err(|source| OutputError::Write {
                path: fallback.clone(),
                source,
            })?;
        self.diverted += 1;
        Ok(n)
    }

    /// Files synced so far.
    pub(super) fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Rotations of every file so far (those of files closed since
    /// included).
    pub(super) fn rotations(&self) -> u64 {
        self.rotations
    }

    /// Files open now.
    pub(super) fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Rotated files of the open files queued for compression, or being
    /// compressed, now.
    pub(super) fn compress_backlog(&self) -> usize {
        self.open.values().map(|o| o.sink.compress_backlog()).sum()
    }

    /// Records written to the fallback so far.
    pub(super) fn diverted(&self) -> u64 {
        self.diverted
    }

    /// Records whose file request was refused so far.
    pub(super) fn refused(&self) -> u64 {
        self.refused
    }

    /// Whether a write rotated a file since the last call.
    pub(super) fn take_rotated(&mut self) -> bool {
        std::mem::take(&mut self.rotated)
    }

    fn close_least_used(&mut self, role: Role) {
        let Some(p) = self
            .open
            .iter()
            .filter(|(_, o)| o.role == role)
            .min_by_key(|(_, o)| o.used)
            .map(|(p, _)| p.clone())
        else {
            return;
        };
        let Some(mut o) = self.open.remove(&p) else {
            return;
        };
        // Another file took its place.
        self.current_at = None;
        match o
            .done(self.sync, &mut self.syncs, &self.latency)
            .and_then(|()| o.sink.finish())
        {
            Ok(()) => self.closed.extend(position(&o.sink)),
            Err(e) => {
                // Kept open, so its records are retried with the next
                // flush rather than dropped with the sink.
                report(&format!("cannot flush {}: {e}", p.display()));
                self.open.insert(p, o);
            }
        }
    }

    /// Flushes every file (with [`SyncMode::Data`], fdatasyncs each file
    /// written since its last sync, once); `false` if one failed (its
    /// records stay buffered for the next flush).
    pub(super) fn flush(&mut self) -> bool {
        let mut ok = true;
        for (p, o) in self.open.iter_mut() {
            if let Err(e) = o.done(self.sync, &mut self.syncs, &self.latency) {
                report(&format!("cannot flush {}: {e}", p.display()));
                ok = false;
            }
        }
        ok
    }

    /// Closes and opens again every open file (after an external rotation
    /// moved them away). A file that does not reopen keeps its records
    /// buffered, and its next flush tries again.
    pub(super) fn reopen(&mut self) {
        for (p, o) in self.open.iter_mut() {
            if let Err(e) = o.sink.reopen() {
                report(&format!("cannot reopen {}: {e}", p.display()));
            }
        }
    }

    /// Flushes every file and waits for their compressions.
    pub(super) fn finish(&mut self) {
        for (p, o) in self.open.iter_mut() {
            if let Err(e) = o.sink.finish() {
                report(&format!("cannot finish {}: {e}", p.display()));
            }
        }
    }

    /// Where every open file stands, and every file closed since the last
    /// checkpoint.
    fn positions(&self) -> Vec<Pos> {
        let mut all: Vec<Pos> = self
            .open
            .values()
            .filter_map(|o| position(&o.sink))
            .collect();
        for c in &self.closed {
            if !all.iter().any(|p| p.path == c.path) {
                all.push(c.clone());
            }
        }
        all
    }

    /// Whether a checkpoint is kept.
    pub(super) fn checkpointed(&self) -> bool {
        self.checkpoint.is_some()
    }

    /// Checkpoints saved so far.
    pub(super) fn checkpoints(&self) -> u64 {
        self.checkpoint.as_ref().map_or(0, Checkpoint::saves)
    }

    /// Saves a checkpoint of the clients that changed, the ids forgotten
    /// and the files as they are; call right after a successful
    /// [`flush`](Self::flush).
    pub(super) fn save<'a>(
        &mut self,
        changes: impl Iterator<Item = (&'a str, u64, u64)>,
        forgotten: &[std::sync::Arc<str>],
    ) -> std::io::Result<()> {
        let positions = self.positions();
        let Some(cp) = &mut self.checkpoint else {
            return Ok(());
        };
        cp.save(changes, forgotten, positions)?;
        self.closed.clear();
        Ok(())
    }

    /// The state file, for messages.
    pub(super) fn state_path(&self) -> Option<&Path> {
        self.checkpoint.as_ref().map(Checkpoint::path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logbraid::{Level, Source};

    #[test]
    fn hostile_values_stay_one_harmless_component() {
        for (v, want) in [
            ("web-1", "web-1"),
            ("..", "__"),
            (".", "_"),
            ("../../etc/passwd", "___.._etc_passwd"),
            ("a/b\\c", "a_b_c"),
            ("nul\0x\nline\u{7f}\u{85}", "nul_x_line__"),
            ("", "_"),
            (".hidden", "_hidden"),
            ("a..b", "a..b"),
        ] {
            assert_eq!(neutralise(v), want, "{v:?}");
        }
        let long = neutralise(&"é".repeat(300));
        assert_eq!(long.len(), 200);
        assert!(long.chars().all(|c| c == 'é'));
    }

    #[test]
    fn templates_are_checked() {
        assert!(Route::parse("logs/{host}/{program}.log").is_ok());
        for (bad, why) in [
            ("logs/{hots}.log", "unknown placeholder {hots}"),
            ("logs/{host.log", "unclosed"),
            ("logs/}{host}.log", "unbalanced"),
            ("logs/{host}}.log", "unbalanced"),
            ("logs/all.log", "no placeholder"),
            ("logs/{host}/", "not a file"),
        ] {
            let e = Route::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn values_sharing_a_component_fit_in_it() {
        let route = Route::parse("/logs/{host}-{program}-{pid}.log").unwrap();
        let source = Source {
            host: "h".repeat(500),
            pid: 4_294_967_295,
            process_name: "../".repeat(100),
        };
        let r = Record::new(Level::Info, "t", b"", &source);
        let p = route.expand(&r);
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(name.len() <= MAX_COMPONENT, "{}", name.len());
        assert!(name.ends_with("-4294967295.log"), "{name}");
        assert_eq!(p.parent(), Some(Path::new("/logs")));
    }

    #[test]
    fn a_buffer_past_the_threshold_is_written_out_before_the_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let spec = FileSpec {
            path: path.clone(),
            layout: logbraid::layout::LayoutSpec::Text,
            max_bytes: 0,
            backup_count: 0,
            every: None,
            compression: logbraid::Compression::None,
            mode: crate::output::DEFAULT_FILE_MODE,
            follow_links: false,
        };
        let mut files = Files::new(
            &spec,
            None,
            None,
            None,
            SyncMode::None,
            None,
            std::iter::empty(),
        )
        .unwrap();
        let source = Source {
            host: "h".into(),
            pid: 1,
            process_name: "p".into(),
        };
        let message = vec![b'x'; 64 << 10];
        let r = Record::new(Level::Info, "t", &message, &source);
        let mut written = 0;
        while written < WRITE_OUT {
            assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
            written += files.write(&r).unwrap();
        }
        // No flush yet: the buffer went out as it reached the threshold.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), written as u64);
        files.write(&r).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), written as u64);
    }
}
