//! The `notifications` section: Distribution's keys plus our extensions.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_yaml::Value;

use super::value::{
    boolean, entries, float, go_duration, integer, mapping, string, string_list, type_error, unknown_key,
    unsigned, Path,
};
use super::ConfigError;
use crate::{Action, Format};

type Result<T> = std::result::Result<T, ConfigError>;

/// A sub-section read key by key. `apply` merges a mapping into `self`; null resets it.
pub(crate) trait Section: Default {
    const KEYS: &'static [&'static str];

    /// Sets one known key.
    fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()>;

    fn apply(&mut self, v: &Value, at: &Path) -> Result<()> {
        match mapping(v, at)? {
            None => *self = Self::default(),
            Some(entries) => {
                for (k, v) in entries {
                    if !Self::KEYS.contains(&k) {
                        return Err(unknown_key(at, k, Self::KEYS));
                    }
                    self.set(k, v, at)?;
                }
            }
        }
        Ok(())
    }
}

/// `notifications:` — where and how registry events are sent.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct NotificationsConfig {
    /// `events:` — what goes into events.
    pub events: EventsConfig,
    /// `endpoints:` — the webhook endpoints, in file order (disabled ones included).
    pub endpoints: Vec<EndpointConfig>,
    /// Extension `nats:` — publish to (registry) or deliver from (worker) NATS JetStream; see
    /// [`NatsSettings`](super::NatsSettings).
    pub nats: Option<super::NatsSettings>,
}

/// `notifications.events:`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventsConfig {
    /// `includereferences` — list a manifest's references (layers, config, index children) in
    /// `target.references` of manifest events. Default `false`.
    pub include_references: bool,
}

impl Section for EventsConfig {
    const KEYS: &'static [&'static str] = &["includereferences"];

    fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        match key {
            "includereferences" => self.include_references = boolean(v, &at.key(key))?,
            _ => return Err(unknown_key(at, key, Self::KEYS)),
        }
        Ok(())
    }
}

/// The path of endpoint `index` in messages: `notifications.endpoints[0] ("alistener")`.
pub(crate) fn endpoint_path(index: usize, name: &str) -> Path {
    if name.is_empty() {
        Path::new(format!("notifications.endpoints[{index}]"))
    } else {
        Path::new(format!("notifications.endpoints[{index}] ({name:?})"))
    }
}

