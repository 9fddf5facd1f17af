//! HTTP sink: POSTs one envelope per batch to the endpoint; the innermost stage.
//!
//! [`HttpSink`] is the innermost service of an endpoint stack. Each call is one attempt:
//!
//! * `POST <url>` with the batch encoded in the endpoint's [`Format`] —
//!   the same batch always encodes to the same bytes, so a retry is byte-identical;
//! * `Content-Type` = the format's media type, `User-Agent: registry-notify/<version>`,
//!   then the configured headers, each value on its own header line, like Distribution;
//! * the whole attempt (connect, send, response head) is bounded by the endpoint's timeout
//!   ([`DeliveryError::Timeout`]); the response body is read (up to 64 KiB) and discarded so
//!   the connection goes back to the keep-alive pool — unlike Distribution, which opens a
//!   new connection per event;
//! * 2xx is success; 3xx is success only with `redirects_as_success` (Distribution's
//!   behaviour), else [`DeliveryError::Status`] — redirects are never followed; any other
//!   status is [`DeliveryError::Status`] with the `Retry-After` delay (seconds or HTTP date)
//!   if the endpoint sent one; no response is [`DeliveryError::Transport`] or `Timeout`.
//!
//! Metrics, per attempt, like Distribution: `successes` / `failures` with the status in
//! `statuses` (`"200 OK"`), or `errors` (no status) for transport errors and timeouts.
//!
//! HTTPS (feature `https`, on by default) uses rustls with the system roots plus the
//! endpoint's `ca_pem`, or no verification with `danger_accept_invalid_certs`.
//!
//! ```no_run
//! use registry_notify::{endpoint::Endpoint, http_sink::HttpSink, Action, Batch, Event, Target};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), registry_notify::sink::BoxError> {
//! let endpoint = Endpoint::builder("local", "http://127.0.0.1:8080/events").build()?;
//! let sink = HttpSink::new(endpoint.http().expect("a webhook endpoint"));
//! sink.oneshot(Batch::from(Event::new(Action::Push, Target::default()))).await?; // one attempt
//! # Ok(()) }
//! ```

mod config;
mod pool;
mod proxy;
#[cfg(feature = "templates")]
mod template;
#[cfg(feature = "https")]
pub(crate) mod tls;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use crate::event::{Batch, Format};
use crate::metrics::EndpointMetrics;
use crate::secret::Secrets;
use crate::sink::{BoxError, DeliveryError, Receipt};
use pool::Pool;

/// The `User-Agent` of every notification.
pub const USER_AGENT_VALUE: &str = concat!("registry-notify/", env!("CARGO_PKG_VERSION"));

/// How much of a response body is read before the connection is given up instead.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

pub use config::HttpSinkConfig;
pub(crate) use config::HttpSinkOptions;
use proxy::Connector;
pub use proxy::Proxy;
#[cfg(feature = "templates")]
pub use template::{PayloadTemplate, Preset, TemplateError};

/// A sink that POSTs each batch as one envelope; see the [module docs](self).
///
/// Clones share the endpoint's kept-alive connections.
#[derive(Clone)]
pub struct HttpSink {
    pool: Arc<Pool<Connector>>,
    shared: Arc<Shared>,
    metrics: Option<Arc<EndpointMetrics>>,
}

struct Shared {
    name: String,
    redacted_url: String,
    /// Where connections go: the endpoint, or a forwarding proxy.
    connect_to: http::Uri,
    /// The request target: `uri` in origin form (`/path?query`), or whole for a proxy.
    path: http::Uri,
    headers: HeaderMap,
    timeout: Duration,
    format: Format,
    /// The body's template, in place of the format's envelope.
    #[cfg(feature = "templates")]
    template: Option<PayloadTemplate>,
    redirects_as_success: bool,
    secrets: Arc<Secrets>,
    #[cfg(feature = "signing")]
    signer: Option<Arc<crate::signing::Signer>>,
}

