//! The durable queue: order and ids across restarts, group commit, bounds, corruption, shutdown.
#![cfg(feature = "durable")]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use registry_notify::metrics::EndpointMetrics;
use registry_notify::queue::{
    DurableConfig, DurableQueue, EventQueue, Fsync, Overflow, Queue, QueueConfig, QueueError,
};
use registry_notify::{Batch, Event};
use support::events::{events, ids};
use support::sinks::Collector;
use tokio::time::Instant;
use tower::ServiceExt;

/// Generous guard against hangs; never an assertion about speed.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn open(dir: &Path) -> DurableQueue {
    DurableQueue::open(&DurableConfig::new(dir), &QueueConfig::default()).unwrap()
}

fn open_with(config: DurableConfig, capacity: usize, overflow: Overflow) -> DurableQueue {
    DurableQueue::open(&config, &QueueConfig { capacity, overflow }).unwrap()
}

async fn next(q: &DurableQueue, max: usize) -> Batch {
    tokio::time::timeout(HANG_GUARD, q.next(max))
        .await
        .expect("next hung")
        .expect("queue ended")
}

/// Events of one size (`events` stamps the current time, whose length varies).
fn sized(from: usize, to: usize) -> Vec<Event> {
    let mut v = events(from, to);
    for e in &mut v {
        e.timestamp = "2026-01-02T03:04:05.123456789Z".parse().unwrap();
        e.id = format!("event-{:06}", e.id["event-".len()..].parse::<usize>().unwrap()).into();
    }
    v
}

fn id_list(batch: &Batch) -> Vec<String> {
    batch.iter().map(|e| e.id.to_string()).collect()
}

/// Takes and acks everything queued, in order.
async fn drain(q: &DurableQueue) -> Vec<Event> {
    let mut out = Vec::new();
    while !q.is_empty() {
        let b = next(q, 100).await;
        out.extend(b.iter().cloned());
        q.ack(b.len());
    }
    out
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[tokio::test]
async fn restart_resumes_in_order_with_the_same_ids() {
    let dir = tempfile::tempdir().unwrap();
    let originals = events(0, 10);
    {
        let q = open(dir.path());
        q.push(Batch::from(originals.clone())).unwrap();
        let b = next(&q, 4).await;
        assert_eq!(id_list(&b), ids(0, 4));
        assert_eq!(id_list(&next(&q, 4).await), ids(0, 4), "peek until acked");
        q.ack(4);
        assert_eq!(q.len(), 6);
    }
    let q = open(dir.path());
    assert_eq!(q.len(), 6);
    let got = drain(&q).await;
    assert_eq!(got, originals[4..], "same events, field for field, in order");
    q.close().unwrap();
    assert!(q.next(1).await.is_none());
    assert_eq!(q.push(Batch::from(events(0, 1))), Err(QueueError::Closed));
}

/// Every field survives the disk: the envelope after a restart is byte for byte the same.
#[tokio::test]
async fn a_rich_event_survives_byte_for_byte() {
    use registry_notify::{Descriptor, Format, Platform};
    let dir = tempfile::tempdir().unwrap();
    let mut e = events(0, 1).remove(0);
    e.target.descriptor = Descriptor::new("application/vnd.oci.image.index.v1+json", "sha256:abc", 42);
    e.target.descriptor.urls = vec!["https://mirror/x".into()];
    e.target.descriptor.annotations = [("org.opencontainers.image.title".to_owned(), "t".to_owned())].into();
    e.target.descriptor.artifact_type = Some("application/x-test".into());
    e.target.length = 42;
    e.target.from_repository = "library/other".into();
    e.target.url = "http://127.0.0.1:5000/v2/library/test/manifests/sha256:abc".into();
    e.target.tag = "latest".into();
    let mut child = Descriptor::new("application/vnd.oci.image.manifest.v1+json", "sha256:def", 7);
    child.platform = Some(Box::new(Platform {
        architecture: "arm64".into(),
        os: "linux".into(),
        variant: "v8".into(),
        ..Platform::default()
    }));
    child.data = Some("e30=".into());
    e.target.references = vec![child];
    e.request.addr = "10.0.0.1:5555".into();
    e.request.useragent = "skopeo/1.9.3 \"quoted\" ünïcode".into();
    e.actor.name = "alice".into();
    e.source.addr = "host:5000".into();
    e.source.instance_id = "0190f3c2-7d1e-7a4b-9c1d-000000000001".into();
    drop({
        let q = open(dir.path());
        q.push(Batch::from(e.clone())).unwrap();
        q
    });
    let q = open(dir.path());
    let got = next(&q, 1).await;
    assert_eq!(got[0], e);
    for format in [Format::EventsV1, Format::EventsV2] {
        assert_eq!(
            format.encode(&got[..]),
            format.encode(std::slice::from_ref(&e)),
            "{format}"
        );
    }
}

#[tokio::test]
async fn an_unacknowledged_batch_is_delivered_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let q = open(dir.path());
        q.push(Batch::from(events(0, 5))).unwrap();
        assert_eq!(id_list(&next(&q, 3).await), ids(0, 3));
        // No ack: a crash while the batch was in flight.
    }
    let q = open(dir.path());
    assert_eq!(id_list(&next(&q, 10).await), ids(0, 5));
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let err = DurableQueue::open(&DurableConfig::new(dir.path()), &QueueConfig::default()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    drop(q);
    drop(open(dir.path()));
}

