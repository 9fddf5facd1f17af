//! The [`Notification`] service.

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::body::ResponseBody;
use super::derive::{self, Kind};
use super::future::ResponseFuture;
use super::lookup_service::{Lookup, ServiceLookup};
use super::request_body::{RequestBody, Tap, MANIFEST_LIMIT};
use super::shared::Shared;
use super::wrapped::Wrapped;
use super::{lookup, NotificationLayer};

/// Middleware that derives Distribution's notification events from registry
/// traffic. Built by [`NotificationLayer`].
#[derive(Clone)]
pub struct Notification<S> {
    inner: S,
    shared: Arc<Shared>,
    /// The wrapped service as a lookup service, made on first need (shared by clones).
    wrapped: Arc<OnceLock<Arc<dyn Lookup>>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Notification<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notification")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Notification<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self {
            inner,
            shared,
            wrapped: Arc::default(),
        }
    }

    /// The service asked for what an exchange lacks: the one given to
    /// [`NotificationLayer::lookup`], else the wrapped service itself (unless
    /// [turned off](NotificationLayer::wrapped_lookups)).
    fn lookup<ReqBody, ResBody>(&self) -> Option<Arc<dyn Lookup>>
    where
        S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        ReqBody: 'static,
        ResBody: http_body::Body + Send + 'static,
        ResBody::Data: Send,
        ResBody::Error: Into<crate::sink::BoxError>,
    {
        if let Some(l) = &self.shared.lookup {
            return Some(l.clone());
        }
        if !self.shared.wrapped_lookups {
            return None;
        }
        let lookup = self
            .wrapped
            .get_or_init(|| Arc::new(ServiceLookup(Wrapped::<S, ReqBody>::new(self.inner.clone()))));
        Some(lookup.clone())
    }

    /// A [`NotificationLayer`] wrapping services with the same settings.
    pub fn layer(&self) -> NotificationLayer {
        NotificationLayer::from_shared(self.shared.clone())
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Notification<S>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: http_body::Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<crate::sink::BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if !self.shared.dispatcher.is_enabled() {
            return ResponseFuture::passthrough(self.inner.call(req.map(RequestBody::new)));
        }
        let Some(mut pending) = derive::pending(&req, &self.shared) else {
            return ResponseFuture::passthrough(self.inner.call(req.map(RequestBody::new)));
        };
        pending.lookup = self.lookup::<ReqBody, ResBody>();
        // Asking before the request is forwarded is for registries known to attach no hints.
        let ask_first = self.shared.lookup.is_some() || self.shared.hints.none();
        let tap = match pending.kind {
            // What the manifest's own bytes say (its size without a `Content-Length`, its
            // media type, its references) is read from the body the client sends.
            Kind::ManifestPush { .. } => Some(Tap::new(MANIFEST_LIMIT)),
            // An upload's bytes are counted as they pass (the size of a chunked upload).
            Kind::UploadStart { .. } | Kind::UploadChunk | Kind::UploadCommit { .. } => Some(Tap::new(0)),
            _ => None,
        };
        let req = match tap {
            Some(tap) => {
                pending.body_tap = Some(tap.clone());
                req.map(|body| RequestBody::tapped(body, tap))
            }
            None => req.map(RequestBody::new),
        };
        if let (Kind::ManifestDelete { digest }, Some(lookup), true) =
            (&pending.kind, &pending.lookup, ask_first)
        {
            // The tags of the manifest must be read before the delete removes them.
            let digest = digest.clone();
            let lookup = lookup.clone();
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            let fut = async move {
                pending.tags_before_delete =
                    Some(lookup::tags_pointing_at(&*lookup, &pending, &digest).await);
                let result = inner.call(req).await;
                (pending, result)
            };
            return ResponseFuture::deferred(Box::pin(fut), self.shared.clone());
        }
        if let (Kind::UploadCommit { .. }, Some(lookup), true) = (
            &pending.kind,
            &pending.lookup,
            // Even when every request of the session passed here: another instance may have
            // taken a chunk of it (a split upload), and only the registry knows.
            pending.upload_target.is_some() && ask_first,
        ) {
            // What the session received is asked before the commit ends the session.
            let lookup = lookup.clone();
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            let fut = async move {
                pending.upload_status_end = lookup::upload_status_end(&*lookup, &pending).await;
                let result = inner.call(req).await;
                (pending, result)
            };
            return ResponseFuture::deferred(Box::pin(fut), self.shared.clone());
        }
        ResponseFuture::tracked(self.inner.call(req), pending, self.shared.clone())
    }
}
