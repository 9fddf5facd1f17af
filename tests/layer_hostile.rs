//! A hostile upstream: a real loopback registry-like hyper service whose every response
//! carries one hostile `Range`, `Content-Range`, `Content-Length` or `Docker-Content-Digest`
//! (numbers past `i64::MAX` and `u64::MAX`, reversed and negative ranges, `bytes=` forms,
//! non-ASCII bytes, 10 KB values, malformed digests). It is wrapped by the layer with
//! itself as the lookup service, and put behind the proxy example, as a proxy would be.
//!
//! For every case: no panic (a panic in the layer closes the client's connection, or
//! shows in the proxy's log), each response equal to the upstream's own answer to the
//! same request, and every event well formed (sizes never negative, digests valid).

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use registry_notify::dispatcher::Dispatcher;
use registry_notify::NotificationLayer;
use support::checks::{assert_raw_well_formed, assert_well_formed};
use support::{sha256, sinks::Probe, Receiver};

const BLOB: &[u8] = b"0123456789";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn manifest() -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":10}},"layers":[]}}"#,
        sha256(BLOB)
    )
}

/// Hostile values of numeric headers.
fn numbers() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        "0-9223372036854775807",
        "0-9223372036854775806",
        "0-18446744073709551615",
        "0-18446744073709551616",
        "5-2",
        "-1",
        "0--1",
        "0-",
        "bytes=0-9223372036854775807",
        "bytes=0-18446744073709551615",
        "bytes 0-9/9223372036854775807",
        "bytes 0-9223372036854775807/9223372036854775807",
        "bytes 0-9223372036854775806/9223372036854775807",
        "bytes */9223372036854775807",
        "bytes */18446744073709551615",
        "bytes 5-2/10",
        "bytes 0-20/10",
        "bytes -1-5/10",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "-9223372036854775808",
        "-1",
        "+10",
        "1e3",
        "0x10",
        " 10 ",
        "10, 10",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    v.push(b"0-\xff\xfe".to_vec());
    v.push("0-9\u{20ac}".as_bytes().to_vec());
    v.push(vec![b'9'; 10 * 1024]);
    let mut long = b"0-".to_vec();
    long.extend(std::iter::repeat_n(b'9', 10 * 1024));
    v.push(long);
    let mut long = b"bytes */".to_vec();
    long.extend(std::iter::repeat_n(b'1', 10 * 1024));
    v.push(long);
    v
}

/// Hostile `Docker-Content-Digest` values (valid ones that differ from the request too).
fn digests() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        format!("sha256:{}", "A".repeat(64)),
        format!("sha256:{}", "a".repeat(63)),
        format!("sha512:{}", "a".repeat(127)),
        format!("sha512:{}", "b".repeat(128)),
        format!("sha256:{}", "c".repeat(64)),
        "sha256:".into(),
        ":".into(),
        "foo:".into(),
        "-a:x".into(),
        "a..b:x".into(),
        "sha256 :x".into(),
        format!("sha256:{}", "d".repeat(10 * 1024)),
        format!("x:{}", "e".repeat(10 * 1024)),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    v.push(b"sha256:\xff\xfe".to_vec());
    v.push("sha256:\u{20ac}".as_bytes().to_vec());
    v
}

/// Every case: one header name and one value, set on every response of the upstream.
fn cases() -> Vec<(HeaderName, HeaderValue)> {
    let mut cases = Vec::new();
    for name in ["range", "content-range", "content-length"] {
        for v in numbers() {
            cases.push((
                HeaderName::from_static(name),
                HeaderValue::from_bytes(&v).unwrap(),
            ));
        }
    }
    for v in digests().into_iter().chain(numbers()) {
        cases.push((
            HeaderName::from_static("docker-content-digest"),
            HeaderValue::from_bytes(&v).unwrap(),
        ));
    }
    cases
}

/// The hostile upstream: a small registry whose responses carry the current case's header.
#[derive(Clone, Default)]
struct Hostile {
    case: Arc<Mutex<Option<(HeaderName, HeaderValue)>>>,
}

impl Hostile {
    fn set(&self, case: Option<(HeaderName, HeaderValue)>) {
        *self.case.lock().unwrap() = case;
    }

