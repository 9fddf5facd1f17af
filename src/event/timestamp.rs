//! RFC 3339 timestamps exactly as Go's `time.Time` marshals them in UTC.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, written the way Distribution writes `Event.timestamp`:
/// RFC 3339 in UTC with a `Z` suffix and the fractional seconds trimmed of
/// trailing zeros (Go's `time.RFC3339Nano`), e.g. `2006-01-02T15:04:05.1234Z`.
///
/// ```
/// use registry_notify::Timestamp;
/// let t: Timestamp = "2006-01-02T15:04:05.120000000Z".parse().unwrap();
/// assert_eq!(t.to_string(), "2006-01-02T15:04:05.12Z");
/// let t: Timestamp = "2016-03-09T14:44:26.402973972-08:00".parse().unwrap();
/// assert_eq!(t.to_string(), "2016-03-09T22:44:26.402973972Z");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// Seconds and nanoseconds since the Unix epoch.
    pub fn from_unix(secs: i64, nanos: u32) -> Self {
        let extra = i64::from(nanos / 1_000_000_000);
        Self {
            secs: secs.saturating_add(extra),
            nanos: nanos % 1_000_000_000,
        }
    }

    /// Whole seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        self.secs
    }

    /// The sub-second part in nanoseconds.
    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(&self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self::from_unix(d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                let mut secs = -(d.as_secs() as i64);
                let mut nanos = d.subsec_nanos();
                if nanos > 0 {
                    secs -= 1;
                    nanos = 1_000_000_000 - nanos;
                }
                Self { secs, nanos }
            }
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        if t.secs >= 0 {
            UNIX_EPOCH + Duration::new(t.secs as u64, t.nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs()) + Duration::from_nanos(u64::from(t.nanos))
        }
    }
}

// Howard Hinnant's civil-from-days and days-from-civil algorithms.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days in month `m` (1..=12) of year `y`, by the Gregorian leap rule.
fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Timestamp {
    /// Writes the RFC 3339 form into `buf`, returning it as a string. Years outside
    /// 0..=9999 take the general (slower) path.
    pub(crate) fn write_rfc3339<'a>(&self, buf: &'a mut [u8; 32]) -> Option<&'a str> {
        std::str::from_utf8(self.write_rfc3339_ascii(buf)?).ok()
    }

    /// [`write_rfc3339`](Self::write_rfc3339) as bytes, all ASCII digits and `-T:.Z` (no
    /// UTF-8 check needed, nothing a JSON string escapes).
    pub(crate) fn write_rfc3339_ascii<'a>(&self, buf: &'a mut [u8; 32]) -> Option<&'a [u8]> {
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400);
        let (y, mo, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            return None;
        }
        let mut put = |at: usize, v: u64, width: usize| {
            let mut v = v;
            for i in (0..width).rev() {
                buf[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, y as u64, 4);
        put(5, mo as u64, 2);
        put(8, d as u64, 2);
        put(11, (rem / 3600) as u64, 2);
        put(14, ((rem / 60) % 60) as u64, 2);
        put(17, (rem % 60) as u64, 2);
        buf[4] = b'-';
        buf[7] = b'-';
        buf[10] = b'T';
        buf[13] = b':';
        buf[16] = b':';
        let len = write_fraction(buf, self.nanos);
        Some(&buf[..len])
    }
}

/// Writes the fraction of a second and the zone (`.123456789Z`, trailing zeros dropped, the
/// dot too for a whole second) after the 19 bytes of date and time in `buf`; returns the
/// length of the whole. A writer keeping the date and time of the last second rewrites only
/// this part (`nanos` is below 10⁹ in every [`Timestamp`]).
pub(crate) fn write_fraction(buf: &mut [u8; 32], nanos: u32) -> usize {
    let mut v = nanos;
    for i in (20..29).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    buf[19] = b'.';
    let mut end = 29;
    // Trailing zeros of the fraction go, and the dot with them when it is zero.
    while end > 20 && buf[end - 1] == b'0' {
        end -= 1;
    }
    if end == 20 {
        end = 19;
    }
    buf[end] = b'Z';
    end + 1
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 32];
        if let Some(s) = self.write_rfc3339(&mut buf) {
            return f.write_str(s);
        }
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400);
        let (y, mo, d) = civil_from_days(days);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            y,
            mo,
            d,
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        )?;
        if self.nanos != 0 {
            let mut digits = format!("{:09}", self.nanos);
            while digits.ends_with('0') {
                digits.pop();
            }
            write!(f, ".{digits}")?;
        }
        f.write_str("Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The error returned when a string is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTimestampError(String);

impl fmt::Display for ParseTimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid RFC 3339 timestamp {:?}", self.0)
    }
}

