//! Broadcast: go-events' / Distribution 2.8's TestBroadcaster and isolation between sinks.

mod support;

use std::time::Duration;

use registry_notify::broadcast::Broadcast;
use registry_notify::queue::{Queue, QueueConfig};
use registry_notify::sink::{BoxError, BoxSink, DeliveryError};
use registry_notify::Batch;
use support::events::{events, ids};
use support::sinks::Collector;
use tokio::time::Instant;
use tower::ServiceExt;

/// 1000 events in blocks of 10 into 10 queued sinks: all delivered, in order, and every
/// sink closed afterwards.
#[tokio::test(start_paused = true)]
async fn test_broadcaster() {
    let collectors: Vec<Collector> = (0..10).map(|_| Collector::new()).collect();
    let mut handles = Vec::new();
    let mut broadcast = Broadcast::default();
    for c in &collectors {
        let queue = Queue::builder(QueueConfig::default())
            .max_events(7)
            .spawn(c.sink(Duration::from_millis(1)));
        handles.push(queue.handle());
        broadcast.push(BoxSink::new(queue));
    }
    assert_eq!(broadcast.len(), 10);
    for block in 0..100 {
        let batch = Batch::from(events(block * 10, block * 10 + 10));
        broadcast.clone().oneshot(batch).await.unwrap();
    }
    for h in &handles {
        assert_eq!(h.shutdown(Instant::now() + Duration::from_secs(3600)).await, 0);
    }
    for c in &collectors {
        assert_eq!(c.ids(), ids(0, 1000));
    }
    assert_eq!(broadcast.errors(), 0);
    // Closed: a write after close fails for every sink, and is counted, not fatal.
    broadcast
        .clone()
        .oneshot(Batch::from(events(0, 1)))
        .await
        .unwrap();
    assert_eq!(broadcast.errors(), 10);
}

/// An error from one sink never stops the others.
#[tokio::test]
async fn a_failing_sink_does_not_stop_the_others() {
    let good = Collector::new();
    let failing = BoxSink::new(tower::service_fn(|_b: Batch| async {
        Err::<(), BoxError>(DeliveryError::Transport("boom".into()).into())
    }));
    let broadcast = Broadcast::new(vec![failing, good.sink(Duration::ZERO)]);
    for i in 0..20 {
        broadcast
            .clone()
            .oneshot(Batch::from(events(i, i + 1)))
            .await
            .unwrap();
    }
    assert_eq!(good.ids(), ids(0, 20));
    assert_eq!(broadcast.errors(), 20);
}

/// Sinks are driven concurrently: a slow sink does not delay a fast one.
#[tokio::test]
async fn a_slow_sink_does_not_delay_the_others() {
    let fast = Collector::new();
    let slow = Collector::new();
    let (open, gate) = tokio::sync::watch::channel(false);
    let broadcast = Broadcast::new(vec![slow.gated_sink(gate), fast.sink(Duration::ZERO)]);
    let call = tokio::spawn(broadcast.oneshot(Batch::from(events(0, 1))));
    // The fast sink has the batch while the slow one still holds its call open.
    for _ in 0..10_000 {
        if fast.count() == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(fast.count(), 1);
    assert_eq!(slow.count(), 1);
    assert!(
        !call.is_finished(),
        "the broadcast resolves only when every sink has"
    );
    open.send(true).unwrap();
    call.await.unwrap().unwrap();
}

#[tokio::test]
async fn empty_broadcast_succeeds() {
    let broadcast: Broadcast = Broadcast::default();
    assert!(broadcast.is_empty());
    broadcast.oneshot(Batch::from(events(0, 1))).await.unwrap();
}
