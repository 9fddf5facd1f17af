//! The writer thread: the only one that writes, syncs, truncates and deletes files.
//!
//! A failed write never leaves anything behind: a partial record is truncated back to the last
//! good length (`ftruncate` needs no space), a segment whose header could not be written is
//! removed, and the events are a hole that the next successful write declares with a gap frame.
//! With `fsync: always` a write round (everything pending, written with one fsync) is all or
//! nothing: if any write or fsync of the round fails, the whole round is rolled back and every push
//! in it is told so.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::format;
use super::inner::{lock, Inner};
use super::state::Chunk;
use super::{DurableConfig, Fsync};
use crate::log_limit::LogLimiter;
use crate::metrics::LossReason;

/// A segment file open for appending.
struct SegFile {
    first: u64,
    file: File,
    len: u64,
    /// Its length when the current round started; `None` if the round created it.
    round_start: Option<u64>,
}

/// What one write round did.
#[derive(Default)]
struct Round {
    /// Events not written.
    failed: Vec<(u64, u64)>,
    error: Option<io::Error>,
}

pub(crate) struct Writer {
    inner: Arc<Inner>,
    ack_file: File,
    ack_counter: u64,
    persisted_head: u64,
    open: Option<SegFile>,
    /// Segments sealed during the current round (`fsync: always`), kept for a rollback.
    sealed: Vec<SegFile>,
    /// The last segment found when the queue opened, and its length: appended to.
    resume: Option<(u64, u64)>,
    /// One past the last event the files hold or declare; a later record needs a gap frame.
    next_seq: u64,
    /// File lengths changed since the last publication.
    lens: Vec<(u64, u64)>,
    /// A segment whose failed write could not be truncated: nothing more is written to it.
    poisoned: Option<u64>,
    always: bool,
    dirty_data: bool,
    dirty_ack: bool,
    dirty_dir: bool,
    last_sync: Instant,
    lost_log: LogLimiter,
    /// Events lost (or refused) since the last log line about them.
    unlogged: u64,
}

impl Writer {
    pub(crate) fn new(
        inner: Arc<Inner>,
        ack_file: File,
        ack_counter: u64,
        resume: Option<(u64, u64)>,
        head: u64,
        next_seq: u64,
    ) -> Self {
        let always = inner.config.fsync == Fsync::Always;
        Self {
            inner,
            ack_file,
            ack_counter,
            persisted_head: head,
            open: None,
            sealed: Vec::new(),
            resume,
            next_seq,
            lens: Vec::new(),
            poisoned: None,
            always,
            dirty_data: false,
            dirty_ack: false,
            dirty_dir: false,
            last_sync: Instant::now(),
            lost_log: LogLimiter::new(Duration::from_secs(10)),
            unlogged: 0,
        }
    }

    fn every(&self) -> Duration {
        match self.inner.config.fsync {
            Fsync::Interval(d) => d,
            _ => DurableConfig::DEFAULT_FSYNC_INTERVAL,
        }
    }

