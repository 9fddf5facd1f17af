//! Distribution's endpoint keys: defaults, durations, headers, URLs, `ignore`.

use super::*;

#[test]
fn endpoint_defaults_match_distribution() {
    let e = ep("");
    assert_eq!(e.name, "a");
    assert_eq!(e.url, "http://listener:8080/events");
    assert!(!e.disabled);
    assert!(e.headers.is_empty());
    assert_eq!(e.timeout, Duration::from_secs(1));
    assert_eq!(e.threshold, 10);
    assert_eq!(e.backoff, Duration::from_secs(1));
    assert!(e.ignored_media_types.is_empty());
    assert_eq!(e.ignore, IgnoreConfig::default());
    // Extensions.
    assert_eq!(e.format, Format::EventsV2);
    assert_eq!(e.max_events, 1);
    assert_eq!(e.queue.capacity, 100_000);
    assert_eq!(e.queue.overflow, crate::queue::Overflow::DropOldest);
    assert_eq!(e.retry.mode, RetryMode::Exponential);
    assert_eq!(e.retry.initial, Duration::from_millis(500));
    assert_eq!(e.retry.max, Duration::from_secs(60));
    assert_eq!(e.retry.multiplier, 2.0);
    assert_eq!(e.retry.jitter, 0.2);
    assert_eq!(e.retry.max_attempts, None);
    assert_eq!(e.retry.max_age, Duration::from_secs(86_400));
    assert_eq!(e.filter, FilterSettings::default());
    assert!(!e.redirects_as_success);
    assert_eq!(e.tls, TlsSettings::default());
    assert_eq!(
        e,
        EndpointConfig {
            name: "a".into(),
            url: e.url.clone(),
            ..EndpointConfig::default()
        }
    );
}

/// Distribution replaces a `timeout`, `threshold` or `backoff` ≤ 0 with its default, silently; we
/// refuse such values (an absent or empty key still means the default).
#[test]
fn null_means_default_zero_or_negative_is_refused() {
    let e = ep("timeout: ~, threshold: ~, backoff: ~");
    assert_eq!(
        (e.timeout, e.threshold, e.backoff),
        (Duration::from_secs(1), 10, Duration::from_secs(1))
    );
    let p = "notifications.endpoints[0] (\"a\")";
    let hint = "instead; leave the key out for that)";
    for (extra, want) in [
        (
            "timeout: 0",
            ".timeout must be > 0, got 0 (Distribution would silently use its default, 1s, ",
        ),
        (
            "timeout: '0'",
            ".timeout must be > 0, got 0 (Distribution would silently use its default, 1s, ",
        ),
        (
            "timeout: '+0'",
            ".timeout must be > 0, got +0 (Distribution would silently use its default, 1s, ",
        ),
        (
            "timeout: -1s",
            ".timeout must be > 0, got -1s (Distribution would silently use its default, 1s, ",
        ),
        (
            "backoff: -0",
            ".backoff must be > 0, got 0 (Distribution would silently use its default, 1s, ",
        ),
        (
            "backoff: '-5m'",
            ".backoff must be > 0, got -5m (Distribution would silently use its default, 1s, ",
        ),
        (
            "threshold: 0",
            ".threshold must be > 0, got 0 (Distribution would silently use its default, 10, ",
        ),
        (
            "threshold: -3",
            ".threshold must be > 0, got -3 (Distribution would silently use its default, 10, ",
        ),
    ] {
        assert_eq!(ep_err(extra), format!("{p}{want}{hint}"), "{extra}");
    }
    let e = ep("timeout: 2.5s, threshold: 3, backoff: 1m30s");
    assert_eq!(
        (e.timeout, e.threshold, e.backoff),
        (Duration::from_millis(2500), 3, Duration::from_secs(90))
    );
    assert_eq!(ep("timeout: 300µs").timeout, Duration::from_micros(300));
    assert_eq!(ep("timeout: 100ns").timeout, Duration::from_nanos(100));
}

