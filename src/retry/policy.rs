//! The retry policy: when to attempt a failed batch again, and when to give up on it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ConfigError;
use crate::sink::{BoxError, DeliveryError};

/// Decides, attempt by attempt, how an endpoint retries: the open counterpart of tower's
/// `retry::Policy` and go-events' `RetryStrategy`.
///
/// One policy serves one endpoint: its state (consecutive failures, an open breaker) is shared
/// by all batches of that endpoint, which the endpoint's queue delivers one at a time. The
/// crate ships two: [`Exponential`](super::Exponential) (the default) and
/// [`Breaker`](super::Breaker) (Distribution's). Both give up according to their
/// [`Limits`], and on a permanent failure at once.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use registry_notify::retry::{Decision, Failure, GiveUp, RetryPolicy};
///
/// /// Retries every second, for ever, except permanent failures.
/// #[derive(Debug)]
/// struct EverySecond;
///
/// impl RetryPolicy for EverySecond {
///     fn on_failure(&self, failure: &Failure<'_>) -> Decision {
///         if failure.is_permanent() {
///             return Decision::GiveUp(GiveUp::Permanent);
///         }
///         Decision::Retry { after: Duration::from_secs(1) }
///     }
///     fn fresh(&self) -> Arc<dyn RetryPolicy> {
///         Arc::new(EverySecond)
///     }
/// }
/// # let _ = registry_notify::endpoint::Endpoint::builder("a", "http://127.0.0.1:9/").retry(EverySecond);
/// ```
pub trait RetryPolicy: fmt::Debug + Send + Sync + 'static {
    /// How long any attempt must wait before it starts (e.g. while a breaker is open); zero by
    /// default. Asked before every attempt, the first of a batch included.
    fn wait(&self) -> Duration {
        Duration::ZERO
    }

    /// A batch was delivered.
    fn on_success(&self) {}

    /// An attempt failed (with an error that is not [`DeliveryError::Closed`]): retry after a
    /// delay, or give up (the batch then goes to the dead-letter hook).
    fn on_failure(&self, failure: &Failure<'_>) -> Decision;

    /// Whether the endpoint counts as failing right now (logged, and the `breaker_open` metric).
    fn is_failing(&self) -> bool {
        false
    }

    /// A policy with the same settings and none of this one's state, for another endpoint
    /// stack.
    fn fresh(&self) -> Arc<dyn RetryPolicy>;

    /// Checks the settings: the one check of them, for the builder and the YAML alike.
    /// [`EndpointBuilder::build`](crate::endpoint::EndpointBuilder::build) calls it. The
    /// error's [path](ConfigError::path) is the setting's YAML key, relative to the endpoint
    /// (`backoff`, `retry.initial`).
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// A failed attempt, as a [`RetryPolicy`] sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Failure<'a> {
    /// Why the attempt failed.
    pub error: &'a BoxError,
    /// Attempts made on this batch so far, this one included (1 after the first).
    pub attempts: u32,
    /// When the batch's first attempt started.
    pub first_attempt: Instant,
}

impl<'a> Failure<'a> {
    /// A failure of attempt number `attempts` of a batch first attempted at `first_attempt`.
    pub fn new(error: &'a BoxError, attempts: u32, first_attempt: Instant) -> Self {
        Self {
            error,
            attempts,
            first_attempt,
        }
    }

    /// The error as a [`DeliveryError`], if it is one (custom sinks may fail otherwise).
    pub fn delivery_error(&self) -> Option<&DeliveryError> {
        self.error.downcast_ref::<DeliveryError>()
    }

    /// Whether no later attempt can succeed: a [`DeliveryError`] that is not
    /// [retryable](DeliveryError::is_retryable). Errors of other types count as transient.
    pub fn is_permanent(&self) -> bool {
        self.delivery_error().is_some_and(|e| !e.is_retryable())
    }

    /// The delay the endpoint asked for with `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.delivery_error() {
            Some(DeliveryError::Status { retry_after, .. }) => *retry_after,
            _ => None,
        }
    }
}

/// What a [`RetryPolicy`] decided after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Attempt the batch again after `after` (plus whatever [`RetryPolicy::wait`] then asks).
    Retry {
        /// The delay before the next attempt.
        after: Duration,
    },
    /// Give up on the batch: it goes to the dead-letter hook.
    GiveUp(GiveUp),
}

/// Why a batch was given up on; the dead letter's reason names it, followed by the last error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GiveUp {
    /// The failure is permanent (e.g. a 4xx other than 408 and 429).
    Permanent,
    /// The batch had as many attempts as [`Limits::max_attempts`] allows.
    MaxAttempts,
    /// Retrying would go past [`Limits::max_age`] since the first attempt.
    MaxAge,
}

