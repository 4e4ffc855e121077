//! Calendar arithmetic and timestamp formatting, without a date library.
//!
//! Layouts format a timestamp for every record, and most records of a busy
//! program share their second with the record before. So the expensive part
//! (turning seconds into a civil date, asking the C library for the local
//! UTC offset) is cached, and only the sub-second digits are written anew.
//!
//! The civil-date conversion is the proleptic Gregorian calendar, counted in
//! 400-year eras of 146 097 days; it is exact for every `i64` second count a
//! nanosecond timestamp can hold (years 1677 to 2262) and far beyond.

pub(crate) const NANOS_PER_SEC: i64 = 1_000_000_000;

/// The UTC offset cache is refreshed once per quarter hour: every time zone
/// in use today has an offset that is a multiple of 15 minutes and changes it
/// on a local quarter hour, so a transition always falls on a block boundary.
const OFFSET_BLOCK_SECS: i64 = 900;

/// Splits nanoseconds since the epoch into whole seconds (rounded towards
/// minus infinity, so instants before 1970 land in the right second) and the
/// nanoseconds within that second.
#[inline]
pub(crate) fn split_ns(ns: i64) -> (i64, u32) {
    (
        ns.div_euclid(NANOS_PER_SEC),
        ns.rem_euclid(NANOS_PER_SEC) as u32,
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (`month` 1..=12).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Count years from March, so the leap day is the last day of the year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // 0..=399
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // 0..=365
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // 0..=146096
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `(year, month 1..=12, day 1..=31)` of a day
/// counted from 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01, the start of a 400-year era.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365, from March 1
    let mp = (5 * doy + 2) / 153; // 0..=11, March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A broken-down time, in UTC or shifted by an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DateTime {
    pub(crate) year: i64,
    /// 1..=12.
    pub(crate) month: u32,
    /// 1..=31.
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
    /// 0 is Sunday, as C's `tm_wday`.
    pub(crate) weekday: u32,
    /// Day of the year, 1..=366.
    pub(crate) yday: u32,
}

impl DateTime {
    /// The date and time `secs` seconds after 1970-01-01T00:00:00.
    pub(crate) fn from_unix(secs: i64) -> DateTime {
        // Keep the day count in a range where the era arithmetic cannot
        // overflow; no timestamp in nanoseconds comes near this bound.
        let days = secs.div_euclid(86_400).clamp(-(1 << 40), 1 << 40);
        let sod = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        let yday = (days - days_from_civil(year, 1, 1) + 1) as u32;
        DateTime {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
            yday,
        }
    }
}

#[inline]
pub(crate) fn push_2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

#[inline]
fn push_3(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 100 % 10) as u8);
    push_2(out, v % 100);
}

/// Writes a year as at least four digits (`0987`, `2026`, `-0044`).
fn push_year(out: &mut Vec<u8>, year: i64) {
    if (0..=9999).contains(&year) {
        let y = year as u32;
        push_2(out, y / 100);
        push_2(out, y % 100);
    } else {
        if year < 0 {
            out.push(b'-');
        }
        let mag = year.unsigned_abs();
        if mag < 1000 {
            out.push(b'0');
        }
        if mag < 100 {
            out.push(b'0');
        }
        if mag < 10 {
            out.push(b'0');
        }
        super::push_u64(out, mag);
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of a broken-down time.
fn push_iso_seconds(out: &mut Vec<u8>, dt: &DateTime) {
    push_year(out, dt.year);
    out.push(b'-');
    push_2(out, dt.month);
    out.push(b'-');
    push_2(out, dt.day);
    out.push(b'T');
    push_2(out, dt.hour);
    out.push(b':');
    push_2(out, dt.minute);
    out.push(b':');
    push_2(out, dt.second);
}

/// Formats RFC 3339 UTC timestamps with microseconds
/// (`2026-11-22T10:04:05.123456Z`), recomputing the date only when the
/// second changes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Rfc3339Cache {
    /// The second whose text is in `prefix`.
    second: Option<i64>,
    /// `YYYY-MM-DDTHH:MM:SS.` of that second.
    prefix: Vec<u8>,
}

impl Rfc3339Cache {
    /// Appends the timestamp `ns` (nanoseconds since the epoch). Sub-second
    /// digits are truncated, never rounded, so a record never appears to be
    /// in the next second.
    pub(crate) fn write(&mut self, ns: i64, out: &mut Vec<u8>) {
        let (secs, nanos) = split_ns(ns);
        if self.second != Some(secs) {
            self.prefix.clear();
            push_iso_seconds(&mut self.prefix, &DateTime::from_unix(secs));
            self.prefix.push(b'.');
            self.second = Some(secs);
        }
        out.extend_from_slice(&self.prefix);
        let micros = nanos / 1000;
        push_3(out, micros / 1000);
        push_3(out, micros % 1000);
        out.push(b'Z');
    }
}

/// The local UTC offset in seconds east of Greenwich at `secs`, and the
/// zone's abbreviation, as the C library's `localtime_r` reports them.
/// `None` when the C library cannot convert the time.
#[cfg(unix)]
pub(crate) fn local_offset(secs: i64, zone: &mut String) -> Option<i32> {
    // `time_t` is 32 bits on some targets; there, far dates are refused.
    #[allow(clippy::useless_conversion)]
    let t: libc::time_t = secs.try_into().ok()?;
    // SAFETY: `tm` is plain data for which all-zero bytes are a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call;
    // localtime_r writes only into `tm`.
    let res = unsafe { libc::localtime_r(&t, &mut tm) };
    if res.is_null() {
        return None;
    }
    zone.clear();
    if !tm.tm_zone.is_null() {
        // SAFETY: a non-null tm_zone points to a NUL-terminated string that
        // the C library keeps alive for the life of the process.
        let name = unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) };
        zone.push_str(&name.to_string_lossy());
    }
    i32::try_from(tm.tm_gmtoff).ok()
}

