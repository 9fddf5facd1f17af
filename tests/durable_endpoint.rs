//! Durable queues from the YAML and the builder, and `fsync: always` on the request path: the
//! layer holds a response until its events are on disk.
#![cfg(feature = "durable")]

mod support;

use example_registry::oci;
use std::sync::Arc;
use std::time::Duration;

use registry_notify::config::{Config, QueueFsync};
use registry_notify::dispatcher::Dispatcher;
use registry_notify::notifications::Notifications;
use registry_notify::queue::{DurableConfig, DurableQueue, EventQueue, Fsync, Queue, QueueConfig};
use registry_notify::sink::{BoxError, BoxSink};
use registry_notify::{Batch, NotificationLayer};
use support::{sha256, with_digest, Http};

fn config(endpoints: &str) -> Result<Config, String> {
    let yaml = format!("version: 0.1\nstorage:\n  inmemory: {{}}\nnotifications:\n  endpoints:\n{endpoints}");
    Config::from_yaml_str(&yaml).map_err(|e| e.to_string())
}

fn endpoint(queue: &str) -> String {
    format!("    - name: a\n      url: http://127.0.0.1:9/events\n      queue: {queue}\n")
}

#[test]
fn yaml_keys() {
    let c = config(&endpoint("{path: /var/lib/q, maxbytes: 512MiB, fsync: always}")).unwrap();
    let e = &c.notifications.as_ref().unwrap().endpoints[0];
    assert_eq!(e.queue.path.as_deref(), Some(std::path::Path::new("/var/lib/q")));
    assert_eq!(e.queue.max_bytes, 512 << 20);
    assert_eq!(e.queue.fsync, QueueFsync::Always);
    assert_eq!(e.queue.capacity, usize::MAX, "on disk, maxbytes bounds the queue");
    let built = e.to_endpoint().unwrap();
    let durable = built.durable_queue().unwrap();
    assert_eq!((durable.max_bytes, durable.fsync), (512 << 20, Fsync::Always));
    assert!(built.waits_for_disk());

    let c = config(&endpoint(
        "{path: q, capacity: 10, fsyncinterval: 250ms, maxbytes: 2000000}",
    ))
    .unwrap();
    let e = &c.notifications.as_ref().unwrap().endpoints[0];
    assert_eq!((e.queue.capacity, e.queue.max_bytes), (10, 2_000_000));
    let built = e.to_endpoint().unwrap();
    assert_eq!(
        built.durable_queue().unwrap().fsync,
        Fsync::Interval(Duration::from_millis(250))
    );
    assert!(!built.waits_for_disk());
    assert_eq!(built.queue().capacity, 10);

    for (queue, size) in [
        ("1GB", 1_000_000_000u64),
        ("64KiB", 65536),
        ("'70000'", 70000),
        ("3g", 3 << 30),
    ] {
        let c = config(&endpoint(&format!("{{path: q, maxbytes: {queue}}}"))).unwrap();
        assert_eq!(
            c.notifications.unwrap().endpoints[0].queue.max_bytes,
            size,
            "{queue}"
        );
    }
}

#[test]
fn yaml_errors_name_the_field() {
    let at = "notifications.endpoints[0] (\"a\").queue";
    for (queue, want) in [
        ("{maxbytes: 1GiB}", format!("{at}.maxbytes only applies to a durable queue (set queue.path)")),
        ("{fsync: always}", format!("{at}.fsync only applies to a durable queue (set queue.path)")),
        (
            "{path: q, fsync: sometimes}",
            format!("{at}.fsync: expected \"always\" or \"interval\", found \"sometimes\""),
        ),
        ("{path: q, maxbytes: 1000}", format!("{at}.maxbytes must be at least 65536 (64KiB)")),
        (
            "{path: q, maxbytes: 12XB}",
            format!("{at}.maxbytes: expected a size in bytes such as 1073741824, \"512MiB\" or \"2GB\", found \"12XB\""),
        ),
    ] {
        let err = config(&endpoint(queue))
            .and_then(|c| c.notifications.unwrap().validate().map_err(|e| e.to_string()))
            .unwrap_err();
        assert_eq!(err, want, "{queue}");
    }
    let two = format!(
        "{}    - name: b\n      url: http://127.0.0.1:9/b\n      queue: {{path: /q}}\n",
        endpoint("{path: /q}")
    );
    let err = config(&two).unwrap_err();
    assert_eq!(
        err,
        "notifications.endpoints[1] (\"b\").queue.path must differ from the queue path of endpoints[0] (one directory per queue)"
    );
}

