//! The push path of [`DurableQueue`](super::DurableQueue): encoding, the bounds (capacity,
//! `maxbytes`, write buffer) with their overflow policy, and framing records for the writer.
//! With `fsync: always` a push is kept whole or refused whole, before anything is dropped.

use tokio::sync::oneshot;

use super::format::{self, MAX_SEQ};
use super::inner::{lock, Inner};
use super::state::{Chunk, Seg, State, Waiter};
use crate::event::Batch;
use crate::metrics::LossReason;
use crate::queue::{Overflow, QueueError};

/// Encoded events waiting for the writer thread, at most (beyond, new events are refused).
pub(crate) const PENDING_LIMIT: usize = 8 << 20;

/// What became of a push.
pub(crate) enum Pushed {
    /// Kept (all, or what the bounds allowed); nothing to wait for.
    Kept,
    /// `fsync: always`: refused whole, with the reason.
    Refused(&'static str),
    /// `fsync: always`: kept whole; the writer tells the outcome.
    Waiting(oneshot::Receiver<Result<(), String>>),
}

impl Inner {
    /// Appends `batch`; returns how many events were dropped (this push's refused ones and older
    /// ones evicted) and what became of it. `whole`: all of it or nothing (`fsync: always`).
    pub(crate) fn push(&self, batch: &Batch, whole: bool) -> Result<(usize, Pushed), QueueError> {
        // Encoding is the expensive part: do it before taking the lock.
        let mut payloads: Vec<Vec<u8>> = Vec::with_capacity(batch.len());
        let mut unencodable = 0u64;
        for event in batch.iter() {
            match serde_json::to_vec(event) {
                Ok(p) if p.len() <= format::MAX_PAYLOAD => payloads.push(p),
                _ => unencodable += 1,
            }
        }
        if unencodable > 0 {
            tracing::warn!(
                events = unencodable,
                "durable queue: event too large to store, dropped"
            );
        }
        let mut st = lock(&self.state);
        if st.closed {
            return Err(QueueError::Closed);
        }
        let n = payloads.len() as u64;
        let total = batch.len();
        let need: u64 = payloads.iter().map(|p| format::record_size(p.len())).fold(
            format::SEGMENT_HEADER + format::GAP_FRAME as u64,
            u64::saturating_add,
        );
        if whole {
            if let Some(why) = self.refusal(&st, n, unencodable, need) {
                drop(st);
                self.record_refused(total as u64);
                return Ok((total, Pushed::Refused(why)));
            }
        }
        let waiting = st.waiting();
        let mut evicted = 0u64;
        let mut dropped = unencodable;
        // The event bound, like the memory queue's.
        let mut keep = 0..payloads.len();
        match self.overflow {
            Overflow::DropNewest => {
                let take = self.capacity.saturating_sub(waiting).min(n);
                keep.end = take as usize;
                dropped += n - take;
            }
            _ => {
                if n >= self.capacity {
                    let t = st.tail;
                    evicted += st.skip_to(t);
                    keep.start = (n - self.capacity) as usize;
                    dropped += n - self.capacity;
                } else {
                    let evict = waiting.saturating_add(n).saturating_sub(self.capacity);
                    let to = self.nth_waiting(&st, evict);
                    evicted += st.skip_to(to);
                }
            }
        }
        // The byte bound.
        let max = self.config.max_bytes;
        let need_kept: u64 = payloads[keep.clone()]
            .iter()
            .map(|p| format::record_size(p.len()))
            .fold(
                format::SEGMENT_HEADER + format::GAP_FRAME as u64,
                u64::saturating_add,
            );
        if st.used_bytes.saturating_add(need_kept) > max && self.overflow == Overflow::DropOldest {
            let need = st.used_bytes.saturating_add(need_kept) - max;
            evicted += self.free_oldest(&mut st, need);
            st.collect_dead();
        }
        // What does not fit the disk, the write buffer or the sequence numbers is refused.
        let mut used = st
            .used_bytes
            .saturating_add(format::SEGMENT_HEADER + format::GAP_FRAME as u64);
        let mut buffered = st.pending_bytes;
        let mut fit = keep.start;
        while fit < keep.end {
            let size = format::record_size(payloads[fit].len());
            let seq_ok = st.tail.saturating_add((fit - keep.start) as u64) < MAX_SEQ;
            if used.saturating_add(size) > max
                || buffered.saturating_add(size as usize) > PENDING_LIMIT
                || !seq_ok
            {
                break;
            }
            used += size;
            buffered += size as usize;
            fit += 1;
        }
        if fit < keep.end {
            dropped += (keep.end - fit) as u64;
            keep.end = fit;
        }
        let first = st.tail;
        for payload in &payloads[keep] {
            self.append(&mut st, payload);
        }
        let end = st.tail;
        st.live += end - first;
        let mut pushed = Pushed::Kept;
        if whole && end > first {
            let (tx, rx) = oneshot::channel();
            // `refusal` leaves nothing for the bounds to drop; were one dropped anyway, the push
            // fails rather than claim what it did not keep.
            let partial = end - first < n;
            debug_assert!(!partial, "a whole push was cut");
            st.waiters.push_back(Waiter {
                first,
                end,
                events: end - first,
                failed: partial,
                tx,
            });
            pushed = Pushed::Waiting(rx);
        }
        st.collect_dead();
        // Only an idle writer needs a wake-up (a syscall): a busy one takes everything pending
        // before it waits again.
        let wake = (end > first || !st.to_delete.is_empty()) && std::mem::take(&mut st.writer_idle);
        drop(st);
        if wake {
            self.wake_writer.notify_one();
        }
        self.record_lost(LossReason::Overflow, evicted + dropped, false);
        Ok(((evicted + dropped) as usize, pushed))
    }

