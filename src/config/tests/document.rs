//! The document as a whole: unknown keys, names, shapes, `http`, `storage`, `version`, files.

use super::*;

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
    let from_serde: Config = yaml_serde::from_str("version: 0.1").unwrap();
    assert_eq!(from_serde, c_version_only());
    let e = yaml_serde::from_str::<Config>(&endpoint("timout: 1s"))
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
