//! Lookups through the wrapped service itself: what the layer asks, by default, when the
//! exchange lacks a field and no [lookup service](super::NotificationLayer::lookup) was given.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use tower_service::Service;

use super::request_body::RequestBody;

/// The wrapped service as a lookup service: a request of the layer's own goes to it with an
/// empty [`RequestBody`], past the layer (so it yields no event of its own).
///
/// The `Mutex` makes it `Sync` for any `Send` service; it is locked only to clone the
/// service for a lookup, never on the request path.
pub(crate) struct Wrapped<S, B> {
    svc: Mutex<S>,
    _body: PhantomData<fn(B)>,
}

impl<S, B> Wrapped<S, B> {
    pub(crate) fn new(svc: S) -> Self {
        Self {
            svc: Mutex::new(svc),
            _body: PhantomData,
        }
    }

    fn svc(&mut self) -> &mut S {
        self.svc.get_mut().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S: Clone, B> Clone for Wrapped<S, B> {
    fn clone(&self) -> Self {
        let svc = self.svc.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Self::new(svc)
    }
}

impl<S, B> Service<Request<Empty<Bytes>>> for Wrapped<S, B>
where
    S: Service<Request<RequestBody<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.svc().poll_ready(cx)
    }

    fn call(&mut self, req: Request<Empty<Bytes>>) -> S::Future {
        self.svc().call(req.map(|_| RequestBody::empty()))
    }
}

/// Whether the wrapped registry attaches [`EventHint`](crate::EventHint)s, learned from the
/// responses that yield events. A registry that does is never asked anything before its
/// response (the tags before a delete by digest, an upload's status before its commit).
#[derive(Debug, Default)]
pub(crate) struct HintsSeen(AtomicU8);

const UNKNOWN: u8 = 0;
const HINTS: u8 = 1;
const NO_HINTS: u8 = 2;

impl HintsSeen {
    /// A response that yielded events did (`true`) or did not carry a hint. One hint is
    /// enough: a registry that attaches them may leave them off where nothing is missing.
    pub(crate) fn saw(&self, hint: bool) {
        if hint {
            if self.0.load(Ordering::Relaxed) != HINTS {
                self.0.store(HINTS, Ordering::Relaxed);
            }
        } else if self.0.load(Ordering::Relaxed) == UNKNOWN {
            let _ = self
                .0
                .compare_exchange(UNKNOWN, NO_HINTS, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Whether the registry is known to attach no hints.
    pub(crate) fn none(&self) -> bool {
        self.0.load(Ordering::Relaxed) == NO_HINTS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hint_is_enough() {
        let h = HintsSeen::default();
        assert!(!h.none(), "unknown is not 'none'");
        h.saw(false);
        assert!(h.none());
        h.saw(true);
        assert!(!h.none());
        h.saw(false);
        assert!(!h.none(), "hints stay known");
    }
}
