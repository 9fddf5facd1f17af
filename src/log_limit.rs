//! Rate limiting of repeated log lines: one line per burst, with a count of what was held back.

use std::sync::Mutex;

/// Lets a repeated log line through at most once per `interval`, counting what it held back.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    interval: std::time::Duration,
    state: Mutex<(Option<std::time::Instant>, u64)>,
}

impl LogLimiter {
    pub(crate) const fn new(interval: std::time::Duration) -> Self {
        Self {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(suppressed)` when the line may be logged now (with how many were held back
    /// since the last one), `None` when it must be suppressed.
    pub(crate) fn check(&self) -> Option<u64> {
        let now = std::time::Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.0 {
            Some(last) if now.duration_since(last) < self.interval => {
                state.1 += 1;
                None
            }
            _ => {
                let suppressed = state.1;
                *state = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}
