//! The hand-off from the request path to the delivery pipeline.
//!
//! A [`Dispatcher`] owns the head of the sink stack. The one
//! [`Notifications::builder`](crate::notifications::Notifications::builder) makes
//! pushes each batch straight into every endpoint's filter and queue, through a
//! shared reference: no sink is cloned, no future boxed, and the last endpoint gets
//! the batch itself, so the queue takes the events without copying them. Other
//! sinks (a [`Dispatcher::new`] sink, custom sinks of the builder, behind a
//! [`Broadcast`](crate::broadcast::Broadcast)) are called as tower services without
//! waiting: the sink's readiness and response futures are polled once in place,
//! and only if one is still pending is it moved to a spawned task. Either way a
//! request pays for building its events and one push per endpoint — and with no
//! sink at all, nothing.
//!
//! ```
//! use registry_notify::{dispatcher::Dispatcher, sink::{BoxError, BoxSink}, Action, Batch, Event, Target};
//! use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
//!
//! let seen = Arc::new(AtomicUsize::new(0));
//! let s = seen.clone();
//! let sink = BoxSink::new(tower::service_fn(move |b: Batch| {
//!     s.fetch_add(b.len(), Ordering::SeqCst);
//!     async { Ok::<(), BoxError>(()) }
//! }));
//! let dispatcher = Dispatcher::new(sink);
//! dispatcher.dispatch(Batch::from(Event::new(Action::Push, Target::default())));
//! assert_eq!(seen.load(Ordering::SeqCst), 1);
//! assert!(!Dispatcher::disabled().is_enabled());
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tower::{Service, ServiceExt};

use crate::event::Batch;
use crate::log_limit::LogLimiter;
use crate::sink::{BoxError, BoxSink, DeliveryError};

/// A hand-off the caller awaits before answering its request (see
/// [`Dispatcher::dispatch_waiting`]); `Err` means the events are not durable.
pub type Handoff = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// A sink front that takes a batch synchronously, through a shared reference: the
/// filter → queue head of an endpoint stack. The dispatcher hands batches to these
/// directly — no sink clone, no boxed future, and the batch itself (not a copy) to the
/// last of them.
pub(crate) trait Enqueue: Send + Sync + 'static {
    /// Takes `batch` without waiting; fails only when the endpoint is shut down.
    fn enqueue(&self, batch: Batch) -> Result<(), BoxError>;
}

/// Hands batches of events to the sink stack without blocking the caller.
#[derive(Clone, Default)]
pub struct Dispatcher {
    targets: Option<Arc<Targets>>,
    wait: bool,
}

struct Targets {
    /// Endpoint fronts, fed synchronously.
    queues: Vec<Arc<dyn Enqueue>>,
    /// Any other sink, driven as a tower service.
    sink: Option<BoxSink>,
    /// Refusals by the fronts, logged like the broadcaster's.
    errors: AtomicU64,
    log: LogLimiter,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

impl Dispatcher {
    /// A dispatcher feeding `sink`.
    pub fn new(sink: BoxSink) -> Self {
        Self::with_targets(Vec::new(), Some(sink))
    }

    /// A dispatcher with nowhere to send: the layer derives no events at all.
    pub fn disabled() -> Self {
        Self {
            targets: None,
            wait: false,
        }
    }

    /// A dispatcher feeding endpoint fronts directly and, if any, other sinks through a
    /// broadcast. Disabled when there is neither.
    pub(crate) fn broadcast(queues: Vec<Arc<dyn Enqueue>>, mut sinks: Vec<BoxSink>) -> Self {
        let sink = match sinks.len() {
            0 => None,
            1 => sinks.pop(),
            _ => Some(BoxSink::new(crate::broadcast::Broadcast::new(sinks))),
        };
        if queues.is_empty() && sink.is_none() {
            return Self::disabled();
        }
        Self::with_targets(queues, sink)
    }

    fn with_targets(queues: Vec<Arc<dyn Enqueue>>, sink: Option<BoxSink>) -> Self {
        Self {
            targets: Some(Arc::new(Targets {
                queues,
                sink,
                errors: AtomicU64::new(0),
                log: LogLimiter::new(Duration::from_secs(10)),
            })),
            wait: false,
        }
    }

    /// Whether events have somewhere to go.
    pub fn is_enabled(&self) -> bool {
        self.targets.is_some()
    }

