//! The example registry (`examples/registry/oci`), driven over real HTTP on
//! 127.0.0.1 with hyper's client, on both storage backends, including bad
//! inputs. Hints are checked in-process with `tower::ServiceExt::oneshot`.

use example_registry::oci;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use registry_notify::EventHint;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256, Sha512};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OPTIONS: oci::RegistryOptions = oci::RegistryOptions { delete_enabled: true };

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(data)))
}

// ---------------------------------------------------------------- harness

struct Server {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    _root: Option<tempfile::TempDir>,
}

struct Resp {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The code of the first OCI error in the body.
    fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("<no OCI error body>")
            .to_owned()
    }

    #[track_caller]
    fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.header("docker-distribution-api-version"),
            Some("registry/2.0")
        );
        self
    }

    #[track_caller]
    fn expect_error(&self, status: u16, code: &str) -> &Self {
        self.expect(status);
        assert_eq!(self.code(), code, "body: {}", String::from_utf8_lossy(&self.body));
        self
    }

    /// The path (and query) of the `Location` header.
    fn location_path(&self) -> String {
        let location = self.header("location").expect("Location header");
        match location.find("://") {
            Some(i) => location[i + 3..]
                .find('/')
                .map(|j| location[i + 3 + j..].to_owned())
                .unwrap_or_default(),
            None => location.to_owned(),
        }
    }
}

async fn serve(registry: oci::Registry, root: Option<tempfile::TempDir>) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, oci::router(registry)).await });
    Server {
        addr,
        client: Client::builder(TokioExecutor::new()).build_http(),
        _root: root,
    }
}

async fn memory_server() -> Server {
    serve(oci::Registry::in_memory(OPTIONS), None).await
}

async fn fs_server() -> Server {
    let root = tempfile::tempdir().expect("tempdir");
    let registry = oci::Registry::filesystem(root.path().join("data"), OPTIONS).expect("fs registry");
    serve(registry, Some(root)).await
}

/// Runs a scenario against both backends.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $name() { super::$name(super::memory_server().await).await; })*
        }
        mod filesystem {
            $(#[tokio::test] async fn $name() { super::$name(super::fs_server().await).await; })*
        }
    };
}

impl Server {
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &[u8])],
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_bytes(value).expect("header value"));
        }
        let request = request.body(Full::new(body.into())).expect("request");
        let response = self.client.request(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    async fn head(&self, path: &str) -> Resp {
        self.send(Method::HEAD, path, &[], Bytes::new()).await
    }

    async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, &[], Bytes::new()).await
    }

    /// Monolithic `POST ?digest=` upload.
    async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        self.send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            &[("content-type", b"application/octet-stream")],
            data.to_vec(),
        )
        .await
        .expect(201);
        digest
    }

    async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> Resp {
        self.send(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("content-type", media_type.as_bytes())],
            body.to_vec(),
        )
        .await
    }

    /// Pushes config + 2 layers and an OCI manifest tagged `tag`; returns (manifest bytes, digest).
    async fn push_image(&self, repo: &str, tag: &str, seed: &str) -> (Vec<u8>, String) {
        let manifest = image_manifest(self, repo, seed, OCI_MANIFEST).await;
        self.put_manifest(repo, tag, OCI_MANIFEST, &manifest)
            .await
            .expect(201);
        let digest = sha256(&manifest);
        (manifest, digest)
    }
}

/// Pushes the blobs of an image and returns its manifest (not pushed).
async fn image_manifest(server: &Server, repo: &str, seed: &str, media_type: &str) -> Vec<u8> {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#).into_bytes();
    let layer1 = format!("layer one {seed}").into_bytes();
    let layer2 = format!("layer two {seed}").into_bytes();
    let config_type = if media_type == DOCKER_V2 {
        "application/vnd.docker.container.image.v1+json"
    } else {
        "application/vnd.oci.image.config.v1+json"
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": server.push_blob(repo, &config).await, "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": server.push_blob(repo, &layer1).await,
             "size": layer1.len(), "annotations": {"org.example": "x"}},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": server.push_blob(repo, &layer2).await,
             "size": layer2.len()},
        ],
    });
    serde_json::to_vec_pretty(&manifest).expect("json")
}

fn index_manifest(children: &[(&str, usize, &str)]) -> Vec<u8> {
    let manifests: Vec<Value> = children
        .iter()
        .map(|(digest, size, arch)| {
            json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
                   "platform": {"architecture": arch, "os": "linux"}})
        })
        .collect();
    serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}))
        .expect("json")
}

// -------------------------------------------------------------- scenarios

