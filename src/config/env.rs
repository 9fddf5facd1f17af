//! Environment variable overrides, as Distribution 3 applies them.
//!
//! A variable `REGISTRY_A_B_C` overrides key `a.b.c`; its value is parsed as YAML, so lists and
//! mappings can be given (`[Bearer x]`, `{capacity: 10}`). Variables are applied in lexical
//! order of their names. `…_ENDPOINTS_<n>_…` addresses endpoint `n`; `n` equal to the number of
//! endpoints appends one, a larger `n` is an error (as in Distribution).

use yaml_serde::{Mapping, Value};

use super::notifications::read_endpoints;
use super::section::{endpoint_path, Section};
use super::value::{boolean, string, unknown_key, Path};
use super::{
    Config, ConfigError, EndpointConfig, HttpConfig, NotificationsConfig, StorageConfig, StorageDriver,
};

type Result<T> = std::result::Result<T, ConfigError>;

const PREFIX: &str = "REGISTRY_";

impl Config {
    /// Applies Distribution-style environment overrides from `vars` (pass `std::env::vars()` to
    /// use the process environment), then validates the result. On error `self` is unchanged.
    ///
    /// Supported, with the value parsed as YAML like Distribution does:
    /// - `REGISTRY_NOTIFICATIONS_ENDPOINTS_<n>_<KEY>` for every endpoint key (`NAME`, `URL`,
    ///   `DISABLED`, `TIMEOUT`, `THRESHOLD`, `BACKOFF`, `FORMAT`, `MAXEVENTS`, `HEADERS`,
    ///   `IGNOREDMEDIATYPES`, …) and nested ones (`HEADERS_AUTHORIZATION`, `IGNORE_ACTIONS`,
    ///   `RETRY_MODE`, `QUEUE_CAPACITY`, …). A mapping value merges into its section.
    /// - `REGISTRY_NOTIFICATIONS_ENDPOINTS` (the whole list as YAML, Distribution 2.8 style),
    ///   `REGISTRY_NOTIFICATIONS_ENDPOINTS_<n>` (one endpoint), `REGISTRY_NOTIFICATIONS`.
    /// - `REGISTRY_NOTIFICATIONS_NATS_<KEY>` (`URL`, `STREAM`, `QUEUE_PATH`, …) for the `nats`
    ///   extension.
    /// - `REGISTRY_NOTIFICATIONS_EVENTCONFIG_INCLUDEREFERENCES` (Distribution's name, from the Go
    ///   field `EventConfig`; `…_EVENTS_…` is accepted too).
    /// - `REGISTRY_HTTP_ADDR`, `_NET`, `_HOST`, `_RELATIVEURLS`, `_PREFIX`, `_DRAINTIMEOUT`,
    ///   `_DEBUG_ADDR`, `_DEBUG_TOKEN`,
    ///   `_DEBUG_PROMETHEUS_ENABLED`, `_DEBUG_PROMETHEUS_PATH`;
    ///   `REGISTRY_STORAGE` (YAML),
    ///   `REGISTRY_STORAGE_DELETE_ENABLED`, `REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY`.
    ///
    /// Other `REGISTRY_*` variables belong to sections this crate ignores and are ignored, like
    /// variables without the prefix; an unknown key under `REGISTRY_NOTIFICATIONS_` is an error.
    ///
    /// ```
    /// use registry_notify::config::Config;
    /// let mut config = Config::from_yaml_str("notifications: {endpoints: [{name: a, url: http://a/}]}")?;
    /// config.apply_env([
    ///     ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT", "5s"),
    ///     ("REGISTRY_NOTIFICATIONS_ENDPOINTS_1_NAME", "b"),
    ///     ("REGISTRY_NOTIFICATIONS_ENDPOINTS_1_URL", "http://b:8080/events"),
    ///     ("PATH", "/usr/bin"),
    /// ])?;
    /// let endpoints = &config.notifications.as_ref().unwrap().endpoints;
    /// assert_eq!(endpoints[0].timeout, std::time::Duration::from_secs(5));
    /// assert_eq!(endpoints[1].url, "http://b:8080/events");
    /// # Ok::<(), registry_notify::config::ConfigError>(())
    /// ```
    pub fn apply_env<I, K, V>(&mut self, vars: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.as_ref().starts_with(PREFIX))
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        // More general variables first (REGISTRY_NOTIFICATIONS before …_ENDPOINTS_0_URL).
        vars.sort();
        // All or nothing: work on a copy.
        let mut next = self.clone();
        for (name, payload) in &vars {
            next.apply_var(name, payload)
                .map_err(|e| e.with_origin(format!("environment variable {name}")))?;
        }
        next.validate()?;
        *self = next;
        Ok(())
    }

    fn apply_var(&mut self, name: &str, payload: &str) -> Result<()> {
        let segs: Vec<String> = name[PREFIX.len()..]
            .split('_')
            .map(str::to_ascii_lowercase)
            .collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        // Only parse values we use: a variable for an ignored section may hold anything.
        let value = || -> Result<Value> { super::yaml::parse(payload) };
        let http = Path::new("http");
        let storage = Path::new("storage");
        match segs.as_slice() {
            ["http"] => self.http = HttpConfig::read(&value()?, &http)?,
            ["http", "debug", "addr"] => self.http.set_debug_addr(&value()?, &http.key("debug"))?,
            // Taken as it is, never parsed: a parse error would show it.
            ["http", "debug", "token"] => self
                .http
                .set_debug_token(&Value::String(payload.to_owned()), &http.key("debug"))?,
            ["http", "debug", "prometheus", key] => {
                let at = http.key("debug").key("prometheus");
                self.http.set_prometheus(key, &value()?, &at)?
            }
            ["http", key] => self.http.set(key, &value()?, &http)?,
            ["storage"] => self.storage = StorageConfig::read(&value()?, &storage)?,
            ["storage", "delete", "enabled"] => {
                self.storage.delete_enabled = boolean(&value()?, &storage.key("delete").key("enabled"))?
            }
            ["storage", "filesystem", "rootdirectory"] => {
                let dir = string(&value()?, &storage.key("filesystem").key("rootdirectory"))?;
                let dir = if dir.is_empty() {
                    StorageDriver::DEFAULT_ROOT_DIRECTORY.to_owned()
                } else {
                    dir
                };
                let mut params = Mapping::new();
                params.insert("rootdirectory".into(), dir.into());
                self.storage
                    .set("filesystem", &Value::Mapping(params), &storage)?;
            }
            ["storage", key] => self.storage.set(key, &value()?, &storage)?,
            ["notifications"] => {
                self.notifications = NotificationsConfig::read(&value()?, &Path::new("notifications"))?
            }
            ["notifications", rest @ ..] => self
                .notifications
                .get_or_insert_with(NotificationsConfig::default)
                .apply_env(rest, &value()?)?,
            _ => {}
        }
        Ok(())
    }
}

