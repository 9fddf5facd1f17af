//! Every row of Distribution's request → event table, through the public API:
//! the example OCI registry wrapped by the layer, a real HTTP client on loopback.

mod support;

use std::net::SocketAddr;

use registry_notify::{Action, Event, NotificationLayer};
use support::{example, sha256, sinks::Probe, Http};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

async fn start(layer: impl FnOnce(NotificationLayer) -> NotificationLayer) -> (Http, Probe, SocketAddr) {
    let (c, probe) = example::start_with(example::registry(), layer).await;
    let addr = c.addr;
    (c, probe, addr)
}

struct Image {
    config: String,
    layers: Vec<String>,
    manifest: Vec<u8>,
    digest: String,
}

async fn push_image_blobs(c: &Http, repo: &str, seed: &str) -> Image {
    let config_bytes = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
    let config = c.push_blob(repo, config_bytes.as_bytes()).await;
    let l1 = format!("layer one {seed}");
    let l2 = format!("layer two {seed}");
    let layers = vec![
        c.push_blob(repo, l1.as_bytes()).await,
        c.push_blob(repo, l2.as_bytes()).await,
    ];
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}},{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}]}}"#,
        config_bytes.len(),
        layers[0],
        l1.len(),
        layers[1],
        l2.len()
    )
    .into_bytes();
    let digest = sha256(&manifest);
    Image {
        config,
        layers,
        manifest,
        digest,
    }
}

fn assert_common(e: &Event, method: &str, addr: SocketAddr) {
    assert_eq!(e.request.method, method);
    assert_eq!(e.request.host, addr.to_string());
    assert!(e.request.addr.starts_with("127.0.0.1:"), "{}", e.request.addr);
    assert!(!e.request.id.is_empty());
    assert_eq!(uuid::Uuid::parse_str(&e.id).unwrap().get_version_num(), 7);
    assert!(!e.source.instance_id.is_empty());
}

#[tokio::test]
async fn blob_push_monolithic_chunked_and_post() {
    let (c, probe, addr) = start(|l| l).await;
    // POST then PUT with the whole body.
    let d = c.push_blob("library/test", b"post-then-put blob\n").await;
    let ev = probe.wait_take(1).await;
    assert_eq!(ev.len(), 1);
    let e = &ev[0];
    assert_eq!(e.action, Action::Push);
    assert_eq!(e.target.descriptor.media_type, "application/octet-stream");
    assert_eq!(e.target.descriptor.digest, d);
    assert_eq!((e.target.descriptor.size, e.target.length), (19, 19));
    assert_eq!(e.target.repository, "library/test");
    assert_eq!(e.target.url, format!("http://{addr}/v2/library/test/blobs/{d}"));
    assert!(e.target.tag.is_empty());
    assert_common(e, "PUT", addr);

    // Chunked: POST, PATCH, PATCH, PUT → exactly one push, of the whole size.
    let r = c.send("POST", "/v2/library/test/blobs/uploads/", &[], "").await;
    assert_eq!(r.status, 202);
    let mut loc = r.header("location").unwrap().to_string();
    for (range, chunk) in [("0-9", "chunk-one|"), ("10-19", "chunk-two\n")] {
        let r = c
            .send(
                "PATCH",
                &loc,
                &[
                    ("content-range", range),
                    ("content-type", "application/octet-stream"),
                ],
                chunk,
            )
            .await;
        assert_eq!(r.status, 202);
        loc = r.header("location").unwrap().to_string();
    }
    let status = c.get(&loc).await;
    assert_eq!(status.status, 204, "upload status");
    let d = sha256(b"chunk-one|chunk-two\n");
    assert_eq!(
        c.send("PUT", &support::with_digest(&loc, &d), &[], "")
            .await
            .status,
        201
    );
    let ev = probe.wait_take(1).await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!((ev[0].action, ev[0].target.descriptor.size), (Action::Push, 20));

    // Monolithic POST ?digest= with the body.
    let d = sha256(b"monolithic blob\n");
    let r = c
        .send(
            "POST",
            &format!("/v2/library/test/blobs/uploads/?digest={d}"),
            &[],
            "monolithic blob\n",
        )
        .await;
    assert_eq!(r.status, 201);
    let ev = probe.wait_take(1).await;
    assert_eq!(
        (
            ev[0].action,
            ev[0].target.descriptor.size,
            ev[0].request.method.as_str()
        ),
        (Action::Push, 16, "POST")
    );
}

