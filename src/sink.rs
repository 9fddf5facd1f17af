//! What every delivery stage has in common.
//!
//! Each stage of the pipeline — broadcast, filter, queue, retry, HTTP — is a
//! [`tower::Service`] over a [`Batch`] of events, with `Response = ()` (the HTTP sink answers a
//! [`Receipt`]) and `Error = `[`BoxError`]. Any service of that shape is a sink: a Kafka producer,
//! a logger or a test probe plugs in with the same `Layer`s.
//!
//! ```
//! use registry_notify::{sink::BoxError, Batch};
//! use tower::service_fn;
//!
//! // A sink that only counts events.
//! let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
//! let c = counter.clone();
//! let sink = service_fn(move |batch: Batch| {
//!     c.fetch_add(batch.len(), std::sync::atomic::Ordering::Relaxed);
//!     async { Ok::<(), BoxError>(()) }
//! });
//! # let _ = sink;
//! ```

use std::fmt;
use std::time::Duration;

pub use crate::event::Batch;

/// The error type of every sink stage.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A type-erased, cloneable, `Sync` sink.
pub type BoxSink = tower::util::BoxCloneSyncService<Batch, (), BoxError>;

/// A type-erased sink that answers with a [`Receipt`] (the HTTP status): an endpoint's
/// innermost stage, as its retry stage and its ping see it.
pub(crate) type ReceiptSink = tower::util::BoxCloneSyncService<Batch, Receipt, BoxError>;

/// What the receiver of a delivered batch answered: the response of a successful attempt of
/// the HTTP sink, read by the retry stage for its delivery log.
/// A sink answering `()` converts into an empty receipt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Receipt {
    /// The HTTP status of the response, if the sink speaks HTTP.
    pub status: Option<http::StatusCode>,
}

impl Receipt {
    /// A receipt for an HTTP response with `status`.
    pub fn status(status: http::StatusCode) -> Self {
        Self { status: Some(status) }
    }
}

impl From<()> for Receipt {
    fn from((): ()) -> Self {
        Self::default()
    }
}

/// Why one delivery attempt failed; returned (boxed) by the HTTP sink and
/// inspected by the retry stage to decide between retrying and dead-lettering.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The endpoint answered with a status that is not a success.
    Status {
        /// The status code.
        status: http::StatusCode,
        /// The `Retry-After` delay the endpoint asked for, if any.
        retry_after: Option<Duration>,
    },
    /// The attempt did not finish within the endpoint's timeout.
    Timeout(Duration),
    /// Connecting or sending failed (refused, reset, TLS, …). The message never
    /// contains URL credentials or header values.
    Transport(String),
    /// The sink is closed and accepts no more events.
    Closed,
    /// Events for an endpoint whose queue promises durability (`fsync: always`) could not
    /// be made durable (a write or fsync failed, the disk is full, or the queue refused them):
    /// the request that produced them must not succeed. The message names the cause; it
    /// never contains secrets.
    NotDurable(String),
    /// The body could not be made (a [payload template](crate::http_sink) failed while
    /// rendering): permanent, the batch is dead-lettered.
    Encode(String),
}

impl DeliveryError {
    /// Whether a later attempt may succeed: 408, 429, 5xx, timeouts and
    /// transport errors are retryable; other statuses are permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Status { status, .. } => {
                let code = status.as_u16();
                code == 408 || code == 429 || status.is_server_error()
            }
            DeliveryError::Timeout(_) | DeliveryError::Transport(_) => true,
            DeliveryError::Closed | DeliveryError::NotDurable(_) | DeliveryError::Encode(_) => false,
        }
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryError::Status { status, .. } => write!(f, "response status {status} unaccepted"),
            DeliveryError::Timeout(d) => write!(f, "timed out after {d:?}"),
            DeliveryError::Transport(msg) => write!(f, "transport error: {msg}"),
            DeliveryError::Closed => f.write_str("sink: closed"),
            DeliveryError::NotDurable(why) => write!(f, "events not durable: {why}"),
            DeliveryError::Encode(why) => write!(f, "cannot make the body: {why}"),
        }
    }
}

impl std::error::Error for DeliveryError {}

impl DeliveryError {
    /// Whether `error` (as returned by a sink, a queue or a broadcast) says that events
    /// could not be made durable ([`DeliveryError::NotDurable`]).
    pub fn is_not_durable(error: &(dyn std::error::Error + 'static)) -> bool {
        matches!(
            error.downcast_ref::<DeliveryError>(),
            Some(DeliveryError::NotDurable(_))
        )
    }
}
