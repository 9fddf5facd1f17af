//! Phase 4: ordered lanes. One endpoint with one lane and one with four (`concurrency: 4`),
//! unbatched, deliver the same events of 16 repositories to a receiver that answers each POST
//! after 1 ms (a webhook that does a little work), in interleaved rounds. One lane is one POST
//! at a time, so about 1 000 events/s at most; four lanes are four at a time.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use registry_notify::endpoint::{Endpoint, EndpointHandle, EndpointSink};
use registry_notify::queue::{Overflow, QueueConfig};
use registry_notify::{Action, Batch, Event, Target};
use tower::ServiceExt;

use crate::opts::Opts;

/// What the lanes phase measured.
pub struct LanesReport {
    /// Events/s with one lane, pooled over the rounds.
    pub one: f64,
    /// Events/s with four lanes.
    pub four: f64,
    /// Median of the per-round ratios four / one.
    pub median: f64,
    /// Events per round, rounds.
    pub events: usize,
    pub rounds: usize,
}

fn endpoint(addr: std::net::SocketAddr, lanes: usize) -> Endpoint {
    Endpoint::builder(format!("lanes-{lanes}"), format!("http://{addr}/events"))
        .concurrency(lanes)
        .timeout(Duration::from_secs(10))
        .queue(QueueConfig {
            capacity: 1_000_000,
            overflow: Overflow::DropOldest,
        })
        .build()
        .expect("endpoint")
}

/// Sends `events` one batch each and waits until the endpoint delivered them.
fn round(
    rt: &tokio::runtime::Runtime,
    sink: &EndpointSink,
    handle: &EndpointHandle,
    events: &[Event],
) -> Duration {
    let base = handle.metrics().delivered;
    let batches: Vec<Batch> = events.iter().cloned().map(Batch::from).collect();
    let t0 = Instant::now();
    rt.block_on(async {
        for b in batches {
            sink.clone().oneshot(b).await.expect("queued");
        }
    });
    while handle.metrics().delivered < base + events.len() as u64 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "{} stalled",
            handle.name()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    t0.elapsed()
}

pub fn lanes_phase(server_rt: &tokio::runtime::Runtime, opts: &Opts) -> LanesReport {
    let addr = example_registry::receiver::serve_on_thread(|_, _| async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        http::Response::new(Full::new(Bytes::new()))
    })
    .expect("receiver");
    let (events, rounds) = if opts.quick { (500, 3) } else { (1_500, 7) };
    let batch: Vec<Event> = (0..events)
        .map(|i| {
            let mut e = Event::new(Action::Push, Target::default());
            e.target.repository = format!("team/app-{}", i % 16).into();
            e.target.tag = format!("v{i}").into();
            e
        })
        .collect();
    let ((s1, h1), (s4, h4)) = {
        let _enter = server_rt.enter();
        (endpoint(addr, 1).spawn(), endpoint(addr, 4).spawn())
    };
    println!("lanes: {rounds} rounds of {events} events, 1 lane and 4 lanes, receiver answering after 1 ms");
    // Warm-up: connections.
    round(server_rt, &s1, &h1, &batch[..50]);
    round(server_rt, &s4, &h4, &batch[..50]);
    let (mut t1, mut t4) = (Duration::ZERO, Duration::ZERO);
    let mut ratios = Vec::new();
    for r in 0..rounds {
        // Alternate which goes first.
        let (a, b) = if r % 2 == 0 {
            let a = round(server_rt, &s1, &h1, &batch);
            (a, round(server_rt, &s4, &h4, &batch))
        } else {
            let b = round(server_rt, &s4, &h4, &batch);
            (round(server_rt, &s1, &h1, &batch), b)
        };
        t1 += a;
        t4 += b;
        ratios.push(a.as_secs_f64() / b.as_secs_f64());
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    let rate = |t: Duration| (events * rounds) as f64 / t.as_secs_f64();
    LanesReport {
        one: rate(t1),
        four: rate(t4),
        median: ratios[ratios.len() / 2],
        events,
        rounds,
    }
}

/// The phase's table.
pub fn print(report: &LanesReport) {
    println!();
    println!(
        "## Ordered lanes ({} rounds of {} events, receiver answering after 1 ms)",
        report.rounds, report.events
    );
    println!();
    println!("| endpoint | events/s | vs 1 lane (median of rounds) | target |");
    println!("|---|---|---|---|");
    println!(
        "| 1 lane (Distribution's one POST at a time) | {:.0} | 1 | |",
        report.one
    );
    println!(
        "| `concurrency: 4` | {:.0} | {:.2} × | ≥ 3 × {} |",
        report.four,
        report.median,
        if report.median >= 3.0 { "met" } else { "MISSED" }
    );
}
