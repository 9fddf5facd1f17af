//! Endpoint settings and the per-endpoint delivery stack.
//!
//! An [`Endpoint`] is validated configuration for one webhook receiver, built with
//! [`Endpoint::builder`]. [`Endpoint::spawn`] assembles its stack — filter → queue →
//! retry → HTTP, each stage a tower service from its own module — spawns the queue worker
//! and returns the sink (a [`BoxSink`] whose `call` returns as soon as the batch is
//! queued) with an [`EndpointHandle`] for metrics and graceful shutdown.
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
//! use registry_notify::filter::Filter;
//! use registry_notify::retry::RetryConfig;
//! use registry_notify::{Action, Batch, Event, Target};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let endpoint = Endpoint::builder("audit", "https://hooks.example.com/registry?token=s3cr3t")
//!     .header("Authorization", "Bearer s3cr3t")
//!     .timeout(Duration::from_secs(2))
//!     .max_events(50)
//!     .retry(RetryConfig::breaker(10, Duration::from_secs(1)))
//!     .filter(Filter::new().ignore_methods(["HEAD"]))
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

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use tower::util::BoxCloneSyncService;
use tower_layer::Layer;

use crate::dispatcher::Enqueue;
pub use crate::error::ConfigError;
use crate::event::{Batch, Format};
use crate::filter::{Filter, FilterLayer, FilterService};
use crate::http::HttpSink;
use crate::metrics::{EndpointMetrics, EndpointSnapshot};
use crate::queue::{DurableConfig, Queue, QueueConfig, QueueHandle, QueueLayer};
use crate::retry::{DeliveryLogHandler, DeliveryRecord, Retry, RetryConfig, RetryLayer};
use crate::secret::{redact_url, Secrets};
use crate::sink::{BoxError, BoxSink};

/// The head of a spawned endpoint stack: filter → queue (whose worker drives retry → `S`,
/// the HTTP sink unless the endpoint was built [for a sink](Endpoint::builder_for_sink)).
type EndpointFront<S = HttpSink> = FilterService<Queue<Retry<S>>>;

impl<S: 'static> Enqueue for FilterService<Queue<S>> {
    fn enqueue(&self, batch: Batch) -> Result<(), BoxError> {
        match self.admit(batch) {
            Some(batch) => self.get_ref().push(batch),
            None => Ok(()),
        }
    }
}

/// A batch the retry stage gave up on, handed to the endpoint's dead-letter hook.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// Endpoint name.
    pub endpoint: String,
    /// The events, exactly as they were sent.
    pub batch: Batch,
    /// Why delivery stopped (the last error, never containing secrets).
    pub reason: String,
    /// How many attempts were made.
    pub attempts: u32,
}

/// Receives the batches an endpoint gave up on (see [`EndpointBuilder::dead_letter`]).
pub type DeadLetterHandler = Arc<dyn Fn(DeadLetter) + Send + Sync>;

/// Validated settings of one webhook endpoint; see the [module docs](self).
///
/// `Debug` shows header names but not their values, and the URL with its credentials
/// redacted.
#[derive(Clone)]
pub struct Endpoint {
    pub(crate) name: String,
    pub(crate) redacted_url: String,
    /// The URL without userinfo.
    pub(crate) uri: http::Uri,
    /// Configured headers (values marked sensitive), plus Basic auth from the userinfo.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) secrets: Arc<Secrets>,
    pub(crate) timeout: Duration,
    pub(crate) format: Format,
    pub(crate) max_events: usize,
    pub(crate) linger: Duration,
    pub(crate) retry: RetryConfig,
    pub(crate) filter: Filter,
    pub(crate) queue: QueueConfig,
    pub(crate) durable: Option<DurableConfig>,
    pub(crate) redirects_as_success: bool,
    pub(crate) has_ca_pem: bool,
    pub(crate) danger_accept_invalid_certs: bool,
    pub(crate) dead_letter: Option<DeadLetterHandler>,
    pub(crate) disabled: bool,
    /// The innermost stage in place of HTTP ([`Endpoint::builder_for_sink`]).
    pub(crate) sink: Option<BoxSink>,
    #[cfg(feature = "https")]
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) has_client_cert: bool,
    pub(crate) delivery_log: Option<DeliveryLogHandler>,
    /// Standard Webhooks signer (see [`EndpointBuilder::signing_secret`]).
    #[cfg(feature = "signing")]
    pub(crate) signer: Option<Arc<crate::signing::Signer>>,
    pub(crate) signing_secrets: usize,
    /// The proxy in front of the endpoint, if any.
    pub(crate) proxy_route: Option<crate::http::ProxyRoute>,
}

