//! The bounded in-memory [`EventQueue`].

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::{EventQueue, Overflow, QueueConfig, QueueError};
use crate::event::Batch;

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
    /// The head of the queue as handed out by `next` and not yet acked (delivery in
    /// flight): kept as the very batch the worker holds, so a repeated `next` returns it
    /// again without copying, and `ack` just drops it.
    inflight: Option<Batch>,
    /// The batches behind it, as pushed or joined (never empty); the first `head` events
    /// of the first one are gone already.
    waiting: VecDeque<Batch>,
    head: usize,
    /// Events in `waiting`, less `head`.
    waiting_len: usize,
    /// The most events a pushed batch may join the one before it to make: what the worker
    /// last asked for (at most [`COALESCE_MAX`]); 1 until it asks.
    coalesce: usize,
    closed: bool,
}

/// The largest batch that pushes make by joining (a batch reserves room for this many events
/// once it is joined).
const COALESCE_MAX: usize = 128;

impl State {
    fn inflight_len(&self) -> usize {
        self.inflight.as_ref().map_or(0, |b| b.len())
    }

    /// Puts the in-flight events back at the front of `waiting`.
    fn requeue_inflight(&mut self) {
        if let Some(batch) = self.inflight.take() {
            self.normalize_head();
            self.waiting_len += batch.len();
            self.waiting.push_front(batch);
        }
    }

    /// Makes `head` 0 by replacing the first batch with its remaining events.
    fn normalize_head(&mut self) {
        // (With `head == 0` the copy would change nothing: the test only saves it.)
        if self.head > 0 {
            if let Some(first) = self.waiting.front_mut() {
                *first = first[self.head..].iter().cloned().collect();
            }
            self.head = 0;
        }
    }

    /// Removes the first `n` waiting events; returns the batches removed whole, for the
    /// caller to drop once the lock is released.
    fn drop_front(&mut self, n: usize) -> Vec<Batch> {
        let mut removed = Vec::new();
        let mut n = n.min(self.waiting_len);
        self.waiting_len -= n;
        while n > 0 {
            let Some(first) = self.waiting.front() else { break };
            let avail = first.len() - self.head;
            if avail <= n {
                n -= avail;
                removed.extend(self.waiting.pop_front());
                self.head = 0;
            } else {
                self.head += n;
                n = 0;
            }
        }
        removed
    }

    /// Takes up to the first `n` waiting events as one batch: the pushed (or joined) batch
    /// itself when it is exactly that, else events moved (or, from a shared batch, cloned)
    /// into a new one.
    ///
    /// A take ends where a batch does, short of `n`, rather than inside the batch after one
    /// it took whole: batches joined up to what the worker takes then stay whole for every
    /// later take, where one that ended inside a batch would make every later take end
    /// inside one too (and part of a batch move or be cloned each time). Only a first batch
    /// larger than `n` is split; one held by the queue alone is split by moving events out.
    fn take_front(&mut self, n: usize) -> Batch {
        let n = n.min(self.waiting_len);
        if self.head == 0 && self.waiting.front().is_some_and(|b| b.len() == n) {
            self.waiting_len -= n;
            return self.waiting.pop_front().unwrap_or_default();
        }
        let mut events = Vec::with_capacity(n);
        while events.len() < n {
            let need = n - events.len();
            let Some(first) = self.waiting.front_mut() else {
                break;
            };
            let avail = first.len() - self.head;
            if avail <= need {
                let mut first = self.waiting.pop_front().unwrap_or_default();
                if self.head == 0 {
                    events.extend(first.into_events());
                } else if let Some(moved) = first.take_front(self.head, avail) {
                    events.extend(moved);
                } else {
                    events.extend(first[self.head..].iter().cloned());
                }
                self.head = 0;
            } else if !events.is_empty() {
                break;
            } else if let Some(moved) = first.take_front(self.head, need) {
                events.extend(moved);
                self.head = 0;
            } else {
                events.extend(first[self.head..self.head + need].iter().cloned());
                self.head += need;
            }
        }
        self.waiting_len -= events.len();
        Batch::from(events)
    }

