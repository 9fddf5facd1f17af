//! Valid configurations, generated from valid values and written in varied YAML (key order,
//! flow or block style, every Go duration spelling, absent keys), load to exactly those values.

use std::path::PathBuf;
use std::time::Duration;

use proptest::prelude::*;
use registry_notify::config::{CaSource, Config, EndpointConfig, QueueFsync, RetryMode};
use registry_notify::queue::Overflow;
use registry_notify::{Action, Format};

use super::config;

/// A YAML single-quoted scalar.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A flow list of quoted strings.
fn list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", items.join(", "))
}

/// `ns` nanoseconds as a Go duration, in one of several spellings chosen by `style`.
fn go_duration(ns: u64, style: u8) -> String {
    const UNITS: [(&str, u64); 6] = [
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    if ns == 0 {
        return ["0", "0s", "-0", "+0ns"][usize::from(style % 4)].to_owned();
    }
    match style % 5 {
        0 => format!("{ns}ns"),
        // Nine (six) fractional digits of seconds (milliseconds) are exact: scaled by 1.
        1 => format!("{}.{:09}s", ns / 1_000_000_000, ns % 1_000_000_000),
        2 => format!("{}.{:06}ms", ns / 1_000_000, ns % 1_000_000),
        // 1h2m3s4ms5us6ns, with µs (U+00B5) or μs (U+03BC), and a leading `+`.
        n => {
            let mut rest = ns;
            let mut out = String::from(if n == 4 { "+" } else { "" });
            for (unit, size) in UNITS {
                if rest >= size {
                    let unit = match (unit, n) {
                        ("us", 3) => "\u{b5}s",
                        ("us", 4) => "\u{3bc}s",
                        _ => unit,
                    };
                    out.push_str(&format!("{}{unit}", rest / size));
                    rest %= size;
                }
            }
            out
        }
    }
}

/// A duration > 0 in nanoseconds: mostly human-sized, sometimes up to the top of Go's range.
fn positive_ns() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 1u64..100_000_000_000_000,
        1 => Just(i64::MAX as u64),
        1 => 1u64..=i64::MAX as u64,
    ]
}

#[derive(Clone, Debug)]
enum Retry {
    Exponential {
        initial: u64,
        max: u64,
        multiplier: f64,
        jitter: f64,
    },
    Breaker,
}

/// `queue.maxbytes`, `fsync`, `fsyncinterval` (ns) of a durable queue.
type Durable = (u64, QueueFsync, u64);

/// One endpoint's values (`None`: the key is left out) and how to write them.
#[derive(Clone, Debug)]
struct Ep {
    name: String,
    url: String,
    disabled: Option<bool>,
    headers: Vec<(String, Vec<String>)>,
    distribution: (Option<u64>, Option<u64>, Option<u32>),
    format: Option<(Format, usize)>,
    linger: Option<u64>,
    queue: (Option<u64>, Option<Overflow>, Option<Durable>),
    retry: Option<(Retry, Option<u32>, u64)>,
    ignore: (Vec<String>, Vec<String>, Vec<Action>),
    filter: (Vec<String>, Vec<String>, Vec<String>),
    redirects: Option<bool>,
    tls: Option<(bool, bool)>,
    styles: [u8; 8],
    order: Vec<usize>,
    flow: bool,
}

/// Every key an endpoint may have, to shuffle them.
const KEYS: &[&str] = &[
    "name",
    "url",
    "disabled",
    "headers",
    "timeout",
    "backoff",
    "threshold",
    "format",
    "maxevents",
    "linger",
    "queue",
    "retry",
    "ignoredmediatypes",
    "ignore",
    "filter",
    "redirects",
    "tls",
];

fn strings(pattern: &'static str, n: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(pattern, 0..=n)
}

