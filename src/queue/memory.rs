//! The bounded in-memory [`EventQueue`].

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::{EventQueue, Overflow, QueueConfig, QueueError};
use crate::event::Batch;
use packed::Packed;

/// A bounded in-memory FIFO of events.
///
/// `capacity` bounds the events *waiting* for delivery; the (at most `max_events`)
/// events handed out by [`next`](EventQueue::next) and not yet acknowledged are in
/// flight and do not count against it, so memory is bounded by `capacity + max_events`
/// events. When a push does not fit, the [`Overflow`] policy decides which events are
/// dropped; [`push`](EventQueue::push) returns how many.
///
/// A batch pushed after the worker asked for `max_events` joins the one before it, up to that
/// many events (a registry pushes one request's events at a time), and
/// [`next`](EventQueue::next) hands out such a batch as it is. A take ends where a batch does,
/// so it may hold fewer than `max_events` events while more are waiting. Events are moved
/// between batches, not copied, unless a batch is shared with another holder (the same batch
/// pushed to two endpoints' queues).
///
/// While an endpoint is down its backlog grows. Once the worker has taken nothing for a second
/// (its delivery is being retried, or there is no worker; one that waits on an empty queue is
/// not stalled) and more than 256 events wait, the
/// batches behind the first are kept *packed* — their strings' text one after the other and a
/// few bytes a field, a field equal to the same field of the event before one byte; small
/// batches (Distribution's one event each) join one pack of up to 128 events — and unpacked
/// when the worker reaches them. A queued pull event then takes about 220 bytes instead of 940
/// to 1 000, one event to a batch or a hundred. A queue whose worker keeps taking never packs,
/// however many events a burst leaves waiting. (Packing and unpacking happen under the queue's
/// lock: about 10 µs to pack 128 pull events and 20 µs to unpack them.)
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
    /// The batches behind it, as pushed or joined (never empty), some packed; the first
    /// `head` events of the first one are gone already (only ever of an unpacked one).
    waiting: VecDeque<Waiting>,
    head: usize,
    /// Events in `waiting`, less `head`.
    waiting_len: usize,
    /// The most events a pushed batch may join the one before it to make: what the worker
    /// last asked for (at most [`COALESCE_MAX`]); until it asks, what it will ask for when
    /// known (see [`MemoryQueue::joining_up_to`]), else 1.
    coalesce: usize,
    /// Past this many events waiting, for a worker that has taken nothing for `stall`,
    /// batches filled by pushes are packed.
    pack_after: usize,
    stall: Duration,
    /// When the worker last took events (or the queue was made).
    last_take: Instant,
    /// The worker found the queue empty and waits for a push: whatever arrived since is not
    /// stalled, only not taken yet.
    idle: bool,
    /// The batches waiting were packed since the worker last took events: only the one just
    /// filled is left to pack at each push.
    swept: bool,
    closed: bool,
}

/// A waiting batch as pushed (or joined), or batches packed because they wait deep in a
/// backlog.
enum Waiting {
    Batch(Batch),
    /// (Boxed: a waiting batch as pushed stays one pointer wide in the queue.)
    Packed(Box<Packed>),
}

impl Waiting {
    fn len(&self) -> usize {
        match self {
            Waiting::Batch(b) => b.len(),
            Waiting::Packed(p) => p.len(),
        }
    }
}

/// The largest batch that pushes make by joining (a batch reserves room for this many events
/// once it is joined).
const COALESCE_MAX: usize = 128;

/// Events waiting past which the batches that pushes fill are packed (when the worker stalls):
/// enough for two takes of the largest batches.
const PACK_AFTER: usize = 2 * COALESCE_MAX;

/// How long the worker must have taken nothing (a delivery in flight, retried, or no worker)
/// before a backlog is packed: far longer than a POST to a receiver that keeps up, so that
/// such a queue never pays for packing, however many events a burst leaves waiting.
const STALL: Duration = Duration::from_secs(1);

/// The first of `waiting`, its pack unpacked first if it was packed.
fn front_batch(waiting: &mut VecDeque<Waiting>) -> Option<&mut Batch> {
    if let Some(Waiting::Packed(_)) = waiting.front() {
        if let Some(Waiting::Packed(packed)) = waiting.pop_front() {
            for batch in packed.unpack().into_iter().rev() {
                waiting.push_front(Waiting::Batch(batch));
            }
        }
    }
    match waiting.front_mut() {
        Some(Waiting::Batch(b)) => Some(b),
        _ => None,
    }
}

impl State {
    fn inflight_len(&self) -> usize {
        self.inflight.as_ref().map_or(0, |b| b.len())
    }

