//! The logical state of a durable queue, under one mutex: which sequence numbers are live, which
//! are known to be missing (holes), the segments, what waits for the writer, and who waits for it.
//!
//! Sequence numbers: every event gets the next `u64` when pushed. The live events are those in
//! `[head, inflight_end)` (handed to the worker, not yet acknowledged) and in
//! `[max(inflight_end, skip_before), tail)` (waiting) that are not holes. `skip_before` moves
//! forward when the overflow policy drops waiting events; a hole is a range of sequence numbers
//! whose events are known not to be on disk (a failed write, a damaged record). `live` counts the
//! live events, so the pending count is exact whatever the holes.

use std::collections::{BTreeMap, VecDeque};

use tokio::sync::oneshot;

/// One segment file: the sequence numbers `[first, end)` were assigned to it (holes aside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seg {
    pub(crate) first: u64,
    pub(crate) end: u64,
    /// Bytes it takes or will take once pending records are written (header included).
    pub(crate) bytes: u64,
    /// Bytes of its file the writer has published: the reader never reads beyond.
    pub(crate) written: u64,
    /// Format version 1 (read only; nothing is appended to it).
    pub(crate) v1: bool,
}

impl Seg {
    /// Bytes of its header.
    pub(crate) fn header(&self) -> u64 {
        if self.v1 {
            super::format::SEGMENT_HEADER_V1
        } else {
            super::format::SEGMENT_HEADER
        }
    }
}

/// Encoded records of one segment, waiting for the writer.
pub(crate) struct Chunk {
    pub(crate) segment: u64,
    pub(crate) bytes: Vec<u8>,
    pub(crate) first: u64,
    pub(crate) end: u64,
}

/// What a push waiting for the disk (`fsync: always`) is told.
pub(crate) type Outcome = Result<(), String>;

/// A push waiting for the disk: its events `[first, end)`.
pub(crate) struct Waiter {
    pub(crate) first: u64,
    pub(crate) end: u64,
    pub(crate) events: u64,
    /// Some of its events were dropped (overflow) before they were durable.
    pub(crate) failed: bool,
    pub(crate) tx: oneshot::Sender<Outcome>,
}

/// Disjoint, non-adjacent ranges of missing sequence numbers.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Holes(BTreeMap<u64, u64>);

impl Holes {
    /// How many of `[a, b)` are holes.
    pub(crate) fn overlap(&self, a: u64, b: u64) -> u64 {
        if a >= b {
            return 0;
        }
        let mut n = 0;
        for (&lo, &hi) in self.0.range(..b).rev() {
            if hi <= a {
                break;
            }
            n += hi.min(b) - lo.max(a);
        }
        n
    }

    /// Adds `[a, b)`, merging with what it touches.
    pub(crate) fn insert(&mut self, a: u64, b: u64) {
        if a >= b {
            return;
        }
        let (mut lo, mut hi) = (a, b);
        let touching: Vec<(u64, u64)> = self
            .0
            .range(..=b)
            .rev()
            .take_while(|(_, &e)| e >= a)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in touching {
            self.0.remove(&s);
            lo = lo.min(s);
            hi = hi.max(e);
        }
        self.0.insert(lo, hi);
    }

    /// Forgets everything below `at`.
    pub(crate) fn prune_below(&mut self, at: u64) {
        while let Some((&lo, &hi)) = self.0.first_key_value() {
            if lo >= at {
                break;
            }
            self.0.remove(&lo);
            if hi > at {
                self.0.insert(at, hi);
                break;
            }
        }
    }

    /// Whether there is none.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ranges, in order.
    #[cfg(test)]
    pub(crate) fn ranges(&self) -> Vec<(u64, u64)> {
        self.0.iter().map(|(&a, &b)| (a, b)).collect()
    }
}

/// See the [module docs](self).
/// Bytes from which a fully acknowledged last segment is deleted rather than appended to.
pub(crate) const RETIRE_LAST_BYTES: u64 = 64 << 10;

