//! The fallback for fields the HTTP exchange lacks: ask the registry itself.
//!
//! When a response carries no [`EventHint`](crate::EventHint), the layer can
//! send its own requests to a *lookup service* — normally a clone of the
//! wrapped registry service, without the layer, or a client of the upstream
//! registry in a proxy. Lookups never delay a response, except the tag scan
//! before a delete by digest, which must see the tags before they are gone, and
//! the status of an upload session before its final `PUT` commits it.
//!
//! | missing field | request |
//! |---|---|
//! | bytes an upload session received, before its final `PUT` is forwarded | `GET` of the session (its status) → `Range` |
//! | blob `size` (chunked upload, mount, redirected pull) | `HEAD /v2/<name>/blobs/<digest>` → `Content-Length` |
//! | manifest `mediaType`, `size`, `references` | `GET /v2/<name>/manifests/<digest>` |
//! | tags removed by `DELETE /v2/<name>/manifests/<digest>` | `GET /v2/<name>/tags/list`, then `HEAD …/manifests/<tag>` per tag |
//!
//! Lookups carry the original request's `Host` and `Authorization` headers.
//!
//! Blob sizes seen before are remembered by digest (see `memo.rs`), so the
//! size lookups above are sent only for what the layer has not seen pass by.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Empty, Limited};
use tower::{Service, ServiceExt};

use super::derive::{media_type_of, parse_size, Missing, Pending};
use crate::event::{Descriptor, Event};

/// Largest lookup response body read (manifests, tag lists).
const MAX_BODY: usize = 4 << 20;
/// Most tags examined when looking for the tags of a deleted manifest.
const MAX_TAGS: usize = 10_000;

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v1+prettyjws, \
application/vnd.docker.distribution.manifest.v1+json, application/json";

pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

type FetchFuture = Pin<Box<dyn Future<Output = Option<Fetched>> + Send>>;

/// Object-safe view of a lookup service.
pub(crate) trait Lookup: Send + Sync + 'static {
    fn fetch(&self, req: Request<Empty<Bytes>>) -> FetchFuture;
}

pub(crate) struct ServiceLookup<S>(pub(crate) S);

impl<S, B> Lookup for ServiceLookup<S>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<crate::sink::BoxError>,
{
    fn fetch(&self, req: Request<Empty<Bytes>>) -> FetchFuture {
        let svc = self.0.clone();
        Box::pin(async move {
            let resp = svc.oneshot(req).await.ok()?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_BODY).collect().await.ok()?.to_bytes();
            Some(Fetched {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        })
    }
}

fn request(
    p: &Pending,
    method: Method,
    path: String,
    accept: Option<&'static str>,
) -> Option<Request<Empty<Bytes>>> {
    let mut b = Request::builder().method(method).uri(path);
    if !p.request.host.is_empty() {
        b = b.header(HOST, p.request.host.as_str());
    }
    if let Some(auth) = &p.authorization {
        b = b.header(AUTHORIZATION, auth.clone());
    }
    if let Some(a) = accept {
        b = b.header(ACCEPT, a);
    }
    b.body(Empty::new()).ok()
}

/// Descriptors a manifest references: config then layers, or an index's children.
pub(crate) fn references(body: &[u8]) -> Option<Vec<Descriptor>> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(default)]
        config: Option<Descriptor>,
        #[serde(default)]
        layers: Vec<Descriptor>,
        #[serde(default)]
        manifests: Option<Vec<Descriptor>>,
    }
    let m: Manifest = serde_json::from_slice(body).ok()?;
    if let Some(children) = m.manifests {
        return Some(children);
    }
    Some(m.config.into_iter().chain(m.layers).collect())
}

