//! Our extension sections: values and the error of each.

use super::*;

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
        (10, crate::queue::Overflow::DropNewest)
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
        ("format: events.v3", ".format: unknown format \"events.v3\" (expected events.v1, events.v2, cloudevents, cloudevents-batch or template)"),
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
        ("retry: {initial: -1s}", ".retry.initial must be > 0, got -1s"),
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
        ("filter: {actions: [pull]}", ".filter: unknown key \"actions\" (expected one of: repositories, tags, methods)"),
        ("filter: {tags: {include: ['']}}", ".filter.tags.include[0] must not be empty"),
        ("filter: {tags: {exclude: [v1, ' ']}}", ".filter.tags.exclude[1] must not be empty"),
        ("filter: {tags: {includes: [v1]}}", ".filter.tags: unknown key \"includes\" (did you mean \"include\"?)"),
        ("filter: {tags: {include: [v1, 'a/b']}}", ".filter.tags.include[1]: invalid tag glob \"a/b\": a tag has no /"),
        ("filter: {repositories: {exclude: ['a//b']}}", ".filter.repositories.exclude[0]: invalid repository glob \"a//b\": empty path segment"),
        ("filter: {tags: {include: [v*], exclude: ['*-rc*']}}", ""),
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

/// `format: template` with `template:`: a preset, a file (read when the endpoint is built) or
/// an inline source; each error names the key, and a template that does not compile its line.
#[cfg(feature = "templates")]
#[test]
fn payload_templates() {
    let e = ep("format: template, template: {preset: discord}");
    assert!(e.template.enabled);
    let built = e.to_endpoint().unwrap();
    let template = built.http().unwrap().template().unwrap();
    assert_eq!(template.content_type(), "application/json");
    let e = ep("template: {source: '{{ count }}', contenttype: text/plain}, format: template");
    let built = e.to_endpoint().unwrap();
    let template = built.http().unwrap().template().unwrap();
    assert_eq!(
        (
            template.content_type().to_str().unwrap(),
            template.render(&[]).unwrap()
        ),
        ("text/plain", b"0".to_vec())
    );
    assert!(ep("format: events.v2")
        .to_endpoint()
        .unwrap()
        .http()
        .unwrap()
        .template()
        .is_none());

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.j2");
    std::fs::write(&good, "{\"n\": {{ count }}}").unwrap();
    let e = ep(&format!(
        "format: template, template: {{file: '{}'}}",
        good.display()
    ));
    assert_eq!(
        e.to_endpoint()
            .unwrap()
            .http()
            .unwrap()
            .template()
            .unwrap()
            .render(&[])
            .unwrap(),
        b"{\"n\": 0}"
    );
    let bad = dir.path().join("bad.j2");
    std::fs::write(&bad, "{\n  \"n\": {{ count }\n}").unwrap();
    let e = ep(&format!(
        "format: template, template: {{file: '{}'}}",
        bad.display()
    ));
    let err = e.to_endpoint().unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "endpoint \"a\".template.file: {}:2: syntax error",
            bad.display()
        )),
        "{err}"
    );

    for (extra, want) in [
        (
            "format: template",
            "notifications.endpoints[0] (\"a\").format: `template` needs template.preset, template.file or template.source",
        ),
        (
            "template: {preset: slack}",
            "notifications.endpoints[0] (\"a\").template: is used only with format: template",
        ),
        (
            "format: template, template: {preset: slack, source: x}",
            "notifications.endpoints[0] (\"a\").template: give one of preset, file and source",
        ),
        (
            "format: template, template: {preset: matrix}",
            "notifications.endpoints[0] (\"a\").template.preset: unknown preset \"matrix\" (expected slack, teams or discord)",
        ),
        (
            "format: template, template: {source: \"a\\n{% if %}\"}",
            "notifications.endpoints[0] (\"a\").template.source: line 2: syntax error",
        ),
        (
            "format: template, template: {preset: slack, colour: red}",
            "notifications.endpoints[0] (\"a\").template: unknown key \"colour\"",
        ),
        (
            "format: xml",
            "notifications.endpoints[0] (\"a\").format: unknown format \"xml\" (expected events.v1, events.v2, cloudevents, cloudevents-batch or template)",
        ),
    ] {
        let err = ep_err(extra);
        assert!(err.starts_with(want), "{extra}: {err}");
    }
}
