//! Reading TOML into settings structs: serde does the walking, this module
//! makes its errors name the full key and say what is wrong in words.
//!
//! Every settings struct derives `Deserialize` with `deny_unknown_fields`;
//! [`read`] runs it under [`serde_path_to_error`], so each error carries
//! the dotted key it happened at (`file.max_bytes`). An unknown key gets a
//! suggestion: the closest key of the same table (optimal string alignment
//! distance of at most 2, from `strsim`), or a key of that exact name in
//! another table. The field lists come from the structs themselves
//! ([`fields_of`]), so a new setting cannot be forgotten here.
//!
//! The value types of the settings read the same way from a flag and from
//! the file: [`parsed`] applies a type's `FromStr` to a TOML string (the
//! error is the type's own), [`Size`] and [`Seconds`] take an integer or a
//! string with a unit.

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::error::ConfigError;
use super::units::{parse_duration, parse_size, NEGATIVE_DURATION, NEGATIVE_SIZE};

/// One table of a settings file and the keys it accepts: `""` for the top
/// level.
pub type Table = (&'static str, &'static [&'static str]);

/// Reads `text` into `T`. `tables` lists every table of the file with its
/// keys (from [`fields_of`]), for the suggestions of unknown keys.
pub fn read<T: DeserializeOwned>(text: &str, tables: &[Table]) -> Result<T, ConfigError> {
    // Parse first, so a syntax error is told apart from a bad value and
    // reported with its line and column.
    toml::Table::from_str(text).map_err(|e| ConfigError::syntax(text, &e))?;
    serde_path_to_error::deserialize(toml::Deserializer::new(text))
        .map_err(|e| value_error(e, tables))
}

/// The text of a settings file; an error that names the file when it
/// cannot be read.
pub fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, e))
}

fn value_error(e: serde_path_to_error::Error<toml::de::Error>, tables: &[Table]) -> ConfigError {
    let key = e.path().to_string();
    let message = e.inner().message().trim().to_string();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or_default();
        let table = key
            .strip_suffix(name)
            .map_or("", |t| t.trim_end_matches('.'));
        return ConfigError::unknown_key(key.clone(), suggest(tables, table, name));
    }
    let key = (key != ".").then_some(key);
    ConfigError::new(key, plain(&message))
}

/// serde's `invalid type: string "yes", expected a boolean` as `expected a
/// boolean, found string "yes"`; other messages as they are. (A TOML
/// date-time reaches serde as a map, and is reported as one.)
fn plain(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((found, expected)) = message
            .strip_prefix(prefix)
            .and_then(|m| m.rsplit_once(", expected "))
        {
            // TOML's names for serde's.
            let found = match found {
                "sequence" => "an array",
                other => other,
            };
            return format!("expected {expected}, found {found}");
        }
    }
    message.to_string()
}

/// The key an unknown `key` in `table` most likely meant.
fn suggest(tables: &[Table], table: &str, key: &str) -> Option<String> {
    let full = |t: &str, k: &str| {
        if t.is_empty() {
            k.to_string()
        } else {
            format!("{t}.{k}")
        }
    };
    let lower = key.to_ascii_lowercase();
    let own = tables
        .iter()
        .find(|(name, _)| *name == table)
        .map_or(&[][..], |(_, keys)| *keys);
    let close = own
        .iter()
        .map(|k| (strsim::osa_distance(&lower, k), *k))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d);
    if let Some((_, k)) = close {
        return Some(full(table, k));
    }
    tables
        .iter()
        .filter(|(name, _)| *name != table)
        .find(|(_, keys)| keys.contains(&lower.as_str()))
        .map(|(name, _)| full(name, &lower))
}

/// The field names of a struct that derives `Deserialize`, as its derive
/// declares them (after renames).
pub fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Fields(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("not a struct")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> Deserializer<'de> for &mut Fields {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut f = Fields(None);
    let _ = T::deserialize(&mut f);
    f.0.unwrap_or(&[])
}