impl GiveUp {
    /// The dead letter's reason for a batch given up on after `attempts` attempts, whose last
    /// error reads `error` (already scrubbed of secrets).
    pub(crate) fn reason(self, attempts: u32, error: &str) -> String {
        match self {
            GiveUp::Permanent => format!("permanent failure: {error}"),
            GiveUp::MaxAttempts => format!("gave up after {attempts} attempts: {error}"),
            GiveUp::MaxAge => format!("max_age exceeded after {attempts} attempts: {error}"),
        }
    }
}

/// When the shipped policies give up on a batch, whatever its errors: instead of blocking the
/// endpoint's queue for ever, as Distribution does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Attempts per batch before it is dead-lettered (default: unlimited); must be > 0.
    pub max_attempts: Option<u32>,
    /// Time since a batch's first attempt after which it is dead-lettered instead of retried
    /// (default 24 h; `None`: never); must be > 0.
    pub max_age: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_attempts: None,
            max_age: Some(Duration::from_secs(24 * 3600)),
        }
    }
}

impl Limits {
    /// The decision for `failure` if the next attempt is to come `after` from now: give up on a
    /// permanent failure, at `max_attempts`, or when `after` would pass `max_age`.
    pub fn decide(&self, failure: &Failure<'_>, after: Duration) -> Decision {
        if failure.is_permanent() {
            return Decision::GiveUp(GiveUp::Permanent);
        }
        if self.max_attempts.is_some_and(|max| failure.attempts >= max) {
            return Decision::GiveUp(GiveUp::MaxAttempts);
        }
        let age = failure.first_attempt.elapsed().saturating_add(after);
        if self.max_age.is_some_and(|max| age >= max) {
            return Decision::GiveUp(GiveUp::MaxAge);
        }
        Decision::Retry { after }
    }

    /// Checks the limits; the error's path is `retry.maxattempts` or `retry.maxage`.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == Some(0) {
            return Err(ConfigError::field("retry.maxattempts", "must be > 0"));
        }
        if self.max_age == Some(Duration::ZERO) {
            return Err(ConfigError::field("retry.maxage", "must be > 0"));
        }
        Ok(())
    }
}

/// The [`Limits`] setters and getter of a policy with a `limits` field (every shipped one).
macro_rules! limit_setters {
    () => {
        /// When to give up on a batch.
        pub fn limits(mut self, limits: $crate::retry::Limits) -> Self {
            self.limits = limits;
            self
        }

        /// Gives up on a batch after `n` attempts ([`Limits::max_attempts`](crate::retry::Limits::max_attempts)).
        pub fn max_attempts(mut self, n: u32) -> Self {
            self.limits.max_attempts = Some(n);
            self
        }

        /// Gives up on a batch `age` after its first attempt
        /// ([`Limits::max_age`](crate::retry::Limits::max_age); `None`: never).
        pub fn max_age(mut self, age: Option<std::time::Duration>) -> Self {
            self.limits.max_age = age;
            self
        }

        /// The limits.
        pub fn get_limits(&self) -> $crate::retry::Limits {
            self.limits
        }
    };
}
pub(super) use limit_setters;

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn status(code: u16) -> BoxError {
        let status = StatusCode::from_u16(code).unwrap();
        DeliveryError::Status {
            status,
            retry_after: Some(Duration::from_secs(7)),
        }
        .into()
    }

    #[tokio::test(start_paused = true)]
    async fn limits_decide_in_order() {
        let limits = Limits {
            max_attempts: Some(3),
            max_age: Some(Duration::from_secs(10)),
        };
        let first = Instant::now();
        let e503 = status(503);
        let e404 = status(404);
        let f = |e, n| Failure::new(e, n, first);
        assert_eq!(
            limits.decide(&f(&e404, 1), Duration::ZERO),
            Decision::GiveUp(GiveUp::Permanent)
        );
        assert_eq!(
            limits.decide(&f(&e503, 1), Duration::from_secs(1)),
            Decision::Retry {
                after: Duration::from_secs(1)
            }
        );
        assert_eq!(
            limits.decide(&f(&e503, 3), Duration::ZERO),
            Decision::GiveUp(GiveUp::MaxAttempts)
        );
        assert_eq!(
            limits.decide(&f(&e503, 2), Duration::from_secs(10)),
            Decision::GiveUp(GiveUp::MaxAge)
        );
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(
            limits.decide(&f(&e503, 2), Duration::from_secs(1)),
            Decision::GiveUp(GiveUp::MaxAge)
        );
        assert_eq!(f(&e503, 1).retry_after(), Some(Duration::from_secs(7)));
        let other: BoxError = "custom sink".into();
        assert!(!f(&other, 1).is_permanent());
        assert_eq!(f(&other, 1).retry_after(), None);
    }

    #[test]
    fn validation() {
        assert!(Limits::default().validate().is_ok());
        let zero = Limits {
            max_attempts: Some(0),
            ..Limits::default()
        };
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "retry.maxattempts must be > 0"
        );
        let zero = Limits {
            max_age: Some(Duration::ZERO),
            ..Limits::default()
        };
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "retry.maxage must be > 0"
        );
    }
}
