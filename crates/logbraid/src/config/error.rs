//! The error of a setting: which key, and what is wrong with it.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub(super) enum Kind {
    Value,
    UnknownKey { hint: Option<String> },
    Syntax { line: usize, column: usize },
    Io,
}

/// An error in a configuration: which key, and what is wrong with it.
///
/// Displays as `file.max_bytes: "12 parsecs" is not a size: …`, as
/// `unknown key "file.max_byte"; did you mean "file.max_bytes"?`, or, for
/// TOML syntax, `TOML syntax error at line 3, column 9: …`; prefixed with
/// the file's path when it came from [`Config::from_file`].
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The full dotted key at fault (`file.max_bytes`), or the environment
    /// variable for [`Config::merge_env`]; `None` for errors of the whole
    /// file (syntax, reading).
    pub key: Option<String>,
    /// What is wrong, without the key.
    pub reason: String,
    pub(super) kind: Kind,
    pub(super) file: Option<PathBuf>,
    #[source]
    pub(super) source: Option<io::Error>,
}

impl ConfigError {
    /// An error about the value of `key`, for code that validates a
    /// [`Config`] further (a format string that does not parse, say) and
    /// wants its errors to look like these.
    pub fn new(key: Option<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key,
            reason: reason.into(),
            kind: Kind::Value,
            file: None,
            source: None,
        }
    }

    pub(super) fn unknown_key(key: String, hint: Option<String>) -> Self {
        let reason = match &hint {
            Some(h) => format!("unknown key; did you mean {h:?}?"),
            None => "unknown key".to_string(),
        };
        ConfigError {
            key: Some(key),
            reason,
            kind: Kind::UnknownKey { hint },
            file: None,
            source: None,
        }
    }

    pub(super) fn syntax(text: &str, e: &toml::de::Error) -> Self {
        let (line, column) = e
            .span()
            .map_or((1, 1), |span| line_column(text, span.start));
        let message = e.message().trim().replace('\n', "; ");
        ConfigError {
            key: None,
            reason: format!("TOML syntax error at line {line}, column {column}: {message}"),
            kind: Kind::Syntax { line, column },
            file: None,
            source: None,
        }
    }

    /// The file `path` could not be read.
    pub(super) fn io(path: &Path, e: io::Error) -> Self {
        ConfigError {
            key: None,
            reason: format!("cannot read the file: {e}"),
            kind: Kind::Io,
            file: Some(path.to_path_buf()),
            source: Some(e),
        }
    }

    /// The same error, said of the configuration file `path`.
    pub fn in_file(self, path: &Path) -> Self {
        ConfigError {
            file: Some(path.to_path_buf()),
            ..self
        }
    }

    /// For a TOML syntax error, where it is: line and column, from 1.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        match self.kind {
            Kind::Syntax { line, column } => Some((line, column)),
            _ => None,
        }
    }

    /// The configuration file, when the error came from
    /// [`Config::from_file`].
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if let Some(file) = &self.file {
            out.push_str(&format!("{}: ", file.display()));
        }
        match (&self.kind, &self.key) {
            (Kind::UnknownKey { hint }, Some(key)) => {
                out.push_str(&format!("unknown key {key:?}"));
                if let Some(h) = hint {
                    out.push_str(&format!("; did you mean {h:?}?"));
                }
            }
            (_, Some(key)) => out.push_str(&format!("{key}: {}", self.reason)),
            (_, None) => out.push_str(&self.reason),
        }
        out
    }
}

/// Line and column (both from 1, the column in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é = x", 3), (1, 3));
        assert_eq!(line_column("é", 1), (1, 1));
        assert_eq!(line_column("x", 99), (1, 2));
    }
}
