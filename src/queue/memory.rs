//! The bounded in-memory [`EventQueue`].

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::{EventQueue, Overflow, QueueConfig, QueueError};
use crate::event::{Batch, Event};

/// A bounded in-memory FIFO of events.
///
/// `capacity` bounds the events *waiting* for delivery; the (at most `max_events`)
/// events handed out by [`next`](EventQueue::next) and not yet acknowledged are in
/// flight and do not count against it, so memory is bounded by `capacity + max_events`
/// events. When a push does not fit, the [`Overflow`] policy decides which events are
/// dropped; [`push`](EventQueue::push) returns how many.
///
/// ```
/// use registry_notify::queue::{EventQueue, MemoryQueue, Overflow, QueueConfig};
/// use registry_notify::{Action, Batch, Event, Target};
///
/// let queue = MemoryQueue::new(QueueConfig { capacity: 2, overflow: Overflow::DropOldest });
/// let events: Vec<Event> = (0..3).map(|_| Event::new(Action::Push, Target::default())).collect();
/// let dropped = queue.push(Batch::from(events.clone())).unwrap();
/// assert_eq!((dropped, queue.len()), (1, 2)); // the oldest event made room
/// ```
pub struct MemoryQueue {
    config: QueueConfig,
    state: Mutex<State>,
    notify: Notify,
}

struct State {
    events: VecDeque<Event>,
    /// The first `inflight` events of `events` were handed out by `next` and not acked.
    inflight: usize,
    closed: bool,
}

impl MemoryQueue {
    /// An empty queue with `config`'s capacity and overflow policy (a capacity of 0 is
    /// treated as 1).
    pub fn new(config: QueueConfig) -> Self {
        Self {
            config: QueueConfig {
                capacity: config.capacity.max(1),
                overflow: config.overflow,
            },
            state: Mutex::new(State {
                events: VecDeque::new(),
                inflight: 0,
                closed: false,
            }),
            notify: Notify::new(),
        }
    }

    /// The queue's configuration.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for MemoryQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryQueue")
            .field("config", &self.config)
            .field("len", &state.events.len())
            .field("inflight", &state.inflight)
            .field("closed", &state.closed)
            .finish()
    }
}

impl EventQueue for MemoryQueue {
    fn push(&self, batch: Batch) -> Result<usize, QueueError> {
        let mut state = self.lock();
        if state.closed {
            return Err(QueueError::Closed);
        }
        let capacity = self.config.capacity;
        let waiting = state.events.len() - state.inflight;
        let room = capacity.saturating_sub(waiting);
        let dropped = match self.config.overflow {
            Overflow::DropNewest => {
                let take = room.min(batch.len());
                state.events.extend(batch[..take].iter().cloned());
                batch.len() - take
            }
            Overflow::DropOldest => {
                if batch.len() >= capacity {
                    // Everything waiting goes, and the batch keeps only its newest events.
                    let start = state.inflight;
                    state.events.truncate(start);
                    state
                        .events
                        .extend(batch[batch.len() - capacity..].iter().cloned());
                    waiting + batch.len() - capacity
                } else {
                    let evict = batch.len().saturating_sub(room);
                    let start = state.inflight;
                    state.events.drain(start..start + evict);
                    state.events.extend(batch.iter().cloned());
                    evict
                }
            }
        };
        drop(state);
        self.notify.notify_one();
        Ok(dropped)
    }

