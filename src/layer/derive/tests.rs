use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, Response};
use http_body_util::Empty;

use super::*;
use crate::dispatcher::Dispatcher;
use crate::layer::manifest::MAX_MANIFEST;
use crate::layer::NotificationLayer;

fn d(n: u32) -> String {
    format!("sha256:{n:064x}")
}

fn layer_with_lookup() -> NotificationLayer {
    let never = tower::service_fn(|_req: Request<Empty<Bytes>>| async {
        Err::<Response<Empty<Bytes>>, _>(std::io::Error::other("no lookup in this test"))
    });
    NotificationLayer::new(Dispatcher::disabled())
        .include_references(true)
        .lookup(never)
}

#[test]
fn references_from_a_pushed_manifest_and_then_from_memory() {
    let layer = layer_with_lookup();
    let shared = &layer.shared;
    let manifest = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{}","size":1}},"layers":[]}}"#,
        d(9)
    );
    let digest = d(42);
    let request = |method: &str, reference: &str| {
        let req = Request::builder()
            .method(method)
            .uri(format!("/v2/a/b/manifests/{reference}"))
            .header(CONTENT_TYPE, "application/vnd.oci.image.manifest.v1+json")
            .header(CONTENT_LENGTH, manifest.len())
            .body(())
            .unwrap();
        pending(&req, shared).unwrap()
    };
    let mut response = HeaderMap::new();
    response.insert("docker-content-digest", digest.parse().unwrap());
    response.insert(
        CONTENT_TYPE,
        "application/vnd.oci.image.manifest.v1+json".parse().unwrap(),
    );
    response.insert(CONTENT_LENGTH, manifest.len().into());

    // A HEAD of a manifest never seen: only a lookup can tell.
    let (_, missing) = request("HEAD", "t").events(StatusCode::OK, &response, None, shared);
    assert!(missing.manifest && !missing.blob_size);

    // A PUT whose body did not pass whole (or is no manifest): a lookup, or the body.
    let mut push = request("PUT", "t");
    let tap = crate::layer::request_body::Tap::new(MAX_MANIFEST);
    tap.data(b"{not a manifest", 15);
    tap.end();
    push.body_tap = Some(tap);
    let (_, missing) = push.events(StatusCode::CREATED, &response, None, shared);
    assert!(missing.manifest);

    // A PUT whose body passed: its references, and no lookup.
    let mut push = request("PUT", "t");
    let tap = crate::layer::request_body::Tap::new(MAX_MANIFEST);
    tap.data(manifest.as_bytes(), manifest.len());
    tap.end();
    push.body_tap = Some(tap);
    let (events, missing) = push.events(StatusCode::CREATED, &response, None, shared);
    assert!(!missing.any(), "{missing:?}");
    assert_eq!(events[0].target.references[0].digest, d(9));

    // Remembered: a HEAD (by tag or digest) and a GET need neither body nor lookup.
    for (method, reference) in [("HEAD", "t"), ("HEAD", digest.as_str()), ("GET", "t")] {
        let (events, missing) = request(method, reference).events(StatusCode::OK, &response, None, shared);
        assert!(!missing.any(), "{method} {reference}: {missing:?}");
        assert_eq!(events[0].target.references[0].digest, d(9));
    }

    // A GET of another manifest: its body (as it passes) or a lookup.
    response.insert("docker-content-digest", d(43).parse().unwrap());
    let (_, missing) = request("GET", "u").events(StatusCode::OK, &response, None, shared);
    assert!(missing.manifest);
}

