//! Ordered lanes (`concurrency: N`) against a real receiver: N POSTs under way at once, the
//! events of each repository in push order, and a durable queue's lanes across a restart — with
//! the same concurrency, and with less (the lanes left over are delivered, nothing lost).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use registry_notify::endpoint::{Endpoint, EndpointHandle, EndpointSink};
use registry_notify::queue::{lane_of, DurableConfig};
use registry_notify::{Batch, Event};
use support::events::bare;
use support::receiver::{always, gate, gated};
use support::Receiver;
use tower::ServiceExt;

const REPOS: usize = 16;

/// Event `i` of repository `team/app-<i % REPOS>`.
fn event(i: usize) -> Event {
    bare(i, &format!("team/app-{}", i % REPOS))
}

async fn send(sink: &EndpointSink, events: impl IntoIterator<Item = usize>) {
    for i in events {
        sink.clone().oneshot(Batch::from(event(i))).await.unwrap();
    }
}

/// The event numbers each repository's events arrived in, from the POSTs `receiver` answered.
fn arrivals(receiver: &Receiver) -> BTreeMap<String, Vec<usize>> {
    let mut by_repo: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for e in receiver.events() {
        by_repo
            .entry(e.target.repository.to_string())
            .or_default()
            .push(e.id["event-".len()..].parse().unwrap());
    }
    by_repo
}

fn assert_in_order(by_repo: &BTreeMap<String, Vec<usize>>, total: usize) {
    let mut seen = 0;
    for (repo, got) in by_repo {
        let mut sorted = got.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(got, &sorted, "{repo}: in push order, each once");
        seen += got.len();
    }
    assert_eq!(seen, total);
}

async fn delivered(handle: &EndpointHandle, n: u64) {
    support::wait_until(&format!("{n} delivered"), || handle.metrics().delivered >= n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_lanes_deliver_four_at_once_and_each_repository_in_order() {
    // All four lanes have repositories.
    let lanes: std::collections::BTreeSet<usize> =
        (0..REPOS).map(|r| lane_of(&format!("team/app-{r}"), 4)).collect();
    assert_eq!(lanes.len(), 4);
    let (open, closed) = gate();
    let receiver = Receiver::start(gated(closed, 200)).await;
    let (sink, handle) = Endpoint::builder("lanes", receiver.url())
        .concurrency(4)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .spawn();
    assert_eq!(handle.lanes(), 4);
    send(&sink, 0..160).await;
    // The receiver holds every request: four arrive, one per lane, and no more can.
    receiver.wait_requests(4).await;
    assert_eq!(receiver.request_count(), 4);
    let first: std::collections::BTreeSet<usize> = receiver
        .events()
        .iter()
        .map(|e| lane_of(&e.target.repository, 4))
        .collect();
    assert_eq!(first.len(), 4, "one POST in flight per lane");
    open.send(true).unwrap();
    delivered(&handle, 160).await;
    assert_in_order(&arrivals(&receiver), 160);
    assert!(
        receiver.connections() >= 4,
        "four connections for four lanes at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_lane_is_one_post_at_a_time() {
    let (open, closed) = gate();
    let receiver = Receiver::start(gated(closed, 200)).await;
    let (sink, handle) = Endpoint::builder("one", receiver.url())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .spawn();
    assert_eq!(handle.lanes(), 1);
    send(&sink, 0..32).await;
    receiver.wait_requests(1).await;
    // One in flight: the queue holds the other 31 until it is answered.
    assert_eq!(handle.queued(), 32);
    assert_eq!(receiver.request_count(), 1);
    open.send(true).unwrap();
    delivered(&handle, 32).await;
    assert_in_order(&arrivals(&receiver), 32);
}

/// A durable queue's lanes across restarts: events queued while the receiver is down wait in
/// each lane's directory; after a restart with the same concurrency every event arrives once,
/// each repository in order; after one with less, the lanes left over are delivered too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_lanes_keep_order_and_lose_nothing_across_restarts() {
    for (then, now) in [(4usize, 4usize), (4, 2), (1, 3)] {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = |url: String, lanes: usize| {
            Endpoint::builder("durable", url)
                .concurrency(lanes)
                .durable_queue(DurableConfig::new(dir.path()))
                .build()
                .unwrap()
        };
        let down = Receiver::start(always(503)).await;
        let (sink, handle) = endpoint(down.url(), then).spawn();
        send(&sink, 0..96).await;
        let left = handle
            .shutdown(tokio::time::Instant::now() + Duration::from_secs(5))
            .await;
        assert_eq!(left, 96, "{then} → {now}: all waiting on disk");
        drop((sink, handle));
        for lane in 1..then {
            assert!(dir.path().join(format!("lane-{lane}")).is_dir(), "lane-{lane}");
        }

        let up = Receiver::start(always(200)).await;
        let (sink, handle) = endpoint(up.url(), now).spawn();
        assert_eq!(handle.lanes(), then.max(now), "{then} → {now}");
        // The backlog found on disk counts as ingress when the lanes open (delivery may have
        // begun already).
        assert_eq!(handle.metrics().events, 96, "{then} → {now}");
        delivered(&handle, 96).await;
        assert_in_order(&arrivals(&up), 96);
        // New events go to the lanes of the new concurrency.
        send(&sink, 96..112).await;
        delivered(&handle, 112).await;
        assert_eq!(up.events().len(), 112, "{then} → {now}");
        handle
            .shutdown(tokio::time::Instant::now() + Duration::from_secs(5))
            .await;
    }
}

#[test]
fn concurrency_is_bounded() {
    for bad in [0, registry_notify::endpoint::MAX_CONCURRENCY + 1] {
        let err = Endpoint::builder("x", "http://127.0.0.1:9/")
            .concurrency(bad)
            .build()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("endpoint \"x\".concurrency must be from 1 to 64 (got {bad})")
        );
    }
}
