//! Per-endpoint queue: decouples the caller from delivery.
//!
//! [`Queue`]'s `call` pushes the batch into an [`EventQueue`] and returns at once; one
//! worker task per endpoint (spawned by [`QueueLayer`]) takes up to `max_events` events
//! from the head, hands them to the inner sink (normally retry → HTTP), waits for it, and
//! only then removes them from the queue ([`ack`](EventQueue::ack)). A slow or dead
//! endpoint therefore never blocks the registry or the other endpoints, and delivery per
//! endpoint stays FIFO with one batch in flight.
//!
//! Unlike Distribution's unbounded `eventQueue`, the default [`MemoryQueue`] is bounded
//! (`capacity` events, default 100 000) with an explicit [`Overflow`] policy, and every
//! dropped event is counted (`dropped`). Metrics follow Distribution: `events` counts
//! ingress, `pending` is ingress minus egress.
//!
//! ```
//! use registry_notify::queue::{QueueConfig, QueueLayer};
//! use registry_notify::{sink::BoxError, Action, Batch, Event, Target};
//! use tower::{service_fn, Service, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! let sink = service_fn(move |batch: Batch| {
//!     let tx = tx.clone();
//!     async move { tx.send(batch.len()).map_err(BoxError::from) }
//! });
//! let mut queue = QueueLayer::new(QueueConfig::default()).max_events(10).layer(sink);
//! let handle = queue.handle();
//! let event = Event::new(Action::Push, Target::default());
//! queue.ready().await.unwrap().call(Batch::from(event)).await.unwrap(); // returns at once
//! assert_eq!(rx.recv().await, Some(1));
//! let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
//! assert_eq!(handle.shutdown(deadline).await, 0);
//! # }
//! # use tower::Layer;
//! ```

pub mod durable;
mod future;
mod memory;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tower_layer::Layer;
use tower_service::Service;

pub use durable::{DurableConfig, Fsync};
#[cfg(feature = "durable")]
pub use durable::{DurableQueue, DurableStats, WriterPause};
pub use future::{Persisted, QueueFuture};
pub use memory::MemoryQueue;

use crate::event::Batch;
use crate::metrics::{EndpointMetrics, LogLimiter};
use crate::sink::{BoxError, DeliveryError};

/// A FIFO of events waiting for delivery to one endpoint.
///
/// Pluggable so that a durable (disk) queue can replace [`MemoryQueue`]: the worker
/// only ever peeks at the head with [`next`](Self::next) and removes events with
/// [`ack`](Self::ack) once they were delivered or dead-lettered, so a durable queue
/// that persists the head survives a crash with at-least-once delivery.
///
/// A queue has a single consumer (the endpoint's worker).
pub trait EventQueue: Send + Sync + 'static {
    /// Appends `batch` without ever blocking, applying the overflow policy; returns how
    /// many events were dropped to honour the capacity (0 when everything fit).
    /// Fails with [`QueueError::Closed`] once the queue is closed.
    fn push(&self, batch: Batch) -> Result<usize, QueueError>;

    /// Waits until at least one event is queued and returns up to `max_events` (at least
    /// one) from the head **without removing them**; `None` once closed and empty.
    fn next(&self, max_events: usize) -> Pin<Box<dyn Future<Output = Option<Batch>> + Send + '_>>;

    /// Removes the first `n` events (delivered or dead-lettered).
    fn ack(&self, n: usize);

    /// Events queued, including those handed out by `next` and not yet acked.
    fn len(&self) -> usize;

    /// Whether no event is queued.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuses further pushes; queued events can still be taken. Fails with
    /// [`QueueError::AlreadyClosed`] the second time.
    fn close(&self) -> Result<(), QueueError>;

    /// Whether [`close`](Self::close) was called.
    fn is_closed(&self) -> bool;

    /// Like [`push`](Self::push), and, when the queue promises durability before the caller
    /// goes on (a [durable queue](durable) with `fsync: always`), also returns
    /// a future that resolves once the events are on disk; the [`Queue`] service's call then
    /// resolves with it. The default pushes and has nothing to wait for.
    fn push_persisted(&self, batch: Batch) -> Result<(usize, Option<Persisted>), QueueError> {
        self.push(batch).map(|dropped| (dropped, None))
    }

    /// Whether the backlog survives a restart (a disk queue): shutdown then flushes and stops
    /// at once instead of draining. Default `false`.
    fn is_persistent(&self) -> bool {
        false
    }

    /// Waits until everything pushed (and acknowledged) so far is on disk. The default has
    /// nothing to wait for.
    fn flush(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::ready(()))
    }
}

/// Why a queue operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue is closed and accepts no more events.
    Closed,
    /// The queue was already closed.
    AlreadyClosed,
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::Closed => f.write_str("queue: closed"),
            QueueError::AlreadyClosed => f.write_str("queue: already closed"),
        }
    }
}

