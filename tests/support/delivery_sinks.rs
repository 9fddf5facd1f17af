//! In-memory sinks for the delivery tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use registry_notify::sink::{BoxError, BoxSink};
use registry_notify::{Action, Batch, Event, Target};
use tokio::sync::watch;

/// Events with ids `event-<from>` .. `event-<to - 1>`.
pub fn events(from: usize, to: usize) -> Vec<Event> {
    (from..to)
        .map(|i| {
            let mut e = Event::new(Action::Push, Target::default());
            e.id = format!("event-{i}").into();
            e.target.repository = "library/test".into();
            e
        })
        .collect()
}

pub fn ids(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("event-{i}")).collect()
}

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
