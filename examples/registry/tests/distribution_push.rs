//! The example registry over real HTTP on 127.0.0.1, on both storage backends: the API
//! base, pushes and pulls of images and indexes, manifest validation, chunked uploads and
//! cross-repository mounts.

mod support;

use http::Method;
use serde_json::json;
use support::*;

both_backends!(
    base_endpoint,
    push_and_pull_image,
    manifest_validation,
    chunked_uploads,
    mounts,
);

async fn base_endpoint(s: Server) {
    let r = s.get("/v2/").await;
    r.expect(200);
    assert_eq!(r.json(), json!({}));
    s.get("/v2").await.expect(200);
    s.head("/v2/").await.expect(200);
    s.send(Method::POST, "/v2/", &[], "")
        .await
        .expect_error(405, "UNSUPPORTED");
    s.get("/").await.expect_error(404, "UNSUPPORTED");
    s.get("/v3/").await.expect(404);
}

async fn push_and_pull_image(s: Server) {
    let (manifest, digest) = s.push_image("library/test", "latest", "a").await;

    // PUT response.
    let r = s
        .put_manifest("library/test", "latest", OCI_MANIFEST, &manifest)
        .await;
    r.expect(201);
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(r.location_path(), format!("/v2/library/test/manifests/{digest}"));
    assert!(r
        .header("location")
        .is_some_and(|l| l.starts_with(&format!("http://{}/", s.addr))));

    // GET/HEAD by tag and digest; Accept is ignored.
    for reference in ["latest", digest.as_str()] {
        let path = format!("/v2/library/test/manifests/{reference}");
        let r = s
            .send(
                Method::GET,
                &path,
                &[("accept", b"application/vnd.docker.distribution.manifest.v2+json")],
                "",
            )
            .await;
        r.expect(200);
        assert_eq!(r.body.as_ref(), manifest.as_slice());
        assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
        let r = s.head(&path).await;
        r.expect(200);
        assert!(r.body.is_empty());
        assert_eq!(
            r.header("content-length"),
            Some(manifest.len().to_string().as_str())
        );
        assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
    }
    let quoted = format!("\"{digest}\"");
    s.send(
        Method::GET,
        "/v2/library/test/manifests/latest",
        &[("if-none-match", quoted.as_bytes())],
        "",
    )
    .await
    .expect(304);
    s.get("/v2/library/test/manifests/nope")
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");
    s.get("/v2/library/nothere/manifests/latest")
        .await
        .expect_error(404, "MANIFEST_UNKNOWN");

    // Second tag, tags list, catalog.
    s.put_manifest("library/test", "v2", OCI_MANIFEST, &manifest)
        .await
        .expect(201);
    assert_eq!(
        s.get("/v2/library/test/tags/list").await.json(),
        json!({"name": "library/test", "tags": ["latest", "v2"]})
    );
    assert_eq!(
        s.get("/v2/_catalog").await.json(),
        json!({"repositories": ["library/test"]})
    );
    s.get("/v2/unknown/repo/tags/list")
        .await
        .expect_error(404, "NAME_UNKNOWN");

    // Blobs: full, HEAD, ranges.
    let layer = b"layer one a";
    let blob = format!("/v2/library/test/blobs/{}", sha256(layer));
    let r = s.get(&blob).await;
    r.expect(200);
    assert_eq!(r.body.as_ref(), layer);
    assert_eq!(r.header("docker-content-digest"), Some(sha256(layer).as_str()));
    let r = s.head(&blob).await;
    r.expect(200);
    assert_eq!(r.header("content-length"), Some("11"));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(r.body.is_empty());
    let r = s.send(Method::GET, &blob, &[("range", b"bytes=0-4")], "").await;
    r.expect(206);
    assert_eq!(r.body.as_ref(), b"layer");
    assert_eq!(r.header("content-range"), Some("bytes 0-4/11"));
    let r = s.send(Method::GET, &blob, &[("range", b"bytes=-3")], "").await;
    r.expect(206);
    assert_eq!(r.body.as_ref(), b"e a");
    for bad in [
        &b"bytes=11-"[..],
        b"bytes=5-2",
        b"lines=0-1",
        b"bytes=0-1,4-5",
        b"bytes=x-y",
    ] {
        let r = s.send(Method::GET, &blob, &[("range", bad)], "").await;
        r.expect_error(416, "RANGE_INVALID");
        assert_eq!(r.header("content-range"), Some("bytes */11"));
    }
    // Blobs are only visible where linked.
    s.head(&format!("/v2/other/repo/blobs/{}", sha256(layer)))
        .await
        .expect(404);
    s.get(&format!("/v2/library/test/blobs/{}", sha256(b"never pushed")))
        .await
        .expect_error(404, "BLOB_UNKNOWN");

    // Docker v2 schema 2 works too.
    let v2 = image_manifest(&s, "library/docker", "d", DOCKER_V2).await;
    s.put_manifest("library/docker", "1", DOCKER_V2, &v2)
        .await
        .expect(201);
    let r = s.get("/v2/library/docker/manifests/1").await;
    r.expect(200);
    assert_eq!(r.header("content-type"), Some(DOCKER_V2));

    // Multi-arch index: children first, by digest.
    let child = image_manifest(&s, "library/multi", "m", OCI_MANIFEST).await;
    let child_digest = sha256(&child);
    s.put_manifest("library/multi", &child_digest, OCI_MANIFEST, &child)
        .await
        .expect(201);
    let index = index_manifest(&[(&child_digest, child.len(), "amd64")]);
    let r = s.put_manifest("library/multi", "1", OCI_INDEX, &index).await;
    r.expect(201);
    let r = s.get("/v2/library/multi/manifests/1").await;
    r.expect(200);
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    assert_eq!(r.body.as_ref(), index.as_slice());
}

