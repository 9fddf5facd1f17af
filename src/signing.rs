//! [Standard Webhooks] signatures: sign notifications per endpoint, verify them in receivers.
//!
//! An endpoint with signing secrets ([`EndpointBuilder::signing_secret`], YAML
//! `signing: {secrets: [whsec_…]}`) adds three headers to every attempt:
//!
//! | header | value |
//! |---|---|
//! | `webhook-id` | the batch's message id ([`message_id`]): the same on every attempt of the batch, even after a restart re-reads it from a durable queue — receivers use it to drop duplicates |
//! | `webhook-timestamp` | unix seconds of **this** attempt |
//! | `webhook-signature` | `v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`, one per secret, space-separated |
//!
//! Several secrets give rotation without downtime: sign with the old and the new secret,
//! move receivers to the new one, then drop the old. Secrets are written `whsec_<base64>`
//! (the prefix is optional, as in the reference libraries); their `Debug` output, errors and
//! logs never contain them.
//!
//! Receivers check a request with a [`Verifier`]: the timestamp must be within the tolerance
//! (default 5 minutes either way, as the specification recommends) and one of the
//! signatures must match one of its secrets, compared in constant time.
//!
//! ```
//! use registry_notify::signing::{Signer, Verifier};
//!
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let signer = Signer::new([secret]).unwrap();
//! let body = br#"{"test": 2432232314}"#;
//! let headers = signer.headers("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
//! assert_eq!(
//!     headers.get("webhook-signature").unwrap(),
//!     "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
//! );
//!
//! let verifier = Verifier::new([secret]).unwrap();
//! assert!(verifier.verify_at(&headers, body, 1614265330 + 60).is_ok());
//! assert!(verifier.verify_at(&headers, b"tampered", 1614265330).is_err());
//! assert!(verifier.verify_at(&headers, body, 1614265330 + 3600).is_err()); // too old
//! ```
//!
//! [Standard Webhooks]: https://www.standardwebhooks.com/
//! [`EndpointBuilder::signing_secret`]: crate::endpoint::EndpointBuilder::signing_secret

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;

pub use crate::event::message_id;

/// `webhook-id`: the message id, stable across attempts.
pub const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
/// `webhook-timestamp`: unix seconds of the attempt.
pub const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
/// `webhook-signature`: space-separated `v1,<base64>` signatures.
pub const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// The tolerance a [`Verifier`] allows by default between the timestamp and its clock.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Shortest secret accepted, in bytes (the specification recommends 24 to 64).
const MIN_SECRET_LEN: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// A signing secret, decoded; `Debug` never shows it.
#[derive(Clone)]
struct Secret(Vec<u8>);

impl Secret {
    fn parse(text: &str) -> Result<Self, SigningError> {
        let b64 = text.trim().strip_prefix("whsec_").unwrap_or(text.trim());
        let key = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| SigningError("secret is not base64 (expected whsec_<base64>)".into()))?;
        if key.len() < MIN_SECRET_LEN {
            return Err(SigningError(format!(
                "secret is {} bytes, at least {MIN_SECRET_LEN} are needed (24 to 64 recommended)",
                key.len()
            )));
        }
        Ok(Secret(key))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

fn parse_secrets<I, S>(secrets: I) -> Result<Vec<Secret>, SigningError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let secrets = secrets
        .into_iter()
        .enumerate()
        .map(|(i, s)| Secret::parse(s.as_ref()).map_err(|e| SigningError(format!("secrets[{i}]: {}", e.0))))
        .collect::<Result<Vec<_>, _>>()?;
    if secrets.is_empty() {
        return Err(SigningError("no secret given".into()));
    }
    Ok(secrets)
}

/// An invalid secret; the message names which one and why, never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningError(String);

impl fmt::Display for SigningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SigningError {}

/// Signs payloads with one or more secrets; see the [module docs](self).
#[derive(Clone)]
pub struct Signer {
    secrets: Vec<Secret>,
}

