//! Feature `metrics`: endpoint counters exported through the `metrics` facade with
//! Distribution 3's Prometheus names. Run with `--features metrics`.
#![cfg(feature = "metrics")]

mod support;

use std::time::Duration;

use registry_notify::endpoint::Endpoint;
use registry_notify::retry::Breaker;
use registry_notify::Batch;
use support::events::event;
use support::receiver::{by_index, Receiver};
use support::HANG_GUARD;
use tower::ServiceExt;

/// The value of the sample of `name` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || *l == name || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn prometheus_names_match_distribution() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("first recorder of this test binary");

    let server = Receiver::start(by_index(|n, _| if n == 1 { 503 } else { 200 })).await;
    let retry = Breaker::new(5, Duration::from_millis(10));
    let (sink, endpoint) = Endpoint::builder("prom", server.url())
        .retry(retry)
        .build()
        .unwrap()
        .spawn();
    for i in 0..3 {
        sink.clone().oneshot(Batch::from(event(i, "r"))).await.unwrap();
    }
    assert_eq!(
        endpoint.shutdown(tokio::time::Instant::now() + HANG_GUARD).await,
        0
    );

    let text = handle.render();
    let ep = "endpoint=\"prom\"";
    let events = "registry_notifications_events_total";
    assert_eq!(
        sample(&text, events, &["type=\"Events\"", ep]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, events, &["type=\"Successes\"", ep]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, events, &["type=\"Failures\"", ep]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "registry_notifications_pending_total", &[ep]),
        Some(0.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE registry_notifications_pending_total gauge"),
        "{text}"
    );
    let status = "registry_notifications_status_total";
    assert_eq!(
        sample(&text, status, &["code=\"200 OK\"", ep]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, status, &["code=\"503 Service Unavailable\"", ep]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "registry_notifications_delivered_total", &[ep]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "registry_notifications_retries_total", &[ep]),
        Some(1.0),
        "{text}"
    );

    // The facade and the snapshot agree.
    let m = endpoint.metrics();
    assert_eq!((m.events, m.successes, m.failures, m.errors), (3, 3, 1, 0));

    // An independent parser reads the whole text: every documented name has its HELP line,
    // and every attempt's duration was recorded.
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    for name in [
        "registry_notifications_events_total",
        "registry_notifications_pending_total",
        "registry_notifications_status_total",
        "registry_notifications_delivered_total",
        "registry_notifications_retries_total",
        "registry_notifications_breaker_open",
        "registry_notifications_delivery_duration_seconds",
    ] {
        let help = scrape
            .docs
            .get(name)
            .unwrap_or_else(|| panic!("no HELP for {name}: {text}"));
        assert!(!help.is_empty(), "{name}");
    }
    let attempts: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "registry_notifications_delivery_duration_seconds_count")
        .filter(|s| s.labels.get("endpoint") == Some("prom"))
        .map(|s| match s.value {
            prometheus_parse::Value::Untyped(v) | prometheus_parse::Value::Counter(v) => v,
            ref other => panic!("{other:?}"),
        })
        .sum();
    assert_eq!(attempts, 4.0, "three successes and one 503: {text}");
}
