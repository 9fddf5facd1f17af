//! Capped exponential backoff with jitter: the default retry policy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::ConfigError;

use super::policy::{Decision, Failure, GiveUp, Limits, RetryPolicy};

/// The default [`RetryPolicy`]: after the n-th consecutive failure of the endpoint the next
/// attempt waits a delay drawn uniformly from `[b·(1−jitter), b]` where
/// `b = min(max, initial·multiplier^(n−1))`. A `Retry-After` from the endpoint is used
/// instead, clamped to `[initial, max]`. Gives up according to its [`Limits`].
///
/// ```
/// use std::time::Duration;
/// use registry_notify::retry::Exponential;
///
/// let policy = Exponential::default()
///     .backoff(Duration::from_millis(100), Duration::from_secs(10))
///     .jitter(0.0)
///     .max_attempts(5);
/// assert_eq!(policy.delay_bounds(3), (Duration::from_millis(400), Duration::from_millis(400)));
/// ```
#[derive(Debug)]
pub struct Exponential {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
    limits: Limits,
    /// Consecutive failures of the endpoint.
    failures: Mutex<u32>,
}

impl Default for Exponential {
    /// 500 ms, doubling up to 60 s, jitter 0.2; [`Limits::default`].
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.2,
            limits: Limits::default(),
            failures: Mutex::new(0),
        }
    }
}

impl Clone for Exponential {
    /// The same settings, no state.
    fn clone(&self) -> Self {
        Self {
            failures: Mutex::new(0),
            ..*self
        }
    }
}

impl PartialEq for Exponential {
    /// Equal settings.
    fn eq(&self, other: &Self) -> bool {
        (self.initial, self.max, self.limits) == (other.initial, other.max, other.limits)
            && self.multiplier.to_bits() == other.multiplier.to_bits()
            && self.jitter.to_bits() == other.jitter.to_bits()
    }
}