impl NotificationsConfig {
    const KEYS: &'static [&'static str] = &["events", "endpoints", "nats"];

    /// Reads the section (`None` for null); does not validate.
    pub(crate) fn read(v: &Value, at: &Path) -> Result<Option<Self>> {
        let Some(entries) = mapping(v, at)? else {
            return Ok(None);
        };
        let mut n = NotificationsConfig::default();
        for (k, v) in entries {
            n.set(k, v, at)?;
        }
        Ok(Some(n))
    }

    pub(crate) fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        match key {
            "events" => self.events.apply(v, &at.key(key)),
            "endpoints" => {
                self.endpoints = read_endpoints(v, &at.key(key))?;
                Ok(())
            }
            "nats" if v.is_null() => {
                self.nats = None;
                Ok(())
            }
            "nats" => {
                let mut nats = self.nats.take().unwrap_or_default();
                nats.apply(v, &at.key(key))?;
                self.nats = Some(nats);
                Ok(())
            }
            _ => Err(unknown_key(at, key, Self::KEYS)),
        }
    }

    /// Checks every endpoint (see [`EndpointConfig::validate`]) and that endpoint names are unique.
    pub fn validate(&self) -> Result<()> {
        if let Some(nats) = &self.nats {
            nats.validate_at(&Path::new("notifications.nats"))?;
        }
        for (i, ep) in self.endpoints.iter().enumerate() {
            let at = endpoint_path(i, &ep.name);
            ep.validate_at(&at)?;
            if ep.name.is_empty() {
                continue;
            }
            if let Some(path) = ep.queue.path.as_ref().filter(|_| !ep.disabled) {
                let same = |o: &EndpointConfig| !o.disabled && o.queue.path.as_ref() == Some(path);
                if let Some(first) = self.endpoints[..i].iter().position(same) {
                    return Err(ConfigError::field(
                        at.key("queue.path").as_str(),
                        format!(
                            "must differ from the queue path of endpoints[{first}] (one directory per queue)"
                        ),
                    ));
                }
            }
            if let Some(first) = self.endpoints[..i].iter().position(|other| other.name == ep.name) {
                return Err(ConfigError::at(
                    at.key("name").as_str(),
                    format!(
                        "endpoint names must be unique, {:?} is also the name of endpoints[{first}]",
                        ep.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The endpoints that are not `disabled`.
    pub fn enabled_endpoints(&self) -> impl Iterator<Item = &EndpointConfig> + '_ {
        self.endpoints.iter().filter(|e| !e.disabled)
    }
}

pub(crate) fn read_endpoints(v: &Value, at: &Path) -> Result<Vec<EndpointConfig>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| EndpointConfig::read(item, i))
            .collect(),
        other => Err(type_error(at, "a list of endpoints", other)),
    }
}

/// One webhook endpoint (`notifications.endpoints[]`): Distribution's keys, then our extensions.
///
/// Every field holds its effective value: defaults are filled in, and Distribution's rule "a
/// `timeout`, `threshold` or `backoff` ≤ 0 means the default" has been applied.
///
/// `Debug` shows header names but not their values, and the URL without credentials or query.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct EndpointConfig {
    /// `name` — identifies the endpoint in logs and metrics. Required unless `disabled`; unique.
    pub name: String,
    /// `disabled` — the endpoint is parsed and checked but not started.
    pub disabled: bool,
    /// `url` — where events are POSTed; `http://` or `https://`. Required unless `disabled`.
    /// User info (`https://user:pass@host/`) is sent as basic authentication, as Go does.
    pub url: String,
    /// `headers` — extra request headers, name → values, in file order; each value is sent as its
    /// own header line. Distribution writes lists (`Authorization: [Bearer x]`); a single string is
    /// accepted too.
    pub headers: Vec<(String, Vec<String>)>,
    /// `timeout` — per-request timeout. Default 1 s.
    pub timeout: Duration,
    /// `threshold` — `retry.mode: breaker` only: failures retried at once before backing off.
    /// Default 10.
    pub threshold: u32,
    /// `backoff` — `retry.mode: breaker` only: wait between attempts once the breaker is open.
    /// Default 1 s.
    pub backoff: Duration,
    /// `ignoredmediatypes` — Distribution's legacy list, merged with `ignore.mediatypes`.
    pub ignored_media_types: Vec<String>,
    /// `ignore` — events dropped for this endpoint.
    pub ignore: IgnoreConfig,
    /// Extension `format` — `events.v2` (default, Distribution 3), `events.v1` (Distribution 2),
    /// `cloudevents` (CloudEvents 1.0 structured mode, one event per request: `maxevents` must
    /// be 1) or `cloudevents-batch` (CloudEvents 1.0 batch mode).
    pub format: Format,
    /// Extension `maxevents` — most events per envelope. Default 1 (Distribution never batches).
    pub max_events: usize,
    /// Extension `linger` — with `maxevents` above 1, how long a busy endpoint waits for a
    /// partly filled envelope to fill (default 1ms; `0` never waits).
    pub linger: Duration,
    /// Extension `queue`.
    pub queue: QueueSettings,
    /// Extension `retry`.
    pub retry: RetrySettings,
    /// Extension `filter`.
    pub filter: FilterSettings,
    /// Extension `redirects` — `success` counts a 3xx answer as delivered, as Distribution does;
    /// `failure` (the default) retries it.
    pub redirects_as_success: bool,
    /// Extension `tls`.
    pub tls: TlsSettings,
    /// Extension `signing`.
    pub signing: SigningSettings,
}

/// Extension `signing:` — Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature`) on every request of the endpoint.
///
/// `Debug` shows how many secrets there are, never their values.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SigningSettings {
    /// `secrets` — `whsec_<base64>` secrets, one signature per secret (several for rotation).
    /// Empty: requests are not signed.
    pub secrets: Vec<String>,
}

impl fmt::Debug for SigningSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningSettings")
            .field("secrets", &vec!["<redacted>"; self.secrets.len()])
            .finish()
    }
}

impl Section for SigningSettings {
    const KEYS: &'static [&'static str] = &["secrets"];

    fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        let p = at.key(key);
        match key {
            "secrets" => self.secrets = string_list(v, &p)?,
            _ => return Err(unknown_key(at, key, Self::KEYS)),
        }
        Ok(())
    }
}

/// `ignore:` of an endpoint. Media types match exactly; actions are `push`, `pull`, `mount`,
/// `delete`. The two lists are independent (an event is dropped if either matches).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IgnoreConfig {
    /// `mediatypes` — target media types to drop.
    pub media_types: Vec<String>,
    /// `actions` — actions to drop.
    pub actions: Vec<Action>,
}