impl std::error::Error for QueueError {}

/// What a full queue gives up when more events arrive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// Drop the oldest waiting events to make room (keeps the freshest state).
    #[default]
    DropOldest,
    /// Refuse the incoming events.
    DropNewest,
}

/// Bounds of an endpoint's in-memory queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// Maximum number of events waiting for delivery (default 100 000); must be > 0.
    pub capacity: usize,
    /// What to drop when the queue is full (default [`Overflow::DropOldest`]).
    pub overflow: Overflow,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            overflow: Overflow::DropOldest,
        }
    }
}

type MakeQueue = Arc<dyn Fn() -> Arc<dyn EventQueue> + Send + Sync>;

/// Puts a queue and its worker task in front of a sink; see the [module docs](self).
///
/// Every [`layer`](Layer::layer) call creates a new queue and spawns a new worker with
/// [`tokio::spawn`], so it must run inside a Tokio runtime.
#[derive(Clone)]
pub struct QueueLayer {
    make: MakeQueue,
    max_events: usize,
    metrics: Option<Arc<EndpointMetrics>>,
}

impl QueueLayer {
    /// A layer creating a [`MemoryQueue`] with `config` for each layered sink.
    pub fn new(config: QueueConfig) -> Self {
        Self::with_queue(move || Arc::new(MemoryQueue::new(config.clone())) as Arc<dyn EventQueue>)
    }

    /// A layer using the queues `make` creates (e.g. a durable queue).
    pub fn with_queue<F>(make: F) -> Self
    where
        F: Fn() -> Arc<dyn EventQueue> + Send + Sync + 'static,
    {
        Self {
            make: Arc::new(make),
            max_events: 1,
            metrics: None,
        }
    }

    /// How many events the worker sends at most per call of the inner sink (one
    /// envelope); default 1, like Distribution. 0 is treated as 1.
    pub fn max_events(mut self, max_events: usize) -> Self {
        self.max_events = max_events.max(1);
        self
    }

    /// Records `events`, `pending` and `dropped` in `metrics`.
    pub fn metrics(mut self, metrics: Arc<EndpointMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl fmt::Debug for QueueLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueLayer")
            .field("max_events", &self.max_events)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for QueueLayer
where
    S: Service<Batch, Response = ()> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Service = Queue<S>;

    fn layer(&self, inner: S) -> Queue<S> {
        let queue = (self.make)();
        let (done_tx, done_rx) = watch::channel(false);
        let task = tokio::spawn(run_worker(
            queue.clone(),
            inner,
            self.max_events,
            self.metrics.clone(),
            done_tx,
        ));
        Queue {
            handle: QueueHandle {
                shared: Arc::new(Shared {
                    queue,
                    metrics: self.metrics.clone(),
                    drops_log: LogLimiter::new(std::time::Duration::from_secs(10)),
                }),
                done: done_rx,
                worker: task.abort_handle(),
            },
            _inner: PhantomData,
        }
    }
}

async fn run_worker<S>(
    queue: Arc<dyn EventQueue>,
    mut inner: S,
    max_events: usize,
    metrics: Option<Arc<EndpointMetrics>>,
    done: watch::Sender<bool>,
) where
    S: Service<Batch, Response = ()>,
    S::Error: Into<BoxError>,
{
    let name = metrics.as_ref().map(|m| m.name().to_owned()).unwrap_or_default();
    let errors_log = LogLimiter::new(std::time::Duration::from_secs(10));
    while let Some(batch) = queue.next(max_events).await {
        let n = batch.len();
        let ready: Result<(), BoxError> =
            std::future::poll_fn(|cx| inner.poll_ready(cx).map_err(Into::into)).await;
        let result = match ready {
            Ok(()) => inner.call(batch).await.map_err(Into::into),
            Err(e) => Err(e),
        };
        if let Err(error) = result {
            if let Some(suppressed) = errors_log.check() {
                tracing::warn!(
                    endpoint = %name, events = n, %error, suppressed,
                    "eventqueue: error writing events, these events will be lost"
                );
            }
            if let Some(m) = &metrics {
                m.record_dropped(n);
            }
        }
        queue.ack(n);
        if let Some(m) = &metrics {
            m.record_egress(n);
        }
    }
    let _ = done.send(true);
}

/// The sink side of an endpoint queue: `call` enqueues and returns at once.
///
/// `S` is the type of the inner sink, which the worker task owns.
pub struct Queue<S> {
    handle: QueueHandle,
    _inner: PhantomData<fn(S)>,
}

impl<S> Queue<S> {
    /// A handle to close, inspect and drain the queue.
    pub fn handle(&self) -> QueueHandle {
        self.handle.clone()
    }

