//! Fan-out of every batch to all endpoint sinks.
//!
//! [`Broadcast`] calls each of its sinks with a clone of the batch (an `Arc` clone; no
//! event is copied) and resolves once every sink's call has resolved. The sinks are
//! driven concurrently, so one slow sink never delays another; endpoint sinks start with a
//! queue whose call returns at once, so a slow or dead endpoint does not delay the caller
//! either. An error from one sink never stops the others: it is counted
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
use std::task::{Context, Poll};
use std::time::Duration;

use tower::ServiceExt;
use tower_service::Service;

use crate::event::Batch;
use crate::log_limit::LogLimiter;
use crate::sink::{BoxError, BoxSink, DeliveryError};

/// Sends every batch to all of its sinks; see the [module docs](self).
#[derive(Clone)]
pub struct Broadcast {
    sinks: Vec<BoxSink>,
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

impl Broadcast {
    /// A broadcast to `sinks`.
    pub fn new(sinks: Vec<BoxSink>) -> Self {
        Self {
            sinks,
            stats: Arc::new(Stats::default()),
        }
    }

    /// Adds a sink; batches sent after this reach it too.
    pub fn push(&mut self, sink: BoxSink) {
        self.sinks.push(sink);
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

impl Default for Broadcast {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("sinks", &self.sinks.len())
            .field("errors", &self.errors())
            .finish()
    }
}

type SinkFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

impl Service<Batch> for Broadcast {
    type Response = ();
    type Error = BoxError;
    type Future = BroadcastFuture;

    /// Always ready: each call readies its own clone of every sink.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Batch) -> BroadcastFuture {
        let pending = self
            .sinks
            .iter()
            .map(|sink| {
                let fut: SinkFuture = Box::pin(sink.clone().oneshot(batch.clone()));
                Some(fut)
            })
            .collect();
        BroadcastFuture {
            pending,
            stats: self.stats.clone(),
            not_durable: None,
        }
    }
}

/// The future of [`Broadcast`]'s `call`: resolves when every sink's call has resolved.
///
/// Sink errors are counted and logged, not returned — one endpoint's trouble is not the
/// others' — except [`DeliveryError::NotDurable`]:
/// a fail-closed endpoint could not make the events durable, so the request that produced
/// them must fail, and the broadcast resolves with that error (after every sink resolved).
pub struct BroadcastFuture {
    pending: Vec<Option<SinkFuture>>,
    stats: Arc<Stats>,
    not_durable: Option<BoxError>,
}

impl fmt::Debug for BroadcastFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let left = self.pending.iter().filter(|p| p.is_some()).count();
        f.debug_struct("BroadcastFuture").field("pending", &left).finish()
    }
}

impl Future for BroadcastFuture {
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut done = true;
        for (index, slot) in this.pending.iter_mut().enumerate() {
            let Some(fut) = slot else { continue };
            match fut.as_mut().poll(cx) {
                Poll::Pending => done = false,
                Poll::Ready(result) => {
                    *slot = None;
                    if let Err(error) = result {
                        this.stats.errors.fetch_add(1, Ordering::Relaxed);
                        if DeliveryError::is_not_durable(&*error) {
                            this.not_durable.get_or_insert(error);
                        } else if let Some(suppressed) = this.stats.log.check() {
                            tracing::warn!(sink = index, %error, suppressed, "broadcaster: dropping event");
                        }
                    }
                }
            }
        }
        if done {
            Poll::Ready(this.not_durable.take().map_or(Ok(()), Err))
        } else {
            Poll::Pending
        }
    }
}
