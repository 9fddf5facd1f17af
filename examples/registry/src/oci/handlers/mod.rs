//! HTTP handlers: one fallback handler parses the path and dispatches.

mod blobs;
mod listing;
mod manifests;
mod uploads;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST};
use http::{HeaderMap, Method, StatusCode};
use registry_notify::EventHint;

use super::error::{ErrorCode, RegistryError};
use super::reference::Digest;
use super::route::{self, Query, Route, RouteError};
use super::storage::{ByteStream, StorageError};
use super::Registry;

/// `Docker-Distribution-Api-Version`, set on every response.
pub const API_VERSION_HEADER: HeaderName = HeaderName::from_static("docker-distribution-api-version");
/// `Docker-Content-Digest`.
pub const CONTENT_DIGEST_HEADER: HeaderName = HeaderName::from_static("docker-content-digest");
/// `Docker-Upload-UUID`.
pub const UPLOAD_UUID_HEADER: HeaderName = HeaderName::from_static("docker-upload-uuid");
/// `OCI-Subject`, on a manifest push whose manifest has a subject.
pub const OCI_SUBJECT_HEADER: HeaderName = HeaderName::from_static("oci-subject");
/// `OCI-Filters-Applied`, on a filtered referrers list.
pub const OCI_FILTERS_APPLIED_HEADER: HeaderName = HeaderName::from_static("oci-filters-applied");

type HandlerResult = Result<Response, RegistryError>;

/// The parts of a request the handlers use, except the body (kept apart
/// because it is not `Sync`, and `&Req` is held across awaits).
struct Req {
    method: Method,
    headers: HeaderMap,
    query: Query,
}

impl Req {
    fn is_head(&self) -> bool {
        self.method == Method::HEAD
    }

    /// A header as UTF-8; `Err` if present but not visible ASCII/UTF-8.
    fn header_str(&self, name: &HeaderName) -> Result<Option<&str>, ()> {
        self.headers
            .get(name)
            .map(|v| v.to_str().map_err(|_| ()))
            .transpose()
    }

    /// An absolute URL for `path` on this registry, built from the `Host` header
    /// (like Distribution); just `path` if there is no usable `Host`.
    fn url(&self, path: &str) -> String {
        let host = self
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| h.parse::<http::uri::Authority>().is_ok());
        let https = self
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
        match host {
            Some(host) => format!("{}://{host}{path}", if https { "https" } else { "http" }),
            None => path.to_owned(),
        }
    }
}

/// The axum fallback handler: routes every request.
pub async fn dispatch(State(registry): State<Registry>, request: Request) -> Response {
    let route = route::parse(request.uri().path());
    let (parts, body) = request.into_parts();
    let req = Req {
        query: Query::parse(parts.uri.query()),
        method: parts.method,
        headers: parts.headers,
    };
    let result = match route {
        Ok(route) => handle(&registry, route, req, body).await,
        Err(RouteError::NotFound) => Err(RegistryError::not_found()),
        Err(RouteError::NameInvalid(name)) => Err(RegistryError::name_invalid(&name)),
    };
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response
        .headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    response
}

