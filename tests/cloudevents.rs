//! CloudEvents 1.0 formats (`cloudevents`, `cloudevents-batch`): what a real HTTP receiver
//! gets is validated against the CloudEvents JSON schema (vendored in
//! tests/fixtures/cloudevents/, checked with Python's `jsonschema`, formats included) and
//! checked attribute by attribute.

mod support;

use std::process::Command;

use registry_notify::endpoint::Endpoint;
use registry_notify::http_sink::HttpSink;
use registry_notify::{Action, Batch, Config, Event, Format, Target, Timestamp};
use serde_json::Value;
use support::receiver::{always, by_index, Received, Receiver};
use support::retry::retries;
use support::HANG_GUARD;
use tokio::time::Instant;
use tower::ServiceExt;

/// Validates every body given on the command line (files) with the vendored schema:
/// `application/cloudevents+json` bodies are one event, batch bodies an array of events.
const VALIDATE: &str = r#"
import json, sys
import jsonschema

schema = json.load(open(sys.argv[1]))
checker = jsonschema.FormatChecker()
for fmt in ("date-time", "uri-reference"):
    if fmt not in checker.checkers:
        sys.exit("jsonschema cannot check format %s: pip install rfc3339-validator rfc3986-validator" % fmt)
validator = jsonschema.Draft7Validator(schema, format_checker=checker)
for path in sys.argv[2:]:
    item = json.load(open(path))
    body = json.loads(item["body"])
    if item["content_type"] == "application/cloudevents-batch+json":
        assert isinstance(body, list), "a batch is a JSON array"
        events = body
    else:
        assert item["content_type"] == "application/cloudevents+json", item["content_type"]
        assert isinstance(body, dict), "structured mode is one JSON object"
        events = [body]
    for event in events:
        validator.validate(event)
        assert event["specversion"] == "1.0"
print("valid")
"#;

/// Runs the schema validation on the bodies `requests` carried; `false` if skipped.
fn validate_with_schema(requests: &[Received]) -> bool {
    let bodies: Vec<(String, Vec<u8>)> = requests
        .iter()
        .map(|r| {
            let content_type = r.headers["content-type"].to_str().unwrap().to_owned();
            (content_type, r.body.to_vec())
        })
        .collect();
    match run_validator(&bodies) {
        None => false,
        Some(Ok(())) => true,
        Some(Err(e)) => panic!("schema validation failed:\n{e}"),
    }
}

/// The validator's verdict on `(content type, body)` pairs; `None` if skipped.
fn run_validator(bodies: &[(String, Vec<u8>)]) -> Option<Result<(), String>> {
    let python = support::python::require_python(&["jsonschema"])?;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("validate.py");
    std::fs::write(&script, VALIDATE).unwrap();
    let schema =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cloudevents/cloudevents.json");
    let mut files = Vec::new();
    for (i, (content_type, body)) in bodies.iter().enumerate() {
        let path = dir.path().join(format!("body-{i}.json"));
        let item = serde_json::json!({
            "content_type": content_type,
            "body": String::from_utf8(body.clone()).unwrap(),
        });
        std::fs::write(&path, item.to_string()).unwrap();
        files.push(path);
    }
    let out = Command::new(python)
        .arg(&script)
        .arg(&schema)
        .args(&files)
        .output()
        .unwrap();
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

/// The check is not vacuous: events without `source`, with a bad `time` or a `source` that
/// is no URI reference, and a batch body sent as structured mode, are all rejected.
#[test]
fn the_schema_check_rejects_bad_events() {
    let structured = "application/cloudevents+json".to_owned();
    let good = r#"{"specversion":"1.0","id":"x","source":"//registry:5000","type":"io.distribution.push","time":"2024-01-02T03:04:05.123456789Z"}"#;
    let Some(verdict) = run_validator(&[(structured.clone(), good.as_bytes().to_vec())]) else {
        return;
    };
    verdict.unwrap();
    let bad = [
        good.replace(r#""source":"//registry:5000","#, ""),
        good.replace("2024-01-02T03", "2024-13-02T03"),
        good.replace("//registry:5000", "//registry 5000"),
        format!("[{good}]"),
    ];
    for body in bad {
        let verdict = run_validator(&[(structured.clone(), body.clone().into_bytes())]).unwrap();
        assert!(verdict.is_err(), "accepted: {body}");
    }
}

/// Events of every action, with and without tag, digest and source address.
fn events() -> Vec<Event> {
    let mut out = Vec::new();
    for (i, action) in [Action::Push, Action::Pull, Action::Mount, Action::Delete]
        .into_iter()
        .enumerate()
    {
        let mut e = Event::new(action, Target::default());
        e.id = format!("ce-{i}").into();
        e.timestamp = Timestamp::from_unix(1_700_000_000 + i as i64, 123_456_789);
        e.target.repository = "library/alpine".into();
        e.target.descriptor.media_type = "application/vnd.oci.image.manifest.v1+json".into();
        e.target.descriptor.digest = format!("sha256:{}", "ab".repeat(32)).into();
        e.target.descriptor.size = 1234;
        if action == Action::Push {
            e.target.tag = "3.20".into();
        }
        if action != Action::Delete {
            e.source.addr = "registry-1:5000".into();
        }
        e.request.method = "PUT".into();
        out.push(e);
    }
    out
}

/// Checks the attributes of one CloudEvent against the event it came from.
fn check_attributes(ce: &Value, e: &Event) {
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["id"], e.id.as_str());
    assert_eq!(ce["type"], format!("io.distribution.{}", e.action));
    let want_source = if e.source.addr.is_empty() {
        "/registry-notify".to_owned()
    } else {
        format!("//{}", e.source.addr)
    };
    assert_eq!(ce["source"], want_source.as_str());
    let want_subject = if e.target.tag.is_empty() {
        format!("{}@{}", e.target.repository, e.target.descriptor.digest)
    } else {
        format!("{}:{}", e.target.repository, e.target.tag)
    };
    assert_eq!(ce["subject"], want_subject.as_str());
    assert_eq!(ce["datacontenttype"], "application/json");
    let time: Timestamp = ce["time"].as_str().unwrap().parse().unwrap();
    assert_eq!(time, e.timestamp);
    // data is the Distribution event (events.v2 form) and decodes back to it.
    let data: Event = serde_json::from_value(ce["data"].clone()).unwrap();
    assert_eq!(&data, e);
    assert_eq!(ce["data"]["target"]["size"], 1234);
}

#[tokio::test]
async fn structured_mode_one_event_per_request_matches_the_schema() {
    let server = Receiver::start(always(202)).await;
    let (sink, handle) = Endpoint::builder("ce", server.url())
        .format(Format::CloudEvents)
        .build()
        .unwrap()
        .spawn();
    let events = events();
    for e in &events {
        sink.clone().oneshot(Batch::from(e.clone())).await.unwrap();
    }
    assert_eq!(handle.shutdown(Instant::now() + HANG_GUARD).await, 0);
    let requests = server.requests();
    assert_eq!(requests.len(), events.len());
    for r in &requests {
        assert_eq!(r.headers["content-type"], "application/cloudevents+json");
        let ce: Value = serde_json::from_slice(&r.body).unwrap();
        let e = events.iter().find(|e| ce["id"] == e.id.as_str()).unwrap();
        check_attributes(&ce, e);
    }
    validate_with_schema(&requests);
}

/// `batch` POSTed by a structured-mode HTTP sink to a receiver answering 200.
async fn post_structured(batch: Batch) -> Receiver {
    let server = Receiver::start(always(200)).await;
    let endpoint = Endpoint::builder("ce", server.url())
        .format(Format::CloudEvents)
        .build()
        .unwrap();
    HttpSink::new(endpoint.http().expect("a webhook endpoint"))
        .oneshot(batch)
        .await
        .unwrap();
    server
}

/// A structured-mode sink driven directly with several events (the endpoint builder never
/// lets that happen) sends them as a batch, labelled as one.
#[tokio::test]
async fn structured_mode_labels_a_larger_batch_as_a_batch() {
    let server = post_structured(Batch::from(events())).await;
    let requests = server.requests();
    assert_eq!(
        requests[0].headers["content-type"],
        "application/cloudevents-batch+json"
    );
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body.as_array().map(Vec::len), Some(events().len()));
}