impl std::error::Error for ParseTimestampError {}

impl std::str::FromStr for Timestamp {
    type Err = ParseTimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseTimestampError(s.chars().take(64).collect());
        let b = s.as_bytes();
        if !s.is_ascii()
            || b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || !(b[10] == b'T' || b[10] == b't')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(err());
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64, ParseTimestampError> {
            let part = &s[r];
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse::<i64>().map_err(|_| err())
            } else {
                Err(err())
            }
        };
        let (y, mo, d, h, mi, se) = (
            num(0..4)?,
            num(5..7)?,
            num(8..10)?,
            num(11..13)?,
            num(14..16)?,
            num(17..19)?,
        );
        // Ranges as Go's `time.Parse` checks them: the day within its month, no leap second.
        if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 59 {
            return Err(err());
        }
        let mut i = 19;
        let mut nanos: u32 = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let frac = &s[start..i];
            if frac.is_empty() || frac.len() > 9 {
                return Err(err());
            }
            nanos = frac.parse::<u32>().map_err(|_| err())? * 10u32.pow(9 - frac.len() as u32);
        }
        let offset: i64 = match &s[i..] {
            "Z" | "z" => 0,
            rest if rest.len() == 6
                && (rest.starts_with('+') || rest.starts_with('-'))
                && rest.as_bytes()[3] == b':' =>
            {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                if oh > 23 || om > 59 {
                    return Err(err());
                }
                let sign = if rest.starts_with('-') { -1 } else { 1 };
                sign * (oh * 3600 + om * 60)
            }
            _ => return Err(err()),
        };
        let days = days_from_civil(y, mo as u32, d as u32);
        let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
        Ok(Self { secs, nanos })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 32];
        match self.write_rfc3339(&mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips_and_trims() {
        for (input, out) in [
            ("2006-01-02T15:04:05Z", "2006-01-02T15:04:05Z"),
            ("2026-11-27T22:53:11.428412247Z", "2026-11-27T22:53:11.428412247Z"),
            ("2026-11-27T22:53:11.4284100Z", "2026-11-27T22:53:11.42841Z"),
            ("1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.5Z"),
            ("2000-02-29T00:00:00+01:00", "2000-02-28T23:00:00Z"),
        ] {
            let t: Timestamp = input.parse().unwrap();
            assert_eq!(t.to_string(), out);
        }
    }

    #[test]
    fn system_time_conversion() {
        let st = UNIX_EPOCH + Duration::new(1_136_214_245, 0);
        assert_eq!(Timestamp::from(st).to_string(), "2006-01-02T15:04:05Z");
        assert_eq!(SystemTime::from(Timestamp::from(st)), st);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "2006-01-02",
            "2006-13-02T15:04:05Z",
            "2006-01-02T15:04:05",
            "2006-01-02T15:04:05.Z",
            "2006-01-02T15:04:05.1234567890Z",
            "２００６-01-02T15:04:05Z",
            // No zone, a zone without a colon, out-of-range fields (Go refuses them all).
            "2006-01-02T15:04:05.123",
            "2006-01-02T15:04:05.123+0100",
            "2006-01-02T15:04:05+0100",
            "2006-01-02T15:04:05+01",
            "2006-01-02T15:04:05+01:00:00",
            "2006-01-02T25:61:99Z",
            "2006-01-02T24:00:00Z",
            "2006-01-02T23:60:00Z",
            "2006-01-02T23:59:60Z",
            "2006-01-02T15:04:05+24:00",
            "2006-01-02T15:04:05-01:60",
            "2006-01-02T15:04:05+1a:00",
            "2006-00-02T15:04:05Z",
            "2006-01-00T15:04:05Z",
            "2006-01-32T15:04:05Z",
            "2006-02-29T15:04:05Z",
            "1900-02-29T15:04:05Z",
            "2006-04-31T15:04:05Z",
            "2006-01-02 15:04:05Z",
            "2006-01-02T15:04:05Z ",
            "2006-01-02T15:04:05ZZ",
            "-006-01-02T15:04:05Z",
            "+2006-01-02T15:04:05Z",
            "2006-01-02T15:04:05.+01:00",
            "2006-01-02T15:04:05.1.2Z",
            "2006-01-02T-5:04:05Z",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
        for good in [
            "2000-02-29T00:00:00Z",
            "2400-02-29T00:00:00Z",
            "2006-01-31T23:59:59Z",
            "2006-12-31T00:00:00+23:59",
            "2006-12-31T00:00:00-23:59",
            "2006-12-31T00:00:00-00:00",
            "2006-12-31t00:00:00z",
        ] {
            assert!(good.parse::<Timestamp>().is_ok(), "{good}");
        }
    }

    /// The sign and the minutes of an offset, fractions, and day arithmetic across months, leap
    /// days and centuries (expected values from Python's `datetime`).
    #[test]
    fn offsets_fractions_and_days() {
        for (input, secs, nanos) in [
            ("2016-03-09T14:44:26-08:00", 1_457_563_466, 0),
            ("2016-03-09T14:44:26+08:00", 1_457_563_466 - 16 * 3600, 0),
            ("2020-01-01T05:30:00+05:30", 1_577_836_800, 0),
            ("2019-12-31T18:30:00-05:30", 1_577_836_800, 0),
            ("2020-01-01T00:00:00-00:01", 1_577_836_860, 0),
            ("2021-05-01T00:00:00Z", 1_619_827_200, 0),
            ("2021-04-30T23:59:59.999999999Z", 1_619_827_199, 999_999_999),
            ("2000-02-29T12:00:00Z", 951_825_600, 0),
            ("2000-03-01T00:00:00Z", 951_868_800, 0),
            ("1900-03-01T00:00:00Z", -2_203_891_200, 0),
            ("2400-02-29T00:00:00Z", 13_574_563_200, 0),
            ("1969-12-31T23:59:59.5Z", -1, 500_000_000),
            ("0000-01-01T00:00:00Z", -62_167_219_200, 0),
            ("9999-12-31T23:59:59Z", 253_402_300_799, 0),
            ("2006-01-02T15:04:05.123Z", 1_136_214_245, 123_000_000),
            ("2006-01-02T15:04:05.000000001Z", 1_136_214_245, 1),
            ("2006-01-02T15:04:05.1+01:00", 1_136_210_645, 100_000_000),
        ] {
            let t: Timestamp = input.parse().unwrap();
            assert_eq!((t.unix_seconds(), t.subsec_nanos()), (secs, nanos), "{input}");
        }
    }

    /// Nanoseconds since the epoch on both sides of it; a `SystemTime` before the epoch
    /// borrows a second for its fraction; the separators are all checked; years 0 to 9999
    /// take the fast writer.
    #[test]
    fn nanos_times_before_the_epoch_separators_and_the_fast_path() {
        assert_eq!(Timestamp::from_unix(2, 5).unix_nanos(), 2_000_000_005);
        assert_eq!(Timestamp::from_unix(-1, 5).unix_nanos(), -999_999_995);
        let before = |d: std::time::Duration| Timestamp::from(UNIX_EPOCH - d);
        let t = before(std::time::Duration::from_millis(1_500));
        assert_eq!((t.unix_seconds(), t.subsec_nanos()), (-2, 500_000_000));
        let t = before(std::time::Duration::from_secs(2));
        assert_eq!((t.unix_seconds(), t.subsec_nanos()), (-2, 0));
        for bad in [
            "2006-01-02T15:04x05Z",
            "2006-01-02T15x04:05Z",
            "2006-01-02x15:04:05Z",
            "2006-01x02T15:04:05Z",
            "2006x01-02T15:04:05Z",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
        let mut buf = [0u8; 32];
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(Timestamp::from_unix(secs, 0).write_rfc3339(&mut buf), Some(text));
        }
        assert_eq!(
            Timestamp::from_unix(253_402_300_800, 0).write_rfc3339(&mut buf),
            None
        );
    }

    #[test]
    fn writes_trimmed_fractions_and_any_year() {
        for (secs, nanos, out) in [
            (0, 0, "1970-01-01T00:00:00Z"),
            (0, 1, "1970-01-01T00:00:00.000000001Z"),
            (0, 100_000_000, "1970-01-01T00:00:00.1Z"),
            (0, 120_000_000, "1970-01-01T00:00:00.12Z"),
            (0, 999_999_999, "1970-01-01T00:00:00.999999999Z"),
            (0, 1_500_000_000, "1970-01-01T00:00:01.5Z"),
            (-62_167_219_200, 0, "0000-01-01T00:00:00Z"),
            (253_402_300_799, 10, "9999-12-31T23:59:59.00000001Z"),
            (253_402_300_800, 10, "10000-01-01T00:00:00.00000001Z"),
            (1_136_214_245, 0, "2006-01-02T15:04:05Z"),
        ] {
            assert_eq!(Timestamp::from_unix(secs, nanos).to_string(), out);
        }
    }

    /// Days in a month by a calendar of its own, for the checks below.
    fn month_len(y: i64, m: i64) -> i64 {
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ][(m - 1) as usize]
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` written independently of the code under test.
    fn rfc3339(y: i64, m: i64, d: i64, sod: i64, nanos: u32) -> String {
        let mut s = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        );
        if nanos > 0 {
            s.push_str(format!(".{nanos:09}").trim_end_matches('0'));
        }
        s + "Z"
    }

    /// Every day from 1600 to 2400, counted one by one with a calendar of its own (no day
    /// arithmetic shared with the code), reads and writes back, at a time of day and fraction
    /// that vary from day to day.
    #[test]
    fn every_day_from_1600_to_2400_round_trips() {
        let check = |day: i64, (y, m, d): (i64, i64, i64)| {
            let sod = (day * 7919).rem_euclid(86_400);
            let nanos = (day * 104_729).rem_euclid(1_000_000_000) as u32;
            let nanos = if day % 3 == 0 { 0 } else { nanos };
            let text = rfc3339(y, m, d, sod, nanos);
            let t: Timestamp = text.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (t.unix_seconds(), t.subsec_nanos()),
                (day * 86_400 + sod, nanos),
                "{text}"
            );
            assert_eq!(t.to_string(), text);
        };
        let (mut day, mut date) = (0i64, (1970i64, 1i64, 1i64));
        while date.0 <= 2400 {
            check(day, date);
            let (y, m, d) = date;
            date = if d < month_len(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            day += 1;
        }
        let (mut day, mut date) = (0i64, (1970i64, 1i64, 1i64));
        while date.0 >= 1600 {
            check(day, date);
            let (y, m, d) = date;
            date = if d > 1 {
                (y, m, d - 1)
            } else if m > 1 {
                (y, m - 1, month_len(y, m - 1))
            } else {
                (y - 1, 12, 31)
            };
            day -= 1;
        }
    }

    /// Civil date of a day number, by whole 400-year cycles then year and month lengths.
    fn civil(days: i64) -> (i64, i64, i64) {
        // 0000-01-01 is 719 528 days before 1970-01-01 and starts a 400-year cycle.
        let z = days + 719_528;
        let mut rest = z.rem_euclid(146_097);
        let mut y = z.div_euclid(146_097) * 400;
        // A year is February plus 337 days.
        while rest >= month_len(y, 2) + 337 {
            rest -= month_len(y, 2) + 337;
            y += 1;
        }
        let mut m = 1;
        while rest >= month_len(y, m) {
            rest -= month_len(y, m);
            m += 1;
        }
        (y, m, rest + 1)
    }

    /// Seeded, 256 cases each; a long run:
    /// `PROPTEST_CASES=200000 cargo test --release --all-features --lib timestamp`.
    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig {
                failure_persistence: None,
                rng_seed: proptest::test_runner::RngSeed::Fixed(0x7153),
                ..ProptestConfig::default()
            })]

            /// Any instant of years 0..=9999, written with any offset, reads back exactly, and
            /// writes as the independent UTC form.
            #[test]
            fn instants_with_offsets_round_trip(
                secs in -62_167_219_200i64 + 86_400..253_402_300_799 - 86_400,
                nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000],
                offset in -(23 * 60 + 59)..=23i64 * 60 + 59,
            ) {
                let t = Timestamp::from_unix(secs, nanos);
                let (y, m, d) = civil(secs.div_euclid(86_400));
                let utc = rfc3339(y, m, d, secs.rem_euclid(86_400), nanos);
                prop_assert_eq!(t.to_string(), utc.clone());
                prop_assert_eq!(utc.parse::<Timestamp>(), Ok(t));
                let local = secs + offset * 60;
                let (y, m, d) = civil(local.div_euclid(86_400));
                let zone = format!("{}{:02}:{:02}", if offset < 0 { '-' } else { '+' }, offset.abs() / 60, offset.abs() % 60);
                let text = rfc3339(y, m, d, local.rem_euclid(86_400), nanos).replace('Z', &zone);
                prop_assert_eq!(text.parse::<Timestamp>(), Ok(t), "{}", text);
            }

            /// Arbitrary text, and text made of a timestamp's characters, never panics.
            #[test]
            fn parsing_never_panics(
                s in prop_oneof![any::<String>(), "[0-9T:.Zz+ -]{0,40}", "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{0,20}[Z+-]?[0-9:]{0,8}"]
            ) {
                if let Ok(t) = s.parse::<Timestamp>() {
                    // Whatever is accepted writes back as a timestamp that reads as itself.
                    prop_assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
                }
            }
        }
    }
}
