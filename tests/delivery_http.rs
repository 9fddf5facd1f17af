//! The HTTP sink against real loopback receivers: Distribution's TestHTTPSink and more.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use registry_notify::endpoint::{Endpoint, EndpointHandle};
use registry_notify::event::{EVENTS_V1_MEDIA_TYPE, EVENTS_V2_MEDIA_TYPE};
use registry_notify::http_sink::HttpSink;
use registry_notify::metrics::{EndpointMetrics, EndpointSnapshot};
use registry_notify::retry::Breaker;
use registry_notify::sink::{BoxError, DeliveryError};
use registry_notify::{Batch, Format};
use support::closing_listener;
use support::events::event;
use support::receiver::{always, by_index, response, stall, Receiver};
use tower::ServiceExt;

fn batch(n: usize) -> Batch {
    (0..n).map(|i| event(i, "library/test")).collect()
}

fn sink(url: &str, redirects_as_success: bool, metrics: &Arc<EndpointMetrics>) -> HttpSink {
    let endpoint = Endpoint::builder("test", url)
        .redirects_as_success(redirects_as_success)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    HttpSink::new(endpoint.http().expect("a webhook endpoint")).metrics(metrics.clone())
}

/// One event through a sink of `endpoint` counting into `metrics`.
async fn send_one(endpoint: &Endpoint, metrics: &Arc<EndpointMetrics>) -> Result<(), BoxError> {
    HttpSink::new(endpoint.http().expect("a webhook endpoint"))
        .metrics(metrics.clone())
        .oneshot(batch(1))
        .await
        .map(drop)
}

fn delivery_error(e: &BoxError) -> &DeliveryError {
    e.downcast_ref::<DeliveryError>().expect("a DeliveryError")
}

fn expect(
    successes: u64,
    failures: u64,
    errors: u64,
    statuses: &[(&str, u64)],
) -> (u64, u64, u64, BTreeMap<String, u64>) {
    let statuses = statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    (successes, failures, errors, statuses)
}

fn counts(s: &EndpointSnapshot) -> (u64, u64, u64, BTreeMap<String, u64>) {
    (s.successes, s.failures, s.errors, s.statuses.clone())
}

/// Distribution's `TestHTTPSink`, table part: the status comes from the `status` query
/// parameter; the receiver checks method, Content-Type and body.
#[tokio::test]
async fn test_http_sink_table() {
    let server = Receiver::start(by_index(|_, r| {
        let ok = r.method == http::Method::POST
            && r.headers.get("content-type").and_then(|v| v.to_str().ok()) == Some(EVENTS_V2_MEDIA_TYPE)
            && serde_json::from_slice::<registry_notify::Envelope>(&r.body).is_ok();
        if !ok {
            return 418;
        }
        r.uri
            .query()
            .and_then(|q| q.strip_prefix("status="))
            .and_then(|s| s.parse().ok())
            .unwrap_or(500)
    }))
    .await;
    let metrics = Arc::new(EndpointMetrics::new("test", &server.url()));
    let with_status = |code: u16| format!("http://{}/?status={code}", server.addr);

    let mut expected_statuses: Vec<(&str, u64)> = vec![];
    for i in 1..=4 {
        sink(&with_status(200), false, &metrics)
            .oneshot(batch(3))
            .await
            .unwrap();
        expected_statuses = vec![("200 OK", i)];
        assert_eq!(counts(&metrics.snapshot()), expect(i, 0, 0, &expected_statuses));
    }

    // 307 without Location: not followed; success only as Distribution counts it.
    sink(&with_status(307), true, &metrics)
        .oneshot(batch(3))
        .await
        .unwrap();
    expected_statuses.push(("307 Temporary Redirect", 1));
    assert_eq!(counts(&metrics.snapshot()), expect(5, 0, 0, &expected_statuses));

    let err = sink(&with_status(400), false, &metrics)
        .oneshot(batch(3))
        .await
        .unwrap_err();
    assert!(matches!(delivery_error(&err), DeliveryError::Status { status, .. } if status.as_u16() == 400));
    assert!(!delivery_error(&err).is_retryable());
    assert_eq!(err.to_string(), "response status 400 Bad Request unaccepted");
    expected_statuses.push(("400 Bad Request", 1));
    assert_eq!(counts(&metrics.snapshot()), expect(5, 1, 0, &expected_statuses));

    // A listener that closes the connection at once: an error, no status.
    let (closing, task) = closing_listener().await;
    let err = sink(&format!("http://{closing}/"), false, &metrics)
        .oneshot(batch(3))
        .await
        .unwrap_err();
    assert!(
        matches!(delivery_error(&err), DeliveryError::Transport(_)),
        "{err}"
    );
    assert!(delivery_error(&err).is_retryable());
    assert_eq!(counts(&metrics.snapshot()), expect(5, 1, 1, &expected_statuses));
    task.abort();

    // Every request the receiver saw passed its checks (else it answered 418).
    assert_eq!(server.request_count(), 6);
    assert_eq!(metrics.snapshot().delivered, 15);
}

