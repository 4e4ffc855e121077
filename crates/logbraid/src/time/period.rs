//! The periods of time-triggered rotation, and the timestamps in backup
//! names, in UTC or in any time zone.
//!
//! Minutes and hours are fixed lengths aligned on the zone's offset at the
//! instant (which handles zones half or three quarters of an hour off
//! UTC). Days and weeks start at a time of day on the zone's clock
//! (midnight unless told otherwise), so one that contains a DST change is
//! 23 or 25 hours long. A start time the clock skips (02:30 on a
//! spring-forward night) is taken as jiff's compatible disambiguation
//! reads it, one gap later (03:30); one the clock shows twice (02:30 on a
//! fall-back night) is its first occurrence. Either way the night has
//! exactly one boundary.

use jiff::civil::{Date, Time};
use jiff::fmt::strtime;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

use super::{timestamp_ns, to_ns, NANOS_PER_SEC};
use crate::options::{Every, Weekday};

/// When a time-triggered rotation starts a new file.
#[derive(Clone, Debug)]
pub(crate) struct Schedule {
    pub(crate) every: Every,
    /// With [`Every::Weekly`], the day whose start begins a week.
    pub(crate) week_starts: Weekday,
    /// With [`Every::Daily`] and [`Every::Weekly`], the time of day on the
    /// zone's clock at which a period starts.
    pub(crate) at: Time,
    pub(crate) zone: TimeZone,
}

impl Schedule {
    /// Start and end, in ns since the epoch, of the period holding
    /// `now_ns`: `start <= now_ns < end`.
    pub(crate) fn bounds(&self, now_ns: i64) -> (i64, i64) {
        const MINUTE: i64 = 60 * NANOS_PER_SEC;
        let len = match self.every {
            Every::Minutely => MINUTE,
            Every::Hourly => 60 * MINUTE,
            Every::Daily | Every::Weekly => {
                if let Some(bounds) = self.day_bounds(timestamp_ns(now_ns)) {
                    return bounds;
                }
                // Out of the calendar's range: a fixed length from now.
                let day = 24 * 60 * MINUTE;
                let len = if self.every == Every::Weekly {
                    7 * day
                } else {
                    day
                };
                return (now_ns, now_ns.saturating_add(len));
            }
        };
        let offset = i64::from(self.zone.to_offset(timestamp_ns(now_ns)).seconds()) * NANOS_PER_SEC;
        let wall = now_ns.saturating_add(offset);
        let start = wall
            .div_euclid(len)
            .saturating_mul(len)
            .saturating_sub(offset);
        (start, start.saturating_add(len))
    }

    /// Daily and weekly periods: from one start on the zone's clock to the
    /// next.
    fn day_bounds(&self, now: Timestamp) -> Option<(i64, i64)> {
        let step = if self.every == Every::Weekly { 7 } else { 1 };
        let today = self.zone.to_datetime(now).date();
        let back = if self.every == Every::Weekly {
            let from_monday = i64::from(today.weekday().to_monday_zero_offset());
            (from_monday - i64::from(self.week_starts.days_from_monday())).rem_euclid(7)
        } else {
            0
        };
        let mut day = add_days(today, -back)?;
        let mut start = self.start_of(day)?;
        if now < start {
            day = add_days(day, -step)?;
            start = self.start_of(day)?;
        }
        let mut end = self.start_of(add_days(day, step)?)?;
        // A start time late in the day and an offset change can leave the
        // instant one period further on.
        while now >= end {
            day = add_days(day, step)?;
            start = end;
            end = self.start_of(add_days(day, step)?)?;
        }
        (start <= now).then(|| (to_ns(start), to_ns(end)))
    }

    /// The instant the period starting on `day` begins.
    fn start_of(&self, day: Date) -> Option<Timestamp> {
        self.zone
            .to_ambiguous_timestamp(day.to_datetime(self.at))
            .compatible()
            .ok()
    }
}

fn add_days(day: Date, n: i64) -> Option<Date> {
    day.checked_add(Span::new().try_days(n).ok()?).ok()
}

