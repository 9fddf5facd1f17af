//! The handle of a spawned endpoint.

use std::fmt;
use std::sync::Arc;

use crate::metrics::{EndpointMetrics, EndpointSnapshot};
use crate::queue::QueueHandle;

/// Controls a spawned endpoint: metrics and graceful shutdown. Cheap to clone.
#[derive(Clone)]
pub struct EndpointHandle {
    pub(super) name: Arc<str>,
    pub(super) metrics: Arc<EndpointMetrics>,
    pub(super) queue: Option<QueueHandle>,
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

    /// Events queued or in flight.
    pub fn queued(&self) -> usize {
        self.queue.as_ref().map_or(0, QueueHandle::len)
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
        self.queue.as_ref().and_then(QueueHandle::bytes)
    }

    /// Stops accepting (the sink's `call` then fails with
    /// [`DeliveryError::Closed`](crate::sink::DeliveryError::Closed)), drains the queue
    /// until `deadline`, then stops the worker; returns the number of events left
    /// undelivered. Calling it again just reports what is left.
    pub async fn shutdown(&self, deadline: tokio::time::Instant) -> usize {
        match &self.queue {
            Some(queue) => {
                let left = queue.shutdown(deadline).await;
                if left > 0 && queue.is_persistent() {
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
            None => 0,
        }
    }
}

impl fmt::Debug for EndpointHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointHandle")
            .field("name", &self.name)
            .field("metrics", &self.metrics.snapshot())
            .field("queue", &self.queue)
            .finish()
    }
}
