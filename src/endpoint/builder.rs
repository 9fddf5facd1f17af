//! The endpoint builder: every setting of an endpoint, validated at once.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Endpoint;
use crate::error::ConfigError;
use crate::event::Format;
use crate::filter::FilterRules;
use crate::http_sink::HttpSinkOptions;
use crate::queue::{DurableConfig, QueueConfig};
use crate::retry::{
    DeadLetter, DeadLetterHandler, DeliveryLogHandler, DeliveryRecord, Exponential, RetryPolicy,
};
use crate::secret::redact_url;
use crate::sink::BoxSink;

/// Builds an [`Endpoint`]; every setter takes and returns the builder by value and
/// [`build`](Self::build) validates everything at once.
pub struct EndpointBuilder {
    name: String,
    http: HttpSinkOptions,
    max_events: usize,
    linger: Duration,
    retry: Arc<dyn RetryPolicy>,
    filter: FilterRules,
    queue: QueueConfig,
    durable: Option<DurableConfig>,
    dead_letter: Option<DeadLetterHandler>,
    keep_dead_letters: usize,
    concurrency: usize,
    delivery_log: Option<DeliveryLogHandler>,
    disabled: bool,
    sink: Option<BoxSink>,
}

impl EndpointBuilder {
    pub(super) fn new(name: String, url: String, sink: Option<BoxSink>) -> Self {
        let mut http = HttpSinkOptions::new(url);
        http.placeholder = sink.is_some();
        Self {
            name,
            http,
            max_events: 1,
            linger: crate::queue::DEFAULT_LINGER,
            retry: Arc::new(Exponential::default()),
            filter: FilterRules::default(),
            queue: QueueConfig::default(),
            durable: None,
            dead_letter: None,
            keep_dead_letters: super::dead_letters::DEFAULT_KEEP,
            concurrency: 1,
            delivery_log: None,
            disabled: false,
            sink,
        }
    }
}

