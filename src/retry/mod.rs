//! Retry stage: attempts a batch until it is delivered or given up on.
//!
//! [`DeliveryRetry`] calls the inner sink (normally the
//! [`HttpSink`](crate::http_sink::HttpSink)) with the same [`Batch`] — same event ids, same
//! bytes — until it succeeds. After each failed attempt its [`RetryPolicy`] decides: attempt
//! again after a delay, or give up. The two shipped policies, [`Exponential`] (the default)
//! and Distribution's [`Breaker`], give up at once on a permanent failure (a 4xx other than
//! 408 and 429), and after [`Limits::max_attempts`] attempts or [`Limits::max_age`], so a
//! poisoned batch never blocks the endpoint queue for good. A batch given up on goes to the
//! dead-letter hook ([`DeadLetter`]) and the call resolves `Ok(())`.
//! [`DeliveryError::Closed`] is passed up without retrying.
//!
//! The policy's state (consecutive failures, an open breaker) is shared by all batches of the
//! endpoint, like Distribution's breaker. Logging: at most one WARN line per failed attempt,
//! none with event bodies; once the endpoint is failing (INFO "breaker open") further failures
//! are logged at DEBUG with one WARN reminder a minute; recovery is logged at INFO.
//!
//! Tracing: every attempt runs in an INFO span `notifications.delivery` with the fields
//! `endpoint`, `event` (the first event's id), `events`, `attempt`, and once it ends `status`
//! (when there is one), `error` (secrets redacted) and `duration_ms`; the sink's own events
//! (connecting, TLS) sit inside it.
//!
//! The delivery log ([`DeliveryRetryLayer::delivery_log`], or
//! [`EndpointBuilder::delivery_log`](crate::endpoint::EndpointBuilder::delivery_log)) gets a
//! [`DeliveryRecord::Attempt`] after every attempt — its number, the HTTP status (from the
//! inner sink's [`Receipt`], or a [`DeliveryError::Status`]), latency, error text and
//! [`AttemptOutcome`] — and a [`DeliveryRecord::DeadLetter`] for every batch given up on. A
//! batch's [`message_id`] is the same on every attempt.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use registry_notify::retry::{Breaker, DeliveryRetryLayer};
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
//! let retry = DeliveryRetryLayer::new(Breaker::new(3, Duration::from_millis(10))).layer(flaky);
//! retry.oneshot(Batch::from(Event::new(Action::Push, Target::default()))).await.unwrap();
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! # }
//! ```

mod breaker;
mod dead_letter;
mod exponential;
mod log;
mod policy;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument as _;

pub use breaker::Breaker;
pub use dead_letter::{DeadLetter, DeadLetterHandler};
pub use exponential::Exponential;
pub use log::{AttemptOutcome, DeliveryAttempt, DeliveryLogHandler, DeliveryRecord};
pub use policy::{Decision, Failure, GiveUp, Limits, RetryPolicy};

use crate::event::{message_id, Batch};
use crate::log_limit::LogLimiter;
use crate::metrics::{EndpointMetrics, RecentDelivery, MAX_IDS};
use crate::secret::Secrets;
use crate::sink::{BoxError, DeliveryError, Receipt};

/// Wraps a sink in a [`DeliveryRetry`]; see the [module docs](self).
#[derive(Clone)]
pub struct DeliveryRetryLayer {
    policy: Arc<dyn RetryPolicy>,
    hooks: Hooks,
}

/// Who hears of the stage's attempts and dead letters, and under which name.
#[derive(Clone)]
struct Hooks {
    name: Arc<str>,
    metrics: Option<Arc<EndpointMetrics>>,
    dead_letter: Option<DeadLetterHandler>,
    delivery_log: Option<DeliveryLogHandler>,
    secrets: Option<Arc<Secrets>>,
}

/// What every attempt of one endpoint's retry stage shares.
struct Settings {
    /// This stack's own policy (a fresh copy of the layer's).
    policy: Arc<dyn RetryPolicy>,
    hooks: Hooks,
    /// The "still failing" WARN reminder, once a minute.
    reminder: LogLimiter,
}

impl std::ops::Deref for Settings {
    type Target = Hooks;

    fn deref(&self) -> &Hooks {
        &self.hooks
    }
}

impl DeliveryRetryLayer {
    /// A retry layer deciding with `policy` (checked by
    /// [`RetryPolicy::validate`] only when it comes through an endpoint's builder).
    pub fn new(policy: impl RetryPolicy) -> Self {
        Self::with_policy(Arc::new(policy))
    }

    /// Like [`new`](Self::new), with a shared policy. Every [`layer`](Layer::layer) call
    /// gets a [`fresh`](RetryPolicy::fresh) copy of it.
    pub fn with_policy(policy: Arc<dyn RetryPolicy>) -> Self {
        Self {
            policy,
            hooks: Hooks {
                name: "".into(),
                metrics: None,
                dead_letter: None,
                delivery_log: None,
                secrets: None,
            },
        }
    }

