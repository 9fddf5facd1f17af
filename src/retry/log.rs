//! The delivery log: one record per attempt and per dead-lettered batch.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::endpoint::DeadLetter;
use crate::event::{Batch, Event};

/// The message id of a batch: the event id for a single event, `<first id>+<n-1>` for `n`
/// events (queues are FIFO, so a batch re-read after a restart is the same range of
/// events and gets the same id). Characters that are not visible ASCII are replaced by `_`
/// so the id is always a valid header value; `empty` for an empty batch.
///
/// It is the `webhook-id` of [signed](crate::signing) requests and the
/// [`DeliveryAttempt::message_id`] of the delivery log.
///
/// ```
/// use registry_notify::retry::message_id;
/// use registry_notify::{Action, Event, Target};
/// let mut a = Event::new(Action::Push, Target::default());
/// a.id = "0191-a".into();
/// let b = Event::new(Action::Push, Target::default());
/// assert_eq!(message_id(std::slice::from_ref(&a)), "0191-a");
/// assert_eq!(message_id(&[a, b]), "0191-a+1");
/// ```
pub fn message_id(events: &[Event]) -> String {
    let Some(first) = events.first() else {
        return "empty".to_owned();
    };
    let mut id: String = first
        .id
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if events.len() > 1 {
        id.push('+');
        id.push_str(&(events.len() - 1).to_string());
    }
    id
}

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
    /// The batch's message id ([`message_id`]; the `webhook-id` of signed requests).
    pub message_id: String,
    /// The events attempted (a cheap handle, for replay).
    pub batch: Batch,
    /// 1 for the first attempt of the batch, 2 for the first retry, …
    pub attempt: u32,
    /// The HTTP status of the response, if there was one (from [`HttpSink`](crate::http::HttpSink);
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

tokio::task_local! {
    /// The status of the response to the attempt in progress, set by the HTTP sink.
    static ATTEMPT_STATUS: Cell<Option<http::StatusCode>>;
}

/// Tells the retry stage driving this attempt (if any) the response status.
pub(crate) fn report_status(status: http::StatusCode) {
    let _ = ATTEMPT_STATUS.try_with(|s| s.set(Some(status)));
}

/// Runs `attempt`, returning its result and the status the HTTP sink reported during it.
pub(super) async fn observe<F: std::future::Future>(attempt: F) -> (F::Output, Option<http::StatusCode>) {
    ATTEMPT_STATUS
        .scope(Cell::new(None), async move {
            let out = attempt.await;
            (out, ATTEMPT_STATUS.with(Cell::get))
        })
        .await
}
