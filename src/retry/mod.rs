//! Retry stage: attempts a batch until it is delivered or dead-lettered.
//!
//! [`Retry`] calls the inner sink (normally [`HttpSink`](crate::http::HttpSink)) with the
//! same [`Batch`] — same event ids, same bytes — until it succeeds. Errors are classified
//! with [`DeliveryError::is_retryable`]: 408, 429, 5xx, timeouts and transport errors are
//! retried according to the [`RetryPolicy`]; any other status is permanent and the batch
//! goes to the dead-letter hook at once. After `max_attempts` attempts, or `max_age` after
//! the first attempt, the batch is dead-lettered too, so a poisoned batch never blocks the
//! endpoint queue for good. The call then resolves `Ok(())`. Errors that are not
//! [`DeliveryError`]s (from custom sinks) are retried; [`DeliveryError::Closed`] is passed
//! up without retrying.
//!
//! Breaker state (consecutive failures) is shared by all batches of the endpoint, like
//! Distribution's. Logging: at most one WARN line per failed attempt, none with event
//! bodies; once the endpoint is failing ("breaker open", INFO) further failures are logged
//! at DEBUG with one WARN reminder a minute; recovery is logged at INFO.
//!
//! The delivery log ([`RetryLayer::delivery_log`], or
//! [`EndpointBuilder::delivery_log`](crate::endpoint::EndpointBuilder::delivery_log)) gets a
//! [`DeliveryRecord::Attempt`] after every attempt — its number, the HTTP status (when the
//! inner sink is the [`HttpSink`](crate::http::HttpSink), or from a
//! [`DeliveryError::Status`]), latency, error text and [`AttemptOutcome`] — and a
//! [`DeliveryRecord::DeadLetter`] for every batch given up on. A batch's [`message_id`] is
//! the same on every attempt.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use registry_notify::retry::{RetryConfig, RetryLayer};
//! use registry_notify::sink::{BoxError, DeliveryError};
//! use registry_notify::{Action, Batch, Event, Target};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let calls = Arc::new(AtomicU32::new(0));
//! let c = calls.clone();
//! // Fails twice with 503, then accepts.
//! let flaky = service_fn(move |_batch: Batch| {
//!     let n = c.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         if n < 2 {
//!             let status = http::StatusCode::SERVICE_UNAVAILABLE;
//!             Err(BoxError::from(DeliveryError::Status { status, retry_after: None }))
//!         } else {
//!             Ok(())
//!         }
//!     }
//! });
//! let retry = RetryLayer::new(RetryConfig::breaker(3, Duration::from_millis(10))).layer(flaky);
//! retry.oneshot(Batch::from(Event::new(Action::Push, Target::default()))).await.unwrap();
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! # }
//! ```

mod log;
mod policy;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

pub(crate) use log::report_status;
pub use log::{message_id, AttemptOutcome, DeliveryAttempt, DeliveryLogHandler, DeliveryRecord};
pub use policy::{RetryConfig, RetryPolicy};

use crate::endpoint::{DeadLetter, DeadLetterHandler};
use crate::event::Batch;
use crate::log_limit::LogLimiter;
use crate::metrics::EndpointMetrics;
use crate::secret::Secrets;
use crate::sink::{BoxError, DeliveryError};

/// Wraps a sink in a [`Retry`]; see the [module docs](self).
#[derive(Clone)]
pub struct RetryLayer {
    config: RetryConfig,
    name: String,
    metrics: Option<Arc<EndpointMetrics>>,
    dead_letter: Option<DeadLetterHandler>,
    delivery_log: Option<DeliveryLogHandler>,
    secrets: Option<Arc<Secrets>>,
}

struct Settings {
    config: RetryConfig,
    name: Arc<str>,
    metrics: Option<Arc<EndpointMetrics>>,
    dead_letter: Option<DeadLetterHandler>,
    delivery_log: Option<DeliveryLogHandler>,
    secrets: Option<Arc<Secrets>>,
}

impl Settings {
    /// `error` as text, with the endpoint's secrets scrubbed.
    fn error_text(&self, error: &dyn fmt::Display) -> String {
        let text = error.to_string();
        match &self.secrets {
            Some(secrets) => secrets.scrub(&text),
            None => text,
        }
    }
}

impl RetryLayer {
    /// A retry layer with `config` (use [`RetryConfig::validate`] first; invalid numbers
    /// are not rejected here).
    pub fn new(config: RetryConfig) -> Self {
        Self {
            config,
            name: String::new(),
            metrics: None,
            dead_letter: None,
            delivery_log: None,
            secrets: None,
        }
    }

