//! Delivery throughput of the scale-out mode against the in-process mode.
//!
//! ```sh
//! cargo bench --features nats --bench nats_load             # 3 rounds per case
//! cargo bench --features nats --bench nats_load -- --rounds 5
//! ```
//!
//! Needs `nats-server` on PATH (Debian's 2.9); it is started on 127.0.0.1 with a random port
//! and a temporary store. Everything else runs in this process: two "replicas" (endpoint
//! stacks fed the same way the layer feeds them, the registry's request path being identical
//! in both modes), two workers, and a hyper webhook receiver on its own thread that counts the
//! events of every POST.
//!
//! * **in-process**: each replica has an HTTP endpoint (queue → retry → HTTP) to the receiver.
//! * **nats**: each replica has the publisher endpoint (queue → retry → JetStream publish,
//!   persistence ack awaited); two [`Worker`]s share one durable consumer and POST to the
//!   receiver. "publish" is the time until both replicas' queues are empty (every event
//!   acknowledged by JetStream); "end to end" until the receiver counted every event.
//!
//! "CPU µs/event" is the user and system time of this process (replicas, workers, receiver)
//! plus nats-server during the case, per event: less sensitive to other load on a shared
//! machine than the rates.
//!
//! Both modes run unbatched (`maxevents: 1`, Distribution's behaviour: one event per message
//! and per POST) and batched (`maxevents: 100` for the publisher and the endpoints). Cases
//! alternate round by round so that machine noise falls on all of them alike.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use registry_notify::config::NatsSettings;
use registry_notify::endpoint::{Endpoint, EndpointHandle};
use registry_notify::nats::{publisher_endpoint, Worker};
use registry_notify::sink::BoxSink;
use registry_notify::{Batch, Event};
use registry_notify_testkit::events::blob_push;
use registry_notify_testkit::process::cpu_time;
use tower::ServiceExt;

const REPLICAS: usize = 2;
const WORKERS: usize = 2;

/// A realistic blob push event (about 700 bytes of JSON), ten consecutive events per
/// repository, as an image push makes them.
fn event(i: usize) -> Event {
    blob_push(i, &format!("library/bench{}", i / 10 % 8))
}