#[cfg(feature = "test-util")]
/// Group commit: pushes that arrive while the writer is busy share one write and one fsync.
#[tokio::test]
async fn fsync_always_commits_concurrent_pushes_with_one_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let q = open_with(
        DurableConfig::new(dir.path()).fsync(Fsync::Always),
        usize::MAX,
        Overflow::DropOldest,
    );
    let before = q.stats();
    let pause = q.pause_writer();
    let mut waits = Vec::new();
    for e in events(0, 50) {
        let (dropped, wait) = q.push_persisted(Batch::from(e)).unwrap();
        assert_eq!(dropped, 0);
        waits.push(wait.expect("fsync: always waits for the disk"));
    }
    let mut first = waits.remove(0);
    let polled = futures_util::poll!(&mut first);
    assert!(polled.is_pending(), "not durable while the writer is held");
    drop(pause);
    tokio::time::timeout(HANG_GUARD, async {
        first.await.unwrap();
        for w in waits {
            w.await.unwrap();
        }
    })
    .await
    .expect("durable");
    let after = q.stats();
    assert_eq!(after.writes - before.writes, 1, "one write round for 50 pushes");
    assert_eq!(after.fsyncs - before.fsyncs, 1, "one fsync for 50 pushes");
    assert_eq!(after.written, 50);
}

#[cfg(feature = "test-util")]
#[tokio::test]
async fn fsync_interval_never_waits() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let _pause = q.pause_writer();
    let (dropped, wait) = q.push_persisted(Batch::from(events(0, 3))).unwrap();
    assert_eq!((dropped, wait.is_none()), (0, true));
    assert_eq!(q.len(), 3);
}

#[cfg(feature = "test-util")]
/// `fsync: interval` never waits: when the disk falls behind and the 8 MiB write buffer is full,
/// new events are dropped and counted.
#[tokio::test]
async fn a_full_write_buffer_drops_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let q = open_with(DurableConfig::new(dir.path()), usize::MAX, Overflow::DropOldest);
    let pause = q.pause_writer();
    let mut dropped = 0;
    let mut pushed = 0;
    for chunk in 0..200 {
        let batch = Batch::from(events(chunk * 200, chunk * 200 + 200));
        pushed += batch.len();
        dropped += q.push(batch).unwrap();
    }
    assert!(dropped > 0, "40 000 events of ~300 bytes do not fit 8 MiB");
    assert_eq!(q.len() + dropped, pushed);
    assert_eq!(q.stats().overflow_dropped, dropped as u64);
    drop(pause);
    let got = drain(&q).await;
    assert_eq!(got.len(), pushed - dropped);
    assert_eq!(got[0].id, "event-0", "the oldest are kept");
}

