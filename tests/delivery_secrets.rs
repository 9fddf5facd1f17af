//! Header values and URL credentials never appear in Debug output, errors, metrics or
//! logs; failed attempts do not flood the logs.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use registry_notify::endpoint::{Endpoint, EndpointBuilder};
use registry_notify::http_sink::HttpSink;
use registry_notify::retry::Breaker;
use registry_notify::retry::DeadLetter;
use registry_notify::Batch;
use support::events::event;
use support::logs::Logs;
use support::receiver::{always, Receiver};
use support::{dead_addr, wait_until, HANG_GUARD};
use tokio::time::Instant;
use tower::ServiceExt;

const PASSWORD: &str = "hunter2-pw";
const QUERY_TOKEN: &str = "tok3n-in-query";
const BEARER: &str = "s3cr3t-bearer";
const API_KEY: &str = "k3y-header-value";
/// A Standard Webhooks signing secret (and its base64 part alone).
const SIGNING: &str = "whsec_c2lnbmluZy1zZWNyZXQtMTIzNDU2Nzg5MA==";
const SIGNING_B64: &str = "c2lnbmluZy1zZWNyZXQtMTIzNDU2Nzg5MA==";
const SECRETS: [&str; 6] = [PASSWORD, QUERY_TOKEN, BEARER, API_KEY, SIGNING, SIGNING_B64];

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} leaks {s:?}: {text}");
    }
}

fn secret_endpoint(host: &str) -> EndpointBuilder {
    Endpoint::builder(
        "secret",
        format!("http://alice:{PASSWORD}@{host}/hook?token={QUERY_TOKEN}&x=1"),
    )
    .header("Authorization", format!("Bearer {BEARER}"))
    .header("X-Api-Key", API_KEY)
    .signing_secret(SIGNING)
}

#[test]
fn debug_output_and_config_errors_redact() {
    let builder = secret_endpoint("127.0.0.1:9");
    assert_clean("EndpointBuilder Debug", &format!("{builder:?}"));
    let endpoint = builder.build().unwrap();
    let debug = format!("{endpoint:?}");
    assert_clean("Endpoint Debug", &debug);
    assert!(
        debug.contains("authorization") && debug.contains("x-api-key"),
        "names are shown: {debug}"
    );
    assert!(debug.contains("http://***@127.0.0.1:9/hook?***"), "{debug}");
    assert_clean("Endpoint redacted_url", endpoint.redacted_url());
    assert_clean(
        "HttpSink Debug",
        &format!(
            "{:?}",
            HttpSink::new(endpoint.http().expect("a webhook endpoint"))
        ),
    );

    // Errors name the field, never the value.
    let err = secret_endpoint("127.0.0.1:9")
        .header("X-Bad", format!("{API_KEY}\nsplit"))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "endpoint \"secret\".headers.X-Bad[0]: invalid header value (control characters are not allowed)"
    );
    let err = Endpoint::builder(
        "secret",
        format!("http://alice:{PASSWORD}@[::1/?token={QUERY_TOKEN}"),
    )
    .build()
    .unwrap_err();
    assert_clean("ConfigError", &err.to_string());
    assert_clean("ConfigError Debug", &format!("{err:?}"));
    let err = Endpoint::builder("secret", format!("ftp://alice:{PASSWORD}@h/?token={QUERY_TOKEN}"))
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("url: must be an http:// or https:// URL"),
        "{err}"
    );
    assert_clean("ConfigError", &err.to_string());
    let err = Endpoint::builder("x", "http://h/")
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "endpoint \"x\".timeout must be > 0");
}

/// The secrets are sent (to the right place) but stay out of metrics, handles and logs.
#[tokio::test]
async fn delivery_keeps_secrets_out_of_metrics_and_logs() {
    let (logs, _guard) = Logs::capture();
    let server = Receiver::start(always(200)).await;
    let (sink, handle) = secret_endpoint(&server.addr.to_string()).build().unwrap().spawn();
    sink.oneshot(Batch::from(event(0, "r"))).await.unwrap();
    assert_eq!(handle.shutdown(Instant::now() + HANG_GUARD).await, 0);
    let r = &server.requests()[0];
    assert_eq!(r.headers["authorization"], format!("Bearer {BEARER}").as_str());
    assert_eq!(r.headers["x-api-key"], API_KEY);
    assert_eq!(r.uri.query(), Some(format!("token={QUERY_TOKEN}&x=1").as_str()));

    let snapshot = handle.metrics();
    assert_clean("snapshot", &format!("{snapshot:?}"));
    assert_clean("snapshot JSON", &serde_json::to_string(&snapshot).unwrap());
    assert_clean("EndpointHandle Debug", &format!("{handle:?}"));
    let text = logs.text();
    assert!(text.contains("configuring endpoint"), "{text}");
    assert_clean("logs", &text);
}

/// Failing attempts: errors, dead letters and logs are clean; the log has at most one
/// line per failed attempt and no flood once the endpoint is known to be failing.
#[tokio::test]
async fn failures_keep_secrets_out_and_do_not_flood() {
    let (logs, _guard) = Logs::capture();
    let addr = dead_addr().await;
    let letters: Arc<Mutex<Vec<DeadLetter>>> = Arc::default();
    let l = letters.clone();
    let retry = Breaker::new(3, Duration::from_millis(5))
        .max_attempts(40)
        .max_age(None);
    let records: Arc<Mutex<Vec<String>>> = Arc::default();
    let r = records.clone();
    let endpoint = secret_endpoint(&addr.to_string())
        .retry(retry)
        .dead_letter(move |d| l.lock().unwrap().push(d))
        .delivery_log(move |record| r.lock().unwrap().push(format!("{record:?}")))
        .build()
        .unwrap();

    // One attempt directly: the transport error text is clean.
    let err = HttpSink::new(endpoint.http().expect("a webhook endpoint"))
        .oneshot(Batch::from(event(0, "r")))
        .await
        .unwrap_err();
    assert_clean("transport error", &err.to_string());
    assert_clean("transport error Debug", &format!("{err:?}"));

    let (sink, handle) = endpoint.spawn();
    sink.oneshot(Batch::from(event(1, "r"))).await.unwrap();
    wait_until("dead letter", || !letters.lock().unwrap().is_empty()).await;
    let letter = letters.lock().unwrap()[0].clone();
    assert_eq!(letter.attempts, 40);
    assert_clean("dead letter reason", &letter.reason);
    assert_clean("dead letter Debug", &format!("{letter:?}"));
    assert_eq!(handle.shutdown(Instant::now() + HANG_GUARD).await, 0);
    assert_eq!(handle.metrics().errors, 40);
    let records = records.lock().unwrap();
    assert_eq!(records.len(), 41, "40 attempts and the dead letter");
    for record in records.iter() {
        assert_clean("delivery log record", record);
    }

    let text = logs.text();
    if std::env::var("SHOW_LOGS").is_ok() {
        eprintln!("{text}");
    }
    assert_clean("logs", &text);
    // 40 failed attempts: WARN for the attempts before the breaker opened, one reminder
    // after, and the dead letter; the rest at DEBUG.
    let warn_lines = logs.lines("WARN", "registry_notify");
    assert!(warn_lines <= 6, "WARN flood ({warn_lines} lines):\n{text}");
    assert_eq!(logs.lines("WARN", "dead letter"), 1, "{text}");
    assert_eq!(logs.lines("INFO", "breaker open"), 1, "{text}");
    assert!(logs.lines("DEBUG", "attempt failed") >= 30, "{text}");
    assert!(!text.contains("\"events\""), "no bodies in logs");
}
