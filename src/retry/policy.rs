//! Retry policies and their settings.

use std::time::Duration;

use crate::error::ConfigError;

/// When to attempt again after a failed delivery attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum RetryPolicy {
    /// Distribution's breaker: `threshold` consecutive failures retried at once, then one
    /// attempt per `backoff` after the last failure. `Retry-After` is not consulted.
    Breaker {
        /// Consecutive failures retried without delay (Distribution's default: 10).
        threshold: u32,
        /// Delay between attempts once the breaker is open (Distribution's default: 1s).
        backoff: Duration,
    },
    /// The default: capped exponential backoff with jitter; after the n-th consecutive
    /// failure the delay is drawn uniformly from `[b·(1−jitter), b]` where
    /// `b = min(max, initial·multiplier^(n−1))`. A `Retry-After` from the endpoint is used
    /// instead, clamped to `[initial, max]`.
    Exponential {
        /// Delay after the first failure (default 500 ms).
        initial: Duration,
        /// Largest delay (default 60 s).
        max: Duration,
        /// Growth factor per failure, ≥ 1 (default 2).
        multiplier: f64,
        /// Fraction of the delay that is randomised, 0 (none) ..= 1 (full jitter); default 0.2.
        jitter: f64,
    },
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::Exponential {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Distribution's breaker with its defaults: threshold 10, backoff 1 s.
    pub fn distribution() -> Self {
        RetryPolicy::Breaker {
            threshold: 10,
            backoff: Duration::from_secs(1),
        }
    }

    /// The range the delay after the `failures`-th consecutive failure is drawn from
    /// (ignoring `Retry-After`). For the breaker: zero below the threshold, `backoff` from it.
    pub fn delay_bounds(&self, failures: u32) -> (Duration, Duration) {
        match *self {
            RetryPolicy::Breaker { threshold, backoff } => {
                if failures < threshold {
                    (Duration::ZERO, Duration::ZERO)
                } else {
                    (backoff, backoff)
                }
            }
            RetryPolicy::Exponential {
                initial,
                max,
                multiplier,
                jitter,
            } => {
                let exp = failures.saturating_sub(1).min(1024) as i32;
                let base = initial.as_secs_f64() * multiplier.powi(exp);
                let base = if base.is_finite() {
                    base.min(max.as_secs_f64())
                } else {
                    max.as_secs_f64()
                };
                let upper = Duration::from_secs_f64(base);
                let lower = Duration::from_secs_f64(base * (1.0 - jitter.clamp(0.0, 1.0)));
                (lower, upper)
            }
        }
    }

    /// A delay after the `failures`-th consecutive failure, honouring `retry_after` for the
    /// exponential policy.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        if let (RetryPolicy::Exponential { initial, max, .. }, Some(asked)) = (self, retry_after) {
            return asked.clamp(*initial, *max);
        }
        let (lower, upper) = self.delay_bounds(failures);
        if upper <= lower {
            return upper;
        }
        let r: f64 = rand::random();
        lower + (upper - lower).mul_f64(r)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            RetryPolicy::Breaker { threshold, backoff } => {
                if threshold == 0 {
                    return Err(ConfigError::new("retry: threshold must be > 0"));
                }
                if backoff.is_zero() {
                    return Err(ConfigError::new("retry: backoff must be > 0"));
                }
            }
            RetryPolicy::Exponential {
                initial,
                max,
                multiplier,
                jitter,
            } => {
                if initial.is_zero() {
                    return Err(ConfigError::new("retry: initial backoff must be > 0"));
                }
                if max < initial {
                    return Err(ConfigError::new("retry: max backoff must be >= initial backoff"));
                }
                if !(multiplier.is_finite() && multiplier >= 1.0) {
                    return Err(ConfigError::new("retry: multiplier must be a number >= 1"));
                }
                if !(0.0..=1.0).contains(&jitter) {
                    return Err(ConfigError::new("retry: jitter must be between 0 and 1"));
                }
            }
        }
        Ok(())
    }
}

