//! The last attempts of an endpoint, kept for operators (`EndpointHandle::recent_deliveries`):
//! a ring of at most [`RECENT_DELIVERIES`] entries, each naming at most [`MAX_IDS`] event ids,
//! so its memory is bounded whatever the batch size.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

use crate::event::{SharedStr, Timestamp};

/// How many attempts an endpoint keeps.
pub const RECENT_DELIVERIES: usize = 100;

/// How many event ids one entry names (the first ones of the batch).
pub const MAX_IDS: usize = 10;

/// One delivery attempt, as an operator sees it afterwards.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RecentDelivery {
    /// When the attempt started.
    pub at: Timestamp,
    /// The batch's message id (the `webhook-id` of signed requests).
    pub message_id: String,
    /// The ids of the first events of the batch (at most [`MAX_IDS`]).
    pub event_ids: Vec<SharedStr>,
    /// How many events the batch had.
    pub events: usize,
    /// 1 for the first attempt of the batch, 2 for the first retry, …
    pub attempt: u32,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    /// Why it failed (secrets redacted); `None` when delivered.
    pub error: Option<String>,
    /// From the start of the attempt to its outcome, in milliseconds.
    pub duration_ms: f64,
    /// `delivered`, `retrying` or `giving_up`.
    pub outcome: &'static str,
}

/// The ring.
#[derive(Debug, Default)]
pub(crate) struct Recent(Mutex<VecDeque<RecentDelivery>>);

impl Recent {
    pub(crate) fn push(&self, entry: RecentDelivery) {
        let mut ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == RECENT_DELIVERIES {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    /// Oldest first.
    pub(crate) fn list(&self) -> Vec<RecentDelivery> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(attempt: u32) -> RecentDelivery {
        RecentDelivery {
            at: Timestamp::from_unix(0, 0),
            message_id: format!("m{attempt}"),
            event_ids: Vec::new(),
            events: 1,
            attempt,
            status: Some(200),
            error: None,
            duration_ms: 1.0,
            outcome: "delivered",
        }
    }

    #[test]
    fn keeps_the_last_hundred_oldest_first() {
        let r = Recent::default();
        for i in 1..=RECENT_DELIVERIES as u32 + 5 {
            r.push(entry(i));
        }
        let list = r.list();
        assert_eq!(list.len(), RECENT_DELIVERIES);
        assert_eq!(list[0].attempt, 6);
        assert_eq!(list[RECENT_DELIVERIES - 1].attempt, RECENT_DELIVERIES as u32 + 5);
    }
}
