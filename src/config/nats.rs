//! Extension `notifications.nats:` — scale-out through NATS JetStream.

use std::fmt;
use std::time::Duration;

use yaml_serde::Value;

use super::delivery::QueueSettings;
use super::section::Section;
use super::value::{go_duration, not_positive, string, unknown_key, unsigned, Path};
use super::ConfigError;

type Result<T> = std::result::Result<T, ConfigError>;

/// `notifications.nats.subjectby` — what the last subject tokens are made of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubjectBy {
    /// `repository` — `<subject>.<repository path segments>`, e.g.
    /// `registry.notifications.library.alpine` (each segment escaped into a valid token).
    #[default]
    Repository,
    /// `action` — `<subject>.<action>`, e.g. `registry.notifications.push`.
    Action,
    /// `none` — every event on `<subject>` itself.
    None,
}

/// Extension `notifications.nats:` — scale-out through NATS JetStream.
///
/// In a registry's file it makes the registry publish every event to a JetStream stream (besides
/// any `endpoints`, which it still delivers itself); in a worker's file
/// (`registry_notify::nats::Worker`, with the `nats` feature) it names the stream
/// and durable consumer to deliver from, to the `endpoints` of the same file.
///
/// ```yaml
/// notifications:
///   nats:
///     url: nats://127.0.0.1:4222
///     stream: REGISTRY_NOTIFICATIONS     # default
///     subject: registry.notifications    # default; a prefix
///     subjectby: repository              # repository (default), action or none
///     maxevents: 100                     # events per message at most, default 100
///     queue:                             # the publisher's local queue, as for endpoints
///       path: /var/lib/registry/notify/nats
///     consumer: registry-notify          # workers: durable consumer name (shared)
///     ackwait: 30s                       # workers: redelivery after this long without an ack
///     maxinflight: 256                   # workers: messages in flight per worker
///     duplicatewindow: 2m                # the stream's deduplication window
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsSettings {
    /// `url` — the NATS server(s), e.g. `nats://127.0.0.1:4222`; several separated by commas.
    /// Credentials in it (`nats://user:pass@host`) are never logged.
    pub url: String,
    /// `stream` — the JetStream stream, created (file storage, subjects `<subject>` and
    /// `<subject>.>`) if missing. Default `REGISTRY_NOTIFICATIONS`.
    pub stream: String,
    /// `subject` — the subject prefix. Default `registry.notifications`.
    pub subject: String,
    /// `subjectby` — default `repository`.
    pub subject_by: SubjectBy,
    /// `maxevents` — events per message at most (consecutive events with the same subject).
    /// Default 100: the publisher has one batch in flight, so this bounds its throughput; it is
    /// independent of the endpoints' `maxevents`, which the workers apply when they deliver.
    pub max_events: usize,
    /// `queue` — the publisher's local queue while NATS is slow or unreachable, as for endpoints;
    /// `path` makes it durable.
    pub queue: QueueSettings,
    /// `consumer` — the durable pull consumer that workers share. Default `registry-notify`.
    pub consumer: String,
    /// `ackwait` — how long the server waits for a worker's acknowledgement before it redelivers;
    /// a worker still delivering a message signals progress every third of it. Default 30 s.
    /// Like every consumer setting it applies when the first worker creates the consumer; an
    /// existing consumer keeps its own (use a new `consumer` name to change it).
    pub ack_wait: Duration,
    /// `maxinflight` — messages a worker delivers at once (its pull batch and per-endpoint
    /// backlog). Default 256. The server's own limit of unacknowledged messages per consumer
    /// (`max_ack_pending`, 1000 by default) bounds the sum over all workers.
    pub max_in_flight: usize,
    /// `duplicatewindow` — the stream's deduplication window (`Nats-Msg-Id`). Default 2 min.
    pub duplicate_window: Duration,
}

