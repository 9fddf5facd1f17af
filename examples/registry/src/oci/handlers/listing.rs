//! Listings: `/v2/_catalog`, `/v2/<name>/tags/list` and `/v2/<name>/referrers/<digest>`.

use axum::response::Response;
use http::header::{CONTENT_TYPE, LINK};
use http::{HeaderValue, StatusCode};
use serde_json::{json, Map, Value};

use super::super::error::{ErrorCode, RegistryError};
use super::super::manifest::{self, OCI_IMAGE_INDEX};
use super::super::storage::Storage;
use super::{
    json_response, parse_digest, parse_digits, set_header, storage_error, HandlerResult, Req,
    OCI_FILTERS_APPLIED_HEADER,
};

/// `n` and `last` pagination parameters.
struct Page<'a> {
    n: Option<usize>,
    last: Option<&'a str>,
}

impl<'a> Page<'a> {
    fn from(req: &'a Req) -> Result<Self, RegistryError> {
        let n = match req.query.get("n") {
            None | Some("") => None,
            Some(n) => Some(
                parse_digits(n)
                    .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                    .ok_or_else(|| {
                        RegistryError::new(
                            StatusCode::BAD_REQUEST,
                            ErrorCode::PaginationNumberInvalid,
                            "invalid number of results requested",
                        )
                        .with_detail(n)
                    })?,
            ),
        };
        Ok(Page {
            n,
            last: req.query.get("last").filter(|l| !l.is_empty()),
        })
    }

    /// The entries after `last` (input is sorted), at most `n`, and whether more follow.
    fn apply(&self, sorted: Vec<String>) -> (Vec<String>, bool) {
        let mut entries: Vec<String> = sorted
            .into_iter()
            .filter(|e| self.last.is_none_or(|last| e.as_str() > last))
            .collect();
        let more = self.n.is_some_and(|n| entries.len() > n);
        if let Some(n) = self.n {
            entries.truncate(n);
        }
        (entries, more)
    }

    /// `Link: <path?last=…&n=…>; rel="next"` when there is a next page.
    fn link(&self, response: &mut Response, path: &str, entries: &[String], more: bool) {
        if let (true, Some(n), Some(last)) = (more, self.n, entries.last()) {
            set_header(
                response,
                LINK,
                &format!("<{path}?last={last}&n={n}>; rel=\"next\""),
            );
        }
    }
}

fn json_body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// `GET /v2/_catalog`: repositories a manifest was pushed to, sorted.
pub(super) async fn catalog(storage: &dyn Storage, req: &Req) -> HandlerResult {
    let page = Page::from(req)?;
    let (repositories, more) = page.apply(storage.repositories().await.map_err(storage_error)?);
    let mut response = json_response(
        StatusCode::OK,
        json_body(&json!({ "repositories": repositories })),
    );
    page.link(&mut response, "/v2/_catalog", &repositories, more);
    Ok(response)
}

/// `GET /v2/<name>/tags/list`: sorted tags; 404 NAME_UNKNOWN for an unknown repository.
pub(super) async fn tags(storage: &dyn Storage, name: &str, req: &Req) -> HandlerResult {
    let page = Page::from(req)?;
    let tags = storage.tags(name).await.map_err(storage_error)?.ok_or_else(|| {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NameUnknown,
            "repository name not known to registry",
        )
        .with_detail(json!({ "name": name }))
    })?;
    let (tags, more) = page.apply(tags);
    let mut response = json_response(StatusCode::OK, json_body(&json!({ "name": name, "tags": tags })));
    page.link(&mut response, &format!("/v2/{name}/tags/list"), &tags, more);
    Ok(response)
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=]`: an image index of the
/// manifests in `name` whose `subject` is `digest` (found by scanning).
pub(super) async fn referrers(storage: &dyn Storage, name: &str, digest: &str, req: &Req) -> HandlerResult {
    let subject = parse_digest(digest)?.to_string();
    let filter = req.query.get("artifactType").filter(|t| !t.is_empty());
    let mut manifests = Vec::new();
    for candidate in storage.manifest_digests(name).await.map_err(storage_error)? {
        let Some(stored) = storage
            .manifest_get(name, &candidate)
            .await
            .map_err(storage_error)?
        else {
            continue;
        };
        let Ok(parsed) = manifest::parse(&stored.content, Some(&stored.media_type)) else {
            continue;
        };
        if parsed.subject.as_ref().is_none_or(|s| s.digest != subject) {
            continue;
        }
        let artifact_type = parsed.effective_artifact_type();
        if filter.is_some_and(|f| artifact_type.as_deref() != Some(f)) {
            continue;
        }
        let mut descriptor = Map::new();
        descriptor.insert("mediaType".into(), stored.media_type.clone().into());
        descriptor.insert("digest".into(), candidate.to_string().into());
        descriptor.insert("size".into(), stored.content.len().into());
        if let Some(artifact_type) = artifact_type {
            descriptor.insert("artifactType".into(), artifact_type.into());
        }
        if !parsed.annotations.is_empty() {
            descriptor.insert("annotations".into(), json!(parsed.annotations));
        }
        manifests.push(Value::Object(descriptor));
    }
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_IMAGE_INDEX, "manifests": manifests });
    let mut response = json_response(StatusCode::OK, json_body(&index));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(OCI_IMAGE_INDEX));
    if filter.is_some() {
        response.headers_mut().insert(
            OCI_FILTERS_APPLIED_HEADER,
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}