both_backends!(
    base_endpoint,
    push_and_pull_image,
    manifest_validation,
    chunked_uploads,
    mounts,
    deletes,
    pagination,
    bad_paths_and_names,
    bad_headers,
    referrers,
    sha512_content,
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
    if let Ok(response) = s.client.request(request).await {
        assert!(response.status().is_client_error(), "{}", response.status());
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

// ------------------------------------------------------------------ hints

async fn call(
    app: &axum::Router,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> http::Response<axum::body::Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "registry.test");
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    app.clone()
        .oneshot(request.body(axum::body::Body::from(body)).expect("request"))
        .await
        .expect("infallible")
}

fn hint(response: &http::Response<axum::body::Body>) -> EventHint {
    response
        .extensions()
        .get::<EventHint>()
        .cloned()
        .unwrap_or_else(|| panic!("no hint on {}", response.status()))
}

#[tokio::test]
async fn event_hints() {
    let app = oci::router(oci::Registry::in_memory(OPTIONS));
    let config = br#"{"architecture":"arm64","os":"linux"}"#.to_vec();
    let layer = b"the layer".to_vec();

    // Monolithic POST → size.
    let r = call(
        &app,
        Method::POST,
        &format!("/v2/h/img/blobs/uploads/?digest={}", sha256(&config)),
        None,
        config.clone(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(hint(&r).size, Some(config.len() as i64));
    assert_eq!(
        r.headers()["location"],
        format!("http://registry.test/v2/h/img/blobs/{}", sha256(&config))
    );

    // Chunked upload: no hint on POST/PATCH, size on the final PUT.
    let r = call(&app, Method::POST, "/v2/h/img/blobs/uploads/", None, Vec::new()).await;
    assert!(r.extensions().get::<EventHint>().is_none());
    let location = r.headers()["location"]
        .to_str()
        .expect("ascii")
        .trim_start_matches("http://registry.test")
        .to_owned();
    let r = call(&app, Method::PATCH, &location, None, layer[..4].to_vec()).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.extensions().get::<EventHint>().is_none());
    let r = call(
        &app,
        Method::PUT,
        &format!("{location}&digest={}", sha256(&layer)),
        None,
        layer[4..].to_vec(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(hint(&r).size, Some(layer.len() as i64));
    assert_eq!(hint(&r).digest, Some(sha256(&layer)));

    // Mount → size; failed mount → no hint.
    let r = call(
        &app,
        Method::POST,
        &format!("/v2/h/other/blobs/uploads/?mount={}&from=h/img", sha256(&layer)),
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(hint(&r).size, Some(layer.len() as i64));
    let r = call(
        &app,
        Method::POST,
        &format!("/v2/h/other/blobs/uploads/?mount={}&from=h/none", sha256(&layer)),
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.extensions().get::<EventHint>().is_none());

    // Blob HEAD → full size even for a range GET.
    let r = call(
        &app,
        Method::HEAD,
        &format!("/v2/h/img/blobs/{}", sha256(&layer)),
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(hint(&r).size, Some(layer.len() as i64));

    // Manifest PUT/GET/HEAD → media type, size, references (config first, then layers).
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len(),
                    "urls": ["https://example.com/l"], "annotations": {"a": "b"}}],
    }))
    .expect("json");
    let mdigest = sha256(&manifest);
    let check_manifest_hint = |h: EventHint| {
        assert_eq!(h.media_type.as_deref(), Some(OCI_MANIFEST));
        assert_eq!(h.size, Some(manifest.len() as i64));
        assert_eq!(h.digest.as_deref(), Some(mdigest.as_str()));
        let refs = h.references.expect("references");
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].digest, sha256(&config));
        assert_eq!(refs[0].media_type, "application/vnd.oci.image.config.v1+json");
        assert_eq!(refs[0].size, config.len() as i64);
        assert_eq!(refs[1].digest, sha256(&layer));
        assert_eq!(refs[1].urls, vec!["https://example.com/l".to_owned()]);
        assert_eq!(refs[1].annotations.get("a").map(String::as_str), Some("b"));
    };
    for tag in ["latest", "v2"] {
        let r = call(
            &app,
            Method::PUT,
            &format!("/v2/h/img/manifests/{tag}"),
            Some(OCI_MANIFEST),
            manifest.clone(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        check_manifest_hint(hint(&r));
    }
    for method in [Method::GET, Method::HEAD] {
        for reference in ["latest", mdigest.as_str()] {
            let r = call(
                &app,
                method.clone(),
                &format!("/v2/h/img/manifests/{reference}"),
                None,
                Vec::new(),
            )
            .await;
            assert_eq!(r.status(), StatusCode::OK);
            check_manifest_hint(hint(&r));
        }
    }
    // Errors carry no hint.
    let r = call(&app, Method::GET, "/v2/h/img/manifests/missing", None, Vec::new()).await;
    assert!(r.extensions().get::<EventHint>().is_none());

    // Index → children with platform.
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": mdigest, "size": manifest.len(),
                       "platform": {"architecture": "arm64", "os": "linux", "variant": "v8", "os.features": ["f"]},
                       "artifactType": "application/vnd.example"}],
    }))
    .expect("json");
    let r = call(
        &app,
        Method::PUT,
        "/v2/h/img/manifests/multi",
        Some(OCI_INDEX),
        index.clone(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let h = hint(&r);
    assert_eq!(h.media_type.as_deref(), Some(OCI_INDEX));
    let refs = h.references.expect("references");
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].digest, mdigest);
    let platform = refs[0].platform.clone().expect("platform");
    assert_eq!(platform.architecture, "arm64");
    assert_eq!(platform.os, "linux");
    assert_eq!(platform.variant, "v8");
    assert_eq!(platform.os_features, vec!["f".to_owned()]);
    assert_eq!(refs[0].artifact_type.as_deref(), Some("application/vnd.example"));

    // Delete by digest → the removed tags, sorted; by tag → no tags hint.
    let r = call(
        &app,
        Method::DELETE,
        &format!("/v2/h/img/manifests/{mdigest}"),
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        hint(&r).deleted_tags,
        Some(vec!["latest".to_owned(), "v2".to_owned()])
    );
    let r = call(
        &app,
        Method::DELETE,
        "/v2/h/img/manifests/multi",
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r
        .extensions()
        .get::<EventHint>()
        .is_none_or(|h| h.deleted_tags.is_none()));
}