impl Exponential {
    /// The delay after the first failure (default 500 ms) and the largest (default 60 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial = initial;
        self.max = max;
        self
    }

    /// Growth factor per failure, ≥ 1 (default 2).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Fraction of the delay that is randomised, 0 (none) ..= 1 (full jitter); default 0.2.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    super::policy::limit_setters!();

    /// The range the delay after the `failures`-th consecutive failure is drawn from
    /// (ignoring `Retry-After`).
    pub fn delay_bounds(&self, failures: u32) -> (Duration, Duration) {
        let exp = failures.saturating_sub(1).min(1024) as i32;
        let base = self.initial.as_secs_f64() * self.multiplier.powi(exp);
        let base = if base.is_finite() {
            base.min(self.max.as_secs_f64())
        } else {
            self.max.as_secs_f64()
        };
        let upper = Duration::from_secs_f64(base);
        let lower = Duration::from_secs_f64(base * (1.0 - self.jitter.clamp(0.0, 1.0)));
        (lower, upper)
    }

    /// A delay after the `failures`-th consecutive failure, honouring `retry_after`.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(asked) = retry_after {
            return asked.clamp(self.initial, self.max);
        }
        let (lower, upper) = self.delay_bounds(failures);
        if upper <= lower {
            return upper;
        }
        let r: f64 = rand::random();
        lower + (upper - lower).mul_f64(r)
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, u32> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RetryPolicy for Exponential {
    fn on_success(&self) {
        *self.failures() = 0;
    }

    fn on_failure(&self, failure: &Failure<'_>) -> Decision {
        if failure.is_permanent() {
            return Decision::GiveUp(GiveUp::Permanent);
        }
        let failures = {
            let mut n = self.failures();
            *n = n.saturating_add(1);
            *n
        };
        self.limits
            .decide(failure, self.delay(failures, failure.retry_after()))
    }

    fn is_failing(&self) -> bool {
        *self.failures() > 0
    }

    fn fresh(&self) -> Arc<dyn RetryPolicy> {
        Arc::new(self.clone())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.initial.is_zero() {
            return Err(ConfigError::field("retry.initial", "must be > 0"));
        }
        if self.max < self.initial {
            return Err(ConfigError::field(
                "retry.max",
                format!("({:?}) must be >= retry.initial ({:?})", self.max, self.initial),
            ));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(ConfigError::field("retry.multiplier", "must be >= 1"));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(ConfigError::field("retry.jitter", "must be between 0 and 1"));
        }
        self.limits.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn exp(initial: Duration, max: Duration, multiplier: f64, jitter: f64) -> Exponential {
        Exponential::default()
            .backoff(initial, max)
            .multiplier(multiplier)
            .jitter(jitter)
    }

    #[test]
    fn bounds_grow_and_cap() {
        let p = exp(100 * MS, 1000 * MS, 2.0, 0.5);
        assert_eq!(p.delay_bounds(1), (50 * MS, 100 * MS));
        assert_eq!(p.delay_bounds(2), (100 * MS, 200 * MS));
        assert_eq!(p.delay_bounds(4), (400 * MS, 800 * MS));
        assert_eq!(p.delay_bounds(5), (500 * MS, 1000 * MS));
        assert_eq!(p.delay_bounds(u32::MAX), (500 * MS, 1000 * MS));
        for n in 1..40 {
            let (lo, hi) = p.delay_bounds(n);
            for _ in 0..50 {
                let d = p.delay(n, None);
                assert!(lo <= d && d <= hi, "{n}: {d:?} not in {lo:?}..={hi:?}");
            }
        }
    }

    #[test]
    fn full_and_no_jitter() {
        assert_eq!(
            exp(100 * MS, 1000 * MS, 3.0, 1.0).delay_bounds(3),
            (Duration::ZERO, 900 * MS)
        );
        assert_eq!(exp(100 * MS, 1000 * MS, 3.0, 0.0).delay(2, None), 300 * MS);
    }

    #[test]
    fn retry_after_is_clamped() {
        let p = Exponential::default();
        assert_eq!(p.delay(1, Some(Duration::from_secs(5))), Duration::from_secs(5));
        assert_eq!(p.delay(1, Some(Duration::ZERO)), 500 * MS);
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
    }

    /// Jitter is drawn, not just bounded: delays vary, cover the whole range evenly, and stay
    /// inside it. (Fails by chance with a probability far below 1e-12.)
    #[test]
    fn jitter_varies_over_its_whole_range() {
        let p = exp(100 * MS, 10_000 * MS, 2.0, 0.5);
        let (lo, hi) = p.delay_bounds(3);
        assert_eq!((lo, hi), (200 * MS, 400 * MS));
        let draws: Vec<Duration> = (0..2000).map(|_| p.delay(3, None)).collect();
        assert!(draws.iter().all(|d| lo <= *d && *d <= hi));
        let fractions: Vec<f64> = draws
            .iter()
            .map(|d| (*d - lo).as_secs_f64() / (hi - lo).as_secs_f64())
            .collect();
        let distinct: std::collections::BTreeSet<u64> = fractions.iter().map(|f| (f * 1e6) as u64).collect();
        assert!(
            distinct.len() > 1900,
            "{} distinct delays of 2000",
            distinct.len()
        );
        // Each tenth of the range gets its share (200 expected; 100..300 is > 7 sigma).
        for tenth in 0..10 {
            let n = fractions
                .iter()
                .filter(|f| (**f * 10.0) as usize == tenth)
                .count();
            assert!((100..300).contains(&n), "tenth {tenth}: {n} of 2000");
        }
        let mean = fractions.iter().sum::<f64>() / 2000.0;
        assert!((0.45..0.55).contains(&mean), "mean {mean}");
        // Full jitter reaches down to zero; none stays at the top.
        let full = exp(100 * MS, 10_000 * MS, 2.0, 1.0);
        let low = (0..2000).filter(|_| full.delay(1, None) < 10 * MS).count();
        assert!((100..300).contains(&low), "{low} of 2000 below a tenth");
        let none = exp(100 * MS, 10_000 * MS, 2.0, 0.0);
        assert!((0..100).all(|_| none.delay(3, None) == 400 * MS));
    }

    #[test]
    fn bounds_at_the_edges() {
        let p = |multiplier: f64, jitter: f64| exp(100 * MS, 1000 * MS, multiplier, jitter);
        // The first failure waits `initial`; failure 0 counts as the first.
        assert_eq!(p(2.0, 0.0).delay_bounds(0), (100 * MS, 100 * MS));
        assert_eq!(p(2.0, 0.0).delay_bounds(1), (100 * MS, 100 * MS));
        assert_eq!(p(2.0, 0.0).delay_bounds(2), (200 * MS, 200 * MS));
        // A multiplier of 1 never grows; a huge one overflows to infinity and is capped.
        assert_eq!(p(1.0, 0.0).delay_bounds(1000), (100 * MS, 100 * MS));
        assert_eq!(p(1e308, 0.0).delay_bounds(3), (1000 * MS, 1000 * MS));
        assert_eq!(p(1.5, 0.0).delay_bounds(1025), (1000 * MS, 1000 * MS));
        // Jitter outside 0..=1 (refused by `validate`) is clamped.
        assert_eq!(p(2.0, 1.5).delay_bounds(2), (Duration::ZERO, 200 * MS));
        assert_eq!(p(2.0, -0.5).delay_bounds(2), (200 * MS, 200 * MS));
        assert_eq!(p(2.0, 0.25).delay_bounds(2), (150 * MS, 200 * MS));
    }

    #[test]
    fn equal_settings_are_equal_and_each_setting_counts() {
        let base = || exp(MS, 100 * MS, 2.0, 0.2);
        assert_eq!(base(), base());
        assert_eq!(base(), base().clone());
        for other in [
            exp(2 * MS, 100 * MS, 2.0, 0.2),
            exp(MS, 200 * MS, 2.0, 0.2),
            exp(MS, 100 * MS, 3.0, 0.2),
            exp(MS, 100 * MS, 2.0, 0.3),
            base().max_attempts(5),
            base().max_age(None),
        ] {
            assert_ne!(base(), other);
        }
        // Bit equality: NaN settings equal themselves (a policy equals its copy).
        assert_eq!(exp(MS, MS, f64::NAN, 0.2), exp(MS, MS, f64::NAN, 0.2));
    }

    #[test]
    fn every_validation_error() {
        let s = Duration::from_secs(1);
        for (policy, message) in [
            (exp(Duration::ZERO, s, 2.0, 0.2), "retry.initial must be > 0"),
            (
                exp(2 * s, s, 2.0, 0.2),
                "retry.max (1s) must be >= retry.initial (2s)",
            ),
            (exp(s, s, 0.99, 0.2), "retry.multiplier must be >= 1"),
            (exp(s, s, f64::NAN, 0.2), "retry.multiplier must be >= 1"),
            (exp(s, s, f64::INFINITY, 0.2), "retry.multiplier must be >= 1"),
            (exp(s, s, 2.0, -0.01), "retry.jitter must be between 0 and 1"),
            (exp(s, s, 2.0, 1.01), "retry.jitter must be between 0 and 1"),
            (exp(s, s, 2.0, f64::NAN), "retry.jitter must be between 0 and 1"),
            (
                Exponential::default().max_attempts(0),
                "retry.maxattempts must be > 0",
            ),
            (
                Exponential::default().max_age(Some(Duration::ZERO)),
                "retry.maxage must be > 0",
            ),
        ] {
            assert_eq!(policy.validate().unwrap_err().to_string(), message);
        }
        for ok in [
            exp(s, s, 1.0, 0.0),
            exp(MS, s, 1.0, 1.0),
            Exponential::default().max_attempts(1).max_age(None),
        ] {
            ok.validate().unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_grow_the_delay_until_a_success() {
        use crate::sink::{BoxError, DeliveryError};
        let p = exp(100 * MS, 1000 * MS, 2.0, 0.0);
        let error: BoxError = DeliveryError::Timeout(MS).into();
        let first = tokio::time::Instant::now();
        let decide = |n| p.on_failure(&Failure::new(&error, n, first));
        assert!(!p.is_failing());
        assert_eq!(decide(1), Decision::Retry { after: 100 * MS });
        assert!(p.is_failing());
        assert_eq!(decide(2), Decision::Retry { after: 200 * MS });
        p.on_success();
        assert!(!p.is_failing());
        assert_eq!(decide(1), Decision::Retry { after: 100 * MS });
        // A fresh policy starts over; clones share no state.
        assert_eq!(
            p.fresh().on_failure(&Failure::new(&error, 1, first)),
            Decision::Retry { after: 100 * MS }
        );
    }
}
