//! Putting it together: [`Notifications::builder`] returns the layer and a handle.
//!
//! ```no_run
//! use std::time::Duration;
//! use registry_notify::{endpoint::Endpoint, notifications::Notifications, SourceRecord};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (layer, handle) = Notifications::builder()
//!     .source(SourceRecord::local("127.0.0.1:5000"))
//!     .include_references(true)
//!     .endpoint(
//!         Endpoint::builder("audit", "http://127.0.0.1:5055/events")
//!             .header("Authorization", "Bearer secret")
//!             .timeout(Duration::from_secs(2))
//!             .build()?,
//!     )
//!     .build()?;
//! let registry: axum::Router = axum::Router::new(); // the registry's routes
//! // One service in front of the whole router (README, "With axum").
//! let app = tower::ServiceBuilder::new()
//!     .map_response(|r: axum::response::Response<registry_notify::layer::ResponseBody<axum::body::Body>>| {
//!         r.map(axum::body::Body::new)
//!     })
//!     .layer(layer)
//!     .service(registry);
//! # let _ = app;
//! // … serve `app`; on shutdown:
//! let report = handle.shutdown(Duration::from_secs(5)).await;
//! println!("{report:?}");
//! # Ok(()) }
//! ```

use std::time::Duration;

use crate::config::NotificationsConfig;
use tower::util::Either;

use crate::dispatcher::{Dispatcher, Target};
use crate::endpoint::{Endpoint, EndpointHandle};
use crate::error::ConfigError;
use crate::event::SourceRecord;
use crate::layer::{NotificationLayer, TrustedProxies};
use crate::metrics::EndpointSnapshot;
use crate::retry::DeadLetter;
use crate::sink::BoxSink;

/// Entry point of the builder API.
#[derive(Debug, Clone, Copy)]
pub struct Notifications;

impl Notifications {
    /// A builder with Distribution's defaults and no endpoint.
    pub fn builder() -> NotificationsBuilder {
        NotificationsBuilder::default()
    }

    /// A builder set up from a Distribution configuration, as Distribution itself does:
    /// events name `http.addr` as their `source` and `http.host` (when set) as the base of
    /// their URLs; `notifications.events.includereferences`, every endpoint that is not
    /// `disabled`, and `notifications.nats` (feature `nats`) apply. Add what a file does not
    /// say — a [dead-letter file](NotificationsBuilder::dead_letter_file), sinks of your
    /// own — then [`build`](NotificationsBuilder::build).
    ///
    /// ```
    /// use registry_notify::{config::Config, notifications::Notifications};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config: Config = r#"
    /// http:
    ///   addr: 127.0.0.1:5000
    ///   host: https://registry.example.com
    /// notifications:
    ///   events: {includereferences: true}
    ///   endpoints:
    ///     - name: audit
    ///       url: http://127.0.0.1:5055/events
    ///       timeout: 2s
    ///     - name: old
    ///       url: http://127.0.0.1:5056/events
    ///       disabled: true
    /// "#.parse()?;
    /// let (layer, handle) = Notifications::from_config(&config)?
    ///     .dead_letter_file(std::env::temp_dir().join("dead-letters.jsonl"))
    ///     .build()?;
    /// assert_eq!(handle.endpoints().len(), 1);
    /// # drop(layer); handle.shutdown(std::time::Duration::ZERO).await;
    /// # Ok(()) }
    /// ```
    pub fn from_config(config: &crate::config::Config) -> Result<NotificationsBuilder, ConfigError> {
        let mut builder = Self::builder().source(SourceRecord::local(&config.http.addr));
        if let Some(host) = &config.http.host {
            builder = builder.base_url(host.clone());
        }
        match &config.notifications {
            Some(n) => builder.config(n),
            None => Ok(builder),
        }
    }
}

/// Builds a [`NotificationLayer`] and its [`NotificationsHandle`].
#[derive(Default)]
pub struct NotificationsBuilder {
    source: Option<SourceRecord>,
    base_url: Option<String>,
    include_references: bool,
    skip_head_pulls: bool,
    pull_on_body_end: bool,
    trusted_proxies: Option<TrustedProxies>,
    endpoints: Vec<Endpoint>,
    sinks: Vec<BoxSink>,
    dead_letter_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for NotificationsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationsBuilder")
            .field("source", &self.source)
            .field("endpoints", &self.endpoints)
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

impl NotificationsBuilder {
    /// The `source` of every event (default: `SourceRecord::local(":5000")`).
    pub fn source(mut self, source: SourceRecord) -> Self {
        self.source = Some(source);
        self
    }