/// Without a C library to ask, local time is UTC.
#[cfg(not(unix))]
pub(crate) fn local_offset(_secs: i64, zone: &mut String) -> Option<i32> {
    zone.clear();
    zone.push_str("UTC");
    Some(0)
}

/// Caches the local UTC offset per quarter hour of UTC time, so that a
/// layout asks the C library at most four times an hour (see
/// [`OFFSET_BLOCK_SECS`] for why that is exact across DST changes).
#[derive(Clone, Debug, Default)]
pub(crate) struct LocalOffsetCache {
    block: Option<i64>,
    offset: i32,
    zone: String,
}

impl LocalOffsetCache {
    /// Seconds east of UTC at `secs`; 0 if the C library cannot tell.
    pub(crate) fn offset_at(&mut self, secs: i64) -> i32 {
        let block = secs.div_euclid(OFFSET_BLOCK_SECS);
        if self.block != Some(block) {
            self.offset = local_offset(secs, &mut self.zone).unwrap_or_else(|| {
                self.zone.clear();
                self.zone.push_str("UTC");
                0
            });
            self.block = Some(block);
        }
        self.offset
    }

    /// The zone abbreviation of the last [`LocalOffsetCache::offset_at`].
    pub(crate) fn zone(&self) -> &str {
        &self.zone
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Literal(String),
    /// The letter after `%`.
    Spec(u8),
}

/// A compiled `strftime` pattern, the subset Python programs put in
/// `datefmt`, rendered in the C locale:
///
/// | spec | meaning |
/// |---|---|
/// | `%Y` `%y` | year, 4 digits / last 2 digits |
/// | `%m` `%d` `%e` | month, day (`%e` space padded) |
/// | `%H` `%I` `%M` `%S` `%p` | 24-hour, 12-hour, minute, second, `AM`/`PM` |
/// | `%b` `%B` `%a` `%A` | month and weekday names, short and long |
/// | `%j` | day of the year, 3 digits |
/// | `%z` `%Z` | offset `+HHMM`, zone abbreviation |
/// | `%F` `%T` | `%Y-%m-%d`, `%H:%M:%S` |
/// | `%%` | `%` |
///
/// Anything else, including an unknown `%x` and a lone `%` at the end, is
/// copied as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Strftime {
    items: Vec<Item>,
}

impl Strftime {
    pub(crate) fn parse(pattern: &str) -> Strftime {
        let mut items = Vec::new();
        let mut lit = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            match chars.clone().next() {
                Some('%') => {
                    chars.next();
                    lit.push('%');
                }
                Some(
                    s @ ('Y' | 'y' | 'm' | 'd' | 'e' | 'H' | 'I' | 'M' | 'S' | 'p' | 'b' | 'B'
                    | 'a' | 'A' | 'j' | 'z' | 'Z' | 'F' | 'T'),
                ) => {
                    chars.next();
                    if !lit.is_empty() {
                        items.push(Item::Literal(std::mem::take(&mut lit)));
                    }
                    items.push(Item::Spec(s as u8));
                }
                _ => lit.push('%'),
            }
        }
        if !lit.is_empty() {
            items.push(Item::Literal(lit));
        }
        Strftime { items }
    }

    /// Appends `dt` (already shifted to the zone) formatted by the pattern.
    pub(crate) fn write(&self, dt: &DateTime, offset: i32, zone: &str, out: &mut Vec<u8>) {
        for item in &self.items {
            match item {
                Item::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Item::Spec(s) => write_spec(*s, dt, offset, zone, out),
            }
        }
    }
}

