//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic, mount)
//! and `GET`/`PATCH`/`PUT`/`DELETE /v2/<name>/blobs/uploads/<id>`.

use axum::body::Body;
use axum::response::Response;
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, LOCATION, RANGE};
use http::StatusCode;
use registry_notify::EventHint;

use super::super::error::{ErrorCode, RegistryError};
use super::super::reference::{is_valid_name, Digest};
use super::super::storage::{ChunkBounds, Storage};
use super::{
    body_stream, empty, hint_size, parse_digest, parse_digits, range_value, set_header, storage_error,
    with_hint, HandlerResult, Req, CONTENT_DIGEST_HEADER, UPLOAD_UUID_HEADER,
};

/// `POST`: cross-repository mount (`?mount=&from=`), monolithic upload
/// (`?digest=` with the blob as body), or a new upload session.
pub(super) async fn start(storage: &dyn Storage, name: &str, req: &Req, body: Body) -> HandlerResult {
    if let Some(mount) = req.query.get("mount") {
        let digest = parse_digest(mount)?;
        if let Some(from) = req.query.get("from").filter(|from| is_valid_name(from)) {
            if let Some(size) = storage
                .blob_mount(name, &digest, from)
                .await
                .map_err(storage_error)?
            {
                return Ok(blob_created(req, name, &digest, size));
            }
        }
        // Not mountable: fall back to a regular upload session, as the spec says.
        let id = storage.upload_create(name).await.map_err(storage_error)?;
        return Ok(upload_accepted(req, name, &id, 0));
    }
    if let Some(digest) = req.query.get("digest") {
        let digest = parse_digest(digest)?;
        let id = storage.upload_create(name).await.map_err(storage_error)?;
        let bounds = chunk_bounds(req)?;
        let result = async {
            storage.upload_write(name, &id, bounds, body_stream(body)).await?;
            storage.upload_commit(name, &id, &digest).await
        }
        .await;
        return match result {
            Ok(size) => Ok(blob_created(req, name, &digest, size)),
            Err(e) => {
                if let Err(cancel) = storage.upload_cancel(name, &id).await {
                    tracing::warn!(error = %cancel, "cancelling failed monolithic upload {id}");
                }
                Err(storage_error(e))
            }
        };
    }
    let id = storage.upload_create(name).await.map_err(storage_error)?;
    Ok(upload_accepted(req, name, &id, 0))
}

/// `GET`/`HEAD`: upload progress, 204 with `Range`.
pub(super) async fn status(storage: &dyn Storage, name: &str, id: &str, req: &Req) -> HandlerResult {
    let size = storage
        .upload_size(name, id)
        .await
        .map_err(storage_error)?
        .ok_or_else(RegistryError::upload_unknown)?;
    Ok(upload_response(req, StatusCode::NO_CONTENT, name, id, size))
}

/// `PATCH`: appends a chunk (contiguous with what was received), 202.
pub(super) async fn patch(
    storage: &dyn Storage,
    name: &str,
    id: &str,
    req: &Req,
    body: Body,
) -> HandlerResult {
    let bounds = chunk_bounds(req)?;
    let size = storage
        .upload_write(name, id, bounds, body_stream(body))
        .await
        .map_err(|e| upload_error(e, req, name, id))?;
    Ok(upload_response(req, StatusCode::ACCEPTED, name, id, size))
}

/// `PUT ?digest=`: appends the optional last chunk, verifies, commits: 201.
pub(super) async fn finish(
    storage: &dyn Storage,
    name: &str,
    id: &str,
    req: &Req,
    body: Body,
) -> HandlerResult {
    let digest = req
        .query
        .get("digest")
        .ok_or_else(|| RegistryError::digest_invalid("digest parameter missing"))
        .and_then(parse_digest)?;
    let bounds = chunk_bounds(req)?;
    storage
        .upload_write(name, id, bounds, body_stream(body))
        .await
        .map_err(|e| upload_error(e, req, name, id))?;
    let size = storage
        .upload_commit(name, id, &digest)
        .await
        .map_err(storage_error)?;
    Ok(blob_created(req, name, &digest, size))
}