impl Endpoint {
    /// Starts building an endpoint named `name` that POSTs to `url`.
    pub fn builder(name: impl Into<String>, url: impl Into<String>) -> EndpointBuilder {
        EndpointBuilder {
            name: name.into(),
            url: url.into(),
            headers: Vec::new(),
            timeout: Duration::from_secs(1),
            format: Format::default(),
            max_events: 1,
            linger: crate::queue::DEFAULT_LINGER,
            retry: RetryConfig::default(),
            filter: Filter::default(),
            queue: QueueConfig::default(),
            durable: None,
            redirects_as_success: false,
            ca_pem: None,
            danger_accept_invalid_certs: false,
            dead_letter: None,
            disabled: false,
            client_cert: None,
            delivery_log: None,
            signing_secrets: Vec::new(),
            proxy: crate::http::Proxy::FromEnv,
            sink: None,
        }
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
        EndpointBuilder {
            sink: Some(sink),
            ..Self::builder(name, label)
        }
    }

    /// The endpoint name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL with credentials redacted.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// The proxy its requests go through (`scheme://host:port`, no credentials), if any.
    pub fn proxy(&self) -> Option<&str> {
        self.proxy_route.as_ref().map(|r| r.redacted.as_str())
    }

    /// Whether the endpoint is disabled (its sink discards everything).
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// The per-attempt timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The envelope format.
    pub fn format(&self) -> Format {
        self.format
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
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// The retry settings.
    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    /// The queue settings.
    pub fn queue(&self) -> &QueueConfig {
        &self.queue
    }

    /// Whether requests are signed ([`EndpointBuilder::signing_secret`]).
    pub fn is_signed(&self) -> bool {
        self.signing_secrets > 0
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

    /// Builds filter → queue → retry → http and spawns the queue worker (must run inside
    /// a Tokio runtime). The sink's `call` returns as soon as the batch is queued (or
    /// filtered); it fails only once the endpoint is shut down. A disabled endpoint
    /// gets a sink that discards everything (counted as `filtered`) and no worker.
    ///
    /// # Panics
    ///
    /// If the endpoint has a [durable queue](EndpointBuilder::durable_queue) that cannot be
    /// opened; [`try_spawn`](Self::try_spawn) returns that error instead.
    pub fn spawn(self) -> (BoxSink, EndpointHandle) {
        match self.try_spawn() {
            Ok(spawned) => spawned,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`spawn`](Self::spawn), but fails if the endpoint's durable queue cannot be opened
    /// (its directory cannot be created or read, or this process has it open already).
    pub fn try_spawn(self) -> Result<(BoxSink, EndpointHandle), ConfigError> {
        if self.disabled {
            let metrics = Arc::new(EndpointMetrics::new(self.name.clone(), &self.redacted_url));
            let m = metrics.clone();
            let sink = tower::service_fn(move |batch: Batch| {
                m.record_filtered(batch.len());
                std::future::ready(Ok::<(), BoxError>(()))
            });
            let handle = EndpointHandle {
                name: self.name.into(),
                metrics,
                queue: None,
            };
            return Ok((BoxCloneSyncService::new(sink), handle));
        }
        match self.sink.clone() {
            Some(sink) => {
                let (front, handle) = self.spawn_stack(sink)?;
                Ok((BoxCloneSyncService::new(front), handle))
            }
            None => {
                let http = HttpSink::new(&self);
                let (front, handle) = self.spawn_stack(http)?;
                Ok((BoxCloneSyncService::new(front), handle))
            }
        }
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
        let handle = EndpointHandle {
            name: self.name.as_str().into(),
            metrics: metrics.clone(),
            queue: None,
        };
        if self.disabled {
            let sink = tower::service_fn(move |batch: Batch| {
                metrics.record_filtered(batch.len());
                std::future::ready(Ok::<(), BoxError>(()))
            });
            return (BoxCloneSyncService::new(sink), handle);
        }
        let sink = match self.sink.clone() {
            Some(sink) => {
                let retry = self.retry_layer(&metrics).layer(sink);
                BoxCloneSyncService::new(
                    FilterLayer::new(self.filter.clone())
                        .metrics(metrics)
                        .layer(retry),
                )
            }
            None => {
                let http = HttpSink::new(&self).metrics(metrics.clone());
                let retry = self.retry_layer(&metrics).layer(http);
                BoxCloneSyncService::new(
                    FilterLayer::new(self.filter.clone())
                        .metrics(metrics)
                        .layer(retry),
                )
            }
        };
        (sink, handle)
    }

    /// Like [`try_spawn`](Self::try_spawn), returning the front of the stack (filter → queue)
    /// for the dispatcher to feed directly. Disabled endpoints are not spawned by the crate.
    pub(crate) fn try_spawn_front(self) -> Result<(Arc<dyn Enqueue>, EndpointHandle), ConfigError> {
        match self.sink.clone() {
            Some(sink) => {
                let (front, handle) = self.spawn_stack(sink)?;
                Ok((Arc::new(front), handle))
            }
            None => {
                let http = HttpSink::new(&self);
                let (front, handle) = self.spawn_stack(http)?;
                Ok((Arc::new(front), handle))
            }
        }
    }

    /// The retry stage of this endpoint (name, metrics, dead-letter hook).
    fn retry_layer(&self, metrics: &Arc<EndpointMetrics>) -> RetryLayer {
        let mut retry = RetryLayer::new(self.retry.clone())
            .name(self.name.clone())
            .metrics(metrics.clone());
        if let Some(handler) = self.dead_letter.clone() {
            retry = retry.dead_letter(handler);
        }
        if let Some(handler) = self.delivery_log.clone() {
            retry = retry.delivery_log(handler);
        }
        retry.secrets(self.secrets.clone())
    }

    fn spawn_stack<S>(self, inner: S) -> Result<(EndpointFront<S>, EndpointHandle), ConfigError>
    where
        S: tower::Service<Batch, Response = ()> + Instrument + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        let metrics = Arc::new(EndpointMetrics::new(self.name.clone(), &self.redacted_url));
        let inner = inner.with_metrics(&metrics);
        let retry = self.retry_layer(&metrics);
        if self.danger_accept_invalid_certs {
            tracing::warn!(
                endpoint = %self.name, url = %self.redacted_url,
                "notifications: INSECURE: endpoint accepts any server certificate (danger_accept_invalid_certs / tls.insecureskipverify)"
            );
        }
        let queue = match &self.durable {
            None => QueueLayer::new(self.queue.clone()),
            Some(durable) => self.durable_layer(durable, &metrics)?,
        };
        let queue = queue
            .max_events(self.max_events)
            .linger(self.linger)
            .metrics(metrics.clone())
            .layer(retry.layer(inner));
        let queue_handle = queue.handle();
        let sink = FilterLayer::new(self.filter.clone())
            .metrics(metrics.clone())
            .layer(queue);
        tracing::info!(
            endpoint = %self.name, url = %self.redacted_url, timeout = ?self.timeout,
            format = %self.format, max_events = self.max_events, signed = self.is_signed(),
            client_cert = self.has_client_cert, proxy = self.proxy().unwrap_or("none"),
            "notifications: configuring endpoint"
        );
        let handle = EndpointHandle {
            name: self.name.into(),
            metrics,
            queue: Some(queue_handle),
        };
        Ok((sink, handle))
    }

    #[cfg(feature = "durable")]
    fn durable_layer(
        &self,
        durable: &DurableConfig,
        metrics: &Arc<EndpointMetrics>,
    ) -> Result<QueueLayer, ConfigError> {
        let queue = crate::queue::DurableQueue::open(durable, &self.queue).map_err(|e| {
            ConfigError::new(format!(
                "endpoint {:?}: cannot open queue path {}: {e}",
                self.name,
                durable.path.display()
            ))
        })?;
        let queue: Arc<dyn crate::queue::EventQueue> = Arc::new(queue.metrics(metrics.clone()));
        tracing::info!(
            endpoint = %self.name, path = %durable.path.display(), fsync = ?durable.fsync,
            max_bytes = durable.max_bytes, backlog = queue.len(), "notifications: durable queue opened"
        );
        Ok(QueueLayer::with_queue(move || queue.clone()))
    }

    #[cfg(not(feature = "durable"))]
    fn durable_layer(&self, _: &DurableConfig, _: &Arc<EndpointMetrics>) -> Result<QueueLayer, ConfigError> {
        Err(ConfigError::new(format!(
            "endpoint {:?}: durable queues need the `durable` feature of registry-notify",
            self.name
        )))
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(n, _)| (n.as_str(), "***")).collect();
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("url", &self.redacted_url)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("format", &self.format)
            .field("max_events", &self.max_events)
            .field("linger", &self.linger)
            .field("retry", &self.retry)
            .field("filter", &self.filter)
            .field("queue", &self.queue)
            .field("durable", &self.durable)
            .field("redirects_as_success", &self.redirects_as_success)
            .field("ca_pem", &self.has_ca_pem)
            .field("danger_accept_invalid_certs", &self.danger_accept_invalid_certs)
            .field("dead_letter", &self.dead_letter.is_some())
            .field("disabled", &self.disabled)
            .field("client_cert", &self.has_client_cert)
            .field("signing_secrets", &self.signing_secrets)
            .field("delivery_log", &self.delivery_log.is_some())
            .field("proxy", &self.proxy())
            .field("custom_sink", &self.sink.is_some())
            .finish()
    }
}

/// Builds an [`Endpoint`]; every setter takes and returns the builder by value and
/// [`build`](Self::build) validates everything at once.
pub struct EndpointBuilder {
    name: String,
    url: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
    format: Format,
    max_events: usize,
    linger: Duration,
    retry: RetryConfig,
    filter: Filter,
    queue: QueueConfig,
    durable: Option<DurableConfig>,
    redirects_as_success: bool,
    ca_pem: Option<Vec<u8>>,
    danger_accept_invalid_certs: bool,
    dead_letter: Option<DeadLetterHandler>,
    disabled: bool,
    /// Client certificate chain and key, PEM.
    client_cert: Option<(Vec<u8>, Vec<u8>)>,
    delivery_log: Option<DeliveryLogHandler>,
    signing_secrets: Vec<String>,
    proxy: crate::http::Proxy,
    sink: Option<BoxSink>,
}

/// The innermost stage of a spawned stack gets the endpoint's metrics (the HTTP sink records
/// statuses and latencies; a custom sink records nothing of its own).
trait Instrument: Sized {
    fn with_metrics(self, metrics: &Arc<EndpointMetrics>) -> Self;
}

impl Instrument for HttpSink {
    fn with_metrics(self, metrics: &Arc<EndpointMetrics>) -> Self {
        self.metrics(metrics.clone())
    }
}

impl Instrument for BoxSink {
    fn with_metrics(self, _: &Arc<EndpointMetrics>) -> Self {
        self
    }
}

impl EndpointBuilder {
    /// Adds a header; calling it again with the same name adds another value, sent as its
    /// own header line after ours (`Content-Type`, `User-Agent`), like Distribution.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Per-attempt timeout, connecting included (default 1 s, Distribution's); must be > 0.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Envelope format (default [`Format::EventsV2`]); the `Content-Type` is its media type.
    /// [`Format::CloudEvents`] sends one event per request: `max_events` must then be 1.
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Events per envelope at most (default 1, like Distribution); must be > 0.
    pub fn max_events(mut self, max_events: usize) -> Self {
        self.max_events = max_events;
        self
    }

