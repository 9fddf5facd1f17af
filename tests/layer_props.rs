//! Property tests of the layer: arbitrary requests (methods; `/v2/…` paths with random
//! names, tags and digests, percent-encoding, prefixes; odd headers, non-UTF-8 values,
//! hostile numbers) and arbitrary responses (status, headers, body, an [`EventHint`] with
//! hostile values) through the layer wrapping a real service that answers what was
//! generated — to the client and to the layer's lookups alike.
//!
//! For every case: no panic, the response passes through unchanged (status, version,
//! headers, body bytes), and every event is well formed (it serialises, sizes are never
//! negative, digests are valid, the repository is set).
//!
//! 256 cases per property from a fixed seed. A long run, with fresh cases each time:
//!
//! ```text
//! PROPTEST_CASES=200000 PROPTEST_RNG_SEED=$RANDOM cargo test --release --all-features --test layer_props
//! ```

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use proptest::test_runner::Config;
use registry_notify::dispatcher::Dispatcher;
use registry_notify::layer::PeerAddr;
use registry_notify::{AuthenticatedUser, Descriptor, EventHint, NotificationLayer, RequestId};
use support::checks::assert_well_formed;
use support::sinks::Probe;

/// 256 cases from a fixed seed (see `support::props::config`).
fn config() -> Config {
    support::props::config(256, 0x1a7e5)
}

// ---- strategies ----

fn hex(n: usize) -> BoxedStrategy<String> {
    proptest::string::string_regex(&format!("[0-9a-f]{{{n}}}"))
        .unwrap()
        .boxed()
}

fn digest() -> BoxedStrategy<String> {
    prop_oneof![
        4 => hex(64).prop_map(|h| format!("sha256:{h}")),
        1 => hex(128).prop_map(|h| format!("sha512:{h}")),
        1 => hex(96).prop_map(|h| format!("sha384:{h}")),
        1 => "sha(256|512|384):[0-9a-fA-F]{60,70}",
        1 => "[a-z0-9+._-]{0,10}:[a-zA-Z0-9=_%-]{0,70}",
    ]
    .boxed()
}

fn name() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-z0-9]{1,8}((\\.|_|__|-+)[a-z0-9]{1,4})?(/[a-z0-9]{1,8}){0,2}",
        1 => "[a-zA-Z0-9._/%-]{0,24}",
        1 => (250usize..260).prop_map(|n| "a".repeat(n)),
        1 => Just("manifests/blobs".to_string()),
    ]
    .boxed()
}

fn tag() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}",
        1 => "[a-zA-Z0-9_:%.-]{0,130}",
    ]
    .boxed()
}

/// Query strings: digests and mounts, percent-encoded or not, and noise.
fn query() -> BoxedStrategy<String> {
    let encode = |s: String| s.replace(':', "%3A").replace('/', "%2F");
    prop_oneof![
        2 => Just(String::new()),
        2 => digest().prop_map(|d| format!("?digest={d}")),
        1 => digest().prop_map(move |d| format!("?digest={}", encode(d))),
        2 => (digest(), name()).prop_map(|(d, n)| format!("?mount={d}&from={n}")),
        1 => (digest(), name()).prop_map(|(d, n)| format!("?from={}&mount={}", n.replace('/', "%2F"), d.replace(':', "%3a"))),
        1 => "\\?[a-z=&%0-9A-F_-]{0,30}",
        1 => "\\?n=[0-9-]{0,25}&last=[a-z%]{0,10}",
    ]
    .boxed()
}

fn path() -> BoxedStrategy<String> {
    let prefix = prop_oneof![4 => Just(String::new()), 1 => "/[a-z]{1,6}"];
    let route = prop_oneof![
        3 => (name(), tag()).prop_map(|(n, t)| format!("/v2/{n}/manifests/{t}")),
        3 => (name(), digest()).prop_map(|(n, d)| format!("/v2/{n}/manifests/{d}")),
        3 => (name(), digest()).prop_map(|(n, d)| format!("/v2/{n}/blobs/{d}")),
        2 => name().prop_map(|n| format!("/v2/{n}/blobs/uploads/")),
        2 => (name(), "[a-zA-Z0-9_-]{1,12}").prop_map(|(n, id)| format!("/v2/{n}/blobs/uploads/{id}")),
        1 => prop_oneof![Just("/v2/".to_string()), Just("/v2/_catalog".to_string()), Just("/".to_string())],
        1 => name().prop_map(|n| format!("/v2/{n}/tags/list")),
        1 => "/[!-~]{0,40}",
    ];
    (prefix, route, query())
        .prop_map(|(p, r, q)| format!("{p}{r}{q}"))
        .boxed()
}

