//! The retry stage's log lines and breaker metric over a failing streak, in paused time. In a
//! binary of its own: `tracing` caches per call site whether anyone listens, and another test
//! logging from another thread at the same moment can make a thread-local capture miss lines.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use registry_notify::metrics::EndpointMetrics;
use registry_notify::retry::{Breaker, DeliveryRetryLayer};
use registry_notify::sink::{BoxError, BoxSink, DeliveryError};
use registry_notify::Batch;
use support::events::events;
use tower::{Layer, ServiceExt};

const MS: Duration = Duration::from_millis(1);

/// A failing streak is logged at WARN until the breaker opens, then reminded of once a minute;
/// the breaker's opening and closing are logged once each (INFO); `breaker_open` is set the moment the breaker opens, not one failure
/// later, and cleared on recovery.
#[tokio::test(start_paused = true)]
async fn breaker_opening_is_shown_at_once_and_logged_once_per_streak() {
    let (logs, _guard) = support::logs::Logs::capture();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let sink = BoxSink::new(tower::service_fn(move |_: Batch| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if n < 5 {
            Err(BoxError::from(DeliveryError::Status {
                status: http::StatusCode::SERVICE_UNAVAILABLE,
                retry_after: None,
            }))
        } else {
            Ok(())
        })
    }));
    let metrics = Arc::new(EndpointMetrics::new("r", "http://receiver/"));
    let sink = DeliveryRetryLayer::new(Breaker::new(2, 100 * MS))
        .name("r")
        .metrics(metrics.clone())
        .layer(sink);
    let delivery = tokio::spawn(sink.clone().oneshot(Batch::from(events(0, 1))));
    // Failures 1 and 2 happen at once; the breaker is open for the next 100 ms.
    tokio::time::sleep(50 * MS).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(sink.is_failing());
    assert!(
        metrics.snapshot().breaker_open,
        "open as soon as the threshold is reached"
    );
    delivery.await.unwrap().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    assert!(!metrics.snapshot().breaker_open);
    assert_eq!(metrics.snapshot().dead_lettered, 0);
    // A WARN for each failure before the breaker opened, one reminder once it is open (then
    // once a minute), DEBUG for the rest.
    assert_eq!(
        logs.lines("WARN", "attempt failed, retrying"),
        2,
        "{}",
        logs.text()
    );
    assert_eq!(logs.lines("WARN", "endpoint still failing"), 1, "{}", logs.text());
    assert_eq!(
        logs.lines("DEBUG", "attempt failed, retrying"),
        2,
        "{}",
        logs.text()
    );
    assert_eq!(logs.lines("INFO", "breaker open"), 1, "{}", logs.text());
    assert_eq!(logs.lines("INFO", "endpoint recovered"), 1, "{}", logs.text());
}

/// Each delivery attempt is one span, `notifications.delivery`, with the endpoint, the first
/// event's id, the event count, the attempt number, the status, the error and the duration.
#[tokio::test]
async fn each_attempt_is_a_span_with_its_outcome() {
    use support::receiver::{by_index, Receiver};
    let (logs, _guard) = support::logs::Logs::capture_spans();
    let receiver = Receiver::start(by_index(|n, _| if n == 0 { 503 } else { 200 })).await;
    let (sink, endpoint) = registry_notify::Endpoint::builder("traced", receiver.url())
        .retry(Breaker::new(5, MS))
        .build()
        .unwrap()
        .spawn();
    let batch = Batch::from(events(0, 1));
    let id = batch[0].id.to_string();
    sink.oneshot(batch).await.unwrap();
    receiver.wait_requests(2).await;
    endpoint
        .shutdown(tokio::time::Instant::now() + support::HANG_GUARD)
        .await;
    let text = logs.text();
    let spans: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("notifications.delivery{") && l.contains(": close"))
        .collect();
    assert_eq!(spans.len(), 2, "{text}");
    for (line, attempt, status) in [(spans[0], 1, 503), (spans[1], 2, 200)] {
        for field in [
            "endpoint=traced".to_owned(),
            format!("event={id}"),
            "events=1".to_owned(),
            format!("attempt={attempt}"),
            format!("status={status}"),
            "duration_ms=".to_owned(),
        ] {
            assert!(line.contains(&field), "{field} missing: {line}");
        }
    }
    assert!(
        spans[0].contains("error=") && spans[0].contains("503"),
        "{}",
        spans[0]
    );
    assert!(!spans[1].contains("error="), "{}", spans[1]);
}
