//! The delivery log: one record per attempt and per dead-lettered batch.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::DeadLetter;
use crate::event::Batch;

/// What became of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The endpoint accepted the batch.
    Delivered,
    /// The attempt failed and the batch will be attempted again.
    Retrying,
    /// The attempt failed and the batch is given up on; a [`DeliveryRecord::DeadLetter`]
    /// follows.
    GivingUp,
}

/// One delivery attempt, as the delivery log sees it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DeliveryAttempt {
    /// Endpoint name.
    pub endpoint: Arc<str>,
    /// The batch's message id ([`message_id`](crate::event::message_id); the `webhook-id` of
    /// signed requests).
    pub message_id: String,
    /// The events attempted (a cheap handle, for replay).
    pub batch: Batch,
    /// 1 for the first attempt of the batch, 2 for the first retry, …
    pub attempt: u32,
    /// The HTTP status of the response, if there was one (from [`HttpSink`](crate::http_sink::HttpSink);
    /// other sinks report statuses only through a
    /// [`DeliveryError::Status`](crate::sink::DeliveryError::Status)).
    pub status: Option<http::StatusCode>,
    /// From the start of the attempt to its outcome.
    pub latency: Duration,
    /// Why the attempt failed (never containing secrets); `None` when delivered.
    pub error: Option<String>,
    /// What follows.
    pub outcome: AttemptOutcome,
    /// When [`Retrying`](AttemptOutcome::Retrying): how long until the next attempt, if known.
    pub retry_in: Option<Duration>,
    /// When the attempt started.
    pub started: SystemTime,
}

impl DeliveryAttempt {
    /// Whether the endpoint accepted the batch.
    pub fn is_delivered(&self) -> bool {
        self.outcome == AttemptOutcome::Delivered
    }

    /// Whether the batch will be attempted again.
    pub fn will_retry(&self) -> bool {
        self.outcome == AttemptOutcome::Retrying
    }
}

/// A record of the delivery log (see [`EndpointBuilder::delivery_log`](crate::endpoint::EndpointBuilder::delivery_log)).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DeliveryRecord {
    /// One attempt and its outcome.
    Attempt(DeliveryAttempt),
    /// A batch given up on (also handed to the dead-letter hook, if any).
    DeadLetter(DeadLetter),
}

/// Receives the delivery log of an endpoint. It is called inline by the endpoint's worker:
/// keep it quick (append to a file, send on a channel).
pub type DeliveryLogHandler = Arc<dyn Fn(DeliveryRecord) + Send + Sync>;
