//! Malformed input: mutations and truncations of a full config, wrong types in every key,
//! pathological YAML.

use proptest::prelude::*;

use super::{config, parse_checked, parse_checked_secrets, read, SECRET};

proptest! {
    #![proptest_config(config())]

    /// A full Distribution config with a few characters deleted, inserted or replaced.
    #[test]
    fn mutations_of_a_full_config_are_handled(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, prop::sample::select(
            " \t\n:-[]{},#&*!|>'\"%@`?0123456789.aeiouxyz\u{0}\u{b5}\u{feff}é".chars().collect::<Vec<_>>()
        )), 1..5)
    ) {
        let full = read("distribution-full.yml");
        // The `@` and `?` around the secrets of the URL with credentials: while they stand, the
        // secrets must stay hidden.
        let url = full.find("audit:SECRET-password@").unwrap();
        let markers: Vec<usize> = full[url..]
            .char_indices()
            .take_while(|&(_, c)| c != '\n')
            .filter(|&(_, c)| c == '@' || c == '?')
            .map(|(i, _)| full[..url + i].chars().count())
            .collect();
        let mut text: Vec<(char, bool)> =
            full.chars().enumerate().map(|(i, c)| (c, markers.contains(&i))).collect();
        let mut intact = true;
        for (at, op, c) in edits {
            let at = at.index(text.len());
            match op {
                0 => intact &= !text.remove(at).1,
                1 => text.insert(at, (c, false)),
                _ => {
                    intact &= !text[at].1;
                    text[at] = (c, false);
                }
            }
        }
        let _ = parse_checked_secrets(&text.into_iter().map(|(c, _)| c).collect::<String>(), intact);
    }
}

#[test]
fn every_truncation_of_a_full_config_is_handled() {
    let full = read("distribution-full.yml");
    let mut ok = 0;
    for (i, _) in full.char_indices() {
        if parse_checked(&full[..i]).is_ok() {
            ok += 1;
        }
    }
    assert!(ok > 0);
    assert!(parse_checked(&full).is_ok());
}

