//! The endpoint queue: Distribution's TestEventQueue, overflow policies, batching, shutdown.

mod support;

use std::sync::Arc;
use std::time::Duration;

use registry_notify::metrics::EndpointMetrics;
use registry_notify::queue::{EventQueue, MemoryQueue, Overflow, Queue, QueueConfig, QueueError};
use registry_notify::sink::{BoxError, DeliveryError};
use registry_notify::Batch;
use support::events::{events, ids};
use support::sinks::Collector;
use tokio::time::Instant;
use tower::ServiceExt;

const FAR: Duration = Duration::from_secs(3600);

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never happened: {what}");
}

fn is_closed(e: &BoxError) -> bool {
    matches!(e.downcast_ref::<DeliveryError>(), Some(DeliveryError::Closed))
}

/// Distribution's TestEventQueue: 1000 concurrent writes into a queue over a slow sink.
#[tokio::test(start_paused = true)]
async fn test_event_queue() {
    let collector = Collector::new();
    let metrics = Arc::new(EndpointMetrics::new("q", "http://receiver/"));
    let queue = Queue::builder(QueueConfig::default())
        .metrics(metrics.clone())
        .spawn(collector.sink(Duration::from_millis(1)));
    let handle = queue.handle();

    let mut writers = tokio::task::JoinSet::new();
    for e in events(0, 1000) {
        let q = queue.clone();
        writers.spawn(async move { q.oneshot(Batch::from(e)).await });
    }
    while let Some(result) = writers.join_next().await {
        result.unwrap().unwrap();
    }

    // checkClose: close drains, a second close errors, a write after close is refused.
    assert_eq!(handle.shutdown(Instant::now() + FAR).await, 0);
    assert_eq!(handle.close(), Err(QueueError::AlreadyClosed));
    let err = queue
        .clone()
        .oneshot(Batch::from(events(0, 1)))
        .await
        .unwrap_err();
    assert!(is_closed(&err), "{err}");
    assert!(handle.is_finished());

    assert_eq!(collector.count(), 1000);
    let mut got = collector.ids();
    got.sort();
    let mut want = ids(0, 1000);
    want.sort();
    assert_eq!(got, want, "nothing lost, nothing duplicated");
    let m = metrics.snapshot();
    assert_eq!((m.events, m.pending, m.dropped), (1000, 0, 0));
    // The worker stopped and dropped the inner sink (Distribution: the sink was closed).
    wait_for("inner sink dropped", || !collector.sink_alive()).await;
}

/// Overflow: events pushed while one is in flight and the queue is full.
async fn overflow(policy: Overflow) -> (Vec<String>, u64) {
    let collector = Collector::new();
    let (open, gate) = tokio::sync::watch::channel(false);
    let metrics = Arc::new(EndpointMetrics::new("q", "http://receiver/"));
    let queue = Queue::builder(QueueConfig {
        capacity: 5,
        overflow: policy,
    })
    .metrics(metrics.clone())
    .spawn(collector.gated_sink(gate));
    let handle = queue.handle();
    queue.clone().oneshot(Batch::from(events(0, 1))).await.unwrap();
    wait_for("first event in flight", || collector.count() == 1).await;
    for e in events(1, 20) {
        queue.clone().oneshot(Batch::from(e)).await.unwrap();
    }
    let m = metrics.snapshot();
    assert_eq!((m.events, m.pending, m.dropped), (20, 6, 14), "{policy:?}");
    open.send(true).unwrap();
    assert_eq!(handle.shutdown(Instant::now() + FAR).await, 0);
    let m = metrics.snapshot();
    assert_eq!((m.events, m.pending, m.dropped), (20, 0, 14));
    (collector.ids(), m.dropped)
}

#[tokio::test(start_paused = true)]
async fn overflow_drop_oldest_keeps_the_newest() {
    let (got, dropped) = overflow(Overflow::DropOldest).await;
    let mut want = ids(0, 1);
    want.extend(ids(15, 20));
    assert_eq!((got, dropped), (want, 14));
}