/// `YYYY-mm-dd_HH-MM-SS` of `ns` on the clock of `zone`, as backup names
/// carry it.
pub(crate) fn stamp(ns: i64, zone: &TimeZone) -> String {
    let dt = zone.to_datetime(timestamp_ns(ns));
    strtime::format("%Y-%m-%d_%H-%M-%S", dt).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use jiff::civil::time;

    use super::super::testing::zone;
    use super::*;

    const NS: i64 = NANOS_PER_SEC;
    /// 2026-11-22 10:00:00 UTC, a Sunday.
    const SUN_10H: i64 = 1_795_341_600;

    fn schedule(every: Every, week_starts: Weekday, zone: &TimeZone) -> Schedule {
        Schedule {
            every,
            week_starts,
            at: Time::midnight(),
            zone: zone.clone(),
        }
    }

    /// Bounds in seconds of the period holding `secs`.
    fn at(s: &Schedule, secs: i64) -> (i64, i64) {
        let (start, end) = s.bounds(secs * NS + 1);
        (start / NS, end / NS)
    }

    #[test]
    fn utc_periods() {
        let utc = TimeZone::UTC;
        let t = SUN_10H + 1_234;
        let on = |every| schedule(every, Weekday::Monday, &utc);
        assert_eq!(
            at(&on(Every::Minutely), t),
            (SUN_10H + 1_200, SUN_10H + 1_260)
        );
        assert_eq!(at(&on(Every::Hourly), t), (SUN_10H, SUN_10H + 3_600));
        let midnight = SUN_10H - 10 * 3_600;
        assert_eq!(at(&on(Every::Daily), t), (midnight, midnight + 86_400));
        // Sunday belongs to the week that started on the Monday before.
        let monday = midnight - 6 * 86_400;
        assert_eq!(at(&on(Every::Weekly), t), (monday, monday + 7 * 86_400));
        assert_eq!(
            at(&on(Every::Weekly), monday),
            (monday, monday + 7 * 86_400)
        );
        assert_eq!(at(&on(Every::Hourly), -1), (-3_600, 0));
        assert_eq!(at(&on(Every::Daily), -1), (-86_400, 0));
        // The extremes of i64 nanoseconds still give a period holding them.
        for every in [Every::Minutely, Every::Hourly, Every::Daily, Every::Weekly] {
            for ns in [i64::MIN, i64::MAX] {
                let (s, e) = on(every).bounds(ns);
                assert!(s <= ns && (ns < e || e == i64::MAX), "{every:?} {ns}");
            }
        }
    }

    #[test]
    fn weekly_periods_start_on_the_day_asked_for() {
        // SUN_10H is a Sunday; its midnight, and the midnights before it.
        let sunday = SUN_10H - 10 * 3_600;
        let day = 86_400;
        let zones = [
            Some(TimeZone::UTC),
            zone("America/New_York"),
            zone("Asia/Kolkata"),
        ];
        for (n, back) in [(0, 6), (1, 5), (2, 4), (3, 3), (4, 2), (5, 1), (6, 0)] {
            // `n` days after Monday, as Python's when="W<n>".
            let weekday = Weekday::from_days_from_monday(n).unwrap();
            let utc = schedule(Every::Weekly, weekday, &TimeZone::UTC);
            let start = sunday - back * day;
            for t in [SUN_10H, start, start + 7 * day - 1] {
                assert_eq!(at(&utc, t), (start, start + 7 * day), "{weekday:?} at {t}");
            }
            // In a zone: the period starts at a midnight of that day there.
            for tz in zones.iter().flatten() {
                let (s, e) = at(&schedule(Every::Weekly, weekday, tz), SUN_10H);
                for edge in [s, e] {
                    let dt = tz.to_datetime(Timestamp::from_second(edge).unwrap());
                    assert_eq!(
                        dt.weekday().to_monday_zero_offset(),
                        n as i8,
                        "{weekday:?} in {tz:?}"
                    );
                    assert_eq!(dt.time(), Time::midnight());
                }
                assert!(s <= SUN_10H && SUN_10H < e);
            }
        }
        assert_eq!(Weekday::from_days_from_monday(7), None);
    }

    #[test]
    fn zoned_periods_start_on_the_zones_boundaries() {
        let mut zones = vec![crate::time::system_zone()];
        for name in [
            "America/New_York",
            "Europe/Berlin",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
            "America/Santiago",
        ] {
            zones.extend(zone(name));
        }
        for tz in &zones {
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
                    let (s, e) = at(&schedule(every, Weekday::Monday, tz), secs);
                    assert!(s <= secs && secs < e, "{tz:?} {every:?} {secs}: {s}..{e}");
                    let len = e - s;
                    let (h, d) = (3_600, 86_400);
                    match every {
                        Every::Minutely => assert_eq!(len, 60),
                        Every::Hourly => assert_eq!(len, h),
                        Every::Daily => assert!((d - h..=d + h).contains(&len), "{len}"),
                        Every::Weekly => assert!((7 * d - h..=7 * d + h).contains(&len), "{len}"),
                    }
                    if matches!(every, Every::Daily | Every::Weekly) {
                        // Midnight, or the first instant of a day whose
                        // midnight the clock skips.
                        let start = tz.to_datetime(Timestamp::from_second(s).unwrap());
                        let midnight = start.date().to_datetime(Time::midnight());
                        assert!(
                            start.time() == Time::midnight()
                                || tz.to_ambiguous_timestamp(midnight).is_ambiguous(),
                            "{tz:?} {every:?} {start}"
                        );
                    }
                }
            }
        }
    }

    /// Every period start met by a clock walking from `from` to `to` (UTC
    /// seconds) in steps of `step`, as a rotating file would meet them.
    fn starts(s: &Schedule, from: i64, to: i64, step: usize) -> Vec<String> {
        let mut seen: Vec<i64> = Vec::new();
        for t in (from..to).step_by(step) {
            let (start, end) = s.bounds(t * NS);
            assert!(start <= t * NS && t * NS < end);
            if seen.last() != Some(&start) {
                assert!(seen.last() < Some(&start), "periods go forward");
                seen.push(start);
            }
        }
        seen.iter().map(|&ns| stamp(ns, &s.zone)).collect()
    }

    #[test]
    fn daily_at_0230_on_the_nights_of_a_dst_change() {
        // (zone, 12:00 local the day before, the period starts met over two
        // days, the start and length of the day of the change.)
        let cases = [
            // 2026-03-08: 02:00 EST jumps to 03:00 EDT, so 02:30 does not
            // exist; the day's period starts once, at 03:30 EDT, and the
            // short day is 23 hours long.
            (
                "America/New_York",
                1_772_902_800,
                [
                    "2026-03-07_02-30-00",
                    "2026-03-08_03-30-00",
                    "2026-03-09_02-30-00",
                ],
                (1_772_955_000, 23 * 3_600),
            ),
            // 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 comes
            // twice; the period starts at the first, the second is inside.
            (
                "Europe/Berlin",
                1_792_836_000,
                [
                    "2026-10-24_02-30-00",
                    "2026-10-25_02-30-00",
                    "2026-10-26_02-30-00",
                ],
                (1_792_888_200, 25 * 3_600),
            ),
        ];
        for (name, noon, names, (start, len)) in cases {
            let Some(tz) = zone(name) else {
                continue;
            };
            let s = Schedule {
                at: time(2, 30, 0, 0),
                ..schedule(Every::Daily, Weekday::Monday, &tz)
            };
            assert_eq!(starts(&s, noon, noon + 2 * 86_400, 60), names, "{name}");
            let (s, e) = at(&s, noon + 86_400);
            assert_eq!((s, e - s), (start, len), "{name}");
        }
    }

    #[test]
    fn weekly_at_a_time_of_day_spans_the_dst_change_inside_it() {
        let Some(berlin) = zone("Europe/Berlin") else {
            return;
        };
        // Weeks start on Sunday at 02:30; the week starting on the fall-back
        // Sunday 2026-10-25 starts at the first 02:30 (CEST) and is an hour
        // longer than seven days.
        let s = Schedule {
            at: time(2, 30, 0, 0),
            ..schedule(Every::Weekly, Weekday::Sunday, &berlin)
        };
        let first_0230 = 1_792_888_200;
        let week = 7 * 86_400;
        assert_eq!(at(&s, first_0230), (first_0230, first_0230 + week + 3_600));
        assert_eq!(at(&s, first_0230 - 1), (first_0230 - week, first_0230));
        // The second 02:30 that night is inside the week, not a start.
        assert_eq!(at(&s, first_0230 + 3_600).0, first_0230);
        assert_eq!(
            stamp((first_0230 + week + 3_600) * NS, &berlin),
            "2026-11-01_02-30-00"
        );
    }

    #[test]
    fn hourly_across_a_fall_back_night_starts_each_hour_once() {
        let Some(berlin) = zone("Europe/Berlin") else {
            return;
        };
        let s = schedule(Every::Hourly, Weekday::Monday, &berlin);
        // 2026-10-25 00:00 UTC (02:00 CEST) to 03:00 UTC (03:00 CET): the
        // hour 02:00 is there twice, once in each offset.
        let from = 1_792_886_400 - 3_600;
        let names = starts(&s, from, from + 5 * 3_600, 60);
        assert_eq!(
            names,
            [
                "2026-10-25_01-00-00",
                "2026-10-25_02-00-00",
                "2026-10-25_02-00-00",
                "2026-10-25_03-00-00",
                "2026-10-25_04-00-00"
            ]
        );
    }

    #[test]
    fn stamps_in_utc_and_in_a_zone() {
        let utc = TimeZone::UTC;
        assert_eq!(stamp(SUN_10H * NS + 999, &utc), "2026-11-22_10-00-00");
        assert_eq!(stamp(951_868_799 * NS, &utc), "2000-02-29_23-59-59");
        assert_eq!(stamp(-NS, &utc), "1969-12-31_23-59-59");
        assert_eq!(stamp(i64::MIN, &utc), "1677-09-21_00-12-43");
        if let Some(kolkata) = zone("Asia/Kolkata") {
            assert_eq!(stamp(SUN_10H * NS, &kolkata), "2026-11-22_15-30-00");
        }
    }
}
