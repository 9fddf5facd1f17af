//! `registry_notify::config` through the public API: real Distribution configs, environment
//! overrides, and values that make no sense (refused, naming the field). Malformed and arbitrary
//! input is in `config_props.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use registry_notify::config::{CaSource, Config, RetryMode, StorageDriver};
use registry_notify::queue::Overflow;
use registry_notify::{Action, Format};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn golden_registry_yml() {
    let config = Config::from_path(fixture("registry.yml")).unwrap();
    assert_eq!(config.version.as_deref(), Some("0.1"));
    assert_eq!(config.http.addr, "127.0.0.1:5000");
    assert_eq!(config.http.host, None);
    assert_eq!(
        config.storage.driver,
        Some(StorageDriver::Filesystem {
            root_directory: "/tmp/golden-run/registry-data".into()
        })
    );
    assert!(config.storage.delete_enabled);
    assert_eq!(config.ignored_sections, ["log"]);

    let n = config.notifications.as_ref().unwrap();
    assert!(!n.events.include_references);
    assert_eq!(n.endpoints.len(), 1);
    let e = &n.endpoints[0];
    assert_eq!(e.name, "golden-receiver");
    assert!(!e.disabled);
    assert_eq!(e.url, "http://127.0.0.1:5055/events");
    assert_eq!(
        e.headers,
        vec![
            ("Authorization".to_string(), strings(&["Bearer test"])),
            ("X-Golden-Multi".to_string(), strings(&["one", "two"])),
        ]
    );
    assert_eq!(
        (e.timeout, e.threshold, e.backoff),
        (Duration::from_secs(1), 5, Duration::from_secs(1))
    );
    assert!(
        e.ignored_media_types.is_empty() && e.ignore.media_types.is_empty() && e.ignore.actions.is_empty()
    );
    // Each header value is its own line, like Distribution's wire capture.
    let (url, lines) = e.http_target();
    assert_eq!(url, "http://127.0.0.1:5055/events");
    let lines: Vec<(&str, &str)> = lines.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(
        lines,
        [
            ("Authorization", "Bearer test"),
            ("X-Golden-Multi", "one"),
            ("X-Golden-Multi", "two")
        ]
    );
    assert_eq!(config.enabled_endpoints().count(), 1);
}

#[test]
fn golden_registry_refs_yml() {
    let config = Config::from_path(fixture("registry-refs.yml")).unwrap();
    let n = config.notifications.unwrap();
    assert!(n.events.include_references);
    assert_eq!(n.endpoints[0].name, "golden-receiver");
}

#[test]
fn fixtures_match_the_shared_golden_files() {
    // The fixtures are copies; when the shared reference is around, they must not drift.
    let golden = Path::new("/work/shared/reference/golden");
    for name in ["registry.yml", "registry-refs.yml"] {
        if let Ok(original) = std::fs::read_to_string(golden.join(name)) {
            assert_eq!(read(name), original, "{name}");
        }
    }
}

#[test]
fn official_image_default_config() {
    let config = Config::from_path(fixture("distribution-default.yml")).unwrap();
    assert_eq!(config.http.addr, ":5000");
    assert_eq!(
        config.storage.driver,
        Some(StorageDriver::Filesystem {
            root_directory: "/var/lib/registry".into()
        })
    );
    assert_eq!(config.storage.ignored, ["cache"]);
    assert!(!config.storage.delete_enabled);
    assert_eq!(config.notifications, None);
    assert_eq!(config.ignored_sections, ["log", "health"]);
    assert_eq!(config.enabled_endpoints().count(), 0);
}