    /// How long a busy endpoint waits for a partly filled envelope to fill (default
    /// [`DEFAULT_LINGER`](crate::queue::DEFAULT_LINGER), 1 ms; zero never waits). It applies
    /// only with `max_events` above 1, and only after an envelope of more than one event but
    /// fewer than `max_events`: see [`QueueLayer::linger`](crate::queue::QueueLayer::linger).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Retry settings (default [`RetryConfig::default`]).
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Filter rules (default: none).
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Queue bounds (default [`QueueConfig::default`]).
    pub fn queue(mut self, queue: QueueConfig) -> Self {
        self.queue = queue;
        self
    }

    /// Keeps the queue on disk, in `durable`'s directory: see [`queue::durable`](crate::queue::durable).
    /// The [`queue`](Self::queue) bounds still apply (`capacity` events, raise it for a large
    /// backlog) besides `durable.max_bytes`; with [`Fsync::Always`](crate::queue::Fsync::Always)
    /// the response to a request waits until its events are on disk.
    ///
    /// ```
    /// use registry_notify::endpoint::Endpoint;
    /// use registry_notify::queue::{DurableConfig, Fsync, QueueConfig};
    ///
    /// let endpoint = Endpoint::builder("audit", "http://127.0.0.1:5055/events")
    ///     .queue(QueueConfig { capacity: 10_000_000, ..QueueConfig::default() })
    ///     .durable_queue(DurableConfig::new("/var/lib/registry/notify/audit").fsync(Fsync::Always))
    ///     .build()
    ///     .unwrap();
    /// assert!(endpoint.waits_for_disk());
    /// ```
    pub fn durable_queue(mut self, durable: DurableConfig) -> Self {
        self.durable = Some(durable);
        self
    }

