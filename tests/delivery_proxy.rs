//! Delivery through an outbound HTTP proxy (a real forwarding and `CONNECT` proxy on
//! loopback): absolute-form requests with `Proxy-Authorization` for `http://` endpoints,
//! a tunnel with end-to-end TLS for `https://` endpoints, and credentials kept out of
//! errors and `Debug`.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use registry_notify::endpoint::Endpoint;
use registry_notify::http_sink::{HttpSink, Proxy};
use registry_notify::sink::DeliveryError;
use registry_notify::{Batch, Event};
use support::Receiver;
use tower::ServiceExt;

/// What the proxy saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    target: String,
    proxy_authorization: Option<String>,
}

/// A forwarding proxy: absolute-form requests are forwarded (without
/// `Proxy-Authorization`), `CONNECT host:port` opens a byte tunnel.
struct TestProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

fn empty(status: StatusCode) -> Response<ProxyBody> {
    let mut r = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    r
}

async fn proxy_request(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<ProxyBody>, Infallible> {
    seen.lock().unwrap().push(Seen {
        method: req.method().clone(),
        target: req.uri().to_string(),
        proxy_authorization: req
            .headers()
            .get(http::header::PROXY_AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_owned()),
    });
    if req.method() == Method::CONNECT {
        let Some(authority) = req.uri().authority().map(|a| a.to_string()) else {
            return Ok(empty(StatusCode::BAD_REQUEST));
        };
        let Ok(mut upstream) = tokio::net::TcpStream::connect(&authority).await else {
            return Ok(empty(StatusCode::BAD_GATEWAY));
        };
        tokio::spawn(async move {
            if let Ok(upgraded) = hyper::upgrade::on(req).await {
                let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(upgraded), &mut upstream).await;
            }
        });
        return Ok(empty(StatusCode::OK));
    }
    // Absolute form: forward to the origin.
    let (mut parts, body) = req.into_parts();
    let Some(authority) = parts.uri.authority().map(|a| a.to_string()) else {
        return Ok(empty(StatusCode::BAD_REQUEST));
    };
    parts.headers.remove(http::header::PROXY_AUTHORIZATION);
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .parse()
        .unwrap();
    let Ok(stream) = tokio::net::TcpStream::connect(&authority).await else {
        return Ok(empty(StatusCode::BAD_GATEWAY));
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await else {
        return Ok(empty(StatusCode::BAD_GATEWAY));
    };
    tokio::spawn(conn);
    match sender.send_request(Request::from_parts(parts, body)).await {
        Ok(response) => Ok(response.map(BodyExt::boxed)),
        Err(_) => Ok(empty(StatusCode::BAD_GATEWAY)),
    }
}

async fn start_proxy() -> TestProxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| proxy_request(req, s.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    TestProxy { addr, seen, task }
}

/// POSTs `event-0` to `event-2` through one sink of `endpoint`, one after the other.
async fn post_three(endpoint: &Endpoint) {
    let mut sink = HttpSink::new(endpoint.http().expect("a webhook endpoint"));
    for i in 0..3 {
        sink.ready().await.unwrap();
        tower::Service::call(&mut sink, Batch::from(event(i)))
            .await
            .unwrap();
    }
}

fn event(i: usize) -> Event {
    support::events::bare(i, "library/proxied")
}

#[tokio::test]
async fn http_endpoint_through_a_forwarding_proxy_with_credentials() {
    let proxy = start_proxy().await;
    let receiver = Receiver::start(support::receiver::always(200)).await;
    let addr = receiver.addr;
    let url = format!("http://{addr}/events");
    let endpoint = Endpoint::builder("proxied", &url)
        .proxy(Proxy::Url(format!("http://alice:pr0xy-s3cret@{}", proxy.addr)))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    assert_eq!(endpoint.proxy(), Some(format!("http://{}", proxy.addr).as_str()));
    assert!(!format!("{endpoint:?}").contains("pr0xy-s3cret"));

    post_three(&endpoint).await;
    let ids: Vec<String> = receiver
        .wait_events(3)
        .await
        .into_iter()
        .map(|e| e.id.to_string())
        .collect();
    assert_eq!(ids, ["event-0", "event-1", "event-2"]);

    let seen = proxy.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for s in &seen {
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.target, url, "absolute form");
        // base64("alice:pr0xy-s3cret")
        assert_eq!(
            s.proxy_authorization.as_deref(),
            Some("Basic YWxpY2U6cHIweHktczNjcmV0")
        );
    }
    // The receiver sees neither the proxy's credentials nor any trace of them.
    for request in receiver.requests() {
        assert!(request.headers.get(http::header::PROXY_AUTHORIZATION).is_none());
    }
}

