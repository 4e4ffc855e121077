//! Timestamps read from the outside: syslog's RFC 3339 (RFC 5424) and the
//! civil UTC times of RFC 3164 headers.

use jiff::civil::{Date, Time};
use jiff::fmt::temporal::DateTimeParser;
use jiff::tz::{Offset, TimeZone};

use super::timestamp_ns;

/// Nanoseconds since the epoch of an RFC 3339 timestamp,
/// `YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)` (`t` and `z` in lower case too,
/// up to nine fractional digits). `None` for anything else, including an
/// impossible date, a missing offset, a space for the `T`, or RFC 9557's
/// bracketed annotations.
pub fn parse_rfc3339(text: &[u8]) -> Option<i64> {
    // jiff's parser takes a superset (ISO 8601 and RFC 9557 forms); this
    // keeps to RFC 3339's shape.
    let shaped = text.len() >= 20
        && text.get(4) == Some(&b'-')
        && text.get(7) == Some(&b'-')
        && matches!(text.get(10), Some(b'T' | b't'))
        && text.get(13) == Some(&b':')
        && text.get(16) == Some(&b':')
        && match text[text.len() - 1] {
            b'Z' | b'z' => true,
            _ => {
                let tail = &text[text.len() - 6..];
                matches!(tail[0], b'+' | b'-') && tail[3] == b':'
            }
        };
    if !shaped {
        return None;
    }
    // Syslog and OTLP intake parse one per record: the usual form takes a
    // few integer steps; anything unusual (a leap second, an offset past
    // 23:59, a shape the fast path does not take) goes to jiff.
    fast_rfc3339(text).or_else(|| jiff_rfc3339(text))
}

fn jiff_rfc3339(text: &[u8]) -> Option<i64> {
    static PARSER: DateTimeParser = DateTimeParser::new();
    let t = PARSER.parse_timestamp(text).ok()?;
    i64::try_from(t.as_nanosecond()).ok()
}

