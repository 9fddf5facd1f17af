//! Endpoint settings and the per-endpoint delivery stack.
//!
//! An [`Endpoint`] is validated configuration for one webhook receiver, built with
//! [`Endpoint::builder`]: the composition of each stage's settings — [`FilterRules`],
//! [`QueueConfig`] (and a [`DurableConfig`]), a [`RetryPolicy`], an [`HttpSinkConfig`].
//! [`Endpoint::spawn`] assembles its stack with tower's `ServiceBuilder` — filter → queue →
//! retry → HTTP, each stage a tower service from its own module — spawns the queue worker
//! and returns the [`EndpointSink`] (whose `call` returns as soon as the batch is queued)
//! with an [`EndpointHandle`] for metrics and graceful shutdown.
//!
//! Secrets stay secret: header values, URL credentials (userinfo and query values),
//! [signing secrets](EndpointBuilder::signing_secret) and
//! [client keys](EndpointBuilder::client_cert_pem) never appear in `Debug` output, logs,
//! metrics, error messages or the [delivery log](EndpointBuilder::delivery_log). Userinfo in the URL
//! is sent as `Authorization: Basic` (like Go's HTTP client does for Distribution) unless
//! an `Authorization` header is configured.
//!
//! ```
//! use std::time::Duration;
//! use registry_notify::endpoint::Endpoint;
//! use registry_notify::filter::FilterRules;
//! use registry_notify::retry::Breaker;
//! use registry_notify::{Action, Batch, Event, Target};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let endpoint = Endpoint::builder("audit", "https://hooks.example.com/registry?token=s3cr3t")
//!     .header("Authorization", "Bearer s3cr3t")
//!     .timeout(Duration::from_secs(2))
//!     .max_events(50)
//!     .retry(Breaker::new(10, Duration::from_secs(1)))
//!     .filter(FilterRules::new().ignore_methods(["HEAD"]))
//!     .build()
//!     .unwrap();
//! assert!(!format!("{endpoint:?}").contains("s3cr3t"));
//!
//! # let endpoint = Endpoint::builder("audit", "http://127.0.0.1:9/registry").build().unwrap();
//! let (sink, handle) = endpoint.spawn();
//! // Returns at once; delivery happens in the endpoint's worker task.
//! sink.oneshot(Batch::from(Event::new(Action::Push, Target::default()))).await.unwrap();
//! assert_eq!(handle.metrics().events, 1);
//! let left = handle.shutdown(tokio::time::Instant::now()).await;
//! assert!(left <= 1);
//! # }
//! ```

mod builder;
mod dead_letters;
mod handle;
mod ping;
mod sink;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower::{Layer, ServiceBuilder, ServiceExt};

pub use builder::EndpointBuilder;
pub use dead_letters::{DeadEvent, Redeliver, RedeliverError, DEFAULT_KEEP as DEFAULT_KEEP_DEAD_LETTERS};
pub use handle::EndpointHandle;
pub use ping::PingOutcome;
pub use sink::EndpointSink;

/// The most lanes an endpoint may have ([`EndpointBuilder::concurrency`]).
pub const MAX_CONCURRENCY: usize = 64;

use crate::error::ConfigError;
use crate::event::Format;
use crate::filter::{EventFilterLayer, FilterRules};
use crate::http_sink::{HttpSink, HttpSinkConfig};
use crate::metrics::EndpointMetrics;
use crate::queue::{DurableConfig, EventQueue, Lanes, Queue, QueueConfig};
use crate::retry::{
    DeadLetter, DeadLetterHandler, DeliveryLogHandler, DeliveryRecord, DeliveryRetryLayer, RetryPolicy,
};
use crate::sink::{BoxSink, Receipt, ReceiptSink};
use dead_letters::DeadLetterStore;
use handle::Admin;
use ping::Pinger;

/// Validated settings of one webhook endpoint; see the [module docs](self).
///
/// `Debug` shows header names but not their values, and the URL with its credentials
/// redacted.
#[derive(Clone)]
pub struct Endpoint {
    name: String,
    redacted_url: String,
    /// The innermost stage's settings (a placeholder for a custom sink).
    http: HttpSinkConfig,
    max_events: usize,
    linger: Duration,
    retry: Arc<dyn RetryPolicy>,
    filter: FilterRules,
    queue: QueueConfig,
    durable: Option<DurableConfig>,
    dead_letter: Option<DeadLetterHandler>,
    /// How many dead-lettered events are kept for redelivery.
    keep_dead_letters: usize,
    /// Lanes delivering at once (1: one batch in flight, in order).
    concurrency: usize,
    delivery_log: Option<DeliveryLogHandler>,
    disabled: bool,
    /// The innermost stage in place of HTTP ([`Endpoint::builder_for_sink`]).
    sink: Option<BoxSink>,
}

