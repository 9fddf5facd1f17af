//! Retry settings that keep the delivery tests short: no jitter, milliseconds apart.

use std::time::Duration;

use registry_notify::retry::{RetryConfig, RetryPolicy};

/// Jitter-free exponential backoff: `initial`, then doubling up to `max`.
pub fn backoff(initial: Duration, max: Duration) -> RetryPolicy {
    RetryPolicy::Exponential {
        initial,
        max,
        multiplier: 2.0,
        jitter: 0.0,
    }
}

/// Retries with [`backoff`] from `initial_ms` to `max_ms` milliseconds, at most
/// `max_attempts` attempts in all (`None`: no limit), and no age limit.
pub fn retries(initial_ms: u64, max_ms: u64, max_attempts: Option<u32>) -> RetryConfig {
    RetryConfig {
        policy: backoff(Duration::from_millis(initial_ms), Duration::from_millis(max_ms)),
        max_attempts,
        max_age: None,
    }
}
