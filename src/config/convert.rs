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
use super::{ConfigError, EndpointConfig, NotificationsConfig, QueueFsync, RetryMode};

/// Any error of the endpoint module, as a config error.
fn err(e: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(e.to_string())
}

impl EndpointConfig {
    /// Builds the pipeline endpoint this configuration describes (validating it first). Reads the
    /// `tls.ca` file, if any.
    pub fn to_endpoint(&self) -> Result<Endpoint, ConfigError> {
        self.to_endpoint_at(&Path::new(format!("endpoint {:?}", self.name)))
    }

    fn to_endpoint_at(&self, at: &Path) -> Result<Endpoint, ConfigError> {
        self.validate_at(at)?;
        self.build().map_err(|e| e.within(at.as_str()))
    }

    fn build(&self) -> Result<Endpoint, ConfigError> {
        let (url, headers) = self.http_target();
        let mut builder = Endpoint::builder(self.name.clone(), url)
            .timeout(self.timeout)
            .format(self.format)
            .max_events(self.max_events)
            .linger(self.linger)
            .retry_shared(self.retry_policy())
            .filter(self.filter_rules()?)
            .queue(QueueConfig {
                capacity: self.queue.capacity,
                overflow: self.queue.overflow,
            })
            .redirects_as_success(self.redirects_as_success)
            .danger_accept_invalid_certs(self.tls.insecure_skip_verify)
            .disabled(self.disabled);
        if let Some(path) = &self.queue.path {
            builder = builder.durable_queue(DurableConfig::new(path).max_bytes(self.queue.max_bytes).fsync(
                match self.queue.fsync {
                    QueueFsync::Always => Fsync::Always,
                    QueueFsync::Interval => Fsync::Interval(self.queue.fsync_interval),
                },
            ));
        }
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        if let Some(pem) = self.tls.ca_pem()? {
            builder = builder.ca_pem(pem);
        }
        if let Some((cert, key)) = self.tls.client_identity_pem()? {
            builder = builder.client_cert_pem(cert, key);
        }
        for secret in &self.signing.secrets {
            builder = builder.signing_secret(secret.clone());
        }
        builder.build().map_err(err)
    }

    /// The retry policy `retry.mode` names, with the endpoint's limits.
    fn retry_policy(&self) -> Arc<dyn RetryPolicy> {
        let r = &self.retry;
        let limits = Limits {
            max_attempts: r.max_attempts,
            max_age: Some(r.max_age),
        };
        match r.mode {
            RetryMode::Breaker => Arc::new(Breaker::new(self.threshold, self.backoff).limits(limits)),
            RetryMode::Exponential => Arc::new(
                Exponential::default()
                    .backoff(r.initial, r.max)
                    .multiplier(r.multiplier)
                    .jitter(r.jitter)
                    .limits(limits),
            ),
        }
    }

    fn filter_rules(&self) -> Result<FilterRules, ConfigError> {
        let f = &self.filter;
        let mut filter = FilterRules::new()
            .ignore_media_types(self.all_ignored_media_types())
            .ignore_actions(self.ignore.actions.iter().copied())
            .ignore_methods(f.exclude_methods.iter().cloned());
        // An empty include list means "all repositories": only set it when non-empty.
        if !f.include_repositories.is_empty() {
            filter = filter
                .include_repositories(f.include_repositories.iter().cloned())
                .map_err(err)?;
        }
        if !f.exclude_repositories.is_empty() {
            filter = filter
                .exclude_repositories(f.exclude_repositories.iter().cloned())
                .map_err(err)?;
        }
        Ok(filter)
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