impl Endpoint {
    /// Starts building an endpoint named `name` that POSTs to `url`.
    pub fn builder(name: impl Into<String>, url: impl Into<String>) -> EndpointBuilder {
        EndpointBuilder::new(name.into(), url.into(), None)
    }

    /// Starts building an endpoint whose innermost stage is `sink` instead of an HTTP POST:
    /// filter → queue → retry → `sink`, with the same queue (memory or
    /// [durable](EndpointBuilder::durable_queue)), retry, dead-letter and metrics as a webhook
    /// endpoint. `label` stands in for the URL in logs and metrics (redacted like a URL); the
    /// HTTP settings (headers, timeout, format, TLS) are unused. A `sink` error is retried
    /// (a [`DeliveryError`](crate::sink::DeliveryError) according to its kind).
    ///
    /// ```
    /// use registry_notify::endpoint::Endpoint;
    /// use registry_notify::sink::{BoxError, BoxSink};
    /// use registry_notify::Batch;
    ///
    /// let sink = BoxSink::new(tower::service_fn(|_: Batch| async { Ok::<(), BoxError>(()) }));
    /// let endpoint = Endpoint::builder_for_sink("log", "log://stdout", sink).build().unwrap();
    /// assert_eq!(endpoint.redacted_url(), "log://stdout");
    /// ```
    pub fn builder_for_sink(
        name: impl Into<String>,
        label: impl Into<String>,
        sink: BoxSink,
    ) -> EndpointBuilder {
        EndpointBuilder::new(name.into(), label.into(), Some(sink))
    }

    /// The endpoint name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL with credentials redacted.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// The HTTP sink's settings; `None` for an endpoint [built for a sink](Self::builder_for_sink).
    pub fn http(&self) -> Option<&HttpSinkConfig> {
        self.sink.is_none().then_some(&self.http)
    }

    /// The proxy its requests go through (`scheme://host:port`, no credentials), if any.
    pub fn proxy(&self) -> Option<&str> {
        self.http.proxy()
    }

    /// Whether the endpoint is disabled (its sink discards everything).
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// The per-attempt timeout.
    pub fn timeout(&self) -> Duration {
        self.http.timeout
    }

    /// The envelope format.
    pub fn format(&self) -> Format {
        self.http.format
    }

    /// Events per envelope at most.
    pub fn max_events(&self) -> usize {
        self.max_events
    }

    /// How long a busy endpoint waits for a partly filled envelope
    /// ([`EndpointBuilder::linger`]).
    pub fn linger(&self) -> Duration {
        self.linger
    }

    /// The filter rules.
    pub fn filter(&self) -> &FilterRules {
        &self.filter
    }

    /// The retry policy.
    pub fn retry(&self) -> &dyn RetryPolicy {
        &*self.retry
    }

    /// The queue settings.
    pub fn queue(&self) -> &QueueConfig {
        &self.queue
    }

    /// Whether requests are signed ([`EndpointBuilder::signing_secret`]).
    pub fn is_signed(&self) -> bool {
        self.http.is_signed()
    }

    /// The durable queue's settings, if the queue is on disk.
    pub fn durable_queue(&self) -> Option<&DurableConfig> {
        self.durable.as_ref()
    }

    /// Whether requests wait until this endpoint's events are on disk (a durable queue with
    /// `fsync: always`).
    pub fn waits_for_disk(&self) -> bool {
        !self.disabled && self.durable.as_ref().is_some_and(DurableConfig::is_always)
    }

    /// Whether the endpoint has a dead-letter hook.
    pub(crate) fn has_dead_letter(&self) -> bool {
        self.dead_letter.is_some()
    }

    /// Replaces the dead-letter hook (see [`EndpointBuilder::dead_letter`]), e.g. on an
    /// endpoint that came from configuration.
    pub fn with_dead_letter(mut self, handler: impl Fn(DeadLetter) + Send + Sync + 'static) -> Self {
        self.dead_letter = Some(Arc::new(handler));
        self
    }

    /// Replaces the delivery log hook (see [`EndpointBuilder::delivery_log`]), e.g. on an
    /// endpoint that came from configuration.
    pub fn with_delivery_log(mut self, handler: impl Fn(DeliveryRecord) + Send + Sync + 'static) -> Self {
        self.delivery_log = Some(Arc::new(handler));
        self
    }