/// `YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)` with a real date, seconds up to
/// 59 and an offset up to 23:59; `None` for anything else (which
/// [`jiff_rfc3339`] then decides).
fn fast_rfc3339(text: &[u8]) -> Option<i64> {
    fn num(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    }
    let year = num(&text[..4])?;
    let month = num(&text[5..7])?;
    let day = num(&text[8..10])?;
    let (hour, minute, second) = (
        num(&text[11..13])?,
        num(&text[14..16])?,
        num(&text[17..19])?,
    );
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if year == 0 || day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let [b'.', tail @ ..] = rest {
        let digits = tail.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(&tail[..digits])? * 10u32.pow(9 - digits as u32);
        rest = &tail[digits..];
    }
    let offset_s = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (num(&[*h1, *h2])?, num(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let s = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -s
            } else {
                s
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_s;
    secs.checked_mul(super::NANOS_PER_SEC)?
        .checked_add(i64::from(nanos))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (an era-based count:
/// 400-year eras of 146,097 days, years starting in March so the leap day
/// is the last of the year).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Nanoseconds since the epoch of a civil time in UTC; `None` when the
/// date or time does not exist (February 30th, hour 24). A leap second
/// (`second` 60) is the second after 59.
pub fn utc_ns(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
) -> Option<i64> {
    let leap = second == 60;
    let date = Date::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
    )
    .ok()?;
    let time = Time::new(
        i8::try_from(hour).ok()?,
        i8::try_from(minute).ok()?,
        i8::try_from(if leap { 59 } else { second }).ok()?,
        i32::try_from(nanos).ok()?,
    )
    .ok()?;
    let t = TimeZone::UTC
        .to_ambiguous_timestamp(date.to_datetime(time))
        .compatible()
        .ok()?;
    i64::try_from(t.as_nanosecond())
        .ok()?
        .checked_add(if leap { super::NANOS_PER_SEC } else { 0 })
}

/// The calendar year (UTC) of an instant in nanoseconds since the epoch.
pub fn utc_year(ns: i64) -> i64 {
    i64::from(Offset::UTC.to_datetime(timestamp_ns(ns)).year())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: i64 = super::super::NANOS_PER_SEC;

    /// The fast path agrees with jiff wherever it answers, over dates in
    /// every month of four centuries' worth of years, fractions of every
    /// length and offsets both ways, and answers for the usual shapes.
    #[test]
    fn the_fast_path_agrees_with_jiff() {
        let mut answered = 0;
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for i in 0..100_000u64 {
            let year = if i % 3 == 0 {
                1600 + next(800)
            } else {
                1 + next(9999)
            };
            let frac = match next(11) {
                0 => String::new(),
                n => format!(
                    ".{:0width$}",
                    next(10u64.pow(n.min(9) as u32)),
                    width = n.min(9) as usize
                ),
            };
            let offset = match next(4) {
                0 => "Z".to_string(),
                1 => "z".to_string(),
                _ => format!(
                    "{}{:02}:{:02}",
                    if next(2) == 0 { '+' } else { '-' },
                    next(26),
                    next(61)
                ),
            };
            let text = format!(
                "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{offset}",
                1 + next(13),
                1 + next(31),
                next(25),
                next(61),
                next(61),
            );
            let fast = fast_rfc3339(text.as_bytes());
            if fast.is_some() {
                answered += 1;
                assert_eq!(fast, jiff_rfc3339(text.as_bytes()), "{text}");
            }
            assert_eq!(
                parse_rfc3339(text.as_bytes()),
                jiff_rfc3339(text.as_bytes()),
                "{text}"
            );
        }
        assert!(answered > 20_000, "the fast path answered {answered}");
        assert_eq!(
            fast_rfc3339(b"2026-12-06T10:00:00.000000Z"),
            Some(1_796_551_200 * NS)
        );
    }

    #[test]
    fn rfc3339_offsets_and_fractions() {
        assert_eq!(
            parse_rfc3339(b"2003-10-11T22:14:15.003Z"),
            Some(1_065_910_455_003_000_000)
        );
        assert_eq!(
            parse_rfc3339(b"2003-08-24T05:14:15.000003-07:00"),
            Some(1_061_727_255_000_003_000)
        );
        assert_eq!(
            parse_rfc3339(b"1985-04-12T23:20:50.52Z"),
            Some(482_196_050_520_000_000)
        );
        assert_eq!(
            parse_rfc3339(b"1985-04-12t23:20:50.123456789z"),
            Some(482_196_050_123_456_789)
        );
        assert_eq!(
            parse_rfc3339(b"2026-03-08T03:00:00+05:30"),
            Some(1_772_919_000 * NS)
        );
        for bad in [
            &b"2003-02-30T00:00:00Z"[..],
            b"2003-10-11T22:14:15",
            b"2003-10-11 22:14:15Z",
            b"2003-10-11T22:14:15+0700",
            b"2003-10-11T25:14:15Z",
            b"2003-10-11T22:14:15Z[Europe/Paris]",
            b"2003-10-11T22:14:15+07:00[Asia/Bangkok]",
            b"20031011T221415Z",
            b"",
            b"Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn civil_utc_times() {
        assert_eq!(utc_ns(1970, 1, 1, 0, 0, 0, 0), Some(0));
        assert_eq!(utc_ns(1969, 12, 31, 23, 59, 59, 1), Some(-NS + 1));
        assert_eq!(utc_ns(2024, 2, 29, 12, 0, 0, 0), Some(1_709_208_000 * NS));
        assert_eq!(
            utc_ns(2016, 12, 31, 23, 59, 60, 0),
            utc_ns(2017, 1, 1, 0, 0, 0, 0)
        );
        assert_eq!(utc_ns(2023, 2, 29, 0, 0, 0, 0), None);
        assert_eq!(utc_ns(2023, 1, 1, 24, 0, 0, 0), None);
        assert_eq!(utc_ns(2023, 13, 1, 0, 0, 0, 0), None);
        assert_eq!(utc_ns(99_999, 1, 1, 0, 0, 0, 0), None);
        // Outside what i64 nanoseconds hold.
        assert_eq!(utc_ns(2300, 1, 1, 0, 0, 0, 0), None);
    }

    #[test]
    fn years_of_instants() {
        assert_eq!(utc_year(0), 1970);
        assert_eq!(utc_year(-1), 1969);
        assert_eq!(utc_year(1_704_067_199 * NS), 2023);
        assert_eq!(utc_year(1_704_067_200 * NS), 2024);
        assert_eq!(utc_year(i64::MIN), 1677);
        assert_eq!(utc_year(i64::MAX), 2262);
    }

    /// Every prefix of a timestamp, and every one-byte change of it, is
    /// read or refused without a panic.
    #[test]
    fn damaged_timestamps_are_refused_without_panicking() {
        let good = b"2003-08-24T05:14:15.000003-07:00";
        for n in 0..good.len() {
            assert_eq!(parse_rfc3339(&good[..n]), None, "{n}");
        }
        for i in 0..good.len() {
            for b in [b'0', b'9', b'-', b':', b'T', b'Z', b' ', 0xff] {
                let mut t = good.to_vec();
                t[i] = b;
                let _ = parse_rfc3339(&t);
            }
        }
        assert_eq!(parse_rfc3339(good), Some(1_061_727_255_000_003_000));
    }
}