#[tokio::test]
async fn mount_and_failed_mount() {
    let (c, probe, addr) = start(|l| l).await;
    let d = c.push_blob("other/app", b"shared layer").await;
    probe.wait_take(1).await;
    let r = c
        .send(
            "POST",
            &format!("/v2/curl/repo/blobs/uploads/?mount={d}&from=other/app"),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 201);
    let ev = probe.wait_take(1).await;
    let e = &ev[0];
    assert_eq!(e.action, Action::Mount);
    assert_eq!(e.target.repository, "curl/repo");
    assert_eq!(e.target.from_repository, "other/app");
    assert_eq!((e.target.descriptor.size, e.target.length), (12, 12));
    assert_eq!(e.target.url, format!("http://{addr}/v2/curl/repo/blobs/{d}"));
    assert_common(e, "POST", addr);

    // A mount from a repository without the blob falls back to an upload: no event;
    // cancelling that upload: no event.
    let r = c
        .send(
            "POST",
            &format!(
                "/v2/curl/repo/blobs/uploads/?mount={}&from=no/such-repo",
                sha256(b"x")
            ),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 202);
    let loc = r.header("location").unwrap().to_string();
    assert_eq!(c.send("DELETE", &loc, &[], "").await.status, 204);
    assert!(probe.events().is_empty(), "{:?}", probe.events());
}

#[tokio::test]
async fn manifest_push_pull_by_tag_and_digest() {
    let (c, probe, addr) = start(|l| l).await;
    let img = push_image_blobs(&c, "library/test", "a").await;
    probe.wait_take(3).await;
    c.put_manifest("library/test", "latest", OCI_MANIFEST, &img.manifest)
        .await;
    let ev = probe.wait_take(1).await;
    let e = &ev[0];
    assert_eq!(e.action, Action::Push);
    assert_eq!(e.target.descriptor.media_type, OCI_MANIFEST);
    assert_eq!(e.target.descriptor.digest, img.digest);
    assert_eq!(e.target.descriptor.size, img.manifest.len() as i64);
    assert_eq!(e.target.tag, "latest");
    assert_eq!(
        e.target.url,
        format!("http://{addr}/v2/library/test/manifests/{}", img.digest)
    );
    assert!(
        e.target.references.is_empty(),
        "references only with include_references"
    );
    assert_common(e, "PUT", addr);

    c.put_manifest("library/test", &img.digest, OCI_MANIFEST, &img.manifest)
        .await;
    assert!(probe.wait_take(1).await[0].target.tag.is_empty());

    let accept = [("accept", OCI_MANIFEST)];
    for (method, reference, tag) in [
        ("HEAD", "latest", "latest"),
        ("GET", "latest", "latest"),
        ("HEAD", img.digest.as_str(), ""),
        ("GET", img.digest.as_str(), ""),
    ] {
        let r = c
            .send(
                method,
                &format!("/v2/library/test/manifests/{reference}"),
                &accept,
                "",
            )
            .await;
        assert_eq!(r.status, 200);
        let ev = probe.wait_take(1).await;
        let e = &ev[0];
        assert_eq!(ev.len(), 1);
        assert_eq!(e.action, Action::Pull);
        assert_eq!(e.target.tag, tag);
        assert_eq!(e.target.descriptor.digest, img.digest);
        assert_eq!(e.target.descriptor.media_type, OCI_MANIFEST);
        assert_eq!(e.target.descriptor.size, img.manifest.len() as i64);
        assert_common(e, method, addr);
    }
    // A missing manifest: 404, no event.
    assert_eq!(c.get("/v2/library/test/manifests/nope").await.status, 404);
    assert!(probe.events().is_empty());
}

#[tokio::test]
async fn blob_pulls_head_get_and_range() {
    let (c, probe, addr) = start(|l| l).await;
    let data = vec![7u8; 141];
    let d = c.push_blob("other/app", &data).await;
    probe.wait_take(1).await;
    for (method, headers, status) in [
        ("HEAD", vec![], 200),
        ("GET", vec![], 200),
        ("GET", vec![("range", "bytes=0-9")], 206),
        // Unsatisfiable: Distribution 2.8 and 3.0 emit the pull all the same, full size.
        ("GET", vec![("range", "bytes=1000-2000")], 416),
    ] {
        let r = c
            .send(method, &format!("/v2/other/app/blobs/{d}"), &headers, "")
            .await;
        assert_eq!(r.status, status);
        let ev = probe.wait_take(1).await;
        let e = &ev[0];
        assert_eq!(e.action, Action::Pull);
        assert_eq!(e.target.descriptor.media_type, "application/octet-stream");
        assert_eq!(
            (e.target.descriptor.size, e.target.length),
            (141, 141),
            "full size even for a Range"
        );
        assert_eq!(e.target.url, format!("http://{addr}/v2/other/app/blobs/{d}"));
        assert_common(e, method, addr);
    }
    // Unknown blob: 404, no event.
    let missing = format!("/v2/other/app/blobs/sha256:{}", "0".repeat(64));
    assert_eq!(c.send("HEAD", &missing, &[], "").await.status, 404);
    assert!(probe.events().is_empty());
}

