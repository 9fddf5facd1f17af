//! The event hints of the example registry's responses (what the HTTP exchange alone does not
//! tell the notification layer), checked in-process with `tower::ServiceExt::oneshot`.

mod support;

use example_registry::oci;
use http::{Method, Request, StatusCode};
use registry_notify::EventHint;
use serde_json::json;
use support::*;
use tower::ServiceExt;

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