async fn manifest_validation(s: Server) {
    let manifest = image_manifest(&s, "v/repo", "x", OCI_MANIFEST).await;
    // The blobs are in v/repo only.
    s.put_manifest("v/other", "t", OCI_MANIFEST, &manifest)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    // Digest reference must match.
    let wrong = sha256(b"something else");
    s.put_manifest("v/repo", &wrong, OCI_MANIFEST, &manifest)
        .await
        .expect_error(400, "DIGEST_INVALID");
    s.put_manifest("v/repo", &sha256(&manifest), OCI_MANIFEST, &manifest)
        .await
        .expect(201);
    // Invalid bodies.
    s.put_manifest("v/repo", "t", OCI_MANIFEST, b"not json")
        .await
        .expect_error(400, "MANIFEST_INVALID");
    s.put_manifest("v/repo", "t", OCI_MANIFEST, b"{\"schemaVersion\":2}")
        .await
        .expect_error(400, "MANIFEST_INVALID");
    s.put_manifest("v/repo", "t", OCI_MANIFEST, b"\xff\xfe")
        .await
        .expect_error(400, "MANIFEST_INVALID");
    s.put_manifest(
        "v/repo",
        "t",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        b"{\"schemaVersion\":1}",
    )
    .await
    .expect_error(400, "MANIFEST_INVALID");
    s.put_manifest("v/repo", "t", OCI_INDEX, &manifest)
        .await
        .expect_error(400, "MANIFEST_INVALID");
    let bad_digest =
        br#"{"schemaVersion":2,"config":{"mediaType":"x/y","digest":"sha256:XYZ","size":1},"layers":[]}"#;
    s.put_manifest("v/repo", "t", OCI_MANIFEST, bad_digest)
        .await
        .expect_error(400, "MANIFEST_INVALID");
    let negative = br#"{"schemaVersion":2,"config":{"mediaType":"x/y","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":-1},"layers":[]}"#;
    s.put_manifest("v/repo", "t", OCI_MANIFEST, negative)
        .await
        .expect_error(400, "MANIFEST_INVALID");
    // Too big.
    let huge = vec![b' '; 4 * 1024 * 1024 + 1];
    s.put_manifest("v/repo", "t", OCI_MANIFEST, &huge)
        .await
        .expect_error(413, "MANIFEST_INVALID");
    // Tags and references.
    s.put_manifest("v/repo", ".bad", OCI_MANIFEST, &manifest)
        .await
        .expect_error(400, "TAG_INVALID");
    s.put_manifest("v/repo", &"t".repeat(129), OCI_MANIFEST, &manifest)
        .await
        .expect_error(400, "TAG_INVALID");
    s.put_manifest("v/repo", "md5:abc", OCI_MANIFEST, &manifest)
        .await
        .expect_error(400, "DIGEST_INVALID");
    // Index whose child is missing.
    let index = index_manifest(&[(&sha256(b"missing child"), 3, "arm64")]);
    s.put_manifest("v/repo", "idx", OCI_INDEX, &index)
        .await
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    // Media type from the body when Content-Type is generic; unknown artifact types are stored.
    let r = s
        .put_manifest("v/repo", "generic", "application/json", &manifest)
        .await;
    r.expect(201);
    assert_eq!(
        s.get("/v2/v/repo/manifests/generic").await.header("content-type"),
        Some(OCI_MANIFEST)
    );
    let artifact = br#"{"kind":"anything"}"#;
    s.put_manifest("v/repo", "art", "application/vnd.example.thing+json", artifact)
        .await
        .expect(201);
    assert_eq!(
        s.get("/v2/v/repo/manifests/art").await.header("content-type"),
        Some("application/vnd.example.thing+json")
    );
    // A header-unsafe media type in the body is refused.
    let evil = br#"{"schemaVersion":2,"mediaType":"a/b\r\nX-Evil: 1","manifests":[]}"#;
    s.put_manifest("v/repo", "evil", "application/json", evil)
        .await
        .expect_error(400, "MANIFEST_INVALID");
}

