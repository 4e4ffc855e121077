//! Small option types shared by the builder, the sinks and the TOML config.
//!
//! Each parses from the lower-case word used in configuration files and on
//! the command line, and its error lists the accepted words.

use std::fmt;
use std::str::FromStr;

/// Error for a word that names none of an option's choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not one of: {choices}")]
pub struct ParseOptionError {
    /// What was given.
    pub value: String,
    /// The accepted words, comma separated.
    pub choices: &'static str,
}

macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $word:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The word that names this choice.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl FromStr for $name {
            type Err = ParseOptionError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($word $(| $alias)* => Ok($name::$variant),)+
                    _ => Err(ParseOptionError {
                        value: s.to_string(),
                        choices: concat!($($word, ", "),+).trim_end_matches(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

word_enum! {
    /// What the caller does when the non-blocking queue is full.
    Overflow {
        /// Wait for room: nothing is lost (default).
        Block => "block",
        /// Discard the record being logged, count it.
        DropNewest => "drop_newest" | "drop-newest",
        /// Discard the oldest queued records to make room, count them.
        DropOldest => "drop_oldest" | "drop-oldest",
    }
}

#[allow(clippy::derivable_impls)] // the enum is defined by a macro
impl Default for Overflow {
    fn default() -> Self {
        Overflow::Block
    }
}

word_enum! {
    /// How records get from the caller to the sinks.
    Mode {
        /// The caller hands records to a bounded queue and a writer thread
        /// writes them (default).
        NonBlocking => "non_blocking" | "non-blocking",
        /// The caller formats and writes under a lock and flushes every
        /// record; no background thread. For scripts and debugging.
        Sync => "sync",
    }
}

#[allow(clippy::derivable_impls)] // the enum is defined by a macro
impl Default for Mode {
    fn default() -> Self {
        Mode::NonBlocking
    }
}

word_enum! {
    /// Compression of rotated files.
    Compression {
        /// Leave rotated files as they are.
        None => "none" | "off",
        /// gzip (`.gz`), readable by every tool.
        Gzip => "gzip" | "gz",
        /// zstd (`.zst`): faster and smaller.
        Zstd => "zstd" | "zst",
    }
}

impl Compression {
    /// File-name extension including the dot, empty for `None`.
    pub const fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }
}

word_enum! {
    /// Time trigger for rotation: a new file at the start of every period.
    Every {
        /// Every minute.
        Minutely => "minutely" | "minute",
        /// Every hour.
        Hourly => "hourly" | "hour",
        /// Every day at midnight.
        Daily => "daily" | "day" | "midnight",
        /// Every week at midnight, on Monday unless the sink names another
        /// day (`RollingFileBuilder::week_starts`).
        Weekly => "weekly" | "week",
    }
}

word_enum! {
    /// A day of the week: the day weekly rotation starts a new file.
    Weekday {
        /// Monday (default), as ISO 8601 weeks start.
        Monday => "monday" | "mon",
        /// Tuesday.
        Tuesday => "tuesday" | "tue",
        /// Wednesday.
        Wednesday => "wednesday" | "wed",
        /// Thursday.
        Thursday => "thursday" | "thu",
        /// Friday.
        Friday => "friday" | "fri",
        /// Saturday.
        Saturday => "saturday" | "sat",
        /// Sunday.
        Sunday => "sunday" | "sun",
    }
}

impl Weekday {
    /// Days after Monday: 0 for Monday … 6 for Sunday, as Python's
    /// `TimedRotatingFileHandler` numbers them in `when="W0"` … `"W6"`.
    pub const fn days_from_monday(self) -> u8 {
        match self {
            Weekday::Monday => 0,
            Weekday::Tuesday => 1,
            Weekday::Wednesday => 2,
            Weekday::Thursday => 3,
            Weekday::Friday => 4,
            Weekday::Saturday => 5,
            Weekday::Sunday => 6,
        }
    }

    /// The day `n` days after Monday (`0..=6`), as in `when="W<n>"`.
    pub const fn from_days_from_monday(n: u8) -> Option<Weekday> {
        Some(match n {
            0 => Weekday::Monday,
            1 => Weekday::Tuesday,
            2 => Weekday::Wednesday,
            3 => Weekday::Thursday,
            4 => Weekday::Friday,
            5 => Weekday::Saturday,
            6 => Weekday::Sunday,
            _ => return None,
        })
    }
}

#[allow(clippy::derivable_impls)] // the enum is defined by a macro
impl Default for Weekday {
    fn default() -> Self {
        Weekday::Monday
    }
}

/// A rotation period as Python's `TimedRotatingFileHandler` writes `when`
/// — `"M"`, `"H"`, `"D"`, `"midnight"`, `"W0"` (Monday) … `"W6"` (Sunday),
/// any case — or as one of [`Every`]'s words (`"weekly"` starts on Monday).
///
/// ```
/// use logbraid::{Every, When, Weekday};
/// let w: When = "W6".parse().unwrap();
/// assert_eq!((w.every, w.week_starts), (Every::Weekly, Weekday::Sunday));
/// assert!("W7".parse::<When>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct When {
    /// The period.
    pub every: Every,
    /// The day a weekly period starts on.
    pub week_starts: Weekday,
}

impl FromStr for When {
    type Err = ParseOptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let w = s.trim();
        let upper = w.to_ascii_uppercase();
        let weekly = |day| When {
            every: Every::Weekly,
            week_starts: day,
        };
        if let Some(day) = upper.strip_prefix('W').and_then(|d| d.parse::<u8>().ok()) {
            return Weekday::from_days_from_monday(day)
                .map(weekly)
                .ok_or_else(|| ParseOptionError {
                    value: w.to_string(),
                    choices: WHEN_CHOICES,
                });
        }
        let every = match upper.as_str() {
            "M" => Every::Minutely,
            "H" => Every::Hourly,
            "D" => Every::Daily,
            _ => w.parse::<Every>().map_err(|e| ParseOptionError {
                choices: WHEN_CHOICES,
                ..e
            })?,
        };
        Ok(When {
            every,
            week_starts: Weekday::Monday,
        })
    }
}

const WHEN_CHOICES: &str =
    "M, H, D, midnight, W0 (Monday) to W6 (Sunday), minutely, hourly, daily, weekly";

word_enum! {
    /// How rotated files are named.
    Naming {
        /// Like Python's `RotatingFileHandler`: `app.log.1` is the newest
        /// backup, `app.log.N` the oldest (default).
        Python => "python" | "index",
        /// The time of rotation in the name: `app.log.2026-11-22_10-00-00`,
        /// with `.1`, `.2`… added if that name is taken. Rotation renames one
        /// file only.
        Timestamp => "timestamp" | "time",
    }
}

#[allow(clippy::derivable_impls)] // the enum is defined by a macro
impl Default for Naming {
    fn default() -> Self {
        Naming::Python
    }
}

word_enum! {
    /// Whether the console uses colour.
    ColorChoice {
        /// When the stream is a terminal and `NO_COLOR` is unset (default).
        Auto => "auto",
        /// Always.
        Always => "always",
        /// Never.
        Never => "never",
    }
}

#[allow(clippy::derivable_impls)] // the enum is defined by a macro
impl Default for ColorChoice {
    fn default() -> Self {
        ColorChoice::Auto
    }
}

word_enum! {
    /// When the files a collector writes reach the disk, and so what its
    /// acknowledgements promise.
    SyncMode {
        /// Written to the file (the page cache) before the acknowledgement:
        /// safe when the process dies, not when the machine does (default).
        None => "none",
        /// fdatasynced, with the checkpoint and the directory entries,
        /// before the acknowledgement: safe across a power loss too.
        Data => "data",
    }
}

#[allow(clippy::derivable_impls)] // the enum is defined by a macro
impl Default for SyncMode {
    fn default() -> Self {
        SyncMode::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_parse_and_errors_list_choices() {
        assert_eq!("drop_oldest".parse::<Overflow>(), Ok(Overflow::DropOldest));
        assert_eq!("ZSTD".parse::<Compression>(), Ok(Compression::Zstd));
        assert_eq!("midnight".parse::<Every>(), Ok(Every::Daily));
        assert_eq!(
            "w3".parse::<When>().map(|w| (w.every, w.week_starts)),
            Ok((Every::Weekly, Weekday::Thursday))
        );
        assert_eq!("h".parse::<When>().map(|w| w.every), Ok(Every::Hourly));
        assert_eq!(
            "fortnightly".parse::<When>().unwrap_err().to_string(),
            "\"fortnightly\" is not one of: M, H, D, midnight, W0 (Monday) to W6 (Sunday), \
             minutely, hourly, daily, weekly"
        );
        let e = "sometimes".parse::<Overflow>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"sometimes\" is not one of: block, drop_newest, drop_oldest"
        );
    }
}
