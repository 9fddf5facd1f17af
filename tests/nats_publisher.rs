//! The NATS publisher against Debian's `nats-server`: nothing is lost while the server is down
//! or restarting, republished batches are deduplicated, subjects follow the repository.
#![cfg(all(feature = "nats", unix))]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use registry_notify::nats::{publisher_endpoint, Publisher};
use registry_notify::notifications::Notifications;
use registry_notify::{Action, Batch, Event, Target};
use support::nats::{stream_messages, NatsServer};
use support::wait_until;
use tower::ServiceExt;

fn event(i: usize, repository: &str) -> Event {
    let mut e = Event::new(Action::Push, Target::default());
    e.target.repository = repository.to_owned().into();
    e.target.tag = format!("t{i}").into();
    e.request.method = "PUT".into();
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_while_nats_is_down_or_restarting() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let mut settings = registry_notify::config::NatsSettings::new(format!("nats://127.0.0.1:{port}"));
    settings.max_events = 3;
    let (sink, handle) = publisher_endpoint(&settings).unwrap().spawn();
    let sink = registry_notify::sink::BoxSink::new(sink);
    let mut sent = Vec::new();
    let mut send = |sink: &registry_notify::sink::BoxSink, i: usize| {
        let e = event(
            i,
            if i.is_multiple_of(2) {
                "library/alpine"
            } else {
                "team/my.app"
            },
        );
        sent.push(e.clone());
        let sink = sink.clone();
        async move { sink.oneshot(Batch::from(e)).await.unwrap() }
    };

    // NATS is not running yet: the request path is not affected, events wait in the queue.
    for i in 0..20 {
        send(&sink, i).await;
    }
    assert_eq!(handle.queued(), 20, "nothing published, nothing dropped");
    assert_eq!(handle.metrics().dropped, 0);

    // Up: the backlog drains.
    let Some(mut server) = NatsServer::start_on(dir.path(), port) else {
        return;
    };
    wait_until("the backlog to drain", || handle.queued() == 0).await;

    // Down again (graceful restart, the store survives), with events sent meanwhile.
    server.stop();
    for i in 20..40 {
        send(&sink, i).await;
    }
    server.start_again();
    for i in 40..50 {
        send(&sink, i).await;
    }
    wait_until("everything published", || handle.queued() == 0).await;
    assert_eq!(handle.metrics().dropped, 0);
    assert_eq!(handle.shutdown(tokio::time::Instant::now()).await, 0);

    let messages = stream_messages(&server.url(), &settings.stream).await;
    let mut by_id: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (subject, msg_id, events) in &messages {
        assert!(msg_id.is_some(), "every message has a Nats-Msg-Id");
        assert!(events.len() <= 3, "maxevents bounds a message");
        for e in events {
            let want = match e.target.repository.as_str() {
                "library/alpine" => "registry.notifications.library.alpine",
                _ => "registry.notifications.team.my~2Eapp",
            };
            assert_eq!(subject, want);
            by_id
                .entry(e.id.to_string())
                .or_default()
                .insert(format!("{e:?}"));
        }
    }
    for e in &sent {
        let copies = by_id
            .get(e.id.as_str())
            .unwrap_or_else(|| panic!("event {} lost", e.id));
        assert_eq!(copies.len(), 1, "same id, same content");
        assert!(copies.contains(&format!("{e:?}")), "content round-trips");
    }
    assert_eq!(by_id.len(), sent.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republished_batch_is_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(dir.path()) else {
        return;
    };
    let settings = server.settings();
    let publisher = Publisher::new(settings.clone());
    let batch = Batch::from(vec![event(1, "a/b"), event(2, "a/b")]);
    publisher.publish(batch.clone()).await.unwrap();
    // As after a lost acknowledgement: the same batch again, and one event of it alone.
    publisher.publish(batch.clone()).await.unwrap();
    publisher.publish(Batch::from(vec![event(3, "c")])).await.unwrap();
    let messages = stream_messages(&server.url(), &settings.stream).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(
        messages[0].1.as_deref(),
        Some(&*format!("{}..{}", batch[0].id, batch[1].id))
    );
    assert_eq!(messages[0].2, batch.to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builder_publishes_next_to_the_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(dir.path()) else {
        return;
    };
    let yaml = format!(
        "notifications:\n  nats:\n    url: {}\n    subject: reg\n    subjectby: action\n",
        server.url()
    );
    let config = registry_notify::config::Config::from_yaml_str(&yaml).unwrap();
    let (layer, handle) = Notifications::builder()
        .config(config.notifications.as_ref().unwrap())
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(handle.endpoints()[0].name(), "nats:REGISTRY_NOTIFICATIONS");
    let app = axum::Router::new()
        .route(
            "/v2/{*rest}",
            axum::routing::delete(|| async { http::StatusCode::ACCEPTED }),
        )
        .layer(layer);
    let addr = support::serve_router(app).await;
    let http = support::Http::new(addr);
    let digest = support::sha256(b"x");
    let reply = http
        .send(
            "DELETE",
            &format!("/v2/r/manifests/{digest}"),
            &[],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 202);
    wait_until("the event to be published", || {
        handle.metrics()[0].events == 1 && handle.endpoints()[0].queued() == 0
    })
    .await;
    let messages = stream_messages(&server.url(), "REGISTRY_NOTIFICATIONS").await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].0, "reg.delete");
    assert_eq!(messages[0].2[0].target.repository, "r");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url_authenticate_and_never_show() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start_with(dir.path(), &["--user", "reg", "--pass", "s3cr3t:p@ss"]) else {
        return;
    };
    let good = format!("nats://reg:s3cr3t%3Ap%40ss@127.0.0.1:{}", server.port);
    let settings = registry_notify::config::NatsSettings::new(good);
    assert!(!format!("{settings:?}").contains("s3cr3t"));
    Publisher::new(settings)
        .publish(Batch::from(event(1, "a")))
        .await
        .unwrap();

    let wrong = format!("nats://reg:wr0ngpass@127.0.0.1:{}", server.port);
    let error = Publisher::new(registry_notify::config::NatsSettings::new(wrong))
        .publish(Batch::from(event(2, "a")))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        registry_notify::sink::DeliveryError::Transport(_)
    ));
    let message = error.to_string();
    assert!(message.contains("***@127.0.0.1"), "{message}");
    assert!(!message.contains("wr0ngpass"), "{message}");
}

