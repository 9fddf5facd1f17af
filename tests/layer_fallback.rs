//! Without response hints, the layer asks the registry itself (the lookup
//! fallback) for the fields the HTTP exchange lacks.

#[allow(unreachable_pub)]
#[path = "../examples/registry/oci/mod.rs"]
mod oci;
mod support;

use axum::response::Response;
use registry_notify::dispatcher::Dispatcher;
use registry_notify::{Action, EventHint, NotificationLayer};
use support::{sha256, Http, Probe};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The example registry with every `EventHint` removed from its responses,
/// as a registry that knows nothing of this crate would answer.
fn hintless() -> axum::Router {
    oci::router(oci::Registry::in_memory(oci::RegistryOptions {
        delete_enabled: true,
    }))
    .layer(axum::middleware::map_response(|mut r: Response| async move {
        r.extensions_mut().remove::<EventHint>();
        r
    }))
}

async fn start(with_lookup: bool) -> (Http, Probe) {
    let probe = Probe::default();
    let registry = hintless();
    let mut layer = NotificationLayer::new(Dispatcher::new(probe.sink())).include_references(true);
    if with_lookup {
        layer = layer.lookup(registry.clone());
    } else {
        layer = layer.wrapped_lookups(false);
    }
    let addr = support::serve_router(registry.layer(layer)).await;
    (Http::new(addr), probe)
}

#[tokio::test]
async fn sizes_tags_and_references_come_from_lookups() {
    let (c, probe) = start(true).await;
    // Chunked upload: the final PUT has no body, the size comes from HEAD of the blob.
    let config = c
        .chunked_upload("lib/x", &[r#"{"architecture":"#, r#""amd64","os":"linux"}"#])
        .await;
    let layer = c.chunked_upload("lib/x", &["0123456789", "abcdefghij"]).await;
    let ev = probe.wait_take(2).await;
    assert_eq!(ev[0].target.descriptor.size, 37);
    assert_eq!(ev[1].target.descriptor.size, 20);
    assert_eq!(ev[1].target.length, 20);

    // Mount: size from the lookup too.
    let r = c
        .send(
            "POST",
            &format!("/v2/lib/y/blobs/uploads/?mount={layer}&from=lib/x"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 201);
    let ev = probe.wait_take(1).await;
    assert_eq!((ev[0].action, ev[0].target.descriptor.size), (Action::Mount, 20));

    // Manifest push: references from a GET of the manifest.
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":37}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":20}}]}}"#
    );
    let digest = sha256(manifest.as_bytes());
    for tag in ["a", "b"] {
        let r = c
            .send(
                "PUT",
                &format!("/v2/lib/x/manifests/{tag}"),
                &[("content-type", OCI_MANIFEST)],
                manifest.clone(),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let ev = probe.wait_take(2).await;
    assert_eq!(ev[0].target.references.len(), 2);
    assert_eq!(ev[0].target.references[0].digest, config);

    // Delete by digest: the tags that pointed at it were looked up before the delete.
    let r = c
        .send("DELETE", &format!("/v2/lib/x/manifests/{digest}"), &[], "")
        .await;
    assert_eq!(r.status, 202);
    let ev = probe.wait_take(3).await;
    let mut tags: Vec<&str> = ev[1..].iter().map(|e| e.target.tag.as_str()).collect();
    tags.sort();
    assert_eq!(tags, ["a", "b"]);
    // The lookups themselves produced no events.
    assert!(probe.events().is_empty(), "{:?}", probe.events());
}

#[tokio::test]
async fn without_hint_or_lookup_sizes_come_from_the_bytes_that_pass() {
    let (c, probe) = start(false).await;
    c.chunked_upload("lib/x", &["0123456789", "abcdefghij"]).await;
    let ev = probe.wait_take(1).await;
    // The final PUT carried no body, but both PATCHes passed through the layer.
    assert_eq!(ev[0].target.descriptor.size, 20);
    assert_eq!(ev[0].target.length, 20);
}

/// An upload whose chunks went through another instance: with no hint and no lookup, the
/// size stays unknown (0, logged), as nothing could tell it.
#[tokio::test]
async fn without_hint_or_lookup_an_unseen_upload_has_no_size() {
    let probe = Probe::default();
    let registry = hintless();
    let one = support::serve_router(registry.clone()).await;
    let layer = NotificationLayer::new(Dispatcher::new(probe.sink())).wrapped_lookups(false);
    let two = support::serve_router(registry.layer(layer)).await;
    let (c1, c2) = (Http::new(one), Http::new(two));
    let data = "0123456789abcdefghij";
    let location = c1.start_upload("lib/x").await;
    let r = c1.send("PATCH", &location, &[], data).await;
    assert_eq!(r.status, 202);
    // The session's path, sent to the other instance.
    let location = r.header("location").unwrap().to_string();
    let location = location.trim_start_matches(&c1.base).to_string();
    let digest = sha256(data.as_bytes());
    let r = c2
        .send("PUT", &support::with_digest(&location, &digest), &[], "")
        .await;
    assert_eq!(r.status, 201);
    let ev = probe.wait_take(1).await;
    assert_eq!(
        (
            ev[0].target.descriptor.digest.as_str(),
            ev[0].target.descriptor.size
        ),
        (digest.as_str(), 0)
    );
}

/// A `PATCH` sent with `Transfer-Encoding: chunked` (no `Content-Length`): its bytes are
/// counted as they pass, so the size is known with no hint and no lookup.
#[tokio::test]
async fn a_chunked_transfer_patch_is_counted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A registry that answers PATCH without `Range`: only the bytes themselves tell.
    let probe = Probe::default();
    let registry = hintless().layer(axum::middleware::map_response(|mut r: Response| async move {
        r.headers_mut().remove("range");
        r
    }));
    let layer = NotificationLayer::new(Dispatcher::new(probe.sink())).wrapped_lookups(false);
    let c = Http::new(support::serve_router(registry.layer(layer)).await);
    let location = c.start_upload("lib/x").await;
    let path = location.trim_start_matches(&c.base).to_string();
    let addr = c.base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n7\r\n0123456\r\n6\r\n789abc\r\n0\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    tcp.read_to_end(&mut reply).await.unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 202"), "{reply}");
    let next = reply
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .unwrap()
        .trim()
        .to_string();
    let digest = sha256(b"0123456789abc");
    let r = c
        .send("PUT", &support::with_digest(&next, &digest), &[], "")
        .await;
    assert_eq!(r.status, 201);
    let ev = probe.wait_take(1).await;
    assert_eq!((ev[0].target.descriptor.size, ev[0].target.length), (13, 13));
}
