//! W3C Trace Context through the layer and the HTTP sink, against a real registry and a real
//! receiver: the `traceparent` a registry request carried comes back on the webhook POST its
//! event caused; a request without one, or with a malformed one, gives a POST without it; an
//! endpoint's own `traceparent` header wins.

mod support;

use example_registry::oci;
use registry_notify::endpoint::Endpoint;
use registry_notify::Notifications;
use support::receiver::always;
use support::{Http, Receiver};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn registry(endpoint: Endpoint) -> (Http, registry_notify::NotificationsHandle) {
    let (layer, handle) = Notifications::builder().endpoint(endpoint).build().unwrap();
    let registry = oci::router(oci::Registry::in_memory(oci::RegistryOptions {
        delete_enabled: true,
    }));
    let addr = support::serve_router(registry.layer(layer)).await;
    (Http::new(addr), handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_post_carries_the_requests_trace() {
    let receiver = Receiver::start(always(200)).await;
    let (c, _handle) = registry(Endpoint::builder("t", receiver.url()).build().unwrap()).await;
    let digest = c.push_blob("trace/app", b"traced").await; // no traceparent
    let path = format!("/v2/trace/app/blobs/{digest}");
    c.send("HEAD", &path, &[("traceparent", TP)], "").await;
    let malformed = TP.replace("4bf9", "4BF9");
    c.send("HEAD", &path, &[("traceparent", &malformed)], "").await;
    receiver.wait_requests(3).await;
    let posts = receiver.requests();
    let traces: Vec<Option<&str>> = posts
        .iter()
        .map(|p| p.headers.get("traceparent").map(|v| v.to_str().unwrap()))
        .collect();
    assert_eq!(traces, [None, Some(TP), None]);
    // The trace is a header, not a field of the envelope.
    for post in &posts {
        assert!(!String::from_utf8_lossy(&post.body).contains("traceparent"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_header_named_traceparent_wins() {
    let receiver = Receiver::start(always(200)).await;
    let own = "00-11111111111111111111111111111111-2222222222222222-00";
    let endpoint = Endpoint::builder("t", receiver.url())
        .header("traceparent", own)
        .build()
        .unwrap();
    let (c, _handle) = registry(endpoint).await;
    let digest = c.push_blob("trace/own", b"own").await;
    c.send(
        "HEAD",
        &format!("/v2/trace/own/blobs/{digest}"),
        &[("traceparent", TP)],
        "",
    )
    .await;
    receiver.wait_requests(2).await;
    for post in receiver.requests() {
        assert_eq!(post.headers["traceparent"], own);
        assert_eq!(post.headers.get_all("traceparent").iter().count(), 1);
    }
}
