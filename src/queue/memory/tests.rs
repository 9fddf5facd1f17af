//! Unit tests of the memory queue (a file of their own: `memory.rs` had passed 600 lines).
use super::*;
use crate::event::{Action, Event, Target};
use futures_util::FutureExt as _;

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

/// Told what the worker will take, a queue joins pushed batches before the worker asks.
#[test]
fn joins_before_the_worker_asks_when_told() {
    let q = MemoryQueue::new(QueueConfig::default()).joining_up_to(3);
    for e in events(4) {
        q.push(Batch::from(e)).unwrap();
    }
    let batches: Vec<usize> = q.lock().waiting.iter().map(|b| b.len()).collect();
    assert_eq!(batches, [3, 1]);
    let q = MemoryQueue::new(QueueConfig::default()).joining_up_to(0);
    for e in events(2) {
        q.push(Batch::from(e)).unwrap();
    }
    assert_eq!(q.lock().waiting.len(), 2);
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

/// Deep in a backlog, the batches that pushes filled are packed (never the first, nor the
/// one being filled); the worker gets them back, in order and equal, and a queue that
/// keeps up packs nothing.
#[tokio::test]
async fn a_backlog_is_packed_and_unpacked_in_order() {
    let q = MemoryQueue::new(QueueConfig::default())
        .joining_up_to(3)
        .packing_after(4);
    let all = events(20);
    for e in &all {
        q.push(Batch::from(e.clone())).unwrap();
    }
    let kinds = |q: &MemoryQueue| {
        q.lock()
            .waiting
            .iter()
            .map(|w| match w {
                Waiting::Batch(b) => format!("b{}", b.len()),
                Waiting::Packed(p) => format!("p{}", p.len()),
            })
            .collect::<Vec<_>>()
    };
    // Batches of 3: each filled once more than 4 waited is packed, into one pack, except the
    // first (taken next) and the last (still filling).
    assert_eq!(kinds(&q), ["b3", "p15", "b2"]);
    assert_eq!(q.len(), 20);
    let mut got = Vec::new();
    while got.len() < 20 {
        let b = q.next(3).await.unwrap();
        got.extend(b.iter().cloned());
        q.ack(b.len());
    }
    assert_eq!(got, all);
    assert!(q.is_empty());
    // Dropping the oldest evicts packed batches whole, and splits one by unpacking it.
    let q = MemoryQueue::new(QueueConfig {
        capacity: 10,
        overflow: Overflow::DropOldest,
    })
    .joining_up_to(3)
    .packing_after(4);
    for e in &all[..10] {
        q.push(Batch::from(e.clone())).unwrap();
    }
    assert_eq!(kinds(&q), ["b3", "p6", "b1"]);
    assert_eq!(q.push(Batch::from(all[10..17].to_vec())).unwrap(), 7);
    // The first batch split (6 dropped), the next one joined up to 3 and packed.
    assert_eq!(kinds(&q), ["b3", "p3", "b5"]);
    let b = q.next(10).await.unwrap();
    assert_eq!(ids(&b), ids(&Batch::from(all[7..17].to_vec())));
    // One at a time, as a worker that keeps up: nothing is packed.
    let q = MemoryQueue::new(QueueConfig::default())
        .joining_up_to(3)
        .packing_after(4);
    for e in &all {
        q.push(Batch::from(e.clone())).unwrap();
        let b = q.next(3).await.unwrap();
        assert!(kinds(&q).iter().all(|k| k.starts_with('b')));
        q.ack(b.len());
    }
}

/// A backlog is packed only once the worker has taken nothing for a second: a burst behind a
/// worker that keeps taking stays as it is; once it stalls, the next push packs every batch
/// behind the first, and each later one the batch it filled.
#[tokio::test]
async fn only_a_stalled_backlog_is_packed() {
    let q = MemoryQueue::new(QueueConfig::default()).joining_up_to(2);
    q.lock().pack_after = 3;
    let all = events(12);
    q.push(Batch::from(all[0].clone())).unwrap();
    let first = q.next(2).await.unwrap();
    for e in &all[1..9] {
        q.push(Batch::from(e.clone())).unwrap();
    }
    let packed = |q: &MemoryQueue| {
        q.lock()
            .waiting
            .iter()
            .map(|w| matches!(w, Waiting::Packed(_)))
            .collect::<Vec<_>>()
    };
    assert_eq!(packed(&q), [false; 4], "taken just now: nothing packed");
    {
        let mut state = q.lock();
        state.last_take = state.last_take.checked_sub(STALL).unwrap_or(state.last_take);
    }
    q.push(Batch::from(all[9].clone())).unwrap();
    assert_eq!(
        packed(&q),
        [false, true, false],
        "swept: all but the first and the last"
    );
    q.push(Batch::from(all[10].clone())).unwrap();
    q.push(Batch::from(all[11].clone())).unwrap();
    assert_eq!(packed(&q), [false, true, false]);
    assert_eq!(
        q.lock().waiting.iter().map(Waiting::len).collect::<Vec<_>>(),
        [2, 8, 1]
    );
    q.ack(first.len());
    let mut got = Vec::new();
    while got.len() < 11 {
        let b = q.next(2).await.unwrap();
        got.extend(b.iter().cloned());
        q.ack(b.len());
    }
    assert_eq!(got, all[1..]);
    // A worker that waits on an empty queue is not stalled, however long ago it last took:
    // a burst that arrives before it wakes is not packed.
    let q = MemoryQueue::new(QueueConfig::default()).joining_up_to(2);
    q.lock().pack_after = 3;
    assert!(q.next(2).now_or_never().is_none(), "waits on the empty queue");
    {
        let mut state = q.lock();
        state.last_take = state.last_take.checked_sub(STALL).unwrap_or(state.last_take);
    }
    for e in &all {
        q.push(Batch::from(e.clone())).unwrap();
    }
    assert_eq!(packed(&q), [false; 6]);
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
            capacity in 1..12usize,
            drop_newest in any::<bool>(),
            ops in prop::collection::vec(op(), 0..60),
            pack_after in prop_oneof![0..4usize, Just(PACK_AFTER)],
        ) {
            let overflow = if drop_newest { Overflow::DropNewest } else { Overflow::DropOldest };
            let q = MemoryQueue::new(QueueConfig { capacity, overflow }).packing_after(pack_after);
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