    /// Why a whole push of `n` encodable events (`need` bytes) cannot be kept, if it cannot.
    fn refusal(&self, st: &State, n: u64, unencodable: u64, need: u64) -> Option<&'static str> {
        if unencodable > 0 {
            return Some("durable queue: an event is too large to store; request refused");
        }
        let capacity_full = match self.overflow {
            Overflow::DropNewest => st.waiting().saturating_add(n) > self.capacity,
            _ => n > self.capacity,
        };
        if capacity_full {
            return Some("durable queue: full (capacity); request refused");
        }
        if st
            .pending_bytes
            .saturating_add(usize::try_from(need).unwrap_or(usize::MAX))
            > PENDING_LIMIT
        {
            return Some("durable queue: the disk is behind (write buffer full); request refused");
        }
        if st.tail.saturating_add(n) >= MAX_SEQ {
            return Some("durable queue: sequence numbers exhausted; request refused");
        }
        let freeable = match self.overflow {
            Overflow::DropOldest => self.freeable(st),
            _ => 0,
        };
        if st.used_bytes.saturating_sub(freeable).saturating_add(need) > self.config.max_bytes {
            return Some("durable queue: full (maxbytes); request refused");
        }
        None
    }

    /// The sequence number after the first `k` live waiting events.
    fn nth_waiting(&self, st: &State, k: u64) -> u64 {
        let from = st.waiting_start();
        if k == 0 {
            return from;
        }
        if st.holes.is_empty() {
            return from.saturating_add(k).min(st.tail);
        }
        // Holes: find the smallest `to` with `k` live events in `[from, to)`.
        let (mut lo, mut hi) = (from, st.tail);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if st.present(from, mid + 1) >= k {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo.saturating_add(1).min(st.tail)
    }

    /// Bytes the drop-oldest policy can free: sealed segments without events in flight.
    fn freeable(&self, st: &State) -> u64 {
        let sealed = st.segments.len().saturating_sub(1);
        st.segments
            .iter()
            .take(sealed)
            .filter(|s| !(st.head < st.inflight_end && s.first < st.inflight_end && st.head < s.end))
            .map(|s| s.bytes)
            .fold(0, u64::saturating_add)
    }

    /// Drops waiting events, oldest sealed segments first, until `need` bytes will be freed or
    /// nothing more can be; returns how many events were dropped.
    fn free_oldest(&self, st: &mut State, need: u64) -> u64 {
        let mut dropped = 0;
        let mut freed = 0u64;
        let sealed = st.segments.len().saturating_sub(1);
        for i in 0..sealed {
            if freed >= need {
                break;
            }
            let s = st.segments[i];
            if s.end > st.waiting_start() {
                dropped += st.skip_to(s.end);
            }
            if st.is_dead(&s) {
                freed = freed.saturating_add(s.bytes);
            }
        }
        dropped
    }

    /// Frames one record at the tail, starting a new segment when the last one is full.
    fn append(&self, st: &mut State, payload: &[u8]) {
        let size = format::record_size(payload.len());
        let seq = st.tail;
        let start_new = match st.segments.back() {
            None => true,
            Some(last) => {
                st.rotate
                    || last.v1
                    || (last.end > last.first && last.bytes.saturating_add(size) > self.segment_bytes)
            }
        };
        if start_new {
            st.rotate = false;
            st.segments.push_back(Seg {
                first: seq,
                end: seq,
                bytes: format::SEGMENT_HEADER,
                written: 0,
                v1: false,
            });
            st.used_bytes = st.used_bytes.saturating_add(format::SEGMENT_HEADER);
        }
        let segment = match st.segments.back_mut() {
            Some(last) => {
                last.end = seq + 1;
                last.bytes = last.bytes.saturating_add(size);
                last.first
            }
            None => return,
        };
        st.used_bytes = st.used_bytes.saturating_add(size);
        st.tail = seq + 1;
        st.pending_bytes = st.pending_bytes.saturating_add(size as usize);
        match st.pending.back_mut() {
            Some(chunk) if chunk.segment == segment => {
                format::encode_record(&mut chunk.bytes, seq, payload);
                chunk.end = seq + 1;
            }
            _ => {
                let mut bytes = Vec::with_capacity(4 << 10);
                format::encode_record(&mut bytes, seq, payload);
                st.pending.push_back(Chunk {
                    segment,
                    bytes,
                    first: seq,
                    end: seq + 1,
                });
            }
        }
    }
}
