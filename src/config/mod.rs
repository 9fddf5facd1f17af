//! Reading Distribution's own registry configuration (`config.yml`), so that a registry built on
//! this crate can take an existing Distribution config file unchanged.
//!
//! [`Config::from_yaml_str`] / [`Config::from_path`] parse the whole file. Only the parts this crate
//! uses are kept: `version`, `http` (address, external host, prefix), `storage` (driver and
//! `delete.enabled`) and all of `notifications`. Every other top-level section of a Distribution
//! config (`log`, `auth`, `redis`, `health`, `proxy`, `middleware`, `validation`, `compatibility`,
//! …) is accepted and ignored; its name is listed in [`Config::ignored_sections`].
//!
//! Inside `notifications`, on the other hand, every key is checked: an unknown key is an error
//! that names it and the endpoint, with a suggestion —
//! `notifications.endpoints[0] ("alistener"): unknown key "timout" (did you mean "timeout"?)` —
//! because a mistyped key there silently changes where and how events are delivered.
//!
//! ```
//! use std::time::Duration;
//! use registry_notify::config::{Config, RetryMode};
//!
//! let config = Config::from_yaml_str(r#"
//! version: 0.1
//! log:
//!   level: info
//! storage:
//!   filesystem:
//!     rootdirectory: /var/lib/registry
//!   delete:
//!     enabled: true
//! http:
//!   addr: :5000
//! notifications:
//!   events:
//!     includereferences: true
//!   endpoints:
//!     - name: alistener
//!       url: https://listener.example.com/event
//!       headers:
//!         Authorization: [Bearer <token>]
//!       timeout: 500ms
//!       threshold: 5
//!       backoff: 1s
//!       ignore:
//!         actions: [pull]
//!       retry:
//!         mode: breaker         # extension: Distribution's retry behaviour
//! "#)?;
//!
//! assert_eq!(config.http.addr, ":5000");
//! assert!(config.storage.delete_enabled);
//! assert_eq!(config.ignored_sections, ["log"]);
//! let notifications = config.notifications.as_ref().unwrap();
//! assert!(notifications.events.include_references);
//! let endpoint = &notifications.endpoints[0];
//! assert_eq!(endpoint.timeout, Duration::from_millis(500));
//! assert_eq!(endpoint.threshold, 5);
//! assert_eq!(endpoint.retry.mode, RetryMode::Breaker);
//! // Secrets stay out of Debug output.
//! assert!(!format!("{endpoint:?}").contains("<token>"));
//! # Ok::<(), registry_notify::config::ConfigError>(())
//! ```
//!
//! # Distribution's endpoint keys
//!
//! Same keys, types and defaults as `configuration.Endpoint` in Distribution 2.8 and 3.x:
//!
//! | key | type | default |
//! |---|---|---|
//! | `name` | string, required unless `disabled`, unique | |
//! | `disabled` | bool | `false` |
//! | `url` | `http://` or `https://` URL, required unless `disabled` | |
//! | `headers` | map of name → list of values (a single string is accepted) | none |
//! | `timeout` | Go duration | `1s` |
//! | `threshold` | integer | `10` |
//! | `backoff` | Go duration | `1s` |
//! | `ignoredmediatypes` | list of media types | none |
//! | `ignore.mediatypes` | list of media types | none |
//! | `ignore.actions` | list of `push`, `pull`, `mount`, `delete` | none |
//!
//! `notifications.events.includereferences` (bool, default `false`) is supported too.
//!
//! `ignore.actions` works even when no media type is ignored (Distribution before 3.1 ignored it
//! in that case, distribution#2916).
//!
//! **Durations** use Go's `time.ParseDuration` syntax exactly: `1s`,
//! `500ms`, `1m30s`, `1h`, `2.5s`, `300us`/`300µs`, `100ns`, `0`. A bare number such as
//! `timeout: 500` is an error: Distribution reads it as 500 *nanoseconds*, which makes every
//! delivery time out (SUSE/Portus#905); the message suggests `500ms`.
//!
//! # Values that make no sense are refused
//!
//! Go's parser accepts `-1s`, and Distribution takes `timeout: -1s`, `threshold: -5` or
//! `http.addr: ':::::'` without a word (the first two silently become the defaults, the last
//! fails only when the server starts). This crate refuses them when the file is loaded, naming
//! the field and the value: `notifications.endpoints[0] ("a").timeout must be > 0, got -1s (…)`.
//! It is a deliberate difference from Distribution:
//!
//! - `timeout`, `threshold` and `backoff` must be > 0. Distribution replaces a value ≤ 0 with its
//!   default; leave the key out (or empty) for the default instead.
//! - Every other duration must be > 0 too (`retry.initial`, `retry.max`, `retry.maxage`,
//!   `queue.fsyncinterval`, `nats.ackwait`, `nats.duplicatewindow`), except `linger`, where `0`
//!   turns lingering off (negative is refused).
//! - Counts (`maxevents`, `queue.capacity`, `retry.maxattempts`, `nats.maxinflight`, …) must not
//!   be negative, and must be > 0.
//! - `http.addr` and `http.debug.addr` must be listen addresses: `:PORT` (all interfaces),
//!   `HOST:PORT` or `[IPv6]:PORT`, with a port from 0 to 65535, as Go's `net.Listen` reads them
//!   (except that a service name such as `:http` is not accepted as a port). With `http.net:
//!   unix`, `http.addr` is a socket path and is not checked.
//!
//! Beyond the reading of each value, an endpoint's settings are checked by the stages they
//! configure — the HTTP sink (URL, headers, timeout, signing), batching, the queues and the retry
//! policies — with the same checks
//! [`EndpointBuilder::build`](crate::endpoint::EndpointBuilder::build) runs: one validator for
//! the YAML and the builder, whose errors name the YAML key either way
//! (`endpoint "a".queue.capacity must be > 0` from the builder).
//!
//! Values are read as Go's YAML library reads them: `yes`/`no`/`on`/`off` are booleans, numbers
//! are accepted where text is expected (`name: 123`), YAML anchors and `<<` merge keys work.
//!
//! # Extensions
//!
//! These keys do not exist in Distribution (which would ignore them), so a file using them still
//! works with Distribution.
//!
//! **`format`** — the envelope format: `events.v2` (default; Distribution 3, media type
//! `application/vnd.docker.distribution.events.v2+json`) or `events.v1` (Distribution 2.x).
//!
//! ```yaml
//! format: events.v1
//! ```
//!
//! **`maxevents`** — the most events sent in one envelope. Default `1`, like Distribution.
//!
//! ```yaml
//! maxevents: 50
//! ```
//!
//! **`linger`** — with `maxevents` above 1: how long a busy endpoint waits for a partly filled
//! envelope to fill. Default `1ms`; `0` never waits. An idle endpoint (one event at a time)
//! and one that is behind (full envelopes) never wait, so it only turns a stream of small
//! envelopes into fewer, larger ones.
//!
//! ```yaml
//! maxevents: 100
//! linger: 2ms
//! ```
//!
//! **`concurrency`** — ordered lanes delivering at once (default `1`, Distribution's one POST at
//! a time): the events of one repository always take the same lane and arrive in order, different
//! repositories go in parallel, with or without `maxevents`. Each lane has its own queue, worker
//! and retry; `queue` settings apply per lane (`capacity`, and `maxbytes`: N times as much disk in
//! all). A durable queue keeps lane `i` in `path/lane-<i>` and a restart keeps each lane's
//! progress. At most 64.
//!
//! ```yaml
//! concurrency: 4
//! ```
//!
//! **`format: template`** with **`template`** (`preset: slack | teams | discord`, or `file`, or
//! `source`; `contenttype`) renders each POST's body with a template instead of the envelope
//! (feature `templates`; see [`PayloadTemplate`](crate::http_sink)).
//!
//! ```yaml
//! format: template
//! template:
//!   preset: slack
//! ```
//!
//! **`queue`** — the endpoint's in-memory queue is bounded (Distribution's grows without limit
//! while an endpoint is down). `capacity` counts events (default 100000); `overflow` is
//! `dropoldest` (default) or `dropnewest`.
//!
//! ```yaml
//! queue:
//!   capacity: 10000
//!   overflow: dropnewest
//! ```
//!
//! With `path`, the queue is on disk and survives restarts, crashes and `kill -9` (the `durable`
//! feature, on by default; see [`queue::durable`](crate::queue::durable)). `maxbytes` bounds
//! the disk (default `1GiB`, at least `64KiB`; an integer or a size such as `512MiB`, `2GB`);
//! `capacity` then defaults to unlimited. `fsync: always` answers a request only once its events
//! are on disk (concurrent requests share one fsync); `fsync: interval` (the default) never makes
//! a request wait and syncs every `fsyncinterval` (default `1s`): a crash of the process loses
//! nothing written, a crash of the machine at most the last interval. Each endpoint needs its own
//! directory.
//!
//! ```yaml
//! queue:
//!   path: /var/lib/registry/notify/audit
//!   maxbytes: 2GiB
//!   fsync: always
//!   overflow: dropoldest
//! ```
//!
//! **`retry`** — `mode: exponential` (the default) retries with capped exponential backoff and
//! jitter: `initial` (default `500ms`), `max` (`60s`), `multiplier` (`2`, ≥ 1), `jitter` (`0.2`,
//! from 0 to 1). `mode: breaker` is Distribution's behaviour: `threshold` consecutive failures are
//! retried at once, then one attempt per `backoff`; the exponential keys are then an error. In
//! both modes a batch is given up (dead-lettered) after `maxattempts` attempts (default
//! unlimited) or `maxage` (default `24h`), where Distribution retries forever.
//!
//! ```yaml
//! retry:
//!   mode: exponential
//!   initial: 1s
//!   max: 5m
//!   multiplier: 2
//!   jitter: 0.2
//!   maxattempts: 20
//!   maxage: 6h
//! ```
//!
//! **`filter`** — more ways to choose what an endpoint receives, on top of `ignore`. Repository
//! globs: `*` matches within one path segment, `**` across segments. `methods.exclude: [HEAD]`
//! drops the pull events of HEAD requests (existence checks).
//!
//! ```yaml
//! filter:
//!   repositories:
//!     include: ["team-a/**", "library/*"]
//!     exclude: ["**/cache"]
//!   methods:
//!     exclude: [HEAD]
//! ```
//!
//! **`redirects`** — how a 3xx answer counts: `failure` (default: retried) or `success`
//! (Distribution's behaviour). Redirects are never followed.
//!
//! ```yaml
//! redirects: success
//! ```
//!
//! **`tls`** — for `https://` endpoints: `ca` adds trusted CA certificates to the system roots,
//! given as a file path or as inline PEM; `insecureskipverify: true` accepts any certificate (for
//! tests only). Distribution has neither (distribution#1463, #3824).
//!
//! ```yaml
//! tls:
//!   ca: /etc/registry/listener-ca.pem
//!   insecureskipverify: false
//! ```
//!
//! Unknown keys inside these sections are errors too, and invalid values name the field:
//! `notifications.endpoints[1] ("b").retry.maxattempts must be > 0`.
//!
//! # Environment variables
//!
//! [`Config::apply_env`] applies Distribution 3's overrides, e.g.
//! `REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL` or `REGISTRY_HTTP_ADDR`, from an iterator you pass
//! (usually `std::env::vars()`).
//!
//! # Secrets
//!
//! `Debug` of an [`EndpointConfig`] shows header names but never their values, and the URL
//! without user info or query string. Error messages never contain header values, URL
//! credentials, or the values of ignored sections (which are not kept at all).
//!
//! # Naming
//!
//! Structs named `…Config` mirror Distribution's sections; the extensions are `…Settings`, to keep
//! them apart from the stages' own settings (`QueueConfig`, the retry policies) they are converted into.