#[cfg(feature = "durable")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_queue_keeps_events_across_a_restart_while_nats_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let yaml = format!(
        "notifications:\n  nats:\n    url: nats://127.0.0.1:{port}\n    queue:\n      path: {}\n",
        dir.path().join("queue").display()
    );
    let config = registry_notify::config::Config::from_yaml_str(&yaml).unwrap();
    let settings = config.notifications.unwrap().nats.unwrap();
    let sent: Vec<Event> = (0..10).map(|i| event(i, "durable/repo")).collect();

    // First life of the "registry": NATS is down, the events go to disk, then it stops.
    let (sink, handle) = publisher_endpoint(&settings).unwrap().spawn();
    let sink = registry_notify::sink::BoxSink::new(sink);
    for e in &sent {
        sink.clone().oneshot(Batch::from(e.clone())).await.unwrap();
    }
    let left = handle
        .shutdown(tokio::time::Instant::now() + Duration::from_secs(5))
        .await;
    assert_eq!(left, 10, "the backlog waits on disk");
    drop((sink, handle));

    // Second life: NATS is up, the backlog is published.
    let Some(server) = NatsServer::start_on(&dir.path().join("nats"), port) else {
        return;
    };
    // The stopped worker task lets go of the queue directory once the runtime has dropped it.
    let start = std::time::Instant::now();
    let (_sink, handle) = loop {
        match publisher_endpoint(&settings).unwrap().try_spawn() {
            Ok(spawned) => break spawned,
            Err(e) => assert!(start.elapsed() < Duration::from_secs(30), "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    wait_until("the backlog to be published", || handle.queued() == 0).await;
    let messages = stream_messages(&server.url(), &settings.stream).await;
    let got: Vec<Event> = messages.into_iter().flat_map(|(_, _, events)| events).collect();
    assert_eq!(got, sent);
}
