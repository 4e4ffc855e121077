//! Severity levels and the filter threshold built from them.

use std::fmt;
use std::str::FromStr;

/// The severity of a record, from the most verbose to the most severe.
///
/// The numeric value of each level is Python's `logging` number, so records
/// from Python (and Python's custom levels in between) map onto it directly:
/// TRACE 5, DEBUG 10, INFO 20, WARN 30, ERROR 40, CRITICAL 50.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    /// Very fine detail, usually disabled.
    Trace = 5,
    /// Information useful while debugging.
    Debug = 10,
    /// Normal operation.
    Info = 20,
    /// Something unexpected that the program survived.
    Warn = 30,
    /// An operation failed.
    Error = 40,
    /// The program, or a large part of it, cannot go on.
    Critical = 50,
}

impl Level {
    /// Every level, most verbose first.
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Critical,
    ];

    /// Upper-case name as the Rust facades print it (`WARN`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }

    /// Upper-case name as Python's `logging` prints it (`WARNING`).
    pub const fn python_name(self) -> &'static str {
        match self {
            Level::Warn => "WARNING",
            other => other.as_str(),
        }
    }

    /// Python's numeric level (`logging.INFO == 20`).
    pub const fn python_number(self) -> u8 {
        self as u8
    }

    /// The level a Python numeric level falls into: a custom level between
    /// two standard ones rounds down (25 is INFO), anything below DEBUG that
    /// is above zero is TRACE.
    pub const fn from_python(number: i64) -> Level {
        if number >= 50 {
            Level::Critical
        } else if number >= 40 {
            Level::Error
        } else if number >= 30 {
            Level::Warn
        } else if number >= 20 {
            Level::Info
        } else if number >= 10 {
            Level::Debug
        } else {
            Level::Trace
        }
    }

    pub(crate) const fn from_u8(v: u8) -> Option<Level> {
        match v {
            5 => Some(Level::Trace),
            10 => Some(Level::Debug),
            20 => Some(Level::Info),
            30 => Some(Level::Warn),
            40 => Some(Level::Error),
            50 => Some(Level::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Error returned when a string names no level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown level {0:?}: expected one of off, trace, debug, info, warn, warning, error, critical"
)]
pub struct ParseLevelError(pub String);

impl FromStr for Level {
    type Err = ParseLevelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match LevelFilter::from_str(s)? {
            LevelFilter::Off => Err(ParseLevelError(s.to_string())),
            LevelFilter::Level(l) => Ok(l),
        }
    }
}

/// A threshold: records at this level or more severe pass; `Off` passes none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LevelFilter {
    /// Nothing passes.
    Off,
    /// Records at this level or above pass.
    Level(Level),
}

impl LevelFilter {
    /// `TRACE`: everything passes.
    pub const TRACE: LevelFilter = LevelFilter::Level(Level::Trace);
    /// `DEBUG` and above.
    pub const DEBUG: LevelFilter = LevelFilter::Level(Level::Debug);
    /// `INFO` and above.
    pub const INFO: LevelFilter = LevelFilter::Level(Level::Info);
    /// `WARN` and above.
    pub const WARN: LevelFilter = LevelFilter::Level(Level::Warn);
    /// `ERROR` and above.
    pub const ERROR: LevelFilter = LevelFilter::Level(Level::Error);
    /// `CRITICAL` only.
    pub const CRITICAL: LevelFilter = LevelFilter::Level(Level::Critical);
    /// Nothing passes.
    pub const OFF: LevelFilter = LevelFilter::Off;

    /// Whether a record at `level` passes this threshold.
    #[inline]
    pub fn enables(self, level: Level) -> bool {
        match self {
            LevelFilter::Off => false,
            LevelFilter::Level(min) => level >= min,
        }
    }

    /// The threshold as one byte, for storing in an atomic: 0 passes
    /// everything, 255 nothing, otherwise the Python number of the level.
    #[inline]
    pub const fn to_u8(self) -> u8 {
        match self {
            LevelFilter::Off => u8::MAX,
            LevelFilter::Level(l) => l as u8,
        }
    }

    /// The more verbose of two thresholds.
    pub fn most_verbose(self, other: LevelFilter) -> LevelFilter {
        if self.to_u8() <= other.to_u8() {
            self
        } else {
            other
        }
    }
}

impl FromStr for LevelFilter {
    type Err = ParseLevelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let l = match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => return Ok(LevelFilter::Off),
            "trace" | "5" => Level::Trace,
            "debug" | "10" => Level::Debug,
            "info" | "20" => Level::Info,
            "warn" | "warning" | "30" => Level::Warn,
            "error" | "40" => Level::Error,
            "critical" | "fatal" | "50" => Level::Critical,
            _ => return Err(ParseLevelError(s.to_string())),
        };
        Ok(LevelFilter::Level(l))
    }
}

impl fmt::Display for LevelFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LevelFilter::Off => f.pad("OFF"),
            LevelFilter::Level(l) => fmt::Display::fmt(l, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_numbers_round_down_to_the_standard_level() {
        assert_eq!(Level::from_python(25), Level::Info);
        assert_eq!(Level::from_python(1), Level::Trace);
        assert_eq!(Level::from_python(60), Level::Critical);
        for l in Level::ALL {
            assert_eq!(Level::from_python(l.python_number() as i64), l);
            assert_eq!(Level::from_u8(l as u8), Some(l));
        }
    }

    #[test]
    fn filter_parses_and_orders() {
        assert_eq!("warning".parse::<LevelFilter>(), Ok(LevelFilter::WARN));
        assert_eq!("OFF".parse::<LevelFilter>(), Ok(LevelFilter::Off));
        assert!("loud".parse::<LevelFilter>().is_err());
        assert!(LevelFilter::INFO.enables(Level::Error));
        assert!(!LevelFilter::INFO.enables(Level::Debug));
        assert!(!LevelFilter::OFF.enables(Level::Critical));
        assert_eq!(
            LevelFilter::INFO.most_verbose(LevelFilter::DEBUG),
            LevelFilter::DEBUG
        );
    }
}
