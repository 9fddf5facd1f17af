//! Per-endpoint queue: decouples the caller from delivery.
//!
//! [`Queue`]'s `call` pushes the batch into an [`EventQueue`] and returns at once; one
//! worker task per endpoint (spawned by [`QueueLayer`]) takes up to `max_events` events
//! from the head, hands them to the inner sink (normally retry → HTTP), waits for it, and
//! only then removes them from the queue ([`ack`](EventQueue::ack)). A slow or dead
//! endpoint therefore never blocks the registry or the other endpoints, and delivery per
//! endpoint stays FIFO with one batch in flight.
//!
//! With `max_events` above 1 the worker also *lingers* under load (Kafka's `linger.ms`):
//! when the envelope it just delivered held more than one event but was not full, events
//! are arriving faster than one per round trip, so it waits up to [`QueueLayer::linger`]
//! (default [`DEFAULT_LINGER`], 1 ms) for the next envelope to fill before taking it. An
//! idle endpoint (one event at a time) or a backlog (full envelopes) never waits, so
//! latency at moderate rates is unchanged, while a busy registry sends tens of events per
//! POST instead of two or three: far fewer requests for the endpoint and for the host.
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
use crate::log_limit::LogLimiter;
use crate::metrics::EndpointMetrics;
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

    /// Whether the queue fails closed: a push whose events it cannot make durable (including
    /// one refused because the queue is closed) must fail the request that produced them
    /// ([`DeliveryError::NotDurable`]). `true` for a durable queue with `fsync: always`.
    /// Default `false`.
    fn fails_closed(&self) -> bool {
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

/// How long a busy worker waits for a partly filled envelope by default: 1 ms.
pub const DEFAULT_LINGER: std::time::Duration = std::time::Duration::from_millis(1);

type MakeQueue = Arc<dyn Fn() -> Arc<dyn EventQueue> + Send + Sync>;

/// Puts a queue and its worker task in front of a sink; see the [module docs](self).
///
/// Every [`layer`](Layer::layer) call creates a new queue and spawns a new worker with
/// [`tokio::spawn`], so it must run inside a Tokio runtime.
#[derive(Clone)]
pub struct QueueLayer {
    make: MakeQueue,
    max_events: usize,
    linger: std::time::Duration,
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
            linger: DEFAULT_LINGER,
            metrics: None,
        }
    }

    /// How many events the worker sends at most per call of the inner sink (one
    /// envelope); default 1, like Distribution. 0 is treated as 1.
    pub fn max_events(mut self, max_events: usize) -> Self {
        self.max_events = max_events.max(1);
        self
    }

    /// How long the worker waits for more events after delivering an envelope that held
    /// more than one event but fewer than `max_events` (default [`DEFAULT_LINGER`]); zero
    /// never waits. Without batching (`max_events` 1) it has no effect.
    ///
    /// An envelope is never held when the worker was idle (a single event) or behind (a
    /// full envelope), so this adds at most `linger` to the latency of events that arrive
    /// while the endpoint is busy, in exchange for fewer, larger POSTs.
    pub fn linger(mut self, linger: std::time::Duration) -> Self {
        self.linger = linger;
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
            .field("linger", &self.linger)
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
        let batching = Arc::new(Batching::new(self.max_events, self.linger));
        let task = tokio::spawn(run_worker(
            queue.clone(),
            inner,
            batching.clone(),
            self.metrics.clone(),
            done_tx,
        ));
        Queue {
            handle: QueueHandle {
                shared: Arc::new(Shared {
                    queue,
                    batching,
                    metrics: self.metrics.clone(),
                    drops_log: LogLimiter::new(std::time::Duration::from_secs(10)),
                    refused_log: LogLimiter::new(std::time::Duration::from_secs(10)),
                }),
                done: done_rx,
                worker: task.abort_handle(),
            },
            _inner: PhantomData,
        }
    }
}

/// How the worker groups events into envelopes, shared with the pushing side so that a
/// linger ends as soon as a full envelope is waiting or the queue closes.
#[derive(Debug)]
struct Batching {
    max_events: usize,
    linger: std::time::Duration,
    /// The worker is lingering: pushes that fill an envelope wake it.
    lingering: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
}