    fn answer(&self, method: &Method, path: &str, query: &str, req: &HeaderMap) -> Response<OneChunk> {
        let param = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_owned)
        };
        let p = path.strip_prefix("/v2/").unwrap_or(path);
        let verb = ["/blobs/", "/manifests/", "/tags/"]
            .iter()
            .filter_map(|v| p.find(v))
            .min()
            .unwrap_or(0);
        let (name, rest) = (&p[..verb], p.get(verb + 1..).unwrap_or(""));
        let mut r = Response::builder();
        let body: Bytes;
        match (method.as_str(), rest) {
            ("POST", "blobs/uploads/") => match param("digest").or_else(|| param("mount")) {
                Some(d) => {
                    r = r
                        .status(201)
                        .header("docker-content-digest", &d)
                        .header("location", format!("/v2/{name}/blobs/{d}"));
                    body = Bytes::new();
                }
                None => {
                    r = r
                        .status(202)
                        .header("location", format!("/v2/{name}/blobs/uploads/u1"))
                        .header("range", "0-0");
                    body = Bytes::new();
                }
            },
            ("PATCH", "blobs/uploads/u1") => {
                r = r
                    .status(202)
                    .header("location", format!("/v2/{name}/blobs/uploads/u1"))
                    .header("range", "0-9");
                body = Bytes::new();
            }
            ("GET", "blobs/uploads/u1") => {
                r = r.status(204).header("range", "0-9");
                body = Bytes::new();
            }
            ("PUT", "blobs/uploads/u1") => {
                let d = param("digest").unwrap_or_default();
                r = r
                    .status(201)
                    .header("docker-content-digest", &d)
                    .header("location", format!("/v2/{name}/blobs/{d}"));
                body = Bytes::new();
            }
            ("GET" | "HEAD", b) if b.starts_with("blobs/") => {
                let d = &b["blobs/".len()..];
                r = r.header("docker-content-digest", d);
                let range = req.get("range").and_then(|v| v.to_str().ok());
                (r, body) = match range {
                    Some(x) if x.starts_with("bytes=1") => (
                        r.status(416).header("content-range", "bytes */10"),
                        Bytes::from_static(b"invalid range"),
                    ),
                    Some(_) => (
                        r.status(206).header("content-range", "bytes 0-4/10"),
                        Bytes::from_static(&BLOB[..5]),
                    ),
                    None => (r.status(200), Bytes::from_static(BLOB)),
                };
            }
            ("GET" | "HEAD", m) if m.starts_with("manifests/") => {
                let m = manifest();
                r = r
                    .status(200)
                    .header("content-type", OCI_MANIFEST)
                    .header("docker-content-digest", sha256(m.as_bytes()));
                body = Bytes::from(m);
            }
            ("PUT", m) if m.starts_with("manifests/") => {
                r = r
                    .status(201)
                    .header("docker-content-digest", sha256(manifest().as_bytes()));
                body = Bytes::new();
            }
            ("DELETE", _) => {
                r = r.status(202);
                body = Bytes::new();
            }
            ("GET", "tags/list") => {
                r = r.status(200).header("content-type", "application/json");
                body = Bytes::from(format!(r#"{{"name":"{name}","tags":["t1","t2"]}}"#));
            }
            _ => {
                r = r.status(404);
                body = Bytes::new();
            }
        }
        let r = r.header("content-length", body.len());
        let body = if method == Method::HEAD {
            Bytes::new()
        } else {
            body
        };
        let mut resp = r.body(OneChunk(Some(body))).unwrap();
        if let Some((name, value)) = self.case.lock().unwrap().clone() {
            if name == http::header::CONTENT_LENGTH {
                // A length the reader cannot use makes it read to the end of the connection.
                resp.headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}

/// A body of unknown length (no size hint), so that hyper sends the `Content-Length`
/// the upstream set, whatever it says, instead of checking it against the body.
struct OneChunk(Option<Bytes>);

impl http_body::Body for OneChunk {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(
            self.0
                .take()
                .filter(|b| !b.is_empty())
                .map(|b| Ok(http_body::Frame::data(b))),
        )
    }
}

impl<B: Send + 'static> tower::Service<Request<B>> for Hostile {
    type Response = Response<OneChunk>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let resp = self.answer(
            req.method(),
            req.uri().path(),
            req.uri().query().unwrap_or(""),
            req.headers(),
        );
        Box::pin(async move { Ok(resp) })
    }
}

/// A response, or why the connection failed.
type Outcome = Result<(StatusCode, HeaderMap, Bytes), String>;