#[cfg(feature = "https")]
#[tokio::test]
async fn https_endpoint_through_a_connect_tunnel() {
    let proxy = start_proxy().await;
    let server = support::tls::tls_server().await;
    let endpoint = Endpoint::builder("tunnelled", &server.url)
        .ca_pem(server.ca_pem.clone())
        .proxy(Proxy::Url(format!("http://bob:tunn3l-s3cret@{}", proxy.addr)))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    post_three(&endpoint).await;
    assert_eq!(server.requests(), 3);
    let seen = proxy.seen.lock().unwrap().clone();
    // One tunnel, kept alive for the three POSTs, which the proxy cannot read.
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, Method::CONNECT);
    let origin = server
        .url
        .trim_start_matches("https://")
        .trim_end_matches("/events");
    assert_eq!(seen[0].target, origin);
    assert_eq!(
        seen[0].proxy_authorization.as_deref(),
        Some("Basic Ym9iOnR1bm4zbC1zM2NyZXQ=")
    );
}

#[tokio::test]
async fn proxy_down_is_a_retryable_transport_error_without_credentials() {
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let receiver = Receiver::start(support::receiver::always(200)).await;
    let addr = receiver.addr;
    let endpoint = Endpoint::builder("proxied", format!("http://{addr}/events"))
        .proxy(Proxy::Url(format!("http://carol:d34d-s3cret@{dead}")))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let err = HttpSink::new(endpoint.http().expect("a webhook endpoint"))
        .oneshot(Batch::from(event(0)))
        .await
        .unwrap_err();
    let delivery = err.downcast_ref::<DeliveryError>().expect("a DeliveryError");
    assert!(matches!(delivery, DeliveryError::Transport(_)), "{err}");
    assert!(delivery.is_retryable());
    assert!(!err.to_string().contains("d34d-s3cret"), "{err}");
    assert!(receiver.events().is_empty());
}

#[tokio::test]
async fn proxy_none_goes_straight_and_bad_proxy_urls_are_config_errors() {
    let receiver = Receiver::start(support::receiver::always(200)).await;
    let addr = receiver.addr;
    let endpoint = Endpoint::builder("direct", format!("http://{addr}/events"))
        .proxy(Proxy::None)
        .build()
        .unwrap();
    assert_eq!(endpoint.proxy(), None);
    HttpSink::new(endpoint.http().expect("a webhook endpoint"))
        .oneshot(Batch::from(event(0)))
        .await
        .unwrap();
    assert_eq!(receiver.wait_events(1).await.len(), 1);

    for (url, why) in [
        (
            "socks5://dave:b4d-s3cret@127.0.0.1:1080",
            "must be http://host:port",
        ),
        ("http://dave:b4d-s3cret@", "proxy url"),
    ] {
        let err = Endpoint::builder("bad", "http://127.0.0.1:9/")
            .proxy(Proxy::Url(url.into()))
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("endpoint \"bad\": "), "{err}");
        assert!(err.contains(why), "{err}");
        assert!(!err.contains("b4d-s3cret"), "{err}");
    }
    if cfg!(feature = "https") {
        let err = Endpoint::builder("bad", "https://127.0.0.1:9/")
            .proxy(Proxy::Url("https://127.0.0.1:3128".into()))
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("not supported"), "{err}");
    }
}
