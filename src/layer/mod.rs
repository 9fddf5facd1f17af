//! The [`NotificationLayer`]: events from registry traffic.
//!
//! The layer wraps a registry's HTTP service (an axum `Router`, a hyper
//! `service_fn`, any `Service<http::Request<B>>`). For each request it parses
//! the distribution-spec path; for each successful response it builds the
//! events Distribution would emit and hands them to a [`Dispatcher`] without
//! waiting. Responses are never changed; unparseable requests pass through
//! untouched.
//!
//! | request | response | events |
//! |---|---|---|
//! | `GET`/`HEAD /v2/<name>/manifests/<tag\|digest>` | 200 | `pull` (`tag` when by tag) |
//! | `PUT /v2/<name>/manifests/<tag\|digest>` | 201 | `push` (`tag` when by tag) |
//! | `DELETE /v2/<name>/manifests/<digest>` | 202 | `delete` of the digest, then one `delete` per tag that pointed at it |
//! | `DELETE /v2/<name>/manifests/<tag>` | 202 | `delete` with `tag` (Distribution 3) |
//! | `GET`/`HEAD /v2/<name>/blobs/<digest>` | 200, 206, 304, 307, 416 | `pull` (`application/octet-stream`) |
//! | `DELETE /v2/<name>/blobs/<digest>` | 202 | `delete` |
//! | `POST /v2/<name>/blobs/uploads/?mount=<d>&from=<repo>` | 201 | `mount` with `fromRepository` |
//! | `POST /v2/<name>/blobs/uploads/?digest=<d>` (monolithic) | 201 | `push` |
//! | `PUT /v2/<name>/blobs/uploads/<id>?digest=<d>` | 201 | `push` |
//! | anything else (`/v2/`, catalog, tags list, upload status, `PATCH`, cancel, failures) | | none |
//!
//! # Example
//!
//! ```
//! use axum::{routing::get, Router};
//! use registry_notify::{dispatcher::Dispatcher, NotificationLayer};
//!
//! # fn sink() -> registry_notify::sink::BoxSink {
//! #     registry_notify::sink::BoxSink::new(tower::service_fn(|_b| async { Ok(()) }))
//! # }
//! let layer = NotificationLayer::new(Dispatcher::new(sink()))
//!     .include_references(true)
//!     .skip_head_pulls(false);
//! let registry: Router = Router::new().route("/v2/", get(|| async { "{}" }));
//! // One service in front of the whole router (README, "With axum"), not `registry.layer(layer)`.
//! let app = tower::ServiceBuilder::new().layer(layer).service(registry);
//! ```
//!
//! Fields the exchange does not show (the size of a blob committed by a chunked
//! upload, the tags removed with a manifest) come from an [`EventHint`](crate::EventHint)
//! the registry attaches to its response, or else from a [lookup](NotificationLayer::lookup).

mod addr;
mod body;
mod derive;
mod finish;
mod future;
mod headers;
mod lookup;
mod lookup_service;
mod manifest;
mod memo;
mod request_body;
mod route;
mod service;
mod shared;
mod wrapped;

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;

pub use addr::{PeerAddr, TrustedProxies};
pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use request_body::RequestBody;
pub use service::Notification;

use crate::dispatcher::Dispatcher;
use crate::event::SourceRecord;
use lookup_service::{Lookup, ServiceLookup};
use shared::Shared;

/// A tower [`Layer`](tower_layer::Layer) that derives Distribution's
/// notification events from the requests and responses of a registry.
///
/// Clone, `Send` and `Sync`; the services it makes are infallible wrappers
/// (their error is the inner service's) and never wait for delivery.
#[derive(Clone)]
pub struct NotificationLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NotificationLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.shared;
        f.debug_struct("NotificationLayer")
            .field("dispatcher", &s.dispatcher)
            .field("source", &s.source)
            .field("base_url", &s.base_url)
            .field("include_references", &s.include_references)
            .field("skip_head_pulls", &s.skip_head_pulls)
            .field("pull_on_body_end", &s.pull_on_body_end)
            .field("trusted_proxies", &s.trusted_proxies)
            .field("lookup", &s.lookup.is_some())
            .finish()
    }
}

impl Default for NotificationLayer {
    /// A layer with no sink: it passes everything through and derives nothing.
    fn default() -> Self {
        Self::new(Dispatcher::disabled())
    }
}

