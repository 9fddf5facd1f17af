//! What becomes of a response's events: made from the response ([`finish`], or
//! [`finish_waiting`] when the dispatcher waits for its sinks), completed with what a manifest
//! body or a lookup gives, and handed to the dispatcher ([`Ready`]) — at once, once the
//! response body has been sent to its end, or before the response goes (`fsync: always`).
//!
//! The response future (`future.rs`) and the response body (`body.rs`) carry out what it
//! decides; it knows neither of them.

use std::sync::Arc;

use http::{Method, Response};

use super::derive::{Kind, Missing, Pending};
use super::lookup;
use super::manifest::references;
use super::shared::Shared;
use crate::event::{Action, Batch, Event};
use crate::hint::EventHint;

/// Events derived from one response, on their way to the dispatcher.
pub(crate) struct Ready {
    events: Batch,
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
                        events.events_mut(),
                        missing,
                        shared.include_references,
                    )
                    .await;
                    report_unknown(&pending, &events, true);
                    shared.dispatcher.dispatch(events);
                });
                return;
            }
            report_unknown(&pending, &events, false);
        }
        shared.dispatcher.dispatch(events);
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
                        events.events_mut(),
                        missing,
                        shared.include_references,
                    )
                    .await;
                    report_unknown(&pending, &events, true);
                    match shared.dispatcher.dispatch_waiting(events) {
                        Some(wait) => wait.await,
                        None => Ok(()),
                    }
                }));
            }
            report_unknown(&pending, &events, false);
        }
        shared.dispatcher.dispatch_waiting(events)
    }

    /// Like [`deliver`](Self::deliver), once the manifest body that passed through was read:
    /// `body` (`None` when it was not kept whole) gives the fields the events still miss,
    /// so that only what it cannot give is looked up.
    pub(crate) fn deliver_with_body(mut self, body: Option<bytes::Bytes>) {
        if let Some(body) = body.filter(|b| !b.is_empty()) {
            manifest_from_body(
                &body,
                self.events.events_mut(),
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

/// When the events of a response go, as [`finish`] decided; the response body carries out
/// what waits for its end ([`ResponseBody::delivering`](super::body::ResponseBody::delivering)).
pub(crate) enum Delivery {
    /// Handed over already, or there were none: the body passes as it is.
    Done,
    /// Once the body has been sent to its end (`pull_on_body_end`); `length` is the response's
    /// `Content-Length`.
    AtEnd { ready: Ready, length: Option<u64> },
    /// Once the body has been sent to its end, with the fields the manifest it carries gives;
    /// `sent_only`: the events go only if it was sent to its end.
    Reading {
        ready: Ready,
        length: Option<u64>,
        sent_only: bool,
    },
}

/// What [`finish_waiting`] decided.
pub(crate) enum Finished {
    /// The response can go; its events go as said.
    Now(Delivery),
    /// The response goes once the hand-off of its events resolved.
    Hold(Hold),
}

/// [`finish`] for a dispatcher that [waits](crate::dispatcher::Dispatcher::waits_for_sinks).
/// A GET pull emitted at the end of the body cannot hold the response and goes the usual way.
pub(crate) fn finish_waiting<B>(
    mut pending: Box<Pending>,
    shared: &Arc<Shared>,
    response: &Response<B>,
) -> Finished {
    if shared.pull_on_body_end && pending.method == Method::GET {
        return Finished::Now(finish(pending, shared, response));
    }
    let hint = response.extensions().get::<EventHint>();
    let (mut events, mut missing) = pending.events(response.status(), response.headers(), hint, shared);
    if events.is_empty() {
        return Finished::Now(Delivery::Done);
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
        None => Finished::Now(Delivery::Done),
        Some(hold) => Finished::Hold(hold),
    }
}

/// Turns a response into events, and says when they go.
pub(crate) fn finish<B>(mut pending: Box<Pending>, shared: &Arc<Shared>, response: &Response<B>) -> Delivery {
    let hint = response.extensions().get::<EventHint>();
    let (mut events, mut missing) = pending.events(response.status(), response.headers(), hint, shared);
    if events.is_empty() {
        return Delivery::Done;
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
            Delivery::Reading {
                ready,
                length,
                sent_only: wait_for_body,
            }
        } else {
            Delivery::AtEnd { ready, length }
        }
    } else {
        ready.deliver();
        Delivery::Done
    }
}

/// A manifest `PUT` whose body the layer kept as it passed: the fields it gives.
fn from_request_body(pending: &Pending, shared: &Shared, events: &mut Batch, missing: &mut Missing) {
    if let Some(body) = pending.body_tap.as_ref().and_then(|t| t.complete()) {
        manifest_from_body(&body, events.events_mut(), missing, shared.include_references);
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
    let Some(references) = references(body) else {
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