/// Counts the events of every POST (one `"action"` key per event), on a thread of its own.
fn start_receiver(count: Arc<AtomicU64>) -> std::net::SocketAddr {
    example_registry::receiver::serve_on_thread(move |_, body| {
        let n = body.windows(8).filter(|w| w == b"\"action\"").count();
        count.fetch_add(n as u64, Ordering::Relaxed);
        std::future::ready(Response::new(Full::new(Bytes::new())))
    })
    .expect("receiver")
}

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nats() -> Option<Server> {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", "-1", "-js", "-sd"])
        .arg(dir.path().join("js"))
        .arg("--ports_file_dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let ports = dir.path().join(format!("nats-server_{}.ports", child.id()));
    let start = Instant::now();
    loop {
        if let Some(url) = std::fs::read_to_string(&ports)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["nats"][0].as_str().map(str::to_owned))
        {
            return Some(Server {
                child,
                url,
                _dir: dir,
            });
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nats-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    InProcess,
    Nats,
}

struct Outcome {
    publish: Option<Duration>,
    total: Duration,
    /// CPU time of this process and of nats-server during the case.
    cpu: Duration,
}

async fn wait_for(count: &AtomicU64, n: u64, what: &str) {
    let start = Instant::now();
    while count.load(Ordering::Relaxed) < n {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "stuck waiting for {what}"
        );
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

/// Where a case sends: the NATS server, the receiver's URL and its event counter.
struct Env {
    nats_pid: String,
    nats_url: String,
    hook: String,
    count: Arc<AtomicU64>,
}

async fn run_case(
    env: &Env,
    mode: Mode,
    max_events: usize,
    publish_max_events: usize,
    events: &[Batch],
    round: usize,
) -> Outcome {
    let (nats_url, hook, count) = (env.nats_url.as_str(), env.hook.as_str(), &env.count);
    count.store(0, Ordering::Relaxed);
    let total_events: usize = events.iter().map(|b| b.len()).sum();
    let name = format!("BENCH_{round}_{max_events}_{publish_max_events}");
    let mut settings = NatsSettings::new(nats_url);
    settings.stream = name.clone();
    settings.subject = format!("bench.r{round}.m{max_events}.p{publish_max_events}");
    settings.consumer = format!("{name}_C");
    settings.max_events = publish_max_events;
    settings.queue.capacity = total_events + 1;
    let endpoint = || {
        Endpoint::builder("hook", hook)
            .max_events(max_events)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let mut replicas: Vec<(BoxSink, EndpointHandle)> = Vec::new();
    for _ in 0..REPLICAS {
        replicas.push(match mode {
            Mode::InProcess => boxed(endpoint().spawn()),
            Mode::Nats => boxed(publisher_endpoint(&settings).unwrap().spawn()),
        });
    }
    let workers: Vec<_> = match mode {
        Mode::InProcess => Vec::new(),
        Mode::Nats => (0..WORKERS)
            .map(|_| Worker::new(settings.clone()).endpoint(endpoint()).start())
            .collect(),
    };
    if mode == Mode::Nats {
        // Create the stream outside the measurement.
        registry_notify::nats::Publisher::new(settings.clone())
            .publish(Batch::default())
            .await
            .unwrap();
    }

    let cpu = || cpu_time("self") + cpu_time(&env.nats_pid);
    let cpu_start = cpu();
    let start = Instant::now();
    for (i, batch) in events.iter().enumerate() {
        let (sink, _) = &replicas[i % REPLICAS];
        sink.clone().oneshot(batch.clone()).await.unwrap();
    }
    let mut publish = None;
    if mode == Mode::Nats {
        while replicas.iter().any(|(_, h)| h.queued() > 0) {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        publish = Some(start.elapsed());
    }
    wait_for(count, total_events as u64, "the receiver").await;
    let total = start.elapsed();
    let cpu = cpu() - cpu_start;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for (_, h) in &replicas {
        h.shutdown(deadline).await;
    }
    for w in workers {
        w.shutdown(Duration::from_secs(5)).await;
    }
    if mode == Mode::Nats {
        let client = async_nats::connect(nats_url).await.unwrap();
        let _ = async_nats::jetstream::new(client).delete_stream(&name).await;
    }
    Outcome { publish, total, cpu }
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize);
    let Some(server) = start_nats() else {
        eprintln!("nats-server is not on PATH (apt-get install nats-server); skipping");
        return;
    };
    let count = Arc::new(AtomicU64::new(0));
    let env = Env {
        nats_pid: server.child.id().to_string(),
        nats_url: server.url.clone(),
        hook: format!("http://{}/events", start_receiver(count.clone())),
        count,
    };

    // (mode, endpoint maxevents, publisher maxevents, events per round)
    let cases = [
        (Mode::InProcess, 1usize, 0usize, 20_000usize),
        (Mode::Nats, 1, 1, 20_000),
        (Mode::Nats, 1, 100, 20_000),
        (Mode::InProcess, 100, 0, 100_000),
        (Mode::Nats, 100, 100, 100_000),
    ];
    let mut results: Vec<Vec<Outcome>> = cases.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (case, outcomes) in cases.iter().zip(results.iter_mut()) {
            let &(mode, m, p, n) = case;
            let events: Vec<Batch> = (0..n)
                .map(|i| Batch::from(event(round * 1_000_000 + i)))
                .collect();
            let o = run_case(&env, mode, m, p, &events, round).await;
            eprintln!(
                "round {round} {mode:?} endpoint maxevents {m}, publisher maxevents {p}: {:.0} events/s end to end, \
                 {:.1} µs CPU/event{}",
                rate(n, o.total),
                o.cpu.as_secs_f64() * 1e6 / n as f64,
                o.publish
                    .map(|p| format!(", {:.0} events/s into JetStream", rate(n, p)))
                    .unwrap_or_default()
            );
            outcomes.push(o);
        }
    }

    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    println!(
        "| mode | endpoint maxevents | publisher maxevents | events/round | end to end | into JetStream | / in-process | CPU µs/event |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (i, &(mode, m, p, n)) in cases.iter().enumerate() {
        let e2e = median(results[i].iter().map(|o| rate(n, o.total)).collect());
        let publish = median(
            results[i]
                .iter()
                .filter_map(|o| o.publish.map(|d| rate(n, d)))
                .collect(),
        );
        let local = cases
            .iter()
            .position(|c| c.0 == Mode::InProcess && c.1 == m)
            .map(|j| median(results[j].iter().map(|o| rate(cases[j].3, o.total)).collect()))
            .unwrap_or(0.0);
        let (p, publish) = match mode {
            Mode::InProcess => ("-".to_owned(), "-".to_owned()),
            Mode::Nats => (p.to_string(), format!("{publish:.0} ev/s")),
        };
        let cpu = median(
            results[i]
                .iter()
                .map(|o| o.cpu.as_secs_f64() * 1e6 / n as f64)
                .collect(),
        );
        println!(
            "| {mode:?} | {m} | {p} | {n} | {e2e:.0} ev/s | {publish} | {:.2} | {cpu:.1} |",
            e2e / local
        );
    }
}

/// An endpoint's sink boxed, like a sink of your own.
fn boxed(
    (sink, handle): (registry_notify::endpoint::EndpointSink, EndpointHandle),
) -> (BoxSink, EndpointHandle) {
    (BoxSink::new(sink), handle)
}
