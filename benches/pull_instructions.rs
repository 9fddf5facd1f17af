//! Exactly `N` pulls (manifest by tag) through the layer, for instruction counts: run it under
//! callgrind twice with different `N` and divide the difference (start-up cancels out).
//!
//! `valgrind --tool=callgrind target/release/deps/pull_instructions-* <case> <N>`
//!
//! * `counting_sink`: layer → dispatcher → a sink of your own counting events;
//! * `endpoint`: the stack `Notifications` builds — layer → dispatcher → endpoint (filter →
//!   queue → worker → retry) — with a counting service in place of the HTTP sink.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use registry_notify::dispatcher::Dispatcher;
use registry_notify::endpoint::Endpoint;
use registry_notify::notifications::Notifications;
use registry_notify::sink::{BoxError, BoxSink};
use registry_notify::{Batch, NotificationLayer, SourceRecord};
use tower::{ServiceBuilder, ServiceExt};

const DIGEST: &str = "sha256:ae40c5188662bc7902612ed0ceb103e138a8f36d041b758626c5d5b71f517e05";

fn counting_sink(count: Arc<AtomicUsize>) -> BoxSink {
    BoxSink::new(tower::service_fn(move |b: Batch| {
        count.fetch_add(b.len(), Ordering::Relaxed);
        std::future::ready(Ok::<(), BoxError>(()))
    }))
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let case = args.next().unwrap_or_else(|| "endpoint".into());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let count = Arc::new(AtomicUsize::new(0));
        let (layer, handle) = match case.as_str() {
            "counting_sink" => (
                NotificationLayer::new(Dispatcher::new(counting_sink(count.clone()))),
                None,
            ),
            _ => {
                let endpoint =
                    Endpoint::builder_for_sink("bench", "bench://counter", counting_sink(count.clone()))
                        .build()
                        .unwrap();
                let (layer, handle) = Notifications::builder().endpoint(endpoint).build().unwrap();
                (layer, Some(handle))
            }
        };
        let layer = layer.source(SourceRecord::local("127.0.0.1:5000"));
        let svc = ServiceBuilder::new()
            .layer(layer)
            .service(tower::service_fn(|_req: Request<_>| async {
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(200)
                        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                        .header("content-length", "555")
                        .header("docker-content-digest", DIGEST)
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                )
            }));
        for i in 0..n {
            let req = Request::builder()
                .method("GET")
                .uri("/v2/library/test/manifests/latest")
                .header("host", "127.0.0.1:5000")
                .header("user-agent", "skopeo/1.9.3")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let _ = svc.clone().oneshot(req).await.unwrap();
            if i % 256 == 255 {
                tokio::task::yield_now().await;
            }
        }
        while count.load(Ordering::Relaxed) < n {
            tokio::task::yield_now().await;
        }
        if let Some(handle) = handle {
            handle.shutdown(std::time::Duration::from_secs(5)).await;
        }
        println!("{case}: {n} pulls, {} events", count.load(Ordering::Relaxed));
    });
}