mod delivery;
mod duration;
mod endpoint;
mod env;
mod http_config;
mod listen;
mod nats;
mod notifications;
mod section;
mod selection;
mod template;
mod trust;
mod value;
mod yaml;

mod convert;

use std::path::{Path as FsPath, PathBuf};

use yaml_serde::Value;

pub use crate::error::ConfigError;
pub use delivery::{QueueFsync, QueueSettings, RetryMode, RetrySettings};

pub use endpoint::EndpointConfig;
pub use http_config::{DebugToken, HttpConfig};
pub use nats::{NatsSettings, SubjectBy};
pub use notifications::{EventsConfig, NotificationsConfig};
pub use selection::{FilterSettings, IgnoreConfig};
pub use template::TemplateSettings;
pub use trust::{CaSource, SigningSettings, TlsSettings};
use value::{boolean, mapping, string, type_error, Path};

type Result<T> = std::result::Result<T, ConfigError>;

/// A Distribution registry configuration, reduced to what this crate uses.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// `version` — `MAJOR.MINOR`, `"0.1"` in every Distribution config. Optional here.
    pub version: Option<String>,
    /// `http`.
    pub http: HttpConfig,
    /// `storage`.
    pub storage: StorageConfig,
    /// `notifications`; `None` when the section is absent or empty.
    pub notifications: Option<NotificationsConfig>,
    /// Top-level sections present in the file but not used by this crate (`log`, `auth`, …), in
    /// file order. Their contents are not kept.
    pub ignored_sections: Vec<String>,
}

