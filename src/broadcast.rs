//! Fan-out of every batch to all endpoint sinks.
//!
//! [`Broadcast`] calls each of its sinks with a clone of the batch (an `Arc` clone; no
//! event is copied; the last sink gets the batch itself) and resolves once every sink's call
//! has resolved. Every call starts at once — the broadcast polls each sink's future once
//! before it returns — and the sinks are driven concurrently, so one slow sink never delays
//! another; endpoint sinks start with a queue whose call completes at once, so a slow or dead
//! endpoint does not delay the caller either, and a broadcast to them is complete when `call`
//! returns. An error from one sink never stops the others: it is counted
//! ([`Broadcast::errors`]) and logged at most once per 10 s burst, and the broadcast
//! itself still succeeds — like Distribution's broadcaster, which logs
//! `broadcaster: dropping event` and carries on.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use registry_notify::broadcast::Broadcast;
//! use registry_notify::sink::{BoxError, BoxSink};
//! use registry_notify::{Action, Batch, Event, Target};
//! use tower::{service_fn, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let seen = Arc::new(AtomicUsize::new(0));
//! let counting = |seen: Arc<AtomicUsize>| -> BoxSink {
//!     BoxSink::new(service_fn(move |b: Batch| {
//!         seen.fetch_add(b.len(), Ordering::SeqCst);
//!         async { Ok::<(), BoxError>(()) }
//!     }))
//! };
//! let mut broadcast = Broadcast::new(vec![counting(seen.clone())]);
//! broadcast.push(counting(seen.clone()));
//! broadcast.oneshot(Batch::from(Event::new(Action::Push, Target::default()))).await.unwrap();
//! assert_eq!(seen.load(Ordering::SeqCst), 2);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tower_service::Service;

use crate::event::Batch;
use crate::log_limit::LogLimiter;
use crate::sink::{BoxError, BoxSink, DeliveryError};

/// Sends every batch to all of its sinks; see the [module docs](self).
pub struct Broadcast<S = BoxSink> {
    sinks: Vec<S>,
    stats: Arc<Stats>,
}

struct Stats {
    errors: AtomicU64,
    log: LogLimiter,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            errors: AtomicU64::new(0),
            log: LogLimiter::new(Duration::from_secs(10)),
        }
    }
}

impl Stats {
    /// Counts and logs a sink's error; keeps a [`DeliveryError::NotDurable`] for the caller.
    fn failed(&self, index: usize, error: BoxError, not_durable: &mut Option<BoxError>) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if DeliveryError::is_not_durable(&*error) {
            not_durable.get_or_insert(error);
        } else if let Some(suppressed) = self.log.check() {
            tracing::warn!(sink = index, %error, suppressed, "broadcaster: dropping event");
        }
    }
}

impl<S> Broadcast<S> {
    /// A broadcast to `sinks`.
    pub fn new(sinks: Vec<S>) -> Self {
        Self {
            sinks,
            stats: Arc::new(Stats::default()),
        }
    }

    /// Adds a sink; batches sent after this reach it too.
    pub fn push(&mut self, sink: S) {
        self.sinks.push(sink);
    }

    /// The sinks, in the order they were added.
    pub fn into_sinks(self) -> Vec<S> {
        self.sinks
    }

    /// How many sinks the batches go to.
    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    /// Whether there is no sink.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// How many sink calls failed so far (shared by clones).
    pub fn errors(&self) -> u64 {
        self.stats.errors.load(Ordering::Relaxed)
    }
}

