//! How a queue's worker groups events into envelopes (`max_events`, `linger`).

use super::EventQueue;

/// How the worker groups events into envelopes, shared with the pushing side so that a
/// linger ends as soon as a full envelope is waiting or the queue closes.
#[derive(Debug)]
pub(super) struct Batching {
    pub(super) max_events: usize,
    linger: std::time::Duration,
    /// The worker is lingering: pushes that fill an envelope wake it.
    lingering: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
}

impl Batching {
    pub(super) fn new(max_events: usize, linger: std::time::Duration) -> Self {
        Self {
            max_events,
            linger,
            lingering: std::sync::atomic::AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Whether to wait for more events after delivering `n`: only when the last envelope
    /// was partly filled (events arrive faster than one per round trip) and more room is
    /// left than is already waiting.
    pub(super) fn lingers_after(&self, n: usize, waiting: usize) -> bool {
        n > 1 && n < self.max_events && waiting < self.max_events && !self.linger.is_zero()
    }

    /// Waits up to `linger` for `queue` to hold a full envelope or to close.
    pub(super) async fn linger(&self, queue: &dyn EventQueue) {
        use std::sync::atomic::Ordering;
        self.lingering.store(true, Ordering::SeqCst);
        // Checked after raising the flag: a push from now on wakes us.
        if queue.len() < self.max_events && !queue.is_closed() {
            let _ = tokio::time::timeout(self.linger, self.wake.notified()).await;
        }
        self.lingering.store(false, Ordering::SeqCst);
    }

    /// Called after a push (`len` events now queued) or a close.
    pub(super) fn pushed(&self, queue: &dyn EventQueue) {
        use std::sync::atomic::Ordering;
        if self.lingering.load(Ordering::SeqCst) && (queue.is_closed() || queue.len() >= self.max_events) {
            self.wake.notify_one();
        }
    }
}
