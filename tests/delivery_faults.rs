//! Whole endpoint stacks against misbehaving loopback receivers. Assertions are about what
//! was delivered, never about how fast; timeouts are hang guards only.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use registry_notify::broadcast::Broadcast;
use registry_notify::endpoint::{Endpoint, EndpointBuilder, EndpointHandle, EndpointSink};
use registry_notify::queue::{Overflow, QueueConfig};
use registry_notify::retry::DeadLetter;
use registry_notify::retry::Exponential;
use registry_notify::sink::DeliveryError;
use registry_notify::Batch;
use support::events::event;
use support::events::ids;
use support::receiver::{always, by_index, gate, gated, stall, Receiver};
use support::retry::backoff;
use support::{dead_addr, wait_until, HANG_GUARD};
use tokio::time::Instant;
use tower::ServiceExt;

/// Fast, jitter-free retries so that the tests do not wait long.
fn fast_retry() -> Exponential {
    backoff(Duration::from_millis(20), Duration::from_millis(200))
}

fn endpoint(name: &str, url: String) -> EndpointBuilder {
    Endpoint::builder(name, url)
        .timeout(Duration::from_secs(10))
        .retry(fast_retry())
}

/// Sends event 0 and waits until `server` holds its POST (at a closed gate), then events 1 to
/// 9: a backlog of nine behind the one in flight.
async fn backlog_behind_one(sink: &EndpointSink, server: &Receiver) {
    send(sink, 0, 1).await;
    server.wait_requests(1).await;
    send(sink, 1, 10).await;
}

async fn send(sink: &EndpointSink, from: usize, to: usize) {
    for i in from..to {
        sink.clone()
            .oneshot(Batch::from(event(i, "library/test")))
            .await
            .unwrap();
    }
}

async fn drain(handle: &EndpointHandle) {
    assert_eq!(handle.shutdown(Instant::now() + HANG_GUARD).await, 0, "drained");
}

/// Receiver down (nothing listening) for a while, then up on the same port: everything is
/// delivered once, in order.
#[tokio::test]
async fn receiver_down_then_up() {
    let addr = dead_addr().await;
    let (sink, handle) = endpoint("down", format!("http://{addr}/events"))
        .build()
        .unwrap()
        .spawn();
    send(&sink, 0, 20).await;
    // Down until the endpoint has failed a few times (refused connections)...
    wait_until("5 failed attempts", || handle.metrics().errors >= 5).await;
    assert!(handle.metrics().breaker_open);
    // ...then up, on the same port.
    let server = Receiver::start_on(addr, always(200)).await;
    server.wait_requests(20).await;
    drain(&handle).await;
    assert_eq!(server.ids(), ids(0, 20), "all delivered once, in order");
    let m = handle.metrics();
    assert_eq!(
        (m.events, m.delivered, m.pending, m.dead_lettered),
        (20, 20, 0, 0)
    );
    assert!(m.errors >= 5 && m.retries == m.errors, "{m:?}");
    assert!(!m.breaker_open);
}

/// Receiver down while a backlog builds far past the few hundred events a memory queue keeps
/// as they are (it packs the rest once its worker has taken nothing for a second, as here,
/// where the first event is retried for longer). Once the receiver is up, every event arrives
/// once, in order, and each POST is byte for byte the envelope of the events as they were
/// sent, whatever their text (escapes, non-ASCII), references, or client members shared or
/// not. With Distribution's one event a POST, and with batches of 50.
#[tokio::test]
async fn deep_backlog_is_delivered_byte_for_byte() {
    deep_backlog(1, 600).await;
    deep_backlog(50, 1_500).await;
}

async fn deep_backlog(max_events: usize, n: usize) {
    use registry_notify::{Descriptor, Event, Format};
    let sent: Vec<Event> = (0..n)
        .map(|i| {
            let mut e = support::events::blob_push(i, ["library/a", "team/b", "c"][i % 3]);
            if i % 7 == 0 {
                e.request.useragent = format!("skopeo <\"{i}\"> é\u{2028}").into();
            }
            if i % 11 == 0 {
                e.target.references =
                    vec![Descriptor::new("application/json", format!("sha256:{i:064x}"), 2)];
                e.target
                    .descriptor
                    .annotations
                    .insert("k".into(), format!("v&{i}"));
            }
            if i % 13 == 0 {
                e.actor.name = "ci-bot".into();
            }
            e
        })
        .collect();
    let addr = dead_addr().await;
    let (sink, handle) = endpoint("down", format!("http://{addr}/events"))
        .max_events(max_events)
        .build()
        .unwrap()
        .spawn();
    sink.clone().oneshot(Batch::from(sent[0].clone())).await.unwrap();
    wait_until("2 failed attempts", || handle.metrics().errors >= 2).await;
    // Past the second the memory queue waits before it packs (not a measure of speed).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for e in &sent[1..] {
        sink.clone().oneshot(Batch::from(e.clone())).await.unwrap();
    }
    assert_eq!(handle.queued(), n);
    let server = Receiver::start_on(addr, always(200)).await;
    wait_until("all delivered", || handle.metrics().delivered == n as u64).await;
    drain(&handle).await;
    let mut at = 0;
    for r in server.requests() {
        let count = r.events().len();
        assert!(at + count <= n, "more events delivered than sent");
        let want = Format::EventsV2.encode(&sent[at..at + count]);
        assert!(
            r.body[..] == want[..],
            "POST of events {at}..{}: not the envelope of what was sent",
            at + count
        );
        at += count;
    }
    assert_eq!(at, n, "every event once");
}