#[tokio::test]
async fn deletes_manifest_with_its_tags_tag_and_blob() {
    let (c, probe, addr) = start(|l| l).await;
    let img = push_image_blobs(&c, "library/test", "d").await;
    c.put_manifest("library/test", "latest", OCI_MANIFEST, &img.manifest)
        .await;
    c.put_manifest("library/test", "v2", OCI_MANIFEST, &img.manifest)
        .await;
    c.put_manifest("library/test", "keep", OCI_MANIFEST, &img.manifest)
        .await;
    probe.wait_take(6).await;

    // DELETE by tag (Distribution 3): one tag delete, the manifest stays.
    let r = c.send("DELETE", "/v2/library/test/manifests/keep", &[], "").await;
    assert_eq!(r.status, 202);
    let ev = probe.wait_take(1).await;
    assert_eq!(ev.len(), 1);
    let e = &ev[0];
    assert_eq!(
        (
            e.action,
            e.target.tag.as_str(),
            e.target.descriptor.digest.as_str()
        ),
        (Action::Delete, "keep", "")
    );
    assert_common(e, "DELETE", addr);

    // DELETE by digest: the manifest, then one delete per tag that pointed at it.
    let r = c
        .send(
            "DELETE",
            &format!("/v2/library/test/manifests/{}", img.digest),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 202);
    let ev = probe.wait_take(3).await;
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert_eq!(ev[0].target.descriptor.digest, img.digest);
    assert!(
        ev[0].target.tag.is_empty()
            && ev[0].target.url.is_empty()
            && ev[0].target.descriptor.media_type.is_empty()
    );
    let mut tags: Vec<&str> = ev[1..].iter().map(|e| e.target.tag.as_str()).collect();
    tags.sort();
    assert_eq!(tags, ["latest", "v2"]);
    assert!(ev
        .iter()
        .all(|e| e.action == Action::Delete && e.request.id == ev[0].request.id));
    assert!(ev[1..].iter().all(|e| e.target.descriptor.digest.is_empty()));

    // Blob delete: {digest, repository}.
    let r = c
        .send(
            "DELETE",
            &format!("/v2/library/test/blobs/{}", img.layers[0]),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 202);
    let ev = probe.wait_take(1).await;
    assert_eq!(
        (ev[0].action, ev[0].target.descriptor.digest.as_str()),
        (Action::Delete, img.layers[0].as_str())
    );
    assert_eq!(ev[0].target.repository, "library/test");
}

#[tokio::test]
async fn no_events_for_ping_catalog_tags_status_and_failures() {
    let (c, probe, _) = start(|l| l).await;
    let img = push_image_blobs(&c, "a/b", "n").await;
    c.put_manifest("a/b", "1", OCI_MANIFEST, &img.manifest).await;
    probe.wait_take(4).await;
    assert_eq!(c.get("/v2/").await.status, 200);
    assert_eq!(c.get("/v2/_catalog").await.status, 200);
    assert_eq!(c.get("/v2/a/b/tags/list").await.status, 200);
    let r = c.send("POST", "/v2/a/b/blobs/uploads/", &[], "").await;
    let loc = r.header("location").unwrap().to_string();
    assert_eq!(c.get(&loc).await.status, 204);
    assert_eq!(c.send("PATCH", &loc, &[], "abc").await.status, 202);
    // Wrong digest on commit: 400, no event.
    let bad = support::with_digest(&loc, &sha256(b"other"));
    assert_eq!(c.send("PUT", &bad, &[], "").await.status, 400);
    // Manifest referencing unknown blobs: 400, no event.
    let r = c
        .send(
            "PUT",
            "/v2/a/b/manifests/bad",
            &[("content-type", OCI_MANIFEST)],
            img.manifest.replace_first(&img.config),
        )
        .await;
    assert!(r.status.is_client_error());
    assert!(probe.events().is_empty(), "{:?}", probe.events());
}

trait ReplaceFirst {
    fn replace_first(&self, digest: &str) -> Vec<u8>;
}
impl ReplaceFirst for Vec<u8> {
    fn replace_first(&self, digest: &str) -> Vec<u8> {
        String::from_utf8_lossy(self)
            .replacen(digest, &sha256(b"not pushed"), 1)
            .into_bytes()
    }
}

#[tokio::test]
async fn references_from_hint_for_image_and_index() {
    let (c, probe, _) = start(|l| l.include_references(true)).await;
    let img = push_image_blobs(&c, "refs/multi", "r").await;
    probe.wait_take(3).await;
    c.put_manifest("refs/multi", &img.digest, OCI_MANIFEST, &img.manifest)
        .await;
    let e = &probe.wait_take(1).await[0];
    let refs: Vec<&str> = e.target.references.iter().map(|d| d.digest.as_str()).collect();
    assert_eq!(
        refs,
        [
            img.config.as_str(),
            img.layers[0].as_str(),
            img.layers[1].as_str()
        ],
        "config first, then layers"
    );
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        img.digest,
        img.manifest.len()
    );
    c.put_manifest("refs/multi", "1", OCI_INDEX, index.as_bytes())
        .await;
    let e = &probe.wait_take(1).await[0];
    assert_eq!(e.target.tag, "1");
    assert_eq!(e.target.descriptor.media_type, OCI_INDEX);
    assert_eq!(e.target.references.len(), 1);
    assert_eq!(
        e.target.references[0].platform.as_ref().unwrap().architecture,
        "amd64"
    );
    // Pull by HEAD: references too.
    c.send("HEAD", "/v2/refs/multi/manifests/1", &[("accept", OCI_INDEX)], "")
        .await;
    assert_eq!(probe.wait_take(1).await[0].target.references.len(), 1);
}
