//! Phase 2: the registry's throughput and latency, with and without the layer, in interleaved
//! rounds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use registry_notify::endpoint::{Endpoint, EndpointHandle};
use registry_notify::notifications::NotificationsHandle;
use registry_notify::queue::{Overflow, QueueConfig};

use std::sync::atomic::AtomicU64;

use example_registry::oci;
use registry_notify::notifications::Notifications;
use registry_notify::sink::{BoxError, BoxSink};
use registry_notify::{Batch, Format, NotificationLayer};

use crate::content::{counting_sink, registry_app, serve, source};
use crate::opts::Opts;
use crate::receiver::Receiver;

#[derive(Clone, Copy, PartialEq, Eq)]
/// What serves the registry phase's requests.
pub enum Variant {
    Bare,
    Passthrough,
    Sink,
    Endpoint,
    Batched,
    /// `--stages`: the batched endpoint's queue and worker, its sink counting the batches.
    BatchedQueue,
    /// `--stages`: the same, its sink encoding each batch as an envelope (no HTTP).
    BatchedEncode,
}

impl Variant {
    /// The name in the report.
    pub fn label(self) -> &'static str {
        match self {
            Variant::Bare => "without layer",
            Variant::Passthrough => "layer, no sink (pass-through)",
            Variant::Sink => "layer, in-process sink",
            Variant::Endpoint => "layer, 1 endpoint, unbatched",
            Variant::Batched => "layer, 1 endpoint, maxevents 100",
            Variant::BatchedQueue => "layer, maxevents 100 to a counting sink",
            Variant::BatchedEncode => "layer, maxevents 100 to an encoding sink",
        }
    }
}

/// One variant's server and what its rounds measured.
pub struct Server {
    /// The variant.
    pub variant: Variant,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its notifications (none without the layer or without a sink).
    pub handle: Option<NotificationsHandle>,
    /// Requests answered in recorded rounds.
    pub requests: u64,
    /// Time of the recorded rounds.
    pub elapsed: Duration,
    /// Latency of each request, nanoseconds.
    pub latencies: Vec<u64>,
    /// Time the endpoints took after the rounds to deliver their backlog.
    pub drain: Duration,
    /// The largest backlog at the end of a round.
    pub backlog_max: usize,
}

/// An endpoint to `receiver` with a queue that never drops under this load.
pub fn endpoint_to(receiver: &Receiver, name: &str, max_events: usize) -> Endpoint {
    Endpoint::builder(name, format!("http://{}/events", receiver.addr()))
        .max_events(max_events)
        .queue(QueueConfig {
            capacity: 1_000_000,
            overflow: Overflow::DropOldest,
        })
        .build()
        .expect("endpoint")
}

/// One client connection's closed loop until `stop`.
pub async fn load_worker(
    addr: SocketAddr,
    mix: Arc<Vec<(Method, String)>>,
    offset: usize,
    stop: Instant,
) -> Vec<u64> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut latencies = Vec::with_capacity(8192);
    let mut i = offset;
    while Instant::now() < stop {
        let (method, path) = &mix[i % mix.len()];
        i += 1;
        let req = Request::builder()
            .method(method.clone())
            .uri(path.as_str())
            .header(header::HOST, "127.0.0.1:5000")
            .header(header::USER_AGENT, "loadgen/1.0")
            .body(Empty::new())
            .unwrap();
        let t0 = Instant::now();
        sender.ready().await.expect("connection");
        let resp = sender.send_request(req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK, "{method} {path}");
        resp.into_body().collect().await.expect("body");
        latencies.push(t0.elapsed().as_nanos() as u64);
    }
    latencies
}

