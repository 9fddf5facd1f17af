//! Mutual TLS: an https receiver on 127.0.0.1 that requires a client certificate from its
//! own CA (certificates generated with rcgen). Delivery succeeds with the right certificate
//! and fails — reported in the delivery log, metrics and dead letters — without one or with a
//! certificate from another CA. Bad PEM and a key that does not match are clear config
//! errors; the insecure option logs a warning.
#![cfg(feature = "https")]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use registry_notify::endpoint::{Endpoint, EndpointBuilder};
use registry_notify::http_sink::HttpSink;
use registry_notify::retry::{AttemptOutcome, DeliveryRecord};
use registry_notify::sink::DeliveryError;
use registry_notify::{Action, Batch, Config, Event, Target};
use support::logs::Logs;
use support::receiver::response;
use support::retry::retries;
use support::HANG_GUARD;
use tokio::time::Instant;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// A leaf certificate and its key, as PEM.
    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }
}

/// An https receiver requiring a client certificate issued by `client_ca`.
struct MtlsServer {
    url: String,
    server_ca: Ca,
    requests: Arc<AtomicUsize>,
    rejected_handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MtlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn mtls_server(client_ca: &Ca) -> MtlsServer {
    let server_ca = Ca::new("receiver CA");
    let (cert_pem, key_pem) =
        server_ca.issue(&["127.0.0.1", "localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client_ca.cert.der().clone()).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap();
    use rustls::pki_types::pem::PemObject;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()],
            rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let rejected = Arc::new(AtomicUsize::new(0));
    let (req, rej) = (requests.clone(), rejected.clone());
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let (req, rej) = (req.clone(), rej.clone());
            tokio::spawn(async move {
                let tls = match acceptor.accept(stream).await {
                    Ok(tls) => tls,
                    Err(_) => {
                        rej.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                };
                assert!(tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty()));
                let service = hyper::service::service_fn(move |_req| {
                    req.fetch_add(1, Ordering::SeqCst);
                    async { Ok::<_, std::convert::Infallible>(response(204)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    MtlsServer {
        url: format!("https://{addr}/events"),
        server_ca,
        requests,
        rejected_handshakes: rejected,
        task,
    }
}

fn event() -> Batch {
    let mut e = Event::new(Action::Push, Target::default());
    e.id = "mtls-1".into();
    e.target.repository = "r".into();
    Batch::from(e)
}

fn endpoint(server: &MtlsServer) -> EndpointBuilder {
    Endpoint::builder("mtls", &server.url)
        .ca_pem(server.server_ca.pem())
        .timeout(Duration::from_secs(30))
}

#[tokio::test]
async fn the_right_client_certificate_is_accepted() {
    let client_ca = Ca::new("client CA");
    let server = mtls_server(&client_ca).await;
    let (cert, key) = client_ca.issue(&["registry"], ExtendedKeyUsagePurpose::ClientAuth);
    let endpoint = endpoint(&server).client_cert_pem(cert, key).build().unwrap();
    assert!(format!("{endpoint:?}").contains("client_cert: true"));
    HttpSink::new(endpoint.http().expect("a webhook endpoint"))
        .oneshot(event())
        .await
        .unwrap();
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert_eq!(server.rejected_handshakes.load(Ordering::SeqCst), 0);
}

/// Without a certificate, or with one from another CA, every attempt fails with a transport
/// error; the delivery log reports each attempt and the dead letter.
#[tokio::test]
async fn no_certificate_or_another_ca_fails_and_is_reported() {
    let client_ca = Ca::new("client CA");
    let other_ca = Ca::new("another CA");
    let server = mtls_server(&client_ca).await;
    let (other_cert, other_key) = other_ca.issue(&["registry"], ExtendedKeyUsagePurpose::ClientAuth);
    let make = |case: usize| match case {
        0 => endpoint(&server),
        _ => endpoint(&server).client_cert_pem(other_cert.clone(), other_key.clone()),
    };
    for (case, what) in ["no certificate", "another CA"].into_iter().enumerate() {
        // One attempt directly: a transport error.
        let err = HttpSink::new(make(case).build().unwrap().http().unwrap())
            .oneshot(event())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<DeliveryError>(),
                Some(DeliveryError::Transport(_))
            ),
            "{what}: {err}"
        );

        // Through the stack: two attempts, both logged, then the dead letter.
        let records: Arc<Mutex<Vec<DeliveryRecord>>> = Arc::default();
        let r = records.clone();
        let (sink, handle) = make(case)
            .retry(retries(1, 1, Some(2)))
            .delivery_log(move |record| r.lock().unwrap().push(record))
            .build()
            .unwrap()
            .spawn();
        sink.oneshot(event()).await.unwrap();
        assert_eq!(handle.shutdown(Instant::now() + HANG_GUARD).await, 0, "{what}");
        let records = records.lock().unwrap();
        assert_eq!(records.len(), 3, "{what}: {records:#?}");
        let attempts: Vec<_> = records
            .iter()
            .filter_map(|r| match r {
                DeliveryRecord::Attempt(a) => Some(a),
                _ => None,
            })
            .collect();
        assert_eq!(attempts.len(), 2);
        for (i, a) in attempts.iter().enumerate() {
            assert_eq!(a.attempt, i as u32 + 1);
            assert_eq!(a.status, None, "{what}: no HTTP response");
            assert!(
                a.error.as_deref().is_some_and(|e| e.contains("transport error")),
                "{what}: {a:?}"
            );
            assert_eq!(a.message_id, "mtls-1");
        }
        assert_eq!(attempts[0].outcome, AttemptOutcome::Retrying);
        assert_eq!(attempts[1].outcome, AttemptOutcome::GivingUp);
        assert!(matches!(&records[2], DeliveryRecord::DeadLetter(d) if d.attempts == 2));
        assert_eq!(handle.metrics().errors, 2, "{what}");
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
    assert!(server.rejected_handshakes.load(Ordering::SeqCst) >= 1);
}

/// YAML: `tls: {ca, clientcert, clientkey}` as file paths.
#[tokio::test]
async fn yaml_client_certificate_files() {
    let client_ca = Ca::new("client CA");
    let server = mtls_server(&client_ca).await;
    let (cert, key) = client_ca.issue(&["registry"], ExtendedKeyUsagePurpose::ClientAuth);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str, pem: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, pem).unwrap();
        p.display().to_string()
    };
    let (ca, cert, key) = (
        path("ca.pem", &server.server_ca.pem()),
        path("client.pem", &cert),
        path("client.key", &key),
    );
    let yaml = format!(
        "notifications:\n  endpoints:\n    - name: mtls\n      url: {}\n      timeout: 30s\n      tls:\n        ca: {ca}\n        clientcert: {cert}\n        clientkey: {key}\n",
        server.url
    );
    let config = Config::from_yaml_str(&yaml).unwrap();
    let endpoint = config.notifications.unwrap().endpoints().unwrap().remove(0);
    HttpSink::new(endpoint.http().expect("a webhook endpoint"))
        .oneshot(event())
        .await
        .unwrap();
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);

    let missing = yaml.replace(&key, "/nonexistent/client.key");
    let err = Config::from_yaml_str(&missing)
        .unwrap()
        .notifications
        .unwrap()
        .endpoints()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tls.clientkey") && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn bad_pem_and_mismatched_keys_are_clear_errors() {
    let ca = Ca::new("client CA");
    let (cert, key) = ca.issue(&["registry"], ExtendedKeyUsagePurpose::ClientAuth);
    let (_, other_key) = ca.issue(&["other"], ExtendedKeyUsagePurpose::ClientAuth);
    let build = |cert: &str, key: &str| {
        Endpoint::builder("mtls", "https://127.0.0.1:1/")
            .client_cert_pem(cert.to_owned(), key.to_owned())
            .build()
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    build(&cert, &key).unwrap();
    assert_eq!(
        build("not a pem", &key).unwrap_err(),
        "endpoint \"mtls\".tls: client certificate: no certificate in PEM"
    );
    assert_eq!(
        build(&cert, "not a pem").unwrap_err(),
        "endpoint \"mtls\".tls: client key: no private key in PEM (expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
    );
    let mismatched = build(&cert, &other_key).unwrap_err();
    assert_eq!(
        mismatched,
        "endpoint \"mtls\".tls: client key does not match the client certificate"
    );
    // A certificate where the key should be.
    assert!(build(&cert, &cert).unwrap_err().contains("client key"));
    // Plain http endpoints check the files too.
    let err = Endpoint::builder("mtls", "http://127.0.0.1:1/")
        .client_cert_pem(cert.clone(), other_key.clone())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    // No key material in any error or Debug output.
    let body = |pem: &str| pem.lines().nth(1).unwrap().to_owned();
    for text in [
        mismatched,
        format!(
            "{:?}",
            Endpoint::builder("m", "https://h/").client_cert_pem(cert.clone(), key.clone())
        ),
    ] {
        assert!(
            !text.contains(&body(&key)) && !text.contains(&body(&other_key)),
            "{text}"
        );
    }
}

/// `danger_accept_invalid_certs` still presents the client certificate, and says loudly
/// that it is on.
#[tokio::test]
async fn insecure_option_warns_and_still_presents_the_certificate() {
    let (logs, _guard) = Logs::capture();
    let client_ca = Ca::new("client CA");
    let server = mtls_server(&client_ca).await;
    let (cert, key) = client_ca.issue(&["registry"], ExtendedKeyUsagePurpose::ClientAuth);
    let (sink, handle) = Endpoint::builder("insecure", &server.url)
        .danger_accept_invalid_certs(true)
        .client_cert_pem(cert, key)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .spawn();
    sink.oneshot(event()).await.unwrap();
    assert_eq!(handle.shutdown(Instant::now() + HANG_GUARD).await, 0);
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    let text = logs.text();
    let warning = text
        .lines()
        .find(|l| l.contains("WARN") && l.contains("INSECURE"))
        .unwrap_or_else(|| panic!("no insecure warning in:\n{text}"));
    assert!(warning.contains("insecure"), "{warning}");
}