    /// Counts 3xx responses as delivered, as Distribution does (default `false`: a 3xx is
    /// a permanent failure). Redirects are never followed.
    pub fn redirects_as_success(mut self, yes: bool) -> Self {
        self.redirects_as_success = yes;
        self
    }

    /// Extra trusted CA certificates (PEM bundle) for an https URL, on top of the system roots.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// The outbound proxy (default [`Proxy::FromEnv`](crate::http::Proxy::FromEnv):
    /// `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY`, like Distribution). An `http://` endpoint
    /// is reached through the proxy in absolute form, an `https://` one through a `CONNECT`
    /// tunnel; credentials in the proxy URL become `Proxy-Authorization` and are never
    /// logged.
    ///
    /// ```
    /// use registry_notify::{endpoint::Endpoint, http::Proxy};
    ///
    /// let endpoint = Endpoint::builder("audit", "https://hooks.example.com/registry")
    ///     .proxy(Proxy::Url("http://user:pw@proxy.internal:3128".into()))
    ///     .build()?;
    /// assert_eq!(endpoint.proxy(), Some("http://proxy.internal:3128"));
    /// let direct = Endpoint::builder("local", "http://127.0.0.1:5055/events")
    ///     .proxy(Proxy::None)
    ///     .build()?;
    /// assert_eq!(direct.proxy(), None);
    /// # Ok::<(), registry_notify::ConfigError>(())
    /// ```
    pub fn proxy(mut self, proxy: crate::http::Proxy) -> Self {
        self.proxy = proxy;
        self
    }

