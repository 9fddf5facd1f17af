//! Throughput of the durable queue against the in-memory one, and group commit.
//!
//! `cargo bench --bench durable` (prints Markdown tables; a custom harness, not criterion,
//! because each case is one long run measured end to end). Each case uses a fresh temporary
//! directory under `$DURABLE_BENCH_DIR` (default: the system temp dir).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use registry_notify::metrics::EndpointMetrics;
use registry_notify::queue::{
    DurableConfig, DurableQueue, EventQueue, Fsync, MemoryQueue, Overflow, Queue, QueueConfig,
};
use registry_notify::sink::{BoxError, BoxSink};
use registry_notify::{Batch, Event};
use registry_notify_testkit::events::blob_push;
use tower::ServiceExt;

/// A realistic blob push event (about 700 bytes of JSON).
fn event(i: usize) -> Event {
    blob_push(i, "library/bench")
}

fn tempdir() -> tempfile::TempDir {
    match std::env::var_os("DURABLE_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

enum Kind {
    Memory,
    Durable(Fsync),
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::Durable(Fsync::Always) => "durable, fsync: always",
            Kind::Durable(_) => "durable, fsync: interval (1s)",
        }
    }

    fn open(&self, dir: &std::path::Path) -> Arc<dyn EventQueue> {
        let bounds = QueueConfig {
            capacity: usize::MAX,
            overflow: Overflow::DropOldest,
        };
        match self {
            Kind::Memory => Arc::new(MemoryQueue::new(bounds)),
            Kind::Durable(fsync) => Arc::new(
                DurableQueue::open(&DurableConfig::new(dir).max_bytes(8 << 30).fsync(*fsync), &bounds)
                    .unwrap(),
            ),
        }
    }
}

fn counting_sink(count: Arc<AtomicUsize>) -> BoxSink {
    BoxSink::new(tower::service_fn(move |b: Batch| {
        count.fetch_add(b.len(), Ordering::Relaxed);
        async { Ok::<(), BoxError>(()) }
    }))
}

/// `n` events pushed one per call by `writers` concurrent tasks (each awaiting its call, as the
/// layer does with `fsync: always`), through the queue layer to a sink that counts; the clock
/// stops when the last event was delivered (or dropped). Returns (events/s, events dropped).
async fn end_to_end(kind: &Kind, n: usize, writers: usize, max_events: usize) -> (f64, u64) {
    let dir = tempdir();
    let queue = kind.open(dir.path());
    let delivered = Arc::new(AtomicUsize::new(0));
    let metrics = Arc::new(EndpointMetrics::new("bench", "http://127.0.0.1/"));
    let q = queue.clone();
    let layer = Queue::builder(QueueConfig::default())
        .events(q.clone())
        .max_events(max_events)
        .metrics(metrics.clone())
        .spawn(counting_sink(delivered.clone()));
    let events: Vec<Batch> = (0..n).map(|i| Batch::from(event(i))).collect();
    let per_writer = n / writers;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut events = events.into_iter();
    for _ in 0..writers {
        let mine: Vec<Batch> = events.by_ref().take(per_writer).collect();
        let layer = layer.clone();
        tasks.spawn(async move {
            for b in mine {
                layer.clone().oneshot(b).await.unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let total = per_writer * writers;
    let guard = Instant::now();
    while delivered.load(Ordering::Relaxed) + (metrics.snapshot().dropped as usize) < total {
        assert!(
            guard.elapsed() < Duration::from_secs(120),
            "{}: stuck at {} delivered, {:?}",
            kind.name(),
            delivered.load(Ordering::Relaxed),
            metrics.snapshot()
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    layer
        .handle()
        .shutdown(tokio::time::Instant::now() + Duration::from_secs(5))
        .await;
    drop(layer);
    (rate, metrics.snapshot().dropped)
}

/// `fsync: always` with `writers` concurrent writers: events/s and events per fsync.
async fn group_commit(n: usize, writers: usize) -> (f64, f64) {
    let dir = tempdir();
    let queue = Arc::new(
        DurableQueue::open(
            &DurableConfig::new(dir.path())
                .max_bytes(8 << 30)
                .fsync(Fsync::Always),
            &QueueConfig {
                capacity: usize::MAX,
                overflow: Overflow::DropOldest,
            },
        )
        .unwrap(),
    );
    let before = queue.stats().fsyncs;
    let per_writer = n / writers;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let queue = queue.clone();
        tasks.spawn(async move {
            for i in 0..per_writer {
                let (_, wait) = queue
                    .push_persisted(Batch::from(event(w * per_writer + i)))
                    .unwrap();
                wait.unwrap().await.unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed().as_secs_f64();
    let fsyncs = queue.stats().fsyncs - before;
    let total = per_writer * writers;
    (total as f64 / elapsed, total as f64 / fsyncs.max(1) as f64)
}

/// Pushes only (the endpoint is down): what the request path pays per event.
fn push_only(kind: &Kind, n: usize) -> f64 {
    let dir = tempdir();
    let queue = kind.open(dir.path());
    let events: Vec<Batch> = (0..n).map(|i| Batch::from(event(i))).collect();
    let start = Instant::now();
    let mut dropped = 0;
    for b in events {
        dropped += queue.push(b).unwrap();
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    assert_eq!(
        dropped,
        0,
        "{}: the write buffer overflowed; lower n",
        kind.name()
    );
    rate
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run small then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = if quick { 2_000 } else { 200_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    println!(
        "push only, one event per call, {} events (endpoint down):\n",
        n / 4
    );
    println!("| queue | events/s |\n|---|---|");
    for kind in [Kind::Memory, Kind::Durable(Fsync::default())] {
        let rate = rt.block_on(async { push_only(&kind, n / 4) });
        println!("| {} | {:.0} |", kind.name(), rate);
    }

    println!("\nend to end (push → queue → worker → sink), {n} events, one per call, max_events 100:\n");
    println!("| queue | writers | events/s | dropped (write buffer full) |\n|---|---|---|---|");
    for (kind, writers) in [
        (Kind::Memory, 1),
        (Kind::Durable(Fsync::default()), 1),
        (Kind::Durable(Fsync::Always), 64),
    ] {
        let n = if matches!(kind, Kind::Durable(Fsync::Always)) {
            n / 4
        } else {
            n
        };
        let (rate, dropped) = rt.block_on(end_to_end(&kind, n, writers, 100));
        println!("| {} | {writers} | {rate:.0} | {dropped} |", kind.name());
    }

    println!("\ngroup commit (`fsync: always`), each writer waits for its event to be on disk:\n");
    println!("| concurrent writers | events/s | events per fsync |\n|---|---|---|");
    for writers in [1, 8, 64, 256] {
        let total = if quick {
            256
        } else {
            (writers * 200).clamp(2_000, 40_000)
        };
        let (rate, per_fsync) = rt.block_on(group_commit(total, writers));
        println!("| {writers} | {rate:.0} | {per_fsync:.1} |");
    }
}