    fn next(&self, max_events: usize) -> Pin<Box<dyn Future<Output = Option<Batch>> + Send + '_>> {
        let max_events = max_events.max(1);
        Box::pin(async move {
            loop {
                {
                    let mut state = self.lock();
                    if !state.events.is_empty() {
                        let n = max_events.min(state.events.len());
                        state.inflight = state.inflight.max(n);
                        return Some(state.events.iter().take(n).cloned().collect());
                    }
                    if state.closed {
                        return None;
                    }
                }
                // `notify_one` stores a permit when nobody waits, so a push between the
                // check above and this await is not missed.
                self.notify.notified().await;
            }
        })
    }

    fn ack(&self, n: usize) {
        let mut state = self.lock();
        let n = n.min(state.events.len());
        state.events.drain(..n);
        state.inflight = state.inflight.saturating_sub(n);
    }

    fn len(&self) -> usize {
        self.lock().events.len()
    }

    fn close(&self) -> Result<(), QueueError> {
        let mut state = self.lock();
        if state.closed {
            return Err(QueueError::AlreadyClosed);
        }
        state.closed = true;
        drop(state);
        self.notify.notify_one();
        Ok(())
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Target};

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let mut e = Event::new(Action::Push, Target::default());
                e.id = i.to_string();
                e
            })
            .collect()
    }

    fn ids(b: &Batch) -> Vec<String> {
        b.iter().map(|e| e.id.clone()).collect()
    }

    #[tokio::test]
    async fn fifo_peek_ack() {
        let q = MemoryQueue::new(QueueConfig::default());
        q.push(Batch::from(events(5))).unwrap();
        let b = q.next(2).await.unwrap();
        assert_eq!(ids(&b), ["0", "1"]);
        // Not removed until acked.
        assert_eq!(ids(&q.next(2).await.unwrap()), ["0", "1"]);
        q.ack(2);
        assert_eq!(ids(&q.next(10).await.unwrap()), ["2", "3", "4"]);
        q.ack(3);
        assert!(q.is_empty());
        q.close().unwrap();
        assert!(q.next(1).await.is_none());
        assert_eq!(q.close(), Err(QueueError::AlreadyClosed));
        assert_eq!(q.push(Batch::from(events(1))), Err(QueueError::Closed));
    }

    #[tokio::test]
    async fn drop_oldest_spares_inflight() {
        let q = MemoryQueue::new(QueueConfig {
            capacity: 3,
            overflow: Overflow::DropOldest,
        });
        q.push(Batch::from(events(1))).unwrap();
        let inflight = q.next(1).await.unwrap();
        assert_eq!(ids(&inflight), ["0"]);
        let more: Vec<Event> = events(6).into_iter().skip(1).collect(); // 1..=5
        assert_eq!(q.push(Batch::from(more)).unwrap(), 2);
        q.ack(1);
        assert_eq!(ids(&q.next(10).await.unwrap()), ["3", "4", "5"]);
        // A batch larger than the capacity keeps its newest events.
        // (the three in flight are spared).
        assert_eq!(q.push(Batch::from(events(5))).unwrap(), 2);
        q.ack(3);
        assert_eq!(ids(&q.next(10).await.unwrap()), ["2", "3", "4"]);
    }

    #[tokio::test]
    async fn drop_newest_refuses() {
        let q = MemoryQueue::new(QueueConfig {
            capacity: 3,
            overflow: Overflow::DropNewest,
        });
        assert_eq!(q.push(Batch::from(events(2))).unwrap(), 0);
        assert_eq!(q.push(Batch::from(events(4))).unwrap(), 3);
        assert_eq!(ids(&q.next(10).await.unwrap()), ["0", "1", "0"]);
    }

    #[tokio::test]
    async fn next_waits_for_push_and_close() {
        let q = std::sync::Arc::new(MemoryQueue::new(QueueConfig::default()));
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.next(1).await.map(|b| b.len()) });
        tokio::task::yield_now().await;
        q.push(Batch::from(events(1))).unwrap();
        assert_eq!(waiter.await.unwrap(), Some(1));
        q.ack(1);
        let q3 = q.clone();
        let waiter = tokio::spawn(async move { q3.next(1).await.map(|b| b.len()) });
        tokio::task::yield_now().await;
        q.close().unwrap();
        assert_eq!(waiter.await.unwrap(), None);
    }
}