#[tokio::test]
async fn redirect_is_a_permanent_failure_by_default_and_never_followed() {
    let target = Receiver::start(always(200)).await;
    let location = target.url();
    let server = Receiver::start(Arc::new(move |_, _| {
        let mut r = response(302);
        r.headers_mut().insert("location", location.parse().unwrap());
        Box::pin(std::future::ready(r))
    }))
    .await;
    let metrics = Arc::new(EndpointMetrics::new("test", &server.url()));
    let err = sink(&server.url(), false, &metrics)
        .oneshot(batch(1))
        .await
        .unwrap_err();
    assert!(!delivery_error(&err).is_retryable());
    sink(&server.url(), true, &metrics)
        .oneshot(batch(1))
        .await
        .unwrap();
    assert_eq!(counts(&metrics.snapshot()), expect(1, 1, 0, &[("302 Found", 2)]));
    assert_eq!(target.request_count(), 0, "redirects are not followed");
}

#[tokio::test]
async fn headers_user_agent_content_type_and_basic_auth() {
    let server = Receiver::start(always(202)).await;
    let url = format!("http://alice:p%40ss@{}/hook?x=1", server.addr);
    let endpoint = Endpoint::builder("h", url)
        .header("X-Multi", "one")
        .header("X-Multi", "two")
        .header("X-Single", "s")
        .format(Format::EventsV1)
        .build()
        .unwrap();
    let sent = batch(2);
    HttpSink::new(endpoint.http().expect("a webhook endpoint"))
        .oneshot(sent.clone())
        .await
        .unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.method, http::Method::POST);
    assert_eq!(r.uri.path(), "/hook");
    assert_eq!(r.uri.query(), Some("x=1"));
    assert_eq!(r.headers["content-type"], EVENTS_V1_MEDIA_TYPE);
    assert_eq!(
        r.headers["user-agent"],
        format!("registry-notify/{}", env!("CARGO_PKG_VERSION"))
    );
    let multi: Vec<_> = r
        .headers
        .get_all("x-multi")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(multi, ["one", "two"], "each value on its own header line");
    assert_eq!(r.headers["x-single"], "s");
    // base64("alice:p@ss")
    assert_eq!(r.headers["authorization"], "Basic YWxpY2U6cEBzcw==");
    // Ours first, configured headers appended after them.
    let names: Vec<&str> = r.headers.keys().map(|k| k.as_str()).collect();
    let pos = |n: &str| names.iter().position(|k| *k == n).unwrap();
    assert!(
        pos("content-type") < pos("x-multi") && pos("user-agent") < pos("x-multi"),
        "{names:?}"
    );
    assert_eq!(r.events().len(), 2);
    assert_eq!(
        r.body,
        Format::EventsV1.encode(&sent),
        "body is the format's exact encoding"
    );
}

#[tokio::test]
async fn configured_authorization_wins_over_userinfo() {
    let server = Receiver::start(always(200)).await;
    let endpoint = Endpoint::builder("h", format!("http://u:p@{}/", server.addr))
        .header("Authorization", "Bearer token")
        .build()
        .unwrap();
    HttpSink::new(endpoint.http().expect("a webhook endpoint"))
        .oneshot(batch(1))
        .await
        .unwrap();
    let auth: Vec<_> = server.requests()[0]
        .headers
        .get_all("authorization")
        .iter()
        .cloned()
        .collect();
    assert_eq!(auth, ["Bearer token"]);
}