#[test]
fn full_distribution_config_with_every_section() {
    let config = Config::from_path(fixture("distribution-full.yml")).unwrap();
    assert_eq!(
        config.ignored_sections,
        [
            "log",
            "loglevel",
            "auth",
            "middleware",
            "catalog",
            "tags",
            "redis",
            "health",
            "proxy",
            "validation",
            "policy",
            "compatibility"
        ]
    );
    assert_eq!(config.http.addr, "localhost:5000");
    assert_eq!(
        config.http.host.as_deref(),
        Some("https://myregistryaddress.org:5000")
    );
    assert_eq!(config.http.prefix.as_deref(), Some("/my/nested/registry/"));
    assert!(!config.http.relative_urls);
    assert_eq!(
        config.storage.driver,
        Some(StorageDriver::Filesystem {
            root_directory: "/srv/registry".into()
        })
    );
    assert!(config.storage.delete_enabled);
    assert_eq!(
        config.storage.ignored,
        ["tag", "redirect", "cache", "maintenance"]
    );

    let n = config.notifications.as_ref().unwrap();
    assert!(n.events.include_references);
    assert_eq!(n.endpoints.len(), 3);

    let a = &n.endpoints[0];
    assert_eq!(a.name, "alistener");
    assert_eq!(a.ignored_media_types, ["application/octet-stream"]);
    assert_eq!(a.ignore.media_types, ["application/octet-stream"]);
    assert_eq!(a.ignore.actions, [Action::Pull]);
    assert_eq!(a.all_ignored_media_types(), ["application/octet-stream"]);
    assert_eq!(a.format, Format::EventsV2);
    assert_eq!(a.retry.mode, RetryMode::Exponential);

    let b = &n.endpoints[1];
    assert_eq!(b.name, "audit");
    assert_eq!(b.headers, vec![("X-Source".to_string(), strings(&["registry"]))]);
    assert_eq!(b.timeout, Duration::from_secs(5));
    assert_eq!((b.threshold, b.backoff), (10, Duration::from_secs(1)));
    assert_eq!(b.format, Format::EventsV1);
    assert_eq!(b.max_events, 100);
    assert_eq!(
        (b.linger, a.linger),
        (Duration::from_millis(2), Duration::from_millis(1))
    );
    assert_eq!(
        (b.queue.capacity, b.queue.overflow),
        (50_000, Overflow::DropNewest)
    );
    assert_eq!(b.retry.mode, RetryMode::Exponential);
    assert_eq!(
        (b.retry.initial, b.retry.max),
        (Duration::from_millis(250), Duration::from_secs(120))
    );
    assert_eq!((b.retry.multiplier, b.retry.jitter), (1.5, 0.1));
    assert_eq!(
        (b.retry.max_attempts, b.retry.max_age),
        (Some(30), Duration::from_secs(12 * 3600))
    );
    assert_eq!(b.filter.include_repositories, ["prod/**"]);
    assert_eq!(b.filter.exclude_repositories, ["prod/tmp-*"]);
    assert_eq!(b.filter.exclude_methods, ["HEAD"]);
    assert!(b.redirects_as_success);
    assert_eq!(
        b.tls.ca,
        Some(CaSource::File("/etc/registry/audit-ca.pem".into()))
    );
    assert!(!b.tls.insecure_skip_verify);
    let (url, lines) = b.http_target();
    assert_eq!(url, "https://audit.example.com:8443/hooks?token=SECRET-query");
    assert!(lines[0].0 == "Authorization" && lines[0].1.starts_with("Basic "));

    let c = &n.endpoints[2];
    assert!(c.disabled);
    assert_eq!(c.retry.mode, RetryMode::Breaker);
    let enabled: Vec<&str> = config.enabled_endpoints().map(|e| e.name.as_str()).collect();
    assert_eq!(enabled, ["alistener", "audit"]);

    // Nothing secret survives into Debug output.
    let debug = format!("{config:?} {config:#?}");
    assert!(!debug.contains("SECRET"), "{debug}");
    assert!(debug.contains("https://***@audit.example.com:8443/hooks?***"));
}