    /// Appends the events `batch[from..]`.
    fn append(&mut self, batch: Batch, from: usize) {
        let batch = if from == 0 {
            batch
        } else {
            batch[from..].iter().cloned().collect()
        };
        if batch.is_empty() {
            return;
        }
        self.waiting_len += batch.len();
        // Events pushed one request at a time join the batch before them, up to what the
        // worker takes at once: it then takes that batch as it is, and each pushed batch is
        // freed as soon as it was read, not a hundred at a time after a delivery.
        let batch = match self.waiting.back_mut() {
            Some(back) => match back.absorb(batch, self.coalesce) {
                None => return,
                Some(rest) => rest,
            },
            None => batch,
        };
        self.waiting.push_back(batch);
    }
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
                inflight: None,
                waiting: VecDeque::new(),
                head: 0,
                waiting_len: 0,
                coalesce: 1,
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
            .field("len", &(state.inflight_len() + state.waiting_len))
            .field("inflight", &state.inflight_len())
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
        let waiting = state.waiting_len;
        let room = capacity.saturating_sub(waiting);
        let len = batch.len();
        // Evicted events are freed once the lock is released.
        let mut evicted = Vec::new();
        // The batch is queued as it is (no event copied) unless only part of it fits.
        let dropped = match self.config.overflow {
            Overflow::DropNewest => {
                let take = room.min(len);
                if take == len {
                    state.append(batch, 0);
                } else {
                    state.append(batch[..take].iter().cloned().collect(), 0);
                }
                len - take
            }
            Overflow::DropOldest => {
                if len >= capacity {
                    // Everything waiting goes, and the batch keeps only its newest events.
                    evicted = state.drop_front(waiting);
                    state.append(batch, len - capacity);
                    waiting + len - capacity
                } else {
                    let evict = len.saturating_sub(room);
                    evicted = state.drop_front(evict);
                    state.append(batch, 0);
                    evict
                }
            }
        };
        drop(state);
        drop(evicted);
        self.notify.notify_one();
        Ok(dropped)
    }

    fn next(&self, max_events: usize) -> Pin<Box<dyn Future<Output = Option<Batch>> + Send + '_>> {
        let max_events = max_events.max(1);
        Box::pin(async move {
            loop {
                {
                    let mut state = self.lock();
                    state.coalesce = max_events.min(COALESCE_MAX);
                    let len = state.inflight_len() + state.waiting_len;
                    if len > 0 {
                        let n = max_events.min(len);
                        if let Some(batch) = &state.inflight {
                            if batch.len() == n {
                                return Some(batch.clone());
                            }
                            // Asked for a different number of events than in flight.
                            state.requeue_inflight();
                        }
                        let batch = state.take_front(n);
                        state.inflight = Some(batch.clone());
                        return Some(batch);
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
        // Delivered events are freed after the lock is released: freeing a batch of a
        // hundred events takes tens of microseconds, which a request pushing its event
        // would otherwise wait through.
        let (done, removed) = {
            let mut state = self.lock();
            let inflight = state.inflight_len();
            // (With `n == inflight` either branch removes exactly the batch in flight; this one
            // avoids putting it back only to take it out again.)
            if n < inflight {
                // Part of the batch in flight: the rest goes back to the front.
                state.requeue_inflight();
                (None, state.drop_front(n))
            } else {
                let done = state.inflight.take();
                (done, state.drop_front(n - inflight))
            }
        };
        drop(done);
        drop(removed);
    }

    fn len(&self) -> usize {
        let state = self.lock();
        state.inflight_len() + state.waiting_len
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
    use crate::event::{Action, Event, Target};

    fn events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let mut e = Event::new(Action::Push, Target::default());
                e.id = i.to_string().into();
                e
            })
            .collect()
    }

    fn ids(b: &Batch) -> Vec<String> {
        b.iter().map(|e| e.id.to_string()).collect()
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

    #[test]
    fn config_as_given_with_a_capacity_of_at_least_one() {
        let given = QueueConfig {
            capacity: 7,
            overflow: Overflow::DropNewest,
        };
        assert_eq!(MemoryQueue::new(given.clone()).config(), &given);
        let zero = MemoryQueue::new(QueueConfig { capacity: 0, ..given });
        assert_eq!(zero.config().capacity, 1);
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
    async fn batches_split_and_merge() {
        let q = MemoryQueue::new(QueueConfig {
            capacity: 3,
            overflow: Overflow::DropOldest,
        });
        q.push(Batch::from(events(3))).unwrap();
        let mut one = events(4);
        one.drain(..3);
        // Evicts the oldest event from the middle of a pushed batch.
        assert_eq!(q.push(Batch::from(one)).unwrap(), 1);
        assert_eq!(q.len(), 3);
        assert_eq!(ids(&q.next(1).await.unwrap()), ["1"]);
        assert_eq!(ids(&q.next(2).await.unwrap()), ["1", "2"]);
        q.ack(1);
        assert_eq!(ids(&q.next(5).await.unwrap()), ["2", "3"]);
        q.ack(2);
        assert!(q.is_empty());
        // A shared batch is copied, not taken.
        let shared = Batch::from(events(2));
        q.push(shared.clone()).unwrap();
        q.push(shared.clone()).unwrap();
        // (the capacity of 3 evicted the oldest)
        assert_eq!(ids(&q.next(3).await.unwrap()), ["1", "0", "1"]);
        q.ack(3);
        assert!(q.is_empty());
        assert_eq!(ids(&shared), ["0", "1"]);
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

    /// Drop-oldest eviction that runs through the rest of a partly read first batch into the
    /// next one removes exactly the oldest events.
    #[tokio::test]
    async fn eviction_through_a_partly_read_batch() {
        let q = MemoryQueue::new(QueueConfig {
            capacity: 4,
            overflow: Overflow::DropOldest,
        });
        let all = events(8);
        q.push(Batch::from(all[..3].to_vec())).unwrap(); // 0 1 2
        assert_eq!(ids(&q.next(1).await.unwrap()), ["0"]);
        q.ack(1); // 1 2: the first batch is partly read
        q.push(Batch::from(all[3..5].to_vec())).unwrap(); // 1 2 3 4
        assert_eq!(q.push(Batch::from(all[5..8].to_vec())).unwrap(), 3); // 1, 2 and 3 go
        assert_eq!(ids(&q.next(10).await.unwrap()), ["4", "5", "6", "7"]);
    }

    /// Owned batches pushed after the worker asked for `n` events join the one before them
    /// up to `n` events, which `next` then hands out as it is; a batch held elsewhere too is
    /// neither joined nor joined to, and a joined batch keeps the events' order.
    #[tokio::test]
    async fn pushed_batches_join_up_to_what_the_worker_takes() {
        let q = MemoryQueue::new(QueueConfig::default());
        let all = events(15);
        let batches = |q: &MemoryQueue| q.lock().waiting.iter().map(|b| b.len()).collect::<Vec<_>>();
        // Before the worker asks, nothing joins.
        q.push(Batch::from(all[0].clone())).unwrap();
        q.push(Batch::from(all[1].clone())).unwrap();
        assert_eq!(batches(&q), [1, 1]);
        assert_eq!(ids(&q.next(4).await.unwrap()), ["0", "1"]);
        q.ack(2);
        // 2 to 5 join up to four events; 6 starts a batch.
        for e in &all[2..7] {
            q.push(Batch::from(e.clone())).unwrap();
        }
        assert_eq!(batches(&q), [4, 1]);
        // A shared batch is not joined to the one before, nor is the next joined to it.
        let shared = Batch::from(all[7..9].to_vec());
        q.push(shared.clone()).unwrap();
        q.push(Batch::from(all[9].clone())).unwrap();
        assert_eq!(batches(&q), [4, 1, 2, 1]);
        assert_eq!(ids(&shared), ["7", "8"]);
        // Owned batches of any size join up to four events; what does not fit starts the
        // next batch.
        q.push(Batch::from(all[10..12].to_vec())).unwrap();
        q.push(Batch::from(all[12..15].to_vec())).unwrap();
        assert_eq!(batches(&q), [4, 1, 2, 4, 2]);
        // The joined batch is handed out whole, in order.
        assert_eq!(ids(&q.next(4).await.unwrap()), ["2", "3", "4", "5"]);
        assert_eq!(batches(&q), [1, 2, 4, 2]);
        q.ack(4);
        let rest: Vec<String> = (6..15).map(|i| i.to_string()).collect();
        assert_eq!(ids(&q.next(100).await.unwrap()), rest);
    }

    /// A take ends at the end of a batch rather than inside the next; a first batch larger
    /// than the take is split, by moving events out when the queue holds it alone (the rest
    /// stays, from its start), by cloning them from one held elsewhere too.
    #[tokio::test]
    async fn takes_end_with_a_batch_and_split_only_the_first() {
        let q = MemoryQueue::new(QueueConfig::default());
        let all = events(10);
        q.push(Batch::from(all[..6].to_vec())).unwrap();
        let shared = Batch::from(all[6..].to_vec());
        q.push(shared.clone()).unwrap();
        let front = |q: &MemoryQueue| {
            let s = q.lock();
            (s.head, s.waiting.front().map_or(0, |b| b.len()))
        };
        assert_eq!(ids(&q.next(4).await.unwrap()), ["0", "1", "2", "3"]);
        assert_eq!(front(&q), (0, 2));
        q.ack(4);
        // Not 4, 5, 6 and 7: the take ends with the first batch.
        assert_eq!(ids(&q.next(4).await.unwrap()), ["4", "5"]);
        assert_eq!(front(&q), (0, 4));
        q.ack(2);
        assert_eq!(ids(&q.next(3).await.unwrap()), ["6", "7", "8"]);
        assert_eq!(front(&q), (3, 4));
        assert_eq!(ids(&shared), ["6", "7", "8", "9"]);
        q.ack(3);
        assert_eq!(ids(&q.next(4).await.unwrap()), ["9"]);
    }

    /// The queue against a plain `VecDeque` model, over random pushes (of owned or shared
    /// batches), `next` and `ack`, with either overflow policy.
    ///
    /// Seeded, 256 cases; a long run: `PROPTEST_CASES=100000 cargo test --release --lib memory`.
    mod model {
        use std::collections::VecDeque;

        use futures_util::FutureExt as _;
        use proptest::prelude::*;

        use super::*;

        #[derive(Clone, Debug)]
        enum Op {
            Push(usize),
            PushShared(usize),
            Next(usize),
            Ack(usize),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => (0..7usize).prop_map(Op::Push),
                1 => (0..7usize).prop_map(Op::PushShared),
                2 => (0..6usize).prop_map(Op::Next),
                2 => (0..8usize).prop_map(Op::Ack),
            ]
        }

        /// What the queue must hold: the events in order, the first `inflight` handed out.
        struct Model {
            events: VecDeque<usize>,
            inflight: usize,
            capacity: usize,
            overflow: Overflow,
        }

        impl Model {
            fn push(&mut self, batch: &[usize]) -> usize {
                let waiting = self.events.len() - self.inflight;
                let room = self.capacity.saturating_sub(waiting);
                match self.overflow {
                    Overflow::DropNewest => {
                        let take = room.min(batch.len());
                        self.events.extend(&batch[..take]);
                        batch.len() - take
                    }
                    // Room is made for the new events only: a queue over its capacity (events
                    // in flight given back by a partial `ack`) is not trimmed further.
                    Overflow::DropOldest if batch.len() >= self.capacity => {
                        self.events.truncate(self.inflight);
                        self.events.extend(&batch[batch.len() - self.capacity..]);
                        waiting + batch.len() - self.capacity
                    }
                    Overflow::DropOldest => {
                        let evict = batch.len().saturating_sub(room);
                        self.events.drain(self.inflight..self.inflight + evict);
                        self.events.extend(batch);
                        evict
                    }
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                failure_persistence: None,
                rng_seed: proptest::test_runner::RngSeed::Fixed(0x9e0e),
                ..ProptestConfig::default()
            })]

            #[test]
            fn behaves_like_a_vecdeque(
                capacity in 1..6usize,
                drop_newest in any::<bool>(),
                ops in prop::collection::vec(op(), 0..40),
            ) {
                let overflow = if drop_newest { Overflow::DropNewest } else { Overflow::DropOldest };
                let q = MemoryQueue::new(QueueConfig { capacity, overflow });
                let mut model = Model { events: VecDeque::new(), inflight: 0, capacity, overflow };
                let all = events(ops.len() * 7);
                let mut next_id = 0;
                let mut shared = Vec::new();
                for op in ops {
                    match op {
                        Op::Push(n) | Op::PushShared(n) => {
                            let batch = Batch::from(all[next_id..next_id + n].to_vec());
                            if matches!(op, Op::PushShared(_)) {
                                shared.push(batch.clone());
                            }
                            let want = model.push(&(next_id..next_id + n).collect::<Vec<_>>());
                            next_id += n;
                            prop_assert_eq!(q.push(batch).unwrap(), want, "dropped");
                        }
                        Op::Next(k) => {
                            let got = q.next(k).now_or_never();
                            if model.events.is_empty() {
                                // An empty open queue waits.
                                prop_assert!(got.is_none());
                                continue;
                            }
                            // At least one event and at most `k` (at least one), from the head:
                            // a take may end with a batch, short of `k`.
                            let got = ids(&got.flatten().unwrap());
                            let most = k.max(1).min(model.events.len());
                            prop_assert!(!got.is_empty() && got.len() <= most, "{} of {}", got.len(), most);
                            model.inflight = got.len();
                            let want: Vec<String> = model.events.iter().take(got.len()).map(usize::to_string).collect();
                            prop_assert_eq!(got, want);
                        }
                        Op::Ack(n) => {
                            q.ack(n);
                            let n = n.min(model.events.len());
                            model.events.drain(..n);
                            model.inflight = 0;
                        }
                    }
                    prop_assert_eq!(q.len(), model.events.len());
                }
                // Everything left comes out in order.
                let rest: Vec<String> = model.events.iter().map(usize::to_string).collect();
                if !rest.is_empty() {
                    prop_assert_eq!(ids(&q.next(usize::MAX).now_or_never().unwrap().unwrap()), rest);
                }
                // Shared batches are never changed.
                for b in &shared {
                    let first: usize = b.first().map_or(0, |e| e.id.parse().unwrap());
                    let want: Vec<String> = (first..first + b.len()).map(|i| i.to_string()).collect();
                    prop_assert_eq!(ids(b), want);
                }
            }
        }
    }
}