impl Default for NatsSettings {
    fn default() -> Self {
        NatsSettings {
            url: String::new(),
            stream: "REGISTRY_NOTIFICATIONS".into(),
            subject: "registry.notifications".into(),
            subject_by: SubjectBy::Repository,
            max_events: 100,
            queue: QueueSettings::default(),
            consumer: "registry-notify".into(),
            ack_wait: Duration::from_secs(30),
            max_in_flight: 256,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSettings")
            .field("url", &self.redacted_url())
            .field("stream", &self.stream)
            .field("subject", &self.subject)
            .field("subject_by", &self.subject_by)
            .field("max_events", &self.max_events)
            .field("queue", &self.queue)
            .field("consumer", &self.consumer)
            .field("ack_wait", &self.ack_wait)
            .field("max_in_flight", &self.max_in_flight)
            .field("duplicate_window", &self.duplicate_window)
            .finish()
    }
}

impl NatsSettings {
    /// Settings for `url` with every other key at its default.
    pub fn new(url: impl Into<String>) -> Self {
        NatsSettings {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The URL(s) with user info and query values replaced by `***`.
    pub fn redacted_url(&self) -> String {
        self.url
            .split(',')
            .map(|u| crate::secret::redact_url(u.trim()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The server URLs without user info, and the credentials of the first URL that has some
    /// (`user:password` or a token), percent-decoded: the client is given them apart, so that
    /// its own logs never show them.
    #[cfg(feature = "nats")]
    pub(crate) fn servers_and_credentials(&self) -> (Vec<String>, Option<(String, Option<String>)>) {
        let mut credentials = None;
        let mut servers = Vec::new();
        for url in self.url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let (userinfo, bare) = crate::secret::split_userinfo(url);
            if let (Some(info), None) = (userinfo, &credentials) {
                let decode =
                    |s: &str| String::from_utf8_lossy(&crate::percent::decode_lenient(s)).into_owned();
                credentials = Some(match info.split_once(':') {
                    Some((user, password)) => (decode(user), Some(decode(password))),
                    None => (decode(info), None),
                });
            }
            servers.push(bare);
        }
        (servers, credentials)
    }

    /// Checks the values; the error names the field (`notifications.nats.stream …`).
    pub fn validate(&self) -> Result<()> {
        self.validate_at(&Path::new("notifications.nats"))
    }

    pub(crate) fn validate_at(&self, at: &Path) -> Result<()> {
        if self.url.trim().is_empty() {
            return Err(ConfigError::field(at.key("url").as_str(), "is required"));
        }
        for (key, name) in [("stream", &self.stream), ("consumer", &self.consumer)] {
            if name.is_empty()
                || name
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
            {
                return Err(ConfigError::field(
                    at.key(key).as_str(),
                    format!("must be a non-empty name without whitespace, '.', '*', '>', '/' or '\\', found {name:?}"),
                ));
            }
        }
        let bad_token = |t: &str| {
            t.is_empty()
                || t.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '*' | '>'))
        };
        if self.subject.split('.').any(bad_token) {
            return Err(ConfigError::field(
                at.key("subject").as_str(),
                format!(
                    "must be dot-separated non-empty tokens without whitespace or wildcards, found {:?}",
                    self.subject
                ),
            ));
        }
        if self.max_events == 0 {
            return Err(ConfigError::field(at.key("maxevents").as_str(), "must be > 0"));
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::field(at.key("maxinflight").as_str(), "must be > 0"));
        }
        self.queue.validate_in(at)
    }
}

/// A duration key of ours: null → `default`; zero or negative → error.
fn duration(v: &Value, p: &Path, default: Duration) -> Result<Duration> {
    if v.is_null() {
        return Ok(default);
    }
    let ns = go_duration(v, p)?;
    if ns <= 0 {
        return Err(not_positive(p, v));
    }
    Ok(Duration::from_nanos(ns as u64))
}

impl Section for NatsSettings {
    const KEYS: &'static [&'static str] = &[
        "url",
        "stream",
        "subject",
        "subjectby",
        "maxevents",
        "queue",
        "consumer",
        "ackwait",
        "maxinflight",
        "duplicatewindow",
    ];

