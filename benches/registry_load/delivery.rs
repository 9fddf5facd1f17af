//! Phase 3: the delivery rate of one endpoint, unbatched and with `maxevents: 100`, against a
//! raw hyper POST loop.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use registry_notify::dispatcher::Dispatcher;
use registry_notify::endpoint::EndpointHandle;
use registry_notify::sink::BoxSink;
use registry_notify::{Batch, Event, Format};

use example_registry::oci;

use crate::content::derived_events;
use crate::opts::Opts;
use crate::receiver::{base, Receiver};
use crate::registry::endpoint_to;

/// POSTs `n` bodies serially over one kept-alive connection; the physical limit of
/// serial delivery.
pub async fn raw_post_loop(addr: SocketAddr, bodies: Arc<Vec<Bytes>>, n: usize) -> Duration {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let uri: http::Uri = format!("http://{addr}/events").parse().unwrap();
    let t0 = Instant::now();
    for i in 0..n {
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri.clone())
            .header(header::HOST, addr.to_string())
            .header(header::CONTENT_TYPE, Format::EventsV2.media_type())
            .header(header::USER_AGENT, registry_notify::http_sink::USER_AGENT_VALUE)
            .body(Full::new(bodies[i % bodies.len()].clone()))
            .unwrap();
        sender.ready().await.expect("connection");
        let resp = sender.send_request(req).await.expect("response");
        assert!(resp.status().is_success());
        resp.into_body().collect().await.expect("body");
    }
    t0.elapsed()
}

/// Dispatches `n` one-event batches to an endpoint and waits until all are delivered.
/// The batches are made before the clock starts: this measures delivery, not making
/// events. The round ends when the receiver got the last POST (its arrival time), not
/// when this thread notices: it checks only every few milliseconds, so that its polling
/// does not take CPU from the delivery it measures.
pub fn endpoint_round(
    receiver: &Receiver,
    dispatcher: &Dispatcher,
    handle: &EndpointHandle,
    events: &[Event],
    n: usize,
) -> Duration {
    let batches: Vec<Batch> = (0..n)
        .map(|i| Batch::from(events[i % events.len()].clone()))
        .collect();
    let base_count = handle.metrics().delivered;
    let t0 = Instant::now();
    for batch in batches {
        dispatcher.dispatch(batch);
    }
    while handle.metrics().delivered < base_count + n as u64 {
        if t0.elapsed() > Duration::from_secs(120) {
            panic!("endpoint {} stalled", handle.name());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let last = base() + Duration::from_nanos(receiver.last_arrival.load(Ordering::Relaxed));
    last.saturating_duration_since(t0)
}

/// What the delivery phase measured: the pooled rates (events/s) and the medians of the
/// per-round ratios.
pub struct DeliveryReport {
    /// The raw POST loop, one event per POST.
    pub raw_rate: f64,
    /// The unbatched endpoint.
    pub ep_rate: f64,
    /// The endpoint with `maxevents: 100`.
    pub b_rate: f64,
    /// Median of unbatched endpoint / raw loop.
    pub ub_median: f64,
    /// Median of batched / unbatched endpoint.
    pub bb_median: f64,
    /// The two endpoints, kept until the end of the run.
    pub _endpoints: [EndpointHandle; 2],
}

/// Phase 3: the same one-event envelopes (derived by the layer from the pull mix) POSTed by an
/// unbatched endpoint and by a raw hyper loop over one kept-alive connection, and with
/// `maxevents: 100`, in interleaved rounds; the endpoints run on `server_rt`.
pub fn delivery_phase(
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
    registry: &oci::Registry,
    mix: &[(Method, String)],
    receiver: &Receiver,
    opts: &Opts,
) -> DeliveryReport {
    let events = client_rt.block_on(derived_events(registry, mix, 600));
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        events
            .iter()
            .map(|e| Bytes::from(Format::EventsV2.encode(std::slice::from_ref(e))))
            .collect(),
    );
    let (d1, h1, d100, h100) = {
        let _enter = server_rt.enter();
        let (s1, h1) = endpoint_to(receiver, "unbatched", 1).spawn();
        let (s100, h100) = endpoint_to(receiver, "batched", 100).spawn();
        (
            Dispatcher::new(BoxSink::new(s1)),
            h1,
            Dispatcher::new(BoxSink::new(s100)),
            h100,
        )
    };
    let (mut raw_t, mut ep_t, mut b_t) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut raw_n, mut ep_n, mut b_n) = (0usize, 0usize, 0usize);
    println!(
        "delivery: {} rounds of {} one-event POSTs (raw loop, endpoint) and {} events (maxevents 100), interleaved",
        opts.delivery_rounds, opts.unbatched_events, opts.batched_events
    );
    // Warm-up: connections, pools.
    let n = opts.unbatched_events;
    let _ = server_rt.block_on(server_rt.spawn(raw_post_loop(receiver.addr(), bodies.clone(), 500)));
    endpoint_round(receiver, &d1, &h1, &events, 500);
    endpoint_round(receiver, &d100, &h100, &events, 5_000);
    // Per round: (endpoint / raw, batched / endpoint). Serial ping-pong rates swing with
    // where the scheduler puts the three threads involved; the median of the per-round
    // ratios is what the targets are checked on, the pooled rates are shown beside it.
    let (mut ub_rounds, mut bb_rounds) = (Vec::new(), Vec::new());
    for _ in 0..opts.delivery_rounds {
        let raw = server_rt
            .block_on(server_rt.spawn(raw_post_loop(receiver.addr(), bodies.clone(), n)))
            .expect("raw loop");
        raw_t += raw;
        raw_n += n;
        std::thread::sleep(Duration::from_millis(50));
        let ep = endpoint_round(receiver, &d1, &h1, &events, n);
        ep_t += ep;
        ep_n += n;
        std::thread::sleep(Duration::from_millis(50));
        let b = endpoint_round(receiver, &d100, &h100, &events, opts.batched_events);
        b_t += b;
        b_n += opts.batched_events;
        std::thread::sleep(Duration::from_millis(50));
        let rate = |count: usize, d: Duration| count as f64 / d.as_secs_f64();
        ub_rounds.push(rate(n, ep) / rate(n, raw));
        bb_rounds.push(rate(opts.batched_events, b) / rate(n, ep));
    }
    let raw_rate = raw_n as f64 / raw_t.as_secs_f64();
    let ep_rate = ep_n as f64 / ep_t.as_secs_f64();
    let b_rate = b_n as f64 / b_t.as_secs_f64();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (ub_median, bb_median) = (median(&mut ub_rounds), median(&mut bb_rounds));

    DeliveryReport {
        raw_rate,
        ep_rate,
        b_rate,
        ub_median,
        bb_median,
        _endpoints: [h1, h100],
    }
}