/// `DELETE`: cancels the upload, 204.
pub(super) async fn cancel(storage: &dyn Storage, name: &str, id: &str) -> HandlerResult {
    if !storage.upload_cancel(name, id).await.map_err(storage_error)? {
        return Err(RegistryError::upload_unknown());
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Where a chunk must go, from `Content-Range: <first>-<last>` (optional; a
/// `bytes ` / `bytes=` prefix and a `/<total>` suffix are tolerated) and
/// `Content-Length`.
fn chunk_bounds(req: &Req) -> Result<ChunkBounds, RegistryError> {
    let invalid = || {
        RegistryError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BlobUploadInvalid,
            "invalid Content-Range",
        )
    };
    let Some(value) = req.header_str(&CONTENT_RANGE).map_err(|()| invalid())? else {
        return Ok(ChunkBounds::default());
    };
    let value = value.trim();
    let value = value
        .strip_prefix("bytes=")
        .or_else(|| value.strip_prefix("bytes "))
        .unwrap_or(value);
    let value = value.split_once('/').map_or(value, |(range, _)| range);
    let (first, last) = value.split_once('-').ok_or_else(invalid)?;
    let (first, last) = (
        parse_digits(first.trim()).ok_or_else(invalid)?,
        parse_digits(last.trim()).ok_or_else(invalid)?,
    );
    if last < first {
        return Err(RegistryError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorCode::RangeInvalid,
            "Content-Range ends before it starts",
        ));
    }
    let length = (last - first).checked_add(1).ok_or_else(invalid)?;
    let content_length = req
        .header_str(&CONTENT_LENGTH)
        .ok()
        .flatten()
        .and_then(parse_digits);
    if content_length.is_some_and(|cl| cl != length) {
        return Err(RegistryError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorCode::SizeInvalid,
            "Content-Length does not match Content-Range",
        ));
    }
    Ok(ChunkBounds {
        offset: Some(first),
        length: Some(length),
    })
}

/// A storage error during a chunk write; a 416 also says where the upload stands.
fn upload_error(err: super::StorageError, req: &Req, name: &str, id: &str) -> RegistryError {
    let mut error = storage_error(err);
    if error.status == StatusCode::RANGE_NOT_SATISFIABLE {
        error = error
            .with_header(LOCATION, &upload_location(req, name, id))
            .with_header(UPLOAD_UUID_HEADER, id);
    }
    error
}

/// `<base>/v2/<name>/blobs/uploads/<id>?_state=<id>`: the query mirrors
/// Distribution's opaque `_state`, so clients that append `&digest=…` to the
/// location (as some scripts do) keep working; it is ignored on input.
fn upload_location(req: &Req, name: &str, id: &str) -> String {
    req.url(&format!("/v2/{name}/blobs/uploads/{id}?_state={id}"))
}

fn upload_accepted(req: &Req, name: &str, id: &str, size: u64) -> Response {
    upload_response(req, StatusCode::ACCEPTED, name, id, size)
}

/// An empty response with the upload's `Location`, `Range` and `Docker-Upload-UUID`.
fn upload_response(req: &Req, status: StatusCode, name: &str, id: &str, size: u64) -> Response {
    let mut response = empty(status);
    set_header(&mut response, LOCATION, &upload_location(req, name, id));
    set_header(&mut response, RANGE, &range_value(size));
    set_header(&mut response, UPLOAD_UUID_HEADER, id);
    response
}

/// 201 for a blob now in `name`, with the size hint for the push/mount event.
fn blob_created(req: &Req, name: &str, digest: &Digest, size: u64) -> Response {
    let mut response = empty(StatusCode::CREATED);
    set_header(
        &mut response,
        LOCATION,
        &req.url(&format!("/v2/{name}/blobs/{digest}")),
    );
    set_header(&mut response, CONTENT_DIGEST_HEADER, &digest.to_string());
    let mut hint = EventHint::size(hint_size(size));
    hint.digest = Some(digest.to_string());
    with_hint(response, hint)
}
