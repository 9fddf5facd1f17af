//! In-process sinks: a probe recording every event it is given (the layer's tests), and a
//! collector recording batches (the delivery tests).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use registry_notify::sink::{BoxError, BoxSink};
use registry_notify::{Batch, Event};
use tokio::sync::{watch, Notify};

use super::HANG_GUARD;

/// Records every batch it is called with.
#[derive(Clone, Default)]
pub struct Collector {
    pub batches: Arc<Mutex<Vec<Batch>>>,
    /// Dropped when the last clone of the sink (not of the collector) is dropped.
    pub alive: Arc<()>,
}

impl Collector {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn batches(&self) -> Vec<Batch> {
        self.batches.lock().unwrap().clone()
    }

    pub fn ids(&self) -> Vec<String> {
        self.batches()
            .iter()
            .flat_map(|b| b.iter().map(|e| e.id.to_string()))
            .collect()
    }

    pub fn count(&self) -> usize {
        self.batches().iter().map(|b| b.len()).sum()
    }

    /// Whether a sink made by this collector still exists.
    pub fn sink_alive(&self) -> bool {
        Arc::strong_count(&self.alive) > 1
    }

    /// A sink recording each batch after `delay` (tokio time), then succeeding.
    pub fn sink(&self, delay: Duration) -> BoxSink {
        let batches = self.batches.clone();
        let alive = self.alive.clone();
        BoxSink::new(tower::service_fn(move |batch: Batch| {
            let _alive = &alive;
            let batches = batches.clone();
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                batches.lock().unwrap().push(batch);
                Ok::<(), BoxError>(())
            }
        }))
    }

    /// A sink recording each batch at once, then waiting until `gate` is open.
    pub fn gated_sink(&self, gate: watch::Receiver<bool>) -> BoxSink {
        let batches = self.batches.clone();
        BoxSink::new(tower::service_fn(move |batch: Batch| {
            let batches = batches.clone();
            let mut gate = gate.clone();
            async move {
                batches.lock().unwrap().push(batch);
                let _ = gate.wait_for(|open| *open).await;
                Ok::<(), BoxError>(())
            }
        }))
    }
}

/// An in-process sink that records every event it is given.
#[derive(Clone, Default)]
pub struct Probe {
    events: Arc<Mutex<Vec<Event>>>,
    notify: Arc<Notify>,
}

impl Probe {
    pub fn sink(&self) -> BoxSink {
        let p = self.clone();
        BoxSink::new(tower::service_fn(move |b: Batch| {
            p.events.lock().unwrap().extend(b.iter().cloned());
            p.notify.notify_waiters();
            async { Ok::<(), BoxError>(()) }
        }))
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Removes and returns what arrived so far.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }

    /// Waits until at least `n` events arrived, then returns and clears them.
    pub async fn wait_take(&self, n: usize) -> Vec<Event> {
        tokio::time::timeout(HANG_GUARD, async {
            loop {
                let notified = self.notify.notified();
                if self.events.lock().unwrap().len() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("expected {n} events, got {:?}", self.events()));
        self.take()
    }
}
