//! Per-endpoint event filter: Distribution's `ignore` rules plus repository and method rules.
//!
//! A [`Filter`] drops an event when **any** of these holds:
//!
//! * its target media type is one of [`ignore_media_types`](Filter::ignore_media_types)
//!   (Distribution's `ignoredmediatypes` ∪ `ignore.mediatypes`, exact match);
//! * its action is one of [`ignore_actions`](Filter::ignore_actions) — independent of the
//!   media types (Distribution 2.x and 3.0 silently ignored the actions when no media type
//!   was listed; 3.1 fixed that, and so do we);
//! * its request method is one of [`ignore_methods`](Filter::ignore_methods) (e.g. `HEAD`
//!   to drop HEAD pulls), case-insensitive;
//! * include globs are set and its repository matches none of them, or its repository
//!   matches one of the exclude globs.
//!
//! Repository globs match path segments: `*` matches within one segment (`library/*`
//! matches `library/alpine`, not `library/a/b`), `**` as a whole segment matches any
//! number of segments, including none (`team/**` matches `team`, `team/a` and `team/a/b`).
//!
//! [`FilterLayer`] puts the filter in front of a sink: filtered events are counted in the
//! endpoint's `filtered` metric and never reach the queue (so they are not in `events`);
//! a batch left empty is not forwarded at all.
//!
//! ```
//! use registry_notify::{filter::Filter, Action, Event, Target};
//!
//! let filter = Filter::new()
//!     .ignore_actions([Action::Pull])
//!     .include_repositories(["library/*", "team/**"])
//!     .unwrap();
//! let mut event = Event::new(Action::Push, Target::default());
//! event.target.repository = "library/alpine".into();
//! assert!(filter.allows(&event));
//! event.target.repository = "other/alpine".into();
//! assert!(!filter.allows(&event));
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::error::ConfigError;
use crate::event::{Action, Batch, Event};
use crate::metrics::EndpointMetrics;
use crate::sink::BoxError;

/// The rule set of a per-endpoint filter (see the [module docs](self)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    media_types: Vec<String>,
    actions: Vec<Action>,
    methods: Vec<String>,
    include: Vec<Glob>,
    exclude: Vec<Glob>,
}

impl Filter {
    /// A filter that lets every event through.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops events whose target media type equals one of `media_types` (exact match).
    /// Calls accumulate, so Distribution's `ignoredmediatypes` and `ignore.mediatypes`
    /// can both be added.
    pub fn ignore_media_types<I, S>(mut self, media_types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for m in media_types {
            let m = m.into();
            if !self.media_types.contains(&m) {
                self.media_types.push(m);
            }
        }
        self
    }

    /// Drops events with one of `actions`, whether or not media types are ignored too.
    pub fn ignore_actions<I>(mut self, actions: I) -> Self
    where
        I: IntoIterator<Item = Action>,
    {
        for a in actions {
            if !self.actions.contains(&a) {
                self.actions.push(a);
            }
        }
        self
    }

    /// Drops events whose request method is one of `methods` (case-insensitive), e.g.
    /// `["HEAD"]` to drop the pulls Distribution reports for HEAD requests.
    pub fn ignore_methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for m in methods {
            let m = m.into().to_ascii_uppercase();
            if !self.methods.contains(&m) {
                self.methods.push(m);
            }
        }
        self
    }

    /// Keeps only events whose repository matches one of `globs` (accumulates).
    ///
    /// Errors on an empty glob, an empty path segment, or `**` mixed with other characters
    /// in a segment.
    pub fn include_repositories<I, S>(mut self, globs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for g in globs {
            self.include.push(Glob::parse(g.as_ref())?);
        }
        Ok(self)
    }

    /// Drops events whose repository matches one of `globs` (accumulates); exclusion wins
    /// over inclusion. Errors like [`include_repositories`](Self::include_repositories).
    pub fn exclude_repositories<I, S>(mut self, globs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for g in globs {
            self.exclude.push(Glob::parse(g.as_ref())?);
        }
        Ok(self)
    }

    /// Whether the filter has no rule at all (lets everything through).
    pub fn is_empty(&self) -> bool {
        self.media_types.is_empty()
            && self.actions.is_empty()
            && self.methods.is_empty()
            && self.include.is_empty()
            && self.exclude.is_empty()
    }

    /// Whether `event` passes the filter.
    pub fn allows(&self, event: &Event) -> bool {
        if self
            .media_types
            .iter()
            .any(|m| *m == event.target.descriptor.media_type)
        {
            return false;
        }
        if self.actions.contains(&event.action) {
            return false;
        }
        if !self.methods.is_empty()
            && self
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&event.request.method))
        {
            return false;
        }
        let repo = event.target.repository.as_str();
        if !self.include.is_empty() && !self.include.iter().any(|g| g.matches(repo)) {
            return false;
        }
        !self.exclude.iter().any(|g| g.matches(repo))
    }
}