fn endpoint() -> impl Strategy<Value = Ep> {
    let header = ("X-[A-Za-z0-9]{1,8}", prop::collection::vec("[ -~]{0,12}", 0..3));
    let basics = (
        "[a-z][a-z0-9_-]{0,10}",
        (
            "https?",
            "[a-z]{1,10}(\\.[a-z]{2,5})?",
            prop::option::of(1u16..),
            "(/[a-z0-9]{1,6}){0,3}",
        )
            .prop_map(|(s, h, p, path)| {
                format!("{s}://{h}{}{path}", p.map_or(String::new(), |p| format!(":{p}")))
            }),
        prop::option::of(any::<bool>()),
        prop::collection::vec(header, 0..3),
        (
            prop::option::of(positive_ns()),
            prop::option::of(positive_ns()),
            prop::option::of(1u32..=u32::MAX),
        ),
        prop::option::of(prop_oneof![
            Just((Format::CloudEvents, 1usize)),
            (
                prop::sample::select(vec![Format::EventsV1, Format::EventsV2, Format::CloudEventsBatch]),
                1usize..1_000_000
            ),
        ]),
        prop::option::of(prop_oneof![Just(0u64), positive_ns()]),
    );
    let queue = (
        prop::option::of(prop_oneof![1u64..1_000_000, Just(u64::MAX)]),
        prop::option::of(prop::sample::select(vec![
            Overflow::DropOldest,
            Overflow::DropNewest,
        ])),
        prop::option::weighted(
            0.3,
            (
                65_536u64..1 << 42,
                prop::sample::select(vec![QueueFsync::Always, QueueFsync::Interval]),
                positive_ns(),
            ),
        ),
    );
    let retry = prop::option::of((
        prop_oneof![
            (positive_ns(), positive_ns(), 1.0f64..16.0, 0.0f64..=1.0).prop_map(
                |(a, b, multiplier, jitter)| {
                    Retry::Exponential {
                        initial: a.min(b),
                        max: a.max(b),
                        multiplier,
                        jitter,
                    }
                }
            ),
            Just(Retry::Breaker),
        ],
        prop::option::of(1u32..=u32::MAX),
        positive_ns(),
    ));
    let rest = (
        (
            strings("[a-z]{1,8}/[a-z0-9.+-]{1,12}", 2),
            strings("[a-z]{1,8}/[a-z0-9.+-]{1,12}", 2),
            prop::sample::subsequence(
                vec![Action::Push, Action::Pull, Action::Mount, Action::Delete],
                0..=4,
            ),
        ),
        (
            strings("([a-z]{1,4}\\*?|\\*)(/([a-z]{1,4}\\*?|\\*|\\*\\*)){0,2}", 2),
            strings("([a-z]{1,4}\\*?|\\*)(/([a-z]{1,4}\\*?|\\*|\\*\\*)){0,2}", 2),
            prop::sample::subsequence(vec!["HEAD", "get", "Put", "DELETE", "PATCH"], 0..=3)
                .prop_map(|m| m.into_iter().map(String::from).collect()),
        ),
        prop::option::of(any::<bool>()),
        prop::option::of((any::<bool>(), any::<bool>())),
        any::<[u8; 8]>(),
        Just((0..KEYS.len()).collect::<Vec<usize>>()).prop_shuffle(),
        any::<bool>(),
    );
    (basics, queue, retry, rest).prop_map(|(b, queue, retry, r)| Ep {
        name: b.0,
        url: b.1,
        disabled: b.2,
        headers: b.3,
        distribution: b.4,
        format: b.5,
        linger: b.6,
        queue,
        retry,
        ignore: r.0,
        filter: r.1,
        redirects: r.2,
        tls: r.3,
        styles: r.4,
        order: r.5,
        flow: r.6,
    })
}