impl HttpSink {
    /// An HTTP sink for `endpoint` with its own connection pool.
    pub fn new(endpoint: &HttpSinkConfig) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(endpoint.timeout));
        let route = endpoint.proxy_route.as_ref();
        #[cfg(feature = "https")]
        let connector = {
            // The endpoint's TLS settings, or for a plain-http one the settings to reach an
            // https proxy (built and checked by `EndpointBuilder::build`).
            let tls = (*endpoint.tls).clone();
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1();
            match route {
                Some(r) if r.tunnel => {
                    let mut tunnel =
                        hyper_util::client::legacy::connect::proxy::Tunnel::new(r.uri.clone(), http);
                    if let Some(auth) = &r.authorization {
                        tunnel = tunnel.with_auth(auth.clone());
                    }
                    Connector::tunnel(https.wrap_connector(tunnel))
                }
                _ => Connector::direct(https.wrap_connector(http)),
            }
        };
        #[cfg(not(feature = "https"))]
        let connector = Connector::direct(http);
        let pool = Arc::new(Pool::new(connector));

        let mut headers = HeaderMap::new();
        if let Some(host) = host_header(&endpoint.uri) {
            headers.insert(HOST, host);
        }
        headers.insert(CONTENT_TYPE, body_content_type(endpoint));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        for (name, value) in &endpoint.headers {
            headers.append(name.clone(), value.clone());
        }
        // Absolute form to a forwarding proxy; origin form to the endpoint or in a tunnel.
        let (connect_to, path) = match route {
            Some(r) if !r.tunnel => {
                if let Some(auth) = &r.authorization {
                    headers.insert(http::header::PROXY_AUTHORIZATION, auth.clone());
                }
                (r.uri.clone(), endpoint.uri.clone())
            }
            _ => (endpoint.uri.clone(), origin_form(&endpoint.uri)),
        };
        Self {
            pool,
            shared: Arc::new(Shared {
                name: endpoint.name.clone(),
                redacted_url: endpoint.redacted_url.clone(),
                connect_to,
                path,
                headers,
                timeout: endpoint.timeout,
                format: endpoint.format,
                #[cfg(feature = "templates")]
                template: endpoint.template.clone(),
                redirects_as_success: endpoint.redirects_as_success,
                secrets: endpoint.secrets.clone(),
                #[cfg(feature = "signing")]
                signer: endpoint.signer.clone(),
            }),
            metrics: None,
        }
    }

    /// Records every attempt in `metrics`.
    pub fn metrics(mut self, metrics: Arc<EndpointMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSink")
            .field("name", &self.shared.name)
            .field("url", &self.shared.redacted_url)
            .field("timeout", &self.shared.timeout)
            .field("format", &self.shared.format)
            .finish_non_exhaustive()
    }
}

impl Service<Batch> for HttpSink {
    type Response = Receipt;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Receipt, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Connections are made per attempt; the sink itself is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Batch) -> Self::Future {
        let pool = self.pool.clone();
        let shared = self.shared.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let _in_flight = metrics.as_deref().map(|m| m.attempt_started(batch.len()));
            attempt(&pool, &shared, metrics.as_deref(), batch)
                .await
                .inspect_err(|e| {
                    if let Some(m) = &metrics {
                        m.set_last_error(e.to_string());
                    }
                })
                .map_err(BoxError::from)
        })
    }
}

impl Shared {
    fn has_template(&self) -> bool {
        #[cfg(feature = "templates")]
        return self.template.is_some();
        #[cfg(not(feature = "templates"))]
        false
    }
}

/// The `Content-Type` of the bodies `endpoint` sends: its template's, or its format's.
fn body_content_type(endpoint: &HttpSinkConfig) -> HeaderValue {
    #[cfg(feature = "templates")]
    if let Some(t) = &endpoint.template {
        return t.content_type().clone();
    }
    HeaderValue::from_static(endpoint.format.media_type())
}

/// The body of a POST of `batch`: the template's rendering, or the format's envelope.
fn encode(shared: &Shared, batch: &Batch) -> Result<Vec<u8>, DeliveryError> {
    #[cfg(feature = "templates")]
    if let Some(t) = &shared.template {
        return t.render(batch).map_err(|e| DeliveryError::Encode(e.to_string()));
    }
    Ok(shared.format.encode(batch))
}

/// W3C Trace Context's header.
const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// The headers of a POST of `batch`: the endpoint's, the media type for its size, the
/// `traceparent` of the first event that has one, and the signatures of `body` (timestamped
/// now, with the batch's stable id).
#[cfg_attr(not(feature = "signing"), allow(unused_variables))]
fn request_headers(shared: &Shared, batch: &Batch, body: &Bytes) -> HeaderMap {
    let mut headers = shared.headers.clone();
    if !shared.has_template() && shared.format.media_type_for(batch.len()) != shared.format.media_type() {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(shared.format.media_type_for(batch.len())),
        );
    }
    // The trace the registry request carried (the first event's that has one), unless the
    // endpoint's own headers set one.
    if !headers.contains_key(TRACEPARENT) {
        let trace = batch
            .iter()
            .map(|e| &*e.request.traceparent)
            .find(|t| !t.is_empty());
        if let Some(value) = trace.and_then(|t| HeaderValue::from_str(t).ok()) {
            headers.insert(TRACEPARENT, value);
        }
    }
    #[cfg(feature = "signing")]
    if let Some(signer) = &shared.signer {
        // Same id on every attempt of the batch, timestamp of this attempt.
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        signer.insert_headers(&mut headers, &crate::event::message_id(batch), now, body);
    }
    headers
}