/// A compiled repository glob.
#[derive(Clone, PartialEq, Eq)]
struct Glob {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// `**`: any number of segments.
    Any,
    /// A segment pattern where `*` matches any run of characters.
    Pattern(String),
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.source, f)
    }
}

impl Glob {
    fn parse(source: &str) -> Result<Self, ConfigError> {
        let err = |why: &str| ConfigError::new(format!("invalid repository glob {source:?}: {why}"));
        if source.is_empty() {
            return Err(err("empty pattern"));
        }
        let mut segments = Vec::new();
        for seg in source.split('/') {
            if seg.is_empty() {
                return Err(err("empty path segment"));
            }
            if seg == "**" {
                // Consecutive `**` are the same as one.
                if segments.last() != Some(&Segment::Any) {
                    segments.push(Segment::Any);
                }
            } else if seg.contains("**") {
                return Err(err("`**` must be a whole path segment"));
            } else {
                segments.push(Segment::Pattern(seg.to_owned()));
            }
        }
        Ok(Self {
            source: source.to_owned(),
            segments,
        })
    }

    fn matches(&self, repository: &str) -> bool {
        let parts: Vec<&str> = repository.split('/').collect();
        match_segments(&self.segments, &parts)
    }
}

fn match_segments(pattern: &[Segment], parts: &[&str]) -> bool {
    match pattern.split_first() {
        None => parts.is_empty(),
        Some((Segment::Any, rest)) => (0..=parts.len()).any(|skip| match_segments(rest, &parts[skip..])),
        Some((Segment::Pattern(p), rest)) => match parts.split_first() {
            Some((first, tail)) => {
                match_wildcard(p.as_bytes(), first.as_bytes()) && match_segments(rest, tail)
            }
            None => false,
        },
    }
}

/// `*` matches any run of bytes (the caller already split on `/`); everything else is literal.
fn match_wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Puts a [`Filter`] in front of a sink; see [`FilterService`].
#[derive(Clone, Debug)]
pub struct FilterLayer {
    filter: Arc<Filter>,
    metrics: Option<Arc<EndpointMetrics>>,
}

impl FilterLayer {
    /// A layer applying `filter`.
    pub fn new(filter: Filter) -> Self {
        Self {
            filter: Arc::new(filter),
            metrics: None,
        }
    }

