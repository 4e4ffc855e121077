//! Period boundaries of the time trigger and the timestamps in backup
//! names.

use super::NS_PER_SEC;
use crate::options::{Every, Weekday};

/// Start and end, in ns since the epoch, of the period holding `now_ns`;
/// weeks start on `week_starts`.
pub(super) fn period_bounds(
    every: Every,
    week_starts: Weekday,
    now_ns: i64,
    local: bool,
) -> (i64, i64) {
    let secs = now_ns.div_euclid(NS_PER_SEC);
    if local {
        if let Some((start, end)) = local_bounds(every, week_starts, secs) {
            return (start * NS_PER_SEC, end * NS_PER_SEC);
        }
    }
    let (start, end) = utc_bounds(every, week_starts, secs, 0);
    (start * NS_PER_SEC, end * NS_PER_SEC)
}

/// Period bounds in seconds for a clock `offset` seconds ahead of UTC.
fn utc_bounds(every: Every, week_starts: Weekday, secs: i64, offset: i64) -> (i64, i64) {
    const DAY: i64 = 86_400;
    let (len, phase) = match every {
        Every::Minutely => (60, 0),
        Every::Hourly => (3_600, 0),
        Every::Daily => (DAY, 0),
        // The epoch was a Thursday (3 days after Monday): the first week
        // starting on day `d` began (d - 3) mod 7 days after it.
        Every::Weekly => {
            let d = i64::from(week_starts.days_from_monday());
            (7 * DAY, (d + 4).rem_euclid(7) * DAY)
        }
    };
    let wall = secs + offset;
    let start = (wall - phase).div_euclid(len) * len + phase;
    (start - offset, start + len - offset)
}

fn localtime(secs: i64) -> Option<libc::tm> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: an all-zero tm is a valid value (the pointer field is null).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call;
    // localtime_r is the reentrant form and writes only into `tm`.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    (!r.is_null()).then_some(tm)
}

/// Period bounds in the local time zone. Minutes and hours are fixed
/// lengths aligned on the current offset (which handles zones half or
/// three quarters of an hour off UTC); days and weeks go through mktime so
/// that those containing a daylight-saving change are 23 or 25 hours long.
fn local_bounds(every: Every, week_starts: Weekday, secs: i64) -> Option<(i64, i64)> {
    if matches!(every, Every::Minutely | Every::Hourly) {
        let offset = widen(localtime(secs)?.tm_gmtoff);
        return Some(utc_bounds(every, week_starts, secs, offset));
    }
    let mut start = localtime(secs)?;
    start.tm_sec = 0;
    start.tm_min = 0;
    start.tm_hour = 0;
    if every == Every::Weekly {
        // tm_wday counts from Sunday; back to the last `week_starts`.
        let from_monday = (start.tm_wday + 6) % 7;
        let d = libc::c_int::from(week_starts.days_from_monday());
        start.tm_mday -= (from_monday - d).rem_euclid(7);
    }
    start.tm_isdst = -1;
    let mut end = start;
    end.tm_mday += if every == Every::Weekly { 7 } else { 1 };
    // SAFETY: both are valid, initialised tm values; mktime normalises them
    // in place.
    let (s, e) = unsafe { (libc::mktime(&mut start), libc::mktime(&mut end)) };
    let (s, e) = (widen(s), widen(e));
    if s <= secs && secs < e {
        return Some((s, e));
    }
    // mktime could not express the period: use the current offset.
    let offset = widen(localtime(secs)?.tm_gmtoff);
    Some(utc_bounds(every, week_starts, secs, offset))
}

/// `time_t` and `c_long` are 32 bits on some targets and 64 on others.
fn widen<T: Into<i64>>(v: T) -> i64 {
    v.into()
}