#[tokio::test]
async fn capacity_overflow_matches_the_memory_queue() {
    for (overflow, want) in [
        (Overflow::DropOldest, ids(15, 20)),
        (Overflow::DropNewest, ids(0, 5)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let q = open_with(DurableConfig::new(dir.path()), 5, overflow);
        let mut dropped = 0;
        for e in events(0, 20) {
            dropped += q.push(Batch::from(e)).unwrap();
        }
        assert_eq!((dropped, q.len()), (15, 5), "{overflow:?}");
        let got: Vec<String> = drain(&q).await.into_iter().map(|e| e.id.to_string()).collect();
        assert_eq!(got, want, "{overflow:?}");
        assert_eq!(q.stats().overflow_dropped, 15);
    }
}

/// `maxbytes` bounds the disk; drop-oldest frees whole segments, keeps the newest in order.
#[tokio::test]
async fn maxbytes_bounds_the_disk() {
    for overflow in [Overflow::DropOldest, Overflow::DropNewest] {
        let dir = tempfile::tempdir().unwrap();
        let max = 64 << 10;
        let q = open_with(
            DurableConfig::new(dir.path())
                .max_bytes(max)
                .segment_bytes(8 << 10),
            usize::MAX,
            overflow,
        );
        let n = 2000;
        let mut dropped = 0;
        for e in sized(0, n) {
            dropped += q.push(Batch::from(e)).unwrap();
            assert!(q.stats().bytes <= max, "{overflow:?}: {} bytes", q.stats().bytes);
        }
        assert!(dropped > 0);
        assert_eq!(dropped + q.len(), n, "{overflow:?}: every event kept or counted");
        q.flush().await;
        assert!(
            disk_bytes(dir.path()) <= max + 64,
            "{overflow:?}: {} on disk",
            disk_bytes(dir.path())
        );
        let got: Vec<String> = drain(&q).await.into_iter().map(|e| e.id.to_string()).collect();
        let (from, to) = match overflow {
            Overflow::DropOldest => (n - got.len(), n),
            _ => (0, got.len()),
        };
        let want: Vec<String> = sized(from, to).into_iter().map(|e| e.id.to_string()).collect();
        assert_eq!(got, want, "{overflow:?}: a contiguous run, in order");
    }
}

#[tokio::test]
async fn acknowledged_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let q = open_with(
        DurableConfig::new(dir.path()).segment_bytes(4 << 10),
        usize::MAX,
        Overflow::DropOldest,
    );
    q.push(Batch::from(events(0, 200))).unwrap();
    q.flush().await;
    assert!(segments(dir.path()).len() > 5);
    assert_eq!(drain(&q).await.len(), 200);
    q.flush().await;
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "only the segment being written is kept"
    );
    assert_eq!(q.stats().segments, 1);
}

#[tokio::test]
async fn a_truncated_tail_is_cut_off_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    drop({
        let q = open(dir.path());
        q.push(Batch::from(events(0, 10))).unwrap();
        q
    });
    let seg = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let q = open(dir.path());
    let stats = q.stats();
    assert_eq!((stats.corrupt_tails, q.len()), (1, 9));
    assert!(stats.corrupt_bytes > 0);
    q.push(Batch::from(events(10, 12))).unwrap();
    let got: Vec<String> = drain(&q).await.into_iter().map(|e| e.id.to_string()).collect();
    let mut want = ids(0, 9);
    want.extend(ids(10, 12));
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_garbage_tail_is_cut_off_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    drop({
        let q = open(dir.path());
        q.push(Batch::from(events(0, 10))).unwrap();
        q
    });
    let seg = segments(dir.path()).pop().unwrap();
    let mut data = std::fs::read(&seg).unwrap();
    data.extend((0..100u32).map(|i| (i * 37 + 11) as u8));
    std::fs::write(&seg, data).unwrap();
    let q = open(dir.path());
    assert_eq!(
        (q.stats().corrupt_tails, q.stats().corrupt_bytes, q.len()),
        (1, 100, 10)
    );
    assert_eq!(drain(&q).await.len(), 10);
}