/// Upload sessions are remembered from `202` answers only: a `POST` starts one (with the
/// bytes its `Range` reports, else none), a `PATCH` adds its chunk; a monolithic `201`
/// or a refused `PATCH` changes nothing.
#[test]
fn uploads_are_remembered_from_accepted_answers_only() {
    use crate::layer::memo::Memo;
    let layer = layer_with_lookup();
    let shared = &layer.shared;
    let session = "/v2/a/blobs/uploads/s1";
    let answer = |range: Option<&str>| {
        let mut h = HeaderMap::new();
        h.insert(http::header::LOCATION, session.parse().unwrap());
        if let Some(range) = range {
            h.insert(http::header::RANGE, range.parse().unwrap());
        }
        h
    };
    let request = |method: &str, path: &str, len: usize| {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(CONTENT_LENGTH, len)
            .body(())
            .unwrap();
        pending(&req, shared).unwrap()
    };
    let post = || request("POST", "/v2/a/blobs/uploads/", 10);
    let patch = || request("PATCH", session, 5);

    for (status, range, start) in [
        (StatusCode::ACCEPTED, Some("0-9"), Some(10)),
        (StatusCode::ACCEPTED, Some("0-0"), Some(0)),
        (StatusCode::ACCEPTED, None, Some(0)),
        (StatusCode::CREATED, Some("0-9"), None),
    ] {
        let memo = Memo::default();
        post().remember(&memo, status, &answer(range));
        assert_eq!(memo.upload_finished(session), start, "{status} {range:?}");
    }

    let memo = Memo::default();
    post().remember(&memo, StatusCode::ACCEPTED, &answer(Some("0-0")));
    patch().remember(&memo, StatusCode::ACCEPTED, &HeaderMap::new());
    // Refused: the chunk is not in the session.
    patch().remember(&memo, StatusCode::BAD_REQUEST, &HeaderMap::new());
    patch().remember(&memo, StatusCode::RANGE_NOT_SATISFIABLE, &HeaderMap::new());
    assert_eq!(memo.upload_finished(session), Some(5));
}

fn get(
    path: &str,
    method: &str,
    shared: &crate::layer::shared::Shared,
    content_type: Option<&str>,
) -> Pending {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = content_type {
        req = req.header(CONTENT_TYPE, t).header(CONTENT_LENGTH, 7);
    }
    *pending(&req.body(()).unwrap(), shared).unwrap()
}

/// A blob pull's size, with no hint and nothing remembered, from the answer itself:
/// `Content-Length` of a 200, the complete length of a 206's `Content-Range`, and the
/// `bytes */<size>` of a 416 (whose `Content-Length` is that of its error text).
#[test]
fn blob_pull_sizes_from_the_answer() {
    use http::header::CONTENT_RANGE;
    let layer = NotificationLayer::new(Dispatcher::disabled());
    let shared = &layer.shared;
    for (n, (status, content_range, length)) in [
        (StatusCode::OK, None, "5"),
        (StatusCode::PARTIAL_CONTENT, Some("bytes 0-1/5"), "2"),
        (StatusCode::RANGE_NOT_SATISFIABLE, Some("bytes */5"), "60"),
    ]
    .into_iter()
    .enumerate()
    {
        let digest = d(100 + n as u32);
        let mut response = HeaderMap::new();
        response.insert(CONTENT_LENGTH, length.parse().unwrap());
        if let Some(range) = content_range {
            response.insert(CONTENT_RANGE, range.parse().unwrap());
        }
        let (events, missing) = get(&format!("/v2/a/blobs/{digest}"), "GET", shared, None)
            .events(status, &response, None, shared);
        assert_eq!(events[0].target.descriptor.size, 5, "{status}");
        assert!(!missing.blob_size, "{status}");
    }
}

/// A manifest push without a hint takes the media type the client sent; an answer that
/// tells the size but no media type still needs the manifest (a lookup).
#[test]
fn manifest_media_type_from_the_push_and_what_an_answer_lacks() {
    let layer = NotificationLayer::new(Dispatcher::disabled());
    let shared = &layer.shared;
    let oci = "application/vnd.oci.image.manifest.v1+json";
    let mut response = HeaderMap::new();
    response.insert("docker-content-digest", d(7).parse().unwrap());
    // The 201 of a push carries no Content-Type.
    let (events, missing) = get("/v2/a/manifests/t", "PUT", shared, Some(oci)).events(
        StatusCode::CREATED,
        &response,
        None,
        shared,
    );
    assert_eq!(events[0].target.descriptor.media_type, oci);
    assert_eq!(events[0].target.descriptor.size, 7);
    assert!(!missing.manifest, "{missing:?}");
    // A HEAD answered with a length and no Content-Type.
    response.insert(CONTENT_LENGTH, 7.into());
    let (_, missing) =
        get("/v2/a/manifests/t", "HEAD", shared, None).events(StatusCode::OK, &response, None, shared);
    assert!(missing.manifest, "the media type is missing");
}

