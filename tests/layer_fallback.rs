//! Without response hints, the layer asks the registry itself (the lookup
//! fallback) for the fields the HTTP exchange lacks.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::response::Response;
use bytes::Bytes;
use http::{Request, StatusCode};
use registry_notify::dispatcher::Dispatcher;
use registry_notify::layer::RequestBody;
use registry_notify::{Action, NotificationLayer};
use support::example::{hintless, start_with};
use support::{sha256, sinks::Probe, Http};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

async fn start(with_lookup: bool) -> (Http, Probe) {
    let registry = hintless();
    let lookup = registry.clone();
    start_with(registry, |layer| {
        let layer = layer.include_references(true);
        if with_lookup {
            layer.lookup(lookup)
        } else {
            layer.wrapped_lookups(false)
        }
    })
    .await
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

/// A registry that stores every blob under its sha256 digest, whatever algorithm the client
/// named, and says so in `Docker-Content-Digest`, as Distribution 2.8 and 3.0 do: a commit
/// of `?digest=sha512:…` answers `201` with the sha256 digest, a `HEAD` of the sha512 digest
/// answers with the sha256 one; a mount answers with the digest it was asked for.
#[derive(Clone, Default)]
struct Canonical {
    blobs: Arc<Mutex<HashMap<String, Bytes>>>,
    uploads: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    /// Every request it received: `METHOD path` (lookups included).
    seen: Arc<Mutex<Vec<String>>>,
}

fn sha512(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

impl Canonical {
    /// The sha256 digest of a blob named by either digest.
    fn canonical(&self, digest: &str) -> Option<String> {
        let blobs = self.blobs.lock().unwrap();
        if blobs.contains_key(digest) {
            return Some(digest.to_string());
        }
        blobs
            .iter()
            .find(|(_, data)| sha512(data) == digest)
            .map(|(d, _)| d.clone())
    }

    fn store(&self, data: Vec<u8>, requested: &str) -> Option<String> {
        let d = sha256(&data);
        if requested != d && requested != sha512(&data) {
            return None;
        }
        self.blobs.lock().unwrap().insert(d.clone(), Bytes::from(data));
        Some(d)
    }

    async fn answer(self, req: Request<axum::body::Body>) -> Response {
        use axum::response::IntoResponse;
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or("").to_string();
        self.seen.lock().unwrap().push(format!("{} {path}", parts.method));
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
        let param = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_owned)
        };
        let (name, rest) = path
            .strip_prefix("/v2/")
            .and_then(|p| p.split_once("/blobs/"))
            .unwrap_or(("", ""));
        let created = |d: &str| {
            (
                StatusCode::CREATED,
                [
                    ("docker-content-digest", d.to_string()),
                    ("location", format!("/v2/{name}/blobs/{d}")),
                ],
            )
                .into_response()
        };
        match (parts.method.as_str(), rest) {
            ("POST", "uploads/") => {
                if let (Some(m), Some(_)) = (param("mount"), param("from")) {
                    if self.canonical(&m).is_some() {
                        return created(&m);
                    }
                }
                if let Some(d) = param("digest") {
                    return match self.store(body.to_vec(), &d) {
                        Some(stored) => created(&stored),
                        None => StatusCode::BAD_REQUEST.into_response(),
                    };
                }
                self.uploads.lock().unwrap().insert("1".into(), Vec::new());
                (
                    StatusCode::ACCEPTED,
                    [
                        ("location", format!("/v2/{name}/blobs/uploads/1")),
                        ("range", "0-0".into()),
                    ],
                )
                    .into_response()
            }
            ("PATCH", "uploads/1") => {
                let mut uploads = self.uploads.lock().unwrap();
                let data = uploads.entry("1".into()).or_default();
                data.extend_from_slice(&body);
                let range = format!("0-{}", data.len().saturating_sub(1));
                (
                    StatusCode::ACCEPTED,
                    [
                        ("location", format!("/v2/{name}/blobs/uploads/1")),
                        ("range", range),
                    ],
                )
                    .into_response()
            }
            ("GET", "uploads/1") => {
                let n = self.uploads.lock().unwrap().get("1").map_or(0, Vec::len);
                (
                    StatusCode::NO_CONTENT,
                    [("range", format!("0-{}", n.saturating_sub(1)))],
                )
                    .into_response()
            }
            ("PUT", "uploads/1") => {
                let mut data = self.uploads.lock().unwrap().remove("1").unwrap_or_default();
                data.extend_from_slice(&body);
                match self.store(data, &param("digest").unwrap_or_default()) {
                    Some(stored) => created(&stored),
                    None => StatusCode::BAD_REQUEST.into_response(),
                }
            }
            ("GET" | "HEAD", d) => {
                let Some(c) = self.canonical(d) else {
                    return StatusCode::NOT_FOUND.into_response();
                };
                let data = self.blobs.lock().unwrap()[&c].clone();
                let headers = [
                    ("docker-content-digest", c),
                    ("content-length", data.len().to_string()),
                ];
                (StatusCode::OK, headers, data).into_response()
            }
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }
}

/// Events name the digest the registry reports (`Docker-Content-Digest`), not the one the
/// client asked for, and sizes belong to the digest named.
#[tokio::test]
async fn digests_come_from_the_response_not_the_request() {
    let registry = Canonical::default();
    for with_lookup in [false, true] {
        let probe = Probe::default();
        let r = registry.clone();
        let svc = tower::service_fn(move |req: Request<axum::body::Body>| {
            let r = r.clone();
            async move { Ok::<_, std::convert::Infallible>(r.answer(req).await) }
        });
        let mut layer = NotificationLayer::new(Dispatcher::new(probe.sink()));
        layer = if with_lookup {
            layer.lookup(tower::ServiceExt::map_request(
                svc.clone(),
                |r: Request<http_body_util::Empty<Bytes>>| r.map(axum::body::Body::new),
            ))
        } else {
            layer.wrapped_lookups(false)
        };
        let inner = tower::ServiceExt::map_request(svc, |r: Request<RequestBody<hyper::body::Incoming>>| {
            r.map(axum::body::Body::new)
        });
        let c = Http::new(support::serve(tower::Layer::layer(&layer, inner)).await);
        let repo = if with_lookup { "c/lookup" } else { "c/plain" };

        // Chunked upload committed with a sha512 digest.
        let data = format!("chunked blob of {repo}\n");
        let (d256, d512) = (sha256(data.as_bytes()), sha512(data.as_bytes()));
        let loc = c.start_upload(repo).await;
        let r = c.send("PATCH", &loc, &[], data.clone()).await;
        assert_eq!(r.status, 202);
        let r = c.send("PUT", &support::with_digest(&loc, &d512), &[], "").await;
        assert_eq!(
            (r.status, r.header("docker-content-digest")),
            (StatusCode::CREATED, Some(d256.as_str()))
        );
        let ev = probe.wait_take(1).await;
        assert_eq!(ev[0].target.descriptor.digest, d256, "lookup {with_lookup}");
        assert!(
            ev[0].target.url.ends_with(&format!("/blobs/{d256}")),
            "{}",
            ev[0].target.url
        );
        // The chunk passed through the layer: its size is known, lookup or not.
        let size = i64::try_from(data.len()).unwrap();
        assert_eq!(ev[0].target.descriptor.size, size, "lookup {with_lookup}");

        // Monolithic upload with a sha512 digest.
        let mono = format!("monolithic blob of {repo}\n");
        let (m256, m512) = (sha256(mono.as_bytes()), sha512(mono.as_bytes()));
        let path = format!("/v2/{repo}/blobs/uploads/?digest={m512}");
        assert_eq!(c.send("POST", &path, &[], mono.clone()).await.status, 201);
        let ev = probe.wait_take(1).await;
        assert_eq!(ev[0].target.descriptor.digest, m256);
        assert_eq!(ev[0].target.descriptor.size, i64::try_from(mono.len()).unwrap());

        // Reads by the sha512 digest report the sha256 one, as Distribution's events do.
        let r = c.send("HEAD", &format!("/v2/{repo}/blobs/{d512}"), &[], "").await;
        assert_eq!(r.status, 200);
        let ev = probe.wait_take(1).await;
        assert_eq!(
            (
                ev[0].target.descriptor.digest.as_str(),
                ev[0].target.descriptor.size
            ),
            (d256.as_str(), size)
        );

        // A mount answers with the digest asked (Distribution's event names it too); its size
        // is the one of the bytes committed with that digest (the registry verified them),
        // remembered under it: no lookup, which could come after the blob is gone.
        let path = format!("/v2/{repo}-m/blobs/uploads/?mount={d512}&from={repo}");
        let r = c.send("POST", &path, &[], "").await;
        assert_eq!(r.status, 201);
        let ev = probe.wait_take(1).await;
        assert_eq!(ev[0].target.descriptor.digest, d512);
        assert_eq!(ev[0].target.descriptor.size, size, "lookup {with_lookup}");
        assert!(probe.events().is_empty());
    }
    // HEADs by the sha512 digest: the client's own two, no lookup of the mount's size.
    let seen = registry.seen.lock().unwrap().clone();
    let head_512 = seen
        .iter()
        .filter(|r| r.starts_with("HEAD") && r.contains("sha512:"))
        .count();
    assert_eq!(head_512, 2, "{seen:#?}");
}

/// With `includereferences`, the references of a manifest pushed through the layer (its
/// body read as it passes) or looked up once are remembered by digest: a `HEAD`, which
/// carries no body, then costs no lookup. Only a `HEAD` of a manifest never seen asks.
#[tokio::test]
async fn references_of_a_manifest_seen_once_need_no_lookup() {
    let probe = Probe::default();
    let registry = hintless();
    let lookups = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = lookups.clone();
    let lookup = tower::ServiceExt::map_request(registry.clone(), move |r: Request<_>| {
        seen.lock()
            .unwrap()
            .push(format!("{} {}", r.method(), r.uri().path()));
        r
    });
    let layer = NotificationLayer::new(Dispatcher::new(probe.sink()))
        .include_references(true)
        .lookup(lookup);
    let c = Http::new(support::serve_router(registry.clone().layer(layer)).await);
    let direct = Http::new(support::serve_router(registry).await);

    let config = c
        .push_blob("lib/r", br#"{"architecture":"amd64","os":"linux"}"#)
        .await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":37}},"layers":[]}}"#
    );
    let digest = sha256(manifest.as_bytes());
    probe.wait_take(1).await;
    lookups.lock().unwrap().clear();
    let count = |what: &str| {
        let n = lookups.lock().unwrap().len();
        lookups.lock().unwrap().clear();
        eprintln!("{what}: {n} lookup(s)");
        n
    };

    c.put_manifest("lib/r", "t", OCI_MANIFEST, manifest.as_bytes())
        .await;
    let ev = probe.wait_take(1).await;
    assert_eq!(ev[0].target.references[0].digest, config);
    assert_eq!(count("PUT of a new manifest"), 0);

    let accept = [("accept", OCI_MANIFEST)];
    for (method, reference) in [
        ("GET", "t"),
        ("HEAD", "t"),
        ("HEAD", digest.as_str()),
        ("GET", digest.as_str()),
    ] {
        let path = format!("/v2/lib/r/manifests/{reference}");
        assert_eq!(c.send(method, &path, &accept, "").await.status, 200);
        let ev = probe.wait_take(1).await;
        assert_eq!(ev[0].target.references[0].digest, config, "{method} {reference}");
        assert_eq!(
            count(&format!("{method} of a manifest seen")),
            0,
            "{method} {reference}"
        );
    }

    // Pushed behind the layer's back: a HEAD must ask.
    let other = manifest.replace("\"layers\":[]", "\"layers\":[],\"annotations\":{\"x\":\"y\"}");
    direct
        .put_manifest("lib/r", "u", OCI_MANIFEST, other.as_bytes())
        .await;
    assert_eq!(
        c.send("HEAD", "/v2/lib/r/manifests/u", &accept, "").await.status,
        200
    );
    let ev = probe.wait_take(1).await;
    assert_eq!(ev[0].target.references.len(), 1);
    assert_eq!(count("HEAD of a manifest never seen"), 1);
    // … once.
    assert_eq!(
        c.send("HEAD", "/v2/lib/r/manifests/u", &accept, "").await.status,
        200
    );
    probe.wait_take(1).await;
    assert_eq!(count("HEAD of it again"), 0);

    // A GET of a manifest never seen reads its body as it passes: no lookup.
    let third = manifest.replace("\"layers\":[]", "\"layers\":[],\"annotations\":{\"x\":\"z\"}");
    direct
        .put_manifest("lib/r", "v", OCI_MANIFEST, third.as_bytes())
        .await;
    assert_eq!(
        c.send("GET", "/v2/lib/r/manifests/v", &accept, "").await.status,
        200
    );
    let ev = probe.wait_take(1).await;
    assert_eq!(ev[0].target.references.len(), 1);
    assert_eq!(count("GET of a manifest never seen"), 0);
}
