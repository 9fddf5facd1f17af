//! The hand-off from the request path to the delivery pipeline.
//!
//! A [`Dispatcher`] owns the head of the sink stack: a [`Broadcast`] to every endpoint's
//! stack ([`EndpointSink`]: filter → queue, whose worker drives retry → HTTP) and to any
//! sink of your own. Each batch goes through them as tower services: every call starts at
//! once (readiness and response polled once in place), the last sink gets the batch itself
//! (no copy), and a call that is still pending afterwards is moved to a spawned task — the
//! request path never waits on delivery. With no sink at all the layer derives nothing.
//!
//! The one exception is an endpoint whose queue promises durability (a durable queue with
//! `fsync: always`): its calls resolve once the events are on disk, and
//! [`dispatch_waiting`](Dispatcher::dispatch_waiting) hands that wait to the layer, which
//! answers the request only then (with a 503 if the events could not be made durable). It
//! changes nothing for the other endpoints: they are in a broadcast of their own, driven the
//! same way with or without it.
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
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tower::util::Either;

use crate::broadcast::{Broadcast, BroadcastFuture};
use crate::endpoint::EndpointSink;
use crate::event::Batch;
use crate::sink::{BoxError, BoxSink, DeliveryError};

/// A hand-off the caller awaits before answering its request (see
/// [`Dispatcher::dispatch_waiting`]); `Err` means the events are not durable.
pub type Handoff = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// Where a dispatcher sends: an endpoint's stack, or a sink of your own.
pub(crate) type Target = Either<EndpointSink, BoxSink>;

/// Hands batches of events to the sink stack without blocking the caller.
#[derive(Clone, Default)]
pub struct Dispatcher {
    targets: Option<Arc<Targets>>,
}

struct Targets {
    /// Endpoints and sinks the request path never waits for.
    detached: Broadcast<Target>,
    /// Endpoints whose queue fails closed (`fsync: always`): the request waits for them.
    awaited: Broadcast<Target>,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (detached, awaited) = self
            .targets
            .as_ref()
            .map_or((0, 0), |t| (t.detached.len(), t.awaited.len()));
        f.debug_struct("Dispatcher")
            .field("detached", &detached)
            .field("awaited", &awaited)
            .finish()
    }
}

impl Dispatcher {
    /// A dispatcher feeding `sink`.
    pub fn new(sink: BoxSink) -> Self {
        Self::to_targets(vec![Either::Right(sink)], Vec::new())
    }

    /// A dispatcher with nowhere to send: the layer derives no events at all.
    pub fn disabled() -> Self {
        Self { targets: None }
    }

    /// A dispatcher feeding `detached` without waiting and `awaited` (fail-closed endpoints)
    /// with [`dispatch_waiting`](Self::dispatch_waiting); disabled when both are empty.
    pub(crate) fn to_targets(detached: Vec<Target>, awaited: Vec<Target>) -> Self {
        if detached.is_empty() && awaited.is_empty() {
            return Self::disabled();
        }
        Self {
            targets: Some(Arc::new(Targets {
                detached: Broadcast::new(detached),
                awaited: Broadcast::new(awaited),
            })),
        }
    }

    /// Makes the layer hold each response until every sink's call for its events has resolved
    /// (`yes`), or none (`!yes`): for a sink of your own that must have the events before the
    /// client hears of them, or a test that checks what a response implies. Endpoints whose
    /// queue fails closed (`fsync: always`) are awaited anyway when they come from
    /// [`Notifications`](crate::notifications::Notifications).
    pub fn wait_for_sinks(self, yes: bool) -> Self {
        let Some(targets) = self.targets else {
            return self;
        };
        let targets = Arc::try_unwrap(targets).unwrap_or_else(|shared| Targets {
            detached: shared.detached.clone(),
            awaited: shared.awaited.clone(),
        });
        let (mut detached, mut awaited) = (targets.detached.into_sinks(), targets.awaited.into_sinks());
        if yes {
            awaited.append(&mut detached);
        } else {
            detached.append(&mut awaited);
        }
        Self::to_targets(detached, awaited)
    }

    /// Whether events have somewhere to go.
    pub fn is_enabled(&self) -> bool {
        self.targets.is_some()
    }

    /// Whether some endpoint makes responses wait until its events are on disk (`fsync:
    /// always`).
    pub fn waits_for_sinks(&self) -> bool {
        self.targets.as_ref().is_some_and(|t| !t.awaited.is_empty())
    }

    /// Like [`dispatch`](Self::dispatch), but the calls of fail-closed endpoints (`fsync:
    /// always`) that did not complete at once are returned for the caller to await; `None`
    /// when there is nothing to wait for.
    ///
    /// The hand-off resolves `Err` only with [`DeliveryError::NotDurable`]: a fail-closed
    /// endpoint could not make the events durable, and the request that produced them must
    /// not succeed. Other sink errors are logged, as with `dispatch`.
    pub fn dispatch_waiting(&self, batch: Batch) -> Option<Handoff> {
        let targets = self.targets.as_ref()?;
        if batch.is_empty() {
            return None;
        }
        let awaited = targets.send(batch)?;
        if awaited.is_complete() {
            return match Pin::new(&mut { awaited }).poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(Err(e)) if DeliveryError::is_not_durable(&*e) => {
                    Some(Box::pin(std::future::ready(Err(e))))
                }
                _ => None,
            };
        }
        Some(Box::pin(Awaited(awaited)))
    }

    /// Sends `batch` to every sink without waiting for any.
    ///
    /// Errors from the sinks are logged; the pipeline's own stages count what they drop.
    /// Needs a Tokio runtime only if a sink's call does not complete at once.
    pub fn dispatch(&self, batch: Batch) {
        let Some(targets) = &self.targets else { return };
        if batch.is_empty() {
            return;
        }
        if let Some(awaited) = targets.send(batch) {
            detach(awaited);
        }
    }
}

impl Targets {
    /// Starts the calls of every target; detaches the pending ones of the detached targets
    /// and returns the awaited targets' future, if there are any.
    fn send(&self, batch: Batch) -> Option<BroadcastFuture<Target>> {
        if self.awaited.is_empty() {
            detach(self.detached.send(batch));
            return None;
        }
        if !self.detached.is_empty() {
            detach(self.detached.send(batch.clone()));
        }
        Some(self.awaited.send(batch))
    }
}

/// Lets the calls still pending in `fut` finish in a task of their own.
fn detach(fut: BroadcastFuture<Target>) {
    if fut.is_complete() {
        // Every call completed; their errors were counted and logged as they did.
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(Detached(fut));
        }
        Err(_) => {
            tracing::error!("dispatcher: no Tokio runtime to finish a pending hand-off; events dropped")
        }
    }
}

/// The calls of fail-closed endpoints a request waits for: `Err` only when the events are not
/// durable. (A named future: an `async` block over the broadcast's future would not be `Send`
/// for every lifetime the compiler asks about.)
struct Awaited(BroadcastFuture<Target>);

impl Future for Awaited {
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|result| match result {
            Err(e) if DeliveryError::is_not_durable(&*e) => Err(e),
            _ => Ok(()),
        })
    }
}

/// Calls left to finish in a task of their own; their errors were counted and logged.
struct Detached(BroadcastFuture<Target>);

impl Future for Detached {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}