async fn chunked_uploads(s: Server) {
    let r = s.send(Method::POST, "/v2/up/repo/blobs/uploads/", &[], "").await;
    r.expect(202);
    assert_eq!(r.header("range"), Some("0-0"));
    let uuid = r.header("docker-upload-uuid").expect("uuid").to_owned();
    let mut location = r.location_path();
    assert!(
        location.starts_with(&format!("/v2/up/repo/blobs/uploads/{uuid}")),
        "{location}"
    );

    let r = s
        .send(
            Method::PATCH,
            &location,
            &[("content-range", b"0-9")],
            "chunk-one|",
        )
        .await;
    r.expect(202);
    assert_eq!(r.header("range"), Some("0-9"));
    location = r.location_path();
    // Not contiguous.
    let r = s
        .send(
            Method::PATCH,
            &location,
            &[("content-range", b"5-14")],
            "chunk-two\n",
        )
        .await;
    r.expect_error(416, "RANGE_INVALID");
    assert_eq!(r.header("range"), Some("0-9"));
    // Declared length differs from the body: rejected, nothing appended.
    s.send(
        Method::PATCH,
        &location,
        &[("content-range", b"10-29")],
        "chunk-two\n",
    )
    .await
    .expect_error(416, "SIZE_INVALID");
    s.send(Method::PATCH, &location, &[("content-range", b"nonsense")], "x")
        .await
        .expect_error(400, "BLOB_UPLOAD_INVALID");
    s.send(
        Method::PATCH,
        &location,
        &[("content-range", b"0-18446744073709551615")],
        "x",
    )
    .await
    .expect_error(400, "BLOB_UPLOAD_INVALID");
    s.send(
        Method::PATCH,
        &location,
        &[("content-range", b"10-18446744073709551616")],
        "x",
    )
    .await
    .expect_error(400, "BLOB_UPLOAD_INVALID");
    s.send(Method::PATCH, &location, &[("content-range", b"9-3")], "x")
        .await
        .expect_error(416, "RANGE_INVALID");
    let r = s.get(&location).await;
    r.expect(204);
    assert_eq!(r.header("range"), Some("0-9"));
    // A chunk without Content-Range appends.
    let r = s.send(Method::PATCH, &location, &[], "chunk-two").await;
    r.expect(202);
    assert_eq!(r.header("range"), Some("0-18"));

    // PUT without digest / with a wrong one; the session survives.
    let put_path = |digest: &str| {
        let sep = if location.contains('?') { '&' } else { '?' };
        format!("{location}{sep}digest={digest}")
    };
    s.send(Method::PUT, &location, &[], "")
        .await
        .expect_error(400, "DIGEST_INVALID");
    s.send(Method::PUT, &put_path("sha256:nothex"), &[], "")
        .await
        .expect_error(400, "DIGEST_INVALID");
    s.send(Method::PUT, &put_path(&sha256(b"other")), &[], "")
        .await
        .expect_error(400, "DIGEST_INVALID");
    // Final chunk in the PUT.
    let content = b"chunk-one|chunk-two\n";
    let digest = sha256(content);
    let r = s
        .send(
            Method::PUT,
            &put_path(&digest.replace(':', "%3A")),
            &[("content-range", b"19-19")],
            "\n",
        )
        .await;
    r.expect(201);
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(r.location_path(), format!("/v2/up/repo/blobs/{digest}"));
    assert_eq!(
        s.get(&format!("/v2/up/repo/blobs/{digest}")).await.body.as_ref(),
        content
    );
    // The session is gone.
    s.get(&location).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    s.send(Method::PATCH, &location, &[], "x")
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");

    // POST then PUT with the whole body.
    let r = s.send(Method::POST, "/v2/up/repo/blobs/uploads", &[], "").await;
    r.expect(202);
    let path = format!("{}&digest={}", r.location_path(), sha256(b"post-then-put"));
    s.send(Method::PUT, &path, &[], "post-then-put").await.expect(201);

    // Cancel.
    let r = s.send(Method::POST, "/v2/up/repo/blobs/uploads/", &[], "").await;
    let location = r.location_path();
    s.delete(&location).await.expect(204);
    s.delete(&location).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    s.get(&location).await.expect_error(404, "BLOB_UPLOAD_UNKNOWN");

    // A session belongs to its repository.
    let r = s.send(Method::POST, "/v2/up/repo/blobs/uploads/", &[], "").await;
    let uuid = r.header("docker-upload-uuid").expect("uuid").to_owned();
    s.get(&format!("/v2/up/other/blobs/uploads/{uuid}"))
        .await
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    s.send(
        Method::PATCH,
        &format!("/v2/up/other/blobs/uploads/{uuid}"),
        &[],
        "x",
    )
    .await
    .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    // Unknown and malformed ids.
    for id in [
        "00000000-0000-4000-8000-000000000000",
        "not-a-uuid",
        "..",
        "A0000000-0000-4000-8000-000000000000",
    ] {
        s.get(&format!("/v2/up/repo/blobs/uploads/{id}"))
            .await
            .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    }

    s.get("/v2/up/repo/blobs/uploads/%2e%2e%2f%2e%2e")
        .await
        .expect(404);

    // Monolithic POST with a wrong digest creates nothing.
    s.send(
        Method::POST,
        &format!("/v2/up/repo/blobs/uploads/?digest={}", sha256(b"x")),
        &[],
        "y",
    )
    .await
    .expect_error(400, "DIGEST_INVALID");
    s.head(&format!("/v2/up/repo/blobs/{}", sha256(b"x")))
        .await
        .expect(404);
    s.send(Method::POST, "/v2/up/repo/blobs/uploads/?digest=bogus", &[], "y")
        .await
        .expect_error(400, "DIGEST_INVALID");
    // Empty blob.
    let empty = sha256(b"");
    s.send(
        Method::POST,
        &format!("/v2/up/repo/blobs/uploads/?digest={empty}"),
        &[],
        "",
    )
    .await
    .expect(201);
    let r = s.get(&format!("/v2/up/repo/blobs/{empty}")).await;
    r.expect(200);
    assert!(r.body.is_empty());
    s.send(
        Method::GET,
        &format!("/v2/up/repo/blobs/{empty}"),
        &[("range", b"bytes=0-0")],
        "",
    )
    .await
    .expect_error(416, "RANGE_INVALID");
}

