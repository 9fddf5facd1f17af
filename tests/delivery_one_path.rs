//! One delivery path: every endpoint is the same tower stack behind the dispatcher, and an
//! endpoint whose durable queue has `fsync: always` changes nothing for the others. Its
//! events are awaited by the request; the other endpoints and the sinks of your own are
//! driven exactly as without it, and never make a request wait.
#![cfg(feature = "durable")]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use registry_notify::endpoint::Endpoint;
use registry_notify::metrics::EndpointSnapshot;
use registry_notify::notifications::Notifications;
use registry_notify::queue::{DurableConfig, Fsync};
use registry_notify::sink::{BoxError, BoxSink};
use registry_notify::Batch;
use support::events::event;
use support::receiver::{always, Receiver};
use support::{wait_until, HANG_GUARD};

const BATCHES: usize = 20;

/// A sink of your own whose calls never complete, counting them.
fn never_completing(calls: Arc<AtomicUsize>) -> BoxSink {
    BoxSink::new(tower::service_fn(move |_: Batch| {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<Result<(), BoxError>>()
    }))
}

/// What one run showed of endpoint "a", the never-completing sink, and the hand-offs.
#[derive(Debug, PartialEq)]
struct Seen {
    /// Event ids endpoint "a"'s receiver got, in order, and how many POSTs carried them.
    delivered: Vec<String>,
    posts: usize,
    /// Endpoint "a"'s counters that do not depend on timing.
    events: u64,
    delivered_count: u64,
    dropped: u64,
    filtered: u64,
    /// Calls of the sink of your own.
    sink_calls: usize,
    /// How many dispatches handed the request something to wait for.
    waits: usize,
}

fn stable(m: &EndpointSnapshot) -> (u64, u64, u64, u64) {
    (m.events, m.delivered, m.dropped, m.filtered)
}

/// Dispatches `BATCHES` batches like the layer does (`dispatch_waiting`), with endpoint "a",
/// a sink that never completes, and — if `durable` is given — an `fsync: always` endpoint "b"
/// whose queue lives there.
async fn run(durable: Option<(&std::path::Path, &Receiver)>) -> Seen {
    let hook = Receiver::start(always(200)).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut builder = Notifications::builder()
        .endpoint(Endpoint::builder("a", hook.url()).build().unwrap())
        .sink(never_completing(calls.clone()));
    if let Some((dir, b_hook)) = durable {
        builder = builder.endpoint(
            Endpoint::builder("b", b_hook.url())
                .durable_queue(DurableConfig::new(dir).fsync(Fsync::Always))
                .build()
                .unwrap(),
        );
    }
    let (layer, handle) = builder.build().unwrap();
    let dispatcher = layer.dispatcher();
    assert_eq!(dispatcher.waits_for_sinks(), durable.is_some());
    let mut waits = 0;
    for i in 0..BATCHES {
        // The sink of your own never completes: a request waiting for it would hang here.
        if let Some(handoff) = dispatcher.dispatch_waiting(Batch::from(event(i, "library/x"))) {
            waits += 1;
            tokio::time::timeout(HANG_GUARD, handoff)
                .await
                .expect("the request waits only for the fail-closed endpoint")
                .expect("the events are on disk");
        }
    }
    wait_until("endpoint a delivered every event", || hook.ids().len() == BATCHES).await;
    if let Some((_, b_hook)) = durable {
        wait_until("endpoint b delivered every event", || {
            b_hook.ids().len() == BATCHES
        })
        .await;
        assert_eq!(b_hook.ids(), hook.ids(), "b gets what a gets, in order");
    }
    let a = handle
        .endpoints()
        .iter()
        .find(|e| e.name() == "a")
        .unwrap()
        .metrics();
    let seen = Seen {
        delivered: hook.ids(),
        posts: hook.request_count(),
        events: stable(&a).0,
        delivered_count: stable(&a).1,
        dropped: stable(&a).2,
        filtered: stable(&a).3,
        sink_calls: calls.load(Ordering::SeqCst),
        waits,
    };
    handle.shutdown(std::time::Duration::from_secs(5)).await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fsync_always_endpoint_does_not_change_how_the_others_are_driven() {
    let alone = run(None).await;
    let dir = tempfile::tempdir().unwrap();
    let b_hook = Receiver::start(always(200)).await;
    let beside = run(Some((dir.path(), &b_hook))).await;

    let ids: Vec<String> = (0..BATCHES).map(|i| format!("event-{i}")).collect();
    assert_eq!(alone.delivered, ids);
    assert_eq!(
        alone.waits, 0,
        "nothing to wait for without a fail-closed endpoint"
    );
    // A request is handed something to wait for unless the fail-closed endpoint's fsync has
    // already completed when the dispatcher looks (then there is nothing left to wait for):
    // how many of the two depends on the disk's speed, so only the bound is checked here.
    // (`run` checks that the dispatcher waits for sinks at all; `durable_fail_closed.rs`
    // that a request's answer waits for its events to be on disk.)
    assert!(beside.waits <= BATCHES, "{} waits", beside.waits);
    assert_eq!(alone.sink_calls, BATCHES);
    // Endpoint "a" and the sink of your own saw exactly the same with "b" beside them.
    assert_eq!(
        Seen {
            waits: alone.waits,
            ..beside
        },
        alone
    );
}