/// `YYYY-mm-dd_HH-MM-SS` for `ns`, in UTC or local time.
pub(super) fn stamp(ns: i64, local: bool) -> String {
    let secs = ns.div_euclid(NS_PER_SEC);
    if local {
        if let Some(tm) = localtime(secs) {
            return format!(
                "{:04}-{:02}-{:02}_{:02}-{:02}-{:02}",
                i64::from(tm.tm_year) + 1900,
                tm.tm_mon + 1,
                tm.tm_mday,
                tm.tm_hour,
                tm.tm_min,
                tm.tm_sec
            );
        }
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}_{:02}-{:02}-{:02}",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day number (0 = 1970-01-01).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Count from 0000-03-01, so that the leap day ends each four-year cycle
    // and the month lengths repeat in a five-month pattern from March.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::file::scan::is_stamp;

    /// 2026-11-22 10:00:00 UTC, a Sunday.
    const SUN_10H: i64 = 1_795_341_600;

    #[test]
    fn dates_and_stamps_in_utc() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(SUN_10H / 86_400), (2026, 11, 22));
        assert_eq!(
            stamp(SUN_10H * NS_PER_SEC + 999, false),
            "2026-11-22_10-00-00"
        );
        assert_eq!(
            stamp(951_868_799 * NS_PER_SEC, false),
            "2000-02-29_23-59-59"
        );
        assert_eq!(stamp(-NS_PER_SEC, false), "1969-12-31_23-59-59");
    }

    #[test]
    fn utc_periods() {
        let at = |every, secs: i64| {
            let (s, e) = period_bounds(every, Weekday::Monday, secs * NS_PER_SEC + 1, false);
            (s / NS_PER_SEC, e / NS_PER_SEC)
        };
        let t = SUN_10H + 1_234;
        assert_eq!(at(Every::Minutely, t), (SUN_10H + 1_200, SUN_10H + 1_260));
        assert_eq!(at(Every::Hourly, t), (SUN_10H, SUN_10H + 3_600));
        let midnight = SUN_10H - 10 * 3_600;
        assert_eq!(at(Every::Daily, t), (midnight, midnight + 86_400));
        // Sunday belongs to the week that started on the Monday before.
        let monday = midnight - 6 * 86_400;
        assert_eq!(at(Every::Weekly, t), (monday, monday + 7 * 86_400));
        assert_eq!(at(Every::Weekly, monday), (monday, monday + 7 * 86_400));
        assert_eq!(at(Every::Hourly, -1), (-3_600, 0));
    }

    #[test]
    fn weekly_periods_start_on_the_day_asked_for() {
        // SUN_10H is a Sunday; its midnight, and the midnights before it.
        let sunday = SUN_10H - 10 * 3_600;
        let day = 86_400;
        for (n, back) in [(0, 6), (1, 5), (2, 4), (3, 3), (4, 2), (5, 1), (6, 0)] {
            // `n` days after Monday, as Python's when="W<n>".
            let weekday = Weekday::from_days_from_monday(n).unwrap();
            let start = sunday - back * day;
            for t in [SUN_10H, start, start + 7 * day - 1] {
                let (s, e) = period_bounds(Every::Weekly, weekday, t * NS_PER_SEC, false);
                assert_eq!(
                    (s / NS_PER_SEC, e / NS_PER_SEC),
                    (start, start + 7 * day),
                    "{weekday:?} at {t}"
                );
            }
            // Local time: the period starts at a local midnight of that day.
            let (s, _) = period_bounds(Every::Weekly, weekday, SUN_10H * NS_PER_SEC, true);
            let tm = localtime(s / NS_PER_SEC).unwrap();
            assert_eq!(
                (tm.tm_wday + 6) % 7,
                libc::c_int::from(n),
                "{weekday:?} local"
            );
            assert_eq!((tm.tm_hour, tm.tm_min, tm.tm_sec), (0, 0, 0));
        }
        assert_eq!(Weekday::from_days_from_monday(7), None);
    }

    #[test]
    fn local_periods_start_on_local_boundaries() {
        // Whatever the time zone of the machine running the test, a local
        // period must contain the instant, start and end on the wall-clock
        // boundary, and (weekly) start on a Monday.
        for secs in [
            SUN_10H,
            SUN_10H + 1_234_567,
            1_700_000_000,
            1_711_846_800,
            1_710_054_000,
            1_730_612_000,
            1_730_615_400,
            1_730_617_200,
        ] {
            for every in [Every::Minutely, Every::Hourly, Every::Daily, Every::Weekly] {
                let (s, e) = period_bounds(every, Weekday::Monday, secs * NS_PER_SEC, true);
                let (s, e) = (s / NS_PER_SEC, e / NS_PER_SEC);
                assert!(s <= secs && secs < e, "{every:?} {secs}: {s}..{e}");
                for edge in [s, e] {
                    let tm = localtime(edge).unwrap();
                    assert_eq!(tm.tm_sec, 0);
                    if every != Every::Minutely {
                        assert_eq!(tm.tm_min, 0);
                    }
                    if matches!(every, Every::Daily | Every::Weekly) {
                        assert_eq!(tm.tm_hour, 0);
                    }
                    if every == Every::Weekly {
                        assert_eq!(tm.tm_wday, 1);
                    }
                }
                let len = e - s;
                let (h, d) = (3_600, 86_400);
                match every {
                    Every::Minutely => assert_eq!(len, 60),
                    Every::Hourly => assert_eq!(len, h),
                    Every::Daily => assert!((d - h..=d + h).contains(&len), "{len}"),
                    Every::Weekly => assert!((7 * d - h..=7 * d + h).contains(&len), "{len}"),
                }
            }
        }
        let s = stamp(SUN_10H * NS_PER_SEC, true);
        assert!(is_stamp(s.as_bytes()), "{s}");
    }
}
