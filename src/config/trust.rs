//! Extensions `tls:` and `signing:` of an endpoint: whom it trusts and how it signs.

use std::fmt;
use std::path::PathBuf;

use yaml_serde::Value;

use super::section::Section;
use super::value::{boolean, string, string_list, unknown_key, Path};
use super::ConfigError;

type Result<T> = std::result::Result<T, ConfigError>;

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