async fn attempt(
    pool: &Pool<Connector>,
    shared: &Shared,
    metrics: Option<&EndpointMetrics>,
    batch: Batch,
) -> Result<Receipt, DeliveryError> {
    let record = |f: &dyn Fn(&EndpointMetrics)| {
        if let Some(m) = metrics {
            f(m);
        }
    };
    let body = Bytes::from(encode(shared, &batch)?);
    // The request is built once; only the keep-alive race (see `Pool::send`) builds it again.
    let headers = std::cell::Cell::new(Some(request_headers(shared, &batch, &body)));
    let batch_ref = &batch;
    let build = move || {
        let mut request = Request::new(Full::new(body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = shared.path.clone();
        *request.headers_mut() = headers
            .take()
            .unwrap_or_else(|| request_headers(shared, batch_ref, &body));
        request
    };

    // One timer for the whole attempt: the response head within the timeout is the
    // outcome; the body is then read (within the same deadline) so the connection can
    // be reused — a slow or oversized body only costs the connection.
    let mut outcome = None;
    let started = tokio::time::Instant::now();
    let exchange = async {
        let (response, conn) = pool.send(&shared.connect_to, build).await?;
        let status = response.status();
        record(&|m| m.record_attempt_duration(started.elapsed()));
        outcome = Some((status, parse_retry_after(response.headers(), SystemTime::now())));
        // Only a connection whose response was read to the end can carry another request.
        if Limited::new(response.into_body(), MAX_RESPONSE_BODY)
            .collect()
            .await
            .is_ok()
        {
            pool.put_back(conn);
        }
        Ok::<(), BoxError>(())
    };
    let finished = tokio::time::timeout(shared.timeout, exchange).await;
    let (status, retry_after) = match (outcome, finished) {
        (Some(outcome), _) => outcome,
        (None, Ok(Err(error))) => {
            record(&|m| {
                m.record_attempt_duration(started.elapsed());
                m.record_error();
            });
            return Err(DeliveryError::Transport(
                shared.secrets.scrub(&error_chain(&*error)),
            ));
        }
        (None, _) => {
            record(&|m| {
                m.record_attempt_duration(started.elapsed());
                m.record_error();
            });
            return Err(DeliveryError::Timeout(shared.timeout));
        }
    };

    if is_success(status, shared.redirects_as_success) {
        record(&|m| m.record_success(status, batch.len()));
        Ok(Receipt::status(status))
    } else {
        record(&|m| m.record_failure(status));
        Err(DeliveryError::Status { status, retry_after })
    }
}

/// `uri` in origin form: `/path?query`.
fn origin_form(uri: &http::Uri) -> http::Uri {
    uri.path_and_query()
        .and_then(|pq| pq.as_str().parse().ok())
        .unwrap_or_else(|| http::Uri::from_static("/"))
}

/// The `Host` header for `uri`: its authority without the scheme's default port.
fn host_header(uri: &http::Uri) -> Option<HeaderValue> {
    let authority = uri.authority()?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let host = match authority.port_u16() {
        Some(port) if port != default_port => authority.as_str(),
        _ => authority.host(),
    };
    // Userinfo never reaches the Host header.
    let host = host.rsplit('@').next().unwrap_or(host);
    HeaderValue::from_str(host).ok()
}

/// `error: source: source…`, skipping a source already contained in the text so far.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The delay a `Retry-After` header asks for: delta-seconds or an HTTP date.
fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Whether `status` counts as delivered for an endpoint.
fn is_success(status: StatusCode, redirects_as_success: bool) -> bool {
    status.is_success() || (status.is_redirection() && redirects_as_success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_names_each_cause_once() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl fmt::Display for E {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let refused = E("connection refused", None);
        let connect = E("client error (Connect)", Some(Box::new(refused)));
        assert_eq!(
            error_chain(&connect),
            "client error (Connect): connection refused"
        );
        // A cause already in the text is not repeated.
        let repeated = E(
            "tcp connect error: connection refused",
            Some(Box::new(E("connection refused", None))),
        );
        assert_eq!(error_chain(&repeated), "tcp connect error: connection refused");
        assert_eq!(error_chain(&E("alone", None)), "alone");
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(parse_retry_after(&h, now), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(120)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&past).unwrap());
        assert_eq!(parse_retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h, now), None);
    }

    #[test]
    fn success_classes() {
        assert!(is_success(StatusCode::ACCEPTED, false));
        assert!(!is_success(StatusCode::TEMPORARY_REDIRECT, false));
        assert!(is_success(StatusCode::TEMPORARY_REDIRECT, true));
        assert!(!is_success(StatusCode::BAD_REQUEST, true));
    }

    #[test]
    fn host_header_forms() {
        let host = |u: &str| host_header(&u.parse().unwrap()).unwrap();
        assert_eq!(host("http://hooks.example.com/x"), "hooks.example.com");
        assert_eq!(host("http://hooks.example.com:80/x"), "hooks.example.com");
        assert_eq!(host("https://hooks.example.com:443/x"), "hooks.example.com");
        assert_eq!(host("https://hooks.example.com:80/x"), "hooks.example.com:80");
        assert_eq!(host("http://127.0.0.1:5055/events"), "127.0.0.1:5055");
        assert_eq!(host("http://[::1]:5055/events"), "[::1]:5055");
        assert_eq!(host("http://[::1]/events"), "[::1]");
        assert_eq!(host("http://user:pw@example.com:8080/"), "example.com:8080");
        assert_eq!(host("http://user:pw@example.com/"), "example.com");
    }

    #[test]
    fn user_agent() {
        assert_eq!(
            USER_AGENT_VALUE,
            format!("registry-notify/{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
