//! Endpoint settings and the per-endpoint delivery stack.

use std::fmt;
use std::sync::Arc;

use crate::event::Batch;

/// An invalid endpoint, filter, retry or queue setting; the message names the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    /// An error with `message` (which must not contain secrets).
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// `url` with its userinfo replaced by `***` and every query value by `***`; the
/// fragment is dropped. Works on any string, valid URL or not.
pub(crate) fn redact_url(url: &str) -> String {
    let url = url.split('#').next().unwrap_or("");
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (scheme, rest) = match before_query.find("://") {
        Some(i) => before_query.split_at(i + 3),
        None => ("", before_query),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    match authority.rfind('@') {
        Some(i) => {
            out.push_str("***@");
            out.push_str(&authority[i + 1..]);
        }
        None => out.push_str(authority),
    }
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) => format!("{k}=***"),
                None if pair.is_empty() => String::new(),
                None => "***".to_owned(),
            })
            .collect();
        out.push_str(&redacted.join("&"));
    }
    out
}

/// A batch the retry stage gave up on, handed to the endpoint's dead-letter hook.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Endpoint name.
    pub endpoint: String,
    /// The events, exactly as they were sent.
    pub batch: Batch,
    /// Why delivery stopped (the last error, never containing secrets).
    pub reason: String,
    /// How many attempts were made.
    pub attempts: u32,
}

/// Receives the batches an endpoint gave up on (see [`EndpointBuilder::dead_letter`]).
pub type DeadLetterHandler = Arc<dyn Fn(DeadLetter) + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        assert_eq!(redact_url("https://h:8443/a/b"), "https://h:8443/a/b");
        assert_eq!(
            redact_url("https://u:p@h/a?x=1&tok=s3cr3t&flag"),
            "https://***@h/a?x=***&tok=***&***"
        );
        assert_eq!(redact_url("http://u:p@h"), "http://***@h");
        assert_eq!(redact_url("http://h/p#frag"), "http://h/p");
        assert_eq!(redact_url("not a url?secret=1"), "not a url?secret=***");
    }
}
