//! Go's `time.ParseDuration`, exactly.
//!
//! Distribution reads every duration of its configuration with Go's parser, so we accept exactly
//! the same strings: an optional sign, then one or more `<number><unit>` pairs where the number may
//! have a fraction (`1.5h`, `.5s`, `5.s`) and the unit is one of `ns`, `us`, `µs` (U+00B5), `μs`
//! (U+03BC), `ms`, `s`, `m`, `h`. The string `0` (optionally signed) needs no unit. The value must
//! fit Go's `time.Duration` (a signed 64-bit count of nanoseconds, about ±292 years).

use std::fmt;

/// Why a string is not a Go duration. `Display` is Go's own message, e.g.
/// `time: unknown unit "d" in duration "1d"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParseDurationError {
    kind: ErrorKind,
    input: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ErrorKind {
    Invalid,
    MissingUnit,
    UnknownUnit(String),
}

impl ParseDurationError {
    fn new(kind: ErrorKind, input: &str) -> Self {
        ParseDurationError {
            kind,
            input: input.to_owned(),
        }
    }

    /// `true` if the only problem is a missing unit (`"500"`), the classic bare-number mistake.
    pub(crate) fn is_missing_unit(&self) -> bool {
        self.kind == ErrorKind::MissingUnit
    }
}

impl fmt::Display for ParseDurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Invalid => write!(f, "time: invalid duration {:?}", self.input),
            ErrorKind::MissingUnit => write!(f, "time: missing unit in duration {:?}", self.input),
            ErrorKind::UnknownUnit(u) => write!(f, "time: unknown unit {u:?} in duration {:?}", self.input),
        }
    }
}

impl std::error::Error for ParseDurationError {}

const NANOSECOND: u64 = 1;
const MICROSECOND: u64 = 1_000 * NANOSECOND;
const MILLISECOND: u64 = 1_000 * MICROSECOND;
const SECOND: u64 = 1_000 * MILLISECOND;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const LIMIT: u64 = 1 << 63;

fn unit(u: &str) -> Option<u64> {
    Some(match u {
        "ns" => NANOSECOND,
        "us" | "\u{b5}s" | "\u{3bc}s" => MICROSECOND,
        "ms" => MILLISECOND,
        "s" => SECOND,
        "m" => MINUTE,
        "h" => HOUR,
        _ => return None,
    })
}

/// Parses a Go duration string (`"1m30s"`, `"-1.5h"`, `"300µs"`, `"0"`) into signed nanoseconds,
/// with the semantics of Go's `time.ParseDuration`, overflow checks included.
///
/// `"1m30s"` gives `90_000_000_000`, `"-2.5ms"` gives `-2_500_000`; `"500"` is a missing unit and
/// `"1d"` fails with Go's own message, `time: unknown unit "d" in duration "1d"`.
pub(crate) fn parse_go_duration(input: &str) -> Result<i64, ParseDurationError> {
    let invalid = || ParseDurationError::new(ErrorKind::Invalid, input);
    let mut s = input.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first() {
        if c == b'-' || c == b'+' {
            neg = c == b'-';
            s = &s[1..];
        }
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        // The next character must be [0-9.].
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // [0-9]*
        let before = s.len();
        let (mut v, rest) = leading_int(s).ok_or_else(invalid)?;
        s = rest;
        let pre = before != s.len();
        // (\.[0-9]*)?
        let mut post = false;
        let (mut f, mut scale) = (0u64, 1f64);
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let before = s.len();
            let (x, sc, rest) = leading_fraction(s);
            (f, scale, s) = (x, sc, rest);
            post = before != s.len();
        }
        if !pre && !post {
            // No digits, e.g. ".s" or "-.s".
            return Err(invalid());
        }
        // The unit: everything up to the next '.' or digit.
        let i = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if i == 0 {
            return Err(ParseDurationError::new(ErrorKind::MissingUnit, input));
        }
        let (u, rest) = s.split_at(i);
        s = rest;
        // `u` ends before an ASCII byte (or at the end), so it is valid UTF-8.
        let u = std::str::from_utf8(u).unwrap_or("");
        let unit =
            unit(u).ok_or_else(|| ParseDurationError::new(ErrorKind::UnknownUnit(u.to_owned()), input))?;
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            // float64 keeps nanosecond accuracy for fractions of hours, as in Go.
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        d += v;
        if d > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        // d <= 2^63, so the wrapping negation is exact (and gives i64::MIN for 2^63).
        return Ok((d as i64).wrapping_neg());
    }
    if d > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(d as i64)
}

/// Consumes the leading `[0-9]*`; `None` on overflow past 2^63.
fn leading_int(s: &[u8]) -> Option<(u64, &[u8])> {
    let mut x: u64 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        if x > LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(s[i] - b'0');
        if x > LIMIT {
            return None;
        }
        i += 1;
    }
    Some((x, &s[i..]))
}