    /// Builds filter → queue → retry → http and spawns the queue worker (must run inside
    /// a Tokio runtime). The sink's `call` completes as soon as the batch is queued (or
    /// filtered) — with `fsync: always`, once it is on disk; it fails only once the endpoint
    /// is shut down. A disabled endpoint gets a sink that discards everything (counted as
    /// `filtered`) and no worker.
    ///
    /// # Panics
    ///
    /// If the endpoint has a [durable queue](EndpointBuilder::durable_queue) that cannot be
    /// opened; [`try_spawn`](Self::try_spawn) returns that error instead.
    pub fn spawn(self) -> (EndpointSink, EndpointHandle) {
        match self.try_spawn() {
            Ok(spawned) => spawned,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`spawn`](Self::spawn), but fails if the endpoint's durable queue cannot be opened
    /// (its directory cannot be created or read, or this process has it open already).
    pub fn try_spawn(self) -> Result<(EndpointSink, EndpointHandle), ConfigError> {
        let metrics = Arc::new(EndpointMetrics::new(self.name.clone(), &self.redacted_url));
        let mut handle = EndpointHandle {
            name: self.name.as_str().into(),
            metrics: metrics.clone(),
            queues: Vec::new(),
            admin: None,
        };
        if self.disabled {
            return Ok((EndpointSink::disabled(metrics), handle));
        }
        if self.http.accepts_invalid_certs() {
            tracing::warn!(
                endpoint = %self.name, url = %self.redacted_url,
                "notifications: INSECURE: endpoint accepts any server certificate (danger_accept_invalid_certs / tls.insecureskipverify)"
            );
        }
        // Each lane's durable queue first: it creates and locks the directory the dead letters
        // are kept in.
        let mut stores = Vec::new();
        for durable in self.lane_queues()? {
            stores.push(match &durable {
                Some(durable) => Some(self.open_durable(durable, &metrics)?),
                None => None,
            });
        }
        let dead_letters = self.dead_letter_store();
        let retry = self.retry_layer(&metrics, &dead_letters);
        // Each lane: a queue whose worker drives retry → the innermost stage, HTTP (its clones
        // share one connection pool) or the custom sink. The ping uses the same stage, counted
        // in no metric.
        let (queues, ping) = match &self.sink {
            Some(sink) => (
                self.spawn_lanes(stores, &retry, &metrics, sink.clone()),
                ReceiptSink::new(sink.clone().map_response(Receipt::from)),
            ),
            None => {
                let http = HttpSink::new(&self.http);
                let ping = ReceiptSink::new(http.clone());
                (
                    self.spawn_lanes(stores, &retry, &metrics, http.metrics(metrics.clone())),
                    ping,
                )
            }
        };
        let routed = queues.len().min(self.concurrency);
        let lanes = Lanes::new(queues).routing(routed);
        handle.queues = lanes.handles();
        handle.admin = Some(self.admin(&metrics, dead_letters, BoxSink::new(lanes.clone()), ping));
        let front = ServiceBuilder::new()
            .layer(EventFilterLayer::new(self.filter.clone()).metrics(metrics))
            .service(lanes);
        tracing::info!(
            endpoint = %self.name, url = %self.redacted_url, timeout = ?self.http.timeout,
            format = %self.http.format, max_events = self.max_events, signed = self.is_signed(),
            client_cert = self.http.has_client_cert(), proxy = self.proxy().unwrap_or("none"),
            "notifications: configuring endpoint"
        );
        Ok((EndpointSink::running(front), handle))
    }

    /// Builds filter → retry → http (or the [custom sink](Self::builder_for_sink)) **without a
    /// queue**: the sink's call resolves once the batch was delivered, filtered out or
    /// dead-lettered, and fails only with [`DeliveryError::Closed`](crate::sink::DeliveryError::Closed).
    /// For a caller that keeps its own queue and must know when delivery is done, like the
    /// [NATS worker](https://docs.rs/registry-notify/latest/registry_notify/nats/) that
    /// acknowledges a message only then. Calls may run concurrently; the caller decides the
    /// order. Queue settings are unused; the handle's `queued` is always 0.
    pub fn spawn_unqueued(self) -> (BoxSink, EndpointHandle) {
        let metrics = Arc::new(EndpointMetrics::new(self.name.clone(), &self.redacted_url));
        let mut handle = EndpointHandle {
            name: self.name.as_str().into(),
            metrics: metrics.clone(),
            queues: Vec::new(),
            admin: None,
        };
        if self.disabled {
            return (BoxSink::new(EndpointSink::disabled(metrics)), handle);
        }
        let dead_letters = self.dead_letter_store();
        let retry = self.retry_layer(&metrics, &dead_letters);
        let (resend, ping) = match &self.sink {
            Some(sink) => (
                BoxSink::new(retry.layer(sink.clone())),
                ReceiptSink::new(sink.clone().map_response(Receipt::from)),
            ),
            None => {
                let http = HttpSink::new(&self.http);
                let ping = ReceiptSink::new(http.clone());
                (BoxSink::new(retry.layer(http.metrics(metrics.clone()))), ping)
            }
        };
        let sink = BoxSink::new(
            EventFilterLayer::new(self.filter.clone())
                .metrics(metrics.clone())
                .layer(resend.clone()),
        );
        handle.admin = Some(self.admin(&metrics, dead_letters, resend, ping));
        (sink, handle)
    }

    /// A queue per lane (over `stores`, a durable queue or a memory one), each with its worker
    /// spawned, driving `retry` → `inner`.
    fn spawn_lanes<S>(
        &self,
        stores: Vec<Option<Arc<dyn EventQueue>>>,
        retry: &DeliveryRetryLayer,
        metrics: &Arc<EndpointMetrics>,
        inner: S,
    ) -> Vec<Queue>
    where
        S: tower::Service<crate::event::Batch> + Clone + Send + 'static,
        S::Response: Into<Receipt>,
        S::Error: Into<crate::sink::BoxError>,
        S::Future: Send + 'static,
    {
        stores
            .into_iter()
            .map(|store| {
                let mut queue = Queue::builder(self.queue.clone())
                    .max_events(self.max_events)
                    .linger(self.linger)
                    .metrics(metrics.clone());
                if let Some(store) = store {
                    queue = queue.events(store);
                }
                let (queue, worker) = queue.pair(retry.clone().layer(inner.clone()));
                tokio::spawn(worker);
                queue
            })
            .collect()
    }

    /// The durable queue of each lane (`None` for memory queues): lane 0 in the configured
    /// directory, lane `i` in its `lane-<i>` subdirectory. Lanes left on disk by a run with a
    /// higher concurrency come after them: they get no new events, but what they hold is
    /// delivered.
    fn lane_queues(&self) -> Result<Vec<Option<DurableConfig>>, ConfigError> {
        let Some(durable) = &self.durable else {
            return Ok(vec![None; self.concurrency]);
        };
        let lane = |i: usize| {
            let mut config = durable.clone();
            if i > 0 {
                config.path = durable.path.join(format!("lane-{i}"));
            }
            Some(config)
        };
        let mut lanes: Vec<Option<DurableConfig>> = (0..self.concurrency).map(lane).collect();
        let mut left: Vec<usize> = match std::fs::read_dir(&durable.path) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_prefix("lane-")?
                        .parse::<usize>()
                        .ok()
                })
                .filter(|&i| i >= self.concurrency && i < MAX_CONCURRENCY)
                .collect(),
            Err(_) => Vec::new(),
        };
        left.sort_unstable();
        if !left.is_empty() {
            tracing::info!(endpoint = %self.name, lanes = ?left,
                "notifications: lanes of an earlier run with more concurrency are delivered, and get no new events");
        }
        lanes.extend(left.into_iter().map(lane));
        Ok(lanes)
    }

    /// Where this endpoint keeps its dead letters: beside its durable queue, else in memory.
    fn dead_letter_store(&self) -> Arc<DeadLetterStore> {
        Arc::new(match &self.durable {
            Some(durable) if self.keep_dead_letters > 0 => {
                DeadLetterStore::on_disk(self.keep_dead_letters, &durable.path)
            }
            _ => DeadLetterStore::in_memory(self.keep_dead_letters),
        })
    }

    /// What the handle of this running endpoint drives.
    fn admin(
        &self,
        metrics: &Arc<EndpointMetrics>,
        dead_letters: Arc<DeadLetterStore>,
        resend: BoxSink,
        ping: ReceiptSink,
    ) -> Arc<Admin> {
        Arc::new(Admin {
            dead_letters,
            resend,
            pinger: Pinger {
                sink: ping,
                metrics: metrics.clone(),
                secrets: self.http.secrets().clone(),
            },
        })
    }

    /// The retry stage of this endpoint (a fresh policy, name, metrics, hooks); what it gives
    /// up on is kept in `dead_letters` before the dead-letter hook hears of it.
    fn retry_layer(
        &self,
        metrics: &Arc<EndpointMetrics>,
        dead_letters: &Arc<DeadLetterStore>,
    ) -> DeliveryRetryLayer {
        let mut retry = DeliveryRetryLayer::with_policy(self.retry.clone())
            .name(self.name.as_str())
            .metrics(metrics.clone());
        let store = dead_letters.clone();
        let hook = self.dead_letter.clone();
        retry = retry.dead_letter(Arc::new(move |letter: DeadLetter| {
            store.keep(&letter);
            if let Some(hook) = &hook {
                hook(letter);
            }
        }));
        if let Some(handler) = self.delivery_log.clone() {
            retry = retry.delivery_log(handler);
        }
        retry.secrets(self.http.secrets().clone())
    }

    #[cfg(feature = "durable")]
    fn open_durable(
        &self,
        durable: &DurableConfig,
        metrics: &Arc<EndpointMetrics>,
    ) -> Result<Arc<dyn EventQueue>, ConfigError> {
        let queue = crate::queue::DurableQueue::open(durable, &self.queue).map_err(|e| {
            ConfigError::at(
                format!("endpoint {:?}", self.name),
                format!("cannot open queue path {}: {e}", durable.path.display()),
            )
        })?;
        let queue = queue.metrics(metrics.clone());
        tracing::info!(
            endpoint = %self.name, path = %durable.path.display(), fsync = ?durable.fsync,
            max_bytes = durable.max_bytes, backlog = queue.len(), "notifications: durable queue opened"
        );
        Ok(Arc::new(queue))
    }

    #[cfg(not(feature = "durable"))]
    fn open_durable(
        &self,
        _: &DurableConfig,
        _: &Arc<EndpointMetrics>,
    ) -> Result<Arc<dyn EventQueue>, ConfigError> {
        Err(ConfigError::at(
            format!("endpoint {:?}", self.name),
            "durable queues need the `durable` feature of registry-notify",
        ))
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("url", &self.redacted_url)
            .field("http", &self.http)
            .field("max_events", &self.max_events)
            .field("linger", &self.linger)
            .field("retry", &self.retry)
            .field("filter", &self.filter)
            .field("queue", &self.queue)
            .field("durable", &self.durable)
            .field("dead_letter", &self.dead_letter.is_some())
            .field("disabled", &self.disabled)
            .field("delivery_log", &self.delivery_log.is_some())
            .field("custom_sink", &self.sink.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Batch;
    use http::header::AUTHORIZATION;

    #[test]
    fn builder_validation_names_the_field() {
        let cases = [
            (
                Endpoint::builder("", "http://h/"),
                "endpoint name must not be empty",
            ),
            (
                Endpoint::builder("x", "h/path"),
                "endpoint \"x\".url: must be an http:// or https:// URL (got \"h/path\")",
            ),
            (
                Endpoint::builder("x", "http://h/").max_events(0),
                "endpoint \"x\".maxevents must be > 0",
            ),
            (
                Endpoint::builder("x", "http://h/").queue(QueueConfig {
                    capacity: 0,
                    ..QueueConfig::default()
                }),
                "endpoint \"x\".queue.capacity must be > 0",
            ),
            (
                Endpoint::builder("x", "http://h/").header("bad name", "v"),
                "endpoint \"x\".headers: invalid header name \"bad name\"",
            ),
        ];
        for (builder, want) in cases {
            assert_eq!(builder.build().unwrap_err().to_string(), want);
        }
        let e = Endpoint::builder("x", "http://u:p@h:8080/a?b=c").build().unwrap();
        assert_eq!(
            e.http.uri.to_string(),
            "http://h:8080/a?b=c",
            "userinfo is not sent in the URI"
        );
        assert_eq!(e.http.headers[0].0, AUTHORIZATION);
        assert_eq!(e.redacted_url(), "http://***@h:8080/a?***");
    }

    #[tokio::test]
    async fn disabled_endpoint_discards() {
        use tower::ServiceExt;
        let (sink, handle) = Endpoint::builder("off", "http://127.0.0.1:9/")
            .disabled(true)
            .build()
            .unwrap()
            .spawn();
        let event = crate::Event::new(crate::Action::Push, crate::Target::default());
        sink.oneshot(Batch::from(event)).await.unwrap();
        let m = handle.metrics();
        assert_eq!((m.events, m.filtered), (0, 1));
        assert_eq!(handle.shutdown(tokio::time::Instant::now()).await, 0);
    }
}