    /// Counts filtered events in `metrics` (`filtered`).
    pub fn metrics(mut self, metrics: Arc<EndpointMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl<S> Layer<S> for FilterLayer {
    type Service = FilterService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FilterService {
            inner,
            filter: self.filter.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// A sink that drops the events its [`Filter`] rejects and forwards the rest;
/// a batch left empty is not forwarded.
#[derive(Clone, Debug)]
pub struct FilterService<S> {
    inner: S,
    filter: Arc<Filter>,
    metrics: Option<Arc<EndpointMetrics>>,
}

impl<S> FilterService<S> {
    /// Wraps `inner` with `filter`.
    pub fn new(inner: S, filter: Filter) -> Self {
        FilterLayer::new(filter).layer(inner)
    }

    /// The filter's rules.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// The wrapped sink.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The events of `batch` the filter lets through (counting the others), or `None`
    /// when none is left.
    pub(crate) fn admit(&self, batch: Batch) -> Option<Batch> {
        if self.filter.is_empty() {
            return Some(batch);
        }
        let before = batch.len();
        let batch = batch.retain(|e| self.filter.allows(e));
        let dropped = before - batch.len();
        if dropped > 0 {
            if let Some(m) = &self.metrics {
                m.record_filtered(dropped);
            }
        }
        (!batch.is_empty()).then_some(batch)
    }
}

impl<S> Service<Batch> for FilterService<S>
where
    S: Service<Batch, Response = ()>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, batch: Batch) -> Self::Future {
        let Some(batch) = self.admit(batch) else {
            return Box::pin(std::future::ready(Ok(())));
        };
        let fut = self.inner.call(batch);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(s: &str) -> Glob {
        Glob::parse(s).unwrap()
    }

    #[test]
    fn globs() {
        assert!(glob("library/*").matches("library/alpine"));
        assert!(!glob("library/*").matches("library/a/b"));
        assert!(!glob("library/*").matches("library"));
        assert!(glob("team/**").matches("team"));
        assert!(glob("team/**").matches("team/a/b"));
        assert!(glob("**/cache").matches("a/b/cache"));
        assert!(glob("**/cache").matches("cache"));
        assert!(glob("a/**/z").matches("a/z"));
        assert!(glob("a/**/z").matches("a/b/c/z"));
        assert!(!glob("a/**/z").matches("a/b/c"));
        assert!(glob("*-dev/*").matches("web-dev/api"));
        assert!(glob("l*y/al*e").matches("library/alpine"));
        assert!(!glob("l*y/al*e").matches("library/alpines"));
        assert!(glob("**").matches("anything/at/all"));
        assert!(glob("exact/name").matches("exact/name"));
        assert!(!glob("exact/name").matches("exact/names"));
    }

    #[test]
    fn bad_globs() {
        for bad in ["", "a//b", "/a", "a/", "a**/b", "a/**b"] {
            let err = Glob::parse(bad).unwrap_err().to_string();
            assert!(err.contains("invalid repository glob"), "{bad}: {err}");
        }
    }

    #[test]
    fn methods_case_insensitive() {
        let f = Filter::new().ignore_methods(["head"]);
        let mut e = Event::new(Action::Pull, Default::default());
        e.request.method = "HEAD".into();
        assert!(!f.allows(&e));
        e.request.method = "GET".into();
        assert!(f.allows(&e));
    }

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

    /// Backpressure passes through: the filter is ready exactly when the inner sink is, and
    /// its readiness error comes out, whatever the filter would drop.
    #[test]
    fn poll_ready_asks_the_inner_sink() {
        let gate = Gate::default();
        let mut svc = FilterService::new(gate.clone(), Filter::new().ignore_actions([Action::Pull]));
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
        let mut svc = FilterService::new(gate.clone(), Filter::new());
        assert!(svc.poll_ready(&mut cx).is_pending());
        gate.state.lock().unwrap().0 = Some(true);
        assert!(svc.poll_ready(&mut cx).is_ready());
    }

    /// Dropped events never reach the inner sink; a batch left empty is not forwarded.
    #[test]
    fn call_forwards_only_what_passes() {
        let gate = Gate::default();
        gate.state.lock().unwrap().0 = Some(true);
        let mut svc = FilterService::new(gate.clone(), Filter::new().ignore_actions([Action::Pull]));
        let batch: Batch = [Action::Pull, Action::Push, Action::Pull]
            .into_iter()
            .map(|a| Event::new(a, Default::default()))
            .collect();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut fut = svc.call(batch);
        assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
        assert_eq!(gate.state.lock().unwrap().1, 1);
        let mut fut = svc.call(Batch::from(Event::new(Action::Pull, Default::default())));
        assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
        assert_eq!(gate.state.lock().unwrap().1, 1);
    }
}
