//! Ordered lanes: one endpoint's queue split in `N` queues, each with its own worker, so that
//! `N` deliveries are under way at once while the events of one repository keep their order.
//!
//! [`Lanes`] sends each event to the lane of its repository (a stable hash of the name: the
//! same lane on every run and every version of this crate, so that a durable queue's lanes keep
//! their repositories across restarts). A batch whose events all go to one lane — the usual
//! case, one request's events — is handed on whole; one that spans several is split, keeping
//! the order within each lane. With one lane, `Lanes` is its queue.
//!
//! ```
//! use registry_notify::queue::lane_of;
//! assert_eq!(lane_of("library/alpine", 4), lane_of("library/alpine", 4));
//! assert_eq!(lane_of("anything", 1), 0);
//! assert!(lane_of("library/alpine", 4) < 4);
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::{Queue, QueueFuture, QueueHandle};
use crate::event::{Batch, Event};
use crate::sink::BoxError;

/// The lane (`0..lanes`) of the events of `repository`: FNV-1a of the name, modulo `lanes`;
/// 0 when `lanes` is 0 or 1.
pub fn lane_of(repository: &str, lanes: usize) -> usize {
    if lanes <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in repository.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // `lanes` fits in u64 and the remainder is below it: no truncation.
    (hash % lanes as u64) as usize
}

/// The queues of an endpoint's lanes, as one service. Cheap to clone.
///
/// Each event goes to the lane of its repository ([`lane_of`]). A batch whose events all go to
/// one lane is handed on whole; one that spans several is split, keeping the order within each
/// lane.
#[derive(Clone)]
pub struct Lanes {
    queues: Arc<[Queue]>,
    /// New events go to the first `routed` lanes; the others only drain.
    routed: usize,
}

impl Lanes {
    /// Routes to `queues` (at least one), lane `i` being `queues[i]`.
    pub fn new(queues: Vec<Queue>) -> Self {
        assert!(!queues.is_empty(), "Lanes needs at least one queue");
        Self {
            routed: queues.len(),
            queues: queues.into(),
        }
    }

    /// Sends new events to the first `lanes` lanes only (at least 1); the queues after them
    /// (lanes of an earlier run with more concurrency) are delivered and get nothing new.
    pub fn routing(mut self, lanes: usize) -> Self {
        self.routed = lanes.clamp(1, self.queues.len());
        self
    }

    /// How many lanes.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// Always false: there is at least one lane.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The handles of the lanes' queues, lane 0 first.
    pub fn handles(&self) -> Vec<QueueHandle> {
        self.queues.iter().map(Queue::handle).collect()
    }

    fn lane(&self, event: &Event) -> usize {
        lane_of(&event.target.repository, self.routed)
    }
}

impl fmt::Debug for Lanes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lanes")
            .field("lanes", &self.queues.len())
            .field("routed", &self.routed)
            .finish()
    }
}

impl Service<Batch> for Lanes {
    type Response = ();
    type Error = BoxError;
    type Future = QueueFuture;

    /// Always ready, like each [`Queue`].
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Batch) -> QueueFuture {
        let n = self.routed;
        if n == 1 {
            return self.queues[0].enqueue(batch);
        }
        let first = batch.first().map_or(0, |e| self.lane(e));
        if batch.iter().all(|e| self.lane(e) == first) {
            return self.queues[first].enqueue(batch);
        }
        let mut parts: Vec<Vec<Event>> = vec![Vec::new(); n];
        for event in batch.iter() {
            parts[self.lane(event)].push(event.clone());
        }
        let futures: Vec<QueueFuture> = parts
            .into_iter()
            .enumerate()
            .filter(|(_, events)| !events.is_empty())
            .map(|(lane, events)| self.queues[lane].enqueue(Batch::from(events)))
            .collect();
        QueueFuture::all(futures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Target};
    use crate::queue::QueueConfig;
    use tower::ServiceExt;

    #[test]
    fn lanes_are_stable_and_spread() {
        // Fixed values: a change here would move repositories between lanes of a durable
        // queue across an upgrade.
        assert_eq!(lane_of("library/alpine", 4), lane_of("library/alpine", 4));
        assert_eq!(
            (0..8)
                .map(|i| lane_of(&format!("team/app-{i}"), 4))
                .collect::<Vec<_>>(),
            [1, 2, 3, 0, 1, 2, 3, 0]
        );
        let mut count = [0usize; 4];
        for i in 0..1000 {
            count[lane_of(&format!("org-{i}/repo"), 4)] += 1;
        }
        assert!(count.iter().all(|&c| c > 200), "{count:?}");
        assert_eq!(lane_of("x", 0), 0);
    }

    fn event(repo: &str, n: usize) -> Event {
        let mut e = Event::new(Action::Push, Target::default());
        e.target.repository = repo.into();
        e.id = format!("{repo}#{n}").into();
        e
    }

    #[tokio::test]
    async fn a_batch_across_lanes_is_split_in_order() {
        let queues: Vec<Queue> = (0..4)
            .map(|_| {
                Queue::builder(QueueConfig::default())
                    .pair(tower::service_fn(|_: Batch| async { Ok::<(), BoxError>(()) }))
                    .0
            })
            .collect();
        let lanes = Lanes::new(queues);
        let events: Vec<Event> = (0..40)
            .map(|i| event(&format!("team/app-{}", i % 8), i))
            .collect();
        lanes.clone().oneshot(Batch::from(events.clone())).await.unwrap();
        let handles = lanes.handles();
        let total: usize = handles.iter().map(QueueHandle::len).sum();
        assert_eq!(total, 40);
        for (lane, h) in handles.iter().enumerate() {
            let want = events
                .iter()
                .filter(|e| lane_of(&e.target.repository, 4) == lane)
                .count();
            assert_eq!(h.len(), want, "lane {lane}");
        }
    }
}
