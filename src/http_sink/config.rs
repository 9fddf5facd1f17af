//! The HTTP sink's settings, validated: URL, headers, timeout, format, TLS, proxy, signing.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};

use super::proxy::{Proxy, ProxyRoute};
use crate::error::ConfigError;
use crate::event::Format;
use crate::secret::{redact_url, Secrets};
use crate::url::check_url;

/// Validated settings of one [`HttpSink`](super::HttpSink): where it POSTs, with which
/// headers, format and timeout, how it connects (TLS, proxy) and how it signs. Built by
/// [`EndpointBuilder::build`](crate::endpoint::EndpointBuilder::build); an
/// [`Endpoint`](crate::endpoint::Endpoint) carries one.
///
/// `Debug` shows header names but not their values, and the URL with its credentials
/// redacted.
#[derive(Clone)]
pub struct HttpSinkConfig {
    pub(crate) name: String,
    pub(crate) redacted_url: String,
    /// The URL without userinfo.
    pub(crate) uri: http::Uri,
    /// Configured headers (values marked sensitive), plus Basic auth from the userinfo.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) secrets: Arc<Secrets>,
    pub(crate) timeout: Duration,
    pub(crate) format: Format,
    pub(crate) redirects_as_success: bool,
    pub(crate) has_ca_pem: bool,
    pub(crate) danger_accept_invalid_certs: bool,
    #[cfg(feature = "https")]
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) has_client_cert: bool,
    /// Standard Webhooks signer.
    #[cfg(feature = "signing")]
    pub(crate) signer: Option<Arc<crate::signing::Signer>>,
    pub(crate) signing_secrets: usize,
    /// The proxy in front of the endpoint, if any.
    pub(crate) proxy_route: Option<ProxyRoute>,
    /// The body's template, in place of the envelope format.
    #[cfg(feature = "templates")]
    pub(crate) template: Option<super::PayloadTemplate>,
}

impl HttpSinkConfig {
    /// The URL with credentials redacted.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// The per-attempt timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The envelope format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The proxy its requests go through (`scheme://host:port`, no credentials), if any.
    pub fn proxy(&self) -> Option<&str> {
        self.proxy_route.as_ref().map(|r| r.redacted.as_str())
    }

    /// The template bodies are rendered with, in place of the [format](Self::format)'s envelope.
    #[cfg(feature = "templates")]
    pub fn template(&self) -> Option<&super::PayloadTemplate> {
        self.template.as_ref()
    }

    /// Whether requests are signed.
    pub fn is_signed(&self) -> bool {
        self.signing_secrets > 0
    }

    /// Whether a client certificate is presented (mutual TLS).
    pub fn has_client_cert(&self) -> bool {
        self.has_client_cert
    }

    /// Whether any server certificate is accepted (insecure).
    pub fn accepts_invalid_certs(&self) -> bool {
        self.danger_accept_invalid_certs
    }

    /// Strings scrubbed from error texts (header values, credentials, signing secrets).
    pub(crate) fn secrets(&self) -> &Arc<Secrets> {
        &self.secrets
    }
}

impl HttpSinkConfig {
    /// What `Debug` shows of the template.
    fn template_label(&self) -> Option<&dyn fmt::Debug> {
        #[cfg(feature = "templates")]
        if let Some(t) = &self.template {
            return Some(t);
        }
        None
    }
}

impl fmt::Debug for HttpSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(n, _)| (n.as_str(), "***")).collect();
        f.debug_struct("HttpSinkConfig")
            .field("url", &self.redacted_url)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("format", &self.format)
            .field("redirects_as_success", &self.redirects_as_success)
            .field("ca_pem", &self.has_ca_pem)
            .field("danger_accept_invalid_certs", &self.danger_accept_invalid_certs)
            .field("client_cert", &self.has_client_cert)
            .field("signing_secrets", &self.signing_secrets)
            .field("proxy", &self.proxy())
            .field("template", &self.template_label())
            .finish()
    }
}