/// Numbers and ranges as hostile upstreams and clients write them.
fn number() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        "[0-9]{1,3}",
        "0-[0-9]{1,20}",
        "bytes=[0-9]{1,20}-[0-9]{0,20}",
        "bytes [0-9]{1,20}-[0-9]{1,20}/([0-9]{1,20}|\\*)",
        "bytes \\*/[0-9]{1,21}",
        "[+-]?[0-9]{1,21}",
        "[0-9]{1,3}-[0-9]{1,3}",
        Just("0-9223372036854775807".to_string()),
        Just("9223372036854775807".to_string()),
        Just("18446744073709551615".to_string()),
    ]
    .prop_map(String::into_bytes)
    .boxed()
}

/// Any bytes a header value may hold (visible ASCII, space, tab, obs-text).
fn header_bytes() -> BoxedStrategy<Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff], 0..40).boxed()
}

fn header_value() -> BoxedStrategy<HeaderValue> {
    prop_oneof![
        3 => number(),
        3 => header_bytes(),
        2 => digest().prop_map(String::into_bytes),
        1 => "(application/vnd\\.oci\\.image\\.(manifest|index)\\.v1\\+json|application/json|text/plain)(; charset=utf-8)?"
            .prop_map(String::into_bytes),
        1 => "Basic [A-Za-z0-9+/=!]{0,24}".prop_map(String::into_bytes),
        1 => "(https?://[a-z:0-9.]{1,20})?/v2/[a-z/]{1,12}/blobs/uploads/[a-z0-9]{1,6}(\\?_state=[a-z]{0,5})?"
            .prop_map(String::into_bytes),
        1 => "[0-9.:a-f, ]{0,40}".prop_map(String::into_bytes),
        1 => (0usize..3).prop_map(|i| [b'9', b'a', 0xff][i..=i].repeat(10 * 1024)),
    ]
    .prop_map(|v| HeaderValue::from_bytes(&v).expect("valid header bytes"))
    .boxed()
}

fn header_name() -> BoxedStrategy<HeaderName> {
    proptest::sample::select(vec![
        "content-length",
        "content-type",
        "content-range",
        "range",
        "transfer-encoding",
        "authorization",
        "host",
        "x-forwarded-for",
        "x-real-ip",
        "forwarded",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-request-id",
        "user-agent",
        "docker-content-digest",
        "location",
        "x-other",
    ])
    .prop_map(HeaderName::from_static)
    .boxed()
}

fn headers() -> BoxedStrategy<Vec<(HeaderName, HeaderValue)>> {
    proptest::collection::vec((header_name(), header_value()), 0..8).boxed()
}

fn descriptor() -> BoxedStrategy<Descriptor> {
    (any::<i64>(), digest(), "[a-z/.+]{0,20}")
        .prop_map(|(size, digest, media_type)| Descriptor::new(media_type, digest, size))
        .boxed()
}

fn hint() -> BoxedStrategy<Option<EventHint>> {
    let fields = (
        proptest::option::of(prop_oneof![any::<i64>(), 0i64..100]),
        proptest::option::of("[a-z/.+]{0,20}"),
        proptest::option::of(digest()),
        proptest::option::of(proptest::collection::vec(descriptor(), 0..3)),
        proptest::option::of(proptest::collection::vec("\\PC{0,10}", 0..3)),
    );
    proptest::option::weighted(
        0.3,
        fields.prop_map(|(size, media_type, digest, references, deleted_tags)| {
            let mut h = EventHint::default();
            h.size = size;
            h.media_type = media_type;
            h.digest = digest;
            h.references = references;
            h.deleted_tags = deleted_tags;
            h
        }),
    )
    .boxed()
}