    fn set(&mut self, key: &str, v: &Value, at: &Path) -> Result<()> {
        let p = at.key(key);
        let d = NatsSettings::default();
        let or_default = |s: String, default: String| if s.is_empty() { default } else { s };
        match key {
            "url" => self.url = string(v, &p)?,
            "stream" => self.stream = or_default(string(v, &p)?, d.stream),
            "subject" => self.subject = or_default(string(v, &p)?, d.subject),
            "subjectby" => {
                self.subject_by = match string(v, &p)?.as_str() {
                    "" | "repository" => SubjectBy::Repository,
                    "action" => SubjectBy::Action,
                    "none" => SubjectBy::None,
                    other => {
                        return Err(ConfigError::at(
                            p.as_str(),
                            format!("expected \"repository\", \"action\" or \"none\", found {other:?}"),
                        ))
                    }
                }
            }
            "maxevents" if v.is_null() => self.max_events = d.max_events,
            "maxevents" => self.max_events = unsigned(v, &p, usize::MAX as u64)? as usize,
            "queue" => self.queue.apply(v, &p)?,
            "consumer" => self.consumer = or_default(string(v, &p)?, d.consumer),
            "ackwait" => self.ack_wait = duration(v, &p, d.ack_wait)?,
            "maxinflight" if v.is_null() => self.max_in_flight = d.max_in_flight,
            "maxinflight" => self.max_in_flight = unsigned(v, &p, 1 << 20)? as usize,
            "duplicatewindow" => self.duplicate_window = duration(v, &p, d.duplicate_window)?,
            _ => return Err(unknown_key(at, key, Self::KEYS)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, SubjectBy};

    #[test]
    fn reads_nats_section() {
        let config = Config::from_yaml_str(
            "notifications:\n  nats:\n    url: nats://u:s3cr3t@127.0.0.1:4222\n    subjectby: action\n    ackwait: 5s\n    queue:\n      capacity: 10\n",
        )
        .unwrap();
        let nats = config.notifications.unwrap().nats.unwrap();
        assert_eq!(nats.subject_by, SubjectBy::Action);
        assert_eq!(nats.ack_wait, std::time::Duration::from_secs(5));
        assert_eq!(nats.queue.capacity, 10);
        assert_eq!(nats.stream, "REGISTRY_NOTIFICATIONS");
        assert!(!format!("{nats:?}").contains("s3cr3t"));
    }

    #[test]
    fn environment_overrides() {
        let mut config = Config::from_yaml_str("notifications:\n  nats:\n    url: nats://a:4222\n").unwrap();
        config
            .apply_env([
                ("REGISTRY_NOTIFICATIONS_NATS_URL", "nats://b:4222"),
                ("REGISTRY_NOTIFICATIONS_NATS_QUEUE_CAPACITY", "7"),
            ])
            .unwrap();
        let nats = config.notifications.unwrap().nats.unwrap();
        assert_eq!((nats.url.as_str(), nats.queue.capacity), ("nats://b:4222", 7));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                "{nats: {url: 'nats://h', stream: 'a.b'}}",
                "notifications.nats.stream",
            ),
            (
                "{nats: {url: 'nats://h', subject: 'a.*'}}",
                "notifications.nats.subject",
            ),
            (
                "{nats: {url: 'nats://h', subject: 'a..b'}}",
                "notifications.nats.subject",
            ),
            (
                "{nats: {url: 'nats://h', maxevents: 0}}",
                "notifications.nats.maxevents",
            ),
            (
                "{nats: {url: 'nats://h', ackwait: 0}}",
                "notifications.nats.ackwait",
            ),
            (
                "{nats: {url: 'nats://h', subjectby: tag}}",
                "notifications.nats.subjectby",
            ),
            ("{nats: {url: 'nats://h', acwait: 1s}}", "notifications.nats"),
            ("{nats: {stream: S}}", "notifications.nats.url"),
        ];
        for (yaml, path) in cases {
            let e = Config::from_yaml_str(&format!("notifications: {yaml}")).unwrap_err();
            assert_eq!(e.path(), path, "{yaml}: {e}");
        }
    }
}
