//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION};
use http::{HeaderValue, StatusCode};
use registry_notify::EventHint;

use super::super::error::{ErrorCode, RegistryError};
use super::super::manifest::{self, Manifest, MAX_MANIFEST_SIZE};
use super::super::reference::{Algorithm, Digest, Reference, ReferenceError};
use super::super::storage::{Storage, StoredManifest};
use super::{
    body_stream, empty, hint_size, parse_digits, set_header, storage_error, with_hint, HandlerResult, Req,
    CONTENT_DIGEST_HEADER, OCI_SUBJECT_HEADER,
};

fn parse_reference(reference: &str) -> Result<Reference, RegistryError> {
    Reference::parse(reference).map_err(|e| match e {
        ReferenceError::Digest(e) => RegistryError::digest_invalid(e.to_string()).with_detail(reference),
        ReferenceError::Tag => {
            RegistryError::new(StatusCode::BAD_REQUEST, ErrorCode::TagInvalid, "invalid tag")
                .with_detail(reference)
        }
    })
}

/// The digest a reference designates in `name`.
async fn resolve(
    storage: &dyn Storage,
    name: &str,
    reference: &Reference,
    raw: &str,
) -> Result<Digest, RegistryError> {
    match reference {
        Reference::Digest(digest) => Ok(digest.clone()),
        Reference::Tag(tag) => storage
            .tag_get(name, tag)
            .await
            .map_err(storage_error)?
            .ok_or_else(|| RegistryError::manifest_unknown(raw)),
    }
}

/// The hint for a manifest event: media type, size, digest and references.
fn manifest_hint(media_type: &str, content: &[u8], digest: &Digest, parsed: Option<&Manifest>) -> EventHint {
    let mut hint = EventHint::size(hint_size(u64::try_from(content.len()).unwrap_or(u64::MAX)));
    hint.media_type = Some(media_type.to_owned());
    hint.digest = Some(digest.to_string());
    hint.references = parsed.map(Manifest::references).filter(|refs| !refs.is_empty());
    hint
}

/// Whether `If-None-Match` names the manifest (quoted or bare digest, or `*`).
fn not_modified(req: &Req, digest: &Digest) -> bool {
    let digest = digest.to_string();
    req.headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag == "*" || tag.trim_matches('"') == digest
        })
}

/// Serves a manifest by tag or digest, whatever the `Accept` header says.
pub(super) async fn get(storage: &dyn Storage, name: &str, raw: &str, req: &Req) -> HandlerResult {
    let reference = parse_reference(raw)?;
    let digest = resolve(storage, name, &reference, raw).await?;
    let stored = storage
        .manifest_get(name, &digest)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| RegistryError::manifest_unknown(raw))?;
    let parsed = manifest::parse(&stored.content, Some(&stored.media_type)).ok();
    let hint = manifest_hint(&stored.media_type, &stored.content, &digest, parsed.as_ref());
    let mut response = if not_modified(req, &digest) {
        empty(StatusCode::NOT_MODIFIED)
    } else {
        let length = stored.content.len();
        let body = if req.is_head() {
            Body::empty()
        } else {
            Body::from(stored.content)
        };
        let mut response = Response::new(body);
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(length));
        set_header(&mut response, CONTENT_TYPE, &stored.media_type);
        response
    };
    set_header(&mut response, CONTENT_DIGEST_HEADER, &digest.to_string());
    set_header(&mut response, ETAG, &format!("\"{digest}\""));
    Ok(with_hint(response, hint))
}

/// Reads the manifest body, refusing more than [`MAX_MANIFEST_SIZE`] bytes.
async fn read_manifest_body(req: &Req, body: Body) -> Result<Bytes, RegistryError> {
    let too_big = || {
        RegistryError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::ManifestInvalid,
            "manifest too big",
        )
        .with_detail(serde_json::json!({ "limit": MAX_MANIFEST_SIZE }))
    };
    let declared = req
        .header_str(&CONTENT_LENGTH)
        .ok()
        .flatten()
        .and_then(parse_digits);
    if declared.is_some_and(|len| len > MAX_MANIFEST_SIZE as u64) {
        return Err(too_big());
    }
    let mut body = body_stream(body);
    let mut content = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| RegistryError::manifest_invalid(format!("reading the body: {e}")))?;
        if content.len().saturating_add(chunk.len()) > MAX_MANIFEST_SIZE {
            return Err(too_big());
        }
        content.extend_from_slice(&chunk);
    }
    Ok(content.freeze())
}

