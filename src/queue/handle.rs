//! What the queue service, its worker and its handle share; the handle.

use std::fmt;
use std::sync::Arc;

use tokio::sync::{watch, Notify};

use super::batching::Batching;
use super::{EventQueue, Persisted, QueueError, QueueFuture};
use crate::event::Batch;
use crate::log_limit::LogLimiter;
use crate::metrics::EndpointMetrics;
use crate::sink::{BoxError, DeliveryError};

pub(super) struct Shared {
    pub(super) queue: Arc<dyn EventQueue>,
    pub(super) batching: Batching,
    pub(super) metrics: Option<Arc<EndpointMetrics>>,
    pub(super) drops_log: LogLimiter,
    /// Pushes failed closed (`fsync: always`), logged at most once per interval.
    pub(super) refused_log: LogLimiter,
    /// Tells the worker to stop now (abandoning a batch in flight).
    pub(super) stop: Notify,
    /// `true` once the worker has stopped.
    pub(super) done: watch::Receiver<bool>,
}

impl Shared {
    /// The endpoint name, for logs.
    pub(super) fn endpoint(&self) -> &str {
        self.metrics.as_ref().map(|m| m.name()).unwrap_or_default()
    }

    /// The queue service's `call`.
    pub(super) fn call(self: &Arc<Self>, batch: Batch) -> QueueFuture {
        let n = batch.len();
        match self.push(batch) {
            Ok(Some(persisted)) => {
                let shared = self.clone();
                // The queue counts what it refused itself (`refused`, `events_lost`).
                QueueFuture::persisting(Box::pin(async move {
                    persisted.await.map_err(|e| shared.refused(n, &*e, false))
                }))
            }
            Ok(None) => QueueFuture::ready(Ok(())),
            Err(e) if self.queue.fails_closed() => QueueFuture::ready(Err(self.refused(n, &*e, true))),
            Err(e) => QueueFuture::ready(Err(e)),
        }
    }

    /// `n` events of a fail-closed queue could not be made durable: the request that
    /// produced them fails ([`DeliveryError::NotDurable`]); logged per burst, and counted
    /// as `refused` when `count` (the queue did not count them itself: it was closed).
    pub(super) fn refused(
        &self,
        n: usize,
        cause: &(dyn std::error::Error + 'static),
        count: bool,
    ) -> BoxError {
        if let (Some(m), true) = (&self.metrics, count) {
            m.record_refused(n as u64);
        }
        if let Some(suppressed) = self.refused_log.check() {
            tracing::error!(
                endpoint = %self.endpoint(), events = n, error = %cause, suppressed,
                "eventqueue: events could not be made durable; the request fails (503)"
            );
        }
        DeliveryError::NotDurable(cause.to_string()).into()
    }

    fn push(&self, batch: Batch) -> Result<Option<Persisted>, BoxError> {
        let n = batch.len();
        if n == 0 {
            return Ok(None);
        }
        if self.queue.is_closed() {
            return Err(DeliveryError::Closed.into());
        }
        // Ingress is recorded before the push so that the worker's egress never precedes it.
        if let Some(m) = &self.metrics {
            m.record_ingress(n);
        }
        let (dropped, persisted) = match self.queue.push_persisted(batch) {
            Ok(pushed) => pushed,
            // Closed between the check and the push: the events are lost.
            Err(_) => {
                if let Some(m) = &self.metrics {
                    m.record_dropped(n);
                    m.record_egress(n);
                }
                return Err(DeliveryError::Closed.into());
            }
        };
        self.batching.pushed(&*self.queue);
        if dropped > 0 {
            if let Some(m) = &self.metrics {
                m.record_dropped(dropped);
                m.record_egress(dropped);
            }
            if let Some(suppressed) = self.drops_log.check() {
                tracing::warn!(
                    endpoint = %self.endpoint(),
                    dropped,
                    suppressed,
                    "eventqueue: queue full, events dropped"
                );
            }
        }
        Ok(persisted)
    }
}

/// Controls an endpoint queue and its worker: close, inspect, drain.
#[derive(Clone)]
pub struct QueueHandle {
    shared: Arc<Shared>,
}

impl QueueHandle {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
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

    /// Bytes the backlog takes, where the queue measures it (a durable queue's segment files).
    pub fn bytes(&self) -> Option<u64> {
        self.shared.queue.bytes()
    }

    /// Whether a push waits until its events are on disk and fails the request otherwise
    /// (a durable queue with `fsync: always`).
    pub fn fails_closed(&self) -> bool {
        self.shared.queue.fails_closed()
    }

    /// Refuses further events (`call` then fails with [`DeliveryError::Closed`]); the
    /// worker keeps delivering what is queued and stops once the queue is empty.
    /// Fails with [`QueueError::AlreadyClosed`] the second time.
    pub fn close(&self) -> Result<(), QueueError> {
        let closed = self.shared.queue.close();
        self.shared.batching.pushed(&*self.shared.queue);
        closed
    }

    /// Whether the worker has stopped.
    pub fn is_finished(&self) -> bool {
        *self.shared.done.borrow()
    }

    /// Closes the queue (if not yet closed), lets the worker drain it until `deadline`,
    /// then stops the worker (abandoning a batch in flight or in retry) and returns the
    /// number of events left undelivered.
    ///
    /// A [persistent](EventQueue::is_persistent) queue is not drained: the worker stops at
    /// once (a batch in flight stays queued, to be delivered again after a restart), the
    /// queue is flushed (waiting at most until `deadline`), and the backlog waits on disk.
    ///
    /// A worker that was never spawned counts as stopped once `deadline` has passed.
    pub async fn shutdown(&self, deadline: tokio::time::Instant) -> usize {
        let _ = self.close();
        let mut done = self.shared.done.clone();
        if self.shared.queue.is_persistent() {
            self.stop_worker(&mut done, deadline).await;
            let _ = tokio::time::timeout_at(deadline, self.shared.queue.flush()).await;
            return self.len();
        }
        // An error means the worker is gone (dropped unspawned or with its runtime): finished.
        let finished = tokio::time::timeout_at(deadline, done.wait_for(|d| *d))
            .await
            .is_ok();
        if !finished {
            self.stop_worker(&mut done, deadline).await;
        }
        self.len()
    }

    /// Tells the worker to stop and waits (briefly) until it has.
    async fn stop_worker(&self, done: &mut watch::Receiver<bool>, deadline: tokio::time::Instant) {
        self.shared.stop.notify_one();
        // The worker stops at its next poll; a worker never spawned never answers.
        let grace = tokio::time::Instant::now() + std::time::Duration::from_millis(100);
        let _ = tokio::time::timeout_at(deadline.max(grace), done.wait_for(|d| *d)).await;
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
