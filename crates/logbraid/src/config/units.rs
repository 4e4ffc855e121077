//! Sizes (`"4MiB"`) and durations (`"1h30m"`) as people write them.

use std::time::Duration;

pub(super) const SIZE_EXPECTED: &str =
    "expected an integer number of bytes or a number followed by B, KB, MB, GB, KiB, MiB, GiB";
pub(super) const NEGATIVE_SIZE: &str = "a size cannot be negative";
const DURATION_EXPECTED: &str = "expected an integer number of seconds or numbers followed by \
     ms, s, m, h, d or w (such as 90s, 15m, 1h30m, 7d)";
pub(super) const NEGATIVE_DURATION: &str = "a duration cannot be negative";

/// Error from [`parse_size`]; the message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseSizeError(String);

/// Error from [`parse_duration`]; the message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseDurationError(String);

/// Parses a size in bytes: an integer (`"1048576"`), or a number and a
/// unit, with or without a space between (`"4MiB"`, `"1.5 GB"`).
///
/// | unit | bytes |
/// |---|---|
/// | `B` | 1 |
/// | `KB`, `MB`, `GB` | 1000, 1000², 1000³ |
/// | `KiB`, `MiB`, `GiB` | 1024, 1024², 1024³ |
///
/// Units are case-insensitive. A fractional number is accepted when the
/// result is a whole number of bytes (`"1.5KiB"` is 1536, `"1.5B"` is an
/// error).
///
/// ```
/// use logbraid::config::parse_size;
/// assert_eq!(parse_size("4MiB"), Ok(4 * 1024 * 1024));
/// assert_eq!(parse_size("1.5 GB"), Ok(1_500_000_000));
/// ```
pub fn parse_size(input: &str) -> Result<u64, ParseSizeError> {
    let fail = |why: &str| ParseSizeError(format!("{input:?} is not a size: {why}"));
    let s = input.trim();
    if s.starts_with('-') {
        return Err(fail(NEGATIVE_SIZE));
    }
    let (whole, frac, rest) = split_number(s).ok_or_else(|| fail(SIZE_EXPECTED))?;
    let unit: u128 = match rest.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(fail(SIZE_EXPECTED)),
    };
    let too_large = || {
        ParseSizeError(format!(
            "{input:?} is too large: the largest size is {} bytes",
            u64::MAX
        ))
    };
    let whole = digits_value(whole)
        .and_then(|w| w.checked_mul(unit))
        .ok_or_else(too_large)?;
    let frac = frac.trim_end_matches('0');
    let frac_bytes = if frac.is_empty() {
        0
    } else {
        // A unit is at most 2^30, so more than 30 significant decimals can
        // never make a whole number of bytes.
        let scale = if frac.len() <= 30 {
            10u128.pow(frac.len() as u32)
        } else {
            0
        };
        let numerator = digits_value(frac).and_then(|f| f.checked_mul(unit));
        match numerator {
            Some(n) if scale != 0 && n % scale == 0 => n / scale,
            _ => {
                return Err(ParseSizeError(format!(
                    "{input:?} is not a whole number of bytes"
                )))
            }
        }
    };
    let total = whole.checked_add(frac_bytes).ok_or_else(too_large)?;
    u64::try_from(total).map_err(|_| too_large())
}

/// Parses a duration: an integer number of seconds (`"3600"`), or one or
/// more integers each followed by a unit (`"90s"`, `"15m"`, `"1h30m"`,
/// `"2w"`), spaces allowed between the parts.
///
/// | unit | meaning |
/// |---|---|
/// | `ms` | milliseconds |
/// | `s` | seconds |
/// | `m` | minutes |
/// | `h` | hours |
/// | `d` | days of 24 hours |
/// | `w` | weeks of 7 days |
///
/// Units are lower case only, so `m` (minutes) cannot be misread as months.
///
/// ```
/// use logbraid::config::parse_duration;
/// use std::time::Duration;
/// assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, ParseDurationError> {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let fail = |why: &str| ParseDurationError(format!("{input:?} is not a duration: {why}"));
    let too_large = || ParseDurationError(format!("{input:?} is too large for a duration"));
    let s = input.trim();
    if s.starts_with('-') {
        return Err(fail(NEGATIVE_DURATION));
    }
    if s.is_empty() {
        return Err(fail(DURATION_EXPECTED));
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(fail(DURATION_EXPECTED));
        }
        let n = digits_value(&rest[..digits_end]).ok_or_else(too_large)?;
        let after = rest[digits_end..].trim_start();
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let nanos_per_unit: u128 = match &after[..unit_end] {
            // A bare number is seconds, but only as the whole input.
            "" if digits_end == rest.len() && rest.len() == s.len() => NANOS_PER_SEC,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3_600 * NANOS_PER_SEC,
            "d" => 86_400 * NANOS_PER_SEC,
            "w" => 604_800 * NANOS_PER_SEC,
            _ => return Err(fail(DURATION_EXPECTED)),
        };
        total = n
            .checked_mul(nanos_per_unit)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(too_large)?;
        rest = after[unit_end..].trim_start();
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).map_err(|_| too_large())?;
    Ok(Duration::new(secs, (total % NANOS_PER_SEC) as u32))
}

