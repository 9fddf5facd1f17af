//! Extensions `queue:` and `retry:` of an endpoint: how events wait and how failed deliveries
//! are retried.

use std::path::PathBuf;
use std::time::Duration;

use yaml_serde::Value;

use super::section::{only_applies, Section};
use super::value::{float, go_duration, not_positive, string, unknown_key, unsigned, Path};
use super::ConfigError;
use crate::queue::Overflow;

type Result<T> = std::result::Result<T, ConfigError>;

/// Extension `queue:` — the endpoint's bounded queue (Distribution's is unbounded), in memory or,
/// with `path`, on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueSettings {
    /// `capacity` — most events held. Default 100 000; unlimited with `path` (then `maxbytes` bounds
    /// the queue) unless given.
    pub capacity: usize,
    /// `overflow` — what a full queue drops. Default `dropoldest`.
    pub overflow: Overflow,
    /// `path` — a directory for a durable queue that survives restarts and crashes; one per endpoint.
    pub path: Option<PathBuf>,
    /// `maxbytes` — with `path`: most bytes on disk, an integer or a size such as `512MiB`, `2GB`.
    /// Default 1 GiB, at least 64 KiB.
    pub max_bytes: u64,
    /// `fsync` — with `path`: `always` (a response waits until its events are on disk) or
    /// `interval` (default: the disk is synced every `fsyncinterval`).
    pub fsync: QueueFsync,
    /// `fsyncinterval` — with `path` and `fsync: interval`: default 1 s.
    pub fsync_interval: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            capacity: 100_000,
            overflow: Overflow::DropOldest,
            path: None,
            max_bytes: 1 << 30,
            fsync: QueueFsync::Interval,
            fsync_interval: Duration::from_secs(1),
        }
    }
}

/// `queue.fsync`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueFsync {
    /// `interval` — sync every `fsyncinterval`; the request path never waits on the disk.
    #[default]
    Interval,
    /// `always` — a request's response waits until its events are on disk (group commit).
    Always,
}

/// Keys of `queue:` that only apply to a durable queue.
const DURABLE_ONLY: &[&str] = &["maxbytes", "fsync", "fsyncinterval"];

/// A byte size: an integer, or a number with a unit (`KiB`, `MiB`, `GiB`, `TiB`, `KB`, `MB`, `GB`,
/// `TB`, `B`), e.g. `512MiB`.
fn byte_size(v: &Value, p: &Path) -> Result<u64> {
    if let Value::Number(_) = v {
        return unsigned(v, p, u64::MAX);
    }
    let text = string(v, p)?;
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit = unit.trim();
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => u64::MAX,
    };
    digits
        .parse::<u64>()
        .ok()
        .filter(|_| factor != u64::MAX)
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| {
            ConfigError::at(
                p.as_str(),
                format!("expected a size in bytes such as 1073741824, \"512MiB\" or \"2GB\", found {text:?}"),
            )
        })
}

impl Section for QueueSettings {
    const KEYS: &'static [&'static str] = &[
        "capacity",
        "overflow",
        "path",
        "maxbytes",
        "fsync",
        "fsyncinterval",
    ];

    fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        let p = at.key(key);
        let d = QueueSettings::default();
        match key {
            "path" => {
                let path = string(v, &p)?;
                self.path = (!path.trim().is_empty()).then(|| PathBuf::from(path));
            }
            "maxbytes" if v.is_null() => self.max_bytes = d.max_bytes,
            "maxbytes" => self.max_bytes = byte_size(v, &p)?,
            "fsync" => {
                self.fsync = match string(v, &p)?.as_str() {
                    "" | "interval" => QueueFsync::Interval,
                    "always" => QueueFsync::Always,
                    other => {
                        return Err(ConfigError::at(
                            p.as_str(),
                            format!("expected \"always\" or \"interval\", found {other:?}"),
                        ))
                    }
                }
            }
            "fsyncinterval" => self.fsync_interval = positive_duration(v, &p, d.fsync_interval)?,
            "capacity" if v.is_null() => self.capacity = QueueSettings::default().capacity,
            "capacity" => self.capacity = unsigned(v, &p, usize::MAX as u64)? as usize,
            "overflow" => {
                self.overflow = match string(v, &p)?.as_str() {
                    "" => Overflow::default(),
                    "dropoldest" => Overflow::DropOldest,
                    "dropnewest" => Overflow::DropNewest,
                    other => {
                        return Err(ConfigError::at(
                            p.as_str(),
                            format!("expected \"dropoldest\" or \"dropnewest\", found {other:?}"),
                        ))
                    }
                }
            }
            _ => return Err(unknown_key(at, key, Self::KEYS)),
        }
        Ok(())
    }

    fn finish(&mut self, entries: &[(&str, &Value)], at: &Path) -> Result<()> {
        if self.path.is_none() {
            only_applies(entries, DURABLE_ONLY, at, "to a durable queue (set queue.path)")?;
        } else if !entries.iter().any(|(k, v)| *k == "capacity" && !v.is_null()) {
            // On disk, `maxbytes` bounds the queue.
            self.capacity = usize::MAX;
        }
        Ok(())
    }
}

