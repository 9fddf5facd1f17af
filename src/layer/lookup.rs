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
//! size lookups above are sent only for what the layer has not seen pass by; so are
//! the references of manifests, so that a `HEAD` of a manifest already seen needs no
//! lookup.

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{Method, Request};
use http_body_util::Empty;

use super::derive::{Missing, Pending};
use super::headers::{media_type_of, parse_size, upload_range_end};
use super::lookup_service::Lookup;
use super::manifest::references;
use crate::event::Event;

/// Most tags examined when looking for the tags of a deleted manifest.
const MAX_TAGS: usize = 10_000;

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v1+prettyjws, \
application/vnd.docker.distribution.manifest.v1+json, application/json";

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
                        // At most MAX_BODY bytes were read.
                        d.size = i64::try_from(f.body.len()).unwrap_or(0);
                        e.target.length = d.size;
                    }
                    if refs && e.target.references.is_empty() {
                        if let Some(r) = references(&f.body) {
                            if let Some(memo) = &p.memo {
                                memo.remember_references(&digest, &r);
                            }
                            e.target.references = r;
                        }
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
    upload_range_end(&f.headers)
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
        // Not silent: the delete's tag events are missing, and the operator should know why
        // (a per-route wrap cannot answer another path; an auth proxy in between; …).
        static LOG: crate::log_limit::LogLimiter =
            crate::log_limit::LogLimiter::new(std::time::Duration::from_secs(60));
        if let Some(suppressed) = LOG.check() {
            tracing::warn!(
                repository = %p.name, %digest, suppressed,
                "delete by digest: the tag list could not be read, so the tags it removed get no \
                 delete event (is the whole registry wrapped, not each route?)"
            );
        }
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