/// Fills the fields `missing` names, by asking the lookup service.
pub(crate) async fn fill(
    lookup: &dyn Lookup,
    p: &Pending,
    events: &mut [Event],
    missing: Missing,
    refs: bool,
) {
    for e in events.iter_mut() {
        let digest = e.target.descriptor.digest.clone();
        if digest.is_empty() {
            continue;
        }
        if missing.blob_size {
            let Some(req) = request(
                p,
                Method::HEAD,
                format!("{}/v2/{}/blobs/{}", p.prefix, p.name, digest),
                None,
            ) else {
                continue;
            };
            match lookup.fetch(req).await {
                Some(f) if f.status.is_success() => {
                    // Never a negative or oversized size: the field stays unknown (0) instead.
                    if let Some(n) = f
                        .headers
                        .get(CONTENT_LENGTH)
                        .and_then(|v| parse_size(v.to_str().ok()?))
                    {
                        e.target.descriptor.size = n;
                        e.target.length = n;
                    }
                }
                _ => tracing::debug!(repository = %p.name, %digest, "blob size lookup failed"),
            }
        }
        if missing.manifest {
            let path = format!("{}/v2/{}/manifests/{}", p.prefix, p.name, digest);
            let Some(req) = request(p, Method::GET, path, Some(MANIFEST_ACCEPT)) else {
                continue;
            };
            match lookup.fetch(req).await {
                Some(f) if f.status.is_success() => {
                    let d = &mut e.target.descriptor;
                    if d.media_type.is_empty() {
                        if let Some(ct) = f.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
                            d.media_type = media_type_of(ct).into();
                        }
                    }
                    if d.size == 0 {
                        d.size = f.body.len() as i64;
                        e.target.length = d.size;
                    }
                    if refs && e.target.references.is_empty() {
                        e.target.references = references(&f.body).unwrap_or_default();
                    }
                }
                _ => tracing::debug!(repository = %p.name, %digest, "manifest lookup failed"),
            }
        }
    }
}

/// The `Range` end of an upload session's status (`GET` of the session), asked
/// before its final `PUT` is forwarded: the bytes it received, without an event
/// in any registry (a `HEAD` of the committed blob is a `pull` in Distribution).
pub(crate) async fn upload_status_end(lookup: &dyn Lookup, p: &Pending) -> Option<i64> {
    let target = p.upload_target.clone()?;
    let req = request(p, Method::GET, target, None)?;
    let f = lookup.fetch(req).await?;
    if !f.status.is_success() {
        tracing::debug!(repository = %p.name, status = %f.status, "upload status lookup failed");
        return None;
    }
    super::derive::upload_range_end(&f.headers)
}

/// The tags that currently point at `digest` (before a delete removes them).
pub(crate) async fn tags_pointing_at(lookup: &dyn Lookup, p: &Pending, digest: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct TagList {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    let mut found = Vec::new();
    let Some(req) = request(
        p,
        Method::GET,
        format!("{}/v2/{}/tags/list?n={MAX_TAGS}", p.prefix, p.name),
        None,
    ) else {
        return found;
    };
    let Some(f) = lookup.fetch(req).await.filter(|f| f.status.is_success()) else {
        return found;
    };
    let tags = serde_json::from_slice::<TagList>(&f.body)
        .ok()
        .and_then(|t| t.tags)
        .unwrap_or_default();
    for tag in tags.into_iter().take(MAX_TAGS) {
        if super::route::valid_tag(&tag).is_none() {
            continue;
        }
        let path = format!("{}/v2/{}/manifests/{}", p.prefix, p.name, tag);
        let Some(req) = request(p, Method::HEAD, path, Some(MANIFEST_ACCEPT)) else {
            continue;
        };
        if let Some(f) = lookup.fetch(req).await {
            let d = f
                .headers
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok());
            if f.status.is_success() && d == Some(digest) {
                found.push(tag);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_of_image_and_index() {
        let image = br#"{"schemaVersion":2,"config":{"mediaType":"c","digest":"sha256:1","size":1},
            "layers":[{"mediaType":"l","digest":"sha256:2","size":2,"urls":["u"]}],"subject":{"mediaType":"s","digest":"x","size":3}}"#;
        let r = references(image).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].media_type, "c");
        assert_eq!(r[1].urls, vec!["u".to_string()]);
        let index = br#"{"manifests":[{"mediaType":"m","digest":"sha256:3","size":3,"platform":{"architecture":"amd64","os":"linux"}}]}"#;
        let r = references(index).unwrap();
        assert_eq!(r[0].platform.as_ref().unwrap().architecture, "amd64");
        assert!(references(b"not json").is_none());
    }
}