/// A damaged record in a sealed segment: the rest of that segment is skipped and counted
/// exactly; later segments are delivered; nothing is stuck.
#[tokio::test]
async fn corruption_inside_a_sealed_segment_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(EndpointMetrics::new("q", "http://receiver/"));
    let config = DurableConfig::new(dir.path()).segment_bytes(4 << 10);
    drop({
        let q = open_with(config.clone(), usize::MAX, Overflow::DropOldest);
        q.push(Batch::from(events(0, 100))).unwrap();
        q
    });
    let segs = segments(dir.path());
    assert!(segs.len() >= 3);
    let first_of = |p: &PathBuf| -> usize { p.file_stem().unwrap().to_str().unwrap().parse().unwrap() };
    let (s1, s2) = (first_of(&segs[1]), first_of(&segs[2]));
    // Flip a byte in the middle of segment 1's data.
    let mut data = std::fs::read(&segs[1]).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x55;
    std::fs::write(&segs[1], data).unwrap();

    let q = DurableQueue::open(&config, &QueueConfig::default())
        .unwrap()
        .metrics(metrics.clone());
    let got: Vec<usize> = drain(&q)
        .await
        .into_iter()
        .map(|e| e.id["event-".len()..].parse().unwrap())
        .collect();
    let lost = q.stats().corrupt_events as usize;
    assert!(lost > 0 && lost < s2 - s1);
    assert_eq!(got.len() + lost, 100, "every event delivered or counted");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(got.contains(&s1) && got.contains(&s2) && got.contains(&99));
    let m = metrics.snapshot();
    assert_eq!((m.events, m.dropped), (100, lost as u64));
}

#[tokio::test]
async fn damaged_headers_and_ack_file_do_not_stop_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    drop({
        let q = open(dir.path());
        q.push(Batch::from(events(0, 4))).unwrap();
        q.ack(0);
        q
    });
    // A segment created at a crash before its header was written, and a garbage ack file.
    std::fs::write(dir.path().join("00000000000000000004.seg"), b"RNQ").unwrap();
    std::fs::write(dir.path().join("ack"), b"not an ack file").unwrap();
    let q = open(dir.path());
    assert_eq!(q.len(), 4);
    q.push(Batch::from(events(4, 6))).unwrap();
    let got: Vec<String> = drain(&q).await.into_iter().map(|e| e.id.to_string()).collect();
    assert_eq!(got, ids(0, 6));
}