/// A monolithic push's size: the bytes that passed when some did, else the request's
/// `Content-Length` (a body the registry never read counts 0 bytes).
#[test]
fn monolithic_push_size_from_the_bytes_or_the_header() {
    use crate::layer::request_body::Tap;
    let layer = NotificationLayer::new(Dispatcher::disabled());
    let shared = &layer.shared;
    let digest = d(77);
    let mut response = HeaderMap::new();
    response.insert("docker-content-digest", digest.parse().unwrap());
    let push = |length: Option<usize>, passed: usize| {
        let mut req = Request::builder()
            .method("POST")
            .uri(format!("/v2/a/blobs/uploads/?digest={digest}"));
        if let Some(n) = length {
            req = req.header(CONTENT_LENGTH, n);
        } else {
            req = req.header("transfer-encoding", "chunked");
        }
        let mut p = pending(&req.body(()).unwrap(), shared).unwrap();
        let tap = Tap::new(64);
        tap.data(&vec![b'x'; passed], passed);
        tap.end();
        p.body_tap = Some(tap);
        let (events, _) = p.events(StatusCode::CREATED, &response, None, shared);
        events[0].target.descriptor.size
    };
    assert_eq!(push(None, 10), 10, "counted");
    assert_eq!(push(Some(10), 10), 10);
    assert_eq!(push(Some(10), 0), 10, "the header, when nothing was counted");
}

/// A request that brings no id gets one with its events, a UUIDv7 that sorts before theirs;
/// every event of the request has the same (a delete with its tags), and an id the request
/// brings is kept as it is.
#[test]
fn request_ids_are_made_with_the_events() {
    let layer = NotificationLayer::new(Dispatcher::disabled());
    let shared = &layer.shared;
    let request = |method: &str, reference: &str, id: Option<&str>| {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("/v2/a/b/manifests/{reference}"));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        pending(&req.body(()).unwrap(), shared).unwrap()
    };
    let mut pull = HeaderMap::new();
    pull.insert("docker-content-digest", d(1).parse().unwrap());
    pull.insert(
        CONTENT_TYPE,
        "application/vnd.oci.image.manifest.v1+json".parse().unwrap(),
    );
    pull.insert(CONTENT_LENGTH, 10.into());
    let v7 = |id: &str| uuid::Uuid::parse_str(id).map(|u| u.get_version_num()).ok();

    let (events, _) = request("GET", "t", None).events(StatusCode::OK, &pull, None, shared);
    let e = &events[0];
    assert_eq!(v7(&e.request.id), Some(7));
    assert!(
        e.request.id.as_str() < e.id.as_str(),
        "{} !< {}",
        e.request.id,
        e.id
    );

    let (events, _) = request("GET", "t", Some("mine")).events(StatusCode::OK, &pull, None, shared);
    assert_eq!(events[0].request.id, "mine");

    let hint = crate::EventHint {
        deleted_tags: Some(vec!["x".into(), "y".into()]),
        ..Default::default()
    };
    let (events, _) =
        request("DELETE", &d(1), None).events(StatusCode::ACCEPTED, &HeaderMap::new(), Some(&hint), shared);
    assert_eq!(events.len(), 3);
    assert_eq!(v7(&events[0].request.id), Some(7));
    for e in events.iter() {
        assert_eq!(e.request.id, events[0].request.id);
        assert!(e.request.id.as_str() < e.id.as_str());
    }
}