#[tokio::test(start_paused = true)]
async fn overflow_drop_newest_keeps_the_oldest() {
    let (got, dropped) = overflow(Overflow::DropNewest).await;
    assert_eq!((got, dropped), (ids(0, 6), 14));
}

/// max_events: the worker drains up to N events per call of the inner sink.
#[tokio::test(start_paused = true)]
async fn max_events_batches_the_backlog() {
    let collector = Collector::new();
    let (open, gate) = tokio::sync::watch::channel(false);
    let queue = Queue::builder(QueueConfig::default())
        .max_events(4)
        .spawn(collector.gated_sink(gate));
    let handle = queue.handle();
    queue.clone().oneshot(Batch::from(events(0, 1))).await.unwrap();
    wait_for("first batch in flight", || collector.count() == 1).await;
    for e in events(1, 10) {
        queue.clone().oneshot(Batch::from(e)).await.unwrap();
    }
    open.send(true).unwrap();
    assert_eq!(handle.shutdown(Instant::now() + FAR).await, 0);
    let sizes: Vec<usize> = collector.batches().iter().map(|b| b.len()).collect();
    assert_eq!(sizes, [1, 4, 4, 1]);
    assert_eq!(collector.ids(), ids(0, 10), "in order");
}

/// Shutdown stops at the deadline and reports what is left (in flight included).
#[tokio::test(start_paused = true)]
async fn shutdown_reports_leftovers_at_the_deadline() {
    let collector = Collector::new();
    let (_open, gate) = tokio::sync::watch::channel(false); // never opens
    let metrics = Arc::new(EndpointMetrics::new("q", "http://receiver/"));
    let queue = Queue::builder(QueueConfig::default())
        .metrics(metrics.clone())
        .spawn(collector.gated_sink(gate));
    let handle = queue.handle();
    queue.clone().oneshot(Batch::from(events(0, 3))).await.unwrap();
    let start = Instant::now();
    let left = handle.shutdown(start + Duration::from_secs(5)).await;
    assert_eq!(left, 3);
    assert_eq!(
        Instant::now() - start,
        Duration::from_secs(5),
        "waited for the deadline (virtual time)"
    );
    let err = queue
        .clone()
        .oneshot(Batch::from(events(3, 4)))
        .await
        .unwrap_err();
    assert!(is_closed(&err));
    wait_for("worker stopped", || handle.is_finished()).await;
    assert_eq!(metrics.snapshot().pending, 3);
}

/// The queue trait directly: close semantics and peek/ack.
#[tokio::test]
async fn memory_queue_contract() {
    let q: Arc<dyn EventQueue> = Arc::new(MemoryQueue::new(QueueConfig::default()));
    assert_eq!(q.push(Batch::from(events(0, 3))), Ok(0));
    assert_eq!(q.next(2).await.map(|b| b.len()), Some(2));
    assert_eq!(q.len(), 3, "next does not remove");
    q.ack(2);
    assert_eq!(q.len(), 1);
    q.close().unwrap();
    assert_eq!(q.push(Batch::from(events(0, 1))), Err(QueueError::Closed));
    assert_eq!(q.close(), Err(QueueError::AlreadyClosed));
    assert_eq!(q.next(5).await.map(|b| b.len()), Some(1), "drains after close");
    q.ack(1);
    assert!(q.next(5).await.is_none());
}

/// A custom EventQueue plugs into the layer.
#[tokio::test(start_paused = true)]
async fn custom_queue_plugs_in() {
    let collector = Collector::new();
    let events_queue: Arc<dyn EventQueue> = Arc::new(MemoryQueue::new(QueueConfig {
        capacity: 10,
        overflow: Overflow::DropNewest,
    }));
    let queue = Queue::builder(QueueConfig::default())
        .events(events_queue.clone())
        .spawn(collector.sink(Duration::ZERO));
    queue.clone().oneshot(Batch::from(events(0, 2))).await.unwrap();
    assert_eq!(queue.handle().shutdown(Instant::now() + FAR).await, 0);
    assert_eq!(collector.ids(), ids(0, 2));
    assert!(events_queue.is_closed(), "the queue given is the one used");
}
