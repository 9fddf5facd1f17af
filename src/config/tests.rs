//! Unit tests of the whole module: defaults, each error, environment overrides.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::{Action, Format};

fn parse(yaml: &str) -> Config {
    Config::from_yaml_str(yaml).unwrap_or_else(|e| panic!("{e}\n---\n{yaml}"))
}

fn err(yaml: &str) -> String {
    match Config::from_yaml_str(yaml) {
        Ok(c) => panic!("expected an error, got {c:#?}\n---\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

/// One endpoint named `a` with the given extra keys (flow mapping entries).
/// `name: a` and a URL are added unless `extra` sets them.
fn endpoint(extra: &str) -> String {
    let mut entries = Vec::new();
    if !extra.starts_with("name:") {
        entries.push("name: a");
    }
    if !extra.contains("url:") {
        entries.push("url: 'http://listener:8080/events'");
    }
    if !extra.is_empty() {
        entries.push(extra);
    }
    format!("notifications:\n  endpoints:\n    - {{{}}}\n", entries.join(", "))
}

fn ep(extra: &str) -> EndpointConfig {
    parse(&endpoint(extra)).notifications.unwrap().endpoints.remove(0)
}

fn ep_err(extra: &str) -> String {
    err(&endpoint(extra))
}

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
    assert_eq!(e.queue.overflow, QueueOverflow::DropOldest);
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

#[test]
fn zero_or_negative_means_default_like_distribution() {
    for extra in [
        "timeout: 0, threshold: 0, backoff: 0",
        "timeout: '0', threshold: -3, backoff: '-5m'",
        "timeout: -1s, backoff: -0",
        "timeout: ~, threshold: ~, backoff: ~",
        "timeout: '+0'",
    ] {
        let e = ep(extra);
        assert_eq!(
            (e.timeout, e.threshold, e.backoff),
            (Duration::from_secs(1), 10, Duration::from_secs(1)),
            "{extra}"
        );
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
        "notifications.endpoints[0] (\"a\").ignore.actions[1]: unknown action \"Push\" (expected push, pull, mount or delete)"
    );
    assert_eq!(
        ep_err("ignore: {action: [push]}"),
        "notifications.endpoints[0] (\"a\").ignore: unknown key \"action\" (did you mean \"actions\"?)"
    );
}

#[test]
fn extension_values() {
    let e = ep(
        "format: events.v1, maxevents: 50, queue: {capacity: 10, overflow: dropnewest}, \
         retry: {mode: exponential, initial: 1s, max: 5m, multiplier: 3, jitter: 0, maxattempts: 20, maxage: 6h}, \
         filter: {repositories: {include: ['team-a/**'], exclude: ['**/cache']}, methods: {exclude: [head, GET]}}, \
         redirects: success, tls: {ca: /etc/ca.pem, insecureskipverify: yes}",
    );
    assert_eq!(e.format, Format::EventsV1);
    assert_eq!(e.max_events, 50);
    assert_eq!(
        (e.queue.capacity, e.queue.overflow),
        (10, QueueOverflow::DropNewest)
    );
    assert_eq!(
        e.retry,
        RetrySettings {
            mode: RetryMode::Exponential,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            multiplier: 3.0,
            jitter: 0.0,
            max_attempts: Some(20),
            max_age: Duration::from_secs(6 * 3600),
        }
    );
    assert_eq!(e.filter.include_repositories, ["team-a/**"]);
    assert_eq!(e.filter.exclude_repositories, ["**/cache"]);
    assert_eq!(e.filter.exclude_methods, ["HEAD", "GET"]);
    assert!(e.redirects_as_success);
    assert_eq!(e.tls.ca, Some(CaSource::File(PathBuf::from("/etc/ca.pem"))));
    assert!(e.tls.insecure_skip_verify);
    assert_eq!(ep("retry: {mode: breaker}").retry.mode, RetryMode::Breaker);
    assert_eq!(ep("format: events.v2").format, Format::EventsV2);
    assert_eq!(ep("format: cloudevents").format, Format::CloudEvents);
    assert_eq!(ep("format: cloudevents-batch").format, Format::CloudEventsBatch);
    assert_eq!(
        ep("format: application/cloudevents-batch+json").format,
        Format::CloudEventsBatch
    );
    let e = ep("tls: {clientcert: /etc/c.pem, clientkey: /etc/c.key}, signing: {secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]}");
    assert_eq!(
        e.tls.client_cert,
        Some(CaSource::File(PathBuf::from("/etc/c.pem")))
    );
    assert_eq!(
        e.tls.client_key,
        Some(CaSource::File(PathBuf::from("/etc/c.key")))
    );
    assert_eq!(e.signing.secrets, ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
    assert!(!format!("{e:?}").contains("MfKQ9r8G"), "{e:?}");
    assert_eq!(
        ep("signing: {secrets: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}")
            .signing
            .secrets
            .len(),
        1
    );
    assert!(!ep("redirects: failure").redirects_as_success);
    assert_eq!(ep("queue: {}").queue, QueueSettings::default());
    assert_eq!(ep("retry: ~").retry, RetrySettings::default());
}

#[test]
fn each_extension_error_names_the_field() {
    let p = "notifications.endpoints[0] (\"a\")";
    let cases: &[(&str, &str)] = &[
        ("format: events.v3", ".format: unknown format \"events.v3\" (expected events.v1, events.v2, cloudevents or cloudevents-batch)"),
        ("maxevents: 0", ".maxevents must be > 0"),
        ("maxevents: -1", ".maxevents must not be negative"),
        ("maxevents: 1.5", ".maxevents: expected an integer, found a floating-point number"),
        ("maxevents: 18446744073709551615", ""), // fits usize on 64-bit: accepted
        ("queue: {capacity: 0}", ".queue.capacity must be > 0"),
        ("queue: {overflow: dropall}", ".queue.overflow: expected \"dropoldest\" or \"dropnewest\", found \"dropall\""),
        ("queue: {size: 1}", ".queue: unknown key \"size\" (expected one of: capacity, overflow, path, maxbytes, fsync, fsyncinterval)"),
        ("queue: 5", ".queue: expected a mapping, found an integer"),
        ("retry: {mode: linear}", ".retry.mode: expected \"exponential\" or \"breaker\", found \"linear\""),
        ("retry: {maxattempts: 0}", ".retry.maxattempts must be > 0"),
        ("retry: {maxattempts: 4294967296}", ".retry.maxattempts is too large (at most 4294967295)"),
        ("retry: {maxage: 0}", ".retry.maxage must be > 0"),
        ("retry: {initial: -1s}", ".retry.initial must be > 0"),
        ("retry: {initial: 0s}", ".retry.initial must be > 0"),
        ("retry: {initial: 5s, max: 1s}", ".retry.max (1s) must be >= retry.initial (5s)"),
        ("retry: {multiplier: 0.5}", ".retry.multiplier must be >= 1"),
        ("retry: {multiplier: .nan}", ".retry.multiplier must be a finite number"),
        ("retry: {jitter: 1.5}", ".retry.jitter must be between 0 and 1"),
        ("retry: {jitter: -0.1}", ".retry.jitter must be between 0 and 1"),
        ("retry: {jitter: high}", ".retry.jitter: expected a number, found a string"),
        (
            "retry: {mode: breaker, initial: 1s}",
            ".retry.initial only applies to mode: exponential (mode: breaker uses the endpoint's threshold and backoff)",
        ),
        (
            "retry: {maxattempt: 3}",
            ".retry: unknown key \"maxattempt\" (did you mean \"maxattempts\"?)",
        ),
        ("filter: {repositories: {include: ['']}}", ".filter.repositories.include[0] must not be empty"),
        ("filter: {repositories: {exclude: [a, ' ']}}", ".filter.repositories.exclude[1] must not be empty"),
        ("filter: {repositories: {inclde: [a]}}", ".filter.repositories: unknown key \"inclde\" (did you mean \"include\"?)"),
        ("filter: {methods: {include: [GET]}}", ".filter.methods: unknown key \"include\" (did you mean \"exclude\"?)"),
        ("filter: {methods: {exclude: ['GE T']}}", ".filter.methods.exclude[0]: \"GE T\" is not an HTTP method"),
        ("filter: {actions: [pull]}", ".filter: unknown key \"actions\" (expected one of: repositories, methods)"),
        ("redirects: follow", ".redirects: expected \"success\" or \"failure\", found \"follow\""),
        ("redirects: true", ".redirects: expected \"success\" or \"failure\", found \"true\""),
        ("tls: {ca: '-----BEGIN PRIVATE KEY-----'}", ".tls.ca contains no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ("tls: {insecure: true}", ".tls: unknown key \"insecure\" (did you mean \"insecureskipverify\"?)"),
        ("tls: {cert: x}", ".tls: unknown key \"cert\" (expected one of: ca, insecureskipverify, clientcert, clientkey)"),
        ("tls: {insecureskipverify: sure}", ".tls.insecureskipverify: expected a boolean (true or false), found a string"),
        ("format: cloudevents, maxevents: 5", ".maxevents must be 1 with format cloudevents (one event per request; use cloudevents-batch to batch)"),
        ("format: cloudevents-batch, maxevents: 5", ""),
        ("tls: {clientcert: /c.pem}", ".tls clientcert and clientkey must be given together"),
        ("signing: {secrets: [whsec_c2hvcnQ=]}", ".signing: secrets[0]: secret is 5 bytes, at least 16 are needed (24 to 64 recommended)"),
        ("signing: {secrets: [whsec_not-base64!]}", ".signing: secrets[0]: secret is not base64 (expected whsec_<base64>)"),
        ("signing: {secret: x}", ".signing: unknown key \"secret\" (did you mean \"secrets\"?)"),
        ("threshold: 4294967296", ".threshold is too large (at most 4294967295)"),
        ("threshold: '10'", ".threshold: expected an integer, found a string"),
        ("disabled: maybe", ".disabled: expected a boolean (true or false), found a string"),
        ("name: [a]", ": expected a string, found a list"),
    ];
    for (extra, want) in cases {
        let result = Config::from_yaml_str(&endpoint(extra));
        if want.is_empty() {
            assert!(result.is_ok(), "{extra}: {result:?}");
            continue;
        }
        let got = result.expect_err(extra).to_string();
        let want = if *extra == "name: [a]" {
            "notifications.endpoints[0].name: expected a string, found a list".to_owned()
        } else {
            format!("{p}{want}")
        };
        assert_eq!(got, want, "{extra}");
    }
}

#[test]
fn unknown_keys_name_the_key_and_the_endpoint() {
    assert_eq!(
        ep_err("timout: 1s"),
        "notifications.endpoints[0] (\"a\"): unknown key \"timout\" (did you mean \"timeout\"?)"
    );
    assert_eq!(
        err("notifications:\n  endpoints:\n    - name: alistener\n      url: http://x/\n      timout: 1s\n"),
        "notifications.endpoints[0] (\"alistener\"): unknown key \"timout\" (did you mean \"timeout\"?)"
    );
    // Without a usable name, the index alone.
    assert_eq!(
        err("notifications: {endpoints: [{url: 'http://x/', Name: a}]}"),
        "notifications.endpoints[0]: unknown key \"Name\" (did you mean \"name\"?)"
    );
    assert_eq!(
        err("notifications: {endpoints: [{name: a, url: 'http://a/'}, {name: b, url: 'http://b/', retries: 3}]}"),
        "notifications.endpoints[1] (\"b\"): unknown key \"retries\" (did you mean \"retry\"?)"
    );
    assert_eq!(
        err("notifications: {endpoint: []}"),
        "notifications: unknown key \"endpoint\" (did you mean \"endpoints\"?)"
    );
    assert_eq!(
        err("notifications: {events: {includereference: true}}"),
        "notifications.events: unknown key \"includereference\" (did you mean \"includereferences\"?)"
    );
    assert_eq!(
        err("notifications: {endpoints: [{name: a, url: 'http://a/', 1: x}]}"),
        "notifications.endpoints[0]: keys must be strings, found an integer"
    );
}

#[test]
fn the_brief_example_error() {
    let yaml = "notifications:\n  endpoints:\n    - {name: a, url: 'http://a/'}\n    - name: b\n      url: http://b/\n      retry:\n        maxattempts: 0\n";
    assert_eq!(
        err(yaml),
        "notifications.endpoints[1] (\"b\").retry.maxattempts must be > 0"
    );
    let e = Config::from_yaml_str(yaml).unwrap_err();
    assert_eq!(e.path(), "notifications.endpoints[1] (\"b\").retry.maxattempts");
    assert_eq!(e.message(), "must be > 0");
}

#[test]
fn required_and_unique_names() {
    assert_eq!(
        err("notifications: {endpoints: [{url: 'http://a/'}]}"),
        "notifications.endpoints[0].name is required"
    );
    assert_eq!(
        err("notifications: {endpoints: [{name: a}]}"),
        "notifications.endpoints[0] (\"a\").url is required"
    );
    assert_eq!(
        err("notifications: {endpoints: [{name: a, url: 'http://a/'}, {name: b, url: 'http://b/'}, {name: a, url: 'http://c/'}]}"),
        "notifications.endpoints[2] (\"a\").name: endpoint names must be unique, \"a\" is also the name of endpoints[0]"
    );
    // A disabled endpoint may be incomplete, as in Distribution (which skips it).
    let c =
        parse("notifications: {endpoints: [{disabled: true}, {name: a, url: 'http://a/', disabled: true}]}");
    let n = c.notifications.as_ref().unwrap();
    assert_eq!(n.endpoints.len(), 2);
    assert_eq!(n.enabled_endpoints().count(), 0);
    assert_eq!(c.enabled_endpoints().count(), 0);
    // ... but its keys and types are still checked.
    assert!(err("notifications: {endpoints: [{disabled: true, timeout: 5}]}").contains("bare number"));
    assert!(err("notifications: {endpoints: [{disabled: true, url: 'ftp://x'}]}").contains("http://"));
}

#[test]
fn notifications_shapes() {
    assert_eq!(parse("version: 0.1").notifications, None);
    assert_eq!(parse("notifications:").notifications, None);
    assert_eq!(
        parse("notifications: {}").notifications,
        Some(NotificationsConfig::default())
    );
    let n = parse("notifications: {endpoints: ~, events: ~}")
        .notifications
        .unwrap();
    assert!(n.endpoints.is_empty() && !n.events.include_references);
    assert!(
        parse("notifications: {events: {includereferences: true}}")
            .notifications
            .unwrap()
            .events
            .include_references
    );
    assert_eq!(
        err("notifications: {endpoints: {name: a}}"),
        "notifications.endpoints: expected a list of endpoints, found a mapping"
    );
    assert_eq!(
        err("notifications: {endpoints: [just-a-string]}"),
        "notifications.endpoints[0]: expected a mapping (one endpoint), found a string"
    );
    assert_eq!(
        err("notifications: [a]"),
        "notifications: expected a mapping, found a list"
    );
}

#[test]
fn yaml_anchors_and_merge_keys() {
    let c = parse(
        "x-common: &common\n  timeout: 5s\n  headers: {Authorization: [Bearer x]}\n\
         notifications:\n  endpoints:\n    - <<: *common\n      name: a\n      url: http://a/\n    - <<: *common\n      name: b\n      url: http://b/\n      timeout: 2s\n",
    );
    let n = c.notifications.unwrap();
    assert_eq!(n.endpoints[0].timeout, Duration::from_secs(5));
    assert_eq!(n.endpoints[1].timeout, Duration::from_secs(2));
    assert_eq!(n.endpoints[1].headers[0].0, "Authorization");
    assert_eq!(c.ignored_sections, ["x-common"]);
}

#[test]
fn http_section() {
    assert_eq!(parse("version: 0.1").http, HttpConfig::default());
    assert_eq!(HttpConfig::default().addr, ":5000");
    let h = parse(
        "http: {addr: '127.0.0.1:5001', host: 'https://registry.example.com:5000', relativeurls: true, prefix: /reg/, \
         secret: s, net: tcp, tls: {certificate: /c}, headers: {X-Content-Type-Options: [nosniff]}, debug: {addr: ':5001'}, \
         draintimeout: 60s, http2: {disabled: false}}",
    )
    .http;
    assert_eq!(h.addr, "127.0.0.1:5001");
    assert_eq!(h.host.as_deref(), Some("https://registry.example.com:5000"));
    assert!(h.relative_urls);
    assert_eq!(h.prefix.as_deref(), Some("/reg/"));
    assert_eq!(
        parse("http: {addr: '', host: '', prefix: ''}").http,
        HttpConfig::default()
    );
    assert_eq!(
        err("http: {host: registry.example.com}"),
        "http.host: must be an absolute http:// or https:// URL such as \"https://registry.example.com:5000\" \
         (got \"registry.example.com\")"
    );
    assert_eq!(
        err("http: {addr: [1]}"),
        "http.addr: expected a string, found a list"
    );
    assert_eq!(err("http: 5"), "http: expected a mapping, found an integer");
    assert_eq!(
        err("http: {host: 'https://u:p@r.example.com'}"),
        "http.host: must not contain user info, a query or a fragment (got \"https://***@r.example.com\")"
    );
    assert!(err("http: {host: 'https://r.example.com:port'}").contains("(got \"https://r.example.com:***\")"));
}

#[test]
fn storage_section() {
    let s = parse("storage: {filesystem: {rootdirectory: /data, maxthreads: 100}, delete: {enabled: true}}")
        .storage;
    assert_eq!(
        s.driver,
        Some(StorageDriver::Filesystem {
            root_directory: PathBuf::from("/data")
        })
    );
    assert!(s.delete_enabled);
    let s = parse("storage: {filesystem: ~}").storage;
    assert_eq!(
        s.driver,
        Some(StorageDriver::Filesystem {
            root_directory: PathBuf::from("/var/lib/registry")
        })
    );
    assert_eq!(s.driver.as_ref().unwrap().name(), "filesystem");
    assert_eq!(parse("storage: ''").storage, StorageConfig::default());
    for yaml in [
        "storage: {inmemory: ~}",
        "storage: {inmemory: {}}",
        "storage:\n  inmemory:\n",
        "storage: inmemory",
    ] {
        assert_eq!(
            parse(yaml).storage.driver,
            Some(StorageDriver::InMemory),
            "{yaml}"
        );
    }
    let s = parse(
        "storage:\n  s3: {accesskey: AK, secretkey: SK, region: us-east-1}\n  cache: {blobdescriptor: inmemory}\n  \
         maintenance: {uploadpurging: {enabled: false}}\n  redirect: {disable: true}\n  tag: {concurrencylimit: 5}\n  \
         delete: {enabled: no}\n",
    )
    .storage;
    assert_eq!(s.driver, Some(StorageDriver::Other("s3".into())));
    assert!(!s.delete_enabled);
    assert_eq!(s.ignored, ["cache", "maintenance", "redirect", "tag"]);
    assert!(!format!("{s:?}").contains("SK"));
    assert_eq!(parse("version: 0.1").storage, StorageConfig::default());
    assert_eq!(
        err("storage: {filesystem: {}, s3: {}}"),
        "storage: more than one storage driver: \"filesystem\" and \"s3\" (exactly one is allowed)"
    );
    assert_eq!(
        err("storage: [filesystem]"),
        "storage: expected a mapping, found a list"
    );
    assert_eq!(
        err("storage: {filesystem: {rootdirectory: [a]}}"),
        "storage.filesystem.rootdirectory: expected a string, found a list"
    );
    assert_eq!(
        err("storage: {delete: {enabled: perhaps}}"),
        "storage.delete.enabled: expected a boolean (true or false), found a string"
    );
}

#[test]
fn version_and_top_level() {
    assert_eq!(parse("version: 0.1").version.as_deref(), Some("0.1"));
    assert_eq!(parse("version: '0.1'").version.as_deref(), Some("0.1"));
    assert_eq!(parse("log: {level: info}").version, None);
    assert_eq!(
        err("version: 1"),
        "version: must be MAJOR.MINOR such as \"0.1\", found \"1\""
    );
    assert_eq!(
        err("version: a.b"),
        "version: must be MAJOR.MINOR such as \"0.1\", found \"a.b\""
    );
    assert_eq!(err(""), "the configuration is empty");
    assert_eq!(err("# only a comment\n"), "the configuration is empty");
    assert_eq!(
        err("- a\n- b"),
        "the configuration must be a YAML mapping, found a list"
    );
    assert_eq!(
        err("just text"),
        "the configuration must be a YAML mapping, found a string"
    );
    assert!(err("a: [1, 2").starts_with("invalid YAML: "));
    assert!(err("a: 1\na: 2").contains("duplicate entry with key \"a\""));
    assert!(err("a: 1\n---\nb: 2").starts_with("invalid YAML: "));
    let c = parse("version: 0.1\nlog: {level: debug}\nauth: {htpasswd: {realm: r, path: /p}}\nredis: {addr: r:6379, password: pw}\nhealth: {}\nproxy: {remoteurl: https://registry-1.docker.io}\nmiddleware: {}\nvalidation: {disabled: true}\ncompatibility: {}\ncatalog: {maxentries: 10}\nloglevel: debug\n");
    assert_eq!(
        c.ignored_sections,
        [
            "log",
            "auth",
            "redis",
            "health",
            "proxy",
            "middleware",
            "validation",
            "compatibility",
            "catalog",
            "loglevel"
        ]
    );
    assert!(!format!("{c:?}").contains("pw"));
    // FromStr and serde::Deserialize go through the same code.
    assert_eq!("version: 0.1".parse::<Config>().unwrap(), c_version_only());
    let from_serde: Config = serde_yaml::from_str("version: 0.1").unwrap();
    assert_eq!(from_serde, c_version_only());
    let e = serde_yaml::from_str::<Config>(&endpoint("timout: 1s"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown key \"timout\""), "{e}");
    let from_json: NotificationsConfig =
        serde_json::from_str(r#"{"endpoints": [{"name": "a", "url": "http://a/", "timeout": "2s"}]}"#)
            .unwrap();
    assert_eq!(from_json.endpoints[0].timeout, Duration::from_secs(2));
}

fn c_version_only() -> Config {
    Config {
        version: Some("0.1".into()),
        ..Config::default()
    }
}

#[test]
fn from_path_reads_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, endpoint("timeout: 250ms")).unwrap();
    let c = Config::from_path(&path).unwrap();
    assert_eq!(
        c.notifications.unwrap().endpoints[0].timeout,
        Duration::from_millis(250)
    );
    std::fs::write(&path, endpoint("timout: 1s")).unwrap();
    let e = Config::from_path(&path).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: notifications.endpoints[0] (\"a\"): unknown key \"timout\" (did you mean \"timeout\"?)",
            path.display()
        )
    );
    let e = Config::from_path(&path).unwrap_err();
    assert_eq!(e.origin(), path.display().to_string());
    assert_eq!(e.path(), "notifications.endpoints[0] (\"a\")");
    let e = Config::from_path(dir.path().join("missing.yml"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cannot read ") && e.contains("missing.yml"), "{e}");
}

#[test]
fn tls_ca_sources() {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let yaml =
        format!(
        "notifications:\n  endpoints:\n    - name: a\n      url: https://a/\n      tls:\n        ca: |\n{}",
        pem.lines().map(|l| format!("          {l}\n")).collect::<String>()
    );
    let e = parse(&yaml).notifications.unwrap().endpoints.remove(0);
    assert_eq!(e.tls.ca, Some(CaSource::Pem(pem.to_owned())));
    assert_eq!(e.tls.ca_pem().unwrap(), Some(pem.as_bytes().to_vec()));
    assert!(format!("{e:?}").contains("Pem(<"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ca.pem");
    std::fs::write(&file, pem).unwrap();
    let e = ep(&format!("tls: {{ca: '{}'}}", file.display()));
    assert_eq!(e.tls.ca_pem().unwrap(), Some(pem.as_bytes().to_vec()));
    std::fs::write(&file, "garbage").unwrap();
    let msg = e.tls.ca_pem().unwrap_err().to_string();
    assert!(
        msg.starts_with("tls.ca: ") && msg.contains("contains no PEM certificate"),
        "{msg}"
    );
    let e = ep("tls: {ca: /nonexistent/ca.pem}");
    let msg = e.tls.ca_pem().unwrap_err().to_string();
    assert!(
        msg.starts_with("tls.ca: cannot read CA file /nonexistent/ca.pem: "),
        "{msg}"
    );
    assert_eq!(ep("tls: {ca: ''}").tls.ca, None);
    assert_eq!(ep("tls: {}").tls.ca_pem().unwrap(), None);
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

mod env {
    use super::*;

    fn with_env(yaml: &str, vars: &[(&str, &str)]) -> std::result::Result<Config, String> {
        let mut c = parse(yaml);
        c.apply_env(vars.iter().copied())
            .map(|()| c)
            .map_err(|e| e.to_string())
    }

    /// Secrets can come from the environment rather than the file.
    #[test]
    fn signing_secrets_and_client_certificates() {
        let c = with_env(
            &endpoint(""),
            &[
                (
                    "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_SIGNING_SECRETS",
                    "[whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]",
                ),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TLS_CLIENTCERT", "/c.pem"),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TLS_CLIENTKEY", "/c.key"),
            ],
        )
        .unwrap();
        let e = &c.notifications.unwrap().endpoints[0];
        assert_eq!(e.signing.secrets, ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
        assert_eq!(e.tls.client_key, Some(CaSource::File(PathBuf::from("/c.key"))));
    }

    #[test]
    fn scalar_endpoint_keys() {
        let c = with_env(
            &endpoint(""),
            &[
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_NAME", "renamed"),
                (
                    "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL",
                    "https://other:8443/hook",
                ),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_DISABLED", "true"),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT", "3s"),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_THRESHOLD", "4"),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_BACKOFF", "250ms"),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_FORMAT", "events.v1"),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_MAXEVENTS", "25"),
                ("HOME", "/root"),
                ("REGISTRY_LOG_LEVEL", "debug"),
                ("REGISTRY_AUTH_HTPASSWD_PATH", "/auth/htpasswd"),
            ],
        )
        .unwrap();
        let e = &c.notifications.as_ref().unwrap().endpoints[0];
        assert_eq!(e.name, "renamed");
        assert_eq!(e.url, "https://other:8443/hook");
        assert!(e.disabled);
        assert_eq!(
            (e.timeout, e.threshold, e.backoff),
            (Duration::from_secs(3), 4, Duration::from_millis(250))
        );
        assert_eq!((e.format, e.max_events), (Format::EventsV1, 25));
    }

    #[test]
    fn nested_keys_and_lists() {
        let c = with_env(
            &endpoint("headers: {Authorization: [Bearer old], X-Keep: [k]}"),
            &[
                (
                    "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_HEADERS_AUTHORIZATION",
                    "[Bearer new]",
                ),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_IGNORE_ACTIONS", "[pull]"),
                (
                    "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_IGNOREDMEDIATYPES",
                    "[application/octet-stream]",
                ),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_RETRY_MODE", "breaker"),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_QUEUE", "{capacity: 7}"),
                (
                    "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_FILTER_METHODS_EXCLUDE",
                    "[HEAD]",
                ),
                ("REGISTRY_NOTIFICATIONS_EVENTCONFIG_INCLUDEREFERENCES", "true"),
            ],
        )
        .unwrap();
        let n = c.notifications.as_ref().unwrap();
        assert!(n.events.include_references);
        let e = &n.endpoints[0];
        assert_eq!(
            e.headers,
            vec![
                ("Authorization".to_owned(), vec!["Bearer new".to_owned()]),
                ("X-Keep".to_owned(), vec!["k".to_owned()])
            ]
        );
        assert_eq!(e.ignore.actions, [Action::Pull]);
        assert_eq!(e.ignored_media_types, ["application/octet-stream"]);
        assert_eq!(e.retry.mode, RetryMode::Breaker);
        assert_eq!(e.queue.capacity, 7);
        assert_eq!(e.filter.exclude_methods, ["HEAD"]);
    }

    #[test]
    fn appending_endpoints_and_whole_lists() {
        // No notifications section at all: variables create it; index == len appends.
        let c = with_env(
            "version: 0.1",
            &[
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_NAME", "a"),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL", "http://a:5055/events"),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_1_NAME", "b"),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_1_URL", "http://b/"),
            ],
        )
        .unwrap();
        let names: Vec<_> = c.enabled_endpoints().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        // Distribution 2.8 style: the whole list as YAML.
        let c = with_env(
            &endpoint(""),
            &[(
                "REGISTRY_NOTIFICATIONS_ENDPOINTS",
                "[{name: x, url: 'http://x/', timeout: 2s}]",
            )],
        )
        .unwrap();
        let n = c.notifications.unwrap();
        assert_eq!((n.endpoints.len(), n.endpoints[0].name.as_str()), (1, "x"));
        // One whole endpoint.
        let c = with_env(
            &endpoint(""),
            &[(
                "REGISTRY_NOTIFICATIONS_ENDPOINTS_0",
                "{name: y, url: 'http://y/'}",
            )],
        )
        .unwrap();
        assert_eq!(c.notifications.unwrap().endpoints[0].name, "y");
        // Empty value: back to the default, like Distribution's zero value.
        let c = with_env(
            &endpoint("timeout: 5s"),
            &[("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT", "")],
        )
        .unwrap();
        assert_eq!(
            c.notifications.unwrap().endpoints[0].timeout,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn errors_name_the_variable_and_the_field() {
        assert_eq!(
            with_env(&endpoint(""), &[("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT", "500")]).unwrap_err(),
            "environment variable REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT: notifications.endpoints[0] (\"a\").timeout: \
             a bare number is not accepted as a duration: Distribution reads 500 as 500 nanoseconds, which is almost \
             certainly not what was meant (see SUSE/Portus#905); write the unit, e.g. \"500ms\" or \"500s\" (or \
             \"500ns\" if nanoseconds really are meant)"
        );
        assert_eq!(
            with_env(&endpoint(""), &[("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMOUT", "1s")]).unwrap_err(),
            "environment variable REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMOUT: notifications.endpoints[0] (\"a\"): \
             unknown key \"timout\" (did you mean \"timeout\"?)"
        );
        assert_eq!(
            with_env(&endpoint(""), &[("REGISTRY_NOTIFICATIONS_ENDPOINTS_2_URL", "http://x/")]).unwrap_err(),
            "environment variable REGISTRY_NOTIFICATIONS_ENDPOINTS_2_URL: notifications.endpoints: undefined index 2: \
             there are 1 endpoints, so the next new one is 1"
        );
        assert_eq!(
            with_env(&endpoint(""), &[("REGISTRY_NOTIFICATIONS_ENDPOINTS_X_URL", "http://x/")]).unwrap_err(),
            "environment variable REGISTRY_NOTIFICATIONS_ENDPOINTS_X_URL: notifications.endpoints: non-numeric index \"x\""
        );
        assert_eq!(
            with_env(&endpoint(""), &[("REGISTRY_NOTIFICATIONS_ENDPOINT_0_URL", "http://x/")]).unwrap_err(),
            "environment variable REGISTRY_NOTIFICATIONS_ENDPOINT_0_URL: notifications: unknown key \"endpoint\" \
             (did you mean \"endpoints\"?)"
        );
        // Validation runs after all variables: a new endpoint without URL.
        assert_eq!(
            with_env(&endpoint(""), &[("REGISTRY_NOTIFICATIONS_ENDPOINTS_1_NAME", "b")]).unwrap_err(),
            "notifications.endpoints[1] (\"b\").url is required"
        );
        // All or nothing.
        let mut c = parse(&endpoint(""));
        let before = c.clone();
        let e = c
            .apply_env([
                ("REGISTRY_HTTP_ADDR", ":1"),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT", "5"),
            ])
            .unwrap_err();
        assert_eq!(
            e.origin(),
            "environment variable REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT"
        );
        assert_eq!(e.path(), "notifications.endpoints[0] (\"a\").timeout");
        assert_eq!(c, before);
        // Secrets in variables are not echoed.
        let e = with_env(
            &endpoint(""),
            &[(
                "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_HEADERS_AUTHORIZATION",
                "{s3cr3t: x}",
            )],
        )
        .unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
        let e = with_env(
            &endpoint(""),
            &[("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_HEADERS", "[s3cr3t")],
        )
        .unwrap_err();
        assert!(!e.contains("s3cr3t") && e.contains("invalid YAML"), "{e}");
    }

    #[test]
    fn http_and_storage() {
        let c = with_env(
            "storage: {filesystem: {rootdirectory: /a}}",
            &[
                ("REGISTRY_HTTP_ADDR", ":6000"),
                ("REGISTRY_HTTP_HOST", "https://r.example.com"),
                ("REGISTRY_HTTP_SECRET", "ignored"),
                ("REGISTRY_HTTP_TLS_CERTIFICATE", "/ignored"),
                ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/b"),
                ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
                ("REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR", "inmemory"),
            ],
        )
        .unwrap();
        assert_eq!(c.http.addr, ":6000");
        assert_eq!(c.http.host.as_deref(), Some("https://r.example.com"));
        assert_eq!(
            c.storage.driver,
            Some(StorageDriver::Filesystem {
                root_directory: "/b".into()
            })
        );
        assert!(c.storage.delete_enabled);
        let c = with_env("version: 0.1", &[("REGISTRY_STORAGE", "inmemory")]).unwrap();
        assert_eq!(c.storage.driver, Some(StorageDriver::InMemory));
        assert_eq!(
            with_env("storage: inmemory", &[("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/b")]).unwrap_err(),
            "environment variable REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: storage: more than one storage driver: \
             \"inmemory\" and \"filesystem\" (exactly one is allowed)"
        );
        assert_eq!(
            with_env("version: 0.1", &[("REGISTRY_HTTP_HOST", "r.example.com")]).unwrap_err(),
            "http.host: must be an absolute http:// or https:// URL such as \"https://registry.example.com:5000\" \
             (got \"r.example.com\")"
        );
    }
}