impl EndpointBuilder {
    /// Adds a header; calling it again with the same name adds another value, sent as its
    /// own header line after ours (`Content-Type`, `User-Agent`), like Distribution.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.http.headers.push((name.into(), value.into()));
        self
    }

    /// Per-attempt timeout, connecting included (default 1 s, Distribution's); must be > 0.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.http.timeout = timeout;
        self
    }

    /// Envelope format (default [`Format::EventsV2`]); the `Content-Type` is its media type.
    /// [`Format::CloudEvents`] sends one event per request: `max_events` must then be 1.
    pub fn format(mut self, format: Format) -> Self {
        self.http.format = format;
        self
    }

    /// Renders each POST's body with `template` instead of writing the [format](Self::format)'s
    /// envelope; the `Content-Type` is the template's (see
    /// [`PayloadTemplate`](crate::http_sink::PayloadTemplate)).
    #[cfg(feature = "templates")]
    pub fn template(mut self, template: crate::http_sink::PayloadTemplate) -> Self {
        self.http.template = Some(template);
        self
    }

    /// Delivers in `lanes` ordered lanes (default 1; at most
    /// [`MAX_CONCURRENCY`](super::MAX_CONCURRENCY)): each lane has its own queue, worker and
    /// retry (its own breaker), so `lanes` POSTs can be under way at once, while the events of
    /// one repository always go to the same lane and arrive in order (see
    /// [`Lanes`](crate::queue::Lanes)). A [durable queue](Self::durable_queue) keeps lane `i`
    /// in its `lane-<i>` subdirectory (lane 0 in the directory itself); the queue settings
    /// apply per lane (a memory queue's capacity, a durable queue's `max_bytes`: `lanes` times
    /// as much in all).
    pub fn concurrency(mut self, lanes: usize) -> Self {
        self.concurrency = lanes;
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
    /// fewer than `max_events`: see [`QueueBuilder::linger`](crate::queue::QueueBuilder::linger).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// The retry policy (default [`Exponential::default`]); each spawned stack gets a
    /// [fresh](RetryPolicy::fresh) copy.
    pub fn retry(mut self, policy: impl RetryPolicy) -> Self {
        self.retry = Arc::new(policy);
        self
    }

    /// Like [`retry`](Self::retry), with a policy already shared.
    pub(crate) fn retry_shared(mut self, policy: Arc<dyn RetryPolicy>) -> Self {
        self.retry = policy;
        self
    }

    /// Filter rules (default: none).
    pub fn filter(mut self, filter: FilterRules) -> Self {
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
        self.http.redirects_as_success = yes;
        self
    }

    /// Extra trusted CA certificates (PEM bundle) for an https URL, on top of the system roots.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.http.ca_pem = Some(pem.into());
        self
    }

    /// The outbound proxy (default [`Proxy::FromEnv`](crate::http_sink::Proxy::FromEnv):
    /// `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY`, like Distribution). An `http://` endpoint
    /// is reached through the proxy in absolute form, an `https://` one through a `CONNECT`
    /// tunnel; credentials in the proxy URL become `Proxy-Authorization` and are never
    /// logged.
    ///
    /// ```
    /// use registry_notify::{endpoint::Endpoint, http_sink::Proxy};
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
    pub fn proxy(mut self, proxy: crate::http_sink::Proxy) -> Self {
        self.http.proxy = proxy;
        self
    }

    /// Accepts any server certificate. Insecure: only for tests and trusted networks; the
    /// endpoint logs a WARN line saying so when it starts.
    pub fn danger_accept_invalid_certs(mut self, yes: bool) -> Self {
        self.http.danger_accept_invalid_certs = yes;
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
        self.http.client_cert = Some((cert_pem.into(), key_pem.into()));
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
        self.http.signing_secrets.push(secret.into());
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

    /// How many dead-lettered events the endpoint keeps for
    /// [redelivery](super::EndpointHandle::redeliver) (default
    /// [`DEFAULT_KEEP_DEAD_LETTERS`](super::DEFAULT_KEEP_DEAD_LETTERS), 0 keeps none); beyond it
    /// the oldest is forgotten. With a [durable queue](Self::durable_queue) they are kept on disk
    /// too, in `dead-letters.jsonl` in its directory, and survive a restart.
    pub fn keep_dead_letters(mut self, events: usize) -> Self {
        self.keep_dead_letters = events;
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

    /// Validates the settings with each stage's own check (the same ones a YAML
    /// configuration goes through); the error names the endpoint and the field by its YAML
    /// key, e.g. `endpoint "x".timeout must be > 0`, and never contains secrets.
    pub fn build(self) -> Result<Endpoint, ConfigError> {
        if self.name.trim().is_empty() {
            return Err(ConfigError::new("endpoint name must not be empty"));
        }
        let within = format!("endpoint {:?}", self.name);
        self.build_relative().map_err(|e| e.within(&within))
    }

    /// [`build`](Self::build) with error paths relative to the endpoint (`timeout`), for the
    /// YAML loader to put under its own path.
    pub(crate) fn build_relative(self) -> Result<Endpoint, ConfigError> {
        self.validate_stages()?;
        let redacted_url = redact_url(&self.http.url);
        let http = self.http.build(&self.name)?;
        if http.format.is_single_event() && self.max_events > 1 {
            return Err(ConfigError::field(
                "maxevents",
                format!(
                    "must be 1 with format {} (one event per request; use cloudevents-batch to batch)",
                    http.format
                ),
            ));
        }
        Ok(Endpoint {
            name: self.name,
            redacted_url,
            http,
            max_events: self.max_events,
            linger: self.linger,
            retry: self.retry,
            filter: self.filter,
            queue: self.queue,
            durable: self.durable,
            dead_letter: self.dead_letter,
            keep_dead_letters: self.keep_dead_letters,
            concurrency: self.concurrency,
            delivery_log: self.delivery_log,
            disabled: self.disabled,
            sink: self.sink,
        })
    }
}

impl EndpointBuilder {
    /// The checks of the stages other than the HTTP sink: batching, queue, retry.
    fn validate_stages(&self) -> Result<(), ConfigError> {
        if self.max_events == 0 {
            return Err(ConfigError::field("maxevents", "must be > 0"));
        }
        if !(1..=super::MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(ConfigError::field(
                "concurrency",
                format!(
                    "must be from 1 to {} (got {})",
                    super::MAX_CONCURRENCY,
                    self.concurrency
                ),
            ));
        }
        self.queue.validate()?;
        if let Some(durable) = &self.durable {
            if !cfg!(feature = "durable") {
                return Err(ConfigError::at(
                    "queue.path",
                    "durable queues need the `durable` feature of registry-notify",
                ));
            }
            durable.validate()?;
        }
        self.retry.validate()
    }
}

impl fmt::Debug for EndpointBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointBuilder")
            .field("name", &self.name)
            .field("http", &self.http)
            .field("max_events", &self.max_events)
            .field("linger", &self.linger)
            .field("retry", &self.retry)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}