impl Batching {
    fn new(max_events: usize, linger: std::time::Duration) -> Self {
        Self {
            max_events,
            linger,
            lingering: std::sync::atomic::AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Whether to wait for more events after delivering `n`: only when the last envelope
    /// was partly filled (events arrive faster than one per round trip) and more room is
    /// left than is already waiting.
    fn lingers_after(&self, n: usize, waiting: usize) -> bool {
        n > 1 && n < self.max_events && waiting < self.max_events && !self.linger.is_zero()
    }

    /// Waits up to `linger` for `queue` to hold a full envelope or to close.
    async fn linger(&self, queue: &dyn EventQueue) {
        use std::sync::atomic::Ordering;
        self.lingering.store(true, Ordering::SeqCst);
        // Checked after raising the flag: a push from now on wakes us.
        if queue.len() < self.max_events && !queue.is_closed() {
            let _ = tokio::time::timeout(self.linger, self.wake.notified()).await;
        }
        self.lingering.store(false, Ordering::SeqCst);
    }

    /// Called after a push (`len` events now queued) or a close.
    fn pushed(&self, queue: &dyn EventQueue) {
        use std::sync::atomic::Ordering;
        if self.lingering.load(Ordering::SeqCst) && (queue.is_closed() || queue.len() >= self.max_events) {
            self.wake.notify_one();
        }
    }
}

async fn run_worker<S>(
    queue: Arc<dyn EventQueue>,
    mut inner: S,
    batching: Arc<Batching>,
    metrics: Option<Arc<EndpointMetrics>>,
    done: watch::Sender<bool>,
) where
    S: Service<Batch, Response = ()>,
    S::Error: Into<BoxError>,
{
    let name = metrics.as_ref().map(|m| m.name().to_owned()).unwrap_or_default();
    let errors_log = LogLimiter::new(std::time::Duration::from_secs(10));
    let max_events = batching.max_events;
    let mut last = 0;
    loop {
        if batching.lingers_after(last, queue.len()) && !queue.is_closed() {
            batching.linger(&*queue).await;
        }
        let Some(batch) = queue.next(max_events).await else {
            break;
        };
        let n = batch.len();
        last = n;
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
        let n = batch.len();
        match self.handle.push(batch) {
            Ok(Some(persisted)) => {
                let shared = self.handle.shared.clone();
                // The queue counts what it refused itself (`refused`, `events_lost`).
                QueueFuture::persisting(Box::pin(async move {
                    persisted.await.map_err(|e| shared.refused(n, &*e, false))
                }))
            }
            Ok(None) => QueueFuture::ready(Ok(())),
            Err(e) if self.handle.shared.queue.fails_closed() => {
                QueueFuture::ready(Err(self.handle.shared.refused(n, &*e, true)))
            }
            Err(e) => QueueFuture::ready(Err(e)),
        }
    }
}

struct Shared {
    queue: Arc<dyn EventQueue>,
    batching: Arc<Batching>,
    metrics: Option<Arc<EndpointMetrics>>,
    drops_log: LogLimiter,
    /// Pushes failed closed (`fsync: always`), logged at most once per interval.
    refused_log: LogLimiter,
}

impl Shared {
    /// `n` events of a fail-closed queue could not be made durable: the request that
    /// produced them fails ([`DeliveryError::NotDurable`]); logged per burst, and counted
    /// as `refused` when `count` (the queue did not count them itself: it was closed).
    fn refused(&self, n: usize, cause: &(dyn std::error::Error + 'static), count: bool) -> BoxError {
        if let (Some(m), true) = (&self.metrics, count) {
            m.record_refused(n as u64);
        }
        if let Some(suppressed) = self.refused_log.check() {
            let endpoint = self.metrics.as_ref().map(|m| m.name()).unwrap_or_default();
            tracing::error!(
                %endpoint, events = n, error = %cause, suppressed,
                "eventqueue: events could not be made durable; the request fails (503)"
            );
        }
        DeliveryError::NotDurable(cause.to_string()).into()
    }
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
        shared.batching.pushed(&*shared.queue);
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
        let closed = self.shared.queue.close();
        self.shared.batching.pushed(&*self.shared.queue);
        closed
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio::time::Instant;
    use tower::{service_fn, Service, ServiceExt};

    use super::*;
    use crate::event::{Action, Event, Target};

    /// A worker whose sink reports `(events, when)` per envelope and takes `rtt` to answer.
    fn worker(
        max_events: usize,
        linger: Duration,
        rtt: Duration,
    ) -> (
        Queue<impl Service<Batch>>,
        mpsc::UnboundedReceiver<(usize, Duration)>,
    ) {
        let start = Instant::now();
        let (tx, rx) = mpsc::unbounded_channel();
        let tx = Arc::new(Mutex::new(tx));
        let sink = service_fn(move |batch: Batch| {
            let tx = tx.clone();
            async move {
                tokio::time::sleep(rtt).await;
                let _ = tx.lock().unwrap().send((batch.len(), start.elapsed()));
                Ok::<_, BoxError>(())
            }
        });
        let queue = QueueLayer::new(QueueConfig::default())
            .max_events(max_events)
            .linger(linger)
            .layer(sink);
        (queue, rx)
    }

    async fn push(queue: &mut Queue<impl Service<Batch>>, n: usize) {
        let batch: Batch = (0..n)
            .map(|_| Event::new(Action::Pull, Target::default()))
            .collect();
        queue.ready().await.unwrap().call(batch).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_endpoint_never_lingers() {
        let (mut queue, mut rx) = worker(100, Duration::from_millis(5), Duration::ZERO);
        for i in 0..3u64 {
            push(&mut queue, 1).await;
            let (n, at) = rx.recv().await.unwrap();
            assert_eq!((n, at), (1, Duration::from_millis(10 * i)), "event {i}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_partly_filled_envelope_makes_the_next_one_wait() {
        let linger = Duration::from_millis(5);
        let (mut queue, mut rx) = worker(100, linger, Duration::ZERO);
        push(&mut queue, 3).await;
        assert_eq!(rx.recv().await.unwrap(), (3, Duration::ZERO));
        // Events arriving during the linger go out together when it ends.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            push(&mut queue, 1).await;
        }
        assert_eq!(rx.recv().await.unwrap(), (4, linger));
        // The last envelope had more than one event: the next waits as well.
        push(&mut queue, 1).await;
        assert_eq!(rx.recv().await.unwrap(), (1, linger * 2));
        // After a single event the worker is idle again and answers at once.
        tokio::time::sleep(Duration::from_millis(20)).await;
        push(&mut queue, 1).await;
        assert_eq!(rx.recv().await.unwrap(), (1, Duration::from_millis(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn full_envelopes_and_a_zero_linger_never_wait() {
        let rtt = Duration::from_millis(2);
        let (mut queue, mut rx) = worker(10, Duration::from_millis(5), rtt);
        push(&mut queue, 25).await;
        // 10 and 10 are full; the third takes the rest without waiting.
        let got: Vec<_> = [rx.recv().await, rx.recv().await, rx.recv().await]
            .into_iter()
            .map(Option::unwrap)
            .collect();
        assert_eq!(got, [(10, rtt), (10, rtt * 2), (5, rtt * 3)]);

        let (mut queue, mut rx) = worker(10, Duration::ZERO, rtt);
        push(&mut queue, 3).await;
        assert_eq!(rx.recv().await.unwrap(), (3, rtt));
        push(&mut queue, 2).await;
        assert_eq!(rx.recv().await.unwrap(), (2, rtt * 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_closing_queue_is_drained_without_lingering_on() {
        let (mut queue, mut rx) = worker(100, Duration::from_secs(60), Duration::ZERO);
        push(&mut queue, 2).await;
        assert_eq!(rx.recv().await.unwrap(), (2, Duration::ZERO));
        push(&mut queue, 2).await;
        let handle = queue.handle();
        let left = handle.shutdown(Instant::now() + Duration::from_secs(120)).await;
        assert_eq!(left, 0);
        assert_eq!(rx.recv().await.unwrap(), (2, Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_envelope_ends_the_linger() {
        let (mut queue, mut rx) = worker(10, Duration::from_secs(60), Duration::ZERO);
        push(&mut queue, 2).await;
        assert_eq!(rx.recv().await.unwrap(), (2, Duration::ZERO));
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            push(&mut queue, 3).await;
        }
        assert_eq!(rx.recv().await.unwrap(), (10, Duration::from_millis(4)));
    }
}
