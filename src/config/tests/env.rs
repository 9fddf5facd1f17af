//! Environment overrides.

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

/// The debug listener's token, from the file or the environment (taken as it is, never
/// parsed), never shown by `Debug` nor in an error.
#[test]
fn debug_token() {
    let c = with_env("http: {debug: {addr: ':5001', token: s3cr3t-file}}", &[]).unwrap();
    let token = c.http.debug_token.clone().unwrap();
    assert_eq!(token.expose(), "s3cr3t-file");
    assert!(token.matches(b"s3cr3t-file"));
    assert!(!token.matches(b"s3cr3t-fil") && !token.matches(b"s3cr3t-filf") && !token.matches(b""));
    assert!(!format!("{c:?}").contains("s3cr3t"), "{c:?}");
    // A value YAML would read as a number or a mapping is still the token.
    for raw in ["12345", "{a:b}", "x:y#z"] {
        let c = with_env("version: 0.1", &[("REGISTRY_HTTP_DEBUG_TOKEN", raw)]).unwrap();
        assert_eq!(c.http.debug_token.unwrap().expose(), raw);
    }
    let c = with_env("http: {debug: {token: a}}", &[("REGISTRY_HTTP_DEBUG_TOKEN", "")]).unwrap();
    assert_eq!(c.http.debug_token, None, "empty clears it");
    let errors = [
        err("http: {debug: {token: 's3cr3t with space'}}"),
        err("http: {debug: {token: [s3cr3t]}}"),
        with_env("version: 0.1", &[("REGISTRY_HTTP_DEBUG_TOKEN", "s3cr3t\u{e9}")]).unwrap_err(),
    ];
    for e in errors {
        assert!(e.contains("http.debug.token") && !e.contains("s3cr3t"), "{e}");
    }
}
