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

/// The fraction written two digits at a time is `{:09}`'s digits, trimmed of trailing zeros
/// (and of the dot when none is left), for values with every digit and zero in every place.
#[test]
fn fractions_digit_by_digit() {
    let reference = |nanos: u32| {
        let digits = format!("{nanos:09}");
        let digits = digits.trim_end_matches('0');
        if digits.is_empty() {
            "Z".to_owned()
        } else {
            format!(".{digits}Z")
        }
    };
    let samples = (0..200_000u64)
        .map(|k| (k * 1_000_003 % 1_000_000_000) as u32)
        .chain((0..9).map(|p| 10u32.pow(p)))
        .chain([999_999_999, 100_000_001, 10_101_010]);
    for nanos in samples {
        let mut buf = [0u8; 32];
        let end = super::write_fraction(&mut buf, nanos);
        assert_eq!(
            std::str::from_utf8(&buf[19..end]).unwrap(),
            reference(nanos),
            "{nanos}"
        );
    }
}
