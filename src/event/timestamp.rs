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
    // Two digits at a time, from the last.
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut v = nanos % 1_000_000_000;
    for i in [27, 25, 23, 21] {
        let pair = (v % 100) as usize * 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        v /= 100;
    }
    buf[20] = b'0' + v as u8;
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
mod tests;