    /// Accepts any server certificate. Insecure: only for tests and trusted networks; the
    /// endpoint logs a WARN line saying so when it starts.
    pub fn danger_accept_invalid_certs(mut self, yes: bool) -> Self {
        self.danger_accept_invalid_certs = yes;
        self
    }

    /// A client certificate (PEM chain, leaf first) and its private key (PEM: PKCS#8, PKCS#1
    /// or SEC1) presented to https endpoints that ask for one (mutual TLS). [`build`](Self::build)
    /// fails with `client certificate: …` / `client key: …` if either does not parse, or if
    /// the key does not belong to the certificate. The key never appears in `Debug` output,
    /// errors or logs.
    ///
    /// ```no_run
    /// use registry_notify::endpoint::Endpoint;
    /// let endpoint = Endpoint::builder("audit", "https://hooks.internal:8443/registry")
    ///     .ca_pem(std::fs::read("/etc/registry/hooks-ca.pem").unwrap())
    ///     .client_cert_pem(
    ///         std::fs::read("/etc/registry/client.pem").unwrap(),
    ///         std::fs::read("/etc/registry/client.key").unwrap(),
    ///     )
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn client_cert_pem(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.client_cert = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Signs every request with this [Standard Webhooks](crate::signing) secret
    /// (`whsec_<base64>`); call again to add more (rotation: one signature per secret).
    /// Needs the `signing` feature (on by default). Secrets never appear in `Debug` output,
    /// errors or logs.
    ///
    /// ```
    /// use registry_notify::endpoint::Endpoint;
    /// let endpoint = Endpoint::builder("audit", "https://hooks.example.com/registry")
    ///     .signing_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    ///     .build()
    ///     .unwrap();
    /// assert!(endpoint.is_signed());
    /// assert!(!format!("{endpoint:?}").contains("MfKQ9r8G"));
    /// ```
    pub fn signing_secret(mut self, secret: impl Into<String>) -> Self {
        self.signing_secrets.push(secret.into());
        self
    }

    /// Receives the endpoint's delivery log: a [`DeliveryRecord`] per attempt (attempt
    /// number, status, latency, scrubbed error, whether it will be retried) and per
    /// dead-lettered batch. Called inline by the endpoint's worker: keep it quick.
    ///
    /// ```
    /// use registry_notify::endpoint::Endpoint;
    /// use registry_notify::retry::DeliveryRecord;
    /// let endpoint = Endpoint::builder("audit", "http://127.0.0.1:9/registry")
    ///     .delivery_log(|record| match record {
    ///         DeliveryRecord::Attempt(a) => {
    ///             println!("{} #{} {:?} {:?} {:?}", a.message_id, a.attempt, a.status, a.latency, a.error)
    ///         }
    ///         DeliveryRecord::DeadLetter(d) => println!("gave up on {} events: {}", d.batch.len(), d.reason),
    ///         _ => {}
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # let _ = endpoint;
    /// ```
    pub fn delivery_log(mut self, handler: impl Fn(DeliveryRecord) + Send + Sync + 'static) -> Self {
        self.delivery_log = Some(Arc::new(handler));
        self
    }

    /// Receives the batches the endpoint gives up on (permanent failure, `max_attempts`,
    /// `max_age`); giving up is logged at WARN either way (count, first id, reason; no bodies).
    pub fn dead_letter(mut self, handler: impl Fn(DeadLetter) + Send + Sync + 'static) -> Self {
        self.dead_letter = Some(Arc::new(handler));
        self
    }

    /// Disables the endpoint: its sink discards every event.
    pub fn disabled(mut self, yes: bool) -> Self {
        self.disabled = yes;
        self
    }

    /// Validates the settings; the error names the endpoint and the field, e.g.
    /// `endpoint "x": timeout must be > 0`, and never contains secrets.
    pub fn build(self) -> Result<Endpoint, ConfigError> {
        if self.name.trim().is_empty() {
            return Err(ConfigError::new("endpoint name must not be empty"));
        }
        let name = self.name.clone();
        let err = |msg: String| ConfigError::at(format!("endpoint {name:?}"), msg);
        let redacted_url = redact_url(&self.url);
        let mut secrets = Secrets::default();
        // A custom sink has a label, not a URL: the HTTP part is built for a placeholder, unused.
        let url = if self.sink.is_some() {
            "http://sink.invalid/"
        } else {
            self.url.as_str()
        };
        let parsed: http::Uri = url
            .parse()
            .map_err(|_| err(format!("invalid url {redacted_url:?}")))?;
        match parsed.scheme_str() {
            Some("http") => {}
            Some("https") => {
                if !cfg!(feature = "https") {
                    return Err(err(
                        "https urls need the `https` feature of registry-notify".into()
                    ));
                }
            }
            _ => {
                return Err(err(format!(
                    "url {redacted_url:?} must start with http:// or https://"
                )))
            }
        }
        let authority = parsed
            .authority()
            .ok_or_else(|| err(format!("url {redacted_url:?} has no host")))?
            .as_str();
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo), host),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(err(format!("url {redacted_url:?} has no host")));
        }
        if let Some(query) = parsed.query() {
            for pair in query.split('&') {
                let value = pair.split_once('=').map_or(pair, |(_, v)| v);
                secrets.add(value);
                secrets.add(&decode_lossy(value));
            }
        }
        let mut uri_parts = parsed.clone().into_parts();
        uri_parts.authority = Some(
            host.parse()
                .map_err(|_| err(format!("invalid url {redacted_url:?}")))?,
        );
        let uri =
            http::Uri::from_parts(uri_parts).map_err(|_| err(format!("invalid url {redacted_url:?}")))?;