#[test]
fn bare_integer_duration_is_a_clear_error() {
    let e = ep_err("timeout: 500");
    assert!(
        e.starts_with(
            "notifications.endpoints[0] (\"a\").timeout: a bare number is not accepted as a duration"
        ),
        "{e}"
    );
    assert!(
        e.contains("500 nanoseconds") && e.contains("\"500ms\"") && e.contains("Portus#905"),
        "{e}"
    );
    assert!(ep_err("backoff: 2").contains("backoff: a bare number"));
    assert!(ep_err("retry: {maxage: 3600}").contains("retry.maxage: a bare number"));
    assert!(ep_err("timeout: 1.5").contains("bare number"));
    let e = ep_err("timeout: '500'");
    assert!(
        e.contains("timeout: time: missing unit in duration \"500\""),
        "{e}"
    );
    let e = ep_err("timeout: 1d");
    assert!(
        e.contains("timeout: time: unknown unit \"d\" in duration \"1d\""),
        "{e}"
    );
    let e = ep_err("timeout: [1s]");
    assert!(
        e.ends_with("timeout: expected a duration string such as \"1s\", found a list"),
        "{e}"
    );
}

#[test]
fn headers_lists_single_strings_and_numbers() {
    let e = ep("headers: {Authorization: [Bearer x], X-Multi: [one, two], X-Single: solo, X-Num: [1, 2.5], X-None: ~}");
    assert_eq!(
        e.headers,
        vec![
            ("Authorization".to_owned(), vec!["Bearer x".to_owned()]),
            ("X-Multi".to_owned(), vec!["one".to_owned(), "two".to_owned()]),
            ("X-Single".to_owned(), vec!["solo".to_owned()]),
            ("X-Num".to_owned(), vec!["1".to_owned(), "2.5".to_owned()]),
            ("X-None".to_owned(), vec![]),
        ]
    );
}

#[test]
fn header_errors_never_show_values() {
    let secret = "s3cr3t-token";
    let cases = [
        format!("headers: {{Authorization: [Bearer {secret}], authorization: [x]}}"),
        format!("headers: {{Authorization: {{nested: {secret}}}}}"),
        format!("headers: {{Authorization: [[{secret}]]}}"),
        format!("headers: {{Authorization: [\"{secret}\\n\"]}}"),
        format!("headers: {{\"Bad Name\": [{secret}]}}"),
        format!("headers: [{secret}]"),
        format!("headers: {{X: [{secret}]}}, timout: 1s"),
        format!("headers: {{X: !tag {secret}}}"),
    ];
    let expected = [
        "notifications.endpoints[0] (\"a\").headers: header \"authorization\" is given twice (also as \
         \"Authorization\"; header names are case-insensitive): list all its values under one name",
        "notifications.endpoints[0] (\"a\").headers.Authorization: expected a list of strings, found a mapping",
        "notifications.endpoints[0] (\"a\").headers.Authorization[0]: expected a string, found a list",
        "notifications.endpoints[0] (\"a\").headers.Authorization[0]: invalid header value (control \
         characters are not allowed)",
        "notifications.endpoints[0] (\"a\").headers: invalid header name \"Bad Name\"",
        "notifications.endpoints[0] (\"a\").headers: expected a mapping, found a list",
        "notifications.endpoints[0] (\"a\"): unknown key \"timout\" (did you mean \"timeout\"?)",
        "notifications.endpoints[0] (\"a\").headers.X: expected a list of strings, found a value tagged !tag",
    ];
    for (case, want) in cases.iter().zip(expected) {
        let e = ep_err(case);
        assert_eq!(e, want, "{case}");
        assert!(!e.contains(secret), "{e}");
    }
}

#[test]
fn debug_redacts_secrets() {
    let e = ep(
        "url: 'https://user:pa55@hooks.example.com/x?token=t0k', headers: {Authorization: [Bearer s3cr3t]}",
    );
    let debug = format!(
        "{e:?} {:#?}",
        Config {
            notifications: Some(NotificationsConfig {
                endpoints: vec![e.clone()],
                ..Default::default()
            }),
            ..Default::default()
        }
    );
    for secret in ["s3cr3t", "pa55", "user", "t0k"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("https://***@hooks.example.com/x?***"), "{debug}");
    assert!(debug.contains("Authorization"), "{debug}");
    assert_eq!(e.redacted_url(), "https://***@hooks.example.com/x?***");
}

#[test]
fn url_errors_do_not_show_credentials() {
    let e = ep_err("url: 'ftp://user:pa55@host/x?token=t0k'");
    assert_eq!(
        e,
        "notifications.endpoints[0] (\"a\").url: must be an http:// or https:// URL (got \"ftp://***@host/x?***\")"
    );
    assert_eq!(
        ep_err("url: 'http://not a url'"),
        "notifications.endpoints[0] (\"a\").url: is not a valid URL (got \"http://not a url\")"
    );
    assert_eq!(
        ep_err("url: listener:8080/events"),
        "notifications.endpoints[0] (\"a\").url: must be an http:// or https:// URL (got \"listener:8080/events\")"
    );
    assert_eq!(
        ep_err("url: ''"),
        "notifications.endpoints[0] (\"a\").url is required"
    );
    assert_eq!(ep("url: 'HTTPS://Host:443/'").url, "HTTPS://Host:443/");
}