    /// A fixed base for target URLs (Distribution's `http.host`).
    pub fn base_url(mut self, base: impl Into<String>) -> Self {
        self.base_url = Some(base.into());
        self
    }

    /// Fill `target.references` of manifest events.
    pub fn include_references(mut self, yes: bool) -> Self {
        self.include_references = yes;
        self
    }

    /// Emit no pull event for HEAD requests.
    pub fn skip_head_pulls(mut self, yes: bool) -> Self {
        self.skip_head_pulls = yes;
        self
    }

    /// Emit GET pulls only once the response body was sent to its end.
    pub fn pull_on_body_end(mut self, yes: bool) -> Self {
        self.pull_on_body_end = yes;
        self
    }

    /// Trust forwarding headers only from these proxies.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = Some(proxies);
        self
    }

    /// Adds a webhook endpoint (skipped if it is disabled).
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Adds endpoints and settings from Distribution's `notifications:` section.
    pub fn config(mut self, config: &NotificationsConfig) -> Result<Self, ConfigError> {
        self.include_references = config.events.include_references;
        self.endpoints.extend(config.endpoints()?);
        match &config.nats {
            Some(nats) => self.nats(nats),
            None => Ok(self),
        }
    }

    /// Publishes every event to NATS JetStream too, through the endpoint
    /// [`nats::publisher_endpoint`](https://docs.rs/registry-notify/latest/registry_notify/nats/fn.publisher_endpoint.html)
    /// builds (queue → retry → publisher); see the `nats` module for the scale-out mode.
    /// Without the `nats` feature this is an error.
    pub fn nats(mut self, settings: &crate::config::NatsSettings) -> Result<Self, ConfigError> {
        #[cfg(feature = "nats")]
        {
            self.endpoints.push(crate::nats::publisher_endpoint(settings)?);
            Ok(self)
        }
        #[cfg(not(feature = "nats"))]
        {
            let _ = (&mut self, settings);
            Err(ConfigError::new(
                "notifications.nats needs the `nats` feature of registry-notify",
            ))
        }
    }

    /// Appends the batches every endpoint gives up on (its [`DeadLetter`]s) to `path`, one
    /// JSON line each — `{"endpoint", "reason", "attempts", "events": [...]}`, the events
    /// exactly as they were sent, for replay — unless the endpoint has a dead-letter hook of
    /// its own. The file is created if missing; a write that fails is logged (once a
    /// minute), never retried.
    pub fn dead_letter_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.dead_letter_file = Some(path.into());
        self
    }

    /// Adds a sink of your own (a Kafka producer, a logger, a test probe) beside
    /// the endpoints. It should return quickly, e.g. by starting with a queue.
    pub fn sink(mut self, sink: BoxSink) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Spawns the endpoint workers and returns the layer and its handle.
    ///
    /// Must be called inside a Tokio runtime when an endpoint is configured.
    /// With no endpoint and no sink, the layer derives nothing (near-zero cost).
    pub fn build(mut self) -> Result<(NotificationLayer, NotificationsHandle), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for e in &self.endpoints {
            if !names.insert(e.name().to_owned()) {
                return Err(ConfigError::new(format!(
                    "endpoint {:?}: duplicate endpoint name",
                    e.name()
                )));
            }
        }
        let mut handles = Vec::new();
        if let Some(file) = &self.dead_letter_file {
            let file = std::sync::Arc::new(file.clone());
            self.endpoints = std::mem::take(&mut self.endpoints)
                .into_iter()
                .map(|e| {
                    if e.has_dead_letter() {
                        return e;
                    }
                    let file = file.clone();
                    e.with_dead_letter(move |dl| append_dead_letter(&file, &dl))
                })
                .collect();
        }
        // Every endpoint is one stack (filter → queue → retry → HTTP) behind the dispatcher's
        // broadcast; an endpoint whose queue fails closed (`fsync: always`) is awaited by the
        // request, the others and the custom sinks never are.
        let mut detached: Vec<Target> = Vec::new();
        let mut awaited: Vec<Target> = Vec::new();
        for endpoint in self.endpoints.into_iter().filter(|e| !e.is_disabled()) {
            let waits = endpoint.waits_for_disk();
            match endpoint.try_spawn() {
                Ok((sink, handle)) => {
                    handles.push(handle);
                    let target = Either::Left(sink);
                    if waits {
                        awaited.push(target);
                    } else {
                        detached.push(target);
                    }
                }
                Err(error) => {
                    stop_started(handles);
                    return Err(error);
                }
            }
        }
        detached.extend(self.sinks.into_iter().map(Either::Right));
        let dispatcher = Dispatcher::to_targets(detached, awaited);
        let mut layer = NotificationLayer::new(dispatcher)
            .include_references(self.include_references)
            .skip_head_pulls(self.skip_head_pulls)
            .pull_on_body_end(self.pull_on_body_end);
        if let Some(s) = self.source {
            layer = layer.source(s);
        }
        if let Some(b) = self.base_url {
            layer = layer.base_url(b);
        }
        if let Some(p) = self.trusted_proxies {
            layer = layer.trusted_proxies(p);
        }
        Ok((layer, NotificationsHandle { endpoints: handles }))
    }
}