#[test]
fn environment_overrides_through_an_explicit_iterator() {
    let mut config = Config::from_path(fixture("registry.yml")).unwrap();
    config
        .apply_env([
            (
                "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL",
                "http://127.0.0.1:6066/events",
            ),
            ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT", "2s"),
            ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_THRESHOLD", "7"),
            ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_BACKOFF", "3s"),
            ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_FORMAT", "events.v1"),
            ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_MAXEVENTS", "10"),
            ("REGISTRY_NOTIFICATIONS_ENDPOINTS_1_NAME", "second"),
            ("REGISTRY_NOTIFICATIONS_ENDPOINTS_1_URL", "http://second/"),
            ("REGISTRY_NOTIFICATIONS_ENDPOINTS_1_DISABLED", "true"),
            ("REGISTRY_NOTIFICATIONS_EVENTCONFIG_INCLUDEREFERENCES", "true"),
            ("REGISTRY_HTTP_ADDR", "0.0.0.0:5000"),
            ("REGISTRY_LOG_LEVEL", "debug"),
            ("UNRELATED", "x"),
        ])
        .unwrap();
    let n = config.notifications.as_ref().unwrap();
    assert!(n.events.include_references);
    let e = &n.endpoints[0];
    assert_eq!(e.url, "http://127.0.0.1:6066/events");
    assert_eq!(
        (e.timeout, e.threshold, e.backoff),
        (Duration::from_secs(2), 7, Duration::from_secs(3))
    );
    assert_eq!((e.format, e.max_events), (Format::EventsV1, 10));
    assert_eq!(e.headers.len(), 2);
    assert!(n.endpoints[1].disabled);
    assert_eq!(config.http.addr, "0.0.0.0:5000");

    let err = config
        .apply_env([("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT", "500")])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Distribution reads 500 as 500 nanoseconds"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Values that make no sense are refused, with the field's path and the value.

/// One endpoint `a` with `extra` (YAML lines at the endpoint's indentation).
fn endpoint_yaml(extra: &str) -> String {
    let extra: String = extra.lines().map(|l| format!("      {l}\n")).collect();
    format!("notifications:\n  endpoints:\n    - name: a\n      url: http://a/\n{extra}")
}

/// A NATS section with `extra` keys.
fn nats_yaml(extra: &str) -> String {
    format!("notifications:\n  nats:\n    url: nats://127.0.0.1:4222\n    {extra}\n")
}

#[test]
fn nonsense_values_are_refused_with_the_field_path() {
    const EP: &str = "notifications.endpoints[0] (\"a\")";
    const NATS: &str = "notifications.nats";
    // (where: endpoint, nats or the whole file; YAML; path of the error after the prefix; what the
    // message must contain)
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, &str)] = &[
        // Distribution's keys: ≤ 0 is refused (Distribution silently uses the default).
        ("ep", "timeout: -1s", ".timeout", "must be > 0, got -1s"),
        ("ep", "timeout: 0", ".timeout", "must be > 0, got 0"),
        ("ep", "timeout: 0s", ".timeout", "must be > 0, got 0s"),
        ("ep", "timeout: -1ns", ".timeout", "must be > 0, got -1ns"),
        ("ep", "backoff: -1s", ".backoff", "must be > 0, got -1s"),
        ("ep", "backoff: 0ms", ".backoff", "must be > 0, got 0ms"),
        ("ep", "threshold: -5", ".threshold", "must be > 0, got -5"),
        ("ep", "threshold: 0", ".threshold", "must be > 0, got 0"),
        ("ep", "threshold: -9223372036854775808", ".threshold", "got -9223372036854775808"),
        // Extensions.
        ("ep", "linger: -1ms", ".linger", "must not be negative (0 turns lingering off), got -1ms"),
        ("ep", "maxevents: -1", ".maxevents", "must not be negative"),
        ("ep", "maxevents: 0", ".maxevents", "must be > 0"),
        ("ep", "queue: {capacity: -1}", ".queue.capacity", "must not be negative"),
        ("ep", "queue: {capacity: 0}", ".queue.capacity", "must be > 0"),
        ("ep", "queue: {path: /q, maxbytes: -1}", ".queue.maxbytes", "must not be negative"),
        ("ep", "queue: {path: /q, maxbytes: '-1MiB'}", ".queue.maxbytes", "expected a size in bytes"),
        ("ep", "queue: {path: /q, fsyncinterval: -1s}", ".queue.fsyncinterval", "must be > 0, got -1s"),
        ("ep", "queue: {path: /q, fsyncinterval: 0s}", ".queue.fsyncinterval", "must be > 0"),
        ("ep", "retry: {initial: -1s}", ".retry.initial", "must be > 0, got -1s"),
        ("ep", "retry: {initial: 0s}", ".retry.initial", "must be > 0"),
        ("ep", "retry: {max: -1m}", ".retry.max", "must be > 0, got -1m"),
        ("ep", "retry: {maxage: -24h}", ".retry.maxage", "must be > 0, got -24h"),
        ("ep", "retry: {maxage: 0}", ".retry.maxage", "must be > 0"),
        ("ep", "retry: {maxattempts: -3}", ".retry.maxattempts", "must not be negative"),
        ("ep", "retry: {maxattempts: 0}", ".retry.maxattempts", "must be > 0"),
        ("ep", "retry: {multiplier: -2}", ".retry.multiplier", "must be >= 1"),
        ("ep", "retry: {jitter: -0.5}", ".retry.jitter", "must be between 0 and 1"),
        // NATS.
        ("nats", "ackwait: -1s", ".ackwait", "must be > 0, got -1s"),
        ("nats", "ackwait: 0s", ".ackwait", "must be > 0, got 0s"),
        ("nats", "duplicatewindow: -2m", ".duplicatewindow", "must be > 0, got -2m"),
        ("nats", "maxinflight: -1", ".maxinflight", "must not be negative"),
        ("nats", "maxinflight: 0", ".maxinflight", "must be > 0"),
        ("nats", "maxevents: -1", ".maxevents", "must not be negative"),
        ("nats", "queue: {capacity: -1}", ".queue.capacity", "must not be negative"),
        // Listen addresses.
        ("", "http: {addr: ':::::'}", "http.addr", "got \":::::\": too many colons"),
        ("", "http: {addr: 'host:99999'}", "http.addr", "port 99999 is out of range (0-65535)"),
        ("", "http: {addr: ':abc'}", "http.addr", "port \"abc\" is not a number"),
        ("", "http: {addr: ':5000abc'}", "http.addr", "is not a number"),
        ("", "http: {addr: ': 5000'}", "http.addr", "is not a number"),
        ("", "http: {addr: '5000'}", "http.addr", "missing port"),
        ("", "http: {addr: 'localhost:'}", "http.addr", "missing port number"),
        ("", "http: {addr: '::1:5000'}", "http.addr", "an IPv6 address needs brackets"),
        ("", "http: {addr: '[::1]'}", "http.addr", "missing port"),
        ("", "http: {addr: '[::1:5000'}", "http.addr", "missing ']'"),
        ("", "http: {addr: '[example.com]:80'}", "http.addr", "is not an IPv6 address"),
        ("", "http: {addr: '999.1.1.1:80'}", "http.addr", "is not an IPv4 address"),
        ("", "http: {addr: 'my host:80'}", "http.addr", "is not a host name"),
        ("", "http: {debug: {addr: ':::::'}}", "http.debug.addr", "too many colons"),
        ("", "http: {debug: {addr: 'localhost:70000'}}", "http.debug.addr", "out of range"),
        // With net: unix, addr is a path, but the debug server is still TCP.
        ("", "http: {net: unix, addr: /r.sock, debug: {addr: x}}", "http.debug.addr", "missing port"),
        ("", "http: {net: udp}", "http.net", "expected \"tcp\" or \"unix\""),
    ];
    for &(place, yaml, path, message) in cases {
        let (yaml, path) = match place {
            "ep" => (endpoint_yaml(yaml), format!("{EP}{path}")),
            "nats" => (nats_yaml(yaml), format!("{NATS}{path}")),
            _ => (yaml.to_owned(), path.to_owned()),
        };
        let e = Config::from_yaml_str(&yaml).expect_err(&yaml);
        assert_eq!(e.path(), path, "{yaml}\n{e}");
        assert!(e.to_string().contains(message), "{yaml}\n{e}\nwanted: {message}");
    }
    // The brief's example, in full.
    let e = Config::from_yaml_str(&endpoint_yaml("timeout: -1s")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "notifications.endpoints[0] (\"a\").timeout must be > 0, got -1s (Distribution would silently use \
         its default, 1s, instead; leave the key out for that)"
    );
    // The same checks apply to environment variables, which name themselves.
    let mut config = Config::from_yaml_str(&endpoint_yaml("")).unwrap();
    let e = config
        .apply_env([("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_THRESHOLD", "-5")])
        .unwrap_err();
    assert_eq!(
        (e.origin(), e.path()),
        (
            "environment variable REGISTRY_NOTIFICATIONS_ENDPOINTS_0_THRESHOLD",
            "notifications.endpoints[0] (\"a\").threshold"
        )
    );
    for (var, value, path) in [
        ("REGISTRY_HTTP_ADDR", ":::::", "http.addr"),
        ("REGISTRY_HTTP_DEBUG_ADDR", "host:99999", "http.debug.addr"),
        ("REGISTRY_HTTP_DEBUG", "{addr: ':x'}", "http.debug.addr"),
    ] {
        let e = config.apply_env([(var, value)]).unwrap_err();
        assert_eq!(e.path(), path, "{var}={value}: {e}");
    }
}