#[tokio::test]
async fn timeout_is_an_error_without_status() {
    let server = Receiver::start(stall()).await;
    let metrics = Arc::new(EndpointMetrics::new("t", &server.url()));
    let endpoint = Endpoint::builder("t", server.url())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = send_one(&endpoint, &metrics).await.unwrap_err();
    assert!(matches!(delivery_error(&err), DeliveryError::Timeout(d) if *d == Duration::from_millis(200)));
    assert_eq!(counts(&metrics.snapshot()), expect(0, 0, 1, &[]));
}

#[tokio::test]
async fn retry_after_is_reported() {
    let server = Receiver::start(Arc::new(|_, _| {
        let mut r = response(429);
        r.headers_mut().insert("retry-after", "7".parse().unwrap());
        Box::pin(std::future::ready(r))
    }))
    .await;
    let endpoint = Endpoint::builder("t", server.url()).build().unwrap();
    let err = HttpSink::new(endpoint.http().expect("a webhook endpoint"))
        .oneshot(batch(1))
        .await
        .unwrap_err();
    match delivery_error(&err) {
        DeliveryError::Status { status, retry_after } => {
            assert_eq!(status.as_u16(), 429);
            assert_eq!(*retry_after, Some(Duration::from_secs(7)));
        }
        other => panic!("{other:?}"),
    }
    assert!(delivery_error(&err).is_retryable());
}

/// `n` events sent one after the other through an endpoint to a receiver answering 200, once
/// they all arrived.
async fn serial_posts(n: usize) -> (Receiver, EndpointHandle) {
    let server = Receiver::start(always(200)).await;
    let endpoint = Endpoint::builder("k", server.url()).build().unwrap();
    let (sink, handle) = endpoint.spawn();
    for i in 0..n {
        sink.clone()
            .oneshot(Batch::from(event(i, "library/test")))
            .await
            .unwrap();
    }
    server.wait_requests(n).await;
    (server, handle)
}

/// Keep-alive: many events over one connection (Distribution opens one per event).
#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let (server, handle) = serial_posts(50).await;
    assert_eq!(server.connections(), 1, "all 50 POSTs on one connection");
    let ids = server.ids();
    assert_eq!(
        ids,
        (0..50).map(|i| format!("event-{i}")).collect::<Vec<_>>(),
        "in order, once"
    );
    assert_eq!(
        handle
            .shutdown(tokio::time::Instant::now() + Duration::from_secs(30))
            .await,
        0
    );
}

/// A response body is read to keep the connection: up to 64 KiB it is kept, a larger one costs
/// the connection (and never the delivery).
#[tokio::test]
async fn response_bodies_up_to_64_kib_keep_the_connection() {
    for (size, connections) in [(60 * 1024, 1), (64 * 1024, 1), (64 * 1024 + 1, 3)] {
        let body = bytes::Bytes::from(vec![b'x'; size]);
        let server = Receiver::start(Arc::new(move |_, _| {
            let body = body.clone();
            Box::pin(async move { http::Response::new(http_body_util::Full::new(body)) })
        }))
        .await;
        let endpoint = Endpoint::builder("big", server.url()).build().unwrap();
        let (sink, handle) = endpoint.spawn();
        for i in 0..3 {
            sink.clone()
                .oneshot(Batch::from(event(i, "library/test")))
                .await
                .unwrap();
        }
        server.wait_requests(3).await;
        let _ = handle
            .shutdown(tokio::time::Instant::now() + Duration::from_secs(30))
            .await;
        assert_eq!(server.ids().len(), 3);
        assert_eq!(handle.metrics().delivered, 3, "{size} bytes");
        assert_eq!(server.connections(), connections, "{size}-byte responses");
    }
}

