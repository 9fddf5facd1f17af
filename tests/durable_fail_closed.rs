//! `fsync: always` fails closed: on a full disk a request whose events could not be made
//! durable is answered `503 Service Unavailable` (with `Retry-After` and an OCI error body),
//! so every success a client saw implies its events are on disk — and, once the endpoint is
//! back, delivered. Writing resumes by itself once space is free.
//!
//! The queue lives on a 512 KiB tmpfs (mounting needs root: skipped loudly without it,
//! a failure under `REGISTRY_NOTIFY_REQUIRE_TOOLS`).
#![cfg(feature = "durable")]

mod support;

use example_registry::oci;
use std::collections::BTreeSet;
use std::time::Duration;

use registry_notify::endpoint::Endpoint;
use registry_notify::notifications::Notifications;
use registry_notify::queue::{DurableConfig, Fsync};
use support::{sha256, with_digest, Http};

/// Pushes tried against the full disk: far more events than 512 KiB holds.
const PUSHES: usize = 1_200;

/// The digests of every event the receiver got.
fn delivered(hook: &support::receiver::Receiver) -> BTreeSet<String> {
    hook.requests()
        .iter()
        .flat_map(|r| r.events())
        .map(|e| e.target.descriptor.digest.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_requests_closed_and_every_acknowledged_push_is_delivered() {
    let Some(fs) = support::tmpfs::Tmpfs::mount("512k") else {
        return;
    };
    // The endpoint is down until the gate opens: its first POST waits, nothing is acked.
    let (open, gate) = support::receiver::gate();
    let hook = support::receiver::Receiver::start(support::receiver::gated(gate, 200)).await;
    let (layer, handle) = Notifications::builder()
        .endpoint(
            Endpoint::builder("audit", hook.url())
                .timeout(Duration::from_secs(600))
                .durable_queue(DurableConfig::new(fs.path().join("audit")).fsync(Fsync::Always))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let registry = oci::router(oci::Registry::in_memory(oci::RegistryOptions {
        delete_enabled: true,
    }));
    let addr = support::serve_router(registry.layer(layer)).await;
    let c = Http::new(addr);

    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    for i in 0..PUSHES {
        let data = format!("blob {i:06} {}", "x".repeat(i % 97));
        let digest = sha256(data.as_bytes());
        let location = c.start_upload("library/full-disk").await;
        let reply = c
            .send("PUT", &with_digest(&location, &digest), &[], data.into_bytes())
            .await;
        match reply.status.as_u16() {
            201 => {
                acknowledged.insert(digest);
            }
            503 => {
                refused += 1;
                assert_eq!(reply.header("retry-after"), Some("5"));
                assert_eq!(
                    reply.header("content-type"),
                    Some("application/json; charset=utf-8")
                );
                let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
                assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{body}");
            }
            other => panic!("push {i}: unexpected status {other}: {:?}", reply.body),
        }
    }
    let snapshot = &handle.metrics()[0];
    eprintln!(
        "full disk: {} pushes acknowledged, {refused} refused (503); metrics: refused {}, dropped {}",
        acknowledged.len(),
        snapshot.refused,
        snapshot.dropped
    );
    assert!(
        refused > 0,
        "512 KiB cannot hold {PUSHES} events: the disk never filled"
    );
    assert!(!acknowledged.is_empty(), "nothing fit on the disk");
    assert_eq!(snapshot.refused, refused as u64, "each refused event is counted");

    // The endpoint comes back: exactly the acknowledged pushes are delivered.
    open.send_replace(true);
    let want = acknowledged.len();
    support::wait_until("every acknowledged event delivered", || {
        delivered(&hook).is_superset(&acknowledged)
    })
    .await;
    let got = delivered(&hook);
    assert_eq!(got, acknowledged, "delivered = acknowledged, no more and no less");
    eprintln!(
        "after the endpoint came back: {} acknowledged / {} delivered",
        want,
        got.len()
    );

    // The backlog is gone, so is the space it took: pushes succeed again by themselves.
    support::wait_until("the queue drained", || handle.metrics()[0].pending == 0).await;
    let mut after = BTreeSet::new();
    for i in 0..50 {
        let data = format!("after {i}");
        let digest = sha256(data.as_bytes());
        let location = c.start_upload("library/full-disk").await;
        let reply = c
            .send("PUT", &with_digest(&location, &digest), &[], data.into_bytes())
            .await;
        assert_eq!(
            reply.status, 201,
            "push {i} after space was freed: {:?}",
            reply.body
        );
        after.insert(digest);
    }
    support::wait_until("the later pushes delivered", || {
        delivered(&hook).is_superset(&after)
    })
    .await;
    let report = handle.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.total(), 0, "{report:?}");
    drop(fs);
}
