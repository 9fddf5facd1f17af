//! The delivery log hook: one record per attempt (attempt number, status, latency, error,
//! whether it will be retried) and one per dead-lettered batch, against a real receiver; and
//! the builder's dead-letter file. (The example registry's endpoints from YAML, signed
//! CloudEvents and `dead-letters.jsonl`: `examples/registry/tests/serve.rs`.)

mod support;

use std::sync::{Arc, Mutex};

use registry_notify::endpoint::Endpoint;
use registry_notify::retry::DeadLetter;
use registry_notify::retry::{AttemptOutcome, DeliveryAttempt, DeliveryRecord, Exponential};
use registry_notify::Batch;
use serde_json::Value;
use support::events::event;
use support::receiver::{always, by_index, Receiver};
use support::retry::retries;
use support::{wait_until, HANG_GUARD};
use tokio::time::Instant;
use tower::ServiceExt;

fn quick_retry(max_attempts: u32) -> Exponential {
    retries(1, 2, Some(max_attempts))
}

type Records = Arc<Mutex<Vec<DeliveryRecord>>>;

fn attempts(records: &Records) -> Vec<DeliveryAttempt> {
    records
        .lock()
        .unwrap()
        .iter()
        .filter_map(|r| match r {
            DeliveryRecord::Attempt(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

fn dead_letters(records: &Records) -> Vec<DeadLetter> {
    records
        .lock()
        .unwrap()
        .iter()
        .filter_map(|r| match r {
            DeliveryRecord::DeadLetter(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn every_attempt_is_logged_with_its_number_status_and_outcome() {
    let server = Receiver::start(by_index(|n, _| match n {
        0 => 503,
        1 => 429,
        _ => 200,
    }))
    .await;
    let records: Records = Arc::default();
    let r = records.clone();
    let (sink, handle) = Endpoint::builder("logged", server.url())
        .retry(quick_retry(10))
        .max_events(2)
        .delivery_log(move |record| r.lock().unwrap().push(record))
        .build()
        .unwrap()
        .spawn();
    sink.oneshot(Batch::from(vec![event(1, "r"), event(2, "r")]))
        .await
        .unwrap();
    assert_eq!(handle.shutdown(Instant::now() + HANG_GUARD).await, 0);

    let attempts = attempts(&records);
    assert_eq!(attempts.len(), 3, "{attempts:#?}");
    assert!(dead_letters(&records).is_empty());
    let summary: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.status.map(|s| s.as_u16()), a.outcome))
        .collect();
    assert_eq!(
        summary,
        [
            (1, Some(503), AttemptOutcome::Retrying),
            (2, Some(429), AttemptOutcome::Retrying),
            (3, Some(200), AttemptOutcome::Delivered),
        ]
    );
    for a in &attempts {
        assert_eq!(&*a.endpoint, "logged");
        assert_eq!(a.message_id, "event-1+1");
        assert_eq!(a.batch.len(), 2);
    }
    assert!(attempts[0].will_retry() && attempts[0].retry_in.is_some());
    assert_eq!(
        attempts[0].error.as_deref(),
        Some("response status 503 Service Unavailable unaccepted")
    );
    assert!(attempts[2].is_delivered());
    assert_eq!((attempts[2].error.as_deref(), attempts[2].retry_in), (None, None));
    assert!(attempts.windows(2).all(|w| w[0].started <= w[1].started));
}

/// A permanent failure: the attempt says it gives up, then the dead letter follows, in the
/// log and in the dead-letter hook alike.
#[tokio::test]
async fn giving_up_is_logged_then_dead_lettered() {
    let server = Receiver::start(always(400)).await;
    let records: Records = Arc::default();
    let letters: Arc<Mutex<Vec<DeadLetter>>> = Arc::default();
    let (r, l) = (records.clone(), letters.clone());
    let endpoint = Endpoint::builder("logged", server.url())
        .retry(quick_retry(10))
        .dead_letter(move |d| l.lock().unwrap().push(d))
        .build()
        .unwrap()
        // The hook can be set on an endpoint that came from configuration.
        .with_delivery_log(move |record| r.lock().unwrap().push(record));
    let (sink, handle) = endpoint.spawn();
    sink.oneshot(Batch::from(event(5, "r"))).await.unwrap();
    assert_eq!(handle.shutdown(Instant::now() + HANG_GUARD).await, 0);

    let records_now = records.lock().unwrap().clone();
    assert_eq!(records_now.len(), 2, "{records_now:#?}");
    let DeliveryRecord::Attempt(a) = &records_now[0] else {
        panic!("attempt first: {records_now:#?}")
    };
    assert_eq!((a.attempt, a.outcome), (1, AttemptOutcome::GivingUp));
    assert_eq!(a.status.map(|s| s.as_u16()), Some(400));
    assert!(!a.will_retry());
    let DeliveryRecord::DeadLetter(d) = &records_now[1] else {
        panic!("dead letter second: {records_now:#?}")
    };
    assert_eq!(d.attempts, 1);
    assert_eq!(d.batch[0].id, "event-5");
    assert!(d.reason.contains("400"), "{}", d.reason);
    let letters = letters.lock().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, d.reason);
}

/// Transport errors: no status, the error text, and max_attempts giving up.
#[tokio::test]
async fn transport_errors_have_no_status() {
    let addr = support::dead_addr().await;
    let records: Records = Arc::default();
    let r = records.clone();
    let (sink, handle) = Endpoint::builder("down", format!("http://{addr}/hook"))
        .retry(quick_retry(3))
        .delivery_log(move |record| r.lock().unwrap().push(record))
        .build()
        .unwrap()
        .spawn();
    sink.oneshot(Batch::from(event(1, "r"))).await.unwrap();
    assert_eq!(handle.shutdown(Instant::now() + HANG_GUARD).await, 0);
    let attempts = attempts(&records);
    let outcomes: Vec<_> = attempts.iter().map(|a| (a.attempt, a.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            (1, AttemptOutcome::Retrying),
            (2, AttemptOutcome::Retrying),
            (3, AttemptOutcome::GivingUp)
        ]
    );
    for a in &attempts {
        assert_eq!(a.status, None);
        assert!(
            a.error.as_deref().unwrap().starts_with("transport error"),
            "{a:?}"
        );
    }
    assert_eq!(dead_letters(&records).len(), 1);
}

/// `NotificationsBuilder::dead_letter_file`: the batches an endpoint gives up on are appended
/// as JSON lines, whole; an endpoint with a dead-letter hook of its own keeps it.
#[tokio::test]
async fn dead_letter_file_of_the_builder() {
    use registry_notify::notifications::Notifications;
    let bad = Receiver::start(always(400)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dead-letters.jsonl");
    let own = Arc::new(Mutex::new(Vec::new()));
    let o = own.clone();
    let (layer, handle) = Notifications::builder()
        .endpoint(
            Endpoint::builder("to-file", bad.url())
                .retry(quick_retry(1))
                .build()
                .unwrap(),
        )
        .endpoint(
            Endpoint::builder("own-hook", bad.url())
                .retry(quick_retry(1))
                .dead_letter(move |d| o.lock().unwrap().push(d))
                .build()
                .unwrap(),
        )
        .dead_letter_file(&file)
        .build()
        .unwrap();
    let batch = Batch::from(vec![event(1, "library/a"), event(2, "library/b")]);
    layer.dispatcher().dispatch(batch.clone());
    // One event per POST (Distribution's default): two dead letters per endpoint.
    wait_until("two dead-letter lines", || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.lines().count() == 2 && t.ends_with('\n'))
    })
    .await;
    wait_until("the own hook", || own.lock().unwrap().len() == 2).await;
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for line in &lines {
        assert_eq!(
            line["endpoint"], "to-file",
            "the other endpoint keeps its own hook"
        );
        assert_eq!(line["attempts"], 1);
        assert!(line["reason"].as_str().unwrap().contains("400"), "{line}");
    }
    let ids: Vec<&str> = lines
        .iter()
        .flat_map(|l| l["events"].as_array().unwrap())
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let want: Vec<String> = batch.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, want);
    handle.shutdown(HANG_GUARD).await;
}

/// Without any delivery log configured, the endpoint keeps its last attempts: a batch of 15
/// events names its first 10 ids, a 400 is given up on at once, and only the last
/// `RECENT_DELIVERIES` attempts are kept.
#[tokio::test]
async fn recent_deliveries_are_kept_and_bounded() {
    use registry_notify::metrics::{MAX_IDS, RECENT_DELIVERIES};
    let server = Receiver::start(by_index(|n, _| if n == 0 { 400 } else { 200 })).await;
    let (sink, endpoint) = Endpoint::builder("recent", server.url())
        .max_events(15)
        .build()
        .unwrap()
        .spawn();
    let batch: Batch = (0..15).map(|i| event(i, "r")).collect();
    sink.clone().oneshot(batch.clone()).await.unwrap();
    wait_until("the attempt is kept", || endpoint.recent_deliveries().len() == 1).await;
    let first = &endpoint.recent_deliveries()[0];
    assert_eq!((first.events, first.event_ids.len()), (15, MAX_IDS));
    assert_eq!(first.event_ids[0], batch[0].id);
    assert_eq!((first.status, first.outcome), (Some(400), "giving_up"));
    endpoint.shutdown(Instant::now() + HANG_GUARD).await;

    // One event per attempt: the ring keeps the last RECENT_DELIVERIES.
    let (sink, endpoint) = Endpoint::builder("ring", server.url()).build().unwrap().spawn();
    for i in 0..RECENT_DELIVERIES + 3 {
        sink.clone()
            .oneshot(Batch::from(event(100 + i, "r")))
            .await
            .unwrap();
    }
    let last = event(100 + RECENT_DELIVERIES + 2, "r").id;
    wait_until("all attempts", || {
        endpoint
            .recent_deliveries()
            .last()
            .is_some_and(|d| d.event_ids[0] == last)
    })
    .await;
    let kept = endpoint.recent_deliveries();
    assert_eq!(kept.len(), RECENT_DELIVERIES);
    assert!(kept
        .iter()
        .all(|d| d.outcome == "delivered" && d.status == Some(200)));
    assert_eq!(kept[0].event_ids[0], event(103, "r").id, "the oldest went first");
    endpoint.shutdown(Instant::now() + HANG_GUARD).await;
}
