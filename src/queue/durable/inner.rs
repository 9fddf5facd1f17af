//! What the parts of a [`DurableQueue`](super::DurableQueue) share: [`Inner`] — the logical
//! state under one mutex ([`State`]), the reader's read-ahead under another ([`Reader`]), the
//! wake-ups between them, and the counters. The push path (`push.rs`), the reader (`reader.rs`)
//! and the writer thread (`writer.rs`) each add what they do to it.
//!
//! Lock order: the reader's lock before the state's, never the other way round.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use tokio::sync::{watch, Notify};

use super::readahead::Reader;
use super::state::State;
use super::DurableConfig;
use crate::metrics::{EndpointMetrics, LossReason};
use crate::queue::Overflow;

/// Locks `m`; a lock poisoned by a panic elsewhere is taken all the same.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) written: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) corrupt_tails: AtomicU64,
    pub(crate) corrupt_bytes: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) refused: AtomicU64,
    /// By [`LossReason`]: no space, write error, corrupt, overflow.
    lost: [AtomicU64; 4],
}

impl Stats {
    /// The counter of events lost for `reason`.
    pub(crate) fn lost_to(&self, reason: LossReason) -> &AtomicU64 {
        &self.lost[reason_index(reason)]
    }
}

fn reason_index(reason: LossReason) -> usize {
    match reason {
        LossReason::NoSpace => 0,
        LossReason::WriteError => 1,
        LossReason::Corrupt => 2,
        _ => 3,
    }
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) config: DurableConfig,
    pub(crate) capacity: u64,
    pub(crate) overflow: Overflow,
    pub(crate) segment_bytes: u64,
    pub(crate) state: Mutex<State>,
    pub(crate) wake_writer: Condvar,
    pub(crate) reader: Mutex<Reader>,
    pub(crate) readable: Notify,
    /// The last flush request the writer completed (written, synced, deletions done).
    pub(crate) flushed: watch::Sender<u64>,
    pub(crate) stats: Stats,
    pub(crate) metrics: OnceLock<Arc<EndpointMetrics>>,
}

impl Inner {
    /// `n` events were lost for `reason`; `egress`: they had entered the queue, so they leave it
    /// as dropped (overflow drops are reported to the caller of `push`, which records them).
    pub(crate) fn record_lost(&self, reason: LossReason, n: u64, egress: bool) {
        if n == 0 {
            return;
        }
        self.stats.lost_to(reason).fetch_add(n, Ordering::Relaxed);
        if let Some(m) = self.metrics.get() {
            if egress {
                let k = usize::try_from(n).unwrap_or(usize::MAX);
                m.record_dropped(k);
                m.record_egress(k);
            }
            m.record_events_lost(reason, n);
        }
    }

    /// `n` events of `fsync: always` pushes failed (the callers were told).
    pub(crate) fn record_refused(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.stats.refused.fetch_add(n, Ordering::Relaxed);
        if let Some(m) = self.metrics.get() {
            m.record_refused(n);
        }
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}