        if self.timeout.is_zero() {
            return Err(err("timeout must be > 0".into()));
        }
        if self.max_events == 0 {
            return Err(err("max_events must be > 0".into()));
        }
        if self.format.is_single_event() && self.max_events > 1 {
            return Err(err(format!(
                "format {} sends one event per request: max_events must be 1 (use cloudevents-batch to batch)",
                self.format
            )));
        }
        if self.queue.capacity == 0 {
            return Err(err("queue capacity must be > 0".into()));
        }
        if let Some(durable) = &self.durable {
            if !cfg!(feature = "durable") {
                return Err(err(
                    "durable queues need the `durable` feature of registry-notify".into(),
                ));
            }
            durable.validate().map_err(err)?;
        }
        self.retry.validate().map_err(|e| err(e.to_string()))?;

        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        for (n, v) in &self.headers {
            let hn = HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| err(format!("invalid header name {n:?}")))?;
            let mut hv =
                HeaderValue::from_str(v).map_err(|_| err(format!("invalid value for header {n:?}")))?;
            hv.set_sensitive(true);
            secrets.add(v);
            headers.push((hn, hv));
        }
        if let Some(userinfo) = userinfo {
            secrets.add(userinfo);
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let (user, password) = (decode_lossy(user), decode_lossy(password));
            secrets.add(&user);
            secrets.add(&password);
            if !headers.iter().any(|(n, _)| n == AUTHORIZATION) {
                use base64::Engine as _;
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                secrets.add(&token);
                let mut hv = HeaderValue::from_str(&format!("Basic {token}"))
                    .map_err(|_| err("invalid credentials in url".into()))?;
                hv.set_sensitive(true);
                // Go sets it on the request before the configured headers are appended.
                headers.insert(0, (AUTHORIZATION, hv));
            }
        }

        for secret in &self.signing_secrets {
            secrets.add(secret);
            secrets.add(secret.trim().trim_start_matches("whsec_"));
        }
        #[cfg(feature = "signing")]
        let signer = if self.signing_secrets.is_empty() {
            None
        } else {
            let signer = crate::signing::Signer::new(&self.signing_secrets)
                .map_err(|e| err(format!("signing: {e}")))?;
            Some(Arc::new(signer))
        };
        #[cfg(not(feature = "signing"))]
        if !self.signing_secrets.is_empty() {
            return Err(err(
                "signing needs the `signing` feature of registry-notify".into()
            ));
        }
        #[cfg(not(feature = "https"))]
        if self.client_cert.is_some() {
            return Err(err(
                "client certificates need the `https` feature of registry-notify".into(),
            ));
        }

        let proxy_route = crate::http::resolve_proxy(&self.proxy, &uri).map_err(&err)?;
        // Built here, where a failure is a clear error, so that the sink never has to.
        #[cfg(feature = "https")]
        let tls = {
            if let Some(pem) = &self.ca_pem {
                crate::http::tls::parse_pem(pem).map_err(|e| err(format!("ca_pem: {e}")))?;
            }
            let identity = match &self.client_cert {
                Some((cert, key)) => {
                    Some(crate::http::tls::ClientIdentity::from_pem(cert, key).map_err(&err)?)
                }
                None => None,
            };
            if uri.scheme_str() == Some("https") {
                let config = crate::http::tls::client_config_with_identity(
                    self.ca_pem.as_deref(),
                    self.danger_accept_invalid_certs,
                    true,
                    identity.as_ref(),
                )
                .map_err(|e| err(format!("tls: {e}")))?;
                Arc::new(config)
            } else {
                // A plain-http endpoint uses TLS only to reach an https proxy.
                let https_proxy = proxy_route
                    .as_ref()
                    .is_some_and(|r| r.uri.scheme_str() == Some("https"));
                let config = crate::http::tls::client_config(None, false, https_proxy)
                    .map_err(|e| err(format!("tls: {e}")))?;
                Arc::new(config)
            }
        };

        if let Some(route) = &proxy_route {
            for secret in &route.secrets {
                secrets.add(secret);
            }
        }
        Ok(Endpoint {
            proxy_route,
            name: self.name,
            redacted_url,
            uri,
            headers,
            secrets: Arc::new(secrets),
            timeout: self.timeout,
            format: self.format,
            max_events: self.max_events,
            linger: self.linger,
            retry: self.retry,
            filter: self.filter,
            queue: self.queue,
            durable: self.durable,
            redirects_as_success: self.redirects_as_success,
            has_ca_pem: self.ca_pem.is_some(),
            danger_accept_invalid_certs: self.danger_accept_invalid_certs,
            dead_letter: self.dead_letter,
            disabled: self.disabled,
            sink: self.sink,
            #[cfg(feature = "https")]
            tls,
            has_client_cert: self.client_cert.is_some(),
            delivery_log: self.delivery_log,
            #[cfg(feature = "signing")]
            signer,
            signing_secrets: self.signing_secrets.len(),
        })
    }
}