/// The YAML of endpoint `i` (a list item) and the settings it must load as.
fn render(ep: &Ep, i: usize) -> (String, EndpointConfig) {
    let mut want = EndpointConfig::default();
    let s = ep.styles;
    let mut keys: Vec<(&str, String)> = Vec::new();
    let name = format!("{}-{i}", ep.name);
    keys.push(("name", quote(&name)));
    want.name = name;
    keys.push(("url", quote(&ep.url)));
    want.url = ep.url.clone();
    if let Some(d) = ep.disabled {
        keys.push((
            "disabled",
            if s[0].is_multiple_of(2) {
                d.to_string()
            } else {
                ["no", "yes"][usize::from(d)].into()
            },
        ));
        want.disabled = d;
    }
    let mut headers: Vec<(String, Vec<String>)> = Vec::new();
    for (name, values) in &ep.headers {
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            headers.push((name.clone(), values.clone()));
        }
    }
    if !headers.is_empty() {
        let h: Vec<String> = headers.iter().map(|(n, v)| format!("{n}: {}", list(v))).collect();
        keys.push(("headers", format!("{{{}}}", h.join(", "))));
        want.headers = headers;
    }
    let (timeout, backoff, threshold) = ep.distribution;
    if let Some(t) = timeout {
        keys.push(("timeout", go_duration(t, s[1])));
        want.timeout = Duration::from_nanos(t);
    }
    if let Some(b) = backoff {
        keys.push(("backoff", go_duration(b, s[2])));
        want.backoff = Duration::from_nanos(b);
    }
    if let Some(t) = threshold {
        keys.push(("threshold", t.to_string()));
        want.threshold = t;
    }
    if let Some((format, max_events)) = ep.format {
        keys.push(("format", format.name().to_owned()));
        keys.push(("maxevents", max_events.to_string()));
        (want.format, want.max_events) = (format, max_events);
    }
    if let Some(l) = ep.linger {
        keys.push(("linger", go_duration(l, s[3])));
        want.linger = Duration::from_nanos(l);
    }
    let (capacity, overflow, durable) = ep.queue;
    let mut q = Vec::new();
    if let Some(c) = capacity {
        q.push(format!("capacity: {c}"));
        want.queue.capacity = c as usize;
    }
    if let Some(o) = overflow {
        q.push(format!(
            "overflow: {}",
            ["dropoldest", "dropnewest"][usize::from(o == Overflow::DropNewest)]
        ));
        want.queue.overflow = o;
    }
    if let Some((max_bytes, fsync, interval)) = durable {
        let path = format!("/tmp/registry-notify-props/q{i}");
        let size = if max_bytes % 1024 == 0 {
            format!("{}KiB", max_bytes / 1024)
        } else {
            max_bytes.to_string()
        };
        let sync = ["always", "interval"][usize::from(fsync == QueueFsync::Interval)];
        q.push(format!(
            "path: {path}, maxbytes: {size}, fsync: {sync}, fsyncinterval: {}",
            go_duration(interval, s[4])
        ));
        want.queue.path = Some(PathBuf::from(path));
        (want.queue.max_bytes, want.queue.fsync) = (max_bytes, fsync);
        want.queue.fsync_interval = Duration::from_nanos(interval);
        if capacity.is_none() {
            want.queue.capacity = usize::MAX;
        }
    }
    if !q.is_empty() {
        keys.push(("queue", format!("{{{}}}", q.join(", "))));
    }
    if let Some((policy, max_attempts, max_age)) = &ep.retry {
        let mut r = vec![format!("maxage: {}", go_duration(*max_age, s[5]))];
        want.retry.max_age = Duration::from_nanos(*max_age);
        if let Some(n) = max_attempts {
            r.push(format!("maxattempts: {n}"));
            want.retry.max_attempts = Some(*n);
        }
        match *policy {
            Retry::Breaker => {
                r.push("mode: breaker".into());
                want.retry.mode = RetryMode::Breaker;
            }
            Retry::Exponential {
                initial,
                max,
                multiplier,
                jitter,
            } => {
                r.push(format!(
                    "initial: {}, max: {}",
                    go_duration(initial, s[6]),
                    go_duration(max, s[7])
                ));
                r.push(format!("multiplier: {multiplier}, jitter: {jitter}"));
                want.retry.initial = Duration::from_nanos(initial);
                want.retry.max = Duration::from_nanos(max);
                (want.retry.multiplier, want.retry.jitter) = (multiplier, jitter);
            }
        }
        keys.push(("retry", format!("{{{}}}", r.join(", "))));
    }
    let (ignored, ignore, actions) = &ep.ignore;
    if !ignored.is_empty() {
        keys.push(("ignoredmediatypes", list(ignored)));
        want.ignored_media_types = ignored.clone();
    }
    let actions: Vec<String> = actions.iter().map(|a| a.as_str().to_owned()).collect();
    keys.push((
        "ignore",
        format!("{{mediatypes: {}, actions: {}}}", list(ignore), list(&actions)),
    ));
    (want.ignore.media_types, want.ignore.actions) = (ignore.clone(), ep.ignore.2.clone());
    let (include, exclude, methods) = &ep.filter;
    keys.push((
        "filter",
        format!(
            "{{repositories: {{include: {}, exclude: {}}}, methods: {{exclude: {}}}}}",
            list(include),
            list(exclude),
            list(methods)
        ),
    ));
    want.filter.include_repositories = include.clone();
    want.filter.exclude_repositories = exclude.clone();
    want.filter.exclude_methods = methods.iter().map(|m| m.to_ascii_uppercase()).collect();
    if let Some(success) = ep.redirects {
        keys.push(("redirects", ["failure", "success"][usize::from(success)].into()));
        want.redirects_as_success = success;
    }
    if let Some((ca, insecure)) = ep.tls {
        let ca_path = format!("/etc/registry/ca{i}.pem");
        keys.push((
            "tls",
            format!(
                "{{ca: {}, insecureskipverify: {insecure}}}",
                if ca { &ca_path } else { "''" }
            ),
        ));
        want.tls.ca = ca.then(|| CaSource::File(PathBuf::from(ca_path)));
        want.tls.insecure_skip_verify = insecure;
    }
    // In a random order, as a block or a flow mapping.
    let mut ordered: Vec<&(&str, String)> = keys.iter().collect();
    ordered.sort_by_key(|(k, _)| ep.order[KEYS.iter().position(|key| key == k).unwrap_or(0)]);
    let text = if ep.flow {
        let items: Vec<String> = ordered.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!("    - {{{}}}\n", items.join(", "))
    } else {
        let mut out = String::new();
        for (j, (k, v)) in ordered.iter().enumerate() {
            out.push_str(if j == 0 { "    - " } else { "      " });
            out.push_str(&format!("{k}: {v}\n"));
        }
        out
    };
    (text, want)
}

proptest! {
    #![proptest_config(config())]

    /// Endpoints written from valid values load to those values, and to nothing else.
    #[test]
    fn valid_endpoints_round_trip(endpoints in prop::collection::vec(endpoint(), 1..4), refs in any::<bool>()) {
        let mut yaml = format!("version: 0.1\nnotifications:\n  events: {{includereferences: {refs}}}\n  endpoints:\n");
        let mut want = Vec::new();
        for (i, ep) in endpoints.iter().enumerate() {
            let (text, expected) = render(ep, i);
            yaml.push_str(&text);
            want.push(expected);
        }
        let config = Config::from_yaml_str(&yaml).map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        let n = config.notifications.unwrap();
        prop_assert_eq!(n.events.include_references, refs);
        prop_assert_eq!(&n.endpoints, &want, "{}", yaml);
    }
}