impl Section for IgnoreConfig {
    const KEYS: &'static [&'static str] = &["mediatypes", "actions"];

    fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        let p = at.key(key);
        match key {
            "mediatypes" => self.media_types = string_list(v, &p)?,
            "actions" => {
                self.actions = string_list(v, &p)?
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        a.parse::<Action>()
                            .map_err(|e| ConfigError::at(format!("{}[{i}]", p.as_str()), e))
                    })
                    .collect::<Result<_>>()?
            }
            _ => return Err(unknown_key(at, key, Self::KEYS)),
        }
        Ok(())
    }
}

/// Extension `queue:` — the endpoint's bounded queue (Distribution's is unbounded), in memory or,
/// with `path`, on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueSettings {
    /// `capacity` — most events held. Default 100 000; unlimited with `path` (then `maxbytes` bounds
    /// the queue) unless given.
    pub capacity: usize,
    /// `overflow` — what a full queue drops. Default `dropoldest`.
    pub overflow: QueueOverflow,
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
            overflow: QueueOverflow::DropOldest,
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

/// `queue.overflow`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueOverflow {
    /// `dropoldest` — make room by dropping the oldest queued events.
    #[default]
    DropOldest,
    /// `dropnewest` — drop the incoming events.
    DropNewest,
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
                    "" => QueueOverflow::default(),
                    "dropoldest" => QueueOverflow::DropOldest,
                    "dropnewest" => QueueOverflow::DropNewest,
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

    fn apply(&mut self, v: &Value, at: &Path) -> Result<()> {
        match mapping(v, at)? {
            None => *self = Self::default(),
            Some(entries) => {
                for &(k, v) in &entries {
                    if !Self::KEYS.contains(&k) {
                        return Err(unknown_key(at, k, Self::KEYS));
                    }
                    self.set(k, v, at)?;
                }
                if self.path.is_none() {
                    if let Some((k, _)) = entries
                        .iter()
                        .find(|(k, v)| DURABLE_ONLY.contains(k) && !v.is_null())
                    {
                        return Err(ConfigError::field(
                            at.key(k).as_str(),
                            "only applies to a durable queue (set queue.path)",
                        ));
                    }
                } else if !entries.iter().any(|(k, v)| *k == "capacity" && !v.is_null()) {
                    // On disk, `maxbytes` bounds the queue.
                    self.capacity = usize::MAX;
                }
            }
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

    fn apply(&mut self, v: &Value, at: &Path) -> Result<()> {
        match mapping(v, at)? {
            None => *self = Self::default(),
            Some(entries) => {
                for &(k, v) in &entries {
                    if !Self::KEYS.contains(&k) {
                        return Err(unknown_key(at, k, Self::KEYS));
                    }
                    self.set(k, v, at)?;
                }
                if self.mode == RetryMode::Breaker {
                    if let Some((k, _)) = entries
                        .iter()
                        .find(|(k, v)| EXPONENTIAL_ONLY.contains(k) && !v.is_null())
                    {
                        return Err(ConfigError::field(
                            at.key(k).as_str(),
                            "only applies to mode: exponential (mode: breaker uses the endpoint's threshold and backoff)",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A duration for our extension keys: null → `default`, negative → error, else as given (0 is
/// rejected later by validation).
fn positive_duration(v: &Value, p: &Path, default: Duration) -> Result<Duration> {
    if v.is_null() {
        return Ok(default);
    }
    let ns = go_duration(v, p)?;
    if ns < 0 {
        return Err(ConfigError::field(p.as_str(), "must be > 0"));
    }
    Ok(Duration::from_nanos(ns as u64))
}

/// Extension `filter:` — which events this endpoint receives, beyond `ignore`.
///
/// ```yaml
/// filter:
///   repositories:
///     include: ["team-a/**"]     # only these (default: all)
///     exclude: ["**/cache"]      # never these
///   methods:
///     exclude: [HEAD]            # drop pulls made with HEAD requests
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FilterSettings {
    /// `repositories.include` — repository globs (`*` within a path segment, `**` across
    /// segments); when non-empty, only matching repositories are sent.
    pub include_repositories: Vec<String>,
    /// `repositories.exclude` — repository globs never sent.
    pub exclude_repositories: Vec<String>,
    /// `methods.exclude` — HTTP methods (upper case) whose events are dropped, e.g. `HEAD`.
    pub exclude_methods: Vec<String>,
}

impl Section for FilterSettings {
    const KEYS: &'static [&'static str] = &["repositories", "methods"];

    fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        let p = at.key(key);
        match key {
            "repositories" => {
                let Some(entries) = mapping(v, &p)? else {
                    self.include_repositories.clear();
                    self.exclude_repositories.clear();
                    return Ok(());
                };
                for (k, v) in entries {
                    match k {
                        "include" => self.include_repositories = string_list(v, &p.key(k))?,
                        "exclude" => self.exclude_repositories = string_list(v, &p.key(k))?,
                        _ => return Err(unknown_key(&p, k, &["include", "exclude"])),
                    }
                }
            }
            "methods" => {
                let Some(entries) = mapping(v, &p)? else {
                    self.exclude_methods.clear();
                    return Ok(());
                };
                for (k, v) in entries {
                    match k {
                        "exclude" => {
                            self.exclude_methods = string_list(v, &p.key(k))?
                                .into_iter()
                                .map(|m| m.to_ascii_uppercase())
                                .collect()
                        }
                        _ => return Err(unknown_key(&p, k, &["exclude"])),
                    }
                }
            }
            _ => return Err(unknown_key(at, key, Self::KEYS)),
        }
        Ok(())
    }
}

/// Extension `tls:` — trust settings for `https://` endpoints (Distribution has none: #1463, #3824).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsSettings {
    /// `ca` — extra trusted CA certificates, as a file path or inline PEM; added to the system roots.
    pub ca: Option<CaSource>,
    /// `insecureskipverify` — accept any server certificate. Dangerous; for tests only (a WARN
    /// line says so when the endpoint starts).
    pub insecure_skip_verify: bool,
    /// `clientcert` — client certificate chain (PEM, leaf first) for mutual TLS, as a file path
    /// or inline PEM; needs `clientkey`.
    pub client_cert: Option<CaSource>,
    /// `clientkey` — the private key of `clientcert` (PEM), as a file path or inline PEM.
    pub client_key: Option<CaSource>,
}

/// Where `tls.ca` (or `tls.clientcert`, `tls.clientkey`) comes from: a value containing
/// `-----BEGIN` is inline PEM, anything else a path (relative paths are relative to the working
/// directory, as for Distribution's own TLS files). `Debug` never shows inline PEM.
#[derive(Clone, PartialEq, Eq)]
pub enum CaSource {
    /// A PEM file to read when the endpoint is built.
    File(PathBuf),
    /// Inline PEM text.
    Pem(String),
}

impl fmt::Debug for CaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaSource::File(p) => f.debug_tuple("File").field(p).finish(),
            CaSource::Pem(pem) => write!(f, "Pem(<{} bytes>)", pem.len()),
        }
    }
}

impl Section for TlsSettings {
    const KEYS: &'static [&'static str] = &["ca", "insecureskipverify", "clientcert", "clientkey"];

    fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        let p = at.key(key);
        let source = |text: String| {
            if text.trim().is_empty() {
                None
            } else if text.contains("-----BEGIN") {
                Some(CaSource::Pem(text))
            } else {
                Some(CaSource::File(PathBuf::from(text)))
            }
        };
        match key {
            "ca" => self.ca = source(string(v, &p)?),
            "clientcert" => self.client_cert = source(string(v, &p)?),
            "clientkey" => self.client_key = source(string(v, &p)?),
            "insecureskipverify" => self.insecure_skip_verify = boolean(v, &p)?,
            _ => return Err(unknown_key(at, key, Self::KEYS)),
        }
        Ok(())
    }
}

impl TlsSettings {
    /// The CA bundle as PEM bytes: inline PEM as is, or the file's contents (read now).
    /// `Ok(None)` when no `ca` is configured.
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>> {
        match &self.ca {
            None => Ok(None),
            Some(CaSource::Pem(pem)) => Ok(Some(pem.clone().into_bytes())),
            Some(CaSource::File(path)) => {
                let pem = std::fs::read(path).map_err(|e| {
                    ConfigError::at("tls.ca", format!("cannot read CA file {}: {e}", path.display()))
                })?;
                if !contains(&pem, b"-----BEGIN CERTIFICATE-----") {
                    return Err(ConfigError::at(
                        "tls.ca",
                        format!(
                            "{} contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
                            path.display()
                        ),
                    ));
                }
                Ok(Some(pem))
            }
        }
    }
}

impl TlsSettings {
    /// The client certificate and key as PEM bytes (files read now); `Ok(None)` when neither
    /// is configured. Errors name the key (`tls.clientcert`, `tls.clientkey`), never the PEM.
    pub fn client_identity_pem(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let read = |key: &str, source: &CaSource| match source {
            CaSource::Pem(pem) => Ok(pem.clone().into_bytes()),
            CaSource::File(path) => std::fs::read(path)
                .map_err(|e| ConfigError::at(key, format!("cannot read {}: {e}", path.display()))),
        };
        match (&self.client_cert, &self.client_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some((read("tls.clientcert", cert)?, read("tls.clientkey", key)?))),
            (Some(_), None) => Err(ConfigError::at(
                "tls.clientkey",
                "is required with tls.clientcert",
            )),
            (None, Some(_)) => Err(ConfigError::at(
                "tls.clientcert",
                "is required with tls.clientkey",
            )),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            name: String::new(),
            disabled: false,
            url: String::new(),
            headers: Vec::new(),
            timeout: EndpointConfig::DEFAULT_TIMEOUT,
            threshold: EndpointConfig::DEFAULT_THRESHOLD,
            backoff: EndpointConfig::DEFAULT_BACKOFF,
            ignored_media_types: Vec::new(),
            ignore: IgnoreConfig::default(),
            format: Format::EventsV2,
            max_events: 1,
            linger: crate::queue::DEFAULT_LINGER,
            queue: QueueSettings::default(),
            retry: RetrySettings::default(),
            filter: FilterSettings::default(),
            redirects_as_success: false,
            tls: TlsSettings::default(),
            signing: SigningSettings::default(),
        }
    }
}

impl Section for EndpointConfig {
    const KEYS: &'static [&'static str] = &[
        "name",
        "disabled",
        "url",
        "headers",
        "timeout",
        "threshold",
        "backoff",
        "ignoredmediatypes",
        "ignore",
        "format",
        "maxevents",
        "linger",
        "queue",
        "retry",
        "filter",
        "redirects",
        "tls",
        "signing",
    ];

    fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        let p = at.key(key);
        match key {
            "name" => self.name = string(v, &p)?,
            "disabled" => self.disabled = boolean(v, &p)?,
            "url" => self.url = string(v, &p)?,
            "headers" => apply_headers(&mut self.headers, v, &p)?,
            "timeout" => self.timeout = distribution_duration(v, &p, Self::DEFAULT_TIMEOUT)?,
            "backoff" => self.backoff = distribution_duration(v, &p, Self::DEFAULT_BACKOFF)?,
            "threshold" => {
                let t = integer(v, &p)?;
                self.threshold = if t <= 0 {
                    Self::DEFAULT_THRESHOLD
                } else {
                    u32::try_from(t).map_err(|_| {
                        ConfigError::field(p.as_str(), format!("is too large (at most {})", u32::MAX))
                    })?
                };
            }
            "ignoredmediatypes" => self.ignored_media_types = string_list(v, &p)?,
            "ignore" => self.ignore.apply(v, &p)?,
            "format" => {
                let f = string(v, &p)?;
                self.format = if f.is_empty() {
                    Format::default()
                } else {
                    f.parse::<Format>().map_err(|e| ConfigError::at(p.as_str(), e))?
                };
            }
            "maxevents" if v.is_null() => self.max_events = 1,
            "maxevents" => self.max_events = unsigned(v, &p, usize::MAX as u64)? as usize,
            "linger" if v.is_null() => self.linger = crate::queue::DEFAULT_LINGER,
            "linger" => {
                let ns = go_duration(v, &p)?;
                if ns < 0 {
                    return Err(ConfigError::field(p.as_str(), "must not be negative"));
                }
                self.linger = Duration::from_nanos(ns as u64);
            }
            "queue" => self.queue.apply(v, &p)?,
            "retry" => self.retry.apply(v, &p)?,
            "filter" => self.filter.apply(v, &p)?,
            "redirects" => {
                self.redirects_as_success = match string(v, &p)?.as_str() {
                    "success" => true,
                    "failure" | "" => false,
                    other => {
                        return Err(ConfigError::at(
                            p.as_str(),
                            format!("expected \"success\" or \"failure\", found {other:?}"),
                        ))
                    }
                }
            }
            "tls" => self.tls.apply(v, &p)?,
            "signing" => self.signing.apply(v, &p)?,
            _ => return Err(unknown_key(at, key, Self::KEYS)),
        }
        Ok(())
    }
}

