//! The example registry over real HTTP on 127.0.0.1, on both storage backends: what it refuses
//! (bad paths, names and references; bad or contradictory headers) and how.

mod support;

use bytes::Bytes;
use http::{HeaderValue, Method, Request};
use http_body_util::Full;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

both_backends!(bad_paths_and_names, bad_headers,);

async fn bad_paths_and_names(s: Server) {
    let digest = sha256(b"x");
    let long_name = "a".repeat(256);
    let cases: Vec<(Method, String, u16, &str)> = vec![
        (Method::GET, "/v2/UPPER/tags/list".into(), 400, "NAME_INVALID"),
        (Method::GET, "/v2/a//b/tags/list".into(), 400, "NAME_INVALID"),
        (Method::GET, "/v2/a/../b/tags/list".into(), 400, "NAME_INVALID"),
        (
            Method::GET,
            "/v2/%2e%2e/etc/manifests/passwd".into(),
            400,
            "NAME_INVALID",
        ),
        (Method::GET, "/v2/a___b/tags/list".into(), 400, "NAME_INVALID"),
        (Method::GET, "/v2/-a/tags/list".into(), 400, "NAME_INVALID"),
        (Method::GET, "/v2/a%20b/tags/list".into(), 400, "NAME_INVALID"),
        (
            Method::GET,
            format!("/v2/{long_name}/tags/list"),
            400,
            "NAME_INVALID",
        ),
        (Method::GET, "/v2/%ff%fe/tags/list".into(), 404, "UNSUPPORTED"),
        (Method::GET, "/v2/repo".into(), 404, "UNSUPPORTED"),
        (Method::GET, "/v2/repo/unknown/thing".into(), 404, "UNSUPPORTED"),
        (Method::GET, "/v2/tags/list".into(), 404, "UNSUPPORTED"),
        (Method::GET, "/v2/repo/manifests/".into(), 400, "TAG_INVALID"),
        (
            Method::GET,
            "/v2/repo/manifests/sha256:abc".into(),
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::GET,
            "/v2/repo/manifests/sha256:".into(),
            400,
            "DIGEST_INVALID",
        ),
        (Method::GET, "/v2/repo/manifests/:".into(), 400, "DIGEST_INVALID"),
        (
            Method::GET,
            format!("/v2/repo/manifests/{}", digest.to_uppercase()),
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::GET,
            "/v2/repo/manifests/sha1:0000000000000000000000000000000000000000".into(),
            400,
            "DIGEST_INVALID",
        ),
        (Method::GET, "/v2/repo/blobs/latest".into(), 400, "DIGEST_INVALID"),
        (Method::GET, "/v2/repo/blobs/".into(), 400, "DIGEST_INVALID"),
        (Method::HEAD, "/v2/repo/blobs/sha256%3Azz".into(), 400, ""),
        (Method::PUT, "/v2/repo/blobs/uploads/".into(), 405, "UNSUPPORTED"),
        (
            Method::POST,
            format!("/v2/repo/blobs/{digest}"),
            405,
            "UNSUPPORTED",
        ),
        (
            Method::OPTIONS,
            "/v2/repo/manifests/latest".into(),
            405,
            "UNSUPPORTED",
        ),
        (Method::POST, "/v2/_catalog".into(), 405, "UNSUPPORTED"),
        (
            Method::GET,
            "/v2/repo/referrers/notadigest".into(),
            400,
            "DIGEST_INVALID",
        ),
        (
            Method::PATCH,
            "/v2/repo/blobs/uploads/%00".into(),
            404,
            "BLOB_UPLOAD_UNKNOWN",
        ),
    ];
    for (method, path, status, code) in cases {
        let r = s.send(method.clone(), &path, &[], "").await;
        assert_eq!(
            r.status.as_u16(),
            status,
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            r.header("docker-distribution-api-version"),
            Some("registry/2.0"),
            "{path}"
        );
        if method != Method::HEAD {
            assert_eq!(r.code(), code, "{method} {path}");
        }
    }
    // Longest valid name and tag.
    let name = "a".repeat(255);
    let manifest = image_manifest(&s, &name, "long", OCI_MANIFEST).await;
    s.put_manifest(&name, &"t".repeat(128), OCI_MANIFEST, &manifest)
        .await
        .expect(201);
}

async fn bad_headers(s: Server) {
    let digest = s.push_blob("h/repo", b"header tests").await;
    let blob = format!("/v2/h/repo/blobs/{digest}");
    // Non-UTF-8 header values.
    s.send(Method::GET, &blob, &[("range", b"bytes=\xff-\xfe")], "")
        .await
        .expect_error(416, "RANGE_INVALID");
    let r = s.send(Method::POST, "/v2/h/repo/blobs/uploads/", &[], "").await;
    let location = r.location_path();
    s.send(Method::PATCH, &location, &[("content-range", b"\xff")], "x")
        .await
        .expect_error(400, "BLOB_UPLOAD_INVALID");
    let manifest = image_manifest(&s, "h/repo", "h", OCI_MANIFEST).await;
    s.send(
        Method::PUT,
        "/v2/h/repo/manifests/t",
        &[("content-type", b"application/\xff")],
        manifest.clone(),
    )
    .await
    .expect_error(400, "MANIFEST_INVALID");
    s.send(
        Method::GET,
        "/v2/h/repo/manifests/t",
        &[("if-none-match", b"\xff")],
        "",
    )
    .await
    .expect(404);
    // A bad Host header: Location falls back to a path.
    let r = s
        .send(
            Method::POST,
            "/v2/h/repo/blobs/uploads/",
            &[("host", b"bad host\xff")],
            "",
        )
        .await;
    r.expect(202);
    assert!(r
        .header("location")
        .is_some_and(|l| l.starts_with("/v2/h/repo/blobs/uploads/")));
    // X-Forwarded-Proto is honoured.
    let r = s
        .send(
            Method::POST,
            "/v2/h/repo/blobs/uploads/",
            &[("x-forwarded-proto", b"https")],
            "",
        )
        .await;
    assert!(r.header("location").is_some_and(|l| l.starts_with("https://")));
    // Large but acceptable header.
    let big = vec![b'a'; 32 * 1024];
    s.send(Method::GET, &blob, &[("x-big", &big)], "")
        .await
        .expect(200);
    // Huge header: hyper refuses it (431) or drops the connection; the server survives.
    let huge = vec![b'a'; 1024 * 1024];
    let request = Request::get(format!("http://{}/v2/", s.addr))
        .header("x-huge", HeaderValue::from_bytes(&huge).expect("value"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    if let Some(response) = s.http.try_request(request).await {
        assert!(response.status.is_client_error(), "{}", response.status);
    }
    // Raw garbage on the socket.
    for raw in [
        &b"GET /v2/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"PATCH /v2/a/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
        stream.write_all(raw).await.expect("write");
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    }
    // A chunked body that breaks mid-way leaves the upload as it was.
    let r = s.send(Method::POST, "/v2/h/repo/blobs/uploads/", &[], "").await;
    let location = r.location_path();
    s.send(Method::PATCH, &location, &[], "12345").await.expect(202);
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
    let request = format!(
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\nzz\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    drop(stream);
    let r = s.get(&location).await;
    r.expect(204);
    assert_eq!(r.header("range"), Some("0-4"));
    // Still serving.
    s.get("/v2/").await.expect(200);
}