/// Splits `"12.5 MiB"` into `("12", "5", " MiB")`. `None` unless it starts
/// with a digit; a `.` must have digits on both sides.
fn split_number(s: &str) -> Option<(&str, &str, &str)> {
    let whole_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if whole_end == 0 {
        return None;
    }
    let (whole, rest) = s.split_at(whole_end);
    match rest.strip_prefix('.') {
        None => Some((whole, "", rest)),
        Some(after) => {
            let frac_end = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            if frac_end == 0 {
                return None;
            }
            Some((whole, &after[..frac_end], &after[frac_end..]))
        }
    }
}

/// The value of a string of ASCII digits, `None` on overflow.
fn digits_value(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |acc, b| {
        acc.checked_mul(10)?.checked_add(u128::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn sizes_in_every_unit() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("7B"), Ok(7));
        assert_eq!(parse_size("2KB"), Ok(2_000));
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_size("4GB"), Ok(4_000_000_000));
        assert_eq!(parse_size("2KiB"), Ok(2_048));
        assert_eq!(parse_size("3MiB"), Ok(3 * MIB));
        assert_eq!(parse_size("4GiB"), Ok(4 * 1024 * MIB));
        assert_eq!(parse_size(" 100 mib "), Ok(100 * MIB));
        assert_eq!(parse_size("1kb"), Ok(1000));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("1.5 GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("0.5MiB"), Ok(MIB / 2));
        assert_eq!(parse_size("2.000B"), Ok(2));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn size_errors() {
        let e = |s: &str| parse_size(s).unwrap_err().to_string();
        let generic = |s: &str| format!("{s:?} is not a size: {SIZE_EXPECTED}");
        for s in [
            "",
            "  ",
            "12 parsecs",
            "MiB",
            "4M",
            "4 KiB B",
            "1e6",
            ".5MiB",
            "5.MiB",
            "1_000",
            "+5",
            "4MiB!",
            "٣KB",
        ] {
            assert_eq!(e(s), generic(s), "{s:?}");
        }
        assert_eq!(
            e("-5MB"),
            "\"-5MB\" is not a size: a size cannot be negative"
        );
        assert_eq!(e("1.5B"), "\"1.5B\" is not a whole number of bytes");
        assert_eq!(e("0.0001KB"), "\"0.0001KB\" is not a whole number of bytes");
        assert_eq!(
            e("1.0000000000000000000000000000000000000000001GiB"),
            "\"1.0000000000000000000000000000000000000000001GiB\" is not a whole number of bytes"
        );
        assert_eq!(
            e("18446744073709551616"),
            "\"18446744073709551616\" is too large: the largest size is 18446744073709551615 bytes"
        );
        assert_eq!(
            e("20000000000GB"),
            "\"20000000000GB\" is too large: the largest size is 18446744073709551615 bytes"
        );
        assert!(e(&"9".repeat(60)).contains("is too large"));
    }

    #[test]
    fn durations_in_every_unit() {
        let secs = Duration::from_secs;
        assert_eq!(parse_duration("0"), Ok(secs(0)));
        assert_eq!(parse_duration("3600"), Ok(secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(secs(30)));
        assert_eq!(parse_duration("15m"), Ok(secs(900)));
        assert_eq!(parse_duration("12h"), Ok(secs(43_200)));
        assert_eq!(parse_duration("7d"), Ok(secs(604_800)));
        assert_eq!(parse_duration("2w"), Ok(secs(1_209_600)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5_400)));
        assert_eq!(parse_duration(" 1d 12h "), Ok(secs(129_600)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1_500)));
        assert_eq!(parse_duration("5 m"), Ok(secs(300)));
        assert_eq!(parse_duration("18446744073709551615"), Ok(secs(u64::MAX)));
    }

    #[test]
    fn duration_errors() {
        let e = |s: &str| parse_duration(s).unwrap_err().to_string();
        let generic = |s: &str| format!("{s:?} is not a duration: {DURATION_EXPECTED}");
        for s in [
            "",
            " ",
            "7 fortnights",
            "d",
            "7D",
            "7M",
            "1.5h",
            "1h 30",
            "30 1h",
            "7days",
            "h7",
            "7d!",
            "+7d",
            "1_000s",
        ] {
            assert_eq!(e(s), generic(s), "{s:?}");
        }
        assert_eq!(
            e("-5s"),
            "\"-5s\" is not a duration: a duration cannot be negative"
        );
        assert_eq!(
            e("18446744073709551616"),
            "\"18446744073709551616\" is too large for a duration"
        );
        assert_eq!(
            e("99999999999999999w"),
            "\"99999999999999999w\" is too large for a duration"
        );
        assert!(e(&"9".repeat(60)).contains("is too large"));
    }
}