async fn mounts(s: Server) {
    let digest = s.push_blob("src/repo", b"mount me").await;
    let r = s
        .send(
            Method::POST,
            &format!("/v2/dst/repo/blobs/uploads/?mount={digest}&from=src/repo"),
            &[],
            "",
        )
        .await;
    r.expect(201);
    assert_eq!(r.location_path(), format!("/v2/dst/repo/blobs/{digest}"));
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(
        s.get(&format!("/v2/dst/repo/blobs/{digest}")).await.body.as_ref(),
        b"mount me"
    );
    // Percent-encoded parameters, as skopeo sends them.
    let encoded = format!(
        "/v2/dst2/repo/blobs/uploads/?from=src%2Frepo&mount={}",
        digest.replace(':', "%3A")
    );
    s.send(Method::POST, &encoded, &[], "").await.expect(201);
    // Source lacks the blob, or is not a valid name, or is absent: a new session.
    for query in [
        format!("mount={digest}&from=no/such-repo"),
        format!("mount={digest}&from=INVALID"),
        format!("mount={digest}"),
    ] {
        let r = s
            .send(
                Method::POST,
                &format!("/v2/dst3/repo/blobs/uploads/?{query}"),
                &[],
                "",
            )
            .await;
        r.expect(202);
        assert!(r.header("docker-upload-uuid").is_some());
    }
    s.head(&format!("/v2/dst3/repo/blobs/{digest}")).await.expect(404);
    s.send(
        Method::POST,
        "/v2/dst/repo/blobs/uploads/?mount=sha256:zz&from=src/repo",
        &[],
        "",
    )
    .await
    .expect_error(400, "DIGEST_INVALID");
}
