//! The reader: decodes events from the segment files ahead of the endpoint's worker (on a
//! blocking thread), hands them out in order, and moves the head when they are acknowledged.
//!
//! It reads only what the writer has published (`Seg::written`), so it never sees a write that
//! is later cut back. A sequence number it does not find where it should be is marked missing;
//! what was not known missing already (a write failure, a damage found at open) is damage found
//! now, and counted as corrupt.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::sync::atomic::Ordering;

use super::frames::{Frame, FrameReader};
use super::inner::{lock, Inner};
use super::readahead::READAHEAD_BYTES;
use super::state::Seg;
use crate::event::{Batch, Event};
use crate::metrics::LossReason;

/// What [`Inner::take`] found.
pub(crate) enum Take {
    Batch(Batch),
    /// Closed and empty.
    Done,
    /// Nothing written to read yet.
    Wait,
    /// Records are written but not read yet.
    Read,
}

impl Inner {
    /// The events `[a, b)` were not found: marks them missing and counts what was not known
    /// missing already as corrupt.
    fn missing(&self, a: u64, b: u64, why: &str) {
        if a >= b {
            return;
        }
        let lost = {
            let mut st = lock(&self.state);
            let lost = st.mark_missing(a, b);
            if lost > 0 {
                st.collect_dead();
            }
            lost
        };
        if lost > 0 {
            self.wake_writer.notify_one();
            self.record_lost(LossReason::Corrupt, lost, true);
            tracing::warn!(queue = %self.dir.display(), from = a, to = b, events = lost, problem = why,
                "durable queue: damaged records skipped (counted as corrupt)");
        }
    }

