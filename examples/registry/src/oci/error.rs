//! OCI error responses: `{"errors":[{"code":"…","message":"…","detail":…}]}`.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};

/// The error codes of the distribution spec, plus the few Distribution adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Blob unknown to registry.
    BlobUnknown,
    /// Blob upload invalid.
    BlobUploadInvalid,
    /// Blob upload unknown to registry.
    BlobUploadUnknown,
    /// Provided digest did not match uploaded content.
    DigestInvalid,
    /// Manifest references a manifest or blob unknown to registry.
    ManifestBlobUnknown,
    /// Manifest invalid.
    ManifestInvalid,
    /// Manifest unknown to registry.
    ManifestUnknown,
    /// Invalid repository name.
    NameInvalid,
    /// Repository name not known to registry.
    NameUnknown,
    /// Provided length did not match content length.
    SizeInvalid,
    /// The operation is unsupported.
    Unsupported,
    /// Manifest tag is invalid (Distribution).
    TagInvalid,
    /// Invalid content range (Distribution).
    RangeInvalid,
    /// Invalid number of results requested (Distribution).
    PaginationNumberInvalid,
    /// Unknown error (Distribution).
    Unknown,
}

impl ErrorCode {
    /// The code as written in the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TagInvalid => "TAG_INVALID",
            ErrorCode::RangeInvalid => "RANGE_INVALID",
            ErrorCode::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }
}

/// An error response: status, one OCI error, and optional extra headers.
#[derive(Debug)]
pub struct RegistryError {
    /// HTTP status of the response.
    pub status: StatusCode,
    /// The OCI error code.
    pub code: ErrorCode,
    /// Human readable message.
    pub message: String,
    /// Optional structured detail.
    pub detail: Option<Value>,
    /// Extra response headers (`Range` on 416, `Allow` on 405, …).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl RegistryError {
    /// An error with no detail.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// Adds a detail value.
    pub fn with_detail(mut self, detail: impl Into<Value>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a response header (ignored if the value is not a valid header value).
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    /// 404 for a path that is not a registry endpoint.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::Unsupported, "no such endpoint")
    }

    /// 405 for a method the endpoint does not implement.
    pub fn method_not_allowed(allow: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unsupported,
            "the operation is unsupported",
        )
        .with_header(http::header::ALLOW, allow)
    }

    /// 405 for deletes when deletion is disabled.
    pub fn delete_disabled() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unsupported,
            "the operation is unsupported: deletion is disabled",
        )
    }

    /// 400 NAME_INVALID.
    pub fn name_invalid(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::NameInvalid,
            "invalid repository name",
        )
        .with_detail(json!({ "name": name }))
    }

    /// 400 DIGEST_INVALID.
    pub fn digest_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::DigestInvalid, message)
    }

    /// 404 BLOB_UNKNOWN.
    pub fn blob_unknown(digest: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::BlobUnknown,
            "blob unknown to registry",
        )
        .with_detail(digest)
    }

    /// 404 BLOB_UPLOAD_UNKNOWN.
    pub fn upload_unknown() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::BlobUploadUnknown,
            "blob upload unknown to registry",
        )
    }

    /// 404 MANIFEST_UNKNOWN.
    pub fn manifest_unknown(reference: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::ManifestUnknown,
            "manifest unknown",
        )
        .with_detail(json!({ "reference": reference }))
    }

    /// 400 MANIFEST_INVALID.
    pub fn manifest_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::ManifestInvalid, message)
    }

    /// 500 UNKNOWN for storage failures (the cause is logged, not sent).
    pub fn internal(context: &str, err: &dyn std::error::Error) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unknown,
            "unknown error",
        )
    }

    fn body(&self) -> Vec<u8> {
        let body = ErrorsBody {
            errors: [ErrorBody {
                code: self.code.as_str(),
                message: &self.message,
                detail: self.detail.as_ref(),
            }],
        };
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"errors\":[]}".to_vec())
    }
}

/// The JSON body, with Distribution's key order.
#[derive(Serialize)]
struct ErrorsBody<'a> {
    errors: [ErrorBody<'a>; 1],
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a Value>,
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = self.body();
        let len = body.len();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code.as_str(),
            self.message
        )
    }
}

impl std::error::Error for RegistryError {}