/// Stores a manifest (bytes verbatim) under its digest, and the tag if addressed by tag: 201.
pub(super) async fn put(
    storage: &dyn Storage,
    name: &str,
    raw: &str,
    req: &Req,
    body: Body,
) -> HandlerResult {
    let reference = parse_reference(raw)?;
    let content_type = req
        .header_str(&CONTENT_TYPE)
        .map_err(|()| RegistryError::manifest_invalid("Content-Type is not valid UTF-8"))?
        .map(str::to_owned);
    let content = read_manifest_body(req, body).await?;
    let (digest, tag) = match &reference {
        Reference::Digest(expected) => {
            let computed = Digest::compute(expected.algorithm(), &content);
            if computed != *expected {
                return Err(
                    RegistryError::digest_invalid("manifest digest did not match the reference")
                        .with_detail(serde_json::json!({ "computed": computed.to_string() })),
                );
            }
            (computed, None)
        }
        Reference::Tag(tag) => (Digest::compute(Algorithm::Sha256, &content), Some(tag.as_str())),
    };
    let parsed = manifest::parse(&content, content_type.as_deref())
        .map_err(|e| RegistryError::manifest_invalid(e.to_string()))?;
    check_references(storage, name, &parsed).await?;
    let stored = StoredManifest {
        media_type: parsed.media_type.clone(),
        content: content.clone(),
    };
    storage
        .manifest_put(name, &digest, stored, tag)
        .await
        .map_err(storage_error)?;
    let mut response = empty(StatusCode::CREATED);
    set_header(
        &mut response,
        LOCATION,
        &req.url(&format!("/v2/{name}/manifests/{digest}")),
    );
    set_header(&mut response, CONTENT_DIGEST_HEADER, &digest.to_string());
    if let Some(subject) = &parsed.subject {
        set_header(&mut response, OCI_SUBJECT_HEADER, &subject.digest);
    }
    let hint = manifest_hint(&parsed.media_type, &content, &digest, Some(&parsed));
    Ok(with_hint(response, hint))
}

/// Like Distribution: an image manifest's config and (non-foreign) layers must
/// be blobs of the repository, an index's children manifests of it.
async fn check_references(storage: &dyn Storage, name: &str, parsed: &Manifest) -> Result<(), RegistryError> {
    let unknown = |digest: &str| {
        RegistryError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ManifestBlobUnknown,
            "manifest references a blob or manifest unknown to the repository",
        )
        .with_detail(serde_json::json!({ "digest": digest }))
    };
    for descriptor in parsed.required_blobs() {
        let digest = Digest::parse(&descriptor.digest).map_err(|_| unknown(&descriptor.digest))?;
        if storage
            .blob_size(name, &digest)
            .await
            .map_err(storage_error)?
            .is_none()
        {
            return Err(unknown(&descriptor.digest));
        }
    }
    for descriptor in parsed.required_manifests() {
        let digest = Digest::parse(&descriptor.digest).map_err(|_| unknown(&descriptor.digest))?;
        if storage
            .manifest_get(name, &digest)
            .await
            .map_err(storage_error)?
            .is_none()
        {
            return Err(unknown(&descriptor.digest));
        }
    }
    Ok(())
}

/// By digest: removes the manifest and its tags (hint: the removed tags).
/// By tag: removes only the tag. 202 either way.
pub(super) async fn delete(storage: &dyn Storage, name: &str, raw: &str) -> HandlerResult {
    match parse_reference(raw)? {
        Reference::Digest(digest) => {
            let removed = storage
                .manifest_delete(name, &digest)
                .await
                .map_err(storage_error)?
                .ok_or_else(|| RegistryError::manifest_unknown(raw))?;
            Ok(with_hint(
                empty(StatusCode::ACCEPTED),
                EventHint::deleted_tags(removed),
            ))
        }
        Reference::Tag(tag) => {
            if !storage.tag_delete(name, &tag).await.map_err(storage_error)? {
                return Err(RegistryError::manifest_unknown(raw));
            }
            Ok(empty(StatusCode::ACCEPTED))
        }
    }
}
