//! rustls client configuration: system roots, extra CA bundle, or no verification; and an
//! optional client certificate (mTLS).

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The system's trust anchors, loaded once per process.
fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let result = rustls_native_certs::load_native_certs();
        if !result.errors.is_empty() {
            tracing::debug!(
                errors = result.errors.len(),
                "notifications: some system certificates could not be loaded"
            );
        }
        if result.certs.is_empty() {
            tracing::warn!("notifications: no system root certificates found; https endpoints need ca_pem");
        }
        result.certs
    })
}

/// Parses the certificates of a PEM bundle; errors when there is none or one is malformed.
pub(crate) fn parse_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in PEM".into());
    }
    Ok(certs)
}

/// A client certificate chain and its private key, parsed from PEM.
pub(crate) struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ClientIdentity {
    /// Parses a certificate chain (leaf first) and a private key (PKCS#8, PKCS#1 or SEC1);
    /// checks that the key belongs to the leaf certificate. Errors name the part at fault,
    /// never show key material.
    pub(crate) fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, String> {
        let chain = parse_pem(cert_pem).map_err(|e| format!("client certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "client key: no private key in PEM (expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
                    .to_owned()
            }
            _ => "client key: invalid PEM".to_owned(),
        })?;
        let provider = rustls::crypto::ring::default_provider();
        let signing_key = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|_| "client key: unsupported or malformed private key".to_owned())?;
        rustls::sign::CertifiedKey::new(chain.clone(), signing_key)
            .keys_match()
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    "client key does not match the client certificate".to_owned()
                }
                other => format!("client certificate: {other}"),
            })?;
        Ok(Self { chain, key })
    }
}

/// The rustls configuration of an endpoint.
pub(crate) fn client_config(
    ca_pem: Option<&[u8]>,
    danger_accept_invalid_certs: bool,
    load_system_roots: bool,
) -> Result<ClientConfig, String> {
    client_config_with_identity(ca_pem, danger_accept_invalid_certs, load_system_roots, None)
}

/// [`client_config`] presenting `identity` to servers that ask for a client certificate.
pub(crate) fn client_config_with_identity(
    ca_pem: Option<&[u8]>,
    danger_accept_invalid_certs: bool,
    load_system_roots: bool,
    identity: Option<&ClientIdentity>,
) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let auth = |builder: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>| match identity
    {
        None => Ok(builder.with_no_client_auth()),
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(|e| format!("client certificate: {e}")),
    };
    if danger_accept_invalid_certs {
        return auth(
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider))),
        );
    }
    let mut roots = RootCertStore::empty();
    if load_system_roots {
        roots.add_parsable_certificates(native_roots().iter().cloned());
    }
    if let Some(pem) = ca_pem {
        for cert in parse_pem(pem)? {
            roots
                .add(cert)
                .map_err(|e| format!("invalid CA certificate: {e}"))?;
        }
    }
    auth(builder.with_root_certificates(roots))
}

/// `danger_accept_invalid_certs`: accepts any server certificate, still checking that
/// the handshake is signed by its key.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
