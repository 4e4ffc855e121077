//! Level directives in the `RUST_LOG` form: which targets log at which level.
//!
//! A directive string is a comma-separated list. Each item is one of:
//!
//! | item | meaning |
//! |---|---|
//! | `info` | a bare level sets the default for every target |
//! | `my_crate::db=debug` | that target, and everything below it, at that level |
//! | `my_crate` | a bare target name: that target at TRACE |
//! | `hyper=off` | nothing from that target |
//!
//! Levels are case-insensitive and accept the same words as
//! [`LevelFilter`]'s parser (`warn`/`warning`, `critical`/`fatal`, `off`,
//! Python's numbers). Whitespace around items and around `=` is ignored,
//! empty items are skipped, and the empty string means the default, `info`.
//! When a bare level appears more than once, or a target is given twice, the
//! last one wins.
//!
//! A target directive covers the target itself and every target below it:
//! `my_crate` matches `my_crate`, `my_crate::db` and, for Python logger
//! names, `my_crate.db`, but not `my_crate2`. When several directives match,
//! the longest wins. Target names are case-sensitive.
//!
//! ```
//! use logbraid::filter::Directives;
//! use logbraid::{Level, LevelFilter};
//!
//! let d = Directives::parse("warn, my_crate=info, my_crate::db=debug").unwrap();
//! assert!(d.enabled("my_crate::db::pool", Level::Debug));
//! assert!(!d.enabled("my_crate::http", Level::Debug));
//! assert!(!d.enabled("hyper", Level::Info));
//! assert_eq!(d.max_level(), LevelFilter::DEBUG);
//! assert_eq!(d.to_string(), "warn,my_crate::db=debug,my_crate=info");
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::str::FromStr;

use crate::level::{Level, LevelFilter};

/// The environment variable read first by [`Directives::from_env`].
pub const LEVEL_ENV: &str = "LOGBRAID_LEVEL";
/// The environment variable read when [`LEVEL_ENV`] is not set.
pub const RUST_LOG_ENV: &str = "RUST_LOG";

/// Parsed level directives: a default threshold and per-target thresholds.
///
/// Equality compares meaning: two strings that list the same directives in
/// a different order parse to equal values. [`Display`](fmt::Display) prints
/// the canonical form, which parses back to an equal value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directives {
    /// The default threshold as [`LevelFilter::to_u8`], so the check without
    /// per-target directives is one integer compare.
    default: u8,
    /// The most verbose threshold of all directives, as `to_u8`: a level below
    /// it is disabled everywhere, whatever the target.
    max: u8,
    /// Per-target thresholds, longest name first (ties by name), so the first
    /// match is the longest match and the order is canonical.
    targets: Vec<(Box<str>, LevelFilter)>,
}

impl Default for Directives {
    /// `info` for every target.
    fn default() -> Self {
        Directives::new(LevelFilter::INFO)
    }
}

impl From<LevelFilter> for Directives {
    fn from(default: LevelFilter) -> Self {
        Directives::new(default)
    }
}

impl Directives {
    /// Directives with only a default threshold.
    pub fn new(default: LevelFilter) -> Self {
        Directives {
            default: default.to_u8(),
            max: default.to_u8(),
            targets: Vec::new(),
        }
    }

