//! Cost per request of event derivation, of envelope serialisation, and throughput of
//! the sink stack.
//!
//! `cargo bench --bench derive`
//!
//! * `layer/*`: one request through a registry stand-in that answers at once, with the
//!   layer (events to a counting sink) and without it (`*_without_layer`); the
//!   difference is what the layer adds to a request.
//! * `layer/pull_manifest_by_tag_full_stack`: the same with the production sink stack
//!   (dispatcher → broadcast → filter → queue, whose worker feeds a counting service),
//!   worker included.
//! * `encode/*`: one envelope of 1 or 100 events in each format.
//! * `sink_stack/*`: one-event batches through dispatcher → broadcast → filter → queue →
//!   worker → counting service, with `max_events` 1 and 100.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{Request, Response};
use http_body_util::Full;
use registry_notify::broadcast::Broadcast;
use registry_notify::dispatcher::Dispatcher;
use registry_notify::filter::{EventFilterLayer, FilterRules};
use registry_notify::queue::{Queue, QueueConfig};
use registry_notify::sink::{BoxError, BoxSink};
use registry_notify::{Action, Batch, Descriptor, Event, Format, NotificationLayer, SourceRecord, Target};
use tower::{Layer, ServiceBuilder, ServiceExt};

const DIGEST: &str = "sha256:ae40c5188662bc7902612ed0ceb103e138a8f36d041b758626c5d5b71f517e05";

fn counting_service(
    count: Arc<AtomicUsize>,
) -> impl tower::Service<
    Batch,
    Response = (),
    Error = BoxError,
    Future = std::future::Ready<Result<(), BoxError>>,
> + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(move |b: Batch| {
        count.fetch_add(b.len(), Ordering::Relaxed);
        std::future::ready(Ok::<(), BoxError>(()))
    })
}

fn counting_sink(count: Arc<AtomicUsize>) -> BoxSink {
    BoxSink::new(counting_service(count))
}

/// dispatcher → broadcast → filter → queue (worker) → counting service: the stack of
/// `Notifications::builder()` with the HTTP sink replaced by a counter.
fn full_stack(count: Arc<AtomicUsize>, max_events: usize) -> Dispatcher {
    let queue = Queue::builder(QueueConfig::default())
        .max_events(max_events)
        .spawn(counting_service(count));
    let filtered = EventFilterLayer::new(FilterRules::new()).layer(queue);
    Dispatcher::new(BoxSink::new(Broadcast::new(vec![BoxSink::new(filtered)])))
}

/// A registry stand-in answering every request with the given status and headers.
/// A registry answering `status` to everything; `B` is the request body it is given
/// (`RequestBody<Full<Bytes>>` behind the layer).
type Registry<B> = tower::util::BoxCloneSyncService<Request<B>, Response<Full<Bytes>>, Infallible>;

fn registry<B: Send + 'static>(status: u16) -> Registry<B> {
    Registry::new(tower::service_fn(move |_req: Request<B>| async move {
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
    let layer = NotificationLayer::new(Dispatcher::new(counting_sink(count.clone())))
        .source(SourceRecord::local("127.0.0.1:5000"));
    let cases = [
        (
            "pull_manifest_by_tag",
            "GET",
            "/v2/library/test/manifests/latest".to_string(),
            200,
        ),
        (
            "head_manifest_by_digest",
            "HEAD",
            format!("/v2/library/test/manifests/{DIGEST}"),
            200,
        ),
        (
            "pull_blob",
            "GET",
            format!("/v2/library/test/blobs/{DIGEST}"),
            200,
        ),
        (
            "push_manifest",
            "PUT",
            "/v2/library/test/manifests/latest".to_string(),
            201,
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
        let bare = registry::<Full<Bytes>>(*status);
        group.bench_function(format!("{name}_without_layer"), |b| {
            b.to_async(&rt).iter(|| {
                let svc = bare.clone();
                let req = request(method, path);
                async move { svc.oneshot(req).await.unwrap() }
            })
        });
    }

    // The production stack, worker included: the whole CPU cost of one pull event.
    let stacked = Arc::new(AtomicUsize::new(0));
    let full_layer =
        NotificationLayer::new(full_stack(stacked.clone(), 1)).source(SourceRecord::local("127.0.0.1:5000"));
    let svc = ServiceBuilder::new().layer(full_layer).service(registry(200));
    group.bench_function("pull_manifest_by_tag_full_stack", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start_count = stacked.load(Ordering::Relaxed);
                let t0 = Instant::now();
                for i in 0..iters {
                    let req = request("GET", "/v2/library/test/manifests/latest");
                    let _ = svc.clone().oneshot(req).await.unwrap();
                    if i % 256 == 255 {
                        tokio::task::yield_now().await;
                    }
                }
                drain(&stacked, start_count + iters as usize).await;
                t0.elapsed()
            })
        })
    });
    group.finish();
}

/// Yields to the queue worker until `count` reaches `target`.
async fn drain(count: &AtomicUsize, target: usize) {
    let t0 = Instant::now();
    while count.load(Ordering::Relaxed) < target {
        tokio::task::yield_now().await;
        assert!(t0.elapsed() < Duration::from_secs(30), "queue worker stalled");
    }
}

fn sample_event() -> Event {
    let mut e = Event::new(
        Action::Pull,
        Target {
            descriptor: Descriptor::new("application/vnd.oci.image.manifest.v1+json", DIGEST, 555),
            length: 555,
            repository: "library/test".into(),
            url: format!("http://127.0.0.1:5000/v2/library/test/manifests/{DIGEST}").into(),
            tag: "latest".into(),
            ..Target::default()
        },
    );
    e.request.id = uuid::Uuid::now_v7().to_string().into();
    e.request.addr = "127.0.0.1:40000".into();
    e.request.host = "127.0.0.1:5000".into();
    e.request.method = "GET".into();
    e.request.useragent = "skopeo/1.9.3".into();
    e.source = SourceRecord::local("127.0.0.1:5000");
    e
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for n in [1usize, 100] {
        let events: Vec<Event> = (0..n).map(|_| sample_event()).collect();
        group.throughput(Throughput::Elements(n as u64));
        for f in [Format::EventsV1, Format::EventsV2] {
            group.bench_function(format!("{}_{n}", f.name()), |b| {
                b.iter(|| f.encode(std::hint::black_box(&events)))
            });
        }
    }
    group.finish();
}

fn sink_stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let batch = Batch::from(sample_event());
    let mut group = c.benchmark_group("sink_stack");
    group.throughput(Throughput::Elements(1));
    for max_events in [1usize, 100] {
        let count = Arc::new(AtomicUsize::new(0));
        let dispatcher = full_stack(count.clone(), max_events);
        group.bench_function(format!("max_events_{max_events}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start_count = count.load(Ordering::Relaxed);
                    let t0 = Instant::now();
                    for i in 0..iters {
                        dispatcher.dispatch(batch.clone());
                        if i % 256 == 255 {
                            tokio::task::yield_now().await;
                        }
                    }
                    drain(&count, start_count + iters as usize).await;
                    t0.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, derive, encode, sink_stack);
criterion_main!(benches);