impl Signer {
    /// A signer with `secrets` (`whsec_<base64>`), one signature per secret.
    pub fn new<I, S>(secrets: I) -> Result<Self, SigningError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self {
            secrets: parse_secrets(secrets)?,
        })
    }

    /// The `webhook-signature` value: `v1,<base64>` per secret, space-separated.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut out = String::with_capacity(48 * self.secrets.len());
        for (i, secret) in self.secrets.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str("v1,");
            let tag = secret.mac(id, timestamp, body).finalize().into_bytes();
            base64::engine::general_purpose::STANDARD.encode_string(tag, &mut out);
        }
        out
    }

    /// The three headers for a message `id` sent at `timestamp` (unix seconds) with `body`.
    /// `id` must be a valid header value ([`message_id`] always is); an invalid one is
    /// replaced by `invalid-id` (and the signature no longer verifies).
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(3);
        self.insert_headers(&mut headers, id, timestamp, body);
        headers
    }

    /// Sets the three headers in `headers` (replacing any already there).
    pub fn insert_headers(&self, headers: &mut HeaderMap, id: &str, timestamp: i64, body: &[u8]) {
        let id_value = HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("invalid-id"));
        let mut signature = HeaderValue::from_str(&self.sign(id, timestamp, body))
            .expect("base64 signatures are valid header values");
        signature.set_sensitive(true);
        headers.insert(WEBHOOK_ID, id_value);
        headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
        headers.insert(WEBHOOK_SIGNATURE, signature);
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

