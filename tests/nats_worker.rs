//! The NATS worker against Debian's `nats-server` and a real webhook receiver: a message is
//! acknowledged only once every endpoint delivered or dead-lettered it, in-progress
//! acknowledgements keep a long retry from being redelivered, one worker keeps the order, and
//! a payload that is not an envelope is terminated instead of blocking the consumer.
#![cfg(all(feature = "nats", unix))]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use registry_notify::config::NatsSettings;
use registry_notify::endpoint::Endpoint;
use registry_notify::nats::{Publisher, Worker};
use registry_notify::retry::Exponential;
use registry_notify::{Action, Batch, Event, Target};
use support::nats::{consumer_state, NatsServer};
use support::retry::retries;
use support::wait_until;

fn event(i: usize) -> Event {
    let mut e = Event::new(Action::Push, Target::default());
    e.target.repository = format!("repo/{i}").into();
    e
}

fn fast_retry() -> Exponential {
    retries(40, 40, None)
}

fn settings(server: &NatsServer, ack_wait: Duration) -> NatsSettings {
    let mut s = server.settings();
    s.ack_wait = ack_wait;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_acknowledged_only_once_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(dir.path()) else {
        return;
    };
    let ack_wait = Duration::from_secs(3);
    let settings = settings(&server, ack_wait);
    let publisher = Publisher::new(settings.clone());
    let events: Vec<Event> = (0..3).map(event).collect();
    for e in &events {
        publisher.publish(Batch::from(e.clone())).await.unwrap();
    }

    // The endpoint fails until the test heals it.
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    let rx = support::receiver::Receiver::start(support::receiver::by_index(move |_, _| {
        if h.load(Ordering::SeqCst) {
            200
        } else {
            503
        }
    }))
    .await;
    let endpoint = Endpoint::builder("hook", rx.url())
        .retry(fast_retry())
        .build()
        .unwrap();
    let worker = Worker::new(settings.clone()).endpoint(endpoint).start();

    // 100 failed attempts, 40 ms apart: the first message has been failing for more than
    // ack_wait (the attempts' own backoff proves it, whatever the machine's speed).
    rx.wait_requests(100).await;
    assert_eq!(worker.acked(), 0, "nothing acknowledged while the endpoint fails");
    let (pending, ack_pending, _) = consumer_state(&server.url(), &settings.stream, &settings.consumer).await;
    assert_eq!(pending + ack_pending as u64, 3, "every message is still owed");
    assert!(ack_pending >= 1);

    healthy.store(true, Ordering::SeqCst);
    wait_until("3 acknowledgements", || worker.acked() == 3).await;
    let (pending, ack_pending, redelivered) =
        consumer_state(&server.url(), &settings.stream, &settings.consumer).await;
    assert_eq!((pending, ack_pending), (0, 0));
    assert_eq!(
        redelivered, 0,
        "in-progress acknowledgements prevented redelivery"
    );

    // One worker: the endpoint got the events in stream order, each successful once.
    let delivered: Vec<String> = rx.requests().iter().skip(100).flat_map(|r| r.ids()).collect();
    let first_ok = delivered.iter().position(|id| *id == events[1].id).unwrap();
    let after: Vec<&String> = delivered[first_ok..].iter().collect();
    assert_eq!(after, vec![&events[1].id, &events[2].id], "{delivered:?}");
    assert!(delivered[..first_ok].iter().all(|id| *id == events[0].id));
    assert_eq!(worker.shutdown(Duration::from_secs(5)).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_acknowledged_after_every_endpoint_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(dir.path()) else {
        return;
    };
    let settings = settings(&server, Duration::from_secs(30));
    let e = event(7);
    Publisher::new(settings.clone())
        .publish(Batch::from(e.clone()))
        .await
        .unwrap();

    let refusing = support::receiver::Receiver::start(support::receiver::always(400)).await;
    let (open, gate) = support::receiver::gate();
    let slow = support::receiver::Receiver::start(support::receiver::gated(gate, 200)).await;
    let letters: Arc<Mutex<Vec<String>>> = Arc::default();
    let l = letters.clone();
    let worker = Worker::new(settings.clone())
        .endpoint(
            Endpoint::builder("refusing", refusing.url())
                .dead_letter(move |dl| {
                    l.lock()
                        .unwrap()
                        .extend(dl.batch.iter().map(|e| e.id.to_string()))
                })
                .build()
                .unwrap(),
        )
        .endpoint(
            Endpoint::builder("slow", slow.url())
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .start();

    wait_until("the dead letter", || !letters.lock().unwrap().is_empty()).await;
    slow.wait_requests(1).await;
    assert_eq!(*letters.lock().unwrap(), vec![e.id.clone()]);
    assert_eq!(worker.acked(), 0, "the slow endpoint has not answered yet");
    open.send(true).unwrap();
    wait_until("the acknowledgement", || worker.acked() == 1).await;
    let (pending, ack_pending, _) = consumer_state(&server.url(), &settings.stream, &settings.consumer).await;
    assert_eq!((pending, ack_pending), (0, 0));
    assert_eq!(slow.ids(), vec![e.id.clone()]);
    let m = &worker.endpoints()[0].metrics();
    assert_eq!(m.dead_lettered, 1);
    assert_eq!(worker.shutdown(Duration::from_secs(5)).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_is_not_an_envelope_is_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(dir.path()) else {
        return;
    };
    let settings = settings(&server, Duration::from_secs(30));
    let publisher = Publisher::new(settings.clone());
    let e = event(1);
    publisher.publish(Batch::from(event(0))).await.unwrap(); // creates the stream
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.publish("registry.notifications.junk", "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    publisher.publish(Batch::from(e.clone())).await.unwrap();

    let rx = support::receiver::Receiver::start(support::receiver::always(200)).await;
    let worker = Worker::new(settings.clone())
        .endpoint(Endpoint::builder("hook", rx.url()).build().unwrap())
        .start();
    wait_until("two deliveries and one termination", || {
        worker.acked() == 2 && worker.terminated() == 1
    })
    .await;
    let ids = rx.ids();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1], e.id);
    let (pending, ack_pending, _) = consumer_state(&server.url(), &settings.stream, &settings.consumer).await;
    assert_eq!((pending, ack_pending), (0, 0));
    assert_eq!(worker.shutdown(Duration::from_secs(5)).await, 0);
}