type Client_ = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn fetch(client: &Client_, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Outcome {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
    let resp = tokio::time::timeout(support::HANG_GUARD, client.request(req))
        .await
        .map_err(|_| "hung".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(support::HANG_GUARD, body.collect())
        .await
        .map_err(|_| "body hung".to_string())?
        .map_err(|e| format!("body: {e:?}"))?
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// A client request: method, path and query, headers, body.
type Step = (&'static str, String, Vec<(&'static str, String)>, Vec<u8>);

/// The client's requests of one case: an upload in chunks, blob reads (whole, ranged,
/// unsatisfiable), a monolithic upload, a mount, manifest writes and reads, a delete.
fn scenario() -> Vec<Step> {
    let d = sha256(BLOB);
    let m = manifest();
    let md = sha256(m.as_bytes());
    let ct = ("content-type", OCI_MANIFEST.to_string());
    vec![
        ("POST", "/v2/h/r/blobs/uploads/".into(), vec![], vec![]),
        ("PATCH", "/v2/h/r/blobs/uploads/u1".into(), vec![], BLOB.to_vec()),
        (
            "PUT",
            format!("/v2/h/r/blobs/uploads/u1?digest={d}"),
            vec![],
            vec![],
        ),
        ("HEAD", format!("/v2/h/r/blobs/{d}"), vec![], vec![]),
        ("GET", format!("/v2/h/r/blobs/{d}"), vec![], vec![]),
        (
            "GET",
            format!("/v2/h/r/blobs/{d}"),
            vec![("range", "bytes=0-4".into())],
            vec![],
        ),
        (
            "GET",
            format!("/v2/h/r/blobs/{d}"),
            vec![("range", "bytes=100-200".into())],
            vec![],
        ),
        (
            "POST",
            format!("/v2/h/r/blobs/uploads/?digest={d}"),
            vec![],
            BLOB.to_vec(),
        ),
        (
            "POST",
            format!("/v2/h/s/blobs/uploads/?mount={d}&from=h/r"),
            vec![],
            vec![],
        ),
        (
            "PUT",
            "/v2/h/r/manifests/t1".into(),
            vec![ct.clone()],
            m.clone().into_bytes(),
        ),
        ("PUT", format!("/v2/h/r/manifests/{md}"), vec![ct], m.into_bytes()),
        ("GET", "/v2/h/r/manifests/t1".into(), vec![], vec![]),
        ("HEAD", "/v2/h/r/manifests/t1".into(), vec![], vec![]),
        ("HEAD", format!("/v2/h/r/manifests/{md}"), vec![], vec![]),
        ("DELETE", format!("/v2/h/r/manifests/{md}"), vec![], vec![]),
    ]
}

/// Headers that the proxy drops or that differ by nature.
fn comparable(mut h: HeaderMap) -> HeaderMap {
    for name in ["date", "connection", "keep-alive", "transfer-encoding"] {
        h.remove(name);
    }
    h
}

fn same(context: &str, direct: &Outcome, layered: &Outcome) {
    match (direct, layered) {
        (Ok((s1, h1, b1)), Ok((s2, h2, b2))) => {
            assert_eq!(s1, s2, "{context}: status");
            assert_eq!(
                comparable(h1.clone()),
                comparable(h2.clone()),
                "{context}: headers"
            );
            assert_eq!(b1, b2, "{context}: body");
        }
        // The upstream's own answer broke the connection (a Content-Length hyper refuses
        // or cannot honour): the layer's may too, but no panic may be the cause.
        (Err(_), _) => {}
        (Ok(_), Err(e)) => panic!("{context}: the layered service failed where the upstream did not: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_wrapping_a_hostile_service_passes_it_through_and_emits_well_formed_events() {
    let upstream = Hostile::default();
    let probe = Probe::default();
    // Responses wait for their events (and lookups): what a response returned, the probe holds.
    let layer = NotificationLayer::new(Dispatcher::new(probe.sink()).wait_for_sinks(true))
        .include_references(true)
        .lookup(upstream.clone());
    let plain = support::serve(upstream.clone()).await;
    let layered = support::serve(tower::Layer::layer(&layer, upstream.clone())).await;
    let client: Client_ = Client::builder(TokioExecutor::new()).build_http();
    let (mut events, mut requests) = (0, 0);
    for (name, value) in cases() {
        upstream.set(Some((name.clone(), value.clone())));
        let shown = String::from_utf8_lossy(value.as_bytes());
        let shown: String = shown.chars().take(60).collect();
        for (method, path, headers, body) in scenario() {
            let context = format!("{name}: {shown:?}: {method} {path}");
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let direct = fetch(&client, method, &format!("http://{plain}{path}"), &h, &body).await;
            let through = fetch(&client, method, &format!("http://{layered}{path}"), &h, &body).await;
            same(&context, &direct, &through);
            requests += 1;
            for e in probe.take() {
                assert_well_formed(&e, &context);
                events += 1;
            }
        }
    }
    eprintln!(
        "{} hostile cases, {requests} requests, {events} events, all well formed",
        cases().len()
    );
    assert!(events > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_in_front_of_a_hostile_upstream_passes_it_through_and_emits_well_formed_events() {
    let upstream = Hostile::default();
    let upstream_addr = support::serve(upstream.clone()).await;
    let receiver = Receiver::start(support::receiver::always(200)).await;
    let receiver_addr = receiver.addr;
    let dir = tempfile::tempdir().unwrap();
    let notify = format!(
        "notifications:\n  events:\n    includereferences: true\n  endpoints:\n    - name: hostile\n      url: http://{receiver_addr}/events\n"
    );
    let proxy = support::registries::start_proxy(dir.path(), upstream_addr, &notify).await;
    let client: Client_ = Client::builder(TokioExecutor::new()).build_http();
    let (mut compared, mut refused, mut broken) = (0, 0, 0);
    for (name, value) in cases() {
        upstream.set(Some((name.clone(), value.clone())));
        let shown: String = String::from_utf8_lossy(value.as_bytes())
            .chars()
            .take(60)
            .collect();
        for (method, path, headers, body) in scenario() {
            let context = format!("{name}: {shown:?}: {method} {path}");
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let direct = fetch(
                &client,
                method,
                &format!("http://{upstream_addr}{path}"),
                &h,
                &body,
            )
            .await;
            let through = fetch(
                &client,
                method,
                &format!("http://{}{path}", proxy.addr),
                &h,
                &body,
            )
            .await;
            if let (Ok(_), Err(e)) = (&direct, &through) {
                panic!(
                    "{context}: the proxy failed where the upstream did not: {e}\n{}",
                    proxy.log_tail()
                );
            }
            // A Content-Length the proxy's client refuses (a list, a sign) becomes its 502.
            match (&direct, &through) {
                (Ok(_), Ok(t)) if t.0 == StatusCode::BAD_GATEWAY => refused += 1,
                (Ok(_), _) => {
                    same(&context, &direct, &through);
                    compared += 1;
                }
                (Err(_), _) => broken += 1,
            }
        }
    }
    // The barrier: a clean blob HEAD, whose event comes after those of every request before it
    // that needed no lookup (those that did are checked as far as they arrived).
    upstream.set(None);
    let barrier = format!("http://{}/v2/h/barrier/blobs/{}", proxy.addr, sha256(BLOB));
    let r = fetch(&client, "HEAD", &barrier, &[("user-agent", "barrier")], b"").await;
    assert_eq!(r.unwrap().0, StatusCode::OK);
    let is_barrier = |e: &serde_json::Value| e["request"]["useragent"] == "barrier";
    tokio::time::timeout(support::HANG_GUARD, async {
        loop {
            if receiver.json_events().iter().any(is_barrier) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the barrier event arrives");
    let events = receiver.json_events();
    for e in &events {
        assert_raw_well_formed(e, "through the proxy");
    }
    let log = std::fs::read_to_string(&proxy.log).unwrap_or_default();
    assert!(
        !log.contains("panicked"),
        "the proxy panicked:\n{}",
        proxy.log_tail()
    );
    eprintln!(
        "{} hostile cases through the proxy: {compared} responses equal to the upstream's, \
         {refused} refused by the proxy's client (502), {broken} broken at the upstream; \
         {} events, all well formed",
        cases().len(),
        events.len()
    );
    assert!(compared > refused + broken);
}

/// A registry's own hint is outside input too: a negative size, a malformed digest and
/// references with a negative size count as absent.
#[tokio::test]
async fn impossible_hints_count_as_absent() {
    use registry_notify::{Descriptor, EventHint};
    let manifest = manifest();
    let md = sha256(manifest.as_bytes());
    let body = manifest.clone();
    type Req = Request<registry_notify::layer::RequestBody<hyper::body::Incoming>>;
    let svc = tower::service_fn(move |_req: Req| {
        let mut hint = EventHint::size(-5);
        hint.digest = Some("sha256:NOT-A-DIGEST".into());
        hint.references = Some(vec![Descriptor::new("l", sha256(b"x"), -1)]);
        let mut r = Response::new(Full::new(Bytes::from(body.clone())));
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static(OCI_MANIFEST));
        r.extensions_mut().insert(hint);
        async move { Ok::<_, Infallible>(r) }
    });
    let probe = Probe::default();
    let layer = NotificationLayer::new(Dispatcher::new(probe.sink()))
        .include_references(true)
        .wrapped_lookups(false);
    let addr = support::serve(tower::Layer::layer(&layer, svc)).await;
    let c = support::Http::new(addr);
    let r = c.get(&format!("/v2/h/r/manifests/{md}")).await;
    assert_eq!(r.status, 200);
    let ev = probe.wait_take(1).await;
    assert_well_formed(&ev[0], "hint");
    let t = &ev[0].target;
    // The digest of the path, the size the body showed, references read from the body.
    assert_eq!(t.descriptor.digest, md);
    assert_eq!(t.descriptor.size, i64::try_from(manifest.len()).unwrap());
    assert_eq!(t.references.len(), 1);
    assert_eq!(t.references[0].digest, sha256(BLOB));
}
