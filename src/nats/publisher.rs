//! The publishing sink and the endpoint built around it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use tokio::sync::Mutex;

use crate::config::{NatsSettings, QueueFsync};
use crate::endpoint::Endpoint;
use crate::error::ConfigError;
use crate::event::Batch;
use crate::queue::{DurableConfig, Fsync, QueueConfig};
use crate::retry::Exponential;
use crate::sink::{BoxError, BoxSink, DeliveryError};

/// A sink publishing each batch to JetStream and resolving once the server has persisted it
/// (see the [module docs](super)). It connects on its first call and again after a failed
/// setup; every failure is a retryable [`DeliveryError::Transport`] naming no credentials.
/// Normally driven by the queue and retry stages of [`publisher_endpoint`].
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    settings: NatsSettings,
    js: Mutex<Option<jetstream::Context>>,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("url", &self.inner.settings.redacted_url())
            .field("stream", &self.inner.settings.stream)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher for `settings` (not connected yet).
    pub fn new(settings: NatsSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                js: Mutex::new(None),
            }),
        }
    }

    /// Publishes `batch` and waits for every acknowledgement.
    pub async fn publish(&self, batch: Batch) -> Result<(), DeliveryError> {
        let js = self.context().await?;
        let settings = &self.inner.settings;
        let mut acks = Vec::new();
        let events = batch.events();
        let mut start = 0;
        while start < events.len() {
            let subject = super::subject_for(settings, &events[start]);
            let mut end = start + 1;
            while end < events.len() && super::subject_for(settings, &events[end]) == subject {
                end += 1;
            }
            let run = &events[start..end];
            let mut message = PublishMessage::build()
                .payload(super::encode(run))
                .header("Content-Type", crate::event::EVENTS_V2_MEDIA_TYPE);
            if let Some(id) = super::message_id(run) {
                message = message.message_id(id);
            }
            let ack = js
                .send_publish(subject, message)
                .await
                .map_err(|e| DeliveryError::Transport(format!("nats publish: {e}")))?;
            acks.push(ack);
            start = end;
        }
        for ack in acks {
            ack.await
                .map_err(|e| DeliveryError::Transport(format!("nats publish acknowledgement: {e}")))?;
        }
        Ok(())
    }

    async fn context(&self) -> Result<jetstream::Context, DeliveryError> {
        let mut guard = self.inner.js.lock().await;
        if let Some(js) = guard.as_ref() {
            return Ok(js.clone());
        }
        let settings = &self.inner.settings;
        let client = super::connect(settings, "registry-notify publisher")
            .await
            .map_err(DeliveryError::Transport)?;
        let js = jetstream::new(client);
        super::ensure_stream(&js, settings)
            .await
            .map_err(DeliveryError::Transport)?;
        tracing::info!(
            url = %settings.redacted_url(), stream = %settings.stream,
            "nats: publisher connected"
        );
        *guard = Some(js.clone());
        Ok(js)
    }
}

impl tower::Service<Batch> for Publisher {
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Batch) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.publish(batch).await.map_err(BoxError::from) })
    }
}

/// The endpoint that publishes to JetStream: filter (none) → queue (`settings.queue`, memory or
/// durable) → retry (exponential 100 ms .. 5 s, unlimited, never dead-lettered) → [`Publisher`],
/// with `settings.max_events` events per message at most. Its name is `nats:<stream>`; give it
/// to [`NotificationsBuilder::endpoint`](crate::notifications::NotificationsBuilder::endpoint).
///
/// ```
/// use registry_notify::config::NatsSettings;
/// use registry_notify::nats::publisher_endpoint;
///
/// let endpoint = publisher_endpoint(&NatsSettings::new("nats://user:s3cr3t@127.0.0.1:4222")).unwrap();
/// assert_eq!(endpoint.name(), "nats:REGISTRY_NOTIFICATIONS");
/// assert_eq!(endpoint.redacted_url(), "nats://***@127.0.0.1:4222");
/// ```
pub fn publisher_endpoint(settings: &NatsSettings) -> Result<Endpoint, ConfigError> {
    settings.validate()?;
    let sink = BoxSink::new(Publisher::new(settings.clone()));
    let q = &settings.queue;
    let mut builder =
        Endpoint::builder_for_sink(format!("nats:{}", settings.stream), settings.redacted_url(), sink)
            .max_events(settings.max_events)
            .queue(QueueConfig {
                capacity: q.capacity,
                overflow: q.overflow,
            })
            .retry(
                Exponential::default()
                    .backoff(Duration::from_millis(100), Duration::from_secs(5))
                    .max_age(None),
            );
    if let Some(path) = &q.path {
        builder = builder.durable_queue(DurableConfig::new(path).max_bytes(q.max_bytes).fsync(
            match q.fsync {
                QueueFsync::Always => Fsync::Always,
                _ => Fsync::Interval(q.fsync_interval),
            },
        ));
    }
    builder.build()
}