    pub(crate) fn run(mut self) {
        loop {
            let every = self.every();
            let (chunks, range, deletes, head, stop, flush) = {
                let mut st = lock(&self.inner.state);
                loop {
                    if st.stop {
                        break;
                    }
                    let has_data = !st.pending.is_empty() && !st.paused;
                    let flush_wanted = st.flush_wanted > *self.inner.flushed.borrow();
                    if has_data || !st.to_delete.is_empty() || flush_wanted {
                        break;
                    }
                    let dirty = self.dirty_data || self.dirty_ack || st.head != self.persisted_head;
                    st.writer_idle = true;
                    if dirty {
                        let left = every.saturating_sub(self.last_sync.elapsed());
                        if left.is_zero() {
                            st.writer_idle = false;
                            break;
                        }
                        st = self
                            .inner
                            .wake_writer
                            .wait_timeout(st, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    } else {
                        st = self.inner.wake_writer.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    st.writer_idle = false;
                }
                let chunks: Vec<Chunk> = if st.paused && !st.stop {
                    Vec::new()
                } else {
                    st.pending_bytes = 0;
                    st.pending.drain(..).collect()
                };
                let range = chunks.first().zip(chunks.last()).map(|(a, b)| (a.first, b.end));
                // Chunks of segments dropped meanwhile (overflow) are not written.
                let live: Vec<Chunk> = chunks
                    .into_iter()
                    .filter(|c| st.segments.iter().any(|s| s.first == c.segment))
                    .collect();
                let deletes = std::mem::take(&mut st.to_delete);
                let flush = (st.flush_wanted > *self.inner.flushed.borrow()).then_some(st.flush_wanted);
                (live, range, deletes, st.head, st.stop, flush)
            };

            if head != self.persisted_head {
                self.write_ack(head);
            }
            // Dead segments go before new data is written: on a full disk, their space is
            // what the new events need.
            for first in deletes {
                if self.open.as_ref().is_some_and(|o| o.first == first) {
                    self.open = None;
                }
                // Lock order: the reader's lock is taken without the state's held.
                lock(&self.inner.reader).forget_segment(first);
                let path = self.inner.dir.join(format::segment_name(first));
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(segment = %path.display(), error = %e,
                        "durable queue: cannot delete segment"),
                }
            }
            if let Some((first, end)) = range {
                let round = self.write_round(chunks, first, end);
                self.publish(end, round);
            }
            let due = self.last_sync.elapsed() >= every;
            if due || flush.is_some() || stop {
                self.sync();
            }
            if let Some(request) = flush {
                self.inner.flushed.send_replace(request);
            }
            if stop {
                let st = lock(&self.inner.state);
                if st.pending.is_empty() && st.to_delete.is_empty() {
                    return;
                }
            }
        }
    }

    /// Writes the chunks of one round (the events `[first, end)`).
    fn write_round(&mut self, chunks: Vec<Chunk>, first: u64, end: u64) -> Round {
        self.inner.stats.writes.fetch_add(1, Ordering::Relaxed);
        let start_next = self.next_seq;
        if let Some(o) = &mut self.open {
            o.round_start = Some(o.len);
        }
        let mut round = Round::default();
        let mut records = 0;
        for chunk in &chunks {
            match self.write_chunk(chunk) {
                Ok(()) => records += chunk.end - chunk.first,
                Err(e) => {
                    self.inner.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    round.failed.push((chunk.first, chunk.end));
                    round.error.get_or_insert(e);
                    if self.always {
                        break;
                    }
                }
            }
        }
        if self.always {
            if round.error.is_none() {
                if let Err(e) = self.sync_round() {
                    self.inner.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    round.error = Some(e);
                }
            }
            if round.error.is_some() {
                self.rollback(start_next);
                round.failed = vec![(first, end)];
                records = 0;
            }
            self.sealed.clear();
        }
        self.inner.stats.written.fetch_add(records, Ordering::Relaxed);
        round
    }

    /// Appends one chunk (after a gap frame if events before it were not written).
    fn write_chunk(&mut self, chunk: &Chunk) -> io::Result<()> {
        if self.poisoned == Some(chunk.segment) {
            return Err(io::Error::other("segment abandoned after a failed truncate"));
        }
        let gap = (chunk.first > self.next_seq).then(|| format::encode_gap(self.next_seq, chunk.first));
        let seg = self.file_for(chunk.segment)?;
        let pre = seg.len;
        let result = match &gap {
            Some(g) => seg
                .file
                .write_all(g)
                .and_then(|()| seg.file.write_all(&chunk.bytes)),
            None => seg.file.write_all(&chunk.bytes),
        };
        match result {
            Ok(()) => {
                let added = chunk.bytes.len() as u64 + gap.map_or(0, |g| g.len() as u64);
                seg.len = pre.saturating_add(added);
                let (first, len) = (seg.first, seg.len);
                self.lens.push((first, len));
                self.next_seq = chunk.end;
                self.dirty_data = true;
                Ok(())
            }
            Err(e) => {
                self.cut_open(pre);
                Err(e)
            }
        }
    }

    /// Cuts the open segment back to `len` bytes, or removes it if that leaves no record.
    fn cut_open(&mut self, len: u64) {
        let Some(seg) = self.open.as_mut() else {
            return;
        };
        if len <= format::SEGMENT_HEADER {
            if let Some(seg) = self.open.take() {
                self.remove(seg);
            }
            return;
        }
        let cut = seg
            .file
            .set_len(len)
            .and_then(|()| seg.file.seek(SeekFrom::Start(len)))
            .and_then(|_| seg.file.sync_all());
        match cut {
            Ok(()) => {
                seg.len = len;
                let first = seg.first;
                self.lens.push((first, len));
            }
            Err(e) => {
                tracing::error!(queue = %self.inner.dir.display(), segment = seg.first, error = %e,
                    "durable queue: cannot truncate a failed write; new events go to a new segment");
                self.poisoned = Some(seg.first);
                self.open = None;
                lock(&self.inner.state).rotate = true;
            }
        }
    }

    fn remove(&mut self, seg: SegFile) {
        drop(seg.file);
        let path = self.inner.dir.join(format::segment_name(seg.first));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::error!(segment = %path.display(), error = %e,
                "durable queue: cannot remove the segment of a failed write"),
        }
        self.lens.push((seg.first, 0));
        self.dirty_dir = true;
    }