#[tokio::test]
async fn batch_mode_is_an_array_and_matches_the_schema() {
    let server = Receiver::start(always(200)).await;
    let endpoint = Endpoint::builder("ce", server.url())
        .format(Format::CloudEventsBatch)
        .max_events(10)
        .build()
        .unwrap();
    let events = events();
    HttpSink::new(endpoint.http().expect("a webhook endpoint"))
        .oneshot(Batch::from(events.clone()))
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].headers["content-type"],
        "application/cloudevents-batch+json"
    );
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let array = body.as_array().unwrap();
    assert_eq!(array.len(), events.len());
    for (ce, e) in array.iter().zip(&events) {
        check_attributes(ce, e);
    }
    validate_with_schema(&requests);
}

/// Structured mode needs `max_events` 1; a larger batch handed to the sink directly is not
/// cut: it goes out in batch mode, with the batch media type.
#[tokio::test]
async fn structured_mode_and_batches() {
    let err = Endpoint::builder("ce", "http://127.0.0.1:9/")
        .format(Format::CloudEvents)
        .max_events(5)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "endpoint \"ce\".maxevents must be 1 with format cloudevents (one event per request; use cloudevents-batch to batch)"
    );
    let server = post_structured(Batch::from(events()[..2].to_vec())).await;
    let r = &server.requests()[0];
    assert_eq!(r.headers["content-type"], "application/cloudevents-batch+json");
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    validate_with_schema(&server.requests());
}

/// A retried CloudEvent is byte-identical.
#[tokio::test]
async fn retries_are_byte_identical() {
    let server = Receiver::start(by_index(|n, _| if n == 0 { 503 } else { 200 })).await;
    let (sink, handle) = Endpoint::builder("ce", server.url())
        .format(Format::CloudEvents)
        .retry(retries(1, 1, Some(5)))
        .build()
        .unwrap()
        .spawn();
    sink.oneshot(Batch::from(events()[0].clone())).await.unwrap();
    assert_eq!(handle.shutdown(Instant::now() + HANG_GUARD).await, 0);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body);
}

/// The YAML `format` key selects the CloudEvents formats.
#[tokio::test]
async fn yaml_format_keys() {
    let server = Receiver::start(always(200)).await;
    let yaml = format!(
        "notifications:\n  endpoints:\n    - name: structured\n      url: {url}\n      format: cloudevents\n    - name: batched\n      url: {url}\n      format: cloudevents-batch\n      maxevents: 10\n",
        url = server.url()
    );
    let config = Config::from_yaml_str(&yaml).unwrap();
    let endpoints = config.notifications.unwrap().endpoints().unwrap();
    assert_eq!(endpoints[0].format(), Format::CloudEvents);
    assert_eq!(endpoints[1].format(), Format::CloudEventsBatch);
    for endpoint in endpoints {
        HttpSink::new(endpoint.http().expect("a webhook endpoint"))
            .oneshot(Batch::from(events()[0].clone()))
            .await
            .unwrap();
    }
    let types: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.headers["content-type"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "application/cloudevents+json",
            "application/cloudevents-batch+json"
        ]
    );
    validate_with_schema(&server.requests());
}
