//! Documents shaped like the schema, with random keys, values and types; arbitrary text.

use proptest::prelude::*;
use yaml_serde::Value;

use super::{config, parse_checked};

/// Where a value sits in the schema, so that its keys and values are plausible.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Level {
    Top,
    Http,
    HttpDebug,
    Storage,
    Notifications,
    Events,
    Endpoints,
    Endpoint,
    Headers,
    HeaderValue,
    Ignore,
    Queue,
    Retry,
    Filter,
    FilterRepositories,
    FilterMethods,
    Tls,
    Signing,
    Nats,
    Leaf,
}

#[rustfmt::skip]
fn keys(level: Level) -> &'static [(&'static str, Level)] {
    use Level::*;
    match level {
        Top => &[
            ("version", Leaf), ("http", Http), ("storage", Storage), ("notifications", Notifications),
            ("log", Leaf),
        ],
        Http => &[
            ("addr", Leaf), ("net", Leaf), ("host", Leaf), ("prefix", Leaf), ("relativeurls", Leaf),
            ("debug", HttpDebug), ("secret", HeaderValue),
        ],
        HttpDebug => &[("addr", Leaf), ("prometheus", Leaf)],
        Storage => &[
            ("filesystem", Leaf), ("inmemory", Leaf), ("s3", Leaf), ("delete", Leaf), ("cache", Leaf),
        ],
        Notifications => &[("events", Events), ("endpoints", Endpoints), ("nats", Nats)],
        Events => &[("includereferences", Leaf)],
        Endpoint => &[
            ("name", Leaf), ("disabled", Leaf), ("url", Leaf), ("headers", Headers), ("timeout", Leaf),
            ("threshold", Leaf), ("backoff", Leaf), ("ignoredmediatypes", Leaf), ("ignore", Ignore),
            ("format", Leaf), ("maxevents", Leaf), ("linger", Leaf), ("queue", Queue), ("retry", Retry),
            ("filter", Filter), ("redirects", Leaf), ("tls", Tls), ("signing", Signing),
        ],
        Headers => &[
            ("Authorization", HeaderValue), ("X-Source", HeaderValue), ("authorization", HeaderValue),
        ],
        Ignore => &[("mediatypes", Leaf), ("actions", Leaf)],
        Queue => &[
            ("capacity", Leaf), ("overflow", Leaf), ("path", Leaf), ("maxbytes", Leaf), ("fsync", Leaf),
            ("fsyncinterval", Leaf),
        ],
        Retry => &[
            ("mode", Leaf), ("initial", Leaf), ("max", Leaf), ("multiplier", Leaf), ("jitter", Leaf),
            ("maxattempts", Leaf), ("maxage", Leaf),
        ],
        Filter => &[("repositories", FilterRepositories), ("methods", FilterMethods)],
        FilterRepositories => &[("include", Leaf), ("exclude", Leaf)],
        FilterMethods => &[("exclude", Leaf)],
        Tls => &[("ca", Leaf), ("insecureskipverify", Leaf), ("clientcert", Leaf), ("clientkey", Leaf)],
        Signing => &[("secrets", HeaderValue)],
        Nats => &[
            ("url", Leaf), ("stream", Leaf), ("subject", Leaf), ("subjectby", Leaf), ("maxevents", Leaf),
            ("queue", Queue), ("consumer", Leaf), ("ackwait", Leaf), ("maxinflight", Leaf),
            ("duplicatewindow", Leaf),
        ],
        Endpoints | HeaderValue | Leaf => &[],
    }
}

/// Values that mean something somewhere in the schema. None holds a secret: they may land in keys
/// whose values are shown in messages (names, versions, media types); secrets go only where they
/// belong (`url`, header values, signing secrets).
#[rustfmt::skip]
const PLAUSIBLE: &[&str] = &[
    "", "0", "-0", "1", "-1", "-5", "10", "1s", "-1s", "0s", "500ms", "1m30s", "2562048h", "1ns", "500",
    "1.5", "0x10", "yes", "off", "true", "~", "events.v1", "events.v2", "cloudevents", "cloudevents-batch",
    "dropoldest", "dropnewest", "breaker", "exponential", "always", "interval", "success", "failure",
    "push", "pull", "mount", "delete", "HEAD", "GE T", "library/*", "**", "a//b", ":5000", ":::::",
    "host:99999", "[::1]:5000", "127.0.0.1:0", "unix", "udp", "0.1", "1.x", "http://listener/events",
    "ftp://x", "https://user:pass@host:8443/x?token=t", "nats://127.0.0.1:4222",
    "https://registry.example.com", "registry.example.com", "/var/lib/registry", "512MiB", "1e400",
    "-----BEGIN CERTIFICATE-----", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_c2hvcnQ=", "repository",
];

