//! The example registry over real HTTP on 127.0.0.1, on both storage backends: deletes
//! (and with deletes disabled), pagination of listings, referrers, and content addressed by
//! sha512.

mod support;

use example_registry::oci;
use http::Method;
use serde_json::json;
use support::*;

both_backends!(deletes, pagination, referrers, sha512_content,);

async fn deletes(s: Server) {
    let (manifest, digest) = s.push_image("del/repo", "latest", "d").await;
    s.put_manifest("del/repo", "v2", OCI_MANIFEST, &manifest)
        .await
        .expect(201);
    s.put_manifest("del/repo", "keep", OCI_MANIFEST, &manifest)
        .await
        .expect(201);
    // Delete by tag removes only the tag.
    s.delete("/v2/del/repo/manifests/keep").await.expect(202);
    s.get("/v2/del/repo/manifests/keep")
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    s.delete("/v2/del/repo/manifests/keep")
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    s.get(&format!("/v2/del/repo/manifests/{digest}"))
        .await
        .expect(200);
    // Delete by digest removes the manifest and its tags.
    s.delete(&format!("/v2/del/repo/manifests/{digest}"))
        .await
        .expect(202);
    s.get("/v2/del/repo/manifests/latest")
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    s.get(&format!("/v2/del/repo/manifests/{digest}"))
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    assert_eq!(
        s.get("/v2/del/repo/tags/list").await.json(),
        json!({"name": "del/repo", "tags": []})
    );
    s.delete(&format!("/v2/del/repo/manifests/{digest}"))
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    s.delete("/v2/del/repo/manifests/bad!tag")
        .await
        .expect_error(400, "TAG_INVALID");
    // Blob delete unlinks it from this repository only.
    let blob = s.push_blob("del/repo", b"blob to delete").await;
    let mount = format!("/v2/del/other/blobs/uploads/?mount={blob}&from=del/repo");
    s.send(Method::POST, &mount, &[], "").await.expect(201);
    s.delete(&format!("/v2/del/repo/blobs/{blob}")).await.expect(202);
    s.head(&format!("/v2/del/repo/blobs/{blob}")).await.expect(404);
    s.head(&format!("/v2/del/other/blobs/{blob}")).await.expect(200);
    s.delete(&format!("/v2/del/repo/blobs/{blob}"))
        .await
        .expect_error(404, "BLOB_UNKNOWN");
    s.delete("/v2/del/repo/blobs/sha256:1")
        .await
        .expect_error(400, "DIGEST_INVALID");
    s.send(Method::PATCH, "/v2/del/repo/manifests/latest", &[], "")
        .await
        .expect_error(405, "UNSUPPORTED");
}

#[tokio::test]
async fn deletes_disabled() {
    let s = serve(oci::Registry::in_memory(oci::RegistryOptions::default()), None).await;
    let (_, digest) = s.push_image("nodel/repo", "latest", "n").await;
    s.delete(&format!("/v2/nodel/repo/manifests/{digest}"))
        .await
        .expect_error(405, "UNSUPPORTED");
    s.delete("/v2/nodel/repo/manifests/latest")
        .await
        .expect_error(405, "UNSUPPORTED");
    s.delete(&format!("/v2/nodel/repo/blobs/{}", sha256(b"layer one n")))
        .await
        .expect_error(405, "UNSUPPORTED");
    s.get("/v2/nodel/repo/manifests/latest").await.expect(200);
}

