//! Lookups through the wrapped service, by default: a registry that attaches `EventHint`s is
//! never asked anything; one that does not is asked only for what its exchanges lacked, and
//! the events come out as complete as Distribution's.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use registry_notify::dispatcher::Dispatcher;
use registry_notify::{Action, EventHint, NotificationLayer};
use support::{sha256, sinks::Probe, Http};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The example registry, counting every request that reaches it; `hints: false` strips its
/// `EventHint`s, as a registry that knows nothing of this crate answers.
fn registry(hints: bool, seen: Arc<AtomicUsize>) -> axum::Router {
    support::example::registry()
        .layer(axum::middleware::map_response(
            move |mut r: Response| async move {
                if !hints {
                    r.extensions_mut().remove::<EventHint>();
                }
                r
            },
        ))
        .layer(axum::middleware::map_request(move |r: Request| {
            seen.fetch_add(1, Ordering::SeqCst);
            async move { r }
        }))
}

/// A session of every kind of request: chunked and monolithic uploads, a mount, a manifest
/// with two tags, pulls by tag and digest (GET and HEAD), a delete by digest. Returns how
/// many requests the client sent.
async fn session(c: &Http, probe: &Probe) -> usize {
    let mut sent = 0;
    let config = c.chunked_upload("lib/a", &[r#"{"os":"#, r#""linux"}"#]).await;
    sent += 4;
    let layer = c.push_blob("lib/a", b"0123456789").await;
    sent += 2;
    let r = c
        .send(
            "POST",
            &format!("/v2/lib/b/blobs/uploads/?mount={layer}&from=lib/a"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 201);
    sent += 1;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":14}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":10}}]}}"#
    );
    let digest = sha256(manifest.as_bytes());
    for tag in ["one", "two"] {
        c.put_manifest("lib/a", tag, OCI_MANIFEST, manifest.as_bytes())
            .await;
        sent += 1;
    }
    for (method, reference) in [("GET", "one"), ("HEAD", "two"), ("GET", digest.as_str())] {
        let r = c
            .send(
                method,
                &format!("/v2/lib/a/manifests/{reference}"),
                &[("accept", OCI_MANIFEST)],
                "",
            )
            .await;
        assert_eq!(r.status, 200);
        sent += 1;
    }
    let r = c
        .send("DELETE", &format!("/v2/lib/a/manifests/{digest}"), &[], "")
        .await;
    assert_eq!(r.status, 202);
    sent += 1;
    // 2 blob pushes, a mount, 2 manifest pushes, 3 pulls, the delete and its 2 tags.
    let events = probe.wait_take(11).await;
    let sizes: Vec<(Action, i64)> = events
        .iter()
        .map(|e| (e.action, e.target.descriptor.size))
        .collect();
    assert_eq!(
        &sizes[..3],
        [(Action::Push, 14), (Action::Push, 10), (Action::Mount, 10)],
        "{events:#?}"
    );
    for e in &events[3..8] {
        assert_eq!(e.target.descriptor.size, manifest.len() as i64, "{e:?}");
        assert_eq!(e.target.descriptor.media_type, OCI_MANIFEST, "{e:?}");
    }
    let mut tags: Vec<&str> = events[9..].iter().map(|e| e.target.tag.as_str()).collect();
    tags.sort();
    assert_eq!(tags, ["one", "two"], "the tags the delete removed");
    sent
}

async fn run(hints: bool) -> (usize, usize) {
    let seen = Arc::new(AtomicUsize::new(0));
    let probe = Probe::default();
    let notify = NotificationLayer::new(Dispatcher::new(probe.sink()));
    // The whole registry is wrapped, as README shows, so lookups reach its router.
    let app =
        axum::Router::new().fallback_service(tower::Layer::layer(&notify, registry(hints, seen.clone())));
    let c = Http::new(support::serve_router(app).await);
    let sent = session(&c, &probe).await;
    (sent, seen.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_registry_that_attaches_hints_is_never_asked() {
    let (sent, seen) = run(true).await;
    assert_eq!(seen, sent, "every request the registry saw came from the client");
}

#[tokio::test]
async fn a_registry_without_hints_is_asked_through_the_wrapped_service() {
    let (sent, seen) = run(false).await;
    let lookups = seen - sent;
    eprintln!("hintless registry: {sent} client requests, {lookups} lookups");
    // Only what no exchange showed: the tag list and a HEAD per tag before the delete by
    // digest, and the status of the second upload session before its commit (once the
    // registry is known to attach no hints; another instance could have taken a chunk).
    // The manifests' fields came with them.
    assert_eq!(
        lookups, 4,
        "the tag scan of the delete by digest and one upload status"
    );
}