/// Distribution's `timeout`/`backoff`: a Go duration; ≤ 0 (or absent) means `default`.
fn distribution_duration(v: &Value, p: &Path, default: Duration) -> Result<Duration> {
    let ns = go_duration(v, p)?;
    Ok(if ns <= 0 {
        default
    } else {
        Duration::from_nanos(ns as u64)
    })
}

/// Merges a `headers` mapping: each name replaces an existing header of the same name (names are
/// case-insensitive); null clears all headers. Values are never quoted in errors.
fn apply_headers(headers: &mut Vec<(String, Vec<String>)>, v: &Value, at: &Path) -> Result<()> {
    let Some(entries) = mapping(v, at)? else {
        headers.clear();
        return Ok(());
    };
    for (i, &(name, value)) in entries.iter().enumerate() {
        if let Some(&(first, _)) = entries[..i].iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(ConfigError::at(
                at.as_str(),
                format!(
                    "header {name:?} is given twice (also as {first:?}; header names are case-insensitive): \
                     list all its values under one name"
                ),
            ));
        }
        let values = string_list(value, &at.key(name))?;
        match headers.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(slot) => slot.1 = values,
            None => headers.push((name.to_owned(), values)),
        }
    }
    Ok(())
}

impl EndpointConfig {
    /// Distribution's default `timeout`: 1 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
    /// Distribution's default `threshold`: 10.
    pub const DEFAULT_THRESHOLD: u32 = 10;
    /// Distribution's default `backoff`: 1 s.
    pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

