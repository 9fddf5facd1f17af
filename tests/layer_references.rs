//! `includereferences` from the manifest bytes that pass through the layer: the body a
//! client `PUT`s and the body a `GET` returns give the references (and size and media
//! type), so the layer asks the registry for nothing. Only a `HEAD`, which carries no body,
//! may need a lookup.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::Request;
use registry_notify::Action;
use support::example::{hintless, start_with};
use support::{sha256, sinks::Probe, Http};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The layer with references on, and (optionally) a lookup that counts the manifest
/// requests it is sent.
async fn start(with_lookup: bool, pull_on_body_end: bool) -> (Http, Probe, Arc<AtomicUsize>) {
    let registry = hintless();
    let lookups = Arc::new(AtomicUsize::new(0));
    let counted = lookups.clone();
    let counting = tower::ServiceExt::map_request(
        registry.clone(),
        move |r: Request<http_body_util::Empty<bytes::Bytes>>| {
            if r.uri().path().contains("/manifests/") {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            r.map(axum::body::Body::new)
        },
    );
    let (c, probe) = start_with(registry, |layer| {
        let layer = layer.include_references(true).pull_on_body_end(pull_on_body_end);
        if with_lookup {
            layer.lookup(counting)
        } else {
            layer
        }
    })
    .await;
    (c, probe, lookups)
}

/// Pushes a config and a layer blob and an image manifest naming them; returns the
/// manifest, its digest and the two blob digests.
async fn push_image(c: &Http, probe: &Probe, repo: &str) -> (String, String, [String; 2]) {
    let config = c
        .push_blob(repo, br#"{"architecture":"amd64","os":"linux"}"#)
        .await;
    let layer = c.push_blob(repo, b"0123456789abcdefghij").await;
    probe.wait_take(2).await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":37}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":20}}]}}"#
    );
    let digest = sha256(manifest.as_bytes());
    c.put_manifest(repo, "v1", OCI_MANIFEST, manifest.as_bytes())
        .await;
    (manifest, digest, [config, layer])
}

#[tokio::test]
async fn put_and_get_give_references_without_a_lookup() {
    for with_lookup in [true, false] {
        let (c, probe, lookups) = start(with_lookup, false).await;
        let (manifest, digest, [config, layer]) = push_image(&c, &probe, "lib/refs").await;
        let push = &probe.wait_take(1).await[0];
        assert_eq!(push.action, Action::Push);
        assert_eq!(push.target.descriptor.digest, digest);
        assert_eq!(push.target.descriptor.size, manifest.len() as i64);
        assert_eq!(push.target.descriptor.media_type, OCI_MANIFEST);
        let refs: Vec<&str> = push.target.references.iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(refs, [config.as_str(), layer.as_str()], "lookup: {with_lookup}");

        // A GET by tag: the references come from the body on its way to the client.
        let r = c
            .send(
                "GET",
                "/v2/lib/refs/manifests/v1",
                &[("accept", OCI_MANIFEST)],
                "",
            )
            .await;
        assert_eq!((r.status.as_u16(), &r.body[..]), (200, manifest.as_bytes()));
        let pull = &probe.wait_take(1).await[0];
        assert_eq!((pull.action, pull.target.tag.as_str()), (Action::Pull, "v1"));
        assert_eq!(pull.target.references, push.target.references);
        assert_eq!(pull.target.descriptor.size, manifest.len() as i64);
        assert_eq!(
            lookups.load(Ordering::SeqCst),
            0,
            "no manifest lookup for a PUT or a GET"
        );
    }
}

#[tokio::test]
async fn an_index_lists_its_manifests_and_pull_on_body_end_still_holds() {
    let (c, probe, lookups) = start(true, true).await;
    let (manifest, digest, _) = push_image(&c, &probe, "lib/multi").await;
    probe.wait_take(1).await;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        manifest.len()
    );
    let index_digest = sha256(index.as_bytes());
    c.put_manifest("lib/multi", "latest", OCI_INDEX, index.as_bytes())
        .await;
    let push = &probe.wait_take(1).await[0];
    assert_eq!(push.target.descriptor.digest, index_digest);
    assert_eq!(push.target.references.len(), 1);
    assert_eq!(push.target.references[0].digest, digest);

    let r = c
        .send(
            "GET",
            &format!("/v2/lib/multi/manifests/{index_digest}"),
            &[("accept", OCI_INDEX)],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let pull = &probe.wait_take(1).await[0];
    assert_eq!(pull.target.references, push.target.references);
    assert_eq!(lookups.load(Ordering::SeqCst), 0);
}