    /// The endpoint name used in logs and [`DeadLetter::endpoint`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Records retries, dead letters and breaker state in `metrics`.
    pub fn metrics(mut self, metrics: Arc<EndpointMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Where batches the stage gives up on go. Either way, giving up is logged at WARN
    /// (count, first event id, attempts and reason; never the events themselves).
    pub fn dead_letter(mut self, handler: DeadLetterHandler) -> Self {
        self.dead_letter = Some(handler);
        self
    }

    /// Receives a [`DeliveryRecord`] for every attempt (number, status, latency, error,
    /// whether it will be retried) and every dead-lettered batch. Called inline: keep it quick.
    pub fn delivery_log(mut self, handler: DeliveryLogHandler) -> Self {
        self.delivery_log = Some(handler);
        self
    }

    /// Strings scrubbed from error texts in the delivery log and dead letters.
    pub(crate) fn secrets(mut self, secrets: Arc<Secrets>) -> Self {
        self.secrets = Some(secrets);
        self
    }
}

impl fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("config", &self.config)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            shared: Arc::new(Shared {
                settings: Arc::new(Settings {
                    config: self.config.clone(),
                    name: self.name.as_str().into(),
                    metrics: self.metrics.clone(),
                    dead_letter: self.dead_letter.clone(),
                    delivery_log: self.delivery_log.clone(),
                    secrets: self.secrets.clone(),
                }),
                state: Mutex::new(BreakerState::default()),
                reminder: LogLimiter::new(Duration::from_secs(60)),
            }),
        }
    }
}

/// A sink that retries its inner sink; see the [module docs](self).
pub struct Retry<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for Retry<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Retry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("config", &self.shared.settings.config)
            .finish_non_exhaustive()
    }
}

impl<S> Retry<S> {
    /// Whether the endpoint is currently failing (breaker open / backing off).
    pub fn is_open(&self) -> bool {
        self.shared.lock().open
    }
}

struct Shared {
    settings: Arc<Settings>,
    state: Mutex<BreakerState>,
    reminder: LogLimiter,
}

#[derive(Default)]
struct BreakerState {
    /// Consecutive retryable failures of the endpoint.
    failures: u32,
    last_failure: Option<Instant>,
    open: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The failure count at which the endpoint counts as failing.
    fn open_threshold(&self) -> u32 {
        match self.settings.config.policy {
            RetryPolicy::Breaker { threshold, .. } => threshold,
            RetryPolicy::Exponential { .. } => 1,
        }
    }

    /// How long the breaker holds the next attempt back.
    fn breaker_wait(&self) -> Duration {
        let RetryPolicy::Breaker { threshold, backoff } = self.settings.config.policy else {
            return Duration::ZERO;
        };
        let state = self.lock();
        match state.last_failure {
            Some(last) if state.failures >= threshold => {
                (last + backoff).saturating_duration_since(Instant::now())
            }
            _ => Duration::ZERO,
        }
    }

    fn on_success(&self) {
        let was_open = {
            let mut state = self.lock();
            let was_open = state.open;
            *state = BreakerState::default();
            was_open
        };
        if was_open {
            tracing::info!(endpoint = %self.settings.name, "notifications: endpoint recovered, breaker closed");
            if let Some(m) = &self.settings.metrics {
                m.set_breaker_open(false);
            }
        }
    }

    /// Records a retryable failure; returns (consecutive failures, was open before).
    fn on_failure(&self) -> (u32, bool) {
        let threshold = self.open_threshold();
        let (failures, was_open, opened) = {
            let mut state = self.lock();
            state.failures = state.failures.saturating_add(1);
            state.last_failure = Some(Instant::now());
            let was_open = state.open;
            if !state.open && state.failures >= threshold {
                state.open = true;
            }
            (state.failures, was_open, state.open && !was_open)
        };
        if opened {
            tracing::info!(
                endpoint = %self.settings.name, failures,
                "notifications: endpoint failing, breaker open"
            );
            if let Some(m) = &self.settings.metrics {
                m.set_breaker_open(true);
            }
        }
        (failures, was_open)
    }

    fn dead_letter(&self, batch: Batch, reason: String, attempts: u32) {
        let settings = &self.settings;
        if let Some(m) = &settings.metrics {
            m.record_dead_lettered(batch.len());
        }
        let letter = DeadLetter {
            endpoint: settings.name.to_string(),
            batch,
            reason,
            attempts,
        };
        // The one log line of the final failed attempt.
        tracing::warn!(
            endpoint = %letter.endpoint,
            events = letter.batch.len(),
            first_id = letter.batch.first().map_or("", |e| e.id.as_str()),
            attempts,
            reason = %letter.reason,
            "notifications: giving up on events (dead letter)"
        );
        if let Some(log) = &settings.delivery_log {
            log(DeliveryRecord::DeadLetter(letter.clone()));
        }
        if let Some(handler) = &settings.dead_letter {
            handler(letter);
        }
    }
}