/// The HTTP settings as given to the endpoint builder, before validation.
#[derive(Clone)]
pub(crate) struct HttpSinkOptions {
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Duration,
    pub(crate) format: Format,
    pub(crate) redirects_as_success: bool,
    pub(crate) ca_pem: Option<Vec<u8>>,
    pub(crate) danger_accept_invalid_certs: bool,
    /// Client certificate chain and key, PEM.
    pub(crate) client_cert: Option<(Vec<u8>, Vec<u8>)>,
    pub(crate) signing_secrets: Vec<String>,
    pub(crate) proxy: Proxy,
    #[cfg(feature = "templates")]
    pub(crate) template: Option<super::PayloadTemplate>,
    /// The URL is a label (a custom sink's): the HTTP part is built for a placeholder, unused.
    pub(crate) placeholder: bool,
}

impl HttpSinkOptions {
    /// Options for `url` with the defaults: 1 s timeout (Distribution's), events v2, the
    /// environment's proxy.
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            headers: Vec::new(),
            timeout: Duration::from_secs(1),
            format: Format::default(),
            redirects_as_success: false,
            ca_pem: None,
            danger_accept_invalid_certs: false,
            client_cert: None,
            signing_secrets: Vec::new(),
            proxy: Proxy::FromEnv,
            #[cfg(feature = "templates")]
            template: None,
            placeholder: false,
        }
    }

    /// Validates everything: the one check of an endpoint's HTTP settings, for the builder and
    /// the YAML alike. The error's path is the YAML key (`url`, `timeout`, `headers.X[0]`,
    /// `signing`, `tls`), relative to the endpoint; no message holds a secret.
    pub(crate) fn build(self, name: &str) -> Result<HttpSinkConfig, ConfigError> {
        let err = |key: &str, msg: String| ConfigError::at(key, msg);
        let redacted_url = redact_url(&self.url);
        let mut secrets = Secrets::default();
        // A custom sink has a label, not a URL: the HTTP part is built for a placeholder, unused.
        let url = if self.placeholder {
            "http://sink.invalid/"
        } else {
            self.url.as_str()
        };
        if !self.placeholder {
            check_url(url).map_err(|msg| err("url", format!("{msg} (got {redacted_url:?})")))?;
        }
        let invalid = || err("url", format!("is not a valid URL (got {redacted_url:?})"));
        let parsed: http::Uri = url.parse().map_err(|_| invalid())?;
        match parsed.scheme_str() {
            Some("http") => {}
            Some("https") => {
                if !cfg!(feature = "https") {
                    return Err(err(
                        "url",
                        "https URLs need the `https` feature of registry-notify".into(),
                    ));
                }
            }
            _ => {
                return Err(err(
                    "url",
                    format!("must be an http:// or https:// URL (got {redacted_url:?})"),
                ))
            }
        }
        let authority = parsed
            .authority()
            .ok_or_else(|| err("url", format!("has no host (got {redacted_url:?})")))?
            .as_str();
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo), host),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(err("url", format!("has no host (got {redacted_url:?})")));
        }
        if let Some(query) = parsed.query() {
            for pair in query.split('&') {
                let value = pair.split_once('=').map_or(pair, |(_, v)| v);
                secrets.add(value);
                secrets.add(&decode_lossy(value));
            }
        }
        let mut uri_parts = parsed.clone().into_parts();
        uri_parts.authority = Some(host.parse().map_err(|_| invalid())?);
        let uri = http::Uri::from_parts(uri_parts).map_err(|_| invalid())?;

        if self.timeout.is_zero() {
            return Err(ConfigError::field("timeout", "must be > 0"));
        }
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        for (k, (n, v)) in self.headers.iter().enumerate() {
            let hn = HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| err("headers", format!("invalid header name {n:?}")))?;
            let mut hv = HeaderValue::from_str(v).map_err(|_| {
                // The value's index among this name's values, as the YAML lists them.
                let i = self.headers[..k].iter().filter(|(m, _)| m == n).count();
                err(
                    &format!("headers.{n}[{i}]"),
                    "invalid header value (control characters are not allowed)".into(),
                )
            })?;
            hv.set_sensitive(true);
            secrets.add(v);
            headers.push((hn, hv));
        }
        if let Some(userinfo) = userinfo {
            secrets.add(userinfo);
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let (user, password) = (decode_lossy(user), decode_lossy(password));
            secrets.add(&user);
            secrets.add(&password);
            if !headers.iter().any(|(n, _)| n == AUTHORIZATION) {
                use base64::Engine as _;
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                secrets.add(&token);
                let mut hv = HeaderValue::from_str(&format!("Basic {token}"))
                    .map_err(|_| err("url", "has invalid credentials".into()))?;
                hv.set_sensitive(true);
                // Go sets it on the request before the configured headers are appended.
                headers.insert(0, (AUTHORIZATION, hv));
            }
        }

        for secret in &self.signing_secrets {
            secrets.add(secret);
            secrets.add(secret.trim().trim_start_matches("whsec_"));
        }
        #[cfg(feature = "signing")]
        let signer = if self.signing_secrets.is_empty() {
            None
        } else {
            let signer = crate::signing::Signer::new(&self.signing_secrets)
                .map_err(|e| err("signing", e.to_string()))?;
            Some(Arc::new(signer))
        };
        #[cfg(not(feature = "signing"))]
        if !self.signing_secrets.is_empty() {
            return Err(err(
                "signing",
                "needs the `signing` feature of registry-notify".into(),
            ));
        }
        #[cfg(not(feature = "https"))]
        if self.client_cert.is_some() {
            return Err(err(
                "tls",
                "client certificates need the `https` feature of registry-notify".into(),
            ));
        }

        let proxy_route = super::proxy::resolve(&self.proxy, &uri).map_err(ConfigError::new)?;
        // Built here, where a failure is a clear error, so that the sink never has to.
        #[cfg(feature = "https")]
        let tls = {
            if let Some(pem) = &self.ca_pem {
                super::tls::parse_pem(pem).map_err(|e| err("tls.ca", e.to_string()))?;
            }
            let identity = match &self.client_cert {
                Some((cert, key)) => Some(
                    super::tls::ClientIdentity::from_pem(cert, key).map_err(|e| err("tls", e.to_string()))?,
                ),
                None => None,
            };
            if uri.scheme_str() == Some("https") {
                let config = super::tls::client_config_with_identity(
                    self.ca_pem.as_deref(),
                    self.danger_accept_invalid_certs,
                    true,
                    identity.as_ref(),
                )
                .map_err(|e| err("tls", e.to_string()))?;
                Arc::new(config)
            } else {
                // A plain-http endpoint uses TLS only to reach an https proxy.
                let https_proxy = proxy_route
                    .as_ref()
                    .is_some_and(|r| r.uri.scheme_str() == Some("https"));
                let config = super::tls::client_config(None, false, https_proxy)
                    .map_err(|e| err("tls", e.to_string()))?;
                Arc::new(config)
            }
        };

        if let Some(route) = &proxy_route {
            for secret in &route.secrets {
                secrets.add(secret);
            }
        }
        Ok(HttpSinkConfig {
            proxy_route,
            name: name.to_owned(),
            redacted_url,
            uri,
            headers,
            secrets: Arc::new(secrets),
            timeout: self.timeout,
            format: self.format,
            redirects_as_success: self.redirects_as_success,
            has_ca_pem: self.ca_pem.is_some(),
            danger_accept_invalid_certs: self.danger_accept_invalid_certs,
            #[cfg(feature = "https")]
            tls,
            has_client_cert: self.client_cert.is_some(),
            #[cfg(feature = "signing")]
            signer,
            signing_secrets: self.signing_secrets.len(),
            #[cfg(feature = "templates")]
            template: self.template,
        })
    }
}

impl fmt::Debug for HttpSinkOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(n, _)| (n.as_str(), "***")).collect();
        f.debug_struct("HttpSinkOptions")
            .field("url", &redact_url(&self.url))
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("format", &self.format)
            .field("client_cert", &self.client_cert.is_some())
            .field("signing_secrets", &self.signing_secrets.len())
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

/// `%XX`-decoded credentials as text (invalid UTF-8 replaced).
fn decode_lossy(s: &str) -> String {
    String::from_utf8_lossy(&crate::percent::decode_lenient(s)).into_owned()
}