/// Retry settings of an endpoint.
///
/// Whatever the policy, a permanent failure (a 4xx other than 408 and 429, a 3xx unless
/// redirects count as success) goes to the dead-letter hook at once, and so does a batch
/// after `max_attempts` attempts or once `max_age` has passed since its first attempt —
/// instead of blocking the endpoint queue forever as Distribution does.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryConfig {
    /// When to attempt again (default: [`RetryPolicy::Exponential`] 500 ms .. 60 s).
    pub policy: RetryPolicy,
    /// Attempts per batch before dead-lettering it (default: unlimited); must be > 0.
    pub max_attempts: Option<u32>,
    /// Time since a batch's first attempt after which it is dead-lettered instead of
    /// retried (default 24 h; `None`: never).
    pub max_age: Option<Duration>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            policy: RetryPolicy::default(),
            max_attempts: None,
            max_age: Some(Duration::from_secs(24 * 3600)),
        }
    }
}

impl RetryConfig {
    /// Distribution's breaker (`threshold` consecutive failures retried at once, then one
    /// attempt per `backoff`), with the default `max_attempts` and `max_age`.
    pub fn breaker(threshold: u32, backoff: Duration) -> Self {
        Self {
            policy: RetryPolicy::Breaker { threshold, backoff },
            ..Self::default()
        }
    }