impl<S> Service<Batch> for Retry<S>
where
    S: Service<Batch, Response = ()> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    /// Always ready: every attempt readies its own clone of the inner sink.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Batch) -> Self::Future {
        let inner = self.inner.clone();
        let shared = self.shared.clone();
        Box::pin(deliver(inner, shared, batch))
    }
}

async fn deliver<S>(mut inner: S, shared: Arc<Shared>, batch: Batch) -> Result<(), BoxError>
where
    S: Service<Batch, Response = ()>,
    S::Error: Into<BoxError>,
{
    let settings = &shared.settings;
    let config = &settings.config;
    let name = &*settings.name;
    let log_attempt = |attempt: u32,
                       started: (SystemTime, Instant),
                       status: Option<http::StatusCode>,
                       error: Option<&BoxError>,
                       outcome: AttemptOutcome,
                       retry_in: Option<Duration>| {
        if let Some(log) = &settings.delivery_log {
            log(DeliveryRecord::Attempt(DeliveryAttempt {
                endpoint: settings.name.clone(),
                message_id: message_id(&batch),
                batch: batch.clone(),
                attempt,
                status,
                latency: started.1.elapsed(),
                error: error.map(|e| settings.error_text(e)),
                outcome,
                retry_in,
                started: started.0,
            }));
        }
    };
    let first = Instant::now();
    let expired = |wait: Duration| config.max_age.is_some_and(|age| first.elapsed() + wait >= age);
    let mut attempts: u32 = 0;
    loop {
        let wait = shared.breaker_wait();
        if !wait.is_zero() {
            if attempts > 0 && expired(wait) {
                let reason = format!("max_age exceeded after {attempts} attempts");
                shared.dead_letter(batch, reason, attempts);
                return Ok(());
            }
            tokio::time::sleep(wait).await;
        }
        attempts += 1;
        if attempts > 1 {
            if let Some(m) = &shared.settings.metrics {
                m.record_retry();
            }
        }
        let started = (SystemTime::now(), Instant::now());
        let (result, status) = log::observe(async {
            let ready: Result<(), BoxError> =
                std::future::poll_fn(|cx| inner.poll_ready(cx).map_err(Into::into)).await;
            match ready {
                Ok(()) => inner.call(batch.clone()).await.map_err(Into::into),
                Err(e) => Err(e),
            }
        })
        .await;
        let error = match result {
            Ok(()) => {
                shared.on_success();
                log_attempt(attempts, started, status, None, AttemptOutcome::Delivered, None);
                return Ok(());
            }
            Err(error) => error,
        };
        let delivery = error.downcast_ref::<DeliveryError>();
        if matches!(delivery, Some(DeliveryError::Closed)) {
            return Err(error);
        }
        let status = match delivery {
            Some(DeliveryError::Status { status, .. }) => Some(*status),
            _ => status,
        };
        let give_up = |reason: String| {
            log_attempt(
                attempts,
                started,
                status,
                Some(&error),
                AttemptOutcome::GivingUp,
                None,
            );
            shared.dead_letter(batch.clone(), reason, attempts);
        };
        if delivery.is_some_and(|e| !e.is_retryable()) {
            give_up(format!("permanent failure: {}", settings.error_text(&error)));
            return Ok(());
        }
        let (failures, was_open) = shared.on_failure();
        if config.max_attempts.is_some_and(|max| attempts >= max) {
            give_up(format!(
                "gave up after {attempts} attempts: {}",
                settings.error_text(&error)
            ));
            return Ok(());
        }
        let retry_after = match delivery {
            Some(DeliveryError::Status { retry_after, .. }) => *retry_after,
            _ => None,
        };
        let delay = match config.policy {
            RetryPolicy::Exponential { .. } => config.policy.delay(failures, retry_after),
            // The breaker waits at the top of the loop.
            RetryPolicy::Breaker { .. } => shared.breaker_wait(),
        };
        if expired(delay) {
            give_up(format!(
                "max_age exceeded after {attempts} attempts: {}",
                settings.error_text(&error)
            ));
            return Ok(());
        }
        log_attempt(
            attempts,
            started,
            status,
            Some(&error),
            AttemptOutcome::Retrying,
            Some(delay),
        );
        let error = settings.error_text(&error);
        if !was_open {
            tracing::warn!(endpoint = %name, events = batch.len(), attempts, ?delay, %error, "notifications: attempt failed, retrying");
        } else if let Some(suppressed) = shared.reminder.check() {
            tracing::warn!(
                endpoint = %name, events = batch.len(), attempts, failures, ?delay, %error, suppressed,
                "notifications: endpoint still failing, retrying"
            );
        } else {
            tracing::debug!(endpoint = %name, attempts, ?delay, %error, "notifications: attempt failed, retrying");
        }
        if matches!(config.policy, RetryPolicy::Exponential { .. }) && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}