/// The YAML and the builder go through the same stage checks: for each setting, the error of
/// the YAML key and of the builder method have the same field path under their endpoint and
/// the same message.
#[test]
fn yaml_and_builder_share_one_validator() {
    use registry_notify::endpoint::{Endpoint, EndpointBuilder};
    use registry_notify::queue::{DurableConfig, QueueConfig};
    use registry_notify::retry::{Breaker, Exponential};
    const EP: &str = "notifications.endpoints[0] (\"a\")";
    let b = || Endpoint::builder("a", "http://a/");
    let exp = || Exponential::default().backoff(Duration::from_secs(1), Duration::from_secs(2));
    let durable = || DurableConfig::new("/q");
    #[rustfmt::skip]
    let cases: Vec<(&str, EndpointBuilder, &str)> = vec![
        ("maxevents: 0", b().max_events(0), "maxevents"),
        ("format: cloudevents\nmaxevents: 5", b().format(Format::CloudEvents).max_events(5), "maxevents"),
        ("queue: {capacity: 0}", b().queue(QueueConfig { capacity: 0, ..QueueConfig::default() }), "queue.capacity"),
        ("queue: {path: /q, maxbytes: 1000}", b().durable_queue(durable().max_bytes(1000)), "queue.maxbytes"),
        ("retry: {mode: exponential, multiplier: 0.5}", b().retry(exp().multiplier(0.5)), "retry.multiplier"),
        ("retry: {mode: exponential, jitter: 2}", b().retry(exp().jitter(2.0)), "retry.jitter"),
        ("retry: {mode: exponential, maxattempts: 0}", b().retry(exp().max_attempts(0)), "retry.maxattempts"),
        (
            "retry: {mode: exponential, initial: 2s, max: 1s}",
            b().retry(Exponential::default().backoff(Duration::from_secs(2), Duration::from_secs(1))),
            "retry.max",
        ),
        ("retry: {maxattempts: 0}", b().retry(Breaker::default().max_attempts(0)), "retry.maxattempts"),
        ("headers: {X-A: [\"a\\nb\"]}", b().header("X-A", "a\nb"), "headers.X-A[0]"),
        ("headers: {'Bad Name': [v]}", b().header("Bad Name", "v"), "headers"),
        ("signing: {secrets: ['whsec_!!!']}", b().signing_secret("whsec_!!!"), "signing"),
    ];
    for (yaml, builder, key) in cases {
        let yaml = endpoint_yaml(yaml);
        let from_yaml = Config::from_yaml_str(&yaml).expect_err(&yaml);
        let from_builder = builder.build().expect_err(key);
        assert_eq!(from_yaml.path(), format!("{EP}.{key}"), "{yaml}\n{from_yaml}");
        assert_eq!(
            from_builder.path(),
            format!("endpoint \"a\".{key}"),
            "{from_builder}"
        );
        assert_eq!(from_yaml.message(), from_builder.message(), "{yaml}");
    }
    // A URL the sink refuses, as written in either.
    let from_yaml = Config::from_yaml_str(&endpoint_yaml("").replace("http://a/", "ftp://a/")).unwrap_err();
    let from_builder = Endpoint::builder("a", "ftp://a/").build().unwrap_err();
    assert_eq!(from_yaml.message(), from_builder.message());
    assert!(
        from_yaml
            .message()
            .starts_with("must be an http:// or https:// URL"),
        "{from_yaml}"
    );
    assert_eq!(from_builder.path(), "endpoint \"a\".url");
}

