//! The `notifications` section: Distribution's keys plus our extensions.
//!
//! This file reads the section itself; an endpoint is in `endpoint.rs`, its extension
//! sections in `delivery.rs` (queue, retry), `selection.rs` (ignore, filter) and `trust.rs`
//! (tls, signing), URL helpers in `url.rs`.

use yaml_serde::Value;

use super::endpoint::EndpointConfig;
use super::section::{endpoint_path, Section};
use super::value::{boolean, mapping, type_error, unknown_key, Path};
use super::ConfigError;

type Result<T> = std::result::Result<T, ConfigError>;

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
