//! Per-endpoint event filter: Distribution's `ignore` rules plus repository, tag and method rules.
//!
//! [`FilterRules`] drop an event when **any** of these holds:
//!
//! * its target media type is one of [`ignore_media_types`](FilterRules::ignore_media_types)
//!   (Distribution's `ignoredmediatypes` ∪ `ignore.mediatypes`, exact match);
//! * its action is one of [`ignore_actions`](FilterRules::ignore_actions) — independent of the
//!   media types (Distribution 2.x and 3.0 silently ignored the actions when no media type
//!   was listed; 3.1 fixed that, and so do we);
//! * its request method is one of [`ignore_methods`](FilterRules::ignore_methods) (e.g. `HEAD`
//!   to drop HEAD pulls), case-insensitive;
//! * include globs are set and its repository matches none of them, or its repository
//!   matches one of the exclude globs;
//! * [tag include globs](FilterRules::include_tags) are set and it has no tag or its tag
//!   matches none of them, or it has a tag matching one of the
//!   [tag exclude globs](FilterRules::exclude_tags).
//!
//! Repository globs match path segments: `*` matches within one segment (`library/*`
//! matches `library/alpine`, not `library/a/b`), `**` as a whole segment matches any
//! number of segments, including none (`team/**` matches `team`, `team/a` and `team/a/b`).
//!
//! [`EventFilterLayer`] puts the rules in front of a sink ([`EventFilter`]): filtered events are counted in the
//! endpoint's `filtered` metric and never reach the queue (so they are not in `events`);
//! a batch left empty is not forwarded at all.
//!
//! ```
//! use registry_notify::{filter::FilterRules, Action, Event, Target};
//!
//! let filter = FilterRules::new()
//!     .ignore_actions([Action::Pull])
//!     .include_repositories(["library/*", "team/**"])
//!     .unwrap();
//! let mut event = Event::new(Action::Push, Target::default());
//! event.target.repository = "library/alpine".into();
//! assert!(filter.allows(&event));
//! event.target.repository = "other/alpine".into();
//! assert!(!filter.allows(&event));
//! ```

mod rules;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub use rules::FilterRules;

use crate::event::Batch;
use crate::metrics::EndpointMetrics;
use crate::sink::BoxError;

/// Puts [`FilterRules`] in front of a sink; see [`EventFilter`].
#[derive(Clone, Debug)]
pub struct EventFilterLayer {
    rules: Arc<FilterRules>,
    metrics: Option<Arc<EndpointMetrics>>,
}

impl EventFilterLayer {
    /// A layer applying `rules`.
    pub fn new(rules: FilterRules) -> Self {
        Self {
            rules: Arc::new(rules),
            metrics: None,
        }
    }

    /// Counts filtered events in `metrics` (`filtered`).
    pub fn metrics(mut self, metrics: Arc<EndpointMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl<S> Layer<S> for EventFilterLayer {
    type Service = EventFilter<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EventFilter {
            inner,
            shared: Arc::new(Shared {
                rules: (*self.rules).clone(),
                metrics: self.metrics.clone(),
            }),
        }
    }
}

/// A sink that drops the events its [`FilterRules`] reject and forwards the rest;
/// a batch left empty is not forwarded.
#[derive(Clone, Debug)]
pub struct EventFilter<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// The rules and the counters every clone of a filter shares.
#[derive(Debug)]
struct Shared {
    rules: FilterRules,
    metrics: Option<Arc<EndpointMetrics>>,
}

impl<S> EventFilter<S> {
    /// The rules.
    pub fn rules(&self) -> &FilterRules {
        &self.shared.rules
    }

    /// The wrapped sink.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The events of `batch` the rules let through (counting the others), or `None`
    /// when none is left.
    fn admit(&self, batch: Batch) -> Option<Batch> {
        let shared = &*self.shared;
        if shared.rules.is_empty() {
            return Some(batch);
        }
        let before = batch.len();
        let batch = batch.retain(|e| shared.rules.allows(e));
        let dropped = before - batch.len();
        if dropped > 0 {
            if let Some(m) = &shared.metrics {
                m.record_filtered(dropped);
            }
        }
        (!batch.is_empty()).then_some(batch)
    }
}

impl<S> Service<Batch> for EventFilter<S>
where
    S: Service<Batch, Response = ()>,
    S::Error: Into<BoxError>,
{
    type Response = ();
    type Error = BoxError;
    type Future = FilterFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, batch: Batch) -> Self::Future {
        match self.admit(batch) {
            Some(batch) => FilterFuture::forwarded(self.inner.call(batch)),
            None => FilterFuture::dropped(),
        }
    }
}