/// A table only: for a settings struct (`[file]`), which serde's derive
/// would otherwise also fill from an array, field by field in order.
pub fn table<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    struct OnlyMaps<T>(PhantomData<T>, &'static str);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for OnlyMaps<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.1)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(OnlyMaps(PhantomData, "a table"))
}

/// [`table`] for an optional section.
pub fn opt_table<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    table(d).map(Some)
}

/// A string read with the target type's `FromStr`: its error is the
/// message (`"async" is not one of: non_blocking, sync`).
pub fn parsed<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(de::Error::custom)
}

/// A non-empty string.
pub fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Err(de::Error::custom("must not be empty"));
    }
    Ok(Some(text))
}

/// A path that is not empty.
pub fn path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    non_empty(d).map(|p| p.map(PathBuf::from))
}

/// A whole number from `MIN` to `MAX`: an integer in the file, digits in
/// a flag, the range in the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bounded<const MIN: u64, const MAX: u64>(pub u64);

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    fn check(n: i128) -> Result<Self, String> {
        if (i128::from(MIN)..=i128::from(MAX)).contains(&n) {
            Ok(Bounded(n as u64))
        } else {
            Err(format!("{n} is out of range: expected {MIN} to {MAX}"))
        }
    }
}

impl<const MIN: u64, const MAX: u64> FromStr for Bounded<MIN, MAX> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().parse::<i128>() {
            Ok(n) => Self::check(n),
            Err(_) => Err(format!("{s:?} is not a whole number")),
        }
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const MIN: u64, const MAX: u64>;
        impl<const MIN: u64, const MAX: u64> Visitor<'_> for V<MIN, MAX> {
            type Value = Bounded<MIN, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                Bounded::check(n.into()).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Bounded::check(n.into()).map_err(E::custom)
            }
        }
        d.deserialize_any(V::<MIN, MAX>)
    }
}

/// A value written in a file as an integer or as text: the text is read
/// by the type's `FromStr` (the same as a flag), the integer by `from_int`.
trait IntOrText: FromStr<Err: fmt::Display> {
    /// What the error says was expected.
    const EXPECTING: &'static str;
    /// The value of an integer in the file.
    fn from_int(n: i64) -> Result<Self, String>;
}

fn int_or_text<'de, D: Deserializer<'de>, T: IntOrText>(d: D) -> Result<T, D::Error> {
    struct V<T>(PhantomData<T>);
    impl<T: IntOrText> Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(T::EXPECTING)
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
            T::from_int(n).map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
            let n = i64::try_from(n).map_err(|_| E::custom(format!("{n} is too large")))?;
            T::from_int(n).map_err(E::custom)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            s.parse().map_err(E::custom)
        }
    }
    d.deserialize_any(V(PhantomData))
}

/// Unix permissions: octal digits in a flag or a TOML string (`"0640"`,
/// `"640"`), or a TOML integer written in octal (`0o640`); at most `0o777`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileMode(pub u32);

impl FileMode {
    fn check(n: i64) -> Result<FileMode, String> {
        u32::try_from(n)
            .ok()
            .filter(|&m| m <= 0o777)
            .map(FileMode)
            .ok_or_else(|| format!("{n:#o} is not a file mode: expected 0 to 0o777"))
    }
}

impl FromStr for FileMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let digits = t.strip_prefix("0o").unwrap_or(t);
        i64::from_str_radix(digits, 8)
            .map_err(|_| format!("{s:?} is not a file mode: expected octal digits such as 0640"))
            .and_then(FileMode::check)
    }
}

impl IntOrText for FileMode {
    const EXPECTING: &'static str = "a file mode (\"0640\", or 0o640)";
    fn from_int(n: i64) -> Result<Self, String> {
        FileMode::check(n)
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        int_or_text(d)
    }
}