/// A manifest body now and then, so that references are parsed.
fn body() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => (proptest::collection::vec((any::<i64>(), digest()), 0..3)).prop_map(|layers| {
            let layers: Vec<String> = layers
                .iter()
                .map(|(size, d)| format!(r#"{{"mediaType":"l","digest":"{d}","size":{size}}}"#))
                .collect();
            format!(r#"{{"schemaVersion":2,"layers":[{}]}}"#, layers.join(",")).into_bytes()
        }),
    ]
    .boxed()
}

fn status() -> BoxedStrategy<u16> {
    prop_oneof![
        4 => proptest::sample::select(vec![200u16, 201, 202, 204, 206, 304, 307, 400, 401, 404, 416, 500]),
        1 => 100u16..=999,
    ]
    .boxed()
}

/// The layer's settings of one case.
#[derive(Clone, Debug)]
struct Settings {
    references: bool,
    lookup: bool,
    skip_head_pulls: bool,
    pull_on_body_end: bool,
    wait: bool,
}

fn settings() -> BoxedStrategy<Settings> {
    any::<[bool; 5]>()
        .prop_map(|[references, lookup, skip_head_pulls, pull_on_body_end, wait]| {
            // Lookups of a response that does not wait run in a spawned task; these runs wait,
            // so that every event is in the probe when the response is (no timing involved).
            let (wait, pull_on_body_end) = if lookup {
                (true, false)
            } else {
                (wait, pull_on_body_end)
            };
            Settings {
                references,
                lookup,
                skip_head_pulls,
                pull_on_body_end,
                wait,
            }
        })
        .boxed()
}

#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
    hint: Option<EventHint>,
}

impl Answer {
    fn response(&self) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(Bytes::from(self.body.clone())));
        *r.status_mut() = StatusCode::from_u16(self.status).unwrap();
        for (k, v) in &self.headers {
            r.headers_mut().append(k.clone(), v.clone());
        }
        if let Some(h) = &self.hint {
            r.extensions_mut().insert(h.clone());
        }
        r
    }
}

/// The service: answers every request (the client's and the lookups) with the answer.
#[derive(Clone)]
struct Answering(Arc<Answer>);

impl<B> tower::Service<Request<B>> for Answering {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let r = self.0.response();
        Box::pin(async move { Ok(r) })
    }
}

#[derive(Clone, Debug)]
struct Exchange {
    method: Method,
    uri: Uri,
    version: Version,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
    peer: bool,
    user: Option<String>,
    request_id: Option<String>,
    answer: Answer,
    settings: Settings,
}

fn exchange() -> BoxedStrategy<Exchange> {
    let method = prop_oneof![
        proptest::sample::select(vec!["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"]),
        proptest::sample::select(vec!["OPTIONS", "FOO"]),
    ]
    .prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap());
    let uri = path().prop_map(|p| Uri::try_from(p).unwrap_or_else(|_| Uri::from_static("/v2/")));
    let version = proptest::sample::select(vec![Version::HTTP_10, Version::HTTP_11, Version::HTTP_2]);
    let request = (
        method,
        uri,
        version,
        headers(),
        proptest::collection::vec(any::<u8>(), 0..16),
        any::<bool>(),
        proptest::option::of("\\PC{0,12}"),
        proptest::option::of("\\PC{0,12}"),
    );
    let answer = (status(), headers(), body(), hint()).prop_map(|(status, headers, body, hint)| Answer {
        status,
        headers,
        body,
        hint,
    });
    (request, answer, settings())
        .prop_map(
            |((method, uri, version, headers, body, peer, user, request_id), answer, settings)| Exchange {
                method,
                uri,
                version,
                headers,
                body,
                peer,
                user,
                request_id,
                answer,
                settings,
            },
        )
        .boxed()
}

// ---- the property ----

fn check(rt: &tokio::runtime::Runtime, x: &Exchange) -> Result<usize, TestCaseError> {
    let probe = Probe::default();
    let service = Answering(Arc::new(x.answer.clone()));
    let s = &x.settings;
    let mut layer = NotificationLayer::new(Dispatcher::new(probe.sink()).wait_for_sinks(s.wait))
        .include_references(s.references)
        .skip_head_pulls(s.skip_head_pulls)
        .pull_on_body_end(s.pull_on_body_end);
    if s.lookup {
        layer = layer.lookup(service.clone());
    }
    let mut req = Request::new(Full::new(Bytes::from(x.body.clone())));
    *req.method_mut() = x.method.clone();
    *req.uri_mut() = x.uri.clone();
    *req.version_mut() = x.version;
    for (k, v) in &x.headers {
        req.headers_mut().append(k.clone(), v.clone());
    }
    if x.peer {
        req.extensions_mut()
            .insert(PeerAddr("10.1.2.3:4567".parse().unwrap()));
    }
    if let Some(u) = &x.user {
        req.extensions_mut().insert(AuthenticatedUser(u.clone()));
    }
    if let Some(id) = &x.request_id {
        req.extensions_mut().insert(RequestId(id.clone()));
    }
    let wrapped = tower::Layer::layer(&layer, service);
    let (parts, body) = rt.block_on(async {
        let resp = tower::ServiceExt::oneshot(wrapped, req).await.unwrap();
        let (parts, body) = resp.into_parts();
        (parts, body.collect().await.unwrap().to_bytes())
    });
    let want = x.answer.response();
    prop_assert_eq!(parts.status, want.status());
    prop_assert_eq!(parts.version, want.version());
    prop_assert_eq!(&parts.headers, want.headers());
    prop_assert_eq!(&body[..], &x.answer.body[..]);
    let events = probe.take();
    for e in &events {
        let context = format!("{} {}", x.method, x.uri);
        assert_well_formed(e, &context);
        prop_assert!(!e.target.repository.is_empty(), "{}: {:?}", context, e);
        prop_assert_eq!(e.request.method.as_str(), x.method.as_str());
    }
    Ok(events.len())
}