    /// The open file of `segment`, creating it (with its header) if it is new.
    fn file_for(&mut self, segment: u64) -> io::Result<&mut SegFile> {
        if self.open.as_ref().is_none_or(|o| o.first != segment) {
            self.open_new(segment)?;
        }
        self.open
            .as_mut()
            .ok_or_else(|| io::Error::other("durable queue: no open segment"))
    }

    /// Seals the open segment and opens `segment` (the one found at open, or a new file).
    fn open_new(&mut self, segment: u64) -> io::Result<()> {
        if let Some(old) = self.open.take() {
            // A sealed segment is complete on disk before the next one gets data.
            if self.dirty_data {
                self.inner.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = old.file.sync_data() {
                    if self.always {
                        self.open = Some(old);
                        return Err(e);
                    }
                    self.sync_failed(&e);
                }
            }
            if self.always {
                self.sealed.push(old);
            }
        }
        let path = self.inner.dir.join(format::segment_name(segment));
        let seg = match self.resume.take() {
            Some((s, len)) if s == segment => {
                let mut file = OpenOptions::new().write(true).open(&path)?;
                file.seek(SeekFrom::Start(len))?;
                SegFile {
                    first: segment,
                    file,
                    len,
                    round_start: Some(len),
                }
            }
            _ => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)?;
                self.dirty_dir = true;
                if let Err(e) = file.write_all(&format::segment_header(segment)) {
                    self.remove(SegFile {
                        first: segment,
                        file,
                        len: 0,
                        round_start: None,
                    });
                    return Err(e);
                }
                SegFile {
                    first: segment,
                    file,
                    len: format::SEGMENT_HEADER,
                    round_start: None,
                }
            }
        };
        self.open = Some(seg);
        Ok(())
    }

    /// `fsync: always`: forces the round's data and new directory entries to disk.
    fn sync_round(&mut self) -> io::Result<()> {
        if self.dirty_data {
            if let Some(o) = &self.open {
                self.inner.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                o.file.sync_data()?;
            }
            self.dirty_data = false;
        }
        if self.dirty_dir {
            File::open(&self.inner.dir).and_then(|d| d.sync_all())?;
            self.dirty_dir = false;
        }
        Ok(())
    }

    /// `fsync: always`: undoes a failed round, so that none of its events stays on disk.
    fn rollback(&mut self, start_next: u64) {
        self.next_seq = start_next;
        self.dirty_data = false;
        let mut files: Vec<SegFile> = self.sealed.drain(..).collect();
        files.extend(self.open.take());
        for mut f in files {
            match f.round_start {
                Some(len) if len > format::SEGMENT_HEADER => {
                    if f.len != len {
                        let cut = f
                            .file
                            .set_len(len)
                            .and_then(|()| f.file.seek(SeekFrom::Start(len)))
                            .and_then(|_| f.file.sync_all());
                        if let Err(e) = cut {
                            tracing::error!(queue = %self.inner.dir.display(), segment = f.first, error = %e,
                                "durable queue: cannot roll back a failed write");
                            self.poisoned = Some(f.first);
                            lock(&self.inner.state).rotate = true;
                            continue;
                        }
                        f.len = len;
                    }
                    self.lens.push((f.first, len));
                    self.open = Some(f);
                }
                _ => self.remove(f),
            }
        }
    }

    /// Makes the round visible: what the files hold, which events are missing, and the outcome
    /// of every push waiting for the disk.
    fn publish(&mut self, end: u64, round: Round) {
        let inner = &self.inner;
        let mut st = lock(&inner.state);
        st.written_end = st.written_end.max(end);
        for (first, len) in self.lens.drain(..) {
            let pending = st.pending_bytes_of(first);
            let Some(seg) = st.segments.iter_mut().find(|s| s.first == first) else {
                continue;
            };
            seg.written = len;
            let bytes = len.max(seg.header()).saturating_add(pending);
            let old = std::mem::replace(&mut seg.bytes, bytes);
            st.used_bytes = st.used_bytes.saturating_sub(old).saturating_add(bytes);
        }
        let mut missing = 0u64;
        for &(a, b) in &round.failed {
            missing = missing.saturating_add(st.mark_missing(a, b));
        }
        let why = round.error.as_ref().map(|e| e.to_string()).unwrap_or_default();
        let mut outcomes = Vec::new();
        let mut refused = 0u64;
        while st.waiters.front().is_some_and(|w| w.end <= end) {
            let Some(w) = st.waiters.pop_front() else { break };
            let hit = round.failed.iter().any(|&(a, b)| a < w.end && w.first < b);
            let outcome = if w.failed {
                Err("durable queue: events dropped by the overflow policy before they were on disk".into())
            } else if hit {
                refused = refused.saturating_add(w.events);
                Err(format!("durable queue: write failed ({why}), events not kept"))
            } else {
                Ok(())
            };
            outcomes.push((w.tx, outcome));
        }
        if missing > 0 {
            st.collect_dead();
        }
        drop(st);

        // Counted before anyone hears of it.
        if let Some(error) = &round.error {
            let lost = missing.saturating_sub(refused);
            let reason = if error.kind() == io::ErrorKind::StorageFull {
                LossReason::NoSpace
            } else {
                LossReason::WriteError
            };
            inner.record_refused(refused);
            inner.record_lost(reason, lost, true);
            if let Some(m) = inner.metrics.get() {
                // Refused events left the queue too.
                let refused = usize::try_from(refused).unwrap_or(usize::MAX);
                m.record_dropped(refused);
                m.record_egress(refused);
            }
            self.unlogged = self.unlogged.saturating_add(missing);
            if let Some(suppressed) = self.lost_log.check() {
                tracing::error!(queue = %inner.dir.display(), error = %error, events = self.unlogged,
                    refused, lost, suppressed,
                    "durable queue: write failed; the events are not on disk (refused: the pushes failed; lost: counted)");
                self.unlogged = 0;
            }
        } else if self.unlogged > 0 && self.lost_log.check().is_some() {
            // Rate-limited too: near a full disk, writes that fit and writes that fail alternate.
            tracing::warn!(queue = %inner.dir.display(), events = self.unlogged,
                "durable queue: writing again; events lost or refused since the last report");
            self.unlogged = 0;
        }
        for (tx, outcome) in outcomes {
            let _ = tx.send(outcome);
        }
        inner.readable.notify_one();
    }

    fn sync_failed(&mut self, e: &io::Error) {
        self.inner.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        if self.lost_log.check().is_some() {
            tracing::error!(queue = %self.inner.dir.display(), error = %e,
                "durable queue: fsync failed; what the last interval wrote may be lost at a machine crash");
        }
    }

    fn write_ack(&mut self, head: u64) {
        let counter = self.ack_counter.saturating_add(1);
        let slot = format::encode_ack(counter, head);
        let offset = (counter % 2) * format::ACK_SLOT as u64;
        let result = self
            .ack_file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.ack_file.write_all(&slot));
        match result {
            Ok(()) => {
                self.ack_counter = counter;
                self.persisted_head = head;
                self.dirty_ack = true;
            }
            Err(e) => tracing::warn!(queue = %self.inner.dir.display(), error = %e,
                "durable queue: cannot record acknowledgements (they will be redelivered)"),
        }
    }

    /// Forces data, new directory entries and the ack file to disk (`fsync: interval`, a flush,
    /// or the stop).
    fn sync(&mut self) {
        if self.dirty_data {
            if let Some(o) = &self.open {
                self.inner.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = o.file.sync_data() {
                    self.sync_failed(&e);
                }
            }
            self.dirty_data = false;
        }
        if self.dirty_dir {
            if let Err(e) = File::open(&self.inner.dir).and_then(|d| d.sync_all()) {
                tracing::warn!(queue = %self.inner.dir.display(), error = %e, "durable queue: directory fsync failed");
            }
            self.dirty_dir = false;
        }
        if self.dirty_ack {
            let _ = self.ack_file.sync_data();
            self.dirty_ack = false;
        }
        self.last_sync = Instant::now();
    }
}
