//! Cost per request of event derivation, and of envelope serialisation.
//!
//! `cargo bench --bench derive`

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use http_body_util::Full;
use registry_notify::dispatcher::Dispatcher;
use registry_notify::sink::{BoxError, BoxSink};
use registry_notify::{Action, Batch, Descriptor, Event, Format, NotificationLayer, Target};
use tower::{ServiceBuilder, ServiceExt};

const DIGEST: &str = "sha256:ae40c5188662bc7902612ed0ceb103e138a8f36d041b758626c5d5b71f517e05";

fn counting_sink(count: Arc<AtomicUsize>) -> BoxSink {
    BoxSink::new(tower::service_fn(move |b: Batch| {
        count.fetch_add(b.len(), Ordering::Relaxed);
        async { Ok::<(), BoxError>(()) }
    }))
}

/// A registry stand-in answering every request with the given status and headers.
type Registry = tower::util::BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>;

fn registry(status: u16) -> Registry {
    Registry::new(tower::service_fn(move |_req: Request<Full<Bytes>>| async move {
        Ok::<_, Infallible>(
            Response::builder()
                .status(status)
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .header("content-length", "555")
                .header("docker-content-digest", DIGEST)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
    }))
}

fn request(method: &str, path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1:5000")
        .header("user-agent", "skopeo/1.9.3")
        .header("content-length", "141")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn derive(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let count = Arc::new(AtomicUsize::new(0));
    let layer = NotificationLayer::new(Dispatcher::new(counting_sink(count.clone())));
    let cases = [
        (
            "pull_manifest_by_tag",
            "GET",
            "/v2/library/test/manifests/latest".to_string(),
            200,
        ),
        (
            "push_blob",
            "PUT",
            "/v2/library/test/blobs/uploads/abc?digest=".to_string() + DIGEST,
            201,
        ),
        (
            "mount",
            "POST",
            format!("/v2/other/app/blobs/uploads/?mount={DIGEST}&from=library/test"),
            201,
        ),
        ("non_registry_path", "GET", "/healthz".to_string(), 200),
    ];
    let mut group = c.benchmark_group("layer");
    for (name, method, path, status) in &cases {
        let svc = ServiceBuilder::new()
            .layer(layer.clone())
            .service(registry(*status));
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| {
                let svc = svc.clone();
                let req = request(method, path);
                async move { svc.oneshot(req).await.unwrap() }
            })
        });
        let bare = registry(*status);
        group.bench_function(format!("{name}_without_layer"), |b| {
            b.to_async(&rt).iter(|| {
                let svc = bare.clone();
                let req = request(method, path);
                async move { svc.oneshot(req).await.unwrap() }
            })
        });
    }
    group.finish();
    assert!(count.load(Ordering::Relaxed) > 0);
}

fn encode(c: &mut Criterion) {
    let mut e = Event::new(
        Action::Push,
        Target {
            descriptor: Descriptor::new("application/vnd.oci.image.manifest.v1+json", DIGEST, 555),
            length: 555,
            repository: "library/test".into(),
            url: format!("http://127.0.0.1:5000/v2/library/test/manifests/{DIGEST}"),
            tag: "latest".into(),
            ..Target::default()
        },
    );
    e.request.id = uuid::Uuid::now_v7().to_string();
    e.request.method = "PUT".into();
    let events = vec![e];
    let mut group = c.benchmark_group("encode");
    for f in [Format::EventsV1, Format::EventsV2] {
        group.bench_function(f.name(), |b| b.iter(|| f.encode(std::hint::black_box(&events))));
    }
    group.finish();
}

criterion_group!(benches, derive, encode);
criterion_main!(benches);