/// Appends `dl` as one JSON line to `file` (see [`NotificationsBuilder::dead_letter_file`]).
fn append_dead_letter(file: &std::path::Path, dl: &DeadLetter) {
    use std::io::Write;
    static LOG: crate::log_limit::LogLimiter = crate::log_limit::LogLimiter::new(Duration::from_secs(60));
    #[derive(serde::Serialize)]
    struct Line<'a> {
        endpoint: &'a str,
        reason: &'a str,
        attempts: u32,
        events: Vec<&'a crate::event::Event>,
    }
    let line = Line {
        endpoint: &dl.endpoint,
        reason: &dl.reason,
        attempts: dl.attempts,
        events: dl.batch.iter().collect(),
    };
    let written = serde_json::to_vec(&line)
        .map_err(std::io::Error::other)
        .and_then(|mut bytes| {
            bytes.push(b'\n');
            // One write of the whole line, so that concurrent appends never interleave.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)?
                .write_all(&bytes)
        });
    if let Err(error) = written {
        if let Some(suppressed) = LOG.check() {
            tracing::error!(
                file = %file.display(), endpoint = %dl.endpoint, events = dl.batch.len(), %error, suppressed,
                "notifications: cannot append to the dead-letter file; the batch is lost"
            );
        }
    }
}

/// Stops the workers of endpoints started before a later one failed to start: nothing was
/// dispatched to them yet, so there is nothing to drain (a durable backlog stays on disk).
fn stop_started(handles: Vec<EndpointHandle>) {
    if handles.is_empty() {
        return;
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let now = tokio::time::Instant::now();
            for handle in handles {
                handle.shutdown(now).await;
            }
        });
    }
}

/// Observes and stops the endpoints of a [`NotificationLayer`].
#[derive(Clone, Default)]
pub struct NotificationsHandle {
    endpoints: Vec<EndpointHandle>,
}

impl std::fmt::Debug for NotificationsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.endpoints.iter().map(|e| e.name()).collect();
        f.debug_struct("NotificationsHandle")
            .field("endpoints", &names)
            .finish()
    }
}

/// What [`NotificationsHandle::shutdown`] left undelivered, per endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// `(endpoint name, events left undelivered)`.
    pub undelivered: Vec<(String, usize)>,
}

impl ShutdownReport {
    /// Total events left undelivered.
    pub fn total(&self) -> usize {
        self.undelivered.iter().map(|(_, n)| n).sum()
    }
}

impl NotificationsHandle {
    /// The endpoint handles.
    pub fn endpoints(&self) -> &[EndpointHandle] {
        &self.endpoints
    }

    /// A metrics snapshot of every endpoint.
    pub fn metrics(&self) -> Vec<EndpointSnapshot> {
        self.endpoints.iter().map(|e| e.metrics()).collect()
    }

    /// Stops accepting events and drains every endpoint's queue, in parallel,
    /// for at most `timeout`; reports what was left.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut set = tokio::task::JoinSet::new();
        for e in self.endpoints.clone() {
            set.spawn(async move { (e.name().to_owned(), e.shutdown(deadline).await) });
        }
        let mut undelivered = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                undelivered.push(r);
            }
        }
        undelivered.sort();
        ShutdownReport { undelivered }
    }
}