    /// Parses a directive string (see the [module documentation](self)).
    pub fn parse(spec: &str) -> Result<Directives, FilterError> {
        let mut default = LevelFilter::INFO;
        let mut targets: Vec<(Box<str>, LevelFilter)> = Vec::new();
        for item in spec.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            match parse_item(item)? {
                Item::Default(level) => default = level,
                Item::Target(name, level) => {
                    if let Some(slot) = targets.iter_mut().find(|(n, _)| **n == *name) {
                        slot.1 = level;
                    } else {
                        targets.push((name.into(), level));
                    }
                }
            }
        }
        targets.sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        let max = targets
            .iter()
            .fold(default, |acc, &(_, level)| acc.most_verbose(level));
        Ok(Directives {
            default: default.to_u8(),
            max: max.to_u8(),
            targets,
        })
    }

    /// Reads `LOGBRAID_LEVEL`, or `RUST_LOG` when that is not set.
    ///
    /// Returns `Ok(None)` when neither is set. A variable set to the empty
    /// string (or only whitespace) counts as not set, so `LOGBRAID_LEVEL=`
    /// falls through to `RUST_LOG`. A parse error names the variable.
    pub fn from_env() -> Result<Option<Directives>, FilterError> {
        let ours = std::env::var_os(LEVEL_ENV);
        let rust_log = std::env::var_os(RUST_LOG_ENV);
        Directives::from_env_values(ours.as_deref(), rust_log.as_deref())
    }

    /// [`Directives::from_env`] with the two variables' values given, so the
    /// logic is testable without touching the process environment.
    pub(crate) fn from_env_values(
        logbraid_level: Option<&OsStr>,
        rust_log: Option<&OsStr>,
    ) -> Result<Option<Directives>, FilterError> {
        let (name, value) = match (set(logbraid_level), set(rust_log)) {
            (Some(v), _) => (LEVEL_ENV, v),
            (None, Some(v)) => (RUST_LOG_ENV, v),
            (None, None) => return Ok(None),
        };
        let text = value.to_str().ok_or_else(|| FilterError {
            variable: Some(name),
            directive: None,
            reason: "the value is not valid UTF-8".to_string(),
        })?;
        Directives::parse(text).map(Some).map_err(|e| FilterError {
            variable: Some(name),
            ..e
        })
    }

    /// Whether a record from `target` at `level` passes.
    ///
    /// Without per-target directives this is one integer compare.
    #[inline]
    pub fn enabled(&self, target: &str, level: Level) -> bool {
        let level = level as u8;
        if level < self.max {
            return false;
        }
        if self.targets.is_empty() {
            // With no target directives `max` is the default threshold.
            return true;
        }
        level >= self.threshold_for(target)
    }

    /// Whether some directive names a target: otherwise the level alone
    /// decides, whatever the target.
    pub(crate) fn has_targets(&self) -> bool {
        !self.targets.is_empty()
    }

    /// The threshold that applies to `target`: the longest matching target
    /// directive, or the default.
    pub fn level_for(&self, target: &str) -> LevelFilter {
        match self.targets.iter().find(|(name, _)| covers(name, target)) {
            Some(&(_, level)) => level,
            None => self.default_level(),
        }
    }

    fn threshold_for(&self, target: &str) -> u8 {
        match self.targets.iter().find(|(name, _)| covers(name, target)) {
            Some(&(_, level)) => level.to_u8(),
            None => self.default,
        }
    }

    /// The threshold for targets no directive names.
    pub fn default_level(&self) -> LevelFilter {
        filter_from_u8(self.default)
    }

    /// The most verbose level any directive enables: a record below it is
    /// disabled for every target, so it can serve as a global fast-path
    /// threshold. [`LevelFilter::Off`] when every directive is `off`.
    pub fn max_level(&self) -> LevelFilter {
        filter_from_u8(self.max)
    }

    /// The per-target directives in canonical order (longest name first).
    pub fn targets(&self) -> impl Iterator<Item = (&str, LevelFilter)> + '_ {
        self.targets.iter().map(|(name, level)| (&**name, *level))
    }
}

impl FromStr for Directives {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Directives::parse(s)
    }
}

impl fmt::Display for Directives {
    /// The canonical form: the default level first, then every target
    /// directive as `target=level`, in lower case, comma separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(word(self.default_level()))?;
        for (name, level) in &self.targets {
            write!(f, ",{name}={}", word(*level))?;
        }
        Ok(())
    }
}

/// An environment value, unless it is missing or blank.
fn set(value: Option<&OsStr>) -> Option<&OsStr> {
    value.filter(|v| !v.to_string_lossy().trim().is_empty())
}

/// Whether the directive `name` covers `target`: equal, or a prefix that
/// ends at a path separator (`::` for Rust, `.` for Python).
fn covers(name: &str, target: &str) -> bool {
    match target.strip_prefix(name) {
        Some(rest) => rest.is_empty() || rest.starts_with("::") || rest.starts_with('.'),
        None => false,
    }
}

fn filter_from_u8(v: u8) -> LevelFilter {
    match Level::from_u8(v) {
        Some(level) => LevelFilter::Level(level),
        None => LevelFilter::Off,
    }
}