/// On a multi-threaded runtime too, serial POSTs reuse the one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_on_a_multi_thread_runtime() {
    let (server, handle) = serial_posts(200).await;
    if std::env::var("SHOW_CONNECTIONS").is_ok() {
        eprintln!("connections: {}", server.connections());
    }
    assert_eq!(server.connections(), 1, "200 serial POSTs on one connection");
    assert_eq!(
        server.ids(),
        (0..200).map(|i| format!("event-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        handle
            .shutdown(tokio::time::Instant::now() + Duration::from_secs(30))
            .await,
        0
    );
}

/// A retried batch is byte-identical (same ids, same bytes).
#[tokio::test]
async fn retried_body_is_byte_identical() {
    let server = Receiver::start(by_index(|n, _| if n < 2 { 503 } else { 200 })).await;
    let endpoint = Endpoint::builder("r", server.url())
        .max_events(5)
        .retry(Breaker::new(3, Duration::from_millis(10)))
        .build()
        .unwrap();
    let (sink, handle) = endpoint.spawn();
    sink.oneshot(batch(5)).await.unwrap();
    server.wait_requests(3).await;
    let requests = server.requests();
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(requests[1].body, requests[2].body);
    assert_eq!(requests[2].ids().len(), 5);
    assert_eq!(
        handle
            .shutdown(tokio::time::Instant::now() + Duration::from_secs(30))
            .await,
        0
    );
    let m = handle.metrics();
    assert_eq!((m.failures, m.successes, m.retries, m.delivered), (2, 1, 2, 5));
    assert_eq!(m.statuses["503 Service Unavailable"], 2);
}

#[cfg(feature = "https")]
mod tls {
    use super::*;

    use crate::support::tls::tls_server;

    #[tokio::test]
    async fn unknown_ca_is_rejected_by_default() {
        let server = tls_server().await;
        let metrics = Arc::new(EndpointMetrics::new("tls", &server.url));
        let endpoint = Endpoint::builder("tls", &server.url)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let err = send_one(&endpoint, &metrics).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(delivery_error(&err), DeliveryError::Transport(_)),
            "{text}"
        );
        assert!(
            text.contains("certificate") || text.contains("UnknownIssuer"),
            "{text}"
        );
        assert_eq!(counts(&metrics.snapshot()), expect(0, 0, 1, &[]));
    }

    #[tokio::test]
    async fn ca_pem_is_trusted() {
        let server = tls_server().await;
        let endpoint = Endpoint::builder("tls", &server.url)
            .ca_pem(server.ca_pem.as_bytes())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        HttpSink::new(endpoint.http().expect("a webhook endpoint"))
            .oneshot(batch(1))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn danger_accept_invalid_certs_accepts() {
        let server = tls_server().await;
        let endpoint = Endpoint::builder("tls", &server.url)
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        HttpSink::new(endpoint.http().expect("a webhook endpoint"))
            .oneshot(batch(1))
            .await
            .unwrap();
    }

    #[test]
    fn bad_ca_pem_is_a_config_error() {
        let err = Endpoint::builder("tls", "https://127.0.0.1:1/")
            .ca_pem(b"nope".to_vec())
            .build()
            .unwrap_err();
        assert!(err.to_string().starts_with("endpoint \"tls\".tls.ca: "), "{err}");
    }
}

/// A server that answers one request per connection and then closes it, without saying so
/// (`Connection: close` absent): every POST still succeeds, each on a fresh connection, and
/// no attempt is reported as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_closing_idle_connections_costs_no_attempt() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let (a, b) = (accepted.clone(), answered.clone());
    let server = tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            a.fetch_add(1, Ordering::SeqCst);
            let b = b.clone();
            tokio::spawn(async move {
                // Read the head, then exactly Content-Length bytes of body.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                // Counted before the answer goes out, so the count is complete when the
                // sink has seen every answer.
                b.fetch_add(1, Ordering::SeqCst);
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
                // Closing without a `Connection: close` header.
                let _ = socket.shutdown().await;
            });
        }
    });

    let url = format!("http://{addr}/events");
    let metrics = Arc::new(EndpointMetrics::new("closing", &url));
    let mut sink = sink(&url, false, &metrics);
    for i in 0..20 {
        tower::Service::call(sink.ready().await.unwrap(), Batch::from(event(i, "library/test")))
            .await
            .unwrap_or_else(|e| panic!("POST {i} failed: {e}"));
    }
    assert_eq!(answered.load(Ordering::SeqCst), 20);
    assert_eq!(accepted.load(Ordering::SeqCst), 20, "one connection per answer");
    let snapshot = metrics.snapshot();
    assert_eq!(
        (snapshot.successes, snapshot.failures, snapshot.errors),
        (20, 0, 0)
    );
    server.abort();
}