    fn corrupt_bytes(&self, n: u64) {
        if n > 0 {
            self.stats.corrupt_bytes.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Reads ahead: decodes up to `want` more events into the cache. Returns whether it made
    /// progress (read, or skipped what is missing); runs on a blocking thread.
    pub(crate) fn fill(&self, want: usize) -> bool {
        let mut rd = lock(&self.reader);
        let rd = &mut *rd;
        let mut progress = false;
        loop {
            if rd.cache.len() >= want || rd.cache_bytes >= READAHEAD_BYTES {
                return progress;
            }
            let (written_end, found) = {
                let st = lock(&self.state);
                rd.next_seq = rd.next_seq.max(st.skip_before);
                (st.written_end, st.segment_from(rd.next_seq))
            };
            if rd.next_seq >= written_end {
                return progress;
            }
            progress = true;
            let Some((seg, is_last)) = found else {
                rd.file = None;
                self.missing(rd.next_seq, written_end, "no segment holds them");
                rd.next_seq = written_end;
                continue;
            };
            if seg.first > rd.next_seq {
                self.missing(rd.next_seq, seg.first, "between segments");
                rd.next_seq = seg.first;
                continue;
            }
            // A sealed segment is read to its end; the last one up to what is written.
            let complete = !is_last && seg.end <= written_end;
            let to = if complete {
                seg.end
            } else {
                written_end.min(seg.end)
            };
            if rd.file.as_ref().map(|(f, _)| *f) != Some(seg.first) {
                rd.file = None;
                match self.open_segment(&seg) {
                    Ok(Some(frames)) => rd.file = Some((seg.first, frames)),
                    Ok(None) => {
                        self.missing(rd.next_seq, to, "nothing written");
                        rd.next_seq = to;
                        continue;
                    }
                    Err(e) => {
                        self.missing(rd.next_seq, to, &format!("cannot open segment: {e}"));
                        rd.next_seq = to;
                        if is_last {
                            lock(&self.state).rotate = true;
                        }
                        continue;
                    }
                }
            }
            let Some((_, frames)) = rd.file.as_mut() else {
                continue;
            };
            frames.set_limit(seg.written);
            loop {
                if rd.cache.len() >= want || rd.cache_bytes >= READAHEAD_BYTES {
                    return progress;
                }
                if !complete && rd.next_seq >= to {
                    return progress;
                }
                let next = match frames.next() {
                    Ok(n) => n,
                    Err(e) => {
                        rd.file = None;
                        self.missing(rd.next_seq, to, &format!("read failed: {e}"));
                        rd.next_seq = to;
                        break;
                    }
                };
                self.corrupt_bytes(next.skipped);
                match next.frame {
                    Frame::Record { seq, size } => {
                        if seq < seg.first || seq >= seg.end {
                            self.corrupt_bytes(size);
                            continue;
                        }
                        if seq < rd.next_seq {
                            continue;
                        }
                        self.missing(rd.next_seq, seq, "damaged record");
                        rd.next_seq = seq.saturating_add(1);
                        match serde_json::from_slice::<Event>(frames.payload()) {
                            Ok(event) => {
                                rd.cache.push_back((seq, event, size));
                                rd.cache_bytes += size;
                            }
                            Err(e) => {
                                self.corrupt_bytes(size);
                                self.missing(seq, seq.saturating_add(1), &format!("undecodable event: {e}"));
                            }
                        }
                    }
                    Frame::Gap { .. } => {}
                    Frame::End => {
                        self.missing(rd.next_seq, to, "damaged record");
                        rd.next_seq = rd.next_seq.max(to);
                        if complete {
                            rd.file = None;
                        }
                        break;
                    }
                }
            }
        }
    }

    /// Opens segment `seg` positioned at its first frame; `None` if nothing is written to it.
    fn open_segment(&self, seg: &Seg) -> std::io::Result<Option<FrameReader<File>>> {
        if seg.written <= seg.header() {
            return Ok(None);
        }
        let mut file = File::open(self.dir.join(super::format::segment_name(seg.first)))?;
        file.seek(SeekFrom::Start(seg.header()))?;
        let frames = FrameReader::new(file, seg.header(), seg.written);
        Ok(Some(if seg.v1 { frames.v1(seg.first) } else { frames }))
    }

    /// Hands out up to `max_events` decoded events (or the batch still in flight).
    pub(crate) fn take(&self, max_events: usize) -> Take {
        let mut rd = lock(&self.reader);
        if let Some((_, batch)) = &rd.inflight {
            return Take::Batch(batch.clone());
        }
        let mut st = lock(&self.state);
        let skip_before = st.skip_before;
        while rd.cache.front().is_some_and(|(seq, _, _)| *seq < skip_before) {
            if let Some((_, _, size)) = rd.cache.pop_front() {
                rd.cache_bytes = rd.cache_bytes.saturating_sub(size);
            }
        }
        if !rd.cache.is_empty() {
            let n = max_events.min(rd.cache.len());
            let mut seqs = Vec::with_capacity(n);
            let mut events = Vec::with_capacity(n);
            let rd = &mut *rd;
            let mut bytes = 0u64;
            for (seq, event, size) in rd.cache.drain(..n) {
                bytes = bytes.saturating_add(size);
                seqs.push(seq);
                events.push(event);
            }
            rd.cache_bytes = rd.cache_bytes.saturating_sub(bytes);
            // Events before the first are gone (skipped or missing): the head moves past them.
            let (first, last) = (seqs[0], seqs[n - 1]);
            if first > st.head {
                st.set_head(first);
            }
            st.inflight_end = last + 1;
            let batch = Batch::from(events);
            rd.inflight = Some((seqs, batch.clone()));
            return Take::Batch(batch);
        }
        if rd.next_seq.max(skip_before) < st.written_end {
            Take::Read
        } else if st.closed && st.live == 0 {
            Take::Done
        } else {
            Take::Wait
        }
    }

    /// The worker acknowledged the first `n` events of the batch in flight.
    pub(crate) fn ack(&self, n: usize) {
        let mut rd = lock(&self.reader);
        let Some((seqs, batch)) = rd.inflight.take() else {
            return;
        };
        let n = n.min(batch.len());
        let mut st = lock(&self.state);
        st.live = st.live.saturating_sub(n as u64);
        if n < batch.len() {
            // Not acknowledged: back to the front of the read-ahead, in order.
            for (i, event) in batch.iter().enumerate().skip(n).rev() {
                rd.cache.push_front((seqs[i], event.clone(), 0));
            }
            st.set_head(seqs[n]);
            st.inflight_end = st.head;
        } else {
            let end = seqs.last().map_or(st.head, |s| s + 1);
            let head = st.head.max(end);
            st.set_head(head);
            st.inflight_end = st.inflight_end.max(st.head);
        }
        st.collect_dead();
        let wake = !st.to_delete.is_empty();
        drop(st);
        drop(rd);
        if wake {
            self.wake_writer.notify_one();
        }
    }
}