    /// Packs the batches filled, deep in a backlog that waits for a worker which has taken
    /// nothing for a while (`stall`): the one just filled (before the last one, still filling)
    /// and, the first time in such a wait, every one behind the first (which the worker takes
    /// next). A batch joins the pack before it if that one is open and has room.
    #[cold]
    #[inline(never)]
    fn pack_filled(&mut self) {
        // (`append` checked the backlog's length; the entries' count keeps `drain` in range.)
        if self.waiting.len() < 3 || self.idle || self.last_take.elapsed() < self.stall {
            return;
        }
        let Some(filling) = self.waiting.pop_back() else {
            return;
        };
        let from = if self.swept { self.waiting.len() - 1 } else { 1 };
        self.swept = true;
        let filled: Vec<Waiting> = self.waiting.drain(from..).collect();
        for entry in filled {
            self.push_packed(entry);
        }
        self.waiting.push_back(filling);
    }

    /// Appends `entry` packed: joining the pack at the back if it is open, has room and is not
    /// the first waiting entry.
    fn push_packed(&mut self, entry: Waiting) {
        let not_first = self.waiting.len() > 1;
        let batch = match (entry, self.waiting.back_mut()) {
            (Waiting::Batch(batch), Some(Waiting::Packed(before))) if not_first => {
                match before.join(batch, COALESCE_MAX) {
                    Ok(()) => return,
                    Err(batch) => {
                        before.close();
                        batch
                    }
                }
            }
            (Waiting::Batch(batch), _) => batch,
            (packed, back) => {
                if let Some(Waiting::Packed(before)) = back {
                    before.close();
                }
                self.waiting.push_back(packed);
                return;
            }
        };
        self.waiting
            .push_back(Waiting::Packed(Box::new(Packed::pack(batch, COALESCE_MAX))));
    }

    /// Puts the in-flight events back at the front of `waiting`.
    fn requeue_inflight(&mut self) {
        if let Some(batch) = self.inflight.take() {
            self.normalize_head();
            self.waiting_len += batch.len();
            self.waiting.push_front(Waiting::Batch(batch));
        }
    }

    /// Makes `head` 0 by replacing the first batch with its remaining events.
    fn normalize_head(&mut self) {
        // (With `head == 0` the copy would change nothing: the test only saves it.)
        if self.head > 0 {
            if let Some(first) = front_batch(&mut self.waiting) {
                *first = first[self.head..].iter().cloned().collect();
            }
            self.head = 0;
        }
    }

    /// Removes the first `n` waiting events; returns the batches removed whole, for the
    /// caller to drop once the lock is released.
    fn drop_front(&mut self, n: usize) -> Vec<Waiting> {
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
            } else if let Waiting::Packed(_) = first {
                // `head` counts into an unpacked batch only: unpacked, its first batch is looked
                // at again.
                front_batch(&mut self.waiting);
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
        if self.head == 0 && front_batch(&mut self.waiting).is_some_and(|b| b.len() == n) {
            if let Some(Waiting::Batch(b)) = self.waiting.pop_front() {
                self.waiting_len -= n;
                return b;
            }
        }
        let mut events = Vec::with_capacity(n);
        while events.len() < n {
            let need = n - events.len();
            let Some(first) = front_batch(&mut self.waiting) else {
                break;
            };
            let avail = first.len() - self.head;
            if avail <= need {
                let Some(Waiting::Batch(mut first)) = self.waiting.pop_front() else {
                    break;
                };
                if self.head == 0 {
                    events.extend(first.into_events());
                } else if let Some(moved) = first.move_out(self.head, avail) {
                    events.extend(moved);
                } else {
                    events.extend(first[self.head..].iter().cloned());
                }
                self.head = 0;
            } else if !events.is_empty() {
                break;
            } else if let Some(moved) = first.move_out(self.head, need) {
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
    #[inline(always)]
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
            Some(Waiting::Batch(back)) => match back.absorb(batch, self.coalesce) {
                None => return,
                Some(rest) => rest,
            },
            _ => batch,
        };
        self.waiting.push_back(Waiting::Batch(batch));
        // The batch before it is full: deep in a backlog, it may be packed (out of line, so
        // that pushes to a queue that keeps up pay one comparison).
        if self.waiting_len > self.pack_after && self.waiting.len() >= 3 {
            self.pack_filled();
        }
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
                pack_after: PACK_AFTER,
                stall: STALL,
                last_take: Instant::now(),
                idle: false,
                swept: false,
                closed: false,
            }),
            notify: Notify::new(),
        }
    }

    /// Lets pushed batches join up to `max_events` events before the worker first asks for
    /// that many (it may start after the first requests).
    pub(crate) fn joining_up_to(mut self, max_events: usize) -> Self {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        state.coalesce = max_events.clamp(1, COALESCE_MAX);
        self
    }

    /// Packs the batches filled past `n` events waiting (instead of [`PACK_AFTER`]), whether
    /// the worker stalls or not.
    #[cfg(test)]
    fn packing_after(mut self, n: usize) -> Self {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        state.pack_after = n;
        state.stall = Duration::ZERO;
        self
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
                        state.last_take = Instant::now();
                        state.idle = false;
                        state.swept = false;
                        state.inflight = Some(batch.clone());
                        return Some(batch);
                    }
                    if state.closed {
                        return None;
                    }
                    state.idle = true;
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

mod packed;

#[cfg(test)]
mod tests;