/// Extension `retry:` — how failed deliveries are retried.
///
/// `initial`, `max`, `multiplier` and `jitter` apply to `mode: exponential` only (setting them with
/// `mode: breaker` is an error); `breaker` uses the endpoint's `threshold` and `backoff`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct RetrySettings {
    /// `mode` — `exponential` (default) or `breaker` (Distribution's behaviour).
    pub mode: RetryMode,
    /// `initial` — first backoff. Default 500 ms.
    pub initial: Duration,
    /// `max` — largest backoff. Default 60 s.
    pub max: Duration,
    /// `multiplier` — backoff growth per attempt, ≥ 1. Default 2.
    pub multiplier: f64,
    /// `jitter` — random fraction of the backoff, 0 to 1. Default 0.2.
    pub jitter: f64,
    /// `maxattempts` — attempts before a batch is dead-lettered. Default unlimited.
    pub max_attempts: Option<u32>,
    /// `maxage` — how long a batch is retried before it is dead-lettered. Default 24 h.
    pub max_age: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            mode: RetryMode::Exponential,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.2,
            max_attempts: None,
            max_age: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// `retry.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryMode {
    /// `exponential` — capped exponential backoff with jitter.
    #[default]
    Exponential,
    /// `breaker` — Distribution's breaker: `threshold` failures retried at once, then one attempt
    /// per `backoff`.
    Breaker,
}

const EXPONENTIAL_ONLY: &[&str] = &["initial", "max", "multiplier", "jitter"];

impl Section for RetrySettings {
    const KEYS: &'static [&'static str] = &[
        "mode",
        "initial",
        "max",
        "multiplier",
        "jitter",
        "maxattempts",
        "maxage",
    ];

    fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        let p = at.key(key);
        let d = RetrySettings::default();
        match key {
            "mode" => {
                self.mode = match string(v, &p)?.as_str() {
                    "" => RetryMode::default(),
                    "exponential" => RetryMode::Exponential,
                    "breaker" => RetryMode::Breaker,
                    other => {
                        return Err(ConfigError::at(
                            p.as_str(),
                            format!("expected \"exponential\" or \"breaker\", found {other:?}"),
                        ))
                    }
                }
            }
            "initial" => self.initial = positive_duration(v, &p, d.initial)?,
            "max" => self.max = positive_duration(v, &p, d.max)?,
            "maxage" => self.max_age = positive_duration(v, &p, d.max_age)?,
            "multiplier" => self.multiplier = float(v, &p)?.unwrap_or(d.multiplier),
            "jitter" => self.jitter = float(v, &p)?.unwrap_or(d.jitter),
            "maxattempts" if v.is_null() => self.max_attempts = None,
            "maxattempts" => self.max_attempts = Some(unsigned(v, &p, u64::from(u32::MAX))? as u32),
            _ => return Err(unknown_key(at, key, Self::KEYS)),
        }
        Ok(())
    }

    fn finish(&mut self, entries: &[(&str, &Value)], at: &Path) -> Result<()> {
        if self.mode == RetryMode::Breaker {
            only_applies(
                entries,
                EXPONENTIAL_ONLY,
                at,
                "to mode: exponential (mode: breaker uses the endpoint's threshold and backoff)",
            )?;
        }
        Ok(())
    }
}

/// A duration for our extension keys: null → `default`, negative → error (Go's parser accepts
/// `-1s`; no wait can be negative), else as given (0 is rejected later by validation).
fn positive_duration(v: &Value, p: &Path, default: Duration) -> Result<Duration> {
    if v.is_null() {
        return Ok(default);
    }
    let ns = go_duration(v, p)?;
    if ns < 0 {
        return Err(not_positive(p, v));
    }
    Ok(Duration::from_nanos(ns as u64))
}