fn word(level: LevelFilter) -> &'static str {
    match level {
        LevelFilter::Off => "off",
        LevelFilter::Level(Level::Trace) => "trace",
        LevelFilter::Level(Level::Debug) => "debug",
        LevelFilter::Level(Level::Info) => "info",
        LevelFilter::Level(Level::Warn) => "warn",
        LevelFilter::Level(Level::Error) => "error",
        LevelFilter::Level(Level::Critical) => "critical",
    }
}

enum Item<'a> {
    Default(LevelFilter),
    Target(&'a str, LevelFilter),
}

fn parse_item(item: &str) -> Result<Item<'_>, FilterError> {
    let fail = |reason: String| FilterError {
        variable: None,
        directive: Some(item.to_string()),
        reason,
    };
    if item.contains('/') {
        return Err(fail(
            "filtering messages with \"/\" is not supported".to_string(),
        ));
    }
    let (name, level) = match item.split_once('=') {
        None => match item.parse::<LevelFilter>() {
            Ok(level) => return Ok(Item::Default(level)),
            Err(_) if item.trim_end_matches([':', '.']).is_empty() => {
                return Err(fail("not a level or a target name".to_string()));
            }
            Err(_) => (item, LevelFilter::TRACE),
        },
        Some((name, level)) => {
            if level.contains('=') {
                return Err(fail("more than one \"=\"".to_string()));
            }
            let level = level.trim();
            if level.is_empty() {
                return Err(fail("missing level after \"=\"".to_string()));
            }
            let level = level
                .parse::<LevelFilter>()
                .map_err(|e| fail(e.to_string()))?;
            (name.trim(), level)
        }
    };
    // `hyper::` means the same as `hyper`: matching is by path segment.
    let name = name.trim_end_matches([':', '.']);
    if name.is_empty() {
        return Err(fail("missing target name before \"=\"".to_string()));
    }
    if name.contains(char::is_whitespace) {
        return Err(fail(format!(
            "target {name:?} contains whitespace (separate directives with commas)"
        )));
    }
    Ok(Item::Target(name, level))
}

/// Error for a directive string that does not parse.
///
/// Displays as `invalid directive "db=loud": unknown level "loud": …`,
/// prefixed with the variable's name (`RUST_LOG: …`) when the string came
/// from the environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", self.variable.map(|v| format!("{v}: ")).unwrap_or_default(), self.describe())]
pub struct FilterError {
    variable: Option<&'static str>,
    directive: Option<String>,
    reason: String,
}

impl FilterError {
    /// The environment variable the string came from, if any.
    pub fn variable(&self) -> Option<&str> {
        self.variable
    }

