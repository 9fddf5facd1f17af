//! The worker: pulls from the durable consumer and delivers to the endpoints.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::config::{NatsSettings, NotificationsConfig};
use crate::endpoint::{Endpoint, EndpointHandle};
use crate::error::ConfigError;
use crate::event::Batch;
use crate::sink::BoxSink;

/// A NATS worker: the delivery side of the [scale-out](super) mode.
///
/// ```no_run
/// use registry_notify::config::Config;
/// use registry_notify::nats::Worker;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::from_path("worker.yml")?; // notifications: {nats: …, endpoints: […]}
/// let handle = Worker::from_config(config.notifications.as_ref().unwrap())?.start();
/// tokio::signal::ctrl_c().await?;
/// handle.shutdown(std::time::Duration::from_secs(10)).await;
/// # Ok(()) }
/// ```
pub struct Worker {
    settings: NatsSettings,
    endpoints: Vec<Endpoint>,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("settings", &self.settings)
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl Worker {
    /// A worker consuming as `settings` says, with no endpoint yet.
    pub fn new(settings: NatsSettings) -> Self {
        Self {
            settings,
            endpoints: Vec::new(),
        }
    }

    /// A worker for a `notifications` section with `nats` and `endpoints` (disabled endpoints
    /// are skipped).
    pub fn from_config(config: &NotificationsConfig) -> Result<Self, ConfigError> {
        let settings = config
            .nats
            .clone()
            .ok_or_else(|| ConfigError::new("notifications.nats: required for a worker"))?;
        let mut worker = Worker::new(settings);
        for endpoint in config.endpoints()? {
            worker = worker.endpoint(endpoint);
        }
        if worker.endpoints.is_empty() {
            return Err(ConfigError::new(
                "notifications.endpoints: a worker needs at least one enabled endpoint",
            ));
        }
        Ok(worker)
    }

    /// Adds an endpoint; its queue settings are unused (JetStream is the queue).
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Spawns the worker (inside a Tokio runtime) and returns its handle at once. A worker
    /// without an enabled endpoint consumes nothing (acknowledging would lose the events). It connects
    /// in the background, retrying every second while NATS is unreachable, creates the stream
    /// and the durable consumer if they do not exist, and then pulls and delivers until
    /// [`WorkerHandle::shutdown`].
    pub fn start(self) -> WorkerHandle {
        let shared = Arc::new(Shared {
            in_flight: Mutex::new(HashMap::new()),
            next_key: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            terminated: AtomicU64::new(0),
        });
        let permits = Arc::new(Semaphore::new(self.settings.max_in_flight));
        let mut lanes = Vec::new();
        let mut handles = Vec::new();
        let mut tasks = Vec::new();
        for endpoint in self.endpoints.into_iter().filter(|e| !e.is_disabled()) {
            let max_events = endpoint.max_events();
            let (sink, handle) = endpoint.spawn_unqueued();
            let (tx, rx) = mpsc::channel(self.settings.max_in_flight);
            tasks.push(tokio::spawn(run_lane(sink, rx, max_events)));
            lanes.push(tx);
            handles.push(handle);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let puller = tokio::spawn(run_puller(
            self.settings.clone(),
            lanes,
            permits.clone(),
            shared.clone(),
            stop_rx.clone(),
        ));
        let progress = tokio::spawn(run_progress(self.settings.ack_wait, shared.clone(), stop_rx));
        WorkerHandle {
            endpoints: handles,
            shared,
            permits,
            max_in_flight: self.settings.max_in_flight,
            stop: stop_tx,
            puller,
            progress,
            lanes: tasks,
        }
    }
}

/// Controls a running [`Worker`].
pub struct WorkerHandle {
    endpoints: Vec<EndpointHandle>,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    stop: watch::Sender<bool>,
    puller: JoinHandle<()>,
    progress: JoinHandle<()>,
    lanes: Vec<JoinHandle<()>>,
}

impl fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("endpoints", &self.endpoints)
            .field("acked", &self.acked())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl WorkerHandle {
    /// The endpoints' handles (metrics).
    pub fn endpoints(&self) -> &[EndpointHandle] {
        &self.endpoints
    }

    /// Messages acknowledged so far (delivered, filtered or dead-lettered by every endpoint).
    pub fn acked(&self) -> u64 {
        self.shared.acked.load(Ordering::Relaxed)
    }

    /// Messages terminated because their payload was not an envelope (logged at WARN).
    pub fn terminated(&self) -> u64 {
        self.shared.terminated.load(Ordering::Relaxed)
    }

    /// Messages being delivered now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Stops pulling, lets the messages in flight finish for at most `timeout`, then stops the
    /// endpoints. Messages still unfinished are not acknowledged: the server redelivers them
    /// (to another worker) after `ackwait`. Returns how many were left.
    pub async fn shutdown(mut self, timeout: Duration) -> usize {
        let _ = self.stop.send(true);
        let _ = (&mut self.puller).await;
        let max = u32::try_from(self.max_in_flight).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(timeout, self.permits.acquire_many(max)).await;
        let left = self.in_flight();
        self.progress.abort();
        for lane in &self.lanes {
            lane.abort();
        }
        if drained.is_err() && left > 0 {
            tracing::info!(
                left,
                "nats: worker stopped; unacknowledged messages will be redelivered"
            );
        }
        left
    }
}

struct Shared {
    /// Messages being delivered, for the in-progress acknowledgements.
    in_flight: Mutex<HashMap<u64, Arc<jetstream::Message>>>,
    next_key: AtomicU64,
    acked: AtomicU64,
    terminated: AtomicU64,
}

/// One message on its way through the endpoints; acknowledged when the last one is done.
struct Job {
    key: u64,
    message: Arc<jetstream::Message>,
    remaining: AtomicUsize,
    failed: AtomicBool,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
}

impl Job {
    /// One endpoint is done with the message (`ok`: delivered, filtered or dead-lettered).
    async fn done(self: Arc<Self>, ok: bool) {
        if !ok {
            self.failed.store(true, Ordering::Relaxed);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        self.finish().await;
    }

    async fn finish(&self) {
        if let Ok(mut map) = self.shared.in_flight.lock() {
            map.remove(&self.key);
        }
        if self.failed.load(Ordering::Relaxed) {
            // An endpoint shut down under it: let another worker have it now.
            let _ = self.message.ack_with(AckKind::Nak(None)).await;
        } else {
            match self.message.ack().await {
                Ok(()) => {
                    self.shared.acked.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(error = %e, "nats: ack failed; the message will be redelivered"),
            }
        }
    }
}

struct Item {
    batch: Batch,
    job: Arc<Job>,
}

/// Delivers one endpoint's share, one call at a time, in arrival order; consecutive messages
/// are combined up to the endpoint's `max_events`.
async fn run_lane(sink: BoxSink, mut rx: mpsc::Receiver<Item>, max_events: usize) {
    let mut carry: Option<Item> = None;
    loop {
        let first = match carry.take() {
            Some(item) => item,
            None => match rx.recv().await {
                Some(item) => item,
                None => return,
            },
        };
        if first.batch.len() >= max_events {
            let mut ok = true;
            for chunk in first.batch.chunks(max_events) {
                let batch = Batch::from(chunk.to_vec());
                if sink.clone().oneshot(batch).await.is_err() {
                    ok = false;
                    break;
                }
            }
            first.job.done(ok).await;
            continue;
        }
        let mut n = first.batch.len();
        let mut items = vec![first];
        while n < max_events {
            match rx.try_recv() {
                Ok(item) if n + item.batch.len() <= max_events => {
                    n += item.batch.len();
                    items.push(item);
                }
                Ok(item) => {
                    carry = Some(item);
                    break;
                }
                Err(_) => break,
            }
        }
        let batch = if items.len() == 1 {
            items[0].batch.clone()
        } else {
            items.iter().flat_map(|i| i.batch.iter().cloned()).collect()
        };
        let ok = sink.clone().oneshot(batch).await.is_ok();
        for item in items {
            item.job.done(ok).await;
        }
    }
}

/// Sends an in-progress acknowledgement for every message in flight, every third of `ack_wait`.
async fn run_progress(ack_wait: Duration, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let period = (ack_wait / 3).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        let messages: Vec<Arc<jetstream::Message>> = match shared.in_flight.lock() {
            Ok(map) => map.values().cloned().collect(),
            Err(_) => return,
        };
        for message in messages {
            let _ = message.ack_with(AckKind::Progress).await;
        }
    }
}

/// Connects (retrying), then pulls batches of at most the free in-flight slots and hands each
/// message to every lane.
async fn run_puller(
    settings: NatsSettings,
    lanes: Vec<mpsc::Sender<Item>>,
    permits: Arc<Semaphore>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    if lanes.is_empty() {
        // Acknowledging with nowhere to deliver would lose the events for the other workers.
        tracing::warn!("nats: worker has no enabled endpoint; it consumes nothing");
        return;
    }
    let stopped = |stop: &watch::Receiver<bool>| *stop.borrow();
    let mut consumer = None;
    while !stopped(&stop) {
        let Some(c) = &consumer else {
            match setup(&settings).await {
                Ok(c) => {
                    tracing::info!(
                        url = %settings.redacted_url(), stream = %settings.stream, consumer = %settings.consumer,
                        "nats: worker connected"
                    );
                    consumer = Some(c);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "nats: worker cannot set up, retrying");
                    let _ = tokio::time::timeout(Duration::from_secs(1), stop.wait_for(|s| *s)).await;
                }
            }
            continue;
        };
        // Wait for a free slot, then ask for as many messages as there are free slots.
        let first = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.wait_for(|s| *s) => return,
        };
        let free = permits.available_permits() + 1;
        let mut slots = vec![first];
        let pulled = tokio::time::timeout(
            Duration::from_secs(10),
            c.batch()
                .max_messages(free)
                .expires(Duration::from_secs(1))
                .messages(),
        )
        .await;
        let mut messages = match pulled {
            Ok(Ok(messages)) => messages,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "nats: pull failed, retrying");
                let _ = tokio::time::timeout(Duration::from_millis(500), stop.wait_for(|s| *s)).await;
                continue;
            }
            Err(_) => continue,
        };
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), messages.next()).await;
            let message = match next {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "nats: pull interrupted");
                    break;
                }
                Ok(None) | Err(_) => break,
            };
            let permit = match slots.pop() {
                Some(p) => p,
                None => match permits.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            dispatch(message, permit, &lanes, &shared).await;
        }
    }
}