/// `storage:` — the registry's storage driver.
///
/// Distribution requires exactly one driver; we accept a file without any (`driver: None`) since
/// only notifications may matter, but reject several.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StorageConfig {
    /// The driver, if one is configured.
    pub driver: Option<StorageDriver>,
    /// `delete.enabled` — deleting manifests and blobs is allowed. Default `false`.
    pub delete_enabled: bool,
    /// Other storage keys present (`cache`, `maintenance`, `redirect`, `tag`), in file order;
    /// accepted and ignored.
    pub ignored: Vec<String>,
}

/// The storage driver of [`StorageConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageDriver {
    /// `filesystem:` with its `rootdirectory` (default `/var/lib/registry`). Other parameters
    /// (`maxthreads`) are ignored.
    Filesystem {
        /// `rootdirectory`.
        root_directory: PathBuf,
    },
    /// `inmemory:` (written with no value or `{}`).
    InMemory,
    /// Any other driver (`s3`, `azure`, `gcs`, `swift`, `oss`, …), by name. Its parameters are not
    /// kept (they often hold credentials).
    Other(String),
}

impl StorageDriver {
    /// Distribution's default `filesystem.rootdirectory`.
    pub const DEFAULT_ROOT_DIRECTORY: &'static str = "/var/lib/registry";

