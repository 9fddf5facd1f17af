//! A test notification: one synthetic event sent to an endpoint at once, and what came of it
//! (see [`EndpointHandle::ping`](super::EndpointHandle::ping)).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::Serialize;
use tower::ServiceExt;

use crate::event::{message_id, Action, Batch, Event, SharedStr, Target, Timestamp};
use crate::metrics::{EndpointMetrics, RecentDelivery};
use crate::secret::Secrets;
use crate::sink::{DeliveryError, ReceiptSink};

/// What a [ping](super::EndpointHandle::ping) came to.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PingOutcome {
    /// The id of the ping event.
    pub event_id: SharedStr,
    /// Whether the endpoint accepted it.
    pub ok: bool,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// Why it failed (secrets redacted).
    pub error: Option<String>,
    /// From sending to the outcome, in milliseconds.
    pub duration_ms: f64,
}

/// Sends pings for one endpoint.
#[derive(Clone)]
pub(crate) struct Pinger {
    pub(crate) sink: ReceiptSink,
    pub(crate) metrics: Arc<EndpointMetrics>,
    pub(crate) secrets: Arc<Secrets>,
}

impl Pinger {
    pub(crate) async fn ping(&self) -> PingOutcome {
        let event = Event::new(Action::Ping, Target::default());
        let batch = Batch::from(event);
        let started = (SystemTime::now(), Instant::now());
        let result = self.sink.clone().oneshot(batch.clone()).await;
        let duration_ms = started.1.elapsed().as_secs_f64() * 1e3;
        let (status, error) = match &result {
            Ok(receipt) => (receipt.status.map(|s| s.as_u16()), None),
            Err(e) => {
                let status = match e.downcast_ref::<DeliveryError>() {
                    Some(DeliveryError::Status { status, .. }) => Some(status.as_u16()),
                    _ => None,
                };
                (status, Some(self.secrets.scrub(&e.to_string())))
            }
        };
        let event_id = batch.iter().next().map(|e| e.id.clone()).unwrap_or_default();
        self.metrics.record_recent(RecentDelivery {
            at: Timestamp::from(started.0),
            message_id: message_id(&batch),
            event_ids: vec![event_id.clone()],
            events: 1,
            attempt: 1,
            status,
            error: error.clone(),
            duration_ms,
            outcome: "ping",
        });
        PingOutcome {
            event_id,
            ok: result.is_ok(),
            status,
            error,
            duration_ms,
        }
    }
}
