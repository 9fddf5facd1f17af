//! The [`Notification`] service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use tower_service::Service;

use super::body::ResponseBody;
use super::derive::{self, Kind, Missing, Pending};
use super::future::ResponseFuture;
use super::{lookup, NotificationLayer, Shared};
use crate::event::{Batch, Event};
use crate::hint::EventHint;

/// Middleware that derives Distribution's notification events from registry
/// traffic. Built by [`NotificationLayer`].
#[derive(Clone)]
pub struct Notification<S> {
    inner: S,
    shared: Arc<Shared>,
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
        Self { inner, shared }
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
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: http_body::Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        if !self.shared.dispatcher.is_enabled() {
            return ResponseFuture::passthrough(self.inner.call(req));
        }
        let Some(mut pending) = derive::pending(&req, &self.shared) else {
            return ResponseFuture::passthrough(self.inner.call(req));
        };
        if let (Kind::ManifestDelete { digest }, Some(lookup)) = (&pending.kind, &self.shared.lookup) {
            // The tags of the manifest must be read before the delete removes them.
            let digest = digest.clone();
            let lookup = lookup.clone();
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            let fut = async move {
                pending.tags_before_delete =
                    Some(lookup::tags_pointing_at(&*lookup, &pending, &digest).await);
                let result = inner.call(req).await;
                (Box::new(pending), result)
            };
            return ResponseFuture::deferred(Box::pin(fut), self.shared.clone());
        }
        if let (Kind::UploadCommit { .. }, Some(lookup), true) = (
            &pending.kind,
            &self.shared.lookup,
            pending.upload_target.is_some(),
        ) {
            // What the session received is asked before the commit ends the session.
            let lookup = lookup.clone();
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            let fut = async move {
                pending.upload_status_end = lookup::upload_status_end(&*lookup, &pending).await;
                let result = inner.call(req).await;
                (Box::new(pending), result)
            };
            return ResponseFuture::deferred(Box::pin(fut), self.shared.clone());
        }
        ResponseFuture::tracked(self.inner.call(req), pending, self.shared.clone())
    }
}

/// Events derived from one response, on their way to the dispatcher.
pub(crate) struct Ready {
    events: Vec<Event>,
    missing: Missing,
    pending: Box<Pending>,
    shared: Arc<Shared>,
}

impl Ready {
    /// Hands the events over, after looking up missing fields if a lookup
    /// service is configured (off the request path).
    pub(crate) fn deliver(self) {
        let Ready {
            mut events,
            missing,
            pending,
            shared,
        } = self;
        if missing.any() {
            if let (Some(lookup), Ok(rt)) = (shared.lookup.clone(), tokio::runtime::Handle::try_current()) {
                rt.spawn(async move {
                    lookup::fill(
                        &*lookup,
                        &pending,
                        &mut events,
                        missing,
                        shared.include_references,
                    )
                    .await;
                    shared.dispatcher.dispatch(Batch::from(events));
                });
                return;
            }
        }
        shared.dispatcher.dispatch(Batch::from(events));
    }

    /// Like [`deliver`](Self::deliver), but returns the hand-off to await before the response
    /// is released (`fsync: always` endpoints); a lookup of missing fields is awaited too.
    fn deliver_waiting(self) -> Option<Hold> {
        let Ready {
            mut events,
            missing,
            pending,
            shared,
        } = self;
        if missing.any() && shared.lookup.is_some() {
            return Some(Box::pin(async move {
                if let Some(lookup) = shared.lookup.clone() {
                    lookup::fill(
                        &*lookup,
                        &pending,
                        &mut events,
                        missing,
                        shared.include_references,
                    )
                    .await;
                }
                match shared.dispatcher.dispatch_waiting(Batch::from(events)) {
                    Some(wait) => wait.await,
                    None => Ok(()),
                }
            }));
        }
        shared.dispatcher.dispatch_waiting(Batch::from(events))
    }

    /// The response body was not sent to its end: no pull happened.
    pub(crate) fn abort(self) {
        let repository = self.events.first().map_or("", |e| e.target.repository.as_str());
        tracing::debug!(
            repository = %repository,
            events = self.events.len(),
            "response body dropped before its end: pull event not emitted"
        );
    }
}

/// A hand-off the response waits for (`fsync: always`); `Err` when the events could not be
/// made durable, and the response is then replaced by a `503`.
pub(crate) type Hold = crate::dispatcher::Handoff;

/// What [`finish_waiting`] decided.
pub(crate) enum Finished<B> {
    /// The response can go.
    Now(Response<ResponseBody<B>>),
    /// The response goes once the hand-off of its events resolved.
    Hold(Response<B>, Hold),
}

/// [`finish`] for a dispatcher that [waits](crate::dispatcher::Dispatcher::waits_for_sinks).
/// A GET pull emitted at the end of the body cannot hold the response and goes the usual way.
pub(crate) fn finish_waiting<B: http_body::Body>(
    mut pending: Box<Pending>,
    shared: &Arc<Shared>,
    response: Response<B>,
) -> Finished<B> {
    if shared.pull_on_body_end && pending.method == Method::GET {
        return Finished::Now(finish(pending, shared, response));
    }
    let hint = response.extensions().get::<EventHint>();
    let (events, missing) = pending.events(response.status(), response.headers(), hint, shared);
    if events.is_empty() {
        return Finished::Now(response.map(ResponseBody::new));
    }
    let ready = Ready {
        events,
        missing,
        pending,
        shared: shared.clone(),
    };
    match ready.deliver_waiting() {
        None => Finished::Now(response.map(ResponseBody::new)),
        Some(hold) => Finished::Hold(response, hold),
    }
}

/// Turns a response into events and wraps its body.
pub(crate) fn finish<B: http_body::Body>(
    mut pending: Box<Pending>,
    shared: &Arc<Shared>,
    response: Response<B>,
) -> Response<ResponseBody<B>> {
    let hint = response.extensions().get::<EventHint>();
    let (events, missing) = pending.events(response.status(), response.headers(), hint, shared);
    if events.is_empty() {
        return response.map(ResponseBody::new);
    }
    let wait_for_body = shared.pull_on_body_end
        && pending.method == Method::GET
        && matches!(pending.kind, Kind::ManifestPull { .. } | Kind::BlobPull { .. })
        && !matches!(response.status().as_u16(), 204 | 304);
    let ready = Ready {
        events,
        missing,
        pending,
        shared: shared.clone(),
    };
    if wait_for_body {
        let length = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        response.map(|body| ResponseBody::on_end(body, ready, length))
    } else {
        ready.deliver();
        response.map(ResponseBody::new)
    }
}
