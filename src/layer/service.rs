//! The [`Notification`] service.

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use tower_service::Service;

use super::body::ResponseBody;
use super::derive::{self, Kind, Missing, Pending};
use super::future::ResponseFuture;
use super::lookup_service::{Lookup, ServiceLookup};
use super::request_body::{RequestBody, Tap, MANIFEST_LIMIT};
use super::wrapped::Wrapped;
use super::{lookup, manifest, NotificationLayer, Shared};
use crate::event::{Action, Batch, Event};
use crate::hint::EventHint;

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
                (Box::new(pending), result)
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
            if let (Some(lookup), Ok(rt)) = (pending.lookup.clone(), tokio::runtime::Handle::try_current()) {
                rt.spawn(async move {
                    lookup::fill(
                        &*lookup,
                        &pending,
                        &mut events,
                        missing,
                        shared.include_references,
                    )
                    .await;
                    report_unknown(&pending, &events, true);
                    shared.dispatcher.dispatch(Batch::from(events));
                });
                return;
            }
            report_unknown(&pending, &events, false);
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
        if missing.any() {
            if let Some(lookup) = pending.lookup.clone() {
                return Some(Box::pin(async move {
                    lookup::fill(
                        &*lookup,
                        &pending,
                        &mut events,
                        missing,
                        shared.include_references,
                    )
                    .await;
                    report_unknown(&pending, &events, true);
                    match shared.dispatcher.dispatch_waiting(Batch::from(events)) {
                        Some(wait) => wait.await,
                        None => Ok(()),
                    }
                }));
            }
            report_unknown(&pending, &events, false);
        }
        shared.dispatcher.dispatch_waiting(Batch::from(events))
    }

    /// Like [`deliver`](Self::deliver), once the manifest body that passed through was read:
    /// `body` (`None` when it was not kept whole) gives the fields the events still miss,
    /// so that only what it cannot give is looked up.
    pub(crate) fn deliver_with_body(mut self, body: Option<bytes::Bytes>) {
        if let Some(body) = body.filter(|b| !b.is_empty()) {
            manifest_from_body(
                &body,
                &mut self.events,
                &mut self.missing,
                self.shared.include_references,
            );
            // A later HEAD of the same manifest needs no lookup for them.
            if let Some(memo) = &self.shared.memo {
                for e in self.events.iter().filter(|e| !e.target.references.is_empty()) {
                    memo.remember_references(&e.target.descriptor.digest, &e.target.references);
                }
            }
        }
        self.deliver();
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
    let (mut events, mut missing) = pending.events(response.status(), response.headers(), hint, shared);
    if events.is_empty() {
        return Finished::Now(response.map(ResponseBody::new));
    }
    shared.hints.saw(hint.is_some());
    from_request_body(&pending, shared, &mut events, &mut missing);
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
    let (mut events, mut missing) = pending.events(response.status(), response.headers(), hint, shared);
    if events.is_empty() {
        return response.map(ResponseBody::new);
    }
    shared.hints.saw(hint.is_some());
    from_request_body(&pending, shared, &mut events, &mut missing);
    let wait_for_body = shared.pull_on_body_end
        && pending.method == Method::GET
        && matches!(pending.kind, Kind::ManifestPull { .. } | Kind::BlobPull { .. })
        && !matches!(response.status().as_u16(), 204 | 304);
    // A manifest GET whose events miss what its body says: read it as it passes.
    let read_body = missing.manifest
        && pending.method == Method::GET
        && matches!(pending.kind, Kind::ManifestPull { .. })
        && response.status() == http::StatusCode::OK;
    let ready = Ready {
        events,
        missing,
        pending,
        shared: shared.clone(),
    };
    if wait_for_body || read_body {
        let length = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if read_body {
            response.map(|body| ResponseBody::on_end_reading(body, ready, length, wait_for_body))
        } else {
            response.map(|body| ResponseBody::on_end(body, ready, length))
        }
    } else {
        ready.deliver();
        response.map(ResponseBody::new)
    }
}

/// A manifest `PUT` whose body the layer kept as it passed: the fields it gives.
fn from_request_body(pending: &Pending, shared: &Shared, events: &mut [Event], missing: &mut Missing) {
    if let Some(body) = pending.body_tap.as_ref().and_then(|t| t.complete()) {
        manifest_from_body(&body, events, missing, shared.include_references);
    }
}

/// Fills what a manifest's own bytes say — its size, its media type (the `mediaType`
/// member) and, when `refs`, its references — into events that miss them, and clears
/// `missing.manifest` when nothing is left to look up.
pub(crate) fn manifest_from_body(body: &[u8], events: &mut [Event], missing: &mut Missing, refs: bool) {
    if !missing.manifest || body.is_empty() {
        return;
    }
    #[derive(serde::Deserialize)]
    struct MediaType<'a> {
        #[serde(rename = "mediaType", borrow, default)]
        media_type: Option<std::borrow::Cow<'a, str>>,
    }
    let Some(references) = manifest::references(body) else {
        // Not a manifest we can read: a lookup may know better.
        return;
    };
    let media_type = serde_json::from_slice::<MediaType<'_>>(body)
        .ok()
        .and_then(|m| m.media_type);
    let size = i64::try_from(body.len()).ok();
    for e in events.iter_mut() {
        let d = &mut e.target.descriptor;
        if d.size == 0 {
            if let Some(size) = size {
                d.size = size;
                e.target.length = size;
            }
        }
        if d.media_type.is_empty() {
            if let Some(m) = &media_type {
                d.media_type = m.as_ref().into();
            }
        }
        if refs && e.target.references.is_empty() {
            e.target.references = references.clone();
        }
    }
    missing.manifest = events
        .iter()
        .any(|e| e.target.descriptor.media_type.is_empty() || e.target.descriptor.size == 0);
}

/// Says (at most once a minute) that an event goes out without a field Distribution would
/// fill — a blob's size, a manifest's media type — rather than sending a silent 0: the
/// registry attached no [`EventHint`], and no lookup was possible or it failed.
fn report_unknown(pending: &Pending, events: &[Event], looked_up: bool) {
    static LOG: crate::log_limit::LogLimiter =
        crate::log_limit::LogLimiter::new(std::time::Duration::from_secs(60));
    let unknown = events.iter().find(|e| {
        matches!(e.action, Action::Push | Action::Pull | Action::Mount)
            && !e.target.descriptor.digest.is_empty()
            && (e.target.descriptor.size == 0 || e.target.descriptor.media_type.is_empty())
    });
    let Some(e) = unknown else { return };
    if let Some(suppressed) = LOG.check() {
        let field = if e.target.descriptor.size == 0 {
            "size"
        } else {
            "mediaType"
        };
        let why = if looked_up {
            "the lookup did not find it"
        } else {
            "no lookup service (NotificationLayer::lookup, or wrapped_lookups)"
        };
        tracing::warn!(
            repository = %pending.name, action = %e.action, digest = %e.target.descriptor.digest,
            field, suppressed,
            "event sent without its {field}: the response carried no EventHint and {why}"
        );
    }
}