async fn setup(settings: &NatsSettings) -> Result<jetstream::consumer::PullConsumer, String> {
    let client = super::connect(settings, "registry-notify worker").await?;
    let js = jetstream::new(client);
    let stream = super::ensure_stream(&js, settings).await?;
    let config = pull::Config {
        durable_name: Some(settings.consumer.clone()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        max_deliver: -1,
        ..Default::default()
    };
    stream
        .get_or_create_consumer(&settings.consumer, config)
        .await
        .map_err(|e| format!("consumer {:?}: {e}", settings.consumer))
}

async fn dispatch(
    message: jetstream::Message,
    permit: OwnedSemaphorePermit,
    lanes: &[mpsc::Sender<Item>],
    shared: &Arc<Shared>,
) {
    let events = match super::decode(&message.payload) {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(
                subject = %message.subject, bytes = message.payload.len(), error = %e,
                "nats: message is not an events envelope, terminating it"
            );
            let _ = message.ack_with(AckKind::Term).await;
            shared.terminated.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let batch = Batch::from(events);
    let key = shared.next_key.fetch_add(1, Ordering::Relaxed);
    let message = Arc::new(message);
    let job = Arc::new(Job {
        key,
        message: message.clone(),
        remaining: AtomicUsize::new(lanes.len()),
        failed: AtomicBool::new(false),
        shared: shared.clone(),
        _permit: permit,
    });
    if lanes.is_empty() || batch.is_empty() {
        job.finish().await;
        return;
    }
    if let Ok(mut map) = shared.in_flight.lock() {
        map.insert(key, message);
    }
    for lane in lanes {
        let item = Item {
            batch: batch.clone(),
            job: job.clone(),
        };
        if let Err(mpsc::error::SendError(item)) = lane.send(item).await {
            item.job.done(false).await;
        }
    }
}
