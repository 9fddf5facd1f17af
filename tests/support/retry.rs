//! Retry settings that keep the delivery tests short: no jitter, milliseconds apart.

use std::time::Duration;

use registry_notify::retry::Exponential;

/// Jitter-free exponential backoff: `initial`, then doubling up to `max`; no age limit.
pub fn backoff(initial: Duration, max: Duration) -> Exponential {
    Exponential::default()
        .backoff(initial, max)
        .jitter(0.0)
        .max_age(None)
}

/// Retries with [`backoff`] from `initial_ms` to `max_ms` milliseconds, at most
/// `max_attempts` attempts in all (`None`: no limit), and no age limit.
pub fn retries(initial_ms: u64, max_ms: u64, max_attempts: Option<u32>) -> Exponential {
    let policy = backoff(Duration::from_millis(initial_ms), Duration::from_millis(max_ms));
    match max_attempts {
        Some(n) => policy.max_attempts(n),
        None => policy,
    }
}
