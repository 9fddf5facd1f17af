//! Per-endpoint queue: decouples the caller from delivery.
//!
//! [`Queue::builder`] makes a pair, like tower's `Buffer::pair`: the [`Queue`] service, whose
//! `call` pushes the batch into an [`EventQueue`] and returns at once, and the
//! [`QueueWorker`], a future for the caller to spawn, which takes up to `max_events` events
//! from the head, hands them to the inner sink (normally retry → HTTP), waits for it, and
//! only then removes them from the queue ([`ack`](EventQueue::ack)). A slow or dead
//! endpoint therefore never blocks the registry or the other endpoints, and delivery per
//! endpoint stays FIFO with one batch in flight.
//!
//! With `max_events` above 1 the worker also *lingers* under load (Kafka's `linger.ms`):
//! when the envelope it just delivered held more than one event but was not full, events
//! are arriving faster than one per round trip, so it waits up to [`QueueBuilder::linger`]
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
//! use registry_notify::queue::{Queue, QueueConfig};
//! use registry_notify::{sink::BoxError, Action, Batch, Event, Target};
//! use tower::{service_fn, Service, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! let sink = service_fn(move |batch: Batch| {
//!     let tx = tx.clone();
//!     async move { tx.send(batch.len()).map_err(BoxError::from) }
//! });
//! let (mut queue, worker) = Queue::builder(QueueConfig::default()).max_events(10).pair(sink);
//! tokio::spawn(worker);
//! let handle = queue.handle();
//! let event = Event::new(Action::Push, Target::default());
//! queue.ready().await.unwrap().call(Batch::from(event)).await.unwrap(); // returns at once
//! assert_eq!(rx.recv().await, Some(1));
//! let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
//! assert_eq!(handle.shutdown(deadline).await, 0);
//! # }
//! ```

mod batching;
pub mod durable;
mod future;
mod handle;
mod lanes;
mod memory;
mod service;
mod worker;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

pub use durable::{DurableConfig, Fsync};
#[cfg(feature = "durable")]
pub use durable::{DurableQueue, DurableStats};
pub use future::{Persisted, QueueFuture};
pub use handle::QueueHandle;
pub use lanes::{lane_of, Lanes};
pub use memory::MemoryQueue;
pub use service::{Queue, QueueBuilder};
pub use worker::QueueWorker;

use crate::event::Batch;

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

    /// Bytes the backlog takes where the queue measures it (a durable queue's segment files);
    /// `None` (the default) where it does not.
    fn bytes(&self) -> Option<u64> {
        None
    }

    /// Whether the queue fails closed: a push whose events it cannot make durable (including
    /// one refused because the queue is closed) must fail the request that produced them
    /// ([`DeliveryError::NotDurable`](crate::sink::DeliveryError::NotDurable)). `true` for a
    /// durable queue with `fsync: always`.
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
#[non_exhaustive]
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

impl QueueConfig {
    /// Checks the bounds: the one check of them, for the builder and the YAML alike (the
    /// error's path is `queue.capacity`, relative to the endpoint).
    pub fn validate(&self) -> Result<(), crate::error::ConfigError> {
        if self.capacity == 0 {
            return Err(crate::error::ConfigError::field("queue.capacity", "must be > 0"));
        }
        Ok(())
    }
}

/// How long a busy worker waits for a partly filled envelope by default: 1 ms.
pub const DEFAULT_LINGER: std::time::Duration = std::time::Duration::from_millis(1);
