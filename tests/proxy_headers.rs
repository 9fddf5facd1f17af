//! What the proxy example does to requests and responses on their way: the
//! upstream is a loopback HTTP server that answers with what it received, so
//! the test sees both sides of the proxy (the example binary, a real process).

mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use support::Http;

/// An upstream on 127.0.0.1 that answers each request with what it received
/// (JSON), and with auth challenges, redirects and partial content on a few paths.
async fn echo_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| handle(addr, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn handle(
    addr: SocketAddr,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &parts.headers {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(v.to_str().unwrap_or("<binary>").to_owned());
    }
    let echo = json!({
        "method": parts.method.as_str(),
        "target": parts.uri.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut resp = Response::builder().header("content-type", "application/json");
    resp = match parts.uri.path() {
        "/v2/auth" => resp
            .status(StatusCode::UNAUTHORIZED)
            .header(
                "www-authenticate",
                r#"Bearer realm="http://auth.example/token",service="registry""#,
            )
            .header("connection", "x-private-hop")
            .header("x-private-hop", "1")
            .header("keep-alive", "timeout=5"),
        "/v2/redirect-upstream" => resp
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header("location", format!("http://{addr}/v2/elsewhere?x=1")),
        "/v2/redirect-relative" => resp
            .status(StatusCode::ACCEPTED)
            .header("location", "/v2/a/blobs/uploads/1?_state=s"),
        "/v2/redirect-other" => resp
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header("location", "https://storage.example/blob?sig=1"),
        "/v2/range" => resp
            .status(StatusCode::PARTIAL_CONTENT)
            .header("content-range", "bytes 0-9/100"),
        _ => resp.status(StatusCode::OK),
    };
    Ok(resp.body(Full::new(Bytes::from(echo.to_string()))).unwrap())
}

fn echo(r: &support::Reply) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {:?}", r.body))
}

fn header<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v["headers"][name].get(0).and_then(Value::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_responses_pass_through() {
    let upstream = echo_upstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let proxy = support::registries::start_proxy(tmp.path(), upstream, "").await;
    let c = Http::new(proxy.addr);
    let host = proxy.addr.to_string();

    // Method, target, end-to-end headers and body forwarded; hop-by-hop ones removed.
    let r = c
        .send(
            "PATCH",
            "/v2/a/b/blobs/uploads/1?_state=xyz&n=2",
            &[
                ("authorization", "Bearer token-1"),
                ("content-range", "0-4"),
                ("connection", "x-private-hop"),
                ("x-private-hop", "secret"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("proxy-authorization", "Basic cHJveHk6c2VjcmV0"),
                ("x-forwarded-for", "203.0.113.7"),
                ("user-agent", "test/1"),
            ],
            "hello",
        )
        .await;
    assert_eq!(r.status, 200);
    let e = echo(&r);
    assert_eq!(e["method"], "PATCH");
    assert_eq!(e["target"], "/v2/a/b/blobs/uploads/1?_state=xyz&n=2");
    assert_eq!(e["body"], "hello");
    assert_eq!(header(&e, "authorization"), Some("Bearer token-1"));
    assert_eq!(header(&e, "content-range"), Some("0-4"));
    assert_eq!(header(&e, "user-agent"), Some("test/1"));
    assert_eq!(
        header(&e, "host"),
        Some(host.as_str()),
        "the client's Host is kept"
    );
    assert_eq!(header(&e, "x-forwarded-for"), Some("203.0.113.7, 127.0.0.1"));
    assert_eq!(header(&e, "x-forwarded-proto"), Some("http"));
    assert_eq!(header(&e, "x-forwarded-host"), Some(host.as_str()));
    for hop in ["x-private-hop", "keep-alive", "te", "proxy-authorization"] {
        assert_eq!(header(&e, hop), None, "{hop} must not be forwarded");
    }
    assert_ne!(header(&e, "connection"), Some("x-private-hop"));

    // Forwarding headers the client set are kept, not overwritten.
    let r = c
        .send(
            "GET",
            "/v2/",
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "registry.example.com"),
            ],
            "",
        )
        .await;
    let e = echo(&r);
    assert_eq!(header(&e, "x-forwarded-proto"), Some("https"));
    assert_eq!(header(&e, "x-forwarded-host"), Some("registry.example.com"));
    assert_eq!(header(&e, "x-forwarded-for"), Some("127.0.0.1"));

    // Auth challenges pass through; hop-by-hop response headers do not.
    let r = c.send("GET", "/v2/auth", &[], "").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="http://auth.example/token",service="registry""#)
    );
    assert_eq!(r.header("x-private-hop"), None);
    assert_eq!(r.header("keep-alive"), None);

    // Location: the upstream's own origin becomes the proxy's; others stay.
    let r = c.send("GET", "/v2/redirect-upstream", &[], "").await;
    assert_eq!(r.status, 307);
    assert_eq!(
        r.header("location"),
        Some(format!("http://{host}/v2/elsewhere?x=1").as_str())
    );
    let r = c
        .send(
            "GET",
            "/v2/redirect-upstream",
            &[("x-forwarded-proto", "https"), ("x-forwarded-host", "r.example")],
            "",
        )
        .await;
    assert_eq!(r.header("location"), Some("https://r.example/v2/elsewhere?x=1"));
    let r = c.send("POST", "/v2/redirect-relative", &[], "").await;
    assert_eq!(r.status, 202);
    assert_eq!(r.header("location"), Some("/v2/a/blobs/uploads/1?_state=s"));
    let r = c.send("GET", "/v2/redirect-other", &[], "").await;
    assert_eq!(r.header("location"), Some("https://storage.example/blob?sig=1"));

    // Range requests and partial answers.
    let r = c.send("GET", "/v2/range", &[("range", "bytes=0-9")], "").await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 0-9/100"));
    assert_eq!(header(&echo(&r), "range"), Some("bytes=0-9"));

    // HEAD: the upstream's Content-Length is kept, no body.
    let r = c.send("HEAD", "/v2/", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-length").is_some_and(|n| n != "0"),
        "{:?}",
        r.headers
    );
    assert!(r.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_is_a_bad_gateway() {
    let closed: SocketAddr = format!("127.0.0.1:{}", support::free_port()).parse().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let proxy = support::registries::start_proxy(tmp.path(), closed, "").await;
    let r = Http::new(proxy.addr).get("/v2/").await;
    assert_eq!(r.status, 502);
}

#[tokio::test]
async fn configs_without_a_usable_upstream_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for (upstream, complaint) in [
        ("", "missing key upstream"),
        ("upstream: [1]\n", "a URL string is required"),
        ("upstream: https://127.0.0.1:5001\n", "not supported (http only)"),
        ("upstream: 127.0.0.1:5001\n", "absolute http:// URL"),
        ("upstream: http://127.0.0.1:5001/prefix\n", "path prefix"),
    ] {
        let cfg = tmp.path().join("proxy.yml");
        std::fs::write(
            &cfg,
            format!("version: 0.1\n{upstream}http:\n  addr: 127.0.0.1:0\n"),
        )
        .unwrap();
        let out = tokio::process::Command::new(support::process::example_binary("proxy"))
            .arg("serve")
            .arg(&cfg)
            .output()
            .await
            .unwrap();
        assert!(!out.status.success(), "{upstream:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(complaint), "{upstream:?}: {err}");
    }
}