    /// Reads endpoint `index` of `notifications.endpoints`; does not validate.
    pub(crate) fn read(v: &Value, index: usize) -> Result<Self> {
        let base = endpoint_path(index, "");
        let Value::Mapping(m) = v else {
            return Err(type_error(&base, "a mapping (one endpoint)", v));
        };
        let entries = entries(m, &base)?;
        // Name the endpoint in every message, if it has a readable name.
        let name = entries
            .iter()
            .find(|(k, _)| *k == "name")
            .and_then(|(_, v)| string(v, &base).ok())
            .unwrap_or_default();
        let mut ep = EndpointConfig::default();
        ep.apply(v, &endpoint_path(index, &name))?;
        Ok(ep)
    }

    /// Checks the values: required `name` and `url` (unless `disabled`), an `http(s)://` URL, valid
    /// header names and values, and our extensions' ranges. Errors start with `endpoint "<name>"`.
    pub fn validate(&self) -> Result<()> {
        self.validate_at(&Path::new(format!("endpoint {:?}", self.name)))
    }

    pub(crate) fn validate_at(&self, at: &Path) -> Result<()> {
        let must = |key: &str, msg: &str| ConfigError::field(at.key(key).as_str(), msg.to_owned());
        if !self.disabled {
            if self.name.is_empty() {
                return Err(must("name", "is required"));
            }
            if self.url.is_empty() {
                return Err(must("url", "is required"));
            }
        }
        if !self.url.is_empty() {
            check_url(&self.url).map_err(|msg| {
                ConfigError::at(
                    at.key("url").as_str(),
                    format!("{msg} (got {:?})", redact_url(&self.url)),
                )
            })?;
        }
        for (name, values) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ConfigError::at(
                    at.key("headers").as_str(),
                    format!("invalid header name {name:?}"),
                ));
            }
            for (i, value) in values.iter().enumerate() {
                if http::HeaderValue::from_str(value).is_err() {
                    return Err(ConfigError::at(
                        format!("{}[{i}]", at.key("headers").key(name).as_str()),
                        "invalid header value (control characters are not allowed)",
                    ));
                }
            }
        }
        if self.timeout.is_zero() {
            return Err(must("timeout", "must be > 0"));
        }
        if self.threshold == 0 {
            return Err(must("threshold", "must be > 0"));
        }
        if self.backoff.is_zero() {
            return Err(must("backoff", "must be > 0"));
        }
        if self.max_events == 0 {
            return Err(must("maxevents", "must be > 0"));
        }
        if self.queue.capacity == 0 {
            return Err(must("queue.capacity", "must be > 0"));
        }
        if self.queue.path.is_some() {
            if self.queue.max_bytes < 64 << 10 {
                return Err(must("queue.maxbytes", "must be at least 65536 (64KiB)"));
            }
            if self.queue.fsync_interval.is_zero() {
                return Err(must("queue.fsyncinterval", "must be > 0"));
            }
        }
        let r = &self.retry;
        if r.initial.is_zero() {
            return Err(must("retry.initial", "must be > 0"));
        }
        if r.max < r.initial {
            return Err(must(
                "retry.max",
                &format!("({:?}) must be >= retry.initial ({:?})", r.max, r.initial),
            ));
        }
        if !(r.multiplier.is_finite() && r.multiplier >= 1.0) {
            return Err(must("retry.multiplier", "must be >= 1"));
        }
        if !(0.0..=1.0).contains(&r.jitter) {
            return Err(must("retry.jitter", "must be between 0 and 1"));
        }
        if r.max_attempts == Some(0) {
            return Err(must("retry.maxattempts", "must be > 0"));
        }
        if r.max_age.is_zero() {
            return Err(must("retry.maxage", "must be > 0"));
        }
        for (key, globs) in [
            ("filter.repositories.include", &self.filter.include_repositories),
            ("filter.repositories.exclude", &self.filter.exclude_repositories),
        ] {
            if let Some(i) = globs.iter().position(|g| g.trim().is_empty()) {
                return Err(ConfigError::field(
                    format!("{}[{i}]", at.key(key).as_str()),
                    "must not be empty",
                ));
            }
        }
        for (i, m) in self.filter.exclude_methods.iter().enumerate() {
            if m.is_empty() || http::Method::from_bytes(m.as_bytes()).is_err() {
                return Err(ConfigError::at(
                    format!("{}[{i}]", at.key("filter.methods.exclude").as_str()),
                    format!("{m:?} is not an HTTP method"),
                ));
            }
        }
        if self.format.is_single_event() && self.max_events > 1 {
            return Err(must(
                "maxevents",
                "must be 1 with format cloudevents (one event per request; use cloudevents-batch to batch)",
            ));
        }
        if self.tls.client_cert.is_some() != self.tls.client_key.is_some() {
            return Err(must("tls", "clientcert and clientkey must be given together"));
        }
        #[cfg(feature = "signing")]
        if !self.signing.secrets.is_empty() {
            crate::signing::Signer::new(&self.signing.secrets)
                .map_err(|e| ConfigError::at(at.key("signing").as_str(), e.to_string()))?;
        }
        #[cfg(not(feature = "signing"))]
        if !self.signing.secrets.is_empty() {
            return Err(must("signing", "needs the `signing` feature of registry-notify"));
        }
        if let Some(CaSource::Pem(pem)) = &self.tls.ca {
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(must(
                    "tls.ca",
                    "contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
                ));
            }
        }
        Ok(())
    }

    /// `ignoredmediatypes` followed by `ignore.mediatypes`, without duplicates (Distribution
    /// concatenates the two lists).
    pub fn all_ignored_media_types(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for m in self.ignored_media_types.iter().chain(&self.ignore.media_types) {
            if !all.contains(m) {
                all.push(m.clone());
            }
        }
        all
    }

    /// The URL to POST to and the header lines to send, as Go's HTTP client would: user info in
    /// the URL is removed from it and sent as `Authorization: Basic …` (first), unless an
    /// `Authorization` header is configured, which then wins. Each header value is one line.
    pub fn http_target(&self) -> (String, Vec<(String, String)>) {
        let (userinfo, url) = split_userinfo(&self.url);
        let mut lines: Vec<(String, String)> = Vec::new();
        if let Some(userinfo) = userinfo {
            let has_auth = self
                .headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("authorization") && !v.is_empty());
            if !has_auth {
                use base64::Engine as _;
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let mut credentials = percent_decode(user);
                credentials.push(b':');
                credentials.extend(percent_decode(pass));
                let token = base64::engine::general_purpose::STANDARD.encode(credentials);
                lines.push(("Authorization".to_owned(), format!("Basic {token}")));
            }
        }
        for (name, values) in &self.headers {
            lines.extend(values.iter().map(|v| (name.clone(), v.clone())));
        }
        (url, lines)
    }

    /// The URL without user info or query, safe to log: `https://***@host/path?***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Headers<'a>(&'a [(String, Vec<String>)]);
        impl fmt::Debug for Headers<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|(n, v)| (n, vec!["<redacted>"; v.len()])))
                    .finish()
            }
        }
        f.debug_struct("EndpointConfig")
            .field("name", &self.name)
            .field("disabled", &self.disabled)
            .field("url", &self.redacted_url())
            .field("headers", &Headers(&self.headers))
            .field("timeout", &self.timeout)
            .field("threshold", &self.threshold)
            .field("backoff", &self.backoff)
            .field("ignored_media_types", &self.ignored_media_types)
            .field("ignore", &self.ignore)
            .field("format", &self.format)
            .field("max_events", &self.max_events)
            .field("linger", &self.linger)
            .field("queue", &self.queue)
            .field("retry", &self.retry)
            .field("filter", &self.filter)
            .field("redirects_as_success", &self.redirects_as_success)
            .field("tls", &self.tls)
            .field("signing", &self.signing)
            .finish()
    }
}