impl NotificationsConfig {
    fn apply_env(&mut self, segs: &[&str], value: &Value) -> Result<()> {
        let at = Path::new("notifications");
        match segs {
            ["endpoints"] => self.endpoints = read_endpoints(value, &at.key("endpoints"))?,
            ["endpoints", index, rest @ ..] => {
                let len = self.endpoints.len();
                let i: usize = index.parse().map_err(|_| {
                    ConfigError::at("notifications.endpoints", format!("non-numeric index {index:?}"))
                })?;
                if i > len {
                    return Err(ConfigError::at(
                        "notifications.endpoints",
                        format!(
                            "undefined index {i}: there are {len} endpoints, so the next new one is {len}"
                        ),
                    ));
                }
                if i == len {
                    self.endpoints.push(EndpointConfig::default());
                }
                match rest {
                    [] => self.endpoints[i] = EndpointConfig::read(value, i)?,
                    [key, nested @ ..] => {
                        let ep = &mut self.endpoints[i];
                        let at = endpoint_path(i, &ep.name);
                        ep.apply(&nest(&[key], &nest(nested, value)), &at)?;
                    }
                }
            }
            ["eventconfig" | "events", rest @ ..] => {
                self.events.apply(&nest(rest, value), &at.key("events"))?
            }
            ["nats", rest @ ..] => {
                let mut nats = self.nats.take().unwrap_or_default();
                nats.apply(&nest(rest, value), &at.key("nats"))?;
                self.nats = Some(nats);
            }
            [key, ..] => return Err(unknown_key(&at, key, &["endpoints", "eventconfig", "nats"])),
            [] => {}
        }
        Ok(())
    }
}

/// `[a, b]`, `v` → `{a: {b: v}}`; no keys → `v`.
fn nest(keys: &[&str], value: &Value) -> Value {
    keys.iter().rev().fold(value.clone(), |inner, key| {
        let mut m = Mapping::new();
        m.insert(Value::String((*key).to_owned()), inner);
        Value::Mapping(m)
    })
}