    /// The endpoint name used in logs and [`DeadLetter::endpoint`].
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.hooks.name = name.into();
        self
    }

    /// Records retries, dead letters and breaker state in `metrics`.
    pub fn metrics(mut self, metrics: Arc<EndpointMetrics>) -> Self {
        self.hooks.metrics = Some(metrics);
        self
    }

    /// Where batches the stage gives up on go. Either way, giving up is logged at WARN
    /// (count, first event id, attempts and reason; never the events themselves).
    pub fn dead_letter(mut self, handler: DeadLetterHandler) -> Self {
        self.hooks.dead_letter = Some(handler);
        self
    }

    /// Receives a [`DeliveryRecord`] for every attempt (number, status, latency, error,
    /// whether it will be retried) and every dead-lettered batch. Called inline: keep it quick.
    pub fn delivery_log(mut self, handler: DeliveryLogHandler) -> Self {
        self.hooks.delivery_log = Some(handler);
        self
    }

    /// Strings scrubbed from error texts in the delivery log and dead letters.
    pub(crate) fn secrets(mut self, secrets: Arc<Secrets>) -> Self {
        self.hooks.secrets = Some(secrets);
        self
    }
}

impl fmt::Debug for DeliveryRetryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryRetryLayer")
            .field("policy", &self.policy)
            .field("name", &self.hooks.name)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for DeliveryRetryLayer {
    type Service = DeliveryRetry<S>;

    fn layer(&self, inner: S) -> DeliveryRetry<S> {
        DeliveryRetry {
            inner,
            settings: Arc::new(Settings {
                policy: self.policy.fresh(),
                hooks: self.hooks.clone(),
                reminder: LogLimiter::new(Duration::from_secs(60)),
            }),
        }
    }
}

/// A sink that retries its inner sink; see the [module docs](self).
pub struct DeliveryRetry<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S: Clone> Clone for DeliveryRetry<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for DeliveryRetry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryRetry")
            .field("inner", &self.inner)
            .field("policy", &self.settings.policy)
            .finish_non_exhaustive()
    }
}

impl<S> DeliveryRetry<S> {
    /// Whether the endpoint is currently failing (breaker open / backing off).
    pub fn is_failing(&self) -> bool {
        self.settings.policy.is_failing()
    }
}

impl<S> Service<Batch> for DeliveryRetry<S>
where
    S: Service<Batch> + Clone + Send + 'static,
    S::Response: Into<Receipt>,
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
        Box::pin(deliver(self.inner.clone(), self.settings.clone(), batch))
    }
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

    fn succeeded(&self, was_failing: bool) {
        self.policy.on_success();
        if was_failing {
            tracing::info!(endpoint = %self.name, "notifications: endpoint recovered, breaker closed");
            if let Some(m) = &self.metrics {
                m.set_breaker_open(false);
            }
        }
    }

    /// Logs and records the endpoint starting to fail.
    fn failing(&self, attempts: u32) {
        tracing::info!(
            endpoint = %self.name, attempts,
            "notifications: endpoint failing, breaker open"
        );
        if let Some(m) = &self.metrics {
            m.set_breaker_open(true);
        }
    }

    fn dead_letter(&self, batch: Batch, reason: String, attempts: u32) {
        if let Some(m) = &self.metrics {
            m.record_dead_lettered(batch.len());
        }
        let letter = DeadLetter {
            endpoint: self.name.to_string(),
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
        if let Some(log) = &self.delivery_log {
            log(DeliveryRecord::DeadLetter(letter.clone()));
        }
        if let Some(handler) = &self.dead_letter {
            handler(letter);
        }
    }

    /// Keeps one attempt among the endpoint's recent deliveries and hands it to the delivery
    /// log, if there is one.
    fn log_attempt(&self, batch: &Batch, attempt: Attempt<'_>) {
        // Worked out once for both listeners.
        let id = message_id(batch);
        let error = attempt.error.map(|e| self.error_text(e));
        if let Some(m) = &self.metrics {
            m.record_recent(RecentDelivery {
                at: attempt.started.0.into(),
                message_id: id.clone(),
                event_ids: batch.iter().take(MAX_IDS).map(|e| e.id.clone()).collect(),
                events: batch.len(),
                attempt: attempt.number,
                status: attempt.status.map(|s| s.as_u16()),
                error: error.clone(),
                duration_ms: attempt.started.1.elapsed().as_secs_f64() * 1e3,
                outcome: match attempt.outcome {
                    AttemptOutcome::Delivered => "delivered",
                    AttemptOutcome::Retrying => "retrying",
                    AttemptOutcome::GivingUp => "giving_up",
                },
            });
        }
        if let Some(log) = &self.delivery_log {
            log(DeliveryRecord::Attempt(DeliveryAttempt {
                endpoint: self.name.clone(),
                message_id: id,
                batch: batch.clone(),
                attempt: attempt.number,
                status: attempt.status,
                latency: attempt.started.1.elapsed(),
                error,
                outcome: attempt.outcome,
                retry_in: attempt.retry_in,
                started: attempt.started.0,
            }));
        }
    }
}