    /// What `call` does, through a shared reference.
    /// A wait for the disk (`fsync: always`) is dropped: such endpoints are driven as
    /// services, whose call future carries it.
    pub(crate) fn push(&self, batch: Batch) -> Result<(), BoxError> {
        self.handle.push(batch).map(drop)
    }
}

impl<S> Clone for Queue<S> {
    fn clone(&self) -> Self {
        Self {
            handle: self.handle.clone(),
            _inner: PhantomData,
        }
    }
}

impl<S> fmt::Debug for Queue<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue").field("handle", &self.handle).finish()
    }
}

impl<S> Service<Batch> for Queue<S> {
    type Response = ();
    type Error = BoxError;
    type Future = QueueFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Batch) -> Self::Future {
        match self.handle.push(batch) {
            Ok(Some(persisted)) => QueueFuture::persisting(persisted),
            Ok(None) => QueueFuture::ready(Ok(())),
            Err(e) => QueueFuture::ready(Err(e)),
        }
    }
}

struct Shared {
    queue: Arc<dyn EventQueue>,
    metrics: Option<Arc<EndpointMetrics>>,
    drops_log: LogLimiter,
}

/// Controls an endpoint queue and its worker: close, inspect, drain.
#[derive(Clone)]
pub struct QueueHandle {
    shared: Arc<Shared>,
    done: watch::Receiver<bool>,
    worker: AbortHandle,
}

impl QueueHandle {
    fn push(&self, batch: Batch) -> Result<Option<Persisted>, BoxError> {
        let n = batch.len();
        if n == 0 {
            return Ok(None);
        }
        let shared = &self.shared;
        if shared.queue.is_closed() {
            return Err(DeliveryError::Closed.into());
        }
        // Ingress is recorded before the push so that the worker's egress never precedes it.
        if let Some(m) = &shared.metrics {
            m.record_ingress(n);
        }
        let (dropped, persisted) = match shared.queue.push_persisted(batch) {
            Ok(pushed) => pushed,
            // Closed between the check and the push: the events are lost.
            Err(_) => {
                if let Some(m) = &shared.metrics {
                    m.record_dropped(n);
                    m.record_egress(n);
                }
                return Err(DeliveryError::Closed.into());
            }
        };
        if dropped > 0 {
            if let Some(m) = &shared.metrics {
                m.record_dropped(dropped);
                m.record_egress(dropped);
            }
            if let Some(suppressed) = shared.drops_log.check() {
                let endpoint = shared.metrics.as_ref().map(|m| m.name()).unwrap_or_default();
                tracing::warn!(
                    %endpoint,
                    dropped,
                    suppressed,
                    "eventqueue: queue full, events dropped"
                );
            }
        }
        Ok(persisted)
    }

    /// Events queued, including the batch in flight.
    pub fn len(&self) -> usize {
        self.shared.queue.len()
    }

    /// Whether no event is queued.
    pub fn is_empty(&self) -> bool {
        self.shared.queue.is_empty()
    }

    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.queue.is_closed()
    }

    /// Whether the backlog survives a restart (a durable queue).
    pub fn is_persistent(&self) -> bool {
        self.shared.queue.is_persistent()
    }

    /// Refuses further events (`call` then fails with [`DeliveryError::Closed`]); the
    /// worker keeps delivering what is queued and stops once the queue is empty.
    /// Fails with [`QueueError::AlreadyClosed`] the second time.
    pub fn close(&self) -> Result<(), QueueError> {
        self.shared.queue.close()
    }

    /// Whether the worker task has stopped.
    pub fn is_finished(&self) -> bool {
        *self.done.borrow() || self.worker.is_finished()
    }

    /// Closes the queue (if not yet closed), lets the worker drain it until `deadline`,
    /// then stops the worker (abandoning a batch in flight or in retry) and returns the
    /// number of events left undelivered.
    ///
    /// A [persistent](EventQueue::is_persistent) queue is not drained: the worker stops at
    /// once (a batch in flight stays queued, to be delivered again after a restart), the
    /// queue is flushed (waiting at most until `deadline`), and the backlog waits on disk.
    pub async fn shutdown(&self, deadline: tokio::time::Instant) -> usize {
        let _ = self.close();
        if self.shared.queue.is_persistent() {
            self.worker.abort();
            let _ = tokio::time::timeout_at(deadline, self.shared.queue.flush()).await;
            return self.len();
        }
        let mut done = self.done.clone();
        // An error means the worker is gone (its sender dropped): finished as well.
        let finished = tokio::time::timeout_at(deadline, done.wait_for(|d| *d)).await;
        if finished.is_err() {
            self.worker.abort();
        }
        self.len()
    }
}

impl fmt::Debug for QueueHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueHandle")
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .field("finished", &self.is_finished())
            .finish()
    }
}