pub(crate) struct State {
    /// Oldest first; the last one receives appends.
    pub(crate) segments: VecDeque<Seg>,
    pub(crate) head: u64,
    pub(crate) inflight_end: u64,
    pub(crate) skip_before: u64,
    pub(crate) tail: u64,
    /// Live events (the pending count).
    pub(crate) live: u64,
    pub(crate) holes: Holes,
    pub(crate) used_bytes: u64,
    pub(crate) pending: VecDeque<Chunk>,
    pub(crate) pending_bytes: usize,
    /// Events `< written_end` were handled by the writer (written, or failed and made holes).
    pub(crate) written_end: u64,
    /// Segments to delete (first sequence numbers).
    pub(crate) to_delete: Vec<u64>,
    /// Start a new segment with the next push.
    pub(crate) rotate: bool,
    pub(crate) closed: bool,
    pub(crate) stop: bool,
    /// Flush requests so far; the writer answers through `Inner::flushed`.
    pub(crate) flush_wanted: u64,
    pub(crate) paused: bool,
    /// The writer waits for work: a push must wake it (otherwise it will look before waiting).
    pub(crate) writer_idle: bool,
    /// Pushes waiting for the disk, in sequence order.
    pub(crate) waiters: VecDeque<Waiter>,
}

impl State {
    /// An empty state whose next event gets `tail`; `head ..= tail` were acknowledged.
    pub(crate) fn new(head: u64, tail: u64) -> Self {
        Self {
            segments: VecDeque::new(),
            head,
            inflight_end: head,
            skip_before: head,
            tail,
            live: 0,
            holes: Holes::default(),
            used_bytes: 0,
            pending: VecDeque::new(),
            pending_bytes: 0,
            written_end: tail,
            to_delete: Vec::new(),
            rotate: false,
            closed: false,
            stop: false,
            flush_wanted: 0,
            paused: false,
            writer_idle: false,
            waiters: VecDeque::new(),
        }
    }

    pub(crate) fn waiting_start(&self) -> u64 {
        self.inflight_end.max(self.skip_before)
    }

    /// Live events in `[a, b)`.
    pub(crate) fn present(&self, a: u64, b: u64) -> u64 {
        let mut n = 0;
        for (lo, hi) in [(self.head, self.inflight_end), (self.waiting_start(), self.tail)] {
            let (x, y) = (a.max(lo), b.min(hi));
            if x < y {
                n += (y - x) - self.holes.overlap(x, y);
            }
        }
        n
    }

    /// Live events waiting (not handed out).
    pub(crate) fn waiting(&self) -> u64 {
        let ws = self.waiting_start();
        self.present(ws, self.tail)
    }

    /// Whether segment `s` holds no live event.
    pub(crate) fn is_dead(&self, s: &Seg) -> bool {
        self.present(s.first, s.end) == 0
    }

    /// Removes dead segments and schedules their deletion. The last one (appended to) goes
    /// only once it is dead, written out and large (`RETIRE_LAST_BYTES`): then the next push
    /// starts a new segment. Without that, a disk filled by a backlog held in one segment
    /// would stay full after the endpoint acknowledged it all, and an `fsync: always`
    /// queue would refuse every push from then on.
    pub(crate) fn collect_dead(&mut self) {
        let mut i = 0;
        while i + 1 < self.segments.len() {
            if self.is_dead(&self.segments[i]) {
                if let Some(s) = self.segments.remove(i) {
                    self.used_bytes = self.used_bytes.saturating_sub(s.bytes);
                    self.to_delete.push(s.first);
                }
            } else {
                i += 1;
            }
        }
        if let Some(&last) = self.segments.back() {
            if self.is_dead(&last) && self.written_end >= last.end && last.bytes >= RETIRE_LAST_BYTES {
                self.segments.pop_back();
                self.used_bytes = self.used_bytes.saturating_sub(last.bytes);
                self.to_delete.push(last.first);
                self.rotate = true;
            }
        }
    }