fn plausible_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::sample::select(PLAUSIBLE).prop_map(|s| Value::String(s.to_owned())),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => prop_oneof![-3i64..200, any::<i64>()].prop_map(|i| Value::Number(i.into())),
        1 => any::<u64>().prop_map(|u| Value::Number(u.into())),
        1 => any::<f64>().prop_map(|f| Value::Number(f.into())),
        1 => "[^\u{0}]{0,12}".prop_map(Value::String),
    ]
}

/// Anything: scalars, lists and mappings with random keys, a few levels deep.
fn any_value() -> impl Strategy<Value = Value> {
    plausible_scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Sequence),
            prop::collection::vec(("[a-z]{1,8}", inner), 0..4).prop_map(|entries| {
                Value::Mapping(entries.into_iter().map(|(k, v)| (Value::String(k), v)).collect())
            }),
        ]
    })
}

/// A header value or signing secret: secret text, in the shapes the loader accepts or not.
fn secret_value() -> impl Strategy<Value = Value> {
    let s = |t: &str| Value::String(t.to_owned());
    prop_oneof![
        Just(Value::Sequence(vec![s("Bearer SECRET-token")])),
        Just(s("SECRET-single")),
        Just(Value::Sequence(vec![s("SECRET\n-control")])),
        Just(Value::Sequence(vec![Value::Sequence(vec![s("SECRET-nested")])])),
        Just(Value::Mapping(
            [(s("k"), s("SECRET-in-map"))].into_iter().collect()
        )),
        Just(Value::Sequence(vec![s("whsec_SECRET")])),
        Just(Value::Null),
    ]
}

/// A valid value for `key`, most of the time; YAML's own spellings included.
fn good(key: &str) -> BoxedStrategy<Value> {
    let text = |pool: &'static [&'static str]| {
        prop::sample::select(pool)
            .prop_map(|s| Value::String(s.to_owned()))
            .boxed()
    };
    let list = |pool: &'static [&'static str]| {
        prop::sample::subsequence(pool, 0..=pool.len())
            .prop_map(|v| Value::Sequence(v.into_iter().map(|s| Value::String(s.to_owned())).collect()))
            .boxed()
    };
    let int = |r: std::ops::RangeInclusive<u64>| r.prop_map(|i| Value::Number(i.into())).boxed();
    match key {
        "name" | "stream" | "consumer" => "[a-z][a-z0-9-]{0,8}".prop_map(Value::String).boxed(),
        "url" => text(&[
            "http://listener:8080/events",
            "https://u:SECRET@hooks.example.com:8443/x?token=SECRET",
            "http://127.0.0.1:5055/",
        ]),
        "disabled" | "relativeurls" | "includereferences" | "insecureskipverify" => {
            any::<bool>().prop_map(Value::Bool).boxed()
        }
        "timeout" | "backoff" | "linger" | "initial" | "max" | "maxage" | "fsyncinterval" | "ackwait"
        | "duplicatewindow" => text(&["1s", "500ms", "1m30s", "2.5s", "100ns", "1h", "300µs"]),
        "threshold" | "maxevents" | "capacity" | "maxattempts" | "maxinflight" => int(1..=1000),
        "format" => text(&["events.v1", "events.v2", "cloudevents-batch", "v1"]),
        "mode" => text(&["exponential", "breaker", ""]),
        "overflow" => text(&["dropoldest", "dropnewest"]),
        "fsync" => text(&["always", "interval"]),
        "redirects" => text(&["success", "failure"]),
        "subjectby" => text(&["repository", "action", "none"]),
        "multiplier" => (1.0f64..8.0).prop_map(|f| Value::Number(f.into())).boxed(),
        "jitter" => (0.0f64..=1.0).prop_map(|f| Value::Number(f.into())).boxed(),
        "mediatypes" | "ignoredmediatypes" => list(&[
            "application/octet-stream",
            "application/vnd.oci.image.manifest.v1+json",
        ]),
        "actions" => list(&["push", "pull", "mount", "delete"]),
        "include" | "exclude" => list(&["library/*", "team/**", "**/cache", "a/b", "HEAD"]),
        "path" => "/tmp/q-[a-z]{1,6}".prop_map(Value::String).boxed(),
        "maxbytes" => text(&["1GiB", "65536", "512MiB", "2GB"]),
        "ca" | "clientcert" | "clientkey" => text(&["/etc/ca.pem", ""]),
        "addr" => text(&[":5000", "127.0.0.1:5000", "[::1]:5000", "localhost:0"]),
        "net" => text(&["tcp", "tcp6"]),
        "host" => text(&["https://registry.example.com:5000", "http://r"]),
        "version" => text(&["0.1", "1.0"]),
        "subject" => text(&["registry.notifications", "a.b"]),
        _ => plausible_scalar().boxed(),
    }
}

