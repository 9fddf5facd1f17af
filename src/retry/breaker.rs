//! Distribution's circuit breaker as a retry policy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ConfigError;

use super::policy::{Decision, Failure, GiveUp, Limits, RetryPolicy};

/// Distribution's retry behaviour: `threshold` consecutive failures of the endpoint are
/// retried at once, then one attempt per `backoff` after the last failure, for every batch,
/// until one succeeds. `Retry-After` is not consulted. Unlike Distribution, it gives up on a
/// batch according to its [`Limits`] and on a permanent failure at once.
///
/// ```
/// use std::time::Duration;
/// use registry_notify::retry::Breaker;
///
/// let distribution = Breaker::default(); // threshold 10, backoff 1 s
/// assert_eq!((distribution.threshold(), distribution.backoff()), (10, Duration::from_secs(1)));
/// let quick = Breaker::new(3, Duration::from_millis(100)).max_attempts(20);
/// # let _ = quick;
/// ```
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    backoff: Duration,
    limits: Limits,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Consecutive failures of the endpoint.
    failures: u32,
    last_failure: Option<Instant>,
}

impl Default for Breaker {
    /// Distribution's defaults: threshold 10, backoff 1 s; [`Limits::default`].
    fn default() -> Self {
        Self::new(10, Duration::from_secs(1))
    }
}

impl Clone for Breaker {
    /// The same settings, a closed breaker.
    fn clone(&self) -> Self {
        Self::new(self.threshold, self.backoff).limits(self.limits)
    }
}

impl PartialEq for Breaker {
    /// Equal settings.
    fn eq(&self, other: &Self) -> bool {
        (self.threshold, self.backoff, self.limits) == (other.threshold, other.backoff, other.limits)
    }
}

impl Breaker {
    /// A breaker that opens after `threshold` consecutive failures (> 0) and then lets one
    /// attempt through per `backoff` (> 0).
    pub fn new(threshold: u32, backoff: Duration) -> Self {
        Self {
            threshold,
            backoff,
            limits: Limits::default(),
            state: Mutex::new(State::default()),
        }
    }

    super::policy::limit_setters!();

    /// Consecutive failures retried without delay.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// Delay between attempts once the breaker is open.
    pub fn backoff(&self) -> Duration {
        self.backoff
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RetryPolicy for Breaker {
    fn wait(&self) -> Duration {
        let state = self.state();
        match state.last_failure {
            Some(last) if state.failures >= self.threshold => {
                (last + self.backoff).saturating_duration_since(Instant::now())
            }
            _ => Duration::ZERO,
        }
    }

    fn on_success(&self) {
        *self.state() = State::default();
    }

    fn on_failure(&self, failure: &Failure<'_>) -> Decision {
        if failure.is_permanent() {
            return Decision::GiveUp(GiveUp::Permanent);
        }
        {
            let mut state = self.state();
            state.failures = state.failures.saturating_add(1);
            state.last_failure = Some(Instant::now());
        }
        self.limits.decide(failure, self.wait())
    }

    fn is_failing(&self) -> bool {
        self.state().failures >= self.threshold
    }

    fn fresh(&self) -> Arc<dyn RetryPolicy> {
        Arc::new(self.clone())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.threshold == 0 {
            return Err(ConfigError::field("threshold", "must be > 0"));
        }
        if self.backoff.is_zero() {
            return Err(ConfigError::field("backoff", "must be > 0"));
        }
        self.limits.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{BoxError, DeliveryError};

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn opens_at_the_threshold_and_waits_the_backoff() {
        let b = Breaker::new(3, 100 * MS);
        let error: BoxError = DeliveryError::Timeout(MS).into();
        let first = Instant::now();
        for n in 1..3 {
            assert_eq!(
                b.on_failure(&Failure::new(&error, n, first)),
                Decision::Retry {
                    after: Duration::ZERO
                }
            );
            assert!(!b.is_failing());
            assert_eq!(b.wait(), Duration::ZERO);
        }
        assert_eq!(
            b.on_failure(&Failure::new(&error, 3, first)),
            Decision::Retry { after: 100 * MS }
        );
        assert!(b.is_failing());
        tokio::time::advance(40 * MS).await;
        assert_eq!(b.wait(), 60 * MS, "every batch waits while the breaker is open");
        b.on_success();
        assert!(!b.is_failing());
        assert_eq!(b.wait(), Duration::ZERO);
        // Permanent failures neither count nor wait.
        let gone: BoxError = DeliveryError::Status {
            status: http::StatusCode::GONE,
            retry_after: None,
        }
        .into();
        assert_eq!(
            b.on_failure(&Failure::new(&gone, 1, first)),
            Decision::GiveUp(GiveUp::Permanent)
        );
        assert_eq!(b.state().failures, 0);
    }

    #[test]
    fn distribution_defaults_and_validation() {
        assert_eq!(Breaker::default(), Breaker::new(10, Duration::from_secs(1)));
        assert_eq!(
            Breaker::new(0, MS).validate().unwrap_err().to_string(),
            "threshold must be > 0"
        );
        assert_eq!(
            Breaker::new(1, Duration::ZERO)
                .validate()
                .unwrap_err()
                .to_string(),
            "backoff must be > 0"
        );
        assert_eq!(
            Breaker::new(1, MS)
                .max_attempts(0)
                .validate()
                .unwrap_err()
                .to_string(),
            "retry.maxattempts must be > 0"
        );
        Breaker::new(1, Duration::from_nanos(1)).validate().unwrap();
        assert_eq!(Breaker::new(3, MS).threshold(), 3);
        assert_eq!(Breaker::new(3, MS).backoff(), MS);
        assert_ne!(Breaker::new(3, MS), Breaker::new(2, MS));
        assert_ne!(Breaker::new(3, MS), Breaker::new(3, 2 * MS));
        assert_ne!(Breaker::new(3, MS), Breaker::new(3, MS).max_attempts(4));
        assert_eq!(
            Breaker::new(3, MS).max_attempts(4),
            Breaker::new(3, MS).max_attempts(4)
        );
    }
}
