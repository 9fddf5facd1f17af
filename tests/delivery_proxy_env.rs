//! `HTTP_PROXY` / `NO_PROXY` from the environment, as Distribution honours them. One test in
//! its own binary: it sets process-wide variables that no other test may see.

mod support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use registry_notify::endpoint::Endpoint;
use registry_notify::http_sink::HttpSink;
use registry_notify::{Action, Batch, Event, Target};
use support::Receiver;
use tower::ServiceExt;

/// A forwarding proxy that resolves every host to 127.0.0.1 (the tests' made-up names stay
/// on loopback) and records the request targets it forwarded.
async fn start_proxy() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let s = s.clone();
                    async move {
                        s.lock().unwrap().push(req.uri().to_string());
                        let port = req.uri().port_u16().unwrap_or(80);
                        let (mut parts, body) = req.into_parts();
                        parts.uri = parts.uri.path_and_query().unwrap().as_str().parse().unwrap();
                        let body = body.collect().await.unwrap().to_bytes();
                        let upstream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                        let (mut sender, conn) =
                            hyper::client::conn::http1::handshake(TokioIo::new(upstream))
                                .await
                                .unwrap();
                        tokio::spawn(conn);
                        let response = sender
                            .send_request(Request::from_parts(parts, Full::new(body)))
                            .await
                            .unwrap();
                        let status = response.status();
                        let mut out = Response::new(Full::new(Bytes::new()));
                        *out.status_mut() = status;
                        Ok::<_, Infallible>(out)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn environment_proxy_with_no_proxy_and_loopback_exceptions() {
    let (proxy, seen) = start_proxy().await;
    let receiver = Receiver::start(support::receiver::always(200)).await;
    let addr = receiver.addr;
    let port = addr.port();
    // Edition 2021: setting variables is safe; this binary has no other test. Whatever the
    // machine's own proxy settings are (either case), only these count here.
    for name in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        std::env::remove_var(name);
    }
    std::env::set_var("HTTP_PROXY", format!("http://erin:env-s3cret@{proxy}"));
    std::env::set_var("NO_PROXY", "skip.test");

    let proxied = Endpoint::builder("proxied", format!("http://hooks.test:{port}/events"))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    assert_eq!(proxied.proxy(), Some(format!("http://{proxy}").as_str()));
    assert!(!format!("{proxied:?}").contains("env-s3cret"));
    let skipped = Endpoint::builder("skipped", format!("http://skip.test:{port}/events"))
        .build()
        .unwrap();
    assert_eq!(skipped.proxy(), None, "NO_PROXY");
    let local = Endpoint::builder("local", format!("http://127.0.0.1:{port}/events"))
        .build()
        .unwrap();
    assert_eq!(local.proxy(), None, "loopback is never proxied");

    let event = |id: &str| {
        let mut e = Event::new(Action::Push, Target::default());
        e.id = id.into();
        Batch::from(e)
    };
    HttpSink::new(proxied.http().expect("a webhook endpoint"))
        .oneshot(event("via-proxy"))
        .await
        .unwrap();
    HttpSink::new(local.http().expect("a webhook endpoint"))
        .oneshot(event("direct"))
        .await
        .unwrap();
    let ids: Vec<String> = receiver
        .wait_events(2)
        .await
        .into_iter()
        .map(|e| e.id.to_string())
        .collect();
    assert_eq!(ids, ["via-proxy", "direct"]);
    assert_eq!(
        *seen.lock().unwrap(),
        [format!("http://hooks.test:{port}/events")]
    );
}
