//! Request fields (addr, actor, id, host, URL base, prefix), layer options, bad
//! input, and plain-hyper use.

mod support;

use example_registry::oci;
use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use registry_notify::dispatcher::Dispatcher;
use registry_notify::layer::{Notification, RequestBody, ResponseBody, ResponseFuture, TrustedProxies};
use registry_notify::{Action, AuthenticatedUser, NotificationLayer, RequestId};
use support::example::{registry, start_with};
use support::{sha256, sinks::Probe, Http};

async fn push_blob(c: &Http, prefix: &str, repo: &str, data: &[u8], headers: &[(&str, &str)]) -> String {
    let d = sha256(data);
    let r = c
        .send(
            "POST",
            &format!("{prefix}/v2/{repo}/blobs/uploads/?digest={d}"),
            headers,
            data.to_vec(),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    d
}

#[tokio::test]
async fn addr_actor_id_and_url_base_like_distribution() {
    let (c, probe) = start_with(registry(), |l| l).await;
    let h = [
        ("x-forwarded-for", "203.0.113.9, 10.0.0.1"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "registry.example.com"),
        ("authorization", "Basic YWxpY2U6c2VjcmV0"),
        ("x-request-id", "req-123"),
        ("user-agent", "skopeo/1.9.3"),
    ];
    let d = push_blob(&c, "", "library/test", b"abc", &h).await;
    let e = &probe.wait_take(1).await[0];
    assert_eq!(e.request.addr, "203.0.113.9");
    assert_eq!(e.actor.name, "alice");
    assert_eq!(e.request.id, "req-123");
    assert_eq!(e.request.useragent, "skopeo/1.9.3");
    assert_eq!(
        e.target.url,
        format!("https://registry.example.com/v2/library/test/blobs/{d}")
    );

    // X-Real-Ip when X-Forwarded-For is not an IP; an empty actor serialises as {}.
    push_blob(
        &c,
        "",
        "library/test",
        b"abcd",
        &[("x-forwarded-for", "junk"), ("x-real-ip", "198.51.100.7")],
    )
    .await;
    let e = &probe.wait_take(1).await[0];
    assert_eq!(e.request.addr, "198.51.100.7");
    assert!(e.actor.name.is_empty());
    let json = String::from_utf8(registry_notify::Format::EventsV2.encode_event(e)).unwrap();
    assert!(json.contains("\"actor\": {}"), "{json}");
}

#[tokio::test]
async fn forwarded_headers_only_from_trusted_proxies() {
    let (c, probe) = start_with(registry(), |l| {
        l.trusted_proxies("10.0.0.0/8".parse::<TrustedProxies>().unwrap())
    })
    .await;
    push_blob(&c, "", "a", b"x", &[("x-forwarded-for", "203.0.113.9")]).await;
    let e = &probe.wait_take(1).await[0];
    assert!(
        e.request.addr.starts_with("127.0.0.1:"),
        "spoofed header ignored: {}",
        e.request.addr
    );

    let (c, probe) = start_with(registry(), |l| l.trusted_proxies("127.0.0.1".parse().unwrap())).await;
    push_blob(&c, "", "a", b"x", &[("x-forwarded-for", "203.0.113.9")]).await;
    assert_eq!(probe.wait_take(1).await[0].request.addr, "203.0.113.9");
}

#[tokio::test]
async fn actor_and_request_id_from_extensions_and_fixed_base_url() {
    // Auth middleware outside the layer sets the user and the request id.
    let probe = Probe::default();
    let layer = NotificationLayer::new(Dispatcher::new(probe.sink())).base_url("https://reg.example/");
    let app = registry().layer(layer).layer(axum::middleware::map_request(
        |mut r: Request<axum::body::Body>| async move {
            r.extensions_mut().insert(AuthenticatedUser("token-sub".into()));
            r.extensions_mut().insert(RequestId("ext-id".into()));
            r
        },
    ));
    let c = Http::new(support::serve_router(app).await);
    let d = push_blob(
        &c,
        "",
        "a",
        b"x",
        &[
            ("authorization", "Basic YWxpY2U6c2VjcmV0"),
            ("x-request-id", "hdr"),
        ],
    )
    .await;
    let e = &probe.wait_take(1).await[0];
    assert_eq!(e.actor.name, "token-sub");
    assert_eq!(e.request.id, "ext-id");
    assert_eq!(e.target.url, format!("https://reg.example/v2/a/blobs/{d}"));
}

#[tokio::test]
async fn path_prefix_before_v2() {
    let probe = Probe::default();
    let layer = NotificationLayer::new(Dispatcher::new(probe.sink()));
    let app = tower::ServiceBuilder::new()
        .layer(layer)
        .service(axum::Router::new().nest_service("/mirror", registry()));
    let svc = tower::ServiceExt::map_request(app, |r: Request<hyper::body::Incoming>| {
        r.map(axum::body::Body::new)
    });
    let addr = support::serve(svc).await;
    let c = Http::new(addr);
    let d = push_blob(&c, "/mirror", "library/test", b"prefixed", &[]).await;
    let e = &probe.wait_take(1).await[0];
    assert_eq!(e.target.repository, "library/test");
    assert_eq!(
        e.target.url,
        format!("http://{addr}/mirror/v2/library/test/blobs/{d}")
    );
}

#[tokio::test]
async fn skip_head_pulls() {
    let (c, probe) = start_with(registry(), |l| l.skip_head_pulls(true)).await;
    let d = push_blob(&c, "", "a", b"x", &[]).await;
    probe.wait_take(1).await;
    c.send("HEAD", &format!("/v2/a/blobs/{d}"), &[], "").await;
    c.send("GET", &format!("/v2/a/blobs/{d}"), &[], "").await;
    let ev = probe.wait_take(1).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].request.method, "GET");
}