#[test]
fn accepted_edge_values() {
    use registry_notify::config::EndpointConfig;
    fn ep(extra: &str) -> EndpointConfig {
        let c = Config::from_yaml_str(&endpoint_yaml(extra)).unwrap_or_else(|e| panic!("{extra}: {e}"));
        c.notifications.unwrap().endpoints.remove(0)
    }
    let ns = Duration::from_nanos(1);
    let max_duration = Duration::from_nanos(i64::MAX as u64);
    // (YAML, what it must give)
    type Check = Box<dyn Fn(&EndpointConfig) -> bool>;
    let cases: Vec<(&str, Check)> = vec![
        ("linger: 0", Box::new(|e| e.linger.is_zero())),
        ("linger: 0s", Box::new(|e| e.linger.is_zero())),
        ("linger: -0s", Box::new(|e| e.linger.is_zero())),
        ("linger: 1ns", Box::new(move |e| e.linger == ns)),
        ("timeout: 1ns", Box::new(move |e| e.timeout == ns)),
        (
            "timeout: ~",
            Box::new(|e| e.timeout == EndpointConfig::DEFAULT_TIMEOUT),
        ),
        (
            "timeout: 2562047h47m16.854775807s",
            Box::new(move |e| e.timeout == max_duration),
        ),
        ("backoff: 1ns", Box::new(move |e| e.backoff == ns)),
        ("threshold: 1", Box::new(|e| e.threshold == 1)),
        ("threshold: 4294967295", Box::new(|e| e.threshold == u32::MAX)),
        (
            "threshold: ~",
            Box::new(|e| e.threshold == EndpointConfig::DEFAULT_THRESHOLD),
        ),
        ("maxevents: 1", Box::new(|e| e.max_events == 1)),
        ("maxevents: 1000000", Box::new(|e| e.max_events == 1_000_000)),
        (
            "queue: {capacity: 18446744073709551615}",
            Box::new(|e| e.queue.capacity as u64 == u64::MAX),
        ),
        ("queue: {capacity: 1}", Box::new(|e| e.queue.capacity == 1)),
        (
            "queue: {path: /q, maxbytes: 65536, fsyncinterval: 1ns}",
            Box::new(move |e| e.queue.max_bytes == 65536 && e.queue.fsync_interval == ns),
        ),
        (
            "queue: {path: /q, maxbytes: 16TiB}",
            Box::new(|e| e.queue.max_bytes == 16 << 40),
        ),
        (
            "retry: {initial: 1ns, max: 1ns, maxage: 1ns, multiplier: 1, jitter: 0}",
            Box::new(move |e| e.retry.initial == ns && e.retry.max == ns && e.retry.max_age == ns),
        ),
        ("retry: {jitter: 1}", Box::new(|e| e.retry.jitter == 1.0)),
        (
            "retry: {maxattempts: 4294967295}",
            Box::new(|e| e.retry.max_attempts == Some(u32::MAX)),
        ),
        (
            "retry: {maxattempts: 1}",
            Box::new(|e| e.retry.max_attempts == Some(1)),
        ),
    ];
    for (extra, check) in &cases {
        let e = ep(extra);
        assert!(check(&e), "{extra}: {e:?}");
    }
    // NATS.
    let c = Config::from_yaml_str(&nats_yaml(
        "ackwait: 1ns\n    duplicatewindow: 1ns\n    maxinflight: 1048576",
    ))
    .unwrap();
    let nats = c.notifications.unwrap().nats.unwrap();
    assert_eq!(
        (nats.ack_wait, nats.duplicate_window, nats.max_in_flight),
        (ns, ns, 1 << 20)
    );
    // Listen addresses.
    for addr in [
        ":5000",
        ":0",
        ":65535",
        "localhost:5000",
        "0.0.0.0:5000",
        "127.0.0.1:5000",
        "registry.example.com:443",
        "[::]:5000",
        "[::1]:5000",
        "[fe80::1%eth0]:5000",
        "",
    ] {
        let c = Config::from_yaml_str(&format!("http: {{addr: '{addr}', debug: {{addr: '{addr}'}}}}"))
            .unwrap_or_else(|e| panic!("{addr}: {e}"));
        if !addr.is_empty() {
            assert_eq!(c.http.addr, addr);
            assert_eq!(c.http.debug_addr.as_deref(), Some(addr));
        } else {
            assert_eq!((c.http.addr.as_str(), c.http.debug_addr), (":5000", None));
        }
    }
    let c = Config::from_yaml_str("http: {net: unix, addr: /run/registry.sock}").unwrap();
    assert_eq!(
        (c.http.net.as_str(), c.http.addr.as_str()),
        ("unix", "/run/registry.sock")
    );
    let mut c = Config::from_yaml_str("version: 0.1").unwrap();
    c.apply_env([("REGISTRY_HTTP_DEBUG_ADDR", "localhost:5001")])
        .unwrap();
    assert_eq!(c.http.debug_addr.as_deref(), Some("localhost:5001"));
    // Distribution's metrics switch, from the file and from the environment.
    assert!(!c.http.debug_prometheus);
    assert_eq!(c.http.debug_prometheus_path, "/metrics");
    c.apply_env([
        ("REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED", "true"),
        ("REGISTRY_HTTP_DEBUG_PROMETHEUS_PATH", "/prom"),
    ])
    .unwrap();
    assert!(c.http.debug_prometheus);
    assert_eq!(c.http.debug_prometheus_path, "/prom");
    let c = Config::from_yaml_str("http: {debug: {addr: ':5001', prometheus: {enabled: true, path: /m}}}")
        .unwrap();
    assert_eq!(
        (c.http.debug_prometheus, c.http.debug_prometheus_path.as_str()),
        (true, "/m")
    );
    let e = Config::from_yaml_str("http: {debug: {prometheus: {path: metrics}}}").unwrap_err();
    assert!(
        e.to_string()
            .contains("http.debug.prometheus.path: must start with /"),
        "{e}"
    );
    // Distribution's drain bound.
    let mut c = Config::from_yaml_str("http: {draintimeout: 7s}").unwrap();
    assert_eq!(c.http.drain_timeout, Some(std::time::Duration::from_secs(7)));
    c.apply_env([("REGISTRY_HTTP_DRAINTIMEOUT", "250ms")]).unwrap();
    assert_eq!(c.http.drain_timeout, Some(std::time::Duration::from_millis(250)));
    for bad in ["0s", "-1s", "soon"] {
        let e = Config::from_yaml_str(&format!("http: {{draintimeout: {bad}}}")).unwrap_err();
        assert!(e.to_string().contains("http.draintimeout"), "{bad}: {e}");
    }
    let e = Config::from_yaml_str("http: {debug: {prometheus: {enabled: maybe}}}").unwrap_err();
    assert!(e.to_string().contains("http.debug.prometheus.enabled"), "{e}");
}