/// 500s for a while: delivered after backing off; the gaps between attempts are at least
/// the configured (jitter-free) delays.
#[tokio::test]
async fn server_errors_then_recovery_with_backoff() {
    let server = Receiver::start(by_index(|n, _| if n < 5 { 500 } else { 200 })).await;
    let (sink, handle) = endpoint("flaky", server.url()).build().unwrap().spawn();
    send(&sink, 0, 10).await;
    server.wait_requests(15).await;
    drain(&handle).await;
    let requests = server.requests();
    let first: Vec<String> = requests[..6].iter().flat_map(|r| r.ids()).collect();
    assert_eq!(
        first,
        vec!["event-0".to_string(); 6],
        "the head event is retried, not skipped"
    );
    let rest: Vec<String> = requests[5..].iter().flat_map(|r| r.ids()).collect();
    assert_eq!(rest, ids(0, 10));
    // Backoff: attempt n+1 starts at least 20·2^n ms (capped at 200) after attempt n.
    for n in 0..5 {
        let gap = requests[n + 1].at - requests[n].at;
        let min = Duration::from_millis((20u64 << n).min(200));
        assert!(gap >= min, "gap {n}: {gap:?} < {min:?}");
    }
    let m = handle.metrics();
    assert_eq!((m.failures, m.successes, m.retries, m.delivered), (5, 10, 5, 10));
    assert_eq!(m.statuses["500 Internal Server Error"], 5);
    assert_eq!(m.statuses["200 OK"], 10);
}

/// A receiver that stalls past the timeout gets a duplicate carrying the same id and bytes.
#[tokio::test]
async fn stall_past_timeout_duplicates_keep_the_id() {
    let stall_first: support::receiver::Behaviour = Arc::new(|n, _| {
        if n == 0 {
            Box::pin(std::future::pending())
        } else {
            Box::pin(std::future::ready(support::receiver::response(200)))
        }
    });
    let server = Receiver::start(stall_first).await;
    let (sink, handle) = endpoint("stall", server.url())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .spawn();
    send(&sink, 0, 1).await;
    server.wait_requests(2).await;
    drain(&handle).await;
    let requests = server.requests();
    assert!(requests.len() >= 2);
    for r in &requests {
        assert_eq!(r.ids(), ["event-0"]);
        assert_eq!(r.body, requests[0].body, "byte-identical");
    }
    let m = handle.metrics();
    assert!(m.errors >= 1, "the stalled attempt timed out: {m:?}");
    assert_eq!((m.delivered, m.successes), (1, 1));
}

/// A permanent 400 is dead-lettered at once; later events still flow.
#[tokio::test]
async fn permanent_failure_is_dead_lettered_and_the_queue_moves_on() {
    let server = Receiver::start(by_index(|_, r| {
        if r.events()[0].target.repository == "bad/repo" {
            400
        } else {
            200
        }
    }))
    .await;
    let letters: Arc<Mutex<Vec<DeadLetter>>> = Arc::default();
    let l = letters.clone();
    let (sink, handle) = endpoint("perm", server.url())
        .dead_letter(move |d| l.lock().unwrap().push(d))
        .build()
        .unwrap()
        .spawn();
    sink.clone()
        .oneshot(Batch::from(event(0, "bad/repo")))
        .await
        .unwrap();
    for i in 1..4 {
        sink.clone()
            .oneshot(Batch::from(event(i, "good/repo")))
            .await
            .unwrap();
    }
    server.wait_requests(4).await;
    drain(&handle).await;
    assert_eq!(server.ids(), ids(0, 4), "each sent once");
    let letters = letters.lock().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, 1);
    assert_eq!(letters[0].endpoint, "perm");
    assert_eq!(letters[0].batch[0].id, "event-0");
    assert!(letters[0].reason.contains("400"), "{}", letters[0].reason);
    let m = handle.metrics();
    assert_eq!(
        (m.dead_lettered, m.delivered, m.failures, m.pending),
        (1, 3, 1, 0)
    );
}

