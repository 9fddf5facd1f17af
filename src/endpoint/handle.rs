//! The handle of a spawned endpoint.

use std::fmt;
use std::sync::Arc;

use tower::ServiceExt;

use super::dead_letters::{DeadEvent, DeadLetterStore, Redeliver, RedeliverError};
use super::ping::{PingOutcome, Pinger};
use crate::event::Batch;
use crate::metrics::{EndpointMetrics, EndpointSnapshot};
use crate::queue::QueueHandle;
use crate::sink::BoxSink;

/// Controls a spawned endpoint: metrics, recent deliveries, dead letters and their
/// redelivery, ping, and graceful shutdown. Cheap to clone.
#[derive(Clone)]
pub struct EndpointHandle {
    pub(super) name: Arc<str>,
    pub(super) metrics: Arc<EndpointMetrics>,
    /// The queue of each lane (none for an unqueued or disabled endpoint).
    pub(super) queues: Vec<QueueHandle>,
    /// What a running endpoint can do besides delivering; `None` when it is disabled.
    pub(super) admin: Option<Arc<Admin>>,
}

/// The parts of a running endpoint its handle drives.
pub(super) struct Admin {
    pub(super) dead_letters: Arc<DeadLetterStore>,
    /// Where redelivered events go: the queue, or the retry stage of an unqueued endpoint.
    pub(super) resend: BoxSink,
    pub(super) pinger: Pinger,
}

impl EndpointHandle {
    /// The endpoint name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A snapshot of the endpoint's counters.
    pub fn metrics(&self) -> EndpointSnapshot {
        self.metrics.snapshot()
    }

    /// Events queued or in flight, in all its lanes.
    pub fn queued(&self) -> usize {
        self.queues.iter().map(QueueHandle::len).sum()
    }

    /// How many lanes deliver at once ([`EndpointBuilder::concurrency`](super::EndpointBuilder::concurrency),
    /// plus lanes of an earlier run still being drained); 0 without a queue.
    pub fn lanes(&self) -> usize {
        self.queues.len()
    }

    /// The endpoint's last delivery attempts (at most
    /// [`RECENT_DELIVERIES`](crate::metrics::RECENT_DELIVERIES)), oldest first: when, which
    /// events, attempt number, status or error (redacted), duration and outcome.
    pub fn recent_deliveries(&self) -> Vec<crate::metrics::RecentDelivery> {
        self.metrics.recent_deliveries()
    }

    /// Bytes the endpoint's backlog takes on disk (a durable queue); `None` for an in-memory
    /// queue, which does not measure it, or an endpoint without a queue.
    pub fn queue_bytes(&self) -> Option<u64> {
        self.queues
            .iter()
            .map(QueueHandle::bytes)
            .try_fold(0u64, |sum, b| b.map(|b| sum.saturating_add(b)))
            .filter(|_| !self.queues.is_empty())
    }

    /// The dead letters the endpoint keeps for [redelivery](Self::redeliver), oldest first
    /// (see [`EndpointBuilder::keep_dead_letters`](super::EndpointBuilder::keep_dead_letters)).
    pub fn dead_letters(&self) -> Vec<DeadEvent> {
        self.admin
            .as_ref()
            .map_or_else(Vec::new, |a| a.dead_letters.list())
    }

    /// Sends the kept dead letters `which` selects again, with their original ids and bytes,
    /// through the endpoint's queue, retry and sink (signing and metrics included), and
    /// returns how many events went. They leave the kept dead letters; if they fail again they
    /// come back as new dead letters. With a queue this returns once they are queued; without
    /// one (an endpoint spawned [unqueued](super::Endpoint::spawn_unqueued)), once they are
    /// delivered or given up on again.
    ///
    /// ```
    /// use registry_notify::endpoint::{Endpoint, Redeliver};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (_sink, handle) = Endpoint::builder("audit", "http://127.0.0.1:9/").build().unwrap().spawn();
    /// assert!(handle.dead_letters().is_empty());
    /// assert_eq!(handle.redeliver(&Redeliver::All).await, Ok(0));
    /// # }
    /// ```
    pub async fn redeliver(&self, which: &Redeliver) -> Result<usize, RedeliverError> {
        let admin = self
            .admin
            .as_ref()
            .ok_or(RedeliverError::Unavailable("the endpoint is disabled"))?;
        let letters = admin.dead_letters.take(which);
        if letters.is_empty() {
            return Ok(0);
        }
        let batch = Batch::from(letters.events());
        let count = batch.len();
        match admin.resend.clone().oneshot(batch).await {
            Ok(()) => {
                tracing::info!(endpoint = %self.name, events = count, "notifications: dead letters redelivered");
                Ok(count)
            }
            Err(e) => {
                admin.dead_letters.restore(letters);
                Err(RedeliverError::Refused(e.to_string()))
            }
        }
    }

    /// Sends one test notification to the endpoint now and returns what came of it; `None` for
    /// a disabled endpoint.
    ///
    /// The event's action is [`Action::Ping`](crate::Action::Ping) (`"ping"` on the wire), with
    /// a fresh id, the current time and an empty target. It goes through the endpoint's own
    /// innermost stage — the same URL, headers, format, signing, TLS and kept-alive connections
    /// as its deliveries — but not through its filter, queue or retry: one attempt, listed among
    /// the [recent deliveries](Self::recent_deliveries) with outcome `ping`, not counted in the
    /// delivery metrics.
    pub async fn ping(&self) -> Option<PingOutcome> {
        Some(self.admin.as_ref()?.pinger.ping().await)
    }

    /// Stops accepting (the sink's `call` then fails with
    /// [`DeliveryError::Closed`](crate::sink::DeliveryError::Closed)), drains the queue
    /// until `deadline`, then stops the worker; returns the number of events left
    /// undelivered. Calling it again just reports what is left.
    pub async fn shutdown(&self, deadline: tokio::time::Instant) -> usize {
        if self.queues.is_empty() {
            return 0;
        }
        // Every lane stops accepting at once and drains in parallel; waiting for each in turn
        // ends by the same deadline.
        for queue in &self.queues {
            let _ = queue.close();
        }
        let mut left = 0usize;
        for queue in &self.queues {
            left = left.saturating_add(queue.shutdown(deadline).await);
        }
        let persistent = self.queues.iter().all(QueueHandle::is_persistent);
        if left > 0 && persistent {
            tracing::info!(
                endpoint = %self.name,
                left,
                "notifications: endpoint shut down, its backlog waits on disk"
            );
        } else if left > 0 {
            tracing::warn!(
                endpoint = %self.name,
                left,
                "notifications: endpoint shut down with undelivered events"
            );
        } else {
            tracing::info!(endpoint = %self.name, "notifications: endpoint drained and shut down");
        }
        left
    }
}

impl fmt::Debug for EndpointHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointHandle")
            .field("name", &self.name)
            .field("metrics", &self.metrics.snapshot())
            .field("queues", &self.queues)
            .finish()
    }
}