async fn pagination(s: Server) {
    let manifest = image_manifest(&s, "p/a", "p", OCI_MANIFEST).await;
    for tag in ["c", "a", "b", "d"] {
        s.put_manifest("p/a", tag, OCI_MANIFEST, &manifest)
            .await
            .expect(201);
    }
    for repo in ["p/c", "p/b"] {
        let m = image_manifest(&s, repo, "p", OCI_MANIFEST).await;
        s.put_manifest(repo, "x", OCI_MANIFEST, &m).await.expect(201);
    }
    // A repository with only blobs is not listed.
    s.push_blob("p/blobs-only", b"b").await;

    let r = s.get("/v2/_catalog?n=2").await;
    r.expect(200);
    assert_eq!(r.json(), json!({"repositories": ["p/a", "p/b"]}));
    assert_eq!(
        r.header("link"),
        Some("</v2/_catalog?last=p/b&n=2>; rel=\"next\"")
    );
    let r = s.get("/v2/_catalog?n=2&last=p/b").await;
    assert_eq!(r.json(), json!({"repositories": ["p/c"]}));
    assert_eq!(r.header("link"), None);
    assert_eq!(
        s.get("/v2/_catalog").await.json(),
        json!({"repositories": ["p/a", "p/b", "p/c"]})
    );
    assert_eq!(
        s.get("/v2/_catalog?n=0").await.json(),
        json!({"repositories": []})
    );
    s.get("/v2/_catalog?n=abc")
        .await
        .expect_error(400, "PAGINATION_NUMBER_INVALID");
    s.get("/v2/_catalog?n=-1")
        .await
        .expect_error(400, "PAGINATION_NUMBER_INVALID");
    s.get("/v2/_catalog?n=99999999999999999999999")
        .await
        .expect_error(400, "PAGINATION_NUMBER_INVALID");

    let r = s.get("/v2/p/a/tags/list?n=3").await;
    assert_eq!(r.json(), json!({"name": "p/a", "tags": ["a", "b", "c"]}));
    assert_eq!(
        r.header("link"),
        Some("</v2/p/a/tags/list?last=c&n=3>; rel=\"next\"")
    );
    assert_eq!(
        s.get("/v2/p/a/tags/list?last=b").await.json(),
        json!({"name": "p/a", "tags": ["c", "d"]})
    );
    s.send(Method::POST, "/v2/p/a/tags/list", &[], "")
        .await
        .expect_error(405, "UNSUPPORTED");
}

async fn referrers(s: Server) {
    let (subject, subject_digest) = s.push_image("ref/repo", "latest", "r").await;
    let empty = s.push_blob("ref/repo", b"{}").await;
    let artifact = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject.len()},
        "annotations": {"org.example.kind": "signature"},
    }))
    .expect("json");
    let artifact_digest = sha256(&artifact);
    let r = s
        .put_manifest("ref/repo", &artifact_digest, OCI_MANIFEST, &artifact)
        .await;
    r.expect(201);
    assert_eq!(r.header("oci-subject"), Some(subject_digest.as_str()));

    let r = s.get(&format!("/v2/ref/repo/referrers/{subject_digest}")).await;
    r.expect(200);
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    let body = r.json();
    assert_eq!(body["manifests"][0]["digest"], json!(artifact_digest));
    assert_eq!(
        body["manifests"][0]["artifactType"],
        json!("application/vnd.example.sig")
    );
    assert_eq!(
        body["manifests"][0]["annotations"]["org.example.kind"],
        json!("signature")
    );
    let r = s
        .get(&format!(
            "/v2/ref/repo/referrers/{subject_digest}?artifactType=application/other"
        ))
        .await;
    assert_eq!(r.json()["manifests"], json!([]));
    assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
    let r = s.get(&format!("/v2/ref/none/referrers/{subject_digest}")).await;
    r.expect(200);
    assert_eq!(r.json()["manifests"], json!([]));
}

async fn sha512_content(s: Server) {
    // Blob by sha512, via chunked upload.
    let content = b"sha512 content";
    let digest = sha512(content);
    let r = s.send(Method::POST, "/v2/s/repo/blobs/uploads/", &[], "").await;
    let location = r.location_path();
    s.send(Method::PATCH, &location, &[], &content[..5])
        .await
        .expect(202);
    let r = s
        .send(
            Method::PUT,
            &format!("{location}&digest={digest}"),
            &[],
            &content[5..],
        )
        .await;
    r.expect(201);
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(
        s.get(&format!("/v2/s/repo/blobs/{digest}")).await.body.as_ref(),
        content
    );
    // Manifest by sha512.
    let manifest = image_manifest(&s, "s/repo", "s", OCI_MANIFEST).await;
    let mdigest = sha512(&manifest);
    let r = s.put_manifest("s/repo", &mdigest, OCI_MANIFEST, &manifest).await;
    r.expect(201);
    assert_eq!(r.header("docker-content-digest"), Some(mdigest.as_str()));
    let r = s.get(&format!("/v2/s/repo/manifests/{mdigest}")).await;
    r.expect(200);
    assert_eq!(r.body.as_ref(), manifest.as_slice());
}