    /// The offending directive, when one item is at fault.
    pub fn directive(&self) -> Option<&str> {
        self.directive.as_deref()
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The message without the variable's name.
    pub(crate) fn describe(&self) -> String {
        match &self.directive {
            Some(d) => format!("invalid directive {d:?}: {}", self.reason),
            None => self.reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Directives {
        Directives::parse(s).unwrap()
    }

    fn err(s: &str) -> String {
        Directives::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn empty_and_blank_strings_mean_info() {
        for s in ["", "   ", ",", " , ,"] {
            assert_eq!(d(s), Directives::default(), "{s:?}");
        }
        assert_eq!(d("").default_level(), LevelFilter::INFO);
        assert_eq!(d("").to_string(), "info");
    }

    #[test]
    fn bare_level_sets_the_default_and_the_last_one_wins() {
        let x = d("debug");
        assert_eq!(x.default_level(), LevelFilter::DEBUG);
        assert!(x.enabled("anything", Level::Debug));
        assert!(!x.enabled("anything", Level::Trace));
        assert_eq!(d("info,WARNING").default_level(), LevelFilter::WARN);
        assert_eq!(d("error,off").default_level(), LevelFilter::Off);
        assert_eq!(d("fatal").default_level(), LevelFilter::CRITICAL);
        assert_eq!(d("10").default_level(), LevelFilter::DEBUG);
    }

    #[test]
    fn the_example_from_the_documentation() {
        let x = d("info,my_crate::db=debug,hyper=warn,off");
        assert_eq!(x.default_level(), LevelFilter::Off);
        assert_eq!(
            x.targets().collect::<Vec<_>>(),
            vec![
                ("my_crate::db", LevelFilter::DEBUG),
                ("hyper", LevelFilter::WARN)
            ]
        );
        assert!(x.enabled("my_crate::db", Level::Debug));
        assert!(!x.enabled("my_crate::db", Level::Trace));
        assert!(!x.enabled("my_crate", Level::Critical));
        assert!(x.enabled("hyper::client", Level::Warn));
        assert!(!x.enabled("hyper::client", Level::Info));
        assert!(!x.enabled("other", Level::Critical));
        assert_eq!(x.max_level(), LevelFilter::DEBUG);
    }

    #[test]
    fn bare_target_means_trace() {
        let x = d("my_crate");
        assert_eq!(x.level_for("my_crate"), LevelFilter::TRACE);
        assert!(x.enabled("my_crate::a::b", Level::Trace));
        assert!(!x.enabled("other", Level::Debug));
        assert!(x.enabled("other", Level::Info));
        assert_eq!(x.max_level(), LevelFilter::TRACE);
        assert_eq!(x.to_string(), "info,my_crate=trace");
    }

    #[test]
    fn prefixes_match_only_at_a_separator() {
        let x = d("off,my_crate=debug");
        assert!(x.enabled("my_crate", Level::Debug));
        assert!(x.enabled("my_crate::db", Level::Debug));
        assert!(x.enabled("my_crate.db", Level::Debug));
        assert!(!x.enabled("my_crate2", Level::Critical));
        assert!(!x.enabled("my_crate_x::db", Level::Critical));
        assert!(!x.enabled("my_cr", Level::Critical));
        assert!(!x.enabled("other::my_crate", Level::Critical));
        assert!(!x.enabled("my_crate:db", Level::Critical));
        assert!(x.enabled("my_crate::", Level::Debug));
    }

    #[test]
    fn the_longest_matching_prefix_wins_regardless_of_order() {
        for s in [
            "a=error,a::b=info,a::b::c=trace",
            "a::b::c=trace,a::b=info,a=error",
            "a::b=info,a::b::c=trace,a=error",
        ] {
            let x = d(s);
            assert_eq!(x.level_for("a"), LevelFilter::ERROR, "{s}");
            assert_eq!(x.level_for("a::x"), LevelFilter::ERROR, "{s}");
            assert_eq!(x.level_for("a::b"), LevelFilter::INFO, "{s}");
            assert_eq!(x.level_for("a::b::cd"), LevelFilter::INFO, "{s}");
            assert_eq!(x.level_for("a::b::c::d"), LevelFilter::TRACE, "{s}");
            assert_eq!(x.level_for("b"), LevelFilter::INFO, "{s}");
            assert_eq!(x, d("info,a::b::c=trace,a::b=info,a=error"));
        }
        let python = d("warn,app=info,app.db=debug");
        assert_eq!(python.level_for("app.db.pool"), LevelFilter::DEBUG);
        assert_eq!(python.level_for("app.web"), LevelFilter::INFO);
        assert_eq!(python.level_for("application"), LevelFilter::WARN);
    }

    #[test]
    fn a_repeated_target_keeps_the_last_level() {
        let x = d("db=trace,db=error");
        assert_eq!(
            x.targets().collect::<Vec<_>>(),
            vec![("db", LevelFilter::ERROR)]
        );
        assert_eq!(x.max_level(), LevelFilter::INFO);
    }

    #[test]
    fn whitespace_is_tolerated_and_trailing_separators_dropped() {
        let x = d("  warn ,  my_crate::db = DEBUG ,hyper=Warn , ");
        assert_eq!(x, d("warn,my_crate::db=debug,hyper=warn"));
        assert_eq!(d("hyper::=debug"), d("hyper=debug"));
        assert_eq!(d("app.=debug"), d("app=debug"));
    }

    #[test]
    fn max_level_is_the_most_verbose_directive() {
        assert_eq!(d("warn").max_level(), LevelFilter::WARN);
        assert_eq!(d("warn,a=error").max_level(), LevelFilter::WARN);
        assert_eq!(d("off,a=error,b=debug").max_level(), LevelFilter::DEBUG);
        assert_eq!(d("off").max_level(), LevelFilter::Off);
        assert_eq!(d("off,a=off").max_level(), LevelFilter::Off);
        let x = d("off,a=off");
        for l in Level::ALL {
            assert!(!x.enabled("a", l));
            assert!(!x.enabled("b", l));
        }
    }

    #[test]
    fn target_off_silences_only_that_target() {
        let x = d("trace,noisy=off");
        assert!(!x.enabled("noisy::x", Level::Critical));
        assert!(x.enabled("quiet", Level::Trace));
        assert_eq!(x.max_level(), LevelFilter::TRACE);
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "",
            "off",
            "critical",
            "trace,a=off",
            "info,my_crate::db=debug,hyper=warn,off",
            "warn, app.db = debug, app=info, x",
            "WARNING,b=FATAL,aa=5",
        ] {
            let x = d(s);
            assert_eq!(d(&x.to_string()), x, "{s:?} -> {x}");
        }
        assert_eq!(
            d("info,my_crate::db=debug,hyper=warn,off").to_string(),
            "off,my_crate::db=debug,hyper=warn"
        );
        assert_eq!(
            d("WARNING,b=FATAL,aa=5").to_string(),
            "warn,aa=trace,b=critical"
        );
    }

    #[test]
    fn errors_name_the_directive_and_the_reason() {
        assert_eq!(
            err("info,my_crate=loud"),
            "invalid directive \"my_crate=loud\": unknown level \"loud\": expected one of \
             off, trace, debug, info, warn, warning, error, critical"
        );
        assert_eq!(
            err("=debug"),
            "invalid directive \"=debug\": missing target name before \"=\""
        );
        assert_eq!(
            err(" a = "),
            "invalid directive \"a =\": missing level after \"=\""
        );
        assert_eq!(
            err("a=b=c"),
            "invalid directive \"a=b=c\": more than one \"=\""
        );
        assert_eq!(
            err("info debug"),
            "invalid directive \"info debug\": target \"info debug\" contains whitespace \
             (separate directives with commas)"
        );
        assert_eq!(
            err("info/foo"),
            "invalid directive \"info/foo\": filtering messages with \"/\" is not supported"
        );
        let e = Directives::parse("x=nope").unwrap_err();
        assert_eq!(e.directive(), Some("x=nope"));
        assert_eq!(e.variable(), None);
    }

    #[test]
    fn environment_prefers_logbraid_level_and_names_the_variable() {
        fn os(s: &str) -> Option<&OsStr> {
            Some(OsStr::new(s))
        }
        assert_eq!(Directives::from_env_values(None, None), Ok(None));
        assert_eq!(Directives::from_env_values(os(""), os("  ")), Ok(None));
        assert_eq!(
            Directives::from_env_values(os("debug"), os("error")),
            Ok(Some(d("debug")))
        );
        assert_eq!(
            Directives::from_env_values(os(""), os("error")),
            Ok(Some(d("error")))
        );
        assert_eq!(
            Directives::from_env_values(None, os("a=trace")),
            Ok(Some(d("a=trace")))
        );
        let e = Directives::from_env_values(None, os("a=lots")).unwrap_err();
        assert_eq!(e.variable(), Some("RUST_LOG"));
        assert_eq!(
            e.to_string(),
            "RUST_LOG: invalid directive \"a=lots\": unknown level \"lots\": expected one of \
             off, trace, debug, info, warn, warning, error, critical"
        );
        let e = Directives::from_env_values(os("a=b=c"), os("info")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "LOGBRAID_LEVEL: invalid directive \"a=b=c\": more than one \"=\""
        );
    }

    #[cfg(unix)]
    #[test]
    fn environment_value_that_is_not_utf8_is_an_error() {
        use std::os::unix::ffi::OsStrExt;
        let bad = OsStr::from_bytes(b"info,\xff=debug");
        let e = Directives::from_env_values(Some(bad), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "LOGBRAID_LEVEL: the value is not valid UTF-8"
        );
    }

    #[test]
    fn odd_input_never_panics() {
        for s in [
            "=", "==", ",=,", "::", "..", "a=", "=a", "\u{0}", "é=debug", "a::b::", "🦀",
        ] {
            let _ = Directives::parse(s).map(|x| x.enabled("a", Level::Info));
        }
        assert_eq!(
            err("::"),
            "invalid directive \"::\": not a level or a target name"
        );
    }
}