    /// Checks the settings; the message names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.policy.validate()?;
        if self.max_attempts == Some(0) {
            return Err(ConfigError::new("retry: max_attempts must be > 0"));
        }
        if self.max_age == Some(Duration::ZERO) {
            return Err(ConfigError::new("retry: max_age must be > 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn exponential_bounds_grow_and_cap() {
        let p = RetryPolicy::Exponential {
            initial: 100 * MS,
            max: 1000 * MS,
            multiplier: 2.0,
            jitter: 0.5,
        };
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
        let full = RetryPolicy::Exponential {
            initial: 100 * MS,
            max: 1000 * MS,
            multiplier: 3.0,
            jitter: 1.0,
        };
        assert_eq!(full.delay_bounds(3), (Duration::ZERO, 900 * MS));
        let none = RetryPolicy::Exponential {
            initial: 100 * MS,
            max: 1000 * MS,
            multiplier: 3.0,
            jitter: 0.0,
        };
        assert_eq!(none.delay(2, None), 300 * MS);
    }

    #[test]
    fn retry_after_is_clamped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, Some(Duration::from_secs(5))), Duration::from_secs(5));
        assert_eq!(p.delay(1, Some(Duration::ZERO)), 500 * MS);
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
        // The breaker ignores it.
        let b = RetryPolicy::Breaker {
            threshold: 2,
            backoff: 10 * MS,
        };
        assert_eq!(b.delay(1, Some(Duration::from_secs(5))), Duration::ZERO);
        assert_eq!(b.delay(2, Some(Duration::from_secs(5))), 10 * MS);
    }

    #[test]
    fn validation_names_the_field() {
        let bad = [
            (RetryConfig::breaker(0, MS), "threshold"),
            (RetryConfig::breaker(1, Duration::ZERO), "backoff"),
            (
                RetryConfig {
                    max_attempts: Some(0),
                    ..RetryConfig::default()
                },
                "max_attempts",
            ),
            (
                RetryConfig {
                    policy: RetryPolicy::Exponential {
                        initial: MS,
                        max: MS,
                        multiplier: 0.5,
                        jitter: 0.0,
                    },
                    ..RetryConfig::default()
                },
                "multiplier",
            ),
            (
                RetryConfig {
                    policy: RetryPolicy::Exponential {
                        initial: MS,
                        max: MS,
                        multiplier: 2.0,
                        jitter: 1.5,
                    },
                    ..RetryConfig::default()
                },
                "jitter",
            ),
        ];
        for (cfg, field) in bad {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
        RetryConfig::default().validate().unwrap();
    }

    #[test]
    fn distribution_is_the_breaker_with_distribution_defaults() {
        let p = RetryPolicy::distribution();
        assert_eq!(
            p,
            RetryPolicy::Breaker {
                threshold: 10,
                backoff: Duration::from_secs(1)
            }
        );
        assert_eq!(p.delay_bounds(9), (Duration::ZERO, Duration::ZERO));
        assert_eq!(
            p.delay_bounds(10),
            (Duration::from_secs(1), Duration::from_secs(1))
        );
        assert_eq!(p.delay(11, None), Duration::from_secs(1));
        assert_eq!(RetryConfig::breaker(10, Duration::from_secs(1)).policy, p);
        RetryConfig {
            policy: p,
            ..RetryConfig::default()
        }
        .validate()
        .unwrap();
    }

    /// Jitter is drawn, not just bounded: delays vary, cover the whole range evenly, and stay
    /// inside it. (Fails by chance with a probability far below 1e-12.)
    #[test]
    fn jitter_varies_over_its_whole_range() {
        let p = RetryPolicy::Exponential {
            initial: 100 * MS,
            max: 10_000 * MS,
            multiplier: 2.0,
            jitter: 0.5,
        };
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
        let full = RetryPolicy::Exponential {
            initial: 100 * MS,
            max: 10_000 * MS,
            multiplier: 2.0,
            jitter: 1.0,
        };
        let low = (0..2000).filter(|_| full.delay(1, None) < 10 * MS).count();
        assert!((100..300).contains(&low), "{low} of 2000 below a tenth");
        let none = RetryPolicy::Exponential {
            initial: 100 * MS,
            max: 10_000 * MS,
            multiplier: 2.0,
            jitter: 0.0,
        };
        assert!((0..100).all(|_| none.delay(3, None) == 400 * MS));
    }

    #[test]
    fn bounds_at_the_edges() {
        let p = |multiplier: f64, jitter: f64| RetryPolicy::Exponential {
            initial: 100 * MS,
            max: 1000 * MS,
            multiplier,
            jitter,
        };
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
    fn every_validation_error() {
        let exp = |initial: Duration, max: Duration, multiplier: f64, jitter: f64| RetryConfig {
            policy: RetryPolicy::Exponential {
                initial,
                max,
                multiplier,
                jitter,
            },
            ..RetryConfig::default()
        };
        let s = Duration::from_secs(1);
        for (cfg, message) in [
            (
                exp(Duration::ZERO, s, 2.0, 0.2),
                "retry: initial backoff must be > 0",
            ),
            (
                exp(2 * s, s, 2.0, 0.2),
                "retry: max backoff must be >= initial backoff",
            ),
            (exp(s, s, 0.99, 0.2), "retry: multiplier must be a number >= 1"),
            (
                exp(s, s, f64::NAN, 0.2),
                "retry: multiplier must be a number >= 1",
            ),
            (
                exp(s, s, f64::INFINITY, 0.2),
                "retry: multiplier must be a number >= 1",
            ),
            (exp(s, s, 2.0, -0.01), "retry: jitter must be between 0 and 1"),
            (exp(s, s, 2.0, 1.01), "retry: jitter must be between 0 and 1"),
            (exp(s, s, 2.0, f64::NAN), "retry: jitter must be between 0 and 1"),
            (RetryConfig::breaker(0, s), "retry: threshold must be > 0"),
            (
                RetryConfig::breaker(1, Duration::ZERO),
                "retry: backoff must be > 0",
            ),
            (
                RetryConfig {
                    max_age: Some(Duration::ZERO),
                    ..RetryConfig::default()
                },
                "retry: max_age must be > 0",
            ),
        ] {
            assert_eq!(cfg.validate().unwrap_err().to_string(), message);
        }
        // The edges that are allowed.
        for ok in [
            exp(s, s, 1.0, 0.0),
            exp(MS, s, 1.0, 1.0),
            RetryConfig::breaker(1, Duration::from_nanos(1)),
            RetryConfig {
                max_attempts: Some(1),
                max_age: None,
                ..RetryConfig::default()
            },
        ] {
            ok.validate().unwrap();
        }
    }
}