    /// Drops waiting events until `waiting_start` reaches `to`; returns how many live events
    /// were dropped. Pushes still waiting for the disk that lose events this way fail.
    pub(crate) fn skip_to(&mut self, to: u64) -> u64 {
        let from = self.waiting_start();
        let to = to.min(self.tail);
        if to <= from {
            return 0;
        }
        let dropped = self.present(from, to);
        self.skip_before = to;
        self.live = self.live.saturating_sub(dropped);
        for w in self.waiters.iter_mut() {
            if w.first < to && from < w.end {
                w.failed = true;
            }
        }
        dropped
    }

    /// Records that the events `[a, b)` are not on disk; returns how many live events that
    /// removes (those already known missing, skipped or acknowledged are not counted again).
    pub(crate) fn mark_missing(&mut self, a: u64, b: u64) -> u64 {
        let a = a.max(self.head);
        if a >= b {
            return 0;
        }
        let gone = self.present(a, b);
        self.holes.insert(a, b);
        self.live = self.live.saturating_sub(gone);
        gone
    }

    /// Every event before `head` was acknowledged (or is gone).
    pub(crate) fn set_head(&mut self, head: u64) {
        self.head = head;
        self.holes.prune_below(head);
    }

    /// The segment holding `seq`, or the first one after it, and whether it is the last one.
    pub(crate) fn segment_from(&self, seq: u64) -> Option<(Seg, bool)> {
        let i = self.segments.partition_point(|s| s.end <= seq);
        let s = self.segments.get(i)?;
        Some((*s, i + 1 == self.segments.len()))
    }

    /// Bytes of records not yet written for segment `first`.
    pub(crate) fn pending_bytes_of(&self, first: u64) -> u64 {
        self.pending
            .iter()
            .filter(|c| c.segment == first)
            .map(|c| c.bytes.len() as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_merge_count_and_prune() {
        let mut h = Holes::default();
        h.insert(10, 20);
        h.insert(30, 40);
        assert_eq!(h.overlap(0, 100), 20);
        assert_eq!(h.overlap(15, 35), 10);
        assert_eq!(h.overlap(20, 30), 0);
        h.insert(20, 30);
        assert_eq!(h.ranges(), [(10, 40)]);
        h.insert(5, 12);
        h.insert(38, 45);
        h.insert(50, 51);
        assert_eq!(h.ranges(), [(5, 45), (50, 51)]);
        h.insert(7, 8);
        assert_eq!(h.ranges(), [(5, 45), (50, 51)]);
        h.prune_below(40);
        assert_eq!(h.ranges(), [(40, 45), (50, 51)]);
        h.prune_below(60);
        assert!(h.is_empty());
        h.insert(3, 3);
        assert!(h.is_empty());
    }

    /// `live` always equals the live events counted from scratch.
    #[test]
    fn live_is_exact_through_holes_skips_and_acks() {
        let mut st = State::new(0, 0);
        let check = |st: &State| assert_eq!(st.live, st.present(0, u64::MAX));
        st.tail = 100;
        st.live = 100;
        check(&st);
        assert_eq!(st.mark_missing(10, 20), 10);
        assert_eq!(st.mark_missing(15, 25), 5, "counted once");
        check(&st);
        assert_eq!(st.skip_to(30), 15, "holes are not dropped twice");
        check(&st);
        assert_eq!(st.mark_missing(0, 30), 0);
        // Hand out 30..40, acknowledge it.
        st.set_head(30);
        st.inflight_end = 40;
        check(&st);
        assert_eq!(st.mark_missing(35, 36), 1);
        st.set_head(40);
        st.live -= 9;
        check(&st);
        assert_eq!(st.live, 60);
    }

    #[test]
    fn segments_by_sequence_number() {
        let mut st = State::new(0, 30);
        for (first, end) in [(0, 10), (10, 20), (25, 30)] {
            st.segments.push_back(Seg {
                first,
                end,
                bytes: 0,
                written: 0,
                v1: false,
            });
        }
        assert_eq!(st.segment_from(0).map(|(s, l)| (s.first, l)), Some((0, false)));
        assert_eq!(st.segment_from(12).map(|(s, _)| s.first), Some(10));
        assert_eq!(st.segment_from(21).map(|(s, l)| (s.first, l)), Some((25, true)));
        assert_eq!(st.segment_from(30), None);
    }
}