#[tokio::test]
async fn pull_on_body_end_emits_for_complete_bodies_only() {
    // The filesystem store streams blobs in chunks, as a real registry would.
    let dir = tempfile::tempdir().unwrap();
    let fs = oci::Registry::filesystem(
        dir.path().to_path_buf(),
        oci::RegistryOptions { delete_enabled: true },
    )
    .unwrap();
    let (c, probe) = start_with(oci::router(fs), |l| l.pull_on_body_end(true)).await;
    let big = vec![1u8; 8 << 20];
    let d = push_blob(&c, "", "a", &big, &[]).await;
    probe.wait_take(1).await;

    // Fully read: one pull. HEAD: one pull at once (hyper never polls its body).
    c.send("GET", &format!("/v2/a/blobs/{d}"), &[], "").await;
    c.send("HEAD", &format!("/v2/a/blobs/{d}"), &[], "").await;
    let ev = probe.wait_take(2).await;
    let mut methods: Vec<&str> = ev.iter().map(|e| e.request.method.as_str()).collect();
    methods.sort();
    assert_eq!(methods, ["GET", "HEAD"]);

    // Abandoned download: read one chunk, then close the connection.
    let mut stream = tokio::net::TcpStream::connect(c.base.trim_start_matches("http://"))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(format!("GET /v2/a/blobs/{d} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(n > 0);
    drop(stream);
    // A later complete request proves the server went on; the abandoned one left no event.
    c.send("HEAD", &format!("/v2/a/blobs/{d}"), &[], "").await;
    let ev = probe.wait_take(1).await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].request.method, "HEAD");
}

#[tokio::test]
async fn bad_input_passes_through_unchanged() {
    let plain = Http::new(support::serve_router(registry()).await);
    let (layered, probe) = start_with(registry(), |l| l).await;
    let long_name = format!("/v2/{}/manifests/x", "a".repeat(300));
    let long_tag = format!("/v2/a/manifests/{}", "t".repeat(200));
    let paths = [
        "/v2/A/manifests/latest",
        "/v2/a//b/manifests/latest",
        "/v2/a/manifests/sha256:xyz",
        "/v2/a/blobs/not-a-digest",
        "/v2/a/blobs/sha256:ABCDEF",
        "/v2/-a/blobs/uploads/",
        "/v2/a/manifests/%2e%2e",
        "/v2/../../etc/passwd",
        "/v2/a/blobs/uploads/../../x",
        long_name.as_str(),
        long_tag.as_str(),
        "/nope",
    ];
    let huge = "x".repeat(60_000);
    for path in paths {
        for method in ["GET", "HEAD", "PUT", "DELETE", "POST", "PATCH"] {
            let a = plain.send(method, path, &[], "").await;
            let b = layered.send(method, path, &[], "").await;
            assert_eq!((a.status, &a.body), (b.status, &b.body), "{method} {path}");
            let b2 = layered
                .send(
                    method,
                    path,
                    &[("x-forwarded-for", &huge), ("authorization", "Basic %%%")],
                    "",
                )
                .await;
            assert_eq!(a.status, b2.status, "{method} {path} with odd headers");
        }
    }
    // Non-UTF-8 header values on a real route.
    let d = sha256(b"z");
    let mut s = tokio::net::TcpStream::connect(layered.base.trim_start_matches("http://"))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut req = format!(
        "POST /v2/a/blobs/uploads/?digest={d} HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nUser-Agent: "
    )
    .into_bytes();
    req.extend_from_slice(b"\xff\xfe\x80\r\nX-Forwarded-For: \xc3\x28\r\nAuthorization: Basic \xff\r\nConnection: close\r\n\r\nz");
    s.write_all(&req).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    assert!(
        resp.starts_with(b"HTTP/1.1 201"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    let e = &probe.wait_take(1).await[0];
    assert_eq!(e.action, Action::Push);
    assert_eq!(e.request.useragent, "", "non-UTF-8 user agent is left out");
    assert!(e.request.addr.starts_with("127.0.0.1:"));
}

#[tokio::test]
async fn plain_hyper_service_and_disabled_layer() {
    // A plain hyper-style service (service_fn over Request<Incoming>), no axum.
    let probe = Probe::default();
    let layer = NotificationLayer::new(Dispatcher::new(probe.sink()));
    let digest = sha256(b"hello");
    let dg = digest.clone();
    let svc = tower::service_fn(move |req: Request<RequestBody<hyper::body::Incoming>>| {
        let dg = dg.clone();
        async move {
            let _ = req.into_body().collect().await;
            let resp = Response::builder()
                .status(200)
                .header("content-length", "5")
                .header("docker-content-digest", dg)
                .body(Full::new(Bytes::from_static(b"hello")))
                .unwrap();
            Ok::<_, Infallible>(resp)
        }
    });
    let addr = support::serve(tower::ServiceBuilder::new().layer(layer).service(svc)).await;
    let c = Http::new(addr);
    let r = c.get(&format!("/v2/x/blobs/{digest}")).await;
    assert_eq!(&r.body[..], b"hello");
    let e = &probe.wait_take(1).await[0];
    assert_eq!((e.action, e.target.descriptor.size), (Action::Pull, 5));

    // The default layer derives nothing and changes nothing.
    let addr = support::serve_router(registry().layer(NotificationLayer::default())).await;
    assert_eq!(Http::new(addr).get("/v2/").await.status, 200);
}

#[test]
fn layer_service_future_and_body_are_send_sync_clone() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    send_sync_clone::<NotificationLayer>();
    send_sync_clone::<Notification<axum::Router>>();
    send::<ResponseFuture<<axum::Router as tower::Service<Request<axum::body::Body>>>::Future>>();
    send::<ResponseBody<axum::body::Body>>();
}