impl NotificationLayer {
    /// A layer sending its events to `dispatcher`, with Distribution's defaults:
    /// HEAD pulls emitted, pulls emitted as soon as the response is produced,
    /// no references, forwarding headers trusted from anyone.
    pub fn new(dispatcher: Dispatcher) -> Self {
        Self {
            shared: Arc::new(Shared {
                dispatcher,
                source: SourceRecord::local(":5000"),
                base_url: None,
                include_references: false,
                skip_head_pulls: false,
                pull_on_body_end: false,
                trusted_proxies: None,
                lookup: None,
                wrapped_lookups: true,
                hints: Arc::default(),
                memo: Some(Arc::default()),
            }),
        }
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn with(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// The `source` of every event (default: `SourceRecord::local(":5000")`).
    pub fn source(self, source: SourceRecord) -> Self {
        self.with(|s| s.source = source)
    }

    /// A fixed base for target URLs, like Distribution's `http.host`
    /// (e.g. `https://registry.example.com`); by default the base comes from
    /// the request (`Forwarded`, `X-Forwarded-Proto`/`-Host`, `Host`).
    pub fn base_url(self, base: impl Into<String>) -> Self {
        let base = base.into();
        self.with(|s| s.base_url = Some(base))
    }

    /// Fill `target.references` of manifest events (`events.includereferences`).
    pub fn include_references(self, yes: bool) -> Self {
        self.with(|s| s.include_references = yes)
    }

    /// Emit no pull event for HEAD requests (Harbor's choice; Distribution emits them).
    pub fn skip_head_pulls(self, yes: bool) -> Self {
        self.with(|s| s.skip_head_pulls = yes)
    }

    /// Emit a GET pull only once the response body was sent to its end;
    /// a download the client abandoned yields no event. Distribution emits
    /// the pull whatever happens to the body.
    pub fn pull_on_body_end(self, yes: bool) -> Self {
        self.with(|s| s.pull_on_body_end = yes)
    }

    /// Trust `X-Forwarded-For`/`X-Real-Ip` only from these proxies; other
    /// clients' `request.addr` is their peer address.
    pub fn trusted_proxies(self, proxies: TrustedProxies) -> Self {
        self.with(|s| s.trusted_proxies = Some(proxies))
    }

    /// The service asked for fields the exchange lacks, when the response
    /// carries no [`EventHint`](crate::EventHint): usually a clone of the
    /// wrapped registry service (without this layer). See the table in the
    /// module docs for the requests it receives.
    ///
    /// With a lookup service the layer also remembers the blob sizes it saw pass
    /// by (by digest) and asks only for what it has not seen: a registry with
    /// notifications of its own reports each lookup (Distribution emits a `pull`
    /// for a `HEAD` of a blob). The bytes an upload received are asked before its
    /// final `PUT` (the session's status, which no registry reports as an event).
    pub fn lookup<S, B>(self, service: S) -> Self
    where
        S: tower_service::Service<Request<Empty<Bytes>>, Response = Response<B>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<crate::sink::BoxError>,
    {
        let lookup: Arc<dyn Lookup> = Arc::new(ServiceLookup(service));
        self.with(|s| s.lookup = Some(lookup))
    }

    /// Whether the layer may ask the service it wraps for the fields an exchange lacks when
    /// no [`lookup`](Self::lookup) service is given (default `true`).
    ///
    /// Those requests (a `HEAD` of a blob, a `GET` of a manifest or of the tag list; see
    /// the table in the module docs) go to the wrapped service directly, past the layer,
    /// with the original request's `Host` and `Authorization`. A registry that attaches
    /// [`EventHint`](crate::EventHint)s to its responses is never asked. The wrapped
    /// service must route them itself: wrap the whole registry
    /// (`notify.layer(router)`), not each of its routes (axum's `Router::layer`
    /// wraps every route on its own, whose handlers cannot answer another path).
    /// With `false`, fields nothing shows stay empty, logged once in a while.
    pub fn wrapped_lookups(self, yes: bool) -> Self {
        self.with(|s| s.wrapped_lookups = yes)
    }

    /// The dispatcher events go to.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.shared.dispatcher
    }
}

impl<S> tower_layer::Layer<S> for NotificationLayer {
    type Service = Notification<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Notification::new(inner, self.shared.clone())
    }
}