/// Splits `scheme://userinfo@host/…` into the user info and the URL without it.
pub(crate) fn split_userinfo(url: &str) -> (Option<&str>, String) {
    let Some(i) = url.find("://") else {
        return (None, url.to_owned());
    };
    let (scheme, rest) = url.split_at(i + 3);
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..auth_end].rfind('@') {
        Some(at) => (Some(&rest[..at]), format!("{scheme}{}", &rest[at + 1..])),
        None => (None, url.to_owned()),
    }
}

/// `url` without user info, query or fragment markers' contents: `https://***@host/path?***`.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (auth, tail) = rest.split_at(auth_end);
    let (userinfo, host) = match auth.rfind('@') {
        Some(i) => ("***@", &auth[i + 1..]),
        None => ("", auth),
    };
    // A non-numeric "port" may be a password whose "@host" is missing: hide it.
    let host = match host.rsplit_once(':') {
        Some((h, port)) if !host.ends_with(']') && !port.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{h}:***")
        }
        _ => host.to_owned(),
    };
    let auth = format!("{userinfo}{host}");
    let tail = match tail.find(['?', '#']) {
        Some(i) if tail[i..].starts_with('?') => format!("{}?***", &tail[..i]),
        Some(i) => tail[..i].to_owned(),
        None => tail.to_owned(),
    };
    format!("{scheme}{auth}{tail}")
}