/// The value of `key`, whose place in the schema is `child`.
fn entry(key: &'static str, child: Level) -> BoxedStrategy<(String, Value)> {
    let value = match child {
        Level::Leaf => prop_oneof![6 => good(key), 1 => plausible_scalar(), 1 => any_value()].boxed(),
        _ => node(child),
    };
    (Just(key.to_owned()), value).boxed()
}

/// Keys a section nearly always has (so that generated documents get past them).
fn required(level: Level) -> &'static [(&'static str, Level)] {
    match level {
        Level::Notifications => &[("endpoints", Level::Endpoints)],
        Level::Endpoint => &[("name", Level::Leaf), ("url", Level::Leaf)],
        Level::Nats => &[("url", Level::Leaf)],
        _ => &[],
    }
}

/// A value at `level`: mostly the mapping (or list) the schema expects there, sometimes anything.
fn node(level: Level) -> BoxedStrategy<Value> {
    match level {
        Level::Leaf => prop_oneof![9 => plausible_scalar(), 1 => any_value()].boxed(),
        Level::HeaderValue => secret_value().boxed(),
        Level::Endpoints => prop_oneof![
            9 => prop::collection::vec(node(Level::Endpoint), 0..3).prop_map(Value::Sequence),
            1 => any_value(),
        ]
        .boxed(),
        _ => {
            let known = prop::sample::select(keys(level)).prop_flat_map(|(key, child)| entry(key, child));
            let random = ("[a-z]{1,10}", any_value());
            let entries = prop::collection::vec(prop_oneof![12 => known, 1 => random], 0..6);
            let firsts: Vec<_> = required(level)
                .iter()
                .map(|&(k, child)| prop::option::weighted(0.9, entry(k, child)))
                .collect();
            let map = (firsts, entries).prop_map(|(firsts, entries)| {
                let all = firsts.into_iter().flatten().chain(entries);
                Value::Mapping(all.map(|(k, v)| (Value::String(k), v)).collect())
            });
            prop_oneof![12 => map, 1 => any_value()].boxed()
        }
    }
}

/// A whole document: a `notifications` section, alone or in a document of every section.
fn document() -> impl Strategy<Value = String> {
    let notifications = node(Level::Notifications);
    (node(Level::Top), notifications, any::<bool>()).prop_map(|(top, n, alone)| {
        let key = Value::String("notifications".into());
        let top = match top {
            Value::Mapping(mut m) if !alone => {
                m.insert(key, n);
                Value::Mapping(m)
            }
            other if !alone => other,
            _ => Value::Mapping([(key, n)].into_iter().collect()),
        };
        yaml_serde::to_string(&top).unwrap_or_default()
    })
}

proptest! {
    #![proptest_config(config())]

    /// Schema-shaped documents with random keys, values and types.
    #[test]
    fn shaped_documents_load_or_name_the_field(yaml in document()) {
        if let Err(msg) = parse_checked(&yaml) {
            // Generated YAML is well-formed: every error is about a value, at a field.
            prop_assert!(!msg.starts_with("invalid YAML"), "{msg}\n{yaml}");
        }
    }

    /// Any text at all, and text made of YAML's punctuation.
    #[test]
    fn arbitrary_text_is_handled(
        text in prop_oneof![
            any::<String>(),
            "[ \t\n:\\-\\[\\]{},#&*!|>'\"%@`?0-9a-z.<\u{0}\u{b5}\u{feff}é]{0,300}",
            prop::collection::vec(any::<u8>(), 0..300)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ]
    ) {
        let _ = parse_checked(&text);
    }
}