    fn named(name: &str, params: &Value, at: &Path) -> Result<Self> {
        Ok(match name {
            "filesystem" => {
                let mut root = PathBuf::from(Self::DEFAULT_ROOT_DIRECTORY);
                if let Some(entries) = mapping(params, at)? {
                    for (k, v) in entries {
                        if k == "rootdirectory" {
                            let dir = string(v, &at.key(k))?;
                            if !dir.is_empty() {
                                root = PathBuf::from(dir);
                            }
                        }
                    }
                }
                StorageDriver::Filesystem { root_directory: root }
            }
            "inmemory" => StorageDriver::InMemory,
            other => StorageDriver::Other(other.to_owned()),
        })
    }

    /// The driver's name: `filesystem`, `inmemory`, `s3`, …
    pub fn name(&self) -> &str {
        match self {
            StorageDriver::Filesystem { .. } => "filesystem",
            StorageDriver::InMemory => "inmemory",
            StorageDriver::Other(name) => name,
        }
    }
}

const STORAGE_NON_DRIVERS: &[&str] = &["maintenance", "cache", "delete", "redirect", "tag"];

impl StorageConfig {
    fn read(v: &Value, at: &Path) -> Result<Self> {
        let mut storage = StorageConfig::default();
        match v {
            Value::Null => {}
            Value::String(name) if name.is_empty() => {}
            // `storage: inmemory`
            Value::String(name) => storage.driver = Some(StorageDriver::named(name, &Value::Null, at)?),
            Value::Mapping(_) => {
                for (k, v) in mapping(v, at)?.unwrap_or_default() {
                    storage.set(k, v, at)?;
                }
            }
            other => return Err(type_error(at, "a mapping", other)),
        }
        Ok(storage)
    }

    fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        let p = at.key(key);
        match key {
            "delete" => {
                self.delete_enabled = false;
                for (k, v) in mapping(v, &p)?.unwrap_or_default() {
                    if k == "enabled" {
                        self.delete_enabled = boolean(v, &p.key(k))?;
                    }
                }
            }
            k if STORAGE_NON_DRIVERS.contains(&k) => {
                if !self.ignored.iter().any(|i| i == k) {
                    self.ignored.push(k.to_owned());
                }
            }
            name => {
                if let Some(existing) = &self.driver {
                    if existing.name() != name {
                        return Err(ConfigError::at(
                            at.as_str(),
                            format!(
                                "more than one storage driver: {:?} and {name:?} (exactly one is allowed)",
                                existing.name()
                            ),
                        ));
                    }
                }
                self.driver = Some(StorageDriver::named(name, v, &p)?);
            }
        }
        Ok(())
    }
}

impl Config {
    /// Parses a Distribution configuration from YAML text and validates it.
    pub fn from_yaml_str(yaml: &str) -> Result<Self> {
        check_flow_nesting(yaml)?;
        let value = yaml::parse(yaml)?;
        Self::from_value(&value)
    }