/// A size in bytes: an integer, or a string with a unit (`"100MiB"`, see
/// [`parse_size`]). Reads the same from a flag (`FromStr`) and from the
/// file (integer or string).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = super::units::ParseSizeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_size(s).map(Size)
    }
}

impl IntOrText for Size {
    const EXPECTING: &'static str =
        "a size (an integer number of bytes or a string such as \"4MiB\")";
    fn from_int(n: i64) -> Result<Self, String> {
        u64::try_from(n)
            .map(Size)
            .map_err(|_| format!("{n} is not a size: {NEGATIVE_SIZE}"))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        int_or_text(d)
    }
}

/// A duration: an integer number of seconds, or a string with units
/// (`"7d"`, `"1h30m"`, see [`parse_duration`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = super::units::ParseDurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(Seconds)
    }
}

impl IntOrText for Seconds {
    const EXPECTING: &'static str =
        "a duration (an integer number of seconds or a string such as \"7d\")";
    fn from_int(n: i64) -> Result<Self, String> {
        u64::try_from(n)
            .map(|s| Seconds(Duration::from_secs(s)))
            .map_err(|_| format!("{n} is not a duration: {NEGATIVE_DURATION}"))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        int_or_text(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Two {
        first: u8,
        #[serde(rename = "second_one")]
        second: u8,
    }

    #[test]
    fn fields_come_from_the_derive() {
        assert_eq!(fields_of::<Two>(), ["first", "second_one"]);
        assert!(fields_of::<u32>().is_empty());
    }

    #[test]
    fn serde_messages_read_as_expected_then_found() {
        assert_eq!(
            plain("invalid type: string \"yes\", expected a boolean"),
            "expected a boolean, found string \"yes\""
        );
        assert_eq!(plain("must not be empty"), "must not be empty");
    }

    #[test]
    fn file_modes_are_octal_everywhere() {
        assert_eq!("0640".parse::<FileMode>(), Ok(FileMode(0o640)));
        assert_eq!("600".parse::<FileMode>(), Ok(FileMode(0o600)));
        assert_eq!("0o755".parse::<FileMode>(), Ok(FileMode(0o755)));
        assert!("0999"
            .parse::<FileMode>()
            .unwrap_err()
            .contains("octal digits"));
        assert!("01000"
            .parse::<FileMode>()
            .unwrap_err()
            .contains("0 to 0o777"));
        let t: toml::Table = "a = 0o640\nb = \"0600\"".parse().unwrap();
        assert_eq!(
            FileMode::deserialize(t["a"].clone()).unwrap(),
            FileMode(0o640)
        );
        assert_eq!(
            FileMode::deserialize(t["b"].clone()).unwrap(),
            FileMode(0o600)
        );
    }

    #[test]
    fn bounded_integers_read_the_same_from_text_and_toml() {
        type B = Bounded<1, 10>;
        assert_eq!("7".parse::<B>(), Ok(Bounded(7)));
        assert_eq!(
            "0".parse::<B>().unwrap_err(),
            "0 is out of range: expected 1 to 10"
        );
        assert_eq!("x".parse::<B>().unwrap_err(), "\"x\" is not a whole number");
        let t: toml::Table = "a = 11".parse().unwrap();
        let e = B::deserialize(t["a"].clone()).unwrap_err();
        assert_eq!(e.message(), "11 is out of range: expected 1 to 10");
    }

    #[test]
    fn suggestions_prefer_the_same_table_then_the_same_name() {
        let tables: [Table; 2] = [("", &["level", "file"]), ("file", &["path", "max_bytes"])];
        assert_eq!(suggest(&tables, "", "levle"), Some("level".into()));
        assert_eq!(
            suggest(&tables, "file", "MaxBytes"),
            Some("file.max_bytes".into())
        );
        assert_eq!(suggest(&tables, "", "path"), Some("file.path".into()));
        assert_eq!(suggest(&tables, "", "verbosity"), None);
    }
}