async fn handle(registry: &Registry, route: Route, req: Req, body: Body) -> HandlerResult {
    let storage = registry.storage.as_ref();
    let delete_enabled = registry.options.delete_enabled;
    match (route, req.method.clone()) {
        (Route::Base, Method::GET | Method::HEAD) => Ok(json_response(StatusCode::OK, b"{}".to_vec())),
        (Route::Base, _) => Err(RegistryError::method_not_allowed("GET, HEAD")),
        (Route::Catalog, Method::GET | Method::HEAD) => listing::catalog(storage, &req).await,
        (Route::Catalog, _) => Err(RegistryError::method_not_allowed("GET, HEAD")),
        (Route::Tags { name }, Method::GET | Method::HEAD) => listing::tags(storage, &name, &req).await,
        (Route::Tags { .. }, _) => Err(RegistryError::method_not_allowed("GET, HEAD")),
        (Route::Referrers { name, digest }, Method::GET | Method::HEAD) => {
            listing::referrers(storage, &name, &digest, &req).await
        }
        (Route::Referrers { .. }, _) => Err(RegistryError::method_not_allowed("GET, HEAD")),
        (Route::Manifest { name, reference }, method) => match method {
            Method::GET | Method::HEAD => manifests::get(storage, &name, &reference, &req).await,
            Method::PUT => manifests::put(storage, &name, &reference, &req, body).await,
            Method::DELETE if delete_enabled => manifests::delete(storage, &name, &reference).await,
            Method::DELETE => Err(RegistryError::delete_disabled()),
            _ => Err(RegistryError::method_not_allowed("GET, HEAD, PUT, DELETE")),
        },
        (Route::Blob { name, digest }, method) => match method {
            Method::GET | Method::HEAD => blobs::get(storage, &name, &digest, &req).await,
            Method::DELETE if delete_enabled => blobs::delete(storage, &name, &digest).await,
            Method::DELETE => Err(RegistryError::delete_disabled()),
            _ => Err(RegistryError::method_not_allowed("GET, HEAD, DELETE")),
        },
        (Route::UploadStart { name }, Method::POST) => uploads::start(storage, &name, &req, body).await,
        (Route::UploadStart { .. }, _) => Err(RegistryError::method_not_allowed("POST")),
        (Route::Upload { name, id }, method) => {
            if !is_upload_id(&id) {
                return Err(RegistryError::upload_unknown());
            }
            match method {
                Method::GET | Method::HEAD => uploads::status(storage, &name, &id, &req).await,
                Method::PATCH => uploads::patch(storage, &name, &id, &req, body).await,
                Method::PUT => uploads::finish(storage, &name, &id, &req, body).await,
                Method::DELETE => uploads::cancel(storage, &name, &id).await,
                _ => Err(RegistryError::method_not_allowed("GET, HEAD, PATCH, PUT, DELETE")),
            }
        }
    }
}

/// A request body as a stream of byte chunks.
fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

/// Upload ids are canonical (lowercase, hyphenated) UUIDs.
fn is_upload_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok_and(|u| u.to_string() == id)
}

/// Parses a digest from the path or query; malformed digests and unsupported
/// algorithms are both a 400 DIGEST_INVALID.
fn parse_digest(s: &str) -> Result<Digest, RegistryError> {
    Digest::parse(s).map_err(|e| RegistryError::digest_invalid(e.to_string()).with_detail(s))
}

/// Maps a storage error that is not specific to the caller to a response.
fn storage_error(err: StorageError) -> RegistryError {
    match err {
        StorageError::UploadUnknown => RegistryError::upload_unknown(),
        StorageError::UploadOffsetMismatch { current } => RegistryError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorCode::RangeInvalid,
            format!("chunk must start at offset {current}"),
        )
        .with_header(http::header::RANGE, &range_value(current)),
        StorageError::UploadLengthMismatch { .. } => RegistryError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::SizeInvalid,
            "provided length did not match content length",
        ),
        StorageError::UploadBody(e) => RegistryError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BlobUploadInvalid,
            format!("reading the request body failed: {e}"),
        ),
        StorageError::DigestMismatch { computed } => {
            RegistryError::digest_invalid("provided digest did not match uploaded content")
                .with_detail(serde_json::json!({ "computed": computed.to_string() }))
        }
        StorageError::Io(e) => RegistryError::internal("storage", &e),
    }
}

/// The `Range` value for an upload holding `size` bytes: `0-<last offset>`
/// (`0-0` when empty, like Distribution).
fn range_value(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// Parses ASCII digits only (no sign, no spaces).
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `i64` for hint sizes.
fn hint_size(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// An empty response, with `Content-Length: 0` unless the status forbids a body (204, 304).
fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    if status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED {
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(0u64));
    }
    response
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let len = body.len();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    response
}

/// Sets a header from a string built from validated input (invalid values are logged and skipped).
fn set_header(response: &mut Response, name: HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(value) => {
            response.headers_mut().insert(name, value);
        }
        Err(_) => tracing::warn!("not a valid value for {name}: {value:?}"),
    }
}

fn with_hint(mut response: Response, hint: EventHint) -> Response {
    response.extensions_mut().insert(hint);
    response
}