    /// Reads and parses a configuration file (see [`from_yaml_str`](Self::from_yaml_str)).
    pub fn from_path(path: impl AsRef<FsPath>) -> Result<Self> {
        let path = path.as_ref();
        let yaml = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(format!("cannot read {}: {e}", path.display())))?;
        Self::from_yaml_str(&yaml).map_err(|e| e.with_origin(path.display().to_string()))
    }

    fn from_value(value: &Value) -> Result<Self> {
        let root = Path::default();
        let entries = match value {
            Value::Null => return Err(ConfigError::new("the configuration is empty")),
            Value::Mapping(_) => mapping(value, &root)?.unwrap_or_default(),
            other => {
                return Err(ConfigError::new(format!(
                    "the configuration must be a YAML mapping, found {}",
                    value::kind(other)
                )))
            }
        };
        let mut config = Config::default();
        for (key, v) in entries {
            let at = root.key(key);
            match key {
                "version" => config.version = Some(read_version(v, &at)?),
                "http" => config.http = HttpConfig::read(v, &at)?,
                "storage" => config.storage = StorageConfig::read(v, &at)?,
                "notifications" => config.notifications = NotificationsConfig::read(v, &at)?,
                other => config.ignored_sections.push(other.to_owned()),
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the whole configuration (done by the parsing functions; call it again after
    /// changing fields).
    pub fn validate(&self) -> Result<()> {
        self.http.validate()?;
        if let Some(n) = &self.notifications {
            n.validate()?;
        }
        Ok(())
    }

    /// The endpoints that are configured and not `disabled` (none without a `notifications`
    /// section).
    pub fn enabled_endpoints(&self) -> impl Iterator<Item = &EndpointConfig> + '_ {
        self.notifications
            .iter()
            .flat_map(NotificationsConfig::enabled_endpoints)
    }
}

/// The most nested `[`/`{` accepted, counted naively (brackets inside strings count too). The YAML
/// parser needs time quadratic in the flow nesting depth (100 000 `[` take minutes), and it rejects
/// anything deeper than 128 levels anyway; this check keeps bad input fast to reject.
const MAX_FLOW_NESTING: usize = 1000;

fn check_flow_nesting(yaml: &str) -> Result<()> {
    let mut depth = 0usize;
    let (mut line, mut column) = (1usize, 0usize);
    for c in yaml.chars() {
        column += 1;
        match c {
            '[' | '{' => {
                depth += 1;
                if depth > MAX_FLOW_NESTING {
                    return Err(ConfigError::new(format!(
                        "invalid YAML: brackets nested more than {MAX_FLOW_NESTING} levels deep at line {line} \
                         column {column}"
                    )));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            '\n' => (line, column) = (line + 1, 0),
            _ => {}
        }
    }
    Ok(())
}

/// Distribution's `Version`: `MAJOR.MINOR`, both unsigned integers.
fn read_version(v: &Value, at: &Path) -> Result<String> {
    let version = string(v, at)?;
    let valid = version
        .split_once('.')
        .is_some_and(|(major, minor)| major.parse::<u32>().is_ok() && minor.parse::<u32>().is_ok());
    if !valid {
        return Err(ConfigError::at(
            at.as_str(),
            format!("must be MAJOR.MINOR such as \"0.1\", found {version:?}"),
        ));
    }
    Ok(version)
}

impl std::str::FromStr for Config {
    type Err = ConfigError;

    fn from_str(yaml: &str) -> Result<Self> {
        Config::from_yaml_str(yaml)
    }
}

/// Deserializes (and validates) a whole configuration from any serde format, e.g. when it is
/// embedded in a larger application config.
impl<'de> serde::Deserialize<'de> for Config {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let mut value = Value::deserialize(deserializer)?;
        yaml::apply_merge(&mut value).map_err(serde::de::Error::custom)?;
        Config::from_value(&value).map_err(serde::de::Error::custom)
    }
}

/// Deserializes (and validates) a `notifications` section from any serde format; null gives an
/// empty section.
impl<'de> serde::Deserialize<'de> for NotificationsConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let mut value = Value::deserialize(deserializer)?;
        yaml::apply_merge(&mut value).map_err(serde::de::Error::custom)?;
        let n = NotificationsConfig::read(&value, &Path::new("notifications"))
            .map_err(serde::de::Error::custom)?
            .unwrap_or_default();
        n.validate().map_err(serde::de::Error::custom)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
