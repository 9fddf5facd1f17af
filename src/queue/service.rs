//! The [`Queue`] service and the builder of a queue and its worker.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tower_service::Service;

use super::batching::Batching;
use super::handle::{QueueHandle, Shared};
use super::worker::QueueWorker;
use super::{EventQueue, MemoryQueue, QueueConfig, QueueFuture, DEFAULT_LINGER};
use crate::event::Batch;
use crate::log_limit::LogLimiter;
use crate::metrics::EndpointMetrics;
use crate::sink::BoxError;

/// The sink side of an endpoint queue: `call` enqueues and returns at once (with a durable
/// `fsync: always` queue, once the events are on disk). Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    shared: Arc<Shared>,
}

/// Builds a [`Queue`] and its [`QueueWorker`]; see [`Queue::builder`].
pub struct QueueBuilder {
    config: QueueConfig,
    events: Option<Arc<dyn EventQueue>>,
    max_events: usize,
    linger: Duration,
    metrics: Option<Arc<EndpointMetrics>>,
}

impl Queue {
    /// A builder of a queue bounded by `config` (a [`MemoryQueue`] unless
    /// [`events`](QueueBuilder::events) gives another).
    pub fn builder(config: QueueConfig) -> QueueBuilder {
        QueueBuilder {
            config,
            events: None,
            max_events: 1,
            linger: DEFAULT_LINGER,
            metrics: None,
        }
    }

    /// A handle to close, inspect and drain the queue.
    pub fn handle(&self) -> QueueHandle {
        QueueHandle::new(self.shared.clone())
    }

    /// What `call` does, through a shared reference (for [`Lanes`](super::Lanes), which keeps
    /// its queues in an `Arc`).
    pub(crate) fn enqueue(&self, batch: Batch) -> QueueFuture {
        self.shared.call(batch)
    }
}

impl QueueBuilder {
    /// Keeps the events in `events` (e.g. a [durable queue](super::durable)) instead of a
    /// [`MemoryQueue`]; the [`QueueConfig`] is then `events`' business.
    pub fn events(mut self, events: Arc<dyn EventQueue>) -> Self {
        self.events = Some(events);
        self
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
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Records `events`, `pending` and `dropped` in `metrics`.
    pub fn metrics(mut self, metrics: Arc<EndpointMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The queue service and the worker that delivers its events to `inner`. Nothing runs
    /// until the worker is spawned (`tokio::spawn(worker)`); events pushed before wait.
    pub fn pair<S>(self, inner: S) -> (Queue, QueueWorker<S>)
    where
        S: Service<Batch> + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        let events = self.events.unwrap_or_else(|| {
            Arc::new(MemoryQueue::new(self.config).joining_up_to(self.max_events)) as Arc<dyn EventQueue>
        });
        let (done, done_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            queue: events,
            batching: Batching::new(self.max_events, self.linger),
            metrics: self.metrics,
            drops_log: LogLimiter::new(Duration::from_secs(10)),
            refused_log: LogLimiter::new(Duration::from_secs(10)),
            stop: Notify::new(),
            done: done_rx,
        });
        let worker = QueueWorker::new(shared.clone(), inner, done);
        (Queue { shared }, worker)
    }
}

impl QueueBuilder {
    /// [`pair`](Self::pair), then spawns the worker on the current Tokio runtime (panics
    /// outside one, like `tokio::spawn`).
    pub fn spawn<S>(self, inner: S) -> Queue
    where
        S: Service<Batch> + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        let (queue, worker) = self.pair(inner);
        tokio::spawn(worker);
        queue
    }
}

impl fmt::Debug for QueueBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueBuilder")
            .field("config", &self.config)
            .field("max_events", &self.max_events)
            .field("linger", &self.linger)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue").field("handle", &self.handle()).finish()
    }
}

impl Service<Batch> for Queue {
    type Response = ();
    type Error = BoxError;
    type Future = QueueFuture;

    /// Always ready: the queue applies its overflow policy instead of pushing back.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Batch) -> QueueFuture {
        self.shared.call(batch)
    }
}