impl<S: Clone> Clone for Broadcast<S> {
    fn clone(&self) -> Self {
        Self {
            sinks: self.sinks.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<S> Default for Broadcast<S> {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl<S> fmt::Debug for Broadcast<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("sinks", &self.sinks.len())
            .field("errors", &self.errors())
            .finish()
    }
}

impl<S> Broadcast<S>
where
    S: Service<Batch, Response = ()> + Clone + Unpin,
    S::Future: Unpin,
    S::Error: Into<BoxError>,
{
    /// What `call` does, through a shared reference: every sink's call is started (its future
    /// polled once); the ones that did not complete are left to the returned future.
    pub fn send(&self, batch: Batch) -> BroadcastFuture<S> {
        let mut pending = Vec::new();
        let mut not_durable = None;
        let mut cx = Context::from_waker(Waker::noop());
        let mut batch = Some(batch);
        let last = self.sinks.len().saturating_sub(1);
        for (index, sink) in self.sinks.iter().enumerate() {
            let b = if index == last {
                batch.take()
            } else {
                batch.clone()
            };
            let b = b.unwrap_or_default();
            let mut sink = sink.clone();
            // The usual case inline: the sink is ready and its call completes at once.
            let outcome = match sink.poll_ready(&mut cx) {
                Poll::Ready(Ok(())) => {
                    let mut fut = sink.call(b);
                    match Pin::new(&mut fut).poll(&mut cx) {
                        Poll::Ready(result) => result.map_err(Into::into),
                        Poll::Pending => {
                            pending.push((index, Call::Called(fut)));
                            continue;
                        }
                    }
                }
                Poll::Ready(Err(error)) => Err(error.into()),
                Poll::Pending => {
                    pending.push((index, Call::Waiting(sink, b)));
                    continue;
                }
            };
            if let Err(error) = outcome {
                self.stats.failed(index, error, &mut not_durable);
            }
        }
        BroadcastFuture {
            // Shared only when some call is left to finish (most broadcasts complete here).
            stats: (!pending.is_empty()).then(|| self.stats.clone()),
            pending,
            not_durable,
        }
    }
}

impl<S> Service<Batch> for Broadcast<S>
where
    S: Service<Batch, Response = ()> + Clone + Unpin,
    S::Future: Unpin,
    S::Error: Into<BoxError>,
{
    type Response = ();
    type Error = BoxError;
    type Future = BroadcastFuture<S>;

    /// Always ready: each call readies its own clone of every sink.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Batch) -> BroadcastFuture<S> {
        self.send(batch)
    }
}

/// The future of [`Broadcast`]'s `call`: resolves when every sink's call has resolved.
///
/// Sink errors are counted and logged, not returned — one endpoint's trouble is not the
/// others' — except [`DeliveryError::NotDurable`]:
/// a fail-closed endpoint could not make the events durable, so the request that produced
/// them must fail, and the broadcast resolves with that error (after every sink resolved).
pub struct BroadcastFuture<S: Service<Batch>> {
    /// The calls that did not complete when they started, with their sink's index.
    pending: Vec<(usize, Call<S>)>,
    /// The broadcast's counters, while calls are pending.
    stats: Option<Arc<Stats>>,
    not_durable: Option<BoxError>,
}

impl<S: Service<Batch>> BroadcastFuture<S> {
    /// Whether every sink's call has completed (the future is then ready at once).
    pub fn is_complete(&self) -> bool {
        self.pending.is_empty()
    }
}

impl<S: Service<Batch>> fmt::Debug for BroadcastFuture<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastFuture")
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl<S> Future for BroadcastFuture<S>
where
    S: Service<Batch, Response = ()> + Unpin,
    S::Future: Unpin,
    S::Error: Into<BoxError>,
{
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut failed = Vec::new();
        this.pending
            .retain_mut(|(index, call)| match Pin::new(call).poll(cx) {
                Poll::Pending => true,
                Poll::Ready(Ok(())) => false,
                Poll::Ready(Err(error)) => {
                    failed.push((*index, error));
                    false
                }
            });
        if let Some(stats) = &this.stats {
            for (index, error) in failed {
                stats.failed(index, error, &mut this.not_durable);
            }
        }
        if this.pending.is_empty() {
            Poll::Ready(this.not_durable.take().map_or(Ok(()), Err))
        } else {
            Poll::Pending
        }
    }
}

/// One sink's call: waiting for the sink to be ready, then its response.
enum Call<S: Service<Batch>> {
    Waiting(S, Batch),
    Called(S::Future),
    Done,
}

impl<S> Call<S>
where
    S: Service<Batch, Response = ()> + Unpin,
    S::Future: Unpin,
    S::Error: Into<BoxError>,
{
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        loop {
            match std::mem::replace(self, Call::Done) {
                Call::Waiting(mut sink, batch) => match sink.poll_ready(cx) {
                    Poll::Pending => {
                        *self = Call::Waiting(sink, batch);
                        return Poll::Pending;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                    Poll::Ready(Ok(())) => *self = Call::Called(sink.call(batch)),
                },
                Call::Called(mut fut) => match Pin::new(&mut fut).poll(cx) {
                    Poll::Pending => {
                        *self = Call::Called(fut);
                        return Poll::Pending;
                    }
                    Poll::Ready(result) => return Poll::Ready(result.map_err(Into::into)),
                },
                Call::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}
