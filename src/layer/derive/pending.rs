//! What the layer keeps of a request until its response arrives ([`Pending`]): which request
//! it is ([`Kind`]), its strings, and what a lookup needs. `request.rs` makes it from the
//! request; `derive.rs` makes the events of the response from it, and says what they miss
//! ([`Missing`]).

use std::sync::Arc;

use http::header::HeaderValue;
use http::uri::Scheme;
use http::Method;

use crate::event::{ActorRecord, RequestRecord, SharedStr};
use crate::layer::lookup_service::Lookup;
use crate::layer::memo::Memo;
use crate::layer::request_body::Tap;

/// Which request, as far as events are concerned. Its strings are slices of the
/// request's shared buffer (`S` = [`SharedStr`]), or borrowed while it is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind<S = SharedStr> {
    ManifestPull {
        tag: Option<S>,
        digest: Option<S>,
    },
    ManifestPush {
        tag: Option<S>,
        digest: Option<S>,
    },
    ManifestDelete {
        digest: S,
    },
    TagDelete {
        tag: S,
    },
    BlobPull {
        digest: S,
    },
    BlobDelete {
        digest: S,
    },
    /// POST to `uploads/`: a mount (`mount` + `from`) or a monolithic upload (`digest`).
    UploadStart {
        mount: Option<(S, S)>,
        digest: Option<S>,
    },
    /// PUT to an upload session: the blob is committed.
    UploadCommit {
        digest: Option<S>,
    },
    /// PATCH to an upload session: no event; its progress is remembered
    /// (only with a lookup service, see [`Memo`]).
    UploadChunk,
}

impl<S> Kind<S> {
    /// The same kind with every string converted by `f`.
    pub(super) fn map<T>(self, mut f: impl FnMut(S) -> T) -> Kind<T> {
        match self {
            Kind::ManifestPull { tag, digest } => Kind::ManifestPull {
                tag: tag.map(&mut f),
                digest: digest.map(&mut f),
            },
            Kind::ManifestPush { tag, digest } => Kind::ManifestPush {
                tag: tag.map(&mut f),
                digest: digest.map(&mut f),
            },
            Kind::ManifestDelete { digest } => Kind::ManifestDelete { digest: f(digest) },
            Kind::TagDelete { tag } => Kind::TagDelete { tag: f(tag) },
            Kind::BlobPull { digest } => Kind::BlobPull { digest: f(digest) },
            Kind::BlobDelete { digest } => Kind::BlobDelete { digest: f(digest) },
            Kind::UploadStart { mount, digest } => Kind::UploadStart {
                mount: mount.map(|(m, from)| (f(m), f(from))),
                digest: digest.map(&mut f),
            },
            Kind::UploadCommit { digest } => Kind::UploadCommit {
                digest: digest.map(&mut f),
            },
            Kind::UploadChunk => Kind::UploadChunk,
        }
    }
}

/// What the layer keeps of a request until its response arrives.
///
/// Built once per registry request: the strings the events need (those of `request`,
/// `actor`, the repository name, the tag or digest of the path) are slices of **one**
/// buffer, allocated once and shared by the request's events.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub(crate) kind: Kind,
    pub(crate) name: SharedStr,
    pub(crate) prefix: String,
    pub(crate) method: Method,
    /// The request URI's scheme (absolute-form requests), if any.
    pub(super) scheme: Option<Scheme>,
    /// `scheme://host<prefix>` of target URLs, when forwarding headers set them.
    pub(super) forwarded_base: Option<String>,
    pub(crate) request: RequestRecord,
    pub(crate) actor: ActorRecord,
    pub(crate) req_content_type: Option<SharedStr>,
    pub(crate) req_content_length: Option<i64>,
    /// The request body's length: `Content-Length`, or 0 for an HTTP/1 request
    /// without `Content-Length` and `Transfer-Encoding`.
    pub(super) req_body_length: Option<i64>,
    /// The path of an upload session (PATCH, PUT), when sizes are remembered.
    pub(crate) upload_key: Option<String>,
    /// The path and query of the upload session a PUT commits (with a lookup service).
    pub(crate) upload_target: Option<String>,
    /// `Range` end of the session's status, asked before its final PUT was forwarded.
    pub(crate) upload_status_end: Option<i64>,
    /// Forwarded on lookups so they pass the registry's auth.
    pub(crate) authorization: Option<HeaderValue>,
    /// Tags found (by a lookup before the delete) to point at a deleted manifest.
    pub(crate) tags_before_delete: Option<Vec<String>>,
    /// A copy of the request body as it passes (a manifest `PUT` with references wanted).
    pub(crate) body_tap: Option<Arc<Tap>>,
    /// Where to ask for what the exchange lacks (the lookup service, or the wrapped one).
    pub(crate) lookup: Option<Arc<dyn Lookup>>,
    /// What the layer remembers, for the references a lookup finds (`includereferences`).
    pub(crate) memo: Option<Arc<Memo>>,
}

/// Fields the exchange did not carry, to be fetched by a lookup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Missing {
    /// The blob's size: ask with `HEAD /v2/<name>/blobs/<digest>`.
    pub(crate) blob_size: bool,
    /// Media type, size or references of a manifest: the manifest passing through (the
    /// response body of a `GET`) gives them, else ask with `GET /v2/<name>/manifests/<digest>`.
    pub(crate) manifest: bool,
}

impl Missing {
    pub(crate) fn any(&self) -> bool {
        self.blob_size || self.manifest
    }
}
