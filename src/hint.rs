//! Facts the wrapped registry can attach to a response for the layer.
//!
//! Some fields Distribution reports are not visible in the HTTP exchange: the
//! size of a blob committed by a chunked upload or created by a mount, the tags
//! a delete-by-digest removed, the references of a manifest served to a HEAD.
//! A registry that knows them inserts an [`EventHint`] into the response
//! extensions; the [`NotificationLayer`](crate::NotificationLayer) uses it in
//! preference to anything else. Without a hint, the layer falls back to asking
//! the registry itself through the lookup service configured with
//! [`NotificationLayer::lookup`](crate::NotificationLayer::lookup).
//!
//! A hint is checked like any outside input: a negative `size`, a `digest` outside the
//! digest grammar, or `references` of which one has a negative size or an invalid
//! digest count as absent (the layer then does what it does without them), so that an
//! event never carries an impossible value.
//!
//! ```
//! use registry_notify::EventHint;
//! let mut response = http::Response::new(());
//! let mut hint = EventHint::size(20);
//! hint.deleted_tags = Some(vec!["latest".into()]);
//! response.extensions_mut().insert(hint);
//! ```

use crate::event::Descriptor;

/// Facts about the target of the request's event(s), set by the registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventHint {
    /// Size in bytes of the blob or manifest (blob push after a chunked upload, mount).
    pub size: Option<i64>,
    /// Media type of the manifest (pull by HEAD without `Content-Type`, …).
    pub media_type: Option<String>,
    /// Digest of the manifest or blob, when not in the path or headers.
    pub digest: Option<String>,
    /// Descriptors the manifest references (config then layers, or index children).
    pub references: Option<Vec<Descriptor>>,
    /// Tags that pointed at a manifest deleted by digest, and were removed with it.
    pub deleted_tags: Option<Vec<String>>,
}

impl EventHint {
    /// A hint carrying only a size.
    pub fn size(size: i64) -> Self {
        Self {
            size: Some(size),
            ..Self::default()
        }
    }

    /// A hint carrying the tags removed by a manifest delete.
    pub fn deleted_tags(tags: Vec<String>) -> Self {
        Self {
            deleted_tags: Some(tags),
            ..Self::default()
        }
    }
}

/// The authenticated user, set in the *request* extensions by auth middleware;
/// becomes `actor.name` (otherwise the Basic auth user name is used).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedUser(pub String);

/// A request id, set in the request extensions by middleware such as
/// tower-http's `SetRequestId`; becomes `request.id`. An incoming
/// `X-Request-Id` header is used when this extension is absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);