pin_project! {
    /// The future of [`EventFilter`]'s `call`: the inner sink's, or ready at once when no
    /// event was left to forward.
    #[derive(Debug)]
    pub struct FilterFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F> {
        Forwarded { #[pin] inner: F },
        Dropped,
    }
}

impl<F> FilterFuture<F> {
    /// Nothing was forwarded: ready at once.
    pub(crate) fn dropped() -> Self {
        Self { kind: Kind::Dropped }
    }

    fn forwarded(inner: F) -> Self {
        Self {
            kind: Kind::Forwarded { inner },
        }
    }
}

impl<F, E> Future for FilterFuture<F>
where
    F: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Forwarded { inner } => inner.poll(cx).map_err(Into::into),
            KindProj::Dropped => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Event};

    /// An inner sink whose readiness the test controls, counting the batches it gets.
    #[derive(Clone, Default)]
    struct Gate {
        state: Arc<std::sync::Mutex<(Option<bool>, usize)>>,
    }

    impl Service<Batch> for Gate {
        type Response = ();
        type Error = BoxError;
        type Future = std::future::Ready<Result<(), BoxError>>;

        /// `None`: not ready; `Some(true)`: ready; `Some(false)`: failed.
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            match self.state.lock().unwrap().0 {
                None => Poll::Pending,
                Some(true) => Poll::Ready(Ok(())),
                Some(false) => Poll::Ready(Err("inner failed".into())),
            }
        }

        fn call(&mut self, batch: Batch) -> Self::Future {
            self.state.lock().unwrap().1 += batch.len();
            std::future::ready(Ok(()))
        }
    }

    #[test]
    fn the_stage_shows_its_rules_and_inner_sink() {
        let rules = FilterRules::new().ignore_actions([Action::Pull]);
        let filter = EventFilterLayer::new(rules.clone()).layer(7u8);
        assert_eq!(filter.rules(), &rules);
        assert_ne!(filter.rules(), &FilterRules::default());
        assert!(FilterRules::default().is_empty());
        assert!(!rules.is_empty());
        let each = [
            FilterRules::new().ignore_media_types(["m"]),
            FilterRules::new().ignore_methods(["HEAD"]),
            FilterRules::new().include_repositories(["a/*"]).unwrap(),
            FilterRules::new().exclude_repositories(["a/*"]).unwrap(),
            FilterRules::new().include_tags(["v*"]).unwrap(),
            FilterRules::new().exclude_tags(["v*"]).unwrap(),
        ];
        assert!(each.iter().all(|r| !r.is_empty()));
        assert_eq!(*filter.get_ref(), 7);
    }

    /// Backpressure passes through: the filter is ready exactly when the inner sink is, and
    /// its readiness error comes out, whatever the filter would drop.
    #[test]
    fn poll_ready_asks_the_inner_sink() {
        let gate = Gate::default();
        let mut svc =
            EventFilterLayer::new(FilterRules::new().ignore_actions([Action::Pull])).layer(gate.clone());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(svc.poll_ready(&mut cx).is_pending());
        gate.state.lock().unwrap().0 = Some(true);
        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        gate.state.lock().unwrap().0 = Some(false);
        match svc.poll_ready(&mut cx) {
            Poll::Ready(Err(e)) => assert_eq!(e.to_string(), "inner failed"),
            other => panic!("{:?}", other.map(|r| r.is_ok())),
        }
        // With an empty filter too (the fast path of `call`).
        let gate = Gate::default();
        let mut svc = EventFilterLayer::new(FilterRules::new()).layer(gate.clone());
        assert!(svc.poll_ready(&mut cx).is_pending());
        gate.state.lock().unwrap().0 = Some(true);
        assert!(svc.poll_ready(&mut cx).is_ready());
    }

    /// Dropped events never reach the inner sink; a batch left empty is not forwarded.
    #[test]
    fn call_forwards_only_what_passes() {
        let gate = Gate::default();
        gate.state.lock().unwrap().0 = Some(true);
        let mut svc =
            EventFilterLayer::new(FilterRules::new().ignore_actions([Action::Pull])).layer(gate.clone());
        let batch: Batch = [Action::Pull, Action::Push, Action::Pull]
            .into_iter()
            .map(|a| Event::new(a, Default::default()))
            .collect();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut fut = svc.call(batch);
        assert!(matches!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(Ok(()))));
        assert_eq!(gate.state.lock().unwrap().1, 1);
        let mut fut = svc.call(Batch::from(Event::new(Action::Pull, Default::default())));
        assert!(matches!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(Ok(()))));
        assert_eq!(gate.state.lock().unwrap().1, 1);
    }
}