/// Consumes the leading `[0-9]*` of a fraction; stops accumulating precision on overflow.
fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
    let mut x: u64 = 0;
    let mut scale = 1f64;
    let mut overflow = false;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        let c = s[i];
        i += 1;
        if overflow {
            continue;
        }
        if x > (LIMIT - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > LIMIT {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[i..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: i64 = 1;
    const US: i64 = 1_000;
    const MS: i64 = 1_000_000;
    const S: i64 = 1_000_000_000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;

    /// Go's `parseDurationTests` (src/time/time_test.go), plus the cases the brief names.
    #[test]
    fn go_parse_duration_table() {
        let table: &[(&str, i64)] = &[
            ("0", 0),
            ("5s", 5 * S),
            ("30s", 30 * S),
            ("1478s", 1478 * S),
            ("-5s", -5 * S),
            ("+5s", 5 * S),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5 * S),
            ("5.6s", 5 * S + 600 * MS),
            ("5.s", 5 * S),
            (".5s", 500 * MS),
            ("1.0s", S),
            ("1.00s", S),
            ("1.004s", S + 4 * MS),
            ("1.0040s", S + 4 * MS),
            ("100.00100s", 100 * S + MS),
            ("10ns", 10 * NS),
            ("11us", 11 * US),
            ("12µs", 12 * US),
            ("12μs", 12 * US),
            ("13ms", 13 * MS),
            ("14s", 14 * S),
            ("15m", 15 * M),
            ("16h", 16 * H),
            ("3h30m", 3 * H + 30 * M),
            ("10.5s4m", 4 * M + 10 * S + 500 * MS),
            ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
            ("1h2m3s4ms5us6ns", H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS),
            ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
            ("52763797000ns", 52763797000 * NS),
            ("0.3333333333333333333h", 20 * M),
            ("9007199254740993ns", (1 << 53) + 1),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036854775.808us", i64::MIN),
            ("-9223372036s854ms775us808ns", i64::MIN),
            ("-2562047h47m16.854775808s", i64::MIN),
            ("0.100000000000000000000h", 6 * M),
            ("0.830103483285477580700h", 49 * M + 48 * S + 372539827 * NS),
            // The brief's examples.
            ("1s", S),
            ("500ms", 500 * MS),
            ("1m30s", 90 * S),
            ("1h", H),
            ("2.5s", 2500 * MS),
            ("300us", 300 * US),
            ("300µs", 300 * US),
            ("100ns", 100),
            ("-1s", -S),
        ];
        for &(input, want) in table {
            assert_eq!(parse_go_duration(input), Ok(want), "{input:?}");
        }
    }

    /// Go's `parseDurationErrorTests`, with Go's messages.
    #[test]
    fn go_parse_duration_errors() {
        let table: &[(&str, &str)] = &[
            ("", r#"time: invalid duration """#),
            ("3", r#"time: missing unit in duration "3""#),
            ("-", r#"time: invalid duration "-""#),
            ("s", r#"time: invalid duration "s""#),
            (".", r#"time: invalid duration ".""#),
            ("-.", r#"time: invalid duration "-.""#),
            (".s", r#"time: invalid duration ".s""#),
            ("+.s", r#"time: invalid duration "+.s""#),
            ("1d", r#"time: unknown unit "d" in duration "1d""#),
            ("\u{FFFD}", "time: invalid duration \"\u{FFFD}\""),
            (
                "9223372036854775810ns",
                r#"time: invalid duration "9223372036854775810ns""#,
            ),
            (
                "9223372036854775808ns",
                r#"time: invalid duration "9223372036854775808ns""#,
            ),
            (
                "-9223372036854775809ns",
                r#"time: invalid duration "-9223372036854775809ns""#,
            ),
            (
                "9223372036854776us",
                r#"time: invalid duration "9223372036854776us""#,
            ),
            ("3000000h", r#"time: invalid duration "3000000h""#),
            (
                "9223372036854775.808us",
                r#"time: invalid duration "9223372036854775.808us""#,
            ),
            (
                "9223372036854ms775us808ns",
                r#"time: invalid duration "9223372036854ms775us808ns""#,
            ),
            // More shapes Go rejects.
            (" 1s", r#"time: invalid duration " 1s""#),
            ("1 s", r#"time: unknown unit " s" in duration "1 s""#),
            ("1s ", r#"time: unknown unit "s " in duration "1s ""#),
            ("1S", r#"time: unknown unit "S" in duration "1S""#),
            ("1sec", r#"time: unknown unit "sec" in duration "1sec""#),
            ("--1s", r#"time: invalid duration "--1s""#),
            ("1e3s", r#"time: unknown unit "e" in duration "1e3s""#),
            ("1.5", r#"time: missing unit in duration "1.5""#),
            ("1s2", r#"time: missing unit in duration "1s2""#),
            ("00", r#"time: missing unit in duration "00""#),
            ("0x10s", r#"time: unknown unit "x" in duration "0x10s""#),
            ("1µ", r#"time: unknown unit "µ" in duration "1µ""#),
        ];
        for &(input, want) in table {
            let err = parse_go_duration(input).expect_err(input);
            assert_eq!(err.to_string(), want, "{input:?}");
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        let long_digits = "9".repeat(10_000);
        let long_frac = format!("1.{}s", "9".repeat(10_000));
        let many = "1ns".repeat(10_000);
        for input in [
            long_digits.as_str(),
            long_frac.as_str(),
            many.as_str(),
            "µ",
            "1µµs",
            "-",
            "+",
            ".",
            "\0",
            "1\u{3bc}",
            "١s",
        ] {
            let _ = parse_go_duration(input);
        }
        assert_eq!(parse_go_duration(&many), Ok(10_000));
        assert_eq!(parse_go_duration(&long_frac), Ok(2 * S));
    }

    /// Fractions of 19 and more digits around the point where the fraction stops gaining
    /// precision (x > (2^63 - 1) / 10, or x * 10 + digit > 2^63) and where the sum reaches
    /// 2^63. Expected values from a line-by-line port of Go's `time.ParseDuration` to Python,
    /// whose floats are Go's float64.
    #[test]
    fn long_fractions_at_the_overflow_boundary() {
        let table: &[(&str, Option<i64>)] = &[
            ("0.9223372036854775807h", Some(3_320_413_933_267)),
            ("0.9223372036854775808h", Some(3_320_413_933_267)),
            ("0.9223372036854775809h", Some(3_320_413_933_267)),
            ("0.92233720368547758089999h", Some(3_320_413_933_267)),
            ("0.922337203685477581h", Some(3_320_413_933_267)),
            ("0.9223372036854775810h", Some(3_320_413_933_267)),
            ("-0.9223372036854775808h", Some(-3_320_413_933_267)),
            ("1.9223372036854775808s", Some(1_922_337_203)),
            ("0.9999999999999999999h", Some(3_600_000_000_000)),
            ("0.99999999999999999999999h", Some(3_600_000_000_000)),
            ("0.00000000000000000001h", Some(0)),
            ("0.0000000000000000001h", Some(0)),
            ("0.1000000000000000000001h", Some(360_000_000_000)),
            ("5.0000000000000000000000000000001s", Some(5_000_000_000)),
            ("0.3333333333333333333333333h", Some(1_200_000_000_000)),
            ("2562047h47m16.8547758079999s", Some(i64::MAX)),
            ("2562047h47m16.8547758089999s", None),
            ("-2562047h47m16.8547758089999s", Some(i64::MIN)),
            ("9223372036.8547758079s", Some(i64::MAX)),
            ("9223372036.8547758089s", None),
        ];
        for &(input, want) in table {
            assert_eq!(parse_go_duration(input).ok(), want, "{input:?}");
        }
    }

    /// Seeded, 256 cases each; a long run:
    /// `PROPTEST_CASES=200000 cargo test --release --all-features --lib duration`.
    mod props {
        use proptest::prelude::*;

        use super::*;

        /// `ns` as `1h2m3s4ms5us6ns` (nonzero units only).
        fn units(ns: u64) -> String {
            let mut rest = ns;
            let mut out = String::new();
            for (unit, size) in [("h", H), ("m", M), ("s", S), ("ms", MS), ("us", US), ("ns", NS)] {
                let size = size as u64;
                if rest >= size {
                    out.push_str(&format!("{}{unit}", rest / size));
                    rest %= size;
                }
            }
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                failure_persistence: None,
                rng_seed: proptest::test_runner::RngSeed::Fixed(0xd0a7),
                ..ProptestConfig::default()
            })]

            /// Every duration, written as nanoseconds, in units, or in seconds with nine
            /// fractional digits (exact in Go's float arithmetic), reads back exactly.
            #[test]
            fn every_duration_reads_back(ns in any::<i64>()) {
                let abs = ns.unsigned_abs();
                let sign = if ns < 0 { "-" } else { "" };
                if ns != 0 {
                    prop_assert_eq!(parse_go_duration(&format!("{sign}{abs}ns")), Ok(ns));
                    prop_assert_eq!(parse_go_duration(&format!("{sign}{}", units(abs))), Ok(ns));
                    let secs = format!("{sign}{}.{:09}s", abs / 1_000_000_000, abs % 1_000_000_000);
                    prop_assert_eq!(parse_go_duration(&secs), Ok(ns), "{}", secs);
                }
            }

            /// Any text, and text made of a duration's characters, gives a value or Go's error.
            #[test]
            fn never_panics(s in prop_oneof![any::<String>(), "[-+0-9.a-zµμ]{0,40}"]) {
                if let Err(e) = parse_go_duration(&s) {
                    prop_assert!(e.to_string().starts_with("time: "));
                }
            }
        }
    }
}