#[test]
fn http_target_moves_userinfo_into_basic_auth() {
    let e = ep("url: 'https://us%40er:p%3Ass@host:8443/events?x=1', headers: {X-A: [1, 2]}");
    let (url, lines) = e.http_target();
    assert_eq!(url, "https://host:8443/events?x=1");
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("us@er:p:ss");
    assert_eq!(
        lines,
        vec![
            ("Authorization".to_owned(), format!("Basic {basic}")),
            ("X-A".to_owned(), "1".to_owned()),
            ("X-A".to_owned(), "2".to_owned()),
        ]
    );
    // A configured Authorization header wins over the URL's user info.
    let e = ep("url: 'https://user@host/', headers: {authorization: [Bearer t]}");
    let (url, lines) = e.http_target();
    assert_eq!(url, "https://host/");
    assert_eq!(lines, vec![("authorization".to_owned(), "Bearer t".to_owned())]);
    // No user info: unchanged.
    let (url, lines) = ep("").http_target();
    assert_eq!((url.as_str(), lines.len()), ("http://listener:8080/events", 0));
}

#[test]
fn ignore_lists_and_actions() {
    let e = ep("ignoredmediatypes: [application/octet-stream], \
         ignore: {mediatypes: [application/octet-stream, application/x], actions: [pull, mount]}");
    assert_eq!(e.ignored_media_types, ["application/octet-stream"]);
    assert_eq!(
        e.ignore.media_types,
        ["application/octet-stream", "application/x"]
    );
    assert_eq!(e.ignore.actions, [Action::Pull, Action::Mount]);
    assert_eq!(
        e.all_ignored_media_types(),
        ["application/octet-stream", "application/x"]
    );
    assert_eq!(ep("ignore: {actions: delete}").ignore.actions, [Action::Delete]);
    assert_eq!(
        ep_err("ignore: {actions: [push, Push]}"),
        "notifications.endpoints[0] (\"a\").ignore.actions[1]: unknown action \"Push\" (expected push, pull, mount, delete or ping)"
    );
    assert_eq!(
        ep_err("ignore: {action: [push]}"),
        "notifications.endpoints[0] (\"a\").ignore: unknown key \"action\" (did you mean \"actions\"?)"
    );
}

#[test]
fn validate_after_changes() {
    let mut c = parse(&endpoint(""));
    let n = c.notifications.as_mut().unwrap();
    n.endpoints[0].retry.jitter = 2.0;
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "notifications.endpoints[0] (\"a\").retry.jitter must be between 0 and 1"
    );
    let e = EndpointConfig {
        name: "x".into(),
        url: "http://x/".into(),
        max_events: 0,
        ..EndpointConfig::default()
    };
    assert_eq!(
        e.validate().unwrap_err().to_string(),
        "endpoint \"x\".maxevents must be > 0"
    );
    let e = EndpointConfig {
        name: "x".into(),
        url: "http://x/".into(),
        timeout: Duration::ZERO,
        ..EndpointConfig::default()
    };
    assert_eq!(
        e.validate().unwrap_err().to_string(),
        "endpoint \"x\".timeout must be > 0"
    );
    let e = EndpointConfig {
        name: "x".into(),
        url: "http://x/".into(),
        threshold: 0,
        ..EndpointConfig::default()
    };
    assert_eq!(
        e.validate().unwrap_err().to_string(),
        "endpoint \"x\".threshold must be > 0"
    );
    let e = EndpointConfig {
        name: "x".into(),
        url: "http://x/".into(),
        backoff: Duration::ZERO,
        ..EndpointConfig::default()
    };
    assert_eq!(
        e.validate().unwrap_err().to_string(),
        "endpoint \"x\".backoff must be > 0"
    );
}

#[test]
fn yaml_1_1_booleans_and_scalars_like_go() {
    let e = ep("disabled: yes");
    assert!(e.disabled);
    assert!(!ep("disabled: off").disabled);
    assert_eq!(
        parse("notifications: {endpoints: [{name: 123, url: 'http://a/'}]}")
            .notifications
            .unwrap()
            .endpoints[0]
            .name,
        "123"
    );
    assert_eq!(ep("threshold: 0x10").threshold, 16);
}