// ------------------------------------------------------- filesystem store

#[tokio::test]
async fn filesystem_survives_restart() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let first = serve(
        oci::Registry::filesystem(data.clone(), OPTIONS).expect("fs"),
        None,
    )
    .await;
    let (manifest, digest) = first.push_image("fs/repo", "latest", "f").await;
    let r = first
        .send(Method::POST, "/v2/fs/repo/blobs/uploads/", &[], "")
        .await;
    let location = r.location_path();
    first
        .send(Method::PATCH, &location, &[], "part one, ")
        .await
        .expect(202);

    // A second registry over the same directory (as after a restart).
    let second = serve(
        oci::Registry::filesystem(data.clone(), OPTIONS).expect("fs"),
        None,
    )
    .await;
    let r = second.get("/v2/fs/repo/manifests/latest").await;
    r.expect(200);
    assert_eq!(r.body.as_ref(), manifest.as_slice());
    assert_eq!(
        second.get("/v2/_catalog").await.json(),
        json!({"repositories": ["fs/repo"]})
    );
    let r = second.get(&location).await;
    r.expect(204);
    assert_eq!(r.header("range"), Some("0-9"));
    let content = b"part one, part two";
    second
        .send(
            Method::PATCH,
            &location,
            &[("content-range", b"10-17")],
            "part two",
        )
        .await
        .expect(202);
    let blob_digest = sha256(content);
    second
        .send(Method::PUT, &format!("{location}&digest={blob_digest}"), &[], "")
        .await
        .expect(201);
    assert_eq!(
        second
            .get(&format!("/v2/fs/repo/blobs/{blob_digest}"))
            .await
            .body
            .as_ref(),
        content
    );

    // On-disk layout: blobs are content-addressed, no temp files or uploads left over.
    let hex = blob_digest.trim_start_matches("sha256:");
    assert!(data.join("blobs/sha256").join(&hex[..2]).join(hex).is_file());
    assert!(data.join("repositories/fs/repo/_manifests/tags/latest").is_file());
    assert_eq!(
        std::fs::read_dir(data.join("uploads")).expect("uploads").count(),
        0
    );
    assert_no_temp_files(&data);
    second
        .delete(&format!("/v2/fs/repo/manifests/{digest}"))
        .await
        .expect(202);
    assert!(!data.join("repositories/fs/repo/_manifests/tags/latest").exists());
}

fn assert_no_temp_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".tmp-"), "leftover {}", entry.path().display());
        if entry.path().is_dir() {
            assert_no_temp_files(&entry.path());
        }
    }
}

#[tokio::test]
async fn concurrent_chunks_are_serialized() {
    for s in [memory_server().await, fs_server().await] {
        let r = s.send(Method::POST, "/v2/c/repo/blobs/uploads/", &[], "").await;
        let location = r.location_path();
        // Ten clients race to write chunk 0-9 at offset 0: exactly one wins.
        let mut tasks = Vec::new();
        let s = std::sync::Arc::new(s);
        for i in 0..10u8 {
            let s = s.clone();
            let location = location.clone();
            tasks.push(tokio::spawn(async move {
                s.send(
                    Method::PATCH,
                    &location,
                    &[("content-range", b"0-9")],
                    vec![b'0' + i; 10],
                )
                .await
                .status
            }));
        }
        let mut accepted = 0;
        for task in tasks {
            let status = task.await.expect("join");
            assert!(
                status == StatusCode::ACCEPTED || status == StatusCode::RANGE_NOT_SATISFIABLE,
                "{status}"
            );
            accepted += usize::from(status == StatusCode::ACCEPTED);
        }
        assert_eq!(accepted, 1);
        assert_eq!(s.get(&location).await.header("range"), Some("0-9"));
    }
}