impl fmt::Debug for EndpointBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(n, _)| (n.as_str(), "***")).collect();
        f.debug_struct("EndpointBuilder")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("format", &self.format)
            .field("max_events", &self.max_events)
            .field("linger", &self.linger)
            .field("client_cert", &self.client_cert.is_some())
            .field("signing_secrets", &self.signing_secrets.len())
            .field("proxy", &self.proxy)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// Controls a spawned endpoint: metrics and graceful shutdown. Cheap to clone.
#[derive(Clone)]
pub struct EndpointHandle {
    name: Arc<str>,
    metrics: Arc<EndpointMetrics>,
    queue: Option<QueueHandle>,
}

impl EndpointHandle {
    /// The endpoint name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A snapshot of the endpoint's counters.
    pub fn metrics(&self) -> EndpointSnapshot {
        self.metrics.snapshot()
    }

    /// The live counters (shared with the endpoint's stages).
    pub fn live_metrics(&self) -> &Arc<EndpointMetrics> {
        &self.metrics
    }

    /// Events queued or in flight.
    pub fn queued(&self) -> usize {
        self.queue.as_ref().map_or(0, QueueHandle::len)
    }

    /// Stops accepting (the sink's `call` then fails with
    /// [`DeliveryError::Closed`](crate::sink::DeliveryError::Closed)), drains the queue
    /// until `deadline`, then stops the worker; returns the number of events left
    /// undelivered. Calling it again just reports what is left.
    pub async fn shutdown(&self, deadline: tokio::time::Instant) -> usize {
        match &self.queue {
            Some(queue) => {
                let left = queue.shutdown(deadline).await;
                if left > 0 && queue.is_persistent() {
                    tracing::info!(
                        endpoint = %self.name,
                        left,
                        "notifications: endpoint shut down, its backlog waits on disk"
                    );
                } else if left > 0 {
                    tracing::warn!(
                        endpoint = %self.name,
                        left,
                        "notifications: endpoint shut down with undelivered events"
                    );
                } else {
                    tracing::info!(endpoint = %self.name, "notifications: endpoint drained and shut down");
                }
                left
            }
            None => 0,
        }
    }
}