fn write_spec(spec: u8, dt: &DateTime, offset: i32, zone: &str, out: &mut Vec<u8>) {
    let month = MONTHS[(dt.month.clamp(1, 12) - 1) as usize];
    let weekday = WEEKDAYS[(dt.weekday % 7) as usize];
    match spec {
        b'Y' => push_year(out, dt.year),
        b'y' => push_2(out, dt.year.rem_euclid(100) as u32),
        b'm' => push_2(out, dt.month),
        b'd' => push_2(out, dt.day),
        b'e' => {
            if dt.day < 10 {
                out.push(b' ');
                out.push(b'0' + dt.day as u8);
            } else {
                push_2(out, dt.day);
            }
        }
        b'H' => push_2(out, dt.hour),
        b'I' => push_2(out, (dt.hour + 11) % 12 + 1),
        b'M' => push_2(out, dt.minute),
        b'S' => push_2(out, dt.second),
        b'p' => out.extend_from_slice(if dt.hour < 12 { b"AM" } else { b"PM" }),
        b'b' => out.extend_from_slice(&month.as_bytes()[..3]),
        b'B' => out.extend_from_slice(month.as_bytes()),
        b'a' => out.extend_from_slice(&weekday.as_bytes()[..3]),
        b'A' => out.extend_from_slice(weekday.as_bytes()),
        b'j' => push_3(out, dt.yday),
        b'z' => {
            out.push(if offset < 0 { b'-' } else { b'+' });
            let minutes = offset.unsigned_abs() / 60;
            push_2(out, minutes / 60);
            push_2(out, minutes % 60);
        }
        b'Z' => out.extend_from_slice(zone.as_bytes()),
        b'F' => {
            push_year(out, dt.year);
            out.push(b'-');
            push_2(out, dt.month);
            out.push(b'-');
            push_2(out, dt.day);
        }
        b'T' => {
            push_2(out, dt.hour);
            out.push(b':');
            push_2(out, dt.minute);
            out.push(b':');
            push_2(out, dt.second);
        }
        other => {
            out.push(b'%');
            out.push(other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc(ns: i64) -> String {
        let mut out = Vec::new();
        Rfc3339Cache::default().write(ns, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn strf(pattern: &str, secs: i64, offset: i32, zone: &str) -> String {
        let mut out = Vec::new();
        Strftime::parse(pattern).write(
            &DateTime::from_unix(secs + i64::from(offset)),
            offset,
            zone,
            &mut out,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn known_dates_round_trip() {
        // (days since epoch, year, month, day)
        let known = [
            (0, 1970, 1, 1),
            (-1, 1969, 12, 31),
            (-719_468, 0, 3, 1),
            (10_957, 2000, 1, 1),
            (11_016, 2000, 2, 29),
            (11_017, 2000, 3, 1),
            (19_782, 2024, 2, 29),
            (47_541, 2100, 3, 1),
            (47_540, 2100, 2, 28),
            (-25_567, 1900, 1, 1),
            (-25_508, 1900, 3, 1),
            (2_932_896, 9999, 12, 31),
            (-106_752, 1677, 9, 21),
            (106_751, 2262, 4, 11),
        ];
        for (days, y, m, d) in known {
            assert_eq!(civil_from_days(days), (y, m, d), "days {days}");
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn every_day_of_many_centuries_round_trips() {
        let mut prev = civil_from_days(-800_000);
        for days in -799_999..800_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            // Consecutive days are consecutive dates.
            let next_of_prev = if d > 1 {
                (y, m, d - 1) == prev
            } else {
                prev.2 >= 28
                    && (prev.1 % 12 + 1 == m)
                    && (prev.0 == y || (m == 1 && prev.0 == y - 1))
            };
            assert!(next_of_prev, "{prev:?} then {:?}", (y, m, d));
            prev = (y, m, d);
        }
    }

    #[test]
    fn leap_years_follow_the_gregorian_rule() {
        for (year, leap) in [
            (1900, false),
            (2000, true),
            (2023, false),
            (2024, true),
            (2100, false),
            (2400, true),
        ] {
            let len = days_from_civil(year + 1, 1, 1) - days_from_civil(year, 1, 1);
            assert_eq!(len, if leap { 366 } else { 365 }, "{year}");
            let dec31 = DateTime::from_unix(days_from_civil(year, 12, 31) * 86_400);
            assert_eq!(dec31.yday, len as u32);
        }
    }

    #[test]
    fn broken_down_time() {
        let dt = DateTime::from_unix(1_700_000_000);
        assert_eq!(
            dt,
            DateTime {
                year: 2023,
                month: 11,
                day: 14,
                hour: 22,
                minute: 13,
                second: 20,
                weekday: 2,
                yday: 318,
            }
        );
        let before = DateTime::from_unix(-1);
        assert_eq!(
            (
                before.year,
                before.month,
                before.day,
                before.hour,
                before.minute,
                before.second
            ),
            (1969, 12, 31, 23, 59, 59)
        );
        assert_eq!(before.weekday, 3);
        assert_eq!(before.yday, 365);
        // Extremes do not panic.
        let _ = DateTime::from_unix(i64::MIN);
        let _ = DateTime::from_unix(i64::MAX);
    }

    #[test]
    fn rfc3339_exact() {
        assert_eq!(
            rfc(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(rfc(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(rfc(-1_000_000_000), "1969-12-31T23:59:59.000000Z");
        assert_eq!(rfc(951_782_400_000_001_000), "2000-02-29T00:00:00.000001Z");
        assert_eq!(
            rfc(4_107_542_399_999_999_999),
            "2100-02-28T23:59:59.999999Z"
        );
        assert_eq!(
            rfc(4_107_542_400_000_000_000),
            "2100-03-01T00:00:00.000000Z"
        );
        assert_eq!(rfc(i64::MIN), "1677-09-21T00:12:43.145224Z");
        assert_eq!(rfc(i64::MAX), "2262-04-11T23:47:16.854775Z");
    }

    #[test]
    fn cache_matches_fresh_formatting_across_second_boundaries() {
        let mut cache = Rfc3339Cache::default();
        let mut stamps = Vec::new();
        for base in [1_700_000_000 * NANOS_PER_SEC, 0, -3 * NANOS_PER_SEC] {
            for delta in [
                -1_000_000_001,
                -1,
                0,
                1,
                999_999_999,
                1_000_000_000,
                1_500_000_000,
            ] {
                stamps.push(base + delta);
            }
        }
        // Going back and forth in time must not confuse the cache either.
        stamps.extend([5, -5, 5, 86_400 * NANOS_PER_SEC - 1, 86_400 * NANOS_PER_SEC]);
        for ns in stamps {
            let mut cached = Vec::new();
            cache.write(ns, &mut cached);
            assert_eq!(String::from_utf8(cached).unwrap(), rfc(ns), "ns {ns}");
        }
    }

    #[test]
    fn strftime_subset() {
        let t = 1_700_000_000; // Tuesday 2023-11-14 22:13:20 UTC
        assert_eq!(
            strf("%Y-%m-%d %H:%M:%S", t, 0, "UTC"),
            "2023-11-14 22:13:20"
        );
        assert_eq!(
            strf("%a %A %b %B %y %j %I %p %z %Z %%", t, 0, "UTC"),
            "Tue Tuesday Nov November 23 318 10 PM +0000 UTC %"
        );
        assert_eq!(
            strf("%F %T %z %Z", t, -(3 * 3600 + 30 * 60), "NST"),
            "2023-11-14 18:43:20 -0330 NST"
        );
        assert_eq!(strf("%H %I %p", t, 5 * 3600 + 45 * 60, "NPT"), "03 03 AM");
        assert_eq!(strf("%I %p|%I %p", 0, 0, "UTC"), "12 AM|12 AM");
        assert_eq!(strf("%I %p", 12 * 3600, 0, "UTC"), "12 PM");
        assert_eq!(strf("[%e]", 0, 0, "UTC"), "[ 1]");
        assert_eq!(strf("%q %f 100% é%", t, 0, "UTC"), "%q %f 100% é%");
        assert_eq!(strf("", t, 0, "UTC"), "");
        assert_eq!(strf("%Y", -62_167_219_200 - 86_400, 0, "UTC"), "-0001");
    }

    #[cfg(unix)]
    #[test]
    fn local_offset_matches_the_c_library() {
        fn libc_offset(secs: i64) -> i64 {
            let t = secs as libc::time_t;
            // SAFETY: as in local_offset.
            let mut tm: libc::tm = unsafe { std::mem::zeroed() };
            // SAFETY: valid pointers for the duration of the call.
            let res = unsafe { libc::localtime_r(&t, &mut tm) };
            assert!(!res.is_null());
            tm.tm_gmtoff as i64
        }
        let mut cache = LocalOffsetCache::default();
        let mut zone = String::new();
        // A year of half-days, then the same instants again from the cache.
        for pass in 0..2 {
            for i in 0..730 {
                let secs = 1_700_000_000 + i * 43_200 + pass;
                let want = libc_offset(secs);
                assert_eq!(i64::from(local_offset(secs, &mut zone).unwrap()), want);
                assert_eq!(i64::from(cache.offset_at(secs)), want);
                assert_eq!(cache.zone(), zone);
            }
        }
    }
}