#[test]
fn wrong_types_huge_numbers_and_negative_durations_in_every_key() {
    let keys = [
        "name",
        "disabled",
        "url",
        "headers",
        "timeout",
        "threshold",
        "backoff",
        "ignoredmediatypes",
        "ignore",
        "format",
        "maxevents",
        "linger",
        "queue",
        "retry",
        "filter",
        "redirects",
        "tls",
    ];
    let sub_keys = [
        ("ignore", ["mediatypes", "actions"].as_slice()),
        ("queue", &["capacity", "overflow"]),
        (
            "retry",
            &[
                "mode",
                "initial",
                "max",
                "multiplier",
                "jitter",
                "maxattempts",
                "maxage",
            ],
        ),
        ("filter", &["repositories", "methods"]),
        ("tls", &["ca", "insecureskipverify"]),
        ("headers", &["Authorization"]),
    ];
    let values = [
        "~",
        "''",
        "true",
        "0",
        "-1",
        "1.5",
        "-1s",
        "-9223372036854775808ns",
        "9223372036854775807",
        "18446744073709551615",
        "99999999999999999999999999999",
        "1e400",
        "-.inf",
        ".nan",
        "[]",
        "[{s}]",
        "[[{s}]]",
        "{}",
        "{k: {s}}",
        "!tag {s}",
        "'{s}\\u0000'",
        "\"{s}\\n\"",
        "\"\\u00b5s\"",
        "2562048h",
        "&a [*a]",
    ];
    let base = "notifications:\n  endpoints:\n    - name: a\n      url: http://a/\n";
    // Only header values are secret (names, media types, globs… are shown in messages).
    let fill = |value: &str, secret: bool| value.replace("{s}", if secret { SECRET } else { "x" });
    for key in keys {
        for value in values {
            let yaml = format!("{base}      {key}: {}\n", fill(value, key == "headers"));
            let _ = parse_checked(&yaml);
        }
    }
    for (section, subs) in sub_keys {
        for sub in subs {
            for value in values {
                let yaml = format!(
                    "{base}      {section}:\n        {sub}: {}\n",
                    fill(value, section == "headers")
                );
                let _ = parse_checked(&yaml);
            }
        }
    }
    // URL credentials, in URLs broken in various ways.
    for url in [
        "https://user:SECRET@host/x",
        "https:/user:SECRET@host/x",
        "https:user:SECRET@host/x",
        "https://user:SECRET@",
        "https://user:SECRET@host:port/x",
        "https://user:SECRET",
        "https://SECRET@host:99999999/x",
        "ftp://user:SECRET@host/x",
        "https://user:SECRET@ho st/x",
        "https://host/x?token=SECRET",
        "https://host/x?token=SECRET#frag",
        "https://host:SECRET/x",
    ] {
        let _ = parse_checked(&format!(
            "notifications: {{endpoints: [{{name: a, url: '{url}'}}]}}"
        ));
        let _ = parse_checked(&format!(
            "notifications: {{endpoints: [{{name: a, url: '{url}', timout: 1s}}]}}"
        ));
        let _ = parse_checked(&format!("http: {{host: '{url}'}}"));
        // Written as a YAML tag by mistake (found by a long run of the mutation property).
        let _ = parse_checked(&format!(
            "notifications: {{endpoints: [{{name: a, url: !{url}}}]}}"
        ));
    }
    // A few with a definite outcome.
    let must_fail = [
        "timeout: -1s\n      retry: {initial: -1s}",
        "threshold: 99999999999999999999999999999",
        "maxevents: 1e400",
        "linger: -1ms",
        "linger: soon",
        "headers: {Authorization: [[SECRET]]}",
        "retry: {multiplier: .nan}",
        "timeout: 2562048h",
    ];
    for extra in must_fail {
        let yaml = format!("{base}      {extra}\n");
        assert!(parse_checked(&yaml).is_err(), "{extra}");
    }
    // Negative Distribution durations are refused (Distribution silently uses the default).
    let e = parse_checked(&format!(
        "{base}      timeout: -1s\n      backoff: '-9223372036854775808ns'\n"
    ))
    .unwrap_err();
    assert!(
        e.starts_with("notifications.endpoints[0] (\"a\").timeout must be > 0, got -1s"),
        "{e}"
    );
}

#[test]
fn pathological_yaml_is_rejected_not_fatal() {
    // Deep nesting: the YAML parser needs time quadratic in the flow nesting depth, so a
    // linear pre-scan refuses it first. Its own message proves the parser never ran (no
    // timing needed: a test must not depend on the runner's speed).
    let deep = format!("notifications: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_checked(&deep)
        .unwrap_err()
        .contains("nested more than 1000 levels"));
    let deep = format!("notifications: {}{}", "[".repeat(1000), "]".repeat(1000));
    assert!(parse_checked(&deep).is_err());
    let deep_maps = format!("a: {}1{}", "{b: ".repeat(900), "}".repeat(900));
    let _ = parse_checked(&deep_maps);
    // Alias expansion bomb.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = format!("*a{}", i - 1);
        bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
    }
    let _ = parse_checked(&bomb);
    // Very long scalars and keys.
    let long = "x".repeat(1 << 20);
    let _ = parse_checked(&format!(
        "notifications:\n  endpoints:\n    - name: {long}\n      url: http://a/\n"
    ));
    let _ = parse_checked(&format!("{long}: 1\n"));
    // Non-string keys everywhere.
    let _ = parse_checked("? [a]\n: 1\n");
    assert!(parse_checked("notifications:\n  ? [a]\n  : 1\n").is_err());
    // Invalid UTF-8 cannot reach us (&str); a byte-order mark and NULs can.
    let _ = parse_checked("\u{feff}version: 0.1\n");
    let _ = parse_checked("version: 0.1\n\0\n");
}