impl fmt::Debug for EndpointHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointHandle")
            .field("name", &self.name)
            .field("metrics", &self.metrics.snapshot())
            .field("queue", &self.queue)
            .finish()
    }
}

impl Endpoint {
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
}

/// `%XX`-decoded credentials as text (invalid UTF-8 replaced).
fn decode_lossy(s: &str) -> String {
    String::from_utf8_lossy(&crate::percent::decode_lenient(s)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_validation_names_the_field() {
        let cases = [
            (
                Endpoint::builder("", "http://h/"),
                "endpoint name must not be empty",
            ),
            (
                Endpoint::builder("x", "h/path"),
                "endpoint \"x\": invalid url \"h/path\"",
            ),
            (
                Endpoint::builder("x", "http://h/").max_events(0),
                "endpoint \"x\": max_events must be > 0",
            ),
            (
                Endpoint::builder("x", "http://h/").queue(QueueConfig {
                    capacity: 0,
                    ..QueueConfig::default()
                }),
                "endpoint \"x\": queue capacity must be > 0",
            ),
            (
                Endpoint::builder("x", "http://h/").header("bad name", "v"),
                "endpoint \"x\": invalid header name \"bad name\"",
            ),
        ];
        for (builder, want) in cases {
            assert_eq!(builder.build().unwrap_err().to_string(), want);
        }
        let e = Endpoint::builder("x", "http://u:p@h:8080/a?b=c").build().unwrap();
        assert_eq!(
            e.uri.to_string(),
            "http://h:8080/a?b=c",
            "userinfo is not sent in the URI"
        );
        assert_eq!(e.headers[0].0, AUTHORIZATION);
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
