//! Instants as microseconds since the Unix epoch, with RFC 3339 text in UTC.
//!
//! Microseconds match Postgres `timestamptz` exactly, so a share's `expires_at` compares the
//! same in the core and in SQL. The core never reads a clock: callers pass `now` in.

use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ParseError, ParseErrorKind};

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// An instant, in microseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// From microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// From milliseconds since the epoch (saturating).
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis.saturating_mul(1_000))
    }

    /// From whole seconds since the epoch (saturating).
    pub const fn from_seconds(seconds: i64) -> Self {
        Self(seconds.saturating_mul(MICROS_PER_SECOND))
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Milliseconds since the epoch, rounded down.
    pub const fn as_millis(self) -> i64 {
        self.0.div_euclid(1_000)
    }

    /// Whole seconds since the epoch, rounded down.
    pub const fn as_seconds(self) -> i64 {
        self.0.div_euclid(MICROS_PER_SECOND)
    }

    /// This instant plus `millis` milliseconds (saturating).
    #[must_use]
    pub const fn plus_millis(self, millis: u64) -> Self {
        let millis = if millis > i64::MAX as u64 {
            i64::MAX
        } else {
            millis as i64
        };
        Self(self.0.saturating_add(millis.saturating_mul(1_000)))
    }

    /// Parses RFC 3339 (`2026-06-01T12:00:00Z`, `2026-06-01T12:00:00.123456+02:00`; `T` or
    /// space, `Z` or a numeric offset, up to 9 fraction digits of which 6 are kept, truncating).
    pub fn parse_rfc3339(input: &str, field: &'static str) -> Result<Self, ParseError> {
        let error = ParseError::new(
            ParseErrorKind::InvalidRequest,
            field,
            "an rfc 3339 timestamp such as 2026-06-01T12:00:00Z",
        );
        parse(input.as_bytes()).ok_or(error)
    }
}

fn digits(bytes: &[u8], from: usize, count: usize) -> Option<i64> {
    let slice = bytes.get(from..from.checked_add(count)?)?;
    slice.iter().try_fold(0i64, |acc, &byte| {
        byte.is_ascii_digit()
            .then(|| acc * 10 + i64::from(byte - b'0'))
    })
}

fn expect(bytes: &[u8], at: usize, allowed: &[u8]) -> Option<()> {
    allowed.contains(bytes.get(at)?).then_some(())
}

fn parse(bytes: &[u8]) -> Option<Timestamp> {
    let year = digits(bytes, 0, 4)?;
    expect(bytes, 4, b"-")?;
    let month = digits(bytes, 5, 2)?;
    expect(bytes, 7, b"-")?;
    let day = digits(bytes, 8, 2)?;
    expect(bytes, 10, b"Tt ")?;
    let hour = digits(bytes, 11, 2)?;
    expect(bytes, 13, b":")?;
    let minute = digits(bytes, 14, 2)?;
    expect(bytes, 16, b":")?;
    let second = digits(bytes, 17, 2)?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut micros = 0i64;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            let digit = i64::from(*bytes.get(at)? - b'0');
            if at - start < 6 {
                micros = micros * 10 + digit;
            }
            at += 1;
        }
        let count = at - start;
        if count == 0 || count > 9 {
            return None;
        }
        for _ in count..6 {
            micros *= 10;
        }
    }
    let offset_seconds = match bytes.get(at)? {
        b'Z' | b'z' => {
            at += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let hours = digits(bytes, at + 1, 2)?;
            expect(bytes, at + 3, b":")?;
            let minutes = digits(bytes, at + 4, 2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            at += 6;
            let magnitude = hours * 3_600 + minutes * 60;
            if *sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return None,
    };
    if at != bytes.len() {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * SECONDS_PER_DAY + hour * 3_600 + minute * 60 + second - offset_seconds;
    Some(Timestamp(seconds * MICROS_PER_SECOND + micros))
}

const fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

const fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
const fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`); months and days count from 1.
pub const fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC: no fraction for whole seconds, else milliseconds or microseconds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.div_euclid(MICROS_PER_SECOND);
        let micros = self.0.rem_euclid(MICROS_PER_SECOND);
        let days = seconds.div_euclid(SECONDS_PER_DAY);
        let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            second_of_day / 3_600,
            second_of_day % 3_600 / 60,
            second_of_day % 60
        )?;
        if micros == 0 {
            f.write_str("Z")
        } else if micros % 1_000 == 0 {
            write!(f, ".{:03}Z", micros / 1_000)
        } else {
            write!(f, ".{micros:06}Z")
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <alloc::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse_rfc3339(&text, "timestamp").map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn check(input: &str, micros: Option<i64>, shown: &str) {
        let parsed = Timestamp::parse_rfc3339(input, "t").ok();
        assert_eq!(parsed.map(Timestamp::as_micros), micros, "{input}");
        if let Some(parsed) = parsed {
            assert_eq!(parsed.to_string(), shown);
        }
    }

    #[test]
    fn rfc3339_table() {
        check("1970-01-01T00:00:00Z", Some(0), "1970-01-01T00:00:00Z");
        check(
            "2026-06-01T12:00:00Z",
            Some(1_780_315_200_000_000),
            "2026-06-01T12:00:00Z",
        );
        check(
            "2026-06-01T12:00:00.000001Z",
            Some(1_780_315_200_000_001),
            "2026-06-01T12:00:00.000001Z",
        );
        check(
            "2026-06-01T14:00:00.5+02:00",
            Some(1_780_315_200_500_000),
            "2026-06-01T12:00:00.500Z",
        );
        check(
            "2024-02-29 23:59:59.123456789-00:30",
            Some(1_709_251_199_123_456 + 1_800_000_000),
            "2024-03-01T00:29:59.123456Z",
        );
        check(
            "1969-12-31T23:59:59Z",
            Some(-1_000_000),
            "1969-12-31T23:59:59Z",
        );
        for bad in [
            "",
            "2026-06-01",
            "2026-06-01T12:00:00",
            "2026-13-01T12:00:00Z",
            "2026-02-29T12:00:00Z",
            "2026-06-01T24:00:00Z",
            "2026-06-01T12:00:00.Z",
            "2026-06-01T12:00:00ZZ",
            "2026-06-01T12:00:00+2:00",
            "２026-06-01T12:00:00Z",
        ] {
            check(bad, None, "");
        }
    }

    #[test]
    fn civil_round_trip_over_four_centuries() {
        for days in (-146_097..146_097 * 2).step_by(7) {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
    }
}
