//! The hand-off from the request path to the delivery pipeline.
//!
//! A [`Dispatcher`] owns the head of the sink stack (normally a
//! [`Broadcast`](crate::broadcast::Broadcast) over endpoint stacks that begin with
//! a queue). [`Dispatcher::dispatch`] calls it without waiting: the sink's
//! readiness and response futures are polled once in place, and only if one
//! is still pending is it moved to a spawned task. With queue-fronted
//! endpoints nothing is ever spawned, so a request pays for building its
//! events and one push per endpoint — and with no sink at all, nothing.
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
use std::task::{Context, Poll, Waker};

use tower::{Service, ServiceExt};

use crate::event::Batch;
use crate::sink::BoxSink;

/// Hands batches of events to the sink stack without blocking the caller.
#[derive(Clone, Default)]
pub struct Dispatcher {
    sink: Option<BoxSink>,
    wait: bool,
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
        Self {
            sink: Some(sink),
            wait: false,
        }
    }

    /// A dispatcher with nowhere to send: the layer derives no events at all.
    pub fn disabled() -> Self {
        Self {
            sink: None,
            wait: false,
        }
    }

    /// Whether events have somewhere to go.
    pub fn is_enabled(&self) -> bool {
        self.sink.is_some()
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
        self.wait && self.sink.is_some()
    }

    /// Like [`dispatch`](Self::dispatch), but a hand-off that does not complete at once is
    /// returned for the caller to await (instead of being spawned); `None` when it completed.
    pub fn dispatch_waiting(&self, batch: Batch) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        let sink = self.sink.clone()?;
        if batch.is_empty() {
            return None;
        }
        let mut fut = Box::pin(async move {
            if let Err(e) = sink.oneshot(batch).await {
                tracing::warn!(error = %e, "dispatcher: sink refused events");
            }
        });
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(()) => None,
            Poll::Pending => Some(fut),
        }
    }

    /// Sends `batch` to the sink without waiting for it.
    ///
    /// Errors from the sink are logged; the pipeline's own stages count what
    /// they drop. Needs a Tokio runtime only if the sink is not immediately
    /// ready or its call does not complete at once.
    pub fn dispatch(&self, batch: Batch) {
        let Some(sink) = &self.sink else { return };
        if batch.is_empty() {
            return;
        }
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