pub(crate) fn check_url(url: &str) -> std::result::Result<(), &'static str> {
    if !url.contains("://") {
        return Err("must be an http:// or https:// URL");
    }
    let (_, url) = split_userinfo(url);
    let uri: http::Uri = url.parse().map_err(|_| "is not a valid URL")?;
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {}
        _ => return Err("must be an http:// or https:// URL"),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    if let Some(authority) = uri.authority() {
        let port = authority.as_str().rsplit_once(':').map(|(_, p)| p);
        if port.is_some_and(|p| !authority.as_str().ends_with(']') && !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err("has an invalid port");
        }
    }
    Ok(())
}

pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_userinfo_and_query() {
        let cases = [
            (
                "https://user:pass@host:8443/p?token=x#frag",
                "https://***@host:8443/p?***",
            ),
            ("https://host/p", "https://host/p"),
            ("https://host/p#frag", "https://host/p"),
            ("https://a@b@host", "https://***@host"),
            ("http://host?x=1", "http://host?***"),
            ("user:pass@host/x", "***@host/x"),
            ("", ""),
            ("://@", "://***@"),
            ("héllo://ü@ß/ä?ö", "héllo://***@ß/ä?***"),
            ("https://user:password", "https://user:***"),
            ("https://host:8080/x", "https://host:8080/x"),
            ("https://[::1]:8080/x", "https://[::1]:8080/x"),
            ("https://[::1]/x", "https://[::1]/x"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn userinfo_split_and_percent_decoding() {
        assert_eq!(
            split_userinfo("https://u:p@h/x@y"),
            (Some("u:p"), "https://h/x@y".to_owned())
        );
        assert_eq!(
            split_userinfo("https://h/x@y"),
            (None, "https://h/x@y".to_owned())
        );
        assert_eq!(split_userinfo("no-scheme@h"), (None, "no-scheme@h".to_owned()));
        assert_eq!(percent_decode("a%40b%3a%zz%4"), b"a@b:%zz%4");
        assert_eq!(percent_decode("%"), b"%");
        assert_eq!(percent_decode("ü%C3%BC"), "üü".as_bytes());
    }

    #[test]
    fn url_checks() {
        assert_eq!(check_url("http://h"), Ok(()));
        assert_eq!(check_url("https://u:p@h:1/x?y"), Ok(()));
        assert_eq!(check_url("ftp://h"), Err("must be an http:// or https:// URL"));
        assert_eq!(check_url("h:80"), Err("must be an http:// or https:// URL"));
        assert_eq!(check_url("http://"), Err("is not a valid URL"));
        assert_eq!(check_url("http://h ost/"), Err("is not a valid URL"));
        assert_eq!(check_url("https://user:password"), Err("has an invalid port"));
        assert_eq!(check_url("https://h:/"), Ok(()));
        assert_eq!(check_url("https://[::1]:8080/"), Ok(()));
        assert_eq!(check_url("https://[::1]/"), Ok(()));
    }
}
