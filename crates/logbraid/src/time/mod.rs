//! Dates, time zones, daylight-saving rules and timestamp text: the one
//! home of calendar work in logbraid, on the [`jiff`] crate.
//!
//! - `format`: the timestamps of layouts (RFC 3339 in UTC, and Python's
//!   `time.strftime` for `%(asctime)s` and `datefmt`), cached per second
//!   because layouts run for every record and most records share their
//!   second with the one before;
//! - `period`: the periods of time-triggered rotation and the timestamps
//!   in backup names, in UTC or in any time zone, across DST changes;
//! - [`parse`]: timestamps read from the outside (RFC 3339 as RFC 5424
//!   syslog sends it, and civil UTC times as RFC 3164 sends them).
//!
//! Nothing here calls the C library's local-time conversions, which
//! read `TZ` with `getenv` and so race with any thread writing
//! the environment. jiff reads the zone through `std::env` and the tz
//! database (`/usr/share/zoneinfo`) itself.
//!
//! A timestamp in nanoseconds since the epoch spans the years 1677 to 2262,
//! well inside jiff's range, so no conversion here fails for such input.

use std::sync::OnceLock;

use jiff::tz::TimeZone;
use jiff::Timestamp;

pub(crate) mod format;
pub mod parse;
pub(crate) mod period;

pub(crate) use format::{push_2, Rfc3339Cache, Strftime};
pub use parse::{parse_rfc3339, utc_ns, utc_year};

pub(crate) const NANOS_PER_SEC: i64 = 1_000_000_000;

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

/// The instant `secs` seconds after the epoch, clamped to jiff's range
/// (years -9999 to 9999), which every `i64` nanosecond count is inside.
pub(crate) fn timestamp(secs: i64) -> Timestamp {
    let min = Timestamp::MIN.as_second();
    let max = Timestamp::MAX.as_second();
    Timestamp::from_second(secs.clamp(min, max)).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The instant `ns` nanoseconds after the epoch.
pub(crate) fn timestamp_ns(ns: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Nanoseconds since the epoch of `t`, saturated to the `i64` range.
pub(crate) fn to_ns(t: Timestamp) -> i64 {
    let ns = t.as_nanosecond();
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

/// The system's time zone: `TZ` if set, else `/etc/localtime`; UTC when
/// neither names a zone jiff can read.
pub(crate) fn system_zone() -> TimeZone {
    TimeZone::system()
}

/// UTC under the name Python's `time.gmtime()` gives it (`%Z` is `GMT`).
pub(crate) fn gmt() -> &'static TimeZone {
    static GMT: OnceLock<TimeZone> = OnceLock::new();
    GMT.get_or_init(|| TimeZone::posix("GMT0").unwrap_or(TimeZone::UTC))
}

#[cfg(test)]
pub(crate) mod testing {
    use jiff::tz::TimeZone;

    /// A zone from the system's tz database, or `None` with a note on
    /// stderr when the database (or the zone) is missing, so a test that
    /// needs it says it was skipped instead of passing silently.
    pub(crate) fn zone(name: &str) -> Option<TimeZone> {
        match TimeZone::get(name) {
            Ok(tz) => Some(tz),
            Err(e) => {
                eprintln!("SKIPPED: the tz database has no {name} ({e})");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_down_and_extremes_clamp() {
        assert_eq!(split_ns(-1), (-1, 999_999_999));
        assert_eq!(split_ns(1_500_000_000), (1, 500_000_000));
        assert_eq!(timestamp(i64::MAX).as_second(), Timestamp::MAX.as_second());
        assert_eq!(timestamp(i64::MIN).as_second(), Timestamp::MIN.as_second());
        for ns in [i64::MIN, -1, 0, 1, i64::MAX] {
            assert_eq!(to_ns(timestamp_ns(ns)), ns);
        }
        assert_eq!(
            gmt().to_offset_info(Timestamp::UNIX_EPOCH).abbreviation(),
            "GMT"
        );
    }
}
