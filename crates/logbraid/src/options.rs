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
        /// Every week, on Monday at midnight.
        Weekly => "weekly" | "week",
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_parse_and_errors_list_choices() {
        assert_eq!("drop_oldest".parse::<Overflow>(), Ok(Overflow::DropOldest));
        assert_eq!("ZSTD".parse::<Compression>(), Ok(Compression::Zstd));
        assert_eq!("midnight".parse::<Every>(), Ok(Every::Daily));
        let e = "sometimes".parse::<Overflow>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"sometimes\" is not one of: block, drop_newest, drop_oldest"
        );
    }
}