    /// Makes the layer hold each response until the sink's call for its events has resolved:
    /// set for endpoints whose durable queue has `fsync: always`, so that a response means its
    /// events are on disk. Queue-fronted endpoints otherwise resolve at once, so only the
    /// durable ones make the response wait (and a sink of your own, if it is slow).
    pub fn wait_for_sinks(mut self, yes: bool) -> Self {
        self.wait = yes;
        self
    }

    /// Whether responses wait for the sinks (see [`wait_for_sinks`](Self::wait_for_sinks)).
    pub fn waits_for_sinks(&self) -> bool {
        self.wait && self.targets.is_some()
    }

    /// Like [`dispatch`](Self::dispatch), but a hand-off that does not complete at once is
    /// returned for the caller to await (instead of being spawned); `None` when it completed.
    ///
    /// The hand-off resolves `Err` only with [`DeliveryError::NotDurable`]: a fail-closed
    /// endpoint (`fsync: always`) could not make the events durable, and the request that
    /// produced them must not succeed. Other sink errors are logged, as with `dispatch`.
    pub fn dispatch_waiting(&self, batch: Batch) -> Option<Handoff> {
        let targets = self.targets.as_ref()?;
        if batch.is_empty() {
            return None;
        }
        // Endpoint fronts take the batch at once; only the tower sink can be waited on.
        let batch = targets.feed_fronts(batch, targets.sink.is_some())?;
        let sink = targets.sink.clone()?;
        let mut fut: Handoff = Box::pin(async move {
            match sink.oneshot(batch).await {
                Err(e) if DeliveryError::is_not_durable(&*e) => Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "dispatcher: sink refused events");
                    Ok(())
                }
                Ok(()) => Ok(()),
            }
        });
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => None,
            Poll::Ready(Err(e)) => Some(Box::pin(std::future::ready(Err(e)))),
            Poll::Pending => Some(fut),
        }
    }

    /// Sends `batch` to the sink without waiting for it.
    ///
    /// Errors from the sink are logged; the pipeline's own stages count what
    /// they drop. Needs a Tokio runtime only if the sink is not immediately
    /// ready or its call does not complete at once.
    pub fn dispatch(&self, batch: Batch) {
        let Some(targets) = &self.targets else { return };
        if batch.is_empty() {
            return;
        }
        if let Some(batch) = targets.feed_fronts(batch, targets.sink.is_some()) {
            if let Some(sink) = &targets.sink {
                call_sink(sink, batch);
            }
        }
    }
}

impl Targets {
    /// Enqueues `batch` into every endpoint front; the last one gets the batch itself
    /// unless `keep` asks for it back (for the tower sink).
    fn feed_fronts(&self, batch: Batch, keep: bool) -> Option<Batch> {
        let mut batch = Some(batch);
        let last = self.queues.len();
        for (index, queue) in self.queues.iter().enumerate() {
            let b = if index + 1 == last && !keep {
                batch.take()
            } else {
                batch.clone()
            };
            if let Err(error) = queue.enqueue(b.unwrap_or_default()) {
                self.errors.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = self.log.check() {
                    tracing::warn!(sink = index, %error, suppressed, "broadcaster: dropping event");
                }
            }
        }
        batch
    }
}

/// Calls a tower sink, polling its readiness and response once in place.
fn call_sink(sink: &BoxSink, batch: Batch) {
    let mut sink = sink.clone();
    let mut cx = Context::from_waker(Waker::noop());
    match sink.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {
            let mut fut = sink.call(batch);
            match std::pin::Pin::new(&mut fut).poll(&mut cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => tracing::warn!(error = %e, "dispatcher: sink refused events"),
                Poll::Pending => spawn(async move {
                    if let Err(e) = fut.await {
                        tracing::warn!(error = %e, "dispatcher: sink refused events");
                    }
                }),
            }
        }
        Poll::Ready(Err(e)) => {
            tracing::warn!(error = %e, events = batch.len(), "dispatcher: sink failed")
        }
        Poll::Pending => spawn(async move {
            if let Err(e) = sink.oneshot(batch).await {
                tracing::warn!(error = %e, "dispatcher: sink refused events");
            }
        }),
    }
}

fn spawn(fut: impl Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(fut);
        }
        Err(_) => {
            tracing::error!("dispatcher: no Tokio runtime to finish a pending hand-off; events dropped")
        }
    }
}