/// One attempt, for the delivery log.
struct Attempt<'a> {
    number: u32,
    started: (SystemTime, Instant),
    status: Option<http::StatusCode>,
    error: Option<&'a BoxError>,
    outcome: AttemptOutcome,
    retry_in: Option<Duration>,
}

async fn deliver<S>(mut inner: S, settings: Arc<Settings>, batch: Batch) -> Result<(), BoxError>
where
    S: Service<Batch>,
    S::Response: Into<Receipt>,
    S::Error: Into<BoxError>,
{
    let policy = &*settings.policy;
    let mut first = None;
    let mut attempts: u32 = 0;
    loop {
        let wait = policy.wait();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        attempts = attempts.saturating_add(1);
        if attempts > 1 {
            if let Some(m) = &settings.metrics {
                m.record_retry();
            }
        }
        let started = (SystemTime::now(), Instant::now());
        let first_attempt = *first.get_or_insert(started.1);
        // One span per attempt; the sink's own logs sit inside it.
        let span = tracing::info_span!(
            "notifications.delivery",
            endpoint = %settings.name,
            event = %batch.first().map_or("", |e| &*e.id),
            events = batch.len(),
            attempt = attempts,
            status = tracing::field::Empty,
            error = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let result = async {
            let ready: Result<(), BoxError> =
                std::future::poll_fn(|cx| inner.poll_ready(cx).map_err(Into::into)).await;
            match ready {
                Ok(()) => inner
                    .call(batch.clone())
                    .await
                    .map(Into::<Receipt>::into)
                    .map_err(Into::<BoxError>::into),
                Err(e) => Err(e),
            }
        }
        .instrument(span.clone())
        .await;
        span.record("duration_ms", started.1.elapsed().as_secs_f64() * 1e3);
        match &result {
            Ok(receipt) => {
                if let Some(status) = receipt.status {
                    span.record("status", status.as_u16());
                }
            }
            Err(error) => {
                if let Some(DeliveryError::Status { status, .. }) = error.downcast_ref::<DeliveryError>() {
                    span.record("status", status.as_u16());
                }
                span.record("error", settings.error_text(error).as_str());
            }
        }
        let was_failing = policy.is_failing();
        let error = match result {
            Ok(receipt) => {
                settings.succeeded(was_failing);
                settings.log_attempt(
                    &batch,
                    Attempt {
                        number: attempts,
                        started,
                        status: receipt.status,
                        error: None,
                        outcome: AttemptOutcome::Delivered,
                        retry_in: None,
                    },
                );
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
            _ => None,
        };
        let decision = policy.on_failure(&Failure::new(&error, attempts, first_attempt));
        if !was_failing && policy.is_failing() {
            settings.failing(attempts);
        }
        let attempt = |outcome, retry_in| Attempt {
            number: attempts,
            started,
            status,
            error: Some(&error),
            outcome,
            retry_in,
        };
        let delay = match decision {
            Decision::Retry { after } => after,
            Decision::GiveUp(why) => {
                settings.log_attempt(&batch, attempt(AttemptOutcome::GivingUp, None));
                let reason = why.reason(attempts, &settings.error_text(&error));
                settings.dead_letter(batch, reason, attempts);
                return Ok(());
            }
        };
        settings.log_attempt(&batch, attempt(AttemptOutcome::Retrying, Some(delay)));
        let text = settings.error_text(&error);
        let name = &*settings.name;
        if !was_failing {
            tracing::warn!(endpoint = %name, events = batch.len(), attempts, ?delay, error = %text, "notifications: attempt failed, retrying");
        } else if let Some(suppressed) = settings.reminder.check() {
            tracing::warn!(
                endpoint = %name, events = batch.len(), attempts, ?delay, error = %text, suppressed,
                "notifications: endpoint still failing, retrying"
            );
        } else {
            tracing::debug!(endpoint = %name, attempts, ?delay, error = %text, "notifications: attempt failed, retrying");
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_the_stage_its_policy_and_endpoint() {
        let layer = DeliveryRetryLayer::new(Breaker::new(3, Duration::from_millis(5))).name("ep");
        let text = format!("{layer:?}");
        assert!(text.starts_with("DeliveryRetryLayer {"), "{text}");
        assert!(text.contains("\"ep\"") && text.contains("threshold: 3"), "{text}");
        let stage = layer.layer("inner sink");
        let text = format!("{stage:?}");
        assert!(text.starts_with("DeliveryRetry {"), "{text}");
        assert!(
            text.contains("\"inner sink\"") && text.contains("threshold: 3"),
            "{text}"
        );
    }
}