#[tokio::test]
async fn an_unopenable_queue_fails_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let c = config(&endpoint(&format!("{{path: {}}}", file.join("q").display()))).unwrap();
    let err = Notifications::builder()
        .config(c.notifications.as_ref().unwrap())
        .unwrap()
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("endpoint \"a\": cannot open queue path"),
        "{err}"
    );
}

#[cfg(feature = "test-util")]
/// `fsync: always` through the layer: the response to a blob push is held while the queue's
/// writer is held, and released once the event is written and synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_waits_until_the_event_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(
        DurableQueue::open(
            &DurableConfig::new(dir.path()).fsync(Fsync::Always),
            &QueueConfig::default(),
        )
        .unwrap(),
    );
    let q: Arc<dyn EventQueue> = queue.clone();
    // The endpoint is down: nothing is ever acknowledged.
    let never = BoxSink::new(tower::service_fn(|_b: Batch| {
        std::future::pending::<Result<(), BoxError>>()
    }));
    let sink = Queue::builder(QueueConfig::default())
        .events(q.clone())
        .spawn(never);
    let handle = sink.handle();
    let dispatcher = Dispatcher::new(BoxSink::new(sink)).wait_for_sinks(true);
    let layer = NotificationLayer::new(dispatcher);
    let registry = oci::router(oci::Registry::in_memory(oci::RegistryOptions {
        delete_enabled: true,
    }));
    let (layer_again, registry_again) = (layer.clone(), registry.clone());
    let addr = support::serve_router(registry.layer(layer)).await;
    let c = Http::new(addr);

    // Without a pause: the response comes back and the event is in the queue.
    c.push_blob("library/test", b"one").await;
    assert_eq!(queue.len(), 1);

    let pause = queue.pause_writer();
    let data = b"two";
    let digest = sha256(data);
    let location = c.start_upload("library/test").await;
    // The commit goes through the layer as a future polled by hand: while the writer is
    // held, every poll must find it pending — also the ones after its event was queued.
    let service = tower::Layer::layer(&layer_again, registry_again.clone());
    let request = http::Request::put(with_digest(location.trim_start_matches(&c.base), &digest))
        .header("host", "127.0.0.1")
        .body(axum::body::Body::from(&data[..]))
        .unwrap();
    let mut put = std::pin::pin!(tower::ServiceExt::oneshot(service, request));
    tokio::time::timeout(support::HANG_GUARD, async {
        loop {
            let queued = queue.len() == 2;
            assert!(
                futures_util::poll!(&mut put).is_pending(),
                "the response must wait for the disk"
            );
            if queued {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the event was never queued");
    for _ in 0..100 {
        tokio::task::yield_now().await;
        assert!(
            futures_util::poll!(&mut put).is_pending(),
            "the response must wait for the disk"
        );
    }
    let synced = queue.stats().fsyncs;
    drop(pause);
    let reply = tokio::time::timeout(support::HANG_GUARD, put)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.status(), 201);
    assert!(queue.stats().fsyncs > synced);
    // The pull of a blob is not a push, but it is waited for all the same.
    assert_eq!(
        c.get(&format!("/v2/library/test/blobs/{digest}")).await.status,
        200
    );
    assert_eq!(queue.len(), 3);
    assert_eq!(handle.shutdown(tokio::time::Instant::now()).await, 3);
}

/// When a later endpoint cannot start, the workers of those started before it stop too:
/// a failed build leaves no task behind.
#[tokio::test]
async fn a_failed_build_stops_the_endpoints_already_started() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let yaml = format!(
        "notifications:\n  endpoints:\n    - name: first\n      url: http://127.0.0.1:9/\n      queue: {{path: {}}}\n    - name: second\n      url: http://127.0.0.1:9/\n      queue: {{path: {}}}\n",
        dir.path().join("first").display(),
        file.join("q").display()
    );
    let c = Config::from_yaml_str(&yaml).unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let err = Notifications::builder()
        .config(c.notifications.as_ref().unwrap())
        .unwrap()
        .build()
        .unwrap_err();
    assert!(err.to_string().starts_with("endpoint \"second\""), "{err}");
    // Hang guard only: the stop is asynchronous but immediate.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metrics.num_alive_tasks() > before {
        assert!(tokio::time::Instant::now() < deadline, "workers still running");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