/// One round against `server`: `opts.concurrency` closed loops for `opts.round`, then the
/// endpoints drain; recorded into `server` if `record`.
pub async fn registry_round(
    server: &mut Server,
    mix: &Arc<Vec<(Method, String)>>,
    opts: &Opts,
    record: bool,
) {
    let start = Instant::now();
    let stop = start + opts.round;
    let workers: Vec<_> = (0..opts.concurrency)
        .map(|c| tokio::spawn(load_worker(server.addr, mix.clone(), c * 7, stop)))
        .collect();
    let mut lat = Vec::new();
    for w in workers {
        lat.extend(w.await.expect("worker"));
    }
    let elapsed = start.elapsed();
    // Let the endpoint catch up before the next round, so no round pays for another's backlog.
    let t = Instant::now();
    let mut backlog = 0;
    if let Some(h) = &server.handle {
        backlog = h.endpoints().iter().map(EndpointHandle::queued).sum();
        while h.endpoints().iter().any(|e| e.queued() > 0) && t.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let drain = t.elapsed();
    if record {
        server.requests += lat.len() as u64;
        server.elapsed += elapsed;
        server.latencies.extend(lat);
        server.drain += drain;
        server.backlog_max = server.backlog_max.max(backlog);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// One server per variant on `server_rt`, all over `registry`; the in-process sink counts
/// into `sink_count`, the endpoints deliver to `receiver`.
pub fn start_servers(
    server_rt: &tokio::runtime::Runtime,
    registry: &oci::Registry,
    receiver: &Receiver,
    sink_count: &Arc<AtomicU64>,
    stages: bool,
) -> Vec<Server> {
    let mut servers: Vec<Server> = Vec::new();
    let mut variants = vec![
        Variant::Bare,
        Variant::Passthrough,
        Variant::Sink,
        Variant::Endpoint,
        Variant::Batched,
    ];
    if stages {
        variants.extend([Variant::BatchedQueue, Variant::BatchedEncode]);
    }
    for variant in variants {
        let _enter = server_rt.enter();
        let (layer, handle) = match variant {
            Variant::Bare => (None, None),
            Variant::Passthrough => (Some(NotificationLayer::default()), None),
            Variant::Sink => {
                let (l, h) = Notifications::builder()
                    .source(source())
                    .sink(counting_sink(sink_count.clone()))
                    .build()
                    .unwrap();
                (Some(l), Some(h))
            }
            Variant::Endpoint | Variant::Batched => {
                let max = if variant == Variant::Batched { 100 } else { 1 };
                let (l, h) = Notifications::builder()
                    .source(source())
                    .endpoint(endpoint_to(receiver, "bench", max))
                    .build()
                    .unwrap();
                (Some(l), Some(h))
            }
            Variant::BatchedQueue | Variant::BatchedEncode => {
                let encode = variant == Variant::BatchedEncode;
                let sink = BoxSink::new(tower::service_fn(move |b: Batch| {
                    if encode {
                        std::hint::black_box(Format::EventsV2.encode(&b));
                    }
                    std::future::ready(Ok::<(), BoxError>(()))
                }));
                let endpoint = Endpoint::builder_for_sink("bench", "bench://sink", sink)
                    .max_events(100)
                    .build()
                    .expect("endpoint");
                let (l, h) = Notifications::builder()
                    .source(source())
                    .endpoint(endpoint)
                    .build()
                    .unwrap();
                (Some(l), Some(h))
            }
        };
        let addr = serve(server_rt, registry_app(registry, layer));
        servers.push(Server {
            variant,
            addr,
            handle,
            requests: 0,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
            drain: Duration::ZERO,
            backlog_max: 0,
        });
    }
    servers
}

/// Phase 2: a warm-up round per variant, then `opts.rounds` recorded rounds of each, the
/// order rotating; the latencies end sorted.
pub fn registry_phase(
    client_rt: &tokio::runtime::Runtime,
    servers: &mut [Server],
    mix: &Arc<Vec<(Method, String)>>,
    opts: &Opts,
) {
    println!(
        "registry: pull mix of {} requests, concurrency {}, {} rounds × {:?} per variant, interleaved",
        mix.len(),
        opts.concurrency,
        opts.rounds,
        opts.round
    );
    client_rt.block_on(async {
        // A warm-up round each, not recorded.
        for s in servers.iter_mut() {
            let warm = Opts {
                round: Duration::from_millis(300),
                ..opts.clone()
            };
            registry_round(s, mix, &warm, false).await;
        }
        // The order rotates from round to round, so that no variant always runs first
        // (right after the previous round's drain) or last.
        let n = servers.len();
        for round in 0..opts.rounds {
            for k in 0..n {
                registry_round(&mut servers[(round + k) % n], mix, opts, true).await;
            }
            eprint!("\r  round {}/{}", round + 1, opts.rounds);
        }
        eprintln!();
    });
    for s in servers.iter_mut() {
        s.latencies.sort_unstable();
    }
}