/// Why a request did not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// A `webhook-*` header is missing or not text.
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not an integer.
    InvalidTimestamp,
    /// The timestamp is older than the tolerance allows.
    TooOld,
    /// The timestamp is further in the future than the tolerance allows.
    TooNew,
    /// No `v1` signature matches any secret.
    NoMatchingSignature,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::MissingHeader(name) => write!(f, "missing header {name}"),
            VerifyError::InvalidTimestamp => f.write_str("webhook-timestamp is not a unix time"),
            VerifyError::TooOld => f.write_str("webhook-timestamp too old"),
            VerifyError::TooNew => f.write_str("webhook-timestamp too far in the future"),
            VerifyError::NoMatchingSignature => f.write_str("no matching signature"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Checks signed requests, for receivers; see the [module docs](self).
#[derive(Clone)]
pub struct Verifier {
    secrets: Vec<Secret>,
    tolerance: Duration,
}

impl Verifier {
    /// A verifier accepting a signature by any of `secrets` (`whsec_<base64>`).
    pub fn new<I, S>(secrets: I) -> Result<Self, SigningError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self {
            secrets: parse_secrets(secrets)?,
            tolerance: DEFAULT_TOLERANCE,
        })
    }

    /// How far the timestamp may be from the receiver's clock, either way (default 5 min).
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies `body` against the `webhook-*` headers, at the current time.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.verify_at(headers, body, now)
    }

    /// Verifies `body` against the `webhook-*` headers as if the time were `now` (unix seconds).
    pub fn verify_at(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
        let text = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(VerifyError::MissingHeader(name))
        };
        let id = text("webhook-id")?;
        let timestamp = text("webhook-timestamp")?;
        let signatures = text("webhook-signature")?;
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::InvalidTimestamp)?;
        let tolerance = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        if ts < now.saturating_sub(tolerance) {
            return Err(VerifyError::TooOld);
        }
        if ts > now.saturating_add(tolerance) {
            return Err(VerifyError::TooNew);
        }
        for candidate in signatures.split(' ') {
            let Some(b64) = candidate.strip_prefix("v1,") else {
                continue;
            };
            let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(b64) else {
                continue;
            };
            for secret in &self.secrets {
                // `verify_slice` compares in constant time.
                if secret.mac(id, ts, body).verify_slice(&tag).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(VerifyError::NoMatchingSignature)
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("secrets", &self.secrets.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the specification and its reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn published_test_vector() {
        assert_eq!(Signer::new([SECRET]).unwrap().sign(ID, TS, BODY), SIGNATURE);
        // The prefix is optional.
        let bare = SECRET.trim_start_matches("whsec_");
        assert_eq!(Signer::new([bare]).unwrap().sign(ID, TS, BODY), SIGNATURE);
        let mut headers = HeaderMap::new();
        headers.insert(WEBHOOK_ID, HeaderValue::from_static(ID));
        headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(TS));
        headers.insert(WEBHOOK_SIGNATURE, HeaderValue::from_static(SIGNATURE));
        Verifier::new([SECRET])
            .unwrap()
            .verify_at(&headers, BODY, TS)
            .unwrap();
    }

    #[test]
    fn rotation_signs_with_every_secret_and_verifies_with_any() {
        let new = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let signer = Signer::new([SECRET, new]).unwrap();
        let headers = signer.headers(ID, TS, BODY);
        let sig = headers[WEBHOOK_SIGNATURE].to_str().unwrap();
        assert_eq!(sig.split(' ').count(), 2);
        assert!(sig.starts_with(SIGNATURE));
        assert!(headers[WEBHOOK_SIGNATURE].is_sensitive());
        for secret in [SECRET, new] {
            Verifier::new([secret])
                .unwrap()
                .verify_at(&headers, BODY, TS)
                .unwrap();
        }
        let other = "whsec_ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
        assert_eq!(
            Verifier::new([other]).unwrap().verify_at(&headers, BODY, TS),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn verifier_rejects() {
        let v = Verifier::new([SECRET])
            .unwrap()
            .tolerance(Duration::from_secs(10));
        let headers = Signer::new([SECRET]).unwrap().headers(ID, TS, BODY);
        assert_eq!(v.verify_at(&headers, BODY, TS + 11), Err(VerifyError::TooOld));
        assert_eq!(v.verify_at(&headers, BODY, TS - 11), Err(VerifyError::TooNew));
        v.verify_at(&headers, BODY, TS + 10).unwrap();
        assert_eq!(
            v.verify_at(&headers, b"{}", TS),
            Err(VerifyError::NoMatchingSignature)
        );
        let mut h = headers.clone();
        h.insert(WEBHOOK_ID, HeaderValue::from_static("msg_other"));
        assert_eq!(v.verify_at(&h, BODY, TS), Err(VerifyError::NoMatchingSignature));
        let mut h = headers.clone();
        h.insert(
            WEBHOOK_SIGNATURE,
            HeaderValue::from_static("v1a,abc v1,!!! nonsense"),
        );
        assert_eq!(v.verify_at(&h, BODY, TS), Err(VerifyError::NoMatchingSignature));
        let mut h = headers.clone();
        h.insert(WEBHOOK_TIMESTAMP, HeaderValue::from_static("yesterday"));
        assert_eq!(v.verify_at(&h, BODY, TS), Err(VerifyError::InvalidTimestamp));
        let mut h = headers;
        h.remove(WEBHOOK_SIGNATURE);
        assert_eq!(
            v.verify_at(&h, BODY, TS),
            Err(VerifyError::MissingHeader("webhook-signature"))
        );
    }

    #[test]
    fn default_tolerance_is_five_minutes_either_way() {
        let v = Verifier::new([SECRET]).unwrap();
        let headers = Signer::new([SECRET]).unwrap().headers(ID, TS, BODY);
        for now in [TS - 300, TS, TS + 300] {
            v.verify_at(&headers, BODY, now).unwrap();
        }
        assert_eq!(v.verify_at(&headers, BODY, TS + 301), Err(VerifyError::TooOld));
        assert_eq!(v.verify_at(&headers, BODY, TS - 301), Err(VerifyError::TooNew));
    }

    #[test]
    fn bad_secrets_are_named_not_shown() {
        let e = Signer::new(["whsec_not base64!"]).unwrap_err().to_string();
        assert_eq!(e, "secrets[0]: secret is not base64 (expected whsec_<base64>)");
        let e = Signer::new([SECRET, "whsec_c2hvcnQ="]).unwrap_err().to_string();
        assert!(e.starts_with("secrets[1]: secret is 5 bytes"), "{e}");
        // 16 bytes is the shortest accepted.
        Signer::new(["whsec_AAECAwQFBgcICQoLDA0ODw=="]).unwrap();
        let e = Signer::new(["whsec_AAECAwQFBgcICQoLDA0O"])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("secrets[0]: secret is 15 bytes, at least 16"),
            "{e}"
        );
        assert_eq!(
            Signer::new(Vec::<String>::new()).unwrap_err().to_string(),
            "no secret given"
        );
        let signer = Signer::new([SECRET]).unwrap();
        assert_eq!(format!("{signer:?}"), "Signer { secrets: 1 }");
        let verifier = Verifier::new([SECRET]).unwrap();
        assert_eq!(
            format!("{verifier:?}"),
            "Verifier { secrets: 1, tolerance: 300s }"
        );
    }
}
