//! One webhook endpoint: `notifications.endpoints[]`.

use std::fmt;
use std::time::Duration;

use yaml_serde::Value;

use super::delivery::{QueueSettings, RetrySettings};
use super::section::{endpoint_path, Section};
use super::selection::{FilterSettings, IgnoreConfig};
use super::template::TemplateSettings;
use super::trust::{CaSource, SigningSettings, TlsSettings};
use super::value::{
    boolean, entries, go_duration, integer, mapping, shown, string, string_list, type_error, unknown_key,
    unsigned, Path,
};
use super::ConfigError;
use crate::event::Format;
use crate::percent::decode_lenient as percent_decode;
use crate::secret::{redact_url, split_userinfo};
use crate::url::check_url;

type Result<T> = std::result::Result<T, ConfigError>;

/// One webhook endpoint (`notifications.endpoints[]`): Distribution's keys, then our extensions.
///
/// Every field holds its effective value, defaults filled in. Distribution silently replaces a
/// `timeout`, `threshold` or `backoff` ≤ 0 with its default; such a value is refused here (leave
/// the key out, or empty, for the default).
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
    /// Extension `concurrency` — ordered lanes delivering at once (default 1): the events of
    /// one repository always take the same lane, in order. A durable queue keeps lane `i` in
    /// `queue.path/lane-<i>`.
    pub concurrency: usize,
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
    /// Extension `template` (with `format: template`).
    pub template: TemplateSettings,
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
            concurrency: 1,
            linger: crate::queue::DEFAULT_LINGER,
            queue: QueueSettings::default(),
            retry: RetrySettings::default(),
            filter: FilterSettings::default(),
            redirects_as_success: false,
            tls: TlsSettings::default(),
            signing: SigningSettings::default(),
            template: TemplateSettings::default(),
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
        "concurrency",
        "linger",
        "queue",
        "retry",
        "filter",
        "redirects",
        "tls",
        "signing",
        "template",
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
            "threshold" if v.is_null() => self.threshold = Self::DEFAULT_THRESHOLD,
            "threshold" => {
                let t = integer(v, &p)?;
                if t <= 0 {
                    return Err(instead_of_default(&p, v, Self::DEFAULT_THRESHOLD));
                }
                self.threshold = u32::try_from(t).map_err(|_| {
                    ConfigError::field(p.as_str(), format!("is too large (at most {})", u32::MAX))
                })?;
            }
            "ignoredmediatypes" => self.ignored_media_types = string_list(v, &p)?,
            "ignore" => self.ignore.apply(v, &p)?,
            "format" => {
                let f = string(v, &p)?;
                self.template.enabled = f == "template";
                self.format = if f.is_empty() || f == "template" {
                    Format::default()
                } else {
                    // The names YAML accepts (the formats, and `template`), said here rather
                    // than patched into `Format`'s own message.
                    f.parse::<Format>().map_err(|_| {
                        ConfigError::at(
                            p.as_str(),
                            format!(
                                "unknown format {f:?} (expected events.v1, events.v2, cloudevents, \
                                 cloudevents-batch or template)"
                            ),
                        )
                    })?
                };
            }
            "concurrency" if v.is_null() => self.concurrency = 1,
            "concurrency" => self.concurrency = unsigned(v, &p, usize::MAX as u64)? as usize,
            "maxevents" if v.is_null() => self.max_events = 1,
            "maxevents" => self.max_events = unsigned(v, &p, usize::MAX as u64)? as usize,
            "linger" if v.is_null() => self.linger = crate::queue::DEFAULT_LINGER,
            "linger" => {
                let ns = go_duration(v, &p)?;
                if ns < 0 {
                    return Err(ConfigError::field(
                        p.as_str(),
                        format!("must not be negative (0 turns lingering off), got {}", shown(v)),
                    ));
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
            "template" => {
                // Set by `format`, in whichever order the keys come.
                let enabled = self.template.enabled;
                self.template.apply(v, &p)?;
                self.template.enabled = enabled;
            }
            _ => return Err(unknown_key(at, key, Self::KEYS)),
        }
        Ok(())
    }
}

/// Distribution's `timeout`/`backoff`: a Go duration > 0; null means `default`.
///
/// Go's `time.ParseDuration` accepts `-1s` and `0`, and Distribution then silently uses its
/// default instead; we refuse both, since neither is a timeout or a backoff (and many tools
/// read a timeout of 0 as "none").
fn distribution_duration(v: &Value, p: &Path, default: Duration) -> Result<Duration> {
    if v.is_null() {
        return Ok(default);
    }
    let ns = go_duration(v, p)?;
    if ns <= 0 {
        return Err(instead_of_default(p, v, format_args!("{default:?}")));
    }
    Ok(Duration::from_nanos(ns as u64))
}

/// `threshold must be > 0, got -5 (Distribution would silently use its default, 10, instead; …)`.
fn instead_of_default(p: &Path, v: &Value, default: impl fmt::Display) -> ConfigError {
    ConfigError::field(
        p.as_str(),
        format!(
            "must be > 0, got {} (Distribution would silently use its default, {default}, instead; \
             leave the key out for that)",
            shown(v)
        ),
    )
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

    /// Checks the values: required `name` and `url` (unless `disabled`), then what only YAML
    /// can get wrong (lists, key pairs), then every stage's own check, the same ones
    /// [`EndpointBuilder::build`](crate::endpoint::EndpointBuilder::build) runs (URL, headers,
    /// timeout, batching, queue, retry, signing). Errors start with `endpoint "<name>"`. Reads
    /// no file.
    pub fn validate(&self) -> Result<()> {
        self.validate_at(&Path::new(format!("endpoint {:?}", self.name)))
    }

    pub(crate) fn validate_at(&self, at: &Path) -> Result<()> {
        self.check_yaml_at(at)?;
        // The stages' own checks, through the builder, without reading the TLS files.
        self.build(false).map_err(|e| e.within(at.as_str())).map(drop)
    }

    /// What only the YAML can get wrong: required keys, list items, key pairs.
    pub(crate) fn check_yaml_at(&self, at: &Path) -> Result<()> {
        let must = |key: &str, msg: &str| ConfigError::field(at.key(key).as_str(), msg.to_owned());
        if !self.disabled {
            if self.name.is_empty() {
                return Err(must("name", "is required"));
            }
            if self.url.is_empty() {
                return Err(must("url", "is required"));
            }
        }
        for (key, globs) in [
            ("filter.repositories.include", &self.filter.include_repositories),
            ("filter.repositories.exclude", &self.filter.exclude_repositories),
            ("filter.tags.include", &self.filter.include_tags),
            ("filter.tags.exclude", &self.filter.exclude_tags),
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
        if self.tls.client_cert.is_some() != self.tls.client_key.is_some() {
            return Err(must("tls", "clientcert and clientkey must be given together"));
        }
        if let Some(CaSource::Pem(pem)) = &self.tls.ca {
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(must(
                    "tls.ca",
                    "contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
                ));
            }
        }
        if !self.url.is_empty() {
            // The sink's own URL check, here on the URL as written (credentials included, so
            // that the message can show where they were).
            check_url(&self.url).map_err(|msg| {
                ConfigError::at(
                    at.key("url").as_str(),
                    format!("{msg} (got {:?})", redact_url(&self.url)),
                )
            })?;
        }
        self.validate_retry_in(at)
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
            .field("template", &self.template)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}
