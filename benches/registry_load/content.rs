//! The registry under load: seeded content and its pull mix, the variants' apps, requests
//! in-process, and the events the layer derives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::serve::ListenerExt;
use example_registry::oci;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use registry_notify::dispatcher::Dispatcher;
use registry_notify::layer::PeerAddr;
use registry_notify::sink::{BoxError, BoxSink};
use registry_notify::{Batch, Event, NotificationLayer, SourceRecord};
use registry_notify_testkit::sha256;
use tower::ServiceExt;

/// How many repositories the registry is seeded with (one image each).
const REPOS: usize = 4;
/// The media type of the seeded manifests.
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// What the registry was seeded with.
pub struct Content {
    /// The pull mix: method and path.
    pub mix: Vec<(Method, String)>,
}

/// `req` through `app`, in-process.
pub async fn call(app: &axum::Router, req: Request<axum::body::Body>) -> Response<axum::body::Body> {
    app.clone().oneshot(req).await.expect("infallible")
}

/// Pushes one image per repository through `app` (without the layer) and returns the mix.
pub async fn seed(app: &axum::Router) -> Content {
    let mut mix = Vec::new();
    for i in 0..REPOS {
        let name = format!("bench/app{i}");
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"n":{i}}}"#
        )
        .into_bytes();
        let layer: Vec<u8> = (0..4096u32)
            .map(|b| (b.wrapping_mul(31) ^ i as u32) as u8)
            .collect();
        for blob in [&config, &layer] {
            let d = sha256(blob);
            let req = Request::post(format!("/v2/{name}/blobs/uploads/?digest={d}"))
                .header(header::HOST, "127.0.0.1")
                .header(header::CONTENT_LENGTH, blob.len())
                .body(axum::body::Body::from(blob.clone()))
                .unwrap();
            let resp = call(app, req).await;
            assert_eq!(resp.status(), StatusCode::CREATED, "seeding a blob");
        }
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_TYPE}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}]}}"#,
            sha256(&config),
            config.len(),
            sha256(&layer),
            layer.len()
        );
        let md = sha256(manifest.as_bytes());
        let req = Request::put(format!("/v2/{name}/manifests/latest"))
            .header(header::HOST, "127.0.0.1")
            .header(header::CONTENT_TYPE, MANIFEST_TYPE)
            .body(axum::body::Body::from(manifest))
            .unwrap();
        let resp = call(app, req).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "seeding a manifest");
        mix.push((Method::HEAD, format!("/v2/{name}/manifests/latest")));
        mix.push((Method::GET, format!("/v2/{name}/manifests/latest")));
        mix.push((Method::HEAD, format!("/v2/{name}/manifests/{md}")));
        mix.push((Method::GET, format!("/v2/{name}/manifests/{md}")));
        mix.push((Method::GET, format!("/v2/{name}/blobs/{}", sha256(&layer))));
        mix.push((Method::GET, format!("/v2/{name}/blobs/{}", sha256(&config))));
    }
    Content { mix }
}

/// The example registry over `registry`, wrapped by `layer` if given, as the registry binary
/// serves it (`example_registry::app::service`): the layer in front of the whole router, the
/// peer address for `request.addr` outside it.
pub fn registry_app(
    registry: &oci::Registry,
    layer: Option<NotificationLayer>,
) -> impl tower::Service<
    axum::extract::Request,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    example_registry::app::service(oci::router(registry.clone()), layer)
}

/// Serves `app` on a fresh 127.0.0.1 port on `rt`.
pub fn serve<S>(rt: &tokio::runtime::Runtime, app: S) -> SocketAddr
where
    S: tower::Service<axum::extract::Request, Response = axum::response::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .expect("listener")
            .tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
        let app = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<SocketAddr>(app);
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A sink counting the events it is given.
pub fn counting_sink(count: Arc<AtomicU64>) -> BoxSink {
    BoxSink::new(tower::service_fn(move |b: Batch| {
        count.fetch_add(b.len() as u64, Ordering::Relaxed);
        std::future::ready(Ok::<(), BoxError>(()))
    }))
}

/// The source every variant names.
pub fn source() -> SourceRecord {
    SourceRecord::local("127.0.0.1:5000")
}

/// A request of the pull mix as a client on 127.0.0.1 sends it (with its `PeerAddr`).
pub fn request(method: &Method, path: &str) -> Request<axum::body::Body> {
    let mut req = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(header::HOST, "127.0.0.1:5000")
        .header(header::USER_AGENT, "loadgen/1.0")
        .body(axum::body::Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(PeerAddr("127.0.0.1:40000".parse().unwrap()));
    req
}

/// Bytes of text in an event's strings (they live in two shared buffers per request, one
/// for the request's strings and one for the response's; allocator overhead not counted).
pub fn event_heap(e: &Event) -> usize {
    let t = &e.target;
    [
        &e.id,
        &t.descriptor.media_type,
        &t.descriptor.digest,
        &t.repository,
        &t.from_repository,
        &t.url,
        &t.tag,
        &e.request.id,
        &e.request.addr,
        &e.request.host,
        &e.request.method,
        &e.request.useragent,
        &e.actor.name,
        &e.source.addr,
        &e.source.instance_id,
    ]
    .iter()
    .map(|s| s.len())
    .sum()
}

/// Real events, derived by the layer from the pull mix.
pub async fn derived_events(registry: &oci::Registry, mix: &[(Method, String)], n: usize) -> Vec<Event> {
    let seen = Arc::new(Mutex::new(Vec::<Event>::new()));
    let s = seen.clone();
    let capture = BoxSink::new(tower::service_fn(move |b: Batch| {
        s.lock().unwrap().extend(b.iter().cloned());
        std::future::ready(Ok::<(), BoxError>(()))
    }));
    let app = oci::router(registry.clone())
        .layer(NotificationLayer::new(Dispatcher::new(capture)).source(source()));
    for i in 0..n {
        let (m, p) = &mix[i % mix.len()];
        let _ = call(&app, request(m, p)).await.into_body().collect().await;
    }
    let events = seen.lock().unwrap().clone();
    events
}
