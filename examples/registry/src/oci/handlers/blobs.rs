//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::response::Response;
use http::header::{ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, RANGE};
use http::{HeaderValue, Method, StatusCode};
use registry_notify::EventHint;

use super::super::error::{ErrorCode, RegistryError};
use super::super::storage::Storage;
use super::{
    empty, hint_size, parse_digest, parse_digits, set_header, storage_error, with_hint, HandlerResult, Req,
    CONTENT_DIGEST_HEADER,
};

/// Serves a blob linked into `name`, whole or one `Range: bytes=…`; streams the body.
pub(super) async fn get(storage: &dyn Storage, name: &str, digest: &str, req: &Req) -> HandlerResult {
    let digest = parse_digest(digest)?;
    let size = storage
        .blob_size(name, &digest)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| RegistryError::blob_unknown(&digest.to_string()))?;
    let range = if req.method == Method::GET {
        match req.header_str(&RANGE) {
            Ok(None) => None,
            Ok(Some(value)) => Some(parse_range(value, size).ok_or_else(|| {
                RegistryError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    ErrorCode::RangeInvalid,
                    "requested range not satisfiable",
                )
                .with_header(CONTENT_RANGE, &format!("bytes */{size}"))
            })?),
            Err(()) => {
                return Err(RegistryError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    ErrorCode::RangeInvalid,
                    "invalid Range header",
                ))
            }
        }
    } else {
        None
    };
    let (status, offset, length) = match range {
        Some((first, last)) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        None => (StatusCode::OK, 0, size),
    };
    let body = if req.is_head() {
        Body::empty()
    } else {
        let stream = storage
            .blob_read(name, &digest, offset, length)
            .await
            .map_err(storage_error)?
            .ok_or_else(|| RegistryError::blob_unknown(&digest.to_string()))?;
        Body::from_stream(stream)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=31536000"));
    set_header(&mut response, CONTENT_DIGEST_HEADER, &digest.to_string());
    set_header(&mut response, ETAG, &format!("\"{digest}\""));
    if let Some((first, last)) = range {
        set_header(
            &mut response,
            CONTENT_RANGE,
            &format!("bytes {first}-{last}/{size}"),
        );
    }
    let mut hint = EventHint::size(hint_size(size));
    hint.digest = Some(digest.to_string());
    Ok(with_hint(response, hint))
}

/// Unlinks a blob from `name` (the content stays for other repositories): 202.
pub(super) async fn delete(storage: &dyn Storage, name: &str, digest: &str) -> HandlerResult {
    let digest = parse_digest(digest)?;
    if !storage.blob_unlink(name, &digest).await.map_err(storage_error)? {
        return Err(RegistryError::blob_unknown(&digest.to_string()));
    }
    let mut response = empty(StatusCode::ACCEPTED);
    set_header(&mut response, CONTENT_DIGEST_HEADER, &digest.to_string());
    Ok(response)
}

/// Resolves a single `bytes=first-last`, `bytes=first-` or `bytes=-suffix`
/// range against a blob of `size` bytes, to inclusive offsets. `None` for
/// malformed, multiple or unsatisfiable ranges.
pub(super) fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let end = size.checked_sub(1)?;
    if first.is_empty() {
        let suffix = parse_digits(last)?.min(size);
        return (suffix > 0).then(|| (size - suffix, end));
    }
    let first = parse_digits(first)?;
    let last = if last.is_empty() {
        end
    } else {
        parse_digits(last)?.min(end)
    };
    (first <= last).then_some((first, last))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 141), Some((0, 9)));
        assert_eq!(parse_range("bytes=10-", 141), Some((10, 140)));
        assert_eq!(parse_range("bytes=-10", 141), Some((131, 140)));
        assert_eq!(parse_range("bytes=-1000", 141), Some((0, 140)));
        assert_eq!(parse_range("bytes=100-1000", 141), Some((100, 140)));
        assert_eq!(parse_range("bytes=141-", 141), None);
        assert_eq!(parse_range("bytes=9-0", 141), None);
        assert_eq!(parse_range("bytes=-0", 141), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 141), None);
        assert_eq!(parse_range("bytes=+1-2", 141), None);
        assert_eq!(parse_range("items=0-1", 141), None);
        assert_eq!(parse_range("bytes=0-0", 0), None);
        assert_eq!(parse_range("bytes=", 10), None);
        assert_eq!(parse_range("bytes=18446744073709551615-", 10), None);
    }
}