/// Through the queue layer: delivered in order; shutdown does not drain a durable queue, it
/// flushes and returns at once, and the backlog is there at the next start.
#[tokio::test]
async fn shutdown_is_prompt_and_the_backlog_waits_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = DurableConfig::new(dir.path());
    {
        let collector = Collector::new();
        let q: Arc<dyn EventQueue> = Arc::new(DurableQueue::open(&config, &QueueConfig::default()).unwrap());
        let queue = Queue::builder(QueueConfig::default())
            .events(q.clone())
            .max_events(10)
            .spawn(collector.sink(Duration::ZERO));
        for e in events(0, 100) {
            queue.clone().oneshot(Batch::from(e)).await.unwrap();
        }
        tokio::time::timeout(HANG_GUARD, async {
            while collector.count() < 100 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("delivered");
        assert_eq!(collector.ids(), ids(0, 100));
        assert_eq!(queue.handle().shutdown(Instant::now() + HANG_GUARD).await, 0);
    }
    // The endpoint is down (the sink never answers): shutdown with a far deadline returns at once.
    let (_open, gate) = tokio::sync::watch::channel(false);
    let collector = Collector::new();
    let q: Arc<dyn EventQueue> = Arc::new(DurableQueue::open(&config, &QueueConfig::default()).unwrap());
    let queue = Queue::builder(QueueConfig::default())
        .events(q.clone())
        .max_events(10)
        .spawn(collector.gated_sink(gate));
    for e in events(100, 150) {
        queue.clone().oneshot(Batch::from(e)).await.unwrap();
    }
    let handle = queue.handle();
    let start = std::time::Instant::now();
    let left = tokio::time::timeout(
        Duration::from_secs(600),
        handle.shutdown(Instant::now() + Duration::from_secs(600)),
    )
    .await
    .unwrap();
    assert_eq!(left, 50);
    assert!(
        start.elapsed() < Duration::from_secs(300),
        "did not wait for the deadline"
    );
    drop((queue, handle, q));
    // The worker has stopped; let the runtime drop it (and with it the queue).
    let q = tokio::time::timeout(HANG_GUARD, async {
        loop {
            match DurableQueue::open(&config, &QueueConfig::default()) {
                Ok(q) => return q,
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .expect("queue released");
    let got: Vec<String> = drain(&q).await.into_iter().map(|e| e.id.to_string()).collect();
    assert_eq!(got, ids(100, 150));
}

/// Writers and the worker at the same time: everything arrives once, in per-writer order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_while_delivering() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::new();
    let q: Arc<dyn EventQueue> = Arc::new(open_with(
        DurableConfig::new(dir.path())
            .segment_bytes(16 << 10)
            .fsync(Fsync::Always),
        usize::MAX,
        Overflow::DropOldest,
    ));
    let queue = Queue::builder(QueueConfig::default())
        .events(q.clone())
        .max_events(7)
        .spawn(collector.sink(Duration::ZERO));
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let queue = queue.clone();
        writers.spawn(async move {
            for e in events(w * 500, w * 500 + 500) {
                queue.clone().oneshot(Batch::from(e)).await.unwrap();
            }
        });
    }
    while let Some(r) = writers.join_next().await {
        r.unwrap();
    }
    tokio::time::timeout(HANG_GUARD, async {
        while collector.count() < 2000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("delivered");
    let got = collector.ids();
    assert_eq!(got.len(), 2000, "no duplicates");
    let mut sorted = got.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 2000);
    for w in 0..4 {
        let mine: Vec<&String> = got
            .iter()
            .filter(|id| id["event-".len()..].parse::<usize>().unwrap() / 500 == w)
            .collect();
        let want = ids(w * 500, w * 500 + 500);
        assert!(
            mine.iter().zip(&want).all(|(a, b)| *a == b),
            "writer {w} in order"
        );
    }
    queue.handle().shutdown(Instant::now() + HANG_GUARD).await;
}

/// Another process holding the directory (util-linux `flock` on its `lock` file, as a second
/// registry would) keeps it from being opened; once that process is gone, it opens, and while
/// it is open here, no other process gets the lock.
#[cfg(unix)]
#[test]
fn another_process_holding_the_directory_keeps_it_closed() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let Some(flock) = support::require_tool("flock") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lock_file = dir.path().join("lock");
    let config = DurableConfig::new(dir.path());
    // `-o`: only `flock` itself holds the lock (its command does not inherit it), so the
    // lock is gone once that one process has exited and been waited for.
    let mut holder = std::process::Command::new(&flock)
        .args(["-n", "-o"])
        .arg(&lock_file)
        .args(["-c", "echo locked; exec sleep 120"])
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");

    let err = DurableQueue::open(&config, &QueueConfig::default()).unwrap_err();
    assert!(err.to_string().contains("in use by another process"), "{err}");

    // The holder and its shell go: the kernel releases the lock with them.
    let group = format!("-{}", holder.id());
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &group])
        .status();
    let _ = holder.wait();
    let queue = DurableQueue::open(&config, &QueueConfig::default()).unwrap();
    let try_lock = || {
        std::process::Command::new(&flock)
            .arg("-n")
            .arg(&lock_file)
            .arg("true")
            .status()
            .unwrap()
            .success()
    };
    assert!(!try_lock(), "another process got the lock of an open queue");
    drop(queue);
    assert!(try_lock(), "the lock outlived the queue");
}