/// A dead endpoint (stalled or refusing) beside a healthy one: the healthy one gets every
/// event, and the broadcast never waits for the dead ones.
#[tokio::test]
async fn dead_endpoint_beside_a_healthy_one() {
    let healthy = Receiver::start(always(200)).await;
    let black_hole = Receiver::start(stall()).await;
    let refused = dead_addr().await;
    let (s1, h1) = endpoint("healthy", healthy.url()).build().unwrap().spawn();
    let (s2, h2) = endpoint("black-hole", black_hole.url())
        .timeout(Duration::from_secs(3600))
        .build()
        .unwrap()
        .spawn();
    let (s3, h3) = endpoint("refused", format!("http://{refused}/"))
        .build()
        .unwrap()
        .spawn();
    let broadcast = Broadcast::new(vec![s2, s3, s1]);
    for i in 0..100 {
        let call = broadcast.clone().oneshot(Batch::from(event(i, "library/test")));
        tokio::time::timeout(HANG_GUARD, call)
            .await
            .expect("broadcast never blocks")
            .unwrap();
    }
    healthy.wait_requests(100).await;
    assert_eq!(healthy.ids(), ids(0, 100));
    drain(&h1).await;
    black_hole.wait_requests(1).await;
    assert_eq!(
        black_hole.request_count(),
        1,
        "one attempt in flight, the rest queued"
    );
    assert_eq!(h2.shutdown(Instant::now()).await, 100);
    assert_eq!(h3.shutdown(Instant::now()).await, 100);
    assert_eq!(h1.metrics().delivered, 100);
    assert_eq!(h2.metrics().delivered + h3.metrics().delivered, 0);
}

/// Queue over capacity while the receiver holds the first request: the policy decides,
/// every drop counted.
async fn over_capacity(policy: Overflow) -> Vec<String> {
    let (open, closed) = gate();
    let server = Receiver::start(gated(closed, 200)).await;
    let (sink, handle) = endpoint("full", server.url())
        .timeout(Duration::from_secs(3600))
        .queue(QueueConfig {
            capacity: 3,
            overflow: policy,
        })
        .build()
        .unwrap()
        .spawn();
    backlog_behind_one(&sink, &server).await;
    let m = handle.metrics();
    assert_eq!((m.events, m.dropped, m.pending), (10, 6, 4));
    open.send(true).unwrap();
    server.wait_requests(4).await;
    drain(&handle).await;
    let m = handle.metrics();
    assert_eq!((m.events, m.dropped, m.delivered, m.pending), (10, 6, 4, 0));
    server.ids()
}

#[tokio::test]
async fn over_capacity_drop_oldest() {
    let mut want = ids(0, 1);
    want.extend(ids(7, 10));
    assert_eq!(over_capacity(Overflow::DropOldest).await, want);
}

#[tokio::test]
async fn over_capacity_drop_newest() {
    assert_eq!(over_capacity(Overflow::DropNewest).await, ids(0, 4));
}

/// max_events: the backlog goes out in fewer POSTs, in order.
#[tokio::test]
async fn max_events_sends_fewer_posts() {
    let (open, closed) = gate();
    let server = Receiver::start(gated(closed, 200)).await;
    let (sink, handle) = endpoint("batch", server.url())
        .timeout(Duration::from_secs(3600))
        .max_events(4)
        .build()
        .unwrap()
        .spawn();
    backlog_behind_one(&sink, &server).await;
    open.send(true).unwrap();
    server.wait_requests(4).await;
    drain(&handle).await;
    let sizes: Vec<usize> = server.requests().iter().map(|r| r.events().len()).collect();
    assert_eq!(sizes, [1, 4, 4, 1], "10 events in 4 POSTs");
    assert_eq!(server.ids(), ids(0, 10));
    let m = handle.metrics();
    assert_eq!((m.events, m.successes, m.delivered), (10, 4, 10));
}

/// Shutdown drains what is queued, then refuses new events.
#[tokio::test]
async fn shutdown_drains_then_refuses() {
    let server = Receiver::start(always(204)).await;
    let (sink, handle) = endpoint("bye", server.url()).build().unwrap().spawn();
    send(&sink, 0, 25).await;
    drain(&handle).await;
    assert_eq!(server.ids(), ids(0, 25));
    let err = sink
        .clone()
        .oneshot(Batch::from(event(99, "x")))
        .await
        .unwrap_err();
    assert!(matches!(
        err.downcast_ref::<DeliveryError>(),
        Some(DeliveryError::Closed)
    ));
    assert_eq!(
        handle.shutdown(Instant::now()).await,
        0,
        "a second shutdown just reports"
    );
}
