//! `EndpointConfig` → [`Endpoint`]: each YAML section mapped onto the stage it configures —
//! the HTTP sink's settings, [`FilterRules`], [`QueueConfig`] (and a [`DurableConfig`]), and the
//! retry policy `retry.mode` names ([`Exponential`] or Distribution's [`Breaker`]) — through the
//! endpoint builder, whose `build` validates the result.

use crate::endpoint::Endpoint;
use crate::filter::FilterRules;
use crate::queue::{DurableConfig, Fsync, QueueConfig};
use crate::retry::{Breaker, Exponential, Limits, RetryPolicy};
use std::sync::Arc;

use super::section::endpoint_path;
use super::value::Path;
use super::{
    ConfigError, EndpointConfig, NotificationsConfig, QueueFsync, QueueSettings, RetryMode, RetrySettings,
};

impl EndpointConfig {
    /// Builds the pipeline endpoint this configuration describes (validating it first). Reads the
    /// `tls.ca` file, if any.
    pub fn to_endpoint(&self) -> Result<Endpoint, ConfigError> {
        self.to_endpoint_at(&Path::new(format!("endpoint {:?}", self.name)))
    }

    fn to_endpoint_at(&self, at: &Path) -> Result<Endpoint, ConfigError> {
        self.check_yaml_at(at)?;
        self.build(true).map_err(|e| e.within(at.as_str()))
    }

    /// The endpoint, through the builder and so through every stage's own check; error paths
    /// are relative to the endpoint. Without `read_files`, TLS files are not read (validation
    /// at load time); inline PEM is used either way.
    pub(super) fn build(&self, read_files: bool) -> Result<Endpoint, ConfigError> {
        let (mut url, headers) = self.http_target();
        if url.is_empty() {
            // A disabled endpoint may have no URL; its other settings are checked all the same.
            url = "http://disabled.invalid/".to_owned();
        }
        let mut builder = Endpoint::builder(self.name.clone(), url)
            .timeout(self.timeout)
            .format(self.format)
            .max_events(self.max_events)
            .concurrency(self.concurrency)
            .linger(self.linger)
            .retry_shared(self.retry_policy())
            .filter(self.filter_rules()?)
            .queue(self.queue.queue_config())
            .redirects_as_success(self.redirects_as_success)
            .danger_accept_invalid_certs(self.tls.insecure_skip_verify)
            .disabled(self.disabled);
        if let Some(durable) = self.queue.durable_config() {
            builder = builder.durable_queue(durable);
        }
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        if read_files {
            if let Some(pem) = self.tls.ca_pem()? {
                builder = builder.ca_pem(pem);
            }
            if let Some((cert, key)) = self.tls.client_identity_pem()? {
                builder = builder.client_cert_pem(cert, key);
            }
        }
        for secret in &self.signing.secrets {
            builder = builder.signing_secret(secret.clone());
        }
        let template = self.template.compile(read_files)?;
        #[cfg(feature = "templates")]
        if let Some(template) = template {
            builder = builder.template(template);
        }
        #[cfg(not(feature = "templates"))]
        let _ = template;
        builder.build_relative()
    }

    /// Checks `threshold`, `backoff` and `retry:` with both policies' own checks, whichever
    /// `retry.mode` picks: a value is refused even where unused.
    pub(super) fn validate_retry_in(&self, at: &Path) -> Result<(), ConfigError> {
        Breaker::new(self.threshold, self.backoff)
            .limits(self.retry.limits())
            .validate()
            .and_then(|()| self.retry.exponential().validate())
            .map_err(|e| e.within(at.as_str()))
    }

    /// The retry policy `retry.mode` names, with the endpoint's limits.
    fn retry_policy(&self) -> Arc<dyn RetryPolicy> {
        match self.retry.mode {
            RetryMode::Breaker => {
                Arc::new(Breaker::new(self.threshold, self.backoff).limits(self.retry.limits()))
            }
            RetryMode::Exponential => Arc::new(self.retry.exponential()),
        }
    }

    fn filter_rules(&self) -> Result<FilterRules, ConfigError> {
        let f = &self.filter;
        let filter = FilterRules::new()
            .ignore_media_types(self.all_ignored_media_types())
            .ignore_actions(self.ignore.actions.iter().copied())
            .ignore_methods(f.exclude_methods.iter().cloned());
        // The rules name the field of a bad glob (`filter.tags.include[0]`).
        filter
            .include_repositories(&f.include_repositories)?
            .exclude_repositories(&f.exclude_repositories)?
            .include_tags(&f.include_tags)?
            .exclude_tags(&f.exclude_tags)
    }
}

impl QueueSettings {
    /// The memory queue's bounds.
    pub(super) fn queue_config(&self) -> QueueConfig {
        QueueConfig {
            capacity: self.capacity,
            overflow: self.overflow,
        }
    }

    /// The durable queue, when `queue.path` is set.
    pub(super) fn durable_config(&self) -> Option<DurableConfig> {
        let path = self.path.as_ref()?;
        Some(
            DurableConfig::new(path)
                .max_bytes(self.max_bytes)
                .fsync(match self.fsync {
                    QueueFsync::Always => Fsync::Always,
                    QueueFsync::Interval => Fsync::Interval(self.fsync_interval),
                }),
        )
    }

    /// Checks `queue:` with the queue stages' own checks; `owner` is the path of the section
    /// holding it (an endpoint, or `notifications.nats`).
    pub(super) fn validate_in(&self, owner: &Path) -> Result<(), ConfigError> {
        self.queue_config()
            .validate()
            .map_err(|e| e.within(owner.as_str()))?;
        match self.durable_config() {
            Some(durable) => durable.validate().map_err(|e| e.within(owner.as_str())),
            None => Ok(()),
        }
    }
}

impl RetrySettings {
    /// `retry.maxattempts` and `retry.maxage`.
    fn limits(&self) -> Limits {
        Limits {
            max_attempts: self.max_attempts,
            max_age: Some(self.max_age),
        }
    }

    /// `retry.mode: exponential` with these settings.
    fn exponential(&self) -> Exponential {
        Exponential::default()
            .backoff(self.initial, self.max)
            .multiplier(self.multiplier)
            .jitter(self.jitter)
            .limits(self.limits())
    }
}

impl NotificationsConfig {
    /// Builds every endpoint that is not `disabled`, in file order. Errors name the endpoint:
    /// `notifications.endpoints[1] ("b"): …`.
    pub fn endpoints(&self) -> Result<Vec<Endpoint>, ConfigError> {
        self.endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.disabled)
            .map(|(i, e)| e.to_endpoint_at(&endpoint_path(i, &e.name)))
            .collect()
    }
}