#[test]
fn arbitrary_exchanges_pass_through_and_yield_well_formed_events() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let events = std::cell::Cell::new(0usize);
    let cases = std::cell::Cell::new(0usize);
    runner
        .run(&exchange(), |x| {
            cases.set(cases.get() + 1);
            events.set(events.get() + check(&rt, &x)?);
            Ok(())
        })
        .unwrap();
    eprintln!("{} cases, {} events, all well formed", cases.get(), events.get());
}

/// A request a registry client sends, with a status the registry answers it with.
fn shaped_request() -> BoxedStrategy<(&'static str, String, u16)> {
    let valid_name = "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}";
    let pick = |v: Vec<u16>| proptest::sample::select(v);
    prop_oneof![
        (
            valid_name,
            tag(),
            proptest::sample::select(vec!["GET", "HEAD"]),
            pick(vec![200, 304])
        )
            .prop_map(|(n, t, m, s)| (m, format!("/v2/{n}/manifests/{t}"), s)),
        (
            valid_name,
            digest(),
            proptest::sample::select(vec!["GET", "HEAD"]),
            pick(vec![200])
        )
            .prop_map(|(n, d, m, s)| (m, format!("/v2/{n}/manifests/{d}"), s)),
        (valid_name, tag()).prop_map(|(n, t)| ("PUT", format!("/v2/{n}/manifests/{t}"), 201)),
        (valid_name, digest()).prop_map(|(n, d)| ("DELETE", format!("/v2/{n}/manifests/{d}"), 202)),
        (valid_name, tag()).prop_map(|(n, t)| ("DELETE", format!("/v2/{n}/manifests/{t}"), 202)),
        (
            valid_name,
            digest(),
            proptest::sample::select(vec!["GET", "HEAD"]),
            pick(vec![200, 206, 304, 307, 416])
        )
            .prop_map(|(n, d, m, s)| (m, format!("/v2/{n}/blobs/{d}"), s)),
        (valid_name, digest()).prop_map(|(n, d)| ("DELETE", format!("/v2/{n}/blobs/{d}"), 202)),
        (valid_name, query(), pick(vec![201, 202])).prop_map(|(n, q, s)| (
            "POST",
            format!("/v2/{n}/blobs/uploads/{q}"),
            s
        )),
        (valid_name, query(), pick(vec![201, 204])).prop_map(|(n, q, s)| (
            "PUT",
            format!("/v2/{n}/blobs/uploads/u{q}"),
            s
        )),
        valid_name.prop_map(|n| ("PATCH", format!("/v2/{n}/blobs/uploads/u"), 202)),
    ]
    .boxed()
}

/// Registry-shaped exchanges (a route, a success status, the headers a registry sends):
/// most yield events, so that the checks above see many of them.
#[test]
fn registry_shaped_exchanges_yield_well_formed_events() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let shaped = (exchange(), shaped_request(), digest(), number(), any::<bool>()).prop_map(
        |(mut x, (method, path, status), d, n, hostile)| {
            x.method = Method::from_bytes(method.as_bytes()).unwrap();
            x.uri = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/v2/"));
            x.answer.status = status;
            let h = &mut x.answer.headers;
            h.push((
                HeaderName::from_static("docker-content-digest"),
                HeaderValue::from_str(&d).unwrap(),
            ));
            if hostile {
                h.push((
                    HeaderName::from_static("content-length"),
                    HeaderValue::from_bytes(&n).unwrap(),
                ));
            }
            x
        },
    );
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let events = std::cell::Cell::new(0usize);
    runner
        .run(&shaped, |x| {
            events.set(events.get() + check(&rt, &x)?);
            Ok(())
        })
        .unwrap();
    eprintln!("registry-shaped: {} events, all well formed", events.get());
    assert!(events.get() > 0);
}
