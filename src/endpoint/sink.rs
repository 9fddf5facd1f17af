//! The head of a spawned endpoint stack, as one service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::event::Batch;
use crate::filter::{EventFilter, FilterFuture};
use crate::metrics::EndpointMetrics;
use crate::queue::{Lanes, QueueFuture};
use crate::sink::BoxError;

/// The sink of a spawned [`Endpoint`](super::Endpoint): its filter in front of its queue
/// (whose worker drives retry → HTTP). `call` completes as soon as the batch is queued —
/// with a durable `fsync: always` queue, once it is on disk. Cheap to clone.
#[derive(Clone)]
pub struct EndpointSink {
    front: Front,
}

#[derive(Clone)]
enum Front {
    Running(EventFilter<Lanes>),
    /// A disabled endpoint: everything is discarded, counted as `filtered`.
    Disabled(Arc<EndpointMetrics>),
}

impl EndpointSink {
    pub(super) fn running(front: EventFilter<Lanes>) -> Self {
        Self {
            front: Front::Running(front),
        }
    }

    pub(super) fn disabled(metrics: Arc<EndpointMetrics>) -> Self {
        Self {
            front: Front::Disabled(metrics),
        }
    }
}

impl fmt::Debug for EndpointSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.front {
            Front::Running(front) => f.debug_tuple("EndpointSink").field(front).finish(),
            Front::Disabled(metrics) => f
                .debug_tuple("EndpointSink::Disabled")
                .field(&metrics.name())
                .finish(),
        }
    }
}

impl Service<Batch> for EndpointSink {
    type Response = ();
    type Error = BoxError;
    type Future = FilterFuture<QueueFuture>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.front {
            Front::Running(front) => front.poll_ready(cx),
            Front::Disabled(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, batch: Batch) -> Self::Future {
        match &mut self.front {
            Front::Running(front) => front.call(batch),
            Front::Disabled(metrics) => {
                metrics.record_filtered(batch.len());
                FilterFuture::dropped()
            }
        }
    }
}
